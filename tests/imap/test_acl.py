"""ACL (RFC 4314) and LIST-MYRIGHTS (RFC 8440): the RFCs' examples, the right each command
needs, and a third account without rights that must not learn a mailbox exists."""

from __future__ import annotations

import asyncio
import imaplib
import re
from pathlib import Path

import pytest

from letterbox.service.context import Context
from tests.conftest import ServerProcess

from .imaputil import Client, add_user, make_context

FRED, DAVID, EVE = "fred@example.com", "david@example.com", "eve@example.com"
TEAM = f"Shared/{FRED}/Team"
MSG = b"From: a@example.org\r\nSubject: report\r\n\r\nquarterly numbers\r\n"


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    c = make_context(tmp_path)
    for user in (FRED, DAVID, EVE, "byron@example.com", "chris@example.com", "john@example.com"):
        add_user(c, user)
    return c


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def login(ctx: Context, user: str) -> Client:
    c = Client(ctx)
    await c.login(user)
    return c


async def team(ctx: Context, rights: str, *flags: tuple[str, ...], who: str = DAVID) -> None:
    """Fred's mailbox Team with a message per *flags*, and *who* given *rights* on it."""
    acc = await ctx.store.account(FRED)
    await acc.create_mailbox("Team")
    for f in flags or ((),):
        await acc.append("Team", MSG, list(f))
    if rights:
        await acc.set_acl("Team", who, rights)


def tagged(out: bytes, tag: str) -> bytes:
    m = re.search(rb"(?m)^" + re.escape(tag.encode()) + rb" [^\r\n]*", out)
    assert m is not None, out
    return m.group()


# --- the RFC's examples --------------------------------------------------------------------


def test_obsolete_rights_examples_rfc4314_2_1_1(ctx: Context) -> None:
    async def go() -> None:
        c = await login(ctx, FRED)
        await c.cmd("x CREATE INBOX/Drafts")
        assert tagged(await c.cmd(f"A001 SeTacl INBOX/Drafts {DAVID} lrswida"), "A001") == b"A001 OK SETACL completed"
        out = await c.cmd("A002 getacl INBOX/Drafts")
        # "d" expands to "et"; both are shown, and so is the owner, who has every right.
        assert out.startswith(f"* ACL INBOX/Drafts {FRED} lrswipkxteacd {DAVID} lrswitead\r\n".encode()), out
        assert b"A001 OK" in await c.cmd("A001 Setacl INBOX/Drafts byron@example.com lrswikda")
        out = await c.cmd("A002 getAcl INBOX/Drafts")
        assert b" byron@example.com lrswikteacd " in out, out  # "k" given: "c" shown

    run(go())


def test_setacl_deleteacl_examples_rfc4314_3(ctx: Context) -> None:
    async def go() -> None:
        c = await login(ctx, FRED)
        await c.cmd("x CREATE INBOX/Drafts")
        await c.cmd("y SETACL INBOX/Drafts chris@example.com lrswi")
        assert b"chris@example.com lrswi\r\n" in await c.cmd("A001 GETACL INBOX/Drafts")
        assert b"A002 OK" in await c.cmd("A002 SETACL INBOX/Drafts chris@example.com +cda")
        assert b"chris@example.com lrswikxteacd\r\n" in await c.cmd("A003 GETACL INBOX/Drafts")
        out = await c.cmd("A035 SETACL INBOX/Drafts john@example.com lrQswicda")
        assert out == b"A035 BAD Uppercase rights are not allowed\r\n"
        out = await c.cmd("A036 SETACL INBOX/Drafts john@example.com lrqswicda")
        assert out == b"A036 BAD The q right is not supported\r\n"
        assert b"A037 OK" in await c.cmd("A037 SETACL INBOX/Drafts chris@example.com -xd")
        assert b"chris@example.com lrswikac\r\n" in await c.cmd("A038 GETACL INBOX/Drafts")
        assert b"B002 OK" in await c.cmd("B002 DeleteAcl INBOX/Drafts chris@example.com")
        assert await c.cmd("B003 GETACL INBOX/Drafts") == f"* ACL INBOX/Drafts {FRED} lrswipkxteacd\r\nB003 OK GETACL completed\r\n".encode()

    run(go())


