"""The change feed across the worker processes of one server (embedded store).

Each worker binds a Unix datagram socket, `feed-<n>.sock`, in a directory of run_dir. A
change this worker makes is published to its own subscriptions at once and, at the end
of the event loop's turn, sent with the other changes of that turn as one datagram to
every other worker; a worker relays what it receives to its own subscriptions (with no
origin: no session of its own made it).

Nothing waits in user space: a datagram goes out without blocking or is dropped, when
the peer is restarting or its socket's queue (the kernel's, a few datagrams deep) is
full. A dropped datagram only delays a change: every worker still checks the indexes its
sessions listen to (SQLite's data_version) twice a second, and learns from the index
what changed, as it does for `letterbox deliver`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

from .api import Change, ChangeKind
from .feed import ChangeFeed, LocalFeed, Subscription

log = logging.getLogger("letterbox.feed")

MAX_DATAGRAM = 16384
"""Bytes per datagram; a turn's changes beyond it go in the next one, and one change
that alone does not fit is sent as "look at this account" instead."""
MAX_BATCH = 64
"""Changes gathered before a datagram goes out without waiting for the turn's end."""
_READS_PER_WAKEUP = 64
_KINDS = frozenset({"append", "flags", "expunge", "mailbox", "subscription", "metadata", "acl"})


def socket_path(directory: Path, index: int) -> Path:
    return directory / f"feed-{index}.sock"


def _encode(change: Change, also: Iterable[str]) -> list[Any]:
    return ["c", change.account, change.mailbox_id, change.modseq, change.kind, change.name,
            change.old_name, list(change.entries), change.user, list(also)]


def _decode(item: Any) -> tuple[Change, list[str]] | None:
    """A change as received, or None if it is not one (ignored: only peers can send,
    but a bad datagram must not stop the reader)."""
    if not isinstance(item, list) or len(item) != 10 or item[0] != "c":
        return None
    _, account, mailbox_id, modseq, kind, name, old_name, entries, user, also = item
    if not (isinstance(account, str) and isinstance(mailbox_id, int) and isinstance(modseq, int)
            and kind in _KINDS and isinstance(name, str) and isinstance(old_name, str)
            and isinstance(user, str) and isinstance(entries, list) and isinstance(also, list)
            and all(isinstance(e, str) for e in entries + also)):
        return None
    return Change(account, mailbox_id, modseq, cast(ChangeKind, kind), name, old_name, 0, tuple(entries), user), also


class CrossProcessFeed(ChangeFeed):
    """A LocalFeed whose changes also reach the other workers' LocalFeeds.

    *index* is this worker's number among *workers*; *on_account* is called (with an
    address) when a peer says only that an account changed, to look at its index."""

    def __init__(self, directory: Path, index: int, workers: int, local: LocalFeed | None = None) -> None:
        self.local = local or LocalFeed()
        self.directory = directory
        self.index = index
        self.workers = workers
        self.on_account: Callable[[str], None] | None = None
        self.on_remote: Callable[[Change], None] | None = None
        """Called after a peer's change was relayed here (e.g. to schedule work that
        runs in one worker only)."""
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._batch: list[bytes] = []
        self._flush_scheduled = False
        self.sent = 0
        self.dropped = 0
        """Datagrams a peer did not take (counted, then forgotten: see the module doc)."""
        self.received = 0

    # --- life cycle ------------------------------------------------------------------------
    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind this worker's socket and start reading it on *loop*."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = socket_path(self.directory, self.index)
        path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(str(path))
            os.chmod(path, 0o600)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock, self._loop = sock, loop
        loop.add_reader(sock.fileno(), self._on_readable)

    def close(self) -> None:
        if self._sock is None:
            return
        self._flush()
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        socket_path(self.directory, self.index).unlink(missing_ok=True)

    # --- the interface ---------------------------------------------------------------------
    def watch(self, callback: Callable[[str], None]) -> None:
        self.local.watch(callback)

    def subscribe(self, address: str, *more: str) -> Subscription:
        return self.local.subscribe(address, *more)

    def has_subscribers(self, address: str) -> bool:
        # Another worker's sessions may listen: the change is always made and sent.
        return self.workers > 1 or self.local.has_subscribers(address)

    def has_local_subscribers(self, address: str) -> bool:
        return self.local.has_subscribers(address)

    def publish(self, change: Change, also: Iterable[str] = ()) -> None:
        also = tuple(also)
        self.local.publish(change, also)
        data = json.dumps(_encode(change, also), separators=(",", ":")).encode()
        if len(data) > MAX_DATAGRAM - 2:
            data = json.dumps(["a", change.account]).encode()
        self._queue(data)

    def relay(self, change: Change, also: Iterable[str] = ()) -> None:
        self.local.relay(change, also)

    def touched(self, address: str) -> None:
        self.local.touched(address)
        self._queue(json.dumps(["t", address]).encode())

    # --- sending ---------------------------------------------------------------------------
    def _queue(self, item: bytes) -> None:
        if self._sock is None or self.workers < 2:
            return
        self._batch.append(item)
        if len(self._batch) >= MAX_BATCH:
            self._flush()
        elif not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._batch = self._batch, []
        while batch:
            size, n = 2, 0
            while n < len(batch) and (n == 0 or size + len(batch[n]) + 1 <= MAX_DATAGRAM):
                size += len(batch[n]) + 1
                n += 1
            self._send(b"[" + b",".join(batch[:n]) + b"]")
            batch = batch[n:]

    def _send(self, datagram: bytes) -> None:
        sock = self._sock
        if sock is None:
            return
        for peer in range(self.workers):
            if peer == self.index:
                continue
            try:
                sock.sendto(datagram, str(socket_path(self.directory, peer)))
                self.sent += 1
            except OSError:  # full (EAGAIN), restarting (ENOENT, ECONNREFUSED): the poll finds it
                self.dropped += 1

    # --- receiving -------------------------------------------------------------------------
    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(_READS_PER_WAKEUP):
            try:
                data = sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.warning("change feed: reading from the other workers failed: %s", e)
                return
            self.received += 1
            self.deliver(data)

    def deliver(self, data: bytes) -> None:
        """Relay the changes of one datagram from a peer."""
        try:
            items = json.loads(data)
        except ValueError:
            log.warning("change feed: ignored a datagram that is not JSON")
            return
        if not isinstance(items, list):
            return
        for item in items:
            if isinstance(item, list) and len(item) == 2 and item[0] in ("t", "a") and isinstance(item[1], str):
                self.local.touched(item[1])
                if item[0] == "a" and self.on_account is not None:
                    self.on_account(item[1])
                continue
            decoded = _decode(item)
            if decoded is None:
                continue
            change, also = decoded
            self.local.relay(change, also)
            if self.on_remote is not None:
                self.on_remote(change)
