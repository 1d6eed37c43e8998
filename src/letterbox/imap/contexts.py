"""Updating searches (RFC 5267 4.3: CONTEXT=SEARCH and CONTEXT=SORT) and CANCELUPDATE.

A SEARCH or SORT with RETURN (UPDATE) leaves a context behind: its search program and
its current result, kept up to date for the client with ESEARCH ADDTO and REMOVEFROM
responses as messages start or stop matching, until CANCELUPDATE or until the mailbox
is no longer selected (the contexts live in the SelectedView).

The selected view hands the contexts what it learns from the store (`SelectedView.sync`
and `remove_own`): expunged messages leave each result before their EXPUNGE goes out
(4.3.4); new messages, and messages whose flags changed, are checked again, and only
those: flag changes only for programs that read flags or MODSEQ, since nothing else of
a message ever changes. The checking is SEARCH's own machinery (a `Matcher` from
search.py) over just those messages, which yields to other sessions as it does over a
whole mailbox.

A SEARCH context keeps ascending UIDs and answers with context position 0 and the
numbers in mailbox order, as Dovecot does. A SORT context keeps its UIDs in sort order;
a newcomer's place is a bisection over the sort keys (`sort.sort_keys`: criteria
values, then UID) of the few results it probes, read from the index, and the answer
gives each run of consecutive results its position (4.3.3), removals first, then
additions, so the client can apply them in order. Either costs a few bytes a result.
"""

from __future__ import annotations

import asyncio
import bisect
from array import array
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from . import grammar as g
from . import wire
from .session import Done, IMAPSession
from .view import SelectedView

MAX_CONTEXTS = 5
"""Updating searches one session may hold at once; more get NOUPDATE (RFC 5267 4.3.1,
which asks for at least one)."""
MAX_SORT_CONTEXTS = 2
"""Of those, updating SORTs: placing their newcomers takes a bisection over the index."""
_BULK = 256
"""Results that change at once beyond which lists are rebuilt, not edited in place."""
CHECK_CHUNK = 2000
"""Messages checked again at a time: other sessions run between two chunks."""

Matcher = Callable[[list[int]], Awaitable[set[int]]]
"""Which of the given messages (ascending UIDs) the context's program matches now."""
SortKey = tuple[Any, ...]
KeysFor = Callable[[list[int]], Awaitable[dict[int, SortKey]]]
"""The sort keys of the given messages (ascending UIDs)."""


# --- the search program ----------------------------------------------------------------


def freeze(key: g.SearchKey, view: SelectedView) -> g.SearchKey:
    """*key* with its sequence sets as the UIDs they name now. Message numbers are
    evaluated when the command is received (RFC 5267 4.3); so are ``*`` and ``$``,
    since an updating search re-checks changed messages only: a live ``UID *`` would
    need the previous last message checked again whenever one arrives."""
    if isinstance(key, g.SearchSet):
        seqset = key.sequence_set
        if key.uid and not seqset.last_result and not seqset.uses_star:
            return key  # UIDs never change their meaning
        uids = [u for _, u in view.resolve(seqset, key.uid)]
        return g.SearchSet(g.SequenceSet.of(uids), uid=True)
    if isinstance(key, g.SearchAnd):
        return g.SearchAnd(tuple(freeze(k, view) for k in key.keys))
    if isinstance(key, g.SearchOr):
        return g.SearchOr(freeze(key.left, view), freeze(key.right, view))
    if isinstance(key, g.SearchNot):
        return g.SearchNot(freeze(key.key, view))
    return key


def _any(key: g.SearchKey, test: Callable[[g.SearchKey], bool]) -> bool:
    if test(key):
        return True
    if isinstance(key, g.SearchAnd):
        return any(_any(k, test) for k in key.keys)
    if isinstance(key, g.SearchOr):
        return _any(key.left, test) or _any(key.right, test)
    if isinstance(key, g.SearchNot):
        return _any(key.key, test)
    return False