def test_listrights_and_myrights_rfc4314_3_4_3_5(ctx: Context) -> None:
    async def go() -> None:
        c = await login(ctx, FRED)
        # The identifier comes back as the client wrote it; nothing is tied together.
        out = await c.cmd("a001 LISTRIGHTS INBOX Smith@Example.COM")
        assert out.startswith(b'* LISTRIGHTS INBOX Smith@Example.COM "" l r s w i p k x t e a c d\r\n'), out
        out = await c.cmd("a002 listrights INBOX anyone")
        assert out.startswith(b'* LISTRIGHTS INBOX anyone "" l r s w i p k x t e a c d\r\n'), out
        out = await c.cmd(f"a003 LISTRIGHTS INBOX {FRED}")
        assert out.startswith(f"* LISTRIGHTS INBOX {FRED} lrswipkxteacd\r\n".encode()), out  # always all
        assert (await c.cmd("A003 MYRIGHTS INBOX")).startswith(b"* MYRIGHTS INBOX lrswipkxteacd\r\n")
        assert tagged(await c.cmd("A004 MYRIGHTS Nowhere"), "A004").startswith(b"A004 NO [NONEXISTENT]")

    run(go())


def test_copy_keeps_only_the_flags_the_rights_allow_rfc4314_4(ctx: Context) -> None:
    async def go() -> None:
        acc = await ctx.store.account(FRED)
        await acc.create_mailbox("TargetMailbox")
        await acc.set_acl("TargetMailbox", DAVID, "rwis")
        mine = await ctx.store.account(DAVID)
        for flags in (["\\Draft", "\\Deleted"], ["\\Answered"], ["$Forwarded", "\\Seen"]):
            await mine.append("INBOX", MSG, flags)
        c = await login(ctx, DAVID)
        target = f"Shared/{FRED}/TargetMailbox"
        assert (await c.cmd(f"A003 MYRIGHTS {target}")).startswith(f"* MYRIGHTS {target} rswi\r\n".encode())
        await c.cmd("s SELECT INBOX")
        assert b"A005 OK" in await c.cmd(f"A005 COPY 1:3 {target}")
        await c.cmd(f"A006 SELECT {target}")
        out = await c.cmd("A007 FETCH 1:3 (FLAGS)")
        # \Deleted was lost on COPY: no "t" right in the target.
        assert b"* 1 FETCH (FLAGS (\\Draft \\Recent))" in out, out
        assert b"* 2 FETCH (FLAGS (\\Answered \\Recent))" in out
        assert b"* 3 FETCH (FLAGS ($Forwarded \\Seen \\Recent))" in out
        # With "rsti" instead, \Answered, $Forwarded and \Draft are lost.
        await acc.set_acl("TargetMailbox", DAVID, "rsti")
        await c.cmd("s SELECT INBOX")
        assert b"A005 OK" in await c.cmd(f"A005 COPY 1:3 {target}")
        await c.cmd(f"A006 SELECT {target}")
        out = await c.cmd("A007 FETCH 4:6 (FLAGS)")
        assert b"* 4 FETCH (FLAGS (\\Deleted \\Recent))" in out, out
        assert b"* 5 FETCH (FLAGS (\\Recent))" in out
        assert b"* 6 FETCH (FLAGS (\\Seen \\Recent))" in out

    run(go())


def test_flags_and_permanentflags_follow_the_rights_rfc4314_5_1_1(ctx: Context) -> None:
    async def go() -> None:
        await team(ctx, "lrwis")
        c = await login(ctx, DAVID)
        # Pipelined: SELECT and MYRIGHTS, as the RFC shows.
        out = await c.send(f"A142 SELECT {TEAM}\r\nA143 MYRIGHTS {TEAM}\r\n".encode())
        assert b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Seen \\Draft \\*)]" in out, out
        assert b"A142 OK [READ-WRITE]" in out
        assert f"* MYRIGHTS {TEAM} lrswi\r\nA143 OK".encode() in out

    run(go())


