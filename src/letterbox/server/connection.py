"""Drive one sans-I/O Session over an asyncio stream.

The runner waits for whichever comes first: client bytes, a change-feed event, a
shutdown request from the server (a protocol switched off), or the idle timer; it hands
that one event to the session and flushes what the session queued. A failure inside one
session is logged and ends that connection only.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable

from .accept import tls_failure
from .session import Session

log = logging.getLogger("letterbox.session")

READ_SIZE = 65536
# How much a session may queue before pipelined commands wait for the client to read.
OUTPUT_LIMIT = 256 * 1024


class Connection:
    def __init__(
        self,
        session: Session,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tls: ssl.SSLContext | None,
        on_done: Callable[[Connection], None] | None = None,
        login_timeout: float | None = None,
        handshake_timeout: float = 30.0,
    ) -> None:
        self.session = session
        self.reader = reader
        self.writer = writer
        self.tls = tls
        self.on_done = on_done
        self.login_deadline = time.monotonic() + login_timeout if login_timeout else None
        """Before login the whole connection has this long, however it trickles."""
        self.handshake_timeout = handshake_timeout
        self._stop_reason: str | None = None
        self._wake = asyncio.Event()
        session.flusher = self._flush
        session.output_limit = OUTPUT_LIMIT

    def request_shutdown(self, reason: str) -> None:
        """Ask the session to say goodbye and close (thread-unsafe; call from the loop)."""
        if self._stop_reason is None:
            self._stop_reason = reason
            self._wake.set()

    async def _flush(self) -> None:
        out = self.session.take_output()
        if out:
            self.writer.writelines(out)
            await asyncio.wait_for(self.writer.drain(), timeout=self.session.timeout)

    async def _upgrade(self) -> None:
        """STARTTLS/STLS: answer, then switch the stream to TLS.

        Reading pauses before the answer goes out, so the client's first TLS bytes
        cannot land in the plaintext buffer; plaintext the client pipelined after the
        command is dropped, never read as if it had come through TLS (RFC 3207 4.2).
        """
        s = self.session
        s.start_tls = False
        if self.tls is None:
            s.closing = True
            return
        # uvloop's transports are not asyncio.ReadTransport subclasses: look it up.
        pause = getattr(self.writer.transport, "pause_reading", None)
        if pause is not None:
            pause()
        await self._flush()
        buffered = getattr(self.reader, "_buffer", None)
        if isinstance(buffered, bytearray):
            buffered.clear()
        try:
            await asyncio.wait_for(self.writer.start_tls(self.tls), self.handshake_timeout)
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError, EOFError) as e:
            log.info("%s STARTTLS handshake with %s failed: %s", s.protocol, s.peer.ip, tls_failure(e))
            s.closing = True
            return
        s.tls_started()

    async def run(self) -> None:
        s = self.session
        read_task: asyncio.Task[bytes] | None = None
        wake_task = asyncio.ensure_future(self._wake.wait())
        sub_task: asyncio.Future[None] | None = None
        sub_for = None
        try:
            await s.start()
            await self._flush()
            while not s.closing:
                if read_task is None:
                    read_task = asyncio.ensure_future(self.reader.read(READ_SIZE))
                if s.subscription is not sub_for:
                    if sub_task is not None:
                        sub_task.cancel()
                    sub_for = s.subscription
                    sub_task = asyncio.ensure_future(sub_for.wait()) if sub_for else None
                waits: set[asyncio.Future] = {read_task, wake_task}
                if sub_task is not None:
                    waits.add(sub_task)
                timeout = s.timeout
                if self.login_deadline is not None and s.user is not None:
                    self.login_deadline = None
                for deadline in (self.login_deadline, s.deadline):
                    if deadline is not None:
                        timeout = max(0.0, min(timeout, deadline - time.monotonic()))
                done, _ = await asyncio.wait(
                    waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    await s.timed_out()
                elif wake_task in done:
                    await s.shutdown(self._stop_reason or "server shutting down")
                    s.closing = True
                elif read_task in done:
                    data = read_task.result()
                    read_task = None
                    if not data:
                        break
                    await s.receive(data)
                    while s.backlog and not s.closing:
                        await self._flush()
                        await s.resume()
                    if s.start_tls and not s.closing:
                        await self._upgrade()
                else:
                    sub_task = None
                    sub_for = None
                    await s.changed()
                await self._flush()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError) as e:
            log.debug("%s connection from %s ended: %s", s.protocol, s.peer.ip, e)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s session for %s from %s failed", s.protocol, s.user, s.peer.ip)
        finally:
            for t in (read_task, wake_task, sub_task):
                if t is not None:
                    t.cancel()
            try:
                await s.connection_lost()
            except Exception:
                log.exception("%s session cleanup failed", s.protocol)
            summary = s.summary()
            if summary:
                log.info("%s", summary)
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001 - the transport may already be gone
                pass
            if self.on_done is not None:
                self.on_done(self)
