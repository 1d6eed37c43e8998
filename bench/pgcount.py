"""`letterbox` with every PostgreSQL statement counted: run as
`python -m bench.pgcount -c CONFIG serve`, with LETTERBOX_PGCOUNT=FILE.

On SIGUSR1 the process writes what it counted since the last signal to FILE (JSON:
round trips, statements by SQL text, prepares, transactions, CPU seconds) and starts
counting anew; bench/pgprobe.py signals between the operations it measures. With
LETTERBOX_PGPROFILE=FILE a cProfile from the first signal on is written there too
(pstats).
A tool for measuring only: it patches asyncpg's Connection class.
"""

from __future__ import annotations

import cProfile
import json
import os
import signal
import time
from collections import Counter
from typing import Any

from asyncpg import connection as _conn

_sql: Counter[str] = Counter()
_totals: Counter[str] = Counter()
_profile: cProfile.Profile | None = None
_cpu0 = time.process_time()


def _patch() -> None:
    Conn: Any = _conn.Connection
    execute, _execute, executemany, get_statement = (
        Conn.execute, Conn._execute, Conn._executemany, Conn._get_statement)

    async def counted_execute(self: Any, query: str, *args: Any, **kw: Any) -> Any:
        if not args:  # a simple query (BEGIN, COMMIT, ...): one round trip of its own
            _totals["round_trips"] += 1
            word = query.split(None, 1)[0].upper().rstrip(";") if query.strip() else ""
            if word in ("BEGIN", "START"):
                _totals["transactions"] += 1
            _sql[query.strip()[:120]] += 1
        return await execute(self, query, *args, **kw)

    async def counted(self: Any, query: str, *args: Any, **kw: Any) -> Any:
        _totals["round_trips"] += 1
        _totals["statements"] += 1
        _sql[" ".join(query.split())[:160]] += 1
        return await _execute(self, query, *args, **kw)

    async def counted_many(self: Any, query: str, *args: Any, **kw: Any) -> Any:
        _totals["round_trips"] += 1
        _totals["statements"] += 1
        _sql["MANY " + " ".join(query.split())[:155]] += 1
        return await executemany(self, query, *args, **kw)

    async def counted_prepare(self: Any, query: str, *args: Any, **kw: Any) -> Any:
        record_class = kw.get("record_class") or self._protocol.get_record_class()
        if kw.get("use_cache", True) and self._stmt_cache.get(
                (query, record_class, kw.get("ignore_custom_codec", False))) is None:
            _totals["prepares"] += 1
            _totals["round_trips"] += 1
        return await get_statement(self, query, *args, **kw)

    Conn.execute, Conn._execute, Conn._executemany, Conn._get_statement = (
        counted_execute, counted, counted_many, counted_prepare)


def _dump(_sig: int, _frame: Any) -> None:
    global _cpu0, _profile
    path = os.environ["LETTERBOX_PGCOUNT"]
    cpu = time.process_time()
    out = {"totals": dict(_totals), "cpu_s": cpu - _cpu0, "sql": dict(_sql.most_common())}
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(out, f)
    os.replace(path + ".tmp", path)
    _sql.clear()
    _totals.clear()
    if _profile is not None:
        _profile.disable()  # cumulative: the file holds every span so far
        _profile.dump_stats(os.environ["LETTERBOX_PGPROFILE"])
        _profile.enable()
    elif os.environ.get("LETTERBOX_PGPROFILE"):
        _profile = cProfile.Profile()  # from the first signal on: start-up left out
        _profile.enable()
    _cpu0 = time.process_time()


def main() -> None:
    _patch()
    signal.signal(signal.SIGUSR1, _dump)
    from letterbox.cli.main import main as letterbox

    letterbox()


if __name__ == "__main__":
    main()
