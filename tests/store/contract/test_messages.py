"""Contract: APPEND and what reading gives back: bytes exactly as stored, and the
index's data (FETCH and SEARCH read no message)."""

from __future__ import annotations

import time

import pytest

from letterbox.mime import parse_message
from letterbox.store.api import (
    CHUNK,
    LimitExceeded,
    Limits,
    MailboxNotFound,
    MessageGone,
    StoreError,
)

from .conftest import MSG, Contract, Harness, message


def test_append_keeps_flags_keywords_and_internal_date(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        when = 760_000_000.0
        r1 = await acc.append("inbox", MSG, ["\\seen", "\\DRAFT", "$Label", "\\Recent", "\\Custom"], when)
        before = time.time()
        r2 = await acc.append("INBOX", message(2))
        inbox = await acc.get_mailbox("INBOX")
        assert (r1.uid, r2.uid) == (1, 2) and r1.uidvalidity == inbox.uidvalidity
        assert inbox.uidnext == 3 and inbox.keywords == ("$Label",)
        recs = await acc.fetch(inbox.id, [1, 2], ["flags", "internaldate", "size", "savedate", "modseq"])
        assert recs[0].flags == {"\\Seen", "\\Draft", "$Label"}  # \Recent and unknown ones dropped
        assert recs[1].flags == frozenset()
        assert recs[0].internaldate == when
        assert before - 1 <= recs[1].internaldate <= time.time() + 1
        assert [r.size for r in recs] == [len(MSG), len(message(2))]
        assert recs[0].savedate >= before - 1  # saved now, whatever the internal date
        assert 0 < recs[0].modseq < recs[1].modseq <= inbox.highestmodseq

    backend.run(go)


def test_bad_flags_and_missing_mailboxes_store_nothing(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        with pytest.raises(StoreError):
            await acc.append("INBOX", MSG, ["two words"])
        with pytest.raises(StoreError):
            await acc.append("INBOX", MSG, ["back\\slash"])
        with pytest.raises(LimitExceeded):
            await acc.append("INBOX", MSG, ["k" * 11])
        with pytest.raises(MailboxNotFound):
            await acc.append("Nowhere", MSG)
        status = await acc.status("INBOX")
        assert (status.messages, status.size) == (0, 0)
        assert (await acc.usage()).messages == 0

    backend.run(go, Limits(keyword_length=10))


def test_keywords_per_mailbox_are_limited_for_clients(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        await acc.append("INBOX", message(1), ["$a", "$b"])
        with pytest.raises(LimitExceeded):
            await acc.append("INBOX", message(2), ["$c"])
        inbox = await acc.get_mailbox("INBOX")
        with pytest.raises(LimitExceeded):
            await acc.store_flags(inbox.id, [1], "add", ["$c"])
        await acc.append("INBOX", message(3), ["$a", "\\Flagged"])  # known ones cost nothing
        assert (await acc.get_mailbox("INBOX")).keywords == ("$a", "$b")
        assert (await acc.status("INBOX")).messages == 2

    backend.run(go, Limits(keywords=2))


def test_bytes_come_back_exactly_whole_in_ranges_and_in_chunks(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        big = message(1, bytes(range(256)) * (CHUNK * 2 // 256) + b"\r\nno final line break")
        odd = b"Subject: x\n\nbare LF\nand \x00 NUL and \xff\r\n.\r\n"
        await acc.append("INBOX", big)
        await acc.append("INBOX", odd)
        inbox = await acc.get_mailbox("INBOX")
        assert await acc.read_message(inbox.id, 1) == big
        assert await acc.read_message(inbox.id, 2) == odd
        assert await acc.read_range(inbox.id, 1, 10, 100) == big[10:110]
        pieces: list[bytes] = []
        async with acc.read_chunks(inbox.id, 1, 5, len(big) - 5) as chunks:
            async for piece in chunks:
                assert 0 < len(piece) <= CHUNK
                pieces.append(piece)
        assert b"".join(pieces) == big[5:] and len(pieces) >= 2
        rec = (await acc.fetch(inbox.id, [1], ["size"]))[0]
        assert rec.size == len(big)

    backend.run(go)


def test_reading_what_is_gone(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        await acc.append("INBOX", MSG)
        inbox = await acc.get_mailbox("INBOX")
        await acc.expunge(inbox.id, [1])
        with pytest.raises(MessageGone):
            await acc.read_message(inbox.id, 1)
        with pytest.raises(MessageGone):
            await acc.read_range(inbox.id, 1, 0, 10)
        with pytest.raises(MessageGone):
            async with acc.read_chunks(inbox.id, 1, 0, 10):
                pass
        assert await acc.fetch(inbox.id, [1, 7], ["flags"]) == []

    backend.run(go)


def test_chunks_come_from_the_message_as_it_was_when_entered(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc, other = await c.account(), await c.account()
        data = message(1, b"y" * (CHUNK * 3))
        await acc.append("INBOX", data)
        inbox = await acc.get_mailbox("INBOX")
        got = b""
        async with acc.read_chunks(inbox.id, 1, 0, len(data)) as chunks:
            await other.expunge(inbox.id, [1])
            await acc.expunge(inbox.id, [1])
            async for piece in chunks:
                got += piece
        assert got == data

    backend.run(go)


def test_fetch_and_search_read_the_parse_made_at_append(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        await acc.append("INBOX", MSG)
        await acc.append("INBOX", message(2))
        await acc.append("INBOX", MSG)  # the same content again
        inbox = await acc.get_mailbox("INBOX")
        parsed = parse_message(MSG)
        fields = ["envelope", "bodystructure", "body", "parts", "header_size", "sent_date",
                  "subject", "message_id", "emailid", "preview", "search"]
        one, two, three = await acc.fetch(inbox.id, [1, 2, 3], fields)
        assert one.envelope == parsed.envelope and one.bodystructure == parsed.bodystructure
        assert one.body == parsed.body and one.parts == parsed.parts
        assert one.header_size == parsed.header_size == MSG.index(b"\r\n\r\n") + 4
        assert one.sent_date == parsed.sent_date and one.subject == "hello there"
        assert one.message_id == "<one@example.com>"
        assert one.preview == parsed.preview
        assert "hello there" in one.search and "ann" in one.search
        # RFC 8474: the same content has the same EMAILID, other content another.
        assert one.emailid == three.emailid != two.emailid and one.emailid
        assert await acc.search_headers(inbox.id, "subject", "hello") == [1, 3]
        assert await acc.search_headers(inbox.id, "from", "ann") == [1, 3]
        assert await acc.search_headers(inbox.id, "message-id", "<2@example.com>") == [2]
        assert await acc.search_headers(inbox.id, "cc", "x") == []
        values = await acc.fetch_values(inbox.id, [1, 2], ["size", "subject", "emailid"])
        assert values == [(1, len(MSG), "hello there", one.emailid), (2, len(message(2)), "message 2", two.emailid)]

    backend.run(go)


def test_snapshot_select_info_flag_table_and_status_agree(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        flags = [["\\Seen"], [], ["\\Seen", "\\Deleted"], ["$K"]]
        for n, fl in enumerate(flags):
            await acc.append("INBOX", message(n, b"x" * n), fl)
        inbox = await acc.get_mailbox("INBOX")
        await acc.expunge(inbox.id, [4])
        mbox, metas = await acc.snapshot("INBOX")
        assert [m.uid for m in metas] == [1, 2, 3]
        assert [m.flags for m in metas] == [{"\\Seen"}, set(), {"\\Seen", "\\Deleted"}]
        _, uids, first_unseen = await acc.select_info("INBOX")
        assert list(uids) == [1, 2, 3] and first_unseen == 2
        table = await acc.flag_table(inbox.id)
        assert list(table.uids) == [1, 2, 3] and table.uidvalidity == inbox.uidvalidity
        assert [set(table.texts[i].split()) for i in table.flag_ids] == [m.flags for m in metas]
        assert table.modseq == mbox.highestmodseq
        status = await acc.status("INBOX")
        assert (status.messages, status.unseen, status.deleted) == (3, 1, 1)
        assert status.size == sum(len(message(n, b"x" * n)) for n in range(3))
        assert status.deleted_size == len(message(2, b"xx"))
        assert await acc.uids_with_flag(inbox.id, "\\Seen") == [1, 3]
        assert await acc.uids_with_flag(inbox.id, "\\Deleted") == [3]
        assert await acc.uids_with_flag(inbox.id, "$K") == []

    backend.run(go)


def test_recent_goes_to_one_session(backend: Harness) -> None:
    """RFC 3501 2.3.1.2: each message is \\Recent in one session only."""

    async def go(c: Contract) -> None:
        acc = await c.account()
        inbox = await acc.get_mailbox("INBOX")
        await acc.append("INBOX", message(1))
        await acc.append("INBOX", message(2))
        assert await acc.take_recent(inbox.id, claim=False) == (1, 3)  # EXAMINE: stays
        assert (await acc.status("INBOX")).recent == 2
        assert await acc.take_recent(inbox.id) == (1, 3)
        assert await (await c.account()).take_recent(inbox.id) == (3, 3)  # another session
        await acc.append("INBOX", message(3))
        assert (await acc.status("INBOX")).recent == 1
        assert await acc.take_recent(inbox.id) == (3, 4)

    backend.run(go)


def test_uids_given_back_by_expunge_are_never_handed_out_again(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        for n in range(3):
            await acc.append("INBOX", message(n))
        inbox = await acc.get_mailbox("INBOX")
        assert await acc.expunge(inbox.id, [2, 3, 99]) == [2, 3]
        assert await acc.expunge(inbox.id, [2]) == []
        assert (await acc.append("INBOX", message(4))).uid == 4
        usage = await acc.usage()
        assert (usage.messages, usage.bytes) == (2, len(message(0)) + len(message(4)))

    backend.run(go)
