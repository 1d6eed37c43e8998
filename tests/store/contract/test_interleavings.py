"""Contract: what a truly asynchronous backend may interleave. Two handles (as two front
ends or processes) or two tasks on one handle work on the same messages at once; every
outcome the API allows is accepted, and the invariants hold whatever the order: a
message is in exactly one place or gone, each result says exactly what happened, UIDs
are never handed out twice, and another handle's changes_since agrees with the end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest

from letterbox.store.api import AccountStore, MailboxNotFound, OverQuota, Quota, StoreError

from .conftest import Contract, Harness, message

N = 12

Pair = Callable[[Contract], Awaitable[tuple[AccountStore, AccountStore]]]


async def _two_handles(c: Contract) -> tuple[AccountStore, AccountStore]:
    return await c.account(), await c.account()


async def _one_handle(c: Contract) -> tuple[AccountStore, AccountStore]:
    acc = await c.account()
    return acc, acc


PAIRS: dict[str, Pair] = {"two handles": _two_handles, "one handle": _one_handle}


async def _fill(acc: AccountStore, n: int = N, mailbox: str = "INBOX") -> int:
    for i in range(n):
        await acc.append(mailbox, message(i), [f"$k{i % 3}"])
    return (await acc.get_mailbox(mailbox)).id


async def _contents(acc: AccountStore, mailbox: str) -> dict[int, bytes]:
    mbox, metas = await acc.snapshot(mailbox)
    return {m.uid: await acc.read_message(mbox.id, m.uid) for m in metas}


@pytest.mark.parametrize("pair", sorted(PAIRS))
@pytest.mark.parametrize("first", ["move", "expunge"])
def test_move_against_a_concurrent_expunge(backend: Harness, pair: str, first: str) -> None:
    async def go(c: Contract) -> None:
        a, b = await PAIRS[pair](c)
        inbox = await _fill(a)
        work = await a.create_mailbox("Work")
        before = (await a.get_mailbox("INBOX")).highestmodseq
        uids = list(range(1, N + 1))
        mover = a.move(inbox, uids, "Work")
        remover = b.expunge(inbox, uids[::2])
        if first == "move":
            moved, expunged = await asyncio.gather(mover, remover)
        else:
            expunged, moved = await asyncio.gather(remover, mover)
        # Each message was either moved or expunged, never both, never neither.
        assert set(moved.source_uids).isdisjoint(expunged)
        assert sorted([*moved.source_uids, *expunged]) == uids
        assert moved.uidvalidity == work.uidvalidity
        assert len(moved.dest_uids) == len(moved.source_uids) == len(set(moved.dest_uids))
        assert await _contents(a, "INBOX") == {}
        landed = await _contents(a, "Work")
        assert landed == {d: message(s - 1) for s, d in zip(moved.source_uids, moved.dest_uids, strict=True)}
        assert (await a.usage()).messages == len(landed)
        # A third handle, resyncing, sees every UID of the source go.
        cs = await (await c.account()).changes_since(inbox, before)
        assert cs.expunged == uids and cs.updated == []

    backend.run(go)


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_expunge_store_and_copy_of_the_same_messages_at_once(backend: Harness, pair: str) -> None:
    async def go(c: Contract) -> None:
        a, b = await PAIRS[pair](c)
        inbox = await _fill(a)
        archive = (await a.get_mailbox("Archive")).id
        before = (await a.get_mailbox("INBOX")).highestmodseq
        uids = list(range(1, N + 1))
        flagged, expunged, copied, expunged_too = await asyncio.gather(
            a.store_flags(inbox, uids, "add", ["\\Flagged"]),
            b.expunge(inbox, uids[: N // 2]),
            a.copy(inbox, uids, "Archive"),
            b.expunge(inbox, uids[N // 3 :]),
        )
        gone = set(expunged) | set(expunged_too)
        assert set(expunged).isdisjoint(expunged_too)  # each removed once
        assert gone == set(uids[: N // 2]) | set(uids[N // 3 :])
        # Whatever ran first: a flag change reports messages that had it made; copies are
        # whole copies of messages that existed; UIDs map one to one.
        assert {m.uid for m in flagged} <= set(uids) and all("\\Flagged" in m.flags for m in flagged)
        assert len(set(copied.dest_uids)) == len(copied.source_uids) == len(copied.dest_uids)
        in_archive = await _contents(a, "Archive")
        assert in_archive == {d: message(s - 1) for s, d in zip(copied.source_uids, copied.dest_uids, strict=True)}
        left = await _contents(b, "INBOX")
        assert set(left) == set(uids) - gone
        # The survivors carry the flag if the store reached them, and a resync agrees.
        _, metas = await a.snapshot("INBOX")
        survivors = {m.uid: m for m in metas}
        assert all("\\Flagged" in survivors[m.uid].flags for m in flagged if m.uid in survivors)
        cs = await (await c.account()).changes_since(inbox, before)
        assert cs.expunged == sorted(gone)
        assert [(m.uid, m.flags, m.modseq) for m in cs.updated] == [
            (m.uid, m.flags, m.modseq) for m in metas if m.modseq > before]
        assert cs.highestmodseq == (await b.get_mailbox("INBOX")).highestmodseq
        assert len({r.emailid for r in await (await c.account()).fetch(archive, list(in_archive), ["emailid"])}) == len(in_archive)

    backend.run(go)


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_concurrent_appends_get_distinct_ascending_uids(backend: Harness, pair: str) -> None:
    async def go(c: Contract) -> None:
        a, b = await PAIRS[pair](c)

        async def deliver(acc: AccountStore, base: int) -> list[int]:
            return [(await acc.append("INBOX", message(base + i))).uid for i in range(6)]

        ours, theirs = await asyncio.gather(deliver(a, 0), deliver(b, 100))
        assert ours == sorted(ours) and theirs == sorted(theirs)
        assert len(set(ours) | set(theirs)) == 12
        content = await _contents(a, "INBOX")
        assert sorted(content) == sorted(ours + theirs)
        assert {content[u] for u in ours} == {message(i) for i in range(6)}
        inbox = await b.get_mailbox("INBOX")
        assert inbox.uidnext == max(content) + 1

    backend.run(go)


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_multiappend_rolls_back_whole(backend: Harness, pair: str) -> None:
    """RFC 3502: a MULTIAPPEND that fails part way leaves the mailbox as it was; the
    protocol removes what it appended. What is appended meanwhile by others stays; the
    UIDs tried are never handed out again; a watcher sees them come and go."""

    async def go(c: Contract) -> None:
        a, b = await PAIRS[pair](c)
        await a.append("INBOX", message(0))
        inbox = await a.get_mailbox("INBOX")
        usage = await a.usage()
        quota = Quota(messages=4)
        done: list[int] = []
        with pytest.raises(OverQuota):
            for i in range(1, 6):
                done.append((await a.append("INBOX", message(i), ["$Batch"], quota=quota)).uid)
                if i == 1:
                    await b.append("INBOX", message(50))  # another delivery in between
        assert len(done) == 2
        assert sorted(await a.expunge(inbox.id, done)) == done
        after = await _contents(b, "INBOX")
        assert after == {1: message(0), 3: message(50)}
        assert (await a.usage()).messages == usage.messages + 1
        cs = await b.changes_since(inbox.id, inbox.highestmodseq)
        assert cs.expunged == done and [m.uid for m in cs.updated] == [3]
        assert (await b.append("INBOX", message(9))).uid > max(done)
        # A failed append stores nothing, even half.
        with pytest.raises(StoreError):
            await a.append("INBOX", message(10), ["not an atom"])
        assert len(await _contents(a, "INBOX")) == 3

    backend.run(go)


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_append_into_a_mailbox_deleted_meanwhile(backend: Harness, pair: str) -> None:
    async def go(c: Contract) -> None:
        a, b = await PAIRS[pair](c)

        async def append(name: str) -> None:
            with contextlib.suppress(MailboxNotFound):
                await a.append(name, message(1))

        # Whichever comes first, the append stores its message or finds no mailbox (no
        # other error), and no message is left in a mailbox that is gone. A few rounds:
        # the order varies with the backend's own pauses.
        for n in range(5):
            box = await a.create_mailbox(f"Box{n}")
            await asyncio.gather(b.delete_mailbox(box.name), append(box.name))
            with pytest.raises(MailboxNotFound):
                await b.status(box.name)
            assert (await a.changes_since(box.id, 0)).uidvalidity_changed
            assert (await a.usage()).messages == 0
            made = await a.create_mailbox(box.name)
            assert made.uidvalidity != box.uidvalidity and (await b.status(box.name)).messages == 0

    backend.run(go)


def test_a_second_handle_sees_renames_deletes_and_flags(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        a, b = await c.account(), await c.account()
        box = await a.create_mailbox("Box")
        await a.append("Box", message(1))
        mark = (await b.get_mailbox("Box")).highestmodseq
        await a.rename_mailbox("Box", "Renamed")
        await a.store_flags(box.id, [1], "add", ["\\Answered"])
        cs = await b.changes_since(box.id, mark)
        assert cs.name == "Renamed" and [(m.uid, m.flags) for m in cs.updated] == [(1, {"\\Answered"})]
        assert (await b.get_mailbox("Renamed")).id == box.id
        await a.delete_mailbox("Renamed")
        assert (await b.changes_since(box.id, cs.highestmodseq)).uidvalidity_changed
        with pytest.raises(MailboxNotFound):
            await b.get_mailbox("Renamed")

    backend.run(go)


async def _many(acc: AccountStore, at_least: int) -> int:
    """INBOX with at least *at_least* messages (copies of a few), cheaply."""
    inbox = await _fill(acc, 8)
    count = 8
    while count < at_least:
        await acc.copy(inbox, list(range(1, count + 1)), "INBOX")
        count *= 2
    return inbox


@pytest.mark.parametrize("op", ["move", "copy"])
def test_expunge_and_store_while_a_long_move_or_copy_pauses(backend: Harness, op: str) -> None:
    """Long operations pause between batches (where they await their progress callback,
    outside any transaction): another handle's expunge and flag change there must leave
    every message whole, in one place, and the result exact. A backend that does it all
    at once never pauses; the invariants hold all the same."""

    async def go(c: Contract) -> None:
        a, b = await c.account(), await c.account()
        inbox = await _many(a, 600)  # more than one batch of Maildir's (500)
        uids = [m.uid for m in (await a.snapshot("INBOX"))[1]]
        originals = {u: await a.read_message(inbox, u) for u in uids}
        taken: list[int] = []

        async def meanwhile(done: int) -> None:
            if not taken:
                taken.extend(await b.expunge(inbox, uids[::3]))
                await b.store_flags(inbox, uids[1::3], "add", ["\\Answered"])

        dest = "Work" if op == "move" else "Archive"
        await a.create_mailbox("Work")
        if op == "move":
            result = await a.move(inbox, uids, dest, meanwhile)
            assert set(result.source_uids).isdisjoint(taken)
        else:
            result = await a.copy(inbox, uids, dest, progress=meanwhile)
        landed = await _contents(a, dest)
        assert landed == {d: originals[s] for s, d in zip(result.source_uids, result.dest_uids, strict=True)}
        left = await _contents(a, "INBOX")
        if op == "move":
            assert left == {} and sorted([*result.source_uids, *taken]) == uids
        else:
            assert set(left) == set(uids) - set(taken)
        # Flags travel with the message: its keyword always, \Answered if set first.
        for m in (await a.snapshot(dest))[1]:
            assert len([f for f in m.flags if f.startswith("$k")]) == 1

    backend.run(go)
