"""NOTIFY (RFC 5465 section 8):

    notify          = "NOTIFY" SP (notify-set / notify-none)
    notify-set      = "SET" [SP "STATUS"] SP event-groups
    notify-none     = "NONE"
    event-groups    = event-group *(SP event-group)
    event-group     = "(" filter-mailboxes SP events ")"
    filter-mailboxes = "selected" / "selected-delayed" / "inboxes" / "personal" /
                      "subscribed" / ("subtree" SP one-or-more-mailbox) /
                      ("mailboxes" SP one-or-more-mailbox)
    one-or-more-mailbox = mailbox / "(" mailbox *(SP mailbox) ")"
    events          = ( "(" event *(SP event) ")" ) / "NONE"
    event           = ("MessageNew" [SP "(" fetch-att *(SP fetch-att) ")"]) / atom

Section 3.1's own example writes the events of a group without their parentheses
("(subtree Lists MessageNew)"); that form is taken too, as there is no other way to read
it. Whether the events are known, supported and allowed together is the command's call
(an unknown event is NO [BADEVENT], not BAD); the parser checks the syntax only.
The parser is registered in `parser.COMMANDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from . import commands as c
from .parser import Cursor, _fetch_att

FILTERS = frozenset(
    {"SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE", "MAILBOXES"}
)
EVENT_NAMES = {
    e.upper(): e
    for e in (
        "MessageNew",
        "MessageExpunge",
        "FlagChange",
        "AnnotationChange",
        "MailboxName",
        "SubscriptionChange",
        "MailboxMetadataChange",
        "ServerMetadataChange",
    )
}
"""The events RFC 5465 names, in its spelling; others (event-ext) keep the client's."""


@dataclass(frozen=True, slots=True)
class EventGroup:
    """One ``(filter events)``: ``filter`` uppercase (one of FILTERS), ``mailboxes`` as
    sent (SUBTREE and MAILBOXES only), ``events`` in RFC spelling where known (empty for
    NONE), ``fetch`` the fetch-atts given after MessageNew (None without a list)."""

    filter: str
    events: tuple[str, ...]
    mailboxes: tuple[bytes, ...] = ()
    fetch: tuple[c.FetchAttribute, ...] | None = None


@dataclass(slots=True)
class Notify(c.Command):
    """NOTIFY NONE (``groups`` None) or NOTIFY SET [STATUS] with its event groups."""

    groups: tuple[EventGroup, ...] | None
    status: bool = False
    name: ClassVar[str] = "NOTIFY"


def _event(cur: Cursor) -> str:
    raw = cur.atom("event name").decode("ascii")
    return EVENT_NAMES.get(raw.upper(), raw)


def _fetch_list(cur: Cursor) -> list[c.FetchAttribute]:
    cur.expect(b"(", "'(' before fetch attributes")
    atts = [_fetch_att(cur)]
    while cur.peek() == b" ":
        cur.i += 1
        atts.append(_fetch_att(cur))
    cur.expect(b")", "')' after fetch attributes")
    return atts


def _events(cur: Cursor) -> tuple[tuple[str, ...], tuple[c.FetchAttribute, ...] | None]:
    """The events of a group, up to (not including) its closing parenthesis."""
    if cur.peek() != b"(":
        save = cur.i
        if cur.atom("events").upper() == b"NONE" and cur.peek() == b")":
            return (), None
        cur.i = save
        bare = True  # section 3.1's example: the events without their parentheses
    else:
        cur.i += 1
        bare = False
    events: list[str] = []
    fetch: list[c.FetchAttribute] | None = None
    while True:
        event = _event(cur)
        events.append(event)
        if event == "MessageNew" and cur.s[cur.i : cur.i + 2] == b" (":
            cur.i += 1
            fetch = (fetch or []) + _fetch_list(cur)
        if cur.peek() != b" ":
            break
        cur.i += 1
    if not bare:
        cur.expect(b")", "')' after the events")
    return tuple(events), None if fetch is None else tuple(fetch)


def _group(cur: Cursor) -> EventGroup:
    cur.expect(b"(", "'(' opening an event group")
    kind = cur.word("mailbox filter")
    if kind not in FILTERS:
        raise cur.fail(f"Unknown mailbox filter {kind}")
    names: tuple[bytes, ...] = ()
    if kind in ("SUBTREE", "MAILBOXES"):
        cur.sp()
        names = cur.mailboxes()
    cur.sp()
    events, fetch = _events(cur)
    cur.expect(b")", "')' closing the event group")
    return EventGroup(kind, events, names, fetch)


def parse_notify(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    verb = cur.word("SET or NONE")
    if verb == "NONE":
        cur.end()
        return Notify(tag, None)
    if verb != "SET":
        raise cur.fail("Expected SET or NONE")
    cur.sp()
    status = False
    if cur.peek() != b"(":
        if cur.word("STATUS") != "STATUS":
            raise cur.fail("Expected STATUS or an event group")
        status = True
        cur.sp()
    groups = [_group(cur)]
    while cur.peek() == b" ":
        cur.i += 1
        groups.append(_group(cur))
    cur.end()
    return Notify(tag, tuple(groups), status)


COMMANDS: dict[bytes, Callable[[Cursor, str], c.Command]] = {b"NOTIFY": parse_notify}
