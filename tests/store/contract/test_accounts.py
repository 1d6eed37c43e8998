"""Contract: accounts as a whole: deletion, incarnations and usage read from outside."""

from __future__ import annotations

import pytest

from letterbox.store.api import AccountGone, StoreError

from .conftest import USER, Contract, Harness, message


def test_a_deleted_account_is_gone_for_open_handles_and_comes_back_empty(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        store = await c.store()
        acc = await store.account(USER)
        await acc.append("INBOX", message(1))
        await acc.create_mailbox("Mine")
        await store.delete_account(USER)
        with pytest.raises(AccountGone):
            await acc.status("INBOX")
        again = await store.account(USER)
        assert (await again.status("INBOX")).messages == 0
        assert "Mine" not in {m.name for m in await again.list_mailboxes()}

    backend.run(go)


def test_a_new_incarnation_never_sees_an_old_ones_mail(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        store = await c.store()
        first = await store.account(USER, "one")
        await first.append("INBOX", message(1))
        inbox = await first.get_mailbox("INBOX")
        assert (await (await c.store()).account(USER, "one")).address == USER
        second = await store.account(USER, "two")
        assert (await second.status("INBOX")).messages == 0
        assert (await second.get_mailbox("INBOX")).uidvalidity != inbox.uidvalidity

    backend.run(go)


def test_peek_usage_and_bad_addresses(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        store = await c.store()
        assert await store.peek_usage("nobody@example.com") is None
        acc = await store.account(USER)
        await acc.append("INBOX", message(1))
        peeked = await (await c.store()).peek_usage(USER)
        assert peeked is not None and (peeked.messages, peeked.bytes) == (1, len(message(1)))
        for bad in ("no-at-sign", "../x@example.com", "a/b@example.com"):
            with pytest.raises(StoreError):
                await store.account(bad)

    backend.run(go)
