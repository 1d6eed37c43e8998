"""Keyword announcements: a session is told of a keyword (FLAGS) before any FETCH shows
it (RFC 9051 7.3.5: FLAGS lists the flags applicable in the mailbox), every keyword of
a change, once, in the session that stored it and in the others."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from letterbox.service.context import Context

from .imaputil import Client, add_user, make_context

USER = "kw@example.com"


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    c = make_context(tmp_path)
    add_user(c, USER)
    return c


def flags_lines(out: bytes) -> list[bytes]:
    return re.findall(rb"\* FLAGS \(([^)]*)\)\r\n", out)


async def selected(ctx: Context) -> Client:
    c = Client(ctx)
    await c.login(USER)
    await c.cmd("s SELECT INBOX")
    return c


def test_new_keywords_are_announced_before_the_fetch_in_every_session(ctx: Context) -> None:
    async def go() -> None:
        acc = await ctx.store.account(USER)
        await acc.append("INBOX", b"Subject: k\r\n\r\nx\r\n")
        a = await selected(ctx)
        b = await selected(ctx)
        out = await a.cmd("t STORE 1 +FLAGS ($Label1 $Label2)")
        fetch = out.index(b"* 1 FETCH")
        lines = flags_lines(out[:fetch])
        assert len(lines) == 1 and b"$Label1" in lines[0] and b"$Label2" in lines[0], out
        assert b"[PERMANENTFLAGS (" in out[:fetch] and b"$Label2 \\*)]" in out
        assert not flags_lines(out[fetch:])  # told once
        out = await b.cmd("n NOOP")
        fetch = out.index(b"* 1 FETCH")
        lines = flags_lines(out[:fetch])
        # Both keywords of the one change, in one announcement.
        assert len(lines) == 1 and b"$Label1 $Label2" in lines[0], out
        assert not flags_lines(await a.cmd("n NOOP"))  # nothing new for A
        # A keyword arriving with new mail is announced before the EXISTS.
        await acc.append("INBOX", b"Subject: k2\r\n\r\nx\r\n", ["$Fresh"])
        out = await b.cmd("n NOOP")
        assert b"$Fresh" in flags_lines(out)[0] and out.index(b"* FLAGS") < out.index(b"* 2 EXISTS")

    asyncio.run(go())


def test_examine_announces_keywords_without_permanentflags(ctx: Context) -> None:
    async def go() -> None:
        acc = await ctx.store.account(USER)
        await acc.append("INBOX", b"Subject: k\r\n\r\nx\r\n")
        e = Client(ctx)
        await e.login(USER)
        await e.cmd("x EXAMINE INBOX")
        w = await selected(ctx)
        await w.cmd("t STORE 1 +FLAGS ($Seen2)")
        out = await e.cmd("n NOOP")
        assert b"$Seen2" in flags_lines(out)[0] and b"PERMANENTFLAGS" not in out

    asyncio.run(go())
