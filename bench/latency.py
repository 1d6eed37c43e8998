"""Round-trip latency, Letterbox against Dovecot on loopback: p50 and p99 of each.

    .venv/bin/python bench/latency.py            # full run
    .venv/bin/python bench/latency.py --quick    # smaller mailboxes, fewer samples

What a user feels is the time from a click, or one line of a script, to the answer. The
clients here are blocking sockets with Nagle's algorithm on, as imaplib and most scripts
have it, sending each command the way such a client does (a synchronizing literal, then
its CRLF in a second write). Both servers run side by side in one temporary folder, set
up as bench/run.py sets them up; the big INBOXes are linked from bench/out/cache/. The
first samples of each row warm caches and are not counted. Results are printed as a
table and written as JSON under bench/out/.
"""

from __future__ import annotations

import argparse
import functools
import imaplib
import json
import math
import multiprocessing
import os
import random
import select
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a script (python bench/latency.py) or as a module (python -m bench.latency).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import workloads  # noqa: E402
from bench.clients import Corpus  # noqa: E402
from bench.run import _raise_nofile, environment  # noqa: E402
from bench.servers import BenchServer, Dovecot, Letterbox, make_root, remove_root  # noqa: E402
from bench.workloads import Endpoint  # noqa: E402

PASSWORD = "bench-Passw0rd"
DOMAIN = "example.com"
KB = 1024
SEED = 20250602
NEEDLE = workloads.BIG_NEEDLE
SMALL = 200
"""Messages in the mailbox of the FETCH, STORE, SEARCH and NOOP rows."""


def user(name: str) -> str:
    return f"{name}@{DOMAIN}"


# --- a blocking client, Nagle on ---------------------------------------------------------


class Conn:
    """A line-oriented blocking client on one TCP socket (Nagle's algorithm left on)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.buf = bytearray()

    def fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def line(self) -> bytes:
        while (i := self.buf.find(b"\r\n")) < 0:
            self.fill()
        out = bytes(self.buf[: i + 2])
        del self.buf[: i + 2]
        return out

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


class IMAP(Conn):
    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.n = 0
        if not self.line().startswith(b"* OK"):
            raise RuntimeError("IMAP greeting")

    def tag(self) -> bytes:
        self.n += 1
        return b"t%d" % self.n

    def until(self, tag: bytes) -> bytes:
        """The responses up to *tag*'s completion (literals read by their size)."""
        head = tag + b" "
        out = bytearray()
        while True:
            line = self.line()
            if line.startswith(head):
                if line[len(head) : len(head) + 2] != b"OK":
                    raise RuntimeError(f"{line[:200]!r}")
                return bytes(out)
            out += line
            size = line[line.rfind(b"{") + 1 : -3].rstrip(b"+") if line.endswith(b"}\r\n") else b""
            if size.isdigit():
                out += self.exact(int(size))

    def command(self, text: bytes) -> bytes:
        tag = self.tag()
        self.send(tag + b" " + text + b"\r\n")
        return self.until(tag)

    def literal(self, head: bytes, literal: bytes) -> bytes:
        """`head {n}`, the continuation, then the literal and the CRLF in two writes."""
        tag = self.tag()
        self.send(tag + b" " + head + b" {%d}\r\n" % len(literal))
        if not self.line().startswith(b"+"):
            raise RuntimeError("no continuation")
        self.send(literal)
        self.send(b"\r\n")
        return self.until(tag)

    def login(self, name: str) -> IMAP:
        self.command(b"LOGIN " + user(name).encode() + b" " + PASSWORD.encode())
        return self

    def select(self) -> int:
        data = self.command(b"SELECT INBOX")
        end = data.index(b" EXISTS\r\n")
        return int(data[data.rindex(b"* ", 0, end) + 2 : end])

    def logout(self) -> None:
        try:
            self.command(b"LOGOUT")
        except (OSError, RuntimeError):
            pass
        self.close()


def smtp_reply(c: Conn) -> bytes:
    while (line := c.line())[3:4] == b"-":
        pass
    return line


