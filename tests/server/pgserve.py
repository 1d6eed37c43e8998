"""Servers on PostgreSQL for the tests: a database of their own, one or more front ends.

Front ends on one database share the accounts directory too (auth.pgdirectory): an
account added through one is every front end's.
"""

from __future__ import annotations

import asyncio
import imaplib
import re
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


def on_postgres(make_server: Any, dsn: str, statement_timeout: float | None = None, **opts: object) -> ServerProcess:
    extra = f'backend = "postgresql"\ndsn = "{dsn}"'
    if statement_timeout is not None:
        extra += f"\nstatement_timeout = {statement_timeout}"
    srv: ServerProcess = make_server(store_extra=extra, **opts)
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


def assert_each_acked_once(srv: ServerProcess, user: str, acked: list[str], unacked_at_most: int) -> None:
    """Every acknowledged message (Message-ID <a1@test>, <b7@test>...) is in *user*'s INBOX,
    read through *srv*, none is there twice, and at most *unacked_at_most* others are
    (deliveries in flight when their answer was lost)."""
    conn = imap(srv, user)
    try:
        conn.select("INBOX", readonly=True)
        _, data = conn.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    finally:
        conn.logout()
    found = [m.decode() for part in data if isinstance(part, tuple)
             for m in re.findall(rb"<([ab]\d+)@test>", part[1])]
    assert len(found) == len(set(found)), "a message stored twice"
    missing = set(acked) - set(found)
    assert not missing, f"acknowledged but lost: {sorted(missing)}"
    assert len(set(found) - set(acked)) <= unacked_at_most
