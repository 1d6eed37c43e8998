"""The contract between a protocol core and the connection runner.

A protocol core is sans-I/O: it receives bytes and events and queues bytes to send in
`out`; it never touches sockets, files or SQL. The runner (server/connection.py) owns the
socket, the timers and TLS, and feeds the core one event at a time, so a core never has
to worry about two events interleaving.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..store.feed import Subscription
from .fairshare import SHARE, Allowance


@dataclass(frozen=True, slots=True)
class Peer:
    ip: str
    port: int
    secure: bool
    """TLS is active (implicit TLS, or after STLS/STARTTLS)."""
    tls_exporter: bytes | None = None
    """The TLS session's `tls-exporter` channel binding (RFC 9266) for SCRAM-SHA-256-PLUS;
    None without TLS, or where the runner cannot compute it (then -PLUS is not offered)."""


FLUSH_AT = 32 * 1024
"""Queued bytes that `flush` sends before the command ends."""


class Session(abc.ABC):
    protocol: str = ""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.out: list[bytes] = []
        self.closing = False
        """Set when the core wants the connection closed after `out` is flushed."""
        self.start_tls = False
        """Set when the core wants TLS started after `out` is flushed (STLS/STARTTLS)."""
        self.start_compress = False
        """Set when the core wants compression started after `out` is flushed (IMAP
        COMPRESS); the runner then takes `take_unread` bytes as compressed."""
        self.subscription: Subscription | None = None
        """Set while the core wants change-feed events (IMAP selected state, IDLE)."""
        self.user: str | None = None
        self.flusher: Callable[[], Awaitable[None]] | None = None
        """Set by the runner: sends `out` now."""
        self._allowance = Allowance()

    queued = 0
    """Bytes in `out`: what `output_limit` is compared with."""

    def send(self, data: bytes) -> None:
        self.out.append(data)
        self.queued += len(data)

    output_limit: int | None = None
    """Set by the runner: a core that queues this much should hold back pipelined
    commands (`backlog`) until the runner has sent it and calls `resume()`."""

    @property
    def backlog(self) -> bool:
        return False

    async def resume(self) -> None:  # noqa: B027 - optional hook
        """Go on with commands held back by `output_limit`."""

    async def flush(self, now: bool = False) -> None:
        """Let other sessions run, and send what is queued once it is worth a write (or
        *now*, for a notice the client should see at once), so a long answer streams
        instead of piling up: long commands call this between chunks of their work. A
        short answer goes out whole with its tagged end, in one write."""
        if self.flusher is not None and self.out and (now or self.queued >= FLUSH_AT):
            await self.flusher()
        await asyncio.sleep(0)

    @staticmethod
    def command_starts(interactive: bool) -> float:
        """Note a command about to run: *interactive* when the client sent it on its
        own, not pipelined behind others. Returns the start time for `command_done`."""
        if interactive:
            SHARE.note_interactive()
        return time.perf_counter()

    async def command_done(self, interactive: bool, started: float, more: bool) -> None:
        """Let other sessions run before this one's next command: a pipelined one past
        the session's allowance waits behind other clients' commands in proportion to
        its cost (see fairshare). *more*: the client's bytes hold another command; without
        one there is nothing to wait for, and the runner sends the answer at once (a turn
        of the loop here would hold it behind whatever else is ready to run)."""
        spent = time.perf_counter() - started
        if interactive or self._allowance.spend(spent):
            if more:
                await asyncio.sleep(0)
        else:
            await SHARE.after_pipelined(spent)

    def take_unread(self) -> bytes:
        """Received bytes the core has not consumed (they came after COMPRESS)."""
        return b""

    def take_output(self) -> list[bytes]:
        out, self.out = self.out, []
        self.queued = 0
        return out

    @property
    def timeout(self) -> float:
        """Seconds of client silence after which `timed_out` is called."""
        return 600.0

    @property
    def deadline(self) -> float | None:
        """A time (time.monotonic) by which what is in progress must be done however the
        client trickles its bytes (a command with a literal), or None; then `timed_out`."""
        return None

    @abc.abstractmethod
    async def start(self) -> None:
        """Queue the greeting."""

    @abc.abstractmethod
    async def receive(self, data: bytes) -> None:
        """Bytes from the client (any split: partial lines, several commands)."""

    async def changed(self) -> None:  # noqa: B027 - optional hook
        """The subscription has pending changes."""

    def tls_started(self, tls_exporter: bytes | None = None) -> None:
        self.peer = Peer(self.peer.ip, self.peer.port, True, tls_exporter)

    @abc.abstractmethod
    async def shutdown(self, reason: str) -> None:
        """The server ends the session (protocol switched off, server stopping): queue the
        protocol's goodbye, undo nothing the client did not commit, and set `closing`."""

    @abc.abstractmethod
    async def timed_out(self) -> None:
        """The client was silent too long: queue the goodbye and set `closing`."""

    @abc.abstractmethod
    async def connection_lost(self) -> None:
        """The client went away (or the connection was closed): release what is held.
        Always called exactly once, last."""

    def summary(self) -> str:
        """One line for the log at the end of the session (what the session did)."""
        return ""
