"""Several front ends on one database: UIDs, the change feed, the POP3 lock, and what a
lost connection does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest

from letterbox.store.api import Change, MailboxInUse, Unavailable, changes_by
from letterbox.store.postgres import PostgresStore

from .conftest import Body, Fronts

USER = "alice@example.com"


def _msg(n: int) -> bytes:
    return f"Subject: {n}\r\nMessage-ID: <{n}@x>\r\n\r\nbody {n}\r\n".encode()


async def _changes(sub: object, timeout: float = 1.0) -> list[Change]:
    await asyncio.wait_for(sub.wait(), timeout)  # type: ignore[attr-defined]
    return sub.take()  # type: ignore[attr-defined, no-any-return]


def test_concurrent_appends_from_two_front_ends_get_distinct_uids(pg: Callable[[Body], None]) -> None:
    async def go(f: Fronts) -> None:
        a, b = await (await f.store()).account(USER), await (await f.store()).account(USER)
        results = await asyncio.gather(*[(a if i % 2 else b).append("INBOX", _msg(i)) for i in range(40)])
        uids = sorted(r.uid for r in results)
        assert uids == list(range(1, 41))
        status = await a.status("INBOX")
        assert (status.messages, status.mailbox.uidnext) == (40, 41)
        _, metas = await b.snapshot("INBOX")
        assert len({m.modseq for m in metas}) == 40  # one MODSEQ each

    pg(go)


def test_a_change_on_one_front_end_reaches_the_other_and_no_echo_comes_back(pg: Callable[[Body], None]) -> None:
    async def go(f: Fronts) -> None:
        one, two = await f.store(), await f.store()
        a, b = await one.account(USER), await two.account(USER)
        sub_a, sub_b = one.subscribe(USER), two.subscribe(USER)
        with changes_by(7):
            await a.append("INBOX", _msg(1))
        mine = sub_a.take()
        assert [(c.kind, c.origin) for c in mine] == [("append", 7)]  # told at once, locally
        seen = await _changes(sub_b)
        assert [(c.kind, c.mailbox_id, c.modseq, c.name, c.origin) for c in seen] == [
            ("append", mine[0].mailbox_id, mine[0].modseq, "INBOX", 0)]
        # Notices arrive in commit order: once b's reaches a, a's own echo has come and gone.
        await b.create_mailbox("Projects")
        got = await _changes(sub_a)
        assert [(c.kind, c.name) for c in got] == [("mailbox", "Projects")]
        sub_bob = one.subscribe("bob@example.org")
        await b.set_acl("Projects", "bob@example.org", "lr")
        acl = await _changes(sub_bob)
        assert [(c.kind, c.account, c.user, c.name) for c in acl] == [("acl", USER, "bob@example.org", "Projects")]

    pg(go)


def test_the_pop3_lock_holds_across_front_ends_and_dies_with_its_connection(pg: Callable[[Body], None]) -> None:
    async def go(f: Fronts) -> None:
        one, two = await f.store(), await f.store()
        a, b = await one.account(USER), await two.account(USER)
        async with a.pop3_lock():
            with pytest.raises(MailboxInUse):
                async with b.pop3_lock():
                    pass
        async with b.pop3_lock():
            with pytest.raises(MailboxInUse):
                async with a.pop3_lock(wait=0.3):
                    pass

    async def killed(f: Fronts) -> None:
        one, two = await f.store(), await f.store()
        a, b = await one.account(USER), await two.account(USER)
        held = asyncio.Event()
        release = asyncio.Event()

        async def holder() -> None:
            async with a.pop3_lock():
                held.set()
                await release.wait()

        task = asyncio.create_task(holder())
        await held.wait()
        # The front end holding it dies: PostgreSQL ends its session, and the lock with it.
        admin = await asyncpg.connect(await f.dsn())
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1",
                a.account_id,
            )
        finally:
            await admin.close()
        async with b.pop3_lock(wait=5.0):
            pass
        release.set()
        await task

    pg(go)
    pg(killed)


def test_a_lost_connection_is_unavailable_then_the_pool_and_the_feed_come_back(pg: Callable[[Body], None]) -> None:
    async def go(f: Fronts) -> None:
        one, two = await f.store(), await f.store()
        a, b = await one.account(USER), await two.account(USER)
        sub = one.subscribe(USER)
        assert one._listener is not None
        admin = await asyncpg.connect(await f.dsn())
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'letterbox'"
                " AND datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        outcomes = []
        for _ in range(3):
            try:
                outcomes.append((await a.status("INBOX")).messages)
            except Unavailable:
                outcomes.append(-1)
        assert outcomes[-1] == 0  # the pool made new connections by itself
        await asyncio.wait_for(one._listener.ready.wait(), 10)
        await (await two.account(USER)).append("INBOX", _msg(1))
        assert b is not None
        seen = await _changes(sub, 5.0)
        assert seen and seen[-1].kind == "append"

    pg(go)


def test_no_server_is_unavailable() -> None:
    async def go() -> None:
        with pytest.raises(Unavailable):
            await PostgresStore.open("postgresql://postgres@127.0.0.1:1/none")

    asyncio.run(go())


def test_the_feed_keeps_trying_while_the_server_refuses_connections(pg: Callable[[Body], None]) -> None:
    async def go(f: Fronts) -> None:
        one, two = await f.store(), await f.store()
        await one.account(USER)
        sub = one.subscribe(USER)
        listener = one._listener
        assert listener is not None
        real, refusals = listener._connect, []

        async def refusing() -> object:
            if len(refusals) < 3:
                refusals.append(1)
                raise Unavailable("refused")
            return await real()

        listener._connect = refusing
        admin = await asyncpg.connect(await f.dsn())
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'letterbox'"
                " AND datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE 'LISTEN%'"
            )
        finally:
            await admin.close()
        while len(refusals) < 3 or not listener.ready.is_set():
            await asyncio.sleep(0.05)  # polled: reconnecting has no event to await from outside
        await (await two.account(USER)).append("INBOX", _msg(1))
        seen = await _changes(sub, 5.0)
        assert seen and seen[-1].kind == "append"

    pg(go)
