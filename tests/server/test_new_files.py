"""Files another delivery agent left in Maildir new/ folders join the index at start-up;
a big backlog is indexed while the server already serves."""

from __future__ import annotations

import imaplib
import os
import time
from pathlib import Path

from tests.conftest import ServerProcess

PASSWORD = "pw"
USER = "drop@example.com"


def drop_files(srv: ServerProcess, count: int) -> Path:
    new = srv.home / "data" / "mail" / "example.com" / "drop" / "new"
    for i in range(count):
        (new / f"{1700000000 + i}.M{i}P1.outside").write_bytes(b"Subject: dropped %d\r\n\r\nbody\r\n" % i)
    return new


def messages(srv: ServerProcess) -> int:
    c = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    try:
        c.login(USER, PASSWORD)
        typ, data = c.status("INBOX", "(MESSAGES)")
        assert typ == "OK"
        return int(data[0].split(b"MESSAGES ")[1].rstrip(b")"))  # type: ignore[union-attr]
    finally:
        c.logout()


def wait_for(srv: ServerProcess, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while (n := messages(srv)) != count:
        assert time.monotonic() < deadline, f"{n} messages, expected {count}"
        time.sleep(0.2)


def test_big_backlog_is_indexed_after_the_server_opens(make_server) -> None:  # type: ignore[no-untyped-def]
    srv: ServerProcess = make_server()
    srv.add_user(USER, PASSWORD)
    assert messages(srv) == 0  # the account's folders exist now
    srv.stop()
    new = drop_files(srv, 1500)
    srv.start()
    wait_for(srv, 1500)
    assert not os.listdir(new)
    assert "indexed 1500 of 1500 files from new/ folders" in srv.log_text()
    c = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    c.login(USER, PASSWORD)
    c.select("INBOX")
    typ, data = c.uid("FETCH", "1,1500", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK"
    assert b"dropped 0" in data[0][1] and b"dropped 1499" in data[2][1]  # type: ignore[index]
    c.logout()


def test_stopping_midway_leaves_the_rest_for_the_next_start(make_server) -> None:  # type: ignore[no-untyped-def]
    srv: ServerProcess = make_server()
    srv.add_user(USER, PASSWORD)
    assert messages(srv) == 0
    srv.stop()
    new = drop_files(srv, 3000)
    srv.start()
    srv.stop()
    cur = new.parent / "cur"
    assert len(os.listdir(new)) + len(os.listdir(cur)) == 3000
    srv.start()
    wait_for(srv, 3000)
    assert not os.listdir(new) and len(os.listdir(cur)) == 3000
    # A few files are indexed before the server answers at all.
    srv.stop()
    drop_files(srv, 5)
    srv.start()
    assert messages(srv) == 3005
