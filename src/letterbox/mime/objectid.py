"""EMAILID (RFC 8474 5.1): a message's object identifier, from its bytes alone.

A digest of the message exactly as stored, so it is the same wherever those bytes are
(COPY and MOVE, a rebuilt index, a message parsed again) and needs nothing but the file
to be computed again. Identical content shares one EMAILID, as RFC 8474 5.1 allows (and
Cyrus does): nothing immutable about a message but its content goes into it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

PREFIX = "M"
"""Every EMAILID starts with a letter (RFC 8474 8.1); a new digest would get a new one."""
DIGEST_SIZE = 12


# SHA-256 cut to 12 bytes: CPUs hash it in hardware, twice as fast here as BLAKE2b, and
# every delivery pays for it.


def email_id(raw: bytes) -> str:
    """"M" and 24 hex digits: [A-Za-z0-9_-] only (RFC 8474 7, objectid)."""
    return PREFIX + hashlib.sha256(raw).hexdigest()[: 2 * DIGEST_SIZE]


def email_id_of(pieces: Iterable[bytes]) -> str:
    """`email_id` of the bytes *pieces* make up, read a piece at a time."""
    h = hashlib.sha256()
    for piece in pieces:
        h.update(piece)
    return PREFIX + h.hexdigest()[: 2 * DIGEST_SIZE]
