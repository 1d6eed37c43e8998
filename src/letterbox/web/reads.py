"""The console's listing queries (the accounts table, the dashboard's totals), run in one
worker thread on a read-only connection of their own.

Over 10,000 accounts such a query takes 10 to 20 ms. On the event loop that would be
time taken from every IMAP, POP3 and LMTP session each time a page is loaded; SQLite
releases the GIL while it works, so in a thread it costs the mail sessions next to
nothing. One thread: the connection is used by one query at a time, and a burst of
page loads queues instead of taking more cores.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..auth.directory import Directory

T = TypeVar("T")


class Reads:
    def __init__(self, directory: Directory) -> None:
        self._directory = directory
        self._db: sqlite3.Connection | Directory | None = None
        """A read-only SQLite connection, or a shared directory (which answers listings itself)."""
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="console-reads")

    async def run(self, query: Callable[[sqlite3.Connection | Directory], T]) -> T:
        """*query* called with the reading connection, in the worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._call, query)

    def _call(self, query: Callable[[sqlite3.Connection | Directory], T]) -> T:
        if self._db is None:
            self._db = self._directory.reader()
        return query(self._db)
