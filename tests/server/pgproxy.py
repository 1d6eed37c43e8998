"""A TCP proxy in front of PostgreSQL that a test can cut and restore: what a front end
sees of a database restart (every connection ends, new ones are refused, then accepted
again on the same address), without restarting the cluster other tests share."""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import unquote, urlsplit, urlunsplit


def upstream_of(dsn: str) -> tuple[int, str | tuple[str, int]]:
    """The address family and address the DSN's server listens on (TCP or UNIX socket)."""
    parts = urlsplit(dsn)
    host = unquote(parts.hostname or "localhost")
    if host.startswith("/"):
        return socket.AF_UNIX, f"{host}/.s.PGSQL.{parts.port or 5432}"
    return socket.AF_INET, (host, parts.port or 5432)


def through(dsn: str, port: int) -> str:
    """The DSN with its server replaced by the proxy on 127.0.0.1:*port*."""
    parts = urlsplit(dsn)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, f"{user}127.0.0.1:{port}", parts.path, parts.query, parts.fragment))


class PgProxy:
    """Forwards 127.0.0.1:port to the server of *dsn*; `cut()` closes every connection and
    the listening socket (connections are refused), `restore()` listens again."""

    def __init__(self, dsn: str) -> None:
        self.family, self.upstream = upstream_of(dsn)
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = 0
        self.accepted = 0
        self.restore()
        self.dsn = through(dsn, self.port)

    def restore(self) -> None:
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("127.0.0.1", self.port))
        lsock.listen(128)
        self.port = lsock.getsockname()[1]
        with self._lock:
            self._listener = lsock
        threading.Thread(target=self._accept, args=(lsock,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            lsock, self._listener = self._listener, None
            socks, self._socks = self._socks, set()
        if lsock is not None:
            with contextlib.suppress(OSError):
                lsock.shutdown(socket.SHUT_RDWR)
            lsock.close()
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    close = cut

    def _accept(self, lsock: socket.socket) -> None:
        while True:
            try:
                client, _ = lsock.accept()
            except OSError:
                return  # cut
            try:
                server = socket.socket(self.family, socket.SOCK_STREAM)
                server.connect(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not lsock:  # cut meanwhile
                    client.close()
                    server.close()
                    return
                self._socks |= {client, server}
                self.accepted += 1
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        """One direction; at its end the whole connection ends (as PostgreSQL's do)."""
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._socks -= {src, dst}
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
