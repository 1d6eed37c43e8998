"""What a session set with NOTIFY (RFC 5465) and the events waiting to be told.

The session hands over every change the feed brings (`add`); those about mailboxes other
than the selected one that some event group wants are kept, one entry per mailbox or
name event, and told as STATUS and LIST responses (`flush`) when the session may speak:
between commands, at a command's end, during IDLE. The selected mailbox's message events
are not handled here: its EXISTS, EXPUNGE and FETCH come from the view, as `selected`
says. Metadata changes (5.6, 5.7) are told as METADATA responses naming the entries that
changed, for every mailbox the groups name, the selected one too (they are no message
events), and for the server; another user's /private entries are never named.

A client that does not read cannot make this grow: past MAX_PENDING waiting entries (a
metadata entry counts as one; or
when the feed itself dropped changes for this session) the session says
[NOTIFICATIONOVERFLOW] and behaves as after NOTIFY NONE (5.8).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..store.api import DELIMITER, Change, MailboxNotFound
from . import grammar as g
from . import wire
from .access import visible
from .mailboxes import ancestors, list_response, status_response

if TYPE_CHECKING:
    from .session import IMAPSession

MESSAGE_EVENTS = frozenset({"MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange"})
MAX_PENDING = 1000
"""Mailboxes and name events waiting to be told, at most (then NOTIFICATIONOVERFLOW)."""
_FLUSH_EVERY = 100
"""Responses sent before the session yields to others."""
_EVENT_OF = {"append": "MessageNew", "expunge": "MessageExpunge", "flags": "FlagChange"}
_ENTRIES_PER_LINE = 100
"""Entry names in one unsolicited METADATA response (RFC 5464 4.4: any split will do)."""
SERVER_METADATA = "ServerMetadataChange"
MAILBOX_METADATA = "MailboxMetadataChange"
_STATUS_ORDER = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ")


@dataclass(frozen=True, slots=True)
class SelectedEvents:
    """SELECTED or SELECTED-DELAYED with MessageNew and MessageExpunge (6.1)."""

    flags: bool = False
    """FlagChange: other sessions' flag changes are told (with UID, 5.1)."""
    delayed: bool = False
    """SELECTED-DELAYED: expunges wait for a command that may report them (6.1.2)."""
    fetch: tuple[g.FetchAttribute, ...] = ()
    """What to FETCH of each new message (5.2)."""


@dataclass(frozen=True, slots=True)
class Filter:
    """One event group about other mailboxes: INBOXES, PERSONAL, SUBSCRIBED, SUBTREE or
    MAILBOXES (6.2 to 6.6), with its names (decoded) and events."""

    kind: str
    names: tuple[str, ...]
    events: frozenset[str]

    def matches(self, name: str, subscribed: Collection[str] | None) -> bool:
        """Whether *name* is one of the filter's mailboxes; *subscribed* None (not read
        yet) counts every name as possibly subscribed."""
        if self.kind == "PERSONAL":
            return True
        if self.kind == "INBOXES":
            # Mail is delivered to INBOX only (delivery.core), so that is the set (6.3).
            return name == "INBOX"
        if self.kind == "SUBSCRIBED":
            return subscribed is None or name in subscribed
        if self.kind == "MAILBOXES":
            return name in self.names  # no wildcards (6.6)
        return any(name == n or name.startswith(n + DELIMITER) for n in self.names)


@dataclass(frozen=True, slots=True)
class NotifySpec:
    """A NOTIFY SET (or, empty, NOTIFY NONE)."""

    selected: SelectedEvents | None = None
    """None: no message events for the selected mailbox (3.1: as SELECTED NONE)."""
    filters: tuple[Filter, ...] = ()

    @property
    def needs_subscriptions(self) -> bool:
        return any(f.kind == "SUBSCRIBED" for f in self.filters)

    @property
    def server_metadata(self) -> bool:
        """ServerMetadataChange: a user event, not one of a mailbox (8: user-event),
        so any group that names it asks for it."""
        return any(SERVER_METADATA in f.events for f in self.filters)

    def events_for(self, name: str, subscribed: Collection[str] | None) -> frozenset[str]:
        """The events wanted for mailbox *name* (the groups may overlap, 6)."""
        out: frozenset[str] = frozenset()
        for f in self.filters:
            if f.matches(name, subscribed):
                out |= f.events
        return out

    def wants(self, event: str, names: Iterable[str], subscribed: Collection[str] | None) -> bool:
        return any(event in self.events_for(n, subscribed) for n in names if n)


