"""The console of a server with `workers = 2`: it runs in worker 0 and must see, count
and end the sessions of both workers, and stay quick when a worker does not answer.

Which worker holds a connection is read from `status` on the control socket (the
supervisor's own count), never assumed.
"""

from __future__ import annotations

import imaplib
import os
import poplib
import signal
import time
from typing import Any

import pytest

from letterbox.server.workers import worker_of
from tests.waiting import wait_for
from tests.web.webutil import Console, start_console

from .test_workers import PASSWORD, USER, imap_login, status, worker_pids

URL = f"/api/v1/accounts/{USER}"


def held(console: Console) -> dict[int, dict[str, int]]:
    """Worker index -> its IMAP and POP3 sessions, as the workers themselves count them."""
    return {w["index"]: w["sessions"] for w in status(console.server)["workers"]}


def newly_in(before: dict[int, dict[str, int]], after: dict[int, dict[str, int]], service: str) -> int:
    """The worker whose count of *service* sessions went up."""
    [index] = [i for i in after if after[i].get(service, 0) > before.get(i, {}).get(service, 0)]
    return index


@pytest.fixture
def console(make_server) -> Console:  # type: ignore[no-untyped-def]
    c = start_console(make_server, workers=2)
    c.server.add_user(USER, PASSWORD)
    assert len(worker_pids(c.server)) == 2
    return c


def sessions(console: Console) -> list[dict[str, Any]]:
    with console.api() as c:
        r = c.get(URL)
        assert r.status_code == 200, r.text
        found: list[dict[str, Any]] = r.json()["sessions"]
        return found


def test_console_lists_counts_and_ends_the_sessions_of_every_worker(console: Console) -> None:
    srv = console.server
    before = held(console)
    first = imap_login(srv)
    after_first = held(console)
    second = imap_login(srv)
    after_second = held(console)
    where = {"first": newly_in(before, after_first, "imap"), "second": newly_in(after_first, after_second, "imap")}
    assert sorted(where.values()) == [0, 1]  # one in each worker
    pop = poplib.POP3("127.0.0.1", srv.port("pop3"), timeout=15)
    pop.user(USER)
    pop.pass_(PASSWORD)

    listed = sessions(console)
    assert sorted(s["protocol"] for s in listed) == ["imap", "imap", "pop3"]
    assert len({s["id"] for s in listed}) == 3
    assert all(s["user"] == USER for s in listed)
    imaps = [s for s in listed if s["protocol"] == "imap"]
    assert sorted(worker_of(s["id"]) for s in imaps) == [0, 1]
    assert [s["id"] for s in sessions(console)] == [s["id"] for s in listed]  # stable

    with console.api() as c:
        dashboard = c.get("/api/v1/dashboard").json()
    counts = {s["name"]: s["sessions"] for s in dashboard["services"]}
    assert counts["imap"] == 2 and counts["pop3"] == 1

    # End the IMAP session worker 1 holds; the one in worker 0 goes on.
    [theirs] = [s for s in imaps if worker_of(s["id"]) == 1]
    ended, kept = (first, second) if where["first"] == 1 else (second, first)
    with console.api() as c:
        assert c.delete(f"{URL}/sessions/{theirs['id']}").status_code == 204
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            ended.noop()
            ended.noop()
        assert kept.noop()[0] == "OK"
        assert wait_for(lambda: held(console)[1].get("imap", 0) == 0)
        assert theirs["id"] not in {s["id"] for s in sessions(console)}
        # Gone already, or another account's: nothing to end.
        assert c.delete(f"{URL}/sessions/{theirs['id']}").status_code == 404
        srv.add_user("bob@example.com", PASSWORD)
        [alices] = [s for s in sessions(console) if s["protocol"] == "imap"]
        assert c.delete(f"/api/v1/accounts/bob@example.com/sessions/{alices['id']}").status_code == 404
        audit = c.get("/api/v1/audit").json()
    assert audit[0]["what"] == f"disconnected a session of {USER}"
    assert kept.noop()[0] == "OK"
    kept.logout()
    pop.quit()


def test_a_stopped_worker_is_left_out_and_a_dead_one_is_absent(console: Console) -> None:
    srv = console.server
    conns = [imap_login(srv), imap_login(srv)]
    assert sorted(w["imap"] for w in held(console).values()) == [1, 1]
    pid = worker_pids(srv)[1]
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        listed = sessions(console)
        with console.api() as c:
            counts = {s["name"]: s["sessions"] for s in c.get("/api/v1/dashboard").json()["services"]}
        took = time.monotonic() - t0
    finally:
        os.kill(pid, signal.SIGCONT)
    assert [worker_of(s["id"]) for s in listed] == [0]
    assert counts["imap"] == 1
    assert took < 10  # about 2 s for each of the two requests, never a hang
    assert wait_for(lambda: len(sessions(console)) == 2)

    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: [worker_of(s["id"]) for s in sessions(console)] == [0])
    for c in conns:
        c.shutdown()
