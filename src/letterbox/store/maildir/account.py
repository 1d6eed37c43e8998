"""One account of the embedded store: its Maildir folders and its SQLite index.

The order of the steps of every write makes a crash or a failure at any step harmless;
start-up reconciliation (reconcile.py) relies on it:

  append   file written to tmp/ and fsynced -> one transaction: UID allocated (inside the
           folder file's reservation), file renamed into cur/ under a name that carries
           the UID and the flags, row inserted, commit -> cur/ fsynced -> acknowledged.
           SQLite's write lock orders these transactions, also across processes, so UIDs
           become visible strictly in ascending order.
  copy     hard links under new names and their rows in one transaction -> cur/ fsynced.
  move     the files renamed into the destination and the rows moved in one transaction:
           whatever fails, each message ends in exactly one of the two folders.
  expunge  rows deleted and tombstones written (naming each file's base), commit -> the
           WAL fsynced -> files unlinked -> acknowledged.
  folders  journaled, see folders.py.

A transaction body never awaits, so coroutines never interleave inside one; waiting for
another process's write lock happens between asyncio sleeps, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ...mime import ParsedMessage
from ...mime.objectid import email_id_of
from ...mime.preview import make_preview
from ...mime.sections import load_parts
from .. import faults, names
from ..api import (
    CHUNK,
    AccountGone,
    AccountStore,
    AppendResult,
    Change,
    ChangeKind,
    ChangeSet,
    CopyResult,
    DiskFull,
    FetchField,
    FlagTable,
    FolderUsage,
    ImportedMessage,
    Mailbox,
    MailboxExists,
    MailboxNotFound,
    MailboxStatus,
    MessageGone,
    MessageMeta,
    MessageRecord,
    Progress,
    Quota,
    SearchField,
    StoreError,
    Unavailable,
    Usage,
    current_origin,
)
from ..rules import flags as flagrules
from ..rules import keywords as keywords_rule
from ..rules import mailboxes, messages, quotas, recent
from ..rules.flags import SEEN, flag_text, flagset
from ..rules.mailboxes import mailbox_objectid
from ..rules.seen import overlay, overlay_text, reader_store
from . import acls, files, folderfile, folders, index, metadata, privateseen
from .accountdir import AccountDir, join
from .folderfile import BLOCK
from .pop3lock import Pop3Lock

if TYPE_CHECKING:
    from .store import MaildirStore

log = logging.getLogger("letterbox.store")

INDEX_FILE = "letterbox.index"
# Reading files bigger than this happens in a worker thread so the event loop stays free.
_THREAD_READ = 256 * 1024
_IN_CHUNK = 500
# Messages copied or moved per transaction (a pause for other sessions between two).
_COPY_BATCH = 500
# Messages expunged per transaction: each batch's files are unlinked before the next, so
# a big expunge on a nearly full disk frees space as it goes.
_EXPUNGE_BATCH = 1000
# How long a writer waits for another process's write lock before giving up.
_WRITE_WAIT = 30.0
# Messages indexed without an EMAILID whose files are read between two yields.
_EMAILID_BATCH = 200
# Messages indexed without a PREVIEW made between two yields (each reads and decodes up
# to a few tens of KB).
_PREVIEW_BATCH = 20

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
    "subject": ("h.subject",),
    "message_id": ("h.message_id",),
    "references": ("h.refs",),
    "emailid": ("p.emailid",),
    "savedate": ("m.savedate",),
    "preview": ("p.preview",),
    "pop3": ("m.pop3_hidden", "m.pop3_retrieved"),
}

_SEARCH_COLUMNS: dict[str, str] = {
    "subject": "subject", "from": "from_", "to": "to_", "cc": "cc", "bcc": "bcc",
    # Stored as written; Message-IDs are ASCII, so lower() is their casefold.
    "message-id": "lower(message_id)",
}

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def _op(essential: bool = False) -> Callable[[F], F]:
    """Turn low-level failures of a store method into StoreErrors the protocols answer.

    An *essential* method (reading and deleting mail: flag changes, expunge, move, the
    \\Recent claim) that finds the disk full gives back the store's reserve and tries
    once more, so users can still free space on a full disk."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        async def run(self: MaildirAccount, *args: Any, **kwargs: Any) -> Any:
            for attempt in (1, 2):
                if self.closed:
                    raise self.gone()
                try:
                    return await fn(self, *args, **kwargs)
                except StoreError as e:
                    err: StoreError = e
                except (sqlite3.Error, OSError) as e:
                    err = self.translate(e)
                    err.__cause__ = e
                if essential and attempt == 1 and isinstance(err, DiskFull) and self._store.release_reserve():
                    continue
                raise err
            raise AssertionError("unreachable")

        return run  # type: ignore[return-value]

    return wrap


def _select_sql(cols: list[str]) -> str:
    """SELECT *cols* of one mailbox's messages, joined to the tables they come from
    (p. parsed, h. headers); the caller adds the UID condition."""
    joins = ""
    if any(c.startswith("p.") for c in cols):
        joins += " JOIN parsed p ON p.mailbox_id = m.mailbox_id AND p.uid = m.uid"
    if any(c.startswith("h.") for c in cols):
        joins += " JOIN headers h ON h.mailbox_id = m.mailbox_id AND h.uid = m.uid"
    return f"SELECT {', '.join(cols)} FROM messages m{joins} WHERE m.mailbox_id = ?"


