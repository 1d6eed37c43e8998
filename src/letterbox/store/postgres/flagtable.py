"""Each open mailbox's UIDs and flags in memory, shared by its sessions (see
api.FlagTable): brought up to date from MODSEQs, so a second SELECT or `FETCH 1:*
(FLAGS)` of a large mailbox reads only the rows that changed since, not them all.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any

from ..api import FlagTable, MailboxNotFound

MAX_MESSAGES = 500_000
"""Messages kept in all tables together; the least recently used table goes first."""


def build(modseq: int, uidvalidity: int, rows: dict[int, str], texts: list[str]) -> FlagTable:
    """A table of *rows* (UID -> flag text), with *texts* as the start of its texts."""
    texts = list(texts)
    index = {t: i for i, t in enumerate(texts)}
    uids = sorted(rows)
    ids = []
    for uid in uids:
        text = rows[uid]
        fid = index.get(text)
        if fid is None:
            fid = index[text] = len(texts)
            texts.append(text)
        ids.append(fid)
    return FlagTable(modseq, uidvalidity, uids, ids, texts, dict(Counter(ids)))


_SQL = (
    "SELECT mb.highestmodseq, mb.uidvalidity, ch.uids, ch.flags,"
    " CASE WHEN $2 >= 0 AND mb.highestmodseq > $2 THEN"
    "  ARRAY(SELECT e.uid FROM expunged e WHERE e.mailbox_id = mb.id AND e.modseq > $2) END"
    " FROM mailboxes mb LEFT JOIN LATERAL (SELECT array_agg(m.uid) AS uids, array_agg(m.flags) AS flags"
    "  FROM messages m WHERE m.mailbox_id = mb.id AND m.modseq > $2) ch ON mb.highestmodseq > $2"
    " WHERE mb.id = $1"
)
"""A mailbox's MODSEQ, UIDVALIDITY, the (UID, flags) of its messages changed since $2
(all of them for -1) and the UIDs expunged since."""


class FlagTables:
    def __init__(self) -> None:
        self._tables: OrderedDict[int, FlagTable] = OrderedDict()
        self._held = 0

    async def get(self, conn: Any, mailbox_id: int) -> FlagTable:
        """The mailbox's table now, read in one statement (so the MODSEQ and the rows
        agree without a transaction): only what changed since the cached table, when
        there is one."""
        cached = self._tables.get(mailbox_id)
        since = cached.modseq if cached is not None else -1
        row = await conn.fetchrow(_SQL, mailbox_id, since)
        if row is None:
            self._drop(mailbox_id)
            raise MailboxNotFound("mailbox no longer exists")
        hms, uidvalidity, uids, flags, gone = int(row[0]), int(row[1]), row[2] or (), row[3] or (), row[4] or ()
        if cached is not None and cached.uidvalidity != uidvalidity:
            self._drop(mailbox_id)  # not this mailbox's table (ids are not reused, but be sure)
            return await self.get(conn, mailbox_id)
        if cached is not None and cached.modseq == hms:
            self._tables.move_to_end(mailbox_id)
            return cached
        if cached is not None:
            rows = {uid: cached.texts[fid] for uid, fid in zip(cached.uids, cached.flag_ids, strict=True)}
            for uid in gone:
                rows.pop(uid, None)
            rows.update(zip(uids, flags, strict=True))
            table = build(hms, uidvalidity, rows, list(cached.texts))
        else:
            table = build(hms, uidvalidity, dict(zip(uids, flags, strict=True)), [])
        self._put(mailbox_id, table)
        return table

    def _put(self, mailbox_id: int, table: FlagTable) -> None:
        self._drop(mailbox_id)
        self._tables[mailbox_id] = table
        self._held += len(table.uids)
        while self._held > MAX_MESSAGES and len(self._tables) > 1:
            self._drop(next(iter(self._tables)))

    def _drop(self, mailbox_id: int) -> None:
        old = self._tables.pop(mailbox_id, None)
        if old is not None:
            self._held -= len(old.uids)
