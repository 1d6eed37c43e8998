"""Helpers for the POP3 core tests: a session driven without sockets, a real store."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

from letterbox.pop3.session import POP3Session
from letterbox.service.context import Context
from letterbox.service.session import Peer
from letterbox.store.api import AccountStore

ALICE = "alice@example.com"
PASSWORD = "secret"
HOST = "mail.example.com"
LOCAL = Peer("127.0.0.1", 40000, False)
REMOTE = Peer("192.0.2.1", 5000, False)
REMOTE_TLS = Peer("192.0.2.1", 5000, True)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def message(subject: str, size: int | None = None, body: bytes = b"Hello.\r\n") -> bytes:
    """A CRLF message; with *size*, padded (in the body) to exactly that many octets."""
    head = f"From: bob@example.com\r\nTo: {ALICE}\r\nSubject: {subject}\r\n\r\n".encode()
    raw = head + body
    if size is not None:
        pad = size - len(raw) - 2
        assert pad >= 0, "message too small for the requested size"
        raw += b"x" * pad + b"\r\n"
        assert len(raw) == size
    return raw


class Client:
    """Feeds a session like the connection runner does and returns what it queued."""

    def __init__(self, session: POP3Session) -> None:
        self.s = session

    async def start(self) -> bytes:
        await self.s.start()
        return self.output()

    def output(self) -> bytes:
        return b"".join(self.s.take_output())

    async def send(self, data: bytes) -> bytes:
        await self.s.receive(data)
        return self.output()

    async def cmd(self, line: str) -> bytes:
        return await self.send(line.encode() + b"\r\n")

    async def login(self, user: str = ALICE, password: str = PASSWORD) -> bytes:
        assert (await self.cmd(f"USER {user}")).startswith(b"+OK")
        reply = await self.cmd(f"PASS {password}")
        assert reply.startswith(b"+OK"), reply
        return reply

    async def lines(self, line: str) -> list[bytes]:
        """A multi-line reply split into lines (status line first, "." last)."""
        return (await self.cmd(line)).split(b"\r\n")[:-1]

    async def close(self) -> None:
        await self.s.connection_lost()


class Env:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def session(self, peer: Peer = LOCAL, implicit_tls: bool = False) -> Client:
        return Client(POP3Session(self.ctx, peer, implicit_tls))

    async def client(self, peer: Peer = LOCAL, implicit_tls: bool = False) -> Client:
        c = self.session(peer, implicit_tls)
        await c.start()
        return c

    async def logged_in(self, user: str = ALICE, password: str = PASSWORD) -> Client:
        c = await self.client()
        await c.login(user, password)
        return c

    async def account(self, address: str = ALICE) -> AccountStore:
        return await self.ctx.store.account(address)

    async def deliver(self, raw: bytes, address: str = ALICE) -> int:
        return (await (await self.account(address)).append("INBOX", raw)).uid

    async def inbox_uids(self, address: str = ALICE) -> list[int]:
        _, metas = await (await self.account(address)).snapshot("INBOX")
        return [m.uid for m in metas]

    def enable_tls(self) -> None:
        # Never used for a handshake here; the session only checks that TLS is configured.
        self.ctx.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)


MakeEnv = Callable[..., Env]
