"""What LMTP, inbound SMTP and `letterbox deliver` share: recipient checks, trace
header fields and storing one copy.

Replies carry RFC 3463 enhanced status codes; RFC 2033 section 5 requires an LMTP server
to offer ENHANCEDSTATUSCODES, and the SMTP listener uses the same texts.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import logging
import random
import re
import time
from dataclasses import dataclass

from ..auth.directory import Account, DirectoryError, normalize_address
from ..mime import ParsedMessage, parse_message
from ..service.context import Context
from ..store.api import AppendResult

log = logging.getLogger("letterbox.delivery")

MAILBOX = "INBOX"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a recipient or a copy is refused, as an SMTP reply and as a log reason."""

    code: int
    status: str
    text: str
    reason: str

    @property
    def reply(self) -> str:
        return f"{self.code} {self.status} {self.text}"

    @property
    def permanent(self) -> bool:
        return self.code >= 500


def too_many_recipients(limit: int) -> Refusal:
    # RFC 5321 4.5.3.1.10: 452 lets the client send the rest in another transaction.
    return Refusal(452, "4.5.3", "Too many recipients", f"more than {limit} recipients")


def relaying_denied() -> Refusal:
    return Refusal(550, "5.7.1", "Relaying denied", "relaying denied (domain not local)")


def user_unknown(addr: str) -> Refusal:
    return Refusal(550, "5.1.1", f"<{addr}>: user unknown", "no such user")


def mailbox_disabled(addr: str) -> Refusal:
    return Refusal(550, "5.2.1", f"<{addr}>: mailbox disabled", "account disabled")


def mailbox_full(addr: str, defer: bool = False) -> Refusal:
    if defer:
        # [quota] when_full = "defer": RFC 3463 X.2.2 as a transient failure, so the
        # sending MTA keeps the message and retries while the user makes room.
        return Refusal(452, "4.2.2", f"<{addr}>: mailbox full, try again later", "over quota (deferred)")
    return Refusal(552, "5.2.2", f"<{addr}>: mailbox full", "over quota")


def disk_full(addr: str) -> Refusal:
    # RFC 3463 4.3.1: mail system full; 452 asks the client to try again later.
    return Refusal(452, "4.3.1", f"<{addr}>: insufficient system storage, try again later", "disk full")


def temporary_failure(addr: str) -> Refusal:
    return Refusal(451, "4.3.0", f"<{addr}>: temporary failure, try again later", "store error")


def resolve_recipient(ctx: Context, address: str) -> tuple[str, Account] | Refusal:
    """Map an envelope address to an enabled local account (quota not checked).

    RFC 5321 4.5.1: "postmaster" (bare, or at a local domain that has no such account)
    must be accepted; it goes to [delivery] postmaster."""
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    domain = domain.lower()
    if local.lower() == "postmaster" and (
        not domain
        or (domain in ctx.directory.local_domains() and ctx.directory.get(f"postmaster@{domain}") is None)
    ):
        target = ctx.settings.delivery.postmaster
        if target:
            account = ctx.directory.get(target)
            if account is not None and account.enabled:
                return account.address, account
        log.warning("mail for %s refused: set [delivery] postmaster to an account", address)
        return Refusal(550, "5.1.1", f"<{address}>: no postmaster configured here", "no postmaster")
    try:
        addr = normalize_address(address)
    except DirectoryError:
        # No account can have a malformed name; only say "unknown" for our own domains.
        if domain and domain in ctx.directory.local_domains():
            return user_unknown(address.lower())
        return relaying_denied()
    account = ctx.directory.get(addr)
    if account is None:
        # An account's domain is local by definition; only a miss needs the domain list.
        if addr.rpartition("@")[2] not in ctx.directory.local_domains():
            return relaying_denied()
        return user_unknown(addr)
    if not account.enabled:
        return mailbox_disabled(addr)
    return addr, account


async def check_quota(ctx: Context, account: Account, size: int) -> Refusal | None:
    """Refuse when the mailbox is full already, or would be with *size* more bytes."""
    quota = ctx.policy.quota_of(account.quota)
    if not (quota.bytes or quota.messages):
        return None
    store = await ctx.store.account(account.address, account.incarnation)
    if quota.exceeded_by(await store.usage(quota.count_trash), size, 1):
        return mailbox_full(account.address, ctx.policy.defer_when_full)
    return None


