"""Recent SORT and THREAD results, shared by every session of the process.

A result depends only on which messages were searched and on what the index holds of
them, which never changes for a UID of one mailbox (UIDVALIDITY unchanged). So a result is
kept with the exact UID list it was computed from, and served again only for the same
list: a client that sorts or threads its mailbox again (another session, the same view
after a reconnect) is answered without reading the index, the way Dovecot keeps its sort
and thread indexes. New mail or an expunge changes the list, and the result is computed
anew. Small selections are not kept (they are cheap), and the whole cache holds a bounded
number of array items, least recently used first out.
"""

from __future__ import annotations

import weakref
from array import array
from collections import OrderedDict
from collections.abc import Hashable, Sequence

from ..store.api import AccountStore

MIN_MESSAGES = 2000
"""Selections smaller than this are computed each time."""
MAX_ITEMS = 4_000_000
"""Array items kept in all (8 bytes each): about 32 MB."""


class _Entry:
    __slots__ = ("store", "uids", "value")

    def __init__(self, store: AccountStore, uids: array, value: array) -> None:
        self.store = weakref.ref(store)
        self.uids = uids
        self.value = value

    @property
    def items(self) -> int:
        return len(self.uids) + len(self.value)


class ResultCache:
    def __init__(self, max_items: int = MAX_ITEMS, min_messages: int = MIN_MESSAGES) -> None:
        self.max_items = max_items
        self.min_messages = min_messages
        self.items = 0
        self._entries: OrderedDict[tuple[int, Hashable], _Entry] = OrderedDict()

    def get(self, store: AccountStore, key: Hashable, uids: Sequence[int]) -> array | None:
        """The result kept under *key* for exactly *uids*, else None."""
        if len(uids) < self.min_messages:
            return None
        full = (id(store), key)
        entry = self._entries.get(full)
        if entry is None:
            return None
        if entry.store() is not store or len(entry.uids) != len(uids) or entry.uids != array("q", uids):
            return None
        self._entries.move_to_end(full)
        return entry.value

    def put(self, store: AccountStore, key: Hashable, uids: Sequence[int], value: array) -> None:
        if len(uids) < self.min_messages:
            return
        entry = _Entry(store, array("q", uids), value)
        if entry.items > self.max_items:
            return
        full = (id(store), key)
        old = self._entries.pop(full, None)
        if old is not None:
            self.items -= old.items
        self._entries[full] = entry
        self.items += entry.items
        while self.items > self.max_items:
            _, gone = self._entries.popitem(last=False)
            self.items -= gone.items

    def clear(self) -> None:
        self._entries.clear()
        self.items = 0


RESULTS = ResultCache()
