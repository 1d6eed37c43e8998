"""Making an account's index and folders agree: at start-up, after a reboot, and from
the folders alone when the index is lost or damaged.

What it may do, and nothing more:
- put back folders whose DELETE or RENAME did not complete (the journal), and empty the
  trash of those that did;
- index folders and message files the index lacks: a file keeps the UID in its name
  unless that UID is taken, and the flags in its Maildir info;
- drop rows whose file is gone (the message is gone already);
- remove a file only when it is proven to be one the index has or had: the exact file a
  tombstone names (same base name), or a second name of an indexed message (same inode,
  or the same size and SHA-256). A file that claims a taken UID with other bytes gets a
  fresh UID; a file it cannot place is moved to `letterbox-kept/` and logged, never
  deleted.
It runs where nothing else writes the account: at start-up before the listeners open, in
`letterbox repair`, or in a rebuild while the account is closed to everyone.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import faults, names
from ..api import DEFAULT_MAILBOXES, StoreError
from . import acls, files, folderfile, index, metadata, sidefiles, strays
from .accountdir import AccountDir, join
from .folders import TRASH

if TYPE_CHECKING:
    from .account import MaildirAccount
    from .store import MaildirStore

log = logging.getLogger("letterbox.store")

KEPT = "letterbox-kept"
# Stray files indexed per transaction (small: the server may be serving).
BATCH = 200
# A file left in tmp/ longer than this was abandoned by a writer that died.
_TMP_AGE = 60.0

Stats = dict[str, int]


def new_stats() -> Stats:
    return {"indexed": 0, "dropped": 0, "removed": 0, "folders": 0, "kept": 0, "restored": 0}


def boot_id() -> str:
    """Changes at every boot: a power loss always means a new one."""
    for path, key in (("/proc/sys/kernel/random/boot_id", None), ("/proc/stat", "btime")):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        if key is None:
            return text.strip()
        for line in text.splitlines():
            if line.startswith(key + " "):
                return line.split()[1]
    return "unknown"


# --- the journal and the trash ---------------------------------------------------------------
def undo_folder_moves(acc: MaildirAccount, stats: Stats) -> None:
    """Put back folders whose DELETE, RENAME or CREATE never committed (see folders.py).

    The index says what committed: a change whose new folder an index row names went
    through, and its entry is only dropped; so is one whose folders are not as it left
    them. Only a folder no row names is ever moved back or removed, and a folder made by
    a CREATE only while it holds no mail."""
    rows = acc.db.execute("SELECT seq, old_dir, new_dir FROM folder_moves ORDER BY seq DESC").fetchall()
    if not rows:
        return
    named = {r[0] for r in acc.db.execute("SELECT dirname FROM mailboxes")}
    for _seq, old_dir, new_dir in rows:
        if new_dir in named:
            continue  # committed
        if old_dir is None:
            if acc.adir.isdir(new_dir) and not _holds_mail(acc, new_dir):
                acc.adir.rmtree(new_dir)
                stats["restored"] += 1
                log.warning("%s: removed folder %s (its CREATE never completed)", acc.address, new_dir)
        elif old_dir in named and acc.adir.isdir(new_dir) and not acc.adir.exists(old_dir):
            acc.adir.rename(new_dir, old_dir)
            stats["restored"] += 1
            log.warning("%s: put folder %s back (its change never completed)", acc.address, old_dir or "INBOX")
    acc.adir.fsync_dir("")
    with acc.tx() as db:
        db.execute("DELETE FROM folder_moves")


def _holds_mail(acc: MaildirAccount, folder: str) -> bool:
    for sub in ("cur", "new"):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            if acc.adir.listdir(join(folder, sub)):
                return True
    return False


def empty_trash(acc: MaildirAccount) -> None:
    with contextlib.suppress(FileNotFoundError):
        for entry in acc.adir.listdir(TRASH):
            acc.adir.rmtree(join(TRASH, entry))


def keep_aside(acc: MaildirAccount, rel: str, why: str, stats: Stats) -> None:
    """Move what the index cannot place (a file, a link, a folder) out of every folder,
    keeping it for a human."""
    folder = rel.rpartition("/")[0].replace("/", "_") or "root"
    target_dir = join(KEPT, folder)
    acc.adir.makedirs(target_dir)
    name = rel.rpartition("/")[2]
    target = join(target_dir, name)
    n = 1
    while acc.adir.exists(target):
        n += 1
        target = join(target_dir, f"{name}.{n}")
    acc.adir.rename(rel, target)
    stats["kept"] += 1
    log.warning("%s: kept %r aside in %s: %s", acc.address, rel, target_dir, why)


# --- folders ---------------------------------------------------------------------------------
def adopt_folders(acc: MaildirAccount, stats: Stats) -> None:
    """Index Maildir++ folders that have no row (a crash after mkdir, a copied folder)."""
    known = {r[0] for r in acc.db.execute("SELECT dirname FROM mailboxes")}
    uses = {r[0] for r in acc.db.execute("SELECT special_use FROM mailboxes WHERE special_use IS NOT NULL")}
    candidates = [""] if "" not in known else []
    candidates += sorted(e for e in acc.adir.listdir("") if e.startswith(".") and e not in known)
    for entry in candidates:
        if entry and acc.adir.exists(entry) and not acc.adir.is_real_dir(entry) and not acc.adir.is_file(entry):
            keep_aside(acc, entry, "a folder must not be a symbolic link", stats)
            continue
        if not acc.adir.is_real_dir(join(entry, "cur")):
            continue  # not a Maildir folder, or one reached through a symbolic link
        if not _utf8(entry):
            keep_aside(acc, entry, "its name is not UTF-8", stats)
            continue
        try:
            name = names.normalize(files.folder_name(entry))
        except StoreError:
            continue
        if files.folder_dirname(name) != entry:
            continue  # a name we would spell differently: not one of ours
        info = folderfile.read(acc.adir, entry)
        use = info.special_use if info is not None and info.special_use not in uses else None
        with acc.tx() as db:
            for parent in names.parent_names(name):
                if not db.execute("SELECT 1 FROM mailboxes WHERE name = ?", (parent,)).fetchone():
                    _adopt_or_make(acc, db, parent)
            if db.execute("SELECT 1 FROM mailboxes WHERE name = ?", (name,)).fetchone():
                continue
            if info is None:  # a folder from elsewhere: its UIDs mean nothing here
                mid = acc.insert_row(db, name, entry, use, acc.describe_folder(entry, use),
                                     subscribed=name == "INBOX" or None)
            else:
                info = _own_uidvalidity(acc, db, entry, info)
                mid = acc.insert_row(db, name, entry, use, info, subscribed=name == "INBOX" or None)
                acls.restore(db, mid, info.acl)
                db.execute(
                    "UPDATE mailboxes SET uidnext = ?, highestmodseq = ?, recent_uid = ? WHERE id = ?",
                    (info.uidnext, info.modseq, info.uidnext, mid),
                )
        if use:
            uses.add(use)
        stats["folders"] += 1
        log.info("%s: indexed folder %s found on disk", acc.address, name)


def _adopt_or_make(acc: MaildirAccount, db: sqlite3.Connection, name: str, use: str | None = None,
                   subscribed: bool | None = None) -> int:
    """A row for *name*: its folder is taken as it is if on disk (with its folder file, or
    a new UIDVALIDITY), made otherwise."""
    dirname = files.folder_dirname(name)
    if acc.adir.isdir(join(dirname, "cur")):
        info = folderfile.read(acc.adir, dirname)
        if info is None:
            info = acc.describe_folder(dirname, use)
        else:
            info = _own_uidvalidity(acc, db, dirname, info)
        mid = acc.insert_row(db, name, dirname, use, info, subscribed)
        acls.restore(db, mid, info.acl)
        return mid
    return acc.insert_mailbox(db, name, use, subscribed=subscribed)


def _own_uidvalidity(
    acc: MaildirAccount, db: sqlite3.Connection, dirname: str, info: folderfile.FolderInfo
) -> folderfile.FolderInfo:
    """A folder file whose UIDVALIDITY a mailbox of the account has already (a folder
    copied whole, its file too) gets a new one: the MAILBOXID is made from it, and two
    mailboxes must never show the same (RFC 8474 4)."""
    if db.execute("SELECT 1 FROM mailboxes WHERE uidvalidity = ?", (info.uidvalidity,)).fetchone() is None:
        return info
    log.warning("%s: folder %s has the UIDVALIDITY of another mailbox; giving it a new one",
                acc.address, dirname)
    return folderfile.update(acc.adir, dirname, uidvalidity=acc._store.next_uidvalidity())


def ensure_default_mailboxes(acc: MaildirAccount) -> None:
    """A new account's INBOX and special-use folders; those missing are made again
    until all were made once (a first open that failed part way is finished later).
    Once made, the root's folder file says so, and a rebuild leaves deleted ones deleted."""
    if acc.db.execute("SELECT 1 FROM meta WHERE key = 'defaults'").fetchone():
        return
    root = folderfile.read(acc.adir, "")
    with acc.tx() as db:
        if db.execute("SELECT 1 FROM meta WHERE key = 'defaults'").fetchone():
            return
        if root is not None and root.defaults:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('defaults', 1)")
            return
        if not db.execute("SELECT 1 FROM mailboxes WHERE name = 'INBOX'").fetchone():
            _adopt_or_make(acc, db, "INBOX", subscribed=True)
        for name, use in DEFAULT_MAILBOXES:
            if db.execute("SELECT 1 FROM mailboxes WHERE name = ?", (name,)).fetchone():
                continue
            taken = db.execute("SELECT 1 FROM mailboxes WHERE special_use = ?", (use,)).fetchone()
            _adopt_or_make(acc, db, name, None if taken else use)
        folderfile.update(acc.adir, "", defaults=True)
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('defaults', 1)")


