"""Contract: the POP3 maildrop (RFC 1939): one session at a time, DELE hiding from POP3
only, and the leave-on-server expiry."""

from __future__ import annotations

import asyncio

import pytest

from letterbox.store.api import MailboxInUse

from .conftest import Contract, Harness, message


def test_the_maildrop_lock_is_exclusive_across_handles(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc, other = await c.account(), await c.account()
        async with acc.pop3_lock():
            with pytest.raises(MailboxInUse):
                async with acc.pop3_lock():
                    pass
            with pytest.raises(MailboxInUse):
                async with other.pop3_lock():
                    pass
        async with other.pop3_lock():
            pass

    backend.run(go)


def test_a_waiting_session_gets_the_lock_when_it_is_let_go(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        release, holding = asyncio.Event(), asyncio.Event()
        order: list[str] = []

        async def session(name: str, wait: float, hold: asyncio.Event | None) -> None:
            async with acc.pop3_lock(wait=wait):
                order.append(name)
                if hold is not None:
                    holding.set()
                    await hold.wait()

        first = asyncio.ensure_future(session("first", 0, release))
        await holding.wait()
        second = asyncio.ensure_future(session("second", 30, None))
        await asyncio.sleep(0)  # let it queue
        release.set()
        await asyncio.gather(first, second)
        assert order == ["first", "second"]

    backend.run(go)


def test_maildrop_hide_retrieve_and_expire(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        for n in range(3):
            await acc.append("INBOX", message(n))
        await acc.append("Archive", message(7))  # POP3 sees INBOX only
        inbox, drop = await acc.pop3_maildrop()
        assert inbox.name == "INBOX" and drop == [(u, len(message(u - 1))) for u in (1, 2, 3)]
        await acc.pop3_hide(inbox.id, [2])
        assert [u for u, _ in (await acc.pop3_maildrop())[1]] == [1, 3]
        assert (await acc.status("INBOX")).messages == 3  # IMAP still sees it
        recs = await acc.fetch(inbox.id, [1, 2], ["pop3"])
        assert [r.pop3_hidden for r in recs] == [False, True] and recs[0].pop3_retrieved is None
        await acc.pop3_mark_retrieved(inbox.id, [1, 3])
        first = (await acc.fetch(inbox.id, [1], ["pop3"]))[0].pop3_retrieved
        assert first is not None
        await acc.pop3_mark_retrieved(inbox.id, [1])  # the first retrieval counts
        assert (await acc.fetch(inbox.id, [1], ["pop3"]))[0].pop3_retrieved == first
        assert await acc.pop3_expire(first - 1) == 0
        assert await acc.pop3_expire(first + 1) == 2
        assert [m.uid for m in (await acc.snapshot("INBOX"))[1]] == [2]
        assert (await acc.status("Archive")).messages == 1

    backend.run(go)
