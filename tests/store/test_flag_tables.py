"""The in-memory flag tables stay equal to the index through every kind of change."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path

import pytest

from letterbox.store.api import FlagTable, MailboxNotFound
from letterbox.store.maildir import MaildirAccount, MaildirStore
from letterbox.store.maildir.flagtables import FlagTables

MSG = b"From: a@example.com\r\nSubject: hello\r\n\r\nbody\r\n"
USER = "alice@example.com"


def pairs(table: FlagTable) -> list[tuple[int, str]]:
    assert dict(table.counts) == dict(Counter(table.flag_ids))
    return [(u, table.texts[f]) for u, f in zip(table.uids, table.flag_ids, strict=True)]


def fresh(acc: MaildirAccount, mailbox_id: int) -> list[tuple[int, str]]:
    return pairs(FlagTables().get(acc.db, (acc.address, mailbox_id)))


@pytest.fixture(autouse=True)
def no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def test_table_follows_appends_flags_expunges_and_other_writers(tmp_path: Path) -> None:
    async def go() -> None:
        store = MaildirStore(tmp_path)
        acc = store.account_sync(USER)
        inbox = await acc.get_mailbox("INBOX")
        assert pairs(await acc.flag_table(inbox.id)) == []
        for i in range(300):
            await acc.append("INBOX", MSG, ["\\Seen"] if i % 3 else [])
        first = await acc.flag_table(inbox.id)
        assert len(first.uids) == 300 and pairs(first) == fresh(acc, inbox.id)

        await acc.store_flags(inbox.id, [5, 6, 7], "add", ["\\Flagged", "$Work"])
        await acc.store_flags(inbox.id, [1], "replace", [])
        await acc.expunge(inbox.id, [2, 200])
        await acc.append("INBOX", MSG, ["\\Draft"])
        archive = await acc.get_mailbox("Archive")
        await acc.move(inbox.id, [10, 11], "Archive")
        table = await acc.flag_table(inbox.id)
        assert pairs(table) == fresh(acc, inbox.id)
        assert (7, "$Work \\Flagged") in pairs(table) and table.uids[-1] == 301
        assert pairs(await acc.flag_table(archive.id)) == fresh(acc, archive.id)
        # Tables handed out earlier are never changed.
        assert len(first.uids) == 300 and first.uids[1] == 2

        # Many expunges at once, then a write from another process.
        await acc.expunge(inbox.id, list(range(100, 250)))
        other = MaildirStore(tmp_path).account_sync(USER)
        await other.append("INBOX", MSG, ["\\Answered"])
        await other.store_flags(inbox.id, [3], "add", ["\\Deleted"])
        table = await acc.flag_table(inbox.id)
        assert pairs(table) == fresh(acc, inbox.id)
        assert table.uids[-1] == 302 and len(table.uids) == 300 - 2 - 2 + 1 - 149 + 1  # 200 was gone already

        # A mailbox deleted and created again under its name starts from scratch.
        await acc.append("Junk", MSG)
        junk = await acc.get_mailbox("Junk")
        assert len((await acc.flag_table(junk.id)).uids) == 1
        await acc.delete_mailbox("Junk")
        with pytest.raises(MailboxNotFound):
            await acc.flag_table(junk.id)
        again = await acc.create_mailbox("Junk")
        assert pairs(await acc.flag_table(again.id)) == []
        await store.close()

    asyncio.run(go())


def test_budget_evicts_the_least_recently_used(tmp_path: Path) -> None:
    async def go() -> None:
        store = MaildirStore(tmp_path)
        store.flag_tables.max_messages = 5
        acc = store.account_sync(USER)
        for box in ("INBOX", "Archive"):
            for _ in range(4):
                await acc.append(box, MSG)
        inbox, archive = await acc.get_mailbox("INBOX"), await acc.get_mailbox("Archive")
        a = await acc.flag_table(inbox.id)
        assert await acc.flag_table(inbox.id) is a  # unchanged: the same table
        await acc.flag_table(archive.id)  # over budget: INBOX's table goes
        b = await acc.flag_table(inbox.id)
        assert b is not a and pairs(b) == pairs(a)
        await store.close()

    asyncio.run(go())


def test_select_info_first_unseen(tmp_path: Path) -> None:
    async def go() -> None:
        acc = MaildirStore(tmp_path).account_sync(USER)
        for flags in (["\\Seen"], ["\\Seen", "$x"], [], ["\\Seen"], ["$Seen"]):
            await acc.append("INBOX", MSG, flags)
        _, uids, first = await acc.select_info("INBOX")
        assert list(uids) == [1, 2, 3, 4, 5] and first == 3
        inbox = await acc.get_mailbox("INBOX")
        await acc.store_flags(inbox.id, [3], "add", ["\\Seen"])
        assert (await acc.select_info("INBOX"))[2] == 5
        await acc.store_flags(inbox.id, [5], "add", ["\\Seen"])
        assert (await acc.select_info("INBOX"))[2] is None

    asyncio.run(go())


def test_flag_texts_nobody_uses_are_dropped(tmp_path: Path) -> None:
    from letterbox.store.api import Limits

    async def go() -> None:
        acc = MaildirStore(tmp_path, limits=Limits(keywords=1000)).account_sync(USER)
        for _ in range(10):
            await acc.append("INBOX", MSG)
        inbox = await acc.get_mailbox("INBOX")
        await acc.flag_table(inbox.id)
        for i in range(300):  # one message goes through 300 keyword sets
            await acc.store_flags(inbox.id, [1], "replace", [f"$k{i}"])
            table = await acc.flag_table(inbox.id)
            assert len(table.texts) <= 4 * len(table.counts) + 65
        assert pairs(table)[0] == (1, "$k299") and len(table.counts) == 2
        st = await acc.status("INBOX")
        assert (st.messages, st.unseen) == (10, 10)

    asyncio.run(go())


def test_select_reads_the_mailbox_row_once(tmp_path: Path) -> None:
    """The table is checked against the HIGHESTMODSEQ and UIDVALIDITY the mailbox lookup
    just read, not with a query of its own."""

    async def go() -> None:
        store = MaildirStore(tmp_path)
        acc = store.account_sync(USER)
        for _ in range(3):
            await acc.append("INBOX", MSG)
        await acc.select_info("INBOX")  # the table is loaded
        await acc.append("INBOX", MSG)  # and brought up to date by the next SELECT
        statements: list[str] = []
        acc.db.set_trace_callback(statements.append)
        try:
            mbox, uids, first_unseen = await acc.select_info("INBOX")
        finally:
            acc.db.set_trace_callback(None)
        assert list(uids) == [1, 2, 3, 4] and first_unseen == 1 and mbox.uidnext == 5
        assert sum("FROM mailboxes" in s for s in statements) == 1, statements
        await store.close()

    asyncio.run(go())
