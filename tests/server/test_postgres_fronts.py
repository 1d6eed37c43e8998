"""Two `letterbox serve` front ends on one PostgreSQL database, as real processes.

Each front end has its own data_dir; the mail and the accounts directory are the
database's (see tests/server/test_postgres_directory.py for the directory)."""

from __future__ import annotations

import poplib
import smtplib
import threading
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.server.pgserve import (
    PASSWORD,
    Idler,
    add_everywhere,
    assert_each_acked_once,
    lmtp,
    msg,
    new_database,
    on_postgres,
)
from tests.waiting import wait_for

USER = "alice@example.com"


@pytest.fixture
def fronts(make_server: Any) -> tuple[ServerProcess, ServerProcess]:
    dsn = new_database()
    a, b = on_postgres(make_server, dsn), on_postgres(make_server, dsn)
    add_everywhere([a, b], USER)  # once: the directory is shared
    return a, b


def test_idle_on_one_front_end_sees_a_delivery_through_the_other(fronts: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = fronts
    idler = Idler(a, USER)
    try:
        assert lmtp(b, USER, msg(1)) == {}
        # Acknowledged by B: A's session hears of it through LISTEN/NOTIFY within 1 s.
        assert idler.next_line(1.0) == b"* 1 EXISTS"
    finally:
        idler.close()


def test_pop3_on_one_front_end_locks_out_the_other(fronts: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = fronts
    assert lmtp(a, USER, msg(1)) == {}
    first = poplib.POP3("127.0.0.1", a.port("pop3"), timeout=15)
    first.user(USER)
    first.pass_(PASSWORD)
    second = poplib.POP3("127.0.0.1", b.port("pop3"), timeout=15)
    second.user(USER)
    with pytest.raises(poplib.error_proto, match=r"IN-USE"):
        second.pass_(PASSWORD)
    first.quit()
    third = poplib.POP3("127.0.0.1", b.port("pop3"), timeout=15)
    third.user(USER)
    third.pass_(PASSWORD)
    assert third.stat()[0] == 1
    third.quit()


class Sender(threading.Thread):
    """LMTP deliveries one after another, each with its own Message-ID, until stopped or
    the front end goes away; records which were acknowledged."""

    def __init__(self, srv: ServerProcess, prefix: str) -> None:
        super().__init__(daemon=True)
        self.srv, self.prefix = srv, prefix
        self.acked: list[str] = []
        self.stop = threading.Event()
        self.failed: Exception | None = None

    def run(self) -> None:
        n = 0
        try:
            with smtplib.LMTP("127.0.0.1", self.srv.port("lmtp"), timeout=15) as c:
                while not self.stop.is_set():
                    n += 1
                    mid = f"{self.prefix}{n}"
                    body = f"From: a@example.org\r\nMessage-ID: <{mid}@test>\r\n\r\n{'x' * 2000}\r\n".encode()
                    if c.sendmail("x@remote.example", [USER], body) == {}:
                        self.acked.append(mid)
        except (OSError, smtplib.SMTPException) as e:
            self.failed = e



def test_kill_9_of_one_front_end_during_deliveries_loses_nothing(fronts: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = fronts
    to_a, to_b = Sender(a, "a"), Sender(b, "b")
    to_a.start()
    to_b.start()
    assert wait_for(lambda: len(to_a.acked) >= 20 and len(to_b.acked) >= 20, 20), (to_a.failed, to_b.failed)
    a.kill()  # SIGKILL, in the middle of a delivery most likely
    to_a.join(20)
    assert to_a.failed is not None  # A's connection died with it
    # B keeps serving.
    after_kill = len(to_b.acked)
    assert wait_for(lambda: len(to_b.acked) >= after_kill + 20, 20), to_b.failed
    to_b.stop.set()
    to_b.join(20)
    assert to_b.failed is None, to_b.failed

    # At most the one delivery in flight at the kill went in unacknowledged.
    assert_each_acked_once(b, USER, to_a.acked + to_b.acked, unacked_at_most=1)
