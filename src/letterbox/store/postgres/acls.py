"""Mailbox ACLs (RFC 4314): rows of `acl`, by mailbox id. Who granted whom needs no
register here: `Store.grantors` and LIST read the rows of every account at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import acl
from ..api import LimitExceeded, StoreError
from .db import Tx

if TYPE_CHECKING:
    from .account import PgAccount

# The same identifiers the embedded store takes: one word, no control characters.
_IDENTIFIER = re.compile(r"[^\s\x00-\x1f\x7f]{1,255}")


async def read(conn: Any, mailbox_id: int) -> dict[str, str]:
    return {r[0]: r[1] for r in await conn.fetch(
        "SELECT identifier, rights FROM acl WHERE mailbox_id = $1 ORDER BY identifier", mailbox_id
    )}


async def read_by_name(acc: PgAccount, conn: Any, name: str) -> dict[str, str]:
    return await read(conn, (await acc.mailbox_in(conn, name)).id)


async def get(acc: PgAccount, mailbox: str) -> dict[str, str]:
    async with acc.db.snapshot() as conn:
        return await read_by_name(acc, conn, mailbox)


async def granted(acc: PgAccount, identifiers: Sequence[str], mailbox: str | None) -> dict[str, str]:
    if not identifiers:
        return {}
    rows = await acc.db.fetch(
        "SELECT m.name, a.rights FROM acl a JOIN mailboxes m ON m.id = a.mailbox_id"
        " WHERE m.account_id = $1 AND a.identifier = ANY($2::text[]) AND ($3::text IS NULL OR m.name = $3)",
        acc.account_id, list(identifiers), mailbox,
    )
    out: dict[str, str] = {}
    for name, rights in rows:
        out[name] = acl.union(out.get(name, ""), rights)
    return {name: rights for name, rights in out.items() if rights}


async def check_total(acc: PgAccount, conn: Any, more: int) -> None:
    """Refuse *more* entries beyond the account's limit (every entry is a row to keep)."""
    limit = acc.limits.acl_total
    if more and int(await conn.fetchval(
        "SELECT count(*) FROM acl a JOIN mailboxes m ON m.id = a.mailbox_id WHERE m.account_id = $1", acc.account_id
    )) + more > limit:
        raise LimitExceeded(f"at most {limit} access control entries per account")


async def restore(conn: Any, mailbox_id: int, entries: dict[str, str]) -> None:
    """Inside the caller's transaction: rows for an ACL (the parent's, for a new mailbox)."""
    rows = [(mailbox_id, who, acl.canonical(rights)) for who, rights in entries.items()
            if _IDENTIFIER.fullmatch(who) and acl.canonical(rights)]
    if rows:
        await conn.executemany(
            "INSERT INTO acl (mailbox_id, identifier, rights) VALUES ($1, $2, $3)"
            " ON CONFLICT (mailbox_id, identifier) DO UPDATE SET rights = EXCLUDED.rights", rows,
        )


async def set_entry(acc: PgAccount, mailbox: str, identifier: str, rights: str) -> None:
    if not _IDENTIFIER.fullmatch(identifier):
        raise StoreError(f"invalid ACL identifier {identifier!r}")
    if identifier == acc.address:
        raise StoreError("the owner always has every right")
    rights = acl.canonical(rights)

    async def body(tx: Tx) -> None:
        conn = tx.conn
        await acc.lock_account(conn)
        mbox = await acc.mailbox_in(conn, mailbox)
        current = await read(conn, mbox.id)
        if current.get(identifier, "") == rights:
            return
        if rights and identifier not in current:
            if len(current) + 1 > acc.limits.acl_entries:
                raise LimitExceeded(f"at most {acc.limits.acl_entries} entries per access control list")
            await check_total(acc, conn, 1)
        if rights:
            await conn.execute(
                "INSERT INTO acl (mailbox_id, identifier, rights) VALUES ($1, $2, $3)"
                " ON CONFLICT (mailbox_id, identifier) DO UPDATE SET rights = EXCLUDED.rights",
                mbox.id, identifier, rights,
            )
        else:
            await conn.execute("DELETE FROM acl WHERE mailbox_id = $1 AND identifier = $2", mbox.id, identifier)
        # The grantee's sessions (every session, for "anyone") learn of it too.
        tx.publish(acc.change(mbox.id, 0, "acl", mbox.name, user=identifier), also=(identifier,))

    await acc.db.run(body)


async def forget(acc: PgAccount, identifier: str) -> None:
    """The account of *identifier* is gone: its entries, its \\Seen marks and its own
    metadata here go too."""

    async def body(tx: Tx) -> None:
        conn = tx.conn
        ids = [r[0] for r in await conn.fetch("SELECT id FROM mailboxes WHERE account_id = $1", acc.account_id)]
        await conn.execute("DELETE FROM acl WHERE identifier = $1 AND mailbox_id = ANY($2::bigint[])", identifier, ids)
        await conn.execute('DELETE FROM private_seen WHERE "user" = $1 AND mailbox_id = ANY($2::bigint[])',
                           identifier, ids)
        await conn.execute('DELETE FROM private_metadata WHERE "user" = $1 AND account_id = $2',
                           identifier, acc.account_id)

    await acc.db.run(body)
