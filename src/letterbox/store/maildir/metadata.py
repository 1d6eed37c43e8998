"""RFC 5464 metadata in the account's index: entries by mailbox id, 0 for the server's.

A mailbox's entries are keyed by its id, which is never reused: RENAME keeps them, the
DELETE that removes the mailbox row removes them in the same commit (a trigger, see
index.py), and a mailbox made later under the same name, or found on disk again after a
crash, has another id and none of them. Every change is one transaction, checked against
`Limits` before anything is written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..api import MetadataTooBig, MetadataTooMany

if TYPE_CHECKING:
    from .account import MaildirAccount

SERVER = 0
"""The mailbox id of the server's entries (mailbox ids start at 1)."""


def mailbox_id(acc: MaildirAccount, mailbox: str | None) -> int:
    return SERVER if mailbox is None else acc.mailbox_by_name(mailbox).id


def get(db: sqlite3.Connection, mid: int, entries: Sequence[str], depth: int) -> list[tuple[str, bytes]]:
    found: dict[str, bytes] = {}
    for entry in entries:
        row = db.execute("SELECT value FROM metadata WHERE mailbox_id = ? AND entry = ?", (mid, entry)).fetchone()
        if row is not None:
            found[entry] = bytes(row[0])
        if depth == 0:
            continue
        # The entries below: names between "entry/" and "entry0" ("0" follows "/").
        level = entry.count("/") + 1
        for name, value in db.execute(
            "SELECT entry, value FROM metadata WHERE mailbox_id = ? AND entry > ? AND entry < ?",
            (mid, entry + "/", entry + "0"),
        ):
            if depth < 0 or name.count("/") == level:
                found[name] = bytes(value)
    return sorted(found.items())


def set_entries(
    acc: MaildirAccount, db: sqlite3.Connection, mid: int, changes: Sequence[tuple[str, bytes | None]]
) -> None:
    """Inside the caller's transaction; raises before writing anything."""
    limits = acc._store.limits
    final: dict[str, bytes | None] = dict(changes)  # the last value for an entry wins
    for entry, value in final.items():
        if value is not None and len(value) > limits.metadata_value:
            raise MetadataTooBig(f"{entry}: a value may have {limits.metadata_value} octets", limits.metadata_value)
    old: dict[str, int] = {}
    for entry in final:
        row = db.execute(
            "SELECT length(value) FROM metadata WHERE mailbox_id = ? AND entry = ?", (mid, entry)
        ).fetchone()
        if row is not None:
            old[entry] = int(row[0])
    count = int(db.execute("SELECT count(*) FROM metadata WHERE mailbox_id = ?", (mid,)).fetchone()[0])
    added = sum(1 for e, v in final.items() if v is not None and e not in old)
    removed = sum(1 for e, v in final.items() if v is None and e in old)
    if added and count + added - removed > limits.metadata_entries:
        raise MetadataTooMany(f"at most {limits.metadata_entries} metadata entries here")
    grow = sum(len(e) + len(v) for e, v in final.items() if v is not None) - sum(
        len(e) + old[e] for e in final if e in old
    )
    if grow > 0:
        used = int(db.execute("SELECT coalesce(sum(length(entry) + length(value)), 0) FROM metadata").fetchone()[0])
        if used + grow > limits.metadata_bytes:
            raise MetadataTooMany(f"the account's metadata is limited to {limits.metadata_bytes} octets")
    for entry, value in final.items():
        if value is None:
            db.execute("DELETE FROM metadata WHERE mailbox_id = ? AND entry = ?", (mid, entry))
        else:
            db.execute(
                "INSERT OR REPLACE INTO metadata (mailbox_id, entry, value) VALUES (?, ?, ?)", (mid, entry, value)
            )


def copy(db: sqlite3.Connection, src: int, dst: int) -> None:
    """RFC 5464 4.1: RENAME INBOX leaves INBOX its entries and gives the new mailbox a
    copy. (Not counted against the account's limit: a RENAME never fails for metadata.)"""
    db.execute(
        "INSERT OR REPLACE INTO metadata (mailbox_id, entry, value)"
        " SELECT ?, entry, value FROM metadata WHERE mailbox_id = ?",
        (dst, src),
    )