async def store_copy(
    ctx: Context, account: Account, data: bytes, parsed: ParsedMessage | None = None
) -> AppendResult:
    """Append one copy to INBOX; returns only once the store made it durable.

    Raises OverQuota, or another exception for a failure worth retrying.
    """
    store = await ctx.store.account(account.address, account.incarnation)
    return await store.append(MAILBOX, data, quota=ctx.policy.quota_of(account.quota), parsed=parsed)


async def parse_once(data: bytes) -> ParsedMessage:
    """The parse of a message delivered to several recipients, done once for all of
    them (a big one in a thread)."""
    if len(data) < 1024 * 1024:
        return parse_message(data)
    return await asyncio.to_thread(parse_message, data)


# --- trace header fields --------------------------------------------------------------

_UNSAFE_HELO = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def new_id() -> str:
    """A transaction id for the Received "id" clause and the logs (an RFC 5322 atom).

    It only has to be unique, not unguessable: 64 bits from the seeded generator, with
    no system call (and GIL release) per message as the secrets module would make.
    """
    return f"{random.getrandbits(64):016X}"


_date = (-1, "")


def _date_now() -> str:
    """The RFC 5322 date of this second in local time (formatting it costs more than the
    rest of the Received field, so it is done once a second)."""
    global _date
    second = int(time.time())
    if _date[0] != second:
        _date = (second, email.utils.formatdate(second, localtime=True))
    return _date[1]


def client_address(peer: object) -> str:
    """The TCP-info of RFC 5321 4.4 (no reverse DNS: a lookup per message would stall
    delivery and the MTA in front of us has already logged the client's name)."""
    if not isinstance(peer, tuple) or not peer:
        return "unix socket"
    try:
        ip = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv6Address):
        return f"[IPv6:{ip.compressed}]"
    return f"[{ip}]"


def received_header(
    hostname: str,
    protocol: str,
    txid: str,
    recipients: list[str],
    helo: str | None = None,
    peer: object = None,
    local: bool = False,
) -> bytes:
    """The Received: field of RFC 5321 4.4, CRLF-terminated.

    "for" names the recipient only when there is exactly one: the same field goes into
    every copy, and listing several would disclose Bcc recipients to each other.
    """
    lines = []
    if not local:
        name = _UNSAFE_HELO.sub("", helo or "")[:255] or "unknown"
        lines.append(f"Received: from {name} ({client_address(peer)})")
        lines.append(f"\tby {hostname} (Letterbox) with {protocol} id {txid}")
    else:
        lines.append(f"Received: by {hostname} (Letterbox) with {protocol} id {txid}")
    if len(recipients) == 1:
        lines.append(f"\tfor <{recipients[0]}>")
    lines[-1] += f"; {_date_now()}"
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def return_path(sender: str) -> bytes:
    """RFC 5321 4.4: the final delivery agent records the reverse-path at the top.

    *sender* is the address without brackets ("" for the null reverse-path); control
    characters are dropped so a hostile address cannot add header lines.
    """
    addr = _CONTROL.sub("", sender)
    if addr == "<>":
        addr = ""
    return f"Return-Path: <{addr}>\r\n".encode("utf-8", "surrogateescape")


_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MESSAGE_ID = re.compile(rb"(?im)^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)")


def message_id(data: bytes) -> str:
    """The Message-ID for the log (sanitized; "unspecified" when absent)."""
    head = data[:65536]
    end = _HEADER_END.search(head)
    if end is not None:
        head = head[: end.start()]
    m = _MESSAGE_ID.search(head)
    if m is None:
        return "unspecified"
    value = re.sub(rb"\s+", b" ", m.group(1)).strip()
    text = _CONTROL.sub("?", value.decode("ascii", "replace"))[:200]
    return text or "unspecified"


def saved_line(service: str, addr: str, msgid: str, result: AppendResult, size: int) -> str:
    return f"{service}({addr}): msgid={msgid}: saved mail to {MAILBOX} (uid {result.uid}, {size} bytes)"
