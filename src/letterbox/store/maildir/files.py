"""Maildir++ file names, and the threads that wait on fsync.

A message file is named `<time>.M<usec>P<pid>Q<n>.<host>,S=<size>,U=<uid>:2,<info>`: the
part before ":" (the base) never changes and names the message for good; the UID in it
lets a lost index be rebuilt; the info letters after ":2," are the standard Maildir flags
(D F R S T) and keyword letters a-z, kept up to date with the index within a few seconds
(see namesync), so a rebuilt index keeps the flags too. Every save into a folder (APPEND,
delivery, COPY, MOVE, indexing a file found in new/) writes a name made then, so its
time is the message's RFC 8514 save date (see saved_at).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

_counter = itertools.count(1)
_HOST = socket.gethostname().replace("/", "\\057").replace(":", "\\072") or "localhost"
_UID_RE = re.compile(r",U=(\d+)")
# The time a Maildir name starts with: seconds, and microseconds in ours (".M<usec>P").
_TIME_RE = re.compile(r"([0-9]{1,12})\.(?:M([0-9]{1,6})P)?")
_SIZE_RE = re.compile(r",S=(\d+)")
# Bytes that may not appear as-is in a Maildir++ folder component.
_UNSAFE = re.compile(r"[%./\\\x00-\x1f\x7f]")


def folder_dirname(name: str) -> str:
    """INBOX -> "" (the Maildir root); "Archive/2024" -> ".Archive.2024"."""
    if name == "INBOX":
        return ""
    parts = [_UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", p) for p in name.split("/")]
    return "." + ".".join(parts)


def folder_name(dirname: str) -> str:
    """Inverse of folder_dirname, for reconciliation of folders missing from the index."""
    if dirname == "":
        return "INBOX"
    parts = dirname[1:].split(".")
    return "/".join(re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), p) for p in parts)


class _DiskThreads:
    """Threads for the durable writes of APPEND and delivery, which wait on fsync.

    asyncio.to_thread would do, but its executor runs a dozen Python calls (locks,
    futures chained to futures) per job in the worker, holding the GIL each time, and the
    event loop thread stalls on the GIL meanwhile: with a delivery every millisecond that
    was a visible share of the loop's time. Here a job is one queue get and one callback.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._jobs: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any],
                                            Callable[..., Any], tuple[Any, ...]]] = queue.SimpleQueue()
        self._started = False
        self._lock = threading.Lock()

    def run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Call fn(*args) in a worker thread; the future completes on the calling loop.
        Cancelling the future does not stop a call already started."""
        if not self._started:
            self._start()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, fut, fn, args))
        return fut

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            for i in range(self._size):
                # Daemon: idle ones must not hold up exit; the server awaits its writes
                # before it closes the store, so none is cut short.
                threading.Thread(target=self._work, name=f"letterbox-disk-{i}", daemon=True).start()
            self._started = True

    def _work(self) -> None:
        while True:
            loop, fut, fn, args = self._jobs.get()
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn(*args)
            except BaseException as e:
                error = e
            try:
                loop.call_soon_threadsafe(_settle, fut, result, error)
            except RuntimeError:
                pass  # that loop is closed; nobody waits for the result
            del loop, fut, fn, args, result, error


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.cancelled():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


# Concurrent fsyncs let the filesystem commit several in one journal write.
disk_threads = _DiskThreads(16)


# Maildir info letters (after ":2,") and the IMAP system flags they stand for.
INFO_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}
_FLAG_INFO = {v: k for k, v in INFO_FLAGS.items()}
KEYWORD_LETTERS = "abcdefghijklmnopqrstuvwxyz"
NAME_MAX = 255


def dirname_fits(name: str) -> bool:
    """Whether a mailbox name's folder fits in one file name (NAME_MAX bytes)."""
    return len(folder_dirname(name).encode("utf-8", "surrogatepass")) <= NAME_MAX - 8


def new_base(size: int) -> str:
    """A unique Maildir base name, without UID: the name of a tmp/ file."""
    now = time.time()
    sec = int(now)
    usec = int((now - sec) * 1_000_000)
    return f"{sec}.M{usec}P{os.getpid()}Q{next(_counter)}.{_HOST},S={size}"


def new_filename(size: int, uid: int, info: str = "") -> str:
    """A unique cur/ name carrying the UID and the flag letters *info*."""
    return f"{new_base(size)},U={uid}:2,{info}"


def with_uid(tmp_name: str, uid: int, info: str = "") -> str:
    """The cur/ name of a message written to tmp/ as *tmp_name*."""
    return f"{tmp_name},U={uid}:2,{info}"


def base_of(filename: str) -> str:
    """The part of a name that flag changes never touch."""
    return filename.partition(":")[0]


def with_info(filename: str, info: str) -> str:
    return f"{base_of(filename)}:2,{info}"


def info_of(filename: str) -> str:
    _, sep, info = filename.partition(":2,")
    return info if sep else ""


def saved_at(filename: str) -> float | None:
    """When the file was saved into its folder, from the time its name starts with (as
    every Maildir writer's names do); None for a name that carries no time."""
    m = _TIME_RE.match(filename)
    if m is None:
        return None
    return int(m.group(1)) + (int(m.group(2)) / 1_000_000 if m.group(2) else 0.0)


def save_date(filename: str, internaldate: float) -> float:
    """The RFC 8514 save date the index keeps for the file *filename*: the time its name
    records, else (a name from elsewhere without one) the INTERNALDATE."""
    found = saved_at(filename)
    return internaldate if found is None else found


def uid_from_filename(filename: str) -> int | None:
    m = _UID_RE.search(base_of(filename))
    return int(m.group(1)) if m else None


def size_from_filename(filename: str) -> int | None:
    m = _SIZE_RE.search(base_of(filename))
    return int(m.group(1)) if m else None


def info_for(flags: Iterable[str], keywords: Sequence[str]) -> str:
    """The info letters for *flags*: system flags, then the letters of keywords that have
    one (the position in *keywords*, the folder's list); sorted as Maildir wants."""
    letters = []
    for f in flags:
        c = _FLAG_INFO.get(f)
        if c is None and not f.startswith("\\"):
            try:
                i = keywords.index(f)
            except ValueError:
                continue
            if i < len(KEYWORD_LETTERS):
                c = KEYWORD_LETTERS[i]
        if c is not None:
            letters.append(c)
    return "".join(sorted(letters))


def flags_from_info(info: str, keywords: Sequence[str]) -> set[str]:
    """Inverse of info_for; unknown letters (P, keywords without a name) are ignored."""
    out = set()
    for c in info:
        flag = INFO_FLAGS.get(c)
        if flag is None and "a" <= c <= "z":
            i = ord(c) - ord("a")
            flag = keywords[i] if i < len(keywords) else None
        if flag is not None:
            out.add(flag)
    return out
