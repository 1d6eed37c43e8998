"""One server per data directory.

`letterbox serve` holds an exclusive lock on `<data_dir>/letterbox.lock` for as long as it
runs, taken before it opens anything else. A second server on the same data exits at once
naming the first one's PID, having changed nothing: two servers reconciling one store race
each other's renames and commits. CLI commands that rework the store as a whole (offline
`user del`, `repair`) take the same lock; the kernel drops it when the holder dies, even
by kill -9, so a crashed server never blocks the next start.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

LOCK_NAME = "letterbox.lock"


class DataDirBusy(Exception):
    """Another process holds the data directory."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        who = f"PID {pid}" if pid else "another process"
        super().__init__(f"data directory {data_dir} is in use by a running server ({who})")
        self.pid = pid


class DataDirLock:
    """The exclusive lock on a data directory; release() or process exit frees it."""

    def __init__(self, data_dir: Path, fd: int) -> None:
        self.data_dir = data_dir
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(data_dir: Path) -> int | None:
    """PID written by the current holder, if any."""
    try:
        text = (data_dir / LOCK_NAME).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _try_lock(data_dir: Path) -> int | None:
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def acquire(data_dir: Path) -> DataDirLock:
    """Take the lock without waiting; raise DataDirBusy when it is held."""
    fd = _try_lock(data_dir)
    if fd is None:
        raise DataDirBusy(data_dir, holder(data_dir))
    # The PID is only for the message a second server prints; the flock is the lock.
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return DataDirLock(data_dir, fd)


def is_held(data_dir: Path) -> bool:
    """True while some process (a running server) holds the lock."""
    fd = _try_lock(data_dir)
    if fd is None:
        return True
    os.close(fd)
    return False
