"""Contract: taking mail from another store (`letterbox store copy`): a mailbox that never
held mail takes the source's UIDVALIDITY, messages keep their UIDs, flags, keywords,
INTERNALDATE and POP3 state, UIDNEXT and HIGHESTMODSEQ only go up; and the
backend-neutral copy of a whole account (store.transfer), run twice, copies once."""

from __future__ import annotations

import pytest

from letterbox.store.api import ImportedMessage, Limits, StoreError
from letterbox.store.transfer import TransferError, copy_account

from .conftest import OTHER, Contract, Harness, message


def test_a_mailbox_that_never_held_mail_takes_a_given_uidvalidity(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        box = await acc.create_mailbox("Lists/Python")
        wanted = box.uidvalidity + 1000
        changed = await acc.set_uidvalidity(box.id, wanted)
        assert changed.uidvalidity == wanted and changed.mailboxid != box.mailboxid
        assert (await (await c.account()).get_mailbox("Lists/Python")).uidvalidity == wanted
        # The store's counter went past it: a mailbox made later never repeats it.
        assert (await acc.create_mailbox("Later")).uidvalidity > wanted
        await acc.append("Lists/Python", message(1))
        with pytest.raises(StoreError):
            await acc.set_uidvalidity(box.id, wanted + 5)
        assert (await acc.get_mailbox("Lists/Python")).uidvalidity == wanted

    backend.run(go)


def test_imported_messages_keep_uid_flags_date_and_pop3_state(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        inbox = await acc.get_mailbox("INBOX")
        raw = b"Subject: bare LF\n\nbyte \xe9\xff\x00 here\n"
        await acc.import_message(inbox.id, ImportedMessage(
            3, raw, frozenset({"\\Seen", "\\Deleted", "$Label", "k" * 11}), 760_000_000.0,
        ))
        await acc.import_message(inbox.id, ImportedMessage(
            9, message(9), frozenset({"\\Flagged"}), 770_000_000.5, pop3_hidden=True, pop3_retrieved=780_000_000.0,
        ))
        with pytest.raises(StoreError):  # below UIDNEXT: a UID is never given twice
            await acc.import_message(inbox.id, ImportedMessage(5, message(5), frozenset(), 1.0))
        box = await (await c.account()).get_mailbox("INBOX")
        assert box.uidnext == 10 and set(box.keywords) == {"$Label", "k" * 11}  # no keyword limit on a copy
        recs = await acc.fetch(box.id, [3, 9], ["flags", "internaldate", "size", "pop3"])
        assert [r.uid for r in recs] == [3, 9]
        assert recs[0].flags == {"\\Seen", "\\Deleted", "$Label", "k" * 11}
        assert recs[1].flags == {"\\Flagged"}
        assert [r.internaldate for r in recs] == [760_000_000.0, 770_000_000.5]
        assert [(r.pop3_hidden, r.pop3_retrieved) for r in recs] == [(False, None), (True, 780_000_000.0)]
        assert await acc.read_message(box.id, 3) == raw
        assert (await acc.pop3_maildrop())[1] == [(3, len(raw))]
        marked = await acc.raise_marks(box.id, 40, box.highestmodseq + 500)
        assert (marked.uidnext, marked.highestmodseq) == (40, box.highestmodseq + 500)
        assert (await acc.raise_marks(box.id, 2, 1)).uidnext == 40  # never lowered
        assert (await acc.append("INBOX", message(1))).uid == 40
        assert (await acc.status("INBOX")).recent <= 1  # copied mail is not \Recent

    backend.run(go, Limits(keyword_length=10))


def test_copying_an_account_twice_copies_each_message_once(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        src, dst = await c.account(), await c.account(OTHER)
        await src.delete_mailbox("Junk")
        await src.create_mailbox("Work/Projects/2026")
        await src.set_subscribed("Work/Projects/2026", True)
        await src.set_subscribed("Drafts", False)
        for n in range(5):
            await src.append("INBOX", message(n), ["\\Seen"] if n % 2 else [], 700_000_000.0 + n)
        await src.append("Work/Projects/2026", message(9), ["$Important"])
        inbox = await src.get_mailbox("INBOX")
        await src.expunge(inbox.id, [2])
        await src.set_metadata("INBOX", [("/private/comment", b"hello")])
        await src.set_acl("Work", "carol@example.com", "lr")

        tally = await copy_account(src, dst)
        assert (tally.copied, tally.present) == (5, 0)
        names = {m.name: m for m in await src.list_mailboxes()}
        copied = {m.name: m for m in await dst.list_mailboxes()}
        assert set(copied) == set(names)  # Junk, deleted at the source, is not made
        for name, m in names.items():
            assert copied[name].uidvalidity == m.uidvalidity and copied[name].uidnext >= m.uidnext
            assert copied[name].highestmodseq >= m.highestmodseq
        assert set(await dst.subscriptions()) == set(await src.subscriptions())
        assert [(m.uid, m.flags) for m in (await dst.snapshot("INBOX"))[1]] == \
            [(m.uid, m.flags) for m in (await src.snapshot("INBOX"))[1]]
        assert await dst.get_metadata("INBOX", ["/private/comment"]) == [("/private/comment", b"hello")]
        assert await dst.get_acl("Work") == {"carol@example.com": "lr"}

        # Changes at the source, then a second run: caught up, nothing copied twice.
        await src.store_flags(inbox.id, [1], "add", ["\\Flagged"])
        await src.expunge(inbox.id, [4])
        await src.append("INBOX", message(7))
        again = await copy_account(src, dst)
        assert (again.copied, again.present, again.reflagged, again.expunged) == (1, 4, 1, 1)
        assert [(m.uid, m.flags) for m in (await dst.snapshot("INBOX"))[1]] == \
            [(m.uid, m.flags) for m in (await src.snapshot("INBOX"))[1]]

        # The destination served and took mail of its own: a third run would lose it.
        await dst.append("INBOX", message(8))
        with pytest.raises(TransferError, match="taken mail since"):
            await copy_account(src, dst)
        assert (await dst.status("INBOX")).messages == 5

    backend.run(go)


def test_a_destination_mailbox_that_held_other_mail_is_refused(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        src, dst = await c.account(), await c.account(OTHER)
        await src.append("INBOX", message(1))
        await dst.append("INBOX", message(2))
        with pytest.raises(TransferError, match="UIDVALIDITY"):
            await copy_account(src, dst)
        assert (await dst.status("INBOX")).messages == 1

    backend.run(go)


def test_many_imports_leave_uidnext_where_the_last_uid_puts_it(backend: Harness) -> None:
    async def go(c: Contract) -> None:
        acc = await c.account()
        inbox = await acc.get_mailbox("INBOX")
        for uid in [*range(1, 301), 5000]:
            await acc.import_message(inbox.id, ImportedMessage(uid, message(uid), frozenset(), 1.0))
        await acc.raise_marks(inbox.id, 5003, 1)
        # Another handle (another process) opening the account finds the same marks.
        again = await (await c.account()).get_mailbox("INBOX")
        assert again.uidnext == 5003
        assert (await acc.append("INBOX", message(0))).uid == 5003

    backend.run(go)
