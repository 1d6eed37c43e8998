"""SORT and THREAD (RFC 5256), with ESORT return options (RFC 5267 3), CONTEXT=SORT's
(RFC 5267 4, RFC 9394 PARTIAL) and the DISPLAYFROM and DISPLAYTO sort keys (RFC 5957).

    sort            = ["UID" SP] "SORT" [SP "RETURN" SP "(" [option *(SP option)] ")"]
                      SP sort-criteria SP search-criteria
    sort-criteria   = "(" sort-criterion *(SP sort-criterion) ")"
    sort-criterion  = ["REVERSE" SP] sort-key
    thread          = ["UID" SP] "THREAD" SP thread-alg SP search-criteria
    search-criteria = charset 1*(SP search-key)

The parsers are registered in `parser.COMMANDS` / `parser.UID_COMMANDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from . import commands as c
from .parser import Cursor, _search_key, return_option_list

SORT_KEYS = frozenset(
    {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}
)
SORT_RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE", "CONTEXT", "UPDATE", "PARTIAL"})
MAX_SORT_CRITERIA = 32


@dataclass(frozen=True, slots=True)
class SortCriterion:
    key: str
    """One of SORT_KEYS."""
    reverse: bool = False


@dataclass(slots=True)
class Sort(c.Command):
    """SORT / UID SORT. ``return_options`` is None without RETURN, else the uppercase
    options (``RETURN ()`` gives an empty tuple, meaning ALL); ``partial`` is PARTIAL's
    range (RFC 5267 4.4, RFC 9394)."""

    criteria: tuple[SortCriterion, ...]
    charset: str
    key: c.SearchKey
    uid: bool = False
    return_options: tuple[str, ...] | None = None
    partial: c.PartialRange | None = None
    name: ClassVar[str] = "SORT"


@dataclass(slots=True)
class Thread(c.Command):
    """THREAD / UID THREAD; ``algorithm`` is uppercase, checked by the command (an
    unknown algorithm is NO, not BAD: RFC 5256's thread-alg-ext is any atom)."""

    algorithm: str
    charset: str
    key: c.SearchKey
    uid: bool = False
    name: ClassVar[str] = "THREAD"


def _charset(cur: Cursor) -> str:
    raw = cur.quoted() if cur.peek() == b'"' else cur.atom("charset")
    try:
        return raw.decode("ascii").upper()
    except UnicodeDecodeError:
        raise cur.fail("Invalid charset") from None


def _search_criteria(cur: Cursor) -> tuple[str, c.SearchKey]:
    """``charset 1*(SP search-key)``, the command's end included."""
    charset = _charset(cur)
    cur.sp()
    keys = [_search_key(cur, 0)]
    while cur.peek() == b" ":
        cur.i += 1
        keys.append(_search_key(cur, 0))
    cur.end()
    return charset, keys[0] if len(keys) == 1 else c.SearchAnd(tuple(keys))


def _criteria(cur: Cursor) -> tuple[SortCriterion, ...]:
    cur.expect(b"(", "'(' before sort criteria")
    out: list[SortCriterion] = []
    while True:
        word = cur.word("sort criterion")
        reverse = word == "REVERSE"
        if reverse:
            cur.sp()
            word = cur.word("sort criterion")
        if word not in SORT_KEYS:
            raise cur.fail(f"Unknown sort criterion {word}")
        out.append(SortCriterion(word, reverse))
        if len(out) > MAX_SORT_CRITERIA:
            raise cur.fail("Too many sort criteria")
        if cur.peek() != b" ":
            break
        cur.i += 1
    cur.expect(b")", "')' after sort criteria")
    return tuple(out)


def _sort(uid: bool) -> Callable[[Cursor, str], c.Command]:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        options: tuple[str, ...] | None = None
        partial = None
        if cur.peek() not in (b"(", b""):
            if cur.word("RETURN or sort criteria") != "RETURN":
                raise cur.fail("Expected RETURN or '(' before sort criteria")
            cur.sp()
            options, partial = return_option_list(cur, SORT_RETURN_OPTIONS, "sort")
            cur.sp()
        criteria = _criteria(cur)
        cur.sp()
        charset, key = _search_criteria(cur)
        return Sort(tag, criteria, charset, key, uid, options, partial)

    return parse


def _thread(uid: bool) -> Callable[[Cursor, str], c.Command]:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        algorithm = cur.atom("threading algorithm").decode("ascii").upper()
        cur.sp()
        charset, key = _search_criteria(cur)
        return Thread(tag, algorithm, charset, key, uid)

    return parse


COMMANDS: dict[bytes, Callable[[Cursor, str], c.Command]] = {
    b"SORT": _sort(False),
    b"THREAD": _thread(False),
}
UID_COMMANDS: dict[bytes, Callable[[Cursor, str], c.Command]] = {
    b"SORT": _sort(True),
    b"THREAD": _thread(True),
}
