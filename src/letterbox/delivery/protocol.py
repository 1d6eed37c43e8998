"""asyncio protocols for the LMTP and SMTP listeners, built on aiosmtpd.

`lmtp_protocol_factory(ctx)` and `smtp_protocol_factory(ctx)` return factories for
`loop.create_server` and `loop.create_unix_server`; `sessions_for(ctx).shutdown_all(...)`
ends the sessions they opened.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from collections.abc import Callable
from typing import Any, cast

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import MISSING, SMTP

from ..service.context import Context
from ..service.sockopts import quickack
from ..spool import SPOOL_MIN, Spool
from .core import client_address
from .handler import DeliveryHandler, Verbatim
from .sessions import DeliverySessions, sessions_for

log = logging.getLogger("letterbox.delivery")

# aiosmtpd logs every command line, with addresses, at INFO on "mail.log"; our own lines
# say what happened to each message. An administrator who sets a level keeps it.
_aiosmtpd_log = logging.getLogger("mail.log")
if _aiosmtpd_log.level == logging.NOTSET:
    _aiosmtpd_log.setLevel(logging.WARNING)

# What MTAs send in MAIL FROM and RCPT TO: "<local@domain>" with a dot-atom local part and
# a plain domain, then parameters. aiosmtpd's parser (the email package's, plus a class
# it defines per call) costs a tenth of a delivery; anything else still goes to it.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_PATH = re.compile(
    rf"<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?:[ \t]+([^ \t(].*))?",
    re.DOTALL,
)
_HAS_STATUS = re.compile(r"^\d{3}[ -]\d\.\d{1,3}\.\d{1,3}( |$)")
# RFC 3463 codes for aiosmtpd's own replies, which carry none.
_DEFAULT_STATUS = {
    "221": "2.0.0", "250": "2.0.0", "252": "2.5.0",
    "421": "4.3.0", "451": "4.3.0", "452": "4.3.1", "454": "4.7.0",
    "500": "5.5.2", "501": "5.5.4", "502": "5.5.1", "503": "5.5.1", "504": "5.5.4",
    "530": "5.7.0", "550": "5.0.0", "552": "5.3.4", "553": "5.1.3", "554": "5.7.0",
    "555": "5.5.4",
}


def with_status(reply: str) -> str:
    """Add an enhanced status code (RFC 2034) to a reply that has none."""
    code = reply[:3]
    if (
        len(reply) < 4
        or not code.isdigit()
        or code[0] not in "245"
        or code == "220"
        or "\n" in reply
        or _HAS_STATUS.match(reply)
    ):
        return reply
    status = _DEFAULT_STATUS.get(code, f"{code[0]}.0.0")
    return f"{reply[:4]}{status} {reply[4:]}"


def _clean(reason: str) -> str:
    return " ".join(reason.split()) or "service shutting down"


# StreamReader.read(n) hands over everything buffered when n is at least that much.
_ALL = 1 << 62
_END = b"\r\n.\r\n"
# aiosmtpd's wording, kept so clients and logs see the same refusals as before.
TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"
TOO_MUCH = "552 Error: Too much mail data"


def long_line_from(data: bytearray, start: int, limit: int) -> int:
    """The start of the first line of *data*, from offset *start* (a line start), that
    is not known to fit in *limit* octets with its CRLF.

    When at least *limit* octets follow that offset, the line there is too long;
    otherwise it may still grow past the limit, and checking resumes there once more
    data came. Jumps to the last CRLF within each *limit*-octet window, so a 50 KB
    message costs a few dozen searches rather than one per line.
    """
    pos = start
    end = len(data)
    while end - pos >= limit:
        crlf = data.rfind(b"\r\n", pos, pos + limit)
        if crlf < 0:
            break
        pos = crlf + 2
    return pos


def _verdict(buf: bytearray, checked: int, size_limit: int, line_limit: int, base: int = 0) -> str | None:
    """The refusal already certain for the message in *buf* (after a 2-octet prefix,
    and *base* octets already spooled), whose lines before *checked* fit.

    As with aiosmtpd, which reads a line at a time, the first fault in the stream
    decides: an over-long line starting within the first *size_limit* octets gives 500,
    any later one is past the point where the message was too big already.
    """
    if len(buf) - checked >= line_limit:
        return TOO_LONG if not size_limit or base + checked - 2 <= size_limit else TOO_MUCH
    if size_limit and base + checked - 2 > size_limit:
        return TOO_MUCH
    return None


async def read_data(
    reader: asyncio.StreamReader, size_limit: int, line_limit: int, spool: Callable[[], Spool] | None = None,
) -> bytes | Spool | str:
    """Read a DATA payload up to and including the final dot: the message without
    dot-stuffing, or the refusal to send (over-long line, over *size_limit*).

    A refused message is still read to its end (RFC 5321 4.2.5: the reply comes after
    the final dot), keeping only what finding the end needs. Bytes after the final dot
    (pipelined commands) go back to the reader. With *spool*, a message that outgrows
    SPOOL_MIN goes to a Spool as it arrives, a line at a time, and that is returned.
    """
    # A CRLF in front makes a message that is only ".\r\n" end like any other, and lets
    # one replace() undo the dot-stuffing of the first line too.
    buf = bytearray(b"\r\n")
    searched = 0  # the end marker does not start before this offset
    checked = 2  # the lines before this offset fit in line_limit
    dots = False  # a line before `searched` starts with a dot
    refusal: str | None = None
    # Spooling: whole lines before `searched` (and `checked`, where line length can
    # matter) go to the sink; `buf` then starts with the CRLF that ended the last of
    # them, so dot-stuffing is undone in each piece as in the whole.
    sink: Spool | None = None
    base = 0  # octets of the stream no longer in buf (the leading CRLF included)
    hunted = 0  # no CRLF to cut at starts in buf before this offset
    lines_matter = line_limit < (size_limit or _ALL)
    try:
        while True:
            chunk = await reader.read(_ALL)
            if not chunk:
                raise ConnectionResetError("connection closed during DATA")
            buf += chunk
            end = -1
            while not dots:
                # Most messages have no line starting with a dot but the final one: looking
                # for the dot finds the end and tells that there is no dot-stuffing to undo
                # in one pass over the message.
                dot = buf.find(b"\r\n.", searched)
                if dot < 0:
                    searched = max(0, len(buf) - 2)
                    break
                if len(buf) < dot + len(_END):
                    searched = dot  # too soon to tell
                    break
                if buf[dot + 3] == 13 and buf[dot + 4] == 10:  # "\r\n"
                    end = dot
                    break
                dots = True
                searched = dot
            if dots:
                end = buf.find(_END, searched)
                if end < 0:
                    searched = max(0, len(buf) - len(_END) + 1)
            if end >= 0:
                break
            if refusal is None:
                checked = long_line_from(buf, checked, line_limit)
                refusal = _verdict(buf, checked, size_limit, line_limit, base)
            if refusal is not None:
                if sink is not None:
                    sink.close()
                    sink = None
                if searched > 0:
                    del buf[:searched]
                    searched = 0
            elif spool is not None and len(buf) >= SPOOL_MIN:
                bound = min(searched, checked) if lines_matter else searched
                cut = buf.rfind(b"\r\n", hunted, bound + 2)
                hunted = max(hunted, bound + 1)
                if cut > 2 or (cut > 0 and base):
                    if sink is None:
                        sink = spool()
                    piece = buf[:cut]
                    if dots:
                        piece = piece.replace(b"\r\n.", b"\r\n")
                    sink.write(bytes(piece if base else memoryview(piece)[2:]))
                    del buf[:cut]
                    base += cut
                    searched -= cut
                    checked -= cut
                    hunted -= cut
        rest = buf[end + len(_END):]
        if rest and not reader.at_eof():
            # read() emptied the reader's buffer and nothing has run since, so this puts
            # the bytes back in front, in order.
            reader.feed_data(rest)
        if refusal is not None:
            return refusal
        del buf[end + 2:]  # the message ends with the CRLF in front of the dot
        checked = long_line_from(buf, checked, line_limit)
        refusal = _verdict(buf, checked, size_limit, line_limit, base)
        if refusal is None and size_limit and base + len(buf) - 2 > size_limit:
            refusal = TOO_MUCH
        if refusal is not None:
            if sink is not None:
                sink.close()
            return refusal
        # RFC 5321 4.5.2: a line starting with a dot loses that dot.
        if dots:
            buf = buf.replace(b"\r\n.", b"\r\n")
        if sink is not None:
            sink.write(bytes(buf if base else memoryview(buf)[2:]))
            return sink
        return bytes(memoryview(buf)[2:])
    except BaseException:
        if sink is not None:
            sink.close()
        raise


class DeliverySMTP(SMTP):
    """aiosmtpd's SMTP with Letterbox's session tracking, shutdown and reply codes."""

    service = "smtp"
    data_line_limit = 1001
    """RFC 5321 4.5.3.1.6: 1,000 octets with the CRLF (aiosmtpd's line_length_limit)."""

    def __init__(
        self, handler: DeliveryHandler, *, sessions: DeliverySessions, max_per_ip: int = 0,
        data_timeout: float = 600.0, **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.spooler = handler.ctx.spooler
        # aiosmtpd keeps this on the class, so one session's EHLO would raise the limits
        # of all; give each session its own.
        self.command_size_limits = collections.defaultdict(lambda: self.command_size_limit)
        self.sessions = sessions
        self.stop_reason: str | None = None
        """Set by `shutdown`: the session must end after the reply in hand."""
        self.storing = False
        """True while handle_DATA writes copies (the client is waiting for us)."""
        self._data_recipients = 0
        """Recipients of the DATA in progress, counted once its 354 has gone out."""
        self.max_per_ip = max_per_ip
        self.data_timeout = data_timeout
        self._ip = ""
        self._refused = False
        self.spooled: Spool | None = None
        """The message of the DATA in hand when it was big enough to go to disk."""

    # --- life cycle ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # STARTTLS calls this again with the TLS transport
        if first:
            peer = transport.get_extra_info("peername")
            # Inbound SMTP faces the world: like IMAP and POP3, one address may hold only
            # so many sessions. LMTP comes from the local MTA and is not limited.
            ip = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            limit = self.max_per_ip if self.service == "smtp" else 0
            # Only a session counted against its address gives the place back.
            self._ip = ip if limit else ""
            if not self.sessions.add(self, ip, limit):
                self._refused = True
                log.warning("smtp connection from %s refused: %d connections already", ip, limit)
                cast(asyncio.WriteTransport, transport).write(
                    b"421 4.7.0 Too many connections from your address\r\n"
                )
                transport.close()
                return
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return  # never started: aiosmtpd has nothing to clean up
        self.sessions.discard(self, self._ip)
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        # aiosmtpd resets its timer only when a command arrives, so a large message on a
        # slow link would be cut off mid-DATA; the timeout is for a silent client.
        self._reset_timeout()
        if self._data_recipients and self.transport is not None:
            # Mid-DATA nothing is answered until the final dot, which a client with Nagle
            # on holds until these bytes are acked: ack them now, not in 40 ms.
            quickack(self.transport.get_extra_info("socket"))
        super().data_received(data)

    def _timeout_cb(self) -> None:
        if self.storing:  # the client waits for our reply; it is not silent
            self._reset_timeout()
            return
        log.info("%s: closing silent connection from %s", self.service, self._peer_text())
        self._say_goodbye("421 4.4.2 Timeout, closing connection", close=False)
        super()._timeout_cb()

    def shutdown(self, reason: str) -> None:
        """End the session (see DeliverySessions.shutdown_all)."""
        if self.stop_reason is not None:
            return
        self.stop_reason = _clean(reason)
        if not self.storing:
            self._say_goodbye(f"421 4.3.2 {self.stop_reason}")

    def _say_goodbye(self, reply: str, close: bool = True) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        # A cast, not an isinstance check: uvloop's transports are not asyncio classes.
        cast(asyncio.WriteTransport, transport).write(reply.encode("ascii", "replace") + b"\r\n")
        if close:
            transport.close()

    def _peer_text(self) -> str:
        return client_address(self.session.peer if self.session else None)

    # --- commands ------------------------------------------------------------------------
    async def smtp_DATA(self, arg: str) -> None:
        try:
            if self._decode_data:
                await super().smtp_DATA(arg)
            else:
                await self._data(arg)
        finally:
            self._data_recipients = 0
        if self.stop_reason is not None:
            self._say_goodbye(f"421 4.3.2 {self.stop_reason}")

    async def _data(self, arg: str) -> None:
        """aiosmtpd's smtp_DATA with the same checks and replies, reading the message in
        blocks: aiosmtpd awaits readuntil once per line, the better part of the CPU that
        a delivery costs."""
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            received = await asyncio.wait_for(
                read_data(
                    self._reader, self.data_size_limit or 0, self.data_line_limit,
                    self.spooler.new,
                ),
                self.data_timeout,
            )
        except TimeoutError:
            log.info("%s: DATA from %s took too long; closing", self.service, self._peer_text())
            self._say_goodbye("421 4.4.2 DATA took too long, closing connection")
            return
        except asyncio.CancelledError:
            # Connection lost (or the session ended) mid-DATA: nothing is stored.
            self._writer.close()
            raise
        except ConnectionResetError:
            # The client went away mid-DATA: nothing is stored, and the session ends
            # (re-raised, aiosmtpd's task would end with an error nobody collects).
            log.info("%s: connection from %s closed during DATA", self.service, self._peer_text())
            self._writer.close()
            return
        if isinstance(received, str):
            await self.push(received)
            self._set_post_data_state()
            return
        if isinstance(received, Spool):
            # Loaded by the handler when its turn comes (Spooler.loaded).
            self.spooled = received
            received = b""
        self.envelope.content = received
        self.envelope.original_content = received
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        m = _SIMPLE_PATH.fullmatch(arg)
        if m is None or self.local_part_limit:
            try:
                return super()._getaddr(arg)
            except Exception:  # noqa: BLE001 - the email parser fails on some garbage
                return None, None  # aiosmtpd then answers 553 (a syntax error)
        return m[1], m[2] or ""

    async def smtp_AUTH(self, arg: str) -> None:
        await self.push("502 5.5.1 AUTH not available: this service only accepts mail for local users")

    async def push(self, status: str | bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # aiosmtpd goes on with lines it had buffered after closing
        if isinstance(status, bytes):
            await super().push(status)
            return
        if isinstance(status, Verbatim):
            await super().push(str(status))
            return
        reply = with_status(status)
        if reply[:1] in ("4", "5") and reply is not status:
            # A refusal decided by aiosmtpd itself (syntax, size, sequence).
            log.info("%s(%s): %s", self.service, self._peer_text(), reply)
        # A reply may repeat an address that was not UTF-8 (kept as surrogates).
        reply = reply.encode("utf-8", "replace").decode("utf-8")
        if reply.startswith("354") and self.envelope is not None:
            self._data_recipients = len(self.envelope.rcpt_tos)
        elif self._data_recipients:
            reply = self.end_of_data_reply(reply, self._data_recipients)
            self._data_recipients = 0
        await super().push(reply)

    def end_of_data_reply(self, reply: str, recipients: int) -> str:
        """The reply(s) after the final dot: SMTP has one for the whole message."""
        return reply


class DeliveryLMTP(LMTP, DeliverySMTP):
    """LMTP (aiosmtpd's LHLO, no HELO/EHLO) with the same additions."""

    service = "lmtp"
    # The MTA has accepted the message already: refusing a long line now would bounce
    # it. Like Dovecot, LMTP takes lines of any length (the message size still counts).
    data_line_limit = 1 << 62

    def end_of_data_reply(self, reply: str, recipients: int) -> str:
        # RFC 2033 4.2: after the final dot the client reads one reply per accepted
        # recipient, even when the message as a whole is refused (too big, line too long,
        # internal error); aiosmtpd sends those as a single reply, so repeat it.
        if "\n" in reply:
            return reply
        return "\r\n".join([reply] * recipients)


def _options(ctx: Context) -> dict[str, Any]:
    limits = ctx.settings.delivery
    return {
        "data_size_limit": limits.max_message_size,
        "enable_SMTPUTF8": True,
        "decode_data": False,  # keep the bytes exactly as sent, 8-bit and NUL included
        "hostname": ctx.hostname,  # else aiosmtpd asks DNS for the FQDN per connection
        "timeout": limits.timeout,
        "data_timeout": limits.data_timeout,
        "auth_exclude_mechanism": ["LOGIN", "PLAIN"],
        "loop": asyncio.get_running_loop(),
    }


def lmtp_protocol_factory(
    ctx: Context, sessions: DeliverySessions | None = None
) -> Callable[[], asyncio.Protocol]:
    """Protocol factory for LMTP over TCP or a UNIX socket (no STARTTLS: the MTA is local)."""
    registry = sessions if sessions is not None else sessions_for(ctx)

    def make() -> asyncio.Protocol:
        handler = DeliveryHandler(ctx, "lmtp", registry)
        return DeliveryLMTP(handler, sessions=registry, ident="Letterbox LMTP ready", **_options(ctx))

    return make


def smtp_protocol_factory(
    ctx: Context, sessions: DeliverySessions | None = None
) -> Callable[[], asyncio.Protocol]:
    """Protocol factory for inbound SMTP to local domains, with STARTTLS when TLS is set."""
    registry = sessions if sessions is not None else sessions_for(ctx)

    def make() -> asyncio.Protocol:
        handler = DeliveryHandler(ctx, "smtp", registry)
        return DeliverySMTP(
            handler,
            sessions=registry,
            max_per_ip=ctx.settings.server.max_connections_per_ip,
            ident="Letterbox ESMTP ready",
            tls_context=ctx.tls,
            require_starttls=False,
            **_options(ctx),
        )

    return make
