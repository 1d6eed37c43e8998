"""Who may connect: connections counted per client network and in all, from accept.

An IPv6 client usually holds a whole /64, so limits per address are kept per /64 there
(IPv4-mapped addresses count as their IPv4 address). A connection counts from the moment
it is accepted, through its TLS handshake, until it closes; beyond either limit it gets
the protocol's refusal and the refusal is logged (once a minute per client network).
"""

from __future__ import annotations

import logging
import resource
import time
from collections import Counter

from ..net import client_key

log = logging.getLogger("letterbox.server")

# Descriptors kept back from the global cap for the store, the log, LMTP and the CLI.
_RESERVED_FDS = 128
_LOG_EVERY = 60.0


def descriptor_budget(wanted: int) -> int:
    """Raise the soft descriptor limit as far as allowed; the connections it leaves room for."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted + _RESERVED_FDS)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return max(1, min(wanted, soft - _RESERVED_FDS))


class ConnectionLimits:
    def __init__(self, per_client: int, total: int) -> None:
        self.per_client = per_client
        self.total = total
        self.counts: Counter[str] = Counter()
        self.open = 0
        self._logged: dict[str, float] = {}

    def admit(self, service: str, ip: str) -> str | None:
        """Count a new connection; None if admitted, else why not (and it is not counted)."""
        key = client_key(ip)
        if self.open >= self.total:
            why = f"server full ({self.total} connections)"
        elif self.counts[key] >= self.per_client:
            why = f"{self.per_client} connections from {key} already"
        else:
            self.counts[key] += 1
            self.open += 1
            return None
        now = time.monotonic()
        if now - self._logged.get(key, 0.0) >= _LOG_EVERY:
            self._logged[key] = now
            if len(self._logged) > 10_000:
                self._logged.clear()
            log.warning("%s connection from %s refused: %s", service, ip, why)
        return why

    def release(self, ip: str) -> None:
        key = client_key(ip)
        self.open -= 1
        self.counts[key] -= 1
        if self.counts[key] <= 0:
            del self.counts[key]
