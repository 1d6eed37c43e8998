"""Letterbox against Dovecot on loopback: the same workloads, side by side.

    .venv/bin/python bench/run.py                 # full run (under ten minutes)
    .venv/bin/python bench/run.py --quick         # smoke run (under two minutes)
    .venv/bin/python bench/run.py --only pop3     # one workload (lmtp, pop3, pop3big,
                                                  # imap, imapbig, imapidle, hostile)
    .venv/bin/python bench/run.py --store maildir,postgresql --fronts 1,2
                                                  # also Letterbox on PostgreSQL, with one
                                                  # and with two front ends on one database

Both servers start in a fresh temporary folder on ephemeral 127.0.0.1 ports and are
stopped (and the folder removed) at the end; imapbig, imapidle and hostile restart
them. Results are printed as a table and written as JSON under bench/out/, where the
message files of the big IMAP mailbox are also kept for later runs (bench/out/cache/).
The exit status is 1 when a workload saw errors.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import platform
import resource
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

# Run as a script (python bench/run.py) or as a module (python -m bench.run).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import hostile, workloads  # noqa: E402
from bench.clients import Corpus  # noqa: E402
from bench.fronts import SERVER as PG_SERVER  # noqa: E402
from bench.fronts import PgFronts  # noqa: E402
from bench.servers import (  # noqa: E402
    BenchServer,
    Dovecot,
    Letterbox,
    make_root,
    memory_kib,
    peak_rss_kib,
    remove_root,
    reset_peak_rss,
    rss_now_kib,
)
from bench.workloads import Endpoint  # noqa: E402

WORKLOADS = ("lmtp", "pop3", "pop3big", "imap", "imapbig", "imapidle", "hostile")
PASSWORD = "bench-Passw0rd"
DOMAIN = "example.com"
KB = 1024


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small counts and short runs: a smoke test")
    p.add_argument("--only", default=",".join(WORKLOADS),
                   help="comma-separated workloads to run: " + ", ".join(WORKLOADS) + " (default: all)")
    p.add_argument("--servers", default="letterbox,dovecot",
                   help="comma-separated servers to measure (default: letterbox,dovecot)")
    p.add_argument("--workers", default="1",
                   help="Letterbox worker processes ([server] workers), one Letterbox per value run side "
                        "by side, e.g. 1,2 (default: 1)")
    p.add_argument("--store", default="maildir",
                   help="comma-separated Letterbox stores: maildir (embedded), postgresql "
                        "(default: maildir)")
    p.add_argument("--fronts", default="1",
                   help="front ends on one PostgreSQL database, one Letterbox per value run side by "
                        "side, e.g. 1,2; clients are spread across them (default: 1)")
    p.add_argument("--pg-server", default=PG_SERVER,
                   help="PostgreSQL server where a database per Letterbox is made and dropped "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=20250602, help="seed for message sizes and text")
    p.add_argument("--client-procs", type=int, default=1,
                   help="client processes for the concurrent workloads (default: 1; one "
                        "asyncio process keeps up with either server on loopback, and more "
                        "take CPU from the server on small machines)")
    g = p.add_argument_group("LMTP delivery")
    g.add_argument("--lmtp-senders", default="4,16", help="concurrent senders, one run each (default: 4,16)")
    g.add_argument("--lmtp-messages", type=int, default=1000, help="messages per sender (default: 1000)")
    g.add_argument("--lmtp-min-size", type=int, default=1 * KB, help="bytes (default: 1024)")
    g.add_argument("--lmtp-max-size", type=int, default=100 * KB, help="bytes (default: 102400)")
    g.add_argument("--lmtp-recipients", type=int, default=20, help="accounts delivered to, in turn (default: 20)")
    g = p.add_argument_group("POP3 sessions")
    g.add_argument("--pop3-clients", default="10,50", help="concurrent clients, one run each (default: 10,50)")
    g.add_argument("--pop3-duration", type=float, default=20.0, help="seconds per run (default: 20)")
    g.add_argument("--pop3-users", type=int, default=20, help="mailboxes (default: 20)")
    g.add_argument("--pop3-messages", type=int, default=20, help="messages per mailbox (default: 20)")
    g = p.add_argument_group("POP3 on one big mailbox")
    g.add_argument("--big-messages", type=int, default=10000, help="messages (default: 10000)")
    g.add_argument("--big-max-size", type=int, default=10 * KB,
                   help="largest message in bytes, smallest is 1 KiB (default: 10240)")
    g.add_argument("--big-reps", type=int, default=7, help="repetitions; the median is reported (default: 7)")
    g = p.add_argument_group("IMAP sessions (imaptest-like mix)")
    g.add_argument("--imap-clients", default="10,50",
                   help="concurrent clients, one account each, one run each (default: 10,50)")
    g.add_argument("--imap-duration", type=float, default=30.0, help="seconds per run (default: 30)")
    g.add_argument("--imap-messages", type=int, default=20, help="messages per mailbox (default: 20)")
    g.add_argument("--imap-bodies", type=int, default=3,
                   help="messages fetched with BODY.PEEK[] per session (default: 3)")
    g.add_argument("--imap-min-size", type=int, default=1 * KB, help="bytes, APPENDed and filled (default: 1024)")
    g.add_argument("--imap-max-size", type=int, default=10 * KB, help="bytes (default: 10240)")
    g = p.add_argument_group("IMAP on one big mailbox")
    g.add_argument("--imapbig-messages", type=int, default=100_000, help="messages (default: 100000)")
    g.add_argument("--imapbig-max-size", type=int, default=10 * KB,
                   help="largest message in bytes, smallest is 1 KiB (default: 10240)")
    g.add_argument("--cache", type=Path, default=Path(__file__).resolve().parent / "out" / "cache",
                   help="where the big mailbox's message files are kept between runs "
                        "(default: bench/out/cache)")
    g = p.add_argument_group("IMAP sessions held in IDLE")
    g.add_argument("--idle-sessions", type=int, default=5000, help="sessions held at once (default: 5000)")
    g.add_argument("--idle-users", type=int, default=50,
                   help="accounts the sessions log in to, in turn (default: 50)")
    g.add_argument("--idle-wave", type=int, default=200,
                   help="sessions opened at once, so accept queues do not overflow (default: 200)")
    g.add_argument("--idle-dovecot-shared", type=int, default=1000,
                   help="also measure Dovecot with this many sessions per imap process "
                        "(service imap client_limit; 0: skip; default: 1000)")
    g = p.add_argument_group("IMAP mix under attack (hostile)")
    g.add_argument("--hostile-clients", type=int, default=10,
                   help="benign IMAP mix clients, one account each (default: 10)")
    g.add_argument("--hostile-duration", type=float, default=15.0,
                   help="seconds per measurement (default: 15)")
    g.add_argument("--hostile-attacks", default="all",
                   help="comma-separated attacks, each measured in turn: all (every attacker "
                        "at once) or one of " + ", ".join(hostile.ATTACKS) + " (default: all)")
    g.add_argument("--hostile-slowloris", type=int, default=50,
                   help="connections trickling a byte a second; one in five inside an APPEND "
                        "literal after login, the others before login (default: 50)")
    g.add_argument("--hostile-pipeline", type=int, default=1,
                   help="sessions writing pipelined batches (default: 1)")
    g.add_argument("--hostile-batch", type=int, default=2000,
                   help="commands per pipelined write (default: 2000)")
    g.add_argument("--hostile-tls", type=int, default=100,
                   help="half-open connections to the IMAPS port (default: 100)")
    g.add_argument("--hostile-fetch", type=int, default=4,
                   help="sessions that never read their FETCH 1:* BODY.PEEK[] (default: 4)")
    g.add_argument("--hostile-fetch-messages", type=int, default=20,
                   help="messages in the mailbox those sessions fetch (default: 20)")
    g.add_argument("--hostile-fetch-size", type=int, default=1024 * KB,
                   help="bytes per message of that mailbox (default: 1048576)")
    g.add_argument("--hostile-same-address", action="store_true",
                   help="every client and attacker from 127.0.0.1 (default: each benign client "
                        "and each kind of attacker from an address of its own in 127.0.0.0/8)")
    g = p.add_argument_group("Dovecot")
    g.add_argument("--dovecot-scheme", default="SSHA512", choices=("SSHA512", "ARGON2ID", "PLAIN"),
                   help="password scheme in Dovecot's passwd-file. SSHA512 (default) costs about "
                        "what a Letterbox credential-cache hit does; ARGON2ID stores the very hash "
                        "Letterbox stores, which Dovecot re-verifies on every login")
    g.add_argument("--dovecot-no-pop3-lock", action="store_true",
                   help="run Dovecot with pop3_lock_session = no (its default; no [IN-USE])")
    p.add_argument("--py-spy", metavar="PATH", default=None,
                   help="profile the Letterbox server with this py-spy binary during each "
                        "measurement; profiles go next to the JSON result")
    p.add_argument("--py-spy-format", default="flamegraph", choices=("flamegraph", "speedscope", "raw"),
                   help="py-spy output format (default: flamegraph; raw is collapsed stacks)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (path is printed)")
    p.add_argument("--out", type=Path, default=None, help="JSON result file (default: bench/out/bench-TIME.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.lmtp_messages = min(args.lmtp_messages, 50)
        args.pop3_duration = min(args.pop3_duration, 3.0)
        args.big_messages = min(args.big_messages, 500)
        args.big_reps = min(args.big_reps, 3)
        args.imap_duration = min(args.imap_duration, 3.0)
        args.imapbig_messages = min(args.imapbig_messages, 2000)
        args.idle_sessions = min(args.idle_sessions, 300)
        args.idle_wave = min(args.idle_wave, 100)
        args.hostile_duration = min(args.hostile_duration, 4.0)
    args.only = [w.strip() for w in args.only.split(",") if w.strip()]
    for w in args.only:
        if w not in WORKLOADS:
            p.error(f"--only: unknown workload {w!r} (choose from {', '.join(WORKLOADS)})")
    args.hostile_attacks = [a.strip() for a in args.hostile_attacks.split(",") if a.strip()]
    for a in args.hostile_attacks:
        if a != "all" and a not in hostile.ATTACKS:
            p.error(f"--hostile-attacks: unknown attack {a!r} (choose from all, "
                    f"{', '.join(hostile.ATTACKS)})")
    args.workers = _ints(args.workers) or [1]
    if any(n < 1 for n in args.workers) or len(set(args.workers)) != len(args.workers):
        p.error("--workers: distinct numbers of at least 1, e.g. 1,2")
    args.store = [s.strip().lower() for s in args.store.split(",") if s.strip()]
    for s in args.store:
        if s not in ("maildir", "postgresql"):
            p.error(f"--store: unknown store {s!r} (maildir or postgresql)")
    args.fronts = _ints(args.fronts) or [1]
    if any(n < 1 for n in args.fronts) or len(set(args.fronts)) != len(args.fronts):
        p.error("--fronts: distinct numbers of at least 1, e.g. 1,2")
    args.servers = [s.strip().lower() for s in args.servers.split(",") if s.strip()]
    for s in args.servers:
        if s not in ("letterbox", "dovecot"):
            p.error(f"--servers: unknown server {s!r}")
    return args


# --- reporting ---------------------------------------------------------------------------


def _num(v: float) -> str:
    # Seconds and small per-session figures need more than one decimal to be compared.
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"


class Report:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rows: list[dict[str, Any]] = []
        self.failed = False

    def add(self, workload: str, label: str, metric: str, unit: str, higher_is_better: bool,
            per_server: dict[str, dict[str, Any]]) -> None:
        row = {"workload": workload, "label": label, "metric": metric, "unit": unit,
               "higher_is_better": higher_is_better, "results": per_server}
        lb = per_server.get("Letterbox", {}).get(metric)
        dv = per_server.get("Dovecot", {}).get(metric)
        row["ratio"] = lb / dv if lb is not None and dv else None
        # Each Letterbox (one per --workers value) against Dovecot.
        row["ratios"] = {
            name: r[metric] / dv for name, r in per_server.items()
            if name.startswith("Letterbox") and r.get(metric) is not None and dv
        }
        self.rows.append(row)
        for name, r in per_server.items():
            if r.get("failed") or r.get("errors"):
                self.failed = True
                print(f"  ! {name}: errors in {label}: {r.get('error_samples') or r.get('errors')}",
                      flush=True)
        print(f"  {label}: " + ", ".join(
            f"{name} {_num(r[metric])} {unit} (server CPU {r['server_cpu_s']:.1f} s)"
            for name, r in per_server.items() if r.get(metric) is not None), flush=True)

    def table(self) -> str:
        names = list(dict.fromkeys(n for row in self.rows for n in row["results"]))
        names.sort(key=lambda n: (n == "Dovecot", n != "Letterbox", n))
        lbs = [n for n in names if n.startswith("Letterbox")]
        width = max([34, *(len(row["label"]) for row in self.rows)])
        head = f"{'workload':<{width}} {'unit':<22}" + "".join(f"{n:>14} {'CPU s':>7}" for n in names)
        head += "".join(f" {n + '/Dovecot':>22}" for n in lbs)
        lines = [head, "-" * len(head)]
        for row in self.rows:
            better = "higher is better" if row["higher_is_better"] else "lower is better"
            unit = f"{row['unit']} ({better.split()[0]})"
            cells = ""
            for n in names:
                r = row["results"].get(n)
                if r is None or r.get(row["metric"]) is None:
                    cells += f"{'-':>14} {'-':>7}"
                else:
                    cells += f"{_num(r[row['metric']]):>14} {r['server_cpu_s']:>7.1f}"
            ratios = row.get("ratios", {})
            cells += "".join(f" {_num(ratios[n]):>22}" if n in ratios else f" {'-':>22}" for n in lbs)
            lines.append(f"{row['label']:<{width}} {unit:<22}{cells}")
        lines.append("")
        lines.append("Ratio = Letterbox / Dovecot. For throughput (msg/s, sessions/s, loops/s) above 1 "
                     "means Letterbox is faster;")
        lines.append("for latency (ms, s) and memory (KiB) below 1 means Letterbox is better. CPU s = "
                     "server-side CPU seconds")
        lines.append("(user+system, Dovecot summed over all its processes) spent during that "
                     "measurement or step.")
        return "\n".join(lines)

    def details(self) -> str:
        out = []
        seen: set[int] = set()
        for row in self.rows:
            if row.get("target"):
                out.append(row["target"])
            for name, r in row["results"].items():
                if id(r) in seen:  # a result shown in several rows
                    continue
                seen.add(id(r))
                if row["workload"] == "lmtp":
                    out.append(
                        f"{row['label']}, {name}: {r['delivered']} delivered, {r['failed']} refused "
                        f"in {r['elapsed_s']:.1f} s, server CPU {r['server_user_s']:.1f} user + "
                        f"{r['server_sys_s']:.1f} sys, client CPU {r['client_cpu_s']:.1f} s"
                    )
                    continue
                if row["workload"] == "imap":
                    ops = ", ".join(f"{k} {v:.0f}" for k, v in r["ops_per_s"].items())
                    out.append(
                        f"{row['label']}, {name}: {r['loops']} loops, {r['errors']} errors, "
                        f"{r['commands_per_s']:.0f} commands/s ({ops}), "
                        f"loop p50 {r['loop_ms_p50'] or 0:.0f} ms / p95 {r['loop_ms_p95'] or 0:.0f} ms, "
                        f"server CPU {r['server_user_s']:.1f} user + {r['server_sys_s']:.1f} sys, "
                        f"client CPU {r['client_cpu_s']:.1f} s"
                    )
                    continue
                if row["workload"] == "imapbig" and row["metric"] == "start_s":
                    out.append(
                        f"{row['label']}, {name}: {r['start_s']:.2f} s with the new files "
                        f"({r['baseline_start_s']:.2f} s at its previous start), "
                        f"server CPU {r['server_user_s']:.1f} user + {r['server_sys_s']:.1f} sys"
                    )
                    continue
                if row["workload"] == "imapidle" and row["metric"] == "rss_kib_per_session":
                    mem = [r[k] for k in ("fresh", "before", "during", "after")]
                    out.append(
                        f"{row['label']}, {name}: {r['sessions']} sessions on {r['accounts']} accounts "
                        f"opened in {r['open_s']:.1f} s; fresh / after one login per account / "
                        f"during / after: RSS "
                        + " / ".join(f"{m['rss_kib'] / 1024:.0f}" for m in mem) + " MiB, PSS "
                        + " / ".join(f"{m['pss_kib'] / 1024:.0f}" for m in mem) + " MiB, processes "
                        + " / ".join(str(m["processes"]) for m in mem)
                        + ("" if "postgres_rss_kib" not in mem[0] else
                           "; its PostgreSQL processes: RSS "
                           + " / ".join(f"{m['postgres_rss_kib'] / 1024:.0f}" for m in mem) + " MiB, PSS "
                           + " / ".join(f"{m['postgres_pss_kib'] / 1024:.0f}" for m in mem) + " MiB, processes "
                           + " / ".join(str(m["postgres_processes"]) for m in mem))
                    )
                    continue
                if row["workload"] == "hostile" and row["metric"] == "loops_per_s":
                    out.append(_hostile_details(row["label"], name, r))
                    continue
                if row["workload"] != "pop3":
                    continue
                out.append(
                    f"{row['label']}, {name}: {r['completed']} sessions completed, "
                    f"{r['in_use']} [IN-USE] refusals, {r['errors']} errors, "
                    f"session p50 {r['session_ms_p50'] or 0:.0f} ms / p95 {r['session_ms_p95'] or 0:.0f} ms, "
                    f"RETR {r['retr_mb_per_s']:.1f} MB/s, server CPU {r['server_user_s']:.1f} user + "
                    f"{r['server_sys_s']:.1f} sys, client CPU {r['client_cpu_s']:.1f} s"
                )
        return "\n".join(out)


def _hostile_details(label: str, name: str, r: dict[str, Any]) -> str:
    text = (
        f"{label}, {name}: {r['loops']} loops, {r['errors']} errors, "
        f"loop p50 {r['loop_ms_p50'] or 0:.0f} ms / p95 {r['loop_ms_p95'] or 0:.0f} ms, "
        f"server CPU {r['server_user_s']:.1f} user + {r['server_sys_s']:.1f} sys, "
        f"RSS {r['rss_before_kib'] / 1024:.0f} MiB before, peak {r['rss_peak_kib'] / 1024:.0f} MiB, "
        f"peak PSS {r['pss_peak_kib'] / 1024:.0f} MiB ({r['processes_peak']} processes)"
    )
    attack = r.get("attack")
    if not attack:
        return text
    parts = []
    for kind, k in attack.get("kinds", {}).items():
        part = (f"{kind} {k['live_at_end']} held at the end ({k['opened']} opened, "
                f"{k['closed_by_server']} closed by the server, {k['failed']} failed)")
        if k.get("answered_per_s") is not None:
            part += f", {k['answered_per_s']:.0f} commands answered/s"
        if "unread_kib" in k:
            part += f", {k['unread_kib'] / 1024:.1f} MiB waiting unread"
        parts.append(part)
    text += f"; attackers ({attack.get('client_cpu_s', 0):.1f} s CPU): " + "; ".join(parts)
    if attack.get("error_samples"):
        text += f"; e.g. {attack['error_samples'][0]}"
    return text


def environment(servers: list[BenchServer]) -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "versions": {s.name: s.version() for s in servers},
        "loadavg_start": _loadavg(),
    }


def _raise_nofile(want: int) -> None:
    """Client sockets, and the servers' too: children inherit the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        # Without privileges only the soft limit can grow, up to the hard one.
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _loadavg() -> str:
    # Anything else running on the machine skews the figures; the load average shows it.
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return ""


