"""Transactions on the pool, and what a PostgreSQL failure means to a protocol.

A lost or refused connection is `Unavailable` (LMTP 4xx, IMAP NO [UNAVAILABLE]); the
pool makes new connections by itself on the next use. A deadlock or serialization
failure rolls the transaction back and runs it again (the body must be repeatable: it
keeps its results in what it returns, not in outside state). Changes a transaction
collects are sent with NOTIFY inside it (delivered at commit) and published on this
process's feed right after the commit, never before: nothing is told or acknowledged
that is not committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import asyncpg

from ..api import Change, StoreError, Unavailable
from ..feed import ChangeFeed
from . import notify

log = logging.getLogger("letterbox.store")

T = TypeVar("T")
RETRIES = 8
ACQUIRE_TIMEOUT = 10.0

_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.InterfaceError,
    # A connection ended by the server while a statement starts leaves the client in
    # a state it reports this way; the pool then drops the connection.
    asyncpg.exceptions.InternalClientError,
)
_AGAIN = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)


def translate(e: BaseException) -> StoreError:
    """The StoreError a protocol answers for a database failure."""
    if isinstance(e, StoreError):
        return e
    if isinstance(e, _UNAVAILABLE):
        log.warning("PostgreSQL is unavailable: %s", e)
        return Unavailable("the mail store is unavailable; try again shortly")
    if isinstance(e, _AGAIN):
        return Unavailable("the mail store is busy; try again")
    log.error("mail store operation failed: %s", e)
    return StoreError("storage error")


class Tx:
    """One transaction: its connection and the changes to tell once it commits."""

    __slots__ = ("conn", "changes", "channel", "sender")

    def __init__(self, conn: Any, channel: str = "", sender: str = "") -> None:
        self.conn = conn
        self.channel = channel
        self.sender = sender
        self.changes: list[tuple[Change, tuple[str, ...], bool]] = []

    def publish(self, change: Change, also: Iterable[str] = (), *, notified: bool = False) -> None:
        """Tell *change* once committed; *notified*: a statement of the body sent its
        NOTIFY already (see `payload`), the commit sends none for it."""
        self.changes.append((change, tuple(also), notified))

    def payload(self, change: Change) -> str:
        """The NOTIFY payload of *change*, for a statement that sends it itself
        (`pg_notify(tx.channel, payload)`), saving the round trip of its own."""
        return notify.encode(self.sender, change)


class Database:
    """The pool of one store, its channel and its sender id."""

    def __init__(self, pool: Any, channel: str, sender: str, feed: ChangeFeed) -> None:
        self.pool = pool
        self.channel = channel
        self.sender = sender
        self.feed = feed

    @contextlib.asynccontextmanager
    async def conn(self) -> AsyncIterator[Any]:
        """A connection for reads (each statement its own snapshot)."""
        try:
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                yield conn
        except StoreError:
            raise
        except (asyncpg.PostgresError, *_UNAVAILABLE) as e:
            raise translate(e) from e

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Any]:
        """A connection in a read-only REPEATABLE READ transaction: reads that agree."""
        async with self.conn() as conn:
            try:
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    yield conn
            except StoreError:
                raise
            except (asyncpg.PostgresError, *_UNAVAILABLE) as e:
                raise translate(e) from e

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        async with self.conn() as conn:
            return list(await conn.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        async with self.conn() as conn:
            return await conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self.conn() as conn:
            return await conn.fetchval(sql, *args)

    async def run(self, body: Callable[[Tx], Awaitable[T]], *, autocommit: bool = False) -> T:
        """Run *body* in a transaction (again after a deadlock); publish its changes
        after the commit. *autocommit*: no BEGIN and COMMIT around the body, each of its
        statements commits by itself: its writes must be one statement (atomic alone),
        which sends its own NOTIFYs."""
        for attempt in range(RETRIES):
            try:
                async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                    tx = Tx(conn, self.channel, self.sender)
                    if autocommit:
                        result = await body(tx)
                        if any(not sent for _c, _a, sent in tx.changes):
                            raise AssertionError("an autocommit body must send its own NOTIFYs")
                    else:
                        async with conn.transaction():
                            result = await body(tx)
                            unsent = [notify.encode(self.sender, c) for c, _a, sent in tx.changes if not sent]
                            if unsent:
                                await conn.execute(
                                    "SELECT pg_notify($1, p) FROM unnest($2::text[]) p", self.channel, unsent,
                                )
            except StoreError:
                raise
            except _AGAIN as e:
                if attempt + 1 < RETRIES:
                    await asyncio.sleep(0.005 * (attempt + 1))
                    continue
                raise translate(e) from e
            except (asyncpg.PostgresError, *_UNAVAILABLE) as e:
                raise translate(e) from e
            for change, also, _sent in tx.changes:
                self.feed.publish(change, also=also)
            return result
        raise AssertionError("unreachable")


async def next_uidvalidity(conn: Any) -> int:
    """A UIDVALIDITY no mailbox has had: a store-wide counter kept ahead of the clock
    (RFC 9051 2.3.1.1), so a mailbox made again never repeats one."""
    return int(await conn.fetchval(
        "UPDATE counters SET value = greatest(value + 1, extract(epoch FROM now())::bigint)"
        " WHERE name = 'uidvalidity' RETURNING value"
    ))
