"""The accounts table of the console: one page of accounts, searched, filtered and sorted
inside SQLite (usage comes from the `usage` table the server keeps up to date), so a
page of 10,000 or 100,000 accounts costs one query, not a read of every mailbox. A
shared directory (auth.pgdirectory) runs the same query in PostgreSQL."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Literal

from .directory import Directory

Sort = Literal["address", "bytes", "messages", "percent", "created"]
SORTS: tuple[str, ...] = ("address", "bytes", "messages", "percent", "created")
MAX_PAGE = 500

# The larger of the byte and message shares of the quota, of the usage the quota counts.
_PERCENT = (
    "(CASE WHEN a.quota_bytes > 0 AND a.quota_messages > 0 THEN max("
    "100.0 * coalesce(u.counted_bytes, 0) / a.quota_bytes, 100.0 * coalesce(u.counted_messages, 0) / a.quota_messages)"
    " WHEN a.quota_bytes > 0 THEN 100.0 * coalesce(u.counted_bytes, 0) / a.quota_bytes"
    " WHEN a.quota_messages > 0 THEN 100.0 * coalesce(u.counted_messages, 0) / a.quota_messages END)"
)
_ORDER = {
    "address": "a.address",
    "bytes": "coalesce(u.bytes, 0)",
    "messages": "coalesce(u.messages, 0)",
    "percent": f"coalesce({_PERCENT}, -1)",
    "created": "a.created",
}


@dataclass(frozen=True, slots=True)
class Row:
    address: str
    enabled: bool
    protocols: tuple[str, ...]
    quota_bytes: int
    quota_messages: int
    messages: int
    bytes: int
    percent: float | None
    """The larger share of the byte and message quotas used (as the quota counts: without
    Trash under the trash_counts policy); None without a quota."""
    measured: bool
    """False until the server has measured the account's mail once."""


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row]
    total: int
    """Accounts matching the search and filter, on all pages."""


def _db(source: Directory | sqlite3.Connection) -> sqlite3.Connection:
    """The directory's own connection, or one given (see Directory.reader)."""
    return source if isinstance(source, sqlite3.Connection) else source.db


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def account_page(
    directory: Directory | sqlite3.Connection,
    search: str = "",
    sort: str = "address",
    descending: bool = False,
    over_percent: float | None = None,
    offset: int = 0,
    limit: int = 50,
) -> Page:
    if sort not in _ORDER:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    if isinstance(directory, Directory) and directory.shared:  # the same query on PostgreSQL
        page: Page = directory.account_page(search, sort, descending, over_percent, offset, limit)  # type: ignore[attr-defined]
        return page
    where = ["NOT a.deleting"]
    args: list[object] = []
    if search:
        where.append("a.address LIKE ? ESCAPE '\\'")
        args.append(_like(search.strip().lower()))
    if over_percent is not None:
        where.append(f"{_PERCENT} >= ?")
        args.append(float(over_percent))
    cond = " AND ".join(where)
    base = f"FROM accounts a LEFT JOIN usage u ON u.address = a.address WHERE {cond}"
    db = _db(directory)
    total = int(db.execute(f"SELECT count(*) {base}", args).fetchone()[0])
    order = f"{_ORDER[sort]} {'DESC' if descending else 'ASC'}, a.address"
    rows = db.execute(
        "SELECT a.address, a.enabled, a.protocols, a.quota_bytes, a.quota_messages,"
        f" coalesce(u.messages, 0), coalesce(u.bytes, 0), {_PERCENT}, u.address IS NOT NULL"
        f" {base} ORDER BY {order} LIMIT ? OFFSET ?",
        [*args, max(1, min(limit, MAX_PAGE)), max(0, offset)],
    ).fetchall()
    return Page(
        [
            Row(r[0], bool(r[1]), tuple(p for p in ("imap", "pop3") if p in r[2].split()), r[3], r[4],
                r[5], r[6], None if r[7] is None else round(r[7], 1), bool(r[8]))
            for r in rows
        ],
        total,
    )


def totals(directory: Directory | sqlite3.Connection) -> tuple[int, int, int]:
    """(accounts, messages, bytes) over every account."""
    if isinstance(directory, Directory) and directory.shared:
        found: tuple[int, int, int] = directory.totals()  # type: ignore[attr-defined]
        return found
    n, m, b = _db(directory).execute(
        "SELECT count(*), coalesce(sum(u.messages), 0), coalesce(sum(u.bytes), 0)"
        " FROM accounts a LEFT JOIN usage u ON u.address = a.address WHERE NOT a.deleting"
    ).fetchone()
    return int(n), int(m), int(b)
