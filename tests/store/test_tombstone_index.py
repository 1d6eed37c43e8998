"""What was expunged since a MODSEQ is found through an index on (mailbox, MODSEQ): a
session's catch-up does not walk every tombstone the mailbox ever had."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from letterbox.store.maildir import MaildirStore
from letterbox.store.maildir.account import INDEX_FILE
from letterbox.store.maildir.index import connect

MSG = b"From: a@example.com\r\nSubject: hello\r\n\r\nbody\r\n"
USER = "alice@example.com"
SINCE = "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ?"


@pytest.fixture(autouse=True)
def no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def test_expunges_since_a_modseq_come_from_the_modseq_index(tmp_path: Path) -> None:
    async def go() -> None:
        store = MaildirStore(tmp_path)
        acc = store.account_sync(USER)
        inbox = await acc.get_mailbox("INBOX")
        for _ in range(6):
            await acc.append("INBOX", MSG)
        await acc.expunge(inbox.id, [1, 2])
        mark = (await acc.get_mailbox("INBOX")).highestmodseq
        await acc.expunge(inbox.id, [5, 3])
        changes = await acc.changes_since(inbox.id, mark)
        assert changes.expunged == [3, 5]  # in UID order, only those after the mark
        plan = " ".join(str(r) for r in acc.db.execute("EXPLAIN QUERY PLAN " + SINCE, (inbox.id, mark)))
        assert "expunged_modseq" in plan, plan
        await store.close()

    asyncio.run(go())


def test_an_index_made_before_has_it_added_when_opened(tmp_path: Path) -> None:
    path = tmp_path / INDEX_FILE
    db = connect(path)
    db.execute("DROP INDEX expunged_modseq")
    db.close()
    db = connect(path)
    try:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "expunged_modseq" in names
    finally:
        db.close()
