"""QUOTA (RFC 9208): one quota root "" per account, STORAGE in KiB and MESSAGE."""

from __future__ import annotations

from . import grammar as g
from .session import Done, IMAPSession


async def _quota_line(s: IMAPSession) -> bytes | None:
    """The `* QUOTA "" (...)` line, or None when the account has no limits (RFC 9208 5.1
    needs at least one resource in the list)."""
    assert s.store is not None
    limits = s.current_quota()
    if limits is None or not (limits.bytes or limits.messages):
        return None
    usage = await s.store.usage(limits.count_trash)
    parts = []
    if limits.bytes:
        # RFC 9208 5.1: STORAGE counts units of 1024 octets. Both are rounded up so that
        # a limit below 1 KiB does not read as "nothing allowed".
        parts.append(b"STORAGE %d %d" % ((usage.bytes + 1023) // 1024, (limits.bytes + 1023) // 1024))
    if limits.messages:
        parts.append(b"MESSAGE %d %d" % (usage.messages, limits.messages))
    return b'* QUOTA "" (' + b" ".join(parts) + b")\r\n"


async def cmd_getquotaroot(s: IMAPSession, cmd: g.GetQuotaRoot) -> Done:
    from .access import not_found, resolve

    place = await resolve(s, s.decode_name(cmd.mailbox))
    if not place.own:
        # Another account's mailbox counts against its owner's quota, which is not this
        # user's to see: no quota root (RFC 9208 4.3 allows none).
        if not place.visible:
            return not_found(place)
        await place.account().get_mailbox(place.name)
        s.send(b"* QUOTAROOT " + s.encode_name(place.shown) + b"\r\n")
        return Done(text="GETQUOTAROOT completed")
    assert s.store is not None
    mailbox = await s.store.get_mailbox(place.name)
    line = await _quota_line(s)
    if line is None:
        s.send(b"* QUOTAROOT " + s.encode_name(mailbox.name) + b"\r\n")
    else:
        s.send(b"* QUOTAROOT " + s.encode_name(mailbox.name) + b' ""\r\n' + line)
    return Done(text="GETQUOTAROOT completed")


async def cmd_getquota(s: IMAPSession, cmd: g.GetQuota) -> Done:
    if cmd.root != b"":
        return Done("NO", "No such quota root", "NONEXISTENT")
    line = await _quota_line(s)
    if line is None:
        return Done("NO", "No quota is set for this account", "NONEXISTENT")
    s.send(line)
    return Done(text="GETQUOTA completed")


async def cmd_setquota(s: IMAPSession, cmd: g.SetQuota) -> Done:
    return Done("NO", "Quotas are set by the administrator (letterbox quota set)", "NOPERM")
