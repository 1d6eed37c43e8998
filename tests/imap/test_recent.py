"""\\Recent with several sessions on one mailbox (IMAP4rev1 only).

RFC 3501 2.3.1.2: a message is \\Recent in the first session told of it, and if that
session is read-write, in no later one. RFC 3501 6.3.2: EXAMINE answers as SELECT does
and takes \\Recent from nobody.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import pytest

from letterbox.service.context import Context
from letterbox.store.maildir.account import INDEX_FILE, MaildirAccount

from .imaputil import Client, add_user, make_context

MSG = b"From: a@example.org\r\nSubject: r\r\n\r\nbody\r\n"
USER = "rec@example.com"


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    c = make_context(tmp_path)
    add_user(c, USER)
    return c


async def deliver(ctx: Context, n: int = 1) -> None:
    acc = await ctx.store.account(USER)
    for _ in range(n):
        await acc.append("INBOX", MSG)


def recent_count(out: bytes) -> int | None:
    m = re.search(rb"\* (\d+) RECENT\r\n", out)
    return int(m.group(1)) if m else None


def recent_uids(out: bytes) -> set[int]:
    return {int(u) for u in re.findall(rb"UID (\d+) FLAGS \([^)]*\\Recent", out)}


async def session(ctx: Context, select: str = "SELECT") -> tuple[Client, bytes]:
    c = Client(ctx)
    await c.login(USER)
    return c, await c.cmd(f"s {select} INBOX")


def test_new_mail_is_recent_in_one_of_several_selecting_sessions(ctx: Context) -> None:
    async def go() -> None:
        await deliver(ctx, 2)
        a, out_a = await session(ctx)
        b, out_b = await session(ctx)
        assert recent_count(out_a) == 2 and recent_count(out_b) == 0
        await deliver(ctx)
        # Both are told of message 3; only the first to be told has it as \Recent.
        out_b = await b.cmd("n NOOP")
        out_a = await a.cmd("n NOOP")
        assert b"* 3 EXISTS" in out_a and b"* 3 EXISTS" in out_b
        assert recent_count(out_b) == 1 and recent_count(out_a) == 2
        assert recent_uids(await a.cmd("f UID FETCH 1:* (UID FLAGS)")) == {1, 2}
        assert recent_uids(await b.cmd("f UID FETCH 1:* (UID FLAGS)")) == {3}
        assert (await a.cmd("r SEARCH RECENT")).startswith(b"* SEARCH 1 2\r\n")
        assert (await b.cmd("r SEARCH RECENT")).startswith(b"* SEARCH 3\r\n")
        # Then A is first for message 4: its recent messages are no longer one run.
        await deliver(ctx)
        out_a = await a.cmd("n NOOP")
        out_b = await b.cmd("n NOOP")
        assert recent_count(out_a) == 3 and recent_count(out_b) == 1
        assert recent_uids(await a.cmd("f UID FETCH 1:* (UID FLAGS)")) == {1, 2, 4}
        assert (await a.cmd("r SEARCH NOT RECENT")).startswith(b"* SEARCH 3\r\n")
        out = await a.cmd("f FETCH 1:4 FLAGS")  # the bulk FLAGS path
        assert out.count(b"\\Recent") == 3 and b"* 3 FETCH (FLAGS ())" in out

    asyncio.run(go())


def test_examine_shows_recent_as_select_would_and_takes_nothing(ctx: Context) -> None:
    async def go() -> None:
        await deliver(ctx, 2)
        e, out = await session(ctx, "EXAMINE")
        watcher = Client(ctx)
        await watcher.login(USER)
        status = await watcher.cmd("t STATUS INBOX (RECENT)")
        # RFC 3501 6.3.2: EXAMINE reports the RECENT that SELECT would, STATUS agrees.
        assert recent_count(out) == 2 and b"RECENT 2" in status
        await deliver(ctx)
        assert recent_count(await e.cmd("n NOOP")) == 3
        s, out = await session(ctx)  # the first read-write session still gets all three
        assert recent_count(out) == 3
        assert b"RECENT 0" in await watcher.cmd("t STATUS INBOX (RECENT)")

    asyncio.run(go())


def test_rev2_sessions_have_no_recent_and_take_none(ctx: Context) -> None:
    async def go() -> None:
        await deliver(ctx)
        c = Client(ctx)
        await c.login(USER)
        await c.cmd("e ENABLE IMAP4rev2")
        out = await c.cmd("s SELECT INBOX")
        assert b"RECENT" not in out
        await deliver(ctx)
        out = await c.cmd("n NOOP")
        assert b"* 2 EXISTS" in out and b"RECENT" not in out
        _, out = await session(ctx)  # a rev1 session after it still finds both recent
        assert recent_count(out) == 2

    asyncio.run(go())


def test_select_with_nothing_recent_writes_nothing(ctx: Context) -> None:
    """A SELECT that has nothing to claim takes no write lock: another process holding
    the index's write lock (a CLI command, a delivery) does not hold it up."""

    async def go() -> None:
        await deliver(ctx)
        first, out = await session(ctx)
        assert recent_count(out) == 1
        acc = await ctx.store.account(USER)
        assert isinstance(acc, MaildirAccount)
        holder = sqlite3.connect(acc.root / INDEX_FILE, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            # Without the lock free, a write would wait (and in the end fail); the
            # claim that moves nothing is only a read.
            second, out = await asyncio.wait_for(session(ctx), 10)
            assert b"s OK" in out and recent_count(out) == 0
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        await deliver(ctx)
        _, out = await session(ctx)  # and the next message is still claimed as before
        assert recent_count(out) == 1

    asyncio.run(go())
