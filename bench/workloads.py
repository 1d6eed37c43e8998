"""The workloads: each drives one server and returns plain numbers (JSON-ready dicts).

Client load runs in forked worker processes (--client-procs) so that with many
connections the Python client can use more than one core. Workers wait for a common
start time, so "elapsed" covers the same interval for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import re
import resource
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .clients import Corpus, IMAPClient, InUse, LMTPClient, POP3Client, ProtocolError
from .servers import IMPORT_TIME

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
    more: tuple[int, ...] = ()
    """Further ports serving the same mail (front ends on one database): the clients of
    the concurrent workloads take them in turn."""

    @property
    def ports(self) -> list[int]:
        return [self.port, *self.more]

    def port_for(self, client: int) -> int:
        ports = self.ports
        return ports[client % len(ports)]


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
        port = job["ports"][i % len(job["ports"])]
        c = await LMTPClient.connect(job["host"], port)
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
                c = await LMTPClient.connect(job["host"], port)
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
        {"host": ep.host, "ports": ep.ports, "ids": ids, "count": per_sender, "low": low,
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


# --- IMAP stress mix ---------------------------------------------------------------------

IMAP_COMMANDS = ("LOGIN", "SELECT", "FETCH FLAGS", "FETCH BODY", "STORE", "EXPUNGE", "APPEND", "LOGOUT")


def _imap_worker(job: dict[str, Any]) -> dict[str, Any]:
    """Each client loops over one full session on its own account, as imaptest's default
    mix does: LOGIN, SELECT, FETCH 1:* FLAGS, BODY.PEEK[] of a few messages, STORE \\Seen
    and \\Deleted, EXPUNGE, APPEND (back to the starting size), LOGOUT."""
    corpus = Corpus(job["seed"])
    deadline = job["start_at"] + job["duration"]
    target: int = job["messages"]
    sizes = corpus.sizes("imap-append", 64, job["low"], job["high"])
    pool = [corpus.message(f"imap-append-{k}", size, "imap@example.com") for k, size in enumerate(sizes)]
    ops: Counter[str] = Counter()
    loops = errors = 0
    latencies: list[float] = []
    samples: list[str] = []

    def done(command: str, n: int = 1) -> None:
        if time.time() <= deadline:
            ops[command] += n

    async def session(user: str, rng: random.Random, source: str | None, port: int) -> None:
        nonlocal loops
        t0 = time.time()
        c = await IMAPClient.connect(job["host"], port, source)
        try:
            await c.login(user, job["password"])
            done("LOGIN")
            n = await c.select()
            done("SELECT")
            if n == 0:
                raise ProtocolError(f"{user}: INBOX is empty")
            listed = (await c.command(b"FETCH 1:* (FLAGS)")).count(b" FETCH (")
            if listed != n:
                raise ProtocolError(f"{user}: FETCH 1:* (FLAGS) listed {listed} of {n}")
            done("FETCH FLAGS")
            # A client reading a few messages asks for them together: pipelined.
            picks = rng.sample(range(1, n + 1), min(job["bodies"], n))
            tags = [c.send(b"FETCH %d BODY.PEEK[]" % m) for m in picks]
            got = (await c.responses(tags)).count(b"BODY[] {")
            if got != len(tags):
                raise ProtocolError(f"{user}: {len(tags)} FETCH BODY.PEEK[] returned {got} bodies")
            done("FETCH BODY", len(tags))
            tags = [c.send(b"STORE %d +FLAGS (\\Seen)" % rng.randint(1, n)),
                    c.send(b"STORE %d +FLAGS (\\Deleted)" % rng.randint(1, n))]
            await c.responses(tags)
            done("STORE", len(tags))
            gone = (await c.command(b"EXPUNGE")).count(b" EXPUNGE\r\n")
            if gone < 1:
                raise ProtocolError(f"{user}: EXPUNGE removed nothing")
            done("EXPUNGE")
            # Usually one; more after a loop cut off at the deadline between STORE and
            # EXPUNGE left a second \\Deleted message behind.
            for _ in range(max(1, target - (n - gone))):
                await c.append(b"INBOX", pool[rng.randrange(len(pool))])
                done("APPEND")
            await c.command(b"LOGOUT")
            done("LOGOUT")
            end = time.time()
            if end <= deadline:
                loops += 1
                latencies.append(end - t0)
        finally:
            c.abort()

    async def client(i: int) -> None:
        nonlocal errors
        rng = random.Random(f"{job['seed']}:imap:{i}")
        user = job["users"][i]
        source = job["sources"][i % len(job["sources"])] if job["sources"] else None
        port = job["ports"][i % len(job["ports"])]
        while time.time() < deadline:
            try:
                await session(user, rng, source, port)
            except NETWORK_ERRORS as e:
                errors += 1
                samples.append(f"{type(e).__name__}: {e}")
                await asyncio.sleep(0.01)

    async def main() -> None:
        await asyncio.sleep(max(0.0, job["start_at"] - time.time()))
        tasks = [asyncio.ensure_future(client(i)) for i in job["ids"]]
        _done, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.time()) + 0.05)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    cpu0 = _own_cpu()
    run_async(main)
    return {"loops": loops, "ops": dict(ops), "errors": errors, "samples": samples,
            "latencies": latencies, "client_cpu": _own_cpu() - cpu0}


def imap(ep: Endpoint, clients: int, users: list[str], password: str, messages: int, duration: float,
         low: int, high: int, seed: int, procs: int, bodies: int = 3,
         sources: list[str] | None = None) -> dict[str, Any]:
    """*sources*: local addresses the clients connect from, in turn (default: any)."""
    if clients > len(users):
        raise ValueError(f"{clients} IMAP clients need as many accounts, have {len(users)}")
    start_at = time.time() + 0.3
    jobs = [
        {"host": ep.host, "ports": ep.ports, "ids": ids, "users": users, "password": password,
         "messages": messages, "start_at": start_at, "duration": duration, "low": low,
         "high": high, "seed": seed, "bodies": bodies, "sources": sources}
        for ids in _split(list(range(clients)), procs)
    ]
    results = _in_workers(_imap_worker, jobs)
    lat = sorted(x for r in results for x in r["latencies"])
    ops: Counter[str] = Counter()
    for r in results:
        ops.update(r["ops"])
    loops = sum(r["loops"] for r in results)
    return {
        "loops": loops,
        "errors": sum(r["errors"] for r in results),
        "error_samples": _errors([e for r in results for e in r["samples"]]),
        "duration_s": duration,
        "loops_per_s": loops / duration,
        "ops_per_s": {k: ops[k] / duration for k in IMAP_COMMANDS},
        "commands_per_s": sum(ops.values()) / duration,
        "loop_ms_p50": 1000 * lat[len(lat) // 2] if lat else None,
        "loop_ms_p95": 1000 * lat[int(len(lat) * 0.95)] if lat else None,
        "client_cpu_s": sum(r["client_cpu"] for r in results),
    }


# --- IMAP on one big mailbox -------------------------------------------------------------

BIG_NEEDLE = "invoice"
"""The subject word SEARCH looks for: in one message of every hundred."""


def big_mailbox_files(cache: Path, corpus: Corpus, count: int, low: int, high: int,
                      rcpt: str, owner: tuple[int, int] | None = None) -> tuple[list[Path], int]:
    """*count* message files under *cache* (written once, reused by later runs) and how
    many carry BIG_NEEDLE in their subject."""
    folder = cache / f"imapbig-{count}-{low}-{high}-{corpus.seed}"
    marker = folder / "complete.json"
    paths = [folder / f"{j:07d}.eml" for j in range(count)]
    if marker.exists():
        return paths, int(json.loads(marker.read_text())["matches"])
    folder.mkdir(parents=True, exist_ok=True)
    matches = 0
    for j, size in enumerate(corpus.sizes("imapbig", count, low, high)):
        key = f"imapbig-{j}"
        if j % 100 == 37:
            subject = f"benchmark {BIG_NEEDLE} {key}"
            matches += 1
        else:
            subject = f"benchmark message {key}"
        paths[j].write_bytes(corpus.message(key, size, rcpt, subject=subject))
        # Internal dates one second apart; the servers link these very inodes.
        os.utime(paths[j], (IMPORT_TIME + j, IMPORT_TIME + j))
        if owner is not None:
            os.chown(paths[j], *owner)
    marker.write_text(json.dumps({"count": count, "matches": matches}))
    return paths, matches


async def _imap_big(ep: Endpoint, user: str, password: str, expect: int, matches: int,
                    cpu: Callable[[], float]) -> dict[str, Any]:
    names = ("select", "fetch_flags", "search", "fetch_envelope")
    out: dict[str, Any] = {}

    @contextlib.contextmanager
    def timed(name: str, when: str) -> Iterator[None]:
        c0 = cpu()
        t0 = time.perf_counter()
        yield
        out[f"{name}_{when}_s"] = time.perf_counter() - t0
        out[f"{name}_{when}_cpu_s"] = cpu() - c0

    def check(what: str, got: int, want: int) -> None:
        if got != want:
            raise ProtocolError(f"big mailbox: {what} gave {got}, expected {want}")

    for when in ("first", "second"):
        with timed(names[0], when):
            c = await IMAPClient.connect(ep.host, ep.port)
            await c.login(user, password)
            n = await c.select()
        try:
            check("SELECT (EXISTS)", n, expect)
            with timed(names[1], when):
                data = await c.command(b"UID FETCH 1:* (FLAGS)")
            check("UID FETCH 1:* (FLAGS)", data.count(b" FETCH ("), expect)
            with timed(names[2], when):
                data = await c.command(b"SEARCH SUBJECT " + BIG_NEEDLE.encode())
            line = data[data.index(b"* SEARCH") :].split(b"\r\n", 1)[0]
            check(f"SEARCH SUBJECT {BIG_NEEDLE}", len(line.split()) - 2, matches)
            with timed(names[3], when):
                data = await c.command(b"FETCH 1:* (ENVELOPE)")
            check("FETCH 1:* (ENVELOPE)", data.count(b" FETCH ("), expect)
        finally:
            await c.logout()
    return out


async def _wait_messages(ep: Endpoint, user: str, password: str, expect: int, timeout: float) -> float:
    t0 = time.perf_counter()
    c = await IMAPClient.connect(ep.host, ep.port)
    try:
        await c.login(user, password)
        while True:
            data = await c.command(b"STATUS INBOX (MESSAGES)")
            got = int(data[data.index(b"MESSAGES ") + 9 :].split(b")")[0])
            if got >= expect:
                return time.perf_counter() - t0
            if time.perf_counter() - t0 > timeout:
                raise ProtocolError(f"big mailbox: {got} of {expect} messages after {timeout:.0f} s")
            await asyncio.sleep(0.1)
    finally:
        await c.logout()


def wait_messages(ep: Endpoint, user: str, password: str, expect: int, timeout: float = 3600.0) -> float:
    """Seconds until STATUS INBOX shows *expect* messages (Letterbox indexes a big new/
    backlog while it already serves)."""
    return run_async(lambda: _wait_messages(ep, user, password, expect, timeout))


def imap_big(ep: Endpoint, user: str, password: str, expect: int, matches: int,
             cpu: Callable[[], float]) -> dict[str, Any]:
    """Each step twice, on two sessions one after the other: the first time right after
    the server started, the second with whatever the first left cached."""
    cpu0 = _own_cpu()
    out = run_async(lambda: _imap_big(ep, user, password, expect, matches, cpu))
    out["client_cpu_s"] = _own_cpu() - cpu0
    return out


BIG_SORT_COMMANDS = (
    ("sort_date", b"SORT (DATE) UTF-8 ALL", b"* SORT"),
    ("thread_refs", b"THREAD REFERENCES UTF-8 ALL", b"* THREAD"),
)


async def _imap_big_sort(ep: Endpoint, user: str, password: str, expect: int,
                         cpu: Callable[[], float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for when in ("first", "second"):
        c = await IMAPClient.connect(ep.host, ep.port)
        try:
            await c.login(user, password)
            await c.select()
            for name, command, prefix in BIG_SORT_COMMANDS:
                c0 = cpu()
                t0 = time.perf_counter()
                data = await c.command(command)
                out[f"{name}_{when}_s"] = time.perf_counter() - t0
                out[f"{name}_{when}_cpu_s"] = cpu() - c0
                line = data[data.index(prefix) :].split(b"\r\n", 1)[0]
                got = len(re.findall(rb"[0-9]+", line))
                if got != expect:
                    raise ProtocolError(f"big mailbox: {command.decode()} gave {got} messages, expected {expect}")
        finally:
            await c.logout()
    return out


def imap_big_sort(ep: Endpoint, user: str, password: str, expect: int,
                  cpu: Callable[[], float]) -> dict[str, Any]:
    """SORT (DATE) and THREAD REFERENCES over the whole big INBOX, twice, on two sessions
    one after the other (the second with whatever the first left cached)."""
    cpu0 = _own_cpu()
    out = run_async(lambda: _imap_big_sort(ep, user, password, expect, cpu))
    out["client_cpu_s"] = _own_cpu() - cpu0
    return out


# --- IMAP sessions held in IDLE ----------------------------------------------------------


async def _idle(ep: Endpoint, users: list[str], password: str, count: int, wave: int,
                memory: Callable[[], dict[str, int]], settle: float) -> dict[str, Any]:
    held: list[tuple[IMAPClient, bytes]] = []
    samples: list[str] = []

    async def open_one(user: str, i: int) -> None:
        c = await IMAPClient.connect(ep.host, ep.port_for(i))
        try:
            await c.login(user, password)
            await c.select()
            held.append((c, await c.idle()))
        except BaseException:
            c.abort()
            raise

    async def close_one(c: IMAPClient, tag: bytes) -> None:
        try:
            await c.done(tag)
            await c.logout()
        finally:
            c.abort()

    async def in_waves(batch: list[str]) -> None:
        for start in range(0, len(batch), wave):
            part = batch[start : start + wave]
            results = await asyncio.gather(*(open_one(u, start + i) for i, u in enumerate(part)),
                                           return_exceptions=True)
            for r in results:
                if isinstance(r, BaseException):
                    samples.append(f"{type(r).__name__}: {r}")

    fresh = memory()
    # One session per account first, closed again: code loaded on first use, each
    # account's first password check and its index are costs of the account, not of a
    # connection. "fresh" to "before" shows them.
    await in_waves(users[:count])
    while held:
        await close_one(*held.pop())
    await asyncio.sleep(settle)
    before = memory()
    t0 = time.perf_counter()
    await in_waves([users[i % len(users)] for i in range(count)])
    opened_s = time.perf_counter() - t0
    await asyncio.sleep(settle)
    during = memory()
    for start in range(0, len(held), wave):
        await asyncio.gather(*(close_one(c, t) for c, t in held[start : start + wave]),
                             return_exceptions=True)
    n = len(held)
    held.clear()
    await asyncio.sleep(settle)
    after = memory()
    return {
        "sessions": n,
        "errors": count - n,
        "error_samples": _errors(samples),
        "accounts": min(count, len(users)),
        "open_s": opened_s,
        "fresh": fresh,
        "before": before,
        "during": during,
        "after": after,
        "rss_kib_per_session": (during["rss_kib"] - before["rss_kib"]) / n if n else None,
        "pss_kib_per_session": (during["pss_kib"] - before["pss_kib"]) / n if n else None,
    }


def imap_idle(ep: Endpoint, users: list[str], password: str, count: int, wave: int,
              memory: Callable[[], dict[str, int]], settle: float = 2.0) -> dict[str, Any]:
    """*count* sessions (LOGIN, SELECT INBOX, IDLE) opened *wave* at a time and held while
    the server's memory is read; users are taken in turn."""
    cpu0 = _own_cpu()
    out = run_async(lambda: _idle(ep, users, password, count, wave, memory, settle))
    out["client_cpu_s"] = _own_cpu() - cpu0
    return out