def write_folder_files(acc: MaildirAccount) -> None:
    """Every folder's file up to date with the index (after an upgrade, a rebuild)."""
    for mid, dirname, uidvalidity, uidnext, hms, use in acc.db.execute(
        "SELECT id, dirname, uidvalidity, uidnext, highestmodseq, special_use FROM mailboxes"
    ).fetchall():
        info = folderfile.read(acc.adir, dirname)
        entries = acls.read(acc.db, mid)
        if (
            info is None or info.uidvalidity != uidvalidity or info.uidnext <= uidnext - 1
            or info.modseq < hms or info.special_use != use or info.acl != entries
        ):
            acc._reserved_now(mid, folderfile.update(
                acc.adir, dirname, uidvalidity=uidvalidity, uidnext=uidnext + folderfile.BLOCK,
                modseq=hms + folderfile.BLOCK, special_use=use or "", acl=entries,
            ))
    write_side_files(acc)
    if acc.db.execute("SELECT 1 FROM meta WHERE key = 'defaults'").fetchone():
        root = folderfile.read(acc.adir, "")
        if root is not None and not root.defaults:
            folderfile.update(acc.adir, "", defaults=True)
    if folderfile.read_subscriptions(acc.adir) is None:
        subs = [r[0] for r in acc.db.execute("SELECT name FROM mailboxes WHERE subscribed")]
        folderfile.write_subscriptions(acc.adir, subs)


