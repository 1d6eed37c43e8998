"""Several Letterbox front ends (`letterbox serve` processes) on one PostgreSQL database,
measured as one server: clients are spread across their ports, and CPU time and memory
are summed over every front end's processes. CPU time also counts the PostgreSQL
processes serving the database while they live (the store's work is done there); the
memory figures are the front ends' own."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import asyncpg

from .servers import BenchServer, Letterbox, cpu_seconds, memory_kib, postgres_backends

SERVER = "postgresql://postgres@127.0.0.1:5432"


async def _admin(server: str, sql: str) -> None:
    conn = await asyncpg.connect(f"{server}/postgres", timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class PgFronts(BenchServer):
    """*count* front ends on a database of their own, made on *server* at start-up and
    dropped by `drop()`."""

    def __init__(self, root: Path, count: int, server: str = SERVER) -> None:
        super().__init__(root)
        self.server = server
        self.database = f"letterbox_bench_{secrets.token_hex(4)}"
        self.dsn = f"{server}/{self.database}"
        self.name = "Letterbox PG" if count == 1 else f"Letterbox PG {count}f"
        self.fronts = [Letterbox(root / f"front{i}", dsn=self.dsn, name=f"{self.name} #{i}") for i in range(count)]
        self.log = self.fronts[0].log
        self._made = False

    def _make_database(self) -> None:
        if not self._made:
            asyncio.run(_admin(self.server, f'CREATE DATABASE "{self.database}"'))
            self._made = True

    def drop(self) -> None:
        if self._made:
            asyncio.run(_admin(self.server, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
            self._made = False

    def add_users(self, users: list[str], password: str) -> None:
        first, *others = self.fronts
        first.add_users(users, password)
        incarnations = first.incarnations()
        for front in others:
            front.add_users(users, password)
            front.adopt_incarnations(incarnations)

    def set_tls(self, pair: tuple[Path, Path] | None) -> None:
        super().set_tls(pair)
        for front in self.fronts:
            front.set_tls(pair)

    def start(self, timeout: float = 30.0) -> None:
        self._make_database()
        for front in self.fronts:
            front.start(timeout)
        first = self.fronts[0]
        self.proc = first.proc
        self.lmtp_port, self.pop3_port = first.lmtp_port, first.pop3_port
        self.imap_port, self.imaps_port = first.imap_port, first.imaps_port
        self.start_s = max(f.start_s for f in self.fronts)

    def stop(self) -> None:
        for front in self.fronts:
            front.stop()
        self.proc = None

    def ports(self, kind: str) -> list[int]:
        return [p for front in self.fronts for p in front.ports(kind)]

    def cpu(self) -> tuple[float, float]:
        user = system = 0.0
        for pid in [f.pid for f in self.fronts] + postgres_backends(self.database):
            u, s = cpu_seconds(pid)
            user += u
            system += s
        return user, system

    def memory(self) -> dict[str, int]:
        total = {"rss_kib": 0, "pss_kib": 0, "processes": 0}
        for front in self.fronts:
            for k, v in memory_kib(front.pid).items():
                total[k] += v
        return total

    def postgres_memory(self) -> dict[str, int]:
        """The PostgreSQL processes serving the database (shared buffers count in their RSS)."""
        total = {"rss_kib": 0, "pss_kib": 0, "processes": 0}
        for pid in postgres_backends(self.database):
            for k, v in memory_kib(pid).items():
                total[k] += v
        return total

    def version(self) -> str:
        return self.fronts[0].version()
