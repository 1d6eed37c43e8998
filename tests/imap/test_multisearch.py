"""ESEARCH (RFC 7377 MULTISEARCH): the source options, one ESEARCH response with TAG,
MAILBOX and UIDVALIDITY per mailbox with a match and none for one without, UIDs always,
RETURN options as in SEARCH, the errors the RFC names, the limit on mailboxes searched,
and the work done a mailbox at a time."""

from __future__ import annotations

import asyncio
import imaplib
import re
from pathlib import Path

import pytest

from letterbox.imap.grammar import ParseError, Search
from letterbox.imap.grammar.esearch import ESearch, Source
from letterbox.imap.grammar.reader import CommandReader
from letterbox.service.context import Context
from letterbox.store.api import AccountStore
from tests.conftest import ServerProcess

from .imaputil import Client, add_user, make_context

USER = "multi@example.com"
RESPONSE = re.compile(rb'\* ESEARCH \(TAG "([^"]*)" MAILBOX ("?[^" ]*"?) UIDVALIDITY (\d+)\) UID (.*)')


def message(subject: str, body: str = "text") -> bytes:
    return f"Subject: {subject}\r\nFrom: someone@example.org\r\n\r\n{body}\r\n".encode()


def context(tmp_path: Path, **imap: object) -> Context:
    ctx = make_context(tmp_path, **imap)
    add_user(ctx, USER)
    return ctx


async def account(ctx: Context) -> AccountStore:
    return await ctx.store.account(USER)


async def client(ctx: Context) -> Client:
    c = Client(ctx)
    out = await c.login(USER)
    assert b" MULTISEARCH " in out, out
    return c


def results(out: bytes, tag: str) -> dict[str, bytes]:
    """Mailbox name -> the result data of each of *tag*'s ESEARCH responses, checked to be
    the only response for its mailbox."""
    found: dict[str, bytes] = {}
    for line in out.split(b"\r\n"):
        m = RESPONSE.fullmatch(line)
        if m is None or m.group(1) != tag.encode():
            continue
        name = m.group(2).strip(b'"').decode()
        assert name not in found, out
        found[name] = m.group(4)
    return found


async def fill(acc: AccountStore, mailbox: str, *messages: bytes, flags: tuple[str, ...] = ()) -> list[int]:
    if mailbox != "INBOX":
        try:
            await acc.create_mailbox(mailbox)
        except Exception:  # noqa: BLE001 - it may exist (a parent made earlier)
            pass
    return [(await acc.append(mailbox, m, list(flags))).uid for m in messages]


# --- the RFC's examples ---------------------------------------------------------------


def test_rfc7377_section3_example(tmp_path: Path) -> None:
    """Two pipelined ESEARCHes; "subtree" reaches folder2's grandchildren, "subtree-one"
    only its children, and a mailbox without a match gets no response."""

    async def go() -> None:
        ctx = context(tmp_path)
        acc = await account(ctx)
        await fill(acc, "folder1", message("chad"), message("other"), message("chad"), flags=())
        await fill(acc, "folder2", message("seen"), flags=("\\Seen",))
        await fill(acc, "folder2/banana", message("x"), message("chad"))
        await fill(acc, "folder2/peach", message("y"), flags=("\\Seen",))
        await fill(acc, "folder2/salmon", message("chad"))
        await fill(acc, "folder2/salmon/deep", message("chad"))
        uv = {m.name: m.uidvalidity for m in await acc.list_mailboxes()}
        c = await client(ctx)
        out = await c.send(
            b'tag1 ESEARCH IN (mailboxes "folder1" subtree "folder2") unseen\r\n'
            b'tag2 ESEARCH IN (mailboxes "folder1" subtree-one "folder2") subject "chad"\r\n'
        )
        assert results(out, "tag1") == {
            "folder1": b"ALL 1:3",
            "folder2/banana": b"ALL 1:2",
            "folder2/salmon": b"ALL 1",
            "folder2/salmon/deep": b"ALL 1",
        }
        assert results(out, "tag2") == {
            "folder1": b"ALL 1,3",
            "folder2/banana": b"ALL 2",
            "folder2/salmon": b"ALL 1",
        }
        for line in out.split(b"\r\n"):
            if m := RESPONSE.fullmatch(line):
                assert int(m.group(3)) == uv[m.group(2).strip(b'"').decode()]
        assert out.index(b"tag1 OK ") < out.index(b'(TAG "tag2"') and out.endswith(b"tag2 OK ESEARCH completed\r\n")

    asyncio.run(go())


