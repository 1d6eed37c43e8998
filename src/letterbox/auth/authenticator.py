"""Login checks shared by IMAP and POP3: credential cache, failure penalty, protocol rights.

Every protocol asks `Authenticator.login`; it answers with an outcome the protocol turns
into its own words (POP3 RFC 3206 codes, IMAP RFC 5530 codes). Failures are delayed and
counted per client address; successes are never delayed.
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
    """Failed logins per client address over a sliding window."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._fails: dict[str, deque[float]] = {}

    def _recent(self, ip: str) -> deque[float]:
        q = self._fails.get(ip)
        if q is None:
            return deque()
        cutoff = time.monotonic() - self.window
        while q and q[0] < cutoff:
            q.popleft()
        if not q:
            del self._fails[ip]
        return q

    def blocked(self, ip: str) -> bool:
        return len(self._recent(ip)) >= self.limit

    def record(self, ip: str) -> None:
        q = self._fails.get(ip)
        if q is None:
            q = self._fails[ip] = deque()
        q.append(time.monotonic())


class Authenticator:
    def __init__(self, directory: Directory, settings: AuthSettings) -> None:
        self.directory = directory
        self.settings = settings
        self.cache = CredentialCache(settings.cache_ttl)
        self.failures = FailureTracker(settings.max_failures_per_ip, settings.failure_window)
        self._inflight: dict[bytes, asyncio.Future[bool]] = {}

    async def _verify(self, account: Account | None, password: str) -> bool:
        """argon2 in a worker thread. Concurrent logins with the same credentials share
        one verification, so a burst of reconnecting clients costs one hash, not many."""
        loop = asyncio.get_running_loop()
        if account is None:
            return await loop.run_in_executor(_ARGON2, verify_password, None, password)
        key = self.cache.key(account, password)
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(
                loop.run_in_executor(_ARGON2, verify_password, account.password_hash, password)
            )
            self._inflight[key] = pending
            pending.add_done_callback(lambda _f: self._inflight.pop(key, None))
        ok = await asyncio.shield(pending)
        if ok:
            self.cache.remember(account, password)
        return ok

    def plaintext_allowed(self, secure: bool, client_ip: str) -> bool:
        """Passwords in the clear only over TLS or loopback, unless configured otherwise."""
        return secure or self.settings.allow_plaintext_without_tls or is_loopback(client_ip)

    async def login(self, username: str, password: str, protocol: str, client_ip: str) -> LoginResult:
        address = username.strip().lower()
        if self.failures.blocked(client_ip):
            log.warning("%s login refused for %r from %s: too many failures", protocol, address, client_ip)
            await asyncio.sleep(self.settings.failure_delay)
            return LoginResult(Outcome.THROTTLED)
        account = self.directory.get(address) if address else None
        verified = account is not None and self.cache.hit(account, password)
        if not verified:
            verified = await self._verify(account, password)
        if not verified or account is None:
            self.failures.record(client_ip)
            log.warning("%s login failed for %r from %s", protocol, address, client_ip)
            await asyncio.sleep(self.settings.failure_delay)
            return LoginResult(Outcome.BAD_CREDENTIALS)
        if not account.enabled:
            log.warning("%s login for disabled account %s from %s", protocol, address, client_ip)
            return LoginResult(Outcome.ACCOUNT_DISABLED, account)
        if protocol not in account.protocols:
            log.warning("%s login for %s from %s: %s is off for this account", protocol, address, client_ip, protocol)
            return LoginResult(Outcome.PROTOCOL_DISABLED, account)
        return LoginResult(Outcome.OK, account)
