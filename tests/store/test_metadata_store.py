"""RFC 5464 metadata in the Maildir store's index: lookups by depth, limits, atomic
changes, and entries that follow their mailbox through RENAME and go with it at DELETE."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from letterbox.store.api import Limits, MailboxNotFound, MetadataTooBig, MetadataTooMany
from letterbox.store.maildir import MaildirStore

USER = "meta@example.com"


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "mail"


def test_set_get_and_remove(root: Path) -> None:
    async def go() -> None:
        store = MaildirStore(root)
        acc = await store.account(USER)
        await acc.set_metadata("INBOX", [("/private/comment", b"mine"), ("/shared/comment", b"ours")])
        await acc.set_metadata(None, [("/shared/comment", b"server-wide")])
        assert await acc.get_metadata("INBOX", ["/shared/comment", "/private/comment"]) == [
            ("/private/comment", b"mine"), ("/shared/comment", b"ours"),
        ]
        assert await acc.get_metadata("inbox", ["/shared/comment"]) == [("/shared/comment", b"ours")]
        assert await acc.get_metadata(None, ["/shared/comment"]) == [("/shared/comment", b"server-wide")]
        assert await acc.get_metadata("Sent", ["/shared/comment"]) == []
        # Values are octets: empty, binary and multi-line values come back as they went.
        await acc.set_metadata("INBOX", [("/private/x", b""), ("/private/y", b"a\x00\xff\r\nb")])
        assert await acc.get_metadata("INBOX", ["/private/x", "/private/y"]) == [
            ("/private/x", b""), ("/private/y", b"a\x00\xff\r\nb"),
        ]
        await acc.set_metadata("INBOX", [("/private/comment", None), ("/private/nothing", None)])
        assert await acc.get_metadata("INBOX", ["/private/comment"]) == []
        with pytest.raises(MailboxNotFound):
            await acc.get_metadata("Nope", ["/shared/comment"])
        with pytest.raises(MailboxNotFound):
            await acc.set_metadata("Nope", [("/shared/comment", b"x")])
        await store.close()

    run(go())


def test_depth(root: Path) -> None:
    async def go() -> None:
        store = MaildirStore(root)
        acc = await store.account(USER)
        await acc.set_metadata("INBOX", [
            ("/private/filters/values", b"top"),
            ("/private/filters/values/small", b"SMALLER 5000"),
            ("/private/filters/values/boss", b'FROM "boss@example.com"'),
            ("/private/filters/values/boss/deep", b"grandchild"),
            ("/private/filters/values0", b"a sibling sorting just after the children"),
            ("/private/filters/valuesx", b"another sibling"),
        ])
        entry = ["/private/filters/values"]
        assert await acc.get_metadata("INBOX", entry, 0) == [("/private/filters/values", b"top")]
        assert await acc.get_metadata("INBOX", entry, 1) == [
            ("/private/filters/values", b"top"),
            ("/private/filters/values/boss", b'FROM "boss@example.com"'),
            ("/private/filters/values/small", b"SMALLER 5000"),
        ]
        assert [e for e, _ in await acc.get_metadata("INBOX", entry, -1)] == [
            "/private/filters/values", "/private/filters/values/boss",
            "/private/filters/values/boss/deep", "/private/filters/values/small",
        ]
        # Overlapping requests name each entry once.
        both = await acc.get_metadata("INBOX", ["/private", "/private/filters/values"], -1)
        assert len(both) == len({e for e, _ in both}) == 6
        await store.close()

    run(go())


def test_limits_and_atomicity(root: Path) -> None:
    async def go() -> None:
        limits = Limits(metadata_value=1024, metadata_entries=10, metadata_bytes=4000)
        store = MaildirStore(root, limits=limits)
        acc = await store.account(USER)
        with pytest.raises(MetadataTooBig) as big:
            await acc.set_metadata("INBOX", [("/shared/a", b"ok"), ("/shared/b", b"x" * 1025)])
        assert big.value.limit == 1024
        assert await acc.get_metadata("INBOX", ["/shared"], -1) == [], "half a failed change was kept"
        await acc.set_metadata("INBOX", [(f"/shared/e{i}", b"v") for i in range(10)])
        with pytest.raises(MetadataTooMany):
            await acc.set_metadata("INBOX", [("/shared/one-more", b"v")])
        # Replacing, or removing one to add another in the same command, fits.
        await acc.set_metadata("INBOX", [("/shared/e0", b"new value")])
        await acc.set_metadata("INBOX", [("/shared/e1", None), ("/shared/one-more", b"v")])
        # Another mailbox and the server have room of their own.
        await acc.set_metadata("Sent", [(f"/shared/e{i}", b"v") for i in range(10)])
        await acc.set_metadata(None, [(f"/private/e{i}", b"v") for i in range(10)])
        # The account's bytes: names and values of all its entries.
        with pytest.raises(MetadataTooMany):
            await acc.set_metadata("Drafts", [(f"/shared/e{i}", b"y" * 1000) for i in range(4)])
        assert await acc.get_metadata("Drafts", ["/shared"], -1) == []
        await acc.set_metadata("Drafts", [("/shared/e0", b"y" * 1000)])
        await store.close()

    run(go())


def test_entries_follow_rename_and_go_with_delete(root: Path) -> None:
    async def go() -> None:
        store = MaildirStore(root)
        acc = await store.account(USER)
        await acc.create_mailbox("Work/Old")
        await acc.set_metadata("Work", [("/shared/comment", b"parent")])
        await acc.set_metadata("Work/Old", [("/shared/comment", b"child")])
        await acc.rename_mailbox("Work", "Job")
        assert await acc.get_metadata("Job", ["/shared/comment"]) == [("/shared/comment", b"parent")]
        assert await acc.get_metadata("Job/Old", ["/shared/comment"]) == [("/shared/comment", b"child")]
        await acc.create_mailbox("Work")
        assert await acc.get_metadata("Work", ["/shared/comment"]) == []
        await acc.delete_mailbox("Job/Old")
        await acc.create_mailbox("Job/Old")
        assert await acc.get_metadata("Job/Old", ["/shared/comment"]) == [], "a new mailbox inherited metadata"
        # RENAME INBOX: INBOX keeps its entries, the new mailbox gets a copy (4.1).
        await acc.set_metadata("INBOX", [("/private/comment", b"inbox")])
        await acc.rename_mailbox("INBOX", "Saved")
        assert await acc.get_metadata("INBOX", ["/private/comment"]) == [("/private/comment", b"inbox")]
        assert await acc.get_metadata("Saved", ["/private/comment"]) == [("/private/comment", b"inbox")]
        await store.close()
        # Nothing is left behind for a mailbox that is gone.
        db = sqlite3.connect(root / "example.com" / "meta" / "letterbox.index")
        orphans = db.execute(
            "SELECT count(*) FROM metadata WHERE mailbox_id != 0 AND mailbox_id NOT IN (SELECT id FROM mailboxes)"
        ).fetchone()[0]
        db.close()
        assert orphans == 0

    run(go())


def test_an_index_from_before_metadata_gets_the_table(root: Path) -> None:
    async def go() -> None:
        store = MaildirStore(root)
        await store.account(USER)
        await store.close()
        index = root / "example.com" / "meta" / "letterbox.index"
        db = sqlite3.connect(index)
        db.execute("DROP TRIGGER mailbox_metadata_removed")
        db.execute("DROP TABLE metadata")
        db.commit()
        db.close()
        store = MaildirStore(root)
        acc = await store.account(USER)
        await acc.create_mailbox("Temp")
        await acc.set_metadata("Temp", [("/shared/comment", b"x")])
        await acc.delete_mailbox("Temp")
        await acc.create_mailbox("Temp")
        assert await acc.get_metadata("Temp", ["/shared/comment"]) == []
        await store.close()

    run(go())


def test_readers_of_a_shared_mailbox_keep_their_own_private_entries(root: Path) -> None:
    """RFC 5464 3.2: /private is per user. A reader (another user of a shared mailbox)
    sees the mailbox's /shared entries and its own /private ones, with limits of its own,
    which go with the mailbox and with the reader's account."""

    async def go() -> None:
        limits = Limits(metadata_value=1024, metadata_entries=10, metadata_bytes=4000)
        store = MaildirStore(root, limits=limits)
        owner = await store.account(USER)
        ann = owner.reader("ann@example.com")
        bob = owner.reader("bob@example.com")
        await owner.create_mailbox("Team")
        await owner.set_metadata("Team", [("/private/comment", b"owner"), ("/shared/comment", b"team")])
        await ann.set_metadata("Team", [("/private/comment", b"ann"), ("/private/a/b", b"deep")])
        assert await ann.get_metadata("Team", ["/private", "/shared"], -1) == [
            ("/private/a/b", b"deep"), ("/private/comment", b"ann"), ("/shared/comment", b"team"),
        ]
        assert await bob.get_metadata("Team", ["/private/comment", "/shared/comment"]) == [
            ("/shared/comment", b"team"),
        ]
        assert await owner.get_metadata("Team", ["/private/comment"]) == [("/private/comment", b"owner")]
        await bob.set_metadata("Team", [("/shared/comment", b"bob's")])
        assert await owner.get_metadata("Team", ["/shared/comment"]) == [("/shared/comment", b"bob's")]
        # A reader's entries count against the reader's limits, not the owner's.
        await owner.set_metadata("Team", [(f"/shared/e{i}", b"v") for i in range(8)])  # 10 in all
        await ann.set_metadata("Team", [(f"/private/e{i}", b"v") for i in range(8)])
        with pytest.raises(MetadataTooMany):
            await ann.set_metadata("Team", [("/private/one-more", b"v")])
        with pytest.raises(MetadataTooMany):
            await ann.set_metadata("INBOX", [(f"/private/e{i}", b"y" * 1000) for i in range(4)])
        await owner.set_metadata("INBOX", [(f"/private/e{i}", b"y" * 900) for i in range(4)])
        # The server's entries are the owner's, never a reader's.
        assert await ann.get_metadata(None, ["/shared/comment"]) == []
        # RENAME keeps them; DELETE takes everyone's; a deleted reader's go too.
        await owner.rename_mailbox("Team", "Crew")
        assert await ann.get_metadata("Crew", ["/private/comment"]) == [("/private/comment", b"ann")]
        await owner.create_mailbox("Other")
        await bob.set_metadata("Other", [("/private/comment", b"bob")])
        await owner.forget_identifier("bob@example.com")
        assert await bob.get_metadata("Other", ["/private/comment"]) == []
        await owner.delete_mailbox("Crew")
        await owner.create_mailbox("Crew")
        assert await ann.get_metadata("Crew", ["/private", "/shared"], -1) == []
        await store.close()

    run(go())
