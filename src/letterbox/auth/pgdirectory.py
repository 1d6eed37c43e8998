"""The accounts directory on PostgreSQL: one directory for every front end of a database.

With `[store] backend = "postgresql"` the directory lives beside the mail (migration
0002): accounts with their hashes, SCRAM secrets, switches, quotas and incarnations,
the server-wide switches, policies, keys (the SCRAM decoy key), console administrators
and their API tokens, and the audit log, so that an account added, disabled or given a
new password through any front end is the same on every one. The notes servers keep
about accounts (usage, last logins, quota warnings) are shared too, so every console
shows them. Nothing of the directory stays in a front end's data_dir: a local
accounts.sqlite is only read once, to adopt its accounts into an empty shared directory
(see auth.factory).

The API is `Directory`'s. Lookups are cached (misses too) and the cache is dropped
whenever the database says the directory changed: every write bumps a version in its
own transaction and NOTIFYs it (triggers of migration 0002); a LISTEN connection
(auth.pgconn) hears it and the server's next poll (`changed`) applies it: switches,
policies, and the sessions of disabled accounts. Cached lookups keep working while the
database is away; anything else raises `DirectoryUnavailable` (a temporary failure).
"""

from __future__ import annotations

import builtins
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import asyncpg

from ..store.api import Quota
from .admins import TOKEN_PREFIX, AdminError, Admins, Token, _digest, check_name
from .audit import MAX_ROWS, AuditLog, Entry
from .directory import (
    _CACHE_MAX,
    Account,
    Directory,
    DirectoryError,
    DirectoryUnavailable,
    PendingDeletion,
    _check_protocols,
    _disabled_text,
    _new_incarnation,
    check_same_account,
    normalize_address,
)
from .listing import MAX_PAGE, Page, Row
from .passwords import Secrets, hash_password
from .pgconn import PgConnections

T = TypeVar("T")
log = logging.getLogger("letterbox.auth")

CHANNEL = "letterbox_directory."
"""Followed by the schema's name (see migration 0002)."""

_COLS = ("address, password, enabled, protocols, quota_bytes, quota_messages, created, incarnation,"
         " scram_sha256, disabled_message")


def _account(r: Any) -> Account:
    return Account(
        r[0], r[1], bool(r[2]), frozenset(r[3].split()), Quota(int(r[4]), int(r[5])), float(r[6]), r[7], r[8], r[9],
    )


