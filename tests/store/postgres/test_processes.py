"""Front ends in processes of their own: one killed with kill -9 in the middle of its
deliveries loses nothing it acknowledged and leaves no inconsistency; another's
deliveries reach this one's sessions through LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from letterbox.store.api import Change

from .conftest import Body, Fronts
from .frontend_child import message
from .harness import schema_for

USER = "alice@example.com"
ROOT = Path(__file__).resolve().parents[3]


async def _child(f: Fronts, count: int) -> asyncio.subprocess.Process:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.store.postgres.frontend_child", await f.dsn(), schema_for(f.where), USER,
        str(count), stdout=asyncio.subprocess.PIPE, env=env, cwd=ROOT,
    )
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"ready\n"
    return proc


async def consistent(f: Fronts) -> None:
    """Counters kept by triggers agree with the rows, and every blob's refs with the
    messages that refer to it."""
    store = await f.store()
    async with store.db.conn() as conn:
        assert await conn.fetchval(
            "SELECT count(*) FROM blobs b WHERE refs <> (SELECT count(*) FROM messages m WHERE m.blob = b.sha)"
        ) == 0
        assert await conn.fetchval(
            "SELECT count(*) FROM mailboxes x WHERE messages <> (SELECT count(*) FROM messages m"
            " WHERE m.mailbox_id = x.id) OR bytes <> (SELECT coalesce(sum(size), 0) FROM messages m"
            " WHERE m.mailbox_id = x.id)"
        ) == 0
        assert await conn.fetchval(
            "SELECT count(*) FROM blobs b WHERE chunks <> (SELECT count(*) FROM blob_chunks c WHERE c.sha = b.sha)"
        ) == 0


def test_kill_9_during_deliveries_loses_nothing_acknowledged(pg: Callable[[Body], None]) -> None:
    async def go(f: Fronts) -> None:
        store = await f.store()
        acc = await store.account(USER)
        sub = store.subscribe(USER)
        proc = await _child(f, 10_000)
        assert proc.stdout is not None
        acked: dict[int, int] = {}
        mine = []
        # This front end delivers too, meanwhile; the other's arrivals reach it by NOTIFY.
        while len(acked) < 30:
            uid, n = map(int, (await asyncio.wait_for(proc.stdout.readline(), 30)).split())
            acked[uid] = n
            mine.append((await acc.append("INBOX", b"Subject: parent\r\n\r\n" + str(n).encode())).uid)
        changes: list[Change] = []
        while not any(c.origin == 0 and c.kind == "append" for c in changes):
            await asyncio.wait_for(sub.wait(), 1.0)
            changes += sub.take()
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        inbox = await acc.get_mailbox("INBOX")
        for uid, n in acked.items():
            assert await acc.read_message(inbox.id, uid) == message(n)
        _, metas = await acc.snapshot("INBOX")
        uids = [m.uid for m in metas]
        assert len(uids) == len(set(uids)) and set(acked) | set(mine) <= set(uids)
        assert set(acked).isdisjoint(mine)
        await consistent(f)

    pg(go)


def test_concurrent_copies_moves_and_expunges_of_shared_content_stay_consistent(pg: Callable[[Body], None]) -> None:
    async def go(f: Fronts) -> None:
        one, two = await f.store(), await f.store()
        a, b = await one.account(USER), await two.account(USER)
        for i in range(30):
            await a.append("INBOX", message(i % 3))  # ten messages per content
        inbox = (await a.get_mailbox("INBOX")).id
        await a.create_mailbox("Work")
        uids = list(range(1, 31))
        for _ in range(3):
            await asyncio.gather(
                a.copy(inbox, uids, "Archive"),
                b.expunge(inbox, uids[::2]),
                a.move(inbox, uids[1::3], "Work"),
                b.copy(inbox, uids, "Trash"),
                b.move((await b.get_mailbox("Archive")).id, list(range(1, 200)), "Work"),
                a.expunge((await a.get_mailbox("Work")).id, list(range(1, 200, 4))),
            )
            await consistent(f)
        for name in ("Work", "Trash", "INBOX"):
            mbox, metas = await b.snapshot(name)
            for m in metas:
                assert (await b.read_message(mbox.id, m.uid)) in {message(0), message(1), message(2)}
        for name in ("Work", "Trash", "Archive"):
            await a.delete_mailbox(name)
        await a.expunge(inbox, list(range(1, 100)))
        store = await f.store()
        async with store.db.conn() as conn:
            assert await conn.fetchval("SELECT count(*) FROM blobs") == 0

    pg(go)
