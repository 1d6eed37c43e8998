"""All accounts' mail in one PostgreSQL database, shared by any number of front ends.

An account is a row of `accounts` (its address, and the directory's incarnation of it);
mail of an earlier incarnation is set aside (the row stops being live) and never shown
to the new account. Opening makes the default mailboxes. Each front end keeps a pool,
one LISTEN connection for the change feed (notify.py) and a connection per held POP3
lock (pop3lock.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

import asyncpg

from ...mime import ParsedMessage
from ..api import DEFAULT_MAILBOXES, LEGACY, Change, Limits, Store, StoreError, Usage
from ..feed import ChangeFeed, LocalFeed, Subscription
from ..rules import quotas
from . import blobs, notify, schema
from .account import PgAccount
from .db import Database, next_uidvalidity, translate
from .flagtable import FlagTables
from .pop3lock import Pop3Locks

log = logging.getLogger("letterbox.store")

CHANNEL = "letterbox"
MAX_HANDLES = 10_000
"""Account handles cached (the most recently opened); a handle is a few ids, no connection."""
POOL_SIZE = max(4, 2 * (os.cpu_count() or 1))
"""Connections per front end: PostgreSQL's work is CPU, so more backends than about two
per core only add switching (measured: 4 rather than 10 on two cores cut the CPU per
delivery by a sixth); each is held for a statement or a short transaction."""
STATEMENT_CACHE = 512
_UNBOUNDED = 7 * 86400.0
"""A statement's timeout where the work has no bound (asyncpg has no "none" per call)."""
"""Prepared statements kept per pooled connection: every statement the store sends (FETCH
builds one per set of items) stays prepared, where asyncpg's 100 could make a busy
connection prepare the same ones again and again."""
_OPEN_LOCK = 0x6C62_6F70  # "lbop": one opening of an address at a time, across front ends


async def _keep_session(_conn: Any) -> None:
    """What a pooled connection needs between uses: asyncpg ends an open transaction by
    itself, and the store leaves no session state on pool connections (advisory locks are
    per transaction, LISTEN and the POP3 locks have connections of their own). Its default
    reset (RESET ALL, UNLISTEN, CLOSE ALL, unlocking) would cost a round trip per use."""


def check_address(address: str) -> None:
    local, _, domain = address.rpartition("@")
    if (not local or not domain or "/" in address or "\x00" in address or any(c.isspace() for c in address)
            or local.startswith(".") or domain.startswith(".") or len(address) > 320):
        raise StoreError(f"invalid account address {address!r}")


