"""The POP3 maildrop lock (RFC 1939 4: one session per maildrop) as a PostgreSQL
session-level advisory lock, held on a connection of its own: it excludes sessions of
every front end alike and dies with its holder's connection (a front end killed with
kill -9 lets go as soon as PostgreSQL notices). Sessions of this process wait in line
and are woken when the lock is let go here; holders elsewhere are polled for.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..api import AccountGone, MailboxInUse

CLASS = 0x6C62_7033  # "lbp3": the first key of every maildrop lock
POLL = 0.25
"""How often a waiting session tries again for holders in other front ends."""


class Pop3Locks:
    """The maildrop locks of one store, keyed by account id."""

    def __init__(self, connect: Callable[[], Awaitable[Any]]) -> None:
        self._connect = connect
        self._waiters: dict[int, collections.deque[asyncio.Future[None]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, account_id: int, wait: float = 0.0, gone: bool = False) -> AsyncIterator[None]:
        if gone:
            raise AccountGone("this account has been deleted")
        conn = await self._connect()
        try:
            await self._acquire(conn, account_id, time.monotonic() + wait)
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
            raise
        try:
            yield
        finally:
            # Closing the connection lets go of its locks, whatever state it is in.
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
            self._wake_first(account_id)

    async def _try(self, conn: Any, account_id: int) -> bool:
        return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", CLASS, account_id & 0x7FFFFFFF))

    async def _acquire(self, conn: Any, account_id: int, deadline: float) -> None:
        line = self._waiters.setdefault(account_id, collections.deque())
        if not line and await self._try(conn, account_id):
            return
        loop = asyncio.get_running_loop()
        me: asyncio.Future[None] = loop.create_future()
        line.append(me)
        try:
            while True:
                if line[0] is me and await self._try(conn, account_id):
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise MailboxInUse("another POP3 session is using this mailbox")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(me), min(left, POLL))
                if me.done():  # woken: keep the place in line with a fresh future
                    fresh: asyncio.Future[None] = loop.create_future()
                    line[line.index(me)] = fresh
                    me = fresh
        finally:
            line.remove(me)
            if not line:
                self._waiters.pop(account_id, None)
            self._wake_first(account_id)

    def _wake_first(self, account_id: int) -> None:
        line = self._waiters.get(account_id)
        if line and not line[0].done():
            line[0].set_result(None)
