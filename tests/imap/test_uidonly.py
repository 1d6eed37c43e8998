"""UIDONLY (RFC 9586): after ENABLE UIDONLY message sequence numbers are refused with
BAD [UIDREQUIRED], FETCH responses become UIDFETCH (numbered by UID, no UID item) and
EXPUNGE responses VANISHED, for the session's own commands and for what other sessions
do (NOOP, IDLE), with CONDSTORE and QRESYNC."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import pytest

from letterbox.service.context import Context
from tests.conftest import ServerProcess

from .imaputil import Client, add_user, make_context

USER = "uo@example.com"


def message(n: int, size: int = 0) -> bytes:
    return b"Subject: message %d\r\n\r\nbody %d\r\n" % (n, n) + b"x" * size


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    c = make_context(tmp_path)
    add_user(c, USER)
    return c


async def mailbox(ctx: Context, n: int = 6) -> list[int]:
    """*n* messages in INBOX, the first expunged: UIDs 2..n, sequence numbers 1..n-1."""
    acc = await ctx.store.account(USER)
    uids = [(await acc.append("INBOX", message(i))).uid for i in range(1, n + 1)]
    inbox = await acc.get_mailbox("INBOX")
    await acc.expunge(inbox.id, uids[:1])
    return uids[1:]


async def session(ctx: Context, *enable: str, select: bool = True) -> Client:
    c = Client(ctx)
    out = await c.login(USER)
    assert b" UIDONLY" in out, out
    if enable:
        out = await c.cmd("e ENABLE " + " ".join(enable))
        assert out.startswith(b"* ENABLED " + " ".join(enable).encode() + b"\r\n"), out
    if select:
        assert b"s OK" in await c.cmd("s SELECT INBOX")
    return c


def test_capability_and_enable(ctx: Context) -> None:
    async def go() -> None:
        c = Client(ctx)
        assert b"UIDONLY" not in await c.start()
        assert b"UIDONLY" in await c.cmd('l LOGIN uo@example.com "pw"')
        assert await c.cmd("e ENABLE UIDONLY") == b"* ENABLED UIDONLY\r\ne OK ENABLE completed\r\n"
        # Enabled once: a second ENABLE names nothing (RFC 5161 3.1).
        assert await c.cmd("e ENABLE UIDONLY") == b"* ENABLED\r\ne OK ENABLE completed\r\n"

    asyncio.run(go())


@pytest.mark.parametrize(
    "command",
    [
        "FETCH 1 (FLAGS)",
        "FETCH 1:* (UID)",
        "STORE 1 +FLAGS (\\Seen)",
        "SEARCH ALL",
        "SEARCH RETURN (COUNT) ALL",
        "COPY 1 Trash",
        "MOVE 1 Trash",
        "SORT (DATE) UTF-8 ALL",
        "THREAD REFERENCES UTF-8 ALL",
        "UID SEARCH 1:2",
        "UID SEARCH NOT 1",
        "UID SEARCH OR UID 2 (SEEN 1:*)",
        "UID SORT (DATE) UTF-8 2",
        "UID THREAD REFERENCES UTF-8 1:*",
        "ESEARCH 1",
        "ESEARCH IN (personal) 1:100",
        "SELECT INBOX (QRESYNC (1 1 (1,3 2,4)))",
    ],
)
def test_message_numbers_are_refused(ctx: Context, command: str) -> None:
    async def go() -> None:
        await mailbox(ctx)
        c = await session(ctx, "UIDONLY", "QRESYNC")
        out = await c.cmd("a " + command)
        assert out.startswith(b"a BAD [UIDREQUIRED] ") and out.count(b"\r\n") == 1, out
        # Nothing was done, the mailbox is still selected.
        assert (await c.cmd("n NOOP")) == b"n OK NOOP completed\r\n"
        assert b"n OK" in await c.cmd("n UID FETCH 2 (FLAGS)")

    asyncio.run(go())


def test_uid_forms_and_uid_sets_are_fine(ctx: Context) -> None:
    async def go() -> None:
        uids = await mailbox(ctx)
        c = await session(ctx, "UIDONLY")
        assert b"* SEARCH 2 3 4 5 6\r\n" in await c.cmd("a UID SEARCH UID 1:*")
        await c.cmd("b UID SEARCH RETURN (SAVE) UID 3:4")
        assert b"* SEARCH 3 4\r\n" in await c.cmd("c UID SEARCH $")
        assert b"* ESEARCH" in await c.cmd("d ESEARCH IN (personal) UID 2")
        out = await c.cmd("e UID SORT (SUBJECT) UTF-8 UID 2:3")
        assert b"* SORT 2 3\r\n" in out, out
        assert b"f OK" in await c.cmd(f"f UID COPY {uids[0]} Trash")
        assert b"g OK" in await c.cmd("g UID EXPUNGE 2")

    asyncio.run(go())


def test_replace_is_refused_and_its_literal_skipped(ctx: Context) -> None:
    async def go() -> None:
        await mailbox(ctx)
        c = await session(ctx, "UIDONLY")
        out = await c.send(b"a REPLACE 1 INBOX {5+}\r\nHi!\r\n\r\nb NOOP\r\n")
        assert out.startswith(b"a BAD [UIDREQUIRED] ") and out.endswith(b"b OK NOOP completed\r\n"), out
        out = await c.send(b"c UID REPLACE 2 INBOX {5+}\r\nHi!\r\n\r\n")
        assert b"* VANISHED 2\r\n" in out and b"c OK" in out and b"EXPUNGE" not in out, out

    asyncio.run(go())


def test_uid_fetch_answers_uidfetch(ctx: Context) -> None:
    async def go() -> None:
        await mailbox(ctx)
        c = await session(ctx, "UIDONLY")
        # The RFC's example response shape: "* 25996 UIDFETCH (FLAGS (...) ...)".
        out = await c.cmd("a UID FETCH 1:* (UID FLAGS)")
        assert out == b"".join(b"* %d UIDFETCH (FLAGS (\\Recent))\r\n" % u for u in range(2, 7)) + (
            b"a OK UID FETCH completed\r\n"
        ), out
        out = await c.cmd("b UID FETCH 3:4 (UID RFC822.SIZE)")
        assert out.startswith(b"* 3 UIDFETCH (RFC822.SIZE 30)\r\n* 4 UIDFETCH (RFC822.SIZE 30)\r\n"), out
        # UID alone stays: a response needs an item.
        assert (await c.cmd("c UID FETCH 5 (UID)")).startswith(b"* 5 UIDFETCH (UID 5)\r\n")
        out = await c.cmd("d UID FETCH 6 (BODY[TEXT])")
        assert out.startswith(b"* 6 UIDFETCH (BODY[TEXT] {8}\r\nbody 6\r\n FLAGS (\\Seen \\Recent))\r\n"), out
        out = await c.cmd("e UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)")
        assert b"* 2 UIDFETCH (FLAGS " in out and not re.search(rb"(?m)^\* \d+ FETCH", out), out

    asyncio.run(go())


def test_big_content_streams_as_uidfetch(ctx: Context) -> None:
    async def go() -> None:
        acc = await ctx.store.account(USER)
        await acc.append("INBOX", message(1))
        uid = (await acc.append("INBOX", message(2, 300_000))).uid
        c = await session(ctx, "UIDONLY")
        out = await c.cmd(f"a UID FETCH {uid} (BODY.PEEK[])")
        assert out.startswith(b"* %d UIDFETCH (BODY[] {" % uid) and out.endswith(b")\r\na OK UID FETCH completed\r\n")

    asyncio.run(go())


def test_store_and_condstore(ctx: Context) -> None:
    async def go() -> None:
        await mailbox(ctx)
        c = await session(ctx, "UIDONLY", "CONDSTORE")
        out = await c.cmd("a UID STORE 2,4 +FLAGS (\\Deleted)")
        assert re.fullmatch(
            rb"\* 2 UIDFETCH \(FLAGS \(\\Deleted \\Recent\) MODSEQ \(\d+\)\)\r\n"
            rb"\* 4 UIDFETCH \(FLAGS \(\\Deleted \\Recent\) MODSEQ \(\d+\)\)\r\na OK UID STORE completed\r\n",
            out,
        ), out
        out = await c.cmd("b UID STORE 3 +FLAGS.SILENT (\\Seen)")
        assert re.match(rb"\* 3 UIDFETCH \(MODSEQ \(\d+\)\)\r\nb OK", out), out
        out = await c.cmd("c UID STORE 3,5 (UNCHANGEDSINCE 1) +FLAGS (x)")
        assert b"c OK [MODIFIED 3,5]" in out, out

    asyncio.run(go())


def test_expunge_and_move_answer_vanished(ctx: Context) -> None:
    async def go() -> None:
        await mailbox(ctx)
        c = await session(ctx, "UIDONLY")
        await c.cmd("a UID STORE 2,4 +FLAGS.SILENT (\\Deleted)")
        assert await c.cmd("b EXPUNGE") == b"* VANISHED 2,4\r\nb OK EXPUNGE completed\r\n"
        out = await c.cmd("c UID MOVE 5:6 Trash")
        assert re.fullmatch(rb"\* OK \[COPYUID \d+ 5:6 1:2\] Moved UIDs\r\n\* VANISHED 5:6\r\nc OK UID MOVE completed\r\n", out), out
        assert b"* 2 EXISTS" not in out

    asyncio.run(go())


def test_select_has_no_unseen_number(ctx: Context) -> None:
    async def go() -> None:
        await mailbox(ctx)
        plain = await session(ctx)
        assert b"[UNSEEN 1]" in await plain.cmd("s SELECT INBOX")
        c = await session(ctx, "UIDONLY", select=False)
        out = await c.cmd("s SELECT INBOX")
        assert b"UNSEEN" not in out and b"* 5 EXISTS" in out, out

    asyncio.run(go())


def test_other_sessions_changes_after_noop_and_in_idle(ctx: Context) -> None:
    """The multi-session case: what another session changes reaches a UIDONLY session as
    UIDFETCH and VANISHED, at NOOP and during IDLE; EXISTS as before."""

    async def go() -> None:
        await mailbox(ctx)
        c = await session(ctx, "UIDONLY", "CONDSTORE")
        other = await session(ctx)
        await other.cmd("a STORE 2 +FLAGS (\\Flagged)")  # UID 3
        await other.cmd("b STORE 1,3 +FLAGS (\\Deleted)")  # UIDs 2, 4
        await other.cmd("c EXPUNGE")
        out = await c.cmd("n NOOP")
        assert re.search(rb"\* 3 UIDFETCH \(FLAGS \(\\Flagged \\Recent\) MODSEQ \(\d+\)\)\r\n", out), out
        assert b"* VANISHED 2,4\r\n" in out and b"EXPUNGE" not in out and b" FETCH " not in out, out
        # In IDLE.
        assert await c.cmd("i IDLE") == b"+ idling\r\n"
        await other.cmd("d UID STORE 5 +FLAGS (\\Deleted)")
        await other.cmd("e UID EXPUNGE 5")
        acc = await ctx.store.account(USER)
        await acc.append("INBOX", message(9))
        out = await c.changed()
        assert b"* VANISHED 5\r\n" in out and b"* 3 EXISTS\r\n" in out, out
        assert await c.cmd("DONE") == b"i OK IDLE terminated\r\n"
        # Without UIDONLY, the other session still has EXPUNGE.
        await c.cmd("f UID STORE 3 +FLAGS.SILENT (\\Deleted)")
        await c.cmd("g UID EXPUNGE 3")
        assert b"* 1 EXPUNGE\r\n" in await other.cmd("h NOOP")

    asyncio.run(go())


def test_qresync_select(ctx: Context) -> None:
    async def go() -> None:
        await mailbox(ctx)
        c = await session(ctx, "UIDONLY", "QRESYNC")
        out = await c.cmd("u UNSELECT")
        other = await session(ctx)
        out = await other.cmd("s SELECT INBOX")
        uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", out).group(1))  # type: ignore[union-attr]
        modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", out).group(1))  # type: ignore[union-attr]
        await other.cmd("a UID STORE 3 +FLAGS (\\Answered)")
        await other.cmd("b UID STORE 5 +FLAGS (\\Deleted)")
        await other.cmd("c UID EXPUNGE 5")
        out = await c.cmd(f"s SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:6))")
        assert b"* VANISHED (EARLIER) 5\r\n" in out, out
        assert re.search(rb"\* 3 UIDFETCH \(FLAGS \(\\Answered\) MODSEQ \(\d+\)\)\r\n", out), out
        assert not re.search(rb"(?m)^\* \d+ FETCH", out) and b"UID 3" not in out
        # The sequence match data are message numbers: refused, the selection kept.
        out = await c.cmd(f"t SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:6 (1 2)))")
        assert out.startswith(b"t BAD [UIDREQUIRED] "), out
        assert b"v OK" in await c.cmd("v UID FETCH 2 (FLAGS)")

    asyncio.run(go())


def test_enable_while_selected_and_unauthenticate(ctx: Context) -> None:
    async def go() -> None:
        await mailbox(ctx)
        c = await session(ctx)
        assert b"* 1 FETCH (UID 2 FLAGS" in await c.cmd("a UID FETCH 2 (FLAGS)")
        await c.cmd("e ENABLE UIDONLY")
        assert b"* 2 UIDFETCH (FLAGS" in await c.cmd("b UID FETCH 2 (FLAGS)")
        assert b"c OK" in await c.cmd("c UNAUTHENTICATE")
        await c.cmd('l LOGIN uo@example.com "pw"')
        await c.cmd("s SELECT INBOX")
        assert b"d OK" in await c.cmd("d FETCH 1 (FLAGS)")

    asyncio.run(go())


# --- a real server: two connections ------------------------------------------------------------


def test_vanished_reaches_an_idling_session_over_a_socket(server: ServerProcess) -> None:
    server.add_user(USER, "pw")

    def connect() -> tuple[socket.socket, object]:
        sock = socket.create_connection(("127.0.0.1", server.port("imap")), timeout=30)
        f = sock.makefile("rb")
        f.readline()
        return sock, f

    def command(sock: socket.socket, f: object, line: bytes, tag: bytes) -> list[bytes]:
        sock.sendall(line + b"\r\n")
        out = []
        while not (got := f.readline()).startswith(tag + b" "):  # type: ignore[attr-defined]
            out.append(got)
        assert got.startswith(tag + b" OK"), (line, got, out)
        return out

    a, fa = connect()
    b, fb = connect()
    try:
        for sock, f in ((a, fa), (b, fb)):
            command(sock, f, b"l LOGIN uo@example.com pw", b"l")
        parts = b"".join(b" {%d+}\r\n" % len(message(i)) + message(i) for i in range(4))
        command(b, fb, b"p APPEND INBOX" + parts, b"p")
        command(a, fa, b"e ENABLE UIDONLY", b"e")
        command(a, fa, b"s SELECT INBOX", b"s")
        command(b, fb, b"s SELECT INBOX", b"s")
        a.sendall(b"i IDLE\r\n")
        assert fa.readline() == b"+ idling\r\n"  # type: ignore[attr-defined]
        command(b, fb, b"d STORE 2:3 +FLAGS.SILENT (\\Deleted)", b"d")
        assert b"* 2 EXPUNGE\r\n" in command(b, fb, b"x EXPUNGE", b"x")
        # The flag change first (as UIDFETCH), then the expunge (as VANISHED).
        seen = []
        while (line := fa.readline()) != b"* VANISHED 2:3\r\n":  # type: ignore[attr-defined]
            seen.append(line)
        assert seen and all(re.fullmatch(rb"\* [23] UIDFETCH \(FLAGS \([^)]*\)\)\r\n", ln) for ln in seen), seen
        a.sendall(b"DONE\r\n")
        assert fa.readline() == b"i OK IDLE terminated\r\n"  # type: ignore[attr-defined]
        out = command(a, fa, b"f UID FETCH 1:* (FLAGS)", b"f")
        assert out == [b"* 1 UIDFETCH (FLAGS (\\Recent))\r\n", b"* 4 UIDFETCH (FLAGS (\\Recent))\r\n"], out
    finally:
        a.close()
        b.close()