def write_side_files(acc: MaildirAccount) -> None:
    """Metadata and readers' \\Seen files up to date with the index (a crash may have
    come between a commit and its file)."""
    sidefiles.sync_metadata_file(acc.adir, None, sidefiles.read_entries(acc.db, metadata.SERVER))
    for mid, dirname in acc.db.execute("SELECT id, dirname FROM mailboxes").fetchall():
        sidefiles.sync_metadata_file(acc.adir, dirname, sidefiles.read_entries(acc.db, mid))
        sidefiles.sync_seen_file(acc.adir, dirname, sidefiles.read_seen(acc.db, mid))


def restore_side_files(acc: MaildirAccount, db: sqlite3.Connection) -> None:
    """Inside the caller's transaction, for a rebuilt index whose messages are in: the
    metadata and readers' \\Seen marks the folders' side files kept."""
    server = sidefiles.read_metadata_file(acc.adir, None)
    if server:
        sidefiles.restore_metadata(db, metadata.SERVER, server)
    for mid, dirname in db.execute("SELECT id, dirname FROM mailboxes").fetchall():
        entries = sidefiles.read_metadata_file(acc.adir, dirname)
        if entries:
            sidefiles.restore_metadata(db, mid, entries)
        seen = sidefiles.read_seen_file(acc.adir, dirname)
        if seen:
            sidefiles.restore_seen(db, mid, seen)


