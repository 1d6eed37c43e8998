"""RFC 5464 metadata in the account's index: entries by mailbox id, 0 for the server's.

A mailbox's entries are keyed by its id, which is never reused: RENAME keeps them, the
DELETE that removes the mailbox row removes them in the same commit (a trigger, see
index.py), and a mailbox made later under the same name, or found on disk again after a
crash, has another id and none of them. Every change is one transaction, checked against
`Limits` before anything is written. The /private entries of users other than the owner
who use a shared mailbox (readers, RFC 4314) are theirs alone, kept by mailbox id and
user in `private_metadata`, and go with the mailbox as the others do. A copy of each mailbox's entries, and of the server's, is
kept in a file beside the folder for a rebuild (sidefiles.py).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..api import Limits, MailboxNotFound, MetadataTooBig, MetadataTooMany
from . import files, sidefiles

if TYPE_CHECKING:
    from .account import MaildirAccount

log = logging.getLogger("letterbox.store")

SERVER = 0
"""The mailbox id of the server's entries (mailbox ids start at 1)."""


def mailbox_id(acc: MaildirAccount, mailbox: str | None) -> int:
    return SERVER if mailbox is None else acc.mailbox_by_name(mailbox).id


def is_private(entry: str) -> bool:
    """Whether *entry* (valid, lower case) is under /private (3.2: per user)."""
    return entry.split("/", 2)[1] == "private"


def _scope(mid: int, entry: str, reader: str | None) -> tuple[str, tuple[object, ...]]:
    """Where *entry* of mailbox *mid* is kept: the account's table, or for a reader
    (another user of a shared mailbox) the reader's own /private entries."""
    if reader is not None and is_private(entry):
        return "private_metadata WHERE mailbox_id = ? AND user = ?", (mid, reader)
    return "metadata WHERE mailbox_id = ?", (mid,)


def get(
    db: sqlite3.Connection, mid: int, entries: Sequence[str], depth: int, reader: str | None = None
) -> list[tuple[str, bytes]]:
    found: dict[str, bytes] = {}
    for entry in entries:
        where, args = _scope(mid, entry, reader)
        row = db.execute(f"SELECT value FROM {where} AND entry = ?", (*args, entry)).fetchone()
        if row is not None:
            found[entry] = bytes(row[0])
        if depth == 0:
            continue
        # The entries below: names between "entry/" and "entry0" ("0" follows "/").
        level = entry.count("/") + 1
        for name, value in db.execute(
            f"SELECT entry, value FROM {where} AND entry > ? AND entry < ?", (*args, entry + "/", entry + "0")
        ):
            if depth < 0 or name.count("/") == level:
                found[name] = bytes(value)
    return sorted(found.items())


def set_entries(
    acc: MaildirAccount, db: sqlite3.Connection, mid: int, changes: Sequence[tuple[str, bytes | None]],
    reader: str | None = None,
) -> list[str]:
    """Inside the caller's transaction; raises before writing anything. Returns the
    entries whose value changed (set, changed or removed). A reader's /private entries
    are the reader's own, with limits of their own: a reader cannot use up the owner's."""
    limits = acc._store.limits
    final: dict[str, bytes | None] = dict(changes)  # the last value for an entry wins
    for entry, value in final.items():
        if value is not None and len(value) > limits.metadata_value:
            raise MetadataTooBig(f"{entry}: a value may have {limits.metadata_value} octets", limits.metadata_value)
    mine = {e: v for e, v in final.items() if reader is not None and is_private(e)}
    shared = {e: v for e, v in final.items() if e not in mine}
    writes = _checked(db, limits, shared, "metadata WHERE mailbox_id = ?", (mid,), "metadata", ())
    if mine:
        writes += _checked(
            db, limits, mine, "private_metadata WHERE mailbox_id = ? AND user = ?", (mid, reader),
            "private_metadata WHERE user = ?", (reader,),
        )
    for entry, value in writes:
        where, args = _scope(mid, entry, reader)
        if value is None:
            db.execute(f"DELETE FROM {where} AND entry = ?", (*args, entry))
        elif where.startswith("metadata"):
            db.execute("INSERT OR REPLACE INTO metadata (mailbox_id, entry, value) VALUES (?, ?, ?)", (mid, entry, value))
        else:
            db.execute(
                "INSERT OR REPLACE INTO private_metadata (mailbox_id, user, entry, value) VALUES (?, ?, ?, ?)",
                (mid, reader, entry, value),
            )
    return sorted(entry for entry, _ in writes)


def _checked(
    db: sqlite3.Connection, limits: Limits, part: dict[str, bytes | None],
    where: str, args: tuple[object, ...], total: str, total_args: tuple[object, ...],
) -> list[tuple[str, bytes | None]]:
    """The writes *part* makes among the entries *where* selects, checked against the
    entries there and the octets *total* selects; raises MetadataTooMany."""
    if not part:
        return []
    old: dict[str, bytes] = {}
    for entry in part:
        row = db.execute(f"SELECT value FROM {where} AND entry = ?", (*args, entry)).fetchone()
        if row is not None:
            old[entry] = bytes(row[0])
    count = int(db.execute(f"SELECT count(*) FROM {where}", args).fetchone()[0])
    added = sum(1 for e, v in part.items() if v is not None and e not in old)
    removed = sum(1 for e, v in part.items() if v is None and e in old)
    if added and count + added - removed > limits.metadata_entries:
        raise MetadataTooMany(f"at most {limits.metadata_entries} metadata entries here")
    grow = sum(len(e) + len(v) for e, v in part.items() if v is not None) - sum(
        len(e) + len(old[e]) for e in part if e in old
    )
    if grow > 0:
        used = int(db.execute(
            f"SELECT coalesce(sum(length(entry) + length(value)), 0) FROM {total}", total_args
        ).fetchone()[0])
        if used + grow > limits.metadata_bytes:
            raise MetadataTooMany(f"the account's metadata is limited to {limits.metadata_bytes} octets")
    return [(e, v) for e, v in part.items() if v != old.get(e)]


def copy(db: sqlite3.Connection, src: int, dst: int) -> None:
    """RFC 5464 4.1: RENAME INBOX leaves INBOX its entries and gives the new mailbox a
    copy (readers' own too). (Not counted against the limits: a RENAME never fails for
    metadata.)"""
    db.execute(
        "INSERT OR REPLACE INTO metadata (mailbox_id, entry, value)"
        " SELECT ?, entry, value FROM metadata WHERE mailbox_id = ?",
        (dst, src),
    )
    db.execute(
        "INSERT OR REPLACE INTO private_metadata (mailbox_id, user, entry, value)"
        " SELECT ?, user, entry, value FROM private_metadata WHERE mailbox_id = ?",
        (dst, src),
    )


async def save(acc: MaildirAccount, mid: int) -> None:
    """Write the file of *mid*'s entries (see sidefiles.py) after a committed change. A
    failure leaves the file behind the index, which start-up brings in line: it is
    logged, not the client's error (the change itself is made)."""
    try:
        folder = None if mid == SERVER else acc.folder(mid)
    except MailboxNotFound:
        return  # deleted meanwhile: its folder, and the file, went with it
    entries = sidefiles.read_entries(acc.db, mid)
    try:
        await files.disk_threads.run(sidefiles.write_metadata_file, acc.adir, folder, entries)
    except OSError as e:
        log.warning("%s: metadata file of %s not written (start-up will): %s", acc.address, folder or "/", e)
