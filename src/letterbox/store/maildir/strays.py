"""Message files the index does not know yet, found at start-up.

Two kinds: files in cur/ whose index row was lost (they keep the UID in their name, and
their flags in its info), and files another delivery agent dropped into new/ (they get
fresh UIDs in order of arrival). Reading and parsing them is the slow part; on a machine
with several cores a big batch is parsed by a pool of processes, in order, while the
caller writes the index.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import stat
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from ...mime import ParsedMessage, parse_message
from . import files
from .accountdir import AccountDir, join

# Below this many files the start-up cost of worker processes is not worth it.
_POOL_MIN = 2000
_POOL_CHUNK = 64
_WINDOW = 4096


@dataclass(slots=True)
class Stray:
    dir: str
    """The folder's cur/ or new/, relative to the account root."""
    name: str
    uid: int | None
    """From a cur/ name; None for new/ files and for names whose UID is taken."""
    flags: str
    """Stored flag text, from the info of a cur/ name."""


@dataclass(slots=True)
class Loaded:
    stray: Stray
    size: int
    mtime: float
    parsed: ParsedMessage


def flags_from_name(filename: str, keywords: Sequence[str] = ()) -> str:
    """The flags a Maildir name carries in its ``:2,`` info, as stored text."""
    return " ".join(sorted(files.flags_from_info(files.info_of(filename), keywords)))


def find(adir: AccountDir, folder: str, cur_names: Iterable[tuple[str, int | None]],
         keywords: Sequence[str] = (), new: bool = True) -> list[Stray]:
    """*cur_names* ((name, UID to index it under) of cur/ files without a row) by UID,
    then, if *new*, every new/ file by arrival.

    Maildir names start with the delivery time, and the mtime says when the file was
    completed, so new/ files are sorted by (mtime, name)."""
    cur = join(folder, "cur")
    out = sorted(
        (Stray(cur, fn, uid, flags_from_name(fn, keywords)) for fn, uid in cur_names),
        key=lambda s: (s.uid is None, s.uid or 0),
    )
    if new:
        new_dir = join(folder, "new")
        out += [Stray(new_dir, name, None, "") for _, name in sorted(adir.scan(new_dir))]
    return out


def count_new(adir: AccountDir, folder: str) -> int:
    try:
        return len(adir.listdir(join(folder, "new")))
    except FileNotFoundError:
        return 0


def _parse(data: bytes, mtime: float) -> tuple[int, float, ParsedMessage]:
    return len(data), mtime, parse_message(data)


def _load_path(path: str) -> tuple[int, float, ParsedMessage] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None  # gone meanwhile (another agent moved it), or not a plain file
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        data = f.read()
    return _parse(data, st.st_mtime)


def _load_rel(adir: AccountDir, rel: str) -> tuple[int, float, ParsedMessage] | None:
    try:
        st = adir.stat(rel)
        data = adir.read(rel)
    except OSError:
        return None
    return _parse(data, st.st_mtime)


def load(adir: AccountDir, strays: list[Stray], stop: threading.Event | None = None) -> Iterator[Loaded]:
    """Read and parse *strays* in order, skipping files that vanished; ends early once
    *stop* is set."""
    workers = min(os.cpu_count() or 1, 8)
    if len(strays) < _POOL_MIN or workers < 2:
        for stray in strays:
            if stop is not None and stop.is_set():
                return
            r = _load_rel(adir, join(stray.dir, stray.name))
            if r is not None:
                yield Loaded(stray, *r)
        return
    # Worker processes cannot share the folder's descriptor: they read by path.
    paths = [adir.real_path(join(s.dir, s.name)) for s in strays]
    # spawn, not fork: the caller may run threads (the server's event loop).
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        # One window is parsed while the one before is consumed: the pool stays busy and
        # at most two windows of parsed messages wait in memory.
        windows = [range(i, min(i + _WINDOW, len(paths))) for i in range(0, len(paths), _WINDOW)]
        pending = pool.map(_load_path, paths[windows[0].start : windows[0].stop], chunksize=_POOL_CHUNK)
        for w, window in enumerate(windows):
            ahead = None
            if w + 1 < len(windows):
                nxt = windows[w + 1]
                ahead = pool.map(_load_path, paths[nxt.start : nxt.stop], chunksize=_POOL_CHUNK)
            for i, r in zip(window, pending, strict=True):
                if stop is not None and stop.is_set():
                    return
                if r is not None:
                    yield Loaded(strays[i], *r)
            if ahead is not None:
                pending = ahead
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
