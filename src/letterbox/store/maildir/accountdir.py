"""An account's Maildir root, opened once and used through its descriptor.

Every file operation of an account is relative to the descriptor of its root folder
(openat and friends), never to a path. Deleting an account renames its folder away; a
handle still open on it (a delivery in flight, a session not yet ended) then keeps
working on the renamed folder and can never write into a new account created later at
the same path.

Paths here are relative strings: "" is the root itself (INBOX), "cur/<name>" a message of
INBOX, ".Work/cur/<name>" one of the folder "Work".
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from .. import faults

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def join(*parts: str) -> str:
    """Join relative parts, skipping empty ones; "" stands for the root."""
    return "/".join(p for p in parts if p)


class AccountDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, _DIR_FLAGS)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def real_path(self, rel: str) -> str:
        """The path under the root's original location, for worker processes that
        cannot share the descriptor (start-up parsing of many files)."""
        return str(self.path / rel) if rel else str(self.path)

    # --- reading -----------------------------------------------------------------------
    def listdir(self, rel: str) -> list[str]:
        fd = os.open(rel or ".", _DIR_FLAGS, dir_fd=self.fd)
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)

    def scan(self, rel: str) -> list[tuple[float, str]]:
        """(mtime, name) of each entry of a folder; entries that vanish are skipped."""
        fd = os.open(rel or ".", _DIR_FLAGS, dir_fd=self.fd)
        out = []
        try:
            with os.scandir(fd) as it:
                for entry in it:
                    try:
                        out.append((entry.stat(follow_symlinks=False).st_mtime, entry.name))
                    except OSError:
                        continue
        finally:
            os.close(fd)
        return out

    def exists(self, rel: str) -> bool:
        try:
            os.stat(rel or ".", dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def isdir(self, rel: str) -> bool:
        try:
            st = os.stat(rel or ".", dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return (st.st_mode & 0o170000) == 0o040000

    def stat(self, rel: str) -> os.stat_result:
        return os.stat(rel, dir_fd=self.fd, follow_symlinks=False)

    def open_read(self, rel: str) -> int:
        """A descriptor to read a regular file from (the caller closes it). A symbolic
        link or a FIFO planted in a folder is refused (ELOOP, EINVAL), never followed or
        waited on."""
        fd = os.open(rel, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=self.fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, "not a regular file", rel)
        return fd

    def read(self, rel: str) -> bytes:
        with os.fdopen(self.open_read(rel), "rb") as f:
            return f.read()

    def read_range(self, rel: str, start: int, length: int) -> bytes:
        """Up to *length* bytes from *start* (fewer at the end of the file)."""
        fd = self.open_read(rel)
        try:
            data = os.pread(fd, length, start)
            while 0 < len(data) < length:  # a short read, as a signal can cause
                more = os.pread(fd, length - len(data), start + len(data))
                if not more:
                    break
                data += more
            return data
        finally:
            os.close(fd)

    def is_file(self, rel: str) -> bool:
        """A regular file, not a link to one."""
        try:
            return stat.S_ISREG(os.stat(rel, dir_fd=self.fd, follow_symlinks=False).st_mode)
        except FileNotFoundError:
            return False

    def is_real_dir(self, rel: str) -> bool:
        """*rel* and each of its components are directories, none a symbolic link."""
        parts = [p for p in rel.split("/") if p]
        for i in range(1, len(parts) + 1):
            try:
                st = os.stat("/".join(parts[:i]), dir_fd=self.fd, follow_symlinks=False)
            except FileNotFoundError:
                return False
            if not stat.S_ISDIR(st.st_mode):
                return False
        return True

    def read_text(self, rel: str) -> str | None:
        try:
            return self.read(rel).decode("utf-8", "replace")
        except FileNotFoundError:
            return None

    # --- writing -----------------------------------------------------------------------
    def write_new(self, rel: str, data: bytes, mtime: float | None = None) -> None:
        """Create *rel* with *data* (and modification time *mtime*: a message's
        INTERNALDATE, as in Dovecot's Maildir) and fsync it (not its folder)."""
        fd = os.open(rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=self.fd)
        try:
            faults.point("fs.write")
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            if mtime is not None:
                os.utime(fd, (mtime, mtime))
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(rel, dir_fd=self.fd)
            raise
        os.close(fd)

    def replace(self, rel: str, data: bytes) -> None:
        """Durably replace a small file: write a temporary, fsync, rename, fsync the folder."""
        folder, _, name = rel.rpartition("/")
        tmp = join(folder, f".{name}.tmp{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=self.fd)
        self.write_new(tmp, data)
        try:
            faults.point("fs.replace")
            os.rename(tmp, rel, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self.fd)
            raise
        self.fsync_dir(folder)

    def rename(self, src: str, dst: str) -> None:
        faults.point("fs.rename")
        os.rename(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def link(self, src: str, dst: str) -> bool:
        """Hard-link (the same bytes, no extra disk); copy where links are refused.
        False if the source is gone."""
        faults.point("fs.link")
        try:
            os.link(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        except OSError as e:
            if e.errno not in (1, 18, 31, 95):  # EPERM, EXDEV, EMLINK, EOPNOTSUPP: copy instead
                raise
            try:
                data = self.read(src)
            except FileNotFoundError:
                return False
            self.write_new(dst, data)
        return True

    def unlink(self, rel: str) -> bool:
        """Remove a file; False if it was not there."""
        faults.point("fs.unlink")
        try:
            os.unlink(rel, dir_fd=self.fd)
        except FileNotFoundError:
            return False
        return True

    def unlink_many(self, rels: list[str]) -> None:
        """Remove files (missing ones are fine) and make the removals durable."""
        folders = set()
        for rel in rels:
            self.unlink(rel)
            folders.add(rel.rpartition("/")[0])
        for folder in folders:
            with contextlib.suppress(OSError):
                self.fsync_dir(folder)

    def fsync_dir(self, rel: str) -> None:
        fd = os.open(rel or ".", _DIR_FLAGS, dir_fd=self.fd)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def fsync_file(self, rel: str) -> None:
        try:
            fd = os.open(rel, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.fd)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def mkdir_new(self, rel: str) -> None:
        """Make a folder that must not exist yet (FileExistsError otherwise)."""
        faults.point("fs.mkdir")
        os.mkdir(rel, 0o700, dir_fd=self.fd)

    def makedirs(self, rel: str) -> None:
        parts = [p for p in rel.split("/") if p]
        for i in range(1, len(parts) + 1):
            with contextlib.suppress(FileExistsError):
                faults.point("fs.mkdir")
                os.mkdir("/".join(parts[:i]), 0o700, dir_fd=self.fd)

    def make_maildir(self, folder: str) -> None:
        """cur/, new/ and tmp/ of a folder (the folder itself first)."""
        if folder:
            self.makedirs(folder)
        for sub in ("cur", "new", "tmp"):
            self.makedirs(join(folder, sub))

    def rmtree(self, rel: str) -> None:
        """Remove a folder and everything in it; missing is fine."""
        if not self.exists(rel):
            return
        shutil.rmtree(rel, dir_fd=self.fd)

    @contextlib.contextmanager
    def locked(self, rel: str) -> Iterator[None]:
        """An exclusive flock on a folder, across threads and processes."""
        fd = os.open(rel or ".", _DIR_FLAGS, dir_fd=self.fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