class PostgresStore(Store):
    """Open with `await PostgresStore.open(dsn)`; *schema* keeps the tables apart from
    others in the same database (the tests give each test its own)."""

    def __init__(self, dsn: str, *, schema: str | None = None, feed: ChangeFeed | None = None,
                 limits: Limits | None = None, pool_size: int | None = None,
                 statement_timeout: float = 60.0) -> None:
        self.dsn = dsn
        self.schema = schema
        self.feed: ChangeFeed = feed or LocalFeed()
        self.limits = limits or Limits()
        self.pool_size = pool_size or POOL_SIZE
        self.statement_timeout = statement_timeout
        """Seconds one statement of the pool may take ([store] statement_timeout)."""
        self.channel = CHANNEL if schema is None else f"{CHANNEL}_{schema}"
        self.sender = notify.new_sender()
        self.flag_tables = FlagTables()
        self.pop3 = Pop3Locks(self._connect)
        self.streams = asyncio.Semaphore(max(1, self.pool_size // 2))
        """Long message streams (read_chunks) open at once: each holds a connection."""
        self._accounts: dict[str, PgAccount] = {}
        self._unowned: set[int] = set()
        self._prepared: dict[int, tuple[bytes, blobs.Prepared]] = {}
        """Accounts this store made without an incarnation: the first to name one claims them."""
        self._pool: Any = None
        self._listener: notify.Listener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self.db = Database(None, self.channel, self.sender, self.feed)

    @classmethod
    async def open(cls, dsn: str, **kwargs: Any) -> PostgresStore:
        store = cls(dsn, **kwargs)
        await store.start()
        return store

    def _settings(self) -> dict[str, str]:
        # Every statement is prepared once per connection (asyncpg's cache) and keyed by
        # a mailbox or account id: the generic plan fits all, and is not planned again
        # for each of the first executions on every pooled connection.
        settings = {"application_name": "letterbox", "plan_cache_mode": "force_generic_plan"}
        if self.schema is not None:
            settings["search_path"] = f'"{self.schema}"'
        return settings

    async def _connect(self) -> Any:
        try:
            return await asyncpg.connect(self.dsn, server_settings=self._settings(), timeout=10)
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError) as e:
            raise translate(e) from e

    async def start(self) -> None:
        """Migrate the schema, make the pool and start listening for other front ends.
        Called by the first use when not before (a store is made where no event loop
        runs, by the server's set-up); again from another event loop, it starts anew
        there (a pool belongs to one loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        async with self._starting_lock():
            if self._loop is loop:
                return
            self._let_go()
            try:
                conn = await asyncpg.connect(self.dsn, timeout=10, server_settings={"application_name": "letterbox"})
                try:
                    await schema.migrate(conn, self.schema)
                finally:
                    await conn.close()
                # No floor of idle connections: asyncpg keeps one by reconnecting in the
                # background, and while PostgreSQL is away logs a traceback for each try;
                # each use connects anew by itself.
                self._pool = await asyncpg.create_pool(
                    self.dsn, min_size=0, max_size=self.pool_size, server_settings=self._settings(),
                    max_inactive_connection_lifetime=300, reset=_keep_session,
                    statement_cache_size=STATEMENT_CACHE, command_timeout=self.statement_timeout,
                )
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError) as e:
                raise translate(e) from e
            self.db.pool = self._pool
            self.streams = asyncio.Semaphore(max(1, self.pool_size // 2))
            self._listener = notify.Listener(self._connect, self.channel, self.sender, self.feed, self._look_again)
            await self._listener.start()
            self._loop = loop

    def _let_go(self) -> None:
        """Drop the pool and listener of an event loop that is gone (or going): nothing
        can be awaited there, the sockets are closed as they can be."""
        with contextlib.suppress(Exception):
            if self._pool is not None:
                self._pool.terminate()
        if self._listener is not None:
            self._listener.abandon()
        self._pool = None
        self._listener = None

    def _starting_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._start_lock is None or self._start_lock[0] is not loop:
            self._start_lock = (loop, asyncio.Lock())
        return self._start_lock[1]

    async def prepared(self, data: bytes, parsed: ParsedMessage) -> blobs.Prepared:
        """The message hashed and compressed, once for all the recipients of a delivery
        (they get the same bytes object: kept here while in use, its id is its key)."""
        key = id(data)
        hit = self._prepared.get(key)
        if hit is not None and hit[0] is data:
            return hit[1]
        blob = await blobs.prepare(data, parsed)
        self._prepared[key] = (data, blob)
        while len(self._prepared) > 8:
            self._prepared.pop(next(iter(self._prepared)))
        return blob

    async def _look_again(self) -> None:
        for address in list(self._accounts):
            await self.notify_external(address)

    # --- accounts ------------------------------------------------------------------------
    async def account(self, address: str, incarnation: str | None = None) -> PgAccount:
        check_address(address)
        await self.start()
        acc = self._accounts.get(address)
        if acc is not None and not acc.closed and (incarnation is None or acc.incarnation == incarnation):
            # Another front end may have deleted or replaced the account since.
            if await self.db.fetchval("SELECT 1 FROM accounts WHERE id = $1 AND live", acc.account_id):
                return acc
            acc.close()
        account_id, owner = await self.db.run(lambda tx: self._open_row(tx, address, incarnation))
        if acc is not None and acc.account_id != account_id:
            acc.close()
        if acc is None or acc.account_id != account_id or acc.closed:
            acc = PgAccount(self, address, account_id, owner)
            await acc.remember_modseqs()
        acc.incarnation = owner
        self._accounts.pop(address, None)
        self._accounts[address] = acc
        while len(self._accounts) > MAX_HANDLES:
            # Only the cache forgets it: a handle in use keeps working.
            self._accounts.pop(next(iter(self._accounts)))
        return acc

    async def _open_row(self, tx: Any, address: str, incarnation: str | None) -> tuple[int, str | None]:
        conn = tx.conn
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _OPEN_LOCK, address)
        row = await conn.fetchrow("SELECT id, incarnation FROM accounts WHERE address = $1 AND live", address)
        if row is not None:
            account_id, owner = int(row[0]), row[1]
            if incarnation is None or owner == incarnation:
                return account_id, owner
            if owner is None and (incarnation.startswith(LEGACY) or account_id in self._unowned):
                await conn.execute("UPDATE accounts SET incarnation = $2 WHERE id = $1", account_id, incarnation)
                return account_id, incarnation
            # An earlier account's mail: set aside, never shown to this one.
            await conn.execute("UPDATE accounts SET live = false WHERE id = $1", account_id)
            log.warning("%s: the mail belonged to an earlier account of this address; set aside, "
                        "the account starts empty", address)
        account_id = int(await conn.fetchval(
            "INSERT INTO accounts (address, incarnation) VALUES ($1, $2) RETURNING id", address, incarnation
        ))
        if incarnation is None:
            self._unowned.add(account_id)
        await self._make_defaults(conn, account_id)
        return account_id, incarnation

    async def _make_defaults(self, conn: Any, account_id: int) -> None:
        for name, use in (("INBOX", None), *DEFAULT_MAILBOXES):
            await conn.execute(
                "INSERT INTO mailboxes (account_id, name, uidvalidity, special_use)"
                " VALUES ($1, $2, $3, $4)", account_id, name, await next_uidvalidity(conn), use,
            )
            await conn.execute("INSERT INTO subscriptions (account_id, name) VALUES ($1, $2)", account_id, name)

    async def delete_account(self, address: str, keep_mail: bool = False) -> None:
        await self.start()
        acc = self._accounts.pop(address, None)
        if acc is not None:
            acc.close()

        async def body(tx: Any) -> None:
            conn = tx.conn
            # The address leaves every other account's ACLs, with its own \Seen marks and
            # metadata there: an address added again later must not find them.
            await conn.execute("DELETE FROM acl WHERE identifier = $1", address)
            await conn.execute('DELETE FROM private_seen WHERE "user" = $1', address)
            await conn.execute('DELETE FROM private_metadata WHERE "user" = $1', address)
            if keep_mail:
                await conn.execute("UPDATE accounts SET live = false WHERE address = $1 AND live", address)
            else:
                # Every message of the account goes with it: as long as that takes.
                await conn.execute("DELETE FROM accounts WHERE address = $1 AND live", address, timeout=_UNBOUNDED)

        await self.db.run(body)

    async def grantors(self, address: str) -> list[str]:
        await self.start()
        rows = await self.db.fetch(
            "SELECT DISTINCT a.address FROM acl JOIN mailboxes m ON m.id = acl.mailbox_id"
            " JOIN accounts a ON a.id = m.account_id"
            " WHERE a.live AND acl.identifier IN ($1, 'anyone') AND a.address <> $1 ORDER BY 1",
            address,
        )
        return [r[0] for r in rows]

    # --- feed ----------------------------------------------------------------------------
    def subscribe(self, address: str, *more: str) -> Subscription:
        return self.feed.subscribe(address, *more)

    def watch(self, callback: Callable[[str], None]) -> None:
        self.feed.watch(callback)

    async def peek_usage(self, address: str, count_trash: bool = True) -> Usage | None:
        try:
            await self.start()
            row = await self.db.fetchrow(
                "SELECT count(m.id), coalesce(sum(m.messages), 0), coalesce(sum(m.bytes), 0)"
                " FROM accounts a LEFT JOIN mailboxes m ON m.account_id = a.id"
                " AND ($2 OR m.special_use IS DISTINCT FROM $3)"
                " WHERE a.address = $1 AND a.live GROUP BY a.id", address, count_trash, quotas.TRASH,
            )
        except StoreError:
            return None
        if row is None:
            return None
        return Usage(int(row[1]), int(row[2]))

    async def notify_external(self, address: str) -> None:
        acc = self._accounts.get(address)
        if acc is not None and not acc.closed:
            try:
                await acc.check_external()
            except StoreError as e:
                log.warning("checking %s for outside changes failed: %s", address, e)

    async def notify_acl(self, address: str, incarnation: str, mailbox: str, identifier: str) -> None:
        try:
            acc = await self.account(address, incarnation)
            mbox = await acc.get_mailbox(mailbox)
        except StoreError:
            return
        self.feed.publish(Change(address, mbox.id, 0, "acl", mbox.name, "", 0, (), identifier),
                          also=(identifier,))

    async def recover(self, new_limit: int | None = None) -> dict[str, int]:
        """At start-up: connect and migrate now, so that a wrong DSN or a database that
        is down shows in the log at once. The server starts anyway (another front end
        may be serving, the database may come back): until it answers, sessions and
        deliveries are told to try again later, and each use tries to connect anew."""
        try:
            await self.start()
        except StoreError as e:
            log.warning("the PostgreSQL store cannot be reached (%s); serving anyway, "
                        "mail is deferred until it can", e)
        return {}

    def serve_with_workers(self, primary: bool, wrap: Callable[[ChangeFeed], ChangeFeed]) -> None:
        """The feed stays as it is: LISTEN/NOTIFY already tells every other process on the
        database, the workers of this server as well as other front ends, so *wrap* is not
        used (relaying too would tell each change twice). Nothing is kept by one worker
        only: every worker is a front end like any other."""

    async def close(self) -> None:
        for acc in self._accounts.values():
            acc.close()
        self._accounts.clear()
        if self._loop is not asyncio.get_running_loop():
            self._let_go()
        else:
            if self._listener is not None:
                await self._listener.close()
            if self._pool is not None:
                try:
                    await self._pool.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    self._pool.terminate()
        self._pool = None
        self._listener = None
        self._loop = None