def lmtp_transaction(c: Conn, rcpt: str, message: bytes) -> None:
    """MAIL, RCPT, DATA each awaited, then the message with its final dot in one write."""
    for command in (b"MAIL FROM:<bench@example.org>\r\n", b"RCPT TO:<" + rcpt.encode() + b">\r\n",
                    b"DATA\r\n"):
        c.send(command)
        reply = smtp_reply(c)
    if not reply.startswith(b"354"):
        raise RuntimeError(f"DATA -> {reply!r}")
    c.send(message + b".\r\n")


def lmtp_open(port: int) -> Conn:
    c = Conn(port)
    smtp_reply(c)
    c.send(b"LHLO bench.example.org\r\n")
    smtp_reply(c)
    return c


# --- the rows ----------------------------------------------------------------------------


class Bench:
    """The rows on one server: each returns its round trips in seconds."""

    def __init__(self, s: BenchServer, args: argparse.Namespace, corpus: Corpus) -> None:
        self.s = s
        self.args = args
        self.rng = random.Random(SEED)
        self.message = corpus.message("latency", 2 * KB, user("app"))

    def samples(self, n: int, one: Callable[[], float], budget: float = 0.0) -> list[float]:
        """*n* samples after the warm-up ones; with a *budget* (seconds), fewer (at least 3)
        when the row takes longer than that."""
        warmup = min(self.args.warmup, 1) if budget else self.args.warmup
        end = time.monotonic() + budget
        out: list[float] = []
        while len(out) < n + warmup:
            out.append(one())
            if budget and len(out) >= warmup + 3 and time.monotonic() > end:
                break
        return out[warmup:]

    def timed(self, n: int, step: Callable[[], object]) -> list[float]:
        def one() -> float:
            t0 = time.perf_counter()
            step()
            return time.perf_counter() - t0
        return self.samples(n, one)

    def login(self, literal: bool) -> list[float]:
        def one() -> float:
            c = IMAP(self.s.imap_port)
            t0 = time.perf_counter()
            if literal:
                c.literal(b"LOGIN " + user("lat").encode(), PASSWORD.encode())
            else:
                c.login("lat")
            t = time.perf_counter() - t0
            c.logout()
            return t
        return self.samples(self.args.samples, one)

    def select(self, name: str, expect: int) -> list[float]:
        c = IMAP(self.s.imap_port).login(name)

        def step() -> None:
            if c.select() != expect:
                raise RuntimeError(f"SELECT of {name}: not {expect} messages")
        try:
            return self.timed(self.args.slow_samples, step)
        finally:
            c.logout()

    def append_imaplib(self) -> list[float]:
        c = imaplib.IMAP4("127.0.0.1", self.s.imap_port)
        c.login(user("app"), PASSWORD)
        try:
            return self.timed(self.args.samples, lambda: c.append("INBOX", None, None, self.message))
        finally:
            c.logout()

    def append_literal_plus(self) -> list[float]:
        c = IMAP(self.s.imap_port).login("app")

        def step() -> None:
            tag = c.tag()
            c.send(tag + b" APPEND INBOX {%d+}\r\n" % len(self.message) + self.message + b"\r\n")
            c.until(tag)
        try:
            return self.timed(self.args.samples, step)
        finally:
            c.logout()

    def on_small(self, make: Callable[[IMAP], Callable[[], object]]) -> list[float]:
        c = IMAP(self.s.imap_port).login("lat")
        c.select()
        try:
            return self.timed(self.args.samples, make(c))
        finally:
            c.logout()

    def fetch_body(self) -> list[float]:
        return self.on_small(lambda c: lambda: c.command(b"FETCH %d BODY.PEEK[]" % self.rng.randint(1, SMALL)))

    def store(self) -> list[float]:
        signs = iter(b"+-" * (self.args.samples + self.args.warmup))
        return self.on_small(lambda c: lambda: c.command(
            b"STORE %d %cFLAGS (\\Flagged)" % (self.rng.randint(1, SMALL), next(signs))))

    def search_literal(self) -> list[float]:
        return self.on_small(lambda c: lambda: c.literal(b"SEARCH SUBJECT", NEEDLE.encode()))

    def idle_push(self) -> list[float]:
        """From the LMTP 250 to `* N EXISTS` at a session idling on the recipient's INBOX
        (0 when the EXISTS came first)."""
        idle = IMAP(self.s.imap_port).login("idle")
        idle.select()
        tag = idle.tag()
        idle.send(tag + b" IDLE\r\n")
        while not idle.line().startswith(b"+"):
            pass
        lmtp = lmtp_open(self.s.lmtp_port)

        def one() -> float:
            lmtp_transaction(lmtp, user("idle"), self.message)
            got: dict[str, float] = {}
            deadline = time.perf_counter() + 120
            while len(got) < 2:
                ready, _, _ = select.select([c.sock for c, k in ((lmtp, "250"), (idle, "exists"))
                                             if k not in got], [], [], deadline - time.perf_counter())
                now = time.perf_counter()
                if not ready:
                    raise RuntimeError(f"IDLE push: nothing after 120 s ({got})")
                if lmtp.sock in ready:
                    lmtp.fill()
                    if b"\r\n" in lmtp.buf:
                        if not lmtp.line().startswith(b"250"):
                            raise RuntimeError("LMTP delivery refused")
                        got["250"] = now
                if idle.sock in ready:
                    idle.fill()
                    if (i := idle.buf.find(b" EXISTS\r\n")) >= 0:
                        del idle.buf[: i + 9]
                        got["exists"] = now
            return max(0.0, got["exists"] - got["250"])
        try:
            return self.samples(self.args.slow_samples, one, self.args.idle_budget)
        finally:
            idle.send(b"DONE\r\n")
            idle.until(tag)
            idle.logout()
            lmtp.close()

    def crowd(self, count: int) -> list[IMAP]:
        """*count* sessions idling on the crowd accounts, opened one after the other, so
        that no login waits behind others from the same address (Letterbox checks a few
        at a time per network, and parallel ones may pay the failure penalty)."""
        held: list[IMAP] = []
        for k in range(count):
            c = IMAP(self.s.imap_port)
            name = user(f"c{k % self.args.crowd_users:02d}").encode()
            c.send(b"a LOGIN %s %s\r\nb SELECT INBOX\r\nc IDLE\r\n" % (name, PASSWORD.encode()))
            while not (line := c.line()).startswith(b"+"):
                if line.startswith((b"a NO", b"b NO", b"c NO", b"a BAD", b"b BAD", b"c BAD")):
                    raise RuntimeError(f"crowd session: {line!r}")
            held.append(c)
        return held

    def idle_push_crowd(self) -> list[float]:
        held = self.crowd(self.args.crowd)
        try:
            return self.idle_push()
        finally:
            for c in held:
                c.close()

    def pop3_first_byte(self) -> list[float]:
        """USER, PASS, RETR 1, each awaited, until the message's first line."""
        def one() -> float:
            c = Conn(self.s.pop3_port)
            c.line()
            t0 = time.perf_counter()
            for command in (b"USER " + user("pop").encode(), b"PASS " + PASSWORD.encode(), b"RETR 1"):
                c.send(command + b"\r\n")
                if not c.line().startswith(b"+OK"):
                    raise RuntimeError(f"POP3 {command.split()[0]!r} refused")
            c.line()
            t = time.perf_counter() - t0
            c.send(b"QUIT\r\n")  # and wait: the mailbox is locked until the session ends
            while not c.line().startswith(b"+OK"):
                pass
            c.close()
            return t
        return self.samples(self.args.samples, one)

    def lmtp_one(self) -> list[float]:
        c = lmtp_open(self.s.lmtp_port)

        def step() -> None:
            lmtp_transaction(c, user("sink"), self.message)
            if not smtp_reply(c).startswith(b"250"):
                raise RuntimeError("LMTP delivery refused")
        try:
            return self.timed(self.args.samples, step)
        finally:
            c.close()

    def noop_beside_envelope(self, name: str, expect: int) -> tuple[list[float], list[float]]:
        """NOOP round trips in one session while another session, of another account,
        repeats `FETCH 1:* (ENVELOPE)` of *expect* messages for `envelope_seconds` (in a
        process of its own: this one only times NOOPs). Returns NOOPs and FETCHes."""
        ctx = multiprocessing.get_context("fork")
        ready = ctx.Event()
        results = ctx.Queue()
        proc = ctx.Process(target=_fetch_envelopes,
                           args=(self.s.imap_port, name, expect, self.args.envelope_seconds, ready, results))
        c = IMAP(self.s.imap_port).login("lat")
        c.select()
        proc.start()
        try:
            ready.wait(600)
            noops: list[float] = []
            while proc.is_alive() or noops == []:
                t0 = time.perf_counter()
                c.command(b"NOOP")
                noops.append(time.perf_counter() - t0)
                time.sleep(0.005)
            fetches: list[float] = results.get(timeout=60)
        finally:
            proc.join(60)
            c.logout()
        return noops, fetches


