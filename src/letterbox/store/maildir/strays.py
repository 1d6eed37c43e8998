"""Message files the index does not know yet, found at start-up.

Two kinds: files in cur/ whose index row was lost in a crash (they keep the UID in their
name), and files another delivery agent dropped into new/ (they get fresh UIDs in order of
arrival). Reading and parsing them is the slow part; on a machine with several cores a
big batch is parsed by a pool of processes, in order, while the caller writes the index.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ...mime import ParsedMessage, parse_message
from . import files

# Below this many files the start-up cost of worker processes is not worth it.
_POOL_MIN = 2000
_POOL_CHUNK = 64
_WINDOW = 4096

# Maildir "info" letters (the part after ":2,") and the IMAP flags they stand for.
_INFO_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}


@dataclass(slots=True)
class Stray:
    dir: str
    name: str
    uid: int | None  # from a cur/ name; None for new/
    flags: str  # stored flag text, from the Maildir info of a cur/ name


@dataclass(slots=True)
class Loaded:
    stray: Stray
    size: int
    mtime: float
    parsed: ParsedMessage


def flags_from_name(filename: str) -> str:
    """The flags a foreign Maildir name carries in its ``:2,`` info, as stored text."""
    _, sep, info = filename.partition(":2,")
    if not sep:
        return ""
    return " ".join(sorted({_INFO_FLAGS[c] for c in info if c in _INFO_FLAGS}))


def find(folder: Path, cur_names: Iterable[str], new: bool = True) -> list[Stray]:
    """*cur_names* (cur/ files without a row) by UID, then, if *new*, every new/ file
    by arrival.

    Maildir names start with the delivery time, and the mtime says when the file was
    completed, so new/ files are sorted by (mtime, name)."""
    cur, new_dir = os.path.join(folder, "cur"), os.path.join(folder, "new")
    out = sorted(
        (Stray(cur, fn, files.uid_from_filename(fn), flags_from_name(fn)) for fn in cur_names),
        key=lambda s: s.uid or 0,
    )
    if not new:
        return out
    arrivals = []
    with os.scandir(new_dir) as it:
        for entry in it:
            try:
                mtime = entry.stat().st_mtime
            except OSError:
                continue
            arrivals.append((mtime, entry.name))
    arrivals.sort()
    out += [Stray(new_dir, name, None, "") for _, name in arrivals]
    return out


def count_new(folder: Path) -> int:
    try:
        with os.scandir(os.path.join(folder, "new")) as it:
            return sum(1 for _ in it)
    except FileNotFoundError:
        return 0


def _load(path: str) -> tuple[int, float, ParsedMessage] | None:
    try:
        with open(path, "rb") as f:
            mtime = os.fstat(f.fileno()).st_mtime
            data = f.read()
    except OSError:
        return None  # gone meanwhile (another agent moved it); nothing to index
    return len(data), mtime, parse_message(data)


def load(strays: list[Stray], stop: threading.Event | None = None) -> Iterator[Loaded]:
    """Read and parse *strays* in order, skipping files that vanished; ends early once
    *stop* is set."""
    paths = [os.path.join(s.dir, s.name) for s in strays]
    workers = min(os.cpu_count() or 1, 8)
    if len(strays) < _POOL_MIN or workers < 2:
        for stray, path in zip(strays, paths, strict=True):
            if stop is not None and stop.is_set():
                return
            r = _load(path)
            if r is not None:
                yield Loaded(stray, *r)
        return
    # spawn, not fork: the caller may run threads (the server's event loop).
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        # One window is parsed while the one before is consumed: the pool stays busy and
        # at most two windows of parsed messages wait in memory.
        windows = [range(i, min(i + _WINDOW, len(paths))) for i in range(0, len(paths), _WINDOW)]
        pending = pool.map(_load, paths[windows[0].start : windows[0].stop], chunksize=_POOL_CHUNK)
        for w, window in enumerate(windows):
            ahead = None
            if w + 1 < len(windows):
                nxt = windows[w + 1]
                ahead = pool.map(_load, paths[nxt.start : nxt.stop], chunksize=_POOL_CHUNK)
            for i, r in zip(window, pending, strict=True):
                if stop is not None and stop.is_set():
                    return
                if r is not None:
                    yield Loaded(strays[i], *r)
            if ahead is not None:
                pending = ahead
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