def apply_floors(acc: MaildirAccount) -> None:
    """At every open: an index older than its folder files (restored from a backup, or its
    WAL lost) must not hand out a UID again. UIDNEXT rises to the folder file's `used`
    (written when the highest messages are expunged), and UIDNEXT and HIGHESTMODSEQ to
    the reservations when they lag more than a block behind them (they never do in use)."""
    changes = []
    for mid, dirname, uidvalidity, uidnext, hms in acc.db.execute(
        "SELECT id, dirname, uidvalidity, uidnext, highestmodseq FROM mailboxes"
    ).fetchall():
        info = folderfile.read(acc.adir, dirname)
        if info is None or info.uidvalidity != uidvalidity:
            continue
        new_next = max(uidnext, info.used)
        if info.uidnext - folderfile.BLOCK > new_next:
            new_next = info.uidnext
        new_hms = info.modseq if info.modseq - folderfile.BLOCK > hms else hms
        if (new_next, new_hms) != (uidnext, hms):
            changes.append((new_next, new_hms, mid))
    if changes:
        with acc.tx() as db:
            db.executemany(
                "UPDATE mailboxes SET uidnext = max(uidnext, ?), highestmodseq = max(highestmodseq, ?)"
                " WHERE id = ?", changes,
            )
        log.warning("%s: the index was behind its folder files; UIDNEXT/HIGHESTMODSEQ raised for %d"
                    " mailbox(es)", acc.address, len(changes))


def recover_after_reboot(acc: MaildirAccount) -> bool:
    """After a reboot, the index may have lost its last commits to a power loss: move
    UIDNEXT and HIGHESTMODSEQ up to the folder files' reservations, so no UID or MODSEQ a
    client saw is handed out again. Runs in every process that opens the account."""
    boot = boot_id()
    row = acc.db.execute("SELECT value FROM meta WHERE key = 'boot_id'").fetchone()
    if row is not None and str(row[0]) == boot:
        return False
    with acc.tx() as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'boot_id'").fetchone()
        if row is not None and str(row[0]) == boot:
            return False  # another process did it meanwhile
        # A new index, or one from before boot ids: nothing to recover, only to record.
        rebooted = row is not None
        for mid, dirname, uidvalidity, uidnext, hms in db.execute(
            "SELECT id, dirname, uidvalidity, uidnext, highestmodseq FROM mailboxes"
        ).fetchall():
            info = folderfile.read(acc.adir, dirname)
            if rebooted and info is not None and info.uidvalidity == uidvalidity and (
                info.uidnext > uidnext or info.modseq > hms
            ):
                uidnext, hms = max(uidnext, info.uidnext), max(hms, info.modseq)
                db.execute(
                    "UPDATE mailboxes SET uidnext = ?, highestmodseq = ? WHERE id = ?",
                    (uidnext, hms, mid),
                )
            acc.extend_reservation(mid, uidnext, hms)
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('boot_id', ?)", (boot,))
    acc.adir.fsync_file("letterbox.index-wal")
    return rebooted


# --- messages --------------------------------------------------------------------------------
def _same_content(adir: AccountDir, a: str, b: str) -> bool:
    try:
        sa, sb = adir.stat(a), adir.stat(b)
    except FileNotFoundError:
        return False
    if (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino):
        return True
    if sa.st_size != sb.st_size:
        return False
    return hashlib.sha256(adir.read(a)).digest() == hashlib.sha256(adir.read(b)).digest()


def reconcile(acc: MaildirAccount, new_limit: int | None = None) -> Stats:
    """Make index and files agree after a crash. Returns counts of what was repaired.

    A folder with more than *new_limit* files in new/ keeps them there for index_new;
    new_waiting counts them."""
    stats = new_stats()
    acc.new_waiting = 0
    undo_folder_moves(acc, stats)
    empty_trash(acc)
    adopt_folders(acc, stats)
    for mid, dirname in acc.db.execute("SELECT id, dirname FROM mailboxes").fetchall():
        reconcile_folder(acc, mid, dirname, stats, new_limit)
    write_folder_files(acc)
    acc.remember_modseqs()
    acc._data_version = acc._pragma_data_version()
    return stats


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes the file system gave that are not UTF-8
        return False
    return True