@pytest.mark.parametrize(
    ("rights", "code", "permanent"),
    [
        ("lrs", "READ-ONLY", b"(\\Seen)"),  # example 1: \Seen is the user's own, not shared
        ("rit", "READ-WRITE", b"(\\Deleted)"),  # example 2
        ("rset", "READ-WRITE", b"(\\Deleted \\Seen)"),  # example 3
        ("lr", "READ-ONLY", b"()"),
    ],
)
def test_read_only_and_read_write_rfc4314_5_2(ctx: Context, rights: str, code: str, permanent: bytes) -> None:
    async def go() -> None:
        await team(ctx, rights)
        c = await login(ctx, DAVID)
        out = await c.cmd(f"s SELECT {TEAM}")
        assert tagged(out, "s") == f"s OK [{code}] SELECT completed".encode(), out
        assert b"[PERMANENTFLAGS " + permanent + b"]" in out, out

    run(go())


# --- which right each command needs ------------------------------------------------------


def test_select_status_and_listing_need_r_and_l(ctx: Context) -> None:
    async def go() -> None:
        await team(ctx, "l")
        c = await login(ctx, DAVID)
        assert tagged(await c.cmd(f"s SELECT {TEAM}"), "s").startswith(b"s NO [NOPERM]")
        assert tagged(await c.cmd(f"e EXAMINE {TEAM}"), "e").startswith(b"e NO [NOPERM]")
        assert tagged(await c.cmd(f"t STATUS {TEAM} (MESSAGES)"), "t").startswith(b"t NO [NOPERM]")
        # Looked up but not readable: \Noselect, and no STATUS (RFC 9051 6.3.9).
        out = await c.cmd(f'l LIST "" {TEAM} RETURN (STATUS (MESSAGES) MYRIGHTS)')
        assert out == (
            f'* LIST (\\Noselect \\HasNoChildren) "/" {TEAM}\r\n* MYRIGHTS {TEAM} l\r\nl OK LIST completed\r\n'
        ).encode()
        await (await ctx.store.account(FRED)).set_acl("Team", DAVID, "lr")
        out = await c.cmd(f'l LIST "" {TEAM} RETURN (STATUS (MESSAGES UNSEEN))')
        assert f'* LIST (\\HasNoChildren) "/" {TEAM}\r\n* STATUS {TEAM} (MESSAGES 1 UNSEEN 1)\r\n'.encode() in out
        assert b"s OK [READ-ONLY]" in await c.cmd(f"s SELECT {TEAM}")
        # Read without "s": a body fetch sets no \Seen; STORE is refused read-only.
        out = await c.cmd("f FETCH 1 (BODY[] FLAGS)")
        assert b"\\Seen" not in out and b"f OK" in out
        assert tagged(await c.cmd("g STORE 1 +FLAGS (\\Seen)"), "g").startswith(b"g NO [READ-ONLY]")
        assert tagged(await c.cmd("h EXPUNGE"), "h").startswith(b"h NO [READ-ONLY]")

    run(go())


