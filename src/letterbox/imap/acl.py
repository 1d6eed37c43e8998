"""SETACL, DELETEACL, GETACL, LISTRIGHTS and MYRIGHTS (RFC 4314 3).

Identifiers are account addresses (written as the directory writes them: lower case) and
"anyone". Negative rights ("-user") are refused with NO. The owner is not in the list an
ACL keeps: the owner always has every right, and GETACL shows it so.
"""

from __future__ import annotations

import dataclasses

from ..auth.directory import DirectoryError, normalize_address
from ..store import acl as rights
from . import grammar as g
from . import wire
from .access import Place, denied, not_found, resolve
from .session import AUTHED, Done, IMAPSession, Spec


class _Refused(Exception):
    def __init__(self, done: Done) -> None:
        self.done = done


def _identifier(s: IMAPSession, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Refused(Done("BAD", "Identifiers must be UTF-8")) from None
    if not text:
        raise _Refused(Done("BAD", "Empty identifier"))  # RFC 4314 3
    if text.startswith("-"):
        raise _Refused(Done("NO", "Negative rights are not supported", "CANNOT"))
    if text.lower() == rights.ANYONE:
        return rights.ANYONE
    try:
        return normalize_address(text)
    except DirectoryError:
        raise _Refused(Done("BAD", "Identifiers are account addresses or \"anyone\"")) from None


async def _administered(s: IMAPSession, raw: bytes) -> Place:
    """The mailbox whose ACL the command reads or changes: it needs "a" (RFC 4314 4)."""
    place = await resolve(s, s.decode_name(raw))
    if place.store is None:
        raise _Refused(not_found(place))
    if not place.may("a"):
        raise _Refused(denied(place, "the ACL is the administrator's (the a right)"))
    return await _existing(place)


async def _existing(place: Place) -> Place:
    """*place* with the mailbox's own spelling; one's own missing one is NONEXISTENT."""
    mailbox = await place.account().get_mailbox(place.name)
    if place.own:
        return dataclasses.replace(place, name=mailbox.name, shown=mailbox.name)
    return place


def _grantee(s: IMAPSession, place: Place, who: str) -> None:
    if who == place.owner:
        raise _Refused(Done("NO", "The owner always has every right", "CANNOT"))
    if who != rights.ANYONE and s.ctx.directory.get(who) is None:
        raise _Refused(Done("NO", f"There is no account {who}"))


async def cmd_setacl(s: IMAPSession, cmd: g.SetAcl) -> Done:
    try:
        who = _identifier(s, cmd.identifier)
        change = cmd.rights.decode("ascii")
        rights.modify("", change)  # RFC 4314 3.1: an unknown right is BAD, never ignored
        place = await _administered(s, cmd.mailbox)
        _grantee(s, place, who)
    except _Refused as e:
        return e.done
    except UnicodeDecodeError:
        return Done("BAD", "Rights are letters")
    except rights.RightsError as e:
        return Done("BAD", str(e))
    store = place.account()
    current = (await store.get_acl(place.name)).get(who, "")
    await store.set_acl(place.name, who, rights.modify(current, change))
    return Done(text="SETACL completed")


async def cmd_deleteacl(s: IMAPSession, cmd: g.DeleteAcl) -> Done:
    try:
        who = _identifier(s, cmd.identifier)
        place = await _administered(s, cmd.mailbox)
        if who == place.owner:
            raise _Refused(Done("NO", "The owner always has every right", "CANNOT"))
    except _Refused as e:
        return e.done
    await place.account().set_acl(place.name, who, "")
    return Done(text="DELETEACL completed")


async def cmd_getacl(s: IMAPSession, cmd: g.GetAcl) -> Done:
    try:
        place = await _administered(s, cmd.mailbox)
    except _Refused as e:
        return e.done
    entries = {place.owner: rights.ALL, **await place.account().get_acl(place.name)}
    line = b"* ACL " + s.encode_name(place.shown)
    for who, have in entries.items():
        line += b" " + wire.astring(who, utf8=True) + b" " + wire.astring(rights.shown(have))
    s.send(line + b"\r\n")
    return Done(text="GETACL completed")


async def cmd_listrights(s: IMAPSession, cmd: g.ListRights) -> Done:
    try:
        who = _identifier(s, cmd.identifier)
        place = await _administered(s, cmd.mailbox)
    except _Refused as e:
        return e.done
    # RFC 4314 3.7: the identifier as the client wrote it; no right is tied to another.
    line = b"* LISTRIGHTS " + s.encode_name(place.shown) + b" " + wire.astring(cmd.identifier, utf8=True)
    if who == place.owner:
        line += b" " + rights.shown(rights.ALL).encode()
    else:
        line += b' "" ' + " ".join(rights.shown(rights.ALL)).encode()
    s.send(line + b"\r\n")
    return Done(text="LISTRIGHTS completed")


async def cmd_myrights(s: IMAPSession, cmd: g.MyRights) -> Done:
    place = await resolve(s, s.decode_name(cmd.mailbox))
    # RFC 4314 4: any of l, r, i, k, x, a lets a user ask; others learn nothing.
    if place.store is None or not any(r in place.rights for r in "lrikxa"):
        return not_found(place)
    place = await _existing(place)
    s.send(b"* MYRIGHTS " + s.encode_name(place.shown) + b" " + wire.astring(rights.shown(place.rights)) + b"\r\n")
    return Done(text="MYRIGHTS completed")


COMMANDS = {
    "SETACL": Spec(cmd_setacl, AUTHED),
    "DELETEACL": Spec(cmd_deleteacl, AUTHED),
    "GETACL": Spec(cmd_getacl, AUTHED),
    "LISTRIGHTS": Spec(cmd_listrights, AUTHED),
    "MYRIGHTS": Spec(cmd_myrights, AUTHED),
}
