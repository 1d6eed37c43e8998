"""NOTIFY (RFC 5465): which events the client is told of, and when.

NOTIFY SET replaces what the session tells on its own with the event groups given,
NOTIFY NONE with nothing at all (a snapshot: the selected mailbox is then not updated
either). The events go out between commands, at the end of each command and during
IDLE; see `notifier` for mailboxes other than the selected one (other accounts' shared
ones included, as the user's rights allow), and the session's `_send_updates` for the
selected one.
"""

from __future__ import annotations

from ..store.api import MailboxNotFound, StoreError
from . import grammar as g
from .access import canonical, own, shared
from .grammar.notify import Notify
from .mailboxes import status_response
from .notifier import MESSAGE_EVENTS, Filter, Notifier, NotifySpec, SelectedEvents
from .session import AUTHED, Done, IMAPSession, Spec

SUPPORTED = (
    "MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange",
    "MailboxMetadataChange", "ServerMetadataChange",
)
"""With METADATA the metadata events are required (5.6, 5.7); AnnotationChange is
refused: there is no ANNOTATE (RFC 5257)."""
MAX_NAMES = 100
"""Mailbox names one NOTIFY may list, as Dovecot allows (more: NOTIFICATIONOVERFLOW)."""
_STATUS_FLUSH = 200
_BOTH = frozenset({"MessageNew", "MessageExpunge"})


async def cmd_notify(s: IMAPSession, cmd: Notify) -> Done:
    if cmd.groups is None:
        s.set_notify(Notifier(NotifySpec(), s.user or "", s.origin))
        return Done(text="NOTIFY completed")
    # 3.1: an unsupported event is NO (not BAD), BADEVENT listing every supported one.
    for group in cmd.groups:
        for event in group.events:
            if event not in SUPPORTED:
                return Done("NO", f"Unsupported event {event}", "BADEVENT (" + " ".join(SUPPORTED) + ")")
    selected: SelectedEvents | None = None
    seen_selected = False
    filters: list[Filter] = []
    count = 0
    for group in cmd.groups:
        events = frozenset(group.events)
        if group.filter in ("SELECTED", "SELECTED-DELAYED"):
            if seen_selected:
                return Done("BAD", "Only one of SELECTED and SELECTED-DELAYED may be given")  # 6.1
            seen_selected = True
            if events - MESSAGE_EVENTS:
                return Done("BAD", f"{group.filter} takes message events only")  # 6.1
            if events and not events >= _BOTH:
                # 5: MessageNew and MessageExpunge together; FlagChange needs both.
                return Done("BAD", "MessageNew and MessageExpunge must be given together")
            problem = _fetch_problem(group.fetch or ())
            if problem:
                return Done("BAD", problem)
            if events:
                selected = SelectedEvents("FlagChange" in events, group.filter == "SELECTED-DELAYED", group.fetch or ())
            continue
        if group.fetch is not None:
            return Done("BAD", "Only SELECTED and SELECTED-DELAYED take fetch attributes")  # 8
        if "FlagChange" in events and not events >= _BOTH:
            return Done("BAD", "FlagChange needs MessageNew and MessageExpunge")  # 5
        # MessageNew without MessageExpunge is taken here: section 3.1's own example
        # asks for it ("(subtree Lists MessageNew)"), as Dovecot allows.
        names = tuple(canonical(s.decode_name(raw)) for raw in group.mailboxes)
        count += len(names)
        if count > MAX_NAMES:
            return Done("NO", f"At most {MAX_NAMES} mailbox names", "NOTIFICATIONOVERFLOW")
        if events:
            filters.append(Filter(group.filter, names, events))
    spec = NotifySpec(selected, tuple(filters))
    if selected is not None and any(a.name == "MODSEQ" for a in selected.fetch):
        s.enable_condstore()  # RFC 7162 3.1, as a FETCH of MODSEQ would
    notifier = Notifier(spec, s.user or "", s.origin)
    await notifier.start(s)  # the rights on shared mailboxes; \\NoAccess where due (3.1)
    s.set_notify(notifier)
    if cmd.status:
        await _initial_status(s, spec)
    # 3.1: it implies a NOOP: the dispatcher reports what the selected mailbox has
    # accumulated (as the new SELECTED says) before the tagged OK.
    return Done(text="NOTIFY completed")


def _fetch_problem(atts: tuple[g.FetchAttribute, ...]) -> str | None:
    """5.2: nothing that would set \\Seen, nor a part the new message may not have."""
    for a in atts:
        if a.sets_seen:
            return f"MessageNew cannot fetch {a.response_name()}: it sets \\Seen (use BODY.PEEK)"
        if a.section is not None and a.section.part:
            return f"MessageNew cannot fetch {a.response_name()}: a new message need not have that part"
    return None


async def _initial_status(s: IMAPSession, spec: NotifySpec) -> None:
    """3.1: with STATUS, a STATUS of each other mailbox with message events, before the
    tagged OK: MESSAGES, UIDNEXT and UIDVALIDITY for MessageNew, MESSAGES for
    MessageExpunge, UIDVALIDITY and HIGHESTMODSEQ for FlagChange (UNSEEN too, as
    Dovecot sends it). Shared mailboxes only where the user has "l" and "r" (5)."""
    store = s.store
    assert store is not None
    subs = set(await store.subscriptions()) if spec.needs_subscriptions else None
    entries = own(s, await store.list_mailboxes())
    if spec.reaches_shared:
        entries += sorted(
            (e for e in await shared(s) if e.place is not None and e.place.may("lr")), key=lambda e: e.shown
        )
    sent = 0
    for e in entries:
        place, mbox = e.place, e.mailbox
        assert place is not None and mbox is not None
        if s.view is not None and s.view.owner == place.owner and s.view.mailbox.id == mbox.id:
            continue
        events = spec.events_for(e.shown, subs)
        if not MESSAGE_EVENTS.intersection(events):
            continue
        items = ["MESSAGES"]
        if "MessageNew" in events:
            items += ["UIDNEXT", "UIDVALIDITY"]
        if "FlagChange" in events and "UIDVALIDITY" not in items:
            items.append("UIDVALIDITY")
        items.append("UNSEEN")
        if "FlagChange" in events or s.condstore:
            items.append("HIGHESTMODSEQ")
        try:
            st = await place.account().status(place.name)
        except (MailboxNotFound, StoreError):
            continue  # deleted meanwhile, or its account cannot be read just now
        s.send(status_response(s, st, items, None if place.own else e.shown))
        sent += 1
        if sent % _STATUS_FLUSH == 0:
            await s.flush()


COMMANDS = {"NOTIFY": Spec(cmd_notify, AUTHED)}
