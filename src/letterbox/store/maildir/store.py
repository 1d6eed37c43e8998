"""All accounts of the embedded store, under `<data_dir>/mail/<domain>/<local part>/`.

Opening an account checks that the folder belongs to it: the directory gives every
account an incarnation (a random id), which the folder keeps in `letterbox-account`. A
folder left by an earlier account of the same address (deleted while a delivery was in
flight, say) is moved to `.archive/` and logged, and the new account starts empty.

Deleting an account renames its folder out of `mail/<domain>/` at once (to `.deleted/`,
emptied right after, or to `.archive/` with keep_mail); handles still open on it keep
working on the renamed folder (they use its descriptor) and cannot reach a new account.

Only the process holding the data directory (the server, or the CLI when no server runs)
rebuilds indexes; a missing or damaged index makes the account Unavailable elsewhere.

An open account holds four descriptors (its folder, the index, its WAL and shared
memory) and an SQLite page cache. A handle stays open while anything uses it (a session,
a delivery in flight) and, beyond that, only among the `open_accounts` most recently used:
a host with many thousands of accounts (start-up checks, POP3 expiry and auto-expunge
visit them all) keeps a bounded number open, not all of them. A handle nobody holds is
closed when it is let go (see _release).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import secrets
import shutil
import sqlite3
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from .. import faults
from ..api import LEGACY, REPAIRING, Change, DiskFull, Limits, Store, StoreError, Unavailable, Usage
from ..feed import ChangeFeed, LocalFeed, Subscription
from . import index, namesync, reconcile
from .account import INDEX_FILE, MaildirAccount, usage_of
from .accountdir import AccountDir
from .flagtables import FlagTables
from .grants import Grants
from .privateseen import ReaderTables

log = logging.getLogger("letterbox.store")

MARKER = "letterbox-account"
REBUILD_LOCK = "letterbox.index.lock"
UIDVALIDITY_FILE = "letterbox-uidvalidity"
RESERVE_FILE = ".reserve"
SPENT_FILE = ".reserve-spent"
DELETED = ".deleted"
ARCHIVE = ".archive"
# How long a process without the data directory waits for a rebuild by the server.
_REBUILD_WAIT = 60.0
OPEN_ACCOUNTS = 500
"""Handles kept open, by default, beyond those in use (see the module's docstring)."""


class OutOfDescriptors(Unavailable):
    """The process has no descriptor left to open an account with (EMFILE, ENFILE)."""


class NeedsRebuild(StoreError):
    """The account's index is missing or damaged; the data directory's holder rebuilds it."""


class MaildirStore(Store):
    def __init__(self, root: Path, feed: ChangeFeed | None = None, *, exclusive: bool = False,
                 reserve: int = 0, limits: Limits | None = None, open_accounts: int = OPEN_ACCOUNTS) -> None:
        """*exclusive*: this process holds the data directory (see letterbox.datalock) and
        may rebuild indexes. *reserve*: bytes kept free for reading and deleting mail on
        a full disk (0: none). *open_accounts*: handles kept open that nothing uses."""
        self.root = root
        self.feed: ChangeFeed = feed or LocalFeed()
        self.flag_tables = FlagTables()
        self.reader_tables = ReaderTables()
        self.grants = Grants(root)
        self.exclusive = exclusive
        self.reserve_size = reserve
        self.limits = limits or Limits()
        self.new_waiting: dict[str, int] = {}
        """Accounts whose new/ files reconcile_all left for index_waiting, and how many."""
        self.unavailable: dict[str, str] = {}
        """Accounts waiting for a rebuild (or in one), and why."""
        self._accounts: weakref.WeakValueDictionary[str, MaildirAccount] = weakref.WeakValueDictionary()
        """Every open handle, while something holds it."""
        self._warm: OrderedDict[str, MaildirAccount] = OrderedDict()
        """The handles most recently used, held open for the next use (the LRU last)."""
        self.open_accounts = max(1, open_accounts)
        self._names_stale: set[str] = set()
        """Accounts whose file names lag their flags after start-up, closed since."""
        self._opening: dict[str, asyncio.Future[MaildirAccount]] = {}
        self._shared_locks: dict[str, int] = {}
        self._names_dirty: dict[tuple[str, int], MaildirAccount] = {}
        self.names_wakeup: asyncio.Event | None = None
        # A reserve spent before a restart stays spent until space is back.
        self._low_space = exclusive and (root / SPENT_FILE).exists()
        self._rebuild_failures: dict[str, tuple[int, float]] = {}
        self._unowned: set[Path] = set()
        self.shares_reserve = False
        """True in a worker of the server that does not keep the reserve (the primary
        worker does) but may give it back on a full disk."""
        self.sync_names_here = True
        """False in a worker that leaves file names to another worker: two processes
        renaming the same files would unlink each other's new names."""
        root.mkdir(parents=True, exist_ok=True)

    # --- where accounts live -------------------------------------------------------------
    def account_dir(self, address: str) -> Path:
        local, _, domain = address.rpartition("@")
        if (not local or not domain or "/" in address or "\x00" in address
                or local.startswith(".") or domain.startswith(".")):
            raise StoreError(f"invalid account address {address!r}")
        return self.root / domain / local

    def addresses_on_disk(self) -> list[str]:
        out = []
        for domain in sorted(os.listdir(self.root)):
            ddir = self.root / domain
            if domain.startswith(".") or not ddir.is_dir():
                continue
            for local in sorted(os.listdir(ddir)):
                adir = ddir / local
                if local.startswith("."):
                    continue
                if (adir / INDEX_FILE).exists() or (adir / "cur").is_dir():
                    out.append(f"{local}@{domain}")
        return out

    # --- opening ---------------------------------------------------------------------------
    def _cached(self, address: str, incarnation: str | None) -> MaildirAccount | None:
        acc = self._accounts.get(address)
        if acc is None or acc.closed:
            return None
        if incarnation is None or acc.incarnation == incarnation:
            return self._keep(acc)
        if acc.incarnation is None and self._same_folder(address, acc) and self._claim_open(address, incarnation):
            acc.incarnation = incarnation  # opened without one; the folder is this account's
            return self._keep(acc)
        return None

    def _keep(self, acc: MaildirAccount) -> MaildirAccount:
        """Count *acc* as just used; the least recently used beyond the bound are let go
        (closed once nothing else holds them either)."""
        self._warm[acc.address] = acc
        self._warm.move_to_end(acc.address)
        while len(self._warm) > self.open_accounts:
            self._warm.popitem(last=False)
        return acc

    def _drop(self, address: str) -> MaildirAccount | None:
        """Take *address*'s handle out of the store (the caller closes it)."""
        self._warm.pop(address, None)
        return self._accounts.pop(address, None)

    def open_count(self) -> int:
        return len(self._accounts)

    def _same_folder(self, address: str, acc: MaildirAccount) -> bool:
        """Whether the handle's folder is still the one at the account's path (another
        process may have moved an orphaned folder aside and made a new one)."""
        try:
            here = os.stat(self.account_dir(address))
        except FileNotFoundError:
            return False
        held = os.fstat(acc.adir.fd)
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)

    def _may_claim(self, path: Path, incarnation: str) -> bool:
        """A folder without an owner is an account's from before incarnations existed
        (the directory gave those accounts "legacy-" incarnations), or one this store
        made moments ago without one; any other may be an earlier account's mail."""
        return incarnation.startswith(LEGACY) or path in self._unowned

    def _claim_open(self, address: str, incarnation: str) -> bool:
        """The folder of an account opened without an incarnation: mark it as
        *incarnation*'s if it has no owner yet; False if it belongs to another."""
        path = self.account_dir(address)
        with _flocked(path.parent):
            marker = path / MARKER
            try:
                owner = marker.read_text().strip()
            except FileNotFoundError:
                owner = ""
            if not owner and self._may_claim(path, incarnation):
                _write_durably(marker, incarnation)
                return True
            return owner == incarnation

    async def account(self, address: str, incarnation: str | None = None) -> MaildirAccount:
        acc = self._cached(address, incarnation)
        if acc is not None:
            return acc
        if address in self.unavailable:
            raise Unavailable("the mailbox is being repaired; try again shortly")
        pending = self._opening.get(address)
        if pending is not None:
            acc = await asyncio.shield(pending)
            if incarnation is None or acc.incarnation == incarnation:
                return acc
        fut: asyncio.Future[MaildirAccount] = asyncio.get_running_loop().create_future()
        self._opening[address] = fut
        try:
            # Off the event loop: it may wait for another process's lock, or read folders.
            try:
                acc = await asyncio.to_thread(self._open, address, incarnation)
            except OutOfDescriptors:
                if not self._warm:
                    raise
                self._warm.clear()  # the idle handles give their descriptors back
                acc = await asyncio.to_thread(self._open, address, incarnation)
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: waiters see it, nobody logs it as lost
            raise
        finally:
            self._opening.pop(address, None)
        fut.set_result(acc)
        return acc

    def account_sync(self, address: str, incarnation: str | None = None) -> MaildirAccount:
        """For start-up and the CLI, outside an event loop."""
        acc = self._cached(address, incarnation)
        if acc is not None:
            return acc
        if address in self.unavailable:
            raise Unavailable("the mailbox is being repaired; try again shortly")
        return self._open(address, incarnation)

    def _open(self, address: str, incarnation: str | None, rebuild: bool | None = None) -> MaildirAccount:
        try:
            return self._open_account(address, incarnation, rebuild)
        except StoreError:
            raise
        except (OSError, sqlite3.Error) as e:
            raise _store_error(address, "opening the mailbox", e) from e

    def _open_account(self, address: str, incarnation: str | None, rebuild: bool | None) -> MaildirAccount:
        old = self._drop(address)
        if old is not None:
            old.close()  # an earlier incarnation's handle: never used again
        path = self.account_dir(address)
        fresh, owner = self._claim_folder(address, path, incarnation)
        adir = AccountDir(path)
        try:
            if not self.exclusive:
                self._lock_shared(address, adir)
            db = self._connect(address, adir, fresh, self.exclusive if rebuild is None else rebuild)
        except BaseException:
            self._unlock_shared(address)
            adir.close()
            raise
        acc = MaildirAccount(self, address, adir, db, incarnation or owner or None)
        try:
            reconcile.ensure_default_mailboxes(acc)
            reconcile.recover_after_reboot(acc)
            reconcile.apply_floors(acc)
            acc.remember_modseqs()
        except BaseException:
            acc.close()
            self._unlock_shared(address)
            raise
        weakref.finalize(acc, _release, weakref.ref(self), address, db, adir, acc.key)
        self._accounts[address] = acc
        return self._keep(acc)

    def _claim_folder(self, address: str, path: Path, incarnation: str | None) -> tuple[bool, str]:
        """Make sure the folder at *path* is this incarnation's (any, for None); returns
        whether it is new and the incarnation it belongs to."""
        domain_dir = path.parent
        domain_dir.mkdir(parents=True, exist_ok=True)
        with _flocked(domain_dir):
            marker = path / MARKER
            if path.exists():
                try:
                    owner = marker.read_text().strip()
                except FileNotFoundError:
                    owner = ""
                if incarnation is None or owner == incarnation:
                    return False, owner
                if not owner and self._may_claim(path, incarnation):
                    _write_durably(marker, incarnation)
                    return False, incarnation
                target = self._aside(ARCHIVE, address, "orphan")
                os.rename(path, target)
                _fsync_dir(domain_dir)
                log.warning(
                    "%s: the mail folder belonged to an earlier account of this address; "
                    "moved to %s, the account starts empty", address, target,
                )
            path.mkdir(mode=0o700)
            if incarnation is not None:
                _write_durably(marker, incarnation)
            else:
                self._unowned.add(path)
            _fsync_dir(domain_dir)
            return True, incarnation or ""

    def _connect(self, address: str, adir: AccountDir, fresh: bool, may_rebuild: bool) -> sqlite3.Connection:
        if not fresh and not adir.exists(INDEX_FILE) and _has_mail(adir):
            why = "its index is missing"
            log.warning("%s: %s; rebuilding it from the folders", address, why)
            if not may_rebuild:
                raise NeedsRebuild(why)
            self._rebuild_locked(address, adir)
        try:
            return index.connect(reconcile.index_path(adir, INDEX_FILE))
        except sqlite3.DatabaseError as e:
            if not index.is_corrupt(e):
                raise
            log.error("%s: the index is damaged (%s); rebuilding it from the folders", address, e)
            if not may_rebuild:
                raise NeedsRebuild(f"its index is damaged: {e}") from None
        self._rebuild_locked(address, adir)
        return index.connect(reconcile.index_path(adir, INDEX_FILE))

    def _rebuild_locked(self, address: str, adir: AccountDir) -> reconcile.Stats:
        fd = os.open(REBUILD_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600, dir_fd=adir.fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits for `letterbox deliver` runs to finish
            return reconcile.rebuild(self, address, adir, None)
        finally:
            os.close(fd)

    def _lock_shared(self, address: str, adir: AccountDir) -> None:
        """A process without the data directory holds the account shared, so the server
        never swaps the index under it; it waits (a while) for a rebuild in progress."""
        fd = os.open(REBUILD_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600, dir_fd=adir.fd)
        deadline = time.monotonic() + _REBUILD_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise Unavailable("the mailbox index is being rebuilt; try again later") from None
                time.sleep(0.1)
        self._unlock_shared(address)
        self._shared_locks[address] = fd

    def _unlock_shared(self, address: str) -> None:
        fd = self._shared_locks.pop(address, None)
        if fd is not None:
            os.close(fd)

    # --- rebuilding ------------------------------------------------------------------------
    def index_damaged(self, acc: MaildirAccount) -> None:
        """A query found the index damaged: close the account until it is rebuilt."""
        if acc.address in self.unavailable:
            return
        self.unavailable[acc.address] = "its index is damaged"
        if self._accounts.get(acc.address) is acc:
            self._drop(acc.address)
        acc.close("repair")

    def rebuild(self, address: str, incarnation: str | None = None) -> reconcile.Stats:
        """Rebuild an account's index from its folders (blocking; the caller holds the
        data directory). Open handles on the account are closed first."""
        if not self.exclusive:
            raise StoreError("only the process holding the data directory rebuilds indexes")
        acc = self._drop(address)
        if acc is not None:
            incarnation = incarnation or acc.incarnation
            acc.close("repair")
        path = self.account_dir(address)
        if not path.is_dir():
            raise StoreError(f"{address} has no mail folder")
        try:
            adir = AccountDir(path)
            try:
                stats = self._rebuild_locked(address, adir)
            finally:
                adir.close()
        except (OSError, sqlite3.Error) as e:
            raise _store_error(address, "rebuilding the index", e) from e
        self._open(address, incarnation)
        self.unavailable.pop(address, None)
        return stats

    def repair(self, address: str, incarnation: str | None = None, force: bool = False) -> dict[str, object]:
        """`letterbox repair`: reconcile the account's index with its folders, rebuilding
        it when SQLite finds it damaged (or when *force*). Returns what was found."""
        report: dict[str, object] = {}
        try:
            # A handle of its own: the server closed its handle (close_account) before
            # calling this in a thread, so nothing writes the account meanwhile.
            acc = self._open(address, incarnation, rebuild=False)
            problems = reconcile.check(acc)
        except NeedsRebuild as e:
            problems = [str(e)]
        except sqlite3.DatabaseError as e:
            problems = [str(e)]
        report["problems"] = problems
        if problems or force:
            report["rebuilt"] = self.rebuild(address, incarnation)
        acc = self._accounts.get(address) or self._open(address, incarnation)
        try:
            report["reconciled"] = reconcile.reconcile(acc)
        except (OSError, sqlite3.Error) as e:
            raise _store_error(address, "reconciling the index", e) from e
        report["messages"] = int(acc.db.execute("SELECT count(*) FROM messages").fetchone()[0])
        report["mailboxes"] = int(acc.db.execute("SELECT count(*) FROM mailboxes").fetchone()[0])
        return report

    # --- start-up ----------------------------------------------------------------------------
    def reconcile_all(self, new_limit: int | None = None) -> dict[str, int]:
        """Reconcile every account (see reconcile.reconcile); accounts with more than
        *new_limit* files waiting in a new/ folder are listed in new_waiting, accounts
        whose index must be rebuilt in unavailable. One account's trouble never stops the
        others."""
        total = reconcile.new_stats()
        self.new_waiting.clear()
        self.empty_deleted()
        for address in self.addresses_on_disk():
            try:
                acc = self._open(address, None, rebuild=False)
                stats = reconcile.reconcile(acc, new_limit)
            except NeedsRebuild as e:
                self.unavailable[address] = str(e)
                continue
            except Exception as e:
                log.exception("%s: start-up check failed; the account is unavailable", address)
                self.unavailable[address] = f"start-up check failed: {e}"
                continue
            if acc.db.execute("SELECT 1 FROM mailboxes WHERE names_modseq < highestmodseq LIMIT 1").fetchone():
                self._names_stale.add(address)  # the handle may be closed before the sync
            for k, v in stats.items():
                total[k] = total.get(k, 0) + v
            if any(stats.values()):
                log.info("reconciled %s: %s", address, stats)
            if acc.new_waiting:
                self.new_waiting[address] = acc.new_waiting
        return total

    def rebuild_unavailable(self, stop: threading.Event | None = None) -> int:
        """Rebuild, one by one, the accounts that wait for it (in the calling thread). One
        that fails is tried again later, less and less often (up to once an hour)."""
        done = 0
        now = time.monotonic()
        for address, why in list(self.unavailable.items()):
            if stop is not None and stop.is_set():
                break
            failures, retry_at = self._rebuild_failures.get(address, (0, 0.0))
            if why == REPAIRING or now < retry_at:
                continue
            try:
                self.rebuild(address)
                done += 1
                self._rebuild_failures.pop(address, None)
            except Exception as e:
                failures += 1
                delay = min(3600.0, 10.0 * 2 ** (failures - 1))
                self._rebuild_failures[address] = (failures, now + delay)
                log.error("%s: rebuilding the index failed (%s); the account stays unavailable,"
                          " next try in %.0f s", address, e, delay, exc_info=failures == 1)
        return done

    def rebuild_due(self) -> bool:
        """Whether an account waits for a rebuild that may be tried now."""
        now = time.monotonic()
        return any(
            why != REPAIRING and self._rebuild_failures.get(a, (0, 0.0))[1] <= now
            for a, why in self.unavailable.items()
        )

    def close_account(self, address: str, why: str = REPAIRING) -> None:
        """Take an account out of service (on the event loop, before a repair runs in a
        thread): its handle closes, so nothing of this process writes it meanwhile."""
        self.unavailable[address] = why
        acc = self._drop(address)
        if acc is not None:
            acc.close("repair")
        self._unlock_shared(address)  # a worker without the data directory: let the repair in
        for key in [k for k, a in self._names_dirty.items() if a is acc]:
            del self._names_dirty[key]

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
                n = reconcile.index_new(other.account_sync(address), stop)
            finally:
                for acc in list(other._accounts.values()):
                    acc.close()
                    other._unlock_shared(acc.address)
            done += n
            log.info("indexed %d files from new/ of %s", n, address)
            self.new_waiting.pop(address, None)
        return done

    def empty_deleted(self) -> None:
        """Finish removing accounts deleted before a crash."""
        trash = self.root / DELETED
        if trash.is_dir():
            for entry in os.listdir(trash):
                shutil.rmtree(trash / entry, ignore_errors=True)

    # --- deleting ----------------------------------------------------------------------------
    async def delete_account(self, address: str, keep_mail: bool = False) -> None:
        acc = self._drop(address)
        if acc is not None:
            acc.close()
        self.unavailable.pop(address, None)
        await self._forget_grantee(address)
        path = self.account_dir(address)
        if not path.exists():
            return
        try:
            target = self._aside(ARCHIVE if keep_mail else DELETED, address, "deleted")
            faults.point("account.deleting")
            # One rename takes the whole account out of reach, whatever happens next.
            os.rename(path, target)
            _fsync_dir(path.parent)
            faults.point("account.moved")
        except OSError as e:
            raise _store_error(address, "moving the account's mail away", e) from e
        if keep_mail:
            log.info("%s: mail kept in %s", address, target)
        else:
            await asyncio.to_thread(shutil.rmtree, target, True)

    async def _forget_grantee(self, address: str) -> None:
        """Take a deleted account out of the other accounts' ACLs and \\Seen marks (an
        address added again later must not find what the one before had) and out of the
        register."""
        try:
            owners = self.grants.grantors(address)
        except StoreError as e:
            log.warning("finding the ACLs that name %s failed: %s", address, e)
            owners = []
        for owner in owners:
            try:
                await (await self.account(owner)).forget_identifier(address)
            except StoreError as e:
                # Left for now: the entry names an address without an account.
                log.warning("%s: removing %s from its ACLs failed: %s", owner, address, e)
        try:
            await self.grants.forget_owner(address)
        except StoreError as e:
            log.warning("forgetting the grants of %s failed: %s", address, e)

    async def grantors(self, address: str) -> list[str]:
        return self.grants.grantors(address)

    def _aside(self, where: str, address: str, why: str) -> Path:
        local, _, domain = address.rpartition("@")
        parent = self.root / where / domain
        parent.mkdir(parents=True, exist_ok=True)
        return parent / f"{local}.{why}-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"

    # --- identities ----------------------------------------------------------------------------
    def next_uidvalidity(self) -> int:
        """A UIDVALIDITY no mailbox of any account has had: a store-wide counter, kept
        ahead of the clock, so a mailbox made again (even of an account deleted and added
        again within a second) never repeats one (RFC 9051 2.3.1.1)."""
        return self._uidvalidity_counter(0)

    def uidvalidity_past(self, taken: int) -> None:
        """A mailbox copied from another store took *taken*: later ones come after it."""
        self._uidvalidity_counter(taken)

    def _uidvalidity_counter(self, taken: int) -> int:
        fd = os.open(self.root / UIDVALIDITY_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            last = int(text) if text.isdigit() else 0
            value = max(last + 1, int(time.time()), taken)
            data = f"{value}\n".encode()
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            os.fsync(fd)
            return value
        finally:
            os.close(fd)

    # --- free space ------------------------------------------------------------------------------
    def ensure_reserve(self) -> None:
        """Keep `reserve_size` bytes allocated in a file; given back on a full disk so
        reading and deleting still work (release_reserve), made again when space is back."""
        if not self.reserve_size or not self.exclusive:
            return
        path = self.root / RESERVE_FILE
        try:
            if path.exists() and path.stat().st_size >= self.reserve_size:
                if self._low_space or (self.root / SPENT_FILE).exists():
                    self._low_space = False
                    (self.root / SPENT_FILE).unlink(missing_ok=True)
                return
            st = os.statvfs(self.root)
            if st.f_bavail * st.f_frsize < 2 * self.reserve_size:
                return  # not yet: the space is needed more than the reserve
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.reserve_size)
                os.fsync(fd)
            finally:
                os.close(fd)
            if self._low_space:
                log.info("disk space is back: the reserve is in place again and new mail is accepted")
            self._low_space = False
            (self.root / SPENT_FILE).unlink(missing_ok=True)
        except OSError as e:
            log.warning("cannot set the disk space reserve aside: %s", e)

    def release_reserve(self) -> bool:
        """The disk is full: free the reserve (True if there was one to free). New mail
        is refused until ensure_reserve finds space again."""
        path = self.root / RESERVE_FILE
        if not self.exclusive and not self.shares_reserve:
            return False  # only the server gives its reserve back
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError:
            return False
        # A worker without the data directory goes by the spent mark, as `letterbox
        # deliver` does: the worker that keeps the reserve removes it when space is back.
        self._low_space = self.exclusive
        with contextlib.suppress(OSError):  # tells `letterbox deliver` too
            (self.root / SPENT_FILE).touch()
        log.error("the disk is full: released the reserve so users can read and delete mail;"
                  " new mail is refused until space is freed")
        return True

    def reserve_available(self) -> bool:
        return (self.root / RESERVE_FILE).exists()

    def check_space(self, size: int) -> None:
        """Refuse new mail while the reserve is spent (it is for reading and deleting);
        in another process (`letterbox deliver`), while the server's reserve is missing."""
        if self._low_space or (not self.exclusive and (self.root / SPENT_FILE).exists()):
            raise DiskFull("not enough disk space")

    # --- file names in the background ----------------------------------------------------------
    def names_changed(self, acc: MaildirAccount, mailbox_id: int) -> None:
        if not self.sync_names_here:
            return
        self._names_dirty[(acc.key, mailbox_id)] = acc
        if self.names_wakeup is not None:
            self.names_wakeup.set()

    def mark_names_stale(self) -> None:
        """Queue every mailbox whose file names lag its flags (after start-up); those of
        accounts closed since reconcile_all are queued when sync_names opens them."""
        for acc in list(self._accounts.values()):
            self._queue_stale_names(acc)

    def _queue_stale_names(self, acc: MaildirAccount) -> None:
        self._names_stale.discard(acc.address)
        for (mid,) in acc.db.execute("SELECT id FROM mailboxes WHERE names_modseq < highestmodseq"):
            self._names_dirty[(acc.key, mid)] = acc

    async def sync_names(self) -> int:
        """Rename the files of every mailbox whose flags changed; returns how many."""
        done = 0
        while self._names_dirty or self._names_stale:
            if not self._names_dirty:  # an account closed since start-up: one at a time
                address = self._names_stale.pop()
                if not self.account_dir(address).is_dir():
                    continue  # deleted since: opening would make it again
                try:
                    self._queue_stale_names(await self.account(address))
                except (StoreError, sqlite3.Error, OSError) as e:
                    log.warning("%s: bringing file names up to date failed: %s", address, e)
                continue
            (_, mid), acc = self._names_dirty.popitem()
            if acc.closed:
                continue
            try:
                done += await namesync.sync_mailbox(acc, mid)
            except (StoreError, sqlite3.Error, OSError) as e:
                log.warning("%s: bringing file names up to date failed (will retry): %s", acc.address, e)
                self._names_dirty[(acc.key, mid)] = acc
                return done
        return done

    async def run_name_sync(self, delay: float = 1.0) -> None:
        """The background task: a sync a moment after changes (so that a burst of STOREs
        renames each file once)."""
        self.names_wakeup = asyncio.Event()
        if self._names_dirty or self._names_stale:
            self.names_wakeup.set()
        while True:
            await self.names_wakeup.wait()
            await asyncio.sleep(delay)
            self.names_wakeup.clear()
            try:
                await self.sync_names()
            except Exception:
                log.exception("file name sync failed")
            if self._names_dirty or self._names_stale:
                self.names_wakeup.set()

    # --- feed ------------------------------------------------------------------------------------
    def subscribe(self, address: str, *more: str) -> Subscription:
        return self.feed.subscribe(address, *more)

    def watch(self, callback: Callable[[str], None]) -> None:
        self.feed.watch(callback)

    async def peek_usage(self, address: str, count_trash: bool = True) -> Usage | None:
        acc = self._accounts.get(address)
        if acc is not None and not acc.closed:
            try:
                return await acc.usage(count_trash)
            except StoreError:
                return None
        return await asyncio.to_thread(self._peek_usage, address, count_trash)

    def _peek_usage(self, address: str, count_trash: bool) -> Usage | None:
        """The index's totals (kept by triggers), read through a read-only connection
        that is closed at once: no account is opened, nothing is written or locked."""
        try:
            path = self.account_dir(address) / INDEX_FILE
            if not path.exists():
                return None
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.2)
            try:
                return usage_of(db, count_trash)
            finally:
                db.close()
        except (StoreError, sqlite3.Error, OSError):
            return None

    async def notify_external(self, address: str) -> None:
        acc = self._accounts.get(address)
        if acc is not None:
            acc.check_external()

    async def notify_acl(self, address: str, incarnation: str, mailbox: str, identifier: str) -> None:
        # Opened if need be: the grantee's sessions may listen though nobody reads it.
        try:
            acc = await self.account(address, incarnation)
            mbox = await acc.get_mailbox(mailbox)
        except StoreError:
            return
        acc.publish_acl(mbox.id, mbox.name, identifier)

    def poll_external(self) -> None:
        """Cheap check (PRAGMA data_version) of accounts that have listening sessions."""
        for address, acc in list(self._accounts.items()):
            if self.feed.has_local_subscribers(address):
                try:
                    acc.check_external()
                except sqlite3.Error as e:
                    if index.is_corrupt(e):
                        self.index_damaged(acc)
                    log.warning("checking %s for outside changes failed: %s", address, e)

    # --- serving with several workers (store.api.Store) -----------------------------------
    def serve_with_workers(self, primary: bool, wrap: Callable[[ChangeFeed], ChangeFeed]) -> None:
        self.feed = wrap(self.feed)
        # Only the primary rebuilds indexes, keeps the reserve and renames files.
        self.exclusive = primary
        self.sync_names_here = primary
        self.shares_reserve = True

    def reopen_account(self, address: str) -> None:
        self.unavailable.pop(address, None)

    def changed_elsewhere(self, change: Change) -> None:
        self.told_elsewhere(change)

    async def flags_changed_elsewhere(self, address: str, incarnation: str | None, mailbox_id: int) -> None:
        acc = await self.account(address, incarnation)
        self.names_changed(acc, mailbox_id)

    def told_elsewhere(self, change: Change) -> None:
        """Another process's change, already relayed on the feed: the next look at the
        index (poll_external) need not tell it again."""
        acc = self._accounts.get(change.account)
        if acc is not None and change.kind in ("append", "flags", "expunge"):
            acc.remember_modseq(change.mailbox_id, change.modseq)

    def is_open(self, address: str) -> bool:
        return address in self._accounts

    # --- the server's hooks (store.api.Store) -----------------------------------------------
    can_repair = True

    async def recover(self, new_limit: int | None = None) -> dict[str, int]:
        stats = await asyncio.to_thread(self.reconcile_all, new_limit)
        self.ensure_reserve()
        self.mark_names_stale()
        return stats

    def unavailable_accounts(self) -> Mapping[str, str]:
        return self.unavailable

    def housekeeping(self) -> None:
        self.poll_external()
        self.ensure_reserve()

    async def run_background(self) -> None:
        await self.run_name_sync()

    async def rebuild_damaged(self, stop: threading.Event) -> int:
        return await asyncio.to_thread(self.rebuild_unavailable, stop)

    def mail_waiting(self) -> int:
        return sum(self.new_waiting.values())

    async def index_waiting_mail(self, stop: threading.Event) -> int:
        return await asyncio.to_thread(self.index_waiting, stop)

    async def repair_account(self, address: str, incarnation: str, rebuild: bool) -> dict[str, object]:
        self.close_account(address)
        try:
            return await asyncio.to_thread(self.repair, address, incarnation, rebuild)
        finally:
            self.unavailable.pop(address, None)

    async def settle(self) -> None:
        await self.sync_names()  # file names carry the flags at rest

    async def close(self) -> None:
        for acc in list(self._accounts.values()):
            acc.close()
        self._accounts.clear()
        self._warm.clear()
        for address in list(self._shared_locks):
            self._unlock_shared(address)
        self.grants.close()


