"""\\Seen per user on shared mailboxes: the marks of the readers other than the owner.

The owner's \\Seen is in the message's flags, as always; every other reader's is a row of
`private_seen` (mailbox, user, UID). What a reader sees is the stored flags with \\Seen
taken from those rows (`rules.seen.overlay`). Changing a reader's mark gives the message a new
MODSEQ, so the reader's other sessions learn of it from the change feed and
`changes_since` like any flag change; the owner's sessions see the flags unchanged.
"""

from __future__ import annotations

import sqlite3
from array import array
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence

from ..api import FlagTable
from ..rules.seen import overlay_text

# UIDs per query with an IN list; more are read as a range and filtered.
_IN_CHUNK = 500
# Messages kept in the readers' flag tables together; the least recently used goes first.
_MAX_MESSAGES = 500_000


def seen_among(db: sqlite3.Connection, mailbox_id: int, user: str, uids: Iterable[int]) -> set[int]:
    """Which of *uids* the reader has seen."""
    wanted = sorted(set(uids))
    if not wanted:
        return set()
    if len(wanted) > _IN_CHUNK:
        rows = db.execute(
            "SELECT uid FROM private_seen WHERE mailbox_id = ? AND user = ? AND uid BETWEEN ? AND ?",
            (mailbox_id, user, wanted[0], wanted[-1]),
        ).fetchall()
        chosen = set(wanted)
        return {r[0] for r in rows if r[0] in chosen}
    marks = ",".join("?" * len(wanted))
    return {
        r[0] for r in db.execute(
            f"SELECT uid FROM private_seen WHERE mailbox_id = ? AND user = ? AND uid IN ({marks})",
            (mailbox_id, user, *wanted),
        )
    }


def seen_uids(db: sqlite3.Connection, mailbox_id: int, user: str) -> list[int]:
    """Every UID the reader has seen, ascending (expunged messages take their rows along)."""
    return [r[0] for r in db.execute(
        "SELECT uid FROM private_seen WHERE mailbox_id = ? AND user = ? ORDER BY uid", (mailbox_id, user)
    )]


def seen_count(db: sqlite3.Connection, mailbox_id: int, user: str) -> int:
    return int(db.execute(
        "SELECT count(*) FROM private_seen WHERE mailbox_id = ? AND user = ?", (mailbox_id, user)
    ).fetchone()[0])


def mark(db: sqlite3.Connection, mailbox_id: int, user: str, uids: Iterable[int], seen: bool) -> None:
    """Inside the caller's transaction."""
    rows = [(mailbox_id, user, uid) for uid in uids]
    if seen:
        db.executemany("INSERT OR IGNORE INTO private_seen (mailbox_id, user, uid) VALUES (?, ?, ?)", rows)
    else:
        db.executemany("DELETE FROM private_seen WHERE mailbox_id = ? AND user = ? AND uid = ?", rows)


def copy_marks(db: sqlite3.Connection, source: tuple[int, int], target: tuple[int, int]) -> None:
    """A copied (or moved) message keeps every reader's mark: it is the same message."""
    (src, uid), (dst, new_uid) = source, target
    db.execute(
        "INSERT OR IGNORE INTO private_seen (mailbox_id, user, uid)"
        " SELECT ?, user, ? FROM private_seen WHERE mailbox_id = ? AND uid = ?",
        (dst, new_uid, src, uid),
    )


class ReaderTables:
    """Flag tables (see flagtables.py) as readers see them, made from the owner's table and
    the reader's marks, kept until the owner's table moves on (every change of a mark
    moves it: the message gets a new MODSEQ)."""

    def __init__(self, max_messages: int = _MAX_MESSAGES) -> None:
        self.max_messages = max_messages
        self._tables: OrderedDict[tuple[str, str, int], FlagTable] = OrderedDict()
        self._total = 0

    def get(self, db: sqlite3.Connection, key: tuple[str, str, int], table: FlagTable) -> FlagTable:
        _, user, mailbox_id = key
        mine = self._tables.get(key)
        if mine is not None and mine.modseq == table.modseq and mine.uidvalidity == table.uidvalidity:
            self._tables.move_to_end(key)
            return mine
        mine = remap(table, set(seen_uids(db, mailbox_id, user)))
        self._drop(key)
        self._tables[key] = mine
        self._total += len(mine.uids) + 1
        while self._total > self.max_messages and len(self._tables) > 1:
            _, oldest = self._tables.popitem(last=False)
            self._total -= len(oldest.uids) + 1
        return mine

    def _drop(self, key: tuple[str, str, int]) -> None:
        old = self._tables.pop(key, None)
        if old is not None:
            self._total -= len(old.uids) + 1


def remap(table: FlagTable, seen: set[int]) -> FlagTable:
    """*table* with each message's \\Seen as *seen* says."""
    texts: list[str] = []
    by_text: dict[str, int] = {}
    ids: dict[tuple[int, bool], int] = {}
    out = array("L")
    for uid, fid in zip(table.uids, table.flag_ids, strict=True):
        key = (fid, uid in seen)
        nid = ids.get(key)
        if nid is None:
            text = overlay_text(table.texts[fid], key[1])
            nid = by_text.get(text)
            if nid is None:
                nid = by_text[text] = len(texts)
                texts.append(text)
            ids[key] = nid
        out.append(nid)
    uids: Sequence[int] = table.uids  # never changed in place: shared with the owner's
    return FlagTable(table.modseq, table.uidvalidity, uids, out, texts, Counter(out))
