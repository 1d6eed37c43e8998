"""In-process change feed: who changed which mailbox, up to which MODSEQ.

A session holds a Subscription for its account. The feed only says *that* a mailbox
changed; the session asks the store `changes_since(its modseq)` for *what* changed, so a
slow session never loses an event and events need no buffering beyond a flag.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

from .api import Change


class Subscription:
    """A session's window on one account's changes."""

    __slots__ = ("address", "_feed", "_changes", "_event")

    def __init__(self, feed: ChangeFeed, address: str) -> None:
        self.address = address
        self._feed = feed
        self._changes: list[Change] = []
        self._event = asyncio.Event()

    def _push(self, change: Change) -> None:
        self._changes.append(change)
        self._event.set()

    def pending(self) -> bool:
        return bool(self._changes)

    def take(self) -> list[Change]:
        """Changes since the last take(), oldest first."""
        changes, self._changes = self._changes, []
        self._event.clear()
        return changes

    async def wait(self) -> None:
        """Return once at least one change is pending."""
        await self._event.wait()

    def close(self) -> None:
        self._feed._unsubscribe(self)


class ChangeFeed:
    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._watchers: list[Callable[[str], None]] = []

    def watch(self, callback: Callable[[str], None]) -> None:
        """Call *callback* with the account of every change (the server's usage table
        learns this way which accounts to measure again); it must be cheap."""
        self._watchers.append(callback)

    def subscribe(self, address: str) -> Subscription:
        sub = Subscription(self, address)
        self._subs[address].add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.address)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.address]

    def publish(self, change: Change) -> None:
        for sub in self._subs.get(change.account, ()):
            sub._push(change)
        for watcher in self._watchers:
            watcher(change.account)

    def has_subscribers(self, address: str) -> bool:
        return address in self._subs
