"""AUTHENTICATE SCRAM-SHA-256 (RFC 7677, RFC 5802; RFC 9051 6.2.2; SASL-IR RFC 4959),
driven with scramp's client against IMAPSession without sockets."""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path

import pytest
from scramp import ScramClient

from letterbox.net import client_key
from letterbox.service.context import Context

from .imaputil import PASSWORD, Client, add_user, make_context

USER = "bob@example.com"
REMOTE = "192.0.2.7"


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    c = make_context(tmp_path)
    add_user(c, USER)
    return c


def b64(data: str) -> bytes:
    return base64.b64encode(data.encode())


def challenge(out: bytes) -> str:
    """The decoded challenge of a "+ base64" continuation."""
    m = re.fullmatch(rb"\+ ([A-Za-z0-9+/=]*)\r\n", out)
    assert m, out
    return base64.b64decode(m.group(1)).decode()


async def scram_login(
    c: Client, user: str = USER, password: str = PASSWORD, tag: str = "a", sasl_ir: bool = False
) -> tuple[bytes, list[str]]:
    """AUTHENTICATE SCRAM-SHA-256; (the tagged answer, the decoded challenges)."""
    client = ScramClient(["SCRAM-SHA-256"], user, password)
    first = client.get_client_first()
    if sasl_ir:
        out = await c.cmd(f"{tag} AUTHENTICATE SCRAM-SHA-256 ".encode() + b64(first))
    else:
        assert await c.cmd(f"{tag} AUTHENTICATE SCRAM-SHA-256") == b"+ \r\n"
        out = await c.cmd(b64(first))
    challenges = [challenge(out)]
    client.set_server_first(challenges[0])
    out = await c.cmd(b64(client.get_client_final()))
    if not out.startswith(b"+ "):
        return out, challenges
    challenges.append(challenge(out))
    client.set_server_final(challenges[1])  # the server proved it knows the password
    return await c.cmd(b""), challenges


def test_scram_login_with_and_without_sasl_ir(ctx: Context) -> None:
    async def go() -> None:
        c = Client(ctx)
        greeting = await c.start()
        assert b"AUTH=SCRAM-SHA-256" in greeting and b"AUTH=SCRAM-SHA-256-PLUS" not in greeting
        out, challenges = await scram_login(c)
        assert out.startswith(b"a OK [CAPABILITY IMAP4rev1") and out.endswith(b"] Logged in\r\n")
        assert challenges[0].startswith("r=") and challenges[1].startswith("v=")
        assert c.session.user == USER
        assert (await c.cmd("b SELECT INBOX")).splitlines()[-1].startswith(b"b OK")
        # SASL-IR (RFC 4959): the initial response is the client-first message.
        c2 = Client(ctx)
        await c2.start()
        out, _ = await scram_login(c2, user="Bob@Example.COM", tag="x", sasl_ir=True)
        assert out.startswith(b"x OK [CAPABILITY")
        assert c2.session.user == USER

    run(go())


def test_scram_offered_and_usable_where_plaintext_is_refused(ctx: Context) -> None:
    """Without TLS from a remote address LOGIN and PLAIN are refused, SCRAM is not: the
    password never crosses the wire (RFC 5802 section 9, RFC 5034 section 4)."""

    async def go() -> None:
        c = Client(ctx, ip=REMOTE)
        greeting = await c.start()
        assert b"LOGINDISABLED" in greeting and b"AUTH=PLAIN" not in greeting
        assert b"AUTH=SCRAM-SHA-256" in greeting
        assert b"[PRIVACYREQUIRED]" in await c.cmd("p AUTHENTICATE PLAIN")
        out, _ = await scram_login(c)
        assert out.startswith(b"a OK")

    run(go())


def test_wrong_password_and_unknown_user_look_the_same(ctx: Context) -> None:
    async def go() -> None:
        c = Client(ctx, ip=REMOTE)
        await c.start()
        wrong, ch_wrong = await scram_login(c, password="nope")
        assert wrong == b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
        assert len(ch_wrong) == 1  # no server signature for a wrong proof
        assert ctx.auth.failures.recent(client_key(REMOTE)) == 1  # the penalty counts it
        unknown, ch_unknown = await scram_login(c, user="nobody@example.com")
        assert unknown == wrong
        assert ctx.auth.failures.recent(client_key(REMOTE)) == 2
        again, ch_again = await scram_login(c, user="nobody@example.com")
        assert again == wrong

        def salt_count(server_first: str) -> tuple[int, str]:
            attrs = dict(a.split("=", 1) for a in server_first.split(","))
            return len(base64.b64decode(attrs["s"])), attrs["i"]

        # The same shape of answer; for the unknown user the same salt every time.
        assert salt_count(ch_unknown[0]) == salt_count(ch_wrong[0])
        assert ch_unknown[0].split(",")[1:] == ch_again[0].split(",")[1:]
        assert c.session.user is None
        # The right password still works and clears the count.
        out, _ = await scram_login(c)
        assert out.startswith(b"a OK") and ctx.auth.failures.recent(client_key(REMOTE)) == 0

    run(go())


