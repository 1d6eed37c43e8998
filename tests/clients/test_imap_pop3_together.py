"""One mailbox, two protocols and an outside delivery agent, with real client libraries."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import subprocess
import sys
import time

from tests.conftest import ServerProcess

PASSWORD = "pw"
MSG = b"From: a@example.org\r\nSubject: both\r\n\r\nbody\r\n"


def setup(srv: ServerProcess, user: str, n: int) -> None:
    srv.add_user(user, PASSWORD)
    with smtplib.LMTP("127.0.0.1", srv.port("lmtp")) as lmtp:
        for _ in range(n):
            lmtp.sendmail("a@example.org", [user], MSG)


def read_until_tag(c: imaplib.IMAP4, tag: bytes) -> list[bytes]:
    lines = []
    while True:
        line = c.readline()
        lines.append(line)
        if line.startswith(tag):
            return lines


def test_pop3_delete_reaches_idle_imap_session_as_expunge(server: ServerProcess) -> None:
    setup(server, "both@example.com", 3)
    imap = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    imap.login("both@example.com", PASSWORD)
    imap.select("INBOX")
    imap.send(b"I1 IDLE\r\n")
    assert imap.readline().startswith(b"+")
    pop = poplib.POP3("127.0.0.1", server.port("pop3"))
    pop.user("both@example.com")
    pop.pass_(PASSWORD)
    pop.dele(2)
    pop.quit()
    imap.sock.settimeout(5)
    assert imap.readline() == b"* 2 EXPUNGE\r\n"
    imap.send(b"DONE\r\n")
    assert read_until_tag(imap, b"I1")[-1].startswith(b"I1 OK")
    typ, data = imap.uid("SEARCH", None, "ALL")
    assert data == [b"1 3"]
    imap.logout()


def test_imap_expunge_during_pop3_session(server: ServerProcess) -> None:
    setup(server, "both2@example.com", 2)
    pop = poplib.POP3("127.0.0.1", server.port("pop3"))
    pop.user("both2@example.com")
    pop.pass_(PASSWORD)
    assert pop.stat()[0] == 2
    imap = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    imap.login("both2@example.com", PASSWORD)
    imap.select("INBOX")
    imap.store("1", "+FLAGS", "(\\Deleted)")
    imap.expunge()
    imap.logout()
    # POP3 keeps its numbering; the vanished message is an error, not a crash.
    try:
        pop.retr(1)
        raise AssertionError("RETR of a message expunged by IMAP succeeded")
    except poplib.error_proto as e:
        assert str(e).startswith("b'-ERR")
    resp, lines, _ = pop.retr(2)
    assert resp.startswith(b"+OK") and b"Subject: both" in lines
    pop.dele(1)
    pop.quit()


def test_idle_sees_letterbox_deliver_from_another_process(server: ServerProcess) -> None:
    setup(server, "pipe@example.com", 0)
    imap = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    imap.login("pipe@example.com", PASSWORD)
    imap.select("INBOX")
    imap.send(b"I1 IDLE\r\n")
    assert imap.readline().startswith(b"+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "letterbox", "deliver", "--to", "pipe@example.com"],
        env=server.env, stdin=subprocess.PIPE, cwd=server.home,
    )
    proc.communicate(b"Subject: piped\n\nhello\n", timeout=60)
    done = time.monotonic()
    assert proc.returncode == 0
    imap.sock.settimeout(5)
    assert imap.readline() == b"* 1 EXISTS\r\n"
    assert time.monotonic() - done < 1.0
    imap.send(b"DONE\r\n")
    read_until_tag(imap, b"I1")
    typ, data = imap.fetch("1", "(BODY.PEEK[])")
    # Bare LF from the pipe is stored in CRLF wire form.
    assert b"Subject: piped\r\n\r\nhello\r\n" in data[0][1]
    imap.logout()