def test_store_needs_s_w_or_t_for_each_flag(ctx: Context) -> None:
    async def go() -> None:
        await team(ctx, "lrs", (), ())
        c = await login(ctx, DAVID)
        await c.cmd(f"s SELECT {TEAM}")
        # Only flags the user may not change: NO; some of them: those, and OK.
        assert tagged(await c.cmd("a STORE 1 +FLAGS (\\Flagged)"), "a").startswith(b"a NO [NOPERM]")
        assert tagged(await c.cmd("b STORE 1 +FLAGS (\\Deleted)"), "b").startswith(b"b NO [NOPERM]")
        out = await c.cmd("c STORE 1 +FLAGS (\\Seen \\Flagged)")
        assert b"* 1 FETCH (FLAGS (\\Seen \\Recent))" in out and b"c OK" in out, out
        # A body fetch with "s" sets \Seen.
        assert b"\\Seen" in await c.cmd("d FETCH 2 BODY[]")
        owner = await ctx.store.account(FRED)
        await owner.set_acl("Team", DAVID, "lrswt")
        out = await c.cmd("e STORE 1 FLAGS (\\Flagged \\Deleted)")
        assert b"* 1 FETCH (FLAGS (\\Deleted \\Flagged \\Recent))" in out, out
        # "t" without "e": \Deleted may be set, the mailbox not expunged; CLOSE says OK.
        assert tagged(await c.cmd("f EXPUNGE"), "f").startswith(b"f NO [NOPERM]")
        assert await c.cmd("g CLOSE") == b"g OK CLOSE completed\r\n"
        assert (await owner.status("Team")).messages == 2
        await owner.set_acl("Team", DAVID, "lrte")
        await c.cmd(f"s SELECT {TEAM}")
        assert b"* 1 EXPUNGE" in await c.cmd("h EXPUNGE")
        assert (await owner.status("Team")).messages == 1

    run(go())


def test_append_copy_and_move_need_i_and_te(ctx: Context) -> None:
    async def go() -> None:
        await team(ctx, "lr", ())
        owner = await ctx.store.account(FRED)
        c = await login(ctx, DAVID)
        out = await c.cmd(f"a APPEND {TEAM} (\\Seen) {{{len(MSG)}+}}\r\n".encode() + MSG)
        assert tagged(out, "a").startswith(b"a NO [NOPERM]"), out
        await owner.set_acl("Team", DAVID, "lri")
        # Only the flags the rights allow are stored; the message is stored all the same.
        out = await c.cmd(f"b APPEND {TEAM} (\\Seen \\Flagged \\Deleted) {{{len(MSG)}+}}\r\n".encode() + MSG)
        assert tagged(out, "b").startswith(b"b OK [APPENDUID "), out
        team_box = await owner.get_mailbox("Team")
        assert [r.flags for r in await owner.fetch(team_box.id, [2], ["flags"])] == [frozenset()]
        # Into one's own mailbox from a shared one: a copy into another account.
        await c.cmd(f"s SELECT {TEAM}")
        assert tagged(await c.cmd("c COPY 1 INBOX"), "c").startswith(b"c OK [COPYUID ")
        assert (await (await ctx.store.account(DAVID)).status("INBOX")).messages == 1
        # MOVE out needs "t" and "e" here too (RFC 6851 4.2).
        assert tagged(await c.cmd("d MOVE 1 INBOX"), "d").startswith(b"d NO [NOPERM]")
        await owner.set_acl("Team", DAVID, "lrite")
        await c.cmd(f"s SELECT {TEAM}")
        out = await c.cmd("e MOVE 1 INBOX")
        assert b"* OK [COPYUID " in out and b"* 1 EXPUNGE" in out and b"e OK" in out, out
        assert (await owner.status("Team")).messages == 1
        # Into a mailbox the user may not insert into: NO; one that does not exist: TRYCREATE.
        assert tagged(await c.cmd(f"f COPY 1 Shared/{FRED}/INBOX"), "f").startswith(b"f NO [TRYCREATE]")
        await owner.set_acl("INBOX", DAVID, "lr")
        assert tagged(await c.cmd(f"g COPY 1 Shared/{FRED}/INBOX"), "g").startswith(b"g NO [NOPERM]")

    run(go())


