"""The change feed: what it says of mailbox names and subscriptions, whose change each
is, and how much one subscription may hold."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from letterbox.store import feed as feed_module
from letterbox.store.api import Change, changes_by, current_origin
from letterbox.store.feed import LocalFeed
from letterbox.store.maildir import MaildirStore

USER = "alice@example.com"
MSG = b"Subject: hi\r\n\r\nbody\r\n"


def names(changes: list[Change]) -> list[tuple[str, str, str]]:
    return [(c.kind, c.name, c.old_name) for c in changes if c.kind in ("mailbox", "subscription")]


def test_creates_renames_deletes_and_subscriptions_carry_their_names(tmp_path: Path) -> None:
    async def go() -> None:
        store = MaildirStore(tmp_path / "mail")
        acc = await store.account(USER)
        sub = store.subscribe(USER)
        await acc.create_mailbox("Work/Projects/2026")  # its missing parents are made too
        assert names(sub.take()) == [
            ("mailbox", "Work", ""), ("mailbox", "Work/Projects", ""), ("mailbox", "Work/Projects/2026", ""),
        ]
        await acc.rename_mailbox("Work", "Play/Old")
        assert names(sub.take()) == [
            ("mailbox", "Play", ""),  # a parent the new name needed
            ("mailbox", "Play/Old", "Work"),
            ("mailbox", "Play/Old/Projects", "Work/Projects"),
            ("mailbox", "Play/Old/Projects/2026", "Work/Projects/2026"),
        ]
        await acc.delete_mailbox("Play/Old/Projects/2026")
        assert names(sub.take()) == [("mailbox", "", "Play/Old/Projects/2026")]
        await acc.set_subscribed("Play", True)
        await acc.set_subscribed("Play", True)  # no change, no event
        await acc.set_subscribed("Nowhere", True)
        changes = sub.take()
        assert names(changes) == [("subscription", "Play", ""), ("subscription", "Nowhere", "")]
        assert changes[0].mailbox_id == (await acc.get_mailbox("Play")).id and changes[1].mailbox_id == 0
        await acc.append("INBOX", MSG)
        await acc.rename_mailbox("INBOX", "Before")  # its messages move to a new mailbox
        assert names(sub.take()) == [("mailbox", "Before", "INBOX")]
        sub.close()
        await store.close()

    asyncio.run(go())


def test_message_changes_carry_the_mailbox_name_and_who_made_them(tmp_path: Path) -> None:
    async def go() -> None:
        store = MaildirStore(tmp_path / "mail")
        acc = await store.account(USER)
        sub = store.subscribe(USER)
        await acc.append("Sent", MSG)
        assert current_origin() == 0
        with changes_by(7):
            assert current_origin() == 7
            await acc.append("Sent", MSG)
            await acc.create_mailbox("Mine")
        assert current_origin() == 0
        got = [(c.kind, c.name, c.origin) for c in sub.take()]
        # The two appends to Sent differ by origin, so they stay apart.
        assert got == [("append", "Sent", 0), ("append", "Sent", 7), ("mailbox", "Mine", 7)]
        sub.close()
        await store.close()

    asyncio.run(go())


def test_a_subscription_merges_repeats_and_holds_a_bounded_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed_module, "MAX_PENDING", 5)

    async def go() -> None:
        feed = LocalFeed()
        sub = feed.subscribe(USER)
        for modseq in range(1, 100):  # a burst of deliveries to one mailbox: one change
            feed.publish(Change(USER, 1, modseq, "append", "INBOX"))
        feed.publish(Change(USER, 1, 100, "flags", "INBOX"))
        changes = sub.take()
        assert [(c.kind, c.modseq) for c in changes] == [("append", 99), ("flags", 100)]
        assert not sub.overflowed
        for i in range(1, 9):  # name changes are each their own
            feed.publish(Change(USER, i, 1, "mailbox", f"box{i}"))
        feed.publish(Change(USER, 1, 2, "append", "box1"))
        assert sub.overflowed and sub.pending()
        changes = sub.take()
        assert [c.name for c in changes] == ["box1", "box2", "box3", "box4", "box5"]
        assert not sub.overflowed and not sub.pending()
        sub.close()
        assert not feed.has_subscribers(USER)

    asyncio.run(go())


def test_a_subscription_may_follow_several_accounts_and_keeps_them_apart() -> None:
    async def go() -> None:
        feed = LocalFeed()
        sub = feed.subscribe(USER)
        sub.follow({USER, "bob@example.com"})
        # Mailbox ids are per account: the same id in two accounts is two changes.
        feed.publish(Change(USER, 1, 5, "append", "INBOX"))
        feed.publish(Change("bob@example.com", 1, 5, "append", "INBOX"))
        feed.publish(Change("carol@example.com", 1, 5, "append", "INBOX"))
        assert [c.account for c in sub.take()] == [USER, "bob@example.com"]
        sub.follow({"bob@example.com"})
        assert not feed.has_subscribers(USER) and feed.has_subscribers("bob@example.com")
        sub.close()
        assert not feed.has_subscribers("bob@example.com")

    asyncio.run(go())


def test_acl_changes_reach_the_grantee_too_once_each(tmp_path: Path) -> None:
    async def go() -> None:
        store = MaildirStore(tmp_path / "mail")
        acc = await store.account(USER)
        owners = store.subscribe(USER)
        both = store.subscribe(USER, "bob@example.com")
        bob = store.subscribe("bob@example.com")
        carol = store.subscribe("carol@example.com")
        await acc.set_acl("INBOX", "bob@example.com", "lr")
        await acc.set_acl("INBOX", "bob@example.com", "lr")  # no change, no event
        for sub in (owners, both, bob):
            assert [(c.kind, c.name, c.user) for c in sub.take()] == [("acl", "INBOX", "bob@example.com")]
        assert not carol.pending()
        await acc.set_acl("INBOX", "anyone", "l")  # every session may now see it
        for sub in (owners, both, bob, carol):
            assert [(c.kind, c.user) for c in sub.take()] == [("acl", "anyone")]
        for sub in (owners, both, bob, carol):
            sub.close()
        await store.close()

    asyncio.run(go())
