"""ACLs and per-user \\Seen in the embedded store: what the protocols build shared
mailboxes on (RFC 4314), kept across copies, moves, expunges, rebuilds and deletions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from letterbox.store import acl
from letterbox.store.api import LimitExceeded, Limits, MailboxNotFound, StoreError
from letterbox.store.maildir import MaildirStore

OWNER, ANN, BOB = "info@example.com", "ann@example.com", "bob@example.com"
MSG = b"From: a@example.com\r\nSubject: hello\r\n\r\nbody\r\n"


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "mail"


def test_rights_strings_rfc4314() -> None:
    # 2.1.1: "d" is e and t, "c" is k and x; both are shown beside what they stand for.
    assert acl.parse("lrswida") == "lrswitea"
    assert acl.shown(acl.parse("lrswida")) == "lrswitead"
    assert acl.shown(acl.parse("lrswikda")) == "lrswikteacd"
    assert acl.modify("lrswi", "+cda") == "lrswikxtea"
    assert acl.modify("lrswikxtea", "-wx") == "lrsiktea"
    assert acl.shown("") == ""
    with pytest.raises(acl.RightsError, match="Uppercase"):
        acl.parse("lrQswicda")
    with pytest.raises(acl.RightsError, match="The q right is not supported"):
        acl.parse("lrqswicda")
    assert acl.rights_of({ANN: "lr", acl.ANYONE: "s"}, ANN) == "lrs"
    assert acl.rights_of({ANN: "lr", acl.ANYONE: "s"}, BOB) == "s"


def test_set_get_granted_and_limits(root: Path) -> None:
    async def go() -> None:
        store = MaildirStore(root, limits=Limits(acl_entries=2))
        acc = await store.account(OWNER)
        await acc.set_acl("INBOX", ANN, "lrs")
        await acc.set_acl("Sent", acl.ANYONE, "l")
        assert await acc.get_acl("inbox") == {ANN: "lrs"}
        assert await acc.granted([ANN, acl.ANYONE]) == {"INBOX": "lrs", "Sent": "l"}
        assert await acc.granted([BOB, acl.ANYONE]) == {"Sent": "l"}
        assert await acc.granted([ANN], "INBOX") == {"INBOX": "lrs"}
        assert await store.grantors(ANN) == [OWNER] and await store.grantors(BOB) == [OWNER]
        await acc.set_acl("INBOX", BOB, "l")
        with pytest.raises(LimitExceeded):
            await acc.set_acl("INBOX", "carl@example.com", "l")
        await acc.set_acl("INBOX", ANN, "")  # taken away
        await acc.set_acl("INBOX", BOB, "")
        assert await acc.get_acl("INBOX") == {}
        assert await store.grantors(ANN) == [OWNER]  # anyone's entry on Sent is still there
        await acc.set_acl("Sent", acl.ANYONE, "")
        assert await store.grantors(ANN) == []
        with pytest.raises(MailboxNotFound):
            await acc.set_acl("Nowhere", ANN, "l")
        with pytest.raises(StoreError):
            await acc.set_acl("INBOX", OWNER, "l")  # the owner has every right always
        with pytest.raises(StoreError):
            await acc.set_acl("INBOX", "two words", "l")
        await store.close()

    run(go())


def test_readers_have_their_own_seen(root: Path) -> None:
    async def go() -> None:
        store = MaildirStore(root)
        acc = await store.account(OWNER)
        for _ in range(3):
            await acc.append("INBOX", MSG)
        inbox = await acc.get_mailbox("INBOX")
        ann, bob = acc.reader(ANN), acc.reader(BOB)
        assert acc.reader(OWNER) is acc and acc.reader(ANN) is ann
        changed = await ann.store_flags(inbox.id, [1, 2], "add", ["\\Seen", "\\Flagged"])
        assert [(m.uid, sorted(m.flags)) for m in changed] == [(1, ["\\Flagged", "\\Seen"]), (2, ["\\Flagged", "\\Seen"])]
        # Flagged is the mailbox's, \Seen Ann's alone.
        assert {r.uid: sorted(r.flags) for r in await acc.fetch(inbox.id, [1, 2, 3], ["flags"])} == {
            1: ["\\Flagged"], 2: ["\\Flagged"], 3: []}
        assert {r.uid: sorted(r.flags) for r in await bob.fetch(inbox.id, [1, 2, 3], ["flags"])} == {
            1: ["\\Flagged"], 2: ["\\Flagged"], 3: []}
        assert {r.uid: sorted(r.flags) for r in await ann.fetch(inbox.id, [1, 2, 3], ["flags"])} == {
            1: ["\\Flagged", "\\Seen"], 2: ["\\Flagged", "\\Seen"], 3: []}
        assert (await ann.status("INBOX")).unseen == 1
        assert (await bob.status("INBOX")).unseen == 3 and (await acc.status("INBOX")).unseen == 3
        assert (await ann.select_info("INBOX"))[2] == 3 and (await bob.select_info("INBOX"))[2] == 1
        assert await ann.uids_with_flag(inbox.id, "\\Seen") == [1, 2]
        assert await bob.uids_with_flag(inbox.id, "\\Flagged") == [1, 2]
        table = await ann.flag_table(inbox.id)
        assert [table.texts[f] for f in table.flag_ids] == ["\\Flagged \\Seen", "\\Flagged \\Seen", ""]
        table = await bob.flag_table(inbox.id)
        assert [table.texts[f] for f in table.flag_ids] == ["\\Flagged", "\\Flagged", ""]
        assert [(u, v) for u, v in await ann.fetch_values(inbox.id, [1, 3], ["flags"])] == [
            (1, "\\Flagged \\Seen"), (3, "")]
        # The owner's own \Seen is the owner's.
        await acc.store_flags(inbox.id, [3], "add", ["\\Seen"])
        assert (await acc.status("INBOX")).unseen == 2 and (await ann.status("INBOX")).unseen == 1
        assert sorted((await ann.fetch(inbox.id, [3], ["flags"]))[0].flags) == []
        # A reader's change of mark is a change: new MODSEQ, seen by the reader's other sessions.
        before = (await acc.get_mailbox("INBOX")).highestmodseq
        [meta] = await bob.store_flags(inbox.id, [3], "replace", ["\\Seen"])
        assert meta.modseq > before and meta.flags == frozenset({"\\Seen"})
        cs = await bob.changes_since(inbox.id, before)
        assert [(m.uid, sorted(m.flags)) for m in cs.updated] == [(3, ["\\Seen"])]
        cs = await ann.changes_since(inbox.id, before)
        assert [(m.uid, sorted(m.flags)) for m in cs.updated] == [(3, [])]
        # Replace keeps the owner's \Seen and drops the reader's: Bob unreads 3, owner's stays.
        await bob.store_flags(inbox.id, [3], "replace", [])
        assert sorted((await acc.fetch(inbox.id, [3], ["flags"]))[0].flags) == ["\\Seen"]
        assert sorted((await bob.fetch(inbox.id, [3], ["flags"]))[0].flags) == []
        # A reader's APPEND with \Seen: seen by the reader only.
        r = await ann.append("INBOX", MSG, ["\\Seen", "$Work"])
        assert sorted((await ann.fetch(inbox.id, [r.uid], ["flags"]))[0].flags) == ["$Work", "\\Seen"]
        assert sorted((await acc.fetch(inbox.id, [r.uid], ["flags"]))[0].flags) == ["$Work"]
        snap = {m.uid: m.flags for m in (await ann.snapshot("INBOX"))[1]}
        assert "\\Seen" in snap[r.uid] and "\\Seen" in snap[1] and "\\Seen" not in snap[3]
        await store.close()

    run(go())


def test_only_limits_what_a_store_changes(root: Path) -> None:
    async def go() -> None:
        store = MaildirStore(root)
        acc = await store.account(OWNER)
        await acc.append("INBOX", MSG, ["\\Deleted", "\\Answered"])
        inbox = await acc.get_mailbox("INBOX")
        # Without the rights for \Deleted (t) and \Seen (s): replace touches the rest only.
        allowed = lambda f: f not in ("\\Deleted", "\\Seen")  # noqa: E731
        await acc.reader(ANN).store_flags(inbox.id, [1], "replace", ["\\Flagged", "\\Seen"], only=allowed)
        assert sorted((await acc.fetch(inbox.id, [1], ["flags"]))[0].flags) == ["\\Deleted", "\\Flagged"]
        await store.close()

    run(go())


def test_marks_follow_copy_and_move_and_go_with_the_message(root: Path) -> None:
    async def go() -> None:
        store = MaildirStore(root)
        acc = await store.account(OWNER)
        for _ in range(2):
            await acc.append("INBOX", MSG)
        inbox, archive = await acc.get_mailbox("INBOX"), await acc.get_mailbox("Archive")
        ann = acc.reader(ANN)
        await ann.store_flags(inbox.id, [1, 2], "add", ["\\Seen"])
        copied = await ann.copy(inbox.id, [1], "Archive")
        assert await ann.uids_with_flag(archive.id, "\\Seen") == list(copied.dest_uids)
        moved = await ann.move(inbox.id, [2], "Archive")
        assert await ann.uids_with_flag(archive.id, "\\Seen") == sorted(copied.dest_uids + moved.dest_uids)
        assert await ann.uids_with_flag(inbox.id, "\\Seen") == [1]
        await ann.expunge(inbox.id, [1])
        assert await ann.uids_with_flag(inbox.id, "\\Seen") == []
        await acc.set_acl("Archive", ANN, "lr")
        assert await store.grantors(ANN) == [OWNER]
        await acc.delete_mailbox("Archive")
        assert await store.grantors(ANN) == []  # nothing of the owner's names Ann any more
        await acc.create_mailbox("Archive")
        again = await acc.get_mailbox("Archive")
        assert await acc.get_acl("Archive") == {} and await ann.uids_with_flag(again.id, "\\Seen") == []
        await store.close()

    run(go())


def test_an_account_keeps_a_bounded_number_of_entries(root: Path) -> None:
    async def go() -> None:
        store = MaildirStore(root, limits=Limits(acl_entries=3, acl_total=4))
        acc = await store.account(OWNER)
        await acc.create_mailbox("Team")
        for who in (ANN, BOB, acl.ANYONE):
            await acc.set_acl("Team", who, "lr")
        # Made below Team, a mailbox would bring three more: over the account's four.
        with pytest.raises(LimitExceeded):
            await acc.create_mailbox("Team/Sub")
        await acc.set_acl("INBOX", ANN, "l")
        with pytest.raises(LimitExceeded):
            await acc.set_acl("Sent", ANN, "l")
        await acc.set_acl("INBOX", ANN, "lr")  # changing an entry adds none
        await store.close()

    run(go())


def test_create_inherits_the_parents_acl_and_rename_keeps_it(root: Path) -> None:
    async def go() -> None:
        store = MaildirStore(root)
        acc = await store.account(OWNER)
        await acc.create_mailbox("Team")
        await acc.set_acl("Team", ANN, "lrswik")
        await acc.create_mailbox("Team/Projects/2025")
        assert await acc.get_acl("Team/Projects") == {ANN: "lrswik"}
        assert await acc.get_acl("Team/Projects/2025") == {ANN: "lrswik"}
        await acc.rename_mailbox("Team", "Crew")
        assert await acc.get_acl("Crew/Projects/2025") == {ANN: "lrswik"}
        assert await acc.get_acl("INBOX") == {}
        await store.close()

    run(go())


def test_a_rebuilt_index_keeps_the_acls(root: Path) -> None:
    async def go() -> None:
        store = MaildirStore(root, exclusive=True)
        acc = await store.account(OWNER)
        await acc.create_mailbox("Team")
        await acc.set_acl("Team", ANN, "lrs")
        await acc.set_acl("Team", acl.ANYONE, "l")
        await acc.set_acl("INBOX", BOB, "lr")
        await acc.set_acl("INBOX", BOB, "")
        await asyncio.to_thread(store.rebuild, OWNER)
        acc = await store.account(OWNER)
        assert await acc.get_acl("Team") == {ANN: "lrs", acl.ANYONE: "l"}
        assert await acc.get_acl("INBOX") == {}
        await store.close()

    run(go())


def test_deleting_an_account_takes_it_out_of_every_acl(root: Path) -> None:
    async def go() -> None:
        store = MaildirStore(root, exclusive=True)
        acc = await store.account(OWNER)
        await acc.append("INBOX", MSG)
        await acc.set_acl("INBOX", ANN, "lrs")
        await acc.set_acl("Sent", ANN, "l")
        await acc.reader(ANN).store_flags((await acc.get_mailbox("INBOX")).id, [1], "add", ["\\Seen"])
        await store.account(ANN)
        await store.delete_account(ANN)
        assert await acc.get_acl("INBOX") == {} and await acc.get_acl("Sent") == {}
        assert await acc.reader(ANN).uids_with_flag((await acc.get_mailbox("INBOX")).id, "\\Seen") == []
        assert await store.grantors(ANN) == []
        # The owner gone: no one is told to look in its folders.
        await acc.set_acl("INBOX", BOB, "lr")
        await store.delete_account(OWNER)
        assert await store.grantors(BOB) == []
        await store.close()

    run(go())
