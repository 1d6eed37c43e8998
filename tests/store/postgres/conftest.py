"""Backend tests of the PostgreSQL store: each test body runs on a fresh schema of the
run's database, with as many handles (front ends) as it asks for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from letterbox.store.api import Limits
from letterbox.store.postgres import PostgresStore

from .harness import dsn, postgres


class Fronts:
    """Front ends on one test's store."""

    def __init__(self, where: Path, stack: AsyncExitStack) -> None:
        self.where = where
        self.stack = stack

    async def store(self, limits: Limits | None = None) -> PostgresStore:
        return await self.stack.enter_async_context(postgres(self.where, limits or Limits()))

    async def dsn(self) -> str:
        return await dsn()


Body = Callable[[Fronts], Awaitable[None]]


@pytest.fixture
def pg(tmp_path: Path) -> Callable[[Body], None]:
    def run(body: Body) -> None:
        async def go() -> None:
            async with AsyncExitStack() as stack:
                await body(Fronts(tmp_path, stack))

        asyncio.run(go())

    return run


async def drain(it: AsyncIterator[bytes]) -> bytes:
    return b"".join([piece async for piece in it])
