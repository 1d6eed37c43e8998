"""Mailbox commands: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS.

Names lead to the user's own mailboxes or, under Shared/, to other accounts' (access.py),
where the owner's ACL says what the user may do (RFC 4314 4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..store import acl
from ..store.api import DELIMITER, SPECIAL_USES, AccountStore, MailboxStatus
from . import grammar as g
from . import wire
from .access import Listed, Place, denied, parent_rights, resolve, resolve_legacy, visible
from .patterns import compile_pattern
from .session import AUTHED, Done, IMAPSession, Spec

# LIST sends what it has and yields to other sessions after this many mailboxes.
_LIST_CHUNK = 200

_NOT_HERE = Done("NO", "Permission denied: mailboxes cannot be made there", "NOPERM")


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
    place = await resolve(s, name)
    if not place.own:
        # RFC 4314 4: "k" on the nearest existing parent. Asked before anything else, so
        # the answer tells nobody without it what exists there.
        if place.store is None or "k" not in await parent_rights(s, place):
            return _NOT_HERE
        if use:
            return Done("NO", "Special-use attributes are for one's own mailboxes", "USEATTR")
    mbox = await place.account().create_mailbox(place.name, use)
    # RFC 8474 4.1: every successful CREATE says the new mailbox's MAILBOXID.
    return Done(text="CREATE completed", code=f"MAILBOXID ({mbox.mailboxid})")


def _is_selected(s: IMAPSession, place: Place, mailbox_id: int) -> bool:
    return s.view is not None and s.view.owner == place.owner and s.view.mailbox.id == mailbox_id


async def cmd_delete(s: IMAPSession, cmd: g.Delete) -> Done:
    place = await resolve(s, s.decode_name(cmd.mailbox))
    if not place.own and not place.may("x"):
        return denied(place, "deleting a mailbox needs the x right")
    store = place.account()
    if s.view is not None and _is_selected(s, place, (await store.get_mailbox(place.name)).id):
        s._close_view()
        s.send(wire.untagged_status("OK", "Selected mailbox deleted", "CLOSED"))
    await store.delete_mailbox(place.name)
    return Done(text="DELETE completed")


async def cmd_rename(s: IMAPSession, cmd: g.Rename) -> Done:
    old = await resolve_legacy(s, s.decode_name(cmd.mailbox))
    new = await resolve(s, s.decode_name(cmd.new_name))
    # RFC 4314 4: "x" on the mailbox, "k" on the new name's parent.
    if not old.may("x"):
        return denied(old, "renaming a mailbox needs the x right")
    if old.owner != new.owner or old.own != new.own or new.store is None:
        return Done("NO", "Mailboxes cannot move to another account", "CANNOT")
    if not new.own and "k" not in await parent_rights(s, new):
        return Done("NO", "Permission denied: the new name's parent needs the k right", "NOPERM")
    store = old.account()
    if s.view is not None and s.view.owner == old.owner and old.name.upper() != "INBOX":
        renamed = (await store.get_mailbox(old.name)).name
        selected = s.view.mailbox.name
        if selected == renamed or selected.startswith(renamed + DELIMITER):
            # The view would end at the next sync (the name it holds is gone); say so now.
            s._close_view()
            s.send(wire.untagged_status("OK", "Selected mailbox renamed", "CLOSED"))
    await store.rename_mailbox(old.name, new.name)
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


def _attributes(e: Listed, parents: set[str], subscribed: bool, special: bool) -> list[str]:
    if e.mailbox is None or e.place is None:
        # A level above mailboxes the user may see: the namespace's own, or a parent the
        # user may not look up (RFC 4314 4: listed as if it did not exist).
        attrs = ["\\Noselect", "\\HasChildren"]
        if subscribed:
            attrs.append("\\Subscribed")
        return attrs
    attrs = []
    if "r" not in e.place.rights:
        attrs.append("\\Noselect")  # RFC 9051 6.3.9: looked up, not selectable (no "r")
    attrs.append("\\HasChildren" if e.shown in parents else "\\HasNoChildren")
    if subscribed:
        attrs.append("\\Subscribed")
    if special and e.place.own and e.mailbox.special_use:
        attrs.append(e.mailbox.special_use)  # another account's Sent is not the user's
    return attrs


async def _status_line(s: IMAPSession, place: Place, items: tuple[str, ...]) -> bytes:
    if any(item.upper() == "HIGHESTMODSEQ" for item in items):
        s.enable_condstore()  # RFC 7162 3.1
    st = await place.account().status(place.name)
    return status_response(s, st, items, None if place.own else place.shown)


def status_response(s: IMAPSession, st: MailboxStatus, items: Iterable[str], shown: str | None = None) -> bytes:
    """``* STATUS`` with *items* (of parser.STATUS_ITEMS) in the order given, naming the
    mailbox *shown* (another account's as the user writes it), else by its own name;
    also what NOTIFY sends about mailboxes other than the selected one (RFC 5465 5)."""
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
    name = st.mailbox.name if shown is None else shown
    return b"* STATUS " + s.encode_name(name) + b" (" + b" ".join(parts) + b")\r\n"


async def _send_listed(
    s: IMAPSession, cmd: g.List, e: Listed, attrs: list[str], extra: bytes = b"", chosen: bool = True
) -> None:
    """The LIST response, then what RETURN asked for: STATUS (RFC 5819; not for a
    mailbox the user may not read, 9051 6.3.9) and MYRIGHTS (RFC 8440 3: for a mailbox
    the selection options chose, not one listed only for its children)."""
    s.send(b"* LIST (" + " ".join(attrs).encode() + b') "/" ' + s.encode_name(e.shown) + extra + b"\r\n")
    if e.mailbox is None or e.place is None:
        return
    if cmd.status_items and "r" in e.place.rights:
        s.send(await _status_line(s, e.place, cmd.status_items))
    if "MYRIGHTS" in cmd.returns and chosen:
        s.send(b"* MYRIGHTS " + s.encode_name(e.shown) + b" " + wire.astring(acl.shown(e.place.rights)) + b"\r\n")


def list_response(
    s: IMAPSession, name: str, by_name: dict[str, Listed], parents: set[str], subs: set[str], old_name: str = ""
) -> bytes:
    """``* LIST`` of one name with every attribute computed, also for a name that is no
    mailbox the user may see (\\NonExistent), and with OLDNAME after a rename: what
    NOTIFY sends for MailboxName and SubscriptionChange events (RFC 5465 5.4, 5.5).
    *by_name* is what the user may list (`access.visible`), by the names shown."""
    e = by_name.get(name)
    if e is not None:
        attrs = _attributes(e, parents, name in subs, True)
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
    entries = await visible(s)
    parents = ancestors(e.shown for e in entries)
    matchers = [compile_pattern(reference + p) for p in patterns if p or reference]
    if "SUBSCRIBED" in sel:
        return await _list_subscribed(s, cmd, entries, parents, matchers, sel)
    subs = set(await _store(s).subscriptions()) if "SUBSCRIBED" in ret else set()
    for n, e in enumerate(entries, 1):
        if n % _LIST_CHUNK == 0:
            await s.flush()  # thousands of mailboxes: others get their turn
        if not any(match(e.shown) for match in matchers):
            continue
        if "SPECIAL-USE" in sel and not (e.mailbox is not None and e.mailbox.special_use and e.place and e.place.own):
            continue
        await _send_listed(s, cmd, e, _attributes(e, parents, e.shown in subs, True))
    return Done(text="LIST completed")


async def _list_subscribed(
    s: IMAPSession, cmd: g.List, entries: list[Listed], parents: set[str],
    matchers: list[Callable[[str], bool]], sel: set[str],
) -> Done:
    """LIST (SUBSCRIBED ...): subscribed names, which need not be mailboxes (RFC 5258 3:
    those are \\NonExistent), and with RECURSIVEMATCH the matching names that have
    subscribed names below them, marked with CHILDINFO. Only a subscribed name that is
    not itself listed earns its parent a CHILDINFO (RFC 5258 3.5: "servers SHOULD
    suppress redundant CHILDINFO responses"), and a name that is there for nothing else
    is then left out."""
    by_name = {e.shown: e for e in entries}
    subs = set(await _store(s).subscriptions())
    below: set[str] = set()
    if "RECURSIVEMATCH" in sel:
        below = ancestors(name for name in subs if not any(match(name) for match in matchers))
    for n, name in enumerate(sorted(subs | below), 1):
        if n % _LIST_CHUNK == 0:
            await s.flush()
        if not any(match(name) for match in matchers):
            continue
        e = by_name.get(name)
        mailbox = e.mailbox if e is not None else None
        if "SPECIAL-USE" in sel and (mailbox is None or not mailbox.special_use or not (e and e.place and e.place.own)):
            continue
        if e is not None and mailbox is not None:
            attrs = _attributes(e, parents, name in subs, True)
        else:
            attrs = ["\\NonExistent", *(["\\HasChildren"] if name in parents else [])]
            if name in subs:
                attrs.append("\\Subscribed")
            e = Listed(name, None, None)
        extra = b' ("CHILDINFO" ("SUBSCRIBED"))' if name in below else b""
        await _send_listed(s, cmd, e, attrs, extra, chosen=name in subs)
    return Done(text="LIST completed")


async def cmd_lsub(s: IMAPSession, cmd: g.Lsub) -> Done:
    reference = s.decode_name(cmd.reference) if cmd.reference else ""
    pattern = s.decode_name(cmd.pattern) if cmd.pattern else ""
    if not pattern:
        s.send(b'* LSUB (\\Noselect) "/" ""\r\n')
        return Done(text="LSUB completed")
    match = compile_pattern(reference + pattern)
    subs = await _store(s).subscriptions()
    # Selectable: a mailbox the user may read (RFC 4314 4: LSUB never fails for the rest).
    existing = {e.shown for e in await visible(s) if e.place is not None and "r" in e.place.rights}
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
    place = await resolve(s, s.decode_name(cmd.mailbox))
    if not place.may("r"):
        return denied(place, "STATUS needs the r right")  # RFC 4314 4
    # The parser accepts exactly the items of STATUS_ITEMS, which _status_line answers.
    s.send(await _status_line(s, place, cmd.items))
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