def test_create_delete_rename_need_k_and_x(ctx: Context) -> None:
    async def go() -> None:
        await team(ctx, "lr")
        owner = await ctx.store.account(FRED)
        c = await login(ctx, DAVID)
        assert tagged(await c.cmd(f"a CREATE {TEAM}/2025"), "a").startswith(b"a NO [NOPERM]")
        assert tagged(await c.cmd(f"b DELETE {TEAM}"), "b").startswith(b"b NO [NOPERM]")
        await owner.set_acl("Team", DAVID, "lrk")
        assert tagged(await c.cmd(f"c CREATE {TEAM}/2025/Q1"), "c").startswith(b"c OK [MAILBOXID")
        # What a user makes in a shared mailbox inherits its ACL: the user can use it.
        assert await owner.get_acl("Team/2025/Q1") == {DAVID: "lrk"}
        assert b"* LIST (\\HasNoChildren) " in await c.cmd(f'l LIST "" {TEAM}/2025/Q1')
        assert tagged(await c.cmd(f"d RENAME {TEAM}/2025/Q1 {TEAM}/2025/Q2"), "d").startswith(b"d NO [NOPERM]")
        await owner.set_acl("Team/2025/Q1", DAVID, "lrx")
        assert b"e OK" in await c.cmd(f"e RENAME {TEAM}/2025/Q1 {TEAM}/2025/Q2")
        # Not into another account, not to the top of the owner's (no parent to hold "k").
        assert tagged(await c.cmd(f"f RENAME {TEAM}/2025/Q2 Mine"), "f").startswith(b"f NO [CANNOT]")
        await owner.set_acl("Team/2025/Q2", DAVID, "lrx")
        assert tagged(await c.cmd(f"g RENAME {TEAM}/2025/Q2 Shared/{FRED}/Top"), "g").startswith(b"g NO [NOPERM]")
        assert b"h OK" in await c.cmd(f"h DELETE {TEAM}/2025/Q2")
        assert "Team/2025/Q2" not in {m.name for m in await owner.list_mailboxes()}
        assert tagged(await c.cmd(f"i CREATE Shared/{FRED}"), "i").startswith(b"i NO [NOPERM]")
        assert tagged(await c.cmd("j CREATE Shared/x"), "j").startswith(b"j NO [NOPERM]")

    run(go())


def test_acl_commands_need_a(ctx: Context) -> None:
    async def go() -> None:
        await team(ctx, "lr")
        owner = await ctx.store.account(FRED)
        c = await login(ctx, DAVID)
        for line in (f"GETACL {TEAM}", f"SETACL {TEAM} {EVE} lr", f"DELETEACL {TEAM} {EVE}", f"LISTRIGHTS {TEAM} {EVE}"):
            assert tagged(await c.cmd("a " + line), "a").startswith(b"a NO [NOPERM]"), line
        assert (await c.cmd(f"b MYRIGHTS {TEAM}")).startswith(f"* MYRIGHTS {TEAM} lr\r\n".encode())
        await owner.set_acl("Team", DAVID, "lra")
        assert b"c OK" in await c.cmd(f"c SETACL {TEAM} {EVE} lr")
        assert await owner.get_acl("Team") == {DAVID: "lra", EVE: "lr"}
        out = await c.cmd(f"d GETACL {TEAM}")
        assert out.startswith(f"* ACL {TEAM} {FRED} lrswipkxteacd {DAVID} lra {EVE} lr\r\n".encode()), out
        assert b"e OK" in await c.cmd(f"e DELETEACL {TEAM} {EVE}")
        assert await owner.get_acl("Team") == {DAVID: "lra"}

    run(go())


def test_deleting_a_mailbox_deletes_its_acl_rfc4314_4(ctx: Context) -> None:
    async def go() -> None:
        await team(ctx, "lr")
        c = await login(ctx, FRED)
        assert b"a OK" in await c.cmd("a DELETE Team")
        await c.cmd("b CREATE Team")
        assert await c.cmd("c GETACL Team") == f"* ACL Team {FRED} lrswipkxteacd\r\nc OK GETACL completed\r\n".encode()
        d = await login(ctx, DAVID)
        assert tagged(await d.cmd(f"d SELECT {TEAM}"), "d").startswith(b"d NO [NONEXISTENT]")

    run(go())


