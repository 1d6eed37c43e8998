"""IMAP URLs naming a message or a part of one (RFC 5092), as CATENATE uses them (RFC
4469 3): relative to "imap://user@server/" (or, with a mailbox selected, to it), or
absolute ones naming this server and the logged-in user.

    imessagepart  = imailbox-ref iuid [isection] [ipartial] [iurlauth]
    imailbox-ref  = enc-mailbox [";UIDVALIDITY=" nz-number]
    iuid          = "/" ";UID=" nz-number
    isection      = "/" ";SECTION=" enc-section
    ipartial      = "/" ";PARTIAL=" number ["." nz-number]
    imapurl       = "imap://" [iuserinfo "@"] host [":" port] "/" imessagepart

Mailbox names are %-encoded UTF-8 (RFC 5092 9), sections %-encoded section-specs.
URLAUTH URLs (RFC 4467) are for other servers to use; they are refused here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from . import grammar as g
from .grammar.parser import CommandSyntaxError, Cursor, _section

_NZ = r"[1-9][0-9]{0,9}"
_PART = re.compile(
    rf"(?P<mailbox>[^;]*?)(?:;UIDVALIDITY=(?P<uidvalidity>{_NZ}))?"
    rf"/;UID=(?P<uid>{_NZ})"
    r"(?:/;SECTION=(?P<section>[^/;]+))?"
    r"(?:/;PARTIAL=(?P<offset>[0-9]{1,10})(?:\.(?P<length>[1-9][0-9]{0,9}))?)?",
    re.IGNORECASE,
)
_SELECTED_PART = re.compile(
    rf";UID=(?P<uid>{_NZ})"
    r"(?:/;SECTION=(?P<section>[^/;]+))?"
    r"(?:/;PARTIAL=(?P<offset>[0-9]{1,10})(?:\.(?P<length>[1-9][0-9]{0,9}))?)?",
    re.IGNORECASE,
)
_SERVER = re.compile(r"imap://(?:(?P<userinfo>[^/]*)@)?(?P<host>[^/:@]+)(?::[0-9]{1,5})?(?P<path>/.*)", re.IGNORECASE)
_USERINFO = re.compile(r"(?P<user>[^;]*)(?:;AUTH=(?:\*|[A-Za-z0-9\-_.+%]+))?", re.IGNORECASE)
_MAX32 = 0xFFFFFFFF


class BadURL(ValueError):
    """Not a URL of one of the user's messages here (the command answers [BADURL])."""


@dataclass(frozen=True, slots=True)
class MessagePart:
    mailbox: str | None
    """The mailbox's name; None: the selected mailbox (a ";UID=..." relative URL)."""
    uid: int
    uidvalidity: int | None = None
    section: g.Section | None = None
    partial: tuple[int, int | None] | None = None
    """(offset, length or None for "to the end") of the section's octets."""


def parse(url: str, user: str, host: str, selected: bool) -> MessagePart:
    """The message part *url* names; raises BadURL. *user* and *host* are whom an
    absolute URL must name; *selected*: a mailbox is selected (relative ";UID=" URLs)."""
    path = url
    m = _SERVER.fullmatch(url)
    if m is not None:
        info = _USERINFO.fullmatch(m.group("userinfo") or "")
        if info is None or _decode(info.group("user")).lower() != user.lower():
            raise BadURL("the URL names another user")
        if m.group("host").lower() != host.lower():
            raise BadURL("the URL names another server")
        path = m.group("path")
    elif url.lower().startswith(("imap:", "//")) or ":" in url.split("/", 1)[0]:
        raise BadURL("not an IMAP URL of this server")
    elif not url.startswith((";", "/")):
        path = "/" + url  # a relative path: below the server's root (RFC 3986 5.2)
    if path.startswith("/"):
        part = _PART.fullmatch(path[1:])
        if part is None or not part.group("mailbox"):
            raise BadURL("not the URL of a message or message part")
        mailbox: str | None = _mailbox(part.group("mailbox"))
        uidvalidity = int(part.group("uidvalidity")) if part.group("uidvalidity") else None
    elif selected:
        part = _SELECTED_PART.fullmatch(path)
        if part is None:
            raise BadURL("not the URL of a message or message part")
        mailbox, uidvalidity = None, None
    else:
        raise BadURL("a relative URL needs a selected mailbox")
    uid = int(part.group("uid"))
    if uid > _MAX32 or (uidvalidity is not None and uidvalidity > _MAX32):
        raise BadURL("number out of range")
    section = _parse_section(part.group("section")) if part.group("section") else None
    partial: tuple[int, int | None] | None = None
    if part.group("offset") is not None:
        length = part.group("length")
        partial = (int(part.group("offset")), int(length) if length else None)
    return MessagePart(mailbox, uid, uidvalidity, section, partial)


def _decode(text: str) -> str:
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise BadURL("%-encoded text is not UTF-8") from None


def _mailbox(text: str) -> str:
    name = _decode(text)
    if not name or any(ord(ch) < 0x20 for ch in name):
        raise BadURL("invalid mailbox name")
    return "INBOX" if name.upper() == "INBOX" else name


def _parse_section(text: str) -> g.Section:
    spec = unquote_to_bytes(text)
    cur = Cursor([b"[" + spec + b"]"], [])
    try:
        section = _section(cur, False)
        cur.end()
    except CommandSyntaxError:
        raise BadURL("invalid section") from None
    return section


def shown(url: str) -> str:
    """*url* as the text of a [BADURL ...] code: any TEXT-CHAR but "]" (RFC 4469 5);
    others %-encoded."""
    return "".join(ch if " " <= ch <= "~" and ch != "]" else "".join(f"%{b:02X}" for b in ch.encode()) for ch in url)
