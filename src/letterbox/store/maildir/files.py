"""Maildir++ files: folder names on disk, durable writes, and UIDs carried in file names.

A message file is named `<time>.M<usec>P<pid>Q<n>.<host>,S=<size>,U=<uid>:2,` so that if
the index ever loses a row, start-up reconciliation restores the message with its UID.
Flags live in the index only, so a flag change never renames a file.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import time
from pathlib import Path

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


def make_dirs(folder: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)


def new_filename(size: int, uid: int) -> str:
    now = time.time()
    sec = int(now)
    usec = int((now - sec) * 1_000_000)
    return f"{sec}.M{usec}P{os.getpid()}Q{next(_counter)}.{_HOST},S={size},U={uid}:2,"


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


def write_durably(folder: Path, filename: str, data: bytes) -> None:
    """Write via tmp/, fsync, rename into cur/, fsync cur/: the file survives a crash."""
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
    os.rename(tmp, folder / "cur" / filename)
    fsync_dir(folder / "cur")


def link_durably(src: Path, folder: Path, filename: str) -> None:
    """COPY: hard-link the file into another folder (same bytes, no extra disk)."""
    dest = folder / "cur" / filename
    try:
        os.link(src, dest)
    except OSError:
        data = src.read_bytes()
        write_durably(folder, filename, data)
        return
    fsync_dir(folder / "cur")


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
