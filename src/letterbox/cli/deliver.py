"""`letterbox deliver --to USER`: local delivery from an MTA's pipe transport.

For Postfix (master.cf, `pipe` with `argv=letterbox deliver -f ${sender} --to ${recipient}`)
or Exim (a `pipe` transport). The message comes on stdin; the exit status follows
sysexits.h so the MTA knows whether to bounce or retry, with a one-line reason on stderr:

    0  delivered              67 EX_NOUSER    no such user
    65 EX_DATAERR  too big    75 EX_TEMPFAIL  store or directory trouble: retry later
    78 EX_CONFIG   bad config 77 EX_NOPERM    mailbox full or disabled: bounce

Over quota bounces (77), as LMTP's 552 5.2.2 does and as Dovecot's LDA does by default
(quota_full_tempfail = no): a full mailbox rarely empties within the MTA's retry window,
and a bounce tells the sender now instead of days later.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from typing import BinaryIO, NoReturn

import click

from ..auth.directory import DirectoryError, normalize_address
from ..config import Settings, TLSSettings
from ..delivery.core import new_id, received_header, return_path, store_copy
from ..server.control import send_command
from ..store.api import OverQuota
from .common import settings_from

EX_OK = 0
EX_DATAERR = 65
EX_NOUSER = 67
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_CONFIG = 78

_BARE_LF = re.compile(rb"(?<!\r)\n")
_CHUNK = 1 << 16


class Refused(Exception):
    def __init__(self, code: int, message: str, outcome: str = "failed") -> None:
        super().__init__(message)
        self.code = code
        self.outcome = outcome
        """As the server's delivery metrics name it (see letterbox.metrics.delivery)."""


def read_message(stream: BinaryIO, limit: int) -> tuple[bytes, str | None]:
    """The message in wire form, and the sender of a leading mbox "From " line if any.

    MTAs hand local delivery agents the message with the local (LF) line ends, while
    Letterbox stores what SMTP carries: CRLF line ends, which RFC822.SIZE, BODY[] offsets
    and POP3 sizes all count. Existing CRLFs are kept, so CRLF input stays byte-exact.
    Raises Refused when the message is larger than *limit* (after conversion).
    """
    chunks: list[bytes] = []
    total = 0
    # Keep reading past the limit so the MTA does not see a broken pipe, but stop
    # keeping the bytes. The slack covers a "From " line that is not counted.
    keep = limit + 4096
    while chunk := stream.read(_CHUNK):
        total += len(chunk)
        if total <= keep:
            chunks.append(chunk)
    if total > keep:
        raise Refused(EX_DATAERR, f"message too big: more than {limit} bytes", "too_big")
    data = b"".join(chunks)
    sender = None
    if data.startswith(b"From "):
        # An mbox separator (Postfix's pipe flag F, Exim's use_from): not a header field.
        line, _, data = data.partition(b"\n")
        words = line.split()
        if len(words) > 1:
            sender = words[1].decode("utf-8", "surrogateescape")
            if sender == "MAILER-DAEMON":
                sender = ""
    data = _BARE_LF.sub(b"\r\n", data)
    if len(data) > limit:
        raise Refused(EX_DATAERR, f"message too big: {len(data)} bytes, at most {limit} accepted", "too_big")
    return data, sender


async def deliver_message(settings: Settings, recipient: str, sender: str | None, data: bytes) -> str:
    """Store *data* in *recipient*'s INBOX; returns the normalized address."""
    from ..server.context import build_context

    try:
        addr = normalize_address(recipient)
    except DirectoryError as e:
        raise Refused(EX_NOUSER, str(e), "unknown_user") from None
    # Delivery needs no certificate, and the MTA's delivery user often may not read it.
    try:
        ctx = build_context(settings.model_copy(update={"tls": TLSSettings()}), exclusive=False, serving=False)
    except Exception as e:
        raise Refused(EX_TEMPFAIL, f"cannot open the mail store: {e}") from None
    try:
        account = ctx.directory.get(addr)
        if account is None:
            raise Refused(EX_NOUSER, f"{addr}: no such user", "unknown_user")
        if not account.enabled:
            raise Refused(EX_NOPERM, f"{addr}: mailbox disabled", "disabled")
        trace = received_header(ctx.hostname, "local", new_id(), [addr], local=True)
        head = (return_path(sender) if sender is not None else b"") + trace
        try:
            await store_copy(ctx, account, head + data)
        except OverQuota:
            if ctx.policy.defer_when_full:  # [quota] when_full = "defer": the MTA retries
                raise Refused(EX_TEMPFAIL, f"{addr}: mailbox full, try again later", "deferred_quota") from None
            raise Refused(EX_NOPERM, f"{addr}: mailbox full", "over_quota") from None
        except Exception as e:
            raise Refused(EX_TEMPFAIL, f"{addr}: could not store the message: {e}") from None
    finally:
        await ctx.store.close()
        ctx.directory.close()
    return addr


@click.command("deliver")
@click.option("-t", "--to", "recipient", required=True, metavar="ADDRESS",
              help="The local account to deliver to.")
@click.option("-f", "--from", "sender", default=None, metavar="SENDER",
              help='Envelope sender, recorded as Return-Path: ("" for a bounce).')
@click.pass_context
def deliver(ctx: click.Context, recipient: str, sender: str | None) -> None:
    """Deliver one message from stdin to ADDRESS's INBOX (for an MTA's pipe transport)."""
    try:
        settings = settings_from(ctx)
    except SystemExit as e:
        # settings_from has printed the problem; an MTA needs EX_CONFIG to defer the mail.
        if e.code not in (0, None):
            sys.exit(EX_CONFIG)
        raise
    try:
        data, mbox_sender = read_message(
            sys.stdin.buffer, settings.delivery.max_message_size
        )
        if sender is None:
            sender = mbox_sender
        addr = asyncio.run(deliver_message(settings, recipient, sender, data))
    except Refused as e:
        _tell_server(settings, {"cmd": "delivered", "outcome": e.outcome})
        _exit(e.code, str(e))
    except Exception as e:  # anything unforeseen: keep the mail queued at the MTA
        _tell_server(settings, {"cmd": "delivered", "outcome": "failed"})
        _exit(EX_TEMPFAIL, f"delivery failed: {type(e).__name__}: {e}")
    # A hint for a running server (it notices the change within a second anyway), which
    # also counts the delivery in its metrics as LMTP's are.
    _tell_server(settings, {"cmd": "changed", "address": addr, "outcome": "stored"})


def _tell_server(settings: Settings, cmd: dict[str, str]) -> None:
    with contextlib.suppress(Exception):  # no server, or a busy one: the mail is what counts
        send_command(settings.run_dir, cmd)


def _exit(code: int, message: str) -> NoReturn:
    # Plain text, no markup: MTAs copy this line into bounces and logs.
    click.echo(f"letterbox deliver: {' '.join(message.split())}", err=True)
    sys.exit(code)


COMMANDS = [deliver]