def _own_folder(acc: MaildirAccount, folder: str, stats: Stats) -> None:
    """The folder and its cur/, new/, tmp/ as real directories of this account: a
    symbolic link in their place (to another account's mail, say) is kept aside."""
    for rel in ([folder] if folder else []) + [join(folder, s) for s in ("cur", "new", "tmp")]:
        if acc.adir.exists(rel) and not acc.adir.is_real_dir(rel):
            keep_aside(acc, rel, "a folder must not be a symbolic link", stats)
    acc.adir.make_maildir(folder)


def _odd_files(acc: MaildirAccount, rel: str, names: list[str], stats: Stats) -> list[str]:
    """*names* in *rel*, less those kept aside: links, FIFOs, names that are not UTF-8."""
    out = []
    for name in names:
        path = join(rel, name)
        if not _utf8(name):
            keep_aside(acc, path, "its name is not UTF-8", stats)
        elif not acc.adir.is_file(path):
            keep_aside(acc, path, "not a regular file", stats)
        else:
            out.append(name)
    return out


def reconcile_folder(acc: MaildirAccount, mid: int, folder: str, stats: Stats, new_limit: int | None) -> None:
    adir = acc.adir
    _own_folder(acc, folder, stats)
    cur = join(folder, "cur")
    now = time.time()
    for mtime, fn in adir.scan(join(folder, "tmp")):
        if now - mtime > _TMP_AGE and adir.unlink(join(folder, "tmp", fn)):
            stats["removed"] += 1
    on_disk = set(_odd_files(acc, cur, adir.listdir(cur), stats))
    _odd_files(acc, join(folder, "new"), adir.listdir(join(folder, "new")), stats)
    by_base: dict[str, list[str]] = {}
    for fn in on_disk:
        by_base.setdefault(files.base_of(fn), []).append(fn)
    rows = dict(acc.db.execute("SELECT filename, uid FROM messages WHERE mailbox_id = ?", (mid,)).fetchall())
    renamed: list[tuple[int, str]] = []
    missing: list[tuple[int, str]] = []
    for fn, uid in rows.items():
        if fn in on_disk:
            continue
        others = [n for n in by_base.get(files.base_of(fn), []) if n not in rows]
        if others:
            renamed.append((uid, others[0]))  # its flag letters changed on disk
        elif not adir.exists(join(cur, fn)):
            missing.append((uid, fn))
    if renamed or missing:
        with acc.tx() as db:
            db.executemany(
                "UPDATE messages SET filename = ? WHERE mailbox_id = ? AND uid = ?",
                [(new, mid, uid) for uid, new in renamed],
            )
            if missing:
                modseq = acc.bump_modseq(db, mid)
                db.executemany("DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", [(mid, u) for u, _ in missing])
                db.executemany(
                    "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq, base) VALUES (?, ?, ?, ?)",
                    [(mid, u, modseq, files.base_of(fn)) for u, fn in missing],
                )
        for uid, new in renamed:
            rows.pop(next(fn for fn, u in rows.items() if u == uid))
            rows[new] = uid
        for _uid, fn in missing:
            rows.pop(fn, None)
        stats["dropped"] += len(missing)
    by_uid = {uid: fn for fn, uid in rows.items()}
    tombstones = dict(acc.db.execute("SELECT uid, base FROM expunged WHERE mailbox_id = ?", (mid,)).fetchall())
    stray_names = sorted(
        (fn for fn in on_disk if fn not in rows), key=lambda n: files.uid_from_filename(n) or 0
    )
    placed: list[tuple[str, int | None]] = []
    claimed: set[int] = set()
    first_of: dict[str, str] = {}
    for fn in stray_names:
        rel = join(cur, fn)
        base = files.base_of(fn)
        other = first_of.setdefault(base, fn)
        if other != fn and _same_content(adir, join(cur, other), rel):
            adir.unlink(rel)  # two names of one message (a flag rename cut short)
            stats["removed"] += 1
            continue
        uid = files.uid_from_filename(fn)
        if uid is not None and uid in tombstones:
            base = tombstones[uid]
            if base == files.base_of(fn):
                adir.unlink(rel)  # the very file an expunge deleted; the unlink never happened
                stats["removed"] += 1
                continue
            if base is None:
                keep_aside(acc, rel, f"UID {uid} was expunged before tombstones named files", stats)
                continue
            log.warning("%s: %s claims expunged UID %d but is another message: new UID", acc.address, rel, uid)
            uid = None
        elif uid is not None and uid in by_uid:
            if _same_content(adir, join(cur, by_uid[uid]), rel):
                adir.unlink(rel)  # a second name of an indexed message
                stats["removed"] += 1
                continue
            log.warning("%s: %s claims UID %d of another message: new UID", acc.address, rel, uid)
            uid = None
        if uid is not None and uid in claimed:
            uid = None  # two files claim one UID: the later one gets a fresh UID
        elif uid is not None:
            claimed.add(uid)
        placed.append((fn, uid))
    # Never hand out a UID that any row, file or tombstone has used.
    highest = max([0, *by_uid, *tombstones, *claimed])
    with acc.tx() as db:
        db.execute("UPDATE mailboxes SET uidnext = max(uidnext, ?) WHERE id = ?", (highest + 1, mid))
    # Many files in new/ (a migration, an outside agent's backlog) are indexed after
    # the server opens, by index_new; a few are indexed before, at once.
    waiting = strays.count_new(adir, folder)
    take_new = new_limit is None or waiting <= new_limit
    if not take_new:
        acc.new_waiting += waiting
    found = strays.find(adir, folder, placed, acc.letters(mid), new=take_new)
    stats["indexed"] += index_found(acc, mid, folder, found)


