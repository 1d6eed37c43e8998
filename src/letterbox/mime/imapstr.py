"""IMAP string serialization (RFC 3501 section 4.3) as used in ENVELOPE/BODYSTRUCTURE.

The choice between quoted string and literal follows Dovecot, whose output
clients already see:

* plain 7-bit text without CR/LF is a quoted string, with ``"`` and ``\\``
  escaped, unless more than four of them would need escaping (then a literal
  is shorter);
* anything with 8-bit bytes, CR or LF is a literal ``{n}\\r\\n<bytes>``;
* "for humans" strings (the envelope subject and display names) are cleaned
  up (TAB to space, runs of spaces collapsed, CR/LF dropped, leading and
  trailing space removed) and sent as a literal whenever that cleanup, an
  8-bit byte or a quoted-special was involved.

A literal never contains NUL (RFC 3501 CHAR8); callers replace NULs first and
these functions replace any that are left.
"""

from __future__ import annotations

import re

NIL = b"NIL"
_MAX_ESCAPES = 4
_NUL_REPLACEMENT = "\ufffd".encode()
_SPACES = re.compile(rb"[ \t]+")
_NEWLINE_BEFORE_TEXT = re.compile(rb"[\r\n]+([^ \t])")
_NEEDS_CARE = re.compile(rb'[^\x01-\x7f]|[\r\n"\\]')
_NEEDS_CLEANUP = re.compile(rb'[\0\t\r\n"\\]|  ')


def literal(value: bytes) -> bytes:
    return b"{%d}\r\n%s" % (len(value), value)


def string(value: bytes) -> bytes:
    """A non-NIL IMAP string, quoted when possible."""
    if _NEEDS_CARE.search(value) is None:
        return b'"' + value + b'"'
    if b"\0" in value:
        value = value.replace(b"\0", _NUL_REPLACEMENT)
    if value.isascii() and b"\r" not in value and b"\n" not in value:
        specials = value.count(b'"') + value.count(b"\\")
        if specials == 0:
            return b'"' + value + b'"'
        if specials <= _MAX_ESCAPES:
            return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(value)


def nstring(value: bytes | None) -> bytes:
    return NIL if value is None else string(value)


def nstring_nolf(value: bytes | None) -> bytes:
    """Like :func:`nstring`, with line breaks removed (unfolding a header value)."""
    if value is None:
        return NIL
    if b"\r" in value or b"\n" in value:
        # a line break directly followed by text becomes a space
        value = _NEWLINE_BEFORE_TEXT.sub(rb" \1", value)
        value = value.replace(b"\r", b"").replace(b"\n", b"")
    return string(value)


def for_humans(value: bytes) -> bytes:
    """A display string (subject, address name): whitespace normalized."""
    if (
        value.isascii()
        and _NEEDS_CLEANUP.search(value) is None
        and not value.startswith(b" ")
        and not value.endswith(b" ")
    ):
        return b'"' + value + b'"'
    cleaned = value.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b"\x80")
    cleaned = _SPACES.sub(b" ", cleaned).strip(b" ")
    if not cleaned:
        return b'""'
    return literal(cleaned)
