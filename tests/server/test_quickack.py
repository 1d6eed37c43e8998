"""No command waits on the delayed-ACK timer.

A client with Nagle's algorithm on (Python's default socket, imaplib) sends the rest of a
command (a literal's CRLF, a SASL response's CRLF, the final dot of DATA) only once its
previous small write is acknowledged; unless the server acknowledges at once, Linux
delays that ACK up to 40 ms. Twenty such commands stalled take over 800 ms, answered at
once about 20 ms: the bound of 400 ms is wide and still fails if the stall returns.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from typing import BinaryIO

import pytest

from letterbox.server.connection import _asks_for_more
from letterbox.service.sockopts import quickack
from tests.conftest import ServerProcess

PW = "pw"
ROUNDS = 20
BOUND = 0.4


def _connect(srv: ServerProcess, label: str) -> tuple[socket.socket, BinaryIO]:
    sock = socket.create_connection(("127.0.0.1", srv.port(label)))
    assert not sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)  # Nagle on
    if label.endswith("s"):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        sock = ctx.wrap_socket(sock)
    return sock, sock.makefile("rb")


def _until(f: BinaryIO, prefix: bytes) -> bytes:
    while True:
        line = f.readline()
        assert line, "connection closed"
        if line.startswith(prefix):
            return line


def _timed(rounds: Callable[[int], None]) -> float:
    t0 = time.perf_counter()
    for i in range(ROUNDS):
        rounds(i)
    return time.perf_counter() - t0


@pytest.mark.parametrize("label", ["imap", "imaps"])
def test_a_literal_and_its_crlf_in_two_writes_are_not_delayed(server: ServerProcess, label: str) -> None:
    server.add_user("q@example.com", PW)
    sock, f = _connect(server, label)
    f.readline()
    sock.sendall(b"a LOGIN q@example.com " + PW.encode() + b"\r\nb SELECT INBOX\r\n")
    assert _until(f, b"b ").startswith(b"b OK")

    def search(i: int) -> None:
        sock.sendall(b"s%d SEARCH SUBJECT {3}\r\n" % i)
        assert f.readline().startswith(b"+ ")
        sock.sendall(b"xyz")
        sock.sendall(b"\r\n")
        assert _until(f, b"s%d " % i).startswith(b"s%d OK" % i)

    elapsed = _timed(search)
    sock.close()
    assert elapsed < BOUND, f"{ROUNDS} split literals took {elapsed * 1000:.0f} ms"


def test_a_pop3_sasl_response_and_its_crlf_in_two_writes_are_not_delayed(server: ServerProcess) -> None:
    server.add_user("q@example.com", PW)
    sock, f = _connect(server, "pop3s")
    f.readline()

    def auth(i: int) -> None:
        sock.sendall(b"AUTH PLAIN\r\n")
        assert f.readline() == b"+ \r\n"
        sock.sendall(b"*")  # the client cancels: no password check, no failure delay
        sock.sendall(b"\r\n")
        assert f.readline().startswith(b"-ERR")

    elapsed = _timed(auth)
    sock.close()
    assert elapsed < BOUND, f"{ROUNDS} split SASL responses took {elapsed * 1000:.0f} ms"


def test_lmtp_data_and_its_final_dot_in_two_writes_are_not_delayed(server: ServerProcess) -> None:
    """Each delivery waits for its fsyncs, which a loaded machine can make slow: so each
    split delivery is compared with one sent in a single write just before it, and the
    median difference must stay well under one 40 ms stall."""
    server.add_user("q@example.com", PW)
    sock, f = _connect(server, "lmtp")
    _until(f, b"220 ")
    sock.sendall(b"LHLO client.test\r\n")
    _until(f, b"250 ")
    body = b"Subject: split\r\n\r\n" + b"a line of text\r\n" * 100

    def deliver(split: bool) -> float:
        for command in (b"MAIL FROM:<a@client.test>\r\n", b"RCPT TO:<q@example.com>\r\n", b"DATA\r\n"):
            sock.sendall(command)
            reply = _until(f, b"")
        assert reply.startswith(b"354"), reply
        t0 = time.perf_counter()
        if split:
            sock.sendall(body)
            sock.sendall(b".\r\n")
        else:
            sock.sendall(body + b".\r\n")
        assert _until(f, b"").startswith(b"250")
        return time.perf_counter() - t0

    extra = sorted(deliver(split=True) - deliver(split=False) for _ in range(ROUNDS))
    sock.close()
    median = extra[ROUNDS // 2]
    assert median < 0.015, f"a split DATA took {median * 1000:.1f} ms longer than one write (median)"


def test_quickack_is_a_no_op_on_a_unix_socket_or_none() -> None:
    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        quickack(a)
        a.sendall(b"x")
        assert b.recv(1) == b"x"
    quickack(a)  # closed
    quickack(None)


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="Linux only")
def test_quickack_sets_the_flag_on_a_tcp_socket() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        served, _ = listener.accept()
        with client, served:
            served.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)
            assert served.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 0
            quickack(served)
            assert served.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        ([b"+ Ready for literal data\r\n"], True),
        ([b"* 3 EXISTS\r\n+ idling\r\n"], True),
        ([b"+ \r\n"], True),
        ([b"+\r\n"], True),
        ([b"+OK Logged in\r\n"], False),
        ([b"+ go\r\n", b"a OK done\r\n"], False),
        ([b"* 1 FETCH (BODY[] {4}\r\n+ x\r\n)\r\n"], False),
    ],
)
def test_continuation_requests_are_recognised(out: list[bytes], expected: bool) -> None:
    assert _asks_for_more(out) is expected
