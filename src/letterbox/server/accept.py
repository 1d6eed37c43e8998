"""Implicit-TLS listeners that count a connection before its TLS handshake.

asyncio's own TLS listeners run the handshake before any code of ours sees the
connection, so half-open handshakes were not counted against any limit. Here the
listening socket is ours: each accepted socket is counted (or refused) first, and only
then handed to asyncio to run the handshake, with a time limit. Until then nobody reads
the socket, so the client's first TLS bytes wait in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable

from .streams import WakingReader

log = logging.getLogger("letterbox.server")

Admit = Callable[[str], bool]
"""client ip -> whether to serve the connection (and count it)."""
Serve = Callable[[WakingReader, asyncio.StreamWriter], Awaitable[None]]


class TLSListener:
    """What the server needs of a listener: its sockets and close()."""

    def __init__(self, sock: socket.socket, task: asyncio.Task[None]) -> None:
        self.sockets = [sock]
        self._task = task

    def close(self) -> None:
        self._task.cancel()
        for sock in self.sockets:
            sock.close()


async def tls_server(
    host: str, port: int, tls: ssl.SSLContext, handshake_timeout: float, backlog: int,
    admit: Admit, release: Callable[[str], None], serve: Serve, service: str,
) -> TLSListener:
    """*admit* decides (and counts) before the handshake, *release* is called once when
    an admitted connection ends, *serve* runs it over the decrypted streams."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    connections: set[asyncio.Task[None]] = set()

    async def one(conn: socket.socket, ip: str) -> None:
        try:
            reader = WakingReader()
            protocol = asyncio.StreamReaderProtocol(reader)
            try:
                transport, _ = await loop.connect_accepted_socket(
                    lambda: protocol, conn, ssl=tls, ssl_handshake_timeout=handshake_timeout
                )
            except (OSError, ssl.SSLError, TimeoutError, ConnectionError, EOFError) as e:
                log.info("%s TLS handshake with %s failed: %s", service, ip, tls_failure(e))
                conn.close()
                return
            writer = asyncio.StreamWriter(transport, protocol, reader, loop)
            await serve(reader, writer)
        finally:
            release(ip)

    async def accept_loop() -> None:
        while True:
            try:
                conn, peer = await loop.sock_accept(sock)
            except asyncio.CancelledError:
                raise
            except OSError as e:  # out of descriptors, say: wait a moment, go on
                log.warning("%s: accepting a connection failed: %s", service, e)
                await asyncio.sleep(0.1)
                continue
            ip = str(peer[0])
            if not admit(ip):
                conn.close()  # no TLS yet: a plaintext goodbye would be garbage
                continue
            task = loop.create_task(one(conn, ip))
            connections.add(task)
            task.add_done_callback(connections.discard)

    task = loop.create_task(accept_loop())
    with contextlib.suppress(Exception):
        task.set_name(f"{service}-tls-accept")
    return TLSListener(sock, task)


def tls_failure(e: BaseException) -> str:
    """How a failed handshake is worded in the log."""
    if isinstance(e, TimeoutError) or "taking longer" in str(e):
        return "timed out"
    return getattr(e, "reason", None) or str(e) or type(e).__name__
