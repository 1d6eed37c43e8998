"""Login checks shared by IMAP and POP3: credential cache, failure penalty, protocol rights.

Every protocol asks `Authenticator.login`; it answers with an outcome the protocol turns
into its own words (POP3 RFC 3206 codes, IMAP RFC 5530 codes).

The penalty is Dovecot's: every login from a client network (an address, a /64 for
IPv6) that failed lately waits before it is checked, twice as long per recent failure
(failure_delay, doubling, up to penalty_max), the right password too, so guessing is
slow but nobody is locked out. One network's logins are checked max_logins_in_flight
at a time, the others waiting their turn: the users behind a NAT get in a moment later,
and a burst of parallel guesses becomes a sequence that pays the penalty of the ones
before it. Only a waiting line beyond reason is refused, with a temporary error that
says why. A success clears the network's count. Unknown users and wrong passwords cost the same work and the same time.
[auth] trusted_networks (a local webmail, say) are exempt.

SCRAM-SHA-256 (see sasl.ScramExchange) goes through the same checks: its proof is
verified where a password would be, with the same penalty, limits and outcomes.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .. import metrics
from ..config import AuthSettings
from ..net import client_key
from .directory import Account, Directory, DirectoryUnavailable
from .passwords import verify_password
from .scram import ScramSecrets, decoy_secrets, make_scram_secrets

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
    UNAVAILABLE = "directory unavailable"
    """The shared directory could not be asked: a temporary failure, never a wrong password."""


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


_WAITING_PER_PLACE = 4
"""Logins from one network that may wait, per in-flight place, before more are refused."""


class FailureTracker:
    """Failed logins per client network over a sliding window, and how many are being
    checked now."""

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
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}
        """Per client network: logins waiting for one of its in-flight places."""
        self._trusted = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_networks]
        self._fallback_key = secrets.token_bytes(32)
        """Decoy salts while a shared directory's own key cannot be read."""

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

    async def verify_hash(self, stored_hash: str | None, password: str) -> bool:
        """argon2id check of a password against a hash outside the directory (console
        administrators), in the same bounded pool; None verifies against a dummy hash so
        that unknown names cost the same."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_ARGON2, verify_password, stored_hash, password)

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

        async def verify(account: Account | None) -> bool:
            if account is not None and self.cache.hit(account, password):
                return True
            return await self._verify(account, address, password)

        result = await self._attempt(address, protocol, client_ip, verify)
        if result.account is not None and not result.account.scram:
            # The password is right (the account came back): an account from before SCRAM
            # gets its secrets now, as it would at its next password change.
            await self._add_scram(result.account, password)
        return result

    async def _add_scram(self, account: Account, password: str) -> None:
        try:
            loop = asyncio.get_running_loop()
            made = await loop.run_in_executor(_ARGON2, make_scram_secrets, password)
            if made is not None and self.directory.add_scram(account.address, account.password_hash, made.encode()):
                log.info("SCRAM-SHA-256 secrets stored for %s", account.address)
        except Exception:  # the login itself went well; the next one tries again
            log.exception("storing SCRAM secrets for %s failed", account.address)

    async def look_up(self, username: str) -> None:
        """Look the account up without holding the event loop (a directory on PostgreSQL
        answers on its own thread), so that `scram_secrets`, called synchronously from
        inside the SCRAM library, finds it in the directory's cache."""
        address = username.strip().lower()
        if address:
            try:
                await self.directory.aget(address)
            except DirectoryUnavailable:
                pass  # scram_secrets then fails at once (the back-off) and answers decoys

    def scram_secrets(self, username: str) -> tuple[str, ScramSecrets, str]:
        """(address, secrets to answer with, the account's stored secrets or "").

        An unknown user, or an account without secrets, gets decoy secrets: the same salt
        and count at every attempt, keys that no proof matches."""
        address = username.strip().lower()
        try:
            account = self.directory.get(address) if address else None
            key = self.directory.decoy_key
        except DirectoryUnavailable:
            # The exchange goes on with decoy secrets; its end asks the directory again
            # and answers a temporary failure (_check), not a wrong password.
            account, key = None, self._fallback_key
        stored = account.scram if account is not None else ""
        found = ScramSecrets.decode(stored) if stored else None
        if found is None:
            return address, decoy_secrets(key, address), ""
        return address, found, stored

    async def scram_login(
        self, address: str, protocol: str, client_ip: str, verify: Callable[[Account | None], bool]
    ) -> LoginResult:
        """Decide a SCRAM exchange: *verify* checks the client proof (in constant time)
        against the account as the directory has it now, once the penalty is waited."""

        async def check(account: Account | None) -> bool:
            return verify(account)

        return await self._attempt(address, protocol, client_ip, check)

    async def _attempt(
        self, address: str, protocol: str, client_ip: str, verify: Callable[[Account | None], Awaitable[bool]]
    ) -> LoginResult:
        async def check() -> LoginResult:
            return await self._check(address, protocol, client_ip, verify)

        return await self.guarded(protocol, client_ip, check, address)

    async def guarded(
        self, protocol: str, client_ip: str, check: Callable[[], Awaitable[LoginResult]], address: str = ""
    ) -> LoginResult:
        """Run one login *check* under the client network's penalty and in-flight limit,
        counting a BAD_CREDENTIALS outcome as a failure: every kind of login (IMAP, POP3,
        the web console's users and administrators) pays the same."""
        waited = 0.0
        if self.trusted(client_ip):
            result = await check()
        else:
            result, waited = await self._throttled(protocol, client_ip, check, address)
        account = result.account.address if result.account is not None else None
        metrics.login(protocol, result.outcome.name.lower(), account, client_ip, waited)
        return result

    async def _throttled(
        self, protocol: str, client_ip: str, check: Callable[[], Awaitable[LoginResult]], address: str
    ) -> tuple[LoginResult, float]:
        net = client_key(client_ip)
        tracker = self.failures
        limit = self.settings.max_logins_in_flight_per_ip
        if tracker.in_flight.get(net, 0) >= limit:
            # One network's logins are checked `limit` at a time: the users behind a NAT
            # wait a moment, a guesser's parallel tries become a sequence that pays the
            # penalty of the ones before. Only a queue beyond reason is refused.
            queue = self._queues.setdefault(net, deque())
            if len(queue) >= limit * _WAITING_PER_PLACE:
                log.warning("%s login for %r from %s refused: %d attempts in progress, %d waiting",
                            protocol, address, client_ip, tracker.in_flight[net], len(queue))
                return LoginResult(Outcome.THROTTLED), 0.0
            while tracker.in_flight.get(net, 0) >= limit:
                turn = asyncio.get_running_loop().create_future()
                queue.append(turn)
                try:
                    await turn
                finally:
                    if not turn.done():
                        turn.cancel()
                    if not queue:
                        self._queues.pop(net, None)
        tracker.in_flight[net] = tracker.in_flight.get(net, 0) + 1
        try:
            delay = self.penalty(tracker.recent(net))
            if delay:
                await asyncio.sleep(delay)
            result = await check()
        finally:
            tracker.in_flight[net] -= 1
            if not tracker.in_flight[net]:
                del tracker.in_flight[net]
            self._next_in_line(net)
        if result.outcome is Outcome.BAD_CREDENTIALS:
            tracker.record(net)
        elif result.outcome is not Outcome.UNAVAILABLE:
            tracker.clear(net)  # the right password: this network is not guessing
        return result, delay

    def _next_in_line(self, net: str) -> None:
        queue = self._queues.get(net)
        while queue:
            turn = queue.popleft()
            if not turn.done():  # a waiter whose client left is skipped
                turn.set_result(None)
                break
        if queue is not None and not queue:
            self._queues.pop(net, None)

    async def _check(
        self, address: str, protocol: str, client_ip: str, verify: Callable[[Account | None], Awaitable[bool]]
    ) -> LoginResult:
        try:
            account = await self.directory.aget(address) if address else None
        except DirectoryUnavailable as e:
            log.warning("%s login for %r from %s: %s", protocol, address, client_ip, e)
            return LoginResult(Outcome.UNAVAILABLE)
        verified = await verify(account)
        if not verified or account is None:
            log.warning("%s login failed for %r from %s", protocol, address, client_ip)
            return LoginResult(Outcome.BAD_CREDENTIALS)
        if not account.enabled:
            log.warning("%s login for disabled account %s from %s", protocol, address, client_ip)
            return LoginResult(Outcome.ACCOUNT_DISABLED, account)
        if protocol != "web" and protocol not in account.protocols:
            # The web console's own pages (usage, clean-up, password) are every user's,
            # whatever mail protocols the account may use.
            log.warning("%s login for %s from %s: %s is off for this account", protocol, address, client_ip, protocol)
            return LoginResult(Outcome.PROTOCOL_DISABLED, account)
        return LoginResult(Outcome.OK, account)
