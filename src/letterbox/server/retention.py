"""Trash and Junk auto-expunge ([policy] trash_days and junk_days).

What counts is how long a message has been in the folder, not its INTERNALDATE (a MOVE
keeps that): a year-old message thrown away today stays recoverable for the whole
period, as Dovecot's autoexpunge does with its saved dates. The index keeps no such date,
so the server notes when it first saw each message there, in `retention.sqlite` beside
the directory, keyed by the folder's MAILBOXID and the UID (which never change for one
message). Runs go through the store's expunge, so open IMAP sessions hear of them.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from ..service.context import Context
from ..store.api import MailboxNotFound, StoreError

log = logging.getLogger("letterbox.retention")

SCHEMA = """
CREATE TABLE IF NOT EXISTS first_seen (
    address   TEXT NOT NULL,
    mailboxid TEXT NOT NULL,
    uid       INTEGER NOT NULL,
    at        REAL NOT NULL,
    PRIMARY KEY (address, mailboxid, uid)
) WITHOUT ROWID;
"""


class Retention:
    def __init__(self, ctx: Context, path: Path) -> None:
        self.ctx = ctx
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def _days(self) -> dict[str, int]:
        policy = self.ctx.policy
        return {use: days for use, days in (("\\Trash", policy.trash_days), ("\\Junk", policy.junk_days)) if days}

    async def run(self, now: float | None = None) -> int:
        """One pass over every account; returns how many messages were expunged."""
        days = self._days()
        if not days:
            return 0
        now = time.time() if now is None else now
        total = 0
        for account in self.ctx.directory.list():
            try:
                total += await self.run_account(account.address, account.incarnation, days, now)
            except StoreError as e:
                log.warning("auto-expunge: skipped %s: %s", account.address, e)
        return total

    async def run_account(self, address: str, incarnation: str, days: dict[str, int], now: float) -> int:
        store = await self.ctx.store.account(address, incarnation)
        expunged = 0
        for mailbox in await store.list_mailboxes():
            keep = days.get(mailbox.special_use or "")
            if keep is None:
                continue
            try:
                _mbox, uids, _unseen = await store.select_info(mailbox.name)
            except MailboxNotFound:
                continue
            due = self._note(address, mailbox.mailboxid, list(uids), now, now - keep * 86400)
            if due:
                gone = await store.expunge(mailbox.id, due)
                expunged += len(gone)
                log.info("auto-expunge: %d messages of %s left %s after %d days", len(gone), address,
                         mailbox.name, keep)
        return expunged

    def _note(self, address: str, mailboxid: str, uids: list[int], now: float, cutoff: float) -> list[int]:
        """Record messages seen for the first time; forget ones gone; return those in the
        folder since before *cutoff*."""
        db = self.db
        seen = dict(db.execute(
            "SELECT uid, at FROM first_seen WHERE address = ? AND mailboxid = ?", (address, mailboxid)
        ).fetchall())
        present = set(uids)
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO first_seen (address, mailboxid, uid, at) VALUES (?, ?, ?, ?)",
                [(address, mailboxid, uid, now) for uid in uids if uid not in seen],
            )
            db.executemany(
                "DELETE FROM first_seen WHERE address = ? AND mailboxid = ? AND uid = ?",
                [(address, mailboxid, uid) for uid in seen if uid not in present],
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return sorted(uid for uid, at in seen.items() if uid in present and at <= cutoff)