# --- the run -----------------------------------------------------------------------------


class Profiler:
    """py-spy attached to the Letterbox server for the span of one measurement."""

    SUFFIX = {"flamegraph": "svg", "speedscope": "json", "raw": "txt"}

    def __init__(self, binary: str | None, fmt: str, out_dir: Path, stamp: str) -> None:
        self.binary = binary
        self.fmt = fmt
        self.out_dir = out_dir
        self.stamp = stamp
        self.written: list[str] = []

    def start(self, server: BenchServer, label: str) -> subprocess.Popen[bytes] | None:
        if not self.binary or server.name != "Letterbox":
            return None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        slug = "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")
        out = self.out_dir / f"profile-{self.stamp}-{slug}.{self.SUFFIX[self.fmt]}"
        self.written.append(str(out))
        proc = subprocess.Popen(
            [self.binary, "record", "--pid", str(server.pid), "--rate", "200", "--threads",
             "--format", self.fmt, "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # attaching takes a moment
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None:
            return
        proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


PROFILER: Profiler | None = None


def measure(server: BenchServer, label: str, fn: Any, *fn_args: Any) -> dict[str, Any]:
    prof = PROFILER.start(server, label) if PROFILER else None
    try:
        user0, sys0 = server.cpu()
        result: dict[str, Any] = fn(*fn_args)
        user1, sys1 = server.cpu()
        result["server_user_s"] = user1 - user0
        result["server_sys_s"] = sys1 - sys0
        result["server_cpu_s"] = result["server_user_s"] + result["server_sys_s"]
    finally:
        Profiler.stop(prof)
    return result


def _fill_imap(servers: list[BenchServer], args: argparse.Namespace, corpus: Corpus,
               users: list[str], what: str) -> None:
    plan = [
        (u, f"imap-{u}-{j}", size)
        for u in users
        for j, size in enumerate(corpus.sizes(f"imap-{u}", args.imap_messages,
                                              args.imap_min_size, args.imap_max_size))
    ]
    for s in servers:
        print(f"filling {len(users)} {what} mailboxes on {s.name}", flush=True)
        workloads.fill(endpoint(s, "lmtp"), plan, args.seed)


def endpoint(s: BenchServer, kind: str) -> Endpoint:
    """Where *s* serves *kind*: every front end's port, for the clients to take in turn."""
    first, *more = s.ports(kind)
    return Endpoint("127.0.0.1", first, tuple(more))


def _restart(s: BenchServer, timeout: float = 600.0) -> None:
    s.stop()
    time.sleep(0.5)  # ports and processes wind down
    s.start(timeout=timeout)


def run_imap(args: argparse.Namespace, servers: list[BenchServer], report: Report, corpus: Corpus,
             users: list[str]) -> None:
    _fill_imap(servers, args, corpus, users, "IMAP")
    for n in _ints(args.imap_clients):
        per: dict[str, dict[str, Any]] = {}
        for s in servers:
            per[s.name] = measure(s, f"imap-{n}", workloads.imap, endpoint(s, "imap"), n,
                                  users, PASSWORD, args.imap_messages, args.imap_duration,
                                  args.imap_min_size, args.imap_max_size, args.seed, args.client_procs,
                                  args.imap_bodies)
            time.sleep(1)
        report.add("imap", f"IMAP mix, {n} clients", "loops_per_s", "loops/s", True, per)
        row = report.rows[-1]
        targets = [
            f"{name} {ratio:.2f}x ({'met' if ratio >= 1.5 else 'NOT met'})"
            for name, ratio in row["ratios"].items() if name.endswith("w")
        ]
        if targets:
            row["target"] = (f"Target for the IMAP mix with {n} clients, several workers at least 1.5x "
                             f"Dovecot: " + ", ".join(targets))
            print(f"  {row['target']}", flush=True)
        _fronts_target(row, f"the IMAP mix with {n} clients")


def _fronts_target(row: dict[str, Any], what: str) -> None:
    """Several front ends on one PostgreSQL database are to keep at least Dovecot's rate."""
    met = [f"{name} {ratio:.2f}x ({'met' if ratio >= 1.0 else 'NOT met'})"
           for name, ratio in row["ratios"].items() if name.startswith("Letterbox PG ")]
    if met:
        text = f"Target for {what}, front ends on one PostgreSQL database at least Dovecot's rate: " + ", ".join(met)
        row["target"] = f"{row['target']}\n{text}" if row.get("target") else text
        print(f"  {text}", flush=True)


BIG_STEPS = (
    ("select", "LOGIN+SELECT"),
    ("fetch_flags", "UID FETCH 1:* (FLAGS)"),
    ("search", "SEARCH SUBJECT"),
    ("fetch_envelope", "FETCH 1:* (ENVELOPE)"),
)


def run_imap_big(args: argparse.Namespace, servers: list[BenchServer], report: Report, corpus: Corpus,
                 user: str) -> None:
    t0 = time.time()
    owner = None
    for s in servers:
        if isinstance(s, Dovecot):
            owner = (s.uid, s.gid)
    files, matches = workloads.big_mailbox_files(args.cache, corpus, args.imapbig_messages, KB,
                                                 args.imapbig_max_size, user, owner)
    print(f"IMAP big mailbox: {len(files):,} message files ({matches} with the SEARCH word) in "
          f"{time.time() - t0:.0f} s", flush=True)
    starts: dict[str, dict[str, Any]] = {}
    per: dict[str, dict[str, Any]] = {}
    sorts: dict[str, dict[str, Any]] = {}
    for s in servers:
        baseline = s.start_s
        s.stop()
        s.import_messages(user, files)
        time.sleep(0.5)
        # Letterbox listens at once and indexes the new files meanwhile; Dovecot indexes
        # at the first SELECT (its "first" rows).
        s.start(timeout=3600)
        ready = s.start_s
        if isinstance(s, Letterbox):
            ready += workloads.wait_messages(endpoint(s, "imap"), user, PASSWORD, len(files))
        user_s, sys_s = s.cpu()
        starts[s.name] = {"start_s": s.start_s, "ready_s": ready, "baseline_start_s": baseline,
                          "server_user_s": user_s, "server_sys_s": sys_s, "server_cpu_s": user_s + sys_s}
        print(f"  {s.name} started in {s.start_s:.1f} s, all messages listed after {ready:.1f} s", flush=True)
        per[s.name] = measure(s, "imapbig", workloads.imap_big, endpoint(s, "imap"), user,
                              PASSWORD, len(files), matches, lambda s=s: sum(s.cpu()))
        sorts[s.name] = measure_big_sort(s, user, len(files))
    label = f"{len(files):,}-msg INBOX"
    report.add("imapbig", f"{label}: server start", "start_s", "s", False, starts)
    report.add("imapbig", f"{label}: all listed (STATUS) after start", "ready_s", "s", False, starts)
    for key, title in BIG_STEPS:
        for when in ("first", "second"):
            rows = {name: {"seconds": r[f"{key}_{when}_s"], "server_cpu_s": r[f"{key}_{when}_cpu_s"]}
                    for name, r in per.items()}
            report.add("imapbig", f"{label}: {title}, {when}", "seconds", "s", False, rows)
    report_big_sort(report, label, sorts)


BIG_SORT_STEPS = (
    ("sort_date", "SORT (DATE) UTF-8 ALL"),
    ("thread_refs", "THREAD REFERENCES UTF-8 ALL"),
)


def measure_big_sort(s: BenchServer, user: str, expect: int) -> dict[str, Any]:
    """SORT and THREAD over the big INBOX, right after the imapbig steps."""
    return measure(s, "imapbig-sort", workloads.imap_big_sort, endpoint(s, "imap"), user,
                   PASSWORD, expect, lambda s=s: sum(s.cpu()))


def report_big_sort(report: Report, label: str, sorts: dict[str, dict[str, Any]]) -> None:
    for key, title in BIG_SORT_STEPS:
        for when in ("first", "second"):
            rows = {name: {"seconds": r[f"{key}_{when}_s"], "server_cpu_s": r[f"{key}_{when}_cpu_s"]}
                    for name, r in sorts.items()}
            report.add("imapbig", f"{label}: {title}, {when}", "seconds", "s", False, rows)


def run_imap_idle(args: argparse.Namespace, servers: list[BenchServer], report: Report, corpus: Corpus,
                  users: list[str]) -> None:
    _fill_imap(servers, args, corpus, users, "IDLE")
    per: dict[str, dict[str, Any]] = {}
    for s in servers:
        # A fresh process: memory left over from earlier workloads is not in the baseline.
        _restart(s)
        print(f"opening {args.idle_sessions} IDLE sessions on {s.name}", flush=True)
        per[s.name] = measure(s, "imapidle", workloads.imap_idle, endpoint(s, "imap"), users,
                              PASSWORD, args.idle_sessions, args.idle_wave, _idle_memory(s))
    label = f"IDLE, {args.idle_sessions:,} sessions"
    report.add("imapidle", f"{label}: RSS", "rss_kib_per_session", "KiB/session", False, per)
    report.add("imapidle", f"{label}: PSS", "pss_kib_per_session", "KiB/session", False, per)
    dovecot = next((s for s in servers if isinstance(s, Dovecot)), None)
    if dovecot is None or not args.idle_dovecot_shared:
        return
    shared = args.idle_dovecot_shared
    try:
        dovecot.configure(imap_client_limit=shared)
        _restart(dovecot)
        print(f"opening {args.idle_sessions} IDLE sessions on Dovecot, {shared} per imap process", flush=True)
        result = measure(dovecot, "imapidle-shared", workloads.imap_idle,
                         Endpoint("127.0.0.1", dovecot.imap_port), users, PASSWORD, args.idle_sessions,
                         args.idle_wave, dovecot.memory)
    finally:
        dovecot.configure()
        _restart(dovecot)
    both = {**{k: v for k, v in per.items() if k != "Dovecot"}, "Dovecot": result}
    label = f"{label}, Dovecot {shared} per process"
    report.add("imapidle", f"{label}: RSS", "rss_kib_per_session", "KiB/session", False, both)
    report.add("imapidle", f"{label}: PSS", "pss_kib_per_session", "KiB/session", False, both)


def _idle_memory(s: BenchServer) -> Any:
    """The server's memory; on PostgreSQL also that of the database's PostgreSQL processes
    (shown apart: the session figures are the front ends')."""
    if not isinstance(s, PgFronts):
        return s.memory

    def both() -> dict[str, int]:
        out = s.memory()
        out.update({f"postgres_{k}": v for k, v in s.postgres_memory().items()})
        return out

    return both


def _sample_memory(pid: int, every: float, pss_every: int, stop: Any, out: Any) -> None:
    peak = peak_procs = peak_pss = 0
    for n in itertools.count():
        total, procs = rss_now_kib(pid)
        peak, peak_procs = max(peak, total), max(peak_procs, procs)
        if n % pss_every == 0:
            peak_pss = max(peak_pss, memory_kib(pid)["pss_kib"])
        if stop.wait(every):
            break
    out.send((peak, peak_procs, peak_pss, time.process_time()))


class MemorySampler:
    """A server's memory while a measurement runs, read by a process of its own (not a
    thread, which would take the GIL from the benign clients): VmRSS summed over the
    server's processes four times a second, PSS (smaps_rollup, dearer to read) once a
    second; the largest sums seen. For a server of one process the RSS peak is its VmHWM,
    reset at start (clear_refs), which misses nothing between samples."""

    def __init__(self, pid: int, every: float = 0.25, pss_every: int = 4) -> None:
        self.pid = pid
        self.hwm_reset = False
        self.before = 0
        ctx = multiprocessing.get_context("fork")
        self._stop = ctx.Event()
        self._out, child = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_sample_memory, args=(pid, every, pss_every, self._stop, child),
                                 daemon=True)

    def start(self) -> None:
        self.hwm_reset = reset_peak_rss(self.pid)
        self.before, _ = rss_now_kib(self.pid)
        self._proc.start()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        peak = procs = pss = 0
        cpu = 0.0
        if self._out.poll(30):
            peak, procs, pss, cpu = self._out.recv()
        self._proc.join(timeout=10)
        end, now_procs = rss_now_kib(self.pid)
        procs = max(procs, now_procs)
        hwm = peak_rss_kib(self.pid) if self.hwm_reset and procs == 1 else None
        peak = max(peak, end, hwm or 0)
        pss = max(pss, memory_kib(self.pid)["pss_kib"])
        if procs == 1:
            pss = max(pss, peak)  # one process: its pages are all its own
        return {"rss_before_kib": self.before, "rss_end_kib": end, "rss_peak_kib": peak,
                "pss_peak_kib": pss, "processes_peak": procs,
                "rss_peak_from": "VmHWM" if hwm else "largest sampled VmRSS sum",
                "sampler_cpu_s": cpu}


def _benign_sources(args: argparse.Namespace) -> list[str] | None:
    """Each benign client's own address (127.0.1.1, 127.0.1.2, ...), unless all share 127.0.0.1."""
    if args.hostile_same_address:
        return None
    return [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(args.hostile_clients)]


def _hostile_phase(s: BenchServer, args: argparse.Namespace, users: list[str], phase: str,
                   kinds: tuple[str, ...], attack_users: tuple[str, str, str]) -> dict[str, Any]:
    """The IMAP mix on *s* for --hostile-duration seconds while the *kinds* of attackers
    run (none: the reference), with the server's memory sampled throughout."""
    attackers = None
    if kinds:
        slow, pipe, fetch = attack_users
        attackers = hostile.Attackers(hostile.AttackPlan(
            host="127.0.0.1", imap_port=s.imap_port, imaps_port=s.imaps_port, password=PASSWORD,
            slow_user=slow, pipe_user=pipe, fetch_user=fetch, slowloris=args.hostile_slowloris,
            pipeline=args.hostile_pipeline, batch=args.hostile_batch, tls=args.hostile_tls,
            fetch=args.hostile_fetch, kinds=kinds, same_address=args.hostile_same_address,
        ))
        attackers.fork()
    sampler = MemorySampler(s.pid)
    sampler.start()
    attack: dict[str, Any] | None = None
    try:
        if attackers is not None:
            if not attackers.start():
                print(f"  ! {s.name}: not every attacker was in place after {attackers.setup_s:.0f} s",
                      flush=True)
            time.sleep(1.0)  # the server settles into the attack
        result = measure(s, f"hostile-{phase}", workloads.imap, endpoint(s, "imap"),
                         args.hostile_clients, users, PASSWORD, args.imap_messages,
                         args.hostile_duration, args.imap_min_size, args.imap_max_size, args.seed,
                         args.client_procs, args.imap_bodies, _benign_sources(args))
    finally:
        if attackers is not None:
            attack = attackers.stop()
        memory = sampler.stop()
    result.update(memory)
    result["attack"] = attack
    print(f"  {s.name}, {phase}: {result['loops_per_s']:.0f} loops/s, {result['errors']} errors, "
          f"peak RSS {result['rss_peak_kib'] / 1024:.0f} MiB, PSS {result['pss_peak_kib'] / 1024:.0f} MiB"
          + (f", attackers in place in {attack['setup_s']:.1f} s" if attack else ""), flush=True)
    time.sleep(2)  # the server winds down what the attackers left
    return result


def run_hostile(args: argparse.Namespace, servers: list[BenchServer], report: Report, corpus: Corpus,
                users: list[str], attack_users: tuple[str, str, str], root: Path) -> None:
    from letterbox.server.tls import write_self_signed

    pair = (root / "tls" / "cert.pem", root / "tls" / "key.pem")
    write_self_signed(pair[0], pair[1], "localhost")
    _, pipe_user, fetch_user = attack_users
    small = corpus.sizes("hostile-pipe", args.imap_messages, args.imap_min_size, args.imap_max_size)
    plan = [(pipe_user, f"hostile-pipe-{j}", size) for j, size in enumerate(small)]
    plan += [(fetch_user, f"hostile-fetch-{j}", args.hostile_fetch_size)
             for j in range(args.hostile_fetch_messages)]
    sets: list[tuple[str, tuple[str, ...]]] = [
        (name, hostile.ATTACKS if name == "all" else (name,)) for name in args.hostile_attacks
    ]
    # Every attack between two runs without one: the server's pace drifts over the minutes
    # (Dovecot's first run after filling is its fastest), and so does other load on the
    # machine. What an attack keeps is measured against the mean of its two neighbours.
    phases: list[tuple[str, str, tuple[str, ...]]] = [("ref-0", "no attack", ())]
    for i, (name, kinds) in enumerate(sets):
        phases += [(f"attack-{i}", name, kinds), (f"ref-{i + 1}", "no attack", ())]
    per: dict[str, dict[str, dict[str, Any]]] = {s.name: {} for s in servers}
    try:
        for s in servers:
            # An IMAPS listener, and a fresh process: the memory figures are this workload's.
            s.set_tls(pair)
            _restart(s)
        _fill_imap(servers, args, corpus, users, "hostile-mix")
        for s in servers:
            print(f"filling the attackers' mailboxes on {s.name}", flush=True)
            workloads.fill(endpoint(s, "lmtp"), plan, args.seed)
        for s in servers:
            # Unmeasured: a freshly started server is still filling its caches.
            workloads.imap(endpoint(s, "imap"), args.hostile_clients, users, PASSWORD,
                           args.imap_messages, args.hostile_duration, args.imap_min_size,
                           args.imap_max_size, args.seed, args.client_procs, args.imap_bodies,
                           _benign_sources(args))
            time.sleep(1)
            for key, name, kinds in phases:
                per[s.name][key] = _hostile_phase(s, args, users, name, kinds, attack_users)
    finally:
        for s in servers:
            s.set_tls(None)
            _restart(s)

    label = f"Hostile mix, {args.hostile_clients} clients"

    def rows(key: str) -> dict[str, dict[str, Any]]:
        return {server: r[key] for server, r in per.items()}

    def add_memory(key: str, what: str) -> None:
        for kind, field in (("RSS", "rss_peak_kib"), ("PSS", "pss_peak_kib")):
            report.add("hostile", f"{label}: peak {kind}, {what}", "peak_mib", "MiB", False, {
                server: {"peak_mib": r[key][field] / 1024, "server_cpu_s": r[key]["server_cpu_s"]}
                for server, r in per.items()
            })

    report.add("hostile", f"{label}: no attack, before", "loops_per_s", "loops/s", True, rows("ref-0"))
    add_memory("ref-0", "no attack")
    for i, (name, _) in enumerate(sets):
        key = f"attack-{i}"
        report.add("hostile", f"{label}: under attack ({name})", "loops_per_s", "loops/s", True,
                   rows(key))
        kept: dict[str, dict[str, Any]] = {}
        for server, r in per.items():
            refs = [r[f"ref-{i}"]["loops_per_s"], r[f"ref-{i + 1}"]["loops_per_s"]]
            mean = sum(refs) / 2
            kept[server] = {"kept_pct": 100 * r[key]["loops_per_s"] / mean if mean else 0.0,
                            "reference_loops_per_s": refs, "server_cpu_s": r[key]["server_cpu_s"]}
        report.add("hostile", f"{label}: kept under attack ({name})", "kept_pct", "%", True, kept)
        lb = kept.get("Letterbox", {}).get("kept_pct")
        dv = kept.get("Dovecot", {}).get("kept_pct")
        if lb is not None and dv is not None:
            met = lb >= 90 and lb >= dv
            report.rows[-1]["target"] = (
                f"Target under attack ({name}), Letterbox keeps at least 90% and at least as much "
                f"as Dovecot: {'met' if met else 'NOT met'} (Letterbox {lb:.0f}%, Dovecot {dv:.0f}%; "
                f"each against the mean of its runs without attack just before and after)"
            )
        add_memory(key, f"attack ({name})")
    report.add("hostile", f"{label}: no attack, after", "loops_per_s", "loops/s", True,
               rows(f"ref-{len(sets)}"))


def main(argv: list[str] | None = None) -> int:
    global PROFILER
    args = parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or Path(__file__).resolve().parent / "out" / f"bench-{stamp}.json"
    if args.py_spy:
        PROFILER = Profiler(args.py_spy, args.py_spy_format, out.parent, stamp)
    root = make_root()
    servers: list[BenchServer] = []
    if "letterbox" in args.servers and "maildir" in args.store:
        for n in args.workers:
            servers.append(Letterbox(root / ("letterbox" if n == 1 else f"letterbox-{n}w"), workers=n))
    if "letterbox" in args.servers and "postgresql" in args.store:
        for n in args.fronts:
            servers.append(PgFronts(root / f"letterbox-pg-{n}f", n, args.pg_server))
    if "dovecot" in args.servers:
        servers.append(Dovecot(root / "dovecot", scheme=args.dovecot_scheme,
                               pop3_lock=not args.dovecot_no_pop3_lock))
    report = Report(args)
    corpus = Corpus(args.seed)
    pop3_users = [f"p{i:02d}@{DOMAIN}" for i in range(args.pop3_users)]
    lmtp_rcpts = [f"d{i:02d}@{DOMAIN}" for i in range(args.lmtp_recipients)]
    big_user = f"big@{DOMAIN}"
    imap_users = [f"m{i:02d}@{DOMAIN}" for i in range(max(_ints(args.imap_clients), default=0))]
    idle_users = [f"i{i:04d}@{DOMAIN}" for i in range(args.idle_users)]
    imapbig_user = f"ibig@{DOMAIN}"
    hostile_users = [f"h{i:02d}@{DOMAIN}" for i in range(args.hostile_clients)]
    attack_users = (f"xslow@{DOMAIN}", f"xpipe@{DOMAIN}", f"xfetch@{DOMAIN}")
    if "imapidle" in args.only:
        # Each session is a socket at both ends, and Letterbox also opens each account's index.
        _raise_nofile(2 * args.idle_sessions + 4 * args.idle_users + 1024)
    if "hostile" in args.only:
        _raise_nofile(2 * (args.hostile_slowloris + args.hostile_tls + args.hostile_clients) + 1024)
    env = environment(servers)
    print(f"Letterbox vs Dovecot on loopback — {env['cpus']} CPUs ({env['cpu_model']}), "
          f"Python {env['python']}, {env['versions'].get('Dovecot', '')}, "
          f"load average {env['loadavg_start']}", flush=True)
    print(f"workloads: {', '.join(args.only)}; temp folder {root}", flush=True)
    try:
        for s in servers:
            s.add_users(pop3_users + lmtp_rcpts + [big_user] + imap_users + idle_users + [imapbig_user]
                        + hostile_users + list(attack_users), PASSWORD)
            s.start()
        eps = {s.name: (s, endpoint(s, "lmtp"), endpoint(s, "pop3")) for s in servers}

        if "lmtp" in args.only:
            print(f"LMTP delivery: {args.lmtp_messages} messages per sender, "
                  f"{args.lmtp_min_size}-{args.lmtp_max_size} bytes", flush=True)
            for n in _ints(args.lmtp_senders):
                per: dict[str, dict[str, Any]] = {}
                for name, (s, lmtp_ep, _) in eps.items():
                    per[name] = measure(s, f"lmtp-{n}", workloads.lmtp, lmtp_ep, n, args.lmtp_messages,
                                        args.lmtp_min_size, args.lmtp_max_size, lmtp_rcpts,
                                        args.seed, args.client_procs)
                    time.sleep(1)
                report.add("lmtp", f"LMTP delivery, {n} senders", "messages_per_s", "msg/s", True, per)
                _fronts_target(report.rows[-1], f"LMTP delivery with {n} senders")

        if "pop3" in args.only:
            plan = [
                (u, f"pop3-{u}-{j}", size)
                for u in pop3_users
                for j, size in enumerate(corpus.sizes(f"pop3-{u}", args.pop3_messages,
                                                      args.lmtp_min_size, args.lmtp_max_size))
            ]
            for name, (_s, lmtp_ep, _) in eps.items():
                print(f"filling {len(pop3_users)} POP3 mailboxes on {name}", flush=True)
                workloads.fill(lmtp_ep, plan, args.seed)
            for n in _ints(args.pop3_clients):
                per = {}
                for name, (s, _, pop3_ep) in eps.items():
                    per[name] = measure(s, f"pop3-{n}", workloads.pop3, pop3_ep, n, pop3_users, PASSWORD,
                                        args.pop3_messages, args.pop3_duration, args.client_procs)
                    time.sleep(1)
                report.add("pop3", f"POP3 sessions, {n} clients", "sessions_per_s", "sessions/s",
                           True, per)

        if "pop3big" in args.only:
            sizes = corpus.sizes("big", args.big_messages, KB, args.big_max_size)
            plan = [(big_user, f"big-{j}", size) for j, size in enumerate(sizes)]
            for name, (_s, lmtp_ep, _) in eps.items():
                print(f"filling a {len(plan)}-message mailbox on {name}", flush=True)
                t0 = time.time()
                workloads.fill(lmtp_ep, plan, args.seed, concurrency=4)
                print(f"  ({time.time() - t0:.0f} s)", flush=True)
            per_stat: dict[str, dict[str, Any]] = {}
            for name, (s, _, pop3_ep) in eps.items():
                per_stat[name] = measure(s, "pop3big", workloads.pop3_big, pop3_ep, big_user, PASSWORD,
                                         args.big_reps, args.big_messages)
            label = f"{args.big_messages:,}-msg mailbox"
            report.add("pop3big", f"{label}: login+STAT", "login_stat_ms", "ms", False, per_stat)
            report.add("pop3big", f"{label}: UIDL", "uidl_ms", "ms", False, per_stat)
        if "imap" in args.only:
            run_imap(args, servers, report, corpus, imap_users)
        if "imapbig" in args.only:
            run_imap_big(args, servers, report, corpus, imapbig_user)
        if "imapidle" in args.only:
            run_imap_idle(args, servers, report, corpus, idle_users)
        if "hostile" in args.only:
            run_hostile(args, servers, report, corpus, hostile_users, attack_users, root)
    except Exception:
        traceback.print_exc()
        report.failed = True
        for s in servers:
            print(f"--- last lines of {s.name} log ({s.log}):", file=sys.stderr)
            try:
                print("\n".join(s.log.read_text(errors="replace").splitlines()[-20:]), file=sys.stderr)
            except OSError:
                pass
    finally:
        for s in servers:
            try:
                s.stop()
            except Exception:
                traceback.print_exc()
        for s in servers:
            if isinstance(s, PgFronts) and not args.keep:
                try:
                    s.drop()
                except Exception:
                    traceback.print_exc()
        if args.keep:
            print(f"kept {root}")
        else:
            remove_root(root)

    env["loadavg_end"] = _loadavg()
    print()
    print(report.table())
    details = report.details()
    if details:
        print()
        print(details)
    print(f"load average at the start {env['loadavg_start']}, at the end {env['loadavg_end']}")
    if PROFILER and PROFILER.written:
        print("profiles: " + ", ".join(PROFILER.written))
    out.parent.mkdir(parents=True, exist_ok=True)
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    out.write_text(json.dumps({"environment": env, "parameters": params, "rows": report.rows,
                               "ok": not report.failed}, indent=2))
    print(f"\nresults written to {out}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