def test_rfc7377_section2_rolling_window(tmp_path: Path) -> None:
    # "C: tag1 UID ESEARCH FROM "frobozz" 1:100" then 101:200: never an error, however
    # many messages the mailbox has; the numbers are positions, the answers UIDs.
    async def go() -> None:
        ctx = context(tmp_path)
        acc = await account(ctx)
        msgs = [message(f"m{i}").replace(b"someone", b"frobozz" if i % 2 else b"other") for i in range(150)]
        uids = await fill(acc, "INBOX", *msgs)
        inbox = await acc.get_mailbox("INBOX")
        await acc.expunge(inbox.id, uids[:10])  # positions and UIDs differ from now on
        c = await client(ctx)
        await c.cmd("s SELECT INBOX")
        first = results(await c.cmd('tag1 UID ESEARCH FROM "frobozz" 1:100'), "tag1")
        second = results(await c.cmd('tag1 ESEARCH FROM "frobozz" 101:200'), "tag1")
        third = await c.cmd('tag1 ESEARCH FROM "frobozz" 201:300')
        left = uids[10:]
        odd = {u for i, u in enumerate(uids) if i % 2}
        want1 = [u for u in left[:100] if u in odd]
        want2 = [u for u in left[100:] if u in odd]
        assert first["INBOX"] == b"ALL " + ",".join(map(str, want1)).encode()
        assert second["INBOX"] == b"ALL " + ",".join(map(str, want2)).encode()
        assert third == b"tag1 OK ESEARCH completed\r\n"

    asyncio.run(go())


# --- sources ----------------------------------------------------------------------------


def test_every_source_option(tmp_path: Path) -> None:
    async def go() -> None:
        ctx = context(tmp_path)
        acc = await account(ctx)
        for name in ("INBOX", "Archive", "Work", "Work/A", "Work/A/B", "Work/C", "Worker"):
            await fill(acc, name, message("hit"))
        await acc.set_subscribed("Work/C", True)
        await acc.set_subscribed("Gone", True)  # subscribed, no such mailbox: passed over
        c = await client(ctx)

        async def names(sources: str) -> set[str]:
            out = await c.cmd(f"e ESEARCH IN ({sources}) SUBJECT hit")
            assert out.endswith(b"e OK ESEARCH completed\r\n"), out
            return set(results(out, "e"))

        every = {"INBOX", "Archive", "Work", "Work/A", "Work/A/B", "Work/C", "Worker"}
        assert await names("personal") == every
        assert await names("inboxes") == {"INBOX"}
        subscribed = {m.name for m in await acc.list_mailboxes() if m.subscribed}
        assert "Work/C" in subscribed and await names("subscribed") == subscribed & every
        assert await names("subtree Work") == {"Work", "Work/A", "Work/A/B", "Work/C"}
        assert await names("SUBTREE-ONE Work") == {"Work", "Work/A", "Work/C"}
        assert await names('mailboxes (Worker "Work/A" Nowhere) mailboxes inbox') == {"Worker", "Work/A", "INBOX"}
        assert await names("subtree-one (Work/A Archive)") == {"Work/A", "Work/A/B", "Archive"}
        # No wildcards (RFC 5465 6.6).
        assert await names('mailboxes "W*"') == set()
        # A filter given thousands of times is one filter.
        assert await names("personal " * 3000 + "mailboxes (" + "Work " * 3000 + "Work)") == every
        # Duplicates are searched once.
        out = await c.cmd("d ESEARCH IN (personal inboxes mailboxes INBOX subtree INBOX) SUBJECT hit")
        assert out.count(b"MAILBOX INBOX ") == 1, out

    asyncio.run(go())


def test_selected_state_and_the_selected_mailbox(tmp_path: Path) -> None:
    async def go() -> None:
        ctx = context(tmp_path)
        acc = await account(ctx)
        uids = await fill(acc, "INBOX", message("a"), message("b"), message("c"))
        await fill(acc, "Archive", message("a"))
        c = await client(ctx)
        # Without IN, the selected mailbox is meant: BAD in the authenticated state (2.2).
        assert (await c.cmd("x ESEARCH ALL")).startswith(b"x BAD ")
        assert (await c.cmd("x ESEARCH IN (selected archive) ALL")).startswith(b"x BAD ")
        await c.cmd("s SELECT INBOX")
        # Another session expunges a message: this session has not been told, and does
        # not find it (as its SEARCH would not).
        other = Client(ctx)
        await other.login(USER)
        await other.cmd("s SELECT INBOX")
        await other.cmd(f"t UID STORE {uids[1]} +FLAGS (\\Deleted)")
        await other.cmd("e EXPUNGE")
        out = await c.cmd("a ESEARCH ALL")
        assert results(out, "a") == {"INBOX": f"ALL {uids[0]},{uids[2]}".encode()}, out
        assert b"* 2 EXPUNGE" in out  # UIDs only: the expunge may follow (like UID SEARCH)
        out = await c.cmd("b ESEARCH IN (selected personal) SUBJECT a")
        assert results(out, "b") == {"INBOX": f"ALL {uids[0]}".encode(), "Archive": b"ALL 1"}
        # The ESEARCH leaves the selection as it was.
        assert b"f OK" in await c.cmd("f FETCH 1 (UID)")

    asyncio.run(go())


