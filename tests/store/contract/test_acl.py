"""Contract: RFC 4314 ACLs and a reader's own \\Seen on a shared mailbox."""

from __future__ import annotations

import pytest

from letterbox.store import acl
from letterbox.store.api import LimitExceeded, Limits, MailboxNotFound, StoreError

from .conftest import USER, Contract, Harness, message

ANN, BOB = "ann@example.com", "bob@example.com"


def test_set_get_granted_and_limits(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        store = await c.store()
        acc = await store.account(USER)
        await acc.set_acl("INBOX", ANN, "lrs")
        await acc.set_acl("Sent", acl.ANYONE, "l")
        assert await acc.get_acl("inbox") == {ANN: "lrs"}
        assert await acc.granted([ANN, acl.ANYONE]) == {"INBOX": "lrs", "Sent": "l"}
        assert await acc.granted([BOB, acl.ANYONE], "Sent") == {"Sent": "l"}
        assert USER in await store.grantors(ANN)
        await acc.set_acl("INBOX", BOB, "l")
        with pytest.raises(LimitExceeded):
            await acc.set_acl("INBOX", "carl@example.com", "l")
        await acc.set_acl("INBOX", BOB, "")
        assert await acc.get_acl("INBOX") == {ANN: "lrs"}
        with pytest.raises(MailboxNotFound):
            await acc.set_acl("Nowhere", ANN, "l")
        with pytest.raises(StoreError):
            await acc.set_acl("INBOX", USER, "l")  # the owner has every right, always
        await acc.forget_identifier(ANN)
        assert await acc.granted([ANN]) == {}
        # A child made later inherits its parent's ACL; a rename keeps it.
        await acc.create_mailbox("Team")
        await acc.set_acl("Team", BOB, "lr")
        await acc.create_mailbox("Team/Sub")
        assert await acc.get_acl("Team/Sub") == {BOB: "lr"}
        await acc.rename_mailbox("Team", "Crew")
        assert await acc.get_acl("Crew/Sub") == {BOB: "lr"}
        assert await (await c.account()).get_acl("Crew") == {BOB: "lr"}

    backend.run(go, Limits(acl_entries=2))


def test_a_reader_has_their_own_seen(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        for n in range(2):
            await acc.append("INBOX", message(n))
        inbox = await acc.get_mailbox("INBOX")
        ann = acc.reader(ANN)
        assert acc.reader(USER) is acc
        await ann.store_flags(inbox.id, [1], "add", ["\\Seen", "\\Flagged"])
        assert [r.flags for r in await acc.fetch(inbox.id, [1], ["flags"])] == [{"\\Flagged"}]
        assert [r.flags for r in await ann.fetch(inbox.id, [1], ["flags"])] == [{"\\Flagged", "\\Seen"}]
        assert (await ann.status("INBOX")).unseen == 1 and (await acc.status("INBOX")).unseen == 2
        await acc.store_flags(inbox.id, [2], "add", ["\\Seen"])
        assert [r.flags for r in await ann.fetch(inbox.id, [2], ["flags"])] == [frozenset()]

    backend.run(go)
