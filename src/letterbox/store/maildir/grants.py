"""The store's register of who may have granted whom rights: (grantee, owner) pairs in
`letterbox-grants.sqlite` beside the accounts' folders.

ACLs live in each owner's index; to list the mailboxes shared with a user, LIST would
otherwise have to open every account. The register names the accounts to look in: a pair
is added before an owner's ACL first names the grantee and removed after its last entry
naming it goes (see acls.py), so it may name an account that no longer grants anything
(looked at for nothing) but never misses one that does. Every process of the data
directory (the server, the CLI) writes it, under SQLite's locks.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from .. import acl
from ..api import StoreError, Unavailable

FILE = "letterbox-grants.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS grants (
    grantee TEXT NOT NULL,
    owner   TEXT NOT NULL,
    PRIMARY KEY (grantee, owner)
) WITHOUT ROWID
"""
_BUSY_MS = 5000


class Grants:
    def __init__(self, root: Path) -> None:
        self.path = root / FILE
        self._writer: sqlite3.Connection | None = None
        """Used in worker threads, one at a time: a write may wait for another process."""
        self._reader: sqlite3.Connection | None = None
        """Used on the event loop: reads of a WAL database never wait for writers."""
        self._lock = threading.Lock()

    def _open(self, busy_ms: int) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=busy_ms / 1000)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(_SCHEMA)
        return db

    def _write(self, sql: str, args: tuple[str, ...]) -> None:
        with self._lock:
            try:
                if self._writer is None:
                    self._writer = self._open(_BUSY_MS)
                self._writer.execute(sql, args)
            except sqlite3.Error as e:
                raise _failure(e) from e

    async def note(self, grantee: str, owner: str) -> None:
        """*owner*'s ACLs are about to name *grantee*."""
        await asyncio.to_thread(self._write, "INSERT OR IGNORE INTO grants (grantee, owner) VALUES (?, ?)",
                                (grantee, owner))

    async def forget(self, grantee: str, owner: str) -> None:
        """*owner*'s ACLs no longer name *grantee*."""
        await asyncio.to_thread(self._write, "DELETE FROM grants WHERE grantee = ? AND owner = ?", (grantee, owner))

    async def forget_owner(self, owner: str) -> None:
        await asyncio.to_thread(self._write, "DELETE FROM grants WHERE owner = ?", (owner,))

    def grantors(self, address: str, direct: bool = False) -> list[str]:
        """Accounts other than *address* that may have granted it (and, unless *direct*,
        "anyone") rights."""
        who = (address,) if direct else (address, acl.ANYONE)
        marks = ",".join("?" * len(who))
        try:
            if self._reader is None:
                if not self.path.exists():
                    return []
                self._reader = self._open(200)
            rows = self._reader.execute(
                f"SELECT DISTINCT owner FROM grants WHERE grantee IN ({marks}) AND owner != ? ORDER BY owner",
                (*who, address),
            ).fetchall()
        except sqlite3.Error as e:
            raise _failure(e) from e
        return [r[0] for r in rows]

    def close(self) -> None:
        with self._lock:
            for db in (self._writer, self._reader):
                if db is not None:
                    db.close()
            self._writer = self._reader = None


def _failure(e: sqlite3.Error) -> StoreError:
    if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
        return Unavailable("the register of shared mailboxes is busy; try again")
    return StoreError(f"the register of shared mailboxes cannot be used: {e}")
