"""Running the console inside the mail server's own event loop.

uvicorn serves the ASGI app on a socket bound here (so a port taken is a start-up error
like any listener's, and port 0 works for tests); its signal handling is left out, since
the mail server owns SIGINT and SIGTERM. Connections are bounded by `limit_concurrency`
(503 beyond), headers by h11's size limit, bodies by web.security.BodyLimit, and the time
a request may take to arrive by _Deadline (uvicorn has no such timer: 200 clients
trickling headers would otherwise hold every connection for good).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .. import metrics
from ..auth.listing import totals
from ..config import parse_listen
from .app import build_app

if TYPE_CHECKING:
    from .host import Host

log = logging.getLogger("letterbox.web")

MAX_CONNECTIONS = 200
MAX_HEADER = 32 * 1024


class _Embedded(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the mail server handles signals and stops us


class _Deadline(H11Protocol):
    """uvicorn's HTTP/1.1 connection, closed when a request has not fully arrived (headers
    and body) within `timeout` seconds of the connection or of the previous response."""

    timeout = 20.0
    _timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(self.timeout, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
            self.transport.close()


class ConsoleHandle:
    def __init__(self, server: _Embedded, task: asyncio.Task[None], address: str) -> None:
        self._server = server
        self._task = task
        self.address = address

    async def stop(self) -> None:
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, timeout=10)


def _bind(listen: str) -> socket.socket:
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _name(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _protocol(timeout: float) -> type[_Deadline]:
    return type("Deadline", (_Deadline,), {"timeout": timeout})


async def start_console(server: Host) -> ConsoleHandle:
    """Bind [web] listen and serve the console until the handle is stopped."""
    settings = server.settings
    web = settings.web
    app = build_app(server)
    cert = key = None
    if web.tls and settings.tls.cert is not None and settings.tls.key is not None:
        cert, key = str(settings.resolve(settings.tls.cert)), str(settings.resolve(settings.tls.key))
    config = uvicorn.Config(
        app, lifespan="off", log_level="warning", access_log=False, server_header=False,
        proxy_headers=False, limit_concurrency=MAX_CONNECTIONS, timeout_keep_alive=5,
        h11_max_incomplete_event_size=MAX_HEADER, loop="none", http=_protocol(web.request_timeout), ws="none",
        ssl_certfile=cert, ssl_keyfile=key,
    )
    sock = _bind(web.listen)
    embedded = _Embedded(config)
    task = asyncio.create_task(embedded.serve(sockets=[sock]))
    while not embedded.started:
        if task.done():
            sock.close()
            task.result()  # raises what stopped it
            raise OSError("the console stopped while starting")
        await asyncio.sleep(0.01)
    address = _name(sock)
    scheme = "https" if cert else "http"
    log.info("WEB console listening on %s://%s/", scheme, address)

    def live() -> tuple[dict[str, int], int, int]:
        _n, messages, stored = totals(server.ctx.directory)
        return server.local_session_counts(), messages, stored

    metrics.LIVE.source = live
    return ConsoleHandle(embedded, task, address)
