"""APPEND (with MULTIAPPEND, RFC 3502, and CATENATE, RFC 4469) and its UIDPLUS answer;
REPLACE (RFC 8508)."""

from __future__ import annotations

from ..spool import Spool
from ..store.api import MailboxNotFound, Quota, StoreError
from . import grammar as g
from . import wire
from .catenate import BadURL, TooBig, assemble
from .session import Done, IMAPSession, store_failure


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


async def cmd_append(s: IMAPSession, cmd: g.Append) -> Done:
    assert s.store is not None
    name = s.decode_name(cmd.mailbox)
    try:
        mailbox = await s.store.get_mailbox(name)
    except MailboxNotFound:
        # RFC 9051 6.3.12: TRYCREATE tells the client it may CREATE and retry.
        return Done("NO", f"Mailbox {name!r} does not exist", "TRYCREATE")
    quota = s.current_quota()
    done: list[int] = []
    uidvalidity = mailbox.uidvalidity
    try:
        for msg in cmd.messages:
            when = msg.internal_date.timestamp() if msg.internal_date is not None else None
            try:
                data = await _message(s, msg)
            except StoreError as e:
                await _undo(s, mailbox.id, done)
                return store_failure(e)
            if isinstance(data, Done):
                await _undo(s, mailbox.id, done)
                return data
            try:
                async with s.ctx.spooler.loaded(data) as content:
                    result = await s.store.append(mailbox.name, content, msg.flags, when, quota)
            except StoreError as e:
                # RFC 3502: MULTIAPPEND is all or nothing.
                await _undo(s, mailbox.id, done)
                return store_failure(e)
            uidvalidity = result.uidvalidity
            done.append(result.uid)
            s.stats["append"] += 1
    finally:
        for msg in cmd.messages:
            _close(msg)
    if s.view is not None and s.view.mailbox.id == mailbox.id:
        s.view.own_new.update(done)
    return Done("OK", "APPEND completed", f"APPENDUID {uidvalidity} {wire.sequence_set(done).decode()}")


async def cmd_replace(s: IMAPSession, cmd: g.Replace) -> Done:
    view = s.view
    assert s.store is not None and view is not None
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
        name = s.decode_name(cmd.mailbox)
        try:
            mailbox = await s.store.get_mailbox(name)
        except MailboxNotFound:
            return Done("NO", f"Mailbox {name!r} does not exist", "TRYCREATE")
        msg = cmd.message
        # RFC 8508 3.4: the quota is judged net of the message being replaced.
        quota = s.current_quota()
        if quota is not None and (quota.bytes or quota.messages):
            recs = await s.store.fetch(view.mailbox.id, [old], ["size"])
            size = recs[0].size if recs else 0
            quota = Quota(quota.bytes + size if quota.bytes else 0, quota.messages + 1 if quota.messages else 0)
        when = msg.internal_date.timestamp() if msg.internal_date is not None else None
        data = await _message(s, msg)
        if isinstance(data, Done):
            return data
        async with s.ctx.spooler.loaded(data) as content:
            result = await s.store.append(mailbox.name, content, msg.flags, when, quota)
    finally:
        _close(cmd.message)
    s.stats["append"] += 1
    if mailbox.id == view.mailbox.id:
        view.own_new.add(result.uid)
    s.send(wire.untagged_status("OK", "Replacement message ready", f"APPENDUID {result.uidvalidity} {result.uid}"))
    # Only now, all else done, the old message goes (no EXPUNGE before, 3.4).
    await s.store.expunge(view.mailbox.id, [old])
    for line in view.remove_own([old]):
        s.send(line)
    s.stats["expunge"] += 1
    return Done(text=f"{'UID ' if cmd.uid else ''}REPLACE completed", expunged=True)


async def _undo(s: IMAPSession, mailbox_id: int, uids: list[int]) -> None:
    if uids and s.store is not None:
        await s.store.expunge(mailbox_id, uids)
