"""CREATE, DELETE, RENAME and SUBSCRIBE, each one transaction under the account's lock.

The rules (what may be made, deleted or renamed) are store.rules.mailboxes'; here they
read the account's mailbox names inside the transaction that changes them, so two front
ends cannot both make the last mailbox or one name twice. There are no folders to move:
a RENAME changes names, a DELETE removes the row and everything under it (messages,
tombstones, ACL and metadata) in one commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from .. import names
from ..api import Mailbox, MailboxExists, MailboxNotFound
from ..rules import mailboxes as rules
from . import account as messages
from . import acls
from .db import Tx, next_uidvalidity

if TYPE_CHECKING:
    from .account import PgAccount


async def _names(acc: PgAccount, conn: Any) -> set[str]:
    return {r[0] for r in await conn.fetch("SELECT name FROM mailboxes WHERE account_id = $1", acc.account_id)}


async def _insert(acc: PgAccount, conn: Any, name: str, special_use: str | None) -> int:
    mid = int(await conn.fetchval(
        "INSERT INTO mailboxes (account_id, name, uidvalidity, special_use) VALUES ($1, $2, $3, $4) RETURNING id",
        acc.account_id, name, await next_uidvalidity(conn), special_use,
    ))
    if special_use:  # special-use mailboxes come subscribed
        await conn.execute(
            "INSERT INTO subscriptions (account_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            acc.account_id, name,
        )
    return mid


async def create(acc: PgAccount, name: str, special_use: str | None) -> Mailbox:
    name = names.normalize(name)

    async def body(tx: Tx) -> Mailbox:
        conn = tx.conn
        await acc.lock_account(conn)
        have = await _names(acc, conn)
        wanted = rules.to_create(name, have.__contains__)
        rules.check_count(len(have), len(wanted), acc.limits)
        taken = {r[0] for r in await conn.fetch(
            "SELECT special_use FROM mailboxes WHERE account_id = $1 AND special_use IS NOT NULL", acc.account_id
        )}
        rules.check_special_use(special_use, taken.__contains__)
        # RFC 4314 4: a new mailbox SHOULD inherit the ACL of its nearest existing parent.
        above = [p for p in names.parent_names(name) if p not in wanted]
        inherited: dict[str, str] = {}
        if above:
            inherited = await acls.read_by_name(acc, conn, above[-1])
        await acls.check_total(acc, conn, len(inherited) * len(wanted))
        made = 0
        for parent in wanted:
            made = await _insert(acc, conn, parent, special_use if parent == name else None)
            await acls.restore(conn, made, inherited)
            tx.publish(acc.change(made, 1, "mailbox", parent))
        row = await conn.fetchrow(f"SELECT {messages.MBOX_COLS} FROM mailboxes m WHERE m.id = $1", made)
        return messages.mailbox_from_row(row)

    try:
        return await acc.db.run(body)
    except asyncpg.UniqueViolationError:  # pragma: no cover - the account lock orders creates
        raise MailboxExists(f"mailbox {name!r} already exists") from None


async def delete(acc: PgAccount, name: str) -> None:
    async def body(tx: Tx) -> None:
        conn = tx.conn
        await acc.lock_account(conn)
        mbox = await acc.mailbox_in(conn, name)
        prefix = rules.children_prefix(mbox.name)
        children = await conn.fetchval(
            "SELECT 1 FROM mailboxes WHERE account_id = $1 AND starts_with(name, $2) LIMIT 1", acc.account_id, prefix
        )
        rules.check_delete(mbox.name, children is not None)
        await conn.execute("DELETE FROM mailboxes WHERE id = $1", mbox.id)
        tx.publish(acc.change(mbox.id, mbox.highestmodseq + 1, "mailbox", "", mbox.name))

    await acc.db.run(body)


async def rename(acc: PgAccount, old: str, new: str) -> None:
    new = names.normalize(new)

    async def body(tx: Tx) -> None:
        conn = tx.conn
        await acc.lock_account(conn)
        src = await acc.mailbox_in(conn, old)
        have = await _names(acc, conn)
        rules.check_rename(src.name, new, have.__contains__)
        if rules.is_inbox(src.name):
            await _rename_inbox(acc, tx, src, new, have)
            return
        prefix = rules.children_prefix(src.name)
        plan = [(int(r[0]), r[1], rules.renamed(src.name, new, r[1])) for r in await conn.fetch(
            "SELECT id, name FROM mailboxes WHERE account_id = $1 AND (name = $2 OR starts_with(name, $3)) ORDER BY name",
            acc.account_id, src.name, prefix,
        )]
        for _, _, new_name in plan:
            if new_name in have:
                raise MailboxExists(f"mailbox {new_name!r} already exists")
        parents = rules.missing_parents(new, have.__contains__)
        rules.check_count(len(have), len(parents), acc.limits)
        for parent in parents:
            mid = await _insert(acc, conn, parent, None)
            tx.publish(acc.change(mid, 1, "mailbox", parent))
        for mid, old_name, new_name in plan:
            hms = await conn.fetchval("UPDATE mailboxes SET name = $2 WHERE id = $1 RETURNING highestmodseq",
                                      mid, new_name)
            tx.publish(acc.change(mid, int(hms), "mailbox", new_name, old_name))

    await acc.db.run(body)


async def _rename_inbox(acc: PgAccount, tx: Tx, inbox: Mailbox, new: str, have: set[str]) -> None:
    """RFC 9051 6.3.6: renaming INBOX moves its messages to a new mailbox of that name;
    INBOX stays, empty. All in the one transaction: a RENAME is all or nothing."""
    conn = tx.conn
    wanted = [*rules.missing_parents(new, have.__contains__), new]
    rules.check_count(len(have), len(wanted), acc.limits)
    made: list[tuple[int, str]] = []
    for name in wanted:
        made.append((await _insert(acc, conn, name, None), name))
    dst_id = made[-1][0]
    locked = {r["id"]: r for r in await conn.fetch(
        "SELECT id, uidnext, highestmodseq, uidvalidity, keywords, name FROM mailboxes"
        " WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE", [inbox.id, dst_id],
    )}
    if inbox.id not in locked:
        raise MailboxNotFound("INBOX no longer exists")
    uids = [int(r[0]) for r in await conn.fetch("SELECT uid FROM messages WHERE mailbox_id = $1", inbox.id)]
    modseq = 1
    if uids:
        _, modseq, src_modseq = await messages.move_rows(conn, acc.limits, locked[inbox.id], locked[dst_id], uids)
        tx.publish(acc.change(dst_id, modseq, "append", new))
        tx.publish(acc.change(inbox.id, src_modseq, "expunge", inbox.name))
    # RFC 5464 4.1: the new mailbox gets a copy of INBOX's metadata (readers' own too).
    await conn.execute(
        "INSERT INTO metadata (account_id, mailbox_id, entry, value) SELECT account_id, $2, entry, value"
        " FROM metadata WHERE account_id = $3 AND mailbox_id = $1", inbox.id, dst_id, acc.account_id,
    )
    await conn.execute(
        'INSERT INTO private_metadata (account_id, mailbox_id, "user", entry, value)'
        ' SELECT account_id, $2, "user", entry, value FROM private_metadata WHERE account_id = $3 AND mailbox_id = $1',
        inbox.id, dst_id, acc.account_id,
    )
    for mid, parent in made[:-1]:
        tx.publish(acc.change(mid, 1, "mailbox", parent))
    # To a client, the new mailbox is INBOX renamed.
    tx.publish(acc.change(dst_id, modseq, "mailbox", new, inbox.name))


async def set_subscribed(acc: PgAccount, name: str, subscribed: bool) -> None:
    name = names.normalize(name)

    async def body(tx: Tx) -> None:
        conn = tx.conn
        await acc.lock_account(conn)
        if subscribed:
            count = int(await conn.fetchval("SELECT count(*) FROM subscriptions WHERE account_id = $1", acc.account_id))
            if await conn.fetchval(
                "SELECT 1 FROM subscriptions WHERE account_id = $1 AND name = $2", acc.account_id, name
            ) is not None:
                return
            rules.check_subscribe(count, acc.limits)
            await conn.execute("INSERT INTO subscriptions (account_id, name) VALUES ($1, $2)", acc.account_id, name)
        else:
            done = await conn.execute("DELETE FROM subscriptions WHERE account_id = $1 AND name = $2",
                                      acc.account_id, name)
            if done == "DELETE 0":
                return
        mid = await conn.fetchval("SELECT id FROM mailboxes WHERE account_id = $1 AND name = $2", acc.account_id, name)
        tx.publish(acc.change(int(mid or 0), 0, "subscription", name))

    await acc.db.run(body)
