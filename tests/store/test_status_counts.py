"""STATUS counts kept by triggers agree with counting the rows, through every kind of
change, and an index from before the counts gets them on opening."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from letterbox.store.maildir import MaildirAccount, MaildirStore
from letterbox.store.maildir.index import SCHEMA_VERSION, connect

MSG = b"From: a@example.com\r\nSubject: hello\r\n\r\nbody\r\n"
USER = "alice@example.com"


@pytest.fixture(autouse=True)
def no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def recount(acc: MaildirAccount, name: str) -> tuple[int, int, int, int]:
    mid, recent_uid = acc.db.execute("SELECT id, recent_uid FROM mailboxes WHERE name = ?", (name,)).fetchone()
    rows = acc.db.execute("SELECT uid, flags FROM messages WHERE mailbox_id = ?", (mid,)).fetchall()
    unseen = sum("\\Seen" not in f.split() for _, f in rows)
    deleted = sum("\\Deleted" in f.split() for _, f in rows)
    return len(rows), unseen, deleted, sum(u >= recent_uid for u, _ in rows)


async def counts(acc: MaildirAccount, name: str) -> tuple[int, int, int, int]:
    st = await acc.status(name)
    return st.messages, st.unseen, st.deleted, st.recent


def test_counts_follow_every_change(tmp_path: Path) -> None:
    async def go() -> None:
        acc = MaildirStore(tmp_path).account_sync(USER)
        for flags in ([], ["\\Seen"], ["\\Deleted"], ["\\Seen", "\\Deleted"], ["$Seen"], ["\\Seen", "$x"]):
            await acc.append("INBOX", MSG, flags)
        inbox = await acc.get_mailbox("INBOX")
        assert await counts(acc, "INBOX") == recount(acc, "INBOX") == (6, 3, 2, 6)
        await acc.take_recent(inbox.id)
        await acc.append("INBOX", MSG)
        steps = [
            acc.store_flags(inbox.id, [1, 5], "add", ["\\Seen", "\\Deleted"]),
            acc.store_flags(inbox.id, [2, 3], "remove", ["\\Seen"]),
            acc.store_flags(inbox.id, [4, 6], "replace", ["$y"]),
            acc.store_flags(inbox.id, [4], "replace", ["$y"]),  # no change at all
            acc.expunge(inbox.id, [1, 3]),
            acc.copy(inbox.id, [2, 4, 7], "Archive"),
            acc.move(inbox.id, [5], "Archive"),
        ]
        for step in steps:
            await step
            for name in ("INBOX", "Archive"):
                assert await counts(acc, name) == recount(acc, name), name
        assert await counts(acc, "INBOX") == (4, 4, 0, 1)

    asyncio.run(go())


def test_an_index_from_before_the_counts_gets_them(tmp_path: Path) -> None:
    async def fill() -> None:
        acc = MaildirStore(tmp_path).account_sync(USER)
        for flags in ([], ["\\Seen"], ["\\Deleted"]):
            await acc.append("INBOX", MSG, flags)
        acc.close()

    asyncio.run(fill())
    path = tmp_path / "example.com" / "alice" / "letterbox.index"
    # Make it look as version 1 left it: no count columns, triggers without them.
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TRIGGER messages_added")
    db.execute("DROP TRIGGER messages_removed")
    db.execute("DROP TRIGGER messages_flagged")
    db.execute("ALTER TABLE mailboxes DROP COLUMN unseen")
    db.execute("ALTER TABLE mailboxes DROP COLUMN deleted")
    db.execute(
        "CREATE TRIGGER messages_added AFTER INSERT ON messages BEGIN"
        " UPDATE mailboxes SET messages = messages + 1, bytes = bytes + NEW.size WHERE id = NEW.mailbox_id; END"
    )
    db.execute(
        "CREATE TRIGGER messages_removed AFTER DELETE ON messages BEGIN"
        " UPDATE mailboxes SET messages = messages - 1, bytes = bytes - OLD.size WHERE id = OLD.mailbox_id; END"
    )
    db.execute("UPDATE meta SET value = 1 WHERE key = 'schema'")
    db.close()
    connect(path).close()  # a second opening finds nothing to do
    acc = MaildirStore(tmp_path).account_sync(USER)

    async def check() -> None:
        assert await counts(acc, "INBOX") == recount(acc, "INBOX") == (3, 2, 1, 3)
        inbox = await acc.get_mailbox("INBOX")
        await acc.store_flags(inbox.id, [1], "add", ["\\Seen"])
        await acc.append("INBOX", MSG)
        assert await counts(acc, "INBOX") == recount(acc, "INBOX") == (4, 2, 1, 4)

    asyncio.run(check())
    assert acc.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == SCHEMA_VERSION
