"""Delivery test support: the real LMTP and SMTP protocols on ephemeral loopback ports (and
a UNIX socket), served by an event loop in a background thread so the tests can drive
them with blocking clients (smtplib, raw sockets, swaks)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from letterbox.auth.passwords import Secrets, make_secrets
from letterbox.config import Settings
from letterbox.delivery import lmtp_protocol_factory, sessions_for, smtp_protocol_factory
from letterbox.delivery.sessions import DeliverySessions
from letterbox.server.context import build_context
from letterbox.server.tls import write_self_signed
from letterbox.service.context import Context
from letterbox.store.api import Quota, Usage

T = TypeVar("T")

# One hash for every test account: argon2 is deliberately slow.
_PW_HASH: list[Secrets] = []


def require_program(name: str) -> str:
    """Path of a real client program; skip when missing, or fail when
    LETTERBOX_REQUIRE_CLIENTS=1 (CI must not silently skip interoperability tests)."""
    path = shutil.which(name)
    if path is None:
        msg = f"{name} is not installed"
        if os.environ.get("LETTERBOX_REQUIRE_CLIENTS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def make_settings(tmp_path: Path, tls: bool = False, **delivery: Any) -> Settings:
    data: dict[str, Any] = {
        "server": {
            "hostname": "mx.test",
            "data_dir": str(tmp_path / "data"),
            "run_dir": str(tmp_path / "run"),
        },
        "auth": {"failure_delay": 0},
        "delivery": delivery,
    }
    if tls:
        cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
        write_self_signed(cert, key, "localhost")
        data["tls"] = {"cert": str(cert), "key": str(key)}
    return Settings.model_validate(data)


def split_trace(stored: bytes) -> tuple[list[bytes], bytes]:
    """The trace fields Letterbox prepended (Return-Path, Received; unfolded), and the
    message exactly as the client sent it."""
    fields: list[bytes] = []
    rest = stored
    for name in (b"Return-Path:", b"Received:"):
        assert rest.startswith(name), rest[:200]
        end = rest.index(b"\r\n")
        while rest[end + 2 : end + 3] == b"\t":
            end = rest.index(b"\r\n", end + 2)
        fields.append(rest[:end].replace(b"\r\n\t", b" "))
        rest = rest[end + 2 :]
    return fields, rest


class FaultyAccount:
    """Wraps an account store so `append` fails, or waits at a gate first."""

    def __init__(self, inner: Any, fail: Exception | None = None,
                 gate: asyncio.Event | None = None, entered: threading.Event | None = None) -> None:
        self.inner = inner
        self.fail = fail
        self.gate = gate
        self.entered = entered

    async def append(self, *args: Any, **kwargs: Any) -> Any:
        if self.entered is not None:
            self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return await self.inner.append(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Harness:
    """A Context plus LMTP (TCP and UNIX) and SMTP listeners on a background loop."""

    def __init__(
        self,
        tmp_path: Path,
        tls: bool = False,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
        **delivery: Any,
    ) -> None:
        self.tmp_path = tmp_path
        self.settings = make_settings(tmp_path, tls=tls, **delivery)
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        self.loop = loop_factory()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[asyncio.AbstractServer] = []
        self.ctx: Context = self.run(self._build())
        self.lmtp_port = self.run(self._listen(lmtp_protocol_factory(self.ctx)))
        self.smtp_port = self.run(self._listen(smtp_protocol_factory(self.ctx)))
        # UNIX socket paths are limited to about 100 bytes: pytest's tmp_path may be longer.
        self._sock_dir = tempfile.mkdtemp(prefix="lb-")
        self.lmtp_socket = os.path.join(self._sock_dir, "lmtp.sock")
        self.run(self._listen_unix(lmtp_protocol_factory(self.ctx), self.lmtp_socket))

    async def _build(self) -> Context:
        return build_context(self.settings)

    async def _listen(self, factory: Callable[[], asyncio.Protocol]) -> int:
        server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def _listen_unix(self, factory: Callable[[], asyncio.Protocol], path: str) -> None:
        server = await asyncio.get_running_loop().create_unix_server(factory, path)
        self.servers.append(server)

    @property
    def sessions(self) -> DeliverySessions:
        return sessions_for(self.ctx)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        async def wrapper() -> T:
            return fn()

        return self.run(wrapper())

    # --- accounts and mail -------------------------------------------------------------
    def add_user(self, address: str, quota: Quota = Quota()) -> str:
        if not _PW_HASH:
            _PW_HASH.append(make_secrets("pw"))
        self.call(lambda: self.ctx.directory.add(address, _PW_HASH[0], quota=quota))
        return address

    def messages(self, address: str) -> list[bytes]:
        async def go() -> list[bytes]:
            acc = await self.ctx.store.account(address)
            mbox, metas = await acc.snapshot("INBOX")
            return [await acc.read_message(mbox.id, m.uid) for m in metas]

        return self.run(go())

    def usage(self, address: str) -> Usage:
        async def go() -> Usage:
            return await (await self.ctx.store.account(address)).usage()

        return self.run(go())

    def break_account(self, address: str, **faults: Any) -> None:
        """Make the store misbehave for *address* (see FaultyAccount)."""
        store = self.ctx.store
        real = store.account

        async def account(addr: str, incarnation: str | None = None) -> Any:
            inner = await real(addr, incarnation)
            return FaultyAccount(inner, **faults) if addr == address else inner

        store.account = account  # type: ignore[method-assign,assignment]

    def wait_sessions(self, service: str, count: int, timeout: float = 5) -> None:
        """Wait until the server has noticed connections open or close."""
        deadline = time.monotonic() + timeout
        while self.call(lambda: self.sessions.count(service)) != count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{service} sessions never reached {count}")
            time.sleep(0.01)

    def close(self) -> None:
        async def stop() -> None:
            for server in self.servers:
                server.close()
            self.sessions.shutdown_all("lmtp", "test over")
            self.sessions.shutdown_all("smtp", "test over")
            await self.sessions.drain(10)
            await self.ctx.store.close()
            self.ctx.directory.close()

        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        shutil.rmtree(self._sock_dir, ignore_errors=True)
