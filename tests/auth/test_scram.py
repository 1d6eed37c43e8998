"""SCRAM-SHA-256 (RFC 5802, RFC 7677): the stored secrets, the directory migration and
the server side of the exchange, driven by scramp's client."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import sqlite3
import time
from pathlib import Path

import pytest
from scramp import ScramClient

from letterbox.auth import passwords
from letterbox.auth.authenticator import Authenticator, LoginResult, Outcome
from letterbox.auth.directory import Directory
from letterbox.auth.sasl import ScramExchange, ScramFailure
from letterbox.auth.scram import ITERATIONS, SALT_BYTES, ScramSecrets, make_scram_secrets
from letterbox.config import AuthSettings
from letterbox.net import client_key
from tests.scramplus import PlusClient

IP = "192.0.2.9"
ALICE = "alice@example.com"


@pytest.fixture
def directory(tmp_path: Path) -> Directory:
    d = Directory(tmp_path / "accounts.sqlite")
    d.add(ALICE, passwords.make_secrets("right"))
    return d


def auth_for(directory: Directory, **settings: object) -> Authenticator:
    return Authenticator(directory, AuthSettings(**{"failure_delay": 0, **settings}))  # type: ignore[arg-type]


async def exchange(
    auth: Authenticator, user: str, password: str, protocol: str = "imap", ip: str = IP
) -> tuple[LoginResult, str]:
    """A whole exchange with scramp's client; (result, server-first message)."""
    client = ScramClient(["SCRAM-SHA-256"], user, password)
    server = ScramExchange(auth, protocol, ip)
    first = await server.step(client.get_client_first().encode())
    assert isinstance(first, bytes)
    client.set_server_first(first.decode())
    final = await server.step(client.get_client_final().encode())
    if isinstance(final, LoginResult):
        return final, first.decode()
    client.set_server_final(final.decode())  # raises unless the server knew the password
    done = await server.step(b"")
    assert isinstance(done, LoginResult)
    return done, first.decode()


def salt_and_count(server_first: str) -> tuple[str, str]:
    attrs = dict(a.split("=", 1) for a in server_first.split(","))
    return attrs["s"], attrs["i"]


