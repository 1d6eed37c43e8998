"""Bytes on disk for mail sent to several recipients: Letterbox on PostgreSQL, Letterbox
on its embedded Maildir store, and Dovecot's Maildir, in one run.

    .venv/bin/python bench/storage.py                 # 300 messages, each to 5 recipients
    .venv/bin/python bench/storage.py --messages 1000 --dsn postgresql://root@127.0.0.1:5432

Every message goes to every recipient in one delivery: to Letterbox through the store API
(one parse, one append per recipient, as its LMTP handler does), to Dovecot through one
LMTP transaction with all the recipients. Sizes: `du --bytes` of the mail folders (file
contents, indexes and folder overhead), and for PostgreSQL the tables with their indexes
and TOAST after VACUUM (WAL, which PostgreSQL recycles, is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

# Run as a script (python bench/storage.py) or as a module (python -m bench.storage).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.servers import Dovecot, make_root, remove_root  # noqa: E402
from letterbox.mime import parse_message  # noqa: E402
from letterbox.store.maildir import MaildirStore  # noqa: E402
from letterbox.store.postgres import PostgresStore  # noqa: E402

PASSWORD = "bench-Passw0rd"
_STEMS = ("mail", "server", "store", "message", "folder", "delivery", "quota", "report", "meeting",
          "project", "budget", "invoice", "review", "draft", "schedule", "team", "notes", "agenda")
WORDS = [f"{w}{'s' * (i % 3)}" for i, w in enumerate(_STEMS * 40)]


def corpus(n: int, seed: int = 1) -> list[bytes]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        body = "\r\n".join(" ".join(rnd.choice(WORDS) for _ in range(12)) for _ in range(rnd.randint(20, 300)))
        out.append((f"From: Sender {i} <s{i}@example.com>\r\nTo: team@example.org\r\nSubject: Report {i}\r\n"
                    f"Message-ID: <{i}.bench@example.com>\r\nDate: Mon, 7 Dec 2026 21:52:25 -0800\r\n\r\n"
                    f"{body}\r\n").encode())
    return out


def du(path: Path) -> int:
    return int(subprocess.check_output(["du", "-sb", str(path)]).split()[0])


async def letterbox(store: MaildirStore | PostgresStore, messages: list[bytes], rcpts: list[str]) -> float:
    accounts = [await store.account(r) for r in rcpts]
    t0 = time.perf_counter()
    for m in messages:
        parsed = parse_message(m)
        await asyncio.gather(*[a.append("INBOX", m, parsed=parsed) for a in accounts])
    return time.perf_counter() - t0


async def postgres_size(dsn: str, db: str, messages: list[bytes], rcpts: list[str]) -> tuple[int, float]:
    admin = await asyncpg.connect(f"{dsn}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{db}"')
        store = await PostgresStore.open(f"{dsn}/{db}")
        took = await letterbox(store, messages, rcpts)
        await store.close()
        conn = await asyncpg.connect(f"{dsn}/{db}")
        try:
            await conn.execute("VACUUM ANALYZE")
            size = await conn.fetchval(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND c.relkind = 'r'"
            )
        finally:
            await conn.close()
        return int(size), took
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()


def _reply(f: Any, expect: bytes = b"2") -> None:
    while True:
        line = f.readline()
        if not line.startswith(expect):
            raise RuntimeError(f"LMTP: {line!r}")
        if line[3:4] != b"-":
            return


def _command(f: Any, line: bytes, expect: bytes = b"2") -> None:
    f.write(line + b"\r\n")
    f.flush()
    _reply(f, expect)


def dovecot_size(root: Path, messages: list[bytes], rcpts: list[str]) -> tuple[int, float]:
    dove = Dovecot(root / "dovecot")
    dove.configure()
    dove.add_users(rcpts, PASSWORD)
    dove.start()
    try:
        t0 = time.perf_counter()
        with socket.create_connection(("127.0.0.1", dove.lmtp_port)) as sock:
            lmtp = sock.makefile("rwb")
            _reply(lmtp)
            _command(lmtp, b"LHLO bench")
            for m in messages:
                _command(lmtp, b"MAIL FROM:<sender@example.com>")
                for r in rcpts:
                    _command(lmtp, b"RCPT TO:<%s>" % r.encode())
                _command(lmtp, b"DATA", expect=b"354")
                lmtp.write(re.sub(rb"(?m)^\.", b"..", m) + b".\r\n")
                lmtp.flush()
                for _ in rcpts:  # LMTP (RFC 2033 4.2): one reply per recipient after DATA
                    _reply(lmtp)
        took = time.perf_counter() - t0
    finally:
        dove.stop()
    return du(root / "dovecot" / "mail"), took


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=300)
    p.add_argument("--recipients", type=int, default=5)
    p.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432",
                   help="a PostgreSQL server where a scratch database may be made (default: %(default)s)")
    args = p.parse_args()
    messages = corpus(args.messages)
    rcpts = [f"user{i}@example.org" for i in range(args.recipients)]
    raw = sum(len(m) for m in messages) * len(rcpts)
    root = make_root("letterbox-storage-")
    try:
        pg, pg_s = asyncio.run(postgres_size(args.dsn, "letterbox_bench_storage", messages, rcpts))
        store = MaildirStore(root / "letterbox" / "mail")
        md_s = asyncio.run(_close_after(store, messages, rcpts))
        md = du(root / "letterbox" / "mail")
        dv, dv_s = dovecot_size(root, messages, rcpts)
    finally:
        remove_root(root)
    n = len(messages) * len(rcpts)
    print(f"{len(messages)} messages, each to {len(rcpts)} recipients: {raw:,} bytes of mail delivered")
    print(f"{'store':<28}{'bytes':>14}{'of the mail':>13}{'vs Dovecot':>12}{'deliveries/s':>14}")
    for name, size, took in (("Letterbox, PostgreSQL", pg, pg_s), ("Letterbox, Maildir", md, md_s),
                             ("Dovecot, Maildir", dv, dv_s)):
        print(f"{name:<28}{size:>14,}{size / raw:>13.2f}{size / dv:>12.2f}{n / took:>14.0f}")


async def _close_after(store: MaildirStore, messages: list[bytes], rcpts: list[str]) -> float:
    try:
        return await letterbox(store, messages, rcpts)
    finally:
        await store.close()


if __name__ == "__main__":
    main()