def _fetch_envelopes(port: int, name: str, expect: int, seconds: float, ready: Any, results: Any) -> None:
    c = IMAP(port).login(name)
    c.select()
    ready.set()
    took: list[float] = []
    end = time.perf_counter() + seconds
    while not took or time.perf_counter() < end:
        tag = c.tag()
        t0 = time.perf_counter()
        c.send(tag + b" FETCH 1:* (ENVELOPE)\r\n")
        # Count the responses and look for the tagged line in what arrives, keeping
        # only a tail (a match may straddle two reads).
        done = b"\r\n" + tag + b" OK"
        tail = b""
        count = 0
        while True:
            data = c.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("server closed the connection")
            count += (tail[-7:] + data).count(b" FETCH (")
            tail = (tail + data)[-256:]
            i = tail.find(done)
            if i >= 0 and tail.endswith(b"\r\n") and tail.find(b"\r\n", i + 2) >= 0:
                break
        took.append(time.perf_counter() - t0)
        if count < expect:
            raise RuntimeError(f"FETCH 1:* (ENVELOPE): {count} of {expect}")
    results.put(took)
    c.logout()


# --- the run -----------------------------------------------------------------------------


def pct(xs: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def fetch_summary(took: list[float]) -> str:
    return f"{len(took)} FETCHes, median {pct(took, 50):.3f} s, slowest {max(took):.3f} s"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller mailboxes and fewer samples (a few minutes)")
    p.add_argument("--servers", default="letterbox,dovecot", help="comma-separated (default: letterbox,dovecot)")
    p.add_argument("--workers", default=str(os.cpu_count() or 1),
                   help="Letterbox worker processes ([server] workers), one Letterbox per value run side by "
                        "side, e.g. 1,2 (default: the server's own default, one per core)")
    p.add_argument("--samples", type=int, default=200, help="samples of the quick rows (default: 200)")
    p.add_argument("--slow-samples", type=int, default=50,
                   help="samples of SELECT and IDLE push (default: 50)")
    p.add_argument("--warmup", type=int, default=3, help="first samples of each row not counted (default: 3)")
    p.add_argument("--select-sizes", default="10000,100000",
                   help="INBOXes SELECTed, in messages; the largest is also FETCHed (default: 10000,100000)")
    p.add_argument("--idle-budget", type=float, default=180.0,
                   help="seconds an IDLE push row may take; a slower one stops after 3 samples "
                        "(default: 180)")
    p.add_argument("--crowd", type=int, default=1000, help="other sessions idling (default: 1000)")
    p.add_argument("--crowd-users", type=int, default=50, help="accounts they log in to (default: 50)")
    p.add_argument("--envelope-seconds", type=float, default=10.0,
                   help="how long FETCH 1:* (ENVELOPE) is repeated while NOOPs are timed (default: 10)")
    p.add_argument("--cache", type=Path, default=Path(__file__).resolve().parent / "out" / "cache",
                   help="where big INBOXes' message files are kept between runs (default: bench/out/cache)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (path is printed)")
    p.add_argument("--out", type=Path, default=None, help="JSON result (default: bench/out/latency-TIME.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.samples = min(args.samples, 40)
        args.slow_samples = min(args.slow_samples, 10)
        args.select_sizes = "1000,10000"
        args.crowd = min(args.crowd, 200)
        args.envelope_seconds = min(args.envelope_seconds, 3.0)
        args.idle_budget = min(args.idle_budget, 60.0)
    args.sizes = sorted(int(x) for x in args.select_sizes.split(",") if x.strip())
    args.servers = [x.strip().lower() for x in args.servers.split(",") if x.strip()]
    try:
        args.workers = sorted({int(x) for x in args.workers.split(",") if x.strip()})
    except ValueError:
        p.error("--workers: numbers of at least 1, e.g. 1,2")
    if not args.workers or args.workers[0] < 1:
        p.error("--workers: numbers of at least 1, e.g. 1,2")
    return args


def _select(b: Bench, n: int) -> list[float]:
    return b.select(f"sel{n}", n)


def rows(args: argparse.Namespace) -> list[tuple[str, Callable[[Bench], list[float]]]]:
    out: list[tuple[str, Callable[[Bench], list[float]]]] = [
        ("LOGIN", lambda b: b.login(False)),
        ("LOGIN, password as a literal", lambda b: b.login(True)),
    ]
    for n in args.sizes:
        out.append((f"SELECT, {n:,}-message INBOX", functools.partial(_select, n=n)))
    out += [
        ("APPEND 2 KB, imaplib (synchronizing literal)", Bench.append_imaplib),
        ("APPEND 2 KB, LITERAL+", Bench.append_literal_plus),
        ("FETCH one message BODY.PEEK[]", Bench.fetch_body),
        ("STORE +/-FLAGS one message", Bench.store),
        (f"SEARCH SUBJECT {{literal}}, {SMALL} messages", Bench.search_literal),
        ("IDLE push: LMTP 250 to * N EXISTS", Bench.idle_push),
        (f"IDLE push, {args.crowd:,} other sessions idling", Bench.idle_push_crowd),
        ("POP3 USER/PASS/RETR to first byte", Bench.pop3_first_byte),
        ("LMTP one message (2 KB)", Bench.lmtp_one),
    ]
    return out


def setup(servers: list[BenchServer], args: argparse.Namespace, corpus: Corpus) -> None:
    crowd = [user(f"c{i:02d}") for i in range(args.crowd_users)]
    names = [user(n) for n in ("lat", "app", "idle", "pop", "sink")] + crowd
    names += [user(f"sel{n}") for n in args.sizes]
    owner = next(((s.uid, s.gid) for s in servers if isinstance(s, Dovecot)), None)
    big = {n: workloads.big_mailbox_files(args.cache, corpus, n, KB, 10 * KB, user("ibig"), owner)[0]
           for n in args.sizes}
    plan = [(user("lat"), f"lat-{j}", size) for j, size in enumerate(corpus.sizes("lat", SMALL, KB, 10 * KB))]
    plan += [(user("pop"), f"pop-{j}", size) for j, size in enumerate(corpus.sizes("pop", 20, KB, 10 * KB))]
    plan += [(u, f"{u}-0", KB) for u in [user("idle"), *crowd]]
    for s in servers:
        s.add_users(names, PASSWORD)
        print(f"starting {s.name}", flush=True)
        s.start()
        workloads.fill(Endpoint("127.0.0.1", s.lmtp_port), plan, SEED)
        # Each big INBOX's account is used once before its files come, so that Letterbox
        # takes its folder as this account's (not one left by an earlier account).
        for n in args.sizes:
            IMAP(s.imap_port).login(f"sel{n}").logout()
        s.stop()
        for n, files in big.items():
            s.import_messages(user(f"sel{n}"), files)
        time.sleep(0.5)
        s.start(timeout=3600)
        for n in args.sizes:
            if isinstance(s, Letterbox):  # it indexes new/ while it serves
                workloads.wait_messages(Endpoint("127.0.0.1", s.imap_port), user(f"sel{n}"), PASSWORD, n)
            c = IMAP(s.imap_port).login(f"sel{n}")
            c.select()  # Dovecot builds its index here
            c.command(b"FETCH 1:* (ENVELOPE)")  # and reads the headers
            c.logout()


def table(results: dict[str, dict[str, dict[str, float]]], names: list[str]) -> str:
    """One column pair per server; with Dovecot last, each other server's ratio to it."""
    width = max((len(r) for r in results), default=10) + 2
    base = names[-1] if len(names) > 1 and names[-1] == Dovecot.name else None
    others = [n for n in names if n != base] if base else []
    head = f"{'round trip (ms)':<{width}}" + "".join(f"{n + ' p50':>17}{'p99':>9}" for n in names)
    head += "".join(f"{'ratio p50':>11}{'p99':>7}" for _ in others)
    lines = [head, "-" * len(head)]
    for label, per in results.items():
        line = f"{label:<{width}}"
        for n in names:
            r = per.get(n)
            line += f"{r['p50']:>17.2f}{r['p99']:>9.2f}" if r else f"{'-':>17}{'-':>9}"
        for n in others:
            a, b = per.get(n), per.get(base or "")
            if a and b and b["p50"] and b["p99"]:
                line += f"{a['p50'] / b['p50']:>11.2f}{a['p99'] / b['p99']:>7.2f}"
            else:
                line += f"{'-':>11}{'-':>7}"
        lines.append(line)
    if others:
        lines += ["", f"ratio = {' / '.join(others)} against {base}, in that order: below 1 answers sooner."]
    for label, per in results.items():
        if len({r["n"] for r in per.values()}) > 1:  # a row cut short by its time budget
            lines.append(f"{label}: " + ", ".join(f"{n} {r['n']:.0f}" for n, r in per.items()) + " samples")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or Path(__file__).resolve().parent / "out" / f"latency-{stamp}.json"
    root = make_root("letterbox-latency-")
    servers: list[BenchServer] = []
    if "letterbox" in args.servers:
        for n in args.workers:
            servers.append(Letterbox(root / f"letterbox-{n}w", workers=n))
    if "dovecot" in args.servers:
        servers.append(Dovecot(root / "dovecot"))
    corpus = Corpus(SEED)
    _raise_nofile(2 * args.crowd + 2048)
    env = environment(servers)
    print(f"latency on loopback: {env['cpus']} CPUs ({env['cpu_model']}), Python {env['python']}, "
          f"{env['versions'].get('Dovecot', '')}, load average {env['loadavg_start']}", flush=True)
    print("command: " + " ".join(sys.argv), flush=True)
    results: dict[str, dict[str, dict[str, float]]] = {}
    raw: dict[str, dict[str, list[float]]] = {}
    fetches: dict[str, list[float]] = {}
    failed = False

    def record(label: str, name: str, xs: list[float]) -> None:
        results.setdefault(label, {})[name] = {"p50": 1000 * pct(xs, 50), "p99": 1000 * pct(xs, 99),
                                               "n": len(xs)}
        raw.setdefault(label, {})[name] = [round(1000 * x, 3) for x in xs]
        r = results[label][name]
        print(f"  {label}, {name}: p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms ({len(xs)} samples)", flush=True)

    try:
        setup(servers, args, corpus)
        for label, fn in rows(args):
            for s in servers:
                record(label, s.name, fn(Bench(s, args, corpus)))
        biggest = args.sizes[-1]
        label = f"NOOP beside FETCH 1:* (ENVELOPE) of {biggest:,}"
        for s in servers:
            noops, took = Bench(s, args, corpus).noop_beside_envelope(f"sel{biggest}", biggest)
            fetches[s.name] = took
            record(label, s.name, noops)
            print(f"    ({fetch_summary(took)})", flush=True)
    except Exception:
        import traceback

        traceback.print_exc()
        failed = True
    finally:
        for s in servers:
            s.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            remove_root(root)
    names = [s.name for s in servers]
    print()
    print(table(results, names))
    for n, took in fetches.items():
        print(f"{n}: FETCH 1:* (ENVELOPE) beside the NOOPs: {fetch_summary(took)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    out.write_text(json.dumps({"environment": env, "parameters": params, "results": results,
                               "samples_ms": raw, "envelope_fetch_s": fetches, "ok": not failed}, indent=2))
    print(f"\nresults written to {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
