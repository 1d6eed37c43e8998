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
from aiosmtpd.smtp import SMTP

from ..server.context import Context
from .core import client_address
from .handler import DeliveryHandler, Verbatim
from .sessions import DeliverySessions, sessions_for

log = logging.getLogger("letterbox.delivery")

# aiosmtpd logs every command line, with addresses, at INFO on "mail.log"; our own lines
# say what happened to each message. An administrator who sets a level keeps it.
_aiosmtpd_log = logging.getLogger("mail.log")
if _aiosmtpd_log.level == logging.NOTSET:
    _aiosmtpd_log.setLevel(logging.WARNING)

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


class DeliverySMTP(SMTP):
    """aiosmtpd's SMTP with Letterbox's session tracking, shutdown and reply codes."""

    service = "smtp"

    def __init__(self, handler: DeliveryHandler, *, sessions: DeliverySessions, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
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

    # --- life cycle ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # STARTTLS calls this again with the TLS transport
        super().connection_made(transport)
        if first:
            self.sessions.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.sessions.discard(self)
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        # aiosmtpd resets its timer only when a command arrives, so a large message on a
        # slow link would be cut off mid-DATA; the timeout is for a silent client.
        self._reset_timeout()
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
            await super().smtp_DATA(arg)
        finally:
            self._data_recipients = 0
        if self.stop_reason is not None:
            self._say_goodbye(f"421 4.3.2 {self.stop_reason}")

    async def smtp_AUTH(self, arg: str) -> None:
        await self.push("502 5.5.1 AUTH not available: this service only accepts mail for local users")

    async def push(self, status: str | bytes) -> None:
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
            ident="Letterbox ESMTP ready",
            tls_context=ctx.tls,
            require_starttls=False,
            **_options(ctx),
        )

    return make
