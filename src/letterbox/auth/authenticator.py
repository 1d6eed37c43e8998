"""Login checks shared by IMAP and POP3: credential cache, failure penalty, protocol rights.

Every protocol asks `Authenticator.login`; it answers with an outcome the protocol turns
into its own words (POP3 RFC 3206 codes, IMAP RFC 5530 codes).

The penalty is Dovecot's: every login from a client network (an address, a /64 for
IPv6) that failed lately waits before it is checked, twice as long per recent failure
(failure_delay, doubling, up to penalty_max), the right password too, so guessing is
slow but nobody is locked out. Failures are counted when the attempt starts (attempts in
flight count as failures until they succeed), so a burst of parallel guesses pays the
same as a sequence. Attempts in flight from one network beyond max_logins_in_flight are
refused at once with a temporary error that says why. A success clears the network's
count. Unknown users and wrong passwords cost the same work and the same time.
[auth] trusted_networks (a local webmail, say) are exempt.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import ipaddress
import logging
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..config import AuthSettings
from ..net import client_key
from .directory import Account, Directory
from .passwords import verify_password

log = logging.getLogger("letterbox.auth")

# argon2 needs 19 MiB per hash and glibc keeps each thread's arena afterwards: a small
# dedicated pool bounds that memory (and argon2 cannot use more cores than there are).
_ARGON2 = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


class Outcome(enum.Enum):
    OK = "ok"
    BAD_CREDENTIALS = "bad credentials"
    ACCOUNT_DISABLED = "account disabled"
    PROTOCOL_DISABLED = "protocol disabled for account"
    THROTTLED = "too many failures"


@dataclass(frozen=True, slots=True)
class LoginResult:
    outcome: Outcome
    account: Account | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


def is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.split("%", 1)[0]).is_loopback
    except ValueError:
        return ip in ("", "unix")


class CredentialCache:
    """Recently verified passwords, keyed by a salted digest (never the password itself).

    The key covers the stored hash too, so a password change misses the cache at once.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._salt = os.urandom(16)
        self._entries: dict[bytes, float] = {}

    def key(self, account: Account, password: str) -> bytes:
        msg = b"\0".join(
            (account.address.encode(), account.password_hash.encode(), password.encode("utf-8", "surrogateescape"))
        )
        return hmac.new(self._salt, msg, hashlib.sha256).digest()

    def hit(self, account: Account, password: str) -> bool:
        if self.ttl <= 0:
            return False
        key = self.key(account, password)
        expires = self._entries.get(key)
        if expires is None:
            return False
        if expires < time.monotonic():
            del self._entries[key]
            return False
        return True

    def remember(self, account: Account, password: str) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) > 100_000:
            self.purge()
        self._entries[self.key(account, password)] = time.monotonic() + self.ttl

    def purge(self) -> None:
        now = time.monotonic()
        self._entries = {k: v for k, v in self._entries.items() if v >= now}

    def flush(self) -> None:
        self._entries.clear()


class FailureTracker:
    """Failed (and in-flight) logins per client network over a sliding window."""

    def __init__(self, window: float, cap: int) -> None:
        self.window = window
        self.cap = cap
        self._fails: dict[str, deque[float]] = {}
        self.in_flight: dict[str, int] = {}

    def recent(self, key: str) -> int:
        q = self._fails.get(key)
        if q is None:
            return 0
        cutoff = time.monotonic() - self.window
        while q and q[0] < cutoff:
            q.popleft()
        if not q:
            del self._fails[key]
        return len(q)

    def record(self, key: str) -> None:
        q = self._fails.get(key)
        if q is None:
            if len(self._fails) > 100_000:
                self._fails.clear()  # a flood of networks: forget rather than grow
            q = self._fails[key] = deque()
        q.append(time.monotonic())
        while len(q) > self.cap:
            q.popleft()

    def clear(self, key: str) -> None:
        self._fails.pop(key, None)


