"""What the console asks the store: usage per folder, the clean-up tool's selection and
usage read without opening an account."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from letterbox.store.api import MailboxNotFound, Usage
from letterbox.store.maildir import MaildirStore
from tests.imap.test_fetch_helpers import USER, Env

SMALL = b"From: a@example.org\r\nSubject: s\r\n\r\nhi\r\n"
BIG = b"From: a@example.org\r\nSubject: b\r\n\r\n" + b"x" * 5000 + b"\r\n"


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    yield e  # type: ignore[misc]
    e.close()


def test_folder_usage_and_selection(env: Env) -> None:
    async def go() -> None:
        old, new = 1_600_000_000.0, 1_700_000_000.0
        await env.append(SMALL, date=old)  # uid 1
        await env.append(BIG, date=old, flags=["\\Seen"])  # uid 2
        await env.append(BIG, date=new)  # uid 3
        await env.append(SMALL, date=new, flags=["\\Seen"])  # uid 4
        await env.append(BIG, mailbox="Archive", date=old)
        acc = await env.account()
        folders = {f.name: f for f in await acc.folder_usage()}
        assert [f.name for f in await acc.folder_usage()][0] == "INBOX"
        inbox = folders["INBOX"]
        assert (inbox.messages, inbox.unseen, inbox.oldest) == (4, 2, old)
        assert inbox.bytes == 2 * len(SMALL) + 2 * len(BIG)
        assert folders["Trash"].oldest is None and folders["Trash"].special_use == "\\Trash"
        box = await acc.get_mailbox("INBOX")

        def uids(found: list[tuple[int, int]]) -> list[int]:
            return [u for u, _ in found]

        assert uids(await acc.select_messages(box.id, received_before=new)) == [1, 2]
        assert uids(await acc.select_messages(box.id, larger_than=1000)) == [2, 3]
        assert uids(await acc.select_messages(box.id, seen=True)) == [2, 4]
        assert await acc.select_messages(box.id, received_before=new, larger_than=1000, seen=True) == [(2, len(BIG))]
        assert uids(await acc.select_messages(box.id, limit=3)) == [1, 2, 3]
        with pytest.raises(MailboxNotFound):
            await acc.select_messages(9999)

    asyncio.run(go())


def test_peek_usage_without_opening(env: Env, tmp_path: Path) -> None:
    async def go() -> None:
        await env.append(SMALL, BIG)
        assert await env.ctx.store.peek_usage(USER) == Usage(2, len(SMALL) + len(BIG))
        # Another store instance (no account open there) reads the index read-only.
        other = MaildirStore(tmp_path / "data" / "mail")
        try:
            assert await other.peek_usage(USER) == Usage(2, len(SMALL) + len(BIG))
            assert not other.is_open(USER)
            assert await other.peek_usage("nobody@example.com") is None
            assert await other.peek_usage("../../etc@x") is None
        finally:
            await other.close()

    asyncio.run(go())
