"""RFC 8474 object ids in the store: MAILBOXID (from the folder file's UIDVALIDITY) and
EMAILID (a digest kept in the index) survive an index rebuild; an index of schema
version 4 upgrades, its messages' EMAILIDs computed from their files when asked."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

from letterbox.mime import email_id
from letterbox.store.maildir import MaildirStore
from letterbox.store.maildir.index import SCHEMA_VERSION, connect

USER = "ids@example.com"
MSGS = [b"Subject: one\r\n\r\nfirst\r\n", b"Subject: two\r\n\r\nsecond\r\n", b"Subject: three\r\n\r\nthird\r\n"]


class _Corrupt(sqlite3.DatabaseError):
    sqlite_errorcode = 11  # SQLITE_CORRUPT


async def ids(acc, mailbox: str) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    mbox = await acc.get_mailbox(mailbox)
    _, metas = await acc.snapshot(mailbox)
    return [(r.uid, r.emailid) for r in await acc.fetch(mbox.id, [m.uid for m in metas], ("emailid",))]


async def mailbox_ids(acc) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {m.name: m.mailboxid for m in await acc.list_mailboxes()}


def test_object_ids_survive_an_index_rebuild(tmp_path: Path) -> None:
    async def go() -> None:
        store = MaildirStore(tmp_path, exclusive=True)
        acc = await store.account(USER, "inc")
        await acc.create_mailbox("Work")
        await acc.create_mailbox("Work/Old")
        for m in MSGS:
            await acc.append("INBOX", m)
        await acc.append("Work", MSGS[0])
        inbox = await acc.get_mailbox("INBOX")
        await acc.copy(inbox.id, [2], "Work/Old")
        await acc.move(inbox.id, [3], "Work")
        await acc.rename_mailbox("Work", "Play")
        mailboxes = await mailbox_ids(acc)
        assert len(set(mailboxes.values())) == len(mailboxes)
        assert all(len(v) == 9 and v[0] == "F" for v in mailboxes.values())
        before = {name: await ids(acc, name) for name in ("INBOX", "Play", "Play/Old")}
        assert before == {
            "INBOX": [(1, email_id(MSGS[0])), (2, email_id(MSGS[1]))],
            "Play": [(1, email_id(MSGS[0])), (2, email_id(MSGS[2]))],
            "Play/Old": [(1, email_id(MSGS[1]))],
        }

        acc.translate(_Corrupt("database disk image is malformed"))  # found damaged
        assert USER in store.unavailable and acc.closed
        assert await asyncio.to_thread(store.rebuild_unavailable) == 1
        again = await store.account(USER, "inc")
        assert await mailbox_ids(again) == mailboxes
        assert {name: await ids(again, name) for name in before} == before
        # Parsed again from the files: the rebuilt index has every EMAILID, no slow path.
        assert again.db.execute("SELECT count(*) FROM parsed WHERE emailid IS NULL").fetchone()[0] == 0
        await store.close()

    asyncio.run(go())


def test_a_folder_copied_whole_gets_a_mailboxid_of_its_own(tmp_path: Path) -> None:
    """A folder copied with its folder file (its UIDVALIDITY) into the account is found
    at start-up: it must not show the MAILBOXID of the folder it was copied from."""
    store = MaildirStore(tmp_path, exclusive=True)
    acc = store.account_sync(USER)
    asyncio.run(acc.create_mailbox("Work"))
    asyncio.run(acc.append("Work", MSGS[0]))
    work = asyncio.run(acc.get_mailbox("Work"))
    asyncio.run(store.close())
    root = tmp_path / "example.com" / "ids"
    shutil.copytree(root / ".Work", root / ".Copy")

    store = MaildirStore(tmp_path, exclusive=True)
    store.reconcile_all()
    acc = store.account_sync(USER)
    found = asyncio.run(mailbox_ids(acc))
    assert found["Work"] == work.mailboxid
    assert found["Copy"] != work.mailboxid and len(set(found.values())) == len(found)
    assert asyncio.run(ids(acc, "Copy")) == [(1, email_id(MSGS[0]))]
    asyncio.run(store.close())


def test_a_version_4_index_upgrades(tmp_path: Path) -> None:
    async def fill() -> None:
        store = MaildirStore(tmp_path)
        acc = store.account_sync(USER)
        for m in MSGS:
            await acc.append("INBOX", m)
        await store.close()

    asyncio.run(fill())
    path = tmp_path / "example.com" / "ids" / "letterbox.index"
    # As version 4 left it: no emailid column.
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("ALTER TABLE parsed DROP COLUMN emailid")
    db.execute("UPDATE meta SET value = 4 WHERE key = 'schema'")
    db.close()
    connect(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    assert db.execute("SELECT emailid FROM parsed").fetchall() == [(None,)] * 3
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == SCHEMA_VERSION
    db.close()

    async def check() -> None:
        store = MaildirStore(tmp_path)
        acc = store.account_sync(USER)
        inbox = await acc.get_mailbox("INBOX")
        # A copy made before any EMAILID is asked for carries the NULL; both compute
        # the same from the same bytes.
        await acc.copy(inbox.id, [1], "Archive")
        archive = await acc.get_mailbox("Archive")
        assert acc.db.execute("SELECT count(*) FROM parsed WHERE emailid IS NULL").fetchone()[0] == 4
        # fetch_values (SORT, THREAD) takes the slow path as well.
        assert await acc.fetch_values(inbox.id, [2], ["emailid", "size"]) == [(2, email_id(MSGS[1]), len(MSGS[1]))]
        assert await ids(acc, "INBOX") == [(u, email_id(m)) for u, m in enumerate(MSGS, 1)]
        assert await ids(acc, "Archive") == [(1, email_id(MSGS[0]))]
        # Computed once, then kept.
        assert acc.db.execute("SELECT count(*) FROM parsed WHERE emailid IS NULL").fetchone()[0] == 0
        await acc.append("INBOX", MSGS[0])
        assert await ids(acc, "INBOX") == [(u, email_id(m)) for u, m in enumerate([*MSGS, MSGS[0]], 1)]
        # A message whose file went away (expunged meanwhile) is left out.
        acc.db.execute("UPDATE parsed SET emailid = NULL WHERE mailbox_id = ?", (archive.id,))
        name = acc.db.execute("SELECT filename FROM messages WHERE mailbox_id = ?", (archive.id,)).fetchone()[0]
        (tmp_path / "example.com" / "ids" / ".Archive" / "cur" / name).unlink()
        assert await acc.fetch(archive.id, [1], ("emailid", "size")) == []
        await store.close()

    asyncio.run(check())
