"""kill -9 mid-delivery: every acknowledged message survives exactly once."""

from __future__ import annotations

import os
import smtplib
import sqlite3
import threading
import time
from pathlib import Path

from tests.conftest import ServerProcess


def deliver_stream(port: int, rcpt: str, acked: list[bytes], stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        try:
            with smtplib.LMTP("127.0.0.1", port, timeout=10) as lmtp:
                while not stop.is_set():
                    n += 1
                    token = f"msg-{threading.get_ident()}-{n}".encode()
                    body = b"From: a@example.org\r\nSubject: " + token + b"\r\n\r\n" + token + b"\r\n" + (b"x" * 70 + b"\r\n") * (n % 70)
                    lmtp.sendmail("a@example.org", [rcpt], body)
                    acked.append(token)
        except (OSError, smtplib.SMTPException):
            return


def test_kill_during_delivery_loses_nothing_acknowledged(make_server) -> None:  # type: ignore[no-untyped-def]
    srv: ServerProcess = make_server()
    srv.add_user("crash@example.com")
    port = srv.port("lmtp")
    acked: list[bytes] = []
    stop = threading.Event()
    threads = [threading.Thread(target=deliver_stream, args=(port, "crash@example.com", acked, stop)) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 150 and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.kill()  # SIGKILL: no clean shutdown
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) >= 50, "too few deliveries before the kill to mean anything"

    srv.start()  # start-up reconciles index and files
    acked_copy = list(acked)
    account = srv.home / "data" / "mail" / "example.com" / "crash"
    db = sqlite3.connect(account / "letterbox.index")
    inbox = db.execute("SELECT id FROM mailboxes WHERE name = 'INBOX'").fetchone()[0]
    rows = db.execute(
        "SELECT uid, filename FROM messages WHERE mailbox_id = ? ORDER BY uid", (inbox,)
    ).fetchall()
    uidnext = db.execute("SELECT uidnext FROM mailboxes WHERE id = ?", (inbox,)).fetchone()[0]
    db.close()
    files = set(os.listdir(account / "cur"))
    # Index and files agree.
    assert {fn for _, fn in rows} == files
    uids = [u for u, _ in rows]
    assert uids == sorted(set(uids)) and uidnext > uids[-1]
    # Every acknowledged message is there exactly once.
    tokens: dict[bytes, int] = {}
    for _, fn in rows:
        data = (account / "cur" / fn).read_bytes()
        token = data.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0]
        tokens[token] = tokens.get(token, 0) + 1
    for t in acked_copy:
        assert tokens.get(t) == 1, f"acknowledged message {t!r} found {tokens.get(t, 0)} times"
    assert all(c == 1 for c in tokens.values())
    # New deliveries continue above every UID used before.
    with smtplib.LMTP("127.0.0.1", srv.refresh() and srv.port("lmtp")) as lmtp:
        lmtp.sendmail("a@example.org", ["crash@example.com"], b"Subject: after\r\n\r\nafter\r\n")
    db = sqlite3.connect(account / "letterbox.index")
    last = db.execute("SELECT max(uid) FROM messages WHERE mailbox_id = ?", (inbox,)).fetchone()[0]
    db.close()
    assert last >= uidnext
    assert Path(account / "tmp").is_dir()
