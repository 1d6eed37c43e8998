"""STORE and EXPUNGE without a lock: read, then write only if the mailbox's MODSEQ has
not moved. A change made elsewhere in between sends them the locked way, losing nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from letterbox.store.api import changes_by
from letterbox.store.postgres import account as pgaccount

from .conftest import Body, Fronts

USER = "alice@example.com"


def _msg(n: int) -> bytes:
    return f"Subject: {n}\r\nMessage-ID: <{n}@x>\r\n\r\nbody {n}\r\n".encode()


class _RacingConn:
    """A connection whose unlocked reads let *race* run right after them."""

    def __init__(self, real: Any, race: Callable[[], Any]) -> None:
        self._real, self._race = real, race

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        row = await self._real.fetchrow(sql, *args)
        if sql in (pgaccount._STORE_READ_SQL, pgaccount._EXPUNGE_READ_SQL):
            await self._race()
        return row


def _race_after_reads(store: Any, race: Callable[[], Any]) -> None:
    real_run = store.db.run

    async def run(body: Any, *, autocommit: bool = False) -> Any:
        async def racing(tx: Any) -> Any:
            tx.conn = _RacingConn(tx.conn, race)
            return await body(tx)

        return await real_run(racing if autocommit else body, autocommit=autocommit)

    store.db.run = run


def test_a_store_made_elsewhere_between_the_read_and_the_write_is_kept(pg: Callable[[Body], None]) -> None:
    async def go(f: Fronts) -> None:
        one, two = await f.store(), await f.store()
        a, b = await one.account(USER), await two.account(USER)
        await a.append("INBOX", _msg(1))
        inbox = await a.get_mailbox("INBOX")
        raced: list[int] = []

        async def race() -> None:
            if not raced:
                raced.append(1)
                await b.store_flags(inbox.id, [1], "add", ["\\Flagged"])

        _race_after_reads(one, race)
        sub = one.subscribe(USER)
        with changes_by(3):
            got = await a.store_flags(inbox.id, [1], "add", ["\\Seen"])
        assert raced == [1]
        # b's \Flagged is kept: the unlocked write found the MODSEQ moved and the
        # locked way read the message again.
        assert [(m.uid, sorted(m.flags)) for m in got] == [(1, ["\\Flagged", "\\Seen"])]
        _, metas = await b.snapshot("INBOX")
        assert [(m.uid, sorted(m.flags)) for m in metas] == [(1, ["\\Flagged", "\\Seen"])]
        status = await b.status("INBOX")
        assert got[0].modseq == status.mailbox.highestmodseq == metas[0].modseq
        # a's own change is told once, with the MODSEQ it got.
        mine = [c for c in sub.take() if c.origin == 3]
        assert [(c.kind, c.modseq) for c in mine] == [("flags", got[0].modseq)]

    pg(go)


def test_concurrent_stores_from_two_front_ends_lose_no_flag(pg: Callable[[Body], None]) -> None:
    async def go(f: Fronts) -> None:
        a, b = await (await f.store()).account(USER), await (await f.store()).account(USER)
        for i in range(1, 6):
            await a.append("INBOX", _msg(i))
        inbox = await a.get_mailbox("INBOX")
        flags = ["\\Seen", "\\Flagged", "\\Answered", "\\Draft"]
        results = await asyncio.gather(*[
            (a if i % 2 else b).store_flags(inbox.id, [1 + (i % 5)], "add", [flags[i % 4]]) for i in range(40)
        ])
        _, metas = await a.snapshot("INBOX")
        want = {1 + (i % 5): {flags[j % 4] for j in range(40) if j % 5 == i % 5} for i in range(5)}
        assert {m.uid: set(m.flags) for m in metas} == want
        made = [m.modseq for r in results for m in r]
        assert len(made) == len(set(made))  # each change its own MODSEQ
        status = await a.status("INBOX")
        assert status.mailbox.highestmodseq == max(made)

    pg(go)


def test_an_expunge_made_elsewhere_between_the_read_and_the_write_is_kept(pg: Callable[[Body], None]) -> None:
    async def go(f: Fronts) -> None:
        one, two = await f.store(), await f.store()
        a, b = await one.account(USER), await two.account(USER)
        for i in range(1, 4):
            await a.append("INBOX", _msg(i))
        inbox = await a.get_mailbox("INBOX")
        raced: list[int] = []

        async def race() -> None:
            if not raced:
                raced.append(1)
                assert await b.expunge(inbox.id, [2]) == [2]
                raced.append((await b.status("INBOX")).mailbox.highestmodseq)

        _race_after_reads(one, race)
        sub = one.subscribe(USER)
        with changes_by(3):
            gone = await a.expunge(inbox.id, [1, 2])
        assert len(raced) == 2
        assert gone == [1]  # 2 went through b meanwhile, and is not reported twice
        _, metas = await b.snapshot("INBOX")
        assert [m.uid for m in metas] == [3]
        cs = await b.changes_since(inbox.id, 1)
        assert cs.expunged == [1, 2]
        mine = [c for c in sub.take() if c.origin == 3]
        assert [(c.kind, c.modseq) for c in mine] == [("expunge", cs.highestmodseq)]
        assert cs.highestmodseq > raced[1]  # a MODSEQ of its own, after b's

    pg(go)
