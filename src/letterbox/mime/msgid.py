"""Message IDs as threading compares them (RFC 5256 REFERENCES; RFC 5322 3.6.4).

A msg-id is written ``<id-left@id-right>``; the same ID may be quoted differently
(``<"a b"@x>``, ``<a\\ b@x>``) or folded, so the form compared is the text between the
angle brackets with whitespace, comments, quotes and quoting backslashes removed.
Comparison stays case-sensitive (RFC 5256). What holds no ``@`` is not a valid ID.
"""

from __future__ import annotations

import re

_BRACKETED = re.compile(rb"<([^<>]*)>")
_COMMENT = re.compile(rb"\((?:[^()\\]|\\.)*\)")
_SPACE = re.compile(rb"\s+")
MAX_REFERENCES = 1000
"""Message IDs kept per References field: enough for any real thread."""


def normalize(inner: bytes) -> str | None:
    """The compared form of the text between one msg-id's angle brackets, or None."""
    if b"(" in inner:
        inner = _COMMENT.sub(b"", inner)
    if b"\\" in inner or b'"' in inner:
        inner = _unquote(inner)
    if b" " in inner or b"\t" in inner or b"\r" in inner or b"\n" in inner:
        # Whitespace goes, even quoted (where it is legal but unseen in practice): the
        # index keeps a message's IDs space-separated.
        inner = _SPACE.sub(b"", inner)
    at = inner.rfind(b"@")
    if at <= 0 or at == len(inner) - 1:
        return None
    return inner.decode("utf-8", "replace")


def _unquote(text: bytes) -> bytes:
    """Quotes removed; a backslash keeps the character after it."""
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == 0x5C and i + 1 < n:  # backslash
            out.append(text[i + 1])
            i += 2
            continue
        if ch != 0x22:  # '"'
            out.append(ch)
        i += 1
    return bytes(out)


def message_ids(value: bytes | None, limit: int = MAX_REFERENCES) -> list[str]:
    """The valid message IDs of a header value, in order."""
    if not value:
        return []
    out: list[str] = []
    for m in _BRACKETED.finditer(value):
        mid = normalize(m.group(1))
        if mid is not None:
            out.append(mid)
            if len(out) >= limit:
                break
    return out


def first_message_id(value: bytes | None) -> str | None:
    ids = message_ids(value, 1)
    return ids[0] if ids else None


def thread_references(references: bytes | None, in_reply_to: bytes | None) -> str:
    """A message's references for RFC 5256 REFERENCES threading, space-separated: the IDs
    of its References field, else the first valid ID of In-Reply-To, else none."""
    ids = message_ids(references)
    if not ids:
        first = first_message_id(in_reply_to)
        ids = [first] if first else []
    # IDs cannot hold spaces once normalized.
    return " ".join(ids)
