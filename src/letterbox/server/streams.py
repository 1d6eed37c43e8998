"""Client streams that tell their connection when there is something to read.

A connection runner waits for client bytes, a change-feed event, a shutdown request or
its timer, whichever comes first. Waiting on a read task beside the others (asyncio.wait)
costs a task per read and three turns of the event loop from the bytes' arrival to the
runner: the reader's waiter wakes the read task, the finished task wakes wait(), and
wait() wakes the runner; each turn also runs whatever else is ready, such as a slice of
another session's long FETCH. A WakingReader calls its `on_ready` as the bytes arrive,
so the runner, waiting on one future of its own, runs on the next turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, SupportsIndex

LIMIT = 2**16
"""The StreamReader's buffer limit (asyncio's default); reading pauses at twice that."""


class WakingReader(asyncio.StreamReader):
    """A StreamReader that calls `on_ready` when bytes, the end of the stream or an
    error arrive (from the protocol's callbacks, on the event loop)."""

    on_ready: Callable[[], None] | None = None

    def __init__(self, limit: int = LIMIT) -> None:
        super().__init__(limit=limit)

    def ready(self) -> bool:
        """A read would return at once (data, end of stream, or an error to raise)."""
        return bool(self._buffer) or self._eof or self.exception() is not None  # type: ignore[attr-defined]

    def _wake(self) -> None:
        if self.on_ready is not None:
            self.on_ready()

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        super().feed_data(data)
        self._wake()

    def feed_eof(self) -> None:
        super().feed_eof()
        self._wake()

    def set_exception(self, exc: Exception) -> None:
        super().set_exception(exc)
        self._wake()


async def start_server(
    connected: Callable[[WakingReader, asyncio.StreamWriter], Awaitable[None]], host: str, port: int, **kwargs: Any
) -> asyncio.Server:
    """asyncio.start_server, with a WakingReader for each client."""
    def protocol() -> asyncio.StreamReaderProtocol:
        # *connected* is called with this protocol's reader, a WakingReader.
        return asyncio.StreamReaderProtocol(WakingReader(), connected)  # type: ignore[arg-type]

    return await asyncio.get_running_loop().create_server(protocol, host, port, **kwargs)
