"""LITERAL+ and LITERAL- (RFC 7888): exactly one is advertised, LITERAL+ by default and
LITERAL- with `[imap] literal_minus`; under LITERAL- a non-synchronizing literal of more
than 4096 octets is refused with BAD [TOOBIG] (section 5) and the connection goes on;
ENABLE IMAP4rev2 changes neither (RFC 9051 4.3: LITERAL+ "specifies otherwise")."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from letterbox.auth.passwords import make_secrets
from letterbox.service.context import Context
from tests.conftest import ServerProcess

from .imaputil import Client, make_context

USER = "fred@foo.ba"  # 11 octets, as "FRED FOOBAR" in RFC 7888 section 3
PASSWORD = "fat man"


def message(size: int) -> bytes:
    head = b"Subject: sized\r\n\r\n"
    return head + b"x" * (size - len(head))


def context(tmp_path: Path, **imap: object) -> Context:
    ctx = make_context(tmp_path, **imap)
    ctx.directory.add(USER, make_secrets(PASSWORD))
    return ctx


def literal_caps(out: bytes) -> list[bytes]:
    """The LITERAL capabilities of the CAPABILITY response or response code in *out*."""
    text = out.split(b"CAPABILITY ", 1)[1].split(b"\r\n")[0].split(b"]")[0]
    return [cap for cap in text.split() if cap.startswith(b"LITERAL")]


@pytest.mark.parametrize("minus", [False, True])
def test_one_of_the_two_is_advertised(tmp_path: Path, minus: bool) -> None:
    async def go() -> None:
        c = Client(context(tmp_path, literal_minus=minus))
        want = [b"LITERAL-" if minus else b"LITERAL+"]
        assert literal_caps(await c.start()) == want
        assert literal_caps(await c.cmd("a CAPABILITY")) == want
        assert literal_caps(await c.cmd(b'l LOGIN fred@foo.ba "fat man"')) == want
        assert literal_caps(await c.cmd("b CAPABILITY")) == want
        await c.cmd("e ENABLE IMAP4rev2")
        assert literal_caps(await c.cmd("c CAPABILITY")) == want

    asyncio.run(go())


def test_rfc7888_section3_example(tmp_path: Path) -> None:
    # C: A001 LOGIN {11+}  /  C: FRED FOOBAR {7+}  /  C: fat man  /  S: A001 OK LOGIN completed
    async def go() -> None:
        for minus in (False, True):
            c = Client(context(tmp_path / str(minus), literal_minus=minus))
            await c.start()
            out = await c.send(b"A001 LOGIN {11+}\r\nfred@foo.ba {7+}\r\nfat man\r\n")
            assert out.startswith(b"A001 OK [CAPABILITY "), out

    asyncio.run(go())


async def appended(c: Client) -> int:
    out = await c.cmd("s STATUS INBOX (MESSAGES)")
    return int(out.split(b"MESSAGES ")[1].split(b")")[0])


def test_literal_minus_takes_4096_octets_and_refuses_one_more(tmp_path: Path) -> None:
    async def go() -> None:
        c = Client(context(tmp_path, literal_minus=True))
        await c.login(USER, PASSWORD)
        for rev2 in (False, True):
            if rev2:
                assert b"e OK" in await c.cmd("e ENABLE IMAP4rev2")
            before = await appended(c)
            ok = message(4096)
            out = await c.send(b"a APPEND INBOX {4096+}\r\n" + ok + b"\r\n")
            assert b"a OK [APPENDUID " in out, out
            big = message(4097)
            out = await c.send(b"b APPEND INBOX {4097+}\r\n" + big + b"\r\nc NOOP\r\n")
            # Section 5: BAD with TOOBIG for APPEND; the literal is read and dropped, and
            # the command after it is served.
            assert out.startswith(b"b BAD [TOOBIG] "), out
            assert out.endswith(b"c OK NOOP completed\r\n"), out
            assert await appended(c) == before + 1
            # A synchronizing literal of any size is still fine.
            assert (await c.cmd(b"d APPEND INBOX {5000}")).startswith(b"+ ")
            assert b"d OK [APPENDUID " in await c.send(message(5000) + b"\r\n")
            # Not only APPEND: any command's literal.
            out = await c.send(b"f SELECT {5000+}\r\n" + b"x" * 5000 + b"\r\n")
            assert out.startswith(b"f BAD [TOOBIG] "), out

    asyncio.run(go())


def test_literal_minus_before_login(tmp_path: Path) -> None:
    async def go() -> None:
        c = Client(context(tmp_path, literal_minus=True))
        await c.start()
        out = await c.send(b"a LOGIN {4097+}\r\n" + b"x" * 4097 + b" y\r\nb NOOP\r\n")
        assert out.startswith(b"a BAD [TOOBIG] ") and out.endswith(b"b OK NOOP completed\r\n"), out

    asyncio.run(go())


def test_literal_plus_stays_unlimited_after_enable_imap4rev2(tmp_path: Path) -> None:
    async def go() -> None:
        c = Client(context(tmp_path, max_literal_size=65536))
        await c.login(USER, PASSWORD)
        assert b"e OK" in await c.cmd("e ENABLE IMAP4rev2")
        out = await c.send(b"a APPEND INBOX {20000+}\r\n" + message(20000) + b"\r\n")
        assert b"a OK [APPENDUID " in out, out
        # Beyond the configured literal size the answer is NO [TOOBIG] (RFC 7889), the
        # data read and dropped (RFC 7888 4, choice 1).
        over = 65537
        await c.session.receive(b"b APPEND INBOX {%d+}\r\n" % over)
        assert c.take().startswith(b"b NO [TOOBIG] ")
        left = over
        while left:
            piece = min(left, 1 << 20)
            await c.session.receive(b"y" * piece)
            left -= piece
        assert await c.cmd("") == b""
        assert await c.cmd("c NOOP") == b"c OK NOOP completed\r\n"

    asyncio.run(go())


# --- a real server ------------------------------------------------------------------------


def test_literal_minus_over_a_socket(make_server: object) -> None:
    srv: ServerProcess = make_server(imap_extra="literal_minus = true")  # type: ignore[operator]
    srv.add_user(USER, PASSWORD)
    with socket.create_connection(("127.0.0.1", srv.port("imap")), timeout=10) as sock:
        f = sock.makefile("rb")
        greeting = f.readline()
        assert b"LITERAL-" in greeting and b"LITERAL+" not in greeting, greeting
        sock.sendall(b"A001 LOGIN {11+}\r\nfred@foo.ba {7+}\r\nfat man\r\n")
        assert f.readline().startswith(b"A001 OK ")
        sock.sendall(b"a APPEND INBOX {4097+}\r\n" + message(4097) + b"\r\nb APPEND INBOX {4096+}\r\n"
                     + message(4096) + b"\r\n")
        assert f.readline().startswith(b"a BAD [TOOBIG] ")
        assert f.readline().startswith(b"b OK [APPENDUID ")
        sock.sendall(b"z LOGOUT\r\n")
        assert f.readline().startswith(b"* BYE")
