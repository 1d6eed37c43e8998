"""GETMETADATA and SETMETADATA (RFC 5464): entries on mailboxes and on the server.

The server's entries (mailbox name "") are the account's own, as in Dovecot: no other
account sees them, so /shared and /private differ only in name. /shared/admin is the
one entry the server provides (3.2.1.1): read-only, from the configuration.

On another account's shared mailbox (Shared/<owner>/...) a user needs "l" and one of
"r", "s", "w", "i" or "p" to read or set entries (3.3); its /shared entries are the
mailbox's, seen by all its users, its /private entries each user's own.

The store tells the change feed which entries a SETMETADATA changed; sessions that asked
with NOTIFY are told (notifier.py, RFC 5465 5.6 and 5.7).
"""

from __future__ import annotations

import dataclasses

from ..store.api import MetadataTooBig, MetadataTooMany
from . import wire
from .access import Place, denied, not_found, resolve
from .grammar.metadata import GetMetadata, SetMetadata
from .session import AUTHED, Done, IMAPSession, Spec

ADMIN = "/shared/admin"


def admin_uri(s: IMAPSession) -> bytes | None:
    """/shared/admin: [imap] admin as a URI (a bare address becomes a mailto:), else
    the postmaster account's mailto:, else none."""
    contact = s.settings.admin.strip() or s.ctx.settings.delivery.postmaster.strip()
    if not contact:
        return None
    if ":" not in contact.split("@", 1)[0]:
        contact = "mailto:" + contact
    return contact.encode("utf-8")


def _server_entries(s: IMAPSession, entries: tuple[str, ...], depth: int) -> list[tuple[str, bytes]]:
    """The entries the server computes that *entries* (with *depth*) reach."""
    uri = admin_uri(s)
    if uri is None:
        return []
    level = ADMIN.count("/")
    for entry in entries:
        if entry == ADMIN or (
            depth != 0 and ADMIN.startswith(entry + "/") and (depth < 0 or level == entry.count("/") + 1)
        ):
            return [(ADMIN, uri)]
    return []


def _value(data: bytes, utf8: bool) -> bytes:
    # 5: value = nstring / literal8; NUL only in a literal8, 8-bit text quoted only
    # where the session takes UTF-8 in quoted strings.
    return wire.literal8(data) if b"\0" in data else wire.string(data, utf8=utf8)


async def _mailbox(s: IMAPSession, raw: bytes) -> Place | Done:
    """The mailbox whose entries the command reads or sets, or the answer: 3.3 wants "l"
    and one of "rswip" (a user with neither "l" nor "r" is told it does not exist, as
    RFC 4314 6 has it)."""
    place = await resolve(s, s.decode_name(raw))
    if place.store is None:
        return not_found(place)
    if not (place.may("l") and any(r in place.rights for r in "rswip")):
        return denied(place, "metadata needs the l right and one of r, s, w, i and p")
    # 3.3: only on a mailbox that exists (else NO [NONEXISTENT]).
    mailbox = await place.account().get_mailbox(place.name)
    return dataclasses.replace(place, name=mailbox.name, shown=mailbox.name) if place.own else place


async def cmd_getmetadata(s: IMAPSession, cmd: GetMetadata) -> Done:
    assert s.store is not None
    if cmd.mailbox == b"":
        shown = b'""'
        found = dict(await s.store.get_metadata(None, cmd.entries, cmd.depth))
        found.update(_server_entries(s, cmd.entries, cmd.depth))
    else:
        place = await _mailbox(s, cmd.mailbox)
        if isinstance(place, Done):
            return place
        shown = s.encode_name(place.shown)
        found = dict(await place.account().get_metadata(place.name, cmd.entries, cmd.depth))
    # 4.2.1: values over MAXSIZE are left out; LONGENTRIES tells the biggest left out.
    longest = 0
    items: list[bytes] = []
    for entry, value in sorted(found.items()):
        if cmd.maxsize is not None and len(value) > cmd.maxsize:
            longest = max(longest, len(value))
            continue
        items.append(wire.astring(entry) + b" " + _value(value, s.rev2 or s.utf8_accept))
    if items:
        s.send(b"* METADATA " + shown + b" (" + b" ".join(items) + b")\r\n")
    return Done(text="GETMETADATA completed", code=f"METADATA LONGENTRIES {longest}" if longest else None)


async def cmd_setmetadata(s: IMAPSession, cmd: SetMetadata) -> Done:
    assert s.store is not None
    if cmd.mailbox == b"":
        if any(entry == ADMIN for entry, _ in cmd.values):
            # 3.2.1.1: "always read-only -- clients cannot change it".
            return Done("NO", f"{ADMIN} is set by the administrator", "NOPERM")
        store, name = s.store, None
    else:
        place = await _mailbox(s, cmd.mailbox)
        if isinstance(place, Done):
            return place
        store, name = place.account(), place.name
    try:
        await store.set_metadata(name, cmd.values)
    except MetadataTooBig as e:
        return Done("NO", str(e), f"METADATA MAXSIZE {e.limit}")
    except MetadataTooMany as e:
        return Done("NO", str(e), "METADATA TOOMANY")
    return Done(text="SETMETADATA completed")


COMMANDS = {
    "GETMETADATA": Spec(cmd_getmetadata, AUTHED),
    "SETMETADATA": Spec(cmd_setmetadata, AUTHED),
}
