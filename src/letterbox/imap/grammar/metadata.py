"""GETMETADATA and SETMETADATA (RFC 5464 5).

    getmetadata         = "GETMETADATA" [SP getmetadata-options] SP mailbox SP entries
    getmetadata-options = "(" getmetadata-option *(SP getmetadata-option) ")"
    maxsize-opt         = "MAXSIZE" SP number
    scope-opt           = "DEPTH" SP ("0" / "1" / "infinity")
    entries             = entry / "(" entry *(SP entry) ")"
    setmetadata         = "SETMETADATA" SP mailbox SP entry-values
    entry-values        = "(" entry-value *(SP entry-value) ")"
    entry-value         = entry SP value
    value               = nstring / literal8

Entry names are checked here (3.2: a bad one is BAD in any command) and handed over in
lower case, as they are case-insensitive. The parsers are registered in
`parser.COMMANDS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from . import commands as c
from .parser import _ATOM, Cursor

MAX_ENTRIES = 1000
"""Entries one command may name (each costs a lookup; a client wanting more sends more
commands)."""

# 3.2: ASCII without 0x00-0x19 (sic: the RFC's range), "*" and "%"; nor DEL.
_BAD_CHARS = re.compile(r"[^\x1a-\x7e]|[*%]")
_VENDOR = ("/private/vendor", "/shared/vendor")
RESERVED_VENDOR = "vendor.letterbox"
"""The vendor token of this server's own entries (none so far): clients cannot set any."""


@dataclass(slots=True)
class GetMetadata(c.Command):
    """GETMETADATA: *depth* is 0, 1 or -1 (infinity); *maxsize* None when absent."""

    mailbox: bytes
    entries: tuple[str, ...]
    maxsize: int | None = None
    depth: int = 0
    name: ClassVar[str] = "GETMETADATA"


@dataclass(slots=True)
class SetMetadata(c.Command):
    """SETMETADATA: (entry, value) pairs in the order given; None removes the entry."""

    mailbox: bytes
    values: tuple[tuple[str, bytes | None], ...]
    name: ClassVar[str] = "SETMETADATA"


def check_entry(raw: bytes, for_set: bool) -> str:
    """The entry name in lower case; raises ValueError saying what is wrong with it.

    A GETMETADATA may name a scope alone ("/shared", "/private") to list it with DEPTH;
    a SETMETADATA needs a whole entry: two components at least, four below a vendor
    prefix (3.2), and none in this server's own vendor subtree."""
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("entry names must be ASCII") from None
    if not name or _BAD_CHARS.search(name):
        raise ValueError("entry names may not contain '*', '%' or control characters")
    if "//" in name or name.endswith("/"):
        raise ValueError("entry names may not contain '//' or end with '/'")
    name = name.lower()
    scope = name.split("/", 2)[1] if name.startswith("/") else ""
    if scope not in ("private", "shared"):
        raise ValueError("entry names begin with /private or /shared")
    if not for_set:
        return name
    parts = name.split("/")[1:]
    if len(parts) < 2:
        raise ValueError("an entry name has at least two components")
    if parts[1] == "vendor":
        if len(parts) < 4:
            raise ValueError("a vendor entry name has at least four components")
        if parts[2] == RESERVED_VENDOR:
            raise ValueError(f"entries below {RESERVED_VENDOR} belong to the server")
    return name


def _entry(cur: Cursor, for_set: bool) -> str:
    raw = cur.astring("entry name")
    try:
        return check_entry(raw, for_set)
    except ValueError as e:
        raise cur.fail(f"Invalid entry name: {e}") from None


def _options(cur: Cursor) -> tuple[int | None, int]:
    """"(" getmetadata-option *(SP getmetadata-option) ")" -> (MAXSIZE, DEPTH)."""
    maxsize: int | None = None
    depth = 0
    cur.expect(b"(", "'(' before GETMETADATA options")
    seen: set[str] = set()
    while True:
        option = cur.word("GETMETADATA option")
        if option in seen:
            raise cur.fail(f"Duplicate option {option}")
        seen.add(option)
        cur.sp()
        if option == "MAXSIZE":
            maxsize = cur.number("MAXSIZE")
        elif option == "DEPTH":
            m = cur.match(_ATOM)
            value = m.group().lower() if m is not None else b""
            if value not in (b"0", b"1", b"infinity"):
                raise cur.fail("DEPTH is 0, 1 or infinity")
            depth = -1 if value == b"infinity" else int(value)
        else:
            raise cur.fail(f"Unknown GETMETADATA option {option}")
        if cur.peek() != b" ":
            break
        cur.i += 1
    cur.expect(b")", "')' after GETMETADATA options")
    return maxsize, depth


def _getmetadata(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    maxsize: int | None = None
    depth = 0
    options = cur.peek() == b"("
    if options:
        maxsize, depth = _options(cur)
        cur.sp()
    mailbox = cur.mailbox()
    cur.sp()
    if not options and cur.peek() == b"(" and cur.s[cur.i + 1 : cur.i + 2].isalpha():
        # The options after the mailbox, as every example in 4.2 has them (the ABNF in
        # 5 has them before); an entry name begins with "/", an option with a letter.
        maxsize, depth = _options(cur)
        cur.sp()
    entries: list[str] = []
    if cur.peek() == b"(":
        cur.i += 1
        entries.append(_entry(cur, False))
        while cur.peek() == b" ":
            cur.i += 1
            if len(entries) >= MAX_ENTRIES:
                raise cur.fail(f"At most {MAX_ENTRIES} entries per command")
            entries.append(_entry(cur, False))
        cur.expect(b")", "')' after entry names")
    else:
        entries.append(_entry(cur, False))
    cur.end()
    return GetMetadata(tag, mailbox, tuple(dict.fromkeys(entries)), maxsize, depth)


def _value(cur: Cursor) -> bytes | None:
    first = cur.peek()
    if first in (b"{", b"~"):
        data, _binary = cur.message_literal()  # literal8 is allowed here (5: value)
        assert isinstance(data, bytes)  # the reader spools message data only
        return data
    return cur.nstring()


def _setmetadata(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    mailbox = cur.mailbox()
    cur.sp()
    cur.expect(b"(", "'(' before entry values")
    values: list[tuple[str, bytes | None]] = []
    while True:
        if len(values) >= MAX_ENTRIES:
            raise cur.fail(f"At most {MAX_ENTRIES} entries per command")
        entry = _entry(cur, True)
        cur.sp()
        values.append((entry, _value(cur)))
        if cur.peek() != b" ":
            break
        cur.i += 1
    cur.expect(b")", "')' after entry values")
    cur.end()
    return SetMetadata(tag, mailbox, tuple(values))


COMMANDS: dict[bytes, Callable[[Cursor, str], c.Command]] = {
    b"GETMETADATA": _getmetadata,
    b"SETMETADATA": _setmetadata,
}
