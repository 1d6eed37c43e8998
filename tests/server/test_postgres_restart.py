"""A PostgreSQL restart during deliveries, as two front ends see it.

The shared cluster is not restarted (other test runs use it): the front ends reach it
through a proxy (tests/server/pgproxy.py) that the test cuts, which ends every
connection and refuses new ones, as a stopped server does, and then restores.
Meanwhile deliveries are deferred (4xx) and IMAP commands answered NO [UNAVAILABLE];
afterwards the front ends serve again without a restart, their LISTEN connections made
again, and every acknowledged message is there exactly once."""

from __future__ import annotations

import imaplib
import smtplib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.server.pgproxy import PgProxy
from tests.server.pgserve import (
    Idler,
    add_everywhere,
    assert_each_acked_once,
    imap,
    lmtp,
    msg,
    new_database,
    on_postgres,
)
from tests.waiting import wait_for

USER = "alice@example.com"
WATCHER = "bob@example.com"


class DeferredSender(threading.Thread):
    """LMTP deliveries one after another, each with a Message-ID of its own, that keeps
    going through refusals: records what was acknowledged and every code refused with."""

    def __init__(self, srv: ServerProcess, prefix: str) -> None:
        super().__init__(daemon=True)
        self.srv, self.prefix = srv, prefix
        self.acked: list[str] = []
        self.codes: list[int] = []
        self.stop = threading.Event()
        self.failed: Exception | None = None

    def run(self) -> None:
        n = 0
        try:
            while not self.stop.is_set():
                with smtplib.LMTP("127.0.0.1", self.srv.port("lmtp"), timeout=30) as c:
                    while not self.stop.is_set():
                        n += 1
                        mid = f"{self.prefix}{n}"
                        body = f"From: a@example.org\r\nMessage-ID: <{mid}@test>\r\n\r\n{'x' * 2000}\r\n".encode()
                        try:
                            c.sendmail("x@remote.example", [USER], body)
                        except smtplib.SMTPRecipientsRefused as e:
                            self.codes.append(e.recipients[USER][0])
                        except smtplib.SMTPDataError as e:
                            self.codes.append(e.smtp_code)
                        else:
                            self.acked.append(mid)
                            continue
                        c.rset()
                        self.stop.wait(0.05)  # a deferral: try again soon, as an MTA would (later)
        except (OSError, smtplib.SMTPException) as e:
            self.failed = e


@pytest.fixture
def proxied(make_server: Any) -> Iterator[tuple[PgProxy, ServerProcess, ServerProcess]]:
    proxy = PgProxy(new_database())
    try:
        a, b = on_postgres(make_server, proxy.dsn), on_postgres(make_server, proxy.dsn)
        add_everywhere([a, b], USER)
        add_everywhere([a, b], WATCHER)
        yield proxy, a, b
    finally:
        proxy.close()


def hears(idler: Idler, exists: int, timeout: float = 5.0) -> None:
    """The IDLE session is told of *exists* messages within *timeout* seconds (RECENT
    and FETCH lines may come along)."""
    deadline = time.monotonic() + timeout
    seen: list[bytes] = []
    while (left := deadline - time.monotonic()) > 0:
        line = idler.next_line(left)
        assert line, f"connection closed after {seen}"
        if line == b"* %d EXISTS" % exists:
            return
        seen.append(line)
    raise AssertionError(f"no * {exists} EXISTS, only {seen}")


def test_a_postgresql_restart_defers_deliveries_and_loses_nothing_acknowledged(
    proxied: tuple[PgProxy, ServerProcess, ServerProcess],
) -> None:
    proxy, a, b = proxied
    # IDLE on both front ends for an account nothing else delivers to: the push across
    # front ends after the outage needs each LISTEN connection made again.
    idle_a, idle_b = Idler(a, WATCHER), Idler(b, WATCHER)
    reader = imap(a, USER)
    reader.select("INBOX", readonly=True)
    to_a, to_b = DeferredSender(a, "a"), DeferredSender(b, "b")
    senders = (to_a, to_b)
    try:
        for s in senders:
            s.start()
        assert wait_for(lambda: len(to_a.acked) >= 10 and len(to_b.acked) >= 10, 20), (to_a.failed, to_b.failed)

        proxy.cut()
        cut_at = (len(to_a.codes), len(to_b.codes))
        # Deliveries are deferred, on both front ends, and they keep answering.
        assert wait_for(lambda: len(to_a.codes) > cut_at[0] + 3 and len(to_b.codes) > cut_at[1] + 3, 20), \
            (to_a.failed, to_b.failed, a.log_text()[-3000:])
        acked_in_outage = (len(to_a.acked), len(to_b.acked))
        # An IMAP session asking the store is told, and does not hang.
        typ, data = reader.status("Sent", "(MESSAGES)")
        assert typ == "NO" and b"[UNAVAILABLE]" in data[0], (typ, data)
        fresh = imaplib.IMAP4("127.0.0.1", b.port("imap"), timeout=15)
        try:
            with pytest.raises(imaplib.IMAP4.error, match=r"UNAVAILABLE"):
                fresh.login(USER, "pw")  # the account is opened in the store at login
        finally:
            fresh.shutdown()
        assert (len(to_a.acked), len(to_b.acked)) == acked_in_outage, "acknowledged with the database away"
        assert a.proc is not None and a.proc.poll() is None and b.proc is not None and b.proc.poll() is None

        proxy.restore()
        # Deliveries go through again within seconds, on the same processes.
        assert wait_for(lambda: len(to_a.acked) > acked_in_outage[0] and len(to_b.acked) > acked_in_outage[1],
                        timeout=10), (to_a.failed, to_b.failed, to_a.codes[-3:], to_b.codes[-3:])
        for s in senders:
            s.stop.set()
        for s in senders:
            s.join(30)
            assert s.failed is None, s.failed
        codes = set(to_a.codes + to_b.codes)
        assert codes and all(400 <= c < 500 for c in codes), codes

        # The IDLE sessions lived through it and hear of deliveries through the other
        # front end again.
        # (A front end's account directory that failed during the outage tries again
        # once its change feed reconnects, or after its back-off, at most 5 s: a
        # recipient check answers 451 until then, storing nothing.)
        assert wait_for(lambda: lmtp(b, WATCHER, msg(1)) == {}, timeout=10)
        hears(idle_a, 1)
        hears(idle_b, 1)
        assert wait_for(lambda: lmtp(a, WATCHER, msg(2)) == {}, timeout=10)
        hears(idle_b, 2)
        hears(idle_a, 2)
        typ, data = reader.noop()
        assert typ == "OK", data
    finally:
        for s in senders:
            s.stop.set()
        idle_a.close()
        idle_b.close()
        reader.shutdown()

    acked = to_a.acked + to_b.acked
    # Only a delivery in flight at the cut may have committed without its answer
    # getting out (one per sender); it was deferred, so the sender will send it again.
    assert_each_acked_once(b, USER, acked, unacked_at_most=len(senders))
    assert "Traceback" not in a.log_text() + b.log_text()
