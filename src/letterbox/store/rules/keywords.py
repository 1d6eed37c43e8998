"""The keywords a mailbox has seen (IMAP FLAGS and PERMANENTFLAGS, RFC 9051 7.3.4).

A mailbox's list only grows: a keyword stays announced after its last message goes, as
clients cache the list. A client's APPEND or STORE may not grow it past the limit, since
every SELECT sends the whole list; copies and moves carry theirs in regardless, so that
no message loses a keyword on the way.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..api import LimitExceeded, Limits


def keywords_of(flags: Iterable[str]) -> set[str]:
    return {f for f in flags if not f.startswith("\\")}


def accumulate(known: Iterable[str], flags: Iterable[str], limits: Limits, limit: bool = False) -> list[str] | None:
    """The mailbox's keyword list (sorted) once *flags* are stored in it, or None when it
    stays as it is. With *limit* (a client's APPEND or STORE) raises LimitExceeded rather
    than going past `Limits.keywords`."""
    have = set(known)
    new = keywords_of(flags) - have
    if not new:
        return None
    if limit and len(have) + len(new) > limits.keywords:
        raise LimitExceeded(f"at most {limits.keywords} keywords per mailbox")
    return sorted(have | new)
