"""Mailbox name rules, shared by every backend.

No name may reach outside the account: no empty components, no "." or "..", no control
characters, bounded length and depth. INBOX is case-insensitive (RFC 9051 5.1), also as
the first component of a child's name.
"""

from __future__ import annotations

import re

from .api import DELIMITER, BadMailboxName

MAX_NAME_BYTES = 512
MAX_DEPTH = 16
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def normalize(name: str) -> str:
    """Return the canonical spelling of a valid name; raise BadMailboxName otherwise."""
    if not name:
        raise BadMailboxName("empty mailbox name")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise BadMailboxName("mailbox name too long")
    if _CONTROL.search(name):
        raise BadMailboxName("control characters are not allowed in mailbox names")
    parts = name.split(DELIMITER)
    if len(parts) > MAX_DEPTH:
        raise BadMailboxName("mailbox hierarchy too deep")
    for p in parts:
        if p in ("", ".", ".."):
            raise BadMailboxName(f"invalid mailbox name component {p!r}")
        if p.startswith("."):
            raise BadMailboxName("mailbox name components may not start with '.'")
    if parts[0].upper() == "INBOX":
        parts[0] = "INBOX"
    return DELIMITER.join(parts)


def parent_names(name: str) -> list[str]:
    """"a/b/c" -> ["a", "a/b"]."""
    parts = name.split(DELIMITER)
    return [DELIMITER.join(parts[:i]) for i in range(1, len(parts))]
