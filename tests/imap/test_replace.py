"""REPLACE and UID REPLACE (RFC 8508): the new message appended, then, and only then,
the old one expunged; APPENDUID in an untagged OK."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from letterbox.service.context import Context
from letterbox.store.api import Quota

from .imaputil import Client, add_user, make_context

USER = "rep@example.com"
DRAFT = (
    b"Date: Thu, 1 Jan 2015 00:05:00 -0500 (EST)\r\nFrom: Fritz Schmidt <fritz.ze@example.org>\r\n"
    b"Subject: happy new year !!\r\nTo: miss.mitzy@example.org\r\n"
    b"Message-Id: <B238822388-0100000@example.org>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n"
    b"Just saw the best fireworks show. Wish you were here.\r\n"
)


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    c = make_context(tmp_path)
    add_user(c, USER, Quota(bytes=1000))
    return c


async def drafts_with(ctx: Context, n: int) -> Client:
    acc = await ctx.store.account(USER)
    for i in range(n):
        await acc.append("Drafts", b"Subject: draft %d\r\n\r\n" % i + b"x" * 100 + b"\r\n", ["\\Draft"])
    c = Client(ctx)
    await c.login(USER)
    await c.cmd("s SELECT Drafts")
    return c


def test_replace_example_rfc8508_3_2(ctx: Context) -> None:
    async def go() -> None:
        c = await drafts_with(ctx, 4)
        assert (await c.cmd(b"A003 REPLACE 4 Drafts (\\Seen \\Draft) {%d}" % len(DRAFT))).startswith(b"+ ")
        out = await c.send(DRAFT + b"\r\n")
        lines = out.split(b"\r\n")
        assert re.fullmatch(rb"\* OK \[APPENDUID \d+ 5\] .*", lines[0]), out
        assert b"* 4 EXPUNGE" in out and b"* 4 EXISTS" in out
        assert out.endswith(b"A003 OK REPLACE completed\r\n")
        out = await c.cmd("f UID FETCH 1:* (FLAGS)")
        assert b"UID 4 " not in out and re.search(rb"UID 5 FLAGS \(\\Draft \\Seen( \\Recent)?\)", out), out

    asyncio.run(go())


def test_uid_replace_into_another_mailbox_rfc8508_3_3(ctx: Context) -> None:
    async def go() -> None:
        c = await drafts_with(ctx, 2)
        await c.cmd(b"a UID REPLACE 2 Sent {%d+}" % len(DRAFT))
        out = await c.send(DRAFT + b"\r\n")
        assert b"[APPENDUID " in out and b"* 2 EXPUNGE" in out and out.endswith(b"a OK UID REPLACE completed\r\n")
        acc = await ctx.store.account(USER)
        assert (await acc.status("Sent")).messages == 1 and (await acc.status("Drafts")).messages == 1

    asyncio.run(go())


def test_replace_failures_leave_the_mailbox_as_it_was(ctx: Context) -> None:
    async def go() -> None:
        c = await drafts_with(ctx, 2)
        # No such mailbox: TRYCREATE, nothing expunged.
        out = await c.cmd(b"a REPLACE 1 Nowhere {5+}\r\nHi!\r\n")
        assert b"a NO [TRYCREATE]" in out and b"EXPUNGE" not in out
        assert (await c.cmd(b"b REPLACE 3 Drafts {5+}\r\nHi!\r\n")).startswith(b"b BAD")
        out = await c.cmd(b"c UID REPLACE 99 Drafts {5+}\r\nHi!\r\n")
        assert b"c NO" in out and b"EXPUNGE" not in out
        # The quota is judged net of the replaced message (3.4): 2 x ~118 bytes of 1000
        # used; a 700-byte replacement fits only because the old one goes.
        big = b"Subject: big\r\n\r\n" + b"y" * 684
        out = await c.cmd(b"d REPLACE 1 Drafts {%d+}\r\n" % len(big) + big)
        assert b"d OK" in out, out
        huge = b"Subject: huge\r\n\r\n" + b"z" * 2000
        out = await c.cmd(b"e REPLACE 1 Drafts {%d+}\r\n" % len(huge) + huge)
        assert b"e NO [OVERQUOTA]" in out and b"EXPUNGE" not in out

    asyncio.run(go())


def test_replace_is_refused_outside_the_selected_state(ctx: Context) -> None:
    async def go() -> None:
        c = Client(ctx)
        await c.login(USER)
        assert b"CAPABILITY" in await c.cmd("x CAPABILITY") and b"REPLACE" in await c.cmd("y CAPABILITY")
        assert (await c.cmd(b"a REPLACE 1 Drafts {5+}\r\nHi!\r\n")).startswith(b"a BAD")

    asyncio.run(go())
