"""SORT and UID SORT (RFC 5256 section 3), with ESORT (RFC 5267 section 3: RETURN (MIN MAX
ALL COUNT), and SAVE as SEARCH has it, RFC 5182), CONTEXT=SORT (RFC 5267 section 4:
CONTEXT, UPDATE and PARTIAL, with RFC 9394's negative ranges), SORT=DISPLAY (RFC 5957)
and CONDSTORE's MODSEQ (RFC 7162 3.1.9-3.1.10).

Messages are chosen by the SEARCH machinery, then their sort keys come from the index:
dates and sizes from its columns, subjects from its decoded Subject text, addresses from
the stored ENVELOPE; each message's keys are computed once per command, and the result
is kept for the next SORT of the same messages (see sortcache). Ties keep the mailbox
order (stable sorts, from the last criterion to the first), REVERSE included. Long loops
let other sessions run: no stretch of a SORT over 100,000 messages holds the event loop
for long.
"""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Callable, Sequence
from typing import Any

from ..store.api import AccountStore, FetchField, StoreError
from . import grammar as g
from . import wire
from .contexts import KeysFor, SortContext, SortKey, contexts_of, freeze, noupdate, tag_in_use
from .grammar.sort import Sort, SortCriterion
from .progress import Progress
from .search import (
    CHARSETS,
    MAX_CONTENT_KEYS,
    _fields,
    _Search,
    content_keys,
    esearch,
    matcher,
    returned_results,
)
from .session import ONLY_SELECTED, Done, IMAPSession, Spec
from .sortcache import RESULTS
from .sortkeys import (
    ENV_CC,
    ENV_FROM,
    ENV_TO,
    address_display,
    address_mailbox,
    base_subject,
    casemap,
)
from .view import SelectedView

# Index rows read per query, and messages handled between two chances for other sessions.
CHUNK = 2000

_FIELDS: dict[str, tuple[FetchField, ...]] = {
    "ARRIVAL": ("internaldate",),
    "DATE": ("sent_date", "internaldate"),
    "SIZE": ("size",),
    "SUBJECT": ("subject",),
    "FROM": ("envelope",),
    "TO": ("envelope",),
    "CC": ("envelope",),
    "DISPLAYFROM": ("envelope",),
    "DISPLAYTO": ("envelope",),
}


Row = tuple[Any, ...]
"""(UID, one value per field) as AccountStore.fetch_values gives it."""


def _envelope_key(field: int, display: bool) -> Callable[[bytes], str]:
    if display:
        return lambda env: casemap(address_display(env, field)) if env else ""
    return lambda env: casemap(address_mailbox(env, field)) if env else ""


_ENVELOPE_KEYS: dict[str, Callable[[bytes], str]] = {
    "FROM": _envelope_key(ENV_FROM, False),
    "TO": _envelope_key(ENV_TO, False),
    "CC": _envelope_key(ENV_CC, False),
    "DISPLAYFROM": _envelope_key(ENV_FROM, True),
    "DISPLAYTO": _envelope_key(ENV_TO, True),
}


class SubjectKeys:
    """Base subject (case-mapped) and whether it shows a reply, once per distinct
    Subject text: a thread's messages share theirs."""

    def __init__(self) -> None:
        self.memo: dict[str, tuple[str, bool]] = {}

    def __call__(self, subject: str | None) -> tuple[str, bool]:
        text = subject or ""
        got = self.memo.get(text)
        if got is None:
            base, reply = base_subject(text)
            got = self.memo[text] = (casemap(base), reply)
        return got


# --- choosing messages: SEARCH's machinery ---------------------------------------------------


class Selection:
    """The messages a SORT or THREAD works on: SEARCH's result, ascending UIDs."""

    def __init__(self, uids: list[int], search: _Search, has_modseq: bool) -> None:
        self.uids = uids
        self.search = search
        self.has_modseq = has_modseq

    async def highest_modseq(self, uids: Sequence[int]) -> int | None:
        if not self.has_modseq or not uids:
            return None
        rows = await self.search.rows(sorted(uids), ("modseq",))
        return max((rows[u].modseq for u in uids if u in rows), default=None)


async def select(s: IMAPSession, charset: str, key: g.SearchKey) -> Selection | Done:
    """Run the search part of a SORT or THREAD command: the matching messages, or the
    NO that ends the command."""
    view = s.view
    assert view is not None
    store = view.store
    if charset not in CHARSETS:
        return Done("NO", f"Unsupported charset {charset}", "BADCHARSET (" + " ".join(CHARSETS) + ")")
    fields: set[FetchField] = set()
    has_modseq = _fields(key, fields)
    if has_modseq:
        s.enable_condstore()  # RFC 7162 3.1: a MODSEQ search key enables CONDSTORE
    needles = content_keys(key, {})
    if len(needles) > MAX_CONTENT_KEYS:
        return Done("NO", f"At most {MAX_CONTENT_KEYS} BODY/TEXT strings per search", "LIMIT")
    gone = view.pending_expunge
    cands = [u for u in view.uids if u not in gone] if gone else list(view.uids)
    search = _Search(s, view, store, fields, needles)
    found = await search.match(key, cands)
    return Selection(found, search, has_modseq)


