"""APPEND (with MULTIAPPEND, RFC 3502) and its UIDPLUS answer."""

from __future__ import annotations

from ..spool import Spool
from ..store.api import MailboxNotFound, StoreError
from . import grammar as g
from . import wire
from .session import Done, IMAPSession, store_failure


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
            if not msg.data:
                await _undo(s, mailbox.id, done)
                return Done("NO", "Empty messages cannot be appended", "CANNOT")
            when = msg.internal_date.timestamp() if msg.internal_date is not None else None
            data = msg.data.sink if isinstance(msg.data, g.Spooled) else msg.data
            assert isinstance(data, (bytes, Spool))  # the session's spool makes Spools
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
            if isinstance(msg.data, g.Spooled):
                msg.data.close()
    return Done("OK", "APPEND completed", f"APPENDUID {uidvalidity} {wire.sequence_set(done).decode()}")


async def _undo(s: IMAPSession, mailbox_id: int, uids: list[int]) -> None:
    if uids and s.store is not None:
        await s.store.expunge(mailbox_id, uids)
