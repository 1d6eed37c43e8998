"""`[server] workers = 2` on the PostgreSQL store: the store's LISTEN/NOTIFY feed is what
tells one worker of another's changes (no datagram feed between the workers)."""

from __future__ import annotations

import json
import poplib
import smtplib
from typing import Any

import pytest

from letterbox.server import control
from tests.conftest import ServerProcess
from tests.server.pgserve import PASSWORD, Idler, lmtp, msg, new_database, on_postgres

USER = "alice@example.com"


def status(srv: ServerProcess) -> dict[str, Any]:
    reply = control.send_command(srv.home / "run", {"cmd": "status"})
    assert reply is not None and reply["ok"], reply
    return reply


def busy_workers(srv: ServerProcess) -> list[int]:
    return [w["connections"] for w in status(srv)["workers"]]


@pytest.fixture
def two(make_server: Any) -> ServerProcess:
    srv = on_postgres(make_server, new_database(), workers=2)
    srv.add_user(USER, PASSWORD)
    assert len(json.loads((srv.home / "run" / "listeners.json").read_text())["workers"]) == 2
    return srv


def test_idle_in_one_worker_sees_a_delivery_made_in_the_other(two: ServerProcess) -> None:
    idler = Idler(two, USER)
    try:
        assert sorted(busy_workers(two)) == [0, 1]
        with smtplib.LMTP("127.0.0.1", two.port("lmtp")) as c:
            assert sorted(busy_workers(two)) == [1, 1]  # the delivery is in the other worker
            assert c.sendmail("x@remote.example", [USER], msg(1)) == {}
            assert idler.next_line(10) == b"* 1 EXISTS"
        # Told by the store's feed: no datagram feed runs between the workers.
        assert all(w["feed"] == {} for w in status(two)["workers"])
    finally:
        idler.close()


def test_pop3_maildrop_is_locked_across_workers(two: ServerProcess) -> None:
    assert lmtp(two, USER, msg(1)) == {}
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
