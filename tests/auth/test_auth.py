"""Accounts, password hashing, the credential cache and the failure penalty."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from letterbox.auth import passwords
from letterbox.auth.authenticator import Authenticator, Outcome, is_loopback
from letterbox.auth.directory import Directory, DirectoryError, normalize_address
from letterbox.auth.sasl import SASLError, decode_plain
from letterbox.config import AuthSettings
from letterbox.store.api import Quota


@pytest.fixture
def directory(tmp_path: Path) -> Directory:
    d = Directory(tmp_path / "accounts.sqlite")
    d.add("Alice@Example.com", passwords.hash_password("right"), ["pop3", "imap"], Quota(1000, 10))
    return d


def test_addresses_are_validated() -> None:
    assert normalize_address(" Bob@Example.ORG ") == "bob@example.org"
    for bad in ["bob", "@x.org", "bob@", "a b@x.org", "bob@-x.org", "bob@x..org", "../x@y.org"]:
        with pytest.raises(DirectoryError):
            normalize_address(bad)


def test_directory_crud(directory: Directory) -> None:
    acc = directory.require("alice@example.com")
    assert acc.protocols == {"imap", "pop3"} and acc.quota == Quota(1000, 10)
    assert acc.password_hash.startswith("$argon2id$")
    with pytest.raises(DirectoryError, match="already exists"):
        directory.add("alice@example.com", "x")
    directory.set_protocols("alice@example.com", ["imap"])
    assert directory.require("alice@example.com").protocols == {"imap"}
    with pytest.raises(DirectoryError, match="unknown protocol"):
        directory.set_protocols("alice@example.com", ["smtp"])
    assert directory.local_domains() == {"example.com"}
    directory.set_switch("pop3", False)
    assert directory.switches() == {"pop3": False}
    first = directory.require("alice@example.com").incarnation
    directory.mark_deleted("alice@example.com")
    # Gone from every lookup at once, but the address stays taken until the mail is gone.
    assert directory.get("alice@example.com") is None and directory.list() == []
    assert directory.local_domains() == frozenset()
    with pytest.raises(DirectoryError, match="being deleted"):
        directory.add("alice@example.com", "x")
    assert [p.address for p in directory.pending_deletions()] == ["alice@example.com"]
    directory.finish_delete("alice@example.com", first)
    assert directory.pending_deletions() == []
    # Added again: a new incarnation, so the store never shows the old mail.
    assert directory.add("alice@example.com", "x").incarnation not in ("", first)


def login(auth: Authenticator, user: str, pw: str, proto: str = "pop3", ip: str = "192.0.2.9") -> Outcome:
    return asyncio.run(auth.login(user, pw, proto, ip)).outcome


def test_login_outcomes(directory: Directory) -> None:
    auth = Authenticator(directory, AuthSettings(failure_delay=0))
    assert login(auth, "ALICE@example.com", "right") is Outcome.OK
    assert login(auth, "alice@example.com", "wrong") is Outcome.BAD_CREDENTIALS
    assert login(auth, "nobody@example.com", "right") is Outcome.BAD_CREDENTIALS
    directory.set_protocols("alice@example.com", ["imap"])
    assert login(auth, "alice@example.com", "right", "pop3") is Outcome.PROTOCOL_DISABLED
    assert login(auth, "alice@example.com", "right", "imap") is Outcome.OK
    directory.set_enabled("alice@example.com", False)
    # A wrong password never learns that the account is disabled.
    assert login(auth, "alice@example.com", "wrong", "imap") is Outcome.BAD_CREDENTIALS
    assert login(auth, "alice@example.com", "right", "imap") is Outcome.ACCOUNT_DISABLED


def test_cache_skips_argon2_and_forgets_on_password_change(directory: Directory, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = Authenticator(directory, AuthSettings(failure_delay=0, cache_ttl=60))
    calls = []
    real = passwords.verify_password

    def counting(stored: str | None, pw: str) -> bool:
        calls.append(pw)
        return real(stored, pw)

    monkeypatch.setattr("letterbox.auth.authenticator.verify_password", counting)
    for _ in range(3):
        assert login(auth, "alice@example.com", "right") is Outcome.OK
    assert len(calls) == 1
    directory.set_password("alice@example.com", passwords.hash_password("new"))
    assert login(auth, "alice@example.com", "right") is Outcome.BAD_CREDENTIALS
    assert login(auth, "alice@example.com", "new") is Outcome.OK
    assert len(calls) == 3


def test_the_penalty_slows_guessing_but_locks_nobody_out(directory: Directory, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float) -> None:  # the waits the authenticator asks for, not taken
        waits.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    auth = Authenticator(directory, AuthSettings(failure_delay=0.1, penalty_max=0.4, max_failures_per_ip=10))
    assert login(auth, "alice@example.com", "right") is Outcome.OK
    assert waits == []  # no failures yet: no wait
    for _ in range(4):
        assert login(auth, "alice@example.com", "bad") is Outcome.BAD_CREDENTIALS
    assert waits == [0.1, 0.2, 0.4]  # doubling from the second guess, capped
    assert auth.penalty(auth.failures.recent("192.0.2.9")) == 0.4
    # The right password still works, after the wait: no lockout.
    assert login(auth, "alice@example.com", "right") is Outcome.OK
    assert waits[3:] == [0.4]
    assert login(auth, "alice@example.com", "right") is Outcome.OK  # the count was cleared
    assert waits[4:] == []
    # Another network is not affected; an IPv6 network counts as one.
    assert auth.failures.recent("2001:db8:1:2::/64") == 0


def test_parallel_logins_take_turns_and_only_a_flood_is_refused(directory: Directory) -> None:
    auth = Authenticator(directory, AuthSettings(
        failure_delay=0.01, penalty_max=0.05, max_logins_in_flight_per_ip=5, max_failures_per_ip=100,
        trusted_networks=["10.0.0.0/8"],
    ))
    most = {"": 0}
    check = auth._check

    async def counted(*args: object) -> object:
        most[""] = max(most[""], auth.failures.in_flight.get("192.0.2.50", 0))
        return await check(*args)  # type: ignore[arg-type]

    auth._check = counted  # type: ignore[method-assign]

    async def burst(ip: str, password: str, n: int) -> list[Outcome]:
        results = await asyncio.gather(*(auth.login("alice@example.com", password, "imap", ip) for _ in range(n)))
        return [r.outcome for r in results]

    # Thirty guesses at once: five checked at a time, twenty waiting, the rest refused.
    outcomes = asyncio.run(burst("192.0.2.50", "bad", 30))
    assert outcomes.count(Outcome.THROTTLED) == 5 and outcomes.count(Outcome.BAD_CREDENTIALS) == 25
    assert most[""] == 5 and auth.failures.recent("192.0.2.50") == 25
    # The users behind one NAT logging in together all get in, none refused.
    auth.failures.clear("192.0.2.60")
    assert asyncio.run(burst("192.0.2.60", "right", 20)) == [Outcome.OK] * 20
    assert auth.failures.recent("192.0.2.60") == 0
    # A trusted network (a local webmail) is neither delayed nor limited.
    assert asyncio.run(burst("10.1.2.3", "bad", 30)).count(Outcome.BAD_CREDENTIALS) == 30


def test_plaintext_policy(directory: Directory) -> None:
    auth = Authenticator(directory, AuthSettings())
    assert auth.plaintext_allowed(False, "127.0.0.1")
    assert auth.plaintext_allowed(False, "::1")
    assert auth.plaintext_allowed(True, "192.0.2.1")
    assert not auth.plaintext_allowed(False, "192.0.2.1")
    assert is_loopback("127.0.0.5") and not is_loopback("10.0.0.1")


def test_sasl_plain() -> None:
    import base64

    assert decode_plain(base64.b64encode(b"\0bob\0pw")) == ("bob", "pw")
    assert decode_plain(base64.b64encode(b"bob\0bob\0pw")) == ("bob", "pw")
    for bad in [b"!!!", base64.b64encode(b"bob\0pw"), base64.b64encode(b"eve\0bob\0pw")]:
        with pytest.raises(SASLError):
            decode_plain(bad)
