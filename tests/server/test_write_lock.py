"""Another process holding an account's index write lock (a CLI command, `letterbox
deliver`, the background indexer) never freezes the server: other sessions are served
meanwhile, and writes to that account wait their turn without blocking anyone."""

from __future__ import annotations

import imaplib
import sqlite3
import threading

from tests.conftest import ServerProcess

PW = "pw"


def imap(srv: ServerProcess, user: str) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    c.login(user, PW)
    return c


def test_a_held_write_lock_freezes_no_one(server: ServerProcess) -> None:
    server.add_user("locked@example.com", PW)
    server.add_user("free@example.com", PW)
    a, b = imap(server, "locked@example.com"), imap(server, "free@example.com")
    a.append("INBOX", None, None, b"Subject: x\r\n\r\nx\r\n")
    a.select("INBOX")
    b.select("INBOX")
    index = server.home / "data" / "mail" / "example.com" / "locked" / "letterbox.index"
    holder = sqlite3.connect(index, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # as a long CLI transaction would
    released = threading.Event()

    def release() -> None:
        holder.execute("COMMIT")
        holder.close()
        released.set()

    # Safety valve only: if the server froze, this is what would unfreeze it, too late.
    valve = threading.Timer(30, release)
    valve.start()
    order: list[str] = []
    try:
        writer = threading.Thread(
            target=lambda: order.append("store " + a.uid("STORE", "1", "+FLAGS", "(\\Seen)")[0])
        )
        writer.start()
        # While the STORE waits for the lock, another session is served, as is a read
        # of the locked account by a third one.
        assert b.noop()[0] == "OK"
        assert b.append("INBOX", None, None, b"Subject: y\r\n\r\ny\r\n")[0] == "OK"
        c = imap(server, "locked@example.com")
        assert c.select("INBOX", readonly=True)[0] == "OK"
        order.append("served while locked")
        assert not released.is_set(), "the server only answered once the lock was let go"
    finally:
        valve.cancel()
        if not released.is_set():
            release()
    writer.join(30)
    assert order == ["served while locked", "store OK"]
