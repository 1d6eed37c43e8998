"""\\Recent (IMAP4rev1, RFC 3501 2.3.1.2): a message is recent to exactly one session.

A mailbox keeps one mark, a UID: messages from the mark up to UIDNEXT are recent. The
first session to SELECT claims them (the mark moves to UIDNEXT); EXAMINE looks without
claiming. A restart makes nothing recent (the mark moves to UIDNEXT), as no session that
could have been told of a message survives it.
"""

from __future__ import annotations


def recent_range(mark: int, uidnext: int) -> tuple[int, int]:
    """The UIDs [lo, hi) recent now."""
    return mark, uidnext


def claim(mark: int, uidnext: int) -> tuple[tuple[int, int], int]:
    """What a SELECT claims (the recent range) and the mailbox's mark after it."""
    lo, hi = recent_range(mark, uidnext)
    return (lo, hi), hi
