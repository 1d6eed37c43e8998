"""The account directory: addresses, password hashes, per-account switches and quotas,
and the server-wide protocol switches. One SQLite file shared by the server and the CLI.

A password is kept as an argon2id hash and, beside it, as SCRAM-SHA-256 secrets (see
auth.scram); setting a password writes both, so a change never leaves the old password
usable through SCRAM. Accounts made before SCRAM have none until their password is set
again or their next successful password login (see Authenticator.login).

The server notices CLI changes within a second through PRAGMA data_version (and at once
when the CLI pokes the control socket), so changes apply without a restart.

Every account has an incarnation, a random id made when it is added: the store keeps it
beside the account's mail, so an account deleted and added again under the same address
never sees its predecessor's mail. Deleting is two steps: the row is marked (the account
disappears from lookups at once), then whoever holds the data directory moves the mail
away and removes the row; a crash in between is finished at the next start. Lookups are
cached, and the cache is dropped as soon as data_version shows another connection's
commit or this connection writes, so a lookup never sees older data than a query would.

This is the engine of the embedded (Maildir) store. On PostgreSQL the directory is
shared by every front end of the database: auth.pgdirectory, with the same API, opened
by auth.factory according to the config.
"""

from __future__ import annotations

import builtins
import contextlib
import re
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..store.api import LEGACY, Quota, StoreError, Unavailable
from .admins import Admins
from .audit import AuditLog
from .passwords import Secrets

PROTOCOLS = ("imap", "pop3")
_CACHE_MAX = 10_000
SERVICES = ("imap", "pop3", "lmtp", "smtp")

