"""Flag spelling: system flags case-insensitive and canonical, keywords atoms.

Flags are kept as one text per message, sorted and space-separated (`flag_text`); a
keyword is an IMAP atom (RFC 9051 9: no space, no backslash, no control), so that text
splits back into the same flags and a search for "\\Seen" never finds a keyword.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Literal

from ..api import SYSTEM_FLAGS, LimitExceeded, Limits, StoreError

SEEN = "\\Seen"
DELETED = "\\Deleted"
_CANONICAL = {f.lower(): f for f in SYSTEM_FLAGS}
# RFC 9051 9: atom = 1*ATOM-CHAR; flag-keyword = "$MDNSent" / "$Forwarded" / ... / atom.
# ATOM-CHAR is any CHAR (7-bit, no NUL) except atom-specials: ( ) { SP CTL % * " \ ]
_ATOM = re.compile(r'[^\x00-\x20\x7f-\U0010ffff(){%*"\\\]]+')
_flagsets: dict[str, frozenset[str]] = {}

Mode = Literal["add", "remove", "replace"]


class BadFlag(StoreError):
    """A keyword that is not an atom: it could not be stored and read back as one flag."""


def is_keyword(text: str) -> bool:
    return _ATOM.fullmatch(text) is not None


def normalize_flags(flags: Iterable[str]) -> set[str]:
    """The flags a client may store, system flags in their canonical spelling (RFC 9051
    2.3.2: case-insensitive). \\Recent and unknown system flags are dropped: a client
    cannot set them. Raises BadFlag for a keyword that is not an atom."""
    out = set()
    for f in flags:
        if f.startswith("\\"):
            c = _CANONICAL.get(f.lower())
            if c is not None:
                out.add(c)
        elif is_keyword(f):
            out.add(f)
        else:
            raise BadFlag(f"{f!r} is not a valid keyword")
    return out


def check_keywords(flags: Iterable[str], limits: Limits) -> None:
    """Refuse keywords longer than the limit (every resource a client makes us hold)."""
    for f in flags:
        if not f.startswith("\\") and len(f) > limits.keyword_length:
            raise LimitExceeded(f"keywords may be at most {limits.keyword_length} characters long")


def flags_to_store(
    flags: Iterable[str], mode: str, limits: Limits, only: Callable[[str], bool] | None = None
) -> set[str]:
    """What a STORE of *flags* in *mode* may change: normalized, keywords checked against
    the limits unless they are only being removed, and kept to those *only* allows (the
    caller's rights)."""
    given = normalize_flags(flags)
    if mode != "remove":
        check_keywords(given, limits)
    return given if only is None else {f for f in given if only(f)}


def flag_text(flags: Iterable[str]) -> str:
    """Flags as stored: sorted, each once, space-separated."""
    return " ".join(sorted(set(flags)))


def flagset(text: str) -> frozenset[str]:
    """Parse a stored flag text, sharing one frozenset per distinct value (a mailbox has
    few distinct flag combinations and many messages)."""
    fs = _flagsets.get(text)
    if fs is None:
        fs = frozenset(text.split())
        if len(_flagsets) < 4096:
            _flagsets[text] = fs
    return fs


def apply_store(
    old: frozenset[str], mode: Mode, given: Iterable[str], only: Callable[[str], bool] | None = None
) -> frozenset[str]:
    """A message's flags after STORE (RFC 9051 6.4.6) of *given* (normalized) with
    *mode*; flags for which *only* is false keep their state (RFC 4314 4: the rights a
    user lacks)."""
    wanted = frozenset(given)
    if mode == "add":
        new = old | wanted
    elif mode == "remove":
        new = old - wanted
    else:
        new = wanted
    if only is not None:
        new = frozenset(f for f in new if only(f)) | frozenset(f for f in old if not only(f))
    return new
