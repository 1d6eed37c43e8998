"""CREATE, DELETE and RENAME of mailboxes, safe against a crash or failure at any step.

A folder on disk and its row in the index change together or not at all:

  create   folder (with its folder file) made, then the row committed. A failure removes
           the folder; after a crash the folder is found at start-up and indexed (with the
           UIDVALIDITY its folder file holds): the mailbox exists, empty.
  delete   journal row (old folder -> trash name) committed and the WAL fsynced; folder
           renamed into `letterbox-trash/`; row deleted and journal row dropped in one
           commit, fsynced; the trash emptied. Start-up puts back any folder whose journal
           row is still there (the delete never happened) and empties the trash: deleted
           mail never comes back, and a mailbox whose delete failed keeps its mail. The
           mailbox's metadata goes with its row, in that commit.
  rename   the same journal, one row per folder of the hierarchy; folders renamed one by
           one; rows updated and journal dropped in one commit. A failure renames back what
           was renamed; after a crash start-up does.

Folder renames never happen inside an open transaction, so a rollback cannot leave a
folder renamed under rows that were not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from typing import TYPE_CHECKING

from .. import faults, names
from ..api import BadMailboxName, Mailbox, MailboxExists, StoreError
from ..rules import mailboxes as rules
from . import acls, files, folderfile, metadata
from .accountdir import join

if TYPE_CHECKING:
    from .account import MaildirAccount

log = logging.getLogger("letterbox.store")

TRASH = "letterbox-trash"


def _check_fits(name: str) -> None:
    if not files.dirname_fits(name):
        raise BadMailboxName("mailbox name too long")


def _check_count(acc: MaildirAccount, more: int) -> None:
    rules.check_count(int(acc.db.execute("SELECT count(*) FROM mailboxes").fetchone()[0]), more, acc._store.limits)


def _has(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM mailboxes WHERE name = ?", (name,)).fetchone() is not None


def _exists(acc: MaildirAccount) -> rules.Exists:
    return lambda name: _has(acc.db, name)


async def create(acc: MaildirAccount, name: str, special_use: str | None) -> Mailbox:
    name = names.normalize(name)
    _check_fits(name)
    wanted = rules.to_create(name, _exists(acc))
    _check_count(acc, len(wanted))
    rules.check_special_use(special_use, lambda use: acc.db.execute(
        "SELECT 1 FROM mailboxes WHERE special_use = ?", (use,)
    ).fetchone() is not None)
    # RFC 4314 4: a new mailbox SHOULD inherit the ACL of its nearest existing parent, so
    # that those who may make mailboxes in a shared one can use what they make.
    above = [p for p in names.parent_names(name) if p not in wanted]
    inherited = acls.read(acc.db, acc.mailbox_by_name(above[-1]).id) if above else {}
    acls.check_total(acc, len(inherited) * len(wanted))
    seqs = await _journal(acc, [(None, files.folder_dirname(p)) for p in wanted])
    made: list[tuple[str, folderfile.FolderInfo]] = []
    ids: list[tuple[int, str]] = []
    try:
        faults.point("create.journaled")
        for parent in wanted:
            made.append((parent, acc.prepare_folder(parent, special_use if parent == name else None, inherited)))
            faults.point("create.made")
        async with acc.write() as db:
            for parent, info in made:
                if _has(db, parent):
                    raise MailboxExists(f"mailbox {parent!r} already exists")
                mid = acc.insert_mailbox(db, parent, special_use if parent == name else None, info)
                acls.restore(db, mid, inherited)
                ids.append((mid, parent))
            db.executemany("DELETE FROM folder_moves WHERE seq = ?", [(s,) for s in seqs])
    except BaseException:
        await _unmake(acc, [files.folder_dirname(p) for p, _ in made], seqs)
        raise
    faults.point("create.committed")
    await acc.sync_index()
    if special_use:
        await acc.save_subscriptions()
    for mid, made_name in ids:  # the missing parents were made too
        acc.publish(mid, 1, "mailbox", made_name)
    return acc.mailbox_by_id(ids[-1][0])


async def _journal(acc: MaildirAccount, moves: list[tuple[str | None, str]]) -> list[int]:
    """Record folder changes about to happen (old folder, new folder; no old folder for
    one being made); durable before the first folder changes. On failure nothing stays
    recorded (or start-up finds the entries and sees from the index that nothing moved)."""
    async with acc.write() as db:
        seqs = [
            int(db.execute(
                "INSERT INTO folder_moves (old_dir, new_dir) VALUES (?, ?)", (old, new)
            ).lastrowid or 0)
            for old, new in moves
        ]
    try:
        await acc.sync_index()
    except BaseException:
        with contextlib.suppress(StoreError, sqlite3.Error):
            await _unjournal(acc, seqs)
        raise
    return seqs


async def _unjournal(acc: MaildirAccount, seqs: list[int]) -> None:
    async with acc.write() as db:
        db.executemany("DELETE FROM folder_moves WHERE seq = ?", [(s,) for s in seqs])


async def _unmake(acc: MaildirAccount, dirnames: list[str], seqs: list[int]) -> None:
    """After a failure: remove the folders made so far, then their journal entries (if
    that fails too, start-up removes them)."""
    for dirname in dirnames:
        with contextlib.suppress(OSError):
            acc.adir.rmtree(dirname)
    with contextlib.suppress(StoreError, sqlite3.Error):
        await _unjournal(acc, seqs)


def _undo(acc: MaildirAccount, done: list[tuple[str, str]]) -> None:
    for old, new in reversed(done):
        try:
            acc.adir.rename(new, old)
        except OSError as e:
            # The journal row stays: start-up puts the folder back.
            log.error("%s: putting folder %s back failed: %s", acc.address, old, e)
            raise


async def delete(acc: MaildirAccount, name: str) -> None:
    mbox = acc.mailbox_by_name(name)
    prefix = rules.children_prefix(mbox.name)
    rules.check_delete(mbox.name, acc.db.execute(
        "SELECT 1 FROM mailboxes WHERE substr(name, 1, ?) = ?", (len(prefix), prefix)
    ).fetchone() is not None)
    folder = acc.folder(mbox.id)
    named = acls.read(acc.db, mbox.id)  # its ACL goes with it (a trigger deletes the rows)
    trash = join(TRASH, f"{mbox.id}.{mbox.uidvalidity}")
    acc.adir.makedirs(TRASH)
    seqs = await _journal(acc, [(folder, trash)])
    try:
        faults.point("delete.journaled")
        acc.adir.rename(folder, trash)
    except FileNotFoundError:
        pass  # the folder was lost already: the row goes all the same
    except BaseException:
        with contextlib.suppress(StoreError, sqlite3.Error):
            await _unjournal(acc, seqs)
        raise
    try:
        faults.point("delete.moved")
        async with acc.write() as db:
            db.execute("DELETE FROM mailboxes WHERE id = ?", (mbox.id,))
            db.executemany("DELETE FROM folder_moves WHERE seq = ?", [(s,) for s in seqs])
    except BaseException:
        with contextlib.suppress(OSError):
            _undo(acc, [(folder, trash)])
            await _unjournal(acc, seqs)
        raise
    faults.point("delete.committed")
    await acc.sync_index()
    await acc.save_subscriptions()
    acc.forget_folder(mbox.id)
    acc.publish(mbox.id, mbox.highestmodseq + 1, "mailbox", "", mbox.name)
    with contextlib.suppress(OSError):
        await _empty_trash(acc, trash)
    for who in named:
        with contextlib.suppress(StoreError):  # the register may keep a name too many
            await acls.forget_if_unused(acc, who)


async def _empty_trash(acc: MaildirAccount, trash: str) -> None:
    await asyncio.to_thread(acc.adir.rmtree, trash)


async def _rename_inbox(acc: MaildirAccount, inbox: Mailbox, new: str) -> None:
    """RFC 9051 6.3.6: renaming INBOX moves its messages to a new mailbox of that name;
    INBOX stays, empty. One transaction makes the mailbox (and missing parents) and moves
    the messages: all or nothing, as a RENAME must be."""
    wanted = [*rules.missing_parents(new, _exists(acc)), new]
    _check_count(acc, len(wanted))
    seqs = await _journal(acc, [(None, files.folder_dirname(p)) for p in wanted])
    keywords = acc.db.execute("SELECT keywords FROM mailboxes WHERE id = ?", (inbox.id,)).fetchone()[0]
    made: list[tuple[str, folderfile.FolderInfo]] = []
    moved: list[tuple[str, str]] = []
    ids: list[tuple[int, str]] = []
    mid = 0
    try:
        faults.point("rename.journaled")
        for name in wanted:
            info = acc.prepare_folder(name, None)
            made.append((name, info))
            if name == new and keywords:
                # Letters for INBOX's keywords first, so moved files keep them in their names.
                made[-1] = (name, folderfile.update(acc.adir, files.folder_dirname(name),
                                                    keywords=keywords.split()[:len(files.KEYWORD_LETTERS)]))
        await acc.reserve_ahead(inbox.id, 0)
        async with acc.write() as db:
            for name, info in made:
                mid = acc.insert_row(db, name, files.folder_dirname(name), None, info)
                ids.append((mid, name))
            uids = [r[0] for r in db.execute("SELECT uid FROM messages WHERE mailbox_id = ?", (inbox.id,))]
            _, modseq, src_modseq = acc.move_rows(db, inbox.id, uids, mid, moved)
            metadata.copy(db, inbox.id, mid)
            db.executemany("DELETE FROM folder_moves WHERE seq = ?", [(s,) for s in seqs])
    except BaseException:
        acc.undo_moves(moved)
        await _unmake(acc, [files.folder_dirname(n) for n, _ in made], seqs)
        raise
    faults.point("rename.committed")
    await metadata.save(acc, mid)
    await acc.moved(inbox.id, mid, modseq, src_modseq)
    for parent_id, parent in ids[:-1]:
        acc.publish(parent_id, 1, "mailbox", parent)
    # RFC 9051 6.3.6: the messages went to a new mailbox; to a client it is INBOX renamed.
    acc.publish(mid, modseq, "mailbox", new, inbox.name)


async def rename(acc: MaildirAccount, old: str, new: str) -> None:
    src = acc.mailbox_by_name(old)
    new = names.normalize(new)
    _check_fits(new)
    rules.check_rename(src.name, new, _exists(acc))
    if rules.is_inbox(src.name):
        await _rename_inbox(acc, src, new)
        return
    prefix = rules.children_prefix(src.name)
    plan: list[tuple[int, str, str, str]] = []  # (id, old folder, new name, new folder)
    old_names: dict[int, str] = {}
    for mid, name, dirname in acc.db.execute(
        "SELECT id, name, dirname FROM mailboxes WHERE name = ? OR substr(name, 1, ?) = ?",
        (src.name, len(prefix), prefix),
    ).fetchall():
        new_name = rules.renamed(src.name, new, name)
        _check_fits(new_name)
        new_dir = files.folder_dirname(new_name)
        if _has(acc.db, new_name) or acc.adir.exists(new_dir):
            raise MailboxExists(f"mailbox {new_name!r} already exists")
        plan.append((mid, dirname, new_name, new_dir))
        old_names[mid] = name
    parents = rules.missing_parents(new, _exists(acc))
    _check_count(acc, len(parents))
    seqs = await _journal(
        acc,
        [(None, files.folder_dirname(p)) for p in parents]
        + [(old_dir, new_dir) for _, old_dir, _, new_dir in plan],
    )
    done: list[tuple[str, str]] = []
    made: list[str] = []
    made_ids: list[tuple[int, str]] = []
    try:
        faults.point("rename.journaled")
        infos = []
        for parent in parents:
            infos.append((parent, acc.prepare_folder(parent, None)))
            made.append(files.folder_dirname(parent))
        for _, old_dir, _, new_dir in plan:
            acc.adir.rename(old_dir, new_dir)
            done.append((old_dir, new_dir))
            faults.point("rename.moved")
        async with acc.write() as db:
            for parent, info in infos:
                made_ids.append((acc.insert_mailbox(db, parent, None, info), parent))
            for mid, _old_dir, new_name, new_dir in plan:
                db.execute(
                    "UPDATE mailboxes SET name = ?, dirname = ? WHERE id = ?", (new_name, new_dir, mid)
                )
            db.executemany("DELETE FROM folder_moves WHERE seq = ?", [(s,) for s in seqs])
    except BaseException:
        for dirname in made:
            with contextlib.suppress(OSError):
                acc.adir.rmtree(dirname)
        with contextlib.suppress(OSError, StoreError, sqlite3.Error):
            _undo(acc, done)
            await _unjournal(acc, seqs)
        raise
    faults.point("rename.committed")
    await acc.sync_index()
    for mid, parent in made_ids:
        acc.publish(mid, 1, "mailbox", parent)
    for mid, _old_dir, new_name, _ in plan:
        acc.publish(mid, acc._known.get(mid, 1), "mailbox", new_name, old_names[mid])
    await acc.save_subscriptions()
