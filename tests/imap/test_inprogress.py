"""INPROGRESS (RFC 9585): long commands (SEARCH, SORT, THREAD, FETCH, STORE, COPY, MOVE,
EXPUNGE) send ``* OK [INPROGRESS ("tag" count total)]`` while they run, at most one per
`[imap] progress_interval`, between whole responses; quick ones send none.

The batch sizes are made small here so that a few dozen messages make a long command, and
the interval 0 (a notice at every step) so that no test depends on how fast it runs."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import pytest

from letterbox.imap import fetch as fetch_module
from letterbox.imap import progress as progress_module
from letterbox.imap import search as search_module
from letterbox.imap import selected as selected_module
from letterbox.imap import sort as sort_module
from letterbox.service.context import Context
from letterbox.store.maildir import account as account_module
from tests.conftest import ServerProcess

from .imaputil import Client, add_user, make_context

USER = "slow@example.com"
N = 20
NOTICE = re.compile(rb'\* OK \[INPROGRESS \((NIL|"[^"]*") (NIL|\d+) (NIL|\d+)\)\] [^\r\n]+')


def message(n: int) -> bytes:
    return b"Subject: message %d\r\nFrom: a%d@example.org\r\n\r\nbody %d needle\r\n" % (n, n % 3, n)


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_module, "_FETCH_ROWS", 7)
    monkeypatch.setattr(fetch_module, "_BATCH_ROWS", 3)
    monkeypatch.setattr(search_module, "_YIELD_EVERY", 4)
    monkeypatch.setattr(sort_module, "CHUNK", 5)
    monkeypatch.setattr(selected_module, "_STORE_CHUNK", 6)
    monkeypatch.setattr(account_module, "_COPY_BATCH", 6)
    monkeypatch.setattr(account_module, "_EXPUNGE_BATCH", 6)


def context(tmp_path: Path, **imap: object) -> Context:
    ctx = make_context(tmp_path, **imap)
    add_user(ctx, USER)
    return ctx


async def client(ctx: Context, n: int = N) -> Client:
    acc = await ctx.store.account(USER)
    for i in range(1, n + 1):
        await acc.append("INBOX", message(i))
    c = Client(ctx)
    await c.login(USER)
    assert b"s OK" in await c.cmd("s SELECT INBOX")
    return c


def notices(out: bytes, tag: str) -> list[tuple[int | None, int | None]]:
    """(count, total) of each notice in *out*, checked: for *tag*, before its tagged
    answer, a line of its own, the count below the total."""
    lines = out.split(b"\r\n")
    end = next(i for i, ln in enumerate(lines) if ln.startswith(tag.encode() + b" "))
    found = []
    for i, line in enumerate(lines):
        if b"INPROGRESS" not in line:
            continue
        m = NOTICE.fullmatch(line)
        assert m is not None, line
        assert i < end, out
        want = b"NIL" if "]" in tag else b'"' + tag.encode() + b'"'
        assert m.group(1) == want, line
        count = None if m.group(2) == b"NIL" else int(m.group(2))
        total = None if m.group(3) == b"NIL" else int(m.group(3))
        if count is not None and total is not None:
            assert 0 <= count < total, line
        found.append((count, total))
    return found


def test_advertised_and_quiet_for_quick_commands(tmp_path: Path) -> None:
    async def go() -> None:
        c = await client(context(tmp_path))
        assert b" INPROGRESS" in await c.cmd("c CAPABILITY")
        for command in ("UID FETCH 1:* (FLAGS ENVELOPE BODY.PEEK[])", "SEARCH BODY needle", "UID SORT (SUBJECT) UTF-8 ALL",
                        "STORE 1:* +FLAGS (x)", "COPY 1:* Archive", "MOVE 1:5 Trash"):
            out = await c.cmd("q " + command)
            assert b"q OK" in out and b"INPROGRESS" not in out, out

    asyncio.run(go())


def test_fetch(tmp_path: Path, small_batches: None) -> None:
    async def go() -> None:
        c = await client(context(tmp_path, progress_interval=0))
        for command in ("UID FETCH 1:* (FLAGS ENVELOPE)", "FETCH 1:* (UID BODY.PEEK[TEXT])", "FETCH 1:* (FLAGS)"):
            out = await c.cmd("A7 " + command)
            found = notices(out, "A7")
            assert len(found) >= 3, out
            counts = [count for count, _ in found]
            assert counts == sorted(counts) and {total for _, total in found} == {N}, found
            # Every response whole: the notices come between them.
            assert len(re.findall(rb"(?m)^\* \d+ FETCH \(", out)) == N, out

    asyncio.run(go())


def test_search_sort_thread(tmp_path: Path, small_batches: None) -> None:
    async def go() -> None:
        c = await client(context(tmp_path, progress_interval=0))
        out = await c.cmd("s1 SEARCH BODY needle")
        assert notices(out, "s1") and b"* SEARCH " + b" ".join(b"%d" % i for i in range(1, N + 1)) in out
        out = await c.cmd("s2 UID SORT (FROM SUBJECT) UTF-8 ALL")
        assert notices(out, "s2") and b"s2 OK" in out
        out = await c.cmd("s3 THREAD REFERENCES UTF-8 ALL")
        assert notices(out, "s3") and b"s3 OK" in out

    asyncio.run(go())


def test_store_copy_move_expunge(tmp_path: Path, small_batches: None) -> None:
    async def go() -> None:
        c = await client(context(tmp_path, progress_interval=0))
        out = await c.cmd("t1 STORE 1:* +FLAGS (\\Flagged)")
        found = notices(out, "t1")
        assert found and all(total == N for _, total in found), out
        assert len(re.findall(rb"(?m)^\* \d+ FETCH \(FLAGS \(\\Flagged[^)]*\)\)", out)) == N, out
        out = await c.cmd("t2 COPY 1:* Archive")
        assert notices(out, "t2") and b"t2 OK [COPYUID " in out, out
        out = await c.cmd("t3 UID MOVE 1:10 Trash")
        assert notices(out, "t3") and out.count(b" EXPUNGE\r\n") == 10, out
        await c.cmd("t4 STORE 1:* +FLAGS.SILENT (\\Deleted)")
        out = await c.cmd("t5 EXPUNGE")
        assert notices(out, "t5") and out.count(b" EXPUNGE\r\n") == N - 10, out
        acc = await c.session.ctx.store.account(USER)
        assert (await acc.status("Archive")).messages == N and (await acc.status("Trash")).messages == 10
        assert (await acc.status("INBOX")).messages == 0

    asyncio.run(go())


def test_notices_are_timed(tmp_path: Path, small_batches: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """One notice per interval however many steps: a frozen clock gives none, a clock
    that moves 4 s per look one about every third step (interval 10 s)."""
    now = [1000.0]
    step = [0.0]

    def clock() -> float:
        now[0] += step[0]
        return now[0]

    monkeypatch.setattr(progress_module, "_clock", clock)

    async def go() -> None:
        c = await client(context(tmp_path, progress_interval=10))
        out = await c.cmd("f1 FETCH 1:* (FLAGS ENVELOPE)")
        assert notices(out, "f1") == []
        step[0] = 4.0
        out = await c.cmd("f2 FETCH 1:* (FLAGS ENVELOPE)")
        found = notices(out, "f2")
        steps = N // 3 + N // 7 + 2  # index batches and row chunks
        assert 0 < len(found) < steps, out

    asyncio.run(go())


def test_a_tag_with_a_bracket_is_nil(tmp_path: Path, small_batches: None) -> None:
    # "]" would end the response code inside the quoted tag for many parsers.
    async def go() -> None:
        c = await client(context(tmp_path, progress_interval=0))
        out = await c.cmd("a]1 FETCH 1:* (FLAGS ENVELOPE)")
        assert notices(out, "a]1")

    asyncio.run(go())


def test_notice_wording() -> None:
    class Fake:
        class settings:  # noqa: N801 - stands in for IMAPSettings
            progress_interval = 10.0

    p = progress_module.Progress(Fake(), "A1")  # type: ignore[arg-type]
    assert p.notice() == b'* OK [INPROGRESS ("A1" NIL NIL)] Still working\r\n'
    p.done = 5
    assert p.notice() == b'* OK [INPROGRESS ("A1" 5 NIL)] 5 done\r\n'
    p.total = 5
    assert p.notice() == b'* OK [INPROGRESS ("A1" 4 5)] 4 of 5 done\r\n'


# --- a real server ------------------------------------------------------------------------


def test_search_over_a_socket(make_server: object) -> None:
    srv: ServerProcess = make_server(imap_extra="progress_interval = 0")  # type: ignore[operator]
    srv.add_user(USER, "pw")
    with socket.create_connection(("127.0.0.1", srv.port("imap")), timeout=30) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b'l LOGIN slow@example.com pw\r\n')
        assert f.readline().startswith(b"l OK")
        # 250 messages in one MULTIAPPEND: a BODY search reads them 100 at a time.
        parts = b"".join(b" {%d+}\r\n" % len(message(i)) + message(i) for i in range(250))
        sock.sendall(b"a APPEND INBOX" + parts + b"\r\ns SELECT INBOX\r\nq SEARCH BODY needle\r\n")
        lines = []
        while not (line := f.readline()).startswith(b"q "):
            lines.append(line)
        assert line.startswith(b"q OK"), line
        found = [ln for ln in lines if NOTICE.fullmatch(ln.rstrip(b"\r\n"))]
        assert found and all(b'("q" ' in ln for ln in found), lines
