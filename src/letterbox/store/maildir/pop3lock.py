"""The POP3 maildrop lock of one account (RFC 1939 4: one session per maildrop).

An flock on `pop3.lock` in the account's root: it is per open file, so it excludes
sessions of this process and of other processes sharing the folder alike, and dies with
its holder. Sessions of this process wait in line: the first is woken when the lock is let
go here, and polls for holders in other processes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import os
import time
from collections.abc import AsyncIterator

from ..api import MailboxInUse
from .accountdir import AccountDir

LOCK_FILE = "pop3.lock"
# A session waiting for the lock checks this often for holders in other processes
# (holders in this process wake it at once).
POLL = 0.25


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


class Pop3Lock:
    def __init__(self, adir: AccountDir) -> None:
        self._adir = adir
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @contextlib.asynccontextmanager
    async def hold(self, wait: float = 0.0) -> AsyncIterator[None]:
        """Exclusive for one session, waiting up to *wait* seconds; raises MailboxInUse."""
        fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600, dir_fd=self._adir.fd)
        try:
            await self._acquire(fd, time.monotonic() + wait)
        except BaseException:
            os.close(fd)
            raise
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            self._wake_first()

    async def _acquire(self, fd: int, deadline: float) -> None:
        if not self._waiters and _try_flock(fd):
            return
        loop = asyncio.get_running_loop()
        me: asyncio.Future[None] = loop.create_future()
        self._waiters.append(me)
        try:
            while True:
                if self._waiters[0] is me and _try_flock(fd):
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise MailboxInUse("another POP3 session is using this mailbox")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(me), min(left, POLL))
                if me.done():  # woken: stay in the same place in line with a fresh future
                    fresh: asyncio.Future[None] = loop.create_future()
                    self._waiters[self._waiters.index(me)] = fresh
                    me = fresh
        finally:
            self._waiters.remove(me)
            self._wake_first()

    def _wake_first(self) -> None:
        if self._waiters and not self._waiters[0].done():
            self._waiters[0].set_result(None)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def close(self) -> None:
        """The account is going away: let every waiter give up at once."""
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
