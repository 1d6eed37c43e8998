"""Line mode (IDLE's DONE, AUTHENTICATE's responses): a line the reader refuses ends the
command waiting for it, with that command's tag, and commands are read again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from letterbox.service.context import Context

from .imaputil import Client, add_user, make_context

USER = "line@example.com"


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    c = make_context(tmp_path)
    add_user(c, USER)
    return c


async def selected(ctx: Context) -> Client:
    c = Client(ctx)
    await c.login(USER)
    await c.cmd("s SELECT INBOX")
    return c


def test_a_refused_line_ends_idle_and_authenticate_with_their_tag(ctx: Context) -> None:
    async def go() -> None:
        c = await selected(ctx)
        assert (await c.cmd("i IDLE")).startswith(b"+ ")
        out = await c.cmd(b"x" * 70_000)
        assert out.startswith(b"i BAD ") and b"too long" in out
        assert (await c.cmd("n NOOP")).endswith(b"n OK NOOP completed\r\n")
        a = Client(ctx)
        await a.start()
        assert (await a.cmd("a AUTHENTICATE PLAIN")).startswith(b"+")
        assert (await a.cmd(b"y" * 50_000)).startswith(b"a BAD ")
        assert b"b OK" in await a.cmd(f'b LOGIN "{USER}" "pw"')

    asyncio.run(go())