_LOCAL_RE = re.compile(r"^[a-z0-9!#$%&'*+=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+=?^_`{|}~-]+)*$")
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    address        TEXT PRIMARY KEY,
    password       TEXT NOT NULL,
    enabled        INTEGER NOT NULL DEFAULT 1,
    protocols      TEXT NOT NULL DEFAULT 'imap pop3',
    quota_bytes    INTEGER NOT NULL DEFAULT 0,
    quota_messages INTEGER NOT NULL DEFAULT 0,
    created        REAL NOT NULL,
    incarnation    TEXT NOT NULL DEFAULT '',
    deleting       INTEGER NOT NULL DEFAULT 0,
    scram_sha256   TEXT NOT NULL DEFAULT '',
    disabled_message TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS switches (
    service TEXT PRIMARY KEY,
    enabled INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS keys (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage (
    address  TEXT PRIMARY KEY,
    messages INTEGER NOT NULL,
    bytes    INTEGER NOT NULL,
    counted_messages INTEGER NOT NULL,
    counted_bytes    INTEGER NOT NULL,
    updated  REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_bytes ON usage (bytes);
CREATE TABLE IF NOT EXISTS last_login (
    address  TEXT NOT NULL,
    protocol TEXT NOT NULL,
    at       REAL NOT NULL,
    ip       TEXT NOT NULL,
    PRIMARY KEY (address, protocol)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quota_warned (
    address TEXT PRIMARY KEY,
    level   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS policies (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""


class DirectoryError(Exception):
    """A directory problem worded for the administrator (bad address, unknown user...)."""


class DirectoryUnavailable(Unavailable):
    """A shared directory (auth.pgdirectory) cannot be reached just now: a temporary
    failure (a store Unavailable: IMAP NO [UNAVAILABLE], POP3 -ERR [SYS/TEMP], 451),
    never an unknown user."""

    def __init__(self, why: str = "") -> None:
        super().__init__("the accounts directory is unavailable; try again shortly" + (f" ({why})" if why else ""))


BUSY: tuple[type[Exception], ...] = (sqlite3.OperationalError, StoreError)
"""What a note the server writes (usage, last logins) may fail with for a moment: another
process holds SQLite's write lock, or the shared directory is unreachable
(pgconn.DirectoryUnavailable, a StoreError). The server tries again later."""


def normalize_address(address: str) -> str:
    """Lower-case and validate user@domain; raise DirectoryError naming the problem."""
    addr = address.strip().lower()
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        raise DirectoryError(f"{address!r} is not an address of the form user@domain")
    if len(local) > 64 or not _LOCAL_RE.match(local):
        raise DirectoryError(f"{address!r}: the part before @ has characters not allowed here")
    if not _DOMAIN_RE.match(domain):
        raise DirectoryError(f"{address!r}: {domain!r} is not a valid domain name")
    return addr


def check_same_account(address: str, there: str, incarnation: str) -> None:
    """Adopting an account whose address a directory has already (incarnation *there*)
    is fine only if it is the same account: two accounts' mail must never mix."""
    if there != incarnation:
        raise DirectoryError(
            f"account {address!r} exists at the destination as another account (incarnation {there},"
            f" not {incarnation}): its mail would mix with this one's; delete it there first"
        )


@dataclass(frozen=True, slots=True)
class Account:
    address: str
    password_hash: str
    enabled: bool
    protocols: frozenset[str]
    quota: Quota
    created: float
    incarnation: str = ""
    scram: str = ""
    """SCRAM-SHA-256 secrets as auth.scram.ScramSecrets.encode makes them; "" when none."""
    disabled_message: str = ""
    """What a disabled account's user is told when logging in (set with the switch)."""

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


def _row_to_account(row: tuple) -> Account:
    address, pw, enabled, protocols, qb, qm, created, incarnation, scram, message = row
    return Account(
        address, pw, bool(enabled), frozenset(protocols.split()), Quota(qb, qm), created, incarnation, scram,
        message,
    )


@dataclass(frozen=True, slots=True)
class PendingDeletion:
    address: str
    incarnation: str
    keep_mail: bool


def _new_incarnation() -> str:
    return secrets.token_hex(8)


class Directory:
    shared = False
    """True for a directory that front ends share (auth.pgdirectory)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._upgrade()
        self.admins = Admins(self.db)
        self.audit = AuditLog(self.db)
        self._decoy_key = self._key("scram-decoy")
        self._version = self.data_version()
        # Delivery looks each recipient up two or three times per message.
        self._cached_version = -1
        self._accounts: dict[str, Account | None] = {}
        self._domains: frozenset[str] | None = None

    def _upgrade(self) -> None:
        """Directories made before incarnations, two-step deletion or SCRAM get them."""
        cols = {r[1] for r in self.db.execute("PRAGMA table_info(accounts)")}
        if {"incarnation", "deleting", "scram_sha256", "disabled_message"} <= cols:
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            cols = {r[1] for r in self.db.execute("PRAGMA table_info(accounts)")}
            if "incarnation" not in cols:
                self.db.execute("ALTER TABLE accounts ADD COLUMN incarnation TEXT NOT NULL DEFAULT ''")
            if "deleting" not in cols:
                self.db.execute("ALTER TABLE accounts ADD COLUMN deleting INTEGER NOT NULL DEFAULT 0")
            if "disabled_message" not in cols:
                self.db.execute("ALTER TABLE accounts ADD COLUMN disabled_message TEXT NOT NULL DEFAULT ''")
            if "scram_sha256" not in cols:
                # Existing accounts have no SCRAM secrets: SCRAM fails for them as a wrong
                # password does until the password is set again or used once.
                self.db.execute("ALTER TABLE accounts ADD COLUMN scram_sha256 TEXT NOT NULL DEFAULT ''")
            for (address,) in self.db.execute("SELECT address FROM accounts WHERE incarnation = ''").fetchall():
                # Accounts from before incarnations: their mail folders carry no owner
                # yet, and only they may claim such a folder (see store.maildir.store).
                self.db.execute(
                    "UPDATE accounts SET incarnation = ? WHERE address = ?",
                    (LEGACY + _new_incarnation(), address),
                )
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @property
    def decoy_key(self) -> bytes:
        """Derives the salts unknown users are answered with (see auth.scram)."""
        return self._decoy_key

    def _key(self, name: str) -> bytes:
        """A random key made once per directory and kept in it."""
        row = self.db.execute("SELECT value FROM keys WHERE name = ?", (name,)).fetchone()
        if row is None:
            self.db.execute("INSERT OR IGNORE INTO keys (name, value) VALUES (?, ?)", (name, secrets.token_bytes(32)))
            row = self.db.execute("SELECT value FROM keys WHERE name = ?", (name,)).fetchone()
        return bytes(row[0])

    def close(self) -> None:
        self.db.close()

    def reader(self) -> Any:
        """A read-only connection of its own, for queries run in a worker thread (the
        console's listings) so that they never hold the event loop or this one."""
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA query_only = ON")
        return db

    def data_version(self) -> int:
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def _current(self) -> None:
        """Drop cached lookups if another connection committed since they were made."""
        version = self.data_version()
        if version != self._cached_version:
            self._cached_version = version
            self._forget()

    def _forget(self) -> None:
        self._accounts.clear()
        self._domains = None

    def changed(self) -> bool:
        """True once after another process committed a change."""
        v = self.data_version()
        if v != self._version:
            self._version = v
            return True
        return False

    # --- accounts ----------------------------------------------------------------------
    _COLS = ("address, password, enabled, protocols, quota_bytes, quota_messages, created, incarnation,"
             " scram_sha256, disabled_message")

    def get(self, address: str) -> Account | None:
        key = address.strip().lower()
        self._current()
        try:
            return self._accounts[key]
        except KeyError:
            pass
        row = self.db.execute(
            f"SELECT {self._COLS} FROM accounts WHERE address = ? AND NOT deleting", (key,)
        ).fetchone()
        account = _row_to_account(row) if row else None
        if len(self._accounts) >= _CACHE_MAX:  # misses for made-up addresses included
            self._accounts.clear()
        self._accounts[key] = account
        return account

    async def aget(self, address: str) -> Account | None:
        """get() for an event loop: an engine that may wait on a network (PostgreSQL)
        answers without holding the loop; this one is a local file, and fast."""
        return self.get(address)

    async def prefetch(self, addresses: Iterable[str]) -> None:
        """Look these up ahead of synchronous get()s (a shared directory: in one query,
        off the event loop). Nothing to do for a local file."""

    def require(self, address: str) -> Account:
        acc = self.get(normalize_address(address))
        if acc is None:
            raise DirectoryError(f"no account {address!r}")
        return acc

    def list(self) -> list[Account]:
        rows = self.db.execute(
            f"SELECT {self._COLS} FROM accounts WHERE NOT deleting ORDER BY address"
        ).fetchall()
        return [_row_to_account(r) for r in rows]

    def add(
        self,
        address: str,
        password: Secrets | str,
        protocols: Iterable[str] = PROTOCOLS,
        quota: Quota = Quota(),
    ) -> Account:
        """*password*: passwords.make_secrets(...); a bare argon2id hash gives an account
        without SCRAM secrets."""
        addr = normalize_address(address)
        secrets_ = password if isinstance(password, Secrets) else Secrets(password)
        protos = _check_protocols(protocols)
        if self.db.execute("SELECT 1 FROM accounts WHERE address = ? AND deleting", (addr,)).fetchone():
            raise DirectoryError(f"account {addr!r} is still being deleted; try again in a moment")
        try:
            self.db.execute(
                f"INSERT INTO accounts ({self._COLS}) VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, '')",
                (addr, secrets_.password_hash, " ".join(protos), quota.bytes, quota.messages, time.time(),
                 _new_incarnation(), secrets_.scram),
            )
        except sqlite3.IntegrityError:
            raise DirectoryError(f"account {addr!r} already exists") from None
        self._forget()  # this connection's own commits leave data_version as it is
        return self.require(addr)

    def adopt(self, account: Account) -> Account:
        """Take *account* from another directory with every field as it is there
        (`letterbox store copy`): its incarnation above all, which its mail carries. One
        already here with the same incarnation is left as it is; with another, it is a
        different account of the same address, and DirectoryError says so."""
        addr = normalize_address(account.address)
        row = self.db.execute("SELECT incarnation, deleting FROM accounts WHERE address = ?", (addr,)).fetchone()
        if row is None:
            try:
                self.db.execute(
                    f"INSERT INTO accounts ({self._COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (addr, account.password_hash, int(account.enabled), " ".join(_check_protocols(account.protocols)),
                     account.quota.bytes, account.quota.messages, account.created, account.incarnation,
                     account.scram, account.disabled_message),
                )
            except sqlite3.IntegrityError:  # added meanwhile by another process
                return self.adopt(account)
            self._forget()
            return self.require(addr)
        if row[1]:
            raise DirectoryError(f"account {addr!r} is being deleted at the destination; try again in a moment")
        check_same_account(addr, row[0], account.incarnation)
        return self.require(addr)

    def mark_deleted(self, address: str, keep_mail: bool = False) -> Account:
        """First step of deleting: the account disappears from every lookup at once; its
        mail goes when the data directory's holder calls finish_delete."""
        acc = self.require(address)
        self.db.execute(
            "UPDATE accounts SET deleting = ? WHERE address = ?", (2 if keep_mail else 1, acc.address)
        )
        self._forget()
        return acc

    def pending_deletions(self) -> builtins.list[PendingDeletion]:
        return [
            PendingDeletion(address, incarnation, deleting == 2)
            for address, incarnation, deleting in self.db.execute(
                "SELECT address, incarnation, deleting FROM accounts WHERE deleting"
            )
        ]

    def finish_delete(self, address: str, incarnation: str) -> None:
        with self._transaction():
            cur = self.db.execute(
                "DELETE FROM accounts WHERE address = ? AND incarnation = ? AND deleting", (address, incarnation)
            )
            if cur.rowcount:
                for table in ("usage", "last_login", "quota_warned"):
                    self.db.execute(f"DELETE FROM {table} WHERE address = ?", (address,))
        self._forget()

    def is_deleting(self, address: str) -> bool:
        return self.db.execute(
            "SELECT 1 FROM accounts WHERE address = ? AND deleting", (address.strip().lower(),)
        ).fetchone() is not None

    def _update(self, address: str, column: str, value: object) -> Account:
        addr = self.require(address).address
        self.db.execute(f"UPDATE accounts SET {column} = ? WHERE address = ?", (value, addr))
        self._forget()
        return self.require(addr)

    def set_password(self, address: str, password: Secrets | str) -> Account:
        """Both the hash and the SCRAM secrets, always: a bare hash clears the old
        password's SCRAM secrets rather than leave them valid."""
        secrets_ = password if isinstance(password, Secrets) else Secrets(password)
        addr = self.require(address).address
        self.db.execute(
            "UPDATE accounts SET password = ?, scram_sha256 = ? WHERE address = ?",
            (secrets_.password_hash, secrets_.scram, addr),
        )
        self._forget()
        return self.require(addr)

    def add_scram(self, address: str, password_hash: str, scram: str) -> bool:
        """Give an account that has none the SCRAM secrets of its password, made by the
        server after a password login. Only while the password is still *password_hash*
        (a change in the meantime wins), and never waiting for the database: when another
        process is writing, it is simply tried again at a later login."""
        self.db.execute("PRAGMA busy_timeout = 0")
        try:
            cur = self.db.execute(
                "UPDATE accounts SET scram_sha256 = ? WHERE address = ? AND password = ?"
                " AND scram_sha256 = '' AND NOT deleting",
                (scram, address, password_hash),
            )
        except sqlite3.OperationalError:  # locked by another writer
            return False
        finally:
            self.db.execute("PRAGMA busy_timeout = 30000")
        self._forget()
        return cur.rowcount == 1

    def set_enabled(self, address: str, enabled: bool, message: str = "") -> Account:
        """Switch an account on or off; *message* is shown to its user while it is off."""
        addr = self.require(address).address
        text = "" if enabled else _disabled_text(message)
        self.db.execute(
            "UPDATE accounts SET enabled = ?, disabled_message = ? WHERE address = ?", (int(enabled), text, addr)
        )
        self._forget()
        return self.require(addr)

    def set_protocols(self, address: str, protocols: Iterable[str]) -> Account:
        return self._update(address, "protocols", " ".join(_check_protocols(protocols)))

    def set_quota(self, address: str, quota: Quota) -> Account:
        addr = self.require(address).address
        self.db.execute(
            "UPDATE accounts SET quota_bytes = ?, quota_messages = ? WHERE address = ?",
            (quota.bytes, quota.messages, addr),
        )
        self._forget()
        return self.require(addr)

    def local_domains(self) -> frozenset[str]:
        self._current()
        if self._domains is None:
            self._domains = frozenset(
                r[0]
                for r in self.db.execute(
                    "SELECT DISTINCT substr(address, instr(address, '@') + 1) FROM accounts"
                    " WHERE NOT deleting"
                )
            )
        return self._domains

    # --- server-wide switches ---------------------------------------------------------
    def switches(self) -> dict[str, bool]:
        """Services switched on or off at run time; absent ones follow the config file."""
        return {s: bool(e) for s, e in self.db.execute("SELECT service, enabled FROM switches")}

    @staticmethod
    def _check_service(service: str) -> None:
        if service not in SERVICES:
            raise DirectoryError(f"unknown protocol {service!r}: expected one of {', '.join(SERVICES)}")

    def set_switch(self, service: str, enabled: bool) -> None:
        self._check_service(service)
        self.db.execute(
            "INSERT OR REPLACE INTO switches (service, enabled) VALUES (?, ?)", (service, int(enabled))
        )

    # --- policies (see letterbox.policy) ------------------------------------------------
    def policies(self) -> dict[str, str]:
        """Policy overrides, as JSON texts by key."""
        return dict(self.db.execute("SELECT key, value FROM policies").fetchall())

    def set_policy(self, key: str, value: str | None) -> None:
        """Store an override (JSON text), or drop it (None) so the config decides."""
        if value is None:
            self.db.execute("DELETE FROM policies WHERE key = ?", (key,))
        else:
            self.db.execute("INSERT OR REPLACE INTO policies (key, value) VALUES (?, ?)", (key, value))

    # --- what the server notes about accounts ---------------------------------------------
    # The server writes these from its event loop: they never wait for another process's
    # write lock (sqlite3.OperationalError instead), and the server tries again later.
    def record_usage(self, rows: Iterable[tuple[str, int, int] | tuple[str, int, int, int, int]]) -> None:
        """(address, messages, bytes[, counted messages, counted bytes]) of accounts whose
        usage the server measured; "counted" is what the quota counts (Trash left out
        under the trash_counts policy), the whole usage when not given."""
        now = time.time()
        with self._transaction(wait=False):
            self.db.executemany(
                "INSERT OR REPLACE INTO usage (address, messages, bytes, counted_messages, counted_bytes, updated)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(r[0], r[1], r[2], r[-2] if len(r) == 5 else r[1], r[-1] if len(r) == 5 else r[2], now)
                 for r in rows],
            )

    def record_logins(self, rows: Iterable[tuple[str, str, float, str]]) -> None:
        """(address, protocol, time, client address) of the latest successful logins."""
        with self._transaction(wait=False):
            self.db.executemany(
                "INSERT OR REPLACE INTO last_login (address, protocol, at, ip) VALUES (?, ?, ?, ?)", rows
            )

    async def arecord_logins(self, rows: Iterable[tuple[str, str, float, str]]) -> None:
        """The same from the event loop (a local file: at once, and never waiting)."""
        self.record_logins(rows)

    def last_logins(self, address: str) -> dict[str, tuple[float, str]]:
        return {
            protocol: (at, ip)
            for protocol, at, ip in self.db.execute(
                "SELECT protocol, at, ip FROM last_login WHERE address = ?", (address,)
            )
        }

    def warned_level(self, address: str) -> int:
        row = self.db.execute("SELECT level FROM quota_warned WHERE address = ?", (address,)).fetchone()
        return int(row[0]) if row else 0

    def set_warned_level(self, address: str, level: int) -> None:
        """Never waits for another writer (see record_usage)."""
        self.db.execute("PRAGMA busy_timeout = 0")
        try:
            self._set_warned_level(address, level)
        finally:
            self.db.execute("PRAGMA busy_timeout = 30000")

    def _set_warned_level(self, address: str, level: int) -> None:
        if level:
            self.db.execute("INSERT OR REPLACE INTO quota_warned (address, level) VALUES (?, ?)", (address, level))
        else:
            self.db.execute("DELETE FROM quota_warned WHERE address = ?", (address,))

    @contextlib.contextmanager
    def _transaction(self, wait: bool = True) -> Iterator[None]:
        if not wait:
            self.db.execute("PRAGMA busy_timeout = 0")
        try:
            self.db.execute("BEGIN IMMEDIATE")
        finally:
            if not wait:
                self.db.execute("PRAGMA busy_timeout = 30000")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")


def _disabled_text(message: str) -> str:
    """One line of printable ASCII: it goes into IMAP and POP3 replies as it is."""
    return "".join(c if " " <= c <= "~" else "?" for c in " ".join(message.split()))[:200]


def _check_protocols(protocols: Iterable[str]) -> list[str]:
    out = []
    for p in protocols:
        p = p.strip().lower()
        if not p:
            continue
        if p not in PROTOCOLS:
            raise DirectoryError(f"unknown protocol {p!r}: expected imap, pop3 or both")
        if p not in out:
            out.append(p)
    return out
