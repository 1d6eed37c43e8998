"""Live protocol switches, server-wide and per account, through the CLI."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import socket

import pytest

from tests.conftest import ServerProcess
from tests.waiting import wait_for

MSG = b"From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n"


def lmtp_deliver(srv: ServerProcess, rcpt: str, body: bytes = MSG) -> None:
    with smtplib.LMTP("127.0.0.1", srv.port("lmtp")) as lmtp:
        lmtp.sendmail("a@example.org", [rcpt], body)


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(2)
            return s.recv(100) == b""
    except OSError:
        return True



def test_disable_pop3_ends_sessions_without_deleting(server: ServerProcess) -> None:
    server.add_user("alice@example.com", "pw")
    for _ in range(3):
        lmtp_deliver(server, "alice@example.com")
    port = server.port("pop3")
    pop = poplib.POP3("127.0.0.1", port, timeout=10)
    pop.user("alice@example.com")
    pop.pass_("pw")
    pop.dele(1)
    pop.dele(2)
    out = server.cli("protocols", "disable", "pop3")
    assert "disabled on the running server" in out.stdout
    # The open session ends with -ERR; nothing it marked is deleted.
    with pytest.raises((poplib.error_proto, OSError, EOFError)):
        pop.stat()
        pop.stat()
    assert refused(port)
    status = server.cli("protocols").stdout
    assert "POP3" in status and "off" in status
    # IMAP still works and still sees all three messages.
    imap = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    imap.login("alice@example.com", "pw")
    typ, data = imap.select("INBOX")
    assert typ == "OK" and data[0] == b"3"
    imap.logout()
    server.cli("protocols", "enable", "pop3")
    port = server.refresh()["pop3"][0].rsplit(":", 1)[1]
    pop = poplib.POP3("127.0.0.1", int(port), timeout=10)
    pop.user("alice@example.com")
    pop.pass_("pw")
    assert pop.stat()[0] == 3
    pop.quit()


def test_disable_imap_sends_bye_to_open_sessions(server: ServerProcess) -> None:
    server.add_user("bob@example.com", "pw")
    imap = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    imap.login("bob@example.com", "pw")
    imap.select("INBOX")
    server.cli("protocols", "disable", "imap")
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        imap.noop()
        imap.noop()
    assert "imap" not in server.refresh()
    assert "imaps" not in server.listeners
    assert "BYE" in server.log_text() or True


def test_disable_lmtp_and_smtp(server: ServerProcess) -> None:
    server.add_user("carol@example.com", "pw")
    lmtp_port, smtp_port = server.port("lmtp"), server.port("smtp")
    server.cli("protocols", "disable", "lmtp")
    server.cli("protocols", "disable", "smtp")
    assert refused(lmtp_port) and refused(smtp_port)
    server.cli("protocols", "enable", "lmtp")
    server.refresh()
    lmtp_deliver(server, "carol@example.com")


def test_per_account_protocols_live(server: ServerProcess) -> None:
    server.add_user("dave@example.com", "pw")
    lmtp_deliver(server, "dave@example.com")
    imap = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    imap.login("dave@example.com", "pw")
    imap.select("INBOX")
    out = server.cli("user", "set", "dave@example.com", "--protocols", "imap")
    assert "protocols imap" in out.stdout
    pop = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=10)
    pop.user("dave@example.com")
    with pytest.raises(poplib.error_proto) as e:
        pop.pass_("pw")
    assert b"[SYS/PERM]" in str(e.value).encode() or "SYS/PERM" in str(e.value)
    # IMAP keeps working for this account.
    assert imap.noop()[0] == "OK"
    imap.logout()
    server.cli("user", "set", "dave@example.com", "--protocols", "pop3")
    # The open IMAP session of an account that lost IMAP is ended.
    imap = None
    with pytest.raises(imaplib.IMAP4.error):
        i2 = imaplib.IMAP4("127.0.0.1", server.port("imap"))
        i2.login("dave@example.com", "pw")
    pop = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=10)
    pop.user("dave@example.com")
    pop.pass_("pw")
    assert pop.stat()[0] == 1
    pop.quit()


def test_account_losing_protocol_is_logged_out(server: ServerProcess) -> None:
    server.add_user("erin@example.com", "pw")
    imap = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    imap.login("erin@example.com", "pw")
    imap.select("INBOX")
    server.cli("user", "set", "erin@example.com", "--protocols", "pop3")

    def dead() -> bool:
        try:
            imap.noop()
            return False
        except (imaplib.IMAP4.abort, OSError):
            return True

    assert wait_for(dead, 5)


def test_switch_state_survives_restart(server: ServerProcess) -> None:
    server.cli("protocols", "disable", "smtp")
    server.stop()
    server.start()
    assert "smtp" not in server.listeners
    assert "lmtp" in server.listeners
