"""Fuzz a Letterbox server for a while: seeded random and mutated command streams for
every IMAP, POP3, LMTP and SMTP state (the generator and checks of
tests/server/test_fuzz_server.py, run for longer).

    .venv/bin/python tools/fuzz_server.py --seconds 600 --seed 7
    .venv/bin/python tools/fuzz_server.py --seconds 60 --cases imap-selected,pop3
    .venv/bin/python tools/fuzz_server.py --replay imap-selected:7:1234 [--from-start]

The server runs in a temporary folder on ephemeral 127.0.0.1 ports. Each failure is
printed with the stream's id, the bytes sent and a replay command; --replay runs one
stream against a fresh server (with --from-start, the streams of that case before it
too, since earlier streams change the mailboxes). The exit status is 1 after a failure.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import ServerProcess  # noqa: E402
from tests.server.fuzzing import (  # noqa: E402
    CASES,
    SERVER_OPTIONS,
    LogWatcher,
    Outcome,
    Target,
    Timing,
    make_stream,
    prepare,
    run_stream,
    stream_id,
)

from letterbox.server.tls import write_self_signed  # noqa: E402

REPLAY = ".venv/bin/python tools/fuzz_server.py --replay"


def start_server(home: Path, timing: Timing) -> tuple[ServerProcess, Target]:
    cert, key = home / "tls" / "cert.pem", home / "tls" / "key.pem"
    write_self_signed(cert, key, "localhost")
    srv = ServerProcess(home / "server", (cert, key), **SERVER_OPTIONS)
    srv.start()
    return srv, prepare(srv, timing)


def stop_server(srv: ServerProcess) -> list[str]:
    """Stop with SIGTERM, as an administrator would; what went wrong doing so."""
    proc = srv.proc
    if proc is None or proc.poll() is not None:
        return [f"the server had exited ({None if proc is None else proc.returncode})"]
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(30)
    except subprocess.TimeoutExpired:
        srv.kill()
        return ["the server did not stop within 30 s of SIGTERM"]
    srv.proc = None
    return [] if rc == 0 else [f"the server exited with status {rc} on SIGTERM"]


def check(out: Outcome, watcher: LogWatcher) -> None:
    out.problems += [f"server log (during or just before this stream):\n{p}" for p in watcher.new_problems()]


def replay(args: argparse.Namespace, timing: Timing) -> int:
    home = Path(tempfile.mkdtemp(prefix="letterbox-fuzz-"))
    srv, target = start_server(home, timing)
    watcher = LogWatcher(srv.log)
    failed = False
    try:
        for sid in args.replay:
            case, seed, index = sid.rsplit(":", 2)
            if args.from_start:
                for i in range(int(index)):
                    out = run_stream(target, make_stream(stream_id(case, int(seed), i)))
                    check(out, watcher)
                    if out.problems:
                        print(out.report(REPLAY), "\n")
            out = run_stream(target, make_stream(sid))
            check(out, watcher)
            print(out.report(REPLAY, limit=1 << 30))
            print(f"  -> {'FAILED' if out.problems else 'no problem'} ({out.seconds:.2f} s)\n")
            failed |= bool(out.problems)
    finally:
        problems = stop_server(srv)
        problems += [f"server log (at shutdown):\n{p}" for p in watcher.new_problems()]
        for p in problems:
            print(f"at shutdown: {p}")
        if args.keep:
            print(f"server folder kept: {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return 1 if failed or problems else 0


def fuzz(args: argparse.Namespace, timing: Timing) -> int:
    wanted = [c.name for c in CASES if not args.cases or any(c.name.startswith(p) for p in args.cases.split(","))]
    if not wanted:
        raise SystemExit(f"no case matches {args.cases!r}; cases: {', '.join(c.name for c in CASES)}")
    home = Path(tempfile.mkdtemp(prefix="letterbox-fuzz-"))
    print(f"seed {args.seed}, {args.seconds:.0f} s, cases: {', '.join(wanted)}; server in {home}", flush=True)
    srv, target = start_server(home, timing)
    watcher = LogWatcher(srv.log)
    verdicts: collections.Counter[str] = collections.Counter()
    per_case: collections.Counter[str] = collections.Counter()
    failures: list[Outcome] = []
    start = time.monotonic()
    next_report = start + args.progress
    index = 0
    try:
        while time.monotonic() - start < args.seconds and target.alive():
            for case in wanted:
                out = run_stream(target, make_stream(stream_id(case, args.seed, index)))
                check(out, watcher)
                verdicts[out.verdict] += 1
                per_case[case] += 1
                if out.problems and args.ignore and any(re.search(args.ignore, p) for p in out.problems):
                    verdicts["ignored"] += 1
                elif out.problems:
                    failures.append(out)
                    print(f"\nFAILURE #{len(failures)}\n{out.report(REPLAY)}\n", flush=True)
                if not target.alive():
                    print("the server process is gone; log tail:\n" + "\n".join(srv.log_text().splitlines()[-40:]))
                    break
            index += 1
            if time.monotonic() >= next_report:
                elapsed = time.monotonic() - start
                total = sum(per_case.values())
                print(f"[{elapsed:6.0f} s] {total} streams ({total / elapsed:.1f}/s), index {index}, "
                      f"{dict(verdicts)}, {len(failures)} failures", flush=True)
                next_report += args.progress
    except KeyboardInterrupt:
        print("interrupted")
    finally:
        problems = stop_server(srv)
        problems += watcher.new_problems()
    elapsed = time.monotonic() - start
    print(f"\n{sum(per_case.values())} streams in {elapsed:.0f} s (seed {args.seed}, index 0..{index}): {dict(verdicts)}")
    for p in problems:
        print(f"at shutdown: {p}")
    if failures:
        print(f"{len(failures)} failing streams:")
        for out in failures:
            print(f"  {out.stream.id}: {out.problems[0].splitlines()[0][:160]}")
    if args.keep or failures or problems:
        print(f"server folder kept: {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)
    return 1 if failures or problems else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600.0, help="how long to fuzz (default 600)")
    ap.add_argument("--seed", type=int, default=None, help="base seed (default: from the clock)")
    ap.add_argument("--cases", default="", help="comma-separated case names or prefixes (imap, pop3-transaction, ...)")
    ap.add_argument("--replay", nargs="+", metavar="ID", help="run these stream ids (case:seed:index) and show them")
    ap.add_argument("--from-start", action="store_true", help="with --replay: run the case's earlier streams first")
    ap.add_argument("--reply-timeout", type=float, default=2.0, help="seconds of server silence taken as no answer")
    ap.add_argument("--progress", type=float, default=10.0, help="seconds between progress lines")
    ap.add_argument("--ignore", metavar="REGEX", help="do not count failures with a problem matching this (known bugs)")
    ap.add_argument("--keep", action="store_true", help="keep the server folder (data and server.log)")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = int(time.time()) % 100_000
    timing = Timing(reply=args.reply_timeout, quiet=0.1)
    return replay(args, timing) if args.replay else fuzz(args, timing)


if __name__ == "__main__":
    sys.exit(main())
