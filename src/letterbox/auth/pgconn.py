"""The PostgreSQL directory's connections: asyncpg on an event loop of its own thread.

Why a thread: the Directory API is synchronous (the CLI, and lookups made in the
middle of protocol code such as `ctx.directory.get(user)`), while asyncpg is the
project's PostgreSQL driver and lives on an event loop. Running it on a private loop
lets synchronous callers wait for a result with a hard bound (`WAIT`), and lets the
server's hot paths (login, RCPT) await the same query without blocking their own loop
at all (`acall`). A dead or slow database therefore costs a synchronous caller at most
`WAIT` seconds, and after a failure the next calls fail at once for a while (`_down`),
so a dead database cannot freeze the server's loop again and again.

Every failure to reach the database is `DirectoryUnavailable`, a store `Unavailable`:
protocols answer it as a temporary failure (IMAP NO [UNAVAILABLE], POP3 -ERR
[SYS/TEMP], LMTP/SMTP 451), never as an unknown user.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from .directory import DirectoryUnavailable

log = logging.getLogger("letterbox.auth")

T = TypeVar("T")

CONNECT_TIMEOUT = 1.5
STATEMENT_TIMEOUT = 1.5
WAIT = 2.0
"""The longest a synchronous caller waits for the database."""
_BACKOFF = (1.0, 2.0, 5.0)
"""After consecutive failures, calls fail at once for this long before trying again."""

_UNREACHABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    # The schema is not there yet: the store's start migrates it (as `letterbox store
    # migrate` does), so this too passes.
    asyncpg.exceptions.UndefinedTableError,
)


class PgConnections:
    """A small asyncpg pool on a private event loop, and the directory's LISTEN."""

    def __init__(self, dsn: str, schema: str | None, on_notice: Callable[[], None],
                 on_listening: Callable[[], None]) -> None:
        self.dsn = dsn
        self.schema = schema
        self._on_notice = on_notice
        self._on_listening = on_listening
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="directory-pg", daemon=True)
        self._thread.start()
        self._pool: Any = None
        self._pool_lock = asyncio.Lock()
        self._failures = 0
        self._down_until = 0.0
        self._listen_task: asyncio.Task[None] | None = None
        self._closed = False

    def settings(self) -> dict[str, str]:
        out = {"application_name": "letterbox-directory"}
        if self.schema is not None:
            out["search_path"] = f'"{self.schema}"'
        return out

    # --- calls -----------------------------------------------------------------------------
    def call(self, body: Callable[[Any], Awaitable[T]], wait: float = WAIT) -> T:
        """Run *body(connection)* and wait for it, at most *wait* seconds."""
        self._check_up()
        future = asyncio.run_coroutine_threadsafe(self._run(body), self._loop)
        try:
            return future.result(wait)
        except concurrent.futures.TimeoutError:
            future.cancel()
            self._failed()
            raise DirectoryUnavailable("no answer in time") from None

    async def acall(self, body: Callable[[Any], Awaitable[T]], wait: float = WAIT) -> T:
        """The same from an event loop, which goes on serving meanwhile."""
        self._check_up()
        future = asyncio.run_coroutine_threadsafe(self._run(body), self._loop)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), wait)
        except TimeoutError:
            future.cancel()
            self._failed()
            raise DirectoryUnavailable("no answer in time") from None

    def _check_up(self) -> None:
        if self._closed:
            raise DirectoryUnavailable("closed")
        if time.monotonic() < self._down_until:
            raise DirectoryUnavailable()

    def _failed(self) -> None:
        self._down_until = time.monotonic() + _BACKOFF[min(self._failures, len(_BACKOFF) - 1)]
        self._failures += 1

    async def _run(self, body: Callable[[Any], Awaitable[T]]) -> T:
        try:
            async with self._pool_lock:  # calls made at once make one pool
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self.dsn, min_size=0, max_size=4, timeout=CONNECT_TIMEOUT, command_timeout=STATEMENT_TIMEOUT,
                        server_settings=self.settings(), max_inactive_connection_lifetime=300,
                    )
            async with self._pool.acquire(timeout=CONNECT_TIMEOUT) as conn:
                result = await body(conn)
        except _UNREACHABLE as e:
            self._failed()
            log.warning("the accounts directory on PostgreSQL is unavailable: %s", e)
            raise DirectoryUnavailable() from e
        self._failures = 0
        return result

    # --- change notices ---------------------------------------------------------------------
    def listen(self, channel: str) -> None:
        """Keep a LISTEN connection on *channel* + its schema: *on_notice* for each
        notice, *on_listening* each time listening (re)starts, as notices may have been
        missed meanwhile."""
        def start() -> None:
            if self._listen_task is None and not self._closed:
                self._listen_task = self._loop.create_task(self._keep_listening(channel))

        self._loop.call_soon_threadsafe(start)

    async def _keep_listening(self, prefix: str) -> None:
        delay = 0.1
        while True:
            lost = asyncio.Event()
            conn: Any = None
            try:
                conn = await asyncpg.connect(self.dsn, timeout=CONNECT_TIMEOUT, server_settings=self.settings())
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                channel = prefix + await conn.fetchval("SELECT current_schema()")
                await conn.add_listener(channel, lambda *_a: self._on_notice())
                delay = 0.1
                # The database answers again: calls need not wait out their back-off.
                self._failures = 0
                self._down_until = 0.0
                self._on_listening()
                while not lost.is_set():
                    # A half-open connection never reports its end: ask it now and then.
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(lost.wait(), 5.0)
                    if not lost.is_set():
                        await conn.execute("SELECT 1", timeout=STATEMENT_TIMEOUT)
            except asyncio.CancelledError:
                if conn is not None:
                    conn.terminate()
                raise
            except Exception as e:  # noqa: BLE001 - keep listening, whatever went wrong
                log.info("the accounts directory's change feed is down: %s", e)
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        async def shut() -> None:
            if self._listen_task is not None:
                self._listen_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._listen_task
            if self._pool is not None:
                try:
                    await asyncio.wait_for(self._pool.close(), 2)
                except Exception:  # noqa: BLE001 - closing anyway
                    self._pool.terminate()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(3)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(3)
