"""SELECT, EXAMINE, CLOSE, UNSELECT, EXPUNGE, STORE, COPY and MOVE.

In another account's mailbox each needs its rights (RFC 4314 4); a command on the
selected mailbox works on `view.store`, the owner's account as the user reads it.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from ..store import acl
from ..store.api import AccountStore, BadMailboxName, MailboxNotFound
from ..store.rules import quotas
from . import grammar as g
from . import wire
from .access import denied, quota_for, resolve
from .crosscopy import copy_messages
from .session import AUTHED, ONLY_SELECTED, Done, IMAPSession, Spec
from .view import RecentSet, SelectedView

# Messages one STORE changes at a time, sending their answers before the next ones.
_STORE_CHUNK = 5000


def _store(s: IMAPSession) -> AccountStore:
    assert s.view is not None
    return s.view.store


def _no_right(why: str) -> Done:
    return Done("NO", f"Permission denied: {why}", "NOPERM")


def _view(s: IMAPSession) -> SelectedView:
    assert s.view is not None
    return s.view


async def cmd_select(s: IMAPSession, cmd: g.Select) -> Done:
    if cmd.qresync is not None and not s.qresync:
        return Done("BAD", "QRESYNC must be enabled first (ENABLE QRESYNC)")
    name = s.decode_name(cmd.mailbox)
    was_selected = s.view is not None
    s._close_view()
    if was_selected:
        # RFC 9051 7.1: [CLOSED] marks where the old mailbox's responses end.
        s.send(wire.untagged_status("OK", "Previous mailbox closed", "CLOSED"))
    place = await resolve(s, name)
    if not place.may("r"):
        return denied(place, f"{cmd.name} needs the r right")
    store = place.account()
    mailbox, uids, first_unseen_uid = await store.select_info(place.name)
    # A user with none of the rights that change a mailbox has it read-only. With "s"
    # alone the user still keeps their own \Seen, so the view takes it, but the answer
    # is READ-ONLY: that \Seen is no flag the mailbox shares (RFC 4314 5.2).
    readonly = cmd.readonly or not any(r in place.rights for r in "iewts")
    read_write = not cmd.readonly and any(r in place.rights for r in "iewt")
    recent = RecentSet()
    if not s.rev2:
        # EXAMINE shows what is recent without taking it (RFC 3501 6.3.2).
        recent = RecentSet(*await store.take_recent(mailbox.id, claim=not readonly))
    shown = mailbox.name if place.own else place.shown
    view = SelectedView(mailbox, uids, readonly, recent, store, place.owner, shown, place.rights)
    if cmd.condstore or cmd.qresync is not None:
        s.condstore = True  # RFC 7162 3.1: CONDSTORE enabling, for the whole connection
    view.condstore = s.condstore
    view.qresync = s.qresync
    view.uidonly = s.uidonly
    s.select_view(view)
    s.send(view.flags_response())
    s.send(b"* %d EXISTS\r\n" % view.exists)
    if not s.rev2:
        s.send(b"* %d RECENT\r\n" % view.recent_count())
        first_unseen = view.msn(first_unseen_uid) if first_unseen_uid is not None else None
        if first_unseen is not None and not s.uidonly:  # a message number: not with UIDONLY
            s.send(wire.untagged_status("OK", f"First unseen is {first_unseen}", f"UNSEEN {first_unseen}"))
    if readonly:
        s.send(wire.untagged_status("OK", "No permanent flags permitted", "PERMANENTFLAGS ()"))
    else:
        s.send(view.permanent_flags_response())
    s.send(wire.untagged_status("OK", "UIDs valid", f"UIDVALIDITY {mailbox.uidvalidity}"))
    s.send(wire.untagged_status("OK", "Predicted next UID", f"UIDNEXT {mailbox.uidnext}"))
    s.send(wire.untagged_status("OK", "Highest", f"HIGHESTMODSEQ {mailbox.highestmodseq}"))
    s.send(wire.untagged_status("OK", "Ok", f"MAILBOXID ({mailbox.mailboxid})"))  # RFC 8474 4.2
    if s.rev2:
        attrs = (mailbox.special_use or "") if place.own else ""
        s.send(b"* LIST (" + attrs.encode() + b') "/" ' + s.encode_name(view.shown) + b"\r\n")
    if cmd.qresync is not None and cmd.qresync.uidvalidity == mailbox.uidvalidity:
        await _quick_resync(s, view, cmd.qresync)
    code = "READ-WRITE" if read_write else "READ-ONLY"
    return Done("OK", f"{cmd.name} completed", code)


async def _quick_resync(s: IMAPSession, view: SelectedView, q: g.QResync) -> None:
    """RFC 7162 3.2.5.1: what changed since the client's MODSEQ, as a VANISHED (EARLIER)
    for expunged UIDs, then a FETCH per changed message, limited to the known UIDs."""
    cs = await _store(s).changes_since(view.mailbox.id, q.modseq)
    star = max(view.uidnext - 1, 1)
    known = q.known_uids.resolve(star) if q.known_uids is not None else None
    starts = [lo for lo, _ in known] if known is not None else []

    def wanted(uid: int) -> bool:
        if known is None:
            return True
        i = bisect.bisect_right(starts, uid) - 1
        return i >= 0 and uid <= known[i][1]

    # 3.2.5.2: a matching (number, UID) pair shows the client knows every expunge up to
    # that UID; the pairs are checked in order until one does not match.
    floor = 0
    if q.seq_match is not None:
        msns, uids = q.seq_match
        for seq, known_uid in zip(msns.iter(len(view.uids)), uids.iter(star), strict=False):
            if seq > len(view.uids) or view.uids[seq - 1] != known_uid:
                break
            floor = known_uid
    gone = [u for u in cs.expunged if u > floor and wanted(u)]
    if gone:
        s.send(b"* VANISHED (EARLIER) " + wire.sequence_set(gone) + b"\r\n")
    for meta in cs.updated:
        if not wanted(meta.uid):
            continue
        flags = wire.flag_list(view.shown_flags(meta.uid, meta.flags, s.rev2))
        line = view.fetch_response(meta.uid, [b"UID %d" % meta.uid, b"FLAGS " + flags, b"MODSEQ (%d)" % meta.modseq])
        if line is not None:
            s.send(line)


async def cmd_close(s: IMAPSession, cmd: g.Close) -> Done:
    view = _view(s)
    # RFC 4314 4: without "e" CLOSE closes and expunges nothing, and still answers OK.
    if not view.readonly and "e" in view.rights:
        uids = await _deleted_uids(s)
        if uids:
            s.progress.total = len(uids)
            gone = await _store(s).expunge(view.mailbox.id, uids, s.progress.step)
            s.stats["expunge"] += len(gone)
    # RFC 9051 6.4.1: CLOSE reports no EXPUNGE responses.
    s._close_view()
    return Done(text="CLOSE completed")


async def cmd_unselect(s: IMAPSession, cmd: g.Unselect) -> Done:
    s._close_view()
    return Done(text="UNSELECT completed")


async def _deleted_uids(s: IMAPSession, uids: list[int] | None = None) -> list[int]:
    """\\Deleted messages of the view (among *uids* if given), from one index query."""
    view = _view(s)
    marked = await _store(s).uids_with_flag(view.mailbox.id, "\\Deleted")
    wanted = set(view.uids) if uids is None else set(uids)
    return [u for u in marked if u in wanted]


async def cmd_expunge(s: IMAPSession, cmd: g.Expunge) -> Done:
    view = _view(s)
    if view.readonly:
        return Done("NO", "Mailbox is read-only", "READ-ONLY")
    if "e" not in view.rights:
        return _no_right("EXPUNGE needs the e right")
    candidates = None
    if cmd.sequence_set is not None:
        candidates = [u for _, u in view.resolve(cmd.sequence_set, True)]
    uids = await _deleted_uids(s, candidates)
    gone: list[int] = []
    if uids:
        s.progress.total = len(uids)
        gone = await _store(s).expunge(view.mailbox.id, uids, s.progress.step)
        s.stats["expunge"] += len(gone)
        for line in view.remove_own(gone):
            s.send(line)
    return Done(text=f"{'UID ' if cmd.uid else ''}EXPUNGE completed", expunged=bool(gone))


async def cmd_store(s: IMAPSession, cmd: g.Store) -> Done:
    view = _view(s)
    if not cmd.uid and not view.valid_msns(cmd.sequence_set):
        return Done("BAD", "Message sequence number out of range")
    if view.readonly:
        return Done("NO", "Mailbox is read-only", "READ-ONLY")
    if cmd.unchangedsince is not None:
        s.enable_condstore()  # RFC 7162 3.1
    pairs = view.resolve(cmd.sequence_set, cmd.uid)
    uids = [u for _, u in pairs if u not in view.pending_expunge]
    mode = {"+": "add", "-": "remove"}.get(cmd.mode, "replace")
    flags = [f for f in cmd.flags if f.lower() != "\\recent"]
    only = None
    if any(r not in view.rights for r in "swt"):
        # RFC 4314 4: each flag needs its right; the others are left as they are. The
        # STORE fails only when it may change none of the flags it names.
        allowed = acl.allowed_flags(view.rights, flags)
        if (allowed == [] and flags) or (mode == "replace" and not any(r in view.rights for r in "swt")):
            return _no_right("changing these flags needs the s, t or w right")
        only = view.may_store
    modified: list[int] = []
    s.progress.total = len(uids)
    # A part at a time, each part's answers sent before the next: one STORE over 100,000
    # messages neither holds the event loop nor piles up its FETCH responses.
    for start in range(0, len(uids), _STORE_CHUNK):
        if start:
            await s.flush()
            await s.progress.step(start)
        part = uids[start : start + _STORE_CHUNK]
        modified += await _store_part(s, view, cmd, part, mode, flags, only)
    if modified:
        numbers = modified if cmd.uid else [m for u in modified if (m := view.msn(u)) is not None]
        return Done("OK", "Conditional STORE failed", "MODIFIED " + wire.sequence_set(numbers).decode())
    if pairs and not uids and not cmd.silent:
        # RFC 2180 4.2.3: only messages another session expunged: a tagged NO. With some
        # left (4.2.2 allows OK or NO) or .SILENT (4.2.1: OK), OK as Dovecot answers.
        return Done("NO", "The requested messages no longer exist", "EXPUNGEISSUED")
    return Done(text=f"{'UID ' if cmd.uid else ''}STORE completed")


async def _store_part(
    s: IMAPSession, view: SelectedView, cmd: g.Store, uids: list[int], mode: str, flags: list[str],
    only: Callable[[str], bool] | None,
) -> list[int]:
    """STORE on *uids*, with its FETCH responses; returns the UIDs that UNCHANGEDSINCE
    kept from changing (RFC 7162 3.1.3: MODIFIED). Flags *only* refuses stay as they are."""
    store = _store(s)
    changed = await store.store_flags(view.mailbox.id, uids, mode, flags, cmd.unchangedsince, only)  # type: ignore[arg-type]
    s.stats["store"] += len(changed)
    for meta in changed:
        view.own_modseqs.add(meta.modseq)
    for line in view.announce_keywords(changed):
        s.send(line)
    modified: list[int] = []
    if cmd.unchangedsince is not None:
        changed_uids = {m.uid for m in changed}
        recs = await store.fetch(view.mailbox.id, uids, ["modseq"])
        modified = [r.uid for r in recs if r.uid not in changed_uids and r.modseq > cmd.unchangedsince]
    if not cmd.silent:
        recs = await store.fetch(view.mailbox.id, uids, ["flags", "modseq"])
        for r in recs:
            items = [b"FLAGS " + wire.flag_list(view.shown_flags(r.uid, r.flags, s.rev2))]
            if cmd.uid or view.condstore:
                items.append(b"UID %d" % r.uid)
            if view.condstore:
                items.append(b"MODSEQ (%d)" % r.modseq)
            response = view.fetch_response(r.uid, items)
            if response is not None:
                s.send(response)
    if cmd.silent and view.condstore:
        # RFC 7162 3.1.3: .SILENT does not hide the new MODSEQ of changed messages.
        for meta in changed:
            response = view.fetch_response(meta.uid, [b"UID %d" % meta.uid, b"MODSEQ (%d)" % meta.modseq])
            if response is not None:
                s.send(response)
    return modified


async def _copy_or_move(s: IMAPSession, cmd: g.Copy | g.Move, move: bool) -> Done:
    view = _view(s)
    if not cmd.uid and not view.valid_msns(cmd.sequence_set):
        return Done("BAD", "Message sequence number out of range")
    if move and view.readonly:
        return Done("NO", "Mailbox is read-only", "READ-ONLY")
    dest = await resolve(s, s.decode_name(cmd.mailbox))
    try:
        mailbox = await dest.account().get_mailbox(dest.name)
    except (MailboxNotFound, BadMailboxName):
        mailbox = None
    if mailbox is None or not (dest.may("i") or dest.visible):
        return Done("NO", f"Mailbox {dest.shown!r} does not exist", "TRYCREATE")
    # RFC 4314 4 and RFC 6851 4.2: "i" in the destination; a MOVE is also a STORE
    # \Deleted ("t") and an EXPUNGE ("e") here.
    if not dest.may("i"):
        return _no_right("copying into that mailbox needs the i right")
    if move and not all(r in view.rights for r in "te"):
        return _no_right("moving messages out needs the t and e rights")
    uids = [u for _, u in view.resolve(cmd.sequence_set, cmd.uid) if u not in view.pending_expunge]
    verb = ("UID " if cmd.uid else "") + ("MOVE" if move else "COPY")
    if not uids:
        return Done(text=f"{verb} completed (no messages)")
    quota = await quota_for(s, dest)
    store = _store(s)
    s.progress.total = len(uids)
    progress = s.progress.step
    # A COPY into the Trash gets the grace (see quotas.TRASH_GRACE).
    quota = quotas.for_destination(quota, mailbox.special_use)
    here = dest.owner == view.owner
    if not here or not dest.may("swt"):
        result = await copy_messages(view, uids, dest, quota, progress)
        if move:
            await store.expunge(view.mailbox.id, list(result.source_uids))
    elif move and mailbox.id == view.mailbox.id:
        # As Dovecot: the messages get new UIDs at the end of the mailbox (RFC 6851 does
        # not forbid it). Copied first, so a failure in between leaves two copies, never
        # none; the copies are the mailbox's own, so no quota is charged for them.
        result = await store.copy(view.mailbox.id, uids, dest.name, None, progress)
        await store.expunge(view.mailbox.id, result.source_uids)
    elif move:
        result = await store.move(view.mailbox.id, uids, dest.name, progress)
    else:
        result = await store.copy(view.mailbox.id, uids, dest.name, quota, progress)
    if here and mailbox.id == view.mailbox.id:
        view.own_new.update(result.dest_uids)
    code = None
    if result.source_uids:
        code = (
            f"COPYUID {result.uidvalidity} {wire.sequence_set(result.source_uids).decode()} "
            f"{wire.sequence_set(result.dest_uids).decode()}"
        )
    if move:
        # RFC 6851 4.3: COPYUID goes in an untagged OK before the EXPUNGEs.
        if code:
            s.send(wire.untagged_status("OK", "Moved UIDs", code))
        for line in view.remove_own(result.source_uids):
            s.send(line)
        s.stats["expunge"] += len(result.source_uids)
        return Done(text=f"{verb} completed", expunged=bool(result.source_uids))
    return Done("OK", f"{verb} completed", code)


async def cmd_copy(s: IMAPSession, cmd: g.Copy) -> Done:
    return await _copy_or_move(s, cmd, move=False)


async def cmd_move(s: IMAPSession, cmd: g.Move) -> Done:
    return await _copy_or_move(s, cmd, move=True)


COMMANDS = {
    "SELECT": Spec(cmd_select, AUTHED),
    "EXAMINE": Spec(cmd_select, AUTHED),
    "CLOSE": Spec(cmd_close, ONLY_SELECTED),
    "UNSELECT": Spec(cmd_unselect, ONLY_SELECTED),
    "EXPUNGE": Spec(cmd_expunge, ONLY_SELECTED),
    "STORE": Spec(cmd_store, ONLY_SELECTED, may_expunge=False),
    "COPY": Spec(cmd_copy, ONLY_SELECTED),
    "MOVE": Spec(cmd_move, ONLY_SELECTED),
}
