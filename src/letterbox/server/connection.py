"""Drive one sans-I/O Session over an asyncio stream.

The runner waits for whichever comes first: client bytes, a change-feed event, a
shutdown request from the server (a protocol switched off), or the idle timer; it hands
that one event to the session and flushes what the session queued. A failure inside one
session is logged and ends that connection only.

While a command is open (a continuation request went out, or the client's bytes did not
complete a command) the client's next bytes are acknowledged at once (sockopts.quickack),
so a client with Nagle's algorithm on does not wait for Linux's delayed ACK.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import ssl
import time
from collections.abc import Callable

from ..service.session import Session
from ..service.sockopts import quickack
from .accept import tls_failure
from .deflate import Deflate, DeflateError
from .streams import WakingReader
from .tlsbinding import tls_exporter

log = logging.getLogger("letterbox.session")

READ_SIZE = 65536
# How much a session may queue before pipelined commands wait for the client to read.
OUTPUT_LIMIT = 256 * 1024


def _asks_for_more(out: list[bytes]) -> bool:
    """Whether *out* ends with a continuation request: "+ " (or a bare "+") opens the
    line in IMAP (literals, AUTHENTICATE, IDLE) and in POP3 AUTH; POP3's "+OK" does not."""
    last = out[-1]
    start = last.rfind(b"\n", 0, len(last) - 1) + 1
    return last.startswith(b"+ ", start) or last[start:] == b"+\r\n"


_ids = itertools.count(1)


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class Connection:
    def __init__(
        self,
        session: Session,
        reader: WakingReader,
        writer: asyncio.StreamWriter,
        tls: ssl.SSLContext | None,
        on_done: Callable[[Connection], None] | None = None,
        login_timeout: float | None = None,
        handshake_timeout: float = 30.0,
    ) -> None:
        self.session = session
        self.id = next(_ids)
        """Names the connection to the console (never reused while the server runs)."""
        self.started = time.time()
        """When the connection was accepted (the console lists sessions with it)."""
        self.reader = reader
        self.writer = writer
        self.tls = tls
        self.on_done = on_done
        self.login_deadline = time.monotonic() + login_timeout if login_timeout else None
        """Before login the whole connection has this long, however it trickles."""
        self.handshake_timeout = handshake_timeout
        self._stop_reason: str | None = None
        self._waiter: asyncio.Future[bool] | None = None
        """While the runner waits: resolved by whatever it waits for (see _wait)."""
        self._sock = writer.get_extra_info("socket")
        """The TCP socket (under TLS too), for quickack; it stays the same across STARTTLS."""
        self._writes = 0
        self._deflate: Deflate | None = None
        """Set once the session turned on COMPRESS=DEFLATE."""
        session.flusher = self._flush
        session.output_limit = OUTPUT_LIMIT
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None:  # implicit TLS: the handshake is done
            session.peer = dataclasses.replace(session.peer, tls_exporter=tls_exporter(ssl_object))

    def request_shutdown(self, reason: str) -> None:
        """Ask the session to say goodbye and close (thread-unsafe; call from the loop)."""
        if self._stop_reason is None:
            self._stop_reason = reason
            self._poke()

    def _poke(self) -> None:
        """Something to do has come (client bytes, a change, a shutdown request)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    async def _wait(self, timeout: float) -> bool:
        """Wait for a _poke (True), or *timeout* seconds (False). One future and a timer:
        no task per read, and the runner runs on the turn of the loop after the bytes
        came (server/streams.py)."""
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def _flush(self) -> None:
        out = self.session.take_output()
        if out:
            if self.writer.transport.is_closing():
                # The client went away: the session ends as for any lost connection
                # (a write on a closed transport would raise RuntimeError).
                raise ConnectionResetError("connection lost")
            if self._deflate is not None:
                self.writer.write(self._deflate.deflate(b"".join(out)))
            else:
                self.writer.writelines(out)
            self._writes += 1
            # Waiting is only needed above the transport's high-water mark (below it drain()
            # returns at once); wait_for would cost a task and a turn of the loop per answer.
            if self.writer.transport.get_write_buffer_size() > self._high_water():
                await asyncio.wait_for(self.writer.drain(), timeout=self.session.timeout)
            # After the write: sending makes Linux delay its ACKs again.
            if _asks_for_more(out):
                quickack(self._sock)

    def _high_water(self) -> int:
        limits = getattr(self.writer.transport, "get_write_buffer_limits", None)
        return limits()[1] if limits is not None else -1

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
        s.tls_started(tls_exporter(self.writer.get_extra_info("ssl_object")))

    async def _start_compress(self) -> None:
        """COMPRESS: the answer goes out as it is, everything after it deflated; bytes
        the client sent after the command were deflated already."""
        s = self.session
        s.start_compress = False
        await self._flush()
        self._deflate = Deflate()
        pending = s.take_unread()
        if pending:
            await self._receive_compressed(pending)

    async def _receive_compressed(self, data: bytes) -> None:
        """Inflate and hand over a piece at a time (a small input may inflate to a lot),
        letting the session send what it answered before the next piece."""
        s = self.session
        assert self._deflate is not None
        try:
            plain = self._deflate.inflate(data)
            while True:
                if plain:
                    await s.receive(plain)
                while s.backlog and not s.closing:
                    await self._flush()
                    await s.resume()
                if s.closing or not self._deflate.pending:
                    return
                await self._flush()
                plain = self._deflate.inflate()
        except DeflateError as e:
            log.info("%s connection from %s: corrupt compressed data: %s", s.protocol, s.peer.ip, e)
            s.closing = True

    async def run(self) -> None:
        s = self.session
        reader = self.reader
        reader.on_ready = self._poke
        sub_for = None
        try:
            await s.start()
            await self._flush()
            while not s.closing:
                if s.subscription is not sub_for:
                    if sub_for is not None:
                        sub_for.on_change = None
                    sub_for = s.subscription
                    if sub_for is not None:
                        sub_for.on_change = self._poke
                timeout = s.timeout
                if self.login_deadline is not None and s.user is not None:
                    self.login_deadline = None
                for deadline in (self.login_deadline, s.deadline):
                    if deadline is not None:
                        timeout = max(0.0, min(timeout, deadline - time.monotonic()))
                poked = True
                if self._stop_reason is None and not reader.ready() and not (sub_for and sub_for.pending()):
                    poked = await self._wait(timeout)
                if self._stop_reason is not None:
                    await s.shutdown(self._stop_reason)
                    s.closing = True
                elif reader.ready():
                    data = await reader.read(READ_SIZE)  # at once: the bytes are there
                    if not data:
                        break
                    writes = self._writes
                    if self._deflate is not None:
                        await self._receive_compressed(data)
                    else:
                        await s.receive(data)
                    if not s.out and self._writes == writes:
                        # No answer: the command goes on, and its next bytes (the rest of
                        # a literal, its CRLF) may wait in the client until these are acked.
                        quickack(self._sock)
                    while s.backlog and not s.closing:
                        await self._flush()
                        await s.resume()
                    if s.start_tls and not s.closing:
                        await self._upgrade()
                    if s.start_compress and not s.closing:
                        await self._start_compress()
                elif sub_for is not None and sub_for.pending():
                    await s.changed()
                elif not poked:
                    await s.timed_out()
                await self._flush()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError) as e:
            log.debug("%s connection from %s ended: %s", s.protocol, s.peer.ip, e)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s session for %s from %s failed", s.protocol, s.user, s.peer.ip)
        finally:
            reader.on_ready = None
            if sub_for is not None:
                sub_for.on_change = None
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
