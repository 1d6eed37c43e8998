"""COMPRESS=DEFLATE (RFC 4978) and UNAUTHENTICATE (RFC 8437) against a real server."""

from __future__ import annotations

import socket
import zlib

from tests.conftest import ServerProcess

PW = "pw"


class Deflated:
    """A raw IMAP client that can turn compression on."""

    def __init__(self, srv: ServerProcess) -> None:
        self.sock = socket.create_connection(("127.0.0.1", srv.port("imap")), timeout=10)
        self.buf = b""
        self.zin: zlib._Decompress | None = None
        self.zout: zlib._Compress | None = None
        self.wire = 0
        self.line()

    def send(self, data: bytes) -> None:
        if self.zout is not None:
            data = self.zout.compress(data) + self.zout.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            raw = self.sock.recv(65536)
            assert raw, "connection closed"
            self.wire += len(raw)
            self.buf += self.zin.decompress(raw) if self.zin is not None else raw
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def until(self, tag: bytes) -> list[bytes]:
        out = []
        while True:
            line = self.line()
            out.append(line)
            if line.startswith(tag + b" "):
                return out

    def compress(self) -> None:
        self.send(b"z COMPRESS DEFLATE\r\n")
        assert self.until(b"z")[-1] == b"z OK DEFLATE active\r\n"
        assert not self.buf  # nothing after the OK came uncompressed
        self.zin = zlib.decompressobj(-15)
        self.zout = zlib.compressobj(6, zlib.DEFLATED, -15)


def test_compress_deflate_both_ways(server: ServerProcess) -> None:
    server.add_user("z@example.com", PW)
    c = Deflated(server)
    c.send(f"a LOGIN z@example.com {PW}\r\n".encode())
    assert b"COMPRESS=DEFLATE" in c.until(b"a")[-1]
    c.compress()
    body = b"Subject: squeezed\r\n\r\n" + b"the same line again and again\r\n" * 2000
    c.send(b"b APPEND INBOX {%d+}\r\n" % len(body) + body + b"\r\n")
    assert c.until(b"b")[-1].startswith(b"b OK [APPENDUID")
    c.send(b"c SELECT INBOX\r\n")
    c.until(b"c")
    before = c.wire
    c.send(b"d FETCH 1 BODY.PEEK[]\r\n")
    lines = c.until(b"d")
    assert lines[-1].startswith(b"d OK")
    got = b"".join(lines)
    assert body in got
    assert c.wire - before < len(body) // 10  # it really was compressed
    # A second COMPRESS is refused (RFC 4978 3).
    c.send(b"e COMPRESS DEFLATE\r\n")
    assert c.until(b"e")[-1].startswith(b"e NO [COMPRESSIONACTIVE]")
    # A command pipelined right behind COMPRESS is read as compressed.
    d = Deflated(server)
    d.send(f"a LOGIN z@example.com {PW}\r\n".encode())
    d.until(b"a")
    zout = zlib.compressobj(6, zlib.DEFLATED, -15)
    d.send(b"z COMPRESS DEFLATE\r\n" + zout.compress(b"n NOOP\r\n") + zout.flush(zlib.Z_SYNC_FLUSH))
    assert d.until(b"z")[-1] == b"z OK DEFLATE active\r\n"
    d.zin = zlib.decompressobj(-15)
    d.buf = d.zin.decompress(d.buf)  # the answer may have come with the OK
    assert d.until(b"n")[-1].startswith(b"n OK")


def test_a_compression_bomb_is_inflated_a_piece_at_a_time(server: ServerProcess) -> None:
    server.add_user("z@example.com", PW)
    c = Deflated(server)
    c.send(f"a LOGIN z@example.com {PW}\r\n".encode())
    c.until(b"a")
    c.compress()
    # 200 MB of one long line in a few hundred KB: refused as too long, never held.
    zout = c.zout
    assert zout is not None
    chunk = zout.compress(b"x" * (1 << 20))
    for _ in range(200):
        c.sock.sendall(chunk)
    c.send(b"\r\nb NOOP\r\n")
    lines = c.until(b"b")
    assert any(b"too long" in line for line in lines) and lines[-1].startswith(b"b OK")


def test_unauthenticate_returns_to_the_greeting_state(server: ServerProcess) -> None:
    server.add_user("u1@example.com", PW)
    server.add_user("u2@example.com", PW)
    c = Deflated(server)
    c.send(f"a LOGIN u1@example.com {PW}\r\nb SELECT INBOX\r\n".encode())
    c.until(b"b")
    # RFC 8437 3: may be pipelined with the next login.
    c.send(f"c UNAUTHENTICATE\r\nd LOGIN u2@example.com {PW}\r\ne SELECT INBOX\r\n".encode())
    assert c.until(b"c")[-1] == b"c OK UNAUTHENTICATE completed\r\n"
    assert c.until(b"d")[-1].startswith(b"d OK")
    assert c.until(b"e")[-1].startswith(b"e OK")
    c.send(b"f UNAUTHENTICATE\r\ng SELECT INBOX\r\n")
    c.until(b"f")
    assert c.until(b"g")[-1].startswith(b"g BAD")  # not authenticated any more
