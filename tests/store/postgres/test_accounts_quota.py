"""What two front ends must agree on: an account deleted by one is gone for the other,
the last room under a quota goes to one writer, and flag tables kept in memory follow
the other's changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from letterbox.store.api import AccountGone, Change, OverQuota, Quota
from letterbox.store.postgres import notify
from letterbox.store.postgres.flagtable import build

from .conftest import Body, Fronts

USER = "alice@example.com"


def _msg(n: int) -> bytes:
    return f"Subject: {n:02d}\r\n\r\n{'x' * 80}\r\n".encode()  # all of one size


def test_an_account_deleted_by_one_front_end_is_gone_for_the_other(pg: Callable[[Body], None]) -> None:
    async def go(f: Fronts) -> None:
        one, two = await f.store(), await f.store()
        a, b = await one.account(USER), await two.account(USER)
        await a.append("INBOX", _msg(1))
        await one.delete_account(USER)
        with pytest.raises(AccountGone):
            await b.status("INBOX")
        again = await two.account(USER)
        assert again is not b and (await again.status("INBOX")).messages == 0
        assert await one.peek_usage(USER) == await two.peek_usage(USER)

    pg(go)


def test_the_last_room_under_a_quota_goes_to_one_front_end(pg: Callable[[Body], None]) -> None:
    async def go(f: Fronts) -> None:
        one, two = await f.store(), await f.store()
        a, b = await one.account(USER), await two.account(USER)
        size = len(_msg(0))
        quota = Quota(bytes=size * 5)
        results = await asyncio.gather(
            *[(a if i % 2 else b).append("INBOX" if i % 3 else "Archive", _msg(i), quota=quota) for i in range(12)],
            return_exceptions=True,
        )
        assert sum(1 for r in results if not isinstance(r, BaseException)) == 5
        assert all(isinstance(r, OverQuota) for r in results if isinstance(r, BaseException))
        assert (await a.usage()).messages == 5

    pg(go)


def test_flag_tables_follow_changes_made_elsewhere(pg: Callable[[Body], None]) -> None:
    async def go(f: Fronts) -> None:
        one, two = await f.store(), await f.store()
        a, b = await one.account(USER), await two.account(USER)
        for i in range(8):
            await a.append("INBOX", _msg(i), ["$k"] if i % 2 else [])
        mid = (await a.get_mailbox("INBOX")).id
        first = await a.flag_table(mid)
        await b.store_flags(mid, [1, 2, 3], "add", ["\\Seen"])
        await b.expunge(mid, [4, 5])
        await b.append("INBOX", _msg(9), ["\\Flagged"])
        later = await a.flag_table(mid)  # brought up to date from the MODSEQ
        _, metas = await b.snapshot("INBOX")
        fresh = build(later.modseq, later.uidvalidity, {m.uid: " ".join(sorted(m.flags)) for m in metas}, [])
        assert later.modseq > first.modseq and list(later.uids) == list(fresh.uids)
        assert [later.texts[i] for i in later.flag_ids] == [fresh.texts[i] for i in fresh.flag_ids]
        assert sum(later.counts.values()) == len(later.uids) == 7
        assert list(first.texts) == list(later.texts[: len(first.texts)])  # texts only grow
        assert await a.flag_table(mid) is later  # nothing changed: the same table

    pg(go)


def test_change_notices_carry_every_field_and_stay_under_the_limit() -> None:
    change = Change("a@example.com", 12, 345, "metadata", "Two words/ünï", "Old name", 9,
                    ("/private/comment", "/shared/x"), "b@example.com")
    sender, back = notify.decode(notify.encode("s1", change)) or ("", None)
    assert sender == "s1" and back == Change(change.account, 12, 345, "metadata", change.name, "Old name", 0,
                                             change.entries, change.user)
    many = Change("a@example.com", 1, 0, "metadata", "x", entries=tuple(f"/shared/{i:04d}" * 4 for i in range(400)))
    text = notify.encode("s1", many)
    assert len(text.encode()) <= notify.MAX_PAYLOAD
    decoded = notify.decode(text)
    assert decoded is not None and decoded[1].entries == ()
    assert notify.decode("not ours") is None