class Authenticator:
    def __init__(self, directory: Directory, settings: AuthSettings) -> None:
        self.directory = directory
        self.settings = settings
        self.cache = CredentialCache(settings.cache_ttl)
        self.failures = FailureTracker(settings.failure_window, max(1, settings.max_failures_per_ip))
        self._inflight: dict[bytes, asyncio.Future[bool]] = {}
        self._trusted = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_networks]

    async def _verify(self, account: Account | None, address: str, password: str) -> bool:
        """argon2 in a worker thread. Concurrent logins with the same credentials share
        one verification (for unknown users too, so that they cost the same), and a burst
        of reconnecting clients costs one hash, not many."""
        loop = asyncio.get_running_loop()
        if account is not None:
            key = self.cache.key(account, password)
        else:
            key = b"?" + hmac.new(self.cache._salt, address.encode() + b"\0" + password.encode(
                "utf-8", "surrogateescape"), hashlib.sha256).digest()
        pending = self._inflight.get(key)
        if pending is None:
            stored = account.password_hash if account is not None else None
            pending = asyncio.ensure_future(loop.run_in_executor(_ARGON2, verify_password, stored, password))
            self._inflight[key] = pending
            pending.add_done_callback(lambda _f: self._inflight.pop(key, None))
        ok = await asyncio.shield(pending)
        if ok and account is not None:
            self.cache.remember(account, password)
        return ok and account is not None

    def trusted(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        return any(addr in net for net in self._trusted)

    def penalty(self, failures: int) -> float:
        """Seconds a login waits before its check after *failures* recent ones."""
        if failures <= 0:
            return 0.0
        return float(min(self.settings.penalty_max, self.settings.failure_delay * 2 ** min(failures - 1, 16)))

    def plaintext_allowed(self, secure: bool, client_ip: str) -> bool:
        """Passwords in the clear only over TLS or loopback, unless configured otherwise."""
        return secure or self.settings.allow_plaintext_without_tls or is_loopback(client_ip)

    async def login(self, username: str, password: str, protocol: str, client_ip: str) -> LoginResult:
        address = username.strip().lower()
        if self.trusted(client_ip):
            return await self._check(address, password, protocol, client_ip)
        net = client_key(client_ip)
        tracker = self.failures
        if tracker.in_flight.get(net, 0) >= self.settings.max_logins_in_flight_per_ip:
            log.warning("%s login for %r from %s refused: %d attempts already in progress",
                        protocol, address, client_ip, tracker.in_flight[net])
            return LoginResult(Outcome.THROTTLED)
        # Counted as a failure from the start: parallel guesses pay as a sequence does.
        before = tracker.recent(net)
        tracker.record(net)
        tracker.in_flight[net] = tracker.in_flight.get(net, 0) + 1
        try:
            delay = self.penalty(before)
            if delay:
                await asyncio.sleep(delay)
            result = await self._check(address, password, protocol, client_ip)
        finally:
            tracker.in_flight[net] -= 1
            if not tracker.in_flight[net]:
                del tracker.in_flight[net]
        if result.outcome is not Outcome.BAD_CREDENTIALS:
            tracker.clear(net)  # the right password: this network is not guessing
        return result

    async def _check(self, address: str, password: str, protocol: str, client_ip: str) -> LoginResult:
        account = self.directory.get(address) if address else None
        verified = account is not None and self.cache.hit(account, password)
        if not verified:
            verified = await self._verify(account, address, password)
        if not verified or account is None:
            log.warning("%s login failed for %r from %s", protocol, address, client_ip)
            return LoginResult(Outcome.BAD_CREDENTIALS)
        if not account.enabled:
            log.warning("%s login for disabled account %s from %s", protocol, address, client_ip)
            return LoginResult(Outcome.ACCOUNT_DISABLED, account)
        if protocol not in account.protocols:
            log.warning("%s login for %s from %s: %s is off for this account", protocol, address, client_ip, protocol)
            return LoginResult(Outcome.PROTOCOL_DISABLED, account)
        return LoginResult(Outcome.OK, account)