class PgDirectory(Directory):
    """`Directory` on a PostgreSQL database (its schema *schema*, else the search path)."""

    shared = True

    def __init__(self, dsn: str, schema: str | None = None, listen: bool = True) -> None:
        self.path = None  # type: ignore[assignment]
        self.db = None  # type: ignore[assignment]
        self._lock = threading.Lock()
        self._generation = 0
        self._changed = False
        self._accounts: dict[str, Account | None] = {}
        self._domains: frozenset[str] | None = None
        self._pending: builtins.list[PendingDeletion] | None = None
        self._decoy: bytes | None = None
        self._last_switches: dict[str, bool] = {}
        self._last_policies: dict[str, str] = {}
        # Nothing is asked of the database here: a front end starts while it is away,
        # and answers with temporary failures until it is back.
        self.pg = PgConnections(dsn, schema, self._notice, self._notice)
        self.admins = PgAdmins(self.pg)
        self.audit = PgAudit(self.pg)
        if listen:
            self.pg.listen(CHANNEL)

    @property
    def decoy_key(self) -> bytes:
        if self._decoy is None:
            self._decoy = self.pg.call(self._decoy_row)
        return self._decoy

    @staticmethod
    async def _decoy_row(conn: Any) -> bytes:
        await conn.execute(
            "INSERT INTO directory_keys (name, value) VALUES ('scram-decoy', $1) ON CONFLICT DO NOTHING",
            secrets.token_bytes(32),
        )
        return bytes(await conn.fetchval("SELECT value FROM directory_keys WHERE name = 'scram-decoy'"))

    def close(self) -> None:
        self.pg.close()

    def reader(self) -> Any:
        return self  # account_page and totals below; queries wait in the caller's thread

    # --- change notices ----------------------------------------------------------------------
    def _notice(self) -> None:
        """The database says the directory changed (or notices may have been missed)."""
        with self._lock:
            self._generation += 1
            self._changed = True
            self._forget()

    def _forget(self) -> None:
        self._accounts.clear()
        self._domains = None
        self._pending = None

    def _wrote(self) -> None:
        """This process wrote: its own cache goes at once, not at the notice."""
        with self._lock:
            self._generation += 1
            self._forget()

    def data_version(self) -> int:
        return int(self.pg.call(lambda c: c.fetchval("SELECT version FROM directory_version")))

    def changed(self) -> bool:
        with self._lock:
            changed, self._changed = self._changed, False
        return changed

    def _remember(self, generation: int, key: str, account: Account | None) -> None:
        with self._lock:
            if generation != self._generation:
                return  # a change came in while the query ran: the answer may be old
            if len(self._accounts) >= _CACHE_MAX:
                self._accounts.clear()
            self._accounts[key] = account

    def _write(self, body: Callable[[Any], Awaitable[T]]) -> T:
        try:
            return self.pg.call(body)
        finally:
            self._wrote()

    # --- accounts ----------------------------------------------------------------------------
    def get(self, address: str) -> Account | None:
        key = address.strip().lower()
        with self._lock:
            if key in self._accounts:
                return self._accounts[key]
            generation = self._generation
        row = self.pg.call(lambda c: c.fetchrow(
            f"SELECT {_COLS} FROM directory_accounts WHERE address = $1 AND deleting = 0", key))
        account = _account(row) if row else None
        self._remember(generation, key, account)
        return account

    async def aget(self, address: str) -> Account | None:
        key = address.strip().lower()
        with self._lock:
            if key in self._accounts:
                return self._accounts[key]
            generation = self._generation
        row = await self.pg.acall(lambda c: c.fetchrow(
            f"SELECT {_COLS} FROM directory_accounts WHERE address = $1 AND deleting = 0", key))
        account = _account(row) if row else None
        self._remember(generation, key, account)
        return account

    async def prefetch(self, addresses: Iterable[str]) -> None:
        with self._lock:
            keys = sorted({a.strip().lower() for a in addresses} - self._accounts.keys())
            generation = self._generation
        if not keys:
            return
        rows = await self.pg.acall(lambda c: c.fetch(
            f"SELECT {_COLS} FROM directory_accounts WHERE address = ANY($1::text[]) AND deleting = 0", keys))
        found = {r[0]: _account(r) for r in rows}
        for key in keys:
            self._remember(generation, key, found.get(key))

    def list(self) -> builtins.list[Account]:
        rows = self.pg.call(lambda c: c.fetch(
            f"SELECT {_COLS} FROM directory_accounts WHERE deleting = 0 ORDER BY address"), wait=10)
        return [_account(r) for r in rows]

    def add(self, address: str, password: Secrets | str, protocols: Iterable[str] = ("imap", "pop3"),
            quota: Quota = Quota()) -> Account:
        addr = normalize_address(address)
        secrets_ = password if isinstance(password, Secrets) else Secrets(password)
        protos = _check_protocols(protocols)
        return self._insert(Account(addr, secrets_.password_hash, True, frozenset(protos), quota, time.time(),
                                    _new_incarnation(), secrets_.scram), protos)

    def _insert(self, account: Account, protos: builtins.list[str]) -> Account:
        addr = normalize_address(account.address)

        async def body(c: Any) -> None:
            if await c.fetchval("SELECT 1 FROM directory_accounts WHERE address = $1 AND deleting <> 0", addr):
                raise DirectoryError(f"account {addr!r} is still being deleted; try again in a moment")
            try:
                await c.execute(
                    f"INSERT INTO directory_accounts ({_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    addr, account.password_hash, account.enabled, " ".join(protos), account.quota.bytes,
                    account.quota.messages, account.created, account.incarnation or _new_incarnation(),
                    account.scram, account.disabled_message,
                )
            except asyncpg.UniqueViolationError:
                raise DirectoryError(f"account {addr!r} already exists") from None

        self._write(body)
        return self.require(addr)

    def adopt(self, account: Account) -> Account:
        """As Directory.adopt: the account with every field as given; one here with the
        same incarnation is left as it is, one with another is a DirectoryError."""
        addr = normalize_address(account.address)
        row = self.pg.call(lambda c: c.fetchrow(
            "SELECT incarnation, deleting FROM directory_accounts WHERE address = $1", addr))
        if row is not None:
            if row[1]:
                raise DirectoryError(f"account {addr!r} is being deleted at the destination; try again in a moment")
            check_same_account(addr, row[0], account.incarnation)
            return self.require(addr)
        try:
            return self._insert(account, _check_protocols(sorted(account.protocols)))
        except DirectoryError:
            if self.get(addr) is None:
                raise
            return self.adopt(account)  # added meanwhile by another process

    def adopt_all(self, accounts: builtins.list[Account], extra: dict[str, builtins.list[tuple[Any, ...]]]) -> int:
        """Adopt *accounts* (and the rows of *extra*: admins, api_tokens, switches,
        policies) if this directory has no account yet; the number adopted. One
        transaction, under a lock: front ends starting together adopt once."""

        async def body(c: Any) -> int:
            async with c.transaction():
                await c.execute("SELECT pg_advisory_xact_lock(hashtext('letterbox directory adoption'))")
                if await c.fetchval("SELECT 1 FROM directory_accounts LIMIT 1"):
                    return 0
                await c.executemany(
                    f"INSERT INTO directory_accounts ({_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                    " ON CONFLICT DO NOTHING",
                    [(a.address, a.password_hash, a.enabled, " ".join(sorted(a.protocols)), a.quota.bytes,
                      a.quota.messages, a.created, a.incarnation, a.scram, a.disabled_message) for a in accounts])
                inserts = {
                    "admins": "directory_admins (name, password, created) VALUES ($1, $2, $3)",
                    "api_tokens": "directory_api_tokens (digest, admin, label, created, last_used)"
                                  " VALUES ($1, $2, $3, $4, $5)",
                    "switches": "directory_switches (service, enabled) VALUES ($1, $2)",
                    "policies": "directory_policies (key, value) VALUES ($1, $2)",
                }
                for name, into in inserts.items():
                    if extra.get(name):
                        await c.executemany(f"INSERT INTO {into} ON CONFLICT DO NOTHING", extra[name])
                return len(accounts)

        return int(self._write(body))

    def mark_deleted(self, address: str, keep_mail: bool = False) -> Account:
        acc = self.require(address)
        self._write(lambda c: c.execute(
            "UPDATE directory_accounts SET deleting = $1 WHERE address = $2", 2 if keep_mail else 1, acc.address))
        return acc

    def pending_deletions(self) -> builtins.list[PendingDeletion]:
        # Asked at every poll of the server: cached until the next change.
        with self._lock:
            if self._pending is not None:
                return builtins.list(self._pending)
            generation = self._generation
        try:
            rows = self.pg.call(lambda c: c.fetch(
                "SELECT address, incarnation, deleting FROM directory_accounts WHERE deleting <> 0"))
        except DirectoryUnavailable:
            return []  # they wait: finished once the database is back (its return is a change)
        found = [PendingDeletion(a, i, d == 2) for a, i, d in rows]
        with self._lock:
            if generation == self._generation:
                self._pending = found
        return found

    def finish_delete(self, address: str, incarnation: str) -> None:
        async def body(c: Any) -> None:
            async with c.transaction():
                done = await c.fetchval(
                    "DELETE FROM directory_accounts WHERE address = $1 AND incarnation = $2 AND deleting <> 0"
                    " RETURNING 1", address, incarnation)
                if done:
                    for table in ("directory_usage", "directory_last_login", "directory_quota_warned"):
                        await c.execute(f"DELETE FROM {table} WHERE address = $1", address)

        self._write(body)

    def is_deleting(self, address: str) -> bool:
        key = address.strip().lower()
        return bool(self.pg.call(lambda c: c.fetchval(
            "SELECT 1 FROM directory_accounts WHERE address = $1 AND deleting <> 0", key)))

    def _set(self, address: str, sets: str, *values: object) -> Account:
        addr = self.require(address).address
        self._write(lambda c: c.execute(f"UPDATE directory_accounts SET {sets} WHERE address = $1", addr, *values))
        return self.require(addr)

    def set_password(self, address: str, password: Secrets | str) -> Account:
        secrets_ = password if isinstance(password, Secrets) else Secrets(password)
        return self._set(address, "password = $2, scram_sha256 = $3", secrets_.password_hash, secrets_.scram)

    def add_scram(self, address: str, password_hash: str, scram: str) -> bool:
        try:
            done = self._write(lambda c: c.fetchval(
                "UPDATE directory_accounts SET scram_sha256 = $1 WHERE address = $2 AND password = $3"
                " AND scram_sha256 = '' AND deleting = 0 RETURNING 1", scram, address, password_hash))
        except DirectoryUnavailable:
            return False  # tried again at a later login
        return bool(done)

    def set_enabled(self, address: str, enabled: bool, message: str = "") -> Account:
        return self._set(address, "enabled = $2, disabled_message = $3", enabled,
                         "" if enabled else _disabled_text(message))

    def set_protocols(self, address: str, protocols: Iterable[str]) -> Account:
        return self._set(address, "protocols = $2", " ".join(_check_protocols(protocols)))

    def set_quota(self, address: str, quota: Quota) -> Account:
        return self._set(address, "quota_bytes = $2, quota_messages = $3", quota.bytes, quota.messages)

    def local_domains(self) -> frozenset[str]:
        with self._lock:
            if self._domains is not None:
                return self._domains
            generation = self._generation
        rows = self.pg.call(lambda c: c.fetch(
            "SELECT DISTINCT split_part(address, '@', 2) FROM directory_accounts WHERE deleting = 0"), wait=5)
        domains = frozenset(r[0] for r in rows)
        with self._lock:
            if generation == self._generation:
                self._domains = domains
        return domains

    # --- server-wide switches and policies -----------------------------------------------------
    def switches(self) -> dict[str, bool]:
        """As last read while the database is away (none at a start without it: the
        config decides until it is back, when the reconnection counts as a change)."""
        try:
            rows = self.pg.call(lambda c: c.fetch("SELECT service, enabled FROM directory_switches"))
        except DirectoryUnavailable as e:
            log.warning("protocol switches as last known: %s", e)
            return dict(self._last_switches)
        self._last_switches = {s: bool(e) for s, e in rows}
        return dict(self._last_switches)

    def set_switch(self, service: str, enabled: bool) -> None:
        self._check_service(service)
        self._write(lambda c: c.execute(
            "INSERT INTO directory_switches (service, enabled) VALUES ($1, $2)"
            " ON CONFLICT (service) DO UPDATE SET enabled = excluded.enabled", service, enabled))

    def policies(self) -> dict[str, str]:
        """As last read while the database is away (see switches)."""
        try:
            rows = self.pg.call(lambda c: c.fetch("SELECT key, value FROM directory_policies"))
        except DirectoryUnavailable as e:
            log.warning("policies as last known: %s", e)
            return dict(self._last_policies)
        self._last_policies = {k: v for k, v in rows}
        return dict(self._last_policies)

    def set_policy(self, key: str, value: str | None) -> None:
        if value is None:
            self._write(lambda c: c.execute("DELETE FROM directory_policies WHERE key = $1", key))
        else:
            self._write(lambda c: c.execute(
                "INSERT INTO directory_policies (key, value) VALUES ($1, $2)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, value))

    # --- what the servers note about accounts ---------------------------------------------------
    def record_usage(self, rows: Iterable[tuple[str, int, int] | tuple[str, int, int, int, int]]) -> None:
        now = time.time()
        values = [(r[0], r[1], r[2], r[-2] if len(r) == 5 else r[1], r[-1] if len(r) == 5 else r[2], now)
                  for r in rows]
        self.pg.call(lambda c: c.executemany(
            "INSERT INTO directory_usage (address, messages, bytes, counted_messages, counted_bytes, updated)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (address) DO UPDATE SET messages = excluded.messages,"
            " bytes = excluded.bytes, counted_messages = excluded.counted_messages,"
            " counted_bytes = excluded.counted_bytes, updated = excluded.updated", values))

    _RECORD_LOGINS = (
        "INSERT INTO directory_last_login (address, protocol, at, ip) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (address, protocol) DO UPDATE SET at = excluded.at, ip = excluded.ip"
    )

    def record_logins(self, rows: Iterable[tuple[str, str, float, str]]) -> None:
        values = builtins.list(rows)
        self.pg.call(lambda c: c.executemany(self._RECORD_LOGINS, values))

    async def arecord_logins(self, rows: Iterable[tuple[str, str, float, str]]) -> None:
        # The loop goes on serving while the database answers (or does not).
        values = builtins.list(rows)
        await self.pg.acall(lambda c: c.executemany(self._RECORD_LOGINS, values))

    def last_logins(self, address: str) -> dict[str, tuple[float, str]]:
        rows = self.pg.call(lambda c: c.fetch(
            "SELECT protocol, at, ip FROM directory_last_login WHERE address = $1", address))
        return {p: (at, ip) for p, at, ip in rows}

    def warned_level(self, address: str) -> int:
        return int(self.pg.call(lambda c: c.fetchval(
            "SELECT level FROM directory_quota_warned WHERE address = $1", address)) or 0)

    def set_warned_level(self, address: str, level: int) -> None:
        if level:
            self.pg.call(lambda c: c.execute(
                "INSERT INTO directory_quota_warned (address, level) VALUES ($1, $2)"
                " ON CONFLICT (address) DO UPDATE SET level = excluded.level", address, level))
        else:
            self.pg.call(lambda c: c.execute("DELETE FROM directory_quota_warned WHERE address = $1", address))

    # --- the console's listings (auth.listing calls these) -----------------------------------------
    def account_page(self, search: str, sort: str, descending: bool, over_percent: float | None, offset: int,
                     limit: int) -> Page:
        percent = (
            "(CASE WHEN a.quota_bytes > 0 AND a.quota_messages > 0 THEN greatest("
            "100.0 * coalesce(u.counted_bytes, 0) / a.quota_bytes,"
            " 100.0 * coalesce(u.counted_messages, 0) / a.quota_messages)"
            " WHEN a.quota_bytes > 0 THEN 100.0 * coalesce(u.counted_bytes, 0) / a.quota_bytes"
            " WHEN a.quota_messages > 0 THEN 100.0 * coalesce(u.counted_messages, 0) / a.quota_messages END)"
        )
        order = {"address": "a.address", "bytes": "coalesce(u.bytes, 0)", "messages": "coalesce(u.messages, 0)",
                 "percent": f"coalesce({percent}, -1)", "created": "a.created"}[sort]
        where = ["a.deleting = 0"]
        args: builtins.list[object] = []
        if search:
            args.append("%" + search.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                        + "%")
            where.append(f"a.address LIKE ${len(args)}")
        if over_percent is not None:
            args.append(float(over_percent))
            where.append(f"{percent} >= ${len(args)}")
        base = (f"FROM directory_accounts a LEFT JOIN directory_usage u ON u.address = a.address"
                f" WHERE {' AND '.join(where)}")
        n = len(args)

        async def body(c: Any) -> tuple[int, builtins.list[Any]]:
            total = await c.fetchval(f"SELECT count(*) {base}", *args)
            rows = await c.fetch(
                "SELECT a.address, a.enabled, a.protocols, a.quota_bytes, a.quota_messages,"
                f" coalesce(u.messages, 0), coalesce(u.bytes, 0), {percent}::float8, u.address IS NOT NULL"
                f" {base} ORDER BY {order} {'DESC' if descending else 'ASC'}, a.address"
                f" LIMIT ${n + 1} OFFSET ${n + 2}",
                *args, max(1, min(limit, MAX_PAGE)), max(0, offset))
            return int(total), rows

        total, rows = self.pg.call(body, wait=10)
        return Page(
            [Row(r[0], bool(r[1]), tuple(p for p in ("imap", "pop3") if p in r[2].split()), int(r[3]), int(r[4]),
                 int(r[5]), int(r[6]), None if r[7] is None else round(r[7], 1), bool(r[8])) for r in rows],
            total,
        )

    def totals(self) -> tuple[int, int, int]:
        n, m, b = self.pg.call(lambda c: c.fetchrow(
            "SELECT count(*), coalesce(sum(u.messages), 0), coalesce(sum(u.bytes), 0)"
            " FROM directory_accounts a LEFT JOIN directory_usage u ON u.address = a.address"
            " WHERE a.deleting = 0"), wait=10)
        return int(n), int(m), int(b)


class PgAdmins(Admins):
    """`Admins` in the shared directory."""

    def __init__(self, pg: PgConnections) -> None:
        self.pg = pg

    def names(self) -> builtins.list[str]:
        return [r[0] for r in self.pg.call(lambda c: c.fetch("SELECT name FROM directory_admins ORDER BY name"))]

    def exists(self, name: str) -> bool:
        key = name.strip().lower()
        return bool(self.pg.call(lambda c: c.fetchval("SELECT 1 FROM directory_admins WHERE name = $1", key)))

    def add(self, name: str, password: str) -> str:
        name = check_name(name)
        hashed = hash_password(password)

        async def body(c: Any) -> None:
            try:
                await c.execute("INSERT INTO directory_admins (name, password, created) VALUES ($1, $2, $3)",
                                name, hashed, time.time())
            except asyncpg.UniqueViolationError:
                raise AdminError(f"administrator {name!r} already exists") from None

        self.pg.call(body)
        return name

    def set_password(self, name: str, password: str) -> None:
        hashed, key = hash_password(password), name.strip().lower()
        if not self.pg.call(lambda c: c.fetchval(
                "UPDATE directory_admins SET password = $1 WHERE name = $2 RETURNING 1", hashed, key)):
            raise AdminError(f"no administrator {name!r}")

    def remove(self, name: str) -> None:
        key = name.strip().lower()

        async def body(c: Any) -> Any:
            async with c.transaction():
                await c.execute("DELETE FROM directory_api_tokens WHERE admin = $1", key)
                return await c.fetchval("DELETE FROM directory_admins WHERE name = $1 RETURNING 1", key)

        if not self.pg.call(body):
            raise AdminError(f"no administrator {name!r}")

    def stored_hash(self, name: str) -> str | None:
        key = name.strip().lower()
        found = self.pg.call(lambda c: c.fetchval("SELECT password FROM directory_admins WHERE name = $1", key))
        return str(found) if found is not None else None

    def new_token(self, admin: str, label: str = "") -> str:
        admin = admin.strip().lower()
        if not self.exists(admin):
            raise AdminError(f"no administrator {admin!r}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.pg.call(lambda c: c.execute(
            "INSERT INTO directory_api_tokens (digest, admin, label, created) VALUES ($1, $2, $3, $4)",
            _digest(token), admin, label[:100], time.time()))
        return token

    def token_admin(self, token: str) -> str | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        found = self.pg.call(lambda c: c.fetchval(
            "SELECT admin FROM directory_api_tokens WHERE digest = $1", _digest(token)))
        return str(found) if found is not None else None

    def tokens(self) -> builtins.list[Token]:
        rows = self.pg.call(lambda c: c.fetch(
            "SELECT digest, admin, label, created, last_used FROM directory_api_tokens ORDER BY created"))
        return [Token(admin, label, created, last_used, digest) for digest, admin, label, created, last_used in rows]

    def revoke(self, digest_prefix: str) -> int:
        if len(digest_prefix) < 8 or not all(c in "0123456789abcdef" for c in digest_prefix):
            raise AdminError("give at least the first 8 hex digits of the token's id")
        rows = self.pg.call(lambda c: c.fetch(
            "DELETE FROM directory_api_tokens WHERE starts_with(digest, $1) RETURNING 1", digest_prefix))
        return len(rows)


class PgAudit(AuditLog):
    """`AuditLog` in the shared directory: one log of every front end's changes."""

    def __init__(self, pg: PgConnections) -> None:
        self.pg = pg

    def write(self, who: str, client: str, what: str) -> None:
        async def body(c: Any) -> None:
            row_id = await c.fetchval(
                "INSERT INTO directory_audit (at, who, client, what) VALUES ($1, $2, $3, $4) RETURNING id",
                time.time(), who[:100], client[:100], what[:1000])
            if row_id % 1000 == 0:
                await c.execute("DELETE FROM directory_audit WHERE id <= $1", row_id - MAX_ROWS)

        self.pg.call(body)

    def recent(self, limit: int = 100, offset: int = 0, about: str | None = None) -> builtins.list[Entry]:
        if about:
            rows = self.pg.call(lambda c: c.fetch(
                "SELECT id, at, who, client, what FROM directory_audit WHERE strpos(what, $1) > 0"
                " ORDER BY id DESC LIMIT $2 OFFSET $3", about, limit, offset))
        else:
            rows = self.pg.call(lambda c: c.fetch(
                "SELECT id, at, who, client, what FROM directory_audit ORDER BY id DESC LIMIT $1 OFFSET $2",
                limit, offset))
        return [Entry(*r) for r in rows]