def index_new(acc: MaildirAccount, stop: threading.Event | None = None) -> int:
    """Index every file in the new/ folders; returns how many. Stops between two
    batches once *stop* is set."""
    done = 0
    for mid, dirname in acc.db.execute("SELECT id, dirname FROM mailboxes").fetchall():
        if stop is not None and stop.is_set():
            break
        done += index_found(acc, mid, dirname, strays.find(acc.adir, dirname, [], new=True), stop)
    acc.new_waiting = 0
    return done


def index_found(
    acc: MaildirAccount, mid: int, folder: str, found: list[strays.Stray], stop: threading.Event | None = None
) -> int:
    done = 0
    batch: list[strays.Loaded] = []
    for loaded in strays.load(acc.adir, found, stop):
        batch.append(loaded)
        if len(batch) >= BATCH:
            done += _index_batch(acc, mid, folder, batch)
            batch = []
    if batch:
        done += _index_batch(acc, mid, folder, batch)
    if done:
        acc.adir.fsync_dir(join(folder, "cur"))
    return done


def _index_batch(acc: MaildirAccount, mid: int, folder: str, batch: list[strays.Loaded]) -> int:
    """Index a batch of stray files, returning how many: new/ ones get the next UIDs
    and move into cur/ under a name that carries the UID.

    Their UIDs are reserved (committed) before any file moves, so a file renamed
    into cur/ never shares its UID with a later append, whatever fails after; at
    worst it is indexed under that UID at the next start."""
    cur = join(folder, "cur")
    fresh = sum(1 for item in batch if item.stray.uid is None)
    next_uid = 0
    if fresh:
        with acc.tx() as db:
            next_uid, hms = db.execute("SELECT uidnext, highestmodseq FROM mailboxes WHERE id = ?", (mid,)).fetchone()
            acc._check_reserved(mid, next_uid + fresh - 1, hms + 1)
            db.execute("UPDATE mailboxes SET uidnext = ? WHERE id = ?", (next_uid + fresh, mid))
    placed: list[tuple[strays.Loaded, int, str]] = []
    for item in batch:
        stray = item.stray
        if stray.dir == cur and stray.uid is not None:
            placed.append((item, stray.uid, stray.name))
            continue
        uid, next_uid = next_uid, next_uid + 1
        flags = stray.flags.split()
        name = files.new_filename(item.size, uid, acc.info_for(mid, flags))
        try:
            acc.adir.rename(join(stray.dir, stray.name), join(cur, name))
        except FileNotFoundError:
            continue  # taken away meanwhile by whoever put it there; its UID stays unused
        faults.point("reconcile.renamed")
        placed.append((item, uid, name))
    if not placed:
        return 0
    with acc.tx() as db:
        top = max(uid for _, uid, _ in placed)
        hms = db.execute("SELECT highestmodseq FROM mailboxes WHERE id = ?", (mid,)).fetchone()[0]
        acc._check_reserved(mid, top, hms + 1)
        modseq = acc.bump_modseq(db, mid, {f for item, _, _ in placed for f in item.stray.flags.split()})
        acc.insert_rows(db, mid, [
            (uid, modseq, item.stray.flags, item.size, item.mtime, name, item.parsed)
            for item, uid, name in placed
        ])
        db.execute("UPDATE mailboxes SET uidnext = max(uidnext, ?) WHERE id = ?", (top + 1, mid))
    return len(placed)