# --- return options -----------------------------------------------------------------------


def test_return_options_per_mailbox(tmp_path: Path) -> None:
    async def go() -> None:
        ctx = context(tmp_path)
        acc = await account(ctx)
        await fill(acc, "INBOX", message("x"), message("hit"), message("hit"), message("hit"))
        await fill(acc, "Archive", message("hit"))
        await fill(acc, "Trash", message("miss"))
        c = await client(ctx)
        out = await c.cmd("r ESEARCH IN (personal) RETURN (MIN MAX COUNT) SUBJECT hit")
        # 2.1: no response for Trash, not even COUNT 0.
        assert results(out, "r") == {"INBOX": b"MIN 2 MAX 4 COUNT 3", "Archive": b"MIN 1 MAX 1 COUNT 1"}, out
        assert results(await c.cmd("r ESEARCH IN (personal) RETURN () SUBJECT hit"), "r")["INBOX"] == b"ALL 2:4"
        # No match anywhere: no ESEARCH response at all.
        assert await c.cmd("n ESEARCH IN (personal) SUBJECT nowhere") == b"n OK ESEARCH completed\r\n"
        out = await c.cmd("m ESEARCH IN (personal) MODSEQ 1 SUBJECT hit")
        assert re.search(rb'MAILBOX INBOX UIDVALIDITY \d+\) UID ALL 2:4 MODSEQ \d+\r\n', out), out
        # SAVE: only with the selected mailbox as the sole source (2.2).
        assert (await c.cmd("v ESEARCH IN (personal) RETURN (SAVE) ALL")).startswith(b"v BAD ")
        await c.cmd("s SELECT INBOX")
        assert (await c.cmd("v ESEARCH IN (selected inboxes) RETURN (SAVE) ALL")).startswith(b"v BAD ")
        assert await c.cmd("v ESEARCH IN (selected) RETURN (SAVE) SUBJECT hit") == b"v OK ESEARCH completed\r\n"
        out = await c.cmd("w UID SEARCH UID $")
        assert b"* SEARCH 2 3 4\r\n" in out, out
        out = await c.cmd("w ESEARCH RETURN (SAVE MIN) SUBJECT hit")
        assert results(out, "w") == {"INBOX": b"MIN 2"}
        assert b"* SEARCH 2\r\n" in await c.cmd("w UID SEARCH $")
        # $ means the selected mailbox's result: not for others.
        assert (await c.cmd("y ESEARCH IN (personal) $")).startswith(b"y BAD ")
        assert results(await c.cmd("y ESEARCH IN (selected) $"), "y") == {"INBOX": b"ALL 2"}

    asyncio.run(go())


# --- errors and limits --------------------------------------------------------------------


def test_errors(tmp_path: Path) -> None:
    async def go() -> None:
        ctx = context(tmp_path, max_search_mailboxes=3)
        acc = await account(ctx)
        for name in ("A", "B", "C"):
            await fill(acc, name, message("x"))
        c = await client(ctx)
        for bad in (
            "ESEARCH IN (selected-delayed) ALL",  # 2.2
            "ESEARCH IN (everything) ALL",
            "ESEARCH IN (personal (SCOPE 1)) ALL",  # no scope option is defined
            "ESEARCH IN () ALL",
            "ESEARCH IN (subtree) ALL",
            "ESEARCH IN personal ALL",
            "ESEARCH IN (personal) RETURN (PARTIAL 1:5) ALL",
            "ESEARCH IN (personal)",
        ):
            out = await c.cmd("b " + bad)
            assert out.startswith(b"b BAD ") and out.count(b"\r\n") == 1, (bad, out)
        out = await c.cmd("c ESEARCH IN (personal) CHARSET KOI8-R ALL")
        assert out.startswith(b"c NO [BADCHARSET "), out
        # 2.4: more mailboxes than one ESEARCH may search: NO [LIMIT], none searched.
        out = await c.cmd("l ESEARCH IN (personal) ALL")
        assert out.startswith(b"l NO [LIMIT] ") and b"ESEARCH (" not in out, out
        out = await c.cmd("l ESEARCH IN (mailboxes (A B) subtree C) ALL")
        assert len(results(out, "l")) == 3, out
        await c.cmd("u ENABLE UTF8=ACCEPT")
        assert (await c.cmd("u ESEARCH IN (mailboxes A) CHARSET UTF-8 ALL")).startswith(b"u BAD ")

    asyncio.run(go())


