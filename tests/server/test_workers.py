"""`[server] workers = 2`: real processes, connections landing in different workers.

The supervisor hands each connection to the worker serving the fewest, so with one
connection open the next lands in the other worker; `status` on the control socket
says which worker holds what, and each test checks that before relying on it.
"""

from __future__ import annotations

import imaplib
import json
import os
import poplib
import signal
import smtplib
import socket
import threading
from typing import Any

import pytest

from letterbox.server import control
from tests.conftest import ServerProcess
from tests.waiting import wait_for

USER = "alice@example.com"
PASSWORD = "pw"


def msg(n: int) -> bytes:
    return f"From: a@example.org\r\nMessage-ID: <m{n}@test>\r\nSubject: {n}\r\n\r\nbody {n}\r\n".encode()


def status(srv: ServerProcess) -> dict[str, Any]:
    reply = control.send_command(srv.home / "run", {"cmd": "status"})
    assert reply is not None and reply["ok"], reply
    return reply


def busy_workers(srv: ServerProcess) -> list[int]:
    """Connections each worker serves, as the supervisor counts them."""
    return [w["connections"] for w in status(srv)["workers"]]


def worker_pids(srv: ServerProcess) -> list[int]:
    pids: list[int] = json.loads((srv.home / "run" / "listeners.json").read_text())["workers"]
    return pids



def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.settimeout(5)
            return s.recv(100) == b""
    except OSError:
        return True


@pytest.fixture
def two(make_server) -> ServerProcess:  # type: ignore[no-untyped-def]
    srv: ServerProcess = make_server(workers=2)
    srv.add_user(USER, PASSWORD)
    assert len(worker_pids(srv)) == 2
    return srv


def imap_login(srv: ServerProcess, user: str = USER) -> imaplib.IMAP4:
    conn = imaplib.IMAP4("127.0.0.1", srv.port("imap"), timeout=15)
    conn.login(user, PASSWORD)
    return conn


def test_idle_in_one_worker_sees_a_delivery_made_in_the_other(two: ServerProcess) -> None:
    sock = socket.create_connection(("127.0.0.1", two.port("imap")), timeout=15)
    f = sock.makefile("rb")
    assert f.readline().startswith(b"* OK")
    sock.sendall(f"a LOGIN {USER} {PASSWORD}\r\nb SELECT INBOX\r\n".encode())
    while not f.readline().startswith(b"b OK"):
        pass
    sock.sendall(b"c IDLE\r\n")
    assert f.readline().startswith(b"+")
    assert sorted(busy_workers(two)) == [0, 1]
    before = {w["index"]: w["feed"].get("received", 0) for w in status(two)["workers"]}
    with smtplib.LMTP("127.0.0.1", two.port("lmtp")) as lmtp:
        assert sorted(busy_workers(two)) == [1, 1]  # the delivery is in the other worker
        lmtp.sendmail("a@example.org", [USER], msg(1))
        sock.settimeout(10)
        assert f.readline().strip() == b"* 1 EXISTS"
    after = {w["index"]: w["feed"].get("received", 0) for w in status(two)["workers"]}
    # The IDLE heard of it from the change feed, not from the index poll.
    assert any(after[i] > before[i] for i in after)
    sock.close()


def test_pop3_maildrop_is_locked_across_workers(two: ServerProcess) -> None:
    with smtplib.LMTP("127.0.0.1", two.port("lmtp")) as lmtp:
        lmtp.sendmail("a@example.org", [USER], msg(1))
    first = poplib.POP3("127.0.0.1", two.port("pop3"), timeout=15)
    first.user(USER)
    first.pass_(PASSWORD)
    second = poplib.POP3("127.0.0.1", two.port("pop3"), timeout=15)
    assert sorted(busy_workers(two)) == [1, 1]
    second.user(USER)
    with pytest.raises(poplib.error_proto, match="IN-USE"):
        second.pass_(PASSWORD)
    first.quit()
    third = poplib.POP3("127.0.0.1", two.port("pop3"), timeout=15)
    third.user(USER)
    third.pass_(PASSWORD)
    assert third.stat()[0] == 1
    third.quit()


def test_connection_limits_count_across_workers(make_server) -> None:  # type: ignore[no-untyped-def]
    srv: ServerProcess = make_server(workers=2, max_conn=2)
    a = socket.create_connection(("127.0.0.1", srv.port("imap")), timeout=10)
    b = socket.create_connection(("127.0.0.1", srv.port("pop3")), timeout=10)
    assert a.recv(100).startswith(b"* OK") and b.recv(100).startswith(b"+OK")
    assert sorted(busy_workers(srv)) == [1, 1]
    with socket.create_connection(("127.0.0.1", srv.port("imap")), timeout=10) as c:
        assert c.recv(200).startswith(b"* BYE [UNAVAILABLE] Too many connections")
    a.close()
    assert wait_for(lambda: sum(busy_workers(srv)) == 1, 10)
    with socket.create_connection(("127.0.0.1", srv.port("imap")), timeout=10) as d:
        assert d.recv(100).startswith(b"* OK")
    b.close()


