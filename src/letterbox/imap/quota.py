"""QUOTA (RFC 9208): one quota root "" per account, STORAGE in KiB and MESSAGE."""

from __future__ import annotations

from . import grammar as g
from . import wire
from .session import Done, IMAPSession


async def _quota_line(s: IMAPSession) -> bytes:
    assert s.store is not None and s.account is not None
    usage = await s.store.usage()
    quota = s.ctx.directory.get(s.account.address)
    limits = quota.quota if quota is not None else s.account.quota
    parts = []
    if limits.bytes:
        # RFC 9208 5.1: STORAGE counts units of 1024 octets.
        # Round both up so that a limit below 1 KiB does not read as "nothing allowed".
        parts.append(b"STORAGE %d %d" % ((usage.bytes + 1023) // 1024, (limits.bytes + 1023) // 1024))
    if limits.messages:
        parts.append(b"MESSAGE %d %d" % (usage.messages, limits.messages))
    return b'* QUOTA "" (' + b" ".join(parts) + b")\r\n"


async def cmd_getquotaroot(s: IMAPSession, cmd: g.GetQuotaRoot) -> Done:
    name = s.decode_name(cmd.mailbox)
    assert s.store is not None
    mailbox = await s.store.get_mailbox(name)
    s.send(b"* QUOTAROOT " + s.encode_name(mailbox.name) + b' ""\r\n')
    s.send(await _quota_line(s))
    return Done(text="GETQUOTAROOT completed")


async def cmd_getquota(s: IMAPSession, cmd: g.GetQuota) -> Done:
    if cmd.root != b"":
        return Done("NO", f"No such quota root {wire.quoted(cmd.root).decode(errors='replace')}", "NONEXISTENT")
    s.send(await _quota_line(s))
    return Done(text="GETQUOTA completed")


async def cmd_setquota(s: IMAPSession, cmd: g.SetQuota) -> Done:
    return Done("NO", "Quotas are set by the administrator (letterbox quota set)", "NOPERM")