def test_identifiers(ctx: Context) -> None:
    async def go() -> None:
        c = await login(ctx, FRED)
        assert tagged(await c.cmd(f"a SETACL INBOX -{DAVID} w"), "a") == b"a NO [CANNOT] Negative rights are not supported"
        assert tagged(await c.cmd(f"b SETACL INBOX {FRED} lr"), "b").startswith(b"b NO [CANNOT] The owner")
        assert tagged(await c.cmd(f"b DELETEACL INBOX {FRED}"), "b").startswith(b"b NO [CANNOT] The owner")
        assert tagged(await c.cmd("c SETACL INBOX nobody@example.com lr"), "c").startswith(b"c NO There is no account")
        assert tagged(await c.cmd("d SETACL INBOX not-an-address lr"), "d").startswith(b"d BAD")
        assert tagged(await c.cmd('e SETACL INBOX "" lr'), "e") == b"e BAD Empty identifier"
        assert b"f OK" in await c.cmd(f"f SETACL INBOX {DAVID.upper()} lr")
        assert b"g OK" in await c.cmd("g SETACL INBOX ANYONE l")
        assert await (await ctx.store.account(FRED)).get_acl("INBOX") == {DAVID: "lr", "anyone": "l"}
        assert tagged(await c.cmd("h SETACL Nowhere anyone l"), "h").startswith(b"h NO [NONEXISTENT]")
        assert tagged(await c.cmd("i SETACL INBOX anyone"), "i").startswith(b"i BAD")  # syntax

    run(go())


def test_anyone_gives_every_user_the_rights(ctx: Context) -> None:
    async def go() -> None:
        await team(ctx, "lr", who="anyone")
        await (await ctx.store.account(FRED)).set_acl("Team", DAVID, "s")
        c = await login(ctx, DAVID)
        assert (await c.cmd(f"a MYRIGHTS {TEAM}")).startswith(f"* MYRIGHTS {TEAM} lrs\r\n".encode())
        e = await login(ctx, EVE)
        assert (await e.cmd(f"a MYRIGHTS {TEAM}")).startswith(f"* MYRIGHTS {TEAM} lr\r\n".encode())

    run(go())


# --- a user without rights learns nothing -------------------------------------------------

NO_RIGHTS_COMMANDS = [
    "SELECT {m}",
    "EXAMINE {m}",
    "STATUS {m} (MESSAGES UNSEEN)",
    "GETACL {m}",
    "SETACL {m} " + EVE + " lr",
    "DELETEACL {m} " + DAVID,
    "LISTRIGHTS {m} anyone",
    "MYRIGHTS {m}",
    "DELETE {m}",
    "RENAME {m} {m}2",
    "CREATE {m}/child",
    "GETQUOTAROOT {m}",
    'LIST "" {m}',
    'LIST "" {m}/*',
    'LIST "" {m} RETURN (MYRIGHTS STATUS (MESSAGES))',
    "LSUB \"\" {m}",
    "APPEND {m} {{5+}}\r\nHi!\r\n",
    "COPY 1 {m}",
    "MOVE 1 {m}",
]


def test_a_user_without_rights_cannot_tell_a_mailbox_exists(ctx: Context) -> None:
    async def go() -> None:
        # Team exists and is shared with David, not with Eve; Gone never existed; nobody@
        # is not an account.
        await team(ctx, "lrswipkxtea", ())
        await (await ctx.store.account(EVE)).append("INBOX", MSG)
        e = await login(ctx, EVE)
        await e.cmd("s SELECT INBOX")
        names = [TEAM, f"Shared/{FRED}/Gone", "Shared/nobody@example.com/Team", f"Shared/{FRED}/INBOX"]
        for template in NO_RIGHTS_COMMANDS:
            answers = set()
            for name in names:
                out = await e.cmd("t " + template.format(m=name))
                if "SELECT" in template or "EXAMINE" in template:
                    await e.cmd("s SELECT INBOX")
                answers.add(out.replace(name.encode(), b"NAME"))
            assert len(answers) == 1, (template, answers)
        out = await e.cmd('l LIST "" *')
        assert b"Shared" not in out and b"fred" not in out, out
        assert (await e.cmd('l LIST "" Shared/%')) == b"l OK LIST completed\r\n"

    run(go())


