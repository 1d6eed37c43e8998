"""A selected mailbox as one session sees it: message sequence numbers <-> UIDs.

The view holds only UIDs (a compact array) and the MODSEQ it has caught up to; flags and
everything else are read from the index when asked for. Changes made by other sessions
reach the view through `sync`, which turns a store ChangeSet into the untagged
responses RFC 9051 allows at that moment: EXISTS and FETCH FLAGS at any command's end,
EXPUNGE only where the command permits it (never during FETCH, STORE or SEARCH, 7.5.1),
so sequence numbers never shift under a client. Updating searches (contexts.py) hear of
the same changes at the points RFC 5267 4.3 asks: before an EXPUNGE, after an EXISTS or
FETCH.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from ..store import acl
from ..store.api import AccountStore, Mailbox, MessageMeta
from . import wire
from .grammar import SequenceSet

if TYPE_CHECKING:
    from .contexts import UpdateContexts

SYSTEM_ORDER = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


class RecentSet:
    """The UIDs that are \\Recent to one session (IMAP4rev1): disjoint [lo, hi) ranges,
    one per claim. Another session may claim messages in between (RFC 3501 2.3.1.2: a
    message is recent in exactly one read-write session), so they need not be one run."""

    __slots__ = ("_lo", "_hi")

    def __init__(self, lo: int = 0, hi: int = 0) -> None:
        self._lo: list[int] = []
        self._hi: list[int] = []
        self.add(lo, hi)

    def add(self, lo: int, hi: int) -> None:
        if lo >= hi:
            return
        # Claims come in UID order; an EXAMINE's peeks overlap: merge with what touches.
        i = bisect.bisect_left(self._hi, lo)
        j = bisect.bisect_right(self._lo, hi)
        if i < j:
            lo = min(lo, self._lo[i])
            hi = max(hi, self._hi[j - 1])
        self._lo[i:j] = [lo]
        self._hi[i:j] = [hi]

    def __contains__(self, uid: int) -> bool:
        i = bisect.bisect_right(self._lo, uid) - 1
        return i >= 0 and uid < self._hi[i]

    def count(self, uids: Sequence[int]) -> int:
        return sum(bisect.bisect_left(uids, hi) - bisect.bisect_left(uids, lo) for lo, hi in zip(self._lo, self._hi, strict=True))

    def segments(self, uids: Sequence[int], a: int, b: int) -> Iterator[tuple[int, int, bool]]:
        """Split the ascending *uids*[a:b] into runs (start, end, recent)."""
        i = a
        while i < b:
            k = bisect.bisect_right(self._lo, uids[i]) - 1
            if k >= 0 and uids[i] < self._hi[k]:
                end = bisect.bisect_left(uids, self._hi[k], i, b)
                yield i, end, True
            else:
                nxt = self._lo[k + 1] if k + 1 < len(self._lo) else None
                end = b if nxt is None else bisect.bisect_left(uids, nxt, i, b)
                yield i, end, False
            i = end


class ViewGone(Exception):
    """The selected mailbox was deleted or renamed away by another session."""


class SelectedView:
    __slots__ = (
        "mailbox",
        "store",
        "owner",
        "shown",
        "rights",
        "readonly",
        "uids",
        "_uids_shared",
        "modseq",
        "uidnext",
        "recent",
        "pending_expunge",
        "own_modseqs",
        "own_new",
        "keywords",
        "condstore",
        "qresync",
        "uidonly",
        "expunge_floor",
        "saved",
        "contexts",
    )

    def __init__(
        self, mailbox: Mailbox, uids: Iterable[int], readonly: bool, recent: RecentSet,
        store: AccountStore, owner: str, shown: str | None = None, rights: str = acl.ALL,
    ) -> None:
        self.mailbox = mailbox
        """As the owner's account has it (its name is the owner's, see *shown*)."""
        self.store = store
        """The owner's account, as this session's user reads it."""
        self.owner = owner
        self.shown = mailbox.name if shown is None else shown
        """The mailbox's name as the user writes it."""
        self.rights = rights
        """The user's rights (RFC 4314): all of them in the user's own mailboxes."""
        self.readonly = readonly
        # The store's own array is shared until this view first changes it: a thousand
        # sessions on one big mailbox hold one copy of its UIDs, and SELECT copies none.
        self.uids: array[int]
        if isinstance(uids, array) and uids.typecode == "L":
            self.uids, self._uids_shared = uids, True
        else:
            self.uids, self._uids_shared = array("L", uids), False
        self.modseq = mailbox.highestmodseq
        self.uidnext = mailbox.uidnext
        self.recent = recent
        """The UIDs that are \\Recent to this session (IMAP4rev1 only)."""
        self.pending_expunge: set[int] = set()
        self.own_modseqs: set[int] = set()
        self.own_new: set[int] = set()
        """UIDs this session put into the mailbox (APPEND, COPY, MOVE) not yet announced:
        NOTIFY fetches nothing of them (RFC 5465 5.2)."""
        self.keywords = set(mailbox.keywords)
        self.condstore = False
        self.qresync = False
        """RFC 7162 3.2.10.2: report expunges as VANISHED, not EXPUNGE."""
        self.uidonly = False
        """RFC 9586: UIDFETCH instead of FETCH, VANISHED instead of EXPUNGE."""
        self.expunge_floor: int | None = None
        """While expunges are held back: a MODSEQ below all of theirs."""
        self.saved: list[int] = []
        """UIDs saved by SEARCH RETURN (SAVE), referred to as $ (RFC 5182)."""
        self.contexts: UpdateContexts | None = None
        """Updating searches (RFC 5267 4.3): they end with the view."""

    @property
    def exists(self) -> int:
        return len(self.uids)

    def msn(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i + 1
        return None

    def recent_count(self) -> int:
        return self.recent.count(self.uids)

    # --- resolving sequence sets -------------------------------------------------------
    def resolve(self, seqset: SequenceSet, uid: bool) -> list[tuple[int, int]]:
        """(msn, uid) pairs named by *seqset*, ascending. Numbers that name no message
        are skipped for UID sets; for sequence numbers the caller checks `valid_msns`."""
        if seqset.last_result:
            uids = self.saved
            return [(m, u) for u in uids if (m := self.msn(u)) is not None]
        if uid:
            star = self.uids[-1] if self.uids else 0
            out: list[tuple[int, int]] = []
            for lo, hi in seqset.resolve(star):
                i = bisect.bisect_left(self.uids, lo)
                j = bisect.bisect_right(self.uids, hi)
                out.extend((k + 1, self.uids[k]) for k in range(i, j))
            return out
        n = len(self.uids)
        out = []
        for lo, hi in seqset.resolve(n):
            for k in range(max(lo, 1), min(hi, n) + 1):
                out.append((k, self.uids[k - 1]))
        return out

    def valid_msns(self, seqset: SequenceSet) -> bool:
        """RFC 9051 6.4.4: a message sequence number beyond EXISTS is an error (BAD)."""
        if seqset.last_result:
            return True
        n = len(self.uids)
        return all(lo >= 1 and hi <= n for lo, hi in seqset.resolve(max(n, 1)))

    # --- applying changes --------------------------------------------------------------
    async def sync(
        self, store: AccountStore, allow_expunge: bool, rev2: bool, with_uid: bool = False, flags: bool = True
    ) -> tuple[list[bytes], list[int]]:
        """Catch up with the store; return the untagged responses to send now, and the
        UIDs of the new messages that other sessions put there. Other sessions' flag
        changes are told only with *flags*."""
        cs = await store.changes_since(self.mailbox.id, self.modseq)
        if (
            cs.uidvalidity_changed
            or (cs.name is not None and cs.name != self.mailbox.name)
            or (cs.uidvalidity and cs.uidvalidity != self.mailbox.uidvalidity)
        ):
            # Deleted or renamed by another session: RFC 2180 3.2 lets the server end the
            # other sessions with BYE, as Dovecot does; a UID of this view must never be
            # applied to whatever mailbox has the name now.
            raise ViewGone()
        out: list[bytes] = []
        present = set()
        if cs.expunged:
            for u in cs.expunged:
                if self.msn(u) is not None:
                    present.add(u)
            self.pending_expunge |= present
            if present and self.expunge_floor is None:
                self.expunge_floor = self.modseq  # they all came after what we had
            if present and self.contexts:
                out.extend(self.contexts.expunged(self, sorted(present)))
        if allow_expunge and self.pending_expunge:
            out.extend(self._expunge_now())
        new: list[int] = []
        flag_updates: list[MessageMeta] = []
        touched: list[int] = []  # flags changed, also by this session (for contexts)
        last = self.uids[-1] if self.uids else 0
        for meta in cs.updated:
            if meta.uid > last and meta.uid not in self.pending_expunge:
                new.append(meta.uid)
            elif self.msn(meta.uid) is not None:
                if flags and meta.modseq not in self.own_modseqs:
                    flag_updates.append(meta)
                if meta.uid not in self.pending_expunge:
                    touched.append(meta.uid)
        out.extend(self.announce_keywords(cs.updated))
        if new and not rev2:
            # The first session told of a message has it as \\Recent (RFC 3501 2.3.1.2).
            self.recent.add(*await store.take_recent(self.mailbox.id, claim=not self.readonly))
        if new:
            self._own_uids()
            self.uids.extend(new)
            self.uidnext = max(self.uidnext, new[-1] + 1)
            out.append(b"* %d EXISTS\r\n" % len(self.uids))
            if not rev2:
                out.append(b"* %d RECENT\r\n" % self.recent_count())
        for meta in flag_updates:
            items = [b"FLAGS " + wire.flag_list(self.shown_flags(meta.uid, meta.flags, rev2))]
            if with_uid or self.condstore:
                items.append(b"UID %d" % meta.uid)
            if self.condstore:
                items.append(b"MODSEQ (%d)" % meta.modseq)
            line = self.fetch_response(meta.uid, items)
            if line is not None:
                out.append(line)
        if self.contexts and (new or touched):
            out.extend(await self.contexts.changed(self, new, touched))
        self.modseq = max(self.modseq, cs.highestmodseq)
        self.own_modseqs = {m for m in self.own_modseqs if m > self.modseq}
        others = [u for u in new if u not in self.own_new]
        self.own_new.clear()
        return out, others

    def _expunge_now(self) -> list[bytes]:
        """EXPUNGE responses, highest sequence number first so that none needs adjusting,
        or with QRESYNC or UIDONLY one VANISHED response for them all."""
        out = []
        msns = sorted((m for u in self.pending_expunge if (m := self.msn(u)) is not None), reverse=True)
        vanished = self.qresync or self.uidonly
        if vanished and msns:
            out.append(b"* VANISHED " + wire.sequence_set(self.uids[m - 1] for m in reversed(msns)) + b"\r\n")
        if msns:
            self._own_uids()
        for m in msns:
            if not vanished:
                out.append(b"* %d EXPUNGE\r\n" % m)
            del self.uids[m - 1]
        self.expunge_floor = None
        self.pending_expunge.clear()
        self.saved = [u for u in self.saved if self.msn(u) is not None]
        return out

    def _own_uids(self) -> None:
        """Copy the UIDs before the first change: the store's array is shared."""
        if self._uids_shared:
            self.uids = array("L", self.uids)
            self._uids_shared = False

    def remove_own(self, uids: Iterable[int]) -> list[bytes]:
        """This session expunged *uids*: report them now (EXPUNGE, CLOSE, MOVE)."""
        mine = sorted(u for u in uids if self.msn(u) is not None)
        out = self.contexts.expunged(self, mine) if self.contexts else []
        self.pending_expunge.update(mine)
        return out + self._expunge_now()

    def fetch_response(self, uid: int, items: list[bytes]) -> bytes | None:
        """An untagged FETCH of message *uid* with *items* (name and value each), or None
        when the view has no such message. With UIDONLY a UIDFETCH, which names the
        message by its UID and so carries no UID item (RFC 9586)."""
        msn = self.msn(uid)
        if msn is None:
            return None
        if self.uidonly:
            return b"* %d UIDFETCH (" % uid + b" ".join(i for i in items if not i.startswith(b"UID ")) + b")\r\n"
        return wire.fetch_response(msn, items)

    def shown_flags(self, uid: int, flags: Iterable[str], rev2: bool) -> list[str]:
        out = sorted(flags)
        if not rev2 and uid in self.recent:
            out.append("\\Recent")
        return out

    def announce_keywords(self, metas: Iterable[MessageMeta]) -> list[bytes]:
        """FLAGS (and PERMANENTFLAGS) naming keywords that *metas* bring and this session
        has not been told of: sent before the FETCH that shows them (RFC 9051 7.3.5)."""
        fresh = {f for m in metas for f in m.flags if not f.startswith("\\")} - self.keywords
        if not fresh:
            return []
        self.keywords |= fresh
        if self.readonly:
            return [self.flags_response()]
        return [self.flags_response(), self.permanent_flags_response()]

    def flags_response(self) -> bytes:
        flags = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", *sorted(self.keywords)]
        return b"* FLAGS " + wire.flag_list(flags) + b"\r\n"

    def may_store(self, flag: str) -> bool:
        return acl.may_change(self.rights, flag)

    def permanent_flags_response(self) -> bytes:
        # RFC 4314 5.1.1: only the flags the user's rights let them change.
        flags = [f for f in SYSTEM_ORDER if self.may_store(f)]
        if "w" in self.rights:
            flags += [*sorted(self.keywords), "\\*"]
        return b"* OK [PERMANENTFLAGS " + wire.flag_list(flags) + b"] Flags permitted.\r\n"
