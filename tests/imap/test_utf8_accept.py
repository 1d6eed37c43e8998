"""UTF8=ACCEPT (RFC 6855, RFC 9755): after ENABLE, mailbox names travel as UTF-8, quoted
strings may hold UTF-8, SEARCH takes no CHARSET, and APPEND takes UTF8 (literal8)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from letterbox.service.context import Context

from .imaputil import Client, add_user, make_context

USER = "utf@example.com"


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    c = make_context(tmp_path)
    add_user(c, USER)
    return c


async def client(ctx: Context) -> Client:
    c = Client(ctx)
    out = await c.login(USER)
    assert b"UTF8=ACCEPT" in out
    return c


def test_names_are_utf8_once_enabled(ctx: Context) -> None:
    async def go() -> None:
        c = await client(ctx)
        assert await c.cmd("e ENABLE UTF8=ACCEPT") == b"* ENABLED UTF8=ACCEPT\r\ne OK ENABLE completed\r\n"
        assert b"c OK" in await c.cmd('c CREATE "Müll/Страница"'.encode())
        out = await c.cmd('l LIST "" "M*"')
        assert '"/" "Müll/Страница"'.encode() in out
        # A session that did not enable it sees modified UTF-7 (RFC 3501 5.1.3).
        old = await client(ctx)
        out = await old.cmd('l LIST "" "M*"')
        assert b'"/" M&APw-ll/&BCEEQgRABDAEPQQ4BEYEMA-' in out
        assert b"s OK" in await c.cmd('s SELECT "Müll/Страница"'.encode())
        # RFC 6855 3: no CHARSET after ENABLE UTF8=ACCEPT.
        assert (await c.cmd("x SEARCH CHARSET UTF-8 ALL")).startswith(b"x BAD")
        assert (await c.cmd('y SEARCH SUBJECT "Grüße"'.encode())).endswith(b"y OK SEARCH completed\r\n")

    asyncio.run(go())


def test_enable_is_for_the_authenticated_state_only(ctx: Context) -> None:
    async def go() -> None:
        c = await client(ctx)
        await c.cmd("s SELECT INBOX")
        assert await c.cmd("e ENABLE UTF8=ACCEPT") == b"* ENABLED\r\ne OK ENABLE completed\r\n"

    asyncio.run(go())


def test_append_utf8_data_item(ctx: Context) -> None:
    async def go() -> None:
        c = await client(ctx)
        await c.cmd("e ENABLE UTF8=ACCEPT")
        msg = "Subject: Grüße aus Köln\r\nFrom: Jörg <jörg@example.org>\r\n\r\nHallo\r\n".encode()
        out = await c.cmd(b"a APPEND INBOX UTF8 (~{%d+}\r\n" % len(msg) + msg + b")")
        assert b"a OK [APPENDUID" in out, out
        await c.cmd("s SELECT INBOX")
        out = await c.cmd("f FETCH 1 BODY.PEEK[]")
        assert msg in out
        out = await c.cmd('g SEARCH SUBJECT "Köln"'.encode())
        assert out.startswith(b"* SEARCH 1\r\n")
        assert (await c.cmd(b"b APPEND INBOX UTF8 ({5+}\r\nHello)")).startswith(b"b BAD")

    asyncio.run(go())