async def load(
    store: AccountStore, mailbox_id: int, uids: Sequence[int], fields: Sequence[FetchField],
    progress: Progress | None = None, pad: bool = True,
) -> list[Row]:
    """Index values of *uids* (ascending), a chunk at a time, one row per UID in their
    order; a message expunged meanwhile has None for each value (without *pad*, no row)."""
    rows: list[Row] = []
    for start in range(0, len(uids), CHUNK):
        rows.extend(await store.fetch_values(mailbox_id, uids[start : start + CHUNK], fields))
        if progress is not None:
            await progress.step(start + CHUNK, len(uids))
        else:
            await asyncio.sleep(0)
    if pad and len(rows) != len(uids):
        found = {r[0]: r for r in rows}
        blank = (None,) * len(fields)
        rows = [found.get(u) or (u, *blank) for u in uids]
    return rows


def msns(view: SelectedView, uids: Sequence[int]) -> list[int]:
    """Message sequence numbers of *uids* (all in the view), in their order."""
    if len(uids) * 16 < len(view.uids):
        return [m for u in uids if (m := view.msn(u)) is not None]
    place = {u: i for i, u in enumerate(view.uids, 1)}
    return [place[u] for u in uids if u in place]


# --- sorting -----------------------------------------------------------------------------------


async def sort_uids(
    store: AccountStore, mailbox_id: int, uids: list[int], criteria: Sequence[SortCriterion],
    progress: Progress,
) -> list[int]:
    """*uids* (ascending: mailbox order) sorted by *criteria*."""
    values = await _values(store, mailbox_id, uids, criteria, progress=progress)
    return await _order(uids, values, criteria)


async def sort_keys(
    store: AccountStore, mailbox_id: int, uids: list[int], criteria: Sequence[SortCriterion]
) -> dict[int, SortKey]:
    """Each message's place in the order as one comparable tuple: its criteria values
    (Descending under REVERSE), then its UID, since ties keep the mailbox order. Messages
    no longer in the store are left out."""
    present: list[int] = []
    values = await _values(store, mailbox_id, uids, criteria, present)
    return await _keys(present, values, criteria)


async def _values(
    store: AccountStore, mailbox_id: int, uids: list[int], criteria: Sequence[SortCriterion],
    present: list[int] | None = None, progress: Progress | None = None,
) -> dict[str, list[Any]]:
    """Each criterion's value per message of *uids* (ascending), each key computed once
    whatever the number of criteria naming it. Given *present*, messages no longer in
    the store are left out and the UIDs of the others go there; else they get blanks."""
    fields = list(dict.fromkeys(f for c in criteria for f in _FIELDS[c.key]))
    rows = await load(store, mailbox_id, uids, fields, progress, pad=present is None)
    if present is not None:
        present.extend(r[0] for r in rows)
    col = {f: i + 1 for i, f in enumerate(fields)}
    values: dict[str, list[Any]] = {}
    for name in dict.fromkeys(c.key for c in criteria):
        values[name] = await _key_values(name, rows, col)
    return values


async def _order(uids: list[int], values: dict[str, list[Any]], criteria: Sequence[SortCriterion]) -> list[int]:
    order = list(range(len(uids)))
    # Stable sorts from the last criterion to the first: earlier criteria decide, ties
    # keep the mailbox order (REVERSE does not reverse it: RFC 5256 3).
    for c in reversed(criteria):
        order.sort(key=values[c.key].__getitem__, reverse=c.reverse)
        await asyncio.sleep(0)
    return [uids[i] for i in order]


async def _keys(
    uids: list[int], values: dict[str, list[Any]], criteria: Sequence[SortCriterion]
) -> dict[int, SortKey]:
    columns = [(values[c.key], c.reverse) for c in criteria]
    out: dict[int, SortKey] = {}
    for start in range(0, len(uids), CHUNK):
        for i in range(start, min(start + CHUNK, len(uids))):
            out[uids[i]] = (*(Descending(v[i]) if rev else v[i] for v, rev in columns), uids[i])
        await asyncio.sleep(0)
    return out


