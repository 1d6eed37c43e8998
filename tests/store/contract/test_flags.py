"""Contract: STORE of flags and keywords, MODSEQ (RFC 7162) and UNCHANGEDSINCE, and
what another handle learns from changes_since."""

from __future__ import annotations

from letterbox.store.api import Limits

from .conftest import Contract, Harness, message


def test_store_modes_return_only_what_changed_with_one_new_modseq(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        for n in range(3):
            await acc.append("INBOX", message(n), ["\\Seen"] if n == 0 else [])
        inbox = await acc.get_mailbox("INBOX")
        changed = await acc.store_flags(inbox.id, [1, 2, 3], "add", ["\\seen", "$Work"])
        assert [m.uid for m in changed] == [1, 2, 3]
        assert [m.flags for m in changed] == [{"\\Seen", "$Work"}] * 3
        modseq = changed[0].modseq
        assert {m.modseq for m in changed} == {modseq} and modseq > inbox.highestmodseq
        assert (await acc.get_mailbox("INBOX")).highestmodseq == modseq
        assert "$Work" in (await acc.get_mailbox("INBOX")).keywords
        assert await acc.store_flags(inbox.id, [1, 2, 3], "add", ["\\Seen"]) == []  # nothing new
        assert (await acc.get_mailbox("INBOX")).highestmodseq == modseq
        removed = await acc.store_flags(inbox.id, [2, 3, 44], "remove", ["$Work"])
        assert [(m.uid, m.flags) for m in removed] == [(2, {"\\Seen"}), (3, {"\\Seen"})]
        replaced = await acc.store_flags(inbox.id, [1], "replace", ["\\Flagged", "\\Recent"])
        assert replaced[0].flags == {"\\Flagged"} and replaced[0].modseq > removed[0].modseq
        # The keyword stays announced after its last message lost it.
        assert "$Work" in (await acc.get_mailbox("INBOX")).keywords
        recs = await acc.fetch(inbox.id, [1, 2, 3], ["flags", "modseq"])
        assert [(r.flags, r.modseq) for r in recs] == [
            ({"\\Flagged"}, replaced[0].modseq), ({"\\Seen"}, removed[0].modseq), ({"\\Seen"}, removed[1].modseq)]

    backend.run(go)


def test_unchangedsince_leaves_messages_changed_since(backend: Harness) -> None:
    """RFC 7162 3.1.3: a conditional STORE skips messages whose MODSEQ is higher."""

    async def go(c: Contract) -> None:
        acc, other = await c.account(), await c.account()
        for n in range(3):
            await acc.append("INBOX", message(n))
        inbox = await acc.get_mailbox("INBOX")
        seen_at = inbox.highestmodseq
        await other.store_flags(inbox.id, [2], "add", ["$Other"])
        changed = await acc.store_flags(inbox.id, [1, 2, 3], "add", ["\\Answered"], unchangedsince=seen_at)
        assert [m.uid for m in changed] == [1, 3]
        recs = await acc.fetch(inbox.id, [1, 2, 3], ["flags"])
        assert [r.flags for r in recs] == [{"\\Answered"}, {"$Other"}, {"\\Answered"}]
        assert await acc.store_flags(inbox.id, [1], "add", ["\\Draft"], unchangedsince=0) == []

    backend.run(go)


def test_only_limits_which_flags_a_store_may_change(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        await acc.append("INBOX", message(1), ["\\Seen", "$a"])
        inbox = await acc.get_mailbox("INBOX")
        changed = await acc.store_flags(inbox.id, [1], "replace", ["$b"], only=lambda f: f != "\\Seen")
        assert changed[0].flags == {"\\Seen", "$b"}
        assert await acc.store_flags(inbox.id, [1], "remove", ["\\Seen"], only=lambda f: f != "\\Seen") == []

    backend.run(go)


def test_changes_since_tells_another_handle_what_changed(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc, other = await c.account(), await c.account()
        for n in range(4):
            await acc.append("INBOX", message(n))
        inbox = await acc.get_mailbox("INBOX")
        mark = inbox.highestmodseq
        assert (await other.changes_since(inbox.id, mark)).updated == []
        await acc.store_flags(inbox.id, [2], "add", ["\\Flagged"])
        await acc.expunge(inbox.id, [3])
        await acc.append("INBOX", message(9))
        cs = await other.changes_since(inbox.id, mark)
        assert [(m.uid, m.flags) for m in cs.updated] == [(2, {"\\Flagged"}), (5, frozenset())]
        assert cs.expunged == [3] and not cs.uidvalidity_changed
        assert cs.highestmodseq == (await acc.get_mailbox("INBOX")).highestmodseq > mark
        assert cs.name == "INBOX" and cs.uidvalidity == inbox.uidvalidity
        assert all(m.modseq > mark for m in cs.updated)
        later = await other.changes_since(inbox.id, cs.highestmodseq)
        assert (later.updated, later.expunged) == ([], [])
        # From the beginning: every message, and every UID expunged.
        full = await other.changes_since(inbox.id, 0)
        assert [m.uid for m in full.updated] == [1, 2, 4, 5] and full.expunged == [3]

    backend.run(go)


def test_keyword_limit_also_holds_for_store(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        await acc.append("INBOX", message(1))
        inbox = await acc.get_mailbox("INBOX")
        await acc.store_flags(inbox.id, [1], "add", ["$a", "$b", "$c"])
        # Removing never needs room.
        assert len(await acc.store_flags(inbox.id, [1], "remove", ["$a", "$zz"])) == 1

    backend.run(go, Limits(keywords=3))
