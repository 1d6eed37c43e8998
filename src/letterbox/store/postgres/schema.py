"""Versioned schema migrations: numbered SQL files in `migrations/`, applied in order.

The `schema_version` table records each applied number. `migrate` runs on every open
(front ends starting together take turns on an advisory lock, so each file is applied
once) and is what `letterbox store migrate` calls. Each file is applied in the same
transaction as its version row: a crash leaves it applied wholly or not at all.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")
_LOCK = 0x6C62_6D67  # "lbmg": the migration lock, per database and schema


def migrations() -> list[tuple[int, str]]:
    """(version, SQL) of every migration shipped, ascending."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        m = _NAME.fullmatch(entry.name)
        if m:
            found.append((int(m.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(found)


def latest() -> int:
    return migrations()[-1][0]


async def migrate(conn: Any, schema: str | None = None) -> list[int]:
    """Bring the database (the tables in *schema*, else the connection's search path) to
    the latest version; returns the versions applied now."""
    applied: list[int] = []
    async with conn.transaction():
        if schema is not None:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(f"SET LOCAL search_path TO \"{schema}\"")
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))", _LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())"
        )
        current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
        for version, sql in migrations():
            if version <= current:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
            applied.append(version)
    return applied


async def migrate_database(dsn: str, schema: str | None = None) -> list[int]:
    """What `letterbox store migrate` runs: connect, migrate, disconnect."""
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10, server_settings={"application_name": "letterbox"})
    try:
        return await migrate(conn, schema)
    finally:
        await conn.close()


async def version(conn: Any) -> int:
    """The version the database is at (0: none applied)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))
