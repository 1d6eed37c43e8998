"""Maildir++ files: folder names on disk, durable writes, and UIDs carried in file names.

A message file is named `<time>.M<usec>P<pid>Q<n>.<host>,S=<size>,U=<uid>:2,` so that if
the index ever loses a row, start-up reconciliation restores the message with its UID.
Flags live in the index only, so a flag change never renames a file.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_counter = itertools.count(1)
_HOST = socket.gethostname().replace("/", "\\057").replace(":", "\\072") or "localhost"
_UID_RE = re.compile(r",U=(\d+)")
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


def make_dirs(folder: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)


def new_filename(size: int, uid: int | None) -> str:
    """A unique Maildir name; without a UID for the tmp/ copy, with one in cur/."""
    now = time.time()
    sec = int(now)
    usec = int((now - sec) * 1_000_000)
    base = f"{sec}.M{usec}P{os.getpid()}Q{next(_counter)}.{_HOST},S={size}"
    return f"{base},U={uid}:2," if uid is not None else base


def with_uid(tmp_name: str, uid: int) -> str:
    """The cur/ name of a message written to tmp/ as *tmp_name*."""
    return f"{tmp_name},U={uid}:2,"


def uid_from_filename(filename: str) -> int | None:
    m = _UID_RE.search(filename.split(":", 1)[0])
    return int(m.group(1)) if m else None


def size_from_filename(filename: str) -> int | None:
    m = _SIZE_RE.search(filename.split(":", 1)[0])
    return int(m.group(1)) if m else None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_tmp(folder: Path, filename: str, data: bytes) -> Path:
    """Write *data* to tmp/ and fsync it; the caller renames it into cur/."""
    tmp = folder / "tmp" / filename
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def link_or_copy(src: Path, dest: Path) -> bool:
    """COPY: hard-link (same bytes, no extra disk); False if the source is gone."""
    try:
        os.link(src, dest)
    except FileNotFoundError:
        return False
    except OSError:
        try:
            shutil.copyfile(src, dest)
        except FileNotFoundError:
            return False
        with open(dest, "rb") as f:
            os.fsync(f.fileno())
    return True


def remove_files(paths: list[Path]) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
    for d in {p.parent for p in paths}:
        try:
            fsync_dir(d)
        except OSError:
            pass