def test_account_and_protocol_switches(ctx: Context) -> None:
    async def go() -> None:
        ctx.directory.set_protocols(USER, ["pop3"])
        c = Client(ctx)
        await c.start()
        out, challenges = await scram_login(c)
        assert out == b"a NO [CONTACTADMIN] IMAP access is disabled for this account\r\n"
        assert len(challenges) == 1
        ctx.directory.set_protocols(USER, ["imap"])
        ctx.directory.set_enabled(USER, False)
        out, _ = await scram_login(c)
        assert out == b"a NO [CONTACTADMIN] This account is disabled\r\n"
        ctx.directory.set_enabled(USER, True)
        out, _ = await scram_login(c)
        assert out.startswith(b"a OK")

    run(go())


def test_cancel_refusals_and_unsupported_variants(ctx: Context) -> None:
    async def go() -> None:
        c = Client(ctx)
        await c.start()
        assert await c.cmd("a AUTHENTICATE SCRAM-SHA-256") == b"+ \r\n"
        assert await c.cmd("*") == b"a BAD Authentication cancelled\r\n"
        # -PLUS is neither advertised nor accepted without TLS (nothing to bind to).
        out = await c.cmd("b AUTHENTICATE SCRAM-SHA-256-PLUS")
        assert out == b"b NO [CANNOT] Unsupported authentication mechanism SCRAM-SHA-256-PLUS\r\n"
        # A client asking for channel binding anyway is refused (RFC 5802 section 6).
        out = await c.cmd(b"c AUTHENTICATE SCRAM-SHA-256 " + b64(f"p=tls-exporter,,n={USER},r=abcdef"))
        assert out.startswith(b"c NO [AUTHENTICATIONFAILED] Channel binding needs SCRAM-SHA-256-PLUS")
        assert (await c.cmd("d AUTHENTICATE SCRAM-SHA-256 not!base64")).startswith(b"d BAD Invalid")
        assert await c.cmd("d AUTHENTICATE SCRAM-SHA-256") == b"+ \r\n"
        assert (await c.cmd("not!base64")).startswith(b"d BAD Invalid SASL response")
        assert (await c.cmd("e AUTHENTICATE SCRAM-SHA-256 =")).startswith(b"e NO [AUTHENTICATIONFAILED]")
        # Anything but an empty response after the server-final ends the exchange.
        client = ScramClient(["SCRAM-SHA-256"], USER, PASSWORD)
        out = await c.cmd(b"f AUTHENTICATE SCRAM-SHA-256 " + b64(client.get_client_first()))
        client.set_server_first(challenge(out))
        client.set_server_final(challenge(await c.cmd(b64(client.get_client_final()))))
        out = await c.cmd(b64("extra"))
        assert out.startswith(b"f NO [AUTHENTICATIONFAILED] Expected an empty response")
        assert c.session.user is None
        # Commands are read again afterwards, and a later exchange works.
        assert (await c.cmd("g NOOP")).startswith(b"g OK")
        out, _ = await scram_login(c, tag="h")
        assert out.startswith(b"h OK")

    run(go())


def test_password_login_gives_a_legacy_account_its_secrets(ctx: Context) -> None:
    """Accounts from before SCRAM: SCRAM fails like a wrong password until a password
    login (which knows the password) stores their secrets."""
    from letterbox.auth.passwords import hash_password

    ctx.directory.add("old@example.com", hash_password("pw"))

    async def go() -> None:
        c = Client(ctx)
        await c.start()
        out, _ = await scram_login(c, user="old@example.com")
        assert out == b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
        assert (await c.cmd('l LOGIN "old@example.com" "pw"')).startswith(b"l OK")
        c2 = Client(ctx)
        await c2.start()
        out, _ = await scram_login(c2, user="old@example.com")
        assert out.startswith(b"a OK")

    run(go())
