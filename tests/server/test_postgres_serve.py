"""`letterbox serve` on the PostgreSQL store (workers = 1): real clients over IMAP, POP3,
LMTP, SMTP and the console against a server process on a database of its own."""

from __future__ import annotations

import imaplib
import poplib
import re
import smtplib
from typing import Any

import httpx
import pytest

from letterbox.store.api import Quota
from tests.conftest import ServerProcess
from tests.server.pgserve import PASSWORD, Idler, imap, lmtp, msg, new_database, on_postgres

USER = "alice@example.com"
# 8-bit text, a 1900-octet line, a dot to unstuff and a body past one 64 KiB read: the
# bytes must come back as sent.
BIG = msg(1, ("Grüße " * 10 + "\r\n").encode() * 1500 + b".dot\r\n" + bytes(range(32, 127)) * 20 + b"\r\n")


@pytest.fixture
def srv(make_server: Any) -> ServerProcess:
    s = on_postgres(make_server, new_database(), web="true")
    s.add_user(USER, PASSWORD)
    return s


def test_delivery_reaches_idle_and_fetch_gives_the_bytes_back(srv: ServerProcess) -> None:
    idler = Idler(srv, USER)
    try:
        assert lmtp(srv, USER, BIG) == {}
        assert idler.next_line(10) == b"* 1 EXISTS"
    finally:
        idler.close()
    with smtplib.SMTP("127.0.0.1", srv.port("smtp")) as c:
        assert c.sendmail("x@remote.example", [USER], msg(2)) == {}
    conn = imap(srv, USER)
    try:
        conn.select("INBOX")
        typ, data = conn.uid("FETCH", "1:*", "(RFC822.SIZE BODY.PEEK[])")
        assert typ == "OK"
        parts = [d for d in data if isinstance(d, tuple)]
        assert len(parts) == 2
        first = parts[0][1]
        # The server puts its trace fields on top; the rest is the message as sent.
        assert first.endswith(BIG) and first.startswith(b"Return-Path: <x@remote.example>\r\n")
        assert f"RFC822.SIZE {len(first)}".encode() in parts[0][0]
        assert parts[1][1].endswith(msg(2))

        assert conn.uid("STORE", "1", "+FLAGS", r"(\Deleted $Seen-Later)")[0] == "OK"
        typ, data = conn.uid("FETCH", "1", "(FLAGS)")
        assert b"\\Deleted" in data[0] and b"$Seen-Later" in data[0]  # type: ignore[operator]
        typ, data = conn.expunge()
        assert typ == "OK" and data == [b"1"]
        typ, data = conn.uid("SEARCH", "ALL")
        assert data == [b"2"]
    finally:
        conn.logout()


def test_pop3_retr_and_dele(srv: ServerProcess) -> None:
    assert lmtp(srv, USER, BIG) == {} and lmtp(srv, USER, msg(2)) == {}
    pop = poplib.POP3("127.0.0.1", srv.port("pop3"), timeout=15)
    pop.user(USER)
    pop.pass_(PASSWORD)
    count, size = pop.stat()
    assert count == 2
    _, lines, octets = pop.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == retr_body(srv, 1) and b"\r\n".join(lines).endswith(BIG.rstrip(b"\r\n"))
    pop.dele(1)
    pop.quit()
    conn = imap(srv, USER)
    try:
        conn.select("INBOX")
        assert conn.uid("SEARCH", "ALL")[1] == [b"2"]
    finally:
        conn.logout()


def retr_body(srv: ServerProcess, n: int) -> bytes:
    conn = imap(srv, USER)
    try:
        conn.select("INBOX", readonly=True)
        _, data = conn.fetch(str(n), "(BODY.PEEK[])")
        part = data[0]
        assert isinstance(part, tuple)
        return part[1]
    finally:
        conn.logout()


def test_quota_refuses_a_delivery(srv: ServerProcess) -> None:
    srv.add_user("small@example.com", PASSWORD, quota=Quota(bytes=len(BIG) + 100, messages=0))
    assert lmtp(srv, "small@example.com", msg(1)) == {}
    refused = lmtp(srv, "small@example.com", BIG)
    assert refused["small@example.com"][0] == 552, refused
    conn = imap(srv, "small@example.com")
    try:
        typ, data = conn.append("INBOX", None, None, BIG)
        assert typ == "NO" and b"[OVERQUOTA]" in data[0], data  # type: ignore[operator]
        conn.select("INBOX")
        assert conn.uid("SEARCH", "ALL")[1] == [b"1"]
    finally:
        conn.logout()


def test_the_console_shows_the_account_usage(srv: ServerProcess) -> None:
    d = srv.directory()
    try:
        d.admins.add("root", "admin-secret-1")
        token = d.admins.new_token("root", "tests")
    finally:
        d.close()
    assert lmtp(srv, USER, msg(1)) == {}
    with httpx.Client(base_url=f"http://{srv.listeners['web'][0]}", timeout=20,
                      headers={"Authorization": f"Bearer {token}"}) as c:
        r = c.get(f"/api/v1/accounts/{USER}")
        assert r.status_code == 200, r.text
        page = httpx.get(f"http://{srv.listeners['web'][0]}/login", timeout=20)
        assert page.status_code == 200 and re.search(r'name="csrf"', page.text)


def test_an_unreachable_database_defers_mail_and_never_logs_the_password(make_server: Any) -> None:
    # The accounts directory is in the same database: the account cannot be looked up
    # either, which is a temporary failure too, never an unknown user.
    srv = on_postgres(make_server, "postgresql://letterbox:hunter2@127.0.0.1:1/mail")
    refused = lmtp(srv, USER, msg(1))
    assert 400 <= refused[USER][0] < 500, refused
    with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
        imap(srv, USER)
    log = srv.log_text()
    assert "the PostgreSQL store cannot be reached" in log
    assert "hunter2" not in log and "Traceback" not in log
