"""Contract: quotas (RFC 9208) refuse growth, never deletion, and count what they say."""

from __future__ import annotations

import pytest

from letterbox.store.api import OverQuota, Quota

from .conftest import Contract, Harness, message


def test_append_and_copy_are_refused_over_quota_and_store_nothing(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        size = len(message(1))
        by_count, by_bytes = Quota(messages=2), Quota(bytes=2 * size + 5)
        await acc.append("INBOX", message(1), quota=by_count)
        await acc.append("INBOX", message(2), quota=by_bytes)
        with pytest.raises(OverQuota):
            await acc.append("INBOX", message(3), quota=by_count)
        with pytest.raises(OverQuota):
            await acc.append("INBOX", message(3), quota=by_bytes)
        inbox = await acc.get_mailbox("INBOX")
        with pytest.raises(OverQuota):
            await acc.copy(inbox.id, [1], "Archive", quota=by_count)
        assert (await acc.status("Archive")).messages == 0
        assert (await acc.usage()).messages == 2
        # No quota, or one of zeros, is no limit.
        await acc.append("INBOX", message(3), quota=Quota())
        await acc.copy(inbox.id, [1, 2], "Archive")
        assert (await acc.usage()).messages == 5

    backend.run(go)


def test_move_expunge_and_flags_work_at_the_limit(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        full = Quota(messages=2)
        await acc.append("INBOX", message(1), quota=full)
        await acc.append("INBOX", message(2), quota=full)
        inbox = await acc.get_mailbox("INBOX")
        assert (await acc.move(inbox.id, [1], "Trash")).dest_uids == (1,)
        assert await acc.store_flags(inbox.id, [2], "add", ["\\Deleted"])
        assert await acc.expunge(inbox.id, [2]) == [2]
        await acc.append("INBOX", message(3), quota=full)

    backend.run(go)


def test_the_trash_counts_only_when_the_quota_says_so(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        for n in range(2):
            await acc.append("Trash", message(n))
        await acc.append("INBOX", message(5))
        size = len(message(0))
        assert (await acc.usage()).messages == 3
        without = await acc.usage(count_trash=False)
        assert (without.messages, without.bytes) == (1, size)
        with pytest.raises(OverQuota):
            await acc.append("INBOX", message(6), quota=Quota(messages=3))
        await acc.append("INBOX", message(6), quota=Quota(messages=3, count_trash=False))
        folders = {f.name: f for f in await acc.folder_usage()}
        assert list(folders)[0] == "INBOX"
        assert (folders["Trash"].messages, folders["Trash"].bytes) == (2, 2 * size)
        assert folders["INBOX"].messages == 2 and folders["Drafts"].oldest is None
        peeked = await (await c.store()).peek_usage("alice@example.com", count_trash=False)
        assert peeked is not None and peeked.messages == 2

    backend.run(go)


def test_select_messages_by_age_size_and_seen(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        await acc.append("INBOX", message(1), ["\\Seen"], internaldate=1000.0)
        await acc.append("INBOX", message(2, b"x" * 500), [], internaldate=2000.0)
        await acc.append("INBOX", message(3, b"x" * 500), ["\\Seen"], internaldate=3000.0)
        inbox = await acc.get_mailbox("INBOX")
        assert [u for u, _ in await acc.select_messages(inbox.id)] == [1, 2, 3]
        assert [u for u, _ in await acc.select_messages(inbox.id, received_before=2500.0)] == [1, 2]
        assert [u for u, _ in await acc.select_messages(inbox.id, larger_than=300)] == [2, 3]
        assert [u for u, _ in await acc.select_messages(inbox.id, seen=True)] == [1, 3]
        assert await acc.select_messages(inbox.id, seen=True, larger_than=300, limit=1) == [(3, len(message(3, b"x" * 500)))]

    backend.run(go)
