"""The workloads: each drives one server and returns plain numbers (JSON-ready dicts).

Client load runs in forked worker processes (--client-procs) so that with many
connections the Python client can use more than one core. Workers wait for a common
start time, so "elapsed" covers the same interval for all of them.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .clients import Corpus, InUse, LMTPClient, POP3Client, ProtocolError

T = TypeVar("T")
SENDER = "bench@example.org"
NETWORK_ERRORS = (ProtocolError, ConnectionError, OSError, asyncio.IncompleteReadError,
                  asyncio.LimitOverrunError, ValueError, IndexError)


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """asyncio.run with uvloop when available (the server uses it too)."""
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(make())  # type: ignore[arg-type]


def _own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _in_workers(fn: Callable[[dict[str, Any]], dict[str, Any]], jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(jobs) == 1:
        return [fn(jobs[0])]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(len(jobs)) as pool:
        return pool.map(fn, jobs)


def _split(ids: list[int], procs: int) -> list[list[int]]:
    procs = max(1, min(procs, len(ids)))
    return [ids[p::procs] for p in range(procs)]


def _errors(samples: list[str], limit: int = 5) -> list[str]:
    return list(dict.fromkeys(samples))[:limit]


@dataclass
class Endpoint:
    host: str
    port: int


# --- filling mailboxes -------------------------------------------------------------------


async def _fill(ep: Endpoint, plan: list[tuple[str, str, int]], seed: int, concurrency: int) -> int:
    corpus = Corpus(seed)
    queue = list(reversed(plan))
    failures: list[str] = []

    async def one() -> None:
        c = await LMTPClient.connect(ep.host, ep.port)
        try:
            while queue:
                rcpt, key, size = queue.pop()
                try:
                    await c.deliver(SENDER, rcpt, corpus.message(key, size, rcpt))
                except ProtocolError as e:
                    failures.append(str(e))
                    await c._command(b"RSET\r\n", 250)
        finally:
            await c.quit()

    await asyncio.gather(*(one() for _ in range(concurrency)))
    if failures:
        raise RuntimeError(f"filling mailboxes: {len(failures)} deliveries refused, e.g. {failures[0]}")
    return len(plan)


def fill(ep: Endpoint, plan: list[tuple[str, str, int]], seed: int, concurrency: int = 4) -> int:
    """Deliver (recipient, key, size) messages over LMTP; raise if any is refused."""
    return run_async(lambda: _fill(ep, plan, seed, concurrency))


# --- LMTP delivery -----------------------------------------------------------------------


def _lmtp_worker(job: dict[str, Any]) -> dict[str, Any]:
    corpus = Corpus(job["seed"])
    rcpts: list[str] = job["rcpts"]
    delivered = failed = 0
    samples: list[str] = []
    ends: list[float] = []

    async def sender(i: int) -> None:
        nonlocal delivered, failed
        sizes = corpus.sizes(f"lmtp{i}", job["count"], job["low"], job["high"])
        c = await LMTPClient.connect(job["host"], job["port"])
        for j, size in enumerate(sizes):
            rcpt = rcpts[(i + j) % len(rcpts)]
            msg = corpus.message(f"lmtp{i}-{j}", size, rcpt)
            try:
                await c.deliver(SENDER, rcpt, msg)
                delivered += 1
            except ProtocolError as e:
                failed += 1
                samples.append(str(e))
                await c._command(b"RSET\r\n", 250)
            except (ConnectionError, OSError, asyncio.IncompleteReadError) as e:
                failed += 1
                samples.append(f"connection lost: {e!r}")
                c = await LMTPClient.connect(job["host"], job["port"])
        await c.quit()
        ends.append(time.time())

    async def main() -> None:
        await asyncio.sleep(max(0.0, job["start_at"] - time.time()))
        await asyncio.gather(*(sender(i) for i in job["ids"]))

    cpu0 = _own_cpu()
    run_async(main)
    return {"delivered": delivered, "failed": failed, "errors": samples, "end": max(ends),
            "client_cpu": _own_cpu() - cpu0}


def lmtp(ep: Endpoint, senders: int, per_sender: int, low: int, high: int, rcpts: list[str],
         seed: int, procs: int) -> dict[str, Any]:
    start_at = time.time() + 0.3
    jobs = [
        {"host": ep.host, "port": ep.port, "ids": ids, "count": per_sender, "low": low,
         "high": high, "rcpts": rcpts, "seed": seed, "start_at": start_at}
        for ids in _split(list(range(senders)), procs)
    ]
    results = _in_workers(_lmtp_worker, jobs)
    elapsed = max(r["end"] for r in results) - start_at
    delivered = sum(r["delivered"] for r in results)
    return {
        "delivered": delivered,
        "failed": sum(r["failed"] for r in results),
        "errors": _errors([e for r in results for e in r["errors"]]),
        "elapsed_s": elapsed,
        "messages_per_s": delivered / elapsed,
        "client_cpu_s": sum(r["client_cpu"] for r in results),
    }


# --- POP3 sessions -----------------------------------------------------------------------


def _pop3_worker(job: dict[str, Any]) -> dict[str, Any]:
    users: list[str] = job["users"]
    expect: int = job["expect"]
    deadline = job["start_at"] + job["duration"]
    completed = in_use = errors = 0
    octets = 0
    latencies: list[float] = []
    samples: list[str] = []

    async def session(user: str) -> None:
        nonlocal completed, in_use, errors, octets
        t0 = time.time()
        c = await POP3Client.connect(job["host"], job["port"])
        try:
            try:
                await c.login(user, job["password"])
            except InUse:
                in_use += 1
                return
            n, _size = await c.stat()
            uidl = await c.multiline(b"UIDL\r\n")
            listed = uidl.count(b"\r\n")
            if n != expect or listed != n:
                raise ProtocolError(f"{user}: STAT says {n}, UIDL lists {listed}, expected {expect}")
            got = 0
            for m in range(1, n + 1):
                got += len(await c.multiline(f"RETR {m}\r\n".encode()))
            await c.command(b"QUIT\r\n")
            end = time.time()
            if end <= deadline:
                completed += 1
                octets += got
                latencies.append(end - t0)
        finally:
            c.abort()

    async def client(i: int) -> None:
        nonlocal errors
        # Spread the starting mailboxes evenly: clients that start on neighbouring
        # mailboxes would trail each other and collide on every step.
        k = i * len(users) // job["clients"]
        while time.time() < deadline:
            user = users[k % len(users)]
            k += 1
            try:
                await session(user)
            except NETWORK_ERRORS as e:
                errors += 1
                samples.append(f"{type(e).__name__}: {e}")
                await asyncio.sleep(0.01)

    async def main() -> None:
        await asyncio.sleep(max(0.0, job["start_at"] - time.time()))
        tasks = [asyncio.ensure_future(client(i)) for i in job["ids"]]
        # Sessions still running at the deadline are cut off and not counted.
        _done, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.time()) + 0.05)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    cpu0 = _own_cpu()
    run_async(main)
    return {"completed": completed, "in_use": in_use, "errors": errors, "samples": samples,
            "octets": octets, "latencies": latencies, "client_cpu": _own_cpu() - cpu0}


def pop3(ep: Endpoint, clients: int, users: list[str], password: str, expect: int,
         duration: float, procs: int) -> dict[str, Any]:
    start_at = time.time() + 0.3
    jobs = [
        {"host": ep.host, "port": ep.port, "ids": ids, "users": users, "password": password,
         "expect": expect, "start_at": start_at, "duration": duration, "clients": clients}
        for ids in _split(list(range(clients)), procs)
    ]
    results = _in_workers(_pop3_worker, jobs)
    lat = sorted(x for r in results for x in r["latencies"])
    completed = sum(r["completed"] for r in results)
    return {
        "completed": completed,
        "in_use": sum(r["in_use"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "error_samples": _errors([e for r in results for e in r["samples"]]),
        "duration_s": duration,
        "sessions_per_s": completed / duration,
        "retr_mb_per_s": sum(r["octets"] for r in results) / duration / 1e6,
        "session_ms_p50": 1000 * lat[len(lat) // 2] if lat else None,
        "session_ms_p95": 1000 * lat[int(len(lat) * 0.95)] if lat else None,
        "client_cpu_s": sum(r["client_cpu"] for r in results),
    }


# --- POP3 on one big mailbox -------------------------------------------------------------


async def _big(ep: Endpoint, user: str, password: str, reps: int, expect: int) -> dict[str, Any]:
    login_stat: list[float] = []
    uidl: list[float] = []
    for _ in range(reps):
        t0 = time.perf_counter()
        c = await POP3Client.connect(ep.host, ep.port)
        try:
            await c.login(user, password)
            n, _size = await c.stat()
            t1 = time.perf_counter()
            block = await c.multiline(b"UIDL\r\n")
            t2 = time.perf_counter()
            await c.quit()
        finally:
            c.abort()
        listed = block.count(b"\r\n")
        if n != expect or listed != expect:
            raise ProtocolError(f"big mailbox: STAT says {n}, UIDL lists {listed}, expected {expect}")
        login_stat.append(t1 - t0)
        uidl.append(t2 - t1)
    return {
        "reps": reps,
        "login_stat_ms": 1000 * statistics.median(login_stat),
        "uidl_ms": 1000 * statistics.median(uidl),
        "first_login_stat_ms": 1000 * login_stat[0],
        "first_uidl_ms": 1000 * uidl[0],
        "all_login_stat_ms": [round(1000 * x, 3) for x in login_stat],
        "all_uidl_ms": [round(1000 * x, 3) for x in uidl],
    }


def pop3_big(ep: Endpoint, user: str, password: str, reps: int, expect: int) -> dict[str, Any]:
    cpu0 = _own_cpu()
    out = run_async(lambda: _big(ep, user, password, reps, expect))
    out["client_cpu_s"] = _own_cpu() - cpu0
    return out
