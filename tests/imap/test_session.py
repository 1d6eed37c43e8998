"""IMAP session: states, login, mailboxes, SELECT, STORE/EXPUNGE/COPY/MOVE, APPEND, IDLE,
quota, rev1 and rev2 answers, and concurrency between sessions."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from letterbox.store.api import Quota

from .imaputil import Client, add_user, make_context

MSG = b"From: Alice <alice@example.org>\r\nTo: bob@example.com\r\nSubject: Hello\r\n\r\nHi Bob\r\n"
USER = "bob@example.com"


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.fixture
def ctx(tmp_path: Path):  # type: ignore[no-untyped-def]
    c = make_context(tmp_path)
    add_user(c, USER)
    return c


async def deliver(ctx, n: int = 1, mailbox: str = "INBOX", data: bytes = MSG) -> None:  # type: ignore[no-untyped-def]
    acc = await ctx.store.account(USER)
    for _ in range(n):
        await acc.append(mailbox, data)


def test_greeting_and_capabilities(ctx) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        c = Client(ctx)
        greeting = await c.start()
        assert greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2 ")
        assert b"AUTH=PLAIN" in greeting and b"STARTTLS" in greeting
        out = await c.cmd("a CAPABILITY")
        assert out.startswith(b"* CAPABILITY IMAP4rev1") and out.endswith(b"a OK CAPABILITY completed\r\n")
        # Commands of other states are BAD.
        assert (await c.cmd("b SELECT INBOX")).startswith(b"b BAD")
        out = await c.login(USER)
        assert b"[CAPABILITY IMAP4rev1" in out and b"MOVE" in out and b"QUOTA" in out
        assert (await c.cmd("c LOGIN x y")).startswith(b"c BAD")
        assert (await c.cmd("d FETCH 1 FLAGS")).startswith(b"d BAD")
        assert (await c.cmd("e FOO")).startswith(b"e BAD")
        out = await c.cmd("f LOGOUT")
        assert out == b"* BYE Logging out\r\nf OK LOGOUT completed\r\n"
        assert c.session.closing

    run(go())


def test_login_failures_and_plaintext_policy(ctx) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        c = Client(ctx)
        await c.start()
        out = await c.cmd(f'a LOGIN "{USER}" "wrong"')
        assert out == b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
        remote = Client(ctx, ip="192.0.2.7")
        greeting = await remote.start()
        assert b"LOGINDISABLED" in greeting and b"AUTH=PLAIN" not in greeting
        out = await remote.cmd(f'a LOGIN "{USER}" "pw"')
        assert b"a NO [PRIVACYREQUIRED]" in out
        tls = Client(ctx, ip="192.0.2.7", secure=True)
        greeting = await tls.start()
        assert b"LOGINDISABLED" not in greeting and b"STARTTLS" not in greeting

    run(go())


def test_protocol_disabled_for_account(ctx) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        ctx.directory.set_protocols(USER, ["pop3"])
        c = Client(ctx)
        await c.start()
        out = await c.cmd(f'a LOGIN "{USER}" "pw"')
        assert out == b"a NO [CONTACTADMIN] IMAP access is disabled for this account\r\n"

    run(go())


def test_authenticate_plain(ctx) -> None:  # type: ignore[no-untyped-def]
    import base64

    token = base64.b64encode(b"\0" + USER.encode() + b"\0pw")

    async def go() -> None:
        c = Client(ctx)
        await c.start()
        out = await c.cmd(b"a AUTHENTICATE PLAIN " + token)
        assert out.startswith(b"a OK [CAPABILITY")
        c2 = Client(ctx)
        await c2.start()
        assert await c2.cmd("b AUTHENTICATE PLAIN") == b"+ \r\n"
        assert (await c2.cmd(token)).startswith(b"b OK")
        c3 = Client(ctx)
        await c3.start()
        await c3.cmd("c AUTHENTICATE PLAIN")
        assert await c3.cmd("*") == b"c BAD Authentication cancelled\r\n"
        await c3.cmd("d AUTHENTICATE LOGIN")
        await c3.cmd(base64.b64encode(USER.encode()))
        assert (await c3.cmd(base64.b64encode(b"pw"))).startswith(b"d OK")
        assert (await Client(ctx).cmd("x AUTHENTICATE CRAM-MD5")).startswith(b"x NO")

    run(go())


def test_select_rev1_and_rev2(ctx) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        await deliver(ctx, 3)
        c = Client(ctx)
        await c.login(USER)
        out = await c.cmd("a SELECT INBOX")
        assert b"* 3 EXISTS\r\n" in out and b"* 3 RECENT\r\n" in out
        assert b"[UNSEEN 1]" in out and b"[UIDVALIDITY " in out and b"[UIDNEXT 4]" in out
        assert b"[PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)]" in out
        assert out.endswith(b"a OK [READ-WRITE] SELECT completed\r\n")
        # \Recent belongs to the first session only.
        c2 = Client(ctx)
        await c2.login(USER)
        assert b"* 0 RECENT" in await c2.cmd("b SELECT INBOX")
        c3 = Client(ctx)
        await c3.login(USER)
        out = await c3.cmd("c ENABLE IMAP4rev2")
        assert out == b"* ENABLED IMAP4rev2\r\nc OK ENABLE completed\r\n"
        out = await c3.cmd("d EXAMINE INBOX")
        assert b"RECENT" not in out and b"UNSEEN" not in out
        assert b'* LIST () "/" INBOX' in out
        assert out.endswith(b"d OK [READ-ONLY] EXAMINE completed\r\n")
        out = await c3.cmd("e SELECT Sent")
        assert out.startswith(b"* OK [CLOSED]")
        out = await c3.cmd("f SELECT nosuch")
        assert out.startswith(b"* OK [CLOSED]") and b"f NO [NONEXISTENT]" in out
        assert c3.session.state == "authenticated"

    run(go())


def test_mailbox_commands_and_list(ctx) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        c = Client(ctx)
        await c.login(USER)
        assert (await c.cmd("a CREATE Work/2024/")).startswith(b"a OK")
        assert (await c.cmd("b CREATE Work")).startswith(b"b NO [ALREADYEXISTS]")
        assert (await c.cmd("c CREATE inbox")).startswith(b"c NO [ALREADYEXISTS]")
        out = await c.cmd('d LIST "" "*"')
        assert b'* LIST (\\HasNoChildren \\Sent) "/" Sent\r\n' in out
        assert b'* LIST (\\HasChildren) "/" Work\r\n' in out
        assert b'* LIST (\\HasNoChildren) "/" Work/2024\r\n' in out
        out = await c.cmd('e LIST "" "%"')
        assert b"Work/2024" not in out and b" Work\r\n" in out
        assert await c.cmd('f LIST "" ""') == b'* LIST (\\Noselect) "/" ""\r\nf OK LIST completed\r\n'
        out = await c.cmd('g LIST (SPECIAL-USE) "" "*" RETURN (SUBSCRIBED)')
        assert b"Work" not in out and b"\\Subscribed" in out and b"\\Trash" in out
        out = await c.cmd('h LIST "" "*" RETURN (STATUS (MESSAGES UIDNEXT))')
        assert b"* STATUS INBOX (MESSAGES 0 UIDNEXT 1)" in out
        assert (await c.cmd("i SUBSCRIBE Work")).startswith(b"i OK")
        out = await c.cmd('j LSUB "" "W*"')
        assert out == b'* LSUB () "/" Work\r\nj OK LSUB completed\r\n'
        assert (await c.cmd("k RENAME Work Play")).startswith(b"k OK")
        out = await c.cmd('l LIST "" "Play*"')
        assert b" Play\r\n" in out and b" Play/2024\r\n" in out
        assert (await c.cmd("m DELETE Play")).startswith(b"m NO")  # has children
        assert (await c.cmd("n DELETE Play/2024")).startswith(b"n OK")
        assert (await c.cmd("o DELETE INBOX")).startswith(b"o NO")
        out = await c.cmd("p STATUS INBOX (MESSAGES UNSEEN SIZE DELETED RECENT UIDVALIDITY)")
        assert re.search(rb"\* STATUS INBOX \(MESSAGES 0 UNSEEN 0 SIZE 0 DELETED 0 RECENT 0 UIDVALIDITY \d+\)", out)
        assert (await c.cmd("q STATUS INBOX (BOGUS)")).startswith(b"q BAD")

    run(go())


@pytest.mark.parametrize(
    "name",
    ["../../etc", "a/../../b", "a//b", ".hidden", "x/.", "bad\x01name"],
)
def test_mailbox_name_attacks(ctx, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        c = Client(ctx)
        await c.login(USER)
        out = await c.cmd(b'a CREATE "' + name.encode() + b'"')
        assert out.startswith(b"a NO") or out.startswith(b"a BAD"), out
        account = tmp_path / "data" / "mail" / "example.com" / "bob"
        for p in (tmp_path / "data").rglob("*"):
            if p.is_dir() and "cur" not in p.parts:
                assert p.resolve().is_relative_to(tmp_path.resolve())
        assert account.is_dir()

    run(go())


def test_utf8_and_mutf7_names(ctx) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        c = Client(ctx)
        await c.login(USER)
        assert (await c.cmd("a CREATE &AMk-t&AOk-")).startswith(b"a OK")  # "Été" in modified UTF-7
        out = await c.cmd('b LIST "" "*t*"')
        assert b"&AMk-t&AOk-" in out
        c2 = Client(ctx)
        await c2.login(USER)
        await c2.cmd("c ENABLE IMAP4rev2")
        out = await c2.cmd('d LIST "" "*t*"')
        assert "Été".encode() in out

    run(go())


def test_append_store_expunge(ctx) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        c = Client(ctx)
        await c.login(USER)
        out = await c.send(b"a APPEND INBOX (\\Seen $Work) {%d}\r\n" % len(MSG))
        assert out == b"+ Ready for literal data\r\n"
        out = await c.send(MSG + b"\r\n")
        assert re.match(rb"a OK \[APPENDUID \d+ 1\] APPEND completed\r\n", out)
        out = await c.send(b"b APPEND INBOX {%d+}\r\n" % len(MSG) + MSG + b" {%d+}\r\n" % len(MSG) + MSG + b"\r\n")
        assert re.match(rb"b OK \[APPENDUID \d+ 2:3\]", out), out
        assert (await c.cmd("c APPEND Nope {1+}\r\nx")).startswith(b"c NO [TRYCREATE]")
        await c.cmd("d SELECT INBOX")
        out = await c.cmd("e STORE 1:2 +FLAGS (\\Deleted)")
        assert b"* 1 FETCH (FLAGS (" in out and b"\\Deleted" in out and b"* 2 FETCH" in out
        assert (await c.cmd("f STORE 2 -FLAGS.SILENT (\\Deleted)")) == b"f OK STORE completed\r\n"
        out = await c.cmd("g UID STORE 3 FLAGS (\\Flagged)")
        assert b"* 3 FETCH (FLAGS (\\Flagged \\Recent) UID 3)" in out
        assert (await c.cmd("h STORE 9 +FLAGS (\\Seen)")).startswith(b"h BAD")
        out = await c.cmd("i EXPUNGE")
        assert out == b"* 1 EXPUNGE\r\ni OK EXPUNGE completed\r\n"
        out = await c.cmd("j UID EXPUNGE 1:*")
        assert out == b"j OK UID EXPUNGE completed\r\n"
        assert b"* STATUS INBOX (MESSAGES 2)" in await c.cmd("k STATUS INBOX (MESSAGES)")
        assert (await c.cmd("l CLOSE")) == b"l OK CLOSE completed\r\n"

    run(go())


def test_copy_move_with_uidplus(ctx) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        await deliver(ctx, 3)
        c = Client(ctx)
        await c.login(USER)
        await c.cmd("a SELECT INBOX")
        out = await c.cmd("b COPY 1:2 Archive")
        assert re.match(rb"b OK \[COPYUID \d+ 1:2 1:2\] COPY completed", out), out
        out = await c.cmd("c UID MOVE 2 Trash")
        assert re.search(rb"\* OK \[COPYUID \d+ 2 1\] Moved UIDs\r\n\* 2 EXPUNGE\r\nc OK", out), out
        assert (await c.cmd("d COPY 1 Nowhere")).startswith(b"d NO [TRYCREATE]")
        out = await c.cmd("e STATUS Archive (MESSAGES)")
        assert b"MESSAGES 2" in out

    run(go())


def test_quota_and_overquota(ctx) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        ctx.directory.set_quota(USER, Quota(bytes=10240, messages=2))
        await deliver(ctx, 2)
        c = Client(ctx)
        await c.login(USER)
        out = await c.cmd("a GETQUOTAROOT INBOX")
        assert b'* QUOTAROOT INBOX ""\r\n* QUOTA "" (STORAGE 1 10 MESSAGE 2 2)\r\n' in out
        assert (await c.cmd('f GETQUOTA ""')).startswith(b'* QUOTA "" (STORAGE 1 10 MESSAGE 2 2)')
        out = await c.send(b"b APPEND INBOX {%d+}\r\n" % len(MSG) + MSG + b"\r\n")
        assert out.startswith(b"b NO [OVERQUOTA]")
        await c.cmd("c SELECT INBOX")
        assert (await c.cmd("d COPY 1 Archive")).startswith(b"d NO [OVERQUOTA]")
        assert (await c.cmd('e SETQUOTA "" (STORAGE 10)')).startswith(b"e NO")

    run(go())


def test_copy_to_trash_has_a_grace_at_the_quota(ctx) -> None:  # type: ignore[no-untyped-def]
    """A full mailbox can still be emptied by a client without MOVE: COPY to Trash may go
    a tenth over the quota (as Dovecot's quota_grace), COPY elsewhere may not."""

    async def go() -> None:
        await deliver(ctx, 20)
        acc = await ctx.store.account(USER)
        ctx.directory.set_quota(USER, Quota(bytes=(await acc.usage()).bytes))  # full
        c = Client(ctx)
        await c.login(USER)
        await c.cmd("a SELECT INBOX")
        assert (await c.cmd("b COPY 1 Archive")).startswith(b"b NO [OVERQUOTA]")
        assert b"c OK [COPYUID" in await c.cmd("c COPY 1:2 Trash")
        assert b"d OK" in await c.cmd("d STORE 1:2 +FLAGS.SILENT (\\Deleted)")
        out = await c.cmd("e EXPUNGE")
        assert out.count(b" EXPUNGE\r\n") == 2 and b"e OK" in out, out
        # Beyond the grace even Trash is refused.
        assert (await c.cmd("f COPY 1:18 Trash")).startswith(b"f NO [OVERQUOTA]")

    run(go())


def test_updates_between_sessions_respect_sequence_numbers(ctx) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        await deliver(ctx, 3)
        a, b = Client(ctx), Client(ctx)
        await a.login(USER)
        await b.login(USER)
        await a.cmd("a1 SELECT INBOX")
        await b.cmd("b1 SELECT INBOX")
        await b.cmd("b2 STORE 2 +FLAGS (\\Deleted)")
        await b.cmd("b3 EXPUNGE")
        await deliver(ctx, 1)
        # FETCH, STORE and SEARCH must not see EXPUNGE (RFC 9051 7.5.1), but EXISTS and
        # flag changes may come.
        out = await a.cmd("a2 FETCH 1 (FLAGS)")
        assert b"EXPUNGE" not in out and b"* 4 EXISTS" in out
        out = await a.cmd("a3 STORE 1 +FLAGS (\\Seen)")
        assert b"EXPUNGE" not in out
        # NOOP may: the expunged message (msn 2) goes now.
        out = await a.cmd("a4 NOOP")
        assert b"* 2 EXPUNGE\r\n" in out and out.endswith(b"a4 OK NOOP completed\r\n")
        # b sees a's flag change as an unsolicited FETCH.
        out = await b.cmd("b4 NOOP")
        assert b"* 1 FETCH (FLAGS (\\Seen" in out

    run(go())


def test_idle_reports_new_mail_and_expunges(ctx) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        await deliver(ctx, 1)
        c = Client(ctx)
        await c.login(USER)
        await c.cmd("a SELECT INBOX")
        assert await c.cmd("b IDLE") == b"+ idling\r\n"
        await deliver(ctx, 1)
        assert c.session.subscription is not None and c.session.subscription.pending()
        out = await c.changed()
        assert b"* 2 EXISTS\r\n" in out
        acc = await ctx.store.account(USER)
        inbox = await acc.get_mailbox("INBOX")
        await acc.expunge(inbox.id, [1])
        assert b"* 1 EXPUNGE\r\n" in await c.changed()
        assert await c.cmd("DONE") == b"b OK IDLE terminated\r\n"

    run(go())


def test_idle_in_authenticated_state_and_bad_done(ctx) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        c = Client(ctx)
        await c.login(USER)
        assert await c.cmd("a IDLE") == b"+ idling\r\n"
        assert (await c.cmd("NOTDONE")).startswith(b"a BAD")

    run(go())


def test_bad_input_keeps_connection_usable(ctx) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        c = Client(ctx)
        await c.login(USER)
        out = await c.send(b"a SELECT \x00\xff\r\n")
        assert out.startswith(b"a BAD") or out.startswith(b"a NO")
        out = await c.send(b"b " + b"X" * 70000 + b"\r\n")
        assert b"BAD" in out
        assert (await c.cmd("c NOOP")) == b"c OK NOOP completed\r\n"
        out = await c.send(b"d APPEND INBOX {999999999999}\r\n")
        assert b"d NO" in out or b"d BAD" in out
        assert (await c.cmd("e NOOP")) == b"e OK NOOP completed\r\n"
        assert (await c.cmd("f NAMESPACE")).startswith(b'* NAMESPACE (("" "/")) (("Shared/" "/")) NIL')
        assert (await c.cmd('g ID ("name" "test")')).startswith(b'* ID ("name" "Letterbox"')

    run(go())


def test_server_shutdown_and_timeout(ctx) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        c = Client(ctx)
        await c.login(USER)
        await c.session.shutdown("IMAP has been disabled by the administrator")
        assert c.take() == b"* BYE [UNAVAILABLE] IMAP has been disabled by the administrator\r\n"
        assert c.session.closing
        d = Client(ctx)
        await d.start()
        assert d.session.timeout <= 60  # unauthenticated sessions time out sooner
        await d.cmd(f'x LOGIN "{USER}" "pw"')
        assert d.session.timeout >= 1800
        await d.session.timed_out()
        assert d.take().startswith(b"* BYE Autologout")

    run(go())


def test_same_script_rev1_and_rev2(ctx) -> None:  # type: ignore[no-untyped-def]
    """One client script, answered by IMAP4rev1 rules and after ENABLE IMAP4rev2."""
    script = [
        "s1 SELECT INBOX",
        "s2 SEARCH SUBJECT hello",
        "s3 FETCH 1 (FLAGS)",
        'd LIST "" "*"',
        "s4 CREATE \"Ünïcode\"",
        "s5 STATUS INBOX (MESSAGES RECENT)",
    ]

    async def go() -> dict[str, list[bytes]]:
        await deliver(ctx, 2)
        answers: dict[str, list[bytes]] = {}
        for mode in ("rev1", "rev2"):
            c = Client(ctx)
            await c.login(USER)
            if mode == "rev2":
                await c.cmd("e ENABLE IMAP4rev2")
            answers[mode] = [await c.cmd(line.replace("Ünïcode", "Ünïcode" + mode).encode("utf-8")) for line in script]
        return answers

    a = run(go())
    r1, r2 = a["rev1"], a["rev2"]
    assert b"* 2 RECENT" in r1[0] and b"RECENT" not in r2[0]
    assert b"* SEARCH 1 2\r\n" in r1[1]
    assert b'* ESEARCH (TAG "s2") ALL 1:2\r\n' in r2[1]
    assert b"\\Recent" in r1[2] and b"\\Recent" not in r2[2]
    # Mailbox names: rev1 refuses raw 8-bit names (modified UTF-7 required); rev2 takes UTF-8.
    assert r1[4].startswith(b"s4 NO") or r1[4].startswith(b"s4 BAD")
    assert r2[4].startswith(b"s4 OK")


def test_review_regressions(ctx) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        # A root name with CR/LF/NUL is answered, not fatal.
        c = Client(ctx)
        await c.login(USER)
        out = await c.send(b"q GETQUOTA {3+}\r\na\r\n\r\n")
        assert b"q NO [NONEXISTENT]" in out
        # No limits: QUOTAROOT without roots, no empty QUOTA list (RFC 9208 grammar).
        out = await c.cmd("r GETQUOTAROOT INBOX")
        assert out == b"* QUOTAROOT INBOX\r\nr OK GETQUOTAROOT completed\r\n"
        # Before login, literal data is bounded however it is sent.
        d = Client(ctx)
        await d.start()
        out = await d.send(b"x APPEND INBOX {60000000+}\r\n" + b"a" * 100000)
        assert b"x NO" in out or b"x BAD" in out
        assert d.session.reader.pending_bytes < 65536
        # Deleting one's own selected mailbox says [CLOSED].
        await c.cmd("s CREATE Tmp")
        await c.cmd("t SELECT Tmp")
        out = await c.cmd("u DELETE Tmp")
        assert b"* OK [CLOSED]" in out and out.endswith(b"u OK DELETE completed\r\n")
        # A quota change reaches an open session: MOVE still works at the limit, APPEND not.
        await deliver(ctx, 2)
        ctx.directory.set_quota(USER, Quota(messages=2))
        await c.cmd("v SELECT INBOX")
        assert (await c.cmd("w MOVE 1 Trash")).endswith(b"w OK MOVE completed\r\n")
        out = await c.send(b"x APPEND INBOX {%d+}\r\n" % len(MSG) + MSG + b"\r\n")
        assert out.startswith(b"x NO [OVERQUOTA]")
        # CONDSTORE: .SILENT with UNCHANGEDSINCE still reports the new MODSEQ.
        out = await c.cmd("y STORE 1 (UNCHANGEDSINCE 999999) +FLAGS.SILENT (\\Seen)")
        # RFC 7162 3.2.4: and from now on every untagged FETCH has UID and MODSEQ.
        assert re.search(rb"\* 1 FETCH \(UID \d+ MODSEQ \(\d+\)\)", out), out

    run(go())


def test_ancestors_are_whole_components() -> None:
    from letterbox.imap.mailboxes import ancestors

    assert ancestors(["Work/2024/Q1", "Workshop", "INBOX", "a/b"]) == {"Work", "Work/2024", "a"}


def test_id_before_login_at_rfc2971_maxima(ctx) -> None:  # type: ignore[no-untyped-def]
    """RFC 2971 3.3: up to 30 pairs, names of 30 octets and values of 1,024 (about 32 KB)."""
    async def go() -> None:
        c = Client(ctx)
        await c.start()
        pairs = " ".join(f'"{"n" * 28}{i:02d}" "{"v" * 1024}"' for i in range(30))
        out = await c.cmd(f"a ID ({pairs})")
        assert out.endswith(b"a OK ID completed\r\n"), out[-200:]
        assert (await c.cmd("b NOOP")).endswith(b"b OK NOOP completed\r\n")

    run(go())
