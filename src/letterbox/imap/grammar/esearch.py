"""ESEARCH (RFC 7377 MULTISEARCH): a SEARCH over the mailboxes its source options name.

    esearch             = "ESEARCH" [SP esearch-source-opts] [SP search-return-opts]
                          SP search-program
    esearch-source-opts = "IN" SP "(" source-mbox [SP "(" scope-options ")"] ")"
    source-mbox         = filter-mailboxes *(SP filter-mailboxes)
    filter-mailboxes    = "selected" / "inboxes" / "personal" / "subscribed" /
                          ("subtree" / "subtree-one" / "mailboxes") SP one-or-more-mailbox
    one-or-more-mailbox = mailbox / "(" mailbox *(SP mailbox) ")"

The filters are RFC 5465's (NOTIFY) less "selected-delayed" (RFC 7377 2.2, refused) plus
"subtree-one"; no scope option is defined, so any is refused. "UID ESEARCH", the form
section 2's example uses, is taken as ESEARCH: its results are UIDs either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from . import commands as c
from .parser import Cursor, Parser, search_program

_SIMPLE = frozenset({"SELECTED", "INBOXES", "PERSONAL", "SUBSCRIBED"})
_NAMED = frozenset({"SUBTREE", "SUBTREE-ONE", "MAILBOXES"})


@dataclass(frozen=True, slots=True)
class Source:
    """One filter-mailboxes: ``kind`` uppercase, ``mailboxes`` the names it takes."""

    kind: str
    mailboxes: tuple[bytes, ...] = ()


@dataclass(slots=True)
class ESearch(c.Command):
    """ESEARCH; ``sources`` empty when there is no IN (the selected mailbox is meant,
    RFC 7377 2.2); ``return_options`` and ``charset`` as in `Search`."""

    sources: tuple[Source, ...]
    key: c.SearchKey
    charset: str | None = None
    return_options: tuple[str, ...] | None = None
    uid: bool = False
    name: ClassVar[str] = "ESEARCH"


def _sources(cur: Cursor) -> tuple[Source, ...]:
    cur.expect(b"(", "'(' after IN")
    out: list[Source] = []
    while True:
        kind = cur.word("mailbox filter")
        if kind == "SELECTED-DELAYED":
            raise cur.fail("SELECTED-DELAYED is not allowed in ESEARCH (RFC 7377 2.2)")
        if kind in _NAMED:
            cur.sp()
            out.append(Source(kind, cur.mailboxes()))
        elif kind in _SIMPLE:
            out.append(Source(kind))
        else:
            raise cur.fail(f"Unknown mailbox filter {kind}")
        if cur.peek() != b" ":
            break
        cur.i += 1
        if cur.peek() == b"(":
            raise cur.fail("Unknown ESEARCH scope option")  # none is defined (RFC 7377 4)
    cur.expect(b")", "')' after the mailbox filters")
    return tuple(out)


def _esearch(uid: bool) -> Parser:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        sources: tuple[Source, ...] = ()
        save = cur.i
        if cur.peek().isalpha() and cur.word("IN or search key") == "IN":
            cur.sp()
            sources = _sources(cur)
            cur.sp()
        else:
            cur.i = save
        return_options, partial, charset, key = search_program(cur)
        if partial is not None or (return_options is not None and "UPDATE" in return_options):
            # RFC 5267 and RFC 9394 define UPDATE and PARTIAL for one mailbox's SEARCH.
            raise cur.fail("ESEARCH takes neither UPDATE nor PARTIAL")
        return ESearch(tag, sources, key, charset, return_options, uid)

    return parse


COMMANDS: dict[bytes, Parser] = {b"ESEARCH": _esearch(False)}
UID_COMMANDS: dict[bytes, Parser] = {b"ESEARCH": _esearch(True)}
