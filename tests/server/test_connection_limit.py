"""max_connections_per_ip: IMAP and POP3 together, inbound SMTP on its own, LMTP (the
local MTA) never limited."""

from __future__ import annotations

import socket
import time

from tests.conftest import ServerProcess


def connect(srv: ServerProcess, label: str) -> tuple[socket.socket, bytes]:
    s = socket.create_connection(("127.0.0.1", srv.port(label)), timeout=5)
    return s, s.recv(200)


def test_per_address_limits(make_server) -> None:  # type: ignore[no-untyped-def]
    srv: ServerProcess = make_server(max_conn=3)
    held = []
    try:
        for label in ("imap", "pop3", "imap"):
            s, greeting = connect(srv, label)
            held.append(s)
            assert b"OK" in greeting
        s, refusal = connect(srv, "pop3")
        assert refusal == b"-ERR [SYS/TEMP] Too many connections, try again later\r\n"
        s.close()
        s, refusal = connect(srv, "imap")
        assert refusal == b"* BYE [UNAVAILABLE] Too many connections, try again later\r\n"
        s.close()

        for _ in range(3):
            s, greeting = connect(srv, "smtp")
            held.append(s)
            assert greeting.startswith(b"220 ")
        s, refusal = connect(srv, "smtp")
        assert refusal == b"421 4.7.0 Too many connections from your address\r\n"
        assert s.recv(100) == b""  # and closed
        s.close()

        for _ in range(5):
            s, greeting = connect(srv, "lmtp")
            held.append(s)
            assert greeting.startswith(b"220 ")
        # LMTP sessions ending do not give SMTP places back.
        for lmtp in held[-5:-2]:
            lmtp.sendall(b"QUIT\r\n")
            assert lmtp.recv(100).startswith(b"221")
        time.sleep(0.2)
        s, refusal = connect(srv, "smtp")
        assert refusal.startswith(b"421 4.7.0")
        s.close()

        # A session that ends frees its place.
        smtp = held[3]
        smtp.sendall(b"QUIT\r\n")
        assert smtp.recv(100).startswith(b"221")
        smtp.close()
        for _ in range(50):
            s, greeting = connect(srv, "smtp")
            if greeting.startswith(b"220 "):
                break
            s.close()
        assert greeting.startswith(b"220 ")
        s.close()
    finally:
        for s in held:
            s.close()
    assert "smtp connection from 127.0.0.1 refused: 3 connections already" in srv.log_text()


def test_implicit_tls_connections_count_during_the_handshake(make_server) -> None:  # type: ignore[no-untyped-def]
    """Half-open TLS connections from one address take its places (and only those):
    they used to be uncounted until the handshake ended, and exhausted descriptors."""
    srv: ServerProcess = make_server(max_conn=3, handshake_timeout=1.0)
    half = [socket.create_connection(("127.0.0.1", srv.port("imaps")), timeout=5) for _ in range(3)]
    time.sleep(0.2)
    s, refusal = connect(srv, "imap")
    assert refusal.startswith(b"* BYE [UNAVAILABLE]")
    s.close()
    # Silent handshakes end at tls_handshake_timeout, logged with the address.
    for h in half:
        assert h.recv(100) == b""
        h.close()
    s, greeting = connect(srv, "imap")
    assert b"OK" in greeting
    s.close()
    assert "TLS handshake with 127.0.0.1 failed: timed out" in srv.log_text()


def test_the_global_cap_refuses_and_logs(make_server) -> None:  # type: ignore[no-untyped-def]
    srv: ServerProcess = make_server(max_conn=100, max_total=2)
    held = [connect(srv, "imap")[0], connect(srv, "pop3")[0]]
    s, refusal = connect(srv, "imap")
    assert refusal.startswith(b"* BYE [UNAVAILABLE]")
    assert "server full (2 connections)" in srv.log_text()
    for h in held:
        h.close()


def test_a_trickling_client_is_cut_off_at_the_login_deadline(make_server) -> None:  # type: ignore[no-untyped-def]
    srv: ServerProcess = make_server(login_deadline=1.5)
    s, greeting = connect(srv, "imap")
    t0 = time.monotonic()
    closed = False
    while time.monotonic() - t0 < 10:
        try:
            s.sendall(b"a")  # a byte now and then: never silent, never a whole line
        except OSError:
            closed = True
            break
        s.settimeout(0.3)
        try:
            data = s.recv(200)
        except TimeoutError:
            continue
        if not data or b"BYE" in data:
            closed = True
            break
    s.close()
    assert closed and time.monotonic() - t0 < 10


def test_client_key_is_the_address_or_its_64() -> None:
    from letterbox.net import client_key

    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")


def test_a_literal_trickled_byte_by_byte_is_cut_off_at_the_command_deadline(make_server) -> None:  # type: ignore[no-untyped-def]
    srv: ServerProcess = make_server(command_timeout=1.5)
    srv.add_user("slow@example.com", "pw")
    s, _ = connect(srv, "imap")
    s.sendall(b"a LOGIN slow@example.com pw\r\nb APPEND INBOX {1000}\r\n")
    got = b""
    while b"+ Ready" not in got:
        got += s.recv(200)
    t0 = time.monotonic()
    s.settimeout(0.3)
    reply = b""
    while time.monotonic() - t0 < 10:
        try:
            s.sendall(b"x")
            reply += s.recv(200)
        except TimeoutError:
            continue
        except OSError:
            break
        if not reply or b"BYE" in reply:
            break
    s.close()
    assert b"BYE" in reply and time.monotonic() - t0 < 10