def test_rfc7677_section3_example_exchange(tmp_path: Path) -> None:
    """The example of RFC 7677 section 3, byte for byte (salt, count and nonce fixed)."""
    d = Directory(tmp_path / "accounts.sqlite")
    secrets = make_scram_secrets("pencil", 4096, base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
    assert secrets is not None
    # The RFC's user name is "user", not an address: stored directly.
    d.db.execute(
        "INSERT INTO accounts (address, password, created, incarnation, scram_sha256) VALUES (?, ?, ?, ?, ?)",
        ("user", passwords.hash_password("pencil"), time.time(), "x", secrets.encode()),
    )
    auth = auth_for(d)
    server = ScramExchange(auth, "imap", IP, server_nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")

    async def go() -> None:
        assert await server.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO") == (
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        )
        assert await server.step(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        ) == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        result = await server.step(b"")
        assert isinstance(result, LoginResult) and result.ok and result.account is not None
        assert result.account.address == "user"

    asyncio.run(go())


def test_stored_layout_matches_dovecot_and_gnu_sasl() -> None:
    """`gsasl --mkpasswd --mechanism SCRAM-SHA-256 --password pencil --iteration-count 4096
    --salt W22ZaJ0SNY7soEsUEjb6gQ==` prints this (after "{SCRAM-SHA-256}"), as Dovecot
    stores it: such secrets can be imported, and ours exported."""
    made = make_scram_secrets("pencil", 4096, base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
    assert made is not None and made.encode() == (
        "4096,W22ZaJ0SNY7soEsUEjb6gQ==,WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
    )
    assert ScramSecrets.decode(made.encode()) == made
    for damaged in ("", "4096,abc", "100,W22ZaJ0SNY7soEsUEjb6gQ==,AAAA,AAAA", "x,y,z,w", made.encode() + ",x"):
        assert ScramSecrets.decode(damaged) is None


def test_secrets_are_stored_never_the_password(tmp_path: Path, directory: Directory) -> None:
    acc = directory.require(ALICE)
    stored = ScramSecrets.decode(acc.scram)
    assert stored is not None and stored.iterations >= 4096 and len(stored.salt) == SALT_BYTES
    assert acc.password_hash.startswith("$argon2id$")
    # The same password with the same salt and count gives the same keys.
    again = make_scram_secrets("right", stored.iterations, stored.salt)
    assert again == stored
    directory.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("accounts.sqlite*"))
    assert b"right" not in raw
    # Passwords that SASLprep refuses (RFC 4013 section 2.3) get no secrets, not an error.
    assert make_scram_secrets("bell\x07") is None
    assert passwords.make_secrets("bell\x07").scram == ""


def test_scramp_client_logs_in_and_wrong_password_fails(directory: Directory) -> None:
    auth = auth_for(directory)

    async def go() -> None:
        result, _ = await exchange(auth, "Alice@Example.com", "right")
        assert result.outcome is Outcome.OK and result.account is not None
        assert result.account.address == ALICE
        result, _ = await exchange(auth, ALICE, "wrong")
        assert result.outcome is Outcome.BAD_CREDENTIALS and result.account is None

    asyncio.run(go())


def test_unknown_user_gets_a_stable_decoy_salt(tmp_path: Path, directory: Directory) -> None:
    auth = auth_for(directory)

    async def go() -> tuple[str, str, LoginResult]:
        r1, f1 = await exchange(auth, "nobody@example.com", "right")
        r2, f2 = await exchange(auth, "nobody@example.com", "other")
        assert r1.outcome is r2.outcome is Outcome.BAD_CREDENTIALS
        return f1, f2, r1

    f1, f2, _ = asyncio.run(go())
    # The same salt and count at every attempt, as a real account's would be...
    assert salt_and_count(f1) == salt_and_count(f2)
    salt, count = salt_and_count(f1)
    assert count == str(ITERATIONS) and len(base64.b64decode(salt)) == SALT_BYTES
    real_salt, real_count = salt_and_count(asyncio.run(exchange(auth, ALICE, "right"))[1])
    assert real_count == count and len(base64.b64decode(real_salt)) == SALT_BYTES and real_salt != salt
    # ...across restarts too (the key stays in the directory), and different per user.
    directory.close()
    reopened = Directory(tmp_path / "accounts.sqlite")
    again = auth_for(reopened)
    assert salt_and_count(asyncio.run(exchange(again, "nobody@example.com", "x"))[1]) == (salt, count)
    other = salt_and_count(asyncio.run(exchange(again, "nobody2@example.com", "x"))[1])
    assert other[0] != salt


def test_password_change_replaces_the_secrets(directory: Directory) -> None:
    auth = auth_for(directory)
    old = directory.require(ALICE).scram
    directory.set_password(ALICE, passwords.make_secrets("new"))
    assert directory.require(ALICE).scram not in ("", old)

    async def go() -> None:
        assert (await exchange(auth, ALICE, "right"))[0].outcome is Outcome.BAD_CREDENTIALS
        assert (await exchange(auth, ALICE, "new"))[0].outcome is Outcome.OK
        # A bare hash (no secrets) must not leave the old password valid through SCRAM.
        directory.set_password(ALICE, passwords.hash_password("third"))
        assert directory.require(ALICE).scram == ""
        assert (await exchange(auth, ALICE, "new"))[0].outcome is Outcome.BAD_CREDENTIALS

    asyncio.run(go())


def test_password_changed_during_the_exchange_fails(directory: Directory) -> None:
    auth = auth_for(directory)

    async def go() -> None:
        client = ScramClient(["SCRAM-SHA-256"], ALICE, "right")
        server = ScramExchange(auth, "imap", IP)
        first = await server.step(client.get_client_first().encode())
        assert isinstance(first, bytes)
        client.set_server_first(first.decode())
        directory.set_password(ALICE, passwords.make_secrets("right"))  # new salt
        result = await server.step(client.get_client_final().encode())
        assert isinstance(result, LoginResult) and result.outcome is Outcome.BAD_CREDENTIALS

    asyncio.run(go())


def test_same_policy_as_a_password_login(directory: Directory) -> None:
    """Penalty, account and protocol switches: Authenticator.login's."""
    auth = auth_for(directory, failure_delay=0.1, penalty_max=0.4)
    net = client_key(IP)

    async def go() -> None:
        assert (await exchange(auth, ALICE, "wrong"))[0].outcome is Outcome.BAD_CREDENTIALS
        assert auth.failures.recent(net) == 1
        t = time.monotonic()
        assert (await exchange(auth, ALICE, "right"))[0].outcome is Outcome.OK
        assert time.monotonic() - t >= 0.1  # the penalty, even for the right password
        assert auth.failures.recent(net) == 0  # and a success clears it
        directory.set_protocols(ALICE, ["pop3"])
        result, _ = await exchange(auth, ALICE, "right", "imap")
        assert result.outcome is Outcome.PROTOCOL_DISABLED
        directory.set_enabled(ALICE, False)
        assert (await exchange(auth, ALICE, "right", "pop3"))[0].outcome is Outcome.ACCOUNT_DISABLED
        # A wrong proof never learns that the account is disabled.
        assert (await exchange(auth, ALICE, "wrong", "pop3"))[0].outcome is Outcome.BAD_CREDENTIALS

    asyncio.run(go())


def test_a_flood_of_proofs_is_throttled_as_passwords_are(directory: Directory) -> None:
    """One network's checks are limited in number at once (beyond the limit and its
    waiting line, refused): proofs arriving together count as passwords would."""
    from letterbox.auth import authenticator

    auth = auth_for(directory, failure_delay=0.05, penalty_max=0.05, max_logins_in_flight_per_ip=1)
    waiting = getattr(authenticator, "_WAITING_PER_PLACE", 0)

    async def ready(password: str) -> tuple[ScramClient, ScramExchange]:
        client = ScramClient(["SCRAM-SHA-256"], ALICE, password)
        server = ScramExchange(auth, "pop3", IP)
        first = await server.step(client.get_client_first().encode())
        assert isinstance(first, bytes)
        client.set_server_first(first.decode())
        return client, server

    async def go() -> list[Outcome]:
        assert (await exchange(auth, ALICE, "wrong"))[0].outcome is Outcome.BAD_CREDENTIALS  # a penalty now
        pairs = [await ready("wrong") for _ in range(1 + waiting + 3)]
        finals = await asyncio.gather(*(server.step(client.get_client_final().encode()) for client, server in pairs))
        assert all(isinstance(f, LoginResult) for f in finals)
        return [f.outcome for f in finals if isinstance(f, LoginResult)]

    outcomes = asyncio.run(go())
    assert outcomes.count(Outcome.THROTTLED) == 3
    assert outcomes.count(Outcome.BAD_CREDENTIALS) == 1 + waiting


def test_disabled_account_gets_no_server_signature(directory: Directory) -> None:
    directory.set_enabled(ALICE, False)
    auth = auth_for(directory)

    async def go() -> None:
        client = ScramClient(["SCRAM-SHA-256"], ALICE, "right")
        server = ScramExchange(auth, "imap", IP)
        first = await server.step(client.get_client_first().encode())
        assert isinstance(first, bytes)
        client.set_server_first(first.decode())
        result = await server.step(client.get_client_final().encode())
        assert isinstance(result, LoginResult) and result.outcome is Outcome.ACCOUNT_DISABLED
        with pytest.raises(ScramFailure):
            await server.step(b"")

    asyncio.run(go())


@pytest.mark.parametrize(
    ("client_first", "why"),
    [
        (b"p=tls-exporter,,n=alice@example.com,r=abc", "Channel binding needs SCRAM-SHA-256-PLUS"),
        (b"p=tls-unique,,n=alice@example.com,r=abc", "Channel binding needs SCRAM-SHA-256-PLUS"),
        (b"n,a=bob@example.com,n=alice@example.com,r=abc", "Acting as another user"),
        (b"n,x=alice@example.com,n=alice@example.com,r=abc", "bad authorization identity"),
        (b"n,,r=abc", "refused"),
        (b"x,,n=alice@example.com,r=abc", "refused"),
        (b"n,,n=alice@example.com,r=abc,m=ext", "refused"),
        (b"", "refused"),
        (b"n,,n=\xff,r=abc", "not UTF-8"),
    ],
)
def test_client_first_refusals(directory: Directory, client_first: bytes, why: str) -> None:
    server = ScramExchange(auth_for(directory), "imap", IP)
    with pytest.raises(ScramFailure, match=why):
        asyncio.run(server.step(client_first))


def test_y_flag_accepted_unless_plus_is_offered(directory: Directory) -> None:
    """RFC 5802 section 6: "y" means the client could bind but believes the server cannot;
    that is true here (no -PLUS is advertised). Were -PLUS offered, it is a downgrade."""
    auth = auth_for(directory)
    first = asyncio.run(ScramExchange(auth, "imap", IP).step(b"y,,n=alice@example.com,r=abc"))
    assert isinstance(first, bytes) and first.startswith(b"r=abc")
    with pytest.raises(ScramFailure, match="downgrade"):
        asyncio.run(ScramExchange(auth, "imap", IP, channel_binding=bytes(32)).step(b"y,,n=alice@example.com,r=abc"))


def test_tampered_client_final_fails_as_a_wrong_password(directory: Directory) -> None:
    auth = auth_for(directory)

    async def attempt(change: bytes, to: bytes) -> LoginResult | bytes:
        client = ScramClient(["SCRAM-SHA-256"], ALICE, "right")
        server = ScramExchange(auth, "imap", IP)
        first = await server.step(client.get_client_first().encode())
        assert isinstance(first, bytes)
        client.set_server_first(first.decode())
        return await server.step(client.get_client_final().encode().replace(change, to))

    async def go() -> None:
        for change, to in [(b"c=biws", b"c=eSws"), (b"r=", b"r=x"), (b"p=", b"p=AAAA"), (b",p=", b"\xff")]:
            result = await attempt(change, to)
            assert isinstance(result, LoginResult) and result.outcome is Outcome.BAD_CREDENTIALS

    asyncio.run(go())


def test_migration_and_secrets_at_the_next_password_login(tmp_path: Path) -> None:
    """A directory from before SCRAM: the column is added, SCRAM fails for its accounts as a
    wrong password does, and a successful password login gives them their secrets."""
    path = tmp_path / "accounts.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        """CREATE TABLE accounts (
            address TEXT PRIMARY KEY, password TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1,
            protocols TEXT NOT NULL DEFAULT 'imap pop3', quota_bytes INTEGER NOT NULL DEFAULT 0,
            quota_messages INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL,
            incarnation TEXT NOT NULL DEFAULT '', deleting INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID;"""
    )
    old.execute(
        "INSERT INTO accounts (address, password, created, incarnation) VALUES (?, ?, ?, ?)",
        (ALICE, passwords.hash_password("right"), time.time(), "abc"),
    )
    old.commit()
    old.close()
    d = Directory(path)
    assert d.require(ALICE).scram == "" and d.require(ALICE).incarnation == "abc"
    auth = auth_for(d)

    async def go() -> None:
        result, first = await exchange(auth, ALICE, "right")
        assert result.outcome is Outcome.BAD_CREDENTIALS
        # Answered like an unknown user: a decoy salt, stable.
        assert salt_and_count(first) == salt_and_count((await exchange(auth, ALICE, "right"))[1])
        assert (await auth.login(ALICE, "wrong", "imap", IP)).outcome is Outcome.BAD_CREDENTIALS
        assert d.require(ALICE).scram == ""
        assert (await auth.login(ALICE, "right", "imap", IP)).outcome is Outcome.OK
        assert ScramSecrets.decode(d.require(ALICE).scram) is not None
        assert (await exchange(auth, ALICE, "right"))[0].outcome is Outcome.OK
        assert (await exchange(auth, ALICE, "wrong"))[0].outcome is Outcome.BAD_CREDENTIALS

    asyncio.run(go())
    d.close()
    # Opening it again changes nothing.
    assert ScramSecrets.decode(Directory(path).require(ALICE).scram) is not None


def test_secrets_from_a_login_never_overwrite_a_password_change(tmp_path: Path) -> None:
    d = Directory(tmp_path / "accounts.sqlite")
    d.add(ALICE, passwords.hash_password("right"))
    stale = d.require(ALICE).password_hash
    made = make_scram_secrets("right")
    assert made is not None
    d.set_password(ALICE, passwords.hash_password("new"))
    assert not d.add_scram(ALICE, stale, made.encode())
    assert d.require(ALICE).scram == ""
    # Another process holding the write lock: no wait, simply not now.
    other = sqlite3.connect(tmp_path / "accounts.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    t = time.monotonic()
    assert not d.add_scram(ALICE, d.require(ALICE).password_hash, made.encode())
    assert time.monotonic() - t < 1
    other.execute("ROLLBACK")
    other.close()
    assert d.add_scram(ALICE, d.require(ALICE).password_hash, made.encode())
    assert not d.add_scram(ALICE, d.require(ALICE).password_hash, made.encode())  # only once


def test_authorization_identity_of_the_user_itself(directory: Directory) -> None:
    """Cyrus SASL and GNU SASL clients may send "n,a=user," (RFC 5802 section 7 authzid);
    as with PLAIN, only the user's own name is accepted. The proof covers the header as
    sent (c= of client-final), computed here independently of scramp."""
    auth = auth_for(directory)
    stored = ScramSecrets.decode(directory.require(ALICE).scram)
    assert stored is not None

    async def attempt(password: str, header: str = f"n,a={ALICE},") -> LoginResult | bytes:
        server = ScramExchange(auth, "imap", IP)
        bare = f"n={ALICE},r=clientnonce"
        first = await server.step((header + bare).encode())
        assert isinstance(first, bytes)
        nonce = first.decode().split(",")[0][2:]
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), stored.salt, stored.iterations)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        without_proof = f"c={base64.b64encode(header.encode()).decode()},r={nonce}"
        auth_message = f"{bare},{first.decode()},{without_proof}".encode()
        signature = hmac.new(hashlib.sha256(client_key).digest(), auth_message, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        out = await server.step(f"{without_proof},p={base64.b64encode(proof).decode()}".encode())
        if isinstance(out, bytes):
            server_key = hmac.new(salted, b"Server Key", "sha256").digest()
            expected = hmac.new(server_key, auth_message, "sha256").digest()
            assert out == b"v=" + base64.b64encode(expected)
            return await server.step(b"")
        return out

    async def go() -> None:
        ok = await attempt("right")
        assert isinstance(ok, LoginResult) and ok.outcome is Outcome.OK
        ok = await attempt("right", f"n,a={ALICE.upper()},")
        assert isinstance(ok, LoginResult) and ok.outcome is Outcome.OK
        bad = await attempt("wrong")
        assert isinstance(bad, LoginResult) and bad.outcome is Outcome.BAD_CREDENTIALS

    asyncio.run(go())


BINDING = bytes(range(32))


async def plus_exchange(auth: Authenticator, client: PlusClient, binding: bytes = BINDING) -> LoginResult | bytes:
    """A SCRAM-SHA-256-PLUS exchange on a connection whose tls-exporter is *binding*; the
    client's own idea of the binding may differ (a man in the middle)."""
    server = ScramExchange(auth, "imap", IP, channel_binding=binding, plus=True)
    first = await server.step(client.first())
    assert isinstance(first, bytes)
    final = await server.step(client.final(first))
    if isinstance(final, LoginResult):
        return final
    assert client.verify(final)
    done = await server.step(b"")
    assert isinstance(done, LoginResult)
    return done


def test_plus_binds_to_the_channel(directory: Directory) -> None:
    """RFC 5802 section 7 cbind-input: gs2-header then the tls-exporter bytes (RFC 9266)."""
    auth = auth_for(directory)
    ok = asyncio.run(plus_exchange(auth, PlusClient(ALICE, "right", BINDING)))
    assert isinstance(ok, LoginResult) and ok.ok
    # The client saw another TLS session (a relay in between): refused as a wrong proof.
    relayed = asyncio.run(plus_exchange(auth, PlusClient(ALICE, "right", bytes(32))))
    assert isinstance(relayed, LoginResult) and relayed.outcome is Outcome.BAD_CREDENTIALS
    wrong = asyncio.run(plus_exchange(auth, PlusClient(ALICE, "wrong", BINDING)))
    assert isinstance(wrong, LoginResult) and wrong.outcome is Outcome.BAD_CREDENTIALS


@pytest.mark.parametrize(
    ("plus", "flag", "why"),
    [
        (True, "p=tls-unique", "'tls-unique' is not supported"),
        (True, "n", "needs channel binding"),
        (True, "y", "needs channel binding"),
        (False, "p=tls-exporter", "needs SCRAM-SHA-256-PLUS"),
    ],
)
def test_plus_refusals(directory: Directory, plus: bool, flag: str, why: str) -> None:
    """RFC 5802 section 6: -PLUS must bind, and only -PLUS may."""
    server = ScramExchange(auth_for(directory), "imap", IP, channel_binding=BINDING, plus=plus)
    with pytest.raises(ScramFailure, match=why):
        asyncio.run(server.step(PlusClient(ALICE, "right", BINDING, flag=flag).first()))


def test_plain_scram_still_works_where_plus_is_offered(directory: Directory) -> None:
    auth = auth_for(directory)

    async def go() -> LoginResult | bytes:
        client = ScramClient(["SCRAM-SHA-256"], ALICE, "right")
        server = ScramExchange(auth, "imap", IP, channel_binding=BINDING)
        first = await server.step(client.get_client_first().encode())
        assert isinstance(first, bytes)
        client.set_server_first(first.decode())
        final = await server.step(client.get_client_final().encode())
        assert isinstance(final, bytes)
        client.set_server_final(final.decode())
        return await server.step(b"")

    result = asyncio.run(go())
    assert isinstance(result, LoginResult) and result.ok


class _NoWaitingOnTheLoop:
    """A directory whose synchronous lookups must find what an asynchronous one fetched
    (as a directory on PostgreSQL does from its cache): the exchange must not ask it in
    a way that holds the event loop until the database answers."""

    def __init__(self, inner: Directory) -> None:
        self.inner = inner
        self.fetched: set[str] = set()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def aget(self, address: str) -> object:
        self.fetched.add(address)
        return self.inner.get(address)

    def get(self, address: str) -> object:
        assert address in self.fetched, f"{address} looked up synchronously, on the event loop"
        return self.inner.get(address)


def test_the_exchange_looks_the_account_up_without_holding_the_loop(directory: Directory) -> None:
    watched = _NoWaitingOnTheLoop(directory)
    auth = auth_for(watched)  # type: ignore[arg-type]

    async def go() -> None:
        result, _ = await exchange(auth, ALICE, "right")
        assert result.ok
        assert ALICE in watched.fetched
        result, _ = await exchange(auth, "Nobody,x@example.com", "right")  # sent as =2C, unknown
        assert not result.ok and "nobody,x@example.com" in watched.fetched

    asyncio.run(go())
