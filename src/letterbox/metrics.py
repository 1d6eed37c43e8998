"""What the server counts: Prometheus metrics, last-hour tallies and last logins.

The protocols note events here (a login, a delivery, an IMAP command's duration); the
console and `/metrics` read them. Nothing here does I/O, and every note is a dictionary
update or a counter increment, cheap enough for the IMAP command path. Metrics live in a
registry of their own, so tests can make servers side by side in one process.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

CONNECTIONS = Counter(
    "letterbox_connections", "Connections accepted, per protocol", ["protocol"], registry=REGISTRY
)
LOGINS = Counter(
    "letterbox_logins", "Login attempts per protocol and outcome", ["protocol", "outcome"], registry=REGISTRY
)
PENALTIES = Counter(
    "letterbox_login_penalties",
    "Logins that waited out a failure penalty, per protocol",
    ["protocol"],
    registry=REGISTRY,
)
PENALTY_SECONDS = Counter(
    "letterbox_login_penalty_seconds", "Seconds logins waited out failure penalties", registry=REGISTRY
)
DELIVERIES = Counter(
    "letterbox_deliveries", "Message copies delivered or refused, per protocol and outcome",
    ["protocol", "outcome"], registry=REGISTRY,
)
IMAP_LATENCY = Histogram(
    "letterbox_imap_command_seconds", "Time an IMAP command took in the server, per command",
    ["command"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
    registry=REGISTRY,
)

_latency: dict[str, Histogram] = {}


def imap_command(name: str, seconds: float) -> None:
    """An IMAP command of the server's command table finished after *seconds* (the
    table bounds the label values)."""
    child = _latency.get(name)
    if child is None:
        child = _latency[name] = IMAP_LATENCY.labels(name)
    child.observe(seconds)


class LastHour:
    """Events per minute over the last hour, per kind (logins, deliveries)."""

    def __init__(self) -> None:
        self._minutes: dict[str, deque[list[int]]] = {}

    def add(self, kind: str, n: int = 1, now: float | None = None) -> None:
        minute = int((time.time() if now is None else now) // 60)
        q = self._minutes.setdefault(kind, deque())
        if q and q[-1][0] == minute:
            q[-1][1] += n
        else:
            q.append([minute, n])
            while q and q[0][0] <= minute - 60:
                q.popleft()

    def total(self, kind: str, now: float | None = None) -> int:
        minute = int((time.time() if now is None else now) // 60)
        return sum(n for m, n in self._minutes.get(kind, ()) if m > minute - 60)


LAST_HOUR = LastHour()

_MAX_PENDING = 100_000


class LastLogins:
    """The latest successful login of each account per protocol, kept in memory and
    written to the directory in batches by the server (a write per login would cost the
    IMAP login path a SQLite commit)."""

    def __init__(self) -> None:
        self.pending: dict[tuple[str, str], tuple[float, str]] = {}

    def note(self, address: str, protocol: str, ip: str) -> None:
        if len(self.pending) >= _MAX_PENDING:
            return  # the server flushes every few seconds; a flood waits for that
        self.pending[(address, protocol)] = (time.time(), ip)

    def take(self) -> dict[tuple[str, str], tuple[float, str]]:
        out, self.pending = self.pending, {}
        return out


LAST_LOGINS = LastLogins()


def login(protocol: str, outcome: str, address: str | None, ip: str, waited: float) -> None:
    LOGINS.labels(protocol, outcome).inc()
    LAST_HOUR.add("logins")
    if outcome != "ok":
        LAST_HOUR.add("login_failures")
    if waited > 0:
        PENALTIES.labels(protocol).inc()
        PENALTY_SECONDS.inc(waited)
    if outcome == "ok" and address is not None:
        LAST_LOGINS.note(address, protocol, ip)


DELIVERY_OUTCOMES = frozenset({
    "stored", "over_quota", "deferred_quota", "disk_full", "unknown_user", "disabled", "too_big", "failed",
})


def delivery(protocol: str, outcome: str) -> None:
    """One copy, by LMTP, SMTP or `letterbox deliver` ("lda"): one of DELIVERY_OUTCOMES."""
    DELIVERIES.labels(protocol, outcome).inc()
    if outcome == "stored":
        LAST_HOUR.add("deliveries")
    else:
        LAST_HOUR.add("delivery_refusals")


LiveSource = Callable[[], tuple[dict[str, int], int, int]]
"""Returns (open sessions per protocol, messages stored, bytes stored)."""


class _Live(Collector):
    """Gauges read from the running server when /metrics is scraped."""

    source: LiveSource | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.source is None:
            return
        sessions, messages, stored = self.source()
        open_ = GaugeMetricFamily("letterbox_sessions", "Open sessions per protocol", labels=["protocol"])
        for protocol, n in sorted(sessions.items()):
            open_.add_metric([protocol], n)
        yield open_
        yield GaugeMetricFamily("letterbox_stored_messages", "Messages stored, all accounts", value=messages)
        yield GaugeMetricFamily("letterbox_stored_bytes", "Bytes of mail stored, all accounts", value=stored)


LIVE = _Live()
REGISTRY.register(LIVE)
