"""Big client uploads kept on disk while they arrive, not in memory.

An APPEND literal or an SMTP/LMTP DATA transfer can be tens of megabytes and can trickle
in for minutes; held in RAM, a few slow clients would cost gigabytes. Above a threshold
the bytes go to an unnamed temporary file (O_TMPFILE where the system has it, so a crash
leaves nothing behind) and are loaded back only when the command runs, a few at a time
across the whole server (`Spooler.loaded`), which bounds the server's peak memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import BinaryIO

from .store.api import DiskFull, StoreError

log = logging.getLogger("letterbox.spool")

SPOOL_MIN = 256 * 1024
"""Uploads at least this big are spooled (smaller ones cost less in memory than a file)."""
LOADS = 2
"""Spooled uploads loaded into memory at once, server-wide."""
TOTAL = 2 * 1024**3
"""Disk all spools together may take; an upload past it is refused as on a full disk."""


class Spool:
    """One upload's bytes in a temporary file. Writing never raises: a failure (a full
    disk) is kept in `error`, the rest of the upload is counted and dropped, and loading
    it raises instead, so the protocol can finish reading the upload and then refuse it."""

    def __init__(self, directory: Path | None, spooler: Spooler | None = None) -> None:
        self._dir = directory
        self._spooler = spooler
        self._file: BinaryIO | None = None
        self.size = 0
        self.held = 0
        """Bytes counted against the spooler's total while the file is open."""
        self.error: OSError | None = None

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.error is not None:
            return
        if self._spooler is not None and not self._spooler.take(self, len(data)):
            self.error = OSError(errno.ENOSPC, "the spool is full")
            self.close()
            return
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(dir=self._dir)  # noqa: SIM115 - kept open
            self._file.write(data)
        except OSError as e:
            self.error = e
            self.close()

    def read(self) -> bytes:
        """The whole upload (blocking; see `Spooler.loaded`)."""
        if self.error is not None:
            raise self.error
        if self._file is None:
            return b""
        self._file.seek(0)
        return self._file.read()

    def pieces(self, size: int) -> Iterator[bytes]:
        """The upload in pieces of at most *size* octets, from its start (blocking; for
        copying it into another spool without holding it whole)."""
        if self.error is not None:
            raise self.error
        if self._file is None:
            return
        self._file.seek(0)
        while piece := self._file.read(size):
            yield piece

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        if self._spooler is not None:
            self._spooler.give_back(self)

    def __len__(self) -> int:
        return self.size


class Spooler:
    """Makes spools in one folder and lends their contents out a few at a time."""

    def __init__(self, directory: Path | None = None, loads: int = LOADS, total: int = TOTAL) -> None:
        self.directory = directory
        self._gate = asyncio.Semaphore(loads)
        self.total = total
        self.used = 0
        """Bytes in all open spools: many slow uploads at once cannot fill the disk."""

    def new(self) -> Spool:
        return Spool(self.directory, self)

    def take(self, spool: Spool, n: int) -> bool:
        if self.used + n > self.total:
            log.warning("spool full (%d bytes in open uploads): an upload is refused", self.used)
            return False
        self.used += n
        spool.held += n
        return True

    def give_back(self, spool: Spool) -> None:
        self.used -= spool.held
        spool.held = 0

    @contextlib.asynccontextmanager
    async def loaded(self, data: bytes | Spool) -> AsyncIterator[bytes]:
        """The upload's bytes for the duration of the block. A spooled upload waits its
        turn and is closed at the end; a failed one raises DiskFull (or StoreError)."""
        if not isinstance(data, Spool):
            yield data
            return
        try:
            async with self._gate:
                try:
                    content = await asyncio.to_thread(data.read)
                except OSError as e:
                    if e.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise DiskFull("no space left to receive the message") from e
                    log.error("spooled upload unreadable: %s", e)
                    raise StoreError("the message could not be received, try again") from e
                data.close()
                yield content
        finally:
            data.close()
