"""\\Seen per user on shared mailboxes (as Dovecot keeps it): the owner's \\Seen is the
message's flag; every other reader has a mark of their own, shown in its place.

A reader's STORE changes the message's other flags for everyone and only the reader's
own mark for \\Seen; a reader's APPEND with \\Seen marks it for the reader alone.
"""

from __future__ import annotations

from .flags import SEEN

_SEEN_SET = frozenset({SEEN})


def overlay(flags: frozenset[str], seen: bool) -> frozenset[str]:
    """The stored *flags* with the reader's \\Seen instead of the owner's."""
    if (SEEN in flags) == seen:
        return flags
    return flags | _SEEN_SET if seen else flags - _SEEN_SET


def overlay_text(text: str, seen: bool) -> str:
    """`overlay` on flags as stored (see flags.flag_text)."""
    flags = set(text.split())
    if (SEEN in flags) == seen:
        return text
    if seen:
        flags.add(SEEN)
    else:
        flags.discard(SEEN)
    return " ".join(sorted(flags))


def reader_store(stored: frozenset[str], shown: frozenset[str], new: frozenset[str]) -> tuple[frozenset[str], bool | None]:
    """A reader changed what they are shown from *shown* to *new*: the message's flags
    to store (the owner's \\Seen kept) and the reader's new mark (None: unchanged)."""
    new_stored = (new - _SEEN_SET) | (stored & _SEEN_SET)
    mark = (SEEN in new) if (SEEN in new) != (SEEN in shown) else None
    return new_stored, mark
