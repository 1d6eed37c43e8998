"""GETMETADATA and SETMETADATA (RFC 5464): entries on mailboxes and on the server.

The server's entries (mailbox name "") are the account's own, as in Dovecot: no other
account sees them, so /shared and /private differ only in name. /shared/admin is the
one entry the server provides (3.2.1.1): read-only, from the configuration. Unsolicited
METADATA responses (4.4.2, optional) are not sent: an account's entries change only
through its own sessions' SETMETADATA.
"""

from __future__ import annotations

from ..store.api import MetadataTooBig, MetadataTooMany
from . import wire
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


async def cmd_getmetadata(s: IMAPSession, cmd: GetMetadata) -> Done:
    assert s.store is not None
    if cmd.mailbox == b"":
        name, shown = None, b'""'
        found = dict(await s.store.get_metadata(None, cmd.entries, cmd.depth))
        found.update(_server_entries(s, cmd.entries, cmd.depth))
    else:
        # 3.3: only on a mailbox that exists (else NO [NONEXISTENT]).
        name = (await s.store.get_mailbox(s.decode_name(cmd.mailbox))).name
        shown = s.encode_name(name)
        found = dict(await s.store.get_metadata(name, cmd.entries, cmd.depth))
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
    server = cmd.mailbox == b""
    if server and any(entry == ADMIN for entry, _ in cmd.values):
        # 3.2.1.1: "always read-only -- clients cannot change it".
        return Done("NO", f"{ADMIN} is set by the administrator", "NOPERM")
    name = None if server else s.decode_name(cmd.mailbox)
    try:
        await s.store.set_metadata(name, cmd.values)
    except MetadataTooBig as e:
        return Done("NO", str(e), f"METADATA MAXSIZE {e.limit}")
    except MetadataTooMany as e:
        return Done("NO", str(e), "METADATA TOOMANY")
    return Done(text="SETMETADATA completed")


COMMANDS = {
    "GETMETADATA": Spec(cmd_getmetadata, AUTHED),
    "SETMETADATA": Spec(cmd_setmetadata, AUTHED),
}
