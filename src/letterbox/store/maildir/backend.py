"""The embedded store: Maildir++ folders of message files plus a SQLite index per account.

Ordering that makes a crash harmless (the reconciler relies on it):
  append:  write file to tmp/ and fsync it -> one transaction: allocate the UID, rename
           the file into cur/ (UID in its name), insert the row (commit) -> fsync cur/
           -> acknowledge. SQLite's write lock orders these transactions, also across
           processes, so UIDs become visible strictly in ascending order.
  expunge: delete rows and record tombstones (commit) -> unlink files.
A file without a row is indexed at start-up under the UID in its name, unless a tombstone
says it was expunged; a row without a file is dropped. UIDNEXT never moves backwards.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from ...mime import ParsedMessage, parse_message
from .. import names
from ..api import (
    DEFAULT_MAILBOXES,
    SYSTEM_FLAGS,
    AccountStore,
    AppendResult,
    BadMailboxName,
    Change,
    ChangeSet,
    CopyResult,
    FetchField,
    FlagTable,
    Mailbox,
    MailboxExists,
    MailboxInUse,
    MailboxNotFound,
    MailboxStatus,
    MessageGone,
    MessageMeta,
    MessageRecord,
    OverQuota,
    Quota,
    SearchField,
    Store,
    StoreError,
    Usage,
)
from ..feed import ChangeFeed, Subscription
from . import files, strays
from .flagtables import FlagTables
from .index import connect

log = logging.getLogger(__name__)

# Reading files bigger than this happens in a worker thread so the event loop stays free.
_THREAD_READ = 256 * 1024
_IN_CHUNK = 500
# A POP3 session waiting for the maildrop lock checks this often for holders in other
# processes (holders in this process wake it at once).
_POP3_LOCK_POLL = 0.25
# Stray files indexed per transaction at start-up (small: the server may be serving).
_RECONCILE_BATCH = 200

_FIELD_SQL: dict[str, tuple[str, ...]] = {
    "flags": ("m.flags",),
    "modseq": ("m.modseq",),
    "size": ("m.size",),
    "internaldate": ("m.internaldate",),
    "envelope": ("p.envelope",),
    "bodystructure": ("p.bodystructure",),
    "body": ("p.body",),
    "parts": ("p.parts",),
    "header_size": ("p.header_size",),
    "sent_date": ("h.sent_date",),
    "search": ("h.subject", "h.from_", "h.to_", "h.cc", "h.bcc"),
    "pop3": ("m.pop3_hidden", "m.pop3_retrieved"),
}

_SEARCH_COLUMNS: dict[str, str] = {
    "subject": "subject", "from": "from_", "to": "to_", "cc": "cc", "bcc": "bcc",
    # Stored as written; Message-IDs are ASCII, so lower() is their casefold.
    "message-id": "lower(message_id)",
}

_flagsets: dict[str, frozenset[str]] = {}


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _flags(text: str) -> frozenset[str]:
    """Parse a stored flag string, sharing one frozenset per distinct value."""
    fs = _flagsets.get(text)
    if fs is None:
        fs = frozenset(text.split())
        if len(_flagsets) < 4096:
            _flagsets[text] = fs
    return fs


def _flag_text(flags: Iterable[str]) -> str:
    return " ".join(sorted(set(flags)))


def _normalize_flags(flags: Iterable[str]) -> set[str]:
    """System flags are case-insensitive (RFC 9051 2.3.2); keep their canonical spelling."""
    canon = {f.lower(): f for f in SYSTEM_FLAGS}
    out = set()
    for f in flags:
        if f.startswith("\\"):
            c = canon.get(f.lower())
            if c is not None:
                out.add(c)
            # \Recent and unknown system flags cannot be stored by clients.
        else:
            out.add(f)
    return out


class MaildirAccount(AccountStore):
    _inbox_id: int | None = None
    """INBOX can be neither deleted nor renamed (renaming it moves its messages out), so
    its id holds for the account's life; append, once per delivered copy, skips the lookup."""

    def __init__(self, store: MaildirStore, address: str, root: Path) -> None:
        self.address = address
        self.root = root
        self._store = store
        files.make_dirs(root)
        self.db: sqlite3.Connection = connect(root / "letterbox.index")
        self._dirs: dict[int, Path] = {}
        self._known: dict[int, int] = {}
        self._data_version = self._pragma_data_version()
        self._pop3_fd: int | None = None
        self._pop3_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.new_waiting = 0
        """Files left in new/ by the last reconcile, for index_new."""
        self._ensure_default_mailboxes()
        self._remember_modseqs()

    # --- helpers -----------------------------------------------------------------------
    def _pragma_data_version(self) -> int:
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; never spans an await, so coroutines cannot interleave."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _mailbox_from_row(self, row: tuple) -> Mailbox:
        (mid, name, dirname, uidvalidity, uidnext, hms, special_use, subscribed, keywords) = row
        self._dirs[mid] = self.root / dirname if dirname else self.root
        return Mailbox(
            id=mid,
            name=name,
            uidvalidity=uidvalidity,
            uidnext=uidnext,
            highestmodseq=hms,
            special_use=special_use,
            subscribed=bool(subscribed),
            keywords=tuple(keywords.split()),
        )

    _MBOX_COLS = (
        "id, name, dirname, uidvalidity, uidnext, highestmodseq, special_use, subscribed, keywords"
    )

    def _mailbox_by_id(self, mailbox_id: int) -> Mailbox:
        row = self.db.execute(
            f"SELECT {self._MBOX_COLS} FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        if row is None:
            raise MailboxNotFound("mailbox no longer exists")
        return self._mailbox_from_row(row)

    def _mailbox_by_name(self, name: str) -> Mailbox:
        name = names.normalize(name)
        row = self.db.execute(
            f"SELECT {self._MBOX_COLS} FROM mailboxes WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            raise MailboxNotFound(f"mailbox {name!r} does not exist")
        return self._mailbox_from_row(row)

    def _folder(self, mailbox_id: int) -> Path:
        d = self._dirs.get(mailbox_id)
        if d is None:
            self._mailbox_by_id(mailbox_id)
            d = self._dirs[mailbox_id]
        return d

    def _next_uidvalidity(self, db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM meta WHERE key = 'uidvalidity'").fetchone()
        last = row[0] if row else 0
        value = max(last + 1, int(time.time()))
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('uidvalidity', ?)", (value,))
        return value

    def _insert_mailbox(
        self, db: sqlite3.Connection, name: str, special_use: str | None
    ) -> int:
        dirname = files.folder_dirname(name)
        files.make_dirs(self.root / dirname if dirname else self.root)
        cur = db.execute(
            "INSERT INTO mailboxes (name, dirname, uidvalidity, special_use, subscribed)"
            " VALUES (?, ?, ?, ?, ?)",
            (name, dirname, self._next_uidvalidity(db), special_use, 1 if special_use else 0),
        )
        return int(cur.lastrowid or 0)

    def _ensure_default_mailboxes(self) -> None:
        if self.db.execute("SELECT 1 FROM mailboxes WHERE name = 'INBOX'").fetchone():
            return
        with self._tx() as db:
            if db.execute("SELECT 1 FROM mailboxes WHERE name = 'INBOX'").fetchone():
                return
            self._insert_mailbox(db, "INBOX", None)
            db.execute("UPDATE mailboxes SET subscribed = 1 WHERE name = 'INBOX'")
            for name, use in DEFAULT_MAILBOXES:
                if not db.execute("SELECT 1 FROM mailboxes WHERE name = ?", (name,)).fetchone():
                    self._insert_mailbox(db, name, use)

    def _remember_modseqs(self) -> None:
        for mid, hms in self.db.execute("SELECT id, highestmodseq FROM mailboxes"):
            self._known[mid] = hms

    def _publish(self, mailbox_id: int, modseq: int, kind: Literal["append", "flags", "expunge", "mailbox"]) -> None:
        # data_version is deliberately not refreshed here: that would hide a change
        # another process committed since the last poll.
        self._known[mailbox_id] = max(self._known.get(mailbox_id, 0), modseq)
        self._store.feed.publish(Change(self.address, mailbox_id, modseq, kind))

    def check_external(self) -> None:
        """Publish changes committed by another process (e.g. `letterbox deliver`)."""
        version = self._pragma_data_version()
        if version == self._data_version:
            return
        self._data_version = version
        for mid, hms in self.db.execute("SELECT id, highestmodseq FROM mailboxes").fetchall():
            if hms != self._known.get(mid):
                kind: Literal["append", "mailbox"] = "append" if mid in self._known else "mailbox"
                self._known[mid] = hms
                self._store.feed.publish(Change(self.address, mid, hms, kind))

    # --- mailboxes -----------------------------------------------------------------------
    async def list_mailboxes(self) -> list[Mailbox]:
        rows = self.db.execute(f"SELECT {self._MBOX_COLS} FROM mailboxes ORDER BY name").fetchall()
        return [self._mailbox_from_row(r) for r in rows]

    async def get_mailbox(self, name: str) -> Mailbox:
        return self._mailbox_by_name(name)

    async def create_mailbox(self, name: str, special_use: str | None = None) -> Mailbox:
        name = names.normalize(name)
        with self._tx() as db:
            if db.execute("SELECT 1 FROM mailboxes WHERE name = ?", (name,)).fetchone():
                raise MailboxExists(f"mailbox {name!r} already exists")
            if special_use and db.execute(
                "SELECT 1 FROM mailboxes WHERE special_use = ?", (special_use,)
            ).fetchone():
                raise MailboxExists(f"a mailbox with {special_use} already exists")
            for parent in names.parent_names(name):
                if not db.execute("SELECT 1 FROM mailboxes WHERE name = ?", (parent,)).fetchone():
                    self._insert_mailbox(db, parent, None)
            mid = self._insert_mailbox(db, name, special_use)
        self._publish(mid, 1, "mailbox")
        return self._mailbox_by_id(mid)

    async def delete_mailbox(self, name: str) -> None:
        mbox = self._mailbox_by_name(name)
        if mbox.name == "INBOX":
            raise StoreError("INBOX cannot be deleted")
        prefix = mbox.name + "/"
        if self.db.execute(
            "SELECT 1 FROM mailboxes WHERE substr(name, 1, ?) = ?", (len(prefix), prefix)
        ).fetchone():
            raise StoreError(f"mailbox {mbox.name!r} has children; delete them first")
        folder = self._folder(mbox.id)
        with self._tx() as db:
            db.execute("DELETE FROM mailboxes WHERE id = ?", (mbox.id,))
        self._dirs.pop(mbox.id, None)
        self._known.pop(mbox.id, None)
        self._store.flag_tables.drop((self.address, mbox.id))
        await asyncio.to_thread(shutil.rmtree, folder, True)
        self._publish(mbox.id, mbox.highestmodseq + 1, "mailbox")

    async def rename_mailbox(self, old: str, new: str) -> None:
        src = self._mailbox_by_name(old)
        new = names.normalize(new)
        if self.db.execute("SELECT 1 FROM mailboxes WHERE name = ?", (new,)).fetchone():
            raise MailboxExists(f"mailbox {new!r} already exists")
        if src.name == "INBOX":
            # RFC 9051 6.3.6: renaming INBOX moves its messages to the new name; INBOX stays.
            dest = await self.create_mailbox(new)
            _, metas = await self.snapshot("INBOX")
            if metas:
                await self.move(src.id, [m.uid for m in metas], dest.name)
            return
        if new.startswith(src.name + "/"):
            raise BadMailboxName("cannot rename a mailbox into its own child")
        prefix = src.name + "/"
        moves: list[tuple[int, str, str, str]] = []
        for mid, name, dirname in self.db.execute(
            "SELECT id, name, dirname FROM mailboxes WHERE name = ? OR substr(name, 1, ?) = ?",
            (src.name, len(prefix), prefix),
        ).fetchall():
            new_name = new + name[len(src.name):]
            moves.append((mid, dirname, new_name, files.folder_dirname(new_name)))
        with self._tx() as db:
            for parent in names.parent_names(new):
                if not db.execute("SELECT 1 FROM mailboxes WHERE name = ?", (parent,)).fetchone():
                    self._insert_mailbox(db, parent, None)
            for mid, _old_dir, new_name, new_dir in moves:
                db.execute(
                    "UPDATE mailboxes SET name = ?, dirname = ? WHERE id = ?",
                    (new_name, new_dir, mid),
                )
            for _mid, old_dir, _new_name, new_dir in moves:
                os.rename(self.root / old_dir, self.root / new_dir)
        for mid, _old_dir, _new_name, new_dir in moves:
            self._dirs[mid] = self.root / new_dir
            self._publish(mid, self._known.get(mid, 1), "mailbox")

    async def set_subscribed(self, name: str, subscribed: bool) -> None:
        mbox = self._mailbox_by_name(name)
        with self._tx() as db:
            db.execute(
                "UPDATE mailboxes SET subscribed = ? WHERE id = ?", (int(subscribed), mbox.id)
            )

    async def subscriptions(self) -> list[str]:
        return [
            r[0]
            for r in self.db.execute("SELECT name FROM mailboxes WHERE subscribed ORDER BY name")
        ]

    async def status(self, mailbox: str) -> MailboxStatus:
        mbox = self._mailbox_by_name(mailbox)
        # The counts are kept by triggers (index.TRIGGERS); \Recent needs the UIDs at or
        # above recent_uid, a range of the primary key.
        messages, size, unseen, deleted, recent = self.db.execute(
            "SELECT messages, bytes, unseen, deleted,"
            " (SELECT count(*) FROM messages WHERE mailbox_id = mailboxes.id AND uid >= recent_uid)"
            " FROM mailboxes WHERE id = ?",
            (mbox.id,),
        ).fetchone()
        return MailboxStatus(mbox, messages, unseen, deleted, size, recent)

    async def take_recent(self, mailbox_id: int) -> int:
        with self._tx() as db:
            row = db.execute(
                "SELECT recent_uid, uidnext FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchone()
            if row is None:
                raise MailboxNotFound("mailbox no longer exists")
            db.execute("UPDATE mailboxes SET recent_uid = ? WHERE id = ?", (row[1], mailbox_id))
        return int(row[0])

    # --- messages ------------------------------------------------------------------------
    async def snapshot(self, mailbox: str) -> tuple[Mailbox, list[MessageMeta]]:
        mbox = self._mailbox_by_name(mailbox)
        rows = self.db.execute(
            "SELECT uid, flags, modseq FROM messages WHERE mailbox_id = ? ORDER BY uid", (mbox.id,)
        ).fetchall()
        return mbox, [MessageMeta(uid, _flags(fl), ms) for uid, fl, ms in rows]

    async def select_info(self, mailbox: str) -> tuple[Mailbox, Sequence[int], int | None]:
        mbox = self._mailbox_by_name(mailbox)
        table = await self.flag_table(mbox.id)
        first = len(table.uids)
        for fid in table.counts:
            if "\\Seen" not in table.texts[fid].split():
                first = min(first, table.flag_ids.index(fid))
        return mbox, table.uids, table.uids[first] if first < len(table.uids) else None

    def _select_uids(
        self, sql: str, mailbox_id: int, uids: Sequence[int]
    ) -> list[tuple]:
        """Run *sql* (ending in a WHERE clause on m.mailbox_id) restricted to *uids*."""
        if not uids:
            return []
        ordered = sorted(set(uids))
        lo, hi = ordered[0], ordered[-1]
        if len(ordered) > _IN_CHUNK or hi - lo + 1 == len(ordered):
            rows = self.db.execute(
                sql + " AND m.uid BETWEEN ? AND ? ORDER BY m.uid", (mailbox_id, lo, hi)
            ).fetchall()
            if hi - lo + 1 != len(ordered):
                wanted = set(ordered)
                rows = [r for r in rows if r[0] in wanted]
            return rows
        marks = ",".join("?" * len(ordered))
        return self.db.execute(
            sql + f" AND m.uid IN ({marks}) ORDER BY m.uid", (mailbox_id, *ordered)
        ).fetchall()

    async def fetch(
        self, mailbox_id: int, uids: Sequence[int], fields: Iterable[FetchField]
    ) -> list[MessageRecord]:
        wanted = list(dict.fromkeys(fields))
        cols: list[str] = ["m.uid"]
        for f in wanted:
            cols.extend(_FIELD_SQL[f])
        joins = ""
        if any(c.startswith("p.") for c in cols):
            joins += " JOIN parsed p ON p.mailbox_id = m.mailbox_id AND p.uid = m.uid"
        if any(c.startswith("h.") for c in cols):
            joins += " JOIN headers h ON h.mailbox_id = m.mailbox_id AND h.uid = m.uid"
        sql = f"SELECT {', '.join(cols)} FROM messages m{joins} WHERE m.mailbox_id = ?"
        out: list[MessageRecord] = []
        for row in self._select_uids(sql, mailbox_id, uids):
            rec = MessageRecord(uid=row[0])
            i = 1
            for f in wanted:
                if f == "flags":
                    rec.flags = _flags(row[i])
                elif f == "search":
                    rec.search = "\x00".join(row[i : i + 5])
                    i += 4
                elif f == "pop3":
                    rec.pop3_hidden = bool(row[i])
                    rec.pop3_retrieved = row[i + 1]
                    i += 1
                else:
                    setattr(rec, f, row[i])
                i += 1
            out.append(rec)
        return out

    async def flag_table(self, mailbox_id: int) -> FlagTable:
        return self._store.flag_tables.get(self.db, (self.address, mailbox_id))

    def _path(self, mailbox_id: int, uid: int) -> Path:
        row = self.db.execute(
            "SELECT filename FROM messages WHERE mailbox_id = ? AND uid = ?", (mailbox_id, uid)
        ).fetchone()
        if row is None:
            raise MessageGone(f"message UID {uid} has been expunged")
        return self._folder(mailbox_id) / "cur" / row[0]

    async def read_message(self, mailbox_id: int, uid: int) -> bytes:
        path = self._path(mailbox_id, uid)
        try:
            if path.stat().st_size > _THREAD_READ:
                return await asyncio.to_thread(path.read_bytes)
            return path.read_bytes()
        except FileNotFoundError:
            raise MessageGone(f"message UID {uid} has been expunged") from None

    async def read_range(self, mailbox_id: int, uid: int, start: int, length: int) -> bytes:
        path = self._path(mailbox_id, uid)

        def read() -> bytes:
            with open(path, "rb") as f:
                f.seek(start)
                return f.read(length)

        try:
            return await asyncio.to_thread(read) if length > _THREAD_READ else read()
        except FileNotFoundError:
            raise MessageGone(f"message UID {uid} has been expunged") from None

    def _allocate_uids(
        self, db: sqlite3.Connection, mailbox_id: int, count: int, size: int, quota: Quota | None
    ) -> tuple[int, int]:
        """Reserve *count* UIDs inside the caller's transaction, after the quota check."""
        if (
            quota is not None
            and (quota.bytes or quota.messages)
            and quota.exceeded_by(self._usage(db), size, count)
        ):
            raise OverQuota("quota exceeded")
        row = db.execute(
            "SELECT uidnext, uidvalidity FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        if row is None:
            raise MailboxNotFound("mailbox no longer exists")
        db.execute("UPDATE mailboxes SET uidnext = uidnext + ? WHERE id = ?", (count, mailbox_id))
        return int(row[0]), int(row[1])

    def _insert(
        self,
        db: sqlite3.Connection,
        mailbox_id: int,
        uid: int,
        modseq: int,
        flags: str,
        size: int,
        internaldate: float,
        filename: str,
        parsed: ParsedMessage,
    ) -> None:
        self._insert_many(db, mailbox_id, [(uid, modseq, flags, size, internaldate, filename, parsed)])

    @staticmethod
    def _insert_many(
        db: sqlite3.Connection,
        mailbox_id: int,
        rows: Sequence[tuple[int, int, str, int, float, str, ParsedMessage]],
    ) -> None:
        """Rows of (UID, MODSEQ, flags, size, INTERNALDATE, file name, parsed message)."""
        db.executemany(
            "INSERT INTO messages (mailbox_id, uid, flags, modseq, size, internaldate, filename)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(mailbox_id, uid, fl, ms, size, idate, fn) for uid, ms, fl, size, idate, fn, _ in rows],
        )
        db.executemany(
            "INSERT INTO headers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(mailbox_id, uid, p.sent_date, p.subject, p.from_, p.to, p.cc, p.bcc, p.message_id)
             for uid, *_, p in rows],
        )
        db.executemany(
            "INSERT INTO parsed VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(mailbox_id, uid, p.header_size, p.envelope, p.body, p.bodystructure, p.parts)
             for uid, *_, p in rows],
        )

    def _bump_modseq(self, db: sqlite3.Connection, mailbox_id: int, keywords: Iterable[str] = ()) -> int:
        row = db.execute(
            "SELECT highestmodseq, keywords FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        if row is None:
            raise MailboxNotFound("mailbox no longer exists")
        modseq = int(row[0]) + 1
        known = set(row[1].split())
        new_kw = {k for k in keywords if not k.startswith("\\")} - known
        if new_kw:
            db.execute(
                "UPDATE mailboxes SET highestmodseq = ?, keywords = ? WHERE id = ?",
                (modseq, " ".join(sorted(known | new_kw)), mailbox_id),
            )
        else:
            db.execute("UPDATE mailboxes SET highestmodseq = ? WHERE id = ?", (modseq, mailbox_id))
        return modseq

    async def append(
        self,
        mailbox: str,
        data: bytes,
        flags: Iterable[str] = (),
        internaldate: float | None = None,
        quota: Quota | None = None,
    ) -> AppendResult:
        if mailbox == "INBOX" and self._inbox_id is not None:
            mailbox_id = self._inbox_id
        else:
            mbox = self._mailbox_by_name(mailbox)
            mailbox_id = mbox.id
            if mbox.name == "INBOX":
                self._inbox_id = mailbox_id
        flagset = _normalize_flags(flags)
        if (
            quota is not None
            and (quota.bytes or quota.messages)
            and quota.exceeded_by(self._usage(self.db), len(data), 1)
        ):
            raise OverQuota("quota exceeded")  # early, before writing anything
        parsed = parse_message(data) if len(data) < 1024 * 1024 else await asyncio.to_thread(
            parse_message, data
        )
        folder = self._folder(mailbox_id)
        tmp_name = files.new_filename(len(data), None)
        tmp = await files.disk_threads.run(files.write_tmp, folder, tmp_name, data)
        when = time.time() if internaldate is None else internaldate
        final: Path | None = None
        try:
            # UID allocation, the rename into cur/ and the row share one transaction:
            # SQLite's write lock orders them, also across processes, so UIDs become
            # visible strictly in ascending order and never before their file exists.
            with self._tx() as db:
                uid, uidvalidity = self._allocate_uids(db, mailbox_id, 1, len(data), quota)
                filename = files.with_uid(tmp_name, uid)
                final = folder / "cur" / filename
                os.rename(tmp, final)
                modseq = self._bump_modseq(db, mailbox_id, flagset)
                self._insert(db, mailbox_id, uid, modseq, _flag_text(flagset), len(data), when,
                             filename, parsed)
        except BaseException:
            tmp.unlink(missing_ok=True)
            if final is not None:
                final.unlink(missing_ok=True)
            raise
        # The rename is durable once the directory is; only then is the message acknowledged.
        await files.disk_threads.run(files.fsync_dir, folder / "cur")
        self._publish(mailbox_id, modseq, "append")
        return AppendResult(uidvalidity, uid)

    async def uids_with_flag(self, mailbox_id: int, flag: str) -> list[int]:
        like = flag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return [
            r[0]
            for r in self.db.execute(
                "SELECT uid FROM messages WHERE mailbox_id = ? AND ' ' || flags || ' ' LIKE ?"
                " ESCAPE '\\' ORDER BY uid",
                (mailbox_id, f"% {like} %"),
            )
        ]

    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: Literal["add", "remove", "replace"],
        flags: Iterable[str],
        unchangedsince: int | None = None,
    ) -> list[MessageMeta]:
        given = _normalize_flags(flags)
        changed: list[MessageMeta] = []
        rows = self._select_uids(
            "SELECT m.uid, m.flags, m.modseq FROM messages m WHERE m.mailbox_id = ?",
            mailbox_id,
            uids,
        )
        updates: list[tuple[int, str]] = []
        for uid, text, ms in rows:
            if unchangedsince is not None and ms > unchangedsince:
                continue
            old = _flags(text)
            if mode == "add":
                new = old | given
            elif mode == "remove":
                new = old - given
            else:
                new = frozenset(given)
            if new != old:
                updates.append((uid, _flag_text(new)))
        if not updates:
            return changed
        with self._tx() as db:
            modseq = self._bump_modseq(db, mailbox_id, given if mode != "remove" else ())
            for uid, text in updates:
                cur = db.execute(
                    "UPDATE messages SET flags = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?",
                    (text, modseq, mailbox_id, uid),
                )
                if cur.rowcount:
                    changed.append(MessageMeta(uid, _flags(text), modseq))
        self._publish(mailbox_id, modseq, "flags")
        return changed

    async def expunge(self, mailbox_id: int, uids: Sequence[int]) -> list[int]:
        rows = self._select_uids(
            "SELECT m.uid, m.filename FROM messages m WHERE m.mailbox_id = ?", mailbox_id, uids
        )
        if not rows:
            return []
        folder = self._folder(mailbox_id)
        with self._tx() as db:
            modseq = self._bump_modseq(db, mailbox_id)
            gone: list[int] = []
            for uid, _fn in rows:
                cur = db.execute(
                    "DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", (mailbox_id, uid)
                )
                if cur.rowcount:
                    gone.append(uid)
                    db.execute(
                        "INSERT OR REPLACE INTO expunged VALUES (?, ?, ?)", (mailbox_id, uid, modseq)
                    )
        paths = [folder / "cur" / fn for uid, fn in rows]
        await asyncio.to_thread(files.remove_files, paths)
        self._publish(mailbox_id, modseq, "expunge")
        return gone

    async def copy(
        self, mailbox_id: int, uids: Sequence[int], dest: str, quota: Quota | None = None
    ) -> CopyResult:
        dst = self._mailbox_by_name(dest)
        rows = self._select_uids(
            "SELECT m.uid, m.flags, m.size, m.internaldate, m.filename FROM messages m"
            " WHERE m.mailbox_id = ?",
            mailbox_id,
            uids,
        )
        if not rows:
            return CopyResult(dst.uidvalidity, (), ())
        src_cur, dst_folder = self._folder(mailbox_id) / "cur", self._folder(dst.id)
        linked: list[Path] = []
        done: list[tuple[int, int]] = []
        try:
            # As in append: links and rows in one transaction, so UIDs appear in order.
            with self._tx() as db:
                first, uidvalidity = self._allocate_uids(
                    db, dst.id, len(rows), sum(r[2] for r in rows), quota
                )
                modseq = self._bump_modseq(db, dst.id, {f for r in rows for f in r[1].split()})
                for i, (uid, fl, size, idate, fn) in enumerate(rows):
                    new_uid = first + i
                    new_fn = files.new_filename(size, new_uid)
                    target = dst_folder / "cur" / new_fn
                    if not files.link_or_copy(src_cur / fn, target):
                        continue  # expunged meanwhile by another session: skip it
                    linked.append(target)
                    done.append((uid, new_uid))
                    db.execute(
                        "INSERT INTO messages (mailbox_id, uid, flags, modseq, size, internaldate,"
                        " filename) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (dst.id, new_uid, fl, modseq, size, idate, new_fn),
                    )
                    db.execute(
                        "INSERT INTO headers SELECT ?, ?, sent_date, subject, from_, to_, cc, bcc,"
                        " message_id FROM headers WHERE mailbox_id = ? AND uid = ?",
                        (dst.id, new_uid, mailbox_id, uid),
                    )
                    db.execute(
                        "INSERT INTO parsed SELECT ?, ?, header_size, envelope, body, bodystructure,"
                        " parts FROM parsed WHERE mailbox_id = ? AND uid = ?",
                        (dst.id, new_uid, mailbox_id, uid),
                    )
        except BaseException:
            for p in linked:
                p.unlink(missing_ok=True)
            raise
        await asyncio.to_thread(files.fsync_dir, dst_folder / "cur")
        self._publish(dst.id, modseq, "append")
        return CopyResult(uidvalidity, tuple(d[0] for d in done), tuple(d[1] for d in done))

    async def move(
        self, mailbox_id: int, uids: Sequence[int], dest: str
    ) -> CopyResult:
        """No quota check: moving does not grow the account (clients delete by moving
        to Trash, and must be able to do so at the limit)."""
        result = await self.copy(mailbox_id, uids, dest)
        await self.expunge(mailbox_id, result.source_uids)
        return result

    async def changes_since(self, mailbox_id: int, modseq: int) -> ChangeSet:
        row = self.db.execute(
            "SELECT highestmodseq FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        if row is None:
            return ChangeSet(highestmodseq=modseq, uidvalidity_changed=True)
        cs = ChangeSet(highestmodseq=int(row[0]))
        if cs.highestmodseq <= modseq:
            return cs
        cs.updated = [
            MessageMeta(uid, _flags(fl), ms)
            for uid, fl, ms in self.db.execute(
                "SELECT uid, flags, modseq FROM messages WHERE mailbox_id = ? AND modseq > ?"
                " ORDER BY uid",
                (mailbox_id, modseq),
            )
        ]
        cs.expunged = [
            r[0]
            for r in self.db.execute(
                "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
                (mailbox_id, modseq),
            )
        ]
        return cs

    async def search_headers(self, mailbox_id: int, field: SearchField, needle: str) -> list[int]:
        column = _SEARCH_COLUMNS[field]
        return [
            r[0]
            for r in self.db.execute(
                f"SELECT uid FROM headers WHERE mailbox_id = ? AND instr({column}, ?) > 0"
                " ORDER BY uid",
                (mailbox_id, needle),
            )
        ]

    # --- POP3 ----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def pop3_lock(self, wait: float = 0.0) -> AsyncIterator[None]:
        # flock is per open file, so it excludes sessions in this process and in other
        # front ends sharing the directory alike.
        fd = os.open(self.root / "pop3.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await self._pop3_acquire(fd, time.monotonic() + wait)
        except BaseException:
            os.close(fd)
            raise
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            self._pop3_wake_first()

    async def _pop3_acquire(self, fd: int, deadline: float) -> None:
        """Sessions of this process wait in line: the first is woken when the lock is
        let go here, and polls for holders in other processes."""
        if not self._pop3_waiters and _try_flock(fd):
            return
        loop = asyncio.get_running_loop()
        me: asyncio.Future[None] = loop.create_future()
        self._pop3_waiters.append(me)
        try:
            while True:
                if self._pop3_waiters[0] is me and _try_flock(fd):
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise MailboxInUse("another POP3 session is using this mailbox")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(me), min(left, _POP3_LOCK_POLL))
                if me.done():  # woken: stay in the same place in line with a fresh future
                    fresh: asyncio.Future[None] = loop.create_future()
                    self._pop3_waiters[self._pop3_waiters.index(me)] = fresh
                    me = fresh
        finally:
            self._pop3_waiters.remove(me)
            self._pop3_wake_first()

    def _pop3_wake_first(self) -> None:
        if self._pop3_waiters and not self._pop3_waiters[0].done():
            self._pop3_waiters[0].set_result(None)

    async def pop3_maildrop(self) -> tuple[Mailbox, list[tuple[int, int]]]:
        inbox = self._mailbox_by_name("INBOX")
        rows = self.db.execute(
            "SELECT uid, size FROM messages WHERE mailbox_id = ? AND NOT pop3_hidden ORDER BY uid",
            (inbox.id,),
        ).fetchall()
        return inbox, rows

    async def pop3_hide(self, mailbox_id: int, uids: Sequence[int]) -> None:
        if not uids:
            return
        with self._tx() as db:
            db.executemany(
                "UPDATE messages SET pop3_hidden = 1 WHERE mailbox_id = ? AND uid = ?",
                [(mailbox_id, u) for u in uids],
            )

    async def pop3_mark_retrieved(self, mailbox_id: int, uids: Sequence[int]) -> None:
        if not uids:
            return
        now = time.time()
        with self._tx() as db:
            db.executemany(
                "UPDATE messages SET pop3_retrieved = ? WHERE mailbox_id = ? AND uid = ?"
                " AND pop3_retrieved IS NULL",
                [(now, mailbox_id, u) for u in uids],
            )

    async def pop3_expire(self, older_than: float) -> int:
        inbox = self._mailbox_by_name("INBOX")
        uids = [
            r[0]
            for r in self.db.execute(
                "SELECT uid FROM messages WHERE mailbox_id = ? AND pop3_retrieved < ?",
                (inbox.id, older_than),
            )
        ]
        return len(await self.expunge(inbox.id, uids)) if uids else 0

    # --- accounting ----------------------------------------------------------------------
    @staticmethod
    def _usage(db: sqlite3.Connection) -> Usage:
        m, b = db.execute(
            "SELECT coalesce(sum(messages), 0), coalesce(sum(bytes), 0) FROM mailboxes"
        ).fetchone()
        return Usage(int(m), int(b))

    async def usage(self) -> Usage:
        return self._usage(self.db)

    # --- start-up reconciliation ---------------------------------------------------------
    def reconcile(self, new_limit: int | None = None) -> dict[str, int]:
        """Make index and files agree after a crash. Returns counts of what was repaired.

        A folder with more than *new_limit* files in new/ keeps them there for index_new;
        new_waiting counts them."""
        stats = {"indexed": 0, "dropped": 0, "removed": 0, "folders": 0}
        self.new_waiting = 0
        known_dirs = {r[0] for r in self.db.execute("SELECT dirname FROM mailboxes")}
        for entry in sorted(os.listdir(self.root)):
            if entry.startswith(".") and entry not in known_dirs and (self.root / entry / "cur").is_dir():
                try:
                    name = names.normalize(files.folder_name(entry))
                except StoreError:
                    continue
                with self._tx() as db:
                    if not db.execute("SELECT 1 FROM mailboxes WHERE name = ?", (name,)).fetchone():
                        self._insert_mailbox(db, name, None)
                        stats["folders"] += 1
        for mid, dirname in self.db.execute("SELECT id, dirname FROM mailboxes").fetchall():
            folder = self.root / dirname if dirname else self.root
            self._dirs[mid] = folder
            self._reconcile_folder(mid, folder, stats, new_limit)
        self._remember_modseqs()
        self._data_version = self._pragma_data_version()
        return stats

    def _reconcile_folder(self, mid: int, folder: Path, stats: dict[str, int], new_limit: int | None) -> None:
        files.make_dirs(folder)
        now = time.time()
        for fn in os.listdir(folder / "tmp"):
            p = folder / "tmp" / fn
            with contextlib.suppress(OSError):
                if now - p.stat().st_mtime > 60:
                    p.unlink()
                    stats["removed"] += 1
        on_disk = set(os.listdir(folder / "cur"))
        rows = dict(
            self.db.execute(
                "SELECT filename, uid FROM messages WHERE mailbox_id = ?", (mid,)
            ).fetchall()
        )
        missing = [uid for fn, uid in rows.items() if fn not in on_disk]
        if missing:
            with self._tx() as db:
                modseq = self._bump_modseq(db, mid)
                for uid in missing:
                    db.execute("DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", (mid, uid))
                    db.execute("INSERT OR REPLACE INTO expunged VALUES (?, ?, ?)", (mid, uid, modseq))
            stats["dropped"] += len(missing)
        expunged = {r[0] for r in self.db.execute("SELECT uid FROM expunged WHERE mailbox_id = ?", (mid,))}
        indexed_uids = set(rows.values())
        stray_names = [fn for fn in on_disk if fn not in rows]
        # Never hand out a UID that any row, file or tombstone has used.
        seen = [u for fn in stray_names if (u := files.uid_from_filename(fn)) is not None]
        highest = max([0, *indexed_uids, *expunged, *seen])
        with self._tx() as db:
            db.execute("UPDATE mailboxes SET uidnext = max(uidnext, ?) WHERE id = ?", (highest + 1, mid))
        # Many files in new/ (a migration, an outside agent's backlog) are indexed after
        # the server opens, by index_new; a few are indexed before, at once.
        waiting = strays.count_new(folder)
        take_new = new_limit is None or waiting <= new_limit
        if not take_new:
            self.new_waiting += waiting
        found = []
        claimed: set[int] = set()
        for stray in strays.find(folder, stray_names, new=take_new):
            if stray.uid is not None and (stray.uid in expunged or stray.uid in indexed_uids):
                with contextlib.suppress(FileNotFoundError):  # expunged, or a leftover copy
                    os.unlink(os.path.join(stray.dir, stray.name))
                stats["removed"] += 1
                continue
            if stray.uid in claimed:
                stray.uid = None  # two files claim one UID: the later one gets a fresh UID
            elif stray.uid is not None:
                claimed.add(stray.uid)
            found.append(stray)
        stats["indexed"] += self._index_found(mid, folder, found)

    def index_new(self, stop: threading.Event | None = None) -> int:
        """Index every file in the new/ folders; returns how many. Stops between two
        batches once *stop* is set."""
        done = 0
        for mid, dirname in self.db.execute("SELECT id, dirname FROM mailboxes").fetchall():
            if stop is not None and stop.is_set():
                break
            folder = self.root / dirname if dirname else self.root
            done += self._index_found(mid, folder, strays.find(folder, [], new=True), stop)
        self.new_waiting = 0
        return done

    def _index_found(
        self, mid: int, folder: Path, found: list[strays.Stray], stop: threading.Event | None = None
    ) -> int:
        done = 0
        batch: list[strays.Loaded] = []
        for loaded in strays.load(found, stop):
            batch.append(loaded)
            if len(batch) >= _RECONCILE_BATCH:
                done += self._index_strays(mid, folder, batch)
                batch = []
        if batch:
            done += self._index_strays(mid, folder, batch)
        if done:
            files.fsync_dir(folder / "cur")
        return done

    def _index_strays(self, mid: int, folder: Path, batch: list[strays.Loaded]) -> int:
        """Index a batch of stray files, returning how many: new/ ones get the next UIDs
        and move into cur/ under a name that carries the UID.

        Their UIDs are reserved (committed) before any file moves, so a file renamed
        into cur/ never shares its UID with a later append, whatever fails after; at
        worst it is indexed under that UID at the next start."""
        cur = os.path.join(folder, "cur")
        fresh = sum(1 for item in batch if item.stray.uid is None)
        next_uid = 0
        if fresh:
            with self._tx() as db:
                next_uid = int(db.execute("SELECT uidnext FROM mailboxes WHERE id = ?", (mid,)).fetchone()[0])
                db.execute("UPDATE mailboxes SET uidnext = ? WHERE id = ?", (next_uid + fresh, mid))
        placed: list[tuple[strays.Loaded, int, str]] = []
        for item in batch:
            stray = item.stray
            if stray.uid is not None:
                placed.append((item, stray.uid, stray.name))
                continue
            uid, next_uid = next_uid, next_uid + 1
            name = files.new_filename(item.size, uid)
            try:
                os.rename(os.path.join(stray.dir, stray.name), os.path.join(cur, name))
            except FileNotFoundError:
                continue  # taken away meanwhile by whoever put it there; its UID stays unused
            placed.append((item, uid, name))
        if not placed:
            return 0
        with self._tx() as db:
            modseq = self._bump_modseq(db, mid)
            self._insert_many(db, mid, [
                (uid, modseq, item.stray.flags, item.size, item.mtime, name, item.parsed)
                for item, uid, name in placed
            ])
            top = max(uid for _, uid, _ in placed)
            db.execute("UPDATE mailboxes SET uidnext = max(uidnext, ?) WHERE id = ?", (top + 1, mid))
        return len(placed)

    def close(self) -> None:
        self._store.flag_tables.drop_account(self.address)
        self.db.close()


class MaildirStore(Store):
    """Accounts under `<data_dir>/mail/<domain>/<local part>/`."""

    def __init__(self, root: Path, feed: ChangeFeed | None = None) -> None:
        self.root = root
        self.feed = feed or ChangeFeed()
        self.flag_tables = FlagTables()
        self.new_waiting: dict[str, int] = {}
        """Accounts whose new/ files reconcile_all left for index_waiting, and how many."""
        self._accounts: dict[str, MaildirAccount] = {}
        root.mkdir(parents=True, exist_ok=True)

    def account_dir(self, address: str) -> Path:
        local, _, domain = address.rpartition("@")
        if not local or not domain or "/" in address or address.startswith("."):
            raise StoreError(f"invalid account address {address!r}")
        return self.root / domain / local

    async def account(self, address: str) -> MaildirAccount:
        return self.account_sync(address)

    def account_sync(self, address: str) -> MaildirAccount:
        """For start-up and the CLI, outside an event loop."""
        acc = self._accounts.get(address)
        if acc is None:
            acc = MaildirAccount(self, address, self.account_dir(address))
            self._accounts[address] = acc
        return acc

    def addresses_on_disk(self) -> list[str]:
        out = []
        for domain in sorted(os.listdir(self.root)):
            ddir = self.root / domain
            if not ddir.is_dir():
                continue
            for local in sorted(os.listdir(ddir)):
                if (ddir / local / "letterbox.index").exists():
                    out.append(f"{local}@{domain}")
        return out

    def reconcile_all(self, new_limit: int | None = None) -> dict[str, int]:
        """Reconcile every account (see MaildirAccount.reconcile); accounts with more than
        *new_limit* files waiting in a new/ folder are listed in new_waiting."""
        total = {"indexed": 0, "dropped": 0, "removed": 0, "folders": 0}
        self.new_waiting.clear()
        for address in self.addresses_on_disk():
            acc = self.account_sync(address)
            stats = acc.reconcile(new_limit)
            for k, v in stats.items():
                total[k] += v
            if any(stats.values()):
                log.info("reconciled %s: %s", address, stats)
            if acc.new_waiting:
                self.new_waiting[address] = acc.new_waiting
        return total

    def index_waiting(self, stop: threading.Event) -> int:
        """Index the new/ files reconcile_all left waiting, in the calling thread. Each
        account gets its own connection, as another process delivering would; sessions
        learn of the messages through the usual check for outside changes."""
        done = 0
        for address in list(self.new_waiting):
            if stop.is_set():
                break
            other = MaildirStore(self.root)
            try:
                n = other.account_sync(address).index_new(stop)
            finally:
                for acc in other._accounts.values():
                    acc.close()
            done += n
            log.info("indexed %d files from new/ of %s", n, address)
            self.new_waiting.pop(address, None)
        return done

    async def delete_account(self, address: str) -> None:
        acc = self._accounts.pop(address, None)
        if acc is not None:
            acc.close()
        path = self.account_dir(address)
        if path.exists():
            await asyncio.to_thread(shutil.rmtree, path, True)

    def subscribe(self, address: str) -> Subscription:
        return self.feed.subscribe(address)

    async def notify_external(self, address: str) -> None:
        acc = self._accounts.get(address)
        if acc is not None:
            acc.check_external()

    def poll_external(self) -> None:
        """Cheap check (PRAGMA data_version) of accounts that have listening sessions."""
        for address, acc in list(self._accounts.items()):
            if self.feed.has_subscribers(address):
                try:
                    acc.check_external()
                except sqlite3.Error as e:
                    log.warning("checking %s for outside changes failed: %s", address, e)

    async def close(self) -> None:
        for acc in self._accounts.values():
            acc.close()
        self._accounts.clear()