class Descending:
    """A sort value under REVERSE, inside a key tuple: it compares the other way."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: Descending) -> bool:
        return bool(other.value < self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Descending) and bool(self.value == other.value)

    def __hash__(self) -> int:
        return hash(self.value)


async def _key_values(name: str, rows: list[Row], col: dict[FetchField, int]) -> list[Any]:
    if name == "ARRIVAL":
        i = col["internaldate"]
        return [r[i] or 0.0 for r in rows]
    if name == "DATE":
        i, j = col["sent_date"], col["internaldate"]
        return [r[j] or 0.0 if r[i] is None else r[i] for r in rows]
    if name == "SIZE":
        i = col["size"]
        return [r[i] or 0 for r in rows]
    out: list[Any] = []
    if name == "SUBJECT":
        i = col["subject"]
        subject = SubjectKeys()
        for start in range(0, len(rows), CHUNK):
            out.extend(subject(r[i])[0] for r in rows[start : start + CHUNK])
            await asyncio.sleep(0)
        return out
    i = col["envelope"]
    fn = _ENVELOPE_KEYS[name]
    for start in range(0, len(rows), CHUNK):
        out.extend(fn(r[i]) for r in rows[start : start + CHUNK])
        await asyncio.sleep(0)
    return out


# --- the command -------------------------------------------------------------------------------


async def cmd_sort(s: IMAPSession, cmd: Sort) -> Done:
    view = s.view
    assert view is not None
    store = view.store
    verb = "UID SORT" if cmd.uid else "SORT"
    options = cmd.return_options
    # CONTEXT only hints that the sort comes again (RFC 5267 4.2): nothing to do.
    opts = set(options or ()) - {"CONTEXT"}
    save = "SAVE" in opts
    if "UPDATE" in opts and tag_in_use(s, cmd.tag):
        return Done("BAD", "An updating search already has this tag")  # RFC 5267 4.3
    refused = None
    try:
        chosen = await select(s, cmd.charset, cmd.key)
        if isinstance(chosen, Done):
            if save:
                view.saved = []  # RFC 5182 2.1: a failed SEARCH (SAVE) empties $
            return chosen
        key = (view.mailbox.id, view.mailbox.uidvalidity, "SORT", cmd.criteria)
        cached = RESULTS.get(store, key, chosen.uids)
        if cached is not None:
            order = cached.tolist()
        else:
            order = await sort_uids(store, view.mailbox.id, chosen.uids, cmd.criteria, s.progress)
            RESULTS.put(store, key, chosen.uids, array("q", order))
    except StoreError:
        if save:
            view.saved = []
        raise
    # RFC 5267 3.1 and 4.4: MIN, MAX and PARTIAL's window follow the sort order.
    returned = returned_results(order, opts, cmd.partial)
    if save:
        view.saved = sorted(returned)
    highest = await chosen.highest_modseq(returned)
    numbers = order if cmd.uid else msns(view, order)
    if "UPDATE" in opts:
        contexts = contexts_of(view)
        refused = contexts.refusal(cmd.key, sort=True)
        if refused is None:
            frozen = freeze(cmd.key, view)
            keys_for = _keys_for(store, view.mailbox.id, cmd.criteria)
            contexts.add(SortContext(cmd.tag, cmd.uid, frozen, matcher(s, view, store, frozen), keys_for, order))
    if options is None:
        line = [b"* SORT"]
        if numbers:
            line.append(wire.number_list(numbers))
            if highest is not None:
                line.append(b"(MODSEQ %d)" % highest)
        s.send(b" ".join(line) + b"\r\n")
        return Done(text=f"{verb} completed")
    wanted = opts or {"ALL"}
    if wanted != {"SAVE"}:  # SAVE alone: no ESEARCH (RFC 5182 2.4)
        partial = None
        if cmd.partial is not None:
            partial = (cmd.partial, numbers[cmd.partial.window(len(numbers))])
        s.send(esearch(cmd.tag, cmd.uid, wanted, numbers, highest, wire.ordered_set, partial=partial))
    if refused is not None:
        s.send(noupdate(cmd.tag, refused))  # RFC 5267 4.3.1: the rest is still answered
    return Done(text=f"{verb} completed")


def _keys_for(store: AccountStore, mailbox_id: int, criteria: Sequence[SortCriterion]) -> KeysFor:
    """Sort keys read from the index, to place an updating SORT's newcomers."""

    async def keys_for(uids: list[int]) -> dict[int, SortKey]:
        return await sort_keys(store, mailbox_id, uids, criteria)

    return keys_for


COMMANDS = {
    # No EXPUNGE while SORT answers (RFC 5256 3); UID SORT may have them.
    "SORT": Spec(cmd_sort, ONLY_SELECTED, may_expunge=False),
}