def reads_flags(key: g.SearchKey) -> bool:
    """Whether a flag change can change what *key* says of a message."""
    return _any(key, lambda k: isinstance(k, g.SearchFlag | g.SearchModSeq))


def _timed(key: g.SearchKey) -> bool:
    return _any(key, lambda k: isinstance(k, g.SearchAge))


# --- contexts --------------------------------------------------------------------------


class _Context:
    def __init__(self, tag: str, uid: bool, key: g.SearchKey, match: Matcher) -> None:
        self.tag = tag
        self.uid = uid
        """Results are UIDs (UID SEARCH, UID SORT), else message sequence numbers."""
        self.match = match
        self.reads_flags = reads_flags(key)

    def holds(self, uid: int) -> bool:
        raise NotImplementedError

    def numbers(self, view: SelectedView, uids: Iterable[int]) -> list[int]:
        if self.uid:
            return list(uids)
        return [m for u in uids if (m := view.msn(u)) is not None]

    def line(self, items: list[bytes]) -> bytes:
        head = b"* ESEARCH (TAG " + wire.quoted(self.tag) + (b") UID " if self.uid else b") ")
        return head + b" ".join(items) + b"\r\n"


class SearchContext(_Context):
    """An updating SEARCH: its result as ascending UIDs."""

    def __init__(self, tag: str, uid: bool, key: g.SearchKey, match: Matcher, found: Iterable[int]) -> None:
        super().__init__(tag, uid, key, match)
        self.results = array("I", found)

    def holds(self, uid: int) -> bool:
        i = bisect.bisect_left(self.results, uid)
        return i < len(self.results) and self.results[i] == uid

    def remove(self, view: SelectedView, uids: Iterable[int]) -> list[bytes]:
        gone = sorted(u for u in set(uids) if self.holds(u))
        if not gone:
            return []
        # Numbers first: for sequence numbers the messages must still be in the view.
        item = b"REMOVEFROM (0 " + wire.sequence_set(self.numbers(view, gone)) + b")"
        if len(gone) > _BULK:
            drop = set(gone)
            self.results = array("I", (u for u in self.results if u not in drop))
        else:
            for u in gone:
                del self.results[bisect.bisect_left(self.results, u)]
        return [item]

    def add(self, view: SelectedView, uids: Iterable[int]) -> list[bytes]:
        come = sorted(u for u in set(uids) if not self.holds(u))
        if not come:
            return []
        if len(come) > _BULK:
            self.results = array("I", sorted((*self.results, *come)))
        else:
            for u in come:
                self.results.insert(bisect.bisect_left(self.results, u), u)
        # 4.3.3: position 0, in mailbox order for the shortest set.
        return [b"ADDTO (0 " + wire.sequence_set(self.numbers(view, come)) + b")"]


