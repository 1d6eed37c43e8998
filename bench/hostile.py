"""Attackers for the hostile mix, run in a process of their own against one server.

- slowloris: connections that trickle one byte a second. Four in five do so before login
  (CAPABILITY and NOOP in turn, byte by byte, never idle long enough to time out); the
  others log in and trickle the message of an APPEND with a synchronizing literal.
- pipeline: sessions that write batches of pipelined commands (NOOP, LIST "" *, FETCH 1:*
  (FLAGS) in turn), each batch in one write, with up to *window* batches unanswered,
  while reading the answers.
- tls: connections to the IMAPS port that send nothing (even ones) or half a ClientHello
  (odd ones) and hold.
- fetch: sessions that send FETCH 1:* BODY.PEEK[] on a mailbox of large messages and
  never read the answer (the socket is no longer read from once the command is sent).

A connection the server closes is opened again half a second later, so the pressure lasts
the whole measurement. The process has its own event loop: the benign clients' loop is
not slowed by it, only the CPU is shared.

Each kind of attacker connects from an address of its own in 127.0.0.0/8 (SOURCES), as
an attacker does not share its address with the users; per-address defences (limits,
login penalties) then fall on the attacker only. same_address=True sends everything from
127.0.0.1 instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import itertools
import multiprocessing
import queue
import resource
import ssl
import struct
import termios
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

from .clients import IMAPClient, ProtocolError
from .workloads import NETWORK_ERRORS, run_async

ATTACKS = ("slowloris", "pipeline", "tls", "fetch")
KINDS = ("slowloris", "slowloris_literal", "pipeline", "tls", "fetch")
"""Attackers as reported: slowloris is split into before login and inside a literal."""

PIPELINE_COMMANDS = (b"NOOP", b'LIST "" *', b"FETCH 1:* (FLAGS)")
LITERAL_SIZE = 1024 * 1024
SOURCES = {"slowloris": "127.0.0.2", "slowloris_literal": "127.0.0.2", "pipeline": "127.0.0.3",
           "tls": "127.0.0.4", "fetch": "127.0.0.5"}
"""Where each kind connects from. Logins from one address are made one at a time:
Letterbox delays a login that starts while another from the same address is still being
checked (its penalty counts attempts from their start)."""


@dataclass
class AttackPlan:
    host: str
    imap_port: int
    imaps_port: int
    password: str
    slow_user: str
    pipe_user: str
    fetch_user: str
    slowloris: int = 50
    literal_every: int = 5
    """One slowloris connection in this many trickles inside a literal after login."""
    pipeline: int = 1
    batch: int = 2000
    window: int = 2
    tls: int = 100
    fetch: int = 4
    period: float = 1.0
    """Seconds between two trickled bytes."""
    kinds: tuple[str, ...] = field(default_factory=tuple)
    same_address: bool = False
    """Connect from 127.0.0.1 like the benign clients, not from SOURCES."""

    def source(self, kind: str) -> str:
        return "127.0.0.1" if self.same_address else SOURCES[kind]


def client_hello() -> bytes:
    """A real TLS ClientHello, as the first bytes a client sends."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def _unread(writer: asyncio.StreamWriter) -> int:
    """Bytes waiting in the socket's receive queue."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", raw)[0])


async def _discard(reader: asyncio.StreamReader) -> None:
    while await reader.read(1 << 16):
        pass


async def _trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: Iterator[int],
                   period: float) -> None:
    """Write one byte of *data* per *period* and discard what comes back, until the server
    closes the connection (or *data* ends)."""
    eof = asyncio.ensure_future(_discard(reader))
    try:
        for byte in data:
            if writer.is_closing():
                return
            writer.write(bytes((byte,)))
            done, _ = await asyncio.wait({eof}, timeout=period)
            if done:
                eof.result()
                return
    finally:
        eof.cancel()
        with contextlib.suppress(BaseException):
            await eof


async def _first(*coros: Coroutine[Any, Any, None]) -> None:
    """Run *coros* until one of them ends; cancel the others; raise what it raised."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            t.result()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Swarm:
    """All attackers of one plan, in one event loop."""

    def __init__(self, plan: AttackPlan) -> None:
        self.plan = plan
        self.stats: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
        self.live: Counter[str] = Counter()
        self.samples: list[str] = []
        self.expected = 0
        self.armed_once = 0
        self.ready = asyncio.Event()
        self.ready_at = 0.0
        self.answered_at_ready = 0
        self.fetchers: list[asyncio.StreamWriter] = []
        self.logins = {addr: asyncio.Semaphore(1) for addr in {plan.source(k) for k in KINDS}}
        self.hello = client_hello()

    # --- one connection of each kind; arm() once it is in its attack state ---------------

    async def _login(self, kind: str, user: str) -> IMAPClient:
        source = self.plan.source(kind)
        async with self.logins[source]:
            c = await IMAPClient.connect(self.plan.host, self.plan.imap_port, source)
            try:
                await c.login(user, self.plan.password)
            except BaseException:
                c.abort()
                raise
        return c

    async def slowloris(self, arm: Callable[[], None]) -> None:
        reader, writer = await asyncio.open_connection(
            self.plan.host, self.plan.imap_port, local_addr=(self.plan.source("slowloris"), 0))
        try:
            await reader.readuntil(b"\r\n")
            arm()
            commands = (b"a%d %s\r\n" % (k, b"NOOP" if k % 2 else b"CAPABILITY")
                        for k in itertools.count(1))
            await _trickle(reader, writer, itertools.chain.from_iterable(commands), self.plan.period)
        finally:
            writer.close()

    async def slowloris_literal(self, arm: Callable[[], None]) -> None:
        c = await self._login("slowloris_literal", self.plan.slow_user)
        try:
            c.writer.write(b"s1 APPEND INBOX {%d}\r\n" % LITERAL_SIZE)
            line = await c.reader.readuntil(b"\r\n")
            if not line.startswith(b"+"):
                raise ProtocolError(f"APPEND -> {line[:200]!r}")
            arm()
            message = itertools.chain(b"Subject: slow\r\n\r\n", itertools.repeat(ord("x")))
            await _trickle(c.reader, c.writer, message, self.plan.period)
        finally:
            c.abort()

    async def pipeline(self, arm: Callable[[], None]) -> None:
        plan = self.plan
        payload = b"".join(b"z " + PIPELINE_COMMANDS[k % len(PIPELINE_COMMANDS)] + b"\r\n"
                           for k in range(plan.batch))
        c = await self._login("pipeline", plan.pipe_user)
        stats = self.stats["pipeline"]
        sent = answered = 0
        wake = asyncio.Event()

        async def read() -> None:
            nonlocal answered
            carry = b"\r\n"
            while True:
                data = await c.reader.read(1 << 20)
                if not data:
                    return
                buf = carry + data
                # Every command has the tag "z"; untagged lines start with "* ".
                n = buf.count(b"\r\nz ")
                answered += n
                stats["answered"] += n
                stats["bytes_in"] += len(data)
                carry = buf[-3:]
                wake.set()

        async def write() -> None:
            nonlocal sent
            while True:
                while sent - answered >= plan.window * plan.batch:
                    wake.clear()
                    await wake.wait()
                c.writer.write(payload)
                sent += plan.batch
                stats["sent"] += plan.batch
                await c.writer.drain()

        try:
            await c.select()
            arm()
            await _first(read(), write())
        finally:
            c.abort()

    async def tls(self, arm: Callable[[], None], partial: bool) -> None:
        reader, writer = await asyncio.open_connection(
            self.plan.host, self.plan.imaps_port, local_addr=(self.plan.source("tls"), 0))
        try:
            if partial:
                writer.write(self.hello[: len(self.hello) // 2])
            arm()
            await _discard(reader)
        finally:
            writer.close()

    async def fetch(self, arm: Callable[[], None]) -> None:
        c = await self._login("fetch", self.plan.fetch_user)
        try:
            await c.select()
            transport: Any = c.writer.transport
            transport.pause_reading()
            c.send(b"FETCH 1:* BODY.PEEK[]")
            arm()
            self.fetchers.append(c.writer)
            # Held until the attack ends: with nothing read, a close goes unseen too.
            await asyncio.Event().wait()
        finally:
            c.abort()

    # --- keeping them up -----------------------------------------------------------------

    async def keep(self, kind: str, one: Callable[[Callable[[], None]], Awaitable[None]],
                   delay: float) -> None:
        """Run *one* connection of *kind* again and again: the server closing it is counted,
        and so is a connection that failed before it got into its attack state."""
        await asyncio.sleep(delay)
        stats = self.stats[kind]
        first = True
        while True:
            armed = False

            def arm() -> None:
                nonlocal armed, first
                armed = True
                stats["opened"] += 1
                self.live[kind] += 1
                if first:
                    first = False
                    self.armed_once += 1
                    if self.armed_once == self.expected:
                        self.ready_at = time.monotonic()
                        self.answered_at_ready = self.stats["pipeline"]["answered"]
                        self.ready.set()

            try:
                await one(arm)
                stats["closed" if armed else "failed"] += 1
            except NETWORK_ERRORS + (asyncio.TimeoutError,) as e:
                stats["closed" if armed else "failed"] += 1
                if len(self.samples) < 50:
                    self.samples.append(f"{kind}: {type(e).__name__}: {e}")
            finally:
                if armed:
                    self.live[kind] -= 1
            await asyncio.sleep(0.5)

    def tasks(self) -> list[asyncio.Task[None]]:
        plan = self.plan
        jobs: list[tuple[str, Callable[[Callable[[], None]], Awaitable[None]]]] = []
        if "slowloris" in plan.kinds:
            for i in range(plan.slowloris):
                if plan.literal_every and i % plan.literal_every == plan.literal_every - 1:
                    jobs.append(("slowloris_literal", self.slowloris_literal))
                else:
                    jobs.append(("slowloris", self.slowloris))
        if "pipeline" in plan.kinds:
            jobs += [("pipeline", self.pipeline)] * plan.pipeline
        if "tls" in plan.kinds:
            jobs += [("tls", functools.partial(self.tls, partial=bool(i % 2))) for i in range(plan.tls)]
        if "fetch" in plan.kinds:
            jobs += [("fetch", self.fetch)] * plan.fetch
        self.expected = len(jobs)
        # Spread over a quarter of a second, so accept queues do not overflow.
        return [asyncio.ensure_future(self.keep(kind, one, 0.25 * j / max(1, len(jobs))))
                for j, (kind, one) in enumerate(jobs)]

    def report(self, stopped_at: float) -> dict[str, Any]:
        span = stopped_at - self.ready_at if self.ready.is_set() else 0.0
        kinds: dict[str, dict[str, Any]] = {}
        for kind in KINDS:
            st = self.stats[kind]
            if not st:
                continue
            row: dict[str, Any] = {
                "opened": st["opened"], "closed_by_server": st["closed"],
                "failed": st["failed"], "live_at_end": self.live[kind],
            }
            if kind == "pipeline":
                row["commands_sent"] = st["sent"]
                row["commands_answered"] = st["answered"]
                row["mb_received"] = st["bytes_in"] / 1e6
                row["answered_per_s"] = ((st["answered"] - self.answered_at_ready) / span
                                         if span else None)
            if kind == "fetch":
                row["unread_kib"] = sum(_unread(w) for w in self.fetchers) // 1024
            kinds[kind] = row
        return {"ready": self.ready.is_set(), "held_s": span, "kinds": kinds,
                "error_samples": list(dict.fromkeys(self.samples))[:5]}


def _child(plan: AttackPlan, go: Any, stop: Any, out: Any) -> None:
    go.wait()

    async def main() -> dict[str, Any]:
        swarm = Swarm(plan)
        tasks = swarm.tasks()
        announced = False
        while not stop.is_set():
            if not announced and swarm.ready.is_set():
                out.put(("ready", None))
                announced = True
            await asyncio.sleep(0.05)
        result = swarm.report(time.monotonic())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return result

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    result = run_async(main)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    result["client_cpu_s"] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    out.put(("done", result))


class Attackers:
    """The attacker process: fork() it, then start() (returns once every connection is in
    its attack state, or after *timeout*), then stop() for its figures."""

    def __init__(self, plan: AttackPlan) -> None:
        ctx = multiprocessing.get_context("fork")
        self._go = ctx.Event()
        self._stop = ctx.Event()
        self._out: Any = ctx.Queue()
        self._proc = ctx.Process(target=_child, args=(plan, self._go, self._stop, self._out),
                                 daemon=True)
        self.setup_s = 0.0
        self.ready = False

    def fork(self) -> None:
        self._proc.start()

    def start(self, timeout: float = 60.0) -> bool:
        t0 = time.monotonic()
        self._go.set()
        try:
            kind, _ = self._out.get(timeout=timeout)
            self.ready = kind == "ready"
        except queue.Empty:
            self.ready = False
        self.setup_s = time.monotonic() - t0
        return self.ready

    def stop(self) -> dict[str, Any]:
        self._go.set()
        self._stop.set()
        result: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                kind, value = self._out.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if kind == "done":
                result = value
                break
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        result["setup_s"] = self.setup_s
        result["ready"] = self.ready and bool(result.get("ready"))
        return result
