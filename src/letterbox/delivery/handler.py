"""The aiosmtpd handler shared by LMTP (RFC 2033) and inbound SMTP (RFC 5321).

One handler per connection: it checks recipients at RCPT time and stores one copy per
recipient after DATA. Only local accounts are accepted, never relaying, and there is no
AUTH: this is the final hop for our own domains, not a submission service.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException

from .. import metrics
from ..mime import ParsedMessage
from ..service.context import Context
from ..store.api import AppendResult, DiskFull, OverQuota, StoreError
from .core import (
    Refusal,
    check_quota,
    client_address,
    disk_full,
    mailbox_disabled,
    mailbox_full,
    message_id,
    new_id,
    parse_once,
    received_header,
    resolve_recipient,
    return_path,
    saved_line,
    store_copy,
    temporary_failure,
    too_many_recipients,
    user_unknown,
)
from .sessions import DeliverySessions

if TYPE_CHECKING:
    from .protocol import DeliverySMTP

log = logging.getLogger("letterbox.delivery")


class Verbatim(str):
    """A reply pushed exactly as written: greetings and EHLO/LHLO lines carry no enhanced
    status code (RFC 2034 section 3)."""


def declared_size(envelope: Envelope) -> int:
    """The MAIL FROM SIZE= parameter (RFC 1870), or 0 when not given."""
    for option in envelope.mail_options:
        key, _, value = option.partition("=")
        if key.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0


class DeliveryHandler:
    def __init__(self, ctx: Context, service: str, sessions: DeliverySessions) -> None:
        self.ctx = ctx
        self.service = service
        self.sessions = sessions
        self.limits = ctx.settings.delivery

    # --- greeting ------------------------------------------------------------------------
    async def handle_HELO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str
    ) -> str:
        session.host_name = hostname
        return Verbatim(f"250 {server.hostname}")

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        keywords = [r[4:] for r in responses[1:]]
        keywords = [k for k in keywords if k != "HELP" and not k.startswith("AUTH")]
        # RFC 2033 section 5: an LMTP server must offer both; aiosmtpd reads commands
        # one line at a time from a buffer, so pipelined commands are fine.
        keywords += ["PIPELINING", "ENHANCEDSTATUSCODES"]
        lines = [responses[0], *(f"250-{k}" for k in keywords)]
        lines[-1] = "250 " + lines[-1][4:]
        return [Verbatim(line) for line in lines]

    # --- envelope ------------------------------------------------------------------------
    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        checked = await self._check_recipient(envelope, address)
        if isinstance(checked, Refusal):
            if checked.reason.startswith("over quota"):
                metrics.delivery(self.service, "deferred_quota" if checked.code < 500 else "over_quota")
            log.info(
                "%s(%s): refused RCPT from %s: %s",
                self.service, address, client_address(session.peer), checked.reason,
            )
            return checked.reply
        envelope.rcpt_tos.append(checked)
        return f"250 2.1.5 <{checked}> OK"

    async def _check_recipient(self, envelope: Envelope, address: str) -> str | Refusal:
        """The normalized address, or why it is refused."""
        if len(envelope.rcpt_tos) >= self.limits.max_recipients:
            return too_many_recipients(self.limits.max_recipients)
        try:
            # Asked without holding the event loop (a shared directory is a network
            # away); resolve_recipient then finds it cached. Unreachable: 451, below.
            await self.ctx.directory.aget(address)
            found = resolve_recipient(self.ctx, address)
            if isinstance(found, Refusal):
                return found
            addr, account = found
            refusal = await check_quota(self.ctx, account, declared_size(envelope))
        except Exception as e:
            log.error("%s(%s): recipient check failed: %s", self.service, address, e)
            return temporary_failure(address)
        return addr if refusal is None else refusal

    # --- message -------------------------------------------------------------------------
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        protocol: DeliverySMTP = server  # type: ignore[assignment]
        spooled, protocol.spooled = protocol.spooled, None
        protocol.storing = True
        try:
            # A big message waits on disk until few enough others are in memory.
            async with self.ctx.spooler.loaded(spooled or envelope.original_content or b"") as content:
                return await self._data(protocol, session, envelope, content)
        except DiskFull:
            log.warning("%s(%s): deferred: no disk space to receive the message",
                        self.service, client_address(session.peer))
            return "452 4.3.1 Insufficient system storage"
        except StoreError as e:
            log.error("%s(%s): %s", self.service, client_address(session.peer), e)
            return "451 4.3.0 Temporary failure, try again later"
        finally:
            protocol.storing = False

    async def _data(self, protocol: DeliverySMTP, session: Session, envelope: Envelope, content: bytes) -> str:
        txid = new_id()
        recipients = list(envelope.rcpt_tos)
        with_ = self._with_clause(session, envelope)
        trace = received_header(
            self.ctx.hostname, with_, txid, list(dict.fromkeys(recipients)),
            helo=session.host_name, peer=session.peer,
        )
        message = return_path(envelope.mail_from or "") + trace + content
        msgid = message_id(content)
        # Parsed once for every recipient (the same bytes go to each).
        parsed = await parse_once(message)
        if self.service == "lmtp":
            return await self._lmtp_data(protocol, recipients, message, msgid, parsed)
        return await self._smtp_data(protocol, recipients, message, msgid, txid, parsed)

    def _with_clause(self, session: Session, envelope: Envelope) -> str:
        # Protocol types registered by RFC 3848 (ESMTP, ESMTPS, LMTP...) and RFC 6531
        # 3.7.4 (UTF8SMTP, UTF8LMTP...).
        if envelope.smtp_utf8:
            name = "UTF8LMTP" if self.service == "lmtp" else "UTF8SMTP"
        elif self.service == "lmtp":
            name = "LMTP"
        else:
            name = "ESMTP" if session.extended_smtp else "SMTP"
        return name + "S" if session.ssl is not None else name

    async def _lmtp_data(
        self, protocol: DeliverySMTP, recipients: list[str], message: bytes, msgid: str,
        parsed: ParsedMessage,
    ) -> str:
        # RFC 2033 4.2: one reply per accepted RCPT, in RCPT order. aiosmtpd writes the
        # string handle_DATA returns followed by CRLF, so the replies are joined by CRLF.
        replies: list[str] = []
        done: dict[str, str] = {}
        for addr in recipients:
            if addr not in done:
                if protocol.stop_reason is not None:
                    # Shutting down: what is stored is acknowledged, the rest is retried.
                    done[addr] = f"451 4.3.2 <{addr}> {protocol.stop_reason}"
                else:
                    result = await self._deliver_one(protocol, addr, message, msgid, parsed)
                    done[addr] = (
                        result.reply if isinstance(result, Refusal) else f"250 2.0.0 <{addr}> Saved"
                    )
            replies.append(done[addr])
        return "\r\n".join(replies)

    async def _smtp_data(
        self, protocol: DeliverySMTP, recipients: list[str], message: bytes, msgid: str, txid: str,
        parsed: ParsedMessage,
    ) -> str:
        if protocol.stop_reason is not None:
            # Nothing stored: refuse for now; the session then says 421 and closes.
            return f"451 4.3.2 {protocol.stop_reason}"
        # Once the first copy is stored the others are finished even if a shutdown was
        # asked for meanwhile: each is a quick local write, and stopping half-way would
        # leave only bad choices (see below).
        stored: list[str] = []
        failed: list[tuple[str, Refusal]] = []
        for addr in dict.fromkeys(recipients):
            result = await self._deliver_one(protocol, addr, message, msgid, parsed)
            if isinstance(result, Refusal):
                failed.append((addr, result))
            else:
                stored.append(addr)
        if not failed:
            return f"250 2.0.0 Ok: stored as {txid}"
        if stored:
            # SMTP has a single reply for all recipients. Answering 4xx would make the
            # client send again to everyone, so the recipients already served would get
            # duplicates on every retry; 5xx would bounce a message most recipients
            # received. Accepting is the least bad: the quota was checked at RCPT, so this
            # only happens when a store write fails or a mailbox filled up meanwhile,
            # and the administrator learns of it from this log line.
            for addr, refusal in failed:
                log.error(
                    "%s(%s): msgid=%s: copy NOT stored (%s) although the message was "
                    "accepted for %s",
                    self.service, addr, msgid, refusal.reason, ", ".join(stored),
                )
            return f"250 2.0.0 Ok: stored as {txid} (not for every recipient)"
        if all(r.permanent for _, r in failed):
            return failed[0][1].reply
        return "451 4.3.0 Temporary failure, try again later"

    async def _deliver_one(
        self, protocol: DeliverySMTP, addr: str, message: bytes, msgid: str, parsed: ParsedMessage
    ) -> AppendResult | Refusal:
        # Look the account up again: it may have been disabled, removed or given a new
        # quota since RCPT.
        try:
            account = await self.ctx.directory.aget(addr)
        except Exception as e:
            log.error("%s(%s): msgid=%s: account lookup failed: %s", self.service, addr, msgid, e)
            return temporary_failure(addr)
        if account is None or not account.enabled:
            refusal = user_unknown(addr) if account is None else mailbox_disabled(addr)
            log.info("%s(%s): msgid=%s: refused: %s", self.service, addr, msgid, refusal.reason)
            metrics.delivery(self.service, "unknown_user" if account is None else "disabled")
            return refusal
        write = asyncio.ensure_future(store_copy(self.ctx, account, message, parsed))
        self.sessions.track(write)
        try:
            # Shielded: if the client goes away the write still completes, so the store
            # never holds half a message.
            result = await asyncio.shield(write)
        except asyncio.CancelledError:
            write.add_done_callback(lambda w: self._orphaned(w, addr, msgid, len(message)))
            raise
        except OverQuota:
            refusal = mailbox_full(addr, self.ctx.policy.defer_when_full)
            log.info("%s(%s): msgid=%s: refused: %s", self.service, addr, msgid, refusal.reason)
            metrics.delivery(self.service, "deferred_quota" if refusal.code < 500 else "over_quota")
            return refusal
        except DiskFull:
            log.warning("%s(%s): msgid=%s: deferred: the disk is full", self.service, addr, msgid)
            metrics.delivery(self.service, "disk_full")
            return disk_full(addr)
        except Exception as e:
            log.error("%s(%s): msgid=%s: store failed: %s", self.service, addr, msgid, e,
                      exc_info=not isinstance(e, (OSError, StoreError)))
            metrics.delivery(self.service, "failed")
            return temporary_failure(addr)
        log.info(saved_line(self.service, addr, msgid, result, len(message)))
        metrics.delivery(self.service, "stored")
        return result

    def _orphaned(self, write: asyncio.Future[AppendResult], addr: str, msgid: str, size: int) -> None:
        if write.cancelled():
            return
        error = write.exception()
        if error is None:
            log.warning(
                "%s; the client left before the reply and will likely send it again",
                saved_line(self.service, addr, msgid, write.result(), size),
            )
        elif not isinstance(error, OverQuota):
            log.error("%s(%s): msgid=%s: store failed: %s", self.service, addr, msgid, error)

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):
            # A client (or scanner) that failed its STARTTLS handshake: nothing of ours.
            log.info("%s: STARTTLS handshake failed: %s", self.service, error.__cause__ or error)
            return "421 4.7.0 TLS handshake failed"
        log.error("%s: unexpected error: %s", self.service, error, exc_info=error)
        return "451 4.3.0 Internal error, try again later"

