"""Contract: mailboxes (CREATE, DELETE, RENAME with hierarchies and INBOX) and
subscriptions, through the store API only."""

from __future__ import annotations

import pytest

from letterbox.store.api import (
    DEFAULT_MAILBOXES,
    BadMailboxName,
    LimitExceeded,
    Limits,
    MailboxExists,
    MailboxNotFound,
    StoreError,
)

from .conftest import Contract, Harness, message


def test_a_new_account_has_inbox_and_the_special_use_mailboxes(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        boxes = {m.name: m for m in await acc.list_mailboxes()}
        assert {n: m.special_use for n, m in boxes.items()} == {"INBOX": None, **dict(DEFAULT_MAILBOXES)}
        assert all(m.subscribed for m in boxes.values())
        assert len({m.mailboxid for m in boxes.values()}) == len(boxes)
        assert len({m.id for m in boxes.values()}) == len(boxes)
        assert all(m.uidnext == 1 and m.keywords == () for m in boxes.values())
        assert (await acc.get_mailbox("iNbOx")).name == "INBOX"

    backend.run(go)


def test_create_makes_parents_and_refuses_what_exists(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        made = await acc.create_mailbox("Work/2024/Q1")
        assert made.name == "Work/2024/Q1" and made.uidnext == 1
        names = [m.name for m in await acc.list_mailboxes()]
        assert {"Work", "Work/2024", "Work/2024/Q1"} <= set(names)
        with pytest.raises(MailboxExists):
            await acc.create_mailbox("Work/2024")
        with pytest.raises(MailboxExists):
            await acc.create_mailbox("inbox")
        # INBOX is case-insensitive as a parent too (RFC 9051 5.1).
        assert (await acc.create_mailbox("inbox/Sub")).name == "INBOX/Sub"
        assert (await acc.get_mailbox("INBOX/Sub")).name == "INBOX/Sub"
        with pytest.raises(MailboxNotFound):
            await acc.get_mailbox("work")  # other names are case-sensitive

    backend.run(go)


@pytest.mark.parametrize("bad", ["", "a//b", "../x", "a/./b", "a/..", ".hidden", "ctl\x01", "x" * 600,
                                 "/".join(["d"] * 20)])
def test_names_that_could_escape_or_grow_without_bound_are_refused(backend: Harness, bad: str) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        with pytest.raises(BadMailboxName):
            await acc.create_mailbox(bad)
        with pytest.raises(BadMailboxName):
            await acc.rename_mailbox("Archive", bad)

    backend.run(go)


def test_special_uses_are_unique(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        with pytest.raises(MailboxExists):
            await acc.create_mailbox("Other Sent", "\\Sent")
        await acc.delete_mailbox("Archive")
        made = await acc.create_mailbox("Old", "\\Archive")
        assert made.special_use == "\\Archive"
        assert made.name in await acc.subscriptions()  # as the defaults are

    backend.run(go)


def test_mailbox_count_is_limited(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        await acc.create_mailbox("a")
        with pytest.raises(LimitExceeded):
            await acc.create_mailbox("b/c")  # two more
        await acc.create_mailbox("b")
        with pytest.raises(LimitExceeded):
            await acc.create_mailbox("c")
        with pytest.raises(LimitExceeded):
            await acc.rename_mailbox("a", "x/a")  # x would be made
        assert len(await acc.list_mailboxes()) == 8

    backend.run(go, Limits(mailboxes=8))


def test_delete_refuses_inbox_parents_and_what_is_not_there(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        await acc.create_mailbox("P/C")
        with pytest.raises(StoreError):
            await acc.delete_mailbox("INBOX")
        with pytest.raises(StoreError):
            await acc.delete_mailbox("P")
        with pytest.raises(MailboxNotFound):
            await acc.delete_mailbox("Nope")
        await acc.delete_mailbox("P/C")
        await acc.delete_mailbox("P")
        assert "P" not in [m.name for m in await acc.list_mailboxes()]

    backend.run(go)


def test_a_mailbox_made_again_is_a_new_mailbox(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        old = await acc.create_mailbox("Box")
        await acc.append("Box", message(1))
        await acc.delete_mailbox("Box")
        new = await acc.create_mailbox("Box")
        assert new.uidvalidity != old.uidvalidity and new.mailboxid != old.mailboxid and new.id != old.id
        assert (await acc.status("Box")).messages == 0
        # A handle on the old mailbox learns it is gone.
        assert (await acc.changes_since(old.id, old.highestmodseq)).uidvalidity_changed
        with pytest.raises(MailboxNotFound):
            await acc.status("Gone")

    backend.run(go)


def test_rename_keeps_identity_and_messages_and_takes_children(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        top = await acc.create_mailbox("Work/2024")
        await acc.append("Work/2024", message(1), ["$Done"])
        await acc.create_mailbox("Workshop")  # a prefix, not a child: stays
        await acc.rename_mailbox("Work", "Play/Old")
        names = {m.name for m in await acc.list_mailboxes()}
        assert {"Play", "Play/Old", "Play/Old/2024", "Workshop"} <= names
        assert not {"Work", "Work/2024"} & names
        moved = await acc.get_mailbox("Play/Old/2024")
        assert (moved.id, moved.uidvalidity, moved.mailboxid) == (top.id, top.uidvalidity, top.mailboxid)
        assert moved.keywords == ("$Done",)
        assert await acc.read_message(moved.id, 1) == message(1)
        # A session holding the mailbox learns its new name.
        assert (await acc.changes_since(top.id, 0)).name == "Play/Old/2024"

    backend.run(go)


def test_rename_refusals(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        await acc.create_mailbox("A/B")
        with pytest.raises(MailboxExists):
            await acc.rename_mailbox("A", "Sent")
        with pytest.raises(BadMailboxName):
            await acc.rename_mailbox("A", "A/B/C")
        with pytest.raises(MailboxNotFound):
            await acc.rename_mailbox("Nope", "Other")
        assert {"A", "A/B"} <= {m.name for m in await acc.list_mailboxes()}

    backend.run(go)


def test_renaming_inbox_moves_its_messages_to_a_new_mailbox(backend: Harness) -> None:
    """RFC 3501 6.3.5, RFC 9051 6.3.6."""

    async def go(c: Contract) -> None:
        acc = await c.account()
        await acc.create_mailbox("INBOX/Child")
        for n in range(3):
            await acc.append("INBOX", message(n), ["$K"] if n else ["\\Seen"])
        inbox = await acc.get_mailbox("INBOX")
        await acc.rename_mailbox("INBOX", "Old/Inbox")
        after = await acc.get_mailbox("INBOX")
        new = await acc.get_mailbox("Old/Inbox")
        assert after.id == inbox.id and after.uidvalidity == inbox.uidvalidity
        assert (await acc.status("INBOX")).messages == 0
        assert new.id != inbox.id and new.mailboxid != inbox.mailboxid
        assert new.uidvalidity != inbox.uidvalidity
        assert "$K" in new.keywords
        _, metas = await acc.snapshot("Old/Inbox")
        assert [m.uid for m in metas] == [1, 2, 3]
        assert [m.flags for m in metas] == [{"\\Seen"}, {"$K"}, {"$K"}]
        assert [await acc.read_message(new.id, u) for u in (1, 2, 3)] == [message(n) for n in range(3)]
        assert "INBOX/Child" in {m.name for m in await acc.list_mailboxes()}  # children stay
        # INBOX's UIDs go on, never reused; its sessions see the messages go.
        assert (await acc.append("INBOX", message(9))).uid == 4
        assert (await acc.changes_since(inbox.id, inbox.highestmodseq)).expunged == [1, 2, 3]
        await acc.rename_mailbox("INBOX", "INBOX/Again")  # INBOX's children are fine targets
        assert (await acc.status("INBOX/Again")).messages == 1

    backend.run(go)


def test_subscriptions_are_names(backend: Harness) -> None:
    """RFC 9051 6.3.7: a subscription outlives its mailbox and may name none."""

    async def go(c: Contract) -> None:
        acc = await c.account()
        await acc.create_mailbox("Box")
        await acc.set_subscribed("Box", True)
        await acc.set_subscribed("Not/There", True)
        await acc.set_subscribed("Box", True)  # twice: once
        subs = await acc.subscriptions()
        assert subs == sorted(subs) and subs.count("Box") == 1 and "Not/There" in subs
        assert (await acc.get_mailbox("Box")).subscribed
        await acc.delete_mailbox("Box")
        assert "Box" in await acc.subscriptions()
        await acc.set_subscribed("Box", False)
        await acc.set_subscribed("Never", False)
        assert not {"Box", "Never"} & set(await acc.subscriptions())
        with pytest.raises(BadMailboxName):
            await acc.set_subscribed("a//b", True)
        # Another handle sees them at once.
        assert "Not/There" in await (await c.account()).subscriptions()

    backend.run(go)


def test_subscriptions_are_limited(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        have = len(await acc.subscriptions())
        for n in range(8 - have):
            await acc.set_subscribed(f"s{n}", True)
        with pytest.raises(LimitExceeded):
            await acc.set_subscribed("one-more", True)
        await acc.set_subscribed("s0", False)
        await acc.set_subscribed("one-more", True)

    backend.run(go, Limits(mailboxes=8))


def test_accounts_are_apart(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        store = await c.store()
        a, b = await store.account("alice@example.com"), await store.account("bob@example.org")
        await a.create_mailbox("Private")
        await a.append("INBOX", message(1))
        assert "Private" not in {m.name for m in await b.list_mailboxes()}
        assert (await b.status("INBOX")).messages == 0

    backend.run(go)
