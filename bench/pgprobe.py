"""Where the PostgreSQL store's time goes: statements and round trips per operation.

    PYTHONPATH=src .venv/bin/python -m bench.pgprobe [--loops 5] [--profile FILE]

Starts one front end (bench/pgcount.py: asyncpg counted) on a database of its own,
fills an account as the IMAP stress mix does (20 messages), then runs the mix's loop
(LOGIN, SELECT, FETCH 1:* FLAGS, 3 pipelined BODY.PEEK[], 2 STOREs, EXPUNGE, APPEND,
LOGOUT) and LMTP deliveries to one and to four recipients, one client at a time, and
prints the counts and the front end's CPU per operation averaged over --loops (the
first loop, which warms the statement caches, is left out), and the CPU of the
PostgreSQL processes per IMAP loop (sampled from /proc: ticks of 10 ms). With --profile, a cProfile of the measured loops
(front end only) is written to FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from .clients import Corpus, IMAPClient, LMTPClient
from .fronts import PgFronts
from .servers import _tail, cpu_seconds, postgres_backends

PASSWORD = "bench-password"
SENDER = "probe@example.org"


class Counted:
    """The front end, started under bench.pgcount, and its counters."""

    def __init__(self, front: Any, out: Path, profile: str | None) -> None:
        self.front, self.out = front, out
        env = dict(os.environ, LETTERBOX_PGCOUNT=str(out))
        if profile:
            env["LETTERBOX_PGPROFILE"] = profile
        with open(front.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bench.pgcount", "-c", str(front.config), "serve"],
                                         stdout=log, stderr=subprocess.STDOUT, cwd=front.root, env=env)
        listeners = front.root / "run" / "listeners.json"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                data = json.loads(listeners.read_text())
                if data.get("pid") == self.proc.pid:
                    self.imap = int(data["listeners"]["imap"][0].rsplit(":", 1)[1])
                    self.lmtp = int(data["listeners"]["lmtp"][0].rsplit(":", 1)[1])
                    return
            except (OSError, ValueError):
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"the front end did not start:\n{_tail(front.log)}")

    async def take(self) -> dict[str, Any]:
        """What was counted since the last take."""
        self.out.unlink(missing_ok=True)
        os.kill(self.proc.pid, signal.SIGUSR1)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if self.out.exists():
                data: dict[str, Any] = json.loads(self.out.read_text())
                return data
        raise RuntimeError("the front end wrote no counts")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def pg_cpu(database: str) -> float:
    """CPU seconds of the PostgreSQL processes serving *database* now."""
    return sum(sum(cpu_seconds(pid)) for pid in postgres_backends(database))


async def probe(srv: Counted, loops: int, corpus: Corpus, database: str) -> dict[str, list[dict[str, Any]]]:
    per: dict[str, list[dict[str, Any]]] = defaultdict(list)
    pg_total = 0.0
    user = "imap00@example.com"
    pool = [corpus.message(f"probe-append-{k}", 4000, user) for k in range(8)]
    await srv.take()
    for loop in range(loops + 1):
        async def step(name: str, _loop: int = loop) -> None:
            got = await srv.take()
            if _loop:
                per[name].append(got)

        pg0 = pg_cpu(database)
        c = await IMAPClient.connect("127.0.0.1", srv.imap)
        await step("connect")
        await c.login(user, PASSWORD)
        await step("LOGIN")
        n = await c.select()
        await step("SELECT")
        await c.command(b"FETCH 1:* (FLAGS)")
        await step("FETCH 1:* FLAGS")
        tags = [c.send(b"FETCH %d BODY.PEEK[]" % m) for m in (1, 2, 3)]
        await c.responses(tags)
        await step("3x FETCH BODY.PEEK[]")
        tags = [c.send(b"STORE %d +FLAGS (\\Seen)" % (n // 2)), c.send(b"STORE %d +FLAGS (\\Deleted)" % n)]
        await c.responses(tags)
        await step("2x STORE")
        await c.command(b"EXPUNGE")
        await step("EXPUNGE")
        await c.append(b"INBOX", pool[loop % len(pool)])
        await step("APPEND")
        await c.command(b"LOGOUT")
        c.abort()
        await asyncio.sleep(0.05)
        await step("LOGOUT")
        if loop:
            pg_total += pg_cpu(database) - pg0
        lm = await LMTPClient.connect("127.0.0.1", srv.lmtp)
        await lm.deliver(SENDER, "d00@example.com", corpus.message(f"probe-lmtp-{loop}", 4000, "d00@example.com"))
        await step("LMTP 1 rcpt")
        await lm._command(f"MAIL FROM:<{SENDER}>\r\n".encode(), 250)
        rcpts = [f"d{i:02d}@example.com" for i in range(4)]
        for r in rcpts:
            await lm._command(f"RCPT TO:<{r}>\r\n".encode(), 250)
        await lm._command(b"DATA\r\n", 354)
        lm.writer.write(corpus.message(f"probe-lmtp4-{loop}", 4000, rcpts[0]))
        lm.writer.write(b".\r\n")
        for _ in rcpts:
            await lm.reader.readline()
        await lm.quit()
        await step("LMTP 4 rcpts")
    per["PostgreSQL CPU per IMAP loop"] = [{"totals": {}, "cpu_s": pg_total / loops, "sql": {}}]
    return per


def report(per: dict[str, list[dict[str, Any]]]) -> None:
    print(f"{'operation':24} {'round trips':>11} {'statements':>10} {'prepares':>8} {'xacts':>5} {'CPU ms':>7}")
    whole: Counter[str] = Counter()
    sql: dict[str, Counter[str]] = {}
    imap_ops = 0
    for name, runs in per.items():
        t: Counter[str] = Counter()
        cpu = 0.0
        sql[name] = Counter()
        for r in runs:
            t.update(r["totals"])
            cpu += r["cpu_s"]
            sql[name].update(r["sql"])
        k = len(runs)
        print(f"{name:24} {t['round_trips'] / k:11.1f} {t['statements'] / k:10.1f} {t['prepares'] / k:8.1f}"
              f" {t['transactions'] / k:5.1f} {1000 * cpu / k:7.1f}")
        if not name.startswith(("LMTP", "PostgreSQL")):
            whole.update({kk: v / k for kk, v in t.items()})
            whole["cpu_ms"] += 1000 * cpu / k
            imap_ops += 1
    print(f"{'IMAP loop (sum)':24} {whole['round_trips']:11.1f} {whole['statements']:10.1f}"
          f" {whole['prepares']:8.1f} {whole['transactions']:5.1f} {whole['cpu_ms']:7.1f}")
    print()
    for name, counts in sql.items():
        k = len(per[name])
        print(f"-- {name}")
        for text, n in counts.most_common():
            print(f"   {n / k:5.1f}  {text}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loops", type=int, default=5)
    p.add_argument("--profile", help="write a cProfile of the measured loops here")
    args = p.parse_args()
    corpus = Corpus(1)
    with tempfile.TemporaryDirectory(prefix="letterbox-pgprobe-") as tmp:
        root = Path(tmp)
        fronts = PgFronts(root, 1)
        fronts._make_database()
        srv: Counted | None = None
        try:
            users = ["imap00@example.com"] + [f"d{i:02d}@example.com" for i in range(4)]
            fronts.add_users(users, PASSWORD)
            srv = Counted(fronts.fronts[0], root / "counts.json", args.profile)

            async def fill_and_probe() -> dict[str, list[dict[str, Any]]]:
                lm = await LMTPClient.connect("127.0.0.1", srv.lmtp)
                for j, size in enumerate(corpus.sizes("fill", 20, 2000, 20000)):
                    await lm.deliver(SENDER, users[0], corpus.message(f"fill-{j}", size, users[0]))
                await lm.quit()
                return await probe(srv, args.loops, corpus, fronts.database)

            per = asyncio.run(fill_and_probe())
            report(per)
        finally:
            if srv is not None:
                srv.stop()
            fronts.drop()


if __name__ == "__main__":
    main()