def test_mailbox_names_as_the_session_spells_them(tmp_path: Path) -> None:
    async def go() -> None:
        ctx = context(tmp_path)
        acc = await account(ctx)
        await fill(acc, "Müll", message("x"))
        c = await client(ctx)
        out = await c.cmd("a ESEARCH IN (mailboxes M&APw-ll) ALL")
        assert b"MAILBOX M&APw-ll UIDVALIDITY " in out, out
        await c.cmd("e ENABLE UTF8=ACCEPT")
        out = await c.cmd('a ESEARCH IN (mailboxes "Müll") ALL'.encode())
        assert 'MAILBOX "Müll" UIDVALIDITY '.encode() in out, out

    asyncio.run(go())


def test_progress_counts_mailboxes_and_answers_go_out_between(tmp_path: Path) -> None:
    async def go() -> None:
        ctx = context(tmp_path, progress_interval=0)
        acc = await account(ctx)
        for name in ("A", "B", "C", "D"):
            await fill(acc, name, message("x"))
        c = await client(ctx)
        flushes = 0
        real = c.session.flush

        async def counted(now: bool = False) -> None:
            nonlocal flushes
            flushes += 1
            await real(now)

        c.session.flush = counted  # type: ignore[method-assign]
        out = await c.cmd("p ESEARCH IN (mailboxes (A B C D)) SUBJECT x")
        lines = [ln for ln in out.split(b"\r\n") if ln]
        kinds = [b"N" if b"INPROGRESS" in ln else b"E" if ln.startswith(b"* ESEARCH") else b"T" for ln in lines]
        # With a notice at every step: one before each mailbox, "n of 4", n = mailboxes
        # done; each mailbox's answer goes out before the next is searched.
        assert b"".join(kinds) == b"NENENENET", out
        notices = [ln for ln in lines if b"INPROGRESS" in ln]
        assert [re.search(rb'\("p" (\d+) 4\)', ln).group(1) for ln in notices] == [b"0", b"1", b"2", b"3"]  # type: ignore[union-attr]
        assert flushes >= 4

    asyncio.run(go())


# --- the grammar ----------------------------------------------------------------------------


def parse(line: bytes) -> object:
    reader = CommandReader()
    reader.feed(line + b"\r\n")
    return reader.next_event()


def test_grammar() -> None:
    e = parse(b'a esearch in (Mailboxes ("x y" {1+}\r\nz) SUBTREE-ONE INBOX personal) return (count) charset utf-8 ALL SEEN')
    assert isinstance(e, ESearch), e
    assert e.sources == (Source("MAILBOXES", (b"x y", b"z")), Source("SUBTREE-ONE", (b"INBOX",)), Source("PERSONAL"))
    assert e.return_options == ("COUNT",) and e.charset == "UTF-8" and not e.uid
    e = parse(b"a UID ESEARCH FROM x 1:100")
    assert isinstance(e, ESearch) and e.uid and e.sources == ()
    e = parse(b"a ESEARCH INBOX")  # not IN: no search key INBOX
    assert isinstance(e, ParseError)
    assert isinstance(parse(b"a SEARCH RETURN (COUNT) CHARSET UTF-8 ALL"), Search)


# --- a real server ------------------------------------------------------------------------


def test_imaplib_over_a_socket(server: ServerProcess) -> None:
    server.add_user(USER, "pw")
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    try:
        c.login(USER, "pw")
        assert b"MULTISEARCH" in c.capability()[1][0].split()
        assert c.create("Lists")[0] == "OK" and c.create("Lists/dev")[0] == "OK"
        for box, subject in (("INBOX", "hello"), ("Lists", "nope"), ("Lists/dev", "hello there")):
            assert c.append(box, "", imaplib.Time2Internaldate(0), message(subject))[0] == "OK"
        tag = c._new_tag().decode()
        c.send(f'{tag} ESEARCH IN (personal) RETURN (COUNT) SUBJECT "hello"\r\n'.encode())
        lines = []
        while not (line := c.readline()).startswith(tag.encode()):
            lines.append(line)
        assert line.startswith(f"{tag} OK".encode())
        got = sorted(re.sub(rb"UIDVALIDITY \d+", b"UIDVALIDITY n", ln) for ln in lines)
        assert got == [
            f'* ESEARCH (TAG "{tag}" MAILBOX INBOX UIDVALIDITY n) UID COUNT 1\r\n'.encode(),
            f'* ESEARCH (TAG "{tag}" MAILBOX Lists/dev UIDVALIDITY n) UID COUNT 1\r\n'.encode(),
        ], lines
    finally:
        c.logout()


@pytest.mark.parametrize("command", [b"ESEARCH IN (personal) ALL", b"ESEARCH ALL"])
def test_not_before_login(tmp_path: Path, command: bytes) -> None:
    async def go() -> None:
        c = Client(context(tmp_path))
        await c.start()
        assert (await c.cmd(b"a " + command)).startswith(b"a BAD ")

    asyncio.run(go())
