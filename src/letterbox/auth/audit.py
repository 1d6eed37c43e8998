"""The audit log: every administrative change, by whom, when and from where.

Written by the console, its API and the CLI into the account directory, so that one
place answers "who disabled this account?". Rows are only ever added; the oldest go
beyond MAX_ROWS so that the log cannot fill the disk.
"""

from __future__ import annotations

import getpass
import sqlite3
import time
from dataclasses import dataclass

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     REAL NOT NULL,
    who    TEXT NOT NULL,
    client TEXT NOT NULL,
    what   TEXT NOT NULL
);
"""

MAX_ROWS = 100_000


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    at: float
    who: str
    client: str
    what: str


def cli_user() -> str:
    """Who runs the CLI: the operating-system user."""
    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        return "cli"


class AuditLog:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.executescript(SCHEMA)

    def write(self, who: str, client: str, what: str) -> None:
        cur = self.db.execute(
            "INSERT INTO audit (at, who, client, what) VALUES (?, ?, ?, ?)",
            (time.time(), who[:100], client[:100], what[:1000]),
        )
        if cur.lastrowid is not None and cur.lastrowid % 1000 == 0:
            self.db.execute("DELETE FROM audit WHERE id <= ?", (cur.lastrowid - MAX_ROWS,))

    def recent(self, limit: int = 100, offset: int = 0, about: str | None = None) -> list[Entry]:
        if about:
            rows = self.db.execute(
                "SELECT id, at, who, client, what FROM audit WHERE instr(what, ?) ORDER BY id DESC"
                " LIMIT ? OFFSET ?", (about, limit, offset),
            )
        else:
            rows = self.db.execute(
                "SELECT id, at, who, client, what FROM audit ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset)
            )
        return [Entry(*r) for r in rows]
