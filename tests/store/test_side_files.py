"""What lives only in the index (RFC 5464 metadata, readers' \\Seen on shared mailboxes)
survives a rebuild from the folders: its side files (store/maildir/sidefiles.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from letterbox.store.maildir import MaildirStore, sidefiles
from letterbox.store.maildir.accountdir import AccountDir

OWNER, ANN, BOB = "info@example.com", "ann@example.com", "bob@example.com"
MSG = b"From: a@example.com\r\nSubject: hello\r\n\r\nbody\r\n"
BINARY = b"a\x00\xff\r\nb"


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "mail"


def test_a_rebuilt_index_keeps_metadata(root: Path) -> None:
    async def go() -> None:
        store = MaildirStore(root, exclusive=True)
        acc = await store.account(OWNER)
        await acc.create_mailbox("Team")
        await acc.set_acl("Team", ANN, "lrs")
        await acc.set_metadata("Team", [("/shared/comment", b"ours"), ("/private/x", BINARY)])
        await acc.set_metadata("Team", [("/private/gone", b"soon")])
        await acc.set_metadata("Team", [("/private/gone", None)])
        await acc.set_metadata(None, [("/shared/admin", b"mailto:root@example.com")])
        await acc.set_metadata("INBOX", [("/private/comment", b"inbox note")])
        await acc.reader(ANN).set_metadata("Team", [("/private/comment", b"ann's own")])
        await asyncio.to_thread(store.rebuild, OWNER)
        acc = await store.account(OWNER)
        assert await acc.get_metadata("Team", ["/shared", "/private"], depth=-1) == [
            ("/private/x", BINARY), ("/shared/comment", b"ours"),
        ]
        assert await acc.get_metadata(None, ["/shared/admin"]) == [("/shared/admin", b"mailto:root@example.com")]
        assert await acc.get_metadata("INBOX", ["/private/comment"]) == [("/private/comment", b"inbox note")]
        assert await acc.reader(ANN).get_metadata("Team", ["/private/comment"]) == [
            ("/private/comment", b"ann's own"),
        ]
        await store.close()

    run(go())


def test_renamed_inbox_takes_a_copy_of_its_entries_into_a_rebuild(root: Path) -> None:
    async def go() -> None:
        store = MaildirStore(root, exclusive=True)
        acc = await store.account(OWNER)
        await acc.set_metadata("INBOX", [("/shared/comment", b"inbox")])
        await acc.rename_mailbox("INBOX", "Old")
        await acc.set_metadata("INBOX", [("/shared/comment", None)])
        await asyncio.to_thread(store.rebuild, OWNER)
        acc = await store.account(OWNER)
        assert await acc.get_metadata("Old", ["/shared/comment"]) == [("/shared/comment", b"inbox")]
        assert await acc.get_metadata("INBOX", ["/shared/comment"]) == []
        await store.close()

    run(go())


def test_a_deleted_mailbox_does_not_bring_its_entries_back(root: Path) -> None:
    async def go() -> None:
        store = MaildirStore(root, exclusive=True)
        acc = await store.account(OWNER)
        await acc.create_mailbox("Tmp")
        await acc.set_metadata("Tmp", [("/shared/comment", b"old")])
        await acc.delete_mailbox("Tmp")
        await acc.create_mailbox("Tmp")
        await asyncio.to_thread(store.rebuild, OWNER)
        acc = await store.account(OWNER)
        assert await acc.get_metadata("Tmp", ["/shared/comment"]) == []
        await store.close()

    run(go())


def test_start_up_brings_a_file_left_behind_in_line(root: Path) -> None:
    """A crash between the commit and the file: the index holds the change, and the
    next open writes the file from it, so a later rebuild has it too."""

    async def go() -> None:
        store = MaildirStore(root, exclusive=True)
        acc = await store.account(OWNER)
        await acc.set_metadata("INBOX", [("/shared/comment", b"kept")])
        await store.close()
        adir = AccountDir(store.account_dir(OWNER))
        adir.unlink(sidefiles.METADATA_FILE)
        adir.close()
        store = MaildirStore(root, exclusive=True)
        await asyncio.to_thread(store.reconcile_all)
        await asyncio.to_thread(store.rebuild, OWNER)
        acc = await store.account(OWNER)
        assert await acc.get_metadata("INBOX", ["/shared/comment"]) == [("/shared/comment", b"kept")]
        await store.close()

    run(go())


def test_readers_seen_marks_survive_a_rebuild(root: Path) -> None:
    async def go() -> None:
        store = MaildirStore(root, exclusive=True)
        acc = await store.account(OWNER)
        for _ in range(5):
            await acc.append("INBOX", MSG)
        await acc.set_acl("INBOX", ANN, "lrs")
        await acc.set_acl("INBOX", BOB, "lrs")
        mid = (await acc.get_mailbox("INBOX")).id
        await acc.reader(ANN).store_flags(mid, [1, 2, 3, 5], "add", ["\\Seen"])
        await acc.reader(BOB).store_flags(mid, [4], "add", ["\\Seen"])
        await acc.expunge(mid, [2])
        await store.sync_names()  # at rest, as the owner's flags in the file names
        await asyncio.to_thread(store.rebuild, OWNER)
        acc = await store.account(OWNER)
        mid = (await acc.get_mailbox("INBOX")).id
        assert await acc.reader(ANN).uids_with_flag(mid, "\\Seen") == [1, 3, 5]
        assert await acc.reader(BOB).uids_with_flag(mid, "\\Seen") == [4]
        assert await acc.uids_with_flag(mid, "\\Seen") == []
        await store.close()

    run(go())


def test_a_deleted_reader_leaves_nothing_for_a_rebuild(root: Path) -> None:
    async def go() -> None:
        store = MaildirStore(root, exclusive=True)
        acc = await store.account(OWNER)
        await acc.append("INBOX", MSG)
        await acc.set_acl("INBOX", ANN, "lrs")
        mid = (await acc.get_mailbox("INBOX")).id
        await acc.reader(ANN).store_flags(mid, [1], "add", ["\\Seen"])
        await acc.reader(ANN).set_metadata("INBOX", [("/private/comment", b"ann")])
        await store.sync_names()
        await store.account(ANN)
        await store.delete_account(ANN)
        await asyncio.to_thread(store.rebuild, OWNER)
        acc = await store.account(OWNER)
        mid = (await acc.get_mailbox("INBOX")).id
        assert await acc.reader(ANN).uids_with_flag(mid, "\\Seen") == []
        assert await acc.reader(ANN).get_metadata("INBOX", ["/private/comment"]) == []
        await store.close()

    run(go())


def test_an_unreadable_side_file_only_makes_a_rebuild_know_less(root: Path) -> None:
    async def go() -> None:
        store = MaildirStore(root, exclusive=True)
        acc = await store.account(OWNER)
        await acc.append("INBOX", MSG)
        await acc.set_metadata("INBOX", [("/shared/comment", b"x")])
        await store.close()
        adir = AccountDir(store.account_dir(OWNER))
        adir.replace(sidefiles.METADATA_FILE, b"{not json")
        adir.replace(sidefiles.SEEN_FILE, b'{"v":1,"seen":{"a@b":"5:1"}}')
        adir.close()
        store = MaildirStore(root, exclusive=True)
        await asyncio.to_thread(store.rebuild, OWNER)
        acc = await store.account(OWNER)
        assert await acc.get_metadata("INBOX", ["/shared/comment"]) == []
        assert len((await acc.snapshot("INBOX"))[1]) == 1
        await store.close()

    run(go())


@given(st.dictionaries(
    st.emails(), st.lists(st.integers(min_value=1, max_value=5000), unique=True).map(sorted), max_size=4,
))
def test_seen_file_round_trips(seen: dict[str, list[int]]) -> None:
    assert sidefiles.decode_seen(sidefiles.encode_seen(seen)) == seen


@given(st.lists(st.tuples(
    st.sampled_from([sidefiles.OWNER, ANN]), st.from_regex(r"/(shared|private)/[a-z ]{1,8}", fullmatch=True),
    st.binary(max_size=20),
), unique_by=lambda t: (t[0], t[1])).map(sorted))
def test_metadata_file_round_trips(entries: list[tuple[str, str, bytes]]) -> None:
    assert sidefiles.decode_entries(sidefiles.encode_entries(entries)) == entries
