"""Shared by the FETCH and SEARCH tests: a real store and IMAPSession, no sockets."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import Any

from letterbox.auth.passwords import make_secrets
from letterbox.config import AuthSettings, ServerSettings, Settings
from letterbox.imap.session import IMAPSession
from letterbox.server.context import build_context
from letterbox.service.context import Context
from letterbox.service.session import Peer
from letterbox.store.api import AccountStore

USER = "carol@example.com"
PASSWORD = "pw"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


class Env:
    """A context with one account; `session()` opens logged-in sessions on it."""

    def __init__(self, tmp_path: Path) -> None:
        settings = Settings(
            server=ServerSettings(data_dir=tmp_path / "data", run_dir=tmp_path / "run", hostname="mail.test"),
            auth=AuthSettings(failure_delay=0),
        )
        self.ctx: Context = build_context(settings)
        self.ctx.directory.add(USER, make_secrets(PASSWORD))

    async def account(self) -> AccountStore:
        return await self.ctx.store.account(USER)

    async def append(
        self, *messages: bytes, flags: Iterable[str] = (), date: float | None = None, mailbox: str = "INBOX"
    ) -> list[int]:
        acc = await self.account()
        return [(await acc.append(mailbox, m, list(flags), date)).uid for m in messages]

    async def session(self, select: str | None = "SELECT INBOX", rev2: bool = False) -> Session:
        s = Session(IMAPSession(self.ctx, Peer("127.0.0.1", 1, False)))
        await s.s.start()
        s.take()
        assert b"l OK" in await s.cmd(f'l LOGIN "{USER}" "{PASSWORD}"')
        if rev2:
            assert b"e OK" in await s.cmd("e ENABLE IMAP4rev2")
        if select is not None:
            out = await s.cmd("s " + select)
            assert b"s OK" in out, out
        return s

    def close(self) -> None:
        run(self.ctx.store.close())
        self.ctx.directory.close()


class Session:
    def __init__(self, s: IMAPSession) -> None:
        self.s = s

    def take(self) -> bytes:
        return b"".join(self.s.take_output())

    def miss_changes(self) -> None:
        """Drop the change notices queued for this session: it has not been told yet."""
        if self.s.subscription is not None:
            self.s.subscription.take()

    async def send(self, data: bytes) -> bytes:
        await self.s.receive(data)
        return self.take()

    async def cmd(self, line: str | bytes) -> bytes:
        raw = line.encode() if isinstance(line, str) else line
        return await self.send(raw + b"\r\n")


def tagged(out: bytes, tag: str = "a") -> bytes:
    """The tagged status line of *out* (without CRLF)."""
    m = re.search(rb"(?m)^" + re.escape(tag.encode()) + rb" [^\r\n]*", out)
    assert m is not None, out
    return m.group()
