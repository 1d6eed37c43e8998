"""Copy one account's mail from one store to another, whatever their backends
(`letterbox store copy`).

What a client knows survives: each mailbox keeps its name, UIDVALIDITY, special use and
subscription, each message its UID, flags and keywords, INTERNALDATE, bytes and POP3
state (POP3 UIDLs are UIDVALIDITY and UID, so they stay the same and POP3 clients do not
fetch everything again); UIDNEXT and HIGHESTMODSEQ end at least where the source's are.
ACLs and metadata come along; per-user \\Seen of shared mailboxes does not.

Every message goes over in a transaction of its own, in UID order, so an interrupted copy
leaves each destination mailbox holding a prefix of its source's messages under the
source's UIDVALIDITY; a second run finds them and goes on from there (and catches up with
flags changed and messages expunged at the source meanwhile). Messages are read one at a
time: a mailbox never sits in memory whole.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from . import faults
from .api import (
    AccountStore,
    ImportedMessage,
    Mailbox,
    MailboxNotFound,
    MessageGone,
    StoreError,
)

BATCH = 200
"""Messages whose index rows are read at once."""

Advance = Callable[[int, int], None]
"""Called with (messages, bytes) as they are copied or found copied already."""


class TransferError(StoreError):
    """The copy cannot go on without mixing mail: worded for the administrator."""


@dataclass
class Tally:
    """What one account's copy did."""

    mailboxes: int = 0
    copied: int = 0
    copied_bytes: int = 0
    present: int = 0
    """Messages a previous run had copied already."""
    reflagged: int = 0
    expunged: int = 0


async def size_of(src: AccountStore) -> tuple[int, int]:
    """Messages and bytes the account holds (for a progress bar's total)."""
    usage = await src.usage()
    return usage.messages, usage.bytes


async def copy_account(src: AccountStore, dst: AccountStore, advance: Advance | None = None) -> Tally:
    """Copy (or bring up to date) *src*'s mail into *dst*, an account of the same
    address. Raises TransferError when a destination mailbox holds other mail."""
    step: Advance = advance or (lambda n, b: None)
    tally = Tally()
    sources = sorted(await src.list_mailboxes(), key=lambda m: m.name)
    await _drop_unused(dst, {m.name for m in sources})
    for mbox in sources:
        target = await _mailbox_at(dst, mbox)
        await _copy_messages(src, mbox, dst, target, tally, step)
        await dst.raise_marks(target.id, mbox.uidnext, mbox.highestmodseq)
        await _copy_acl_and_metadata(src, dst, mbox.name)
        tally.mailboxes += 1
    await _copy_metadata(src, dst, None)
    await _copy_subscriptions(src, dst)
    return tally


async def _drop_unused(dst: AccountStore, wanted: set[str]) -> None:
    """Remove the destination's mailboxes that the source lacks and that never held a
    message: the defaults it made when the account was opened, which the user of the
    source may have deleted or named otherwise (a second \\Sent would be refused)."""
    for mbox in sorted(await dst.list_mailboxes(), key=lambda m: m.name, reverse=True):
        if mbox.name in wanted or mbox.name == "INBOX" or mbox.uidnext != 1:
            continue
        if any(w.startswith(mbox.name + "/") for w in wanted):
            continue
        try:
            await dst.delete_mailbox(mbox.name)
        except MailboxNotFound:
            pass


async def _mailbox_at(dst: AccountStore, mbox: Mailbox) -> Mailbox:
    """The destination's mailbox of *mbox*'s name, made if need be, with *mbox*'s
    UIDVALIDITY: given to one that never held a message, else it must have it already."""
    try:
        target = await dst.get_mailbox(mbox.name)
    except MailboxNotFound:
        try:
            target = await dst.create_mailbox(mbox.name, mbox.special_use)
        except MailboxNotFound:
            raise
        except StoreError:
            if mbox.special_use is None:
                raise
            # Another mailbox holding mail has that special use at the destination.
            target = await dst.create_mailbox(mbox.name)
    if target.uidvalidity == mbox.uidvalidity:
        return target
    if target.uidnext != 1:
        raise TransferError(
            f"{dst.address}: mailbox {mbox.name!r} at the destination has UIDVALIDITY {target.uidvalidity},"
            f" not the source's {mbox.uidvalidity}, and has held mail: not copying into it"
        )
    return await dst.set_uidvalidity(target.id, mbox.uidvalidity)


