"""APPEND (with MULTIAPPEND, RFC 3502, and CATENATE, RFC 4469) and its UIDPLUS answer;
REPLACE (RFC 8508).

Into another account's mailbox APPEND needs "i", and only the flags the user's rights
allow are stored (RFC 4314 4); the message counts against the owner's quota.
"""

from __future__ import annotations

from ..spool import Spool
from ..store import acl
from ..store.api import AccountStore, Mailbox, MailboxNotFound, Quota, StoreError
from . import grammar as g
from . import wire
from .access import Place, quota_for, resolve
from .catenate import BadURL, TooBig, assemble
from .session import Done, IMAPSession, store_failure


async def _target(s: IMAPSession, raw: bytes) -> tuple[Place, Mailbox] | Done:
    """Where an APPEND goes, or the answer when it cannot go there."""
    place = await resolve(s, s.decode_name(raw))
    try:
        mailbox = await place.account().get_mailbox(place.name)
    except MailboxNotFound:
        mailbox = None
    if mailbox is None or not (place.may("i") or place.visible):
        # RFC 9051 6.3.12: TRYCREATE tells the client it may CREATE and retry.
        return Done("NO", f"Mailbox {place.shown!r} does not exist", "TRYCREATE")
    if not place.may("i"):
        return Done("NO", "Permission denied: APPEND needs the i right", "NOPERM")
    return place, mailbox


async def _message(s: IMAPSession, msg: g.AppendMessage) -> bytes | Spool | Done:
    """The message's octets (CATENATE puts them together now), or the NO to answer."""
    data: bytes | Spool
    if msg.catenate is not None:
        try:
            data = await assemble(s, msg.catenate, s.settings.max_literal_size)
        except BadURL as e:
            return Done("NO", f"Cannot use that URL: {e}", e.code)
        except TooBig as e:
            return Done("NO", str(e), "TOOBIG")
    else:
        raw = msg.data.sink if isinstance(msg.data, g.Spooled) else msg.data
        assert isinstance(raw, (bytes, Spool))  # the session's spool makes Spools
        data = raw
    if not len(data):
        if isinstance(data, Spool):
            data.close()
        return Done("NO", "Empty messages cannot be appended", "CANNOT")
    return data


def _close(msg: g.AppendMessage) -> None:
    """Give back what the reader spooled for *msg*."""
    if isinstance(msg.data, g.Spooled):
        msg.data.close()
    for part in msg.catenate or ():
        if isinstance(part, g.CatText) and isinstance(part.data, g.Spooled):
            part.data.close()


def _selected(s: IMAPSession, place: Place, mailbox: Mailbox) -> bool:
    """Whether *mailbox* of *place*'s account is the selected one."""
    return s.view is not None and s.view.owner == place.owner and s.view.mailbox.id == mailbox.id


async def cmd_append(s: IMAPSession, cmd: g.Append) -> Done:
    try:
        target = await _target(s, cmd.mailbox)
        if isinstance(target, Done):
            return target
        place, mailbox = target
        store = place.account()
        quota = await quota_for(s, place)
        done: list[int] = []
        uidvalidity = mailbox.uidvalidity
        for msg in cmd.messages:
            when = msg.internal_date.timestamp() if msg.internal_date is not None else None
            try:
                data = await _message(s, msg)
            except StoreError as e:
                await _undo(store, mailbox.id, done)
                return store_failure(e)
            if isinstance(data, Done):
                await _undo(store, mailbox.id, done)
                return data
            flags = acl.allowed_flags(place.rights, msg.flags)
            try:
                async with s.ctx.spooler.loaded(data) as content:
                    result = await store.append(mailbox.name, content, flags, when, quota)
            except StoreError as e:
                # RFC 3502: MULTIAPPEND is all or nothing.
                await _undo(store, mailbox.id, done)
                return store_failure(e)
            uidvalidity = result.uidvalidity
            done.append(result.uid)
            s.stats["append"] += 1
    finally:
        for msg in cmd.messages:
            _close(msg)
    if s.view is not None and _selected(s, place, mailbox):
        s.view.own_new.update(done)
    return Done("OK", "APPEND completed", f"APPENDUID {uidvalidity} {wire.sequence_set(done).decode()}")


async def cmd_replace(s: IMAPSession, cmd: g.Replace) -> Done:
    view = s.view
    assert view is not None
    try:
        if cmd.uid:
            old = cmd.number if view.msn(cmd.number) is not None else None
        else:
            if cmd.number > view.exists:
                return Done("BAD", "Message sequence number out of range")
            old = view.uids[cmd.number - 1]
        if old is None or old in view.pending_expunge:
            return Done("NO", "The message to replace no longer exists", "EXPUNGEISSUED" if old else "NONEXISTENT")
        if view.readonly:
            return Done("NO", "Mailbox is read-only", "READ-ONLY")
        # RFC 8508 4.1: what STORE \Deleted ("t") and EXPUNGE ("e") need here, and
        # APPEND ("i") in the target.
        if not all(r in view.rights for r in "te"):
            return Done("NO", "Permission denied: REPLACE needs the t and e rights", "NOPERM")
        target = await _target(s, cmd.mailbox)
        if isinstance(target, Done):
            return target
        place, mailbox = target
        msg = cmd.message
        # RFC 8508 3.4: the quota is judged net of the message being replaced (when both
        # count against the same one).
        quota = await quota_for(s, place)
        if quota is not None and (quota.bytes or quota.messages) and place.owner == view.owner:
            recs = await view.store.fetch(view.mailbox.id, [old], ["size"])
            size = recs[0].size if recs else 0
            quota = Quota(quota.bytes + size if quota.bytes else 0, quota.messages + 1 if quota.messages else 0)
        when = msg.internal_date.timestamp() if msg.internal_date is not None else None
        data = await _message(s, msg)
        if isinstance(data, Done):
            return data
        flags = acl.allowed_flags(place.rights, msg.flags)
        async with s.ctx.spooler.loaded(data) as content:
            result = await place.account().append(mailbox.name, content, flags, when, quota)
    finally:
        _close(cmd.message)
    s.stats["append"] += 1
    if _selected(s, place, mailbox):
        view.own_new.add(result.uid)
    s.send(wire.untagged_status("OK", "Replacement message ready", f"APPENDUID {result.uidvalidity} {result.uid}"))
    # Only now, all else done, the old message goes (no EXPUNGE before, 3.4).
    await view.store.expunge(view.mailbox.id, [old])
    for line in view.remove_own([old]):
        s.send(line)
    s.stats["expunge"] += 1
    return Done(text=f"{'UID ' if cmd.uid else ''}REPLACE completed", expunged=True)


async def _undo(store: AccountStore, mailbox_id: int, uids: list[int]) -> None:
    if uids:
        await store.expunge(mailbox_id, uids)
