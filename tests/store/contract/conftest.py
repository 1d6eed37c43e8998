"""The backends the contract suite runs against, and how a test reaches them.

A backend is an async context manager factory: given a directory of its own for the
test and the limits to apply, it yields a fresh, empty `Store`; entered again with the
same directory it yields another handle on the same mail (another front end or
process). To run the suite against a new backend, add one line to BACKENDS.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from letterbox.store.api import AccountStore, Limits, Store
from letterbox.store.maildir import MaildirStore

from ..postgres.harness import postgres

Backend = Callable[[Path, Limits], AbstractAsyncContextManager[Store]]


@asynccontextmanager
async def maildir(where: Path, limits: Limits) -> AsyncIterator[Store]:
    store = MaildirStore(where / "mail", limits=limits)
    try:
        yield store
    finally:
        await store.close()


BACKENDS: dict[str, Backend] = {
    "maildir": maildir,
    "postgresql": postgres,
}

USER = "alice@example.com"
OTHER = "bob@example.org"
MSG = b"From: Ann <a@example.com>\r\nTo: b@example.com\r\nSubject: Hello there\r\n" \
      b"Message-ID: <one@example.com>\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\nbody line\r\n"


def message(n: int = 0, body: bytes = b"body\r\n") -> bytes:
    """A small message, different for each *n*."""
    return (f"From: a@example.com\r\nTo: b@example.com\r\nSubject: Message {n}\r\n"
            f"Message-ID: <{n}@example.com>\r\n\r\n").encode() + body


@dataclass
class Harness:
    """Runs one contract test against one backend."""

    name: str
    factory: Backend
    where: Path

    def run(self, test: Callable[[Contract], Awaitable[None]], limits: Limits | None = None) -> None:
        async def go() -> None:
            async with AsyncExitStack() as stack:
                await test(Contract(self, stack, limits or Limits()))

        asyncio.run(go())


@dataclass
class Contract:
    """What a test holds: a way to open handles on one shared store."""

    harness: Harness
    stack: AsyncExitStack
    limits: Limits

    async def store(self) -> Store:
        """A handle on the test's store (each call: another one, as another process)."""
        return await self.stack.enter_async_context(self.harness.factory(self.harness.where, self.limits))

    async def account(self, address: str = USER) -> AccountStore:
        """*address*'s account through a new handle."""
        return await (await self.store()).account(address)


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    return Harness(request.param, BACKENDS[request.param], tmp_path)
