"""The change feed: who changed which mailbox, up to which MODSEQ.

`ChangeFeed` is the interface the store publishes on and sessions subscribe to;
`LocalFeed` carries changes within one process, and a backend shared by several
processes adds its own carrier on top of a LocalFeed (store/crossfeed.py for the
embedded store served by several workers).

A session holds a Subscription for its account (and for the accounts whose shared
mailboxes it follows: a Subscription may watch several, see `follow`). The feed only says *that* a mailbox
changed; the session asks the store `changes_since(its modseq)` for *what* changed, so a
slow session never loses an event and events need no buffering beyond a flag.

What waits in a Subscription is bounded: message changes of one mailbox of one kind (and
origin) are merged into the latest, and past MAX_PENDING the rest are dropped and the
subscription marked `overflowed` (a session that keeps a selected mailbox loses nothing
by it; one that tells its client of other mailboxes says it lost track).
"""

from __future__ import annotations

import abc
import asyncio
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable

from .acl import ANYONE
from .api import Change

MAX_PENDING = 1000
"""Distinct changes one subscription holds before it only counts itself overflowed."""

_MERGED = frozenset({"append", "flags", "expunge"})


class Subscription:
    """A session's window on the changes of one account or a few."""

    __slots__ = ("addresses", "_feed", "_changes", "_event", "_serial", "overflowed", "on_change")

    def __init__(self, feed: LocalFeed, addresses: frozenset[str]) -> None:
        self.addresses = addresses
        self._feed = feed
        self._changes: dict[object, Change] = {}
        self._event = asyncio.Event()
        self._serial = itertools.count()
        self.overflowed = False
        """Changes were dropped since the last take() (MAX_PENDING were waiting)."""
        self.on_change: Callable[[], None] | None = None
        """Called (on the event loop) for each change pushed: a connection runner waits
        for it beside its client's bytes without a task of its own (server/streams.py)."""

    def _push(self, change: Change) -> None:
        key: object
        if change.kind in _MERGED:
            key = (change.account, change.kind, change.mailbox_id, change.origin)
        else:  # each name change tells something of its own
            key = next(self._serial)
        if key in self._changes or len(self._changes) < MAX_PENDING:
            self._changes[key] = change
        else:
            self.overflowed = True
        self._event.set()
        if self.on_change is not None:
            self.on_change()

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

    def follow(self, addresses: Iterable[str]) -> None:
        """Watch *addresses* from now on; changes already waiting stay."""
        self._feed._unsubscribe(self)
        self.addresses = frozenset(addresses)
        self._feed._add(self)

    def close(self) -> None:
        self._feed._unsubscribe(self)


class ChangeFeed(abc.ABC):
    """Where the store says what changed and sessions learn of it."""

    @abc.abstractmethod
    def watch(self, callback: Callable[[str], None]) -> None:
        """Call *callback* with the account of every change, from any process the feed
        reaches (the server's usage table learns this way which accounts to measure
        again); it must be cheap."""

    @abc.abstractmethod
    def subscribe(self, address: str, *more: str) -> Subscription:
        """A window on the changes of *address* (and *more*) made from now on."""

    @abc.abstractmethod
    def publish(self, change: Change, also: Iterable[str] = ()) -> None:
        """A change this process made: to every subscription watching its account (and
        the accounts *also* names), in this process and in those the feed reaches."""

    @abc.abstractmethod
    def relay(self, change: Change, also: Iterable[str] = ()) -> None:
        """A change another process made (and that the feed's carrier may have told the
        others of already): to this process's subscriptions only."""

    @abc.abstractmethod
    def touched(self, address: str) -> None:
        """Tell only the watchers that *address* changed: for a change no session
        subscribes to, which needs no Change made."""

    @abc.abstractmethod
    def has_subscribers(self, address: str) -> bool:
        """Whether a Change for *address* would reach anyone (else the store only calls
        touched())."""

    @abc.abstractmethod
    def has_local_subscribers(self, address: str) -> bool:
        """Whether a session of this process listens to *address* (whose index this
        process then watches for other processes' changes)."""


class LocalFeed(ChangeFeed):
    """The in-process feed: one asyncio.Event per subscription."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._watchers: list[Callable[[str], None]] = []

    def watch(self, callback: Callable[[str], None]) -> None:
        self._watchers.append(callback)

    def subscribe(self, address: str, *more: str) -> Subscription:
        sub = Subscription(self, frozenset((address, *more)))
        self._add(sub)
        return sub

    def _add(self, sub: Subscription) -> None:
        for address in sub.addresses:
            self._subs[address].add(sub)

    def _unsubscribe(self, sub: Subscription) -> None:
        for address in sub.addresses:
            subs = self._subs.get(address)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[address]

    def publish(self, change: Change, also: Iterable[str] = ()) -> None:
        """To the subscriptions watching *change*'s account and, once each, to those
        watching an account *also* names (ANYONE: every subscription): an ACL change
        concerns its grantee as well as the owner."""
        subs = set(self._subs.get(change.account, ()))
        for address in also:
            if address == ANYONE:
                subs = {sub for group in self._subs.values() for sub in group}
                break
            subs.update(self._subs.get(address, ()))
        for sub in subs:
            sub._push(change)
        self.touched(change.account)

    def relay(self, change: Change, also: Iterable[str] = ()) -> None:
        self.publish(change, also)

    def touched(self, address: str) -> None:
        for watcher in self._watchers:
            watcher(address)

    def has_subscribers(self, address: str) -> bool:
        return address in self._subs

    def has_local_subscribers(self, address: str) -> bool:
        return address in self._subs
