"""What a session set with NOTIFY (RFC 5465) and the events waiting to be told.

The session hands over every change the feed brings (`add`); those about mailboxes other
than the selected one that some event group wants are kept, one entry per mailbox or
name event, and told as STATUS and LIST responses (`flush`) when the session may speak:
between commands, at a command's end, during IDLE. The selected mailbox's message events
are not handled here: its EXISTS, EXPUNGE and FETCH come from the view, as `selected`
says. Metadata changes (5.6, 5.7) are told as METADATA responses naming the entries that
changed, for every mailbox the groups name, the selected one too (they are no message
events), and for the server; another user's /private entries are never named.

Mailboxes are named as the user names them. Other accounts' shared mailboxes
(Shared/<owner>/..., RFC 4314) are reached by SUBTREE, MAILBOXES and SUBSCRIBED, never by
PERSONAL or INBOXES (the user's own namespace, 6.2, 6.3); their changes come from their
owners' feeds, which the session follows while the groups may reach them (`owners`).
What is told of them depends on the user's rights, kept here as they change (`rights`):
a MailboxName event needs "l", every other event "l" and "r" (5). A grant or loss of
"l" is a creation or deletion to MailboxName (5.4); a mailbox whose events the user may
no longer have, or may list without reading, is told as LIST (\\NoAccess), and as itself
again once the rights are back (3.1, 5.9).

A client that does not read cannot make this grow: past MAX_PENDING waiting entries (a
metadata entry counts as one; or when the feed itself dropped changes for this session)
the session says [NOTIFICATIONOVERFLOW] and behaves as after NOTIFY NONE (5.8).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..store.api import DELIMITER, AccountStore, Change, MailboxNotFound, StoreError
from . import grammar as g
from . import wire
from .access import identities, is_shared_name, owner_store, shared, shared_name, visible
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
NEEDS_READ = MESSAGE_EVENTS | {MAILBOX_METADATA}
"""Events about a mailbox's content: with "l", the user needs "r" for them (5)."""
_STATUS_ORDER = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ")
_NO_ACCESS = "\\NoAccess"


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
    MAILBOXES (6.2 to 6.6), with its names (decoded, as the user names mailboxes) and
    events."""

    kind: str
    names: tuple[str, ...]
    events: frozenset[str]

    def matches(self, name: str, subscribed: Collection[str] | None) -> bool:
        """Whether *name* (as the user names it) is one of the filter's mailboxes;
        *subscribed* None (not read yet) counts every name as possibly subscribed."""
        if self.kind == "PERSONAL":
            return not is_shared_name(name)  # 6.2: the personal namespace
        if self.kind == "INBOXES":
            # Mail is delivered to INBOX only (delivery.core), so that is the set (6.3).
            return name == "INBOX"
        if self.kind == "SUBSCRIBED":
            return subscribed is None or name in subscribed
        if self.kind == "MAILBOXES":
            return name in self.names  # no wildcards (6.6)
        return any(name == n or name.startswith(n + DELIMITER) for n in self.names)

    @property
    def reaches_shared(self) -> bool:
        """Whether other accounts' shared mailboxes may be among the filter's."""
        return self.kind == "SUBSCRIBED" or any(is_shared_name(n) for n in self.names)


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
    def reaches_shared(self) -> bool:
        return any(f.reaches_shared for f in self.filters)

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

    def __init__(self, spec: NotifySpec, user: str = "", origin: int = 0) -> None:
        self.spec = spec
        self.user = user
        """The session's user: changes of other accounts are of shared mailboxes."""
        self.origin = origin
        """The session's changes (see store.api.changes_by): not told to it (5)."""
        self.rights: dict[tuple[str, str], str] = {}
        """(owner, mailbox name in the owner's account) -> the user's rights there, for
        the shared mailboxes the groups may reach (read by `start`, kept up to date)."""
        self._no_access: set[tuple[str, str]] = set()
        """Shared mailboxes last told as LIST (\\NoAccess)."""
        self._status: dict[tuple[str, int], tuple[str, set[str]]] = {}
        """(account, mailbox id) -> (its name in the account, kinds of change: append,
        expunge, flags, uidvalidity)."""
        self._names: list[Change] = []
        """Mailbox, subscription and ACL changes, in order."""
        self._metadata: dict[tuple[str, int], tuple[str, set[str]]] = {}
        """(account, mailbox id; 0 for the server) -> (mailbox name, entries changed)."""
        self._entries = 0
        """Entries waiting in _metadata."""
        self._overflow = False
        """[NOTIFICATIONOVERFLOW] is still to be said."""
        self._stores: dict[str, AccountStore | None] = {}
        """Other accounts as the user reads them, for the flush under way."""
        self._fresh: dict[tuple[str, str], str] = {}
        """Rights read during the flush under way."""

    @property
    def watching(self) -> bool:
        """Whether other mailboxes are watched: the session then listens to the feed
        even without a selected mailbox."""
        return bool(self.spec.filters)

    @property
    def owners(self) -> set[str]:
        """The other accounts whose feeds the session follows: those that share some
        mailbox with the user, while the groups may reach shared mailboxes."""
        if not self.spec.reaches_shared:
            return set()
        return {owner for (owner, _), rights in self.rights.items() if rights}

    @property
    def selected(self) -> SelectedEvents | None:
        return self.spec.selected

    async def start(self, s: IMAPSession) -> None:
        """After NOTIFY SET: the user's rights on the shared mailboxes the groups may
        reach, and an extended LIST with \\NoAccess for each the user may list but not
        read where the groups want events that need "r" (3.1)."""
        if not self.spec.reaches_shared:
            return
        assert s.store is not None
        subs = set(await s.store.subscriptions()) if self.spec.needs_subscriptions else None
        for e in await shared(s):
            assert e.place is not None
            key = (e.place.owner, e.place.name)
            rights = self.rights[key] = e.place.rights
            if "l" in rights and "r" not in rights and NEEDS_READ & self.spec.events_for(e.shown, subs):
                s.send(_no_access_line(s, e.shown))
                self._no_access.add(key)

    def add(self, changes: Iterable[Change], lost: bool) -> None:
        """Keep what the filters may want of *changes* (*lost*: the feed dropped some)."""
        if not self.spec.filters:
            return
        if lost:
            self._overflowed()
            return
        spec = self.spec
        for c in changes:
            own = c.account == self.user
            if not own and not spec.reaches_shared:
                continue  # the selected mailbox's owner, or a grant to "anyone"
            if not own and (c.kind == "acl" or (c.kind == "mailbox" and (c.name or c.old_name))):
                # The user's rights follow these, told or not (the flush decides), also
                # after the client's own CREATE or SETACL there.
                if c.kind == "mailbox" and c.name and not c.old_name and self._reads(spec, c):
                    self._pend(c.account, c.mailbox_id, c.name, "uidvalidity")
                self._pend_name(c)
            elif c.origin == self.origin or c.kind == "acl":
                pass  # 5: the client is not told of its own doing; its own ACLs keep its rights
            elif c.kind in _EVENT_OF:
                if _EVENT_OF[c.kind] in spec.events_for(_shown(c, own), None):
                    self._pend(c.account, c.mailbox_id, c.name, c.kind)
            elif c.kind == "mailbox":
                if c.name and not c.old_name and self._reads(spec, c):
                    # A new mailbox: its UIDVALIDITY is news (5.1). A renamed one keeps its
                    # own, and the LIST with OLDNAME tells where it went.
                    self._pend(c.account, c.mailbox_id, c.name, "uidvalidity")
                if spec.wants("MailboxName", (c.name, c.old_name), None):
                    self._pend_name(c)
            elif c.kind == "subscription" and own and any(
                "SubscriptionChange" in f.events and f.matches(c.name, None) for f in spec.filters
            ):
                self._pend_name(c)  # subscriptions are the user's own: never the owner's
            elif c.kind == "metadata":
                if not c.name:
                    wanted = own and spec.server_metadata  # the server's entries are each account's
                else:
                    wanted = MAILBOX_METADATA in spec.events_for(_shown(c, own), None)
                if wanted:
                    # 3.2 of RFC 5464: another user's /private entries are theirs alone.
                    self._pend_metadata(c.account, c.mailbox_id, c.name, [
                        e for e in c.entries if c.user == self.user or not e.startswith("/private")
                    ])
            if self._overflow:
                return

    def _reads(self, spec: NotifySpec, c: Change) -> bool:
        return c.origin != self.origin and bool(
            MESSAGE_EVENTS.intersection(spec.events_for(_shown(c, c.account == self.user), None))
        )

    def _pend(self, account: str, mailbox_id: int, name: str, kind: str) -> None:
        key = (account, mailbox_id)
        entry = self._status.get(key)
        if entry is None:
            if self._full():
                return
            self._status[key] = (name, {kind})
        else:
            self._status[key] = (name, entry[1] | {kind})

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
        self.rights.clear()
        self._no_access.clear()
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
        self._stores, self._fresh = {}, {}
        try:
            if names:
                await self._send_names(s, names)
            if status:
                await self._send_status(s, status)
            if metadata:
                await self._send_metadata(s, metadata)
        finally:
            self._stores, self._fresh = {}, {}

    # --- the user's rights on other accounts' mailboxes -----------------------------------

    async def _store_of(self, s: IMAPSession, owner: str) -> AccountStore | None:
        if owner not in self._stores:
            try:
                self._stores[owner] = await owner_store(s, owner)
            except StoreError:
                self._stores[owner] = None
        return self._stores[owner]

    async def _rights_now(self, s: IMAPSession, owner: str, name: str) -> str:
        """The user's rights on *owner*'s mailbox *name*, read now ("" if it shares
        nothing with the user, or cannot be read just now)."""
        store = await self._store_of(s, owner)
        if store is None:
            return ""
        try:
            return (await store.granted(identities(s), name)).get(name, "")
        except StoreError:
            return ""

    def _keep(self, key: tuple[str, str], rights: str) -> str:
        """Note the rights on a shared mailbox (none: forgotten, so that what is kept
        stays as many as the mailboxes shared with the user)."""
        if rights:
            self.rights[key] = rights
        else:
            self.rights.pop(key, None)
        return rights

    async def _rights(self, s: IMAPSession, owner: str, name: str) -> str:
        """The rights now, read once per flush: what is told of a mailbox's content
        never rests on rights kept from before."""
        key = (owner, name)
        if key not in self._fresh:
            self._fresh[key] = self._keep(key, await self._rights_now(s, owner, name))
        return self._fresh[key]

    async def _follow_mailbox(self, s: IMAPSession, c: Change) -> str:
        """Keep the rights on a shared mailbox in step with its CREATE, RENAME or DELETE;
        the rights it had before the change (after it, for a new one)."""
        old_key, new_key = (c.account, c.old_name), (c.account, c.name)
        self._fresh.pop(old_key, None)
        self._fresh.pop(new_key, None)
        if c.name and c.old_name:
            rights = self.rights.pop(old_key, None)
            if rights is None:
                rights = await self._rights_now(s, c.account, c.name)
            self._keep(new_key, rights)  # an ACL goes with its mailbox
            if old_key in self._no_access:
                self._no_access.discard(old_key)
                self._no_access.add(new_key)
            return rights
        if c.name:
            return self._keep(new_key, await self._rights_now(s, c.account, c.name))  # inherited
        self._no_access.discard(old_key)
        return self.rights.pop(old_key, "")

    async def _acl_changed(
        self, s: IMAPSession, c: Change, subs: set[str], told: dict[str, tuple[str, bool]]
    ) -> None:
        """What a change of the user's rights on a shared mailbox shows (5.4, 5.9)."""
        key = (c.account, c.name)
        old = self.rights.get(key, "")
        new = self._fresh[key] = self._keep(key, await self._rights_now(s, c.account, c.name))
        if c.origin == self.origin:
            return  # 5: its own SETACL
        shown = shared_name(c.account, c.name)
        events = self.spec.events_for(shown, subs)
        had, has = "l" in old, "l" in new
        if had != has and "MailboxName" in events:
            # 5.4: granting "l" is a creation, taking it away a deletion (\NonExistent);
            # the mailbox and its parent are affected.
            self._no_access.discard(key)
            told.setdefault(shown, ("", False))
            told.setdefault(shown.rpartition(DELIMITER)[0], ("", False))
            return
        if not NEEDS_READ & events:
            return
        if (has and "r" not in new) or (had and not has):
            # 3.1: listable without "r"; 5.9: no longer listable. Monitoring stops.
            if key not in self._no_access:
                self._no_access.add(key)
                told[shown] = ("", True)
        elif has and "r" in new and key in self._no_access:
            self._no_access.discard(key)
            told[shown] = ("", False)  # 5.9: access again, without \NoAccess

    # --- what is told -------------------------------------------------------------------------

    async def _send_names(self, s: IMAPSession, changes: list[Change]) -> None:
        """5.4, 5.5: a LIST for each affected name, its attributes as they are now."""
        store = s.store
        assert store is not None
        subs = set(await store.subscriptions())
        spec = self.spec
        renames = {
            (_shown(c, c.account == self.user, c.old_name), _shown(c, c.account == self.user))
            for c in changes if c.kind == "mailbox" and c.name and c.old_name
        }
        told: dict[str, tuple[str, bool]] = {}  # name -> (its old name after a rename, \NoAccess)
        for c in changes:
            own = c.account == self.user
            if c.kind == "acl":
                await self._acl_changed(s, c, subs, told)
                continue
            if c.kind == "subscription":
                # SUBSCRIBED covers a name subscribed before or after the change.
                if any("SubscriptionChange" in f.events and f.matches(c.name, subs | {c.name}) for f in spec.filters):
                    told.setdefault(c.name, ("", False))
                continue
            if not own:
                rights = await self._follow_mailbox(s, c)
                if c.origin == self.origin or "l" not in rights:
                    continue  # its own doing, or a mailbox the user may not see
            name, old = _shown(c, own), _shown(c, own, c.old_name)
            if c.name and c.old_name:
                if not _below_rename(old, name, renames) and spec.wants("MailboxName", (name, old), subs):
                    told[name] = (old, False)
            elif c.name or c.old_name:
                name = name or old
                if spec.wants("MailboxName", (name,), subs):
                    # Created or deleted: the mailbox and its parent are affected.
                    told.setdefault(name, ("", False))
                    parent = name.rpartition(DELIMITER)[0]
                    if parent:
                        told.setdefault(parent, ("", False))
        told.pop("", None)
        if not told:
            return
        by_name = {e.shown: e for e in await visible(s)}
        parents = ancestors(by_name)
        for n, (name, (old, no_access)) in enumerate(told.items(), 1):
            if no_access:
                s.send(_no_access_line(s, name))
            else:
                s.send(list_response(s, name, by_name, parents, subs, old))
            if n % _FLUSH_EVERY == 0:
                await s.flush()

    async def _readable(self, s: IMAPSession, account: str, name: str) -> AccountStore | None:
        """The store to read mailbox *name* of *account* from, if the user may have its
        content events ("l" and "r" on another account's, 5)."""
        if account == self.user:
            return s.store
        rights = await self._rights(s, account, name)
        if "l" not in rights or "r" not in rights:
            return None
        return await self._store_of(s, account)

    async def _send_status(self, s: IMAPSession, pending: dict[tuple[str, int], tuple[str, set[str]]]) -> None:
        assert s.store is not None
        subs = set(await s.store.subscriptions()) if self.spec.needs_subscriptions else None
        sent = 0
        for (account, mailbox_id), (name, kinds) in pending.items():
            view = s.view
            if view is not None and view.owner == account and view.mailbox.id == mailbox_id:
                continue  # the selected mailbox follows SELECTED's rules (3.1)
            own = account == self.user
            shown = name if own else shared_name(account, name)
            items = status_items(kinds, self.spec.events_for(shown, subs), s.condstore)
            if not items:
                continue
            store = await self._readable(s, account, name)
            if store is None:
                continue
            try:
                st = await store.status(name)
            except MailboxNotFound:
                continue  # gone since; its MailboxName event tells
            if st.mailbox.id != mailbox_id:
                continue  # the name is another mailbox's now
            s.send(status_response(s, st, items, None if own else shown))
            sent += 1
            if sent % _FLUSH_EVERY == 0:
                await s.flush()

    async def _send_metadata(self, s: IMAPSession, pending: dict[tuple[str, int], tuple[str, set[str]]]) -> None:
        """RFC 5465 5.6, 5.7 (RFC 5464 4.4.2): the names of the entries that changed,
        removed ones included, without their values."""
        assert s.store is not None
        subs = set(await s.store.subscriptions()) if self.spec.needs_subscriptions else None
        sent = 0
        for (account, mailbox_id), (name, entries) in pending.items():
            own = account == self.user
            shown = name if own else shared_name(account, name)
            if name:
                if MAILBOX_METADATA not in self.spec.events_for(shown, subs):
                    continue
                store = await self._readable(s, account, name)
                if store is None:
                    continue
                try:
                    if (await store.get_mailbox(name)).id != mailbox_id:
                        continue  # the name is another mailbox's now
                except MailboxNotFound:
                    continue  # gone since; its MailboxName event tells
            elif not (own and self.spec.server_metadata):
                continue
            head = s.encode_name(shown) if name else b'""'
            ordered = sorted(entries)
            for at in range(0, len(ordered), _ENTRIES_PER_LINE):
                chunk = ordered[at : at + _ENTRIES_PER_LINE]
                s.send(b"* METADATA " + head + b" " + b" ".join(wire.astring(e) for e in chunk) + b"\r\n")
                sent += 1
                if sent % _FLUSH_EVERY == 0:
                    await s.flush()


def _shown(c: Change, own: bool, name: str | None = None) -> str:
    """A change's mailbox name (or *name*) as the user names it ("" stays "")."""
    name = c.name if name is None else name
    return name if own or not name else shared_name(c.account, name)


def _no_access_line(s: IMAPSession, shown: str) -> bytes:
    return b"* LIST (" + _NO_ACCESS.encode() + b') "/" ' + s.encode_name(shown) + b"\r\n"


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
