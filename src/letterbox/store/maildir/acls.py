"""Mailbox ACLs of the embedded store: rows of the index's `acl` table, mirrored in the
folder's file for a rebuild, and the store's register of who granted whom.

A change writes the folder file first, then commits the rows: after a crash the index
still has the old ACL (authoritative until a rebuild) and start-up brings the file back
in line (reconcile.write_folder_files). Before an identifier gets its first entry in an
account, the store's register (grants.py) learns that the account may have granted it
something; after its last entry goes, the register forgets it. The register is thus
never short of an account that did grant: LIST asks it which accounts to look in.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import acl
from ..api import LimitExceeded, MailboxNotFound, StoreError
from . import files, folderfile, metadata, namesync

if TYPE_CHECKING:
    from .account import MaildirAccount

# An identifier goes into the folder file as one word: no spaces, no control characters.
_IDENTIFIER = re.compile(r"[^\s\x00-\x1f\x7f]{1,255}")


def read(db: sqlite3.Connection, mailbox_id: int) -> dict[str, str]:
    return dict(db.execute(
        "SELECT identifier, rights FROM acl WHERE mailbox_id = ? ORDER BY identifier", (mailbox_id,)
    ).fetchall())


def granted(db: sqlite3.Connection, identifiers: Sequence[str], mailbox: str | None) -> dict[str, str]:
    if not identifiers:
        return {}
    marks = ",".join("?" * len(identifiers))
    sql = (
        "SELECT m.name, a.rights FROM acl a JOIN mailboxes m ON m.id = a.mailbox_id"
        f" WHERE a.identifier IN ({marks})"
    )
    args: tuple[object, ...] = tuple(identifiers)
    if mailbox is not None:
        sql += " AND m.name = ?"
        args += (mailbox,)
    out: dict[str, str] = {}
    for name, rights in db.execute(sql, args):
        out[name] = acl.union(out.get(name, ""), rights)
    return {name: rights for name, rights in out.items() if rights}


def check_total(acc: MaildirAccount, more: int) -> None:
    """Refuse *more* entries beyond the account's limit (every entry is a row to keep)."""
    limit = acc._store.limits.acl_total
    if more and int(acc.db.execute("SELECT count(*) FROM acl").fetchone()[0]) + more > limit:
        raise LimitExceeded(f"at most {limit} access control entries per account")


def check_identifier(identifier: str) -> None:
    if not _IDENTIFIER.fullmatch(identifier):
        raise StoreError(f"invalid ACL identifier {identifier!r}")


async def set_entry(acc: MaildirAccount, mailbox: str, identifier: str, rights: str) -> None:
    check_identifier(identifier)
    if identifier == acc.address:
        raise StoreError("the owner always has every right")
    rights = acl.canonical(rights)
    async with acc.acl_lock:
        mbox = acc.mailbox_by_name(mailbox)
        current = read(acc.db, mbox.id)
        if current.get(identifier, "") == rights:
            return
        new = dict(current)
        if rights:
            new[identifier] = rights
        else:
            new.pop(identifier, None)
        limits = acc._store.limits
        if len(new) > len(current):
            if len(new) > limits.acl_entries:
                raise LimitExceeded(f"at most {limits.acl_entries} entries per access control list")
            check_total(acc, 1)
        if rights and identifier not in current:
            await acc._store.grants.note(identifier, acc.address)
        await _write_file(acc, mbox.id, new)
        async with acc.write() as db:
            if db.execute("SELECT 1 FROM mailboxes WHERE id = ?", (mbox.id,)).fetchone() is None:
                raise MailboxNotFound("mailbox no longer exists")
            if rights:
                db.execute(
                    "INSERT OR REPLACE INTO acl (mailbox_id, identifier, rights) VALUES (?, ?, ?)",
                    (mbox.id, identifier, rights),
                )
            else:
                db.execute("DELETE FROM acl WHERE mailbox_id = ? AND identifier = ?", (mbox.id, identifier))
    acc.publish_acl(mbox.id, mbox.name, identifier)
    if not rights:
        await forget_if_unused(acc, identifier)


async def forget(acc: MaildirAccount, identifier: str) -> None:
    """The account of *identifier* is gone: its entries, its \\Seen marks and its own
    metadata go too."""
    async with acc.acl_lock:
        mids = [r[0] for r in acc.db.execute("SELECT mailbox_id FROM acl WHERE identifier = ?", (identifier,))]
        for mid in mids:
            new = read(acc.db, mid)
            new.pop(identifier, None)
            await _write_file(acc, mid, new)
        owned = [r[0] for r in acc.db.execute(
            "SELECT DISTINCT mailbox_id FROM private_metadata WHERE user = ?", (identifier,)
        )]
        marked = [r[0] for r in acc.db.execute(
            "SELECT DISTINCT mailbox_id FROM private_seen WHERE user = ?", (identifier,)
        )]
        async with acc.write() as db:
            db.execute("DELETE FROM acl WHERE identifier = ?", (identifier,))
            db.execute("DELETE FROM private_seen WHERE user = ?", (identifier,))
            db.execute("DELETE FROM private_metadata WHERE user = ?", (identifier,))
        async with acc.metadata_lock:
            for mid in owned:  # so a rebuild does not bring them back
                await metadata.save(acc, mid)
        for mid in marked:
            with contextlib.suppress(MailboxNotFound):
                await namesync.save_seen(acc, mid, acc.folder(mid))
    await forget_if_unused(acc, identifier)


async def forget_if_unused(acc: MaildirAccount, identifier: str) -> None:
    """Out of the register, once no ACL of the account names *identifier* any more."""
    if acc.db.execute("SELECT 1 FROM acl WHERE identifier = ? LIMIT 1", (identifier,)).fetchone() is None:
        await acc._store.grants.forget(identifier, acc.address)


async def _write_file(acc: MaildirAccount, mailbox_id: int, entries: dict[str, str]) -> None:
    folder = acc.folder(mailbox_id)
    await files.disk_threads.run(functools.partial(folderfile.update, acc.adir, folder, acl=entries))


def restore(db: sqlite3.Connection, mailbox_id: int, entries: dict[str, str]) -> None:
    """Inside the caller's transaction: rows for an ACL (a folder file's after a rebuild,
    the parent's for a new mailbox)."""
    db.executemany(
        "INSERT OR REPLACE INTO acl (mailbox_id, identifier, rights) VALUES (?, ?, ?)",
        [(mailbox_id, who, acl.canonical(rights)) for who, rights in entries.items()
         if _IDENTIFIER.fullmatch(who) and acl.canonical(rights)],
    )

