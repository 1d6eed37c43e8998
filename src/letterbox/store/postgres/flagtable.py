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


class FlagTables:
    def __init__(self) -> None:
        self._tables: OrderedDict[int, FlagTable] = OrderedDict()
        self._held = 0

    async def get(self, conn: Any, mailbox_id: int) -> FlagTable:
        """The mailbox's table now; *conn* is in a REPEATABLE READ transaction, so the
        MODSEQ and the rows agree."""
        row = await conn.fetchrow("SELECT highestmodseq, uidvalidity FROM mailboxes WHERE id = $1", mailbox_id)
        if row is None:
            self._drop(mailbox_id)
            raise MailboxNotFound("mailbox no longer exists")
        hms, uidvalidity = int(row[0]), int(row[1])
        cached = self._tables.get(mailbox_id)
        if cached is not None and cached.uidvalidity == uidvalidity and cached.modseq == hms:
            self._tables.move_to_end(mailbox_id)
            return cached
        if cached is not None and cached.uidvalidity == uidvalidity and cached.modseq < hms:
            rows = {uid: cached.texts[fid] for uid, fid in zip(cached.uids, cached.flag_ids, strict=True)}
            for r in await conn.fetch(
                "SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2", mailbox_id, cached.modseq
            ):
                rows.pop(r[0], None)
            for r in await conn.fetch(
                "SELECT uid, flags FROM messages WHERE mailbox_id = $1 AND modseq > $2", mailbox_id, cached.modseq
            ):
                rows[r[0]] = r[1]
            table = build(hms, uidvalidity, rows, list(cached.texts))
        else:
            found = await conn.fetch("SELECT uid, flags FROM messages WHERE mailbox_id = $1", mailbox_id)
            table = build(hms, uidvalidity, {r[0]: r[1] for r in found}, [])
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