def test_protocol_switch_reaches_every_worker(two: ServerProcess) -> None:
    two.add_user("bob@example.com", PASSWORD)
    sessions = []
    for user in (USER, "bob@example.com"):
        pop = poplib.POP3("127.0.0.1", two.port("pop3"), timeout=15)
        pop.user(user)
        pop.pass_(PASSWORD)
        sessions.append(pop)
    assert sorted(busy_workers(two)) == [1, 1]
    port = two.port("pop3")
    two.cli("protocols", "disable", "pop3")
    for pop in sessions:  # both workers ended their session at once
        with pytest.raises((poplib.error_proto, OSError, EOFError)):
            pop.stat()
            pop.stat()
    assert refused(port)
    two.cli("protocols", "enable", "pop3")
    two.refresh()
    pop = poplib.POP3("127.0.0.1", two.port("pop3"), timeout=15)
    pop.user(USER)
    pop.pass_(PASSWORD)
    pop.quit()


def test_a_worker_killed_during_deliveries_loses_nothing_acknowledged(two: ServerProcess) -> None:
    acked: list[int] = []
    stop = threading.Event()

    def deliver(start: int) -> None:
        n = start
        while not stop.is_set():
            try:
                with smtplib.LMTP("127.0.0.1", two.port("lmtp")) as lmtp:
                    lmtp.sendmail("a@example.org", [USER], msg(n))
                acked.append(n)
            except (OSError, smtplib.SMTPException):
                pass  # not acknowledged: an MTA would try again
            n += 2

    threads = [threading.Thread(target=deliver, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    try:
        assert wait_for(lambda: len(acked) >= 20, 60)
        victim = worker_pids(two)[1]
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: len(worker_pids(two)) == 2 and victim not in worker_pids(two), 30)
        count = len(acked)
        assert wait_for(lambda: len(acked) >= count + 20, 60)  # both workers deliver again
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert "exited with status -9" in two.log_text()
    imap = imap_login(two)
    imap.select("INBOX")
    _, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    ids = [
        int(part[1].split(b"<m")[1].split(b"@")[0]) for part in data if isinstance(part, tuple)
    ]
    for n in acked:
        assert ids.count(n) == 1, f"message {n} present {ids.count(n)} times"
    imap.logout()


def test_repair_closes_the_account_in_every_worker(two: ServerProcess) -> None:
    """The primary rebuilds while the other worker has let go of the account (it held it
    open, and so shared the rebuild lock, until told)."""
    for n in (1, 2):
        with smtplib.LMTP("127.0.0.1", two.port("lmtp")) as lmtp:
            lmtp.sendmail("a@example.org", [USER], msg(n))
    held = [imap_login(two), imap_login(two)]
    for c in held:
        c.select("INBOX")
    assert sorted(busy_workers(two)) == [1, 1]
    out = two.cli("repair", USER, "--rebuild").stdout
    assert "rebuilt from the folders" in out
    for c in held:  # both sessions were ended
        with pytest.raises((imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError)):
            c.noop()
            c.noop()
    for _ in range(2):  # and the account serves again in both workers
        c = imap_login(two)
        assert c.select("INBOX")[1] == [b"2"]
        held.append(c)
    assert sorted(busy_workers(two)) == [1, 1]
    for c in held[2:]:
        c.logout()


def test_account_disabled_by_the_cli_ends_its_sessions_in_every_worker(two: ServerProcess) -> None:
    held = [imap_login(two), imap_login(two)]
    assert sorted(busy_workers(two)) == [1, 1]
    two.cli("user", "set", USER, "--disable")
    for c in held:
        with pytest.raises((imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError)):
            c.noop()
            c.noop()
    assert wait_for(lambda: sum(busy_workers(two)) == 0, 10)
    with pytest.raises(imaplib.IMAP4.error):
        imap_login(two)


def test_file_names_follow_flags_set_in_another_worker(two: ServerProcess) -> None:
    """Only the primary renames files (two renamers would unlink each other's names);
    it learns of a secondary's STORE from the change feed."""
    with smtplib.LMTP("127.0.0.1", two.port("lmtp")) as lmtp:
        lmtp.sendmail("a@example.org", [USER], msg(1))
    first, second = imap_login(two), imap_login(two)
    assert sorted(busy_workers(two)) == [1, 1]
    for c in (first, second):
        c.select("INBOX")
    cur = two.home / "data" / "mail" / "example.com" / "alice" / "cur"
    before = [p.name for p in cur.iterdir()]
    assert len(before) == 1 and not before[0].rsplit(":2,", 1)[1]
    second.store("1", "+FLAGS", "\\Flagged")  # in worker 1: the first connection went to worker 0
    first.noop()
    assert wait_for(lambda: [p.name.rsplit(":2,", 1)[1] for p in cur.iterdir()] == ["F"], 15)
    first.logout()
    second.logout()
