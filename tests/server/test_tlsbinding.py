"""The tls-exporter channel binding (RFC 9266) read through libssl: both ends of one TLS
1.3 connection get the same 32 bytes, another connection other bytes, TLS 1.2 none."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

from letterbox.server.tlsbinding import LENGTH, tls_exporter


def _connect(tls_pair: tuple[Path, Path], maximum: ssl.TLSVersion | None = None) -> tuple[bytes | None, bytes | None]:
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*tls_pair)
    client_ctx = ssl.create_default_context(cafile=str(tls_pair[0]))
    if maximum is not None:
        client_ctx.maximum_version = maximum
    a, b = socket.socketpair()
    got: dict[str, bytes | None] = {}

    def serve() -> None:
        with server_ctx.wrap_socket(a, server_side=True) as s:
            got["server"] = tls_exporter(s)
            s.recv(1)

    t = threading.Thread(target=serve)
    t.start()
    with client_ctx.wrap_socket(b, server_hostname="localhost") as c:
        client = tls_exporter(c)
        c.sendall(b"x")
    t.join(10)
    return got["server"], client


def test_both_ends_agree_and_sessions_differ(tls_pair: tuple[Path, Path]) -> None:
    server, client = _connect(tls_pair)
    assert server is not None and len(server) == LENGTH
    assert server == client
    again, _ = _connect(tls_pair)
    assert again is not None and again != server


def test_memory_bio_objects_as_asyncio_uses(tls_pair: tuple[Path, Path]) -> None:
    """asyncio (and uvloop) run TLS over ssl.SSLObject: the same value comes out."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*tls_pair)
    client_ctx = ssl.create_default_context(cafile=str(tls_pair[0]))
    s_in, s_out, c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    assert tls_exporter(server) is None  # no handshake yet
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    assert server.version() == "TLSv1.3"
    value = tls_exporter(server)
    assert value is not None and value == tls_exporter(client)


def test_not_on_tls12_nor_without_tls(tls_pair: tuple[Path, Path]) -> None:
    server, client = _connect(tls_pair, maximum=ssl.TLSVersion.TLSv1_2)
    assert server is None and client is None
    assert tls_exporter(None) is None
    assert tls_exporter(object()) is None
