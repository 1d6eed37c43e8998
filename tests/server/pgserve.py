"""Servers on PostgreSQL for the tests: a database of their own, one or more front ends.

Front ends on one database share the accounts directory too (auth.pgdirectory): an
account added through one is every front end's.
"""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import socket
from typing import Any

from letterbox.store.api import Quota
from tests.conftest import ServerProcess
from tests.store.postgres.harness import fresh_database

PASSWORD = "pw"


def new_database() -> str:
    """A fresh database (skips the test without PostgreSQL, as the harness does)."""
    return asyncio.run(fresh_database())


def on_postgres(make_server: Any, dsn: str, **opts: object) -> ServerProcess:
    srv: ServerProcess = make_server(store_extra=f'backend = "postgresql"\ndsn = "{dsn}"', **opts)
    return srv


def add_everywhere(servers: list[ServerProcess], address: str, quota: Quota = Quota()) -> None:
    """An account of every front end: added once, through the first, to the directory
    they share."""
    servers[0].add_user(address, PASSWORD, quota=quota)


def msg(n: int, extra: bytes = b"") -> bytes:
    return (f"From: a@example.org\r\nMessage-ID: <m{n}@test>\r\nSubject: {n}\r\n\r\nbody {n}\r\n".encode()
            + extra)


def lmtp(srv: ServerProcess, rcpt: str, body: bytes) -> dict[str, tuple[int, bytes]]:
    """One LMTP delivery; the refusals by recipient ({} when stored)."""
    with smtplib.LMTP("127.0.0.1", srv.port("lmtp")) as c:
        try:
            return c.sendmail("x@remote.example", [rcpt], body)
        except smtplib.SMTPRecipientsRefused as e:
            return {k: (v[0], v[1]) for k, v in e.recipients.items()}
        except smtplib.SMTPDataError as e:
            return {rcpt: (e.smtp_code, e.smtp_error)}


def imap(srv: ServerProcess, user: str) -> imaplib.IMAP4:
    conn = imaplib.IMAP4("127.0.0.1", srv.port("imap"), timeout=15)
    conn.login(user, PASSWORD)
    return conn


class Idler:
    """A raw IMAP session in IDLE on INBOX (imaplib has no IDLE before Python 3.14)."""

    def __init__(self, srv: ServerProcess, user: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", srv.port("imap")), timeout=15)
        self.f = self.sock.makefile("rb")
        assert self.f.readline().startswith(b"* OK")
        self.sock.sendall(f"a LOGIN {user} {PASSWORD}\r\nb SELECT INBOX\r\n".encode())
        while not (line := self.f.readline()).startswith(b"b "):
            assert line, "connection closed"
        assert line.startswith(b"b OK"), line
        self.sock.sendall(b"c IDLE\r\n")
        assert self.f.readline().startswith(b"+")

    def next_line(self, timeout: float) -> bytes:
        self.sock.settimeout(timeout)
        return self.f.readline().strip()

    def close(self) -> None:
        self.sock.close()
