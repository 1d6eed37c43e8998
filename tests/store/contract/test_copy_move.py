"""Contract: COPY and MOVE with their UID mapping (RFC 4315 UIDPLUS, RFC 6851)."""

from __future__ import annotations

import pytest

from letterbox.store.api import MailboxNotFound

from .conftest import Contract, Harness, message


def test_copy_maps_uids_and_keeps_flags_dates_and_bytes(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        for i in range(3):
            await acc.append("INBOX", message(i), ["\\Seen", f"$k{i}"], 800_000_000.0 + i)
        inbox = await acc.get_mailbox("INBOX")
        await acc.append("Archive", message(9))
        archive = await acc.get_mailbox("Archive")
        result = await acc.copy(inbox.id, [3, 1, 7], "Archive")
        assert result.uidvalidity == archive.uidvalidity
        assert result.source_uids == (1, 3) and result.dest_uids == (2, 3)
        src = await acc.fetch(inbox.id, [1, 3], ["flags", "internaldate", "emailid", "size"])
        dst = await acc.fetch(archive.id, [2, 3], ["flags", "internaldate", "emailid", "size", "savedate"])
        assert [(r.flags, r.internaldate, r.emailid, r.size) for r in src] == \
               [(r.flags, r.internaldate, r.emailid, r.size) for r in dst]
        assert all(r.savedate > r.internaldate for r in dst)  # RFC 8514: never copied
        assert [await acc.read_message(archive.id, u) for u in (2, 3)] == [message(0), message(2)]
        assert {"$k0", "$k2"} <= set((await acc.get_mailbox("Archive")).keywords)
        assert (await acc.status("INBOX")).messages == 3  # the source keeps them
        assert (await acc.copy(inbox.id, [42], "Archive")).dest_uids == ()
        with pytest.raises(MailboxNotFound):
            await acc.copy(inbox.id, [1], "Nowhere")
        assert (await acc.usage()).messages == 6

    backend.run(go)


def test_move_maps_uids_and_the_source_sees_them_vanish(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        for i in range(4):
            await acc.append("INBOX", message(i), [f"$k{i}"])
        inbox = await acc.get_mailbox("INBOX")
        work = await acc.create_mailbox("Work")
        result = await acc.move(inbox.id, [2, 4, 8], "Work")
        assert (result.uidvalidity, result.source_uids, result.dest_uids) == (work.uidvalidity, (2, 4), (1, 2))
        _, metas = await acc.snapshot("INBOX")
        assert [m.uid for m in metas] == [1, 3]
        _, moved = await acc.snapshot("Work")
        assert [(m.uid, m.flags) for m in moved] == [(1, {"$k1"}), (2, {"$k3"})]
        assert await acc.read_message(work.id, 2) == message(3)
        cs = await (await c.account()).changes_since(inbox.id, inbox.highestmodseq)
        assert cs.expunged == [2, 4]
        assert (await acc.usage()).messages == 4
        with pytest.raises(MailboxNotFound):
            await acc.move(inbox.id, [1], "Nowhere")
        assert (await acc.status("INBOX")).messages == 2

    backend.run(go)


def test_move_within_a_mailbox_gives_new_uids(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        for i in range(2):
            await acc.append("INBOX", message(i))
        inbox = await acc.get_mailbox("INBOX")
        result = await acc.move(inbox.id, [1], "INBOX")
        assert (result.source_uids, result.dest_uids) == ((1,), (3,))
        _, metas = await acc.snapshot("INBOX")
        assert [m.uid for m in metas] == [2, 3]
        assert await acc.read_message(inbox.id, 3) == message(0)

    backend.run(go)


def test_progress_is_told_between_batches_and_the_result_is_whole(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        for i in range(5):
            await acc.append("INBOX", message(i))
        inbox = await acc.get_mailbox("INBOX")
        told: list[int] = []

        async def progress(done: int) -> None:
            told.append(done)

        result = await acc.copy(inbox.id, [1, 2, 3, 4, 5], "Archive", progress=progress)
        assert len(result.dest_uids) == 5
        assert told == sorted(told) and all(0 < n < 5 for n in told)
        assert await acc.expunge(inbox.id, [1, 2, 3, 4, 5], progress) == [1, 2, 3, 4, 5]

    backend.run(go)