# --- rebuilding --------------------------------------------------------------------------------
REBUILD_FILE = "letterbox.index.rebuild"


def rebuild(store: MaildirStore, address: str, adir: AccountDir, incarnation: str | None) -> Stats:
    """Build a new index from the folders alone and put it in place of the old one (which,
    if there is one, is kept beside as letterbox.index.broken-<time>).

    UIDVALIDITY, UIDNEXT and the MODSEQ floor come from the folder files, UIDs from the
    file names, flags from their Maildir info, subscriptions from their file, metadata
    and readers' \\Seen marks from theirs (sidefiles.py). Every
    MODSEQ is above any a client may have seen, and a client resyncing from before the
    rebuild is told of every UID that no longer exists (see changes_since)."""
    from .account import INDEX_FILE, MaildirAccount

    for suffix in ("", "-wal", "-shm", "-journal"):
        adir.unlink(REBUILD_FILE + suffix)
    work = AccountDir(adir.path)  # a descriptor of its own: closing it leaves the caller's
    try:
        db = index.connect(index_path(work, REBUILD_FILE))
    except BaseException:
        work.close()
        raise
    acc = MaildirAccount(store, address, work, db, incarnation)
    try:
        stats = new_stats()
        empty_trash(acc)
        with acc.tx() as tx:
            tx.execute("DELETE FROM folder_moves")
        adopt_folders(acc, stats)
        with acc.tx() as tx:
            tx.execute("UPDATE mailboxes SET vanished_floor = highestmodseq")
        ensure_default_mailboxes(acc)
        subs = folderfile.read_subscriptions(acc.adir)
        for mid, dirname in acc.db.execute("SELECT id, dirname FROM mailboxes").fetchall():
            reconcile_folder(acc, mid, dirname, stats, None)
        with acc.tx() as tx:
            tx.execute("UPDATE mailboxes SET recent_uid = uidnext")
            if subs is not None:  # as they were, not as the adopted folders suggest
                tx.execute("UPDATE mailboxes SET subscribed = 0")
                tx.executemany("UPDATE mailboxes SET subscribed = 1 WHERE name = ?", [(n,) for n in subs])
                acc.write_subs(tx, set(subs))
            tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('boot_id', ?)", (boot_id(),))
            restore_side_files(acc, tx)
        write_folder_files(acc)
        stats["messages"] = int(acc.db.execute("SELECT count(*) FROM messages").fetchone()[0])
        stats["folders"] = int(acc.db.execute("SELECT count(*) FROM mailboxes").fetchone()[0])
        # One self-contained file, no WAL beside it, before it takes the index's place.
        acc.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        acc.db.execute("PRAGMA journal_mode=DELETE")
    finally:
        acc.close()
    adir.fsync_file(REBUILD_FILE)
    faults.point("rebuild.built")
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for suffix in ("", "-wal", "-shm"):
        if adir.exists(INDEX_FILE + suffix):
            if suffix == "-shm":
                adir.unlink(INDEX_FILE + suffix)
            else:
                adir.rename(INDEX_FILE + suffix, f"{INDEX_FILE}.broken-{stamp}{suffix}")
    adir.rename(REBUILD_FILE, INDEX_FILE)
    adir.fsync_dir("")
    log.warning("%s: index rebuilt from the folders: %s", address, stats)
    return stats


def index_path(adir: AccountDir, name: str) -> Path:
    """A path SQLite can open that goes through the folder's descriptor (so an index, too,
    follows its account when the account's folder is renamed away)."""
    via_fd = Path(f"/proc/self/fd/{adir.fd}")
    if via_fd.is_dir():
        return via_fd / name
    return adir.path / name


def check(acc: MaildirAccount) -> list[str]:
    """SQLite's own consistency check of the index: problems found, [] if none."""
    try:
        rows = acc.db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as e:
        return [str(e)]
    problems = [r[0] for r in rows if r[0] != "ok"]
    return problems
