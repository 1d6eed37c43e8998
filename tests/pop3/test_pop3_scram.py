"""POP3 AUTH SCRAM-SHA-256 (RFC 5034 with RFC 7677/5802), driven with scramp's client."""

from __future__ import annotations

import base64
import re

from scramp import ScramClient

from letterbox.net import client_key

from .pop3util import ALICE, PASSWORD, REMOTE, REMOTE_TLS, Client, Env, message, run


def b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


def challenge(out: bytes) -> str:
    m = re.fullmatch(rb"\+ ([A-Za-z0-9+/=]*)\r\n", out)
    assert m, out
    return base64.b64decode(m.group(1)).decode()


async def scram_auth(c: Client, user: str = ALICE, password: str = PASSWORD, initial: bool = True) -> bytes:
    """AUTH SCRAM-SHA-256 to the end; the final reply."""
    client = ScramClient(["SCRAM-SHA-256"], user, password)
    first = client.get_client_first()
    if initial:
        out = await c.cmd(f"AUTH SCRAM-SHA-256 {b64(first)}")
    else:
        assert await c.cmd("AUTH SCRAM-SHA-256") == b"+ \r\n"  # RFC 5034: an empty challenge
        out = await c.cmd(b64(first))
    client.set_server_first(challenge(out))
    out = await c.cmd(b64(client.get_client_final()))
    if not out.startswith(b"+ "):
        return out
    # POP3 has no success data (RFC 5034 section 4): server-final is a challenge.
    client.set_server_final(challenge(out))
    return await c.cmd("")


def test_capa_and_auth_list_scram(env: Env) -> None:
    async def go() -> None:
        c = await env.client()
        caps = (await c.cmd("CAPA")).decode().split("\r\n")
        assert "SASL PLAIN SCRAM-SHA-256" in caps
        assert await c.cmd("AUTH") == b"+OK Supported mechanisms follow\r\nPLAIN\r\nSCRAM-SHA-256\r\n.\r\n"
        remote = await env.client(REMOTE)
        caps = (await remote.cmd("CAPA")).decode().split("\r\n")
        assert "SASL SCRAM-SHA-256" in caps and "USER" not in caps
        assert not any("PLUS" in cap for cap in caps)

    run(go())


def test_scram_login_with_and_without_initial_response(env: Env) -> None:
    async def go() -> None:
        await env.deliver(message("one", 120))
        c = await env.client()
        assert await scram_auth(c) == b"+OK Logged in, maildrop has 1 message (120 octets)\r\n"
        assert await c.cmd("STAT") == b"+OK 1 120\r\n"
        assert (await c.cmd("AUTH SCRAM-SHA-256")).startswith(b"-ERR")
        await c.close()
        c = await env.client(REMOTE)  # no TLS, not loopback: SCRAM still allowed
        assert (await scram_auth(c, user="ALICE@example.com", initial=False)).startswith(b"+OK Logged in")
        assert c.s.user == ALICE
        await c.close()

    run(go())


def test_wrong_password_and_unknown_user(env: Env) -> None:
    async def go() -> None:
        c = await env.client(REMOTE_TLS)
        assert await scram_auth(c, password="nope") == b"-ERR [AUTH] Authentication failed.\r\n"
        assert env.ctx.auth.failures.recent(client_key(REMOTE_TLS.ip)) == 1
        assert await scram_auth(c, user="nobody@example.com") == b"-ERR [AUTH] Authentication failed.\r\n"
        assert env.ctx.auth.failures.recent(client_key(REMOTE_TLS.ip)) == 2
        assert (await scram_auth(c)).startswith(b"+OK Logged in")
        await c.close()
        assert c.s.summary().startswith("pop3(alice@example.com)<192.0.2.1>")

    run(go())


def test_switches_cancel_and_refusals(env: Env) -> None:
    async def go() -> None:
        env.ctx.directory.set_protocols(ALICE, ["imap"])
        c = await env.client()
        assert await scram_auth(c) == b"-ERR [SYS/PERM] POP3 access is disabled for this account\r\n"
        env.ctx.directory.set_protocols(ALICE, ["pop3"])
        assert await c.cmd("AUTH SCRAM-SHA-256") == b"+ \r\n"
        assert await c.cmd("*") == b"-ERR Authentication cancelled\r\n"
        assert (await c.cmd("AUTH SCRAM-SHA-256 !!")).startswith(
            b"-ERR [AUTH] Invalid AUTH SCRAM-SHA-256 response"
        )
        out = await c.cmd(f"AUTH SCRAM-SHA-256 {b64(f'p=tls-exporter,,n={ALICE},r=abcdef')}")
        assert out == b"-ERR [AUTH] Channel binding needs SCRAM-SHA-256-PLUS\r\n"
        assert await c.cmd("AUTH SCRAM-SHA-256-PLUS") == b"-ERR Unsupported authentication mechanism\r\n"
        # Commands after a failed exchange are commands again, and the next one succeeds.
        assert (await c.cmd("NOOP")).startswith(b"-ERR NOOP is not allowed")
        assert (await scram_auth(c, initial=False)).startswith(b"+OK Logged in")
        await c.close()

    run(go())


def test_pipelined_responses(env: Env) -> None:
    """A client that sends its empty response and a command together."""

    async def go() -> None:
        c = await env.client()
        client = ScramClient(["SCRAM-SHA-256"], ALICE, PASSWORD)
        client.set_server_first(challenge(await c.cmd(f"AUTH SCRAM-SHA-256 {b64(client.get_client_first())}")))
        client.set_server_final(challenge(await c.cmd(b64(client.get_client_final()))))
        assert await c.send(b"\r\nSTAT\r\n") == b"+OK Logged in, maildrop has 0 messages (0 octets)\r\n+OK 0 0\r\n"
        await c.close()

    run(go())
