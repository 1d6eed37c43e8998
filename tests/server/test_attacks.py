"""Hostile clients against a real server: each attack runs in the background while
another client's commands must still be answered within a second, and the server's
memory stays bounded (peak RSS, read from /proc)."""

from __future__ import annotations

import imaplib
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ServerProcess

PW = "pw"
MB = 1024 * 1024


def imap(srv: ServerProcess, user: str) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    c.login(user, PW)
    return c


def rss(srv: ServerProcess, key: str = "VmRSS") -> int:
    """The server process's resident memory (or VmHWM: its peak), in bytes."""
    assert srv.proc is not None
    for line in Path(f"/proc/{srv.proc.pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(key)


def raw_login(srv: ServerProcess, user: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port("imap")))
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(f"a LOGIN {user} {PW}\r\n".encode())
    assert f.readline().startswith(b"a OK")
    return sock


def answered_meanwhile(srv: ServerProcess, user: str, attack: Callable[[], None], seconds: float = 3.0) -> float:
    """Run *attack* in a thread; meanwhile another client sends NOOPs. Returns the
    slowest NOOP round trip."""
    probe = imap(srv, user)
    probe.select("INBOX")
    worst = 0.0
    t = threading.Thread(target=attack, daemon=True)
    t.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        assert probe.noop()[0] == "OK"
        worst = max(worst, time.monotonic() - t0)
        time.sleep(0.02)
    probe.logout()
    return worst


def test_many_partial_fetches_of_a_big_message_by_a_client_that_does_not_read(server: ServerProcess) -> None:
    server.add_user("big@example.com", PW)
    server.add_user("probe@example.com", PW)
    c = imap(server, "big@example.com")
    line = b"x" * 998 + b"\r\n"
    size = 8 * MB
    c.append("INBOX", None, None, b"Subject: big\r\n\r\n" + line * (size // len(line)))
    c.logout()
    before = rss(server)
    items = " ".join(f"BODY.PEEK[]<{k}.4294967295>" for k in range(20))
    socks: list[socket.socket] = []

    def attack() -> None:
        for _ in range(4):  # four clients asking for 20 copies each, reading nothing
            sock = raw_login(server, "big@example.com")
            sock.sendall(b"s SELECT INBOX\r\nf FETCH 1 (" + items.encode() + b")\r\n")
            socks.append(sock)

    worst = answered_meanwhile(server, "probe@example.com", attack)
    grown = rss(server) - before
    for sock in socks:
        sock.close()
    # Before: every copy of the 8 MB message was built in memory: 4 x 20 x 8 MB.
    assert grown < 64 * MB, f"RSS grew by {grown // MB} MB"
    assert worst < 1.0, f"a NOOP took {worst:.2f} s"


def test_hostile_list_patterns_freeze_no_one(server: ServerProcess) -> None:
    server.add_user("pat@example.com", PW)
    c = imap(server, "pat@example.com")
    c.create("a" * 200)
    results: list[str] = []

    def attack() -> None:
        x = imap(server, "pat@example.com")
        for pattern in ("%" * 48 + "x", "%%%%%%x", "*%" * 500 + "x"):
            results.append(x.list('""', f'"{pattern}"')[0])

    worst = answered_meanwhile(server, "pat@example.com", attack)
    assert results == ["OK", "OK", "OK"]
    assert worst < 1.0, f"a NOOP took {worst:.2f} s"


@pytest.mark.timeout(300)
def test_a_pipelined_flood_takes_turns_and_is_not_buffered_without_bound(server: ServerProcess) -> None:
    server.add_user("flood@example.com", PW)
    server.add_user("probe@example.com", PW)
    c = imap(server, "flood@example.com")
    for i in range(300):
        c._simple_command("CREATE", f"folder{i:04d}/with/some/depth")
    c.logout()
    before = rss(server)
    socks = []

    def attack() -> None:
        for _ in range(3):
            sock = raw_login(server, "flood@example.com")
            sock.sendall(b"".join(b"l%d LIST \"\" *\r\n" % i for i in range(2000)))
            socks.append(sock)  # and never read the answers

    worst = answered_meanwhile(server, "probe@example.com", attack)
    grown = rss(server) - before
    for sock in socks:
        sock.close()
    assert worst < 1.0, f"a NOOP took {worst:.2f} s"
    # Each flood's answers are 2,000 x 900 lines (about 100 MB): only what the socket
    # takes is ever queued.
    assert grown < 64 * MB, f"RSS grew by {grown // MB} MB"