class MaildirAccount(AccountStore):
    _inbox_id: int | None = None
    """INBOX can be neither deleted nor renamed (renaming it moves its messages out), so
    its id holds for the account's life; append, once per delivered copy, skips the lookup."""

    def __init__(
        self, store: MaildirStore, address: str, adir: AccountDir, db: sqlite3.Connection,
        incarnation: str | None = None,
    ) -> None:
        self.address = address
        self.incarnation = incarnation
        self.key = f"{address}#{incarnation or ''}"
        """Names this account's in-memory state (flag tables) apart from other incarnations."""
        self.adir = adir
        self.root = adir.path
        self.db = db
        self._store = store
        self._known: dict[int, int] = {}
        self._reserved: dict[int, tuple[int, int]] = {}
        """mailbox id -> (UID, MODSEQ) reservations of its folder file, as last written."""
        self._letters: dict[int, list[str]] = {}
        """mailbox id -> the keywords that have a file-name letter."""
        self._data_version = self._pragma_data_version()
        self.pop3 = Pop3Lock(adir)
        self.closed = False
        self._closed_for = ""
        self.new_waiting = 0
        """Files left in new/ by the last reconcile, for index_new."""
        self._subs: set[str] | None = None
        self._subs_version = -1
        self._readers: weakref.WeakValueDictionary[str, AccountStore] = weakref.WeakValueDictionary()
        """Held by their sessions, not here: a handle must not keep itself alive."""
        self.acl_lock = asyncio.Lock()
        """One ACL change at a time (its folder file is written before its rows)."""
        self.metadata_lock = asyncio.Lock()
        """Orders metadata changes of this process, so their file follows their commits."""

    # --- errors --------------------------------------------------------------------------
    def gone(self) -> StoreError:
        """What using a closed handle raises."""
        if self._closed_for == "repair":
            return Unavailable("the mailbox is being repaired; try again shortly")
        return AccountGone("this account has been deleted")

    def translate(self, e: BaseException) -> StoreError:
        """The StoreError a protocol can answer for a low-level failure."""
        if isinstance(e, sqlite3.ProgrammingError) and self.closed:
            return self.gone()
        if index.is_corrupt(e):
            log.error("the index of %s is damaged (%s); rebuilding it", self.address, e)
            self._store.index_damaged(self)
            return Unavailable("the mailbox index is being repaired; try again shortly")
        if index.is_full(e) or (isinstance(e, OSError) and e.errno in (28, 122)):  # ENOSPC, EDQUOT
            return DiskFull("not enough disk space")
        if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
            return Unavailable("the mailbox is busy; try again")
        if isinstance(e, OSError):
            log.error("%s: file operation failed: %s", self.address, e)
            return StoreError(f"storage error: {e.strerror or e}")
        log.error("%s: index operation failed: %s", self.address, e)
        return StoreError("storage error")

    # --- transactions ----------------------------------------------------------------------
    def _pragma_data_version(self) -> int:
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[sqlite3.Connection]:
        """One write transaction; the body must not await."""
        if not index.try_begin(self.db):
            delay, deadline = 0.001, time.monotonic() + _WRITE_WAIT
            while True:
                await asyncio.sleep(delay)
                if self.closed:
                    raise self.gone()
                if index.try_begin(self.db):
                    break
                if time.monotonic() > deadline:
                    raise Unavailable("the mailbox index is busy (another process holds it); try again")
                delay = min(delay * 2, 0.05)
        with self._finish():
            yield self.db

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction from code off the event loop (start-up, CLI, threads)."""
        index.begin_blocking(self.db)
        with self._finish():
            yield self.db

    @contextlib.contextmanager
    def _finish(self) -> Iterator[None]:
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise

    async def sync_index(self) -> None:
        """Make every commit so far durable (the WAL fsynced), off the event loop."""
        await files.disk_threads.run(self.adir.fsync_file, INDEX_FILE + "-wal")

    # --- mailboxes: lookups ------------------------------------------------------------------
    _MBOX_COLS = (
        "id, name, dirname, uidvalidity, uidnext, highestmodseq, special_use, subscribed, keywords"
    )

    def mailbox_from_row(self, row: tuple, subs: set[str] | None = None) -> Mailbox:
        """*subs*: the subscriptions, when the caller read them once for many rows."""
        (mid, name, _dirname, uidvalidity, uidnext, hms, special_use, subscribed, keywords) = row
        if subs is None:
            subs = self.subs
        return Mailbox(
            id=mid,
            name=name,
            uidvalidity=uidvalidity,
            uidnext=uidnext,
            highestmodseq=hms,
            special_use=special_use,
            subscribed=name in subs,
            keywords=tuple(keywords.split()),
            mailboxid=mailbox_objectid(uidvalidity),
        )

    def mailbox_by_id(self, mailbox_id: int) -> Mailbox:
        row = self.db.execute(
            f"SELECT {self._MBOX_COLS} FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        if row is None:
            raise MailboxNotFound("mailbox no longer exists")
        return self.mailbox_from_row(row)

    def mailbox_by_name(self, name: str) -> Mailbox:
        name = names.normalize(name)
        row = self.db.execute(
            f"SELECT {self._MBOX_COLS} FROM mailboxes WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            raise MailboxNotFound(f"mailbox {name!r} does not exist")
        return self.mailbox_from_row(row)

    def folder(self, mailbox_id: int) -> str:
        """The mailbox's folder, relative to the account root ("" for INBOX). Read from
        the index each time: another process may have renamed it."""
        row = self.db.execute("SELECT dirname FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
        if row is None:
            raise MailboxNotFound("mailbox no longer exists")
        return str(row[0])

    def forget_folder(self, mailbox_id: int) -> None:
        self._known.pop(mailbox_id, None)
        self._reserved.pop(mailbox_id, None)
        self._letters.pop(mailbox_id, None)
        self._store.flag_tables.drop((self.key, mailbox_id))

    # --- identities: mailbox ids, UIDVALIDITY, reservations --------------------------------
    def next_mailbox_id(self, db: sqlite3.Connection) -> int:
        """Mailbox ids are never reused: a session holding an old one must not find a
        mailbox created since under it."""
        row = db.execute("SELECT value FROM meta WHERE key = 'mailbox_id'").fetchone()
        top = db.execute("SELECT coalesce(max(id), 0) FROM mailboxes").fetchone()[0]
        mid = max(int(row[0]) if row else 0, int(top)) + 1
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('mailbox_id', ?)", (mid,))
        return mid

    def prepare_folder(
        self, name: str, special_use: str | None, acl: dict[str, str] | None = None
    ) -> folderfile.FolderInfo:
        """Make a new mailbox's folder and its folder file (a new UIDVALIDITY). Raises
        MailboxExists if a folder of that name is on disk already: one left by a crash,
        which start-up indexes or removes, and which must not be taken over meanwhile.
        A failure part way removes what it made."""
        dirname = files.folder_dirname(name)
        if dirname:
            try:
                self.adir.mkdir_new(dirname)
            except FileExistsError:
                raise MailboxExists(f"mailbox {name!r} is being repaired; try again later") from None
        try:
            return self.describe_folder(dirname, special_use, acl)
        except BaseException:
            if dirname:
                with contextlib.suppress(OSError):
                    self.adir.rmtree(dirname)
            raise

    def describe_folder(
        self, dirname: str, special_use: str | None, acl: dict[str, str] | None = None
    ) -> folderfile.FolderInfo:
        """Complete a folder (cur/, new/, tmp/) and give it a folder file with a new
        UIDVALIDITY: for a new folder, or one found on disk without a usable file."""
        self.adir.make_maildir(dirname)
        return folderfile.update(
            self.adir, dirname, uidvalidity=self._store.next_uidvalidity(),
            uidnext=BLOCK, modseq=BLOCK, special_use=special_use or "", acl=acl, replace=True,
        )

    def insert_mailbox(
        self, db: sqlite3.Connection, name: str, special_use: str | None,
        info: folderfile.FolderInfo | None = None, subscribed: bool | None = None,
    ) -> int:
        """Inside the caller's transaction: the mailbox's row, for a folder prepared
        already (*info*, from prepare_folder or a folder found at start-up), or made now."""
        dirname = files.folder_dirname(name)
        if info is None:
            info = self.prepare_folder(name, special_use)
        return self.insert_row(db, name, dirname, special_use, info, subscribed)

    def insert_row(
        self, db: sqlite3.Connection, name: str, dirname: str, special_use: str | None,
        info: folderfile.FolderInfo, subscribed: bool | None = None,
    ) -> int:
        mid = self.next_mailbox_id(db)
        if (subscribed or (subscribed is None and special_use)) and name not in self.subs:
            self.write_subs(db, self.subs | {name})
        db.execute(
            "INSERT INTO mailboxes (id, name, dirname, uidvalidity, special_use, subscribed)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (mid, name, dirname, info.uidvalidity, special_use,
             int(bool(special_use)) if subscribed is None else int(subscribed)),
        )
        self._reserved[mid] = (info.uidnext, info.modseq)
        self._letters[mid] = list(info.keywords)
        return mid

    def _folder_info(self, mailbox_id: int) -> tuple[int, int]:
        res = self._reserved.get(mailbox_id)
        if res is None:
            info = folderfile.read(self.adir, self.folder(mailbox_id))
            res = (info.uidnext, info.modseq) if info is not None else (0, 0)
            if info is not None:
                self._letters[mailbox_id] = list(info.keywords)
            self._reserved[mailbox_id] = res
        return res

    def _reservation_args(self, mailbox_id: int) -> tuple[str, int | None]:
        folder = self.folder(mailbox_id)
        row = self.db.execute("SELECT uidvalidity FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
        return folder, int(row[0]) if row else None

    def _reserved_now(self, mailbox_id: int, info: folderfile.FolderInfo) -> None:
        self._reserved[mailbox_id] = (info.uidnext, info.modseq)
        self._letters[mailbox_id] = list(info.keywords)

    def extend_reservation(self, mailbox_id: int, uidnext: int, modseq: int) -> None:
        """Write reservations reaching a block beyond *uidnext* and *modseq* (blocking)."""
        folder, uidvalidity = self._reservation_args(mailbox_id)
        self._reserved_now(mailbox_id, folderfile.update(
            self.adir, folder, uidvalidity=uidvalidity, uidnext=uidnext + BLOCK, modseq=modseq + BLOCK,
        ))

    def _check_reserved(self, mailbox_id: int, uid_top: int, modseq_top: int) -> None:
        """Inside a transaction: UIDs up to *uid_top* and MODSEQs up to *modseq_top* are
        about to be used; make sure the folder file has them reserved."""
        res_uid, res_modseq = self._folder_info(mailbox_id)
        if uid_top >= res_uid or modseq_top > res_modseq:
            self.extend_reservation(mailbox_id, uid_top + 1, modseq_top)

    async def reserve_ahead(self, mailbox_id: int, uids: int = 1) -> None:
        """Before a write: extend the reservations in a disk thread when they run low,
        so that the transaction itself rarely has to."""
        res_uid, res_modseq = self._folder_info(mailbox_id)
        row = self.db.execute(
            "SELECT uidnext, highestmodseq FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        if row is None:
            raise MailboxNotFound("mailbox no longer exists")
        uidnext, hms = int(row[0]) + uids, int(row[1]) + 2
        if res_uid - uidnext < BLOCK // 2 or res_modseq - hms < BLOCK // 2:
            folder, uidvalidity = self._reservation_args(mailbox_id)
            info = await files.disk_threads.run(
                functools.partial(folderfile.update, self.adir, folder, uidvalidity=uidvalidity,
                                  uidnext=uidnext + BLOCK, modseq=hms + BLOCK)
            )
            self._reserved_now(mailbox_id, info)

    async def ensure_letters(self, mailbox_id: int, flags: Iterable[str]) -> None:
        """Give keywords in *flags* a file-name letter in the folder (while letters last),
        before a file is named with them: a file indexed from its name after a crash
        then keeps its keywords."""
        letters = self.letters(mailbox_id)
        new = sorted({f for f in flags if not f.startswith("\\") and f not in letters})
        room = len(files.KEYWORD_LETTERS) - len(letters)
        if not new or room <= 0:
            return
        info = await files.disk_threads.run(
            functools.partial(folderfile.update, self.adir, self.folder(mailbox_id), keywords=new[:room])
        )
        self._reserved_now(mailbox_id, info)

    def letters(self, mailbox_id: int) -> list[str]:
        self._folder_info(mailbox_id)
        return self._letters.get(mailbox_id, [])

    def info_for(self, mailbox_id: int, flags: Iterable[str]) -> str:
        return files.info_for(flags, self.letters(mailbox_id))

    # --- change feed -----------------------------------------------------------------------
    def remember_modseqs(self) -> None:
        for mid, hms in self.db.execute("SELECT id, highestmodseq FROM mailboxes"):
            self._known[mid] = hms

    def remember_modseq(self, mailbox_id: int, modseq: int) -> None:
        """Sessions were told of the mailbox up to *modseq* (by another process's feed)."""
        self._known[mailbox_id] = max(self._known.get(mailbox_id, 0), modseq)

    def publish(
        self, mailbox_id: int, modseq: int, kind: ChangeKind, name: str | None = None, old_name: str = "",
        entries: tuple[str, ...] = (), user: str = "",
    ) -> None:
        """Tell the account's sessions; *name* is looked up when not given (and only when
        someone listens)."""
        # data_version is deliberately not refreshed here: that would hide a change
        # another process committed since the last poll.
        if kind not in ("subscription", "metadata"):
            self._known[mailbox_id] = max(self._known.get(mailbox_id, 0), modseq)
        feed = self._store.feed
        if not feed.has_subscribers(self.address):
            feed.touched(self.address)
            return
        if name is None:
            row = self.db.execute("SELECT name FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
            name = str(row[0]) if row is not None else ""
        feed.publish(Change(self.address, mailbox_id, modseq, kind, name, old_name, current_origin(), entries, user))

    def publish_acl(self, mailbox_id: int, name: str, identifier: str) -> None:
        """Tell the account's sessions, and those of *identifier* (every session for
        "anyone"), that what the mailbox's ACL gives *identifier* changed."""
        change = Change(self.address, mailbox_id, 0, "acl", name, "", current_origin(), (), identifier)
        self._store.feed.publish(change, also=(identifier,))

    def check_external(self) -> None:
        """Publish changes committed by another process (e.g. `letterbox deliver`)."""
        if self.closed:
            return
        version = self._pragma_data_version()
        if version == self._data_version:
            return
        self._data_version = version
        for mid, name, hms in self.db.execute("SELECT id, name, highestmodseq FROM mailboxes").fetchall():
            if hms != self._known.get(mid):
                kind: ChangeKind = "append" if mid in self._known else "mailbox"
                self._known[mid] = hms
                # Not made by a session of this process, whatever task notices it; the
                # process that made it told the others (or they notice as this one did).
                self._store.feed.relay(Change(self.address, mid, hms, kind, name))

    # --- mailboxes -------------------------------------------------------------------------
    @_op()
    async def list_mailboxes(self) -> list[Mailbox]:
        rows = self.db.execute(f"SELECT {self._MBOX_COLS} FROM mailboxes ORDER BY name").fetchall()
        subs = self.subs
        return [self.mailbox_from_row(r, subs) for r in rows]

    @_op()
    async def get_mailbox(self, name: str) -> Mailbox:
        return self.mailbox_by_name(name)

    @_op()
    async def create_mailbox(self, name: str, special_use: str | None = None) -> Mailbox:
        self._store.check_space(0)
        return await folders.create(self, name, special_use)

    @_op(essential=True)
    async def delete_mailbox(self, name: str) -> None:
        await folders.delete(self, name)

    @_op()
    async def rename_mailbox(self, old: str, new: str) -> None:
        await folders.rename(self, old, new)

    @property
    def subs(self) -> set[str]:
        """Subscribed names: names, not mailboxes (RFC 9051 6.3.7), so they outlive a
        DELETE or RENAME and may name no mailbox. In the index (so every process sees a
        change at once) and in their file beside the mail (for a rebuild)."""
        version = self._pragma_data_version()
        if self._subs is None or version != self._subs_version:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'subscriptions'").fetchone()
            if row is not None:
                found = [n for n in str(row[0]).split("\n") if n]
            else:  # an index from before: the file, else the index's own marks
                found = folderfile.read_subscriptions(self.adir) or [
                    r[0] for r in self.db.execute("SELECT name FROM mailboxes WHERE subscribed")
                ]
            self._subs, self._subs_version = set(found), version
        return self._subs

    def write_subs(self, db: sqlite3.Connection, subs: set[str]) -> None:
        """Inside the caller's transaction; read back (`subs`) after it ends."""
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('subscriptions', ?)",
            # Each name after a line break: the column's INTEGER affinity would turn a
            # lone name such as "1e5" into a number.
            ("".join("\n" + n for n in sorted(subs)),),
        )
        self._subs = None

    @_op()
    async def set_subscribed(self, name: str, subscribed: bool) -> None:
        name = names.normalize(name)
        async with self.write() as db:
            subs = self.subs
            if subscribed == (name in subs):
                return
            if subscribed:
                mailboxes.check_subscribe(len(subs), self._store.limits)
            self.write_subs(db, subs | {name} if subscribed else subs - {name})
        await self.save_subscriptions()
        row = self.db.execute("SELECT id FROM mailboxes WHERE name = ?", (name,)).fetchone()
        self.publish(int(row[0]) if row is not None else 0, 0, "subscription", name)

    async def save_subscriptions(self) -> None:
        """Write the subscriptions file (after they may have changed)."""
        await files.disk_threads.run(folderfile.write_subscriptions, self.adir, sorted(self.subs))

    # --- metadata (RFC 5464, see metadata.py) ------------------------------------------------
    @_op()
    async def get_metadata(
        self, mailbox: str | None, entries: Sequence[str], depth: int = 0, *, reader: str | None = None
    ) -> list[tuple[str, bytes]]:
        if mailbox is None and reader is not None:
            return []  # the server's entries are the owner's own
        return metadata.get(self.db, metadata.mailbox_id(self, mailbox), entries, depth, reader)

    @_op()
    async def set_metadata(
        self, mailbox: str | None, changes: Sequence[tuple[str, bytes | None]], *, reader: str | None = None
    ) -> None:
        if mailbox is None and reader is not None:
            raise StoreError("the server's entries are the account's own")
        if not changes:
            return
        mbox = None if mailbox is None else self.mailbox_by_name(mailbox)
        mid = metadata.SERVER if mbox is None else mbox.id
        async with self.metadata_lock:  # the file is written in the order of the commits
            async with self.write() as db:
                changed = metadata.set_entries(self, db, mid, changes, reader)
            if changed:
                await metadata.save(self, mid)
        if changed:
            # RFC 5465 5.6, 5.7: NOTIFY sessions are told which entries changed.
            name = "" if mbox is None else mbox.name
            self.publish(mid, 0, "metadata", name, entries=tuple(changed), user=reader or self.address)

    @_op()
    async def subscriptions(self) -> list[str]:
        return sorted(self.subs)

    @_op()
    async def status(self, mailbox: str, *, reader: str | None = None) -> MailboxStatus:
        mbox = self.mailbox_by_name(mailbox)
        # The counts are kept by triggers (index.TRIGGERS); \Recent needs the UIDs at or
        # above recent_uid, a range of the primary key.
        messages, size, unseen, deleted, recent = self.db.execute(
            "SELECT messages, bytes, unseen, deleted,"
            " (SELECT count(*) FROM messages WHERE mailbox_id = mailboxes.id AND uid >= recent_uid)"
            " FROM mailboxes WHERE id = ?",
            (mbox.id,),
        ).fetchone()
        deleted_size = 0
        if deleted:
            deleted_size = self.db.execute(
                "SELECT coalesce(sum(size), 0) FROM messages WHERE mailbox_id = ? AND instr(flags, '\\Deleted') > 0",
                (mbox.id,),
            ).fetchone()[0]
        if reader is not None:
            unseen = messages - privateseen.seen_count(self.db, mbox.id, reader)
        return MailboxStatus(mbox, messages, unseen, deleted, size, recent, deleted_size)

    @_op(essential=True)
    async def take_recent(self, mailbox_id: int, claim: bool = True) -> tuple[int, int]:
        if not claim:
            return self._recent_range(self.db, mailbox_id)
        lo, hi = self._recent_range(self.db, mailbox_id)
        if lo >= hi:
            # Nothing to claim: no write. A message landing meanwhile stays recent for
            # the next session to claim, as if this SELECT had come a moment earlier.
            return lo, hi
        try:
            async with self.write() as db:
                taken, mark = recent.claim(*self._marks(db, mailbox_id))
                db.execute("UPDATE mailboxes SET recent_uid = ? WHERE id = ?", (mark, mailbox_id))
            return taken
        except (sqlite3.Error, OSError) as e:
            full = index.is_full(e) or (isinstance(e, OSError) and e.errno in (28, 122))
            if not full or self._store.reserve_available():
                raise
        # A full disk with the reserve spent: SELECT still works, the messages just stay
        # \Recent for the next session too.
        return self._recent_range(self.db, mailbox_id)

    @classmethod
    def _recent_range(cls, db: sqlite3.Connection, mailbox_id: int) -> tuple[int, int]:
        return recent.recent_range(*cls._marks(db, mailbox_id))

    @staticmethod
    def _marks(db: sqlite3.Connection, mailbox_id: int) -> tuple[int, int]:
        """The mailbox's recent mark and UIDNEXT (see rules.recent)."""
        row = db.execute("SELECT recent_uid, uidnext FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
        if row is None:
            raise MailboxNotFound("mailbox no longer exists")
        return int(row[0]), int(row[1])

    # --- messages: reading -----------------------------------------------------------------
    @_op()
    async def snapshot(self, mailbox: str, *, reader: str | None = None) -> tuple[Mailbox, list[MessageMeta]]:
        mbox = self.mailbox_by_name(mailbox)
        rows = self.db.execute(
            "SELECT uid, flags, modseq FROM messages WHERE mailbox_id = ? ORDER BY uid", (mbox.id,)
        ).fetchall()
        if reader is not None:
            seen = set(privateseen.seen_uids(self.db, mbox.id, reader))
            return mbox, [MessageMeta(uid, overlay(flagset(fl), uid in seen), ms) for uid, fl, ms in rows]
        return mbox, [MessageMeta(uid, flagset(fl), ms) for uid, fl, ms in rows]

    @_op()
    async def select_info(
        self, mailbox: str, *, reader: str | None = None
    ) -> tuple[Mailbox, Sequence[int], int | None]:
        mbox = self.mailbox_by_name(mailbox)
        table = self._flag_table(mbox.id, reader, (mbox.highestmodseq, mbox.uidvalidity))
        first = len(table.uids)
        for fid in table.counts:
            if "\\Seen" not in table.texts[fid].split():
                first = min(first, table.flag_ids.index(fid))
        return mbox, table.uids, table.uids[first] if first < len(table.uids) else None

    def select_uids(self, sql: str, mailbox_id: int, uids: Sequence[int]) -> list[tuple]:
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

    @_op()
    async def fetch(
        self, mailbox_id: int, uids: Sequence[int], fields: Iterable[FetchField], *, reader: str | None = None
    ) -> list[MessageRecord]:
        wanted = list(dict.fromkeys(fields))
        cols: list[str] = ["m.uid"]
        for f in wanted:
            cols.extend(_FIELD_SQL[f])
        sql = _select_sql(cols)
        out: list[MessageRecord] = []
        for row in self.select_uids(sql, mailbox_id, uids):
            rec = MessageRecord(uid=row[0])
            i = 1
            for f in wanted:
                if f == "flags":
                    rec.flags = flagset(row[i])
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
        if "emailid" in wanted and any(not r.emailid for r in out):
            found = await self._emailids(mailbox_id, [r.uid for r in out if not r.emailid])
            out = [r for r in out if r.emailid or r.uid in found]
            for r in out:
                if not r.emailid:
                    r.emailid = found[r.uid]
        if reader is not None and "flags" in wanted:
            seen = privateseen.seen_among(self.db, mailbox_id, reader, [r.uid for r in out])
            for r in out:
                r.flags = overlay(r.flags, r.uid in seen)
        return out

    @_op()
    async def fetch_values(
        self, mailbox_id: int, uids: Sequence[int], fields: Sequence[FetchField], *, reader: str | None = None
    ) -> list[tuple[Any, ...]]:
        cols = ["m.uid"]
        for f in fields:
            if len(_FIELD_SQL[f]) != 1:
                raise ValueError(f"{f} is more than one value")
            cols.extend(_FIELD_SQL[f])
        sql = _select_sql(cols)
        rows = self.select_uids(sql, mailbox_id, uids)
        if "emailid" in fields:
            at = 1 + list(fields).index("emailid")
            lacking = [r[0] for r in rows if r[at] is None]
            if lacking:
                found = await self._emailids(mailbox_id, lacking)
                rows = [
                    r if r[at] is not None else (*r[:at], found[r[0]], *r[at + 1 :])
                    for r in rows if r[at] is not None or r[0] in found
                ]
        if reader is not None and "flags" in fields:
            at = 1 + list(fields).index("flags")
            seen = privateseen.seen_among(self.db, mailbox_id, reader, [r[0] for r in rows])
            rows = [(*r[:at], overlay_text(r[at], r[0] in seen), *r[at + 1 :]) for r in rows]
        return rows

    async def _emailids(self, mailbox_id: int, uids: list[int]) -> dict[int, str]:
        """The slow path of EMAILID: messages indexed before the index kept it (schema
        version 4 and older) have NULL. Each is computed from its file (read in pieces, a
        big one in a thread) and kept in the index when it can be written at once, so it
        is done once per message. Messages expunged meanwhile are left out."""
        found: dict[int, str] = {}
        for start in range(0, len(uids), _EMAILID_BATCH):
            if start:
                await asyncio.sleep(0)  # thousands of files: other sessions get their turn
            batch: dict[int, str] = {}
            for uid in uids[start : start + _EMAILID_BATCH]:
                with contextlib.suppress(MessageGone):
                    digest = await self._read(mailbox_id, uid, self._digest_file, lambda total: total)
                    batch[uid] = digest.decode("ascii")
            self._keep_made(mailbox_id, "emailid", batch)
            found.update(batch)
        return found

    def _keep_made(self, mailbox_id: int, column: Literal["emailid", "preview"], made: dict[int, str]) -> None:
        """Keep values made for rows that lacked them (EMAILID, PREVIEW) in the index."""
        if not made:
            return
        try:
            if not index.try_begin(self.db):
                return  # another writer holds the index: not now
            with self._finish():
                self.db.executemany(
                    f"UPDATE parsed SET {column} = ? WHERE mailbox_id = ? AND uid = ? AND {column} IS NULL",
                    [(value, mailbox_id, uid) for uid, value in made.items()],
                )
        except sqlite3.Error as e:
            if index.is_corrupt(e):
                raise
            # Keeping them saves work, no more: on a full disk or a read-only index they
            # are made again next time.
            log.info("%s: %s values not kept in the index: %s", self.address, column, e)

    @_op()
    async def make_previews(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, str]:
        # Messages indexed before schema 6 have no preview (NULL): it is made from the
        # parts of the file the MIME offsets point at (mime.preview reads a few tens of
        # KB at most), and kept, so each is made once.
        made: dict[int, str] = {}
        wanted = sorted(set(uids))
        for start in range(0, len(wanted), _PREVIEW_BATCH):
            if start:
                await asyncio.sleep(0)  # thousands of messages: other sessions get their turn
            rows = self.select_uids(
                "SELECT m.uid, p.parts, p.preview FROM messages m JOIN parsed p"
                " ON p.mailbox_id = m.mailbox_id AND p.uid = m.uid WHERE m.mailbox_id = ?",
                mailbox_id, wanted[start : start + _PREVIEW_BATCH],
            )
            batch: dict[int, str] = {}
            for uid, parts, kept in rows:
                if kept is not None:
                    made[uid] = kept  # made meanwhile, by another session
                    continue
                with contextlib.suppress(MessageGone):
                    # Small ranges of the file: read here, as small messages are.
                    text = await self._read(mailbox_id, uid, functools.partial(self._preview_file, parts), lambda _: 0)
                    batch[uid] = text.decode("utf-8")
            self._keep_made(mailbox_id, "preview", batch)
            made.update(batch)
        return made

    def _preview_file(self, parts: str, rel: str) -> bytes:
        fd = self.adir.open_read(rel)
        try:
            return make_preview(load_parts(parts), lambda start, end: os.pread(fd, end - start, start)).encode()
        finally:
            os.close(fd)

    def _digest_file(self, rel: str) -> bytes:
        fd = self.adir.open_read(rel)
        try:
            return email_id_of(iter(functools.partial(os.read, fd, CHUNK), b"")).encode()
        finally:
            os.close(fd)

    @_op()
    async def flag_table(self, mailbox_id: int, *, reader: str | None = None) -> FlagTable:
        return self._flag_table(mailbox_id, reader)

    def _flag_table(self, mailbox_id: int, reader: str | None, mark: tuple[int, int] | None = None) -> FlagTable:
        table = self._store.flag_tables.get(self.db, (self.key, mailbox_id), mark)
        if reader is None:
            return table
        return self._store.reader_tables.get(self.db, (self.key, reader, mailbox_id), table)

    def _message_file(self, mailbox_id: int, uid: int) -> tuple[str, int]:
        # The folder with the file name, in one query (folder() reads it the same way).
        row = self.db.execute(
            "SELECT b.dirname, m.filename, m.size FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
            " WHERE m.mailbox_id = ? AND m.uid = ?",
            (mailbox_id, uid),
        ).fetchone()
        if row is None:
            raise MessageGone(f"message UID {uid} has been expunged")
        return join(str(row[0]), "cur", row[1]), int(row[2])

    async def _read(self, mailbox_id: int, uid: int, read: Callable[[str], bytes], size: Callable[[int], int]) -> bytes:
        # A file can be renamed (its flag letters brought up to date) between the lookup
        # and the open: look it up again.
        for _ in range(3):
            rel, total = self._message_file(mailbox_id, uid)
            try:
                if size(total) > _THREAD_READ:
                    return await asyncio.to_thread(read, rel)
                return read(rel)
            except FileNotFoundError:
                continue
        raise MessageGone(f"message UID {uid} has been expunged")

    @_op()
    async def read_message(self, mailbox_id: int, uid: int) -> bytes:
        return await self._read(mailbox_id, uid, self.adir.read, lambda total: total)

    @_op()
    async def read_range(self, mailbox_id: int, uid: int, start: int, length: int) -> bytes:
        return await self._read(
            mailbox_id, uid, lambda rel: self.adir.read_range(rel, start, length), lambda _: length
        )

    @contextlib.asynccontextmanager
    async def read_chunks(
        self, mailbox_id: int, uid: int, start: int, length: int
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        if self.closed:
            raise self.gone()
        fd = -1
        for _ in range(3):  # renamed by the name sync between lookup and open: again
            rel, _size = self._message_file(mailbox_id, uid)
            try:
                fd = self.adir.open_read(rel)
                break
            except FileNotFoundError:
                continue
            except OSError as e:
                raise self.translate(e) from e
        if fd < 0:
            raise MessageGone(f"message UID {uid} has been expunged")
        try:
            yield self._pieces(fd, start, length)
        finally:
            os.close(fd)

    async def _pieces(self, fd: int, start: int, length: int) -> AsyncIterator[bytes]:
        pos, end = start, start + length
        while pos < end:
            n = min(CHUNK, end - pos)
            try:
                data = await asyncio.to_thread(os.pread, fd, n, pos) if n > _THREAD_READ // 4 else os.pread(fd, n, pos)
            except OSError as e:
                raise self.translate(e) from e
            if not data:
                raise StoreError(f"message file shorter than its index entry ({pos} of {end} bytes)")
            pos += len(data)
            yield data

    @_op()
    async def uids_with_flag(self, mailbox_id: int, flag: str, *, reader: str | None = None) -> list[int]:
        if reader is not None and flag == SEEN:
            return privateseen.seen_uids(self.db, mailbox_id, reader)
        like = flag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return [
            r[0]
            for r in self.db.execute(
                "SELECT uid FROM messages WHERE mailbox_id = ? AND ' ' || flags || ' ' LIKE ?"
                " ESCAPE '\\' ORDER BY uid",
                (mailbox_id, f"% {like} %"),
            )
        ]

    @_op()
    async def changes_since(self, mailbox_id: int, modseq: int, *, reader: str | None = None) -> ChangeSet:
        row = self.db.execute(
            "SELECT highestmodseq, name, vanished_floor, uidnext, uidvalidity FROM mailboxes WHERE id = ?",
            (mailbox_id,),
        ).fetchone()
        if row is None:
            return ChangeSet(highestmodseq=modseq, uidvalidity_changed=True)
        hms, name, floor, uidnext = int(row[0]), row[1], int(row[2]), int(row[3])
        cs = ChangeSet(highestmodseq=hms, name=name, uidvalidity=int(row[4]))
        if hms <= modseq:
            return cs
        # Sorted here, not by ORDER BY uid: with it SQLite walks the whole mailbox in UID
        # order instead of the few rows the (mailbox_id, modseq) index points at.
        rows = self.db.execute(
            "SELECT uid, flags, modseq FROM messages WHERE mailbox_id = ? AND modseq > ?", (mailbox_id, modseq)
        ).fetchall()
        rows.sort()
        cs.updated = [MessageMeta(uid, flagset(fl), ms) for uid, fl, ms in rows]
        if reader is not None and cs.updated:
            seen = privateseen.seen_among(self.db, mailbox_id, reader, [m.uid for m in cs.updated])
            cs.updated = [MessageMeta(m.uid, overlay(m.flags, m.uid in seen), m.modseq) for m in cs.updated]
        if floor and modseq <= floor:
            # The index was rebuilt after *modseq*: tombstones from before are gone, so
            # every UID below UIDNEXT that no message has may have been expunged since.
            present = [r[0] for r in self.db.execute(
                "SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", (mailbox_id,)
            )]
            cs.expunged = _missing(present, uidnext)
            return cs
        # Sorted here, as the rows above: ORDER BY uid would walk every tombstone.
        cs.expunged = sorted(
            r[0]
            for r in self.db.execute(
                "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ?", (mailbox_id, modseq)
            )
        )
        return cs

    @_op()
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

    # --- messages: writing -----------------------------------------------------------------
    def _allocate_uids(
        self, db: sqlite3.Connection, mailbox_id: int, count: int, size: int, quota: Quota | None
    ) -> tuple[int, int]:
        """Reserve *count* UIDs inside the caller's transaction, after the quota check."""
        quotas.check(quota, functools.partial(self._usage, db), size, count)
        row = db.execute(
            "SELECT uidnext, uidvalidity, highestmodseq FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        if row is None:
            raise MailboxNotFound("mailbox no longer exists")
        self._check_reserved(mailbox_id, int(row[0]) + count - 1, int(row[2]) + 1)
        db.execute("UPDATE mailboxes SET uidnext = uidnext + ? WHERE id = ?", (count, mailbox_id))
        return int(row[0]), int(row[1])

    def insert_rows(
        self,
        db: sqlite3.Connection,
        mailbox_id: int,
        rows: Sequence[tuple[int, int, str, int, float, str, ParsedMessage]],
    ) -> None:
        """Rows of (UID, MODSEQ, flags, size, INTERNALDATE, file name, parsed message)."""
        db.executemany(
            "INSERT INTO messages (mailbox_id, uid, flags, modseq, size, internaldate, filename,"
            " savedate) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(mailbox_id, uid, fl, ms, size, idate, fn, files.save_date(fn, idate))
             for uid, ms, fl, size, idate, fn, _ in rows],
        )
        db.executemany(
            "INSERT INTO headers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(mailbox_id, uid, p.sent_date, p.subject, p.from_, p.to, p.cc, p.bcc, p.message_id,
              p.references) for uid, *_, p in rows],
        )
        db.executemany(
            "INSERT INTO parsed (mailbox_id, uid, header_size, envelope, body, bodystructure,"
            " parts, emailid, preview) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(mailbox_id, uid, p.header_size, p.envelope, p.body, p.bodystructure, p.parts,
              p.emailid or None, p.preview) for uid, *_, p in rows],
        )

    def bump_modseq(
        self, db: sqlite3.Connection, mailbox_id: int, keywords: Iterable[str] = (), limit: bool = False
    ) -> int:
        """The mailbox's next MODSEQ, adding *keywords* to its list; with *limit* (a
        client's APPEND or STORE), refusing more keywords than the limits allow."""
        row = db.execute(
            "SELECT highestmodseq, keywords, uidnext FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        if row is None:
            raise MailboxNotFound("mailbox no longer exists")
        modseq = int(row[0]) + 1
        self._check_reserved(mailbox_id, int(row[2]) - 1, modseq)
        grown = keywords_rule.accumulate(row[1].split(), keywords, self._store.limits, limit)
        if grown is not None:
            db.execute(
                "UPDATE mailboxes SET highestmodseq = ?, keywords = ? WHERE id = ?",
                (modseq, " ".join(grown), mailbox_id),
            )
        else:
            db.execute("UPDATE mailboxes SET highestmodseq = ? WHERE id = ?", (modseq, mailbox_id))
        return modseq

    @_op()
    async def append(
        self,
        mailbox: str,
        data: bytes,
        flags: Iterable[str] = (),
        internaldate: float | None = None,
        quota: Quota | None = None,
        parsed: ParsedMessage | None = None,
        *,
        reader: str | None = None,
    ) -> AppendResult:
        """*reader*: a user other than the owner appends, whose \\Seen is their own."""
        if mailbox == "INBOX" and self._inbox_id is not None:
            mailbox_id = self._inbox_id
        else:
            mbox = self.mailbox_by_name(mailbox)
            mailbox_id = mbox.id
            if mbox.name == "INBOX":
                self._inbox_id = mailbox_id
        given = flagrules.normalize_flags(flags)
        flagrules.check_keywords(given, self._store.limits)
        seen_by_reader = reader is not None and SEEN in given
        if reader is not None:
            given.discard(SEEN)
        when = time.time() if internaldate is None else internaldate
        return await self._put(mailbox_id, data, given, when, quota, parsed, seen_by=reader if seen_by_reader else None)

    @_op()
    async def import_message(self, mailbox_id: int, message: ImportedMessage) -> None:
        given = flagrules.normalize_flags(message.flags)
        await self._put(mailbox_id, message.data, given, message.internaldate, None, None, imported=message)

    async def _put(
        self, mailbox_id: int, data: bytes, given: set[str], when: float, quota: Quota | None,
        parsed: ParsedMessage | None, *, seen_by: str | None = None, imported: ImportedMessage | None = None,
    ) -> AppendResult:
        """Write, index and publish one message: an APPEND or delivery, or (*imported*)
        a message from another store under its own UID and POP3 state."""
        self._store.check_space(len(data))
        quotas.check(quota, functools.partial(self._usage, self.db), len(data), 1)  # early, before writing
        parsed = await messages.parse(data, parsed)
        folder = self.folder(mailbox_id)
        tmp_name = files.new_base(len(data))
        tmp = join(folder, "tmp", tmp_name)
        try:
            await files.disk_threads.run(self.adir.write_new, tmp, data, when)
        except FileNotFoundError:
            self.mailbox_by_id(mailbox_id)  # deleted meanwhile: MailboxNotFound, not a storage error
            raise
        faults.point("append.written")
        final: str | None = None
        try:
            await self.reserve_ahead(mailbox_id, 1 if imported is None else self._uids_to(mailbox_id, imported.uid))
            await self.ensure_letters(mailbox_id, given)
            async with self.write() as db:
                if imported is not None:
                    self._skip_to_uid(db, mailbox_id, imported.uid)
                uid, uidvalidity = self._allocate_uids(db, mailbox_id, 1, len(data), quota)
                modseq = self.bump_modseq(db, mailbox_id, given, limit=imported is None)
                filename = files.with_uid(tmp_name, uid, self.info_for(mailbox_id, given))
                self.adir.rename(tmp, join(folder, "cur", filename))
                final = join(folder, "cur", filename)
                faults.point("append.renamed")
                self.insert_rows(db, mailbox_id, [(uid, modseq, flag_text(given), len(data), when, filename, parsed)])
                if seen_by is not None:
                    privateseen.mark(db, mailbox_id, seen_by, [uid], True)
                if imported is not None and (imported.pop3_hidden or imported.pop3_retrieved is not None):
                    db.execute(
                        "UPDATE messages SET pop3_hidden = ?, pop3_retrieved = ? WHERE mailbox_id = ? AND uid = ?",
                        (int(imported.pop3_hidden), imported.pop3_retrieved, mailbox_id, uid),
                    )
        except BaseException:
            with contextlib.suppress(OSError):
                self.adir.unlink(tmp)
                if final is not None:
                    self.adir.unlink(final)
            raise
        faults.point("append.committed")
        # The rename is durable once the folder is; only then is the message acknowledged.
        try:
            await files.disk_threads.run(self.adir.fsync_dir, join(folder, "cur"))
        except FileNotFoundError:
            # Deleted by another session since the commit: the message went with it.
            self.mailbox_by_id(mailbox_id)  # MailboxNotFound, not a storage error
            raise
        if seen_by is not None:
            self._store.names_changed(self, mailbox_id)  # the reader's mark to its side file
        self.publish(mailbox_id, modseq, "append")
        return AppendResult(uidvalidity, uid)

    def _uids_to(self, mailbox_id: int, uid: int) -> int:
        """How many UIDs from UIDNEXT up to *uid*: what an import uses up (reserving
        more would leave the folder file ahead of the index, as after a lost commit)."""
        row = self.db.execute("SELECT uidnext FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
        return max(1, uid - int(row[0]) + 1) if row is not None else 1

    @staticmethod
    def _skip_to_uid(db: sqlite3.Connection, mailbox_id: int, uid: int) -> None:
        """Inside the caller's transaction: the next UID given is *uid* (an import)."""
        row = db.execute("SELECT uidnext FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
        if row is None:
            raise MailboxNotFound("mailbox no longer exists")
        if uid < int(row[0]):
            raise StoreError(f"UID {uid} is below the mailbox's UIDNEXT {row[0]}: UIDs are never reused")
        db.execute("UPDATE mailboxes SET uidnext = ? WHERE id = ?", (uid, mailbox_id))

    @_op()
    async def set_uidvalidity(self, mailbox_id: int, uidvalidity: int) -> Mailbox:
        mbox = self.mailbox_by_id(mailbox_id)
        if mbox.uidvalidity == uidvalidity:
            return mbox
        await files.disk_threads.run(self._store.uidvalidity_past, uidvalidity)
        folder = self.folder(mailbox_id)
        async with self.write() as db:
            row = db.execute("SELECT uidnext FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
            if row is None:
                raise MailboxNotFound("mailbox no longer exists")
            if int(row[0]) != 1:
                raise StoreError(f"mailbox {mbox.name!r} has held mail under UIDVALIDITY {mbox.uidvalidity}")
            db.execute("UPDATE mailboxes SET uidvalidity = ? WHERE id = ?", (uidvalidity, mailbox_id))
            # The index is what start-up trusts: a crash before the commit leaves the
            # folder file to be set back to the old UIDVALIDITY (see reconcile).
            folderfile.update(self.adir, folder, uidvalidity=uidvalidity)
        self.forget_folder(mailbox_id)
        return self.mailbox_by_id(mailbox_id)

    @_op()
    async def raise_marks(self, mailbox_id: int, uidnext: int, highestmodseq: int) -> Mailbox:
        async with self.write() as db:
            row = db.execute(
                "SELECT uidnext, highestmodseq FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchone()
            if row is None:
                raise MailboxNotFound("mailbox no longer exists")
            top_uid, top_modseq = max(int(row[0]), uidnext), max(int(row[1]), highestmodseq)
            self._check_reserved(mailbox_id, top_uid - 1, top_modseq)
            db.execute(
                "UPDATE mailboxes SET uidnext = ?, highestmodseq = ?, recent_uid = ? WHERE id = ?",
                (top_uid, top_modseq, top_uid, mailbox_id),
            )
        await self.sync_index()
        self.remember_modseq(mailbox_id, top_modseq)
        return self.mailbox_by_id(mailbox_id)

    @_op(essential=True)
    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: Literal["add", "remove", "replace"],
        flags: Iterable[str],
        unchangedsince: int | None = None,
        only: Callable[[str], bool] | None = None,
        *,
        reader: str | None = None,
    ) -> list[MessageMeta]:
        """*reader*: a user other than the owner, whose \\Seen is their own."""
        given = flagrules.flags_to_store(flags, mode, self._store.limits, only)
        changed: list[MessageMeta] = []
        rows = self.select_uids(
            "SELECT m.uid, m.flags, m.modseq FROM messages m WHERE m.mailbox_id = ?",
            mailbox_id,
            uids,
        )
        seen = privateseen.seen_among(self.db, mailbox_id, reader, [r[0] for r in rows]) if reader else set()
        # (UID, new stored flags or None if they stay, the reader's new mark or None, as shown)
        updates: list[tuple[int, str | None, bool | None, frozenset[str]]] = []
        for uid, text, ms in rows:
            if unchangedsince is not None and ms > unchangedsince:
                continue
            stored = flagset(text)
            old = overlay(stored, uid in seen) if reader else stored
            new = flagrules.apply_store(old, mode, given, only)
            if new == old:
                continue
            if reader:
                new_stored, mark = reader_store(stored, old, new)  # the owner's \Seen stays the owner's
            else:
                new_stored, mark = new, None
            updates.append((uid, flag_text(new_stored) if new_stored != stored else None, mark, new))
        if not updates:
            return changed
        await self.reserve_ahead(mailbox_id, 0)
        async with self.write() as db:
            modseq = self.bump_modseq(db, mailbox_id, given if mode != "remove" else (), limit=True)
            for uid, new_text, mark, shown in updates:
                if new_text is not None:
                    cur = db.execute(
                        "UPDATE messages SET flags = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?",
                        (new_text, modseq, mailbox_id, uid),
                    )
                else:  # only the reader's mark: the message still gets a new MODSEQ
                    cur = db.execute(
                        "UPDATE messages SET modseq = ? WHERE mailbox_id = ? AND uid = ?", (modseq, mailbox_id, uid)
                    )
                if not cur.rowcount:
                    continue
                if mark is not None and reader is not None:
                    privateseen.mark(db, mailbox_id, reader, [uid], mark)
                changed.append(MessageMeta(uid, flagset(flag_text(shown)), modseq))
        if any(u[1] is not None or u[2] is not None for u in updates):
            # File names for the flags, the side file for readers' marks (sidefiles.py).
            self._store.names_changed(self, mailbox_id)
        self.publish(mailbox_id, modseq, "flags")
        return changed

    @_op(essential=True)
    async def expunge(self, mailbox_id: int, uids: Sequence[int], progress: Progress | None = None) -> list[int]:
        wanted = sorted(set(uids))
        gone: list[int] = []
        for i in range(0, len(wanted), _EXPUNGE_BATCH):
            if i and progress is not None:
                await progress(i)
            batch = wanted[i : i + _EXPUNGE_BATCH]
            doomed: list[str] = []
            await self.reserve_ahead(mailbox_id, 0)
            async with self.write() as db:
                # Read inside the transaction: the name syncer may have renamed a file,
                # another process the folder.
                folder = self.folder(mailbox_id)
                rows = self.select_uids(
                    "SELECT m.uid, m.filename FROM messages m WHERE m.mailbox_id = ?", mailbox_id, batch
                )
                if not rows:
                    continue
                modseq = self.bump_modseq(db, mailbox_id)
                db.executemany(
                    "DELETE FROM messages WHERE mailbox_id = ? AND uid = ?",
                    [(mailbox_id, uid) for uid, _ in rows],
                )
                db.executemany(
                    "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq, base) VALUES (?, ?, ?, ?)",
                    [(mailbox_id, uid, modseq, files.base_of(fn)) for uid, fn in rows],
                )
                gone.extend(uid for uid, _ in rows)
                doomed = [join(folder, "cur", fn) for _, fn in rows]
                top, uidnext = db.execute(
                    "SELECT (SELECT max(uid) FROM messages WHERE mailbox_id = ?), uidnext FROM mailboxes"
                    " WHERE id = ?", (mailbox_id, mailbox_id),
                ).fetchone()
            faults.point("expunge.committed")
            # Acknowledged expunges must survive a power loss, or the mail comes back.
            await self.sync_index()
            faults.point("expunge.synced")
            if rows[-1][0] > (top or 0):
                # The highest messages go: once their files do, only the folder file can
                # tell a rebuilt or restored index which UIDs were handed out.
                await files.disk_threads.run(
                    functools.partial(folderfile.update, self.adir, folder, used=uidnext)
                )
            await files.disk_threads.run(self.adir.unlink_many, doomed)
            faults.point("expunge.unlinked")
            self.publish(mailbox_id, modseq, "expunge")
        return gone

    @_op()
    async def copy(
        self, mailbox_id: int, uids: Sequence[int], dest: str, quota: Quota | None = None,
        progress: Progress | None = None,
    ) -> CopyResult:
        dst = self.mailbox_by_name(dest)
        rows = self.select_uids(
            "SELECT m.uid, m.flags, m.size, m.internaldate FROM messages m WHERE m.mailbox_id = ?",
            mailbox_id,
            uids,
        )
        if not rows:
            return CopyResult(dst.uidvalidity, (), ())
        total = sum(r[2] for r in rows)
        self._store.check_space(total)
        quotas.check(quota, functools.partial(self._usage, self.db), total, len(rows))
        done: list[tuple[int, int]] = []
        uidvalidity = dst.uidvalidity
        try:
            # In batches, each one transaction (so UIDs appear in order) with a pause
            # between: a COPY of 100,000 messages must not hold the event loop.
            for i in range(0, len(rows), _COPY_BATCH):
                if i and progress is not None:
                    await progress(i)
                uidvalidity = await self._copy_batch(mailbox_id, dst.id, rows[i : i + _COPY_BATCH], quota, done)
        except BaseException:
            if done:
                # RFC 9051 6.4.7: a COPY that fails leaves the destination as it was.
                with contextlib.suppress(StoreError, sqlite3.Error, OSError):
                    await self.expunge(dst.id, [d[1] for d in done])
            raise
        return CopyResult(uidvalidity, tuple(d[0] for d in done), tuple(d[1] for d in done))

    async def _copy_batch(
        self, mailbox_id: int, dst_id: int, rows: list[tuple], quota: Quota | None, done: list[tuple[int, int]]
    ) -> int:
        await self.reserve_ahead(dst_id, len(rows))
        await self.ensure_letters(dst_id, {f for r in rows for f in r[1].split()})
        linked: list[str] = []
        try:
            async with self.write() as db:
                src_folder, dst_folder = self.folder(mailbox_id), self.folder(dst_id)
                first, uidvalidity = self._allocate_uids(db, dst_id, len(rows), sum(r[2] for r in rows), quota)
                modseq = self.bump_modseq(db, dst_id, {f for r in rows for f in r[1].split()})
                batch_done = []
                for i, (uid, fl, size, idate) in enumerate(rows):
                    new_uid = first + i
                    new_fn = files.new_filename(size, new_uid, self.info_for(dst_id, fl.split()))
                    target = join(dst_folder, "cur", new_fn)
                    if not self._link_current(db, mailbox_id, uid, src_folder, target):
                        continue  # expunged meanwhile by another session: skip it
                    linked.append(target)
                    faults.point("copy.linked")
                    batch_done.append((uid, new_uid))
                    self._copy_row(db, (mailbox_id, uid), (dst_id, new_uid), fl, modseq, size, idate, new_fn)
        except BaseException:
            with contextlib.suppress(OSError):
                for p in linked:
                    self.adir.unlink(p)
            raise
        done.extend(batch_done)
        faults.point("copy.committed")
        await files.disk_threads.run(self.adir.fsync_dir, join(self.folder(dst_id), "cur"))
        self._store.names_changed(self, dst_id)
        self.publish(dst_id, modseq, "append")
        return uidvalidity

    def _link_current(self, db: sqlite3.Connection, mailbox_id: int, uid: int, folder: str, target: str) -> bool:
        """Link the message's file (under its name as the index has it now) to *target*."""
        for _ in range(3):
            row = db.execute(
                "SELECT filename FROM messages WHERE mailbox_id = ? AND uid = ?", (mailbox_id, uid)
            ).fetchone()
            if row is None:
                return False
            if self.adir.link(join(folder, "cur", row[0]), target):
                return True
        return False

    @staticmethod
    def _copy_row(
        db: sqlite3.Connection, source: tuple[int, int], target: tuple[int, int],
        flags: str, modseq: int, size: int, internaldate: float, filename: str,
    ) -> None:
        """The index rows of a copy: *target* (mailbox id, UID) gets *source*'s, but
        for the save date, which is now's (RFC 8514 3: never copied), as its new file
        name records."""
        (src, uid), (dst, new_uid) = source, target
        db.execute(
            "INSERT INTO messages (mailbox_id, uid, flags, modseq, size, internaldate,"
            " filename, savedate) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (dst, new_uid, flags, modseq, size, internaldate, filename, files.save_date(filename, internaldate)),
        )
        db.execute(
            "INSERT INTO headers SELECT ?, ?, sent_date, subject, from_, to_, cc, bcc,"
            " message_id, refs FROM headers WHERE mailbox_id = ? AND uid = ?",
            (dst, new_uid, src, uid),
        )
        db.execute(
            "INSERT INTO parsed (mailbox_id, uid, header_size, envelope, body, bodystructure,"
            " parts, emailid, preview) SELECT ?, ?, header_size, envelope, body, bodystructure,"
            " parts, emailid, preview FROM parsed WHERE mailbox_id = ? AND uid = ?",
            (dst, new_uid, src, uid),
        )
        privateseen.copy_marks(db, source, target)

    @_op(essential=True)
    async def move(
        self, mailbox_id: int, uids: Sequence[int], dest: str, progress: Progress | None = None
    ) -> CopyResult:
        """RFC 6851: atomic. The files are renamed into the destination inside the one
        transaction that moves the rows; if anything fails the renames are undone, and
        after a crash each file is indexed where it lies.

        No quota check: moving does not grow the account (clients delete by moving to
        Trash, and must be able to do so at the limit)."""
        dst = self.mailbox_by_name(dest)
        if dst.id == mailbox_id:
            result = await self.copy(mailbox_id, uids, dest, progress=progress)
            await self.expunge(mailbox_id, result.source_uids)
            return result
        wanted = [r[0] for r in self.select_uids(
            "SELECT m.uid FROM messages m WHERE m.mailbox_id = ?", mailbox_id, uids
        )]
        if not wanted:
            return CopyResult(dst.uidvalidity, (), ())
        keywords = self.db.execute(
            "SELECT keywords FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        await self.ensure_letters(dst.id, keywords[0].split() if keywords else ())
        source: list[int] = []
        targets: list[int] = []
        uidvalidity = dst.uidvalidity
        # In batches, each one transaction (each message moves whole, in one of them),
        # with a pause between: a MOVE of 100,000 messages must not hold the event loop.
        for i in range(0, len(wanted), _COPY_BATCH):
            if i and progress is not None:
                await progress(i)
            batch = wanted[i : i + _COPY_BATCH]
            moved: list[tuple[str, str]] = []
            await self.reserve_ahead(dst.id, len(batch))
            await self.reserve_ahead(mailbox_id, 0)
            try:
                async with self.write() as db:
                    result, modseq, src_modseq = self.move_rows(db, mailbox_id, batch, dst.id, moved)
            except BaseException:
                self.undo_moves(moved)
                raise
            faults.point("move.committed")
            await self.moved(mailbox_id, dst.id, modseq, src_modseq)
            uidvalidity = result.uidvalidity
            source.extend(result.source_uids)
            targets.extend(result.dest_uids)
        return CopyResult(uidvalidity, tuple(source), tuple(targets))

    def move_rows(
        self, db: sqlite3.Connection, mailbox_id: int, uids: Sequence[int], dst_id: int,
        moved: list[tuple[str, str]],
    ) -> tuple[CopyResult, int, int]:
        """Inside the caller's transaction: rename the files of *uids* into *dst_id* and
        move their rows (recording each rename in *moved*, for undo_moves). Returns the
        result and both mailboxes' new MODSEQs."""
        src_folder, dst_folder = self.folder(mailbox_id), self.folder(dst_id)
        rows = self.select_uids(
            "SELECT m.uid, m.flags, m.size, m.internaldate, m.filename FROM messages m"
            " WHERE m.mailbox_id = ?", mailbox_id, uids,
        )
        first, uidvalidity = self._allocate_uids(db, dst_id, len(rows), 0, None)
        modseq = self.bump_modseq(db, dst_id, {f for r in rows for f in r[1].split()})
        src_modseq = self.bump_modseq(db, mailbox_id)
        done: list[tuple[int, int]] = []
        for i, (uid, fl, size, idate, fn) in enumerate(rows):
            new_uid = first + i
            new_fn = files.new_filename(size, new_uid, self.info_for(dst_id, fl.split()))
            src, target = join(src_folder, "cur", fn), join(dst_folder, "cur", new_fn)
            try:
                self.adir.rename(src, target)
            except FileNotFoundError:
                continue  # expunged by another session a moment ago
            moved.append((src, target))
            faults.point("move.renamed")
            done.append((uid, new_uid))
            self._copy_row(db, (mailbox_id, uid), (dst_id, new_uid), fl, modseq, size, idate, new_fn)
            db.execute("DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", (mailbox_id, uid))
            db.execute(
                "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq, base) VALUES (?, ?, ?, ?)",
                (mailbox_id, uid, src_modseq, files.base_of(fn)),
            )
        result = CopyResult(uidvalidity, tuple(d[0] for d in done), tuple(d[1] for d in done))
        return result, modseq, src_modseq

    def undo_moves(self, moved: list[tuple[str, str]]) -> None:
        """Put files back after a move whose transaction did not commit."""
        for src, target in reversed(moved):
            try:
                self.adir.rename(target, src)
            except OSError as e:
                # Left where it is: indexed in the destination at the next start.
                log.error("%s: undoing a MOVE of %s failed: %s", self.address, src, e)

    async def moved(self, mailbox_id: int, dst_id: int, modseq: int, src_modseq: int) -> None:
        """After a move committed: make it durable, then tell the sessions."""
        await self.sync_index()
        for folder in {self.folder(mailbox_id), self.folder(dst_id)}:
            await files.disk_threads.run(self.adir.fsync_dir, join(folder, "cur"))
        self._store.names_changed(self, dst_id)
        self.publish(dst_id, modseq, "append")
        self.publish(mailbox_id, src_modseq, "expunge")

    # --- access control ----------------------------------------------------------------------
    @_op()
    async def get_acl(self, mailbox: str) -> dict[str, str]:
        return acls.read(self.db, self.mailbox_by_name(mailbox).id)

    @_op()
    async def set_acl(self, mailbox: str, identifier: str, rights: str) -> None:
        await acls.set_entry(self, mailbox, identifier, rights)

    @_op()
    async def granted(self, identifiers: Sequence[str], mailbox: str | None = None) -> dict[str, str]:
        return acls.granted(self.db, identifiers, names.normalize(mailbox) if mailbox is not None else None)

    @_op()
    async def forget_identifier(self, identifier: str) -> None:
        await acls.forget(self, identifier)

    def reader(self, user: str) -> AccountStore:
        if user == self.address:
            return self
        view = self._readers.get(user)
        if view is None:
            from ..reader import ReaderAccount

            view = self._readers[user] = ReaderAccount(self, user)
        return view

    # --- POP3 ------------------------------------------------------------------------------
    def pop3_lock(self, wait: float = 0.0) -> contextlib.AbstractAsyncContextManager[None]:
        return self.pop3.hold(wait)

    @_op()
    async def pop3_maildrop(self) -> tuple[Mailbox, list[tuple[int, int]]]:
        inbox = self.mailbox_by_name("INBOX")
        rows = self.db.execute(
            "SELECT uid, size FROM messages WHERE mailbox_id = ? AND NOT pop3_hidden ORDER BY uid",
            (inbox.id,),
        ).fetchall()
        return inbox, rows

    @_op(essential=True)
    async def pop3_hide(self, mailbox_id: int, uids: Sequence[int]) -> None:
        if not uids:
            return
        async with self.write() as db:
            db.executemany(
                "UPDATE messages SET pop3_hidden = 1 WHERE mailbox_id = ? AND uid = ?",
                [(mailbox_id, u) for u in uids],
            )
        await self.sync_index()  # acknowledged to the client: must survive a power loss

    @_op(essential=True)
    async def pop3_mark_retrieved(self, mailbox_id: int, uids: Sequence[int]) -> None:
        if not uids:
            return
        now = time.time()
        async with self.write() as db:
            db.executemany(
                "UPDATE messages SET pop3_retrieved = ? WHERE mailbox_id = ? AND uid = ?"
                " AND pop3_retrieved IS NULL",
                [(now, mailbox_id, u) for u in uids],
            )

    @_op()
    async def pop3_expire(self, older_than: float) -> int:
        inbox = self.mailbox_by_name("INBOX")
        uids = [
            r[0]
            for r in self.db.execute(
                "SELECT uid FROM messages WHERE mailbox_id = ? AND pop3_retrieved < ?",
                (inbox.id, older_than),
            )
        ]
        return len(await self.expunge(inbox.id, uids)) if uids else 0

    # --- accounting ------------------------------------------------------------------------
    @staticmethod
    def _usage(db: sqlite3.Connection, count_trash: bool = True) -> Usage:
        return usage_of(db, count_trash)

    @_op()
    async def usage(self, count_trash: bool = True) -> Usage:
        return self._usage(self.db, count_trash)

    @_op()
    async def folder_usage(self) -> list[FolderUsage]:
        oldest = dict(
            self.db.execute("SELECT mailbox_id, min(internaldate) FROM messages GROUP BY mailbox_id").fetchall()
        )
        rows = self.db.execute(
            "SELECT id, name, special_use, messages, bytes, unseen FROM mailboxes"
            " ORDER BY name != 'INBOX', name"
        ).fetchall()
        return [FolderUsage(name, su, m, b, u, oldest.get(mid)) for mid, name, su, m, b, u in rows]

    @_op()
    async def select_messages(
        self,
        mailbox_id: int,
        received_before: float | None = None,
        larger_than: int | None = None,
        seen: bool = False,
        limit: int | None = None,
    ) -> list[tuple[int, int]]:
        self.mailbox_by_id(mailbox_id)  # raises MailboxNotFound
        sql = "SELECT uid, size FROM messages WHERE mailbox_id = ?"
        args: list[object] = [mailbox_id]
        if received_before is not None:
            sql += " AND internaldate < ?"
            args.append(received_before)
        if larger_than is not None:
            sql += " AND size > ?"
            args.append(larger_than)
        if seen:
            sql += " AND instr(flags, '\\Seen') > 0"
        sql += " ORDER BY uid"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [(int(u), int(z)) for u, z in self.db.execute(sql, args)]

    # --- life cycle ------------------------------------------------------------------------
    def close(self, reason: str = "deleted") -> None:
        """Let go of the index and the folder; any later use raises AccountGone (or
        Unavailable, for reason "repair")."""
        if self.closed:
            return
        self.closed = True
        self._closed_for = reason
        self._store.flag_tables.drop_account(self.key)
        with contextlib.suppress(sqlite3.Error):
            self.db.close()
        self.pop3.close()
        self.adir.close()


def usage_of(db: sqlite3.Connection, count_trash: bool = True) -> Usage:
    """An index's totals (kept by triggers), with or without the Trash folder."""
    sql = "SELECT coalesce(sum(messages), 0), coalesce(sum(bytes), 0) FROM mailboxes"
    if count_trash:
        m, b = db.execute(sql).fetchone()
    else:  # what quotas.counts leaves out
        m, b = db.execute(sql + " WHERE special_use IS NULL OR special_use != ?", (quotas.TRASH,)).fetchone()
    return Usage(int(m), int(b))


def _missing(present: list[int], uidnext: int) -> list[int]:
    """The UIDs below *uidnext* that are not in *present* (ascending)."""
    out: list[int] = []
    expected = 1
    for uid in present:
        out.extend(range(expected, uid))
        expected = uid + 1
    out.extend(range(expected, uidnext))
    return out