def status_items(kinds: Collection[str], events: Collection[str], condstore: bool) -> list[str]:
    """The STATUS items that tell *kinds* of change to a client wanting *events* (5.1 to
    5.3; UNSEEN as Dovecot adds it; "uidvalidity": the name has a new mailbox)."""
    counts = ("append" in kinds and "MessageNew" in events) or ("expunge" in kinds and "MessageExpunge" in events)
    fresh = "uidvalidity" in kinds and bool(MESSAGE_EVENTS.intersection(events))
    flags = "flags" in kinds and "FlagChange" in events
    wanted: set[str] = set()
    if counts or fresh:
        wanted |= {"MESSAGES", "UIDNEXT", "UNSEEN"}
    if fresh:
        wanted.add("UIDVALIDITY")
    if flags:
        wanted.add("UNSEEN")
        if condstore:
            wanted.add("UIDVALIDITY")
    if wanted and condstore:
        wanted.add("HIGHESTMODSEQ")
    return [i for i in _STATUS_ORDER if i in wanted]


class Notifier:
    """The events a session is to tell on its own, and those waiting to be told."""

    def __init__(self, spec: NotifySpec) -> None:
        self.spec = spec
        self._status: dict[int, tuple[str, set[str]]] = {}
        """Mailbox id -> (its name, kinds of change: append, expunge, flags, uidvalidity)."""
        self._names: list[Change] = []
        """Mailbox and subscription changes, in order."""
        self._metadata: dict[tuple[str, int], tuple[str, set[str]]] = {}
        """(account, mailbox id; 0 for the server) -> (mailbox name, entries changed)."""
        self._entries = 0
        """Entries waiting in _metadata."""
        self._overflow = False
        """[NOTIFICATIONOVERFLOW] is still to be said."""

    @property
    def watching(self) -> bool:
        """Whether other mailboxes are watched: the session then listens to the feed
        even without a selected mailbox."""
        return bool(self.spec.filters)

    @property
    def selected(self) -> SelectedEvents | None:
        return self.spec.selected

    def add(self, changes: Iterable[Change], lost: bool, origin: int, user: str) -> None:
        """Keep what the filters may want of *changes* (*lost*: the feed dropped some);
        *user* is the session's."""
        if not self.spec.filters:
            return
        if lost:
            self._overflowed()
            return
        spec = self.spec
        for c in changes:
            if c.origin == origin:
                continue  # 5: the client is not told of its own doing
            if c.kind in _EVENT_OF:
                if _EVENT_OF[c.kind] in spec.events_for(c.name, None):
                    self._pend(c.mailbox_id, c.name, c.kind)
            elif c.kind == "mailbox":
                if c.name and not c.old_name and MESSAGE_EVENTS.intersection(spec.events_for(c.name, None)):
                    # A new mailbox: its UIDVALIDITY is news (5.1). A renamed one keeps its
                    # own, and the LIST with OLDNAME tells where it went.
                    self._pend(c.mailbox_id, c.name, "uidvalidity")
                if spec.wants("MailboxName", (c.name, c.old_name), None):
                    self._pend_name(c)
            elif c.kind == "subscription" and any(
                "SubscriptionChange" in f.events and f.matches(c.name, None) for f in spec.filters
            ):
                self._pend_name(c)
            elif c.kind == "metadata":
                wanted = spec.server_metadata if not c.name else MAILBOX_METADATA in spec.events_for(c.name, None)
                if wanted:
                    # 3.2 of RFC 5464: another user's /private entries are theirs alone.
                    self._pend_metadata(c.account, c.mailbox_id, c.name, [
                        e for e in c.entries if c.user == user or not e.startswith("/private")
                    ])
            if self._overflow:
                return

    def _pend(self, mailbox_id: int, name: str, kind: str) -> None:
        entry = self._status.get(mailbox_id)
        if entry is None:
            if self._full():
                return
            self._status[mailbox_id] = (name, {kind})
        else:
            self._status[mailbox_id] = (name, entry[1] | {kind})

    def _pend_name(self, change: Change) -> None:
        if not self._full():
            self._names.append(change)

    def _pend_metadata(self, account: str, mailbox_id: int, name: str, entries: list[str]) -> None:
        key = (account, mailbox_id)
        have = self._metadata.get(key, (name, set()))[1]
        new = [e for e in entries if e not in have]
        if not new or self._full(len(new)):
            return
        have.update(new)
        self._metadata[key] = (name, have)
        self._entries += len(new)

    def _full(self, more: int = 1) -> bool:
        if len(self._status) + len(self._names) + self._entries + more <= MAX_PENDING:
            return False
        self._overflowed()
        return True

    def _overflowed(self) -> None:
        # 5.8: say so, and behave as if NOTIFY NONE had just been received.
        self.spec = NotifySpec()
        self._status.clear()
        self._names.clear()
        self._metadata.clear()
        self._entries = 0
        self._overflow = True

    def pending(self) -> bool:
        return self._overflow or bool(self._status) or bool(self._names) or bool(self._metadata)

    async def flush(self, s: IMAPSession) -> None:
        """Send what is waiting (the session is between commands, ending one, or idle)."""
        if self._overflow:
            self._overflow = False
            s.send(wire.untagged_status(
                "OK", "Too many events waiting; NOTIFY is now NONE", "NOTIFICATIONOVERFLOW"
            ))
        names, self._names = self._names, []
        status, self._status = self._status, {}
        metadata, self._metadata, self._entries = self._metadata, {}, 0
        if names:
            await self._send_names(s, names)
        if status:
            await self._send_status(s, status)
        if metadata:
            await self._send_metadata(s, metadata)

    async def _send_names(self, s: IMAPSession, changes: list[Change]) -> None:
        """5.4, 5.5: a LIST for each affected name, its attributes as they are now."""
        store = s.store
        assert store is not None
        subs = set(await store.subscriptions())
        spec = self.spec
        renames = {(c.old_name, c.name) for c in changes if c.kind == "mailbox" and c.name and c.old_name}
        told: dict[str, str] = {}  # name -> its old name after a rename
        for c in changes:
            if c.kind == "subscription":
                # SUBSCRIBED covers a name subscribed before or after the change.
                if any("SubscriptionChange" in f.events and f.matches(c.name, subs | {c.name}) for f in spec.filters):
                    told.setdefault(c.name, "")
            elif c.name and c.old_name:
                if not _below_rename(c.old_name, c.name, renames) and spec.wants("MailboxName", (c.name, c.old_name), subs):
                    told[c.name] = c.old_name
            elif c.name or c.old_name:
                name = c.name or c.old_name
                if spec.wants("MailboxName", (name,), subs):
                    # Created or deleted: the mailbox and its parent are affected.
                    told.setdefault(name, "")
                    parent = name.rpartition(DELIMITER)[0]
                    if parent:
                        told.setdefault(parent, "")
        if not told:
            return
        by_name = {e.shown: e for e in await visible(s)}
        parents = ancestors(by_name)
        for n, (name, old) in enumerate(told.items(), 1):
            s.send(list_response(s, name, by_name, parents, subs, old))
            if n % _FLUSH_EVERY == 0:
                await s.flush()

    async def _send_status(self, s: IMAPSession, pending: dict[int, tuple[str, set[str]]]) -> None:
        store = s.store
        assert store is not None
        subs = set(await store.subscriptions()) if self.spec.needs_subscriptions else None
        sent = 0
        for mailbox_id, (name, kinds) in pending.items():
            if s.view is not None and s.view.owner == s.user and s.view.mailbox.id == mailbox_id:
                continue  # the selected mailbox follows SELECTED's rules (3.1)
            items = status_items(kinds, self.spec.events_for(name, subs), s.condstore)
            if not items:
                continue
            try:
                st = await store.status(name)
            except MailboxNotFound:
                continue  # gone since; its MailboxName event tells
            if st.mailbox.id != mailbox_id:
                continue  # the name is another mailbox's now
            s.send(status_response(s, st, items))
            sent += 1
            if sent % _FLUSH_EVERY == 0:
                await s.flush()


    async def _send_metadata(self, s: IMAPSession, pending: dict[tuple[str, int], tuple[str, set[str]]]) -> None:
        """RFC 5465 5.6, 5.7 (RFC 5464 4.4.2): the names of the entries that changed,
        removed ones included, without their values."""
        store = s.store
        assert store is not None
        subs = set(await store.subscriptions()) if self.spec.needs_subscriptions else None
        sent = 0
        for (_, mailbox_id), (name, entries) in pending.items():
            if name:
                if MAILBOX_METADATA not in self.spec.events_for(name, subs):
                    continue
                try:
                    if (await store.get_mailbox(name)).id != mailbox_id:
                        continue  # the name is another mailbox's now
                except MailboxNotFound:
                    continue  # gone since; its MailboxName event tells
            elif not self.spec.server_metadata:
                continue
            shown = s.encode_name(name) if name else b'""'
            ordered = sorted(entries)
            for at in range(0, len(ordered), _ENTRIES_PER_LINE):
                chunk = ordered[at : at + _ENTRIES_PER_LINE]
                s.send(b"* METADATA " + shown + b" " + b" ".join(wire.astring(e) for e in chunk) + b"\r\n")
                sent += 1
                if sent % _FLUSH_EVERY == 0:
                    await s.flush()


def _below_rename(old: str, new: str, renames: set[tuple[str, str]]) -> bool:
    """Whether renaming *old* to *new* is part of renaming one of its parents: 5.4 sends
    no event for the children of a renamed mailbox."""
    cut = old.rfind(DELIMITER)
    while cut > 0:
        rest = old[cut:]
        if new.endswith(rest) and (old[:cut], new[: len(new) - len(rest)]) in renames:
            return True
        cut = old.rfind(DELIMITER, 0, cut)
    return False
