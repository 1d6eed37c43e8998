"""Message bodies: stored once per content, compressed, returned byte-exact, and gone
with their last message."""

from __future__ import annotations

import os
from collections.abc import Callable

from letterbox.store.api import CHUNK

from .conftest import Body, Fronts, drain

MSG = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: Same for all\r\n\r\n" + b"hello world\r\n" * 2000


async def _count(f: Fronts, sql: str) -> int:
    store = await f.store()
    async with store.db.conn() as conn:
        return int(await conn.fetchval(sql))


def test_one_delivery_to_five_recipients_and_copies_is_stored_once(pg: Callable[[Body], None]) -> None:
    async def go(f: Fronts) -> None:
        store = await f.store()
        accounts = [await store.account(f"user{i}@example.com") for i in range(5)]
        for acc in accounts:
            await acc.append("INBOX", MSG)
        first = accounts[0]
        inbox = await first.get_mailbox("INBOX")
        await first.copy(inbox.id, [1], "Archive")
        assert await _count(f, "SELECT count(*) FROM blobs") == 1
        assert await _count(f, "SELECT refs FROM blobs") == 6
        stored = await _count(f, "SELECT sum(octet_length(data)) FROM blob_chunks")
        assert stored < len(MSG) // 10  # compressed (and once)
        for acc in accounts:
            assert await acc.read_message((await acc.get_mailbox("INBOX")).id, 1) == MSG
        # Expunging copies keeps the content while one refers to it; the last takes it.
        for acc in accounts:
            await acc.expunge((await acc.get_mailbox("INBOX")).id, [1])
        assert await _count(f, "SELECT refs FROM blobs") == 1
        archive = await first.get_mailbox("Archive")
        assert await first.read_message(archive.id, 1) == MSG
        await first.delete_mailbox("Archive")
        assert await _count(f, "SELECT count(*) FROM blobs") == 0
        assert await _count(f, "SELECT count(*) FROM blob_chunks") == 0

    pg(go)


def test_big_and_incompressible_messages_come_back_exactly_in_any_range(pg: Callable[[Body], None]) -> None:
    async def go(f: Fronts) -> None:
        store = await f.store()
        acc = await store.account("alice@example.com")
        noise = os.urandom(CHUNK * 2 + 1234)
        data = b"Subject: big\r\n\r\n" + noise
        uid = (await acc.append("INBOX", data)).uid
        mid = (await acc.get_mailbox("INBOX")).id
        assert await acc.read_message(mid, uid) == data
        for start, length in ((0, 10), (CHUNK - 5, 10), (CHUNK - 1, CHUNK + 2), (len(data) - 3, 100), (5, 0)):
            assert await acc.read_range(mid, uid, start, length) == data[start : start + length]
            async with acc.read_chunks(mid, uid, start, length) as pieces:
                assert await drain(pieces) == data[start : start + length]
        assert await _count(f, "SELECT count(*) FROM blob_chunks WHERE NOT zstd") >= 2  # kept raw

    pg(go)


def test_a_stream_entered_survives_the_last_expunge(pg: Callable[[Body], None]) -> None:
    async def go(f: Fronts) -> None:
        store, other = await f.store(), await f.store()
        acc = await store.account("alice@example.com")
        data = b"Subject: x\r\n\r\n" + os.urandom(CHUNK * 5)  # streamed, not read at once
        await acc.append("INBOX", data)
        mid = (await acc.get_mailbox("INBOX")).id
        async with acc.read_chunks(mid, 1, 0, len(data)) as pieces:
            first = await anext(pieces)
            await (await other.account("alice@example.com")).expunge(mid, [1])
            rest = b"".join([p async for p in pieces])
        assert first + rest == data
        assert await _count(f, "SELECT count(*) FROM blobs") == 0

    pg(go)
