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
        assert refusal == b"-ERR [SYS/TEMP] Too many connections from your address\r\n"
        s.close()
        s, refusal = connect(srv, "imap")
        assert refusal == b"* BYE Too many connections from your address\r\n"
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