def _release(
    store_ref: weakref.ref[MaildirStore], address: str, db: sqlite3.Connection, adir: AccountDir, key: str,
) -> None:
    """A handle nobody holds any more is gone: let go of what it held, unless it was
    closed already (close() did it, and a newer handle may hold the address's lock)."""
    if adir.fd < 0:
        return
    with contextlib.suppress(sqlite3.Error):
        db.close()
    adir.close()
    store = store_ref()
    if store is not None:
        store.flag_tables.drop_account(key)
        store._unlock_shared(address)


def _store_error(address: str, what: str, e: BaseException) -> StoreError:
    if isinstance(e, OSError) and e.errno in (28, 122):  # ENOSPC, EDQUOT
        return DiskFull("not enough disk space")
    if (isinstance(e, OSError) and e.errno in (errno.EMFILE, errno.ENFILE)) or (
        isinstance(e, sqlite3.OperationalError) and "unable to open" in str(e) and _out_of_descriptors()
    ):
        log.error("%s: %s failed: out of file descriptors", address, what)
        return OutOfDescriptors("the server is out of file descriptors; try again shortly")
    log.error("%s: %s failed: %s", address, what, e)
    if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
        return Unavailable("the mailbox index is busy; try again")
    return StoreError(f"{what} failed: {e}")


def _out_of_descriptors() -> bool:
    """Whether the three descriptors an index takes (file, WAL, shared memory) cannot be
    had now: SQLite does not tell why it could not open one."""
    opened: list[int] = []
    try:
        for _ in range(3):
            opened.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    except OSError as e:
        return e.errno in (errno.EMFILE, errno.ENFILE)
    finally:
        for fd in opened:
            os.close(fd)
    return False


def _has_mail(adir: AccountDir) -> bool:
    """Whether a folder without an index holds anything a rebuild would find."""
    try:
        if adir.listdir("cur") or adir.listdir("new"):
            return True
    except FileNotFoundError:
        pass
    return any(e.startswith(".") and adir.isdir(e + "/cur") for e in adir.listdir(""))


@contextlib.contextmanager
def _flocked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_durably(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