class SortContext(_Context):
    """An updating SORT: its result as UIDs in sort order (and ascending, to look them
    up), 8 bytes a result. A newcomer's place is found by bisection, all newcomers
    together, with the sort keys of the few results probed read from the index; a
    result expunged meanwhile has none and is stepped over (its REMOVEFROM follows)."""

    def __init__(
        self, tag: str, uid: bool, key: g.SearchKey, match: Matcher, keys_for: KeysFor, order: Sequence[int]
    ) -> None:
        super().__init__(tag, uid, key, match)
        self.keys_for = keys_for
        self.order = array("I", order)
        self.members = array("I", sorted(order))

    def holds(self, uid: int) -> bool:
        i = bisect.bisect_left(self.members, uid)
        return i < len(self.members) and self.members[i] == uid

    def _runs(self, view: SelectedView, where: list[int], shift: bool) -> list[bytes]:
        """Context positions and numbers for the results at *where* (ascending indexes
        into self.order): one pair per run of neighbours. With *shift*, each position
        allows for the runs before it being gone already (a REMOVEFROM)."""
        pairs: list[bytes] = []
        start, done = 0, 0
        for i in range(1, len(where) + 1):
            if i < len(where) and where[i] == where[i - 1] + 1:
                continue
            run = where[start:i]
            numbers = self.numbers(view, (self.order[j] for j in run))
            position = run[0] + 1 - (done if shift else 0)
            pairs.append(b"%d %s" % (position, wire.ordered_set(numbers)))
            done += len(run)
            start = i
        return pairs

    def remove(self, view: SelectedView, uids: Iterable[int]) -> list[bytes]:
        gone = {u for u in uids if self.holds(u)}
        if not gone:
            return []
        if len(gone) > 8:
            where = [i for i, u in enumerate(self.order) if u in gone]  # one pass
        else:
            where = sorted(self.order.index(u) for u in gone)
        item = b"REMOVEFROM (" + b" ".join(self._runs(view, where, shift=True)) + b")"
        if len(gone) > _BULK:
            self.order = array("I", (u for u in self.order if u not in gone))
            self.members = array("I", (u for u in self.members if u not in gone))
        else:
            for j in reversed(where):
                del self.order[j]
            for u in gone:
                del self.members[bisect.bisect_left(self.members, u)]
        return [item]

    async def add(self, view: SelectedView, uids: Iterable[int]) -> list[bytes]:
        come = sorted(u for u in set(uids) if not self.holds(u))
        if not come:
            return []
        fresh = await self.keys_for(come)
        if not fresh:
            return []  # expunged meanwhile: the expunge will be learned
        places = await self._places(fresh)
        # Newcomers in their final order: by the place each goes before, then by key;
        # each lands as many further on as newcomers go in before it.
        ranked = sorted(fresh, key=lambda u: (places[u], fresh[u]))
        where = [places[u] + t for t, u in enumerate(ranked)]
        if len(ranked) > _BULK:
            order: list[int] = []
            last = 0
            for u in ranked:
                order.extend(self.order[last : places[u]])
                order.append(u)
                last = places[u]
            order.extend(self.order[last:])
            self.order = array("I", order)
            self.members = array("I", sorted((*self.members, *ranked)))
        else:
            for u in reversed(ranked):
                self.order.insert(places[u], u)
            for u in ranked:
                bisect.insort(self.members, u)
        # Positions in the final list, ascending: each run goes in after the ones before
        # it, so its position is already right when the client reaches it.
        return [b"ADDTO (" + b" ".join(self._runs(view, where, shift=False)) + b")"]

    async def _places(self, fresh: dict[int, SortKey]) -> dict[int, int]:
        """For each newcomer, the index in self.order it goes before: a bisection per
        newcomer, all advancing together, one index read per step for all their probes."""
        bounds = {u: (0, len(self.order)) for u in fresh}
        known: dict[int, SortKey | None] = {}  # probed results' keys; None: expunged
        while True:
            probes: dict[int, int] = {}
            for u, (lo, hi) in bounds.items():
                if lo < hi:
                    mid = self._probe(lo, hi, known)
                    if mid is None:
                        bounds[u] = (lo, lo)  # only expunged results left in between
                    else:
                        probes[u] = mid
            if not probes:
                return {u: lo for u, (lo, _) in bounds.items()}
            need = sorted({self.order[i] for i in probes.values()} - known.keys())
            if need:
                got = await self.keys_for(need)
                known.update((p, got.get(p)) for p in need)
            for u, mid in probes.items():
                k = known[self.order[mid]]
                if k is not None:
                    lo, hi = bounds[u]
                    bounds[u] = (mid + 1, hi) if k < fresh[u] else (lo, mid)

    def _probe(self, lo: int, hi: int, known: dict[int, SortKey | None]) -> int | None:
        """The index nearest the middle of [lo, hi) whose message is not known to be
        expunged. The results that are still there are in order, so bisecting over
        them alone is exact; where the expunged ones fall does not matter."""
        mid = (lo + hi) // 2
        for d in range(hi - lo):
            for i in (mid - d, mid + d):
                if lo <= i < hi and known.get(self.order[i], ()) is not None:
                    return i
        return None


