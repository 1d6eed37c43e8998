"""A PostgreSQL database for this test run, and the contract suite's backend on it.

The database (`letterbox_test_<random>`) is made on first use on 127.0.0.1:5432 (trust
auth, user postgres or root; LETTERBOX_TEST_PG_DSN overrides the server) and dropped
when the run ends. Each test gets a schema of its own in it (named from its temporary
directory), so tests never see each other's mail; handles opened with the same
directory share one store, as front ends share a database. Without a PostgreSQL the
tests skip, saying why; LETTERBOX_REQUIRE_POSTGRES=1 makes that a failure.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from letterbox.store.api import Limits
from letterbox.store.postgres import PostgresStore

SERVERS = (
    "postgresql://postgres@127.0.0.1:5432",
    "postgresql://root@127.0.0.1:5432",
    # A fresh Debian install: root's role (made by .ci/run) over the local socket, peer auth.
    "postgresql://root@%2Fvar%2Frun%2Fpostgresql",
)
_state: dict[str, str] = {}


async def _make_database() -> str:
    servers = [os.environ["LETTERBOX_TEST_PG_DSN"]] if os.environ.get("LETTERBOX_TEST_PG_DSN") else list(SERVERS)
    errors = []
    for server in servers:
        try:
            conn = await asyncpg.connect(f"{server}/postgres", timeout=3)
        except (TimeoutError, OSError, asyncpg.PostgresError) as e:
            errors.append(f"{server}: {e}")
            continue
        name = f"letterbox_test_{secrets.token_hex(4)}"
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        _state["server"] = server
        atexit.register(_drop, server, name)
        return f"{server}/{name}"
    raise RuntimeError("; ".join(errors))


def _drop(server: str, name: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(f"{server}/postgres", timeout=3)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    try:
        asyncio.run(go())
    except (OSError, asyncpg.PostgresError, RuntimeError):
        pass


def _unavailable(why: str) -> None:
    message = f"no PostgreSQL on 127.0.0.1:5432 ({why})"
    if os.environ.get("LETTERBOX_REQUIRE_POSTGRES") == "1":
        pytest.fail(message + " and LETTERBOX_REQUIRE_POSTGRES=1")
    pytest.skip(message)


async def dsn() -> str:
    """The run's database (made now if need be); skips the test without PostgreSQL."""
    if "dsn" not in _state:
        if "error" in _state:
            _unavailable(_state["error"])
        try:
            _state["dsn"] = await _make_database()
        except RuntimeError as e:
            _state["error"] = str(e)
            _unavailable(str(e))
    return _state["dsn"]


async def fresh_database() -> str:
    """A database of its own (for a server process, whose store uses the default schema),
    on the run's server; dropped when the run ends. Skips without PostgreSQL."""
    await dsn()
    server = _state["server"]
    name = f"letterbox_test_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(f"{server}/postgres", timeout=3)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    atexit.register(_drop, server, name)
    return f"{server}/{name}"


def schema_for(where: Path) -> str:
    return "t_" + hashlib.sha1(str(where).encode()).hexdigest()[:16]


@asynccontextmanager
async def postgres(where: Path, limits: Limits) -> AsyncIterator[PostgresStore]:
    """The contract suite's backend: a handle (a front end) on the test's store."""
    store = await PostgresStore.open(await dsn(), schema=schema_for(where), limits=limits, pool_size=4)
    try:
        yield store
    finally:
        await store.close()
