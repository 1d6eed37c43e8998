"""Drive IMAPSession objects without sockets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from letterbox.auth.passwords import make_secrets
from letterbox.config import AuthSettings, IMAPSettings, ServerSettings, Settings, TLSSettings
from letterbox.imap.session import IMAPSession
from letterbox.server.context import build_context
from letterbox.server.tls import write_self_signed
from letterbox.service.context import Context
from letterbox.service.session import Peer
from letterbox.store.api import Quota

PASSWORD = "pw"


def make_context(tmp_path: Path, **imap: Any) -> Context:
    """A context on *tmp_path*; *imap* are [imap] settings other than the defaults."""
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    write_self_signed(cert, key, "localhost")
    settings = Settings(
        server=ServerSettings(data_dir=tmp_path / "data", run_dir=tmp_path / "run", hostname="mail.test"),
        auth=AuthSettings(failure_delay=0),
        tls=TLSSettings(cert=cert, key=key),
        imap=IMAPSettings(**imap),
    )
    return build_context(settings)


def add_user(ctx: Context, address: str, quota: Quota = Quota()) -> str:
    ctx.directory.add(address, make_secrets(PASSWORD), ("imap", "pop3"), quota)
    return address


class Client:
    """A session plus helpers: send a line, get everything the server answered."""

    def __init__(self, ctx: Context, ip: str = "127.0.0.1", secure: bool = False) -> None:
        self.session = IMAPSession(ctx, Peer(ip, 1234, secure))

    async def start(self) -> bytes:
        await self.session.start()
        return self.take()

    def take(self) -> bytes:
        return b"".join(self.session.take_output())

    async def send(self, data: bytes) -> bytes:
        await self.session.receive(data)
        return self.take()

    async def cmd(self, line: str | bytes) -> bytes:
        raw = line.encode() if isinstance(line, str) else line
        return await self.send(raw + b"\r\n")

    async def login(self, user: str, password: str = PASSWORD) -> bytes:
        await self.start()
        out = await self.cmd(f'l1 LOGIN "{user}" "{password}"')
        assert b"l1 OK" in out, out
        return out

    async def changed(self) -> bytes:
        await self.session.changed()
        return self.take()
