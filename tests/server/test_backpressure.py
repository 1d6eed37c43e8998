"""A client that pipelines big answers but does not read them cannot make the server
buffer without bound."""

from __future__ import annotations

import smtplib
import socket
import time

from tests.conftest import ServerProcess


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_pipelined_retr_is_throttled(server: ServerProcess) -> None:
    server.add_user("big@example.com", "pw")
    body = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 1000  # ~1 MB
    with smtplib.LMTP("127.0.0.1", server.port("lmtp")) as lmtp:
        lmtp.sendmail("a@example.org", ["big@example.com"], body)
    assert server.proc is not None
    before = rss_kib(server.proc.pid)
    s = socket.create_connection(("127.0.0.1", server.port("pop3")))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.recv(1000)
    s.sendall(b"USER big@example.com\r\nPASS pw\r\n" + b"RETR 1\r\n" * 300)
    time.sleep(2)
    grown = rss_kib(server.proc.pid) - before
    # 300 answers would be ~300 MB if queued; back-pressure keeps it to a few.
    assert grown < 64 * 1024, f"server grew by {grown} KiB"
    s.close()
