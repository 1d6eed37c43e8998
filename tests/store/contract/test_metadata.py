"""Contract: RFC 5464 metadata: values as octets, depth, limits, all-or-nothing
changes, and entries that follow their mailbox."""

from __future__ import annotations

import pytest

from letterbox.store.api import Limits, MailboxNotFound, MetadataTooBig, MetadataTooMany

from .conftest import Contract, Harness


def test_set_get_remove_and_depth(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        await acc.set_metadata("INBOX", [("/private/comment", b"mine"), ("/shared/comment", b"a\x00\xff\r\nb"),
                                         ("/private/f/a", b"1"), ("/private/f/a/deep", b"2"), ("/private/e", b"")])
        await acc.set_metadata(None, [("/shared/comment", b"server")])
        assert await acc.get_metadata("inbox", ["/shared/comment", "/private/comment", "/private/none"]) == [
            ("/private/comment", b"mine"), ("/shared/comment", b"a\x00\xff\r\nb")]
        assert await acc.get_metadata("INBOX", ["/private/e"]) == [("/private/e", b"")]
        assert await acc.get_metadata(None, ["/shared/comment"]) == [("/shared/comment", b"server")]
        assert await acc.get_metadata("Sent", ["/shared/comment"]) == []
        assert await acc.get_metadata("INBOX", ["/private/f"], depth=1) == [("/private/f/a", b"1")]
        assert await acc.get_metadata("INBOX", ["/private/f"], depth=-1) == [
            ("/private/f/a", b"1"), ("/private/f/a/deep", b"2")]
        await acc.set_metadata("INBOX", [("/private/comment", None), ("/private/never", None)])
        assert await acc.get_metadata("INBOX", ["/private/comment"]) == []
        assert await (await c.account()).get_metadata("INBOX", ["/private/e"]) == [("/private/e", b"")]
        with pytest.raises(MailboxNotFound):
            await acc.get_metadata("Nope", ["/shared/comment"])
        with pytest.raises(MailboxNotFound):
            await acc.set_metadata("Nope", [("/shared/comment", b"x")])

    backend.run(go)


def test_limits_and_all_or_nothing(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        with pytest.raises(MetadataTooBig) as big:
            await acc.set_metadata("INBOX", [("/private/a", b"ok"), ("/private/b", b"x" * 101)])
        assert big.value.limit == 100
        assert await acc.get_metadata("INBOX", ["/private/a"]) == []  # none of the changes
        await acc.set_metadata("INBOX", [("/private/a", b"1"), ("/private/b", b"2"), ("/private/c", b"3")])
        with pytest.raises(MetadataTooMany):
            await acc.set_metadata("INBOX", [("/private/c", None), ("/private/d", b"4"), ("/private/e", b"5")])
        assert [e for e, _ in await acc.get_metadata("INBOX", ["/private"], depth=1)] == [
            "/private/a", "/private/b", "/private/c"]
        await acc.set_metadata("Sent", [("/private/d", b"4")])  # room of its own

    backend.run(go, Limits(metadata_value=100, metadata_entries=3))


def test_entries_follow_rename_are_copied_by_rename_inbox_and_go_with_delete(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        await acc.create_mailbox("Box")
        await acc.set_metadata("Box", [("/shared/comment", b"box")])
        await acc.set_metadata("INBOX", [("/shared/comment", b"inbox")])
        await acc.rename_mailbox("Box", "Moved")
        assert await acc.get_metadata("Moved", ["/shared/comment"]) == [("/shared/comment", b"box")]
        await acc.rename_mailbox("INBOX", "Old")
        assert await acc.get_metadata("Old", ["/shared/comment"]) == [("/shared/comment", b"inbox")]
        assert await acc.get_metadata("INBOX", ["/shared/comment"]) == [("/shared/comment", b"inbox")]
        await acc.delete_mailbox("Moved")
        await acc.create_mailbox("Moved")
        assert await acc.get_metadata("Moved", ["/shared/comment"]) == []

    backend.run(go)
