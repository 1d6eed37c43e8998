"""The change feed interface and its cross-process carrier (two feeds in one loop stand
for two workers; tests/server/test_workers.py runs real ones)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from letterbox.store import crossfeed
from letterbox.store.api import Change, changes_by
from letterbox.store.crossfeed import CrossProcessFeed
from letterbox.store.feed import ChangeFeed, LocalFeed
from letterbox.store.maildir import MaildirStore, files, folderfile

USER = "alice@example.com"
MSG = b"Subject: hi\r\n\r\nbody\r\n"


def test_both_feeds_are_change_feeds(tmp_path: Path) -> None:
    assert isinstance(LocalFeed(), ChangeFeed)
    assert isinstance(CrossProcessFeed(tmp_path, 0, 2), ChangeFeed)
    with pytest.raises(TypeError):
        ChangeFeed()  # type: ignore[abstract]


def test_local_relay_is_publish() -> None:
    feed = LocalFeed()
    sub = feed.subscribe(USER)
    seen: list[str] = []
    feed.watch(seen.append)
    feed.relay(Change(USER, 1, 5, "append", "INBOX"))
    assert [c.modseq for c in sub.take()] == [5] and seen == [USER]


async def pair(tmp_path: Path) -> tuple[CrossProcessFeed, CrossProcessFeed]:
    loop = asyncio.get_running_loop()
    a, b = CrossProcessFeed(tmp_path, 0, 2), CrossProcessFeed(tmp_path, 1, 2)
    a.open(loop)
    b.open(loop)
    return a, b


def test_a_change_reaches_the_other_worker_without_its_origin(tmp_path: Path) -> None:
    async def go() -> None:
        a, b = await pair(tmp_path)
        here, there = a.subscribe(USER), b.subscribe(USER, "bob@example.com")
        touched: list[str] = []
        b.watch(touched.append)
        remote: list[Change] = []
        b.on_remote = remote.append
        change = Change(USER, 3, 42, "metadata", "INBOX", "", 7, ("/private/comment",), USER)
        a.publish(change, also=("bob@example.com",))
        assert here.take() == [change]  # at once here
        await asyncio.wait_for(there.wait(), 5)
        got = there.take()
        assert got == [Change(USER, 3, 42, "metadata", "INBOX", "", 0, ("/private/comment",), USER)]
        assert remote == got and touched == [USER]
        a.close()
        b.close()

    asyncio.run(go())


def test_relayed_changes_and_other_accounts_stay_home(tmp_path: Path) -> None:
    async def go() -> None:
        a, b = await pair(tmp_path)
        there = b.subscribe(USER)
        a.relay(Change(USER, 1, 2, "append", "INBOX"))  # another process made it: told already
        a.publish(Change("carol@example.com", 1, 2, "append", "INBOX"))
        a.publish(Change(USER, 1, 3, "flags", "INBOX"))
        await asyncio.wait_for(there.wait(), 5)
        assert [(c.kind, c.modseq) for c in there.take()] == [("flags", 3)]
        a.close()
        b.close()

    asyncio.run(go())


def test_a_turns_changes_go_in_one_datagram(tmp_path: Path) -> None:
    async def go() -> None:
        a, b = await pair(tmp_path)
        there = b.subscribe(USER)
        for i in range(200):
            a.publish(Change(USER, i + 1, i + 1, "append", f"box{i}"))
        assert a.sent <= 200 // crossfeed.MAX_BATCH + 1
        for _ in range(500):
            if b.received == a.sent:
                break
            await asyncio.sleep(0.01)
        assert a.dropped == 0 and b.received == a.sent
        assert len(there.take()) == 200
        a.close()
        b.close()

    asyncio.run(go())


def test_a_missing_or_full_peer_only_counts_a_drop(tmp_path: Path) -> None:
    async def go() -> None:
        loop = asyncio.get_running_loop()
        a = CrossProcessFeed(tmp_path, 0, 3)  # peers 1 and 2 never started
        a.open(loop)
        sub = a.subscribe(USER)
        a.publish(Change(USER, 1, 1, "append", "INBOX"))
        await asyncio.sleep(0)  # the flush at the end of the turn
        assert a.dropped == 2 and len(sub.take()) == 1
        # A peer that does not read: its queue fills, the sender never blocks.
        deaf = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        deaf.bind(str(crossfeed.socket_path(tmp_path, 1)))
        for i in range(2000):
            a.publish(Change(USER, 1, i + 2, "append", "INBOX"))
            a._flush()
        assert a.dropped > 2
        deaf.close()
        a.close()

    asyncio.run(go())


def test_garbage_and_oversized_changes(tmp_path: Path) -> None:
    async def go() -> None:
        a, b = await pair(tmp_path)
        there = b.subscribe(USER)
        looked: list[str] = []
        b.on_account = looked.append
        b.deliver(b"not json")
        b.deliver(json.dumps([["c", USER, "x", 1, "append", "", "", [], "", []], ["c", USER, 1, 1, "bogus"]]).encode())
        assert not there.pending()
        big = Change(USER, 1, 1, "metadata", "INBOX", "", 0, tuple(f"/private/e{i}" * 20 for i in range(200)), USER)
        a.publish(big)
        for _ in range(100):
            if looked:
                break
            await asyncio.sleep(0.01)
        assert looked == [USER]  # "look at this account" instead of the change
        a.close()
        b.close()

    asyncio.run(go())


def test_a_store_on_the_cross_feed_tells_the_other_worker(tmp_path: Path) -> None:
    """Two stores on one folder, as two workers: a delivery in one wakes a session of
    the other with an append it can read at once."""

    async def go() -> None:
        loop = asyncio.get_running_loop()
        feeds = [CrossProcessFeed(tmp_path / "run", i, 2) for i in (0, 1)]
        for f in feeds:
            f.open(loop)
        one, two = (MaildirStore(tmp_path / "mail", feed) for feed in feeds)
        feeds[1].on_remote = two.told_elsewhere
        await one.account(USER)
        acc2 = await two.account(USER)
        sub = two.subscribe(USER)
        acc1 = await one.account(USER)
        inbox = await acc1.get_mailbox("INBOX")
        with changes_by(5):
            await acc1.append("INBOX", MSG, set())
        await asyncio.wait_for(sub.wait(), 5)
        (change,) = sub.take()
        assert (change.kind, change.mailbox_id, change.origin) == ("append", inbox.id, 0)
        changes = await acc2.changes_since(inbox.id, 0)
        assert len(changes.updated) == 1
        # Its own look at the index (data_version moved) does not tell the change again.
        two.poll_external()
        assert not sub.pending()
        with changes_by(5):
            await acc1.store_flags(inbox.id, [1], "add", {"\\Flagged"})
        await asyncio.wait_for(sub.wait(), 5)
        assert [c.kind for c in sub.take()] == ["flags"]
        two.poll_external()
        assert not sub.pending()
        await one.close()
        await two.close()
        for f in feeds:
            f.close()

    asyncio.run(go())


def test_two_writers_never_give_more_keywords_a_letter_than_there_are(tmp_path: Path) -> None:
    """Each worker caches the folder file's letters; one with an older view must not
    push the file past a-z, nor move the letters another gave out."""

    async def go() -> None:
        one, two = MaildirStore(tmp_path / "mail"), MaildirStore(tmp_path / "mail")
        acc1, acc2 = await one.account(USER), await two.account(USER)
        mid = (await acc1.get_mailbox("INBOX")).id
        assert acc2.letters(mid) == []  # cached now, and soon stale
        first = [f"one{i}" for i in range(20)]
        await acc1.ensure_letters(mid, first)
        await acc2.ensure_letters(mid, [f"two{i}" for i in range(20)])
        letters = acc2.letters(mid)
        assert len(letters) == len(files.KEYWORD_LETTERS) == folderfile.MAX_KEYWORDS
        assert letters[:20] == sorted(first)
        await one.close()
        await two.close()

    asyncio.run(go())


def test_changes_are_made_for_the_other_workers_but_indexes_watched_for_own_sessions(tmp_path: Path) -> None:
    feed = CrossProcessFeed(tmp_path, 0, 2)
    assert feed.has_subscribers(USER)  # another worker's session may listen
    assert not feed.has_local_subscribers(USER)  # but none here: its index is not polled here
    sub = feed.subscribe(USER)
    assert feed.has_local_subscribers(USER)
    sub.close()
    alone = CrossProcessFeed(tmp_path, 0, 1)
    assert not alone.has_subscribers(USER)
