"""Migrations: applied once, in order, recorded; a second front end applies nothing."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from letterbox.store.postgres import migrate, migrate_database, schema

from .conftest import Body, Fronts
from .harness import schema_for


def test_migrations_are_numbered_and_applied_once(pg: Callable[[Body], None]) -> None:
    async def go(f: Fronts) -> None:
        versions = [v for v, _ in schema.migrations()]
        assert versions == sorted(set(versions)) and versions[0] == 1
        conn = await asyncpg.connect(await f.dsn())
        try:
            name = schema_for(f.where) + "_m"
            assert await migrate(conn, name) == versions
            assert await migrate(conn, name) == []
            await conn.execute(f'SET search_path TO "{name}"')
            assert await schema.version(conn) == schema.latest()
            await conn.execute(f'DROP SCHEMA "{name}" CASCADE')
        finally:
            await conn.close()
        await f.store()  # opening migrates too
        await f.store()
        assert await migrate_database(await f.dsn(), schema_for(f.where)) == []

    pg(go)
