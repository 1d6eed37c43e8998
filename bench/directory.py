"""The accounts directory on PostgreSQL beside the SQLite one: what a lookup costs, and
how soon a change made through one front end's handle is known to another's.

    .venv/bin/python bench/directory.py
    .venv/bin/python bench/directory.py --dsn postgresql://root@127.0.0.1:5432 --accounts 500

Makes a database of its own on the server and drops it at the end. Lookups: `get` of an
account not cached (the cache is dropped before each), and of one cached. Notices: a
switch written through handle A, then the time until handle B's `changed()` says so
(the server's poll applies it at most half a second later).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from letterbox.auth.directory import Directory  # noqa: E402
from letterbox.auth.passwords import Secrets  # noqa: E402
from letterbox.auth.pgdirectory import PgDirectory  # noqa: E402
from letterbox.store.postgres import schema  # noqa: E402


async def _database(server: str) -> str:
    name = "letterbox_bench_" + secrets.token_hex(4)
    conn = await asyncpg.connect(f"{server}/postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    conn = await asyncpg.connect(f"{server}/{name}")
    try:
        await schema.migrate(conn)
    finally:
        await conn.close()
    return name


async def _drop(server: str, name: str) -> None:
    conn = await asyncpg.connect(f"{server}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def lookups(label: str, d: Directory, n: int) -> None:
    for i in range(n):
        d.add(f"u{i}@example.com", Secrets("$argon2id$bench", ""))
    time.sleep(1.0)  # the notices of those writes are in: they would drop the cache
    start = time.perf_counter()
    for i in range(n):
        d._forget()
        d.get(f"u{i}@example.com")
    uncached = (time.perf_counter() - start) / n
    for i in range(n):
        d.get(f"u{i}@example.com")
    start = time.perf_counter()
    for i in range(10 * n):
        d.get(f"u{i % n}@example.com")
    cached = (time.perf_counter() - start) / (10 * n)
    print(f"{label:10} get, not cached: {uncached * 1e3:.3f} ms   cached: {cached * 1e6:.1f} us")


def notices(a: PgDirectory, b: PgDirectory, n: int) -> None:
    time.sleep(1.0)  # both listening
    b.changed()
    waits = []
    for i in range(n):
        start = time.perf_counter()
        a.set_switch("pop3", i % 2 == 0)
        while not b.changed():
            time.sleep(0.0005)
        waits.append(time.perf_counter() - start)
    print(f"change through A known to B: median {statistics.median(waits) * 1e3:.1f} ms,"
          f" max {max(waits) * 1e3:.1f} ms ({n} writes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432", help="the server, no database")
    parser.add_argument("--accounts", type=int, default=200)
    args = parser.parse_args()
    name = asyncio.run(_database(args.dsn))
    try:
        a, b = PgDirectory(f"{args.dsn}/{name}"), PgDirectory(f"{args.dsn}/{name}")
        try:
            lookups("postgresql", a, args.accounts)
            notices(a, b, 30)
        finally:
            a.close()
            b.close()
        with tempfile.TemporaryDirectory() as tmp:
            local = Directory(Path(tmp) / "accounts.sqlite")
            lookups("sqlite", local, args.accounts)
            local.close()
    finally:
        asyncio.run(_drop(args.dsn, name))


if __name__ == "__main__":
    main()