async def _copy_messages(
    src: AccountStore, mbox: Mailbox, dst: AccountStore, target: Mailbox, tally: Tally, step: Advance
) -> None:
    _, source = await src.snapshot(mbox.name)
    target, present = await dst.snapshot(target.name)
    if target.uidnext > mbox.uidnext:
        # Only the destination gave these UIDs: it has taken mail of its own since an
        # earlier copy (served meanwhile). Going on would expunge that mail.
        raise TransferError(
            f"{dst.address}: mailbox {mbox.name!r} at the destination has UIDNEXT {target.uidnext}, above the"
            f" source's {mbox.uidnext}: it has taken mail since it was copied; not copying into it"
        )
    have = {m.uid: m.flags for m in present}
    wanted = {m.uid for m in source}
    # A previous run copied these, and the source has expunged them since.
    gone = [uid for uid in have if uid not in wanted]
    if gone:
        tally.expunged += len(await dst.expunge(target.id, gone))
    # ... or changed their flags since.
    by_flags: dict[frozenset[str], list[int]] = defaultdict(list)
    for m in source:
        if m.uid in have and have[m.uid] != m.flags:
            by_flags[m.flags].append(m.uid)
    for flags, uids in by_flags.items():
        await dst.store_flags(target.id, uids, "replace", flags)
        tally.reflagged += len(uids)
    done = [m.uid for m in source if m.uid in have]
    for i in range(0, len(done), BATCH):
        recs = await src.fetch(mbox.id, done[i : i + BATCH], ["size"])
        tally.present += len(recs)
        step(len(recs), sum(r.size for r in recs))
    todo = [m.uid for m in source if m.uid not in have]
    if todo and todo[0] < target.uidnext:
        raise TransferError(
            f"{dst.address}: mailbox {mbox.name!r} at the destination has used UID {todo[0]}"
            f" (its UIDNEXT is {target.uidnext}) but does not hold the source's message: not copying into it"
        )
    for i in range(0, len(todo), BATCH):
        for rec in await src.fetch(mbox.id, todo[i : i + BATCH], ["flags", "internaldate", "size", "pop3"]):
            try:
                data = await src.read_message(mbox.id, rec.uid)
            except MessageGone:
                continue
            await dst.import_message(target.id, ImportedMessage(
                rec.uid, data, rec.flags, rec.internaldate, rec.pop3_hidden, rec.pop3_retrieved,
            ))
            faults.point("copy.imported")
            tally.copied += 1
            tally.copied_bytes += len(data)
            step(1, len(data))


async def _copy_acl_and_metadata(src: AccountStore, dst: AccountStore, name: str) -> None:
    acl = await src.get_acl(name)
    for identifier in await dst.get_acl(name):
        if identifier not in acl:
            await dst.set_acl(name, identifier, "")
    for identifier, rights in acl.items():
        await dst.set_acl(name, identifier, rights)
    await _copy_metadata(src, dst, name)


async def _copy_metadata(src: AccountStore, dst: AccountStore, name: str | None) -> None:
    entries = await src.get_metadata(name, ["/private", "/shared"], depth=-1)
    if entries:
        await dst.set_metadata(name, entries)


async def _copy_subscriptions(src: AccountStore, dst: AccountStore) -> None:
    wanted, have = set(await src.subscriptions()), set(await dst.subscriptions())
    for name in sorted(wanted - have):
        await dst.set_subscribed(name, True)
    for name in sorted(have - wanted):
        await dst.set_subscribed(name, False)
