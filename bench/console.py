"""The web console at hosting scale: the accounts page and the API's account list with
10,000 accounts, and the IMAP mix with and without the console being used.

    .venv/bin/python bench/console.py                 # both (about two minutes)
    .venv/bin/python bench/console.py --no-imap-mix   # the page timings only

Accounts are written straight into the directory (one argon2id hash for all) with
made-up usage in the server's usage table, so the figures are those of the listing
queries and the page rendering, not of filling 10,000 mailboxes. Every request is timed
on the client (loopback, a kept-alive connection); p50 and p95 of each are printed
beside the target of 200 ms. The IMAP mix (bench/run.py's `imap` workload) runs once
with the console off and once with it on while a client loads the dashboard and an
accounts page twice a second, and the two throughputs are compared (target: at most 5%
lower). Figures are printed, not asserted: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench import workloads  # noqa: E402
from bench.clients import Corpus  # noqa: E402
from bench.servers import Letterbox, make_root, remove_root  # noqa: E402
from bench.workloads import Endpoint  # noqa: E402

ADMIN, ADMIN_PASSWORD = "bench", "bench-admin-password"
TARGET_MS = 200.0


def populate(server: Letterbox, count: int, seed: int) -> str:
    """*count* accounts with made-up usage, an administrator; returns an API token."""
    from letterbox.auth.directory import Directory
    from letterbox.auth.passwords import hash_password
    from letterbox.config import load

    settings = load(server.config)
    rng = random.Random(seed)
    directory = Directory(settings.data_dir / "accounts.sqlite")
    try:
        hashed = hash_password("bench-user-password")
        now = time.time()
        rows, usage = [], []
        for i in range(count):
            address = f"user{i:05d}@{'abcdefghij'[i % 10]}.example"
            quota = rng.choice((0, 1 << 30, 2 << 30, 5 << 30))
            rows.append((address, hashed, 1, "imap pop3", quota, 0, now - i, f"bench{i}", "", ""))
            usage.append((address, rng.randint(0, 20_000), rng.randint(0, 3 << 30)))
        db = directory.db
        db.execute("BEGIN")
        db.executemany(f"INSERT OR IGNORE INTO accounts ({directory._COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       rows)
        db.execute("COMMIT")
        directory.record_usage(usage)
        if not directory.admins.exists(ADMIN):
            directory.admins.add(ADMIN, ADMIN_PASSWORD)
        return directory.admins.new_token(ADMIN, "bench")
    finally:
        directory.close()


def browser_session(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30)
    form = client.get("/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None
    r = client.post("/login", data={"csrf": token.group(1), "username": ADMIN, "password": ADMIN_PASSWORD})
    assert r.status_code == 303, r.text
    return client


def timed(client: httpx.Client, path: str, params: dict[str, Any], reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        r = client.get(path, params=params)
        out.append(1000 * (time.perf_counter() - t0))
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
    return out


def page_timings(server: Letterbox, token: str, reps: int) -> list[tuple[str, float, float]]:
    queries = [
        ("first page, by address", {}),
        ("largest first", {"sort": "bytes", "descending": "true"}),
        ("over 80% of quota", {"over_percent": 80, "sort": "percent", "descending": "true"}),
        ("search", {"search": "user12"}),
        ("page 150", {"offset": 7450}),
    ]
    rows = []
    with closing(browser_session(server.web_url)) as page, httpx.Client(
        base_url=server.web_url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as api:
        for label, params in queries:
            timed(page, "/admin/accounts", params, 3)  # warm
            ms = timed(page, "/admin/accounts", params, reps)
            rows.append((f"accounts page: {label}", statistics.median(ms), sorted(ms)[int(0.95 * (len(ms) - 1))]))
            api_params = dict(params)
            if "offset" in api_params:
                api_params["limit"] = 50
            timed(api, "/api/v1/accounts", api_params, 3)
            ms = timed(api, "/api/v1/accounts", api_params, reps)
            rows.append((f"API account list: {label}", statistics.median(ms), sorted(ms)[int(0.95 * (len(ms) - 1))]))
    return rows


def _poll(url: str, token: str, stop: threading.Event) -> None:
    """An administrator watching: the dashboard and the largest accounts, twice a second."""
    with httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as c:
        while not stop.wait(0.5):
            c.get("/api/v1/dashboard")
            c.get("/api/v1/accounts", params={"sort": "bytes", "descending": "true"})


def imap_mix(args: argparse.Namespace, root: Path) -> tuple[float, float]:
    """Loops per second of the IMAP mix: console off, then on and in use."""
    users = [f"m{i:02d}@mix.example" for i in range(args.clients)]
    corpus = Corpus(args.seed)
    plan = [(u, f"imap-{u}-{j}", size) for u in users
            for j, size in enumerate(corpus.sizes(f"imap-{u}", 20, 1024, 10 * 1024))]
    rates = []
    for web in (False, True):
        server = Letterbox(root / ("web-on" if web else "web-off"))
        server.web = web
        server.configure()
        server.add_users(users, "mix-password")
        token = populate(server, 100, args.seed) if web else ""
        server.start()
        stop = threading.Event()
        poller = None
        try:
            workloads.fill(Endpoint("127.0.0.1", server.lmtp_port), plan, args.seed)
            if web:
                poller = threading.Thread(target=_poll, args=(server.web_url, token, stop), daemon=True)
                poller.start()
            result = workloads.imap(Endpoint("127.0.0.1", server.imap_port), args.clients, users, "mix-password",
                                    20, args.duration, 1024, 10 * 1024, args.seed, 2)
            rates.append(result["loops_per_s"])
            print(f"IMAP mix, console {'on and polled' if web else 'off'}: {result['loops_per_s']:.1f} loops/s"
                  f" ({result['errors']} errors)", flush=True)
        finally:
            stop.set()
            if poller is not None:
                poller.join()
            server.stop()
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=30, help="requests timed per query")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-imap-mix", action="store_true", help="skip the IMAP throughput comparison")
    parser.add_argument("--clients", type=int, default=10, help="IMAP mix clients")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of each IMAP mix run")
    args = parser.parse_args()
    root = make_root("letterbox-console-bench-")
    try:
        server = Letterbox(root / "accounts")
        server.web = True
        server.configure()
        token = populate(server, args.accounts, args.seed)
        server.start()
        try:
            print(f"{args.accounts} accounts, console at {server.web_url}", flush=True)
            rows = page_timings(server, token, args.reps)
        finally:
            server.stop()
        print(f"\n{'request':<44} {'p50 ms':>8} {'p95 ms':>8}  target {TARGET_MS:.0f} ms")
        for label, p50, p95 in rows:
            verdict = "ok" if p95 < TARGET_MS else "SLOW"
            print(f"{label:<44} {p50:8.1f} {p95:8.1f}  {verdict}")
        if not args.no_imap_mix:
            off, on = imap_mix(args, root)
            change = 100.0 * (on - off) / off if off else 0.0
            print(f"\nIMAP mix with the console in use: {change:+.1f}% ({'ok' if change >= -5 else 'more than 5% lower'})")
    finally:
        remove_root(root)


if __name__ == "__main__":
    main()
