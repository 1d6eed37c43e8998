"""In-process change feed: who changed which mailbox, up to which MODSEQ.

A session holds a Subscription for its account. The feed only says *that* a mailbox
changed; the session asks the store `changes_since(its modseq)` for *what* changed, so a
slow session never loses an event and events need no buffering beyond a flag.

What waits in a Subscription is bounded: message changes of one mailbox of one kind (and
origin) are merged into the latest, and past MAX_PENDING the rest are dropped and the
subscription marked `overflowed` (a session that keeps a selected mailbox loses nothing
by it; one that tells its client of other mailboxes says it lost track).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Callable

from .api import Change

MAX_PENDING = 1000
"""Distinct changes one subscription holds before it only counts itself overflowed."""

_MERGED = frozenset({"append", "flags", "expunge"})


class Subscription:
    """A session's window on one account's changes."""

    __slots__ = ("address", "_feed", "_changes", "_event", "_serial", "overflowed")

    def __init__(self, feed: ChangeFeed, address: str) -> None:
        self.address = address
        self._feed = feed
        self._changes: dict[object, Change] = {}
        self._event = asyncio.Event()
        self._serial = itertools.count()
        self.overflowed = False
        """Changes were dropped since the last take() (MAX_PENDING were waiting)."""

    def _push(self, change: Change) -> None:
        key: object
        if change.kind in _MERGED:
            key = (change.kind, change.mailbox_id, change.origin)
        else:  # each name change tells something of its own
            key = next(self._serial)
        if key in self._changes or len(self._changes) < MAX_PENDING:
            self._changes[key] = change
        else:
            self.overflowed = True
        self._event.set()

    def pending(self) -> bool:
        return bool(self._changes)

    def take(self) -> list[Change]:
        """Changes since the last take(), oldest first (a merged one where its mailbox
        first changed); clears `overflowed`."""
        changes = list(self._changes.values())
        self._changes = {}
        self.overflowed = False
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
        self.touched(change.account)

    def touched(self, address: str) -> None:
        """Tell only the watchers that *address* changed: for a change no session
        subscribes to, which needs no Change made."""
        for watcher in self._watchers:
            watcher(address)

    def has_subscribers(self, address: str) -> bool:
        return address in self._subs