Context = SearchContext | SortContext


class UpdateContexts:
    """The updating searches of one selected mailbox, by tag."""

    def __init__(self) -> None:
        self.by_tag: dict[str, Context] = {}

    def __contains__(self, tag: str) -> bool:
        return tag in self.by_tag

    def __len__(self) -> int:
        return len(self.by_tag)

    def refusal(self, key: g.SearchKey, sort: bool) -> str | None:
        """Why a new updating search would be refused (NOUPDATE, 4.3.1), or None."""
        if _timed(key):
            return "OLDER and YOUNGER results change with time alone; no updates"
        if len(self.by_tag) >= MAX_CONTEXTS:
            return f"At most {MAX_CONTEXTS} updating searches at once; no updates"
        if sort and sum(isinstance(c, SortContext) for c in self.by_tag.values()) >= MAX_SORT_CONTEXTS:
            return f"At most {MAX_SORT_CONTEXTS} updating sorts at once; no updates"
        return None

    def add(self, context: Context) -> None:
        self.by_tag[context.tag] = context

    def cancel(self, tag: str) -> bool:
        return self.by_tag.pop(tag, None) is not None

    def expunged(self, view: SelectedView, uids: Iterable[int]) -> list[bytes]:
        """REMOVEFROM for expunged results, sent before the EXPUNGE (4.3.4) while their
        sequence numbers are still valid; held-back expunges get theirs at once (A.3)."""
        gone = list(uids)
        out: list[bytes] = []
        if not gone:
            return out
        for context in self.by_tag.values():
            items = context.remove(view, gone)
            if items:
                out.append(context.line(items))
        return out

    async def changed(self, view: SelectedView, new: list[int], changed: list[int]) -> list[bytes]:
        """ADDTO and REMOVEFROM for messages that start or stop matching: *new* ones
        (after their EXISTS, 4.3.3) and ones whose flags *changed* (after their FETCH).
        Both ascending, every new UID above every changed one."""
        out: list[bytes] = []
        for context in list(self.by_tag.values()):
            check = changed + new if context.reads_flags else new
            if not check:
                continue
            hits: set[int] = set()
            for start in range(0, len(check), CHECK_CHUNK):
                hits |= await context.match(check[start : start + CHECK_CHUNK])
                await asyncio.sleep(0)
            items = context.remove(view, [u for u in changed if u not in hits]) if context.reads_flags else []
            come = [u for u in check if u in hits]
            if isinstance(context, SortContext):
                items += await context.add(view, come)
            else:
                items += context.add(view, come)
            if items:
                out.append(context.line(items))
        return out


def contexts_of(view: SelectedView) -> UpdateContexts:
    if view.contexts is None:
        view.contexts = UpdateContexts()
    return view.contexts


def tag_in_use(s: IMAPSession, tag: str) -> bool:
    """RFC 5267 4.3: UPDATE with the tag of a live updating search is BAD."""
    view = s.view
    return view is not None and view.contexts is not None and tag in view.contexts


def noupdate(tag: str, reason: str) -> bytes:
    return wire.untagged_status("NO", reason, b"NOUPDATE " + wire.quoted(tag))


async def cmd_cancelupdate(s: IMAPSession, cmd: g.CancelUpdate) -> Done:
    # RFC 5267 4.3.5. Every known tag is cancelled; any other makes the answer NO, as
    # Dovecot answers a tag it does not know.
    view = s.view
    assert view is not None
    contexts = view.contexts
    unknown = [t for t in cmd.tags if contexts is None or not contexts.cancel(t)]
    if unknown:
        return Done("NO", f'No updating search has the tag "{unknown[0][:64]}"')
    return Done(text="CANCELUPDATE completed")
