"""Mailbox commands: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..store.api import DELIMITER, SPECIAL_USES, AccountStore, Mailbox, MailboxStatus
from . import grammar as g
from . import wire
from .patterns import compile_pattern
from .session import AUTHED, Done, IMAPSession, Spec

# LIST sends what it has and yields to other sessions after this many mailboxes.
_LIST_CHUNK = 200



def _store(s: IMAPSession) -> AccountStore:
    assert s.store is not None
    return s.store


async def cmd_create(s: IMAPSession, cmd: g.Create) -> Done:
    name = s.decode_name(cmd.mailbox)
    # RFC 9051 6.3.4: a trailing delimiter only says children are intended.
    name = name.rstrip(DELIMITER) or name
    if name.upper() == "INBOX":
        return Done("NO", "INBOX always exists", "ALREADYEXISTS")
    use = None
    for attr in cmd.special_use:
        canon = {u.lower(): u for u in SPECIAL_USES}.get(attr.lower())
        if canon is None:
            return Done("NO", f"Unsupported special-use attribute {attr}", "USEATTR")
        use = canon
    mbox = await _store(s).create_mailbox(name, use)
    # RFC 8474 4.1: every successful CREATE says the new mailbox's MAILBOXID.
    return Done(text="CREATE completed", code=f"MAILBOXID ({mbox.mailboxid})")


async def cmd_delete(s: IMAPSession, cmd: g.Delete) -> Done:
    name = s.decode_name(cmd.mailbox)
    if s.view is not None and (await _store(s).get_mailbox(name)).id == s.view.mailbox.id:
        s._close_view()
        s.send(wire.untagged_status("OK", "Selected mailbox deleted", "CLOSED"))
    await _store(s).delete_mailbox(name)
    return Done(text="DELETE completed")


async def cmd_rename(s: IMAPSession, cmd: g.Rename) -> Done:
    old, new = s.decode_name(cmd.mailbox), s.decode_name(cmd.new_name)
    if s.view is not None and old.upper() != "INBOX":
        renamed = (await _store(s).get_mailbox(old)).name
        selected = s.view.mailbox.name
        if selected == renamed or selected.startswith(renamed + DELIMITER):
            # The view would end at the next sync (the name it holds is gone); say so now.
            s._close_view()
            s.send(wire.untagged_status("OK", "Selected mailbox renamed", "CLOSED"))
    await _store(s).rename_mailbox(old, new)
    return Done(text="RENAME completed")


async def cmd_subscribe(s: IMAPSession, cmd: g.Subscribe) -> Done:
    await _store(s).set_subscribed(s.decode_name(cmd.mailbox), True)
    return Done(text="SUBSCRIBE completed")


async def cmd_unsubscribe(s: IMAPSession, cmd: g.Unsubscribe) -> Done:
    await _store(s).set_subscribed(s.decode_name(cmd.mailbox), False)
    return Done(text="UNSUBSCRIBE completed")


def ancestors(names: Iterable[str]) -> set[str]:
    """Every name that is a proper prefix (at a delimiter) of one of *names*."""
    out = set()
    for name in names:
        while (cut := name.rfind(DELIMITER)) > 0:
            name = name[:cut]
            out.add(name)
    return out


def _attributes(mbox: Mailbox, parents: set[str], want_subscribed: bool, special: bool) -> list[str]:
    attrs = []
    attrs.append("\\HasChildren" if mbox.name in parents else "\\HasNoChildren")
    if want_subscribed and mbox.subscribed:
        attrs.append("\\Subscribed")
    if special and mbox.special_use:
        attrs.append(mbox.special_use)
    return attrs


async def _status_line(s: IMAPSession, name: str, items: tuple[str, ...]) -> bytes:
    if any(item.upper() == "HIGHESTMODSEQ" for item in items):
        s.enable_condstore()  # RFC 7162 3.1
    return status_response(s, await _store(s).status(name), items)


def status_response(s: IMAPSession, st: MailboxStatus, items: Iterable[str]) -> bytes:
    """``* STATUS`` with *items* (of parser.STATUS_ITEMS) in the order given; also what
    NOTIFY sends about mailboxes other than the selected one (RFC 5465 5)."""
    values = {
        "MESSAGES": st.messages,
        "RECENT": st.recent,
        "UIDNEXT": st.mailbox.uidnext,
        "UIDVALIDITY": st.mailbox.uidvalidity,
        "UNSEEN": st.unseen,
        "DELETED": st.deleted,
        "DELETED-STORAGE": st.deleted_size,
        "SIZE": st.size,
        "HIGHESTMODSEQ": st.mailbox.highestmodseq,
        "APPENDLIMIT": s.settings.max_literal_size,
    }
    parts = []
    for item in items:
        key = item.upper()
        if key in values:
            parts.append(b"%s %d" % (key.encode(), values[key]))
        elif key == "MAILBOXID":  # RFC 8474 4.3
            parts.append(b"MAILBOXID (" + st.mailbox.mailboxid.encode("ascii") + b")")
    return b"* STATUS " + s.encode_name(st.mailbox.name) + b" (" + b" ".join(parts) + b")\r\n"


def list_response(
    s: IMAPSession, name: str, by_name: dict[str, Mailbox], parents: set[str], subs: set[str], old_name: str = ""
) -> bytes:
    """``* LIST`` of one name with every attribute computed, also for a name that is no
    mailbox (\\NonExistent), and with OLDNAME after a rename: what NOTIFY sends for
    MailboxName and SubscriptionChange events (RFC 5465 5.4, 5.5)."""
    mbox = by_name.get(name)
    if mbox is not None:
        attrs = _attributes(mbox, parents, True, True)
    else:
        attrs = ["\\NonExistent", *(["\\HasChildren"] if name in parents else [])]
        if name in subs:
            attrs.append("\\Subscribed")
    line = b"* LIST (" + " ".join(attrs).encode() + b') "/" ' + s.encode_name(name)
    if old_name:
        line += b' ("OLDNAME" (' + s.encode_name(old_name) + b"))"
    return line + b"\r\n"


async def cmd_list(s: IMAPSession, cmd: g.List) -> Done:
    reference = s.decode_name(cmd.reference) if cmd.reference else ""
    patterns = [s.decode_name(p) if p else "" for p in cmd.patterns]
    sel = {o.upper() for o in cmd.selection}
    ret = {o.upper() for o in cmd.returns}
    if patterns == [""] and not cmd.extended:
        # RFC 9051 6.3.9: an empty pattern asks for the delimiter and root.
        s.send(b'* LIST (\\Noselect) "/" ""\r\n')
        return Done(text="LIST completed")
    mailboxes = await _store(s).list_mailboxes()
    parents = ancestors(m.name for m in mailboxes)
    matchers = [compile_pattern(reference + p) for p in patterns if p or reference]
    if "SUBSCRIBED" in sel:
        return await _list_subscribed(s, cmd, mailboxes, parents, matchers, sel)
    want_sub = "SUBSCRIBED" in ret
    for n, mbox in enumerate(mailboxes, 1):
        if n % _LIST_CHUNK == 0:
            await s.flush()  # thousands of mailboxes: others get their turn
        if not any(match(mbox.name) for match in matchers):
            continue
        if "SPECIAL-USE" in sel and not mbox.special_use:
            continue
        attrs = _attributes(mbox, parents, want_sub, True)
        s.send(b"* LIST (" + " ".join(attrs).encode() + b') "/" ' + s.encode_name(mbox.name) + b"\r\n")
        if cmd.status_items:
            s.send(await _status_line(s, mbox.name, cmd.status_items))
    return Done(text="LIST completed")


async def _list_subscribed(
    s: IMAPSession, cmd: g.List, mailboxes: list[Mailbox], parents: set[str],
    matchers: list[Callable[[str], bool]], sel: set[str],
) -> Done:
    """LIST (SUBSCRIBED ...): subscribed names, which need not be mailboxes (RFC 5258 3:
    those are \\NonExistent), and with RECURSIVEMATCH the matching names that have
    subscribed names below them, marked with CHILDINFO."""
    by_name = {m.name: m for m in mailboxes}
    subs = set(await _store(s).subscriptions())
    below = ancestors(subs) if "RECURSIVEMATCH" in sel else set()
    for n, name in enumerate(sorted(subs | below), 1):
        if n % _LIST_CHUNK == 0:
            await s.flush()
        if not any(match(name) for match in matchers):
            continue
        mbox = by_name.get(name)
        if "SPECIAL-USE" in sel and (mbox is None or not mbox.special_use):
            continue
        if mbox is not None:
            attrs = _attributes(mbox, parents, name in subs, True)
        else:
            attrs = ["\\NonExistent", *(["\\HasChildren"] if name in parents else [])]
            if name in subs:
                attrs.append("\\Subscribed")
        extra = b' ("CHILDINFO" ("SUBSCRIBED"))' if name in below else b""
        s.send(b"* LIST (" + " ".join(attrs).encode() + b') "/" ' + s.encode_name(name) + extra + b"\r\n")
        if cmd.status_items and mbox is not None:
            s.send(await _status_line(s, name, cmd.status_items))
    return Done(text="LIST completed")


async def cmd_lsub(s: IMAPSession, cmd: g.Lsub) -> Done:
    reference = s.decode_name(cmd.reference) if cmd.reference else ""
    pattern = s.decode_name(cmd.pattern) if cmd.pattern else ""
    if not pattern:
        s.send(b'* LSUB (\\Noselect) "/" ""\r\n')
        return Done(text="LSUB completed")
    match = compile_pattern(reference + pattern)
    store = _store(s)
    subs = await store.subscriptions()
    existing = {m.name for m in await store.list_mailboxes()}
    # RFC 3501 6.3.9: where "%" stops above a subscribed name, the level it stops at is
    # returned \\Noselect (unless subscribed itself); so is a name with no mailbox.
    shown = {name: name not in existing for name in subs if match(name)}
    for name in subs:
        if name not in shown:
            for parent in ancestors([name]):
                if parent not in shown and match(parent):
                    shown[parent] = True
    for name in sorted(shown):
        attrs = b"(\\Noselect)" if shown[name] else b"()"
        s.send(b"* LSUB " + attrs + b' "/" ' + s.encode_name(name) + b"\r\n")
    return Done(text="LSUB completed")


async def cmd_status(s: IMAPSession, cmd: g.Status) -> Done:
    # The parser accepts exactly the items of STATUS_ITEMS, which _status_line answers.
    s.send(await _status_line(s, s.decode_name(cmd.mailbox), cmd.items))
    return Done(text="STATUS completed")


COMMANDS = {
    "CREATE": Spec(cmd_create, AUTHED),
    "DELETE": Spec(cmd_delete, AUTHED),
    "RENAME": Spec(cmd_rename, AUTHED),
    "SUBSCRIBE": Spec(cmd_subscribe, AUTHED),
    "UNSUBSCRIBE": Spec(cmd_unsubscribe, AUTHED),
    "LIST": Spec(cmd_list, AUTHED),
    "LSUB": Spec(cmd_lsub, AUTHED),
    "STATUS": Spec(cmd_status, AUTHED),
}
