"""Metadata and readers' \\Seen kept beside the folders, so a rebuilt index has them.

An index rebuilt from the folders alone knows what the message files and folder files
tell (see folderfile.py). Two things live in the index only and would be lost with it:

- RFC 5464 metadata: `letterbox-metadata` in each folder holds the mailbox's entries
  (the account's, and each reader's own /private ones); `letterbox-server-metadata` in the
  account's root holds the server entries. A change commits the rows, then rewrites the
  file before the client is answered. A crash between the two leaves the file behind
  the index, which start-up brings back in line (reconcile.write_folder_files).
- The \\Seen marks of the readers of a shared mailbox (privateseen.py): `letterbox-seen`
  in the folder, written at rest with the file names (namesync.py), as the owner's flags
  are: a rebuild after a crash may miss the last few seconds of marks, as it does the
  owner's.

Both are JSON, written durably (temporary file, fsync, rename). Unreadable files are
ignored: they can only make a rebuild know less, never make an index wrong.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
from typing import Any

from .accountdir import AccountDir, join

log = logging.getLogger("letterbox.store")

METADATA_FILE = "letterbox-metadata"
SERVER_METADATA_FILE = "letterbox-server-metadata"
SEEN_FILE = "letterbox-seen"
OWNER = ""
"""The `user` of the account's own entries (readers' entries name the reader)."""

Entries = list[tuple[str, str, bytes]]
"""(user, entry, value) sorted; user OWNER for the account's table."""


# --- metadata ------------------------------------------------------------------------------
def metadata_path(folder: str | None) -> str:
    """The file of a folder's entries, or of the server's (*folder* None)."""
    return SERVER_METADATA_FILE if folder is None else join(folder, METADATA_FILE)


def read_entries(db: sqlite3.Connection, mailbox_id: int) -> Entries:
    """Every entry of *mailbox_id* (0: the server's) as the index has it."""
    rows: Entries = [
        (OWNER, e, bytes(v)) for e, v in db.execute(
            "SELECT entry, value FROM metadata WHERE mailbox_id = ?", (mailbox_id,)
        )
    ]
    rows += [
        (u, e, bytes(v)) for u, e, v in db.execute(
            "SELECT user, entry, value FROM private_metadata WHERE mailbox_id = ?", (mailbox_id,)
        )
    ]
    return sorted(rows)


def encode_entries(entries: Entries) -> bytes:
    doc = {"v": 1, "entries": [[u, e, base64.b64encode(v).decode("ascii")] for u, e, v in entries]}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_entries(data: bytes) -> Entries | None:
    try:
        doc = json.loads(data)
        out: Entries = []
        for user, entry, value in doc["entries"]:
            if not isinstance(user, str) or not isinstance(entry, str) or not entry.startswith("/"):
                return None
            out.append((user, entry, base64.b64decode(value, validate=True)))
        return sorted(out)
    except (ValueError, KeyError, TypeError):
        return None


def read_metadata_file(adir: AccountDir, folder: str | None) -> Entries | None:
    """What the file says, or None when it is missing or unreadable."""
    try:
        data = adir.read(metadata_path(folder))
    except OSError:
        return None
    entries = decode_entries(data)
    if entries is None:
        log.warning("%s: unreadable metadata file %s ignored", adir.path, metadata_path(folder))
    return entries


def write_metadata_file(adir: AccountDir, folder: str | None, entries: Entries) -> None:
    """Durably; a mailbox without entries that never had a file gets none."""
    path = metadata_path(folder)
    if not entries and not adir.exists(path):
        return
    adir.replace(path, encode_entries(entries))


def sync_metadata_file(adir: AccountDir, folder: str | None, entries: Entries) -> bool:
    """Rewrite the file if it differs from *entries*; whether it did."""
    if (read_metadata_file(adir, folder) or []) == entries:
        return False
    write_metadata_file(adir, folder, entries)
    return True


def restore_metadata(db: sqlite3.Connection, mailbox_id: int, entries: Entries) -> None:
    """Inside the caller's transaction: the rows a file describes (after a rebuild)."""
    db.executemany(
        "INSERT OR REPLACE INTO metadata (mailbox_id, entry, value) VALUES (?, ?, ?)",
        [(mailbox_id, e, v) for u, e, v in entries if u == OWNER],
    )
    db.executemany(
        "INSERT OR REPLACE INTO private_metadata (mailbox_id, user, entry, value) VALUES (?, ?, ?, ?)",
        [(mailbox_id, u, e, v) for u, e, v in entries if u != OWNER],
    )


# --- readers' \Seen -----------------------------------------------------------------------
def read_seen(db: sqlite3.Connection, mailbox_id: int) -> dict[str, list[int]]:
    """Each reader's seen UIDs in *mailbox_id*, ascending."""
    out: dict[str, list[int]] = {}
    for user, uid in db.execute(
        "SELECT user, uid FROM private_seen WHERE mailbox_id = ? ORDER BY user, uid", (mailbox_id,)
    ):
        out.setdefault(user, []).append(int(uid))
    return out


def _ranges(uids: list[int]) -> str:
    """Ascending UIDs as an IMAP-style set ("1:5,9"): a reader's marks are mostly runs."""
    parts: list[str] = []
    start = prev = None
    for uid in uids:
        if prev is not None and uid == prev + 1:
            prev = uid
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = uid
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts)


def _parse_ranges(text: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, text.split(",")):
        low, _, high = part.partition(":")
        first, last = int(low), int(high or low)
        if first < 1 or last < first or last - first > 10_000_000:
            raise ValueError(part)
        out.extend(range(first, last + 1))
    return out


def encode_seen(seen: dict[str, list[int]]) -> bytes:
    doc: dict[str, Any] = {"v": 1, "seen": {user: _ranges(uids) for user, uids in sorted(seen.items())}}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_seen(data: bytes) -> dict[str, list[int]] | None:
    try:
        doc = json.loads(data)
        return {str(user): _parse_ranges(str(text)) for user, text in doc["seen"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def read_seen_file(adir: AccountDir, folder: str) -> dict[str, list[int]] | None:
    try:
        data = adir.read(join(folder, SEEN_FILE))
    except OSError:
        return None
    seen = decode_seen(data)
    if seen is None:
        log.warning("%s: unreadable file %s ignored", adir.path, join(folder, SEEN_FILE))
    return seen


def sync_seen_file(adir: AccountDir, folder: str, seen: dict[str, list[int]]) -> bool:
    """Rewrite the folder's file if it differs from *seen*; whether it did. A folder
    without readers' marks that never had a file gets none."""
    path = join(folder, SEEN_FILE)
    if not seen and not adir.exists(path):
        return False
    if read_seen_file(adir, folder) == seen:
        return False
    adir.replace(path, encode_seen(seen))
    return True


def restore_seen(db: sqlite3.Connection, mailbox_id: int, seen: dict[str, list[int]]) -> None:
    """Inside the caller's transaction: marks of messages the index has (an expunged
    message's mark stays behind in the file until the next write, and is skipped)."""
    present = {r[0] for r in db.execute("SELECT uid FROM messages WHERE mailbox_id = ?", (mailbox_id,))}
    db.executemany(
        "INSERT OR IGNORE INTO private_seen (mailbox_id, user, uid) VALUES (?, ?, ?)",
        [(mailbox_id, user, uid) for user, uids in seen.items() for uid in uids if uid in present],
    )
