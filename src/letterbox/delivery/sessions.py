"""The open LMTP and SMTP sessions, so the server can end them when a service is
switched off, and the store writes they started, so it can wait for those to land."""

from __future__ import annotations

import asyncio
import collections
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..service.context import Context
    from .protocol import DeliverySMTP

_EXTRA_KEY = "delivery_sessions"

_registries: weakref.WeakSet[DeliverySessions] = weakref.WeakSet()


class DeliverySessions:
    def __init__(self) -> None:
        self._open: dict[str, set[DeliverySMTP]] = {}
        self._writes: set[asyncio.Future[Any]] = set()
        self._per_ip: collections.Counter[str] = collections.Counter()
        _registries.add(self)

    def add(self, protocol: DeliverySMTP, ip: str = "", limit: int = 0) -> bool:
        """Register a new session; False (and nothing registered) when *ip* already holds
        *limit* sessions. No IP (a UNIX socket) or no limit: always admitted."""
        if ip and limit:
            if self._per_ip[ip] >= limit:
                return False
            self._per_ip[ip] += 1
        self._open.setdefault(protocol.service, set()).add(protocol)
        return True

    def discard(self, protocol: DeliverySMTP, ip: str = "") -> None:
        """Forget a session; *ip* is the address it was counted under by `add`, if any."""
        opened = self._open.get(protocol.service, set())
        if protocol not in opened:
            return
        opened.discard(protocol)
        if ip and ip in self._per_ip:
            self._per_ip[ip] -= 1
            if self._per_ip[ip] <= 0:
                del self._per_ip[ip]

    def count(self, service: str | None = None) -> int:
        if service is not None:
            return len(self._open.get(service, ()))
        return sum(len(s) for s in self._open.values())

    def shutdown_all(self, service: str, reason: str) -> int:
        """End every open *service* ("lmtp" or "smtp") session; returns how many.

        An idle session gets `421 4.3.2 <reason>` and is closed at once, as is one whose
        client is still sending DATA (that transaction is never acknowledged, so the
        client retries it). A session that is writing copies to the store finishes the
        copy in hand, replies for what is stored, then says 421 and closes.
        """
        sessions = list(self._open.get(service, ()))
        for protocol in sessions:
            protocol.shutdown(reason)
        return len(sessions)

    def track(self, write: asyncio.Future[Any]) -> None:
        """Remember a store write until it completes (see `drain`)."""
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait for store writes still running, including those whose session has gone;
        call before closing the store. False if some were still running at *timeout*."""
        pending = set(self._writes)
        if not pending:
            return True
        # asyncio.wait, unlike wait_for, never cancels what it waits for: a write cut
        # short could leave a file without its index row.
        _, still_running = await asyncio.wait(pending, timeout=timeout)
        return not still_running


def sessions_for(ctx: Context) -> DeliverySessions:
    """The registry shared by every delivery listener of *ctx*."""
    sessions = ctx.extra.get(_EXTRA_KEY)
    if not isinstance(sessions, DeliverySessions):
        sessions = DeliverySessions()
        ctx.extra[_EXTRA_KEY] = sessions
    return sessions


def shutdown_all(service: str, reason: str) -> int:
    """`DeliverySessions.shutdown_all` for every context in this process (a server has
    one), for callers that hold no Context."""
    return sum(r.shutdown_all(service, reason) for r in list(_registries))


async def drain(timeout: float | None = None) -> bool:
    """`DeliverySessions.drain` for every context in this process: await it after the
    listeners are closed and before the store is."""
    results = [await r.drain(timeout) for r in list(_registries)]
    return all(results)
