"""A pytest plugin that runs other test suites on the PostgreSQL store:

    pytest -p tests.store.postgres.on_postgres tests/imap tests/pop3 tests/delivery

Every store `server.context.build_context` makes (the one protocol tests get) is a
PostgresStore on a schema of its own in the run's database instead of the embedded
store. Tests that make a MaildirStore themselves, or look at its files, still do.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import letterbox.store.maildir as maildir
from letterbox.store.feed import ChangeFeed
from letterbox.store.postgres import PostgresStore

from .harness import dsn, schema_for


@pytest.fixture(autouse=True)
def _store_on_postgres(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # In a thread: some suites run their tests inside an event loop of their own.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        url = pool.submit(asyncio.run, dsn()).result()

    def factory(root: Path, feed: ChangeFeed | None = None, **kwargs: Any) -> PostgresStore:
        return PostgresStore(url, schema=schema_for(root), feed=feed, limits=kwargs.get("limits"))

    monkeypatch.setattr(maildir, "MaildirStore", factory)
    yield