# --- capabilities and LIST-MYRIGHTS --------------------------------------------------------


def test_capabilities_after_login(ctx: Context) -> None:
    async def go() -> None:
        c = Client(ctx)
        greeting = await c.start()
        assert b" ACL" not in greeting and b"LIST-MYRIGHTS" not in greeting
        out = await c.cmd(f'l LOGIN "{FRED}" "pw"')
        assert b" ACL RIGHTS=texk LIST-MYRIGHTS " in out, out
        assert b" ACL RIGHTS=texk LIST-MYRIGHTS " in await c.cmd("c CAPABILITY")

    run(go())


def test_list_myrights_examples_rfc8440_4(ctx: Context) -> None:
    async def go() -> None:
        await team(ctx, "lrs")
        c = await login(ctx, FRED)
        await c.cmd("a CREATE foo/bar")
        await c.cmd("b SUBSCRIBE foo/bar")
        out = await c.cmd('A01 LIST "" % RETURN (MYRIGHTS)')
        # Each MYRIGHTS right after its LIST.
        assert b'* LIST (\\HasNoChildren) "/" INBOX\r\n* MYRIGHTS INBOX lrswipkxteacd\r\n' in out, out
        assert b'* LIST (\\HasChildren) "/" foo\r\n* MYRIGHTS foo lrswipkxteacd\r\n' in out
        out = await c.cmd('A02 LIST (SUBSCRIBED RECURSIVEMATCH) "" % RETURN (MYRIGHTS)')
        assert b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX\r\n* MYRIGHTS INBOX lrswipkxteacd\r\n' in out, out
        # foo only has matching children: no MYRIGHTS for it.
        assert b'* LIST (\\HasChildren) "/" foo ("CHILDINFO" ("SUBSCRIBED"))\r\nA02 OK' in out, out
        d = await login(ctx, DAVID)
        out = await d.cmd(f'A03 LIST "" Shared/{FRED}/% RETURN (MYRIGHTS)')
        assert out == f'* LIST (\\HasNoChildren) "/" {TEAM}\r\n* MYRIGHTS {TEAM} lrs\r\nA03 OK LIST completed\r\n'.encode()

    run(go())


# --- a real server, a real client ----------------------------------------------------------


def test_imaplib_getacl_setacl_myrights(server: ServerProcess) -> None:
    server.add_user(FRED, "pw")
    server.add_user(DAVID, "pw")
    fred = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    try:
        fred.login(FRED, "pw")
        assert fred.create("Team")[0] == "OK"
        assert fred.append("Team", "", None, MSG)[0] == "OK"
        typ, _ = fred.setacl("Team", DAVID, "lrsw")
        assert typ == "OK"
        typ, data = fred.getacl("Team")
        assert typ == "OK" and data == [f"Team {FRED} lrswipkxteacd {DAVID} lrsw".encode()]
        typ, data = fred.myrights("Team")
        assert data == [b"Team lrswipkxteacd"]
        typ, data = fred.namespace()
        assert data == [b'(("" "/")) (("Shared/" "/")) NIL']
    finally:
        fred.logout()
    david = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    try:
        david.login(DAVID, "pw")
        typ, data = david.myrights(TEAM)
        assert typ == "OK" and data == [f"{TEAM} lrsw".encode()]
        typ, data = david.select(TEAM)
        assert typ == "OK" and data == [b"1"]
        typ, data = david.store("1", "+FLAGS", "(\\Flagged \\Seen)")
        assert typ == "OK" and b"\\Flagged \\Seen" in data[0], data
        typ, data = david.getacl(TEAM)
        assert typ == "NO"
    finally:
        david.logout()
