"""Every message's UID and flags per mailbox, kept in memory between commands.

SELECT and `FETCH 1:* (FLAGS)` on a big mailbox need one (UID, flags) pair per message;
reading them from SQLite costs a Python tuple per row each time. A table is loaded once
and then brought up to date from what changed since its MODSEQ (rows with a higher MODSEQ,
tombstones), so the next session that opens the mailbox pays only for the changes.

Tables are replaced, never changed in place: a session may hold one across awaits.
"""

from __future__ import annotations

import bisect
import sqlite3
from array import array
from collections import Counter, OrderedDict
from operator import itemgetter

from ..api import FlagTable, MailboxNotFound

# Messages kept in all tables together (about 16 bytes each); the least recently used
# mailbox goes first.
MAX_MESSAGES = 2_000_000
# More changed rows than this share of the table: reading it whole is cheaper.
_RELOAD_SHARE = 4


class _Texts:
    """The distinct flag texts of one mailbox, numbered; shared by all versions of its
    table, so numbers are only ever added."""

    __slots__ = ("texts", "ids")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.ids: dict[str, int] = {}

    def id(self, text: str) -> int:
        i = self.ids.get(text)
        if i is None:
            i = self.ids[text] = len(self.texts)
            self.texts.append(text)
        return i


Key = tuple[str, int]  # (account address, mailbox id)


class FlagTables:
    """The tables of the mailboxes opened lately, of all accounts, within one budget."""

    def __init__(self, max_messages: int = MAX_MESSAGES) -> None:
        self.max_messages = max_messages
        self._tables: OrderedDict[Key, tuple[FlagTable, _Texts]] = OrderedDict()
        self._total = 0

    def get(self, db: sqlite3.Connection, key: Key, mark: tuple[int, int] | None = None) -> FlagTable:
        """*mark*: the mailbox's (HIGHESTMODSEQ, UIDVALIDITY) as the caller just read them,
        which saves reading them again."""
        mailbox_id = key[1]
        if mark is None:
            row = db.execute(
                "SELECT highestmodseq, uidvalidity FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchone()
            if row is None:
                self.drop(key)
                raise MailboxNotFound("mailbox no longer exists")
            mark = int(row[0]), int(row[1])
        modseq, uidvalidity = mark
        entry = self._tables.get(key)
        if entry is not None and entry[0].uidvalidity != uidvalidity:
            self.drop(key)  # the mailbox was deleted and made again
            entry = None
        if entry is not None:
            table, texts = entry
            if table.modseq != modseq:
                table, texts = _update(db, mailbox_id, table, texts, modseq)
        else:
            texts = _Texts()
            table = _load(db, mailbox_id, modseq, uidvalidity, texts)
        self._keep(key, table, texts)
        return table

    def drop(self, key: Key) -> None:
        entry = self._tables.pop(key, None)
        if entry is not None:
            self._total -= _weight(entry[0])

    def drop_account(self, address: str) -> None:
        for key in [k for k in self._tables if k[0] == address]:
            self.drop(key)

    def _keep(self, key: Key, table: FlagTable, texts: _Texts) -> None:
        self.drop(key)
        self._tables[key] = (table, texts)
        self._total += _weight(table)
        while self._total > self.max_messages and len(self._tables) > 1:
            _, (oldest, _) = self._tables.popitem(last=False)
            self._total -= _weight(oldest)


def _weight(table: FlagTable) -> int:
    return len(table.uids) + 1  # an empty mailbox's table costs something too

def _load(db: sqlite3.Connection, mailbox_id: int, modseq: int, uidvalidity: int, texts: _Texts) -> FlagTable:
    # *modseq* was read first, so the rows are at least that new; a change that lands in
    # between is applied again at the next update, which is harmless.
    rows = db.execute(
        "SELECT uid, flags FROM messages WHERE mailbox_id = ? ORDER BY uid", (mailbox_id,)
    ).fetchall()
    for text in {r[1] for r in rows}:
        texts.id(text)
    uids = array("L", map(itemgetter(0), rows))
    flag_ids = array("L", map(texts.ids.__getitem__, map(itemgetter(1), rows)))
    return FlagTable(modseq, uidvalidity, uids, flag_ids, texts.texts, Counter(flag_ids))


def _update(
    db: sqlite3.Connection, mailbox_id: int, old: FlagTable, texts: _Texts, modseq: int
) -> tuple[FlagTable, _Texts]:
    # Sorted here: ORDER BY uid would make SQLite walk the whole mailbox rather than the
    # changed rows the (mailbox_id, modseq) index points at.
    changed = db.execute(
        "SELECT uid, flags FROM messages WHERE mailbox_id = ? AND modseq > ?", (mailbox_id, old.modseq)
    ).fetchall()
    changed.sort()
    if len(changed) > len(old.uids) // _RELOAD_SHARE + 64 or len(texts.texts) > 4 * len(old.counts) + 64:
        # Many changes, or many flag texts no message has any more: start afresh.
        texts = _Texts()
        return _load(db, mailbox_id, modseq, old.uidvalidity, texts), texts
    gone = [r[0] for r in db.execute(
        "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ?", (mailbox_id, old.modseq)
    )]
    uids, flag_ids = array("L", old.uids), array("L", old.flag_ids)
    counts = Counter(old.counts)
    for uid, text in changed:
        fid = texts.id(text)
        counts[fid] += 1
        if not uids or uid > uids[-1]:
            uids.append(uid)
            flag_ids.append(fid)
            continue
        i = bisect.bisect_left(uids, uid)
        if uids[i] == uid:
            counts[flag_ids[i]] -= 1
            flag_ids[i] = fid
        else:  # a row indexed late under an old UID (start-up reconciliation elsewhere)
            uids.insert(i, uid)
            flag_ids.insert(i, fid)
    if len(gone) > 64:
        dead = set(gone)
        keep = [i for i, u in enumerate(uids) if u not in dead]
        uids = array("L", map(uids.__getitem__, keep))
        flag_ids = array("L", map(flag_ids.__getitem__, keep))
        counts = Counter(flag_ids)
    else:
        for uid in gone:
            i = bisect.bisect_left(uids, uid)
            if i < len(uids) and uids[i] == uid:
                counts[flag_ids[i]] -= 1
                del uids[i]
                del flag_ids[i]
    counts = Counter({fid: n for fid, n in counts.items() if n > 0})
    return FlagTable(modseq, old.uidvalidity, uids, flag_ids, texts.texts, counts), texts
