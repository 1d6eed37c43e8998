"""The POP3 core against a real store: RFC 1939 commands, login, STLS, UPDATE semantics."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest

from letterbox.auth.passwords import make_secrets
from letterbox.auth.sasl import b64decode
from letterbox.pop3.session import MAX_BAD_COMMANDS, SASL_TIMEOUT, POP3Session
from letterbox.store.api import StoreError

from .pop3util import (
    ALICE,
    HOST,
    LOCAL,
    PASSWORD,
    REMOTE,
    REMOTE_TLS,
    Env,
    MakeEnv,
    message,
    run,
)

PLAIN_ALICE = "AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA=="  # "\0alice@example.com\0secret"
assert b64decode(PLAIN_ALICE.encode()) == f"\0{ALICE}\0{PASSWORD}".encode()

M1 = message("one", 120)
M2 = message("two", 200)


async def two_messages(env: Env) -> list[int]:
    return [await env.deliver(M1), await env.deliver(M2)]


def capa(reply: bytes) -> list[str]:
    lines = reply.decode().split("\r\n")
    assert lines[0] == "+OK Capability list follows"
    assert lines[-2:] == [".", ""]
    return lines[1:-2]


# --- greeting, CAPA, STLS ----------------------------------------------------------------


def test_greeting(env: Env) -> None:
    async def go() -> None:
        c = env.session()
        assert await c.start() == f"+OK {HOST} Letterbox ready.\r\n".encode()
        assert c.s.protocol == "pop3"
        assert c.s.timeout == 600.0

    run(go())


def test_capa_loopback_without_tls(env: Env) -> None:
    async def go() -> None:
        c = await env.client()
        assert capa(await c.cmd("CAPA")) == [
            "TOP", "UIDL", "USER", "SASL PLAIN SCRAM-SHA-256", "RESP-CODES", "AUTH-RESP-CODE",
            "PIPELINING", "EXPIRE NEVER", "IMPLEMENTATION Letterbox",
        ]

    run(go())


def test_capa_expire_days(make_env: MakeEnv) -> None:
    env = make_env(leave_on_server_days=7)

    async def go() -> None:
        c = await env.client()
        assert "EXPIRE 7" in capa(await c.cmd("CAPA"))
        await c.login()
        assert "EXPIRE 7" in capa(await c.cmd("CAPA"))

    run(go())


def test_capa_and_stls_on_insecure_remote(env: Env) -> None:
    env.enable_tls()

    async def go() -> None:
        c = await env.client(REMOTE)
        caps = capa(await c.cmd("CAPA"))
        assert "STLS" in caps
        # SCRAM never sends the password: offered before TLS too (RFC 5034 section 4).
        assert "USER" not in caps and "SASL SCRAM-SHA-256" in caps
        # Bytes pipelined after STLS were sent in the clear: they must not survive.
        assert await c.send(b"STLS\r\nUSER mallory\r\n") == b"+OK Begin TLS negotiation\r\n"
        assert c.s.start_tls
        c.s.start_tls = False  # what the runner does before the handshake
        c.s.tls_started()
        assert c.s.peer.secure
        caps = capa(await c.cmd("CAPA"))
        assert "STLS" not in caps
        assert "USER" in caps and "SASL PLAIN SCRAM-SHA-256" in caps
        assert await c.cmd("PASS x") == b"-ERR Send USER first\r\n"
        assert await c.cmd("STLS") == b"-ERR Command not permitted when TLS active\r\n"
        await c.login()
        caps = capa(await c.cmd("CAPA"))
        assert "STLS" not in caps and "USER" in caps
        assert (await c.cmd("STLS")).startswith(b"-ERR STLS is not allowed in the TRANSACTION")
        await c.close()

    run(go())


def test_stls_without_tls_configured_or_on_implicit_tls(env: Env) -> None:
    async def go() -> None:
        c = await env.client(REMOTE)
        assert await c.cmd("STLS") == b"-ERR TLS is not available on this server\r\n"
        assert not c.s.start_tls
        env.enable_tls()
        c = await env.client(REMOTE_TLS, implicit_tls=True)
        assert "STLS" not in capa(await c.cmd("CAPA"))
        assert (await c.cmd("STLS")).startswith(b"-ERR")

    run(go())


# --- USER/PASS and AUTH ------------------------------------------------------------------


def test_user_pass_rfc_example(env: Env) -> None:
    async def go() -> None:
        await two_messages(env)
        c = await env.client()
        assert await c.cmd(f"USER {ALICE}") == b"+OK Send your password\r\n"
        assert await c.cmd(f"PASS {PASSWORD}") == (
            b"+OK Logged in, maildrop has 2 messages (320 octets)\r\n"
        )
        assert c.s.user == ALICE
        await c.close()

    run(go())


def test_wrong_password_then_retry(env: Env) -> None:
    async def go() -> None:
        c = await env.client()
        await c.cmd(f"USER {ALICE}")
        assert await c.cmd("PASS wrong") == b"-ERR [AUTH] Authentication failed.\r\n"
        # A failed PASS forgets the USER (RFC 1939 section 7: start again with USER).
        assert await c.cmd(f"PASS {PASSWORD}") == b"-ERR Send USER first\r\n"
        assert await c.cmd("USER nobody@example.com") == b"+OK Send your password\r\n"
        assert await c.cmd("PASS x") == b"-ERR [AUTH] Authentication failed.\r\n"
        await c.login()
        await c.close()
        assert c.s.summary().startswith(f"pop3({ALICE})<127.0.0.1>: Disconnected: connection closed")

    run(go())


def test_password_with_spaces_and_utf8(env: Env) -> None:
    env.ctx.directory.add("bob@example.com", make_secrets(" pä ss "))

    async def go() -> None:
        c = await env.client()
        await c.cmd("USER bob@example.com")
        reply = await c.send("PASS  pä ss \r\n".encode())
        assert reply.startswith(b"+OK Logged in"), reply
        await c.close()

    run(go())


def test_plaintext_refused_on_insecure_remote(env: Env) -> None:
    async def go() -> None:
        refused = b"-ERR [AUTH] Plaintext authentication disallowed on non-secure connection\r\n"
        c = await env.client(REMOTE)
        assert await c.cmd(f"USER {ALICE}") == refused
        assert await c.cmd(f"PASS {PASSWORD}") == b"-ERR Send USER first\r\n"
        assert await c.cmd(f"AUTH PLAIN {PLAIN_ALICE}") == refused
        assert await c.cmd("AUTH PLAIN") == refused
        assert await c.cmd("AUTH") == b"+OK Supported mechanisms follow\r\nSCRAM-SHA-256\r\n.\r\n"
        assert c.s.user is None
        await c.close()
        assert c.s.summary() == (
            "pop3<192.0.2.1>: Disconnected: Aborted login (plaintext refused on insecure"
            " connection, 3 attempts, user=<alice@example.com>)"
        )
        # The same client over TLS (implicit, or after STLS) may log in.
        c = await env.client(REMOTE_TLS, implicit_tls=True)
        await c.login()
        await c.close()

    run(go())


def test_plaintext_allowed_when_configured(env: Env) -> None:
    env.ctx.auth.settings.allow_plaintext_without_tls = True

    async def go() -> None:
        c = await env.client(REMOTE)
        assert "USER" in capa(await c.cmd("CAPA"))
        await c.login()
        await c.close()

    run(go())


def test_protocol_disabled_and_account_disabled(env: Env) -> None:
    async def go() -> None:
        env.ctx.directory.set_protocols(ALICE, ["imap"])
        c = await env.client()
        await c.cmd(f"USER {ALICE}")
        assert await c.cmd(f"PASS {PASSWORD}") == (
            b"-ERR [SYS/PERM] POP3 access is disabled for this account\r\n"
        )
        assert await c.cmd(f"AUTH PLAIN {PLAIN_ALICE}") == (
            b"-ERR [SYS/PERM] POP3 access is disabled for this account\r\n"
        )
        env.ctx.directory.set_protocols(ALICE, ["imap", "pop3"])
        env.ctx.directory.set_enabled(ALICE, False)
        reply = await c.cmd(f"AUTH PLAIN {PLAIN_ALICE}")
        assert reply.startswith(b"-ERR [SYS/PERM] "), reply
        assert c.s.user is None
        await c.close()

    run(go())


def test_auth_plain_initial_response(env: Env) -> None:
    async def go() -> None:
        await two_messages(env)
        c = await env.client()
        assert await c.cmd(f"auth plain {PLAIN_ALICE}") == (
            b"+OK Logged in, maildrop has 2 messages (320 octets)\r\n"
        )
        assert (await c.cmd(f"AUTH PLAIN {PLAIN_ALICE}")).startswith(b"-ERR")
        await c.close()

    run(go())


def test_auth_plain_continuation_and_cancel(env: Env) -> None:
    async def go() -> None:
        c = await env.client()
        assert await c.cmd("AUTH PLAIN") == b"+ \r\n"
        assert c.s.timeout == SASL_TIMEOUT
        assert await c.cmd("*") == b"-ERR Authentication cancelled\r\n"
        assert c.s.timeout == 600.0
        assert await c.cmd("AUTH PLAIN") == b"+ \r\n"
        assert await c.cmd("not base64!") == (
            b"-ERR [AUTH] Invalid AUTH PLAIN response: invalid base64\r\n"
        )
        assert await c.cmd("AUTH PLAIN =") == (
            b"-ERR [AUTH] Invalid AUTH PLAIN response: empty PLAIN response\r\n"
        )
        assert await c.cmd("AUTH CRAM-MD5") == b"-ERR Unsupported authentication mechanism\r\n"
        assert await c.cmd("AUTH") == b"+OK Supported mechanisms follow\r\nPLAIN\r\nSCRAM-SHA-256\r\n.\r\n"
        # Continuation and following command pipelined together.
        reply = await c.send(f"AUTH PLAIN\r\n{PLAIN_ALICE}\r\nSTAT\r\n".encode())
        assert reply == b"+ \r\n+OK Logged in, maildrop has 0 messages (0 octets)\r\n+OK 0 0\r\n"
        await c.close()

    run(go())


def test_wrong_state_and_unknown_commands(env: Env) -> None:
    async def go() -> None:
        await two_messages(env)
        c = await env.client()
        assert await c.cmd("STAT") == b"-ERR STAT is not allowed in the AUTHORIZATION state\r\n"
        assert await c.cmd("RETR 1") == b"-ERR RETR is not allowed in the AUTHORIZATION state\r\n"
        assert await c.cmd("APOP alice 0123") == b"-ERR unknown command\r\n"
        assert await c.cmd("XYZZY") == b"-ERR unknown command\r\n"
        await c.login()
        assert await c.cmd("USER x") == b"-ERR USER is not allowed in the TRANSACTION state\r\n"
        assert await c.cmd("PASS x") == b"-ERR PASS is not allowed in the TRANSACTION state\r\n"
        assert await c.cmd("FOO") == b"-ERR unknown command\r\n"
        await c.close()

    run(go())


def test_quit_in_authorization(env: Env) -> None:
    async def go() -> None:
        c = await env.client()
        assert await c.send(b"QUIT\r\nNOOP\r\n") == f"+OK {HOST} Letterbox signing off\r\n".encode()
        assert c.s.closing
        await c.close()
        assert c.s.summary() == "pop3<127.0.0.1>: Disconnected: Aborted login (no auth attempts)"

    run(go())


# --- TRANSACTION commands ------------------------------------------------------------------


def test_stat_list_uidl_noop_rfc_examples(env: Env) -> None:
    async def go() -> None:
        uids = await two_messages(env)
        mbox = await (await env.account()).get_mailbox("INBOX")
        ids = [f"{mbox.uidvalidity:08x}{u:08x}" for u in uids]
        c = await env.logged_in()
        assert await c.cmd("STAT") == b"+OK 2 320\r\n"
        assert await c.cmd("LIST") == b"+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n"
        assert await c.cmd("LIST 2") == b"+OK 2 200\r\n"
        assert await c.cmd("LIST 3") == b"-ERR no such message, only 2 messages in maildrop\r\n"
        assert await c.cmd("UIDL") == f"+OK\r\n1 {ids[0]}\r\n2 {ids[1]}\r\n.\r\n".encode()
        assert await c.cmd("UIDL 2") == f"+OK 2 {ids[1]}\r\n".encode()
        assert await c.cmd("UIDL 3") == b"-ERR no such message, only 2 messages in maildrop\r\n"
        assert await c.cmd("NOOP") == b"+OK\r\n"
        for uid in ids:
            assert 1 <= len(uid) <= 70 and all(0x21 <= ord(ch) <= 0x7E for ch in uid)
        await c.close()

    run(go())


def test_commands_case_insensitive(env: Env) -> None:
    async def go() -> None:
        await two_messages(env)
        c = await env.client()
        await c.cmd(f"user {ALICE}")
        assert (await c.cmd(f"pAsS {PASSWORD}")).startswith(b"+OK")
        assert await c.cmd("stat") == b"+OK 2 320\r\n"
        assert (await c.cmd("Retr 1")).startswith(b"+OK 120 octets\r\n")
        assert (await c.cmd("quit")).startswith(b"+OK")

    run(go())


def test_retr_byte_exact_with_dot_stuffing(env: Env) -> None:
    raw = (
        b"Subject: dots\r\n\r\n"
        b".\r\n"
        b"..two\r\n"
        b".leading\r\n"
        b"mid.dle\r\n"
        b"\r\n"
        b".\r\n"
        b"last line without CRLF."
    )

    async def go() -> None:
        await env.deliver(raw)
        c = await env.logged_in()
        reply = await c.cmd("RETR 1")
        head, _, body = reply.partition(b"\r\n")
        assert head == f"+OK {len(raw)} octets".encode()
        assert body == (
            b"Subject: dots\r\n\r\n"
            b"..\r\n"
            b"...two\r\n"
            b"..leading\r\n"
            b"mid.dle\r\n"
            b"\r\n"
            b"..\r\n"
            b"last line without CRLF.\r\n"
            b".\r\n"
        )
        await c.close()

    run(go())


def test_retr_byte_exact_round_trip_8bit_and_long_lines(env: Env) -> None:
    body = bytes(range(256)).replace(b"\r", b"").replace(b"\n", b"") + b"\r\n"
    raw = b"Subject: bin\r\n\r\n" + body * 3 + b"." * 999 + b"\r\n" + b"x" * 5000 + b"\r\n"

    async def go() -> None:
        await env.deliver(raw)
        c = await env.logged_in()
        reply = await c.cmd("RETR 1")
        _, _, wire = reply.partition(b"\r\n")
        lines = wire.split(b"\r\n")
        assert lines[-2:] == [b".", b""]
        got = b"".join((ln[1:] if ln.startswith(b".") else ln) + b"\r\n" for ln in lines[:-2])
        assert got == raw
        await c.close()

    run(go())


def test_top(env: Env) -> None:
    raw = b"Subject: t\r\nFrom: x@y\r\n\r\nl1\r\n.l2\r\nl3\r\n"

    async def go() -> None:
        await env.deliver(raw)
        c = await env.logged_in()
        assert await c.cmd("TOP 1 0") == b"+OK\r\nSubject: t\r\nFrom: x@y\r\n\r\n.\r\n"
        assert await c.cmd("TOP 1 2") == (
            b"+OK\r\nSubject: t\r\nFrom: x@y\r\n\r\nl1\r\n..l2\r\n.\r\n"
        )
        assert await c.cmd("TOP 1 99") == b"+OK\r\n" + raw.replace(b".l2", b"..l2") + b".\r\n"
        assert await c.cmd("TOP 2 0") == b"-ERR no such message, only 1 message in maildrop\r\n"
        assert await c.cmd("TOP 1 -1") == b"-ERR invalid number of lines\r\n"
        assert await c.cmd("TOP 1 x") == b"-ERR invalid number of lines\r\n"
        assert await c.cmd("TOP 1") == b"-ERR TOP needs a message number and a number of lines\r\n"
        await c.close()

    run(go())


def test_top_of_big_message(env: Env) -> None:
    head = b"Subject: big\r\n\r\n"
    raw = head + b"".join(b"line %d\r\n" % i for i in range(20000))

    async def go() -> None:
        await env.deliver(raw)
        c = await env.logged_in()
        assert await c.cmd("TOP 1 0") == b"+OK\r\n" + head + b".\r\n"
        assert await c.cmd("TOP 1 3") == b"+OK\r\n" + head + b"line 0\r\nline 1\r\nline 2\r\n.\r\n"
        # More lines than the first read holds: the whole message is read.
        reply = await c.cmd("TOP 1 19999")
        assert reply == b"+OK\r\n" + raw[: -len(b"line 19999\r\n")] + b".\r\n"
        await c.close()
        assert "top=3/" in c.s.summary()

    run(go())


def test_bad_arguments(env: Env) -> None:
    async def go() -> None:
        await two_messages(env)
        c = await env.logged_in()
        cases = {
            "RETR": b"-ERR RETR needs a message number\r\n",
            "RETR 1 2": b"-ERR RETR needs a message number\r\n",
            "RETR x": b"-ERR invalid message number 'x'\r\n",
            "RETR -1": b"-ERR invalid message number '-1'\r\n",
            "RETR 1.5": b"-ERR invalid message number '1.5'\r\n",
            "RETR 0": b"-ERR no such message, only 2 messages in maildrop\r\n",
            "RETR 3": b"-ERR no such message, only 2 messages in maildrop\r\n",
            "RETR " + "9" * 40: b"-ERR no such message, only 2 messages in maildrop\r\n",
            "RETR " + "9" * 41: b"-ERR invalid message number\r\n",
            "DELE": b"-ERR DELE needs a message number\r\n",
            "DELE 0": b"-ERR no such message, only 2 messages in maildrop\r\n",
            "LIST 1 2": b"-ERR LIST takes at most one message number\r\n",
            "UIDL x": b"-ERR invalid message number 'x'\r\n",
            "STAT 1": b"-ERR STAT takes no arguments\r\n",
            "NOOP x": b"-ERR NOOP takes no arguments\r\n",
            "RSET 1": b"-ERR RSET takes no arguments\r\n",
            "QUIT now": b"-ERR QUIT takes no arguments\r\n",
        }
        for line, expected in cases.items():
            assert await c.cmd(line) == expected, line
        assert not c.s.closing
        assert await c.cmd("STAT") == b"+OK 2 320\r\n"
        await c.close()

    run(go())


# --- DELE, RSET and the UPDATE state -------------------------------------------------------


def test_dele_rset(env: Env) -> None:
    async def go() -> None:
        await two_messages(env)
        c = await env.logged_in()
        assert await c.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
        assert await c.cmd("DELE 1") == b"-ERR message 1 already deleted\r\n"
        assert await c.cmd("RETR 1") == b"-ERR message 1 already deleted\r\n"
        assert await c.cmd("TOP 1 0") == b"-ERR message 1 already deleted\r\n"
        assert await c.cmd("LIST 1") == b"-ERR message 1 already deleted\r\n"
        assert await c.cmd("UIDL 1") == b"-ERR message 1 already deleted\r\n"
        assert await c.cmd("STAT") == b"+OK 1 200\r\n"
        assert await c.cmd("LIST") == b"+OK 1 message (200 octets)\r\n2 200\r\n.\r\n"
        assert (await c.lines("UIDL"))[1].startswith(b"2 ")
        assert await c.cmd("RSET") == b"+OK maildrop has 2 messages (320 octets)\r\n"
        assert await c.cmd("STAT") == b"+OK 2 320\r\n"
        assert await c.cmd("QUIT") == f"+OK {HOST} signing off (0 messages deleted)\r\n".encode()
        await c.close()
        assert len(await env.inbox_uids()) == 2

    run(go())


def test_dele_quit_deletes(env: Env) -> None:
    async def go() -> None:
        uids = await two_messages(env)
        store = await env.account()
        before = await store.usage()
        c = await env.logged_in()
        await c.cmd("DELE 1")
        assert await c.cmd("QUIT") == f"+OK {HOST} signing off (1 message deleted)\r\n".encode()
        assert c.s.closing
        await c.close()
        assert await env.inbox_uids() == [uids[1]]
        after = await store.usage()
        assert after.messages == before.messages - 1
        assert after.bytes == before.bytes - len(M1)
        assert c.s.summary() == (
            f"pop3({ALICE})<127.0.0.1>: Disconnected: Logged out"
            " top=0/0, retr=0/0, del=1/2, size=320"
        )
        # The next session numbers what is left from 1.
        c = await env.logged_in()
        assert await c.cmd("LIST") == b"+OK 1 message (200 octets)\r\n1 200\r\n.\r\n"
        await c.close()

    run(go())


def test_dropped_connection_deletes_nothing(env: Env) -> None:
    async def go() -> None:
        await two_messages(env)
        c = await env.logged_in()
        assert (await c.cmd("RETR 1")).startswith(b"+OK")
        await c.cmd("DELE 1")
        await c.cmd("DELE 2")
        await c.close()
        assert len(await env.inbox_uids()) == 2
        assert c.s.summary().startswith(
            f"pop3({ALICE})<127.0.0.1>: Disconnected: connection closed (2 DELEs not committed)"
            " top=0/0, retr=1/120, del=0/2"
        )
        # RETR without QUIT does not count as retrieved either.
        store = await env.account()
        mbox = await store.get_mailbox("INBOX")
        recs = await store.fetch(mbox.id, await env.inbox_uids(), ["pop3"])
        assert all(r.pop3_retrieved is None for r in recs)
        # The lock went with the connection.
        c = await env.logged_in()
        await c.close()

    run(go())


def test_shutdown_deletes_nothing(env: Env) -> None:
    async def go() -> None:
        await two_messages(env)
        c = await env.logged_in()
        await c.cmd("DELE 1")
        await c.s.shutdown("POP3 switched\r\noff")
        assert c.output() == b"-ERR [SYS/TEMP] Server shutting down: POP3 switched off\r\n"
        assert c.s.closing
        await c.close()
        assert len(await env.inbox_uids()) == 2
        assert "Disconnected: server shutdown (POP3 switched off)" in c.s.summary()
        c = await env.logged_in()
        await c.close()

    run(go())


def test_timeout_deletes_nothing(env: Env) -> None:
    async def go() -> None:
        await two_messages(env)
        c = await env.logged_in()
        await c.cmd("DELE 2")
        await c.s.timed_out()
        assert c.output() == b"-ERR autologout: idle too long\r\n"
        assert c.s.closing
        await c.close()
        assert len(await env.inbox_uids()) == 2
        assert "Disconnected: autologout (1 DELE not committed)" in c.s.summary()

    run(go())


def test_retr_marks_retrieved_at_quit(env: Env) -> None:
    async def go() -> None:
        uids = await two_messages(env)
        c = await env.logged_in()
        await c.cmd("RETR 2")
        await c.cmd("TOP 1 0")
        await c.cmd("QUIT")
        await c.close()
        store = await env.account()
        mbox = await store.get_mailbox("INBOX")
        recs = {r.uid: r for r in await store.fetch(mbox.id, uids, ["pop3"])}
        assert recs[uids[0]].pop3_retrieved is None
        assert recs[uids[1]].pop3_retrieved is not None
        assert c.s.summary().endswith("top=1/62, retr=1/200, del=0/2, size=320")

    run(go())


def test_hide_mode(make_env: MakeEnv) -> None:
    env = make_env(delete_mode="hide")

    async def go() -> None:
        uids = await two_messages(env)
        c = await env.logged_in()
        uidl2 = (await c.lines("UIDL 2"))[0]
        await c.cmd("DELE 1")
        assert (await c.cmd("QUIT")).endswith(b"(1 message deleted)\r\n")
        await c.close()
        assert await env.inbox_uids() == uids  # IMAP still sees both
        c = await env.logged_in()
        assert await c.cmd("STAT") == b"+OK 1 200\r\n"
        assert (await c.lines("UIDL 1"))[0] == uidl2.replace(b" 2 ", b" 1 ")
        await c.close()

    run(go())


def test_uidl_stable_across_sessions(env: Env) -> None:
    async def go() -> None:
        await two_messages(env)
        c = await env.logged_in()
        first = await c.lines("UIDL")
        await c.cmd("DELE 1")
        await c.cmd("QUIT")
        await c.close()
        await env.deliver(message("three"))
        c = await env.logged_in()
        second = await c.lines("UIDL")
        await c.close()
        # Message 2 became message 1 but kept its id; the new message got a new one.
        assert second[1] == b"1 " + first[2].split()[1]
        assert len(second) == 4 and second[2].split()[1] not in {ln.split()[-1] for ln in first}
        c = await env.logged_in()
        assert await c.lines("UIDL") == second
        await c.close()

    run(go())


def test_in_use(make_env: MakeEnv) -> None:
    env = make_env(lock_wait=0.0)

    async def go() -> None:
        await two_messages(env)
        a = await env.logged_in()
        b = await env.client()
        await b.cmd(f"USER {ALICE}")
        assert await b.cmd(f"PASS {PASSWORD}") == (
            b"-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n"
        )
        assert b.s.user is None
        assert await b.cmd(f"AUTH PLAIN {PLAIN_ALICE}") == (
            b"-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n"
        )
        await a.cmd("QUIT")
        # The lock is released at QUIT, before the connection is even closed.
        assert (await b.cmd(f"AUTH PLAIN {PLAIN_ALICE}")).startswith(b"+OK Logged in")
        await a.close()
        await b.close()

    run(go())


def test_login_waits_for_the_session_holding_the_lock(make_env: MakeEnv) -> None:
    env = make_env(lock_wait=2.0)

    async def go() -> None:
        await two_messages(env)
        a = await env.logged_in()
        b, c = await env.client(), await env.client()
        await b.cmd(f"USER {ALICE}")
        await c.cmd(f"USER {ALICE}")
        waiting_b = asyncio.ensure_future(b.cmd(f"PASS {PASSWORD}"))
        await asyncio.sleep(0.05)
        waiting_c = asyncio.ensure_future(c.cmd(f"PASS {PASSWORD}"))
        await asyncio.sleep(0.1)
        assert not waiting_b.done() and not waiting_c.done()
        t0 = time.monotonic()
        await a.cmd("QUIT")
        # The first in line gets the maildrop at once; the second waits for it in turn,
        # and gives up with [IN-USE] when the wait is over.
        assert (await asyncio.wait_for(waiting_b, 1)).startswith(b"+OK Logged in")
        assert time.monotonic() - t0 < 1.0  # long before the 2 s lock_wait ends
        assert await waiting_c == b"-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n"
        assert time.monotonic() - t0 > 1.5
        await b.cmd("QUIT")
        assert (await c.cmd(f"PASS {PASSWORD}")).startswith(b"-ERR")  # USER is needed again
        for x in (a, b, c):
            await x.close()

    run(go())


def test_message_expunged_under_the_session(env: Env) -> None:
    async def go() -> None:
        uids = await two_messages(env)
        c = await env.logged_in()
        store = await env.account()
        mbox = await store.get_mailbox("INBOX")
        await store.expunge(mbox.id, [uids[0]])  # as an IMAP session would
        assert await c.cmd("RETR 1") == b"-ERR message 1 was removed by another session\r\n"
        assert await c.cmd("TOP 1 0") == b"-ERR message 1 was removed by another session\r\n"
        # Numbers stay fixed for the session.
        assert await c.cmd("LIST") == b"+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n"
        assert (await c.cmd("RETR 2")).startswith(b"+OK 200 octets")
        assert await c.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
        assert (await c.cmd("QUIT")).startswith(b"+OK")
        await c.close()
        assert await env.inbox_uids() == [uids[1]]

    run(go())


def test_store_failure_at_update(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    async def go() -> None:
        await two_messages(env)
        store = await env.account()

        async def broken(*args: object) -> list[int]:
            raise StoreError("disk on fire")

        monkeypatch.setattr(store, "expunge", broken)
        c = await env.logged_in()
        await c.cmd("DELE 1")
        assert await c.cmd("QUIT") == b"-ERR [SYS/TEMP] some deleted messages not removed\r\n"
        assert c.s.closing
        await c.close()
        monkeypatch.undo()
        assert len(await env.inbox_uids()) == 2
        c = await env.logged_in()  # lock released
        await c.close()

    run(go())


def test_bare_lf_message_sent_with_crlf(env: Env) -> None:
    async def go() -> None:
        await env.deliver(b"Subject: lf\n\nbody\n.\n")
        c = await env.logged_in()
        reply = await c.cmd("RETR 1")
        assert reply == b"+OK 20 octets\r\nSubject: lf\r\n\r\nbody\r\n..\r\n.\r\n"
        await c.close()

    run(go())


# --- framing, pipelining, hostile input ------------------------------------------------------


def test_pipelined_session_in_one_receive(env: Env) -> None:
    async def go() -> None:
        await two_messages(env)
        c = await env.client()
        reply = await c.send(
            f"USER {ALICE}\r\nPASS {PASSWORD}\r\nSTAT\r\nLIST\r\nDELE 2\r\nUIDL 2\r\nQUIT\r\nNOOP\r\n".encode()
        )
        assert reply == (
            b"+OK Send your password\r\n"
            b"+OK Logged in, maildrop has 2 messages (320 octets)\r\n"
            b"+OK 2 320\r\n"
            b"+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n"
            b"+OK message 2 deleted\r\n"
            b"-ERR message 2 already deleted\r\n"
            + f"+OK {HOST} signing off (1 message deleted)\r\n".encode()
        )
        await c.close()
        assert len(await env.inbox_uids()) == 1

    run(go())


def test_commands_split_across_receives(env: Env) -> None:
    async def go() -> None:
        await two_messages(env)
        c = await env.client()
        data = f"USER {ALICE}\r\nPASS {PASSWORD}\r\nSTAT\r\nRETR 1\r\n".encode()
        out = b""
        for i in range(len(data)):
            out += await c.send(data[i : i + 1])
        assert out.startswith(b"+OK Send your password\r\n+OK Logged in")
        assert b"+OK 2 320\r\n+OK 120 octets\r\n" + M1 + b".\r\n" in out
        assert (await c.send(b"NOOP\n")) == b"+OK\r\n"  # bare LF tolerated
        await c.close()

    run(go())


def test_over_long_line(env: Env) -> None:
    async def go() -> None:
        c = await env.client()
        assert await c.cmd("NOOP" + " " * 600) == b"-ERR line too long\r\n"
        # Reported once, as soon as known; the rest of the line is dropped.
        assert await c.send(b"USER " + b"a" * 700) == b"-ERR line too long\r\n"
        assert await c.send(b"b" * 5000) == b""
        assert await c.send(b"bbb\r\nCAPA\r\n") == b"+OK Capability list follows\r\n" + (
            await c.cmd("CAPA")
        )[len(b"+OK Capability list follows\r\n") :]
        await c.login()
        await c.close()

    run(go())


def test_nul_and_8bit(env: Env) -> None:
    async def go() -> None:
        await two_messages(env)
        c = await env.client()
        assert await c.send(b"US\x00ER x\r\n") == (
            b"-ERR NUL or control characters are not allowed in commands\r\n"
        )
        assert await c.send(b"\xff\xfe\r\n") == b"-ERR 8-bit characters are not allowed in commands\r\n"
        assert await c.send(b"USER \xff\r\n") == b"-ERR argument is not valid UTF-8\r\n"
        tls_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n"
        assert (await c.send(tls_hello)).startswith(b"-ERR")
        await c.login()
        assert await c.send(b"RETR \xc3\xa9\r\n") == (
            b"-ERR 8-bit characters are not allowed in commands\r\n"
        )
        assert await c.send(b"RETR 1\x00\r\n") == (
            b"-ERR NUL or control characters are not allowed in commands\r\n"
        )
        assert await c.cmd("STAT") == b"+OK 2 320\r\n"
        await c.close()

    run(go())


def test_too_many_bad_commands_closes(env: Env) -> None:
    async def go() -> None:
        c = await env.client()
        for _ in range(MAX_BAD_COMMANDS - 1):
            assert await c.cmd("BOGUS") == b"-ERR unknown command\r\n"
        assert await c.cmd("NOOP") == (
            b"-ERR NOOP is not allowed in the AUTHORIZATION state\r\n"
            b"-ERR Too many bad commands, closing connection\r\n"
        )
        assert c.s.closing
        assert await c.cmd("CAPA") == b""
        # A good command in between resets the count.
        c = await env.client()
        for _ in range(MAX_BAD_COMMANDS * 2):
            await c.cmd("BOGUS")
            if c.s.closing:
                break
            await c.cmd("CAPA")
        assert not c.s.closing

    run(go())


def test_too_many_bad_commands_message(env: Env) -> None:
    async def go() -> None:
        c = await env.client()
        reply = await c.send(b"BOGUS\r\n" * (MAX_BAD_COMMANDS + 5))
        lines = reply.split(b"\r\n")[:-1]
        assert len(lines) == MAX_BAD_COMMANDS + 1
        assert lines[-1] == b"-ERR Too many bad commands, closing connection"
        assert c.s.closing
        await c.close()
        assert c.s.summary() == (
            "pop3<127.0.0.1>: Disconnected: too many bad commands (no auth attempts)"
        )

    run(go())


def test_output_limit_holds_back_pipelined_commands(env: Env) -> None:
    async def go() -> None:
        await two_messages(env)
        c = await env.logged_in()
        c.s.output_limit = 100
        reply = await c.send(b"RETR 1\r\nRETR 2\r\nSTAT\r\n")
        assert reply == b"+OK 120 octets\r\n" + M1 + b".\r\n"
        assert c.s.backlog
        await c.s.resume()
        assert c.output() == b"+OK 200 octets\r\n" + M2 + b".\r\n"
        assert c.s.backlog
        await c.s.resume()
        assert c.output() == b"+OK 2 320\r\n"
        assert not c.s.backlog
        await c.close()

    run(go())


def test_auth_summary_for_failed_logins(env: Env) -> None:
    async def go() -> None:
        c = await env.client(LOCAL)
        await c.cmd(f"USER {ALICE}")
        await c.cmd("PASS nope")
        wrong = base64.b64encode(f"\0{ALICE}\0wrong".encode()).decode()
        await c.cmd(f"AUTH PLAIN {wrong}")
        await c.s.timed_out()
        await c.close()
        assert c.s.summary() == (
            "pop3<127.0.0.1>: Disconnected: autologout"
            " (auth failed, 2 attempts, user=<alice@example.com>)"
        )
        assert PASSWORD not in c.s.summary()

    run(go())


def test_session_is_a_session(env: Env) -> None:
    s = POP3Session(env.ctx, LOCAL, False)
    assert s.out == [] and not s.closing and not s.start_tls and s.user is None


def test_maildrop_failure_at_login_releases_the_lock(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    async def go() -> None:
        store = await env.account()

        async def broken(*args: object) -> object:
            raise StoreError("index unreadable")

        monkeypatch.setattr(store, "pop3_maildrop", broken)
        c = await env.client()
        await c.cmd(f"USER {ALICE}")
        assert await c.cmd(f"PASS {PASSWORD}") == (
            b"-ERR [SYS/TEMP] Cannot open the maildrop, try again later\r\n"
        )
        assert c.s.user is None and not c.s.closing
        monkeypatch.undo()
        await c.login()  # the same session retries: the first attempt left no lock behind
        await c.close()

    run(go())
