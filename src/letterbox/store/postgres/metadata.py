"""RFC 5464 metadata: entries by account and mailbox id (0 for the server's, which are
the account's own), and readers' own /private entries on shared mailboxes.

A mailbox's entries are keyed by its id, never reused: RENAME keeps them, DELETE
removes them (a trigger on mailboxes), RENAME INBOX copies them (mailboxes.py). Every
change is one transaction, checked against `Limits` before anything is written; the
account row's lock makes the checks hold against other front ends' changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..api import Limits, MetadataTooBig, MetadataTooMany, StoreError
from .db import Tx

if TYPE_CHECKING:
    from .account import PgAccount

SERVER = 0


def is_private(entry: str) -> bool:
    """Whether *entry* (valid, lower case) is under /private (3.2: per user)."""
    return entry.split("/", 2)[1] == "private"


class _Scope:
    """Where entries are kept: the account's table, or a reader's own /private ones."""

    def __init__(self, acc: PgAccount, mid: int, reader: str | None) -> None:
        self.args: tuple[object, ...]
        self.total_args: tuple[object, ...]
        if reader is None:
            self.table, self.where, self.args = "metadata", "account_id = $1 AND mailbox_id = $2", (acc.account_id, mid)
            self.total, self.total_args = "account_id = $1", (acc.account_id,)
        else:
            self.table = "private_metadata"
            self.where, self.args = 'account_id = $1 AND mailbox_id = $2 AND "user" = $3', (acc.account_id, mid, reader)
            self.total, self.total_args = 'account_id = $1 AND "user" = $2', (acc.account_id, reader)
        self.n = len(self.args)


async def _mailbox_id(acc: PgAccount, conn: Any, mailbox: str | None) -> tuple[int, str]:
    if mailbox is None:
        return SERVER, ""
    mbox = await acc.mailbox_in(conn, mailbox)
    return mbox.id, mbox.name


async def get(
    acc: PgAccount, mailbox: str | None, entries: Sequence[str], depth: int, reader: str | None
) -> list[tuple[str, bytes]]:
    if mailbox is None and reader is not None:
        return []  # the server's entries are the owner's own
    found: dict[str, bytes] = {}
    async with acc.db.snapshot() as conn:
        mid, _ = await _mailbox_id(acc, conn, mailbox)
        for entry in entries:
            scope = _Scope(acc, mid, reader if reader is not None and is_private(entry) else None)
            n = scope.n
            value = await conn.fetchval(
                f"SELECT value FROM {scope.table} WHERE {scope.where} AND entry = ${n + 1}", *scope.args, entry
            )
            if value is not None:
                found[entry] = bytes(value)
            if depth == 0:
                continue
            # The entries below: names between "entry/" and "entry0" ("0" follows "/").
            level = entry.count("/") + 1
            for name, value in await conn.fetch(
                f"SELECT entry, value FROM {scope.table} WHERE {scope.where}"
                f" AND entry > ${n + 1} AND entry < ${n + 2}", *scope.args, entry + "/", entry + "0",
            ):
                if depth < 0 or name.count("/") == level:
                    found[name] = bytes(value)
    return sorted(found.items())


async def set_entries(
    acc: PgAccount, mailbox: str | None, changes: Sequence[tuple[str, bytes | None]], reader: str | None
) -> None:
    if mailbox is None and reader is not None:
        raise StoreError("the server's entries are the account's own")
    if not changes:
        return
    limits = acc.limits
    final: dict[str, bytes | None] = dict(changes)  # the last value for an entry wins
    for entry, value in final.items():
        if value is not None and len(value) > limits.metadata_value:
            raise MetadataTooBig(f"{entry}: a value may have {limits.metadata_value} octets", limits.metadata_value)
    mine = {e: v for e, v in final.items() if reader is not None and is_private(e)}
    shared = {e: v for e, v in final.items() if e not in mine}

    async def body(tx: Tx) -> None:
        conn = tx.conn
        await acc.lock_account(conn)
        mid, name = await _mailbox_id(acc, conn, mailbox)
        changed: list[str] = []
        for part, who in ((shared, None), (mine, reader)):
            if not part:
                continue
            scope = _Scope(acc, mid, who)
            writes = await _checked(conn, limits, part, scope)
            n = scope.n
            for entry, value in writes:
                if value is None:
                    await conn.execute(f"DELETE FROM {scope.table} WHERE {scope.where} AND entry = ${n + 1}",
                                       *scope.args, entry)
                elif who is None:
                    await conn.execute(
                        "INSERT INTO metadata (account_id, mailbox_id, entry, value) VALUES ($1, $2, $3, $4)"
                        " ON CONFLICT (account_id, mailbox_id, entry) DO UPDATE SET value = EXCLUDED.value",
                        acc.account_id, mid, entry, value,
                    )
                else:
                    await conn.execute(
                        'INSERT INTO private_metadata (account_id, mailbox_id, "user", entry, value)'
                        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, mailbox_id, \"user\", entry)"
                        " DO UPDATE SET value = EXCLUDED.value", acc.account_id, mid, who, entry, value,
                    )
                changed.append(entry)
        if changed:
            # RFC 5465 5.6, 5.7: NOTIFY sessions are told which entries changed.
            tx.publish(acc.change(mid, 0, "metadata", name, entries=tuple(sorted(changed)),
                                  user=reader or acc.address))

    await acc.db.run(body)


async def _checked(conn: Any, limits: Limits, part: dict[str, bytes | None], scope: _Scope) -> list[tuple[str, bytes | None]]:
    """The writes *part* makes in *scope*, checked against the entries there and the
    octets of all the scope's entries; raises MetadataTooMany."""
    n = scope.n
    old = {r[0]: bytes(r[1]) for r in await conn.fetch(
        f"SELECT entry, value FROM {scope.table} WHERE {scope.where} AND entry = ANY(${n + 1}::text[])",
        *scope.args, list(part),
    )}
    count = int(await conn.fetchval(f"SELECT count(*) FROM {scope.table} WHERE {scope.where}", *scope.args))
    added = sum(1 for e, v in part.items() if v is not None and e not in old)
    removed = sum(1 for e, v in part.items() if v is None and e in old)
    if added and count + added - removed > limits.metadata_entries:
        raise MetadataTooMany(f"at most {limits.metadata_entries} metadata entries here")
    grow = sum(len(e) + len(v) for e, v in part.items() if v is not None) - sum(
        len(e) + len(old[e]) for e in part if e in old
    )
    if grow > 0:
        used = int(await conn.fetchval(
            f"SELECT coalesce(sum(octet_length(entry) + octet_length(value)), 0) FROM {scope.table}"
            f" WHERE {scope.total}", *scope.total_args,
        ))
        if used + grow > limits.metadata_bytes:
            raise MetadataTooMany(f"the account's metadata is limited to {limits.metadata_bytes} octets")
    return [(e, v) for e, v in part.items() if v != old.get(e)]
