"""Shared mailboxes for teams: info@ read by two staff through the Shared/ namespace
(RFC 2342), each with their own \\Seen (RFC 4314 4), the owner with the owner's; IDLE
in a shared mailbox hears of deliveries to the owner's account."""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
from pathlib import Path

import pytest

from letterbox.service.context import Context
from letterbox.store.api import Quota
from tests.conftest import ServerProcess

from .imaputil import Client, add_user, make_context

INFO, ANN, BOB, EVE = "info@example.com", "ann@example.com", "bob@example.com", "eve@example.com"
SHARED_INBOX = f"Shared/{INFO}/INBOX"
MSG = b"From: customer@example.org\r\nSubject: question %d\r\n\r\nHow much is it?\r\n"
STAFF = "lrswite"


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    c = make_context(tmp_path)
    for user in (INFO, ANN, BOB, EVE):
        add_user(c, user)
    return c


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def login(ctx: Context, user: str) -> Client:
    c = Client(ctx)
    await c.login(user)
    return c


async def team_inbox(ctx: Context, messages: int = 3) -> None:
    info = await ctx.store.account(INFO)
    for i in range(1, messages + 1):
        await info.append("INBOX", MSG % i)
    await info.set_acl("INBOX", ANN, STAFF)
    await info.set_acl("INBOX", BOB, STAFF)


def test_the_shared_namespace_lists_what_others_share(ctx: Context) -> None:
    async def go() -> None:
        await team_inbox(ctx)
        info = await ctx.store.account(INFO)
        await info.create_mailbox("Orders/2025")
        await info.set_acl("Orders/2025", ANN, "lr")  # its parent is not shared
        await info.create_mailbox("Private")
        a = await login(ctx, ANN)
        assert (await a.cmd("n NAMESPACE")).startswith(b'* NAMESPACE (("" "/")) (("Shared/" "/")) NIL\r\n')
        # RFC 2342 5: "%" after the prefix lists the users who share something.
        assert await a.cmd('a LIST "" Shared/%') == (
            f'* LIST (\\Noselect \\HasChildren) "/" Shared/{INFO}\r\na OK LIST completed\r\n'
        ).encode()
        out = await a.cmd(f'b LIST "" Shared/{INFO}/*')
        assert out == (
            f'* LIST (\\HasNoChildren) "/" Shared/{INFO}/INBOX\r\n'
            f'* LIST (\\Noselect \\HasChildren) "/" Shared/{INFO}/Orders\r\n'  # RFC 4314 4
            f'* LIST (\\HasNoChildren) "/" Shared/{INFO}/Orders/2025\r\n'
            "b OK LIST completed\r\n"
        ).encode()
        out = await a.cmd('c LIST "" *')
        assert b'* LIST (\\Noselect \\HasChildren) "/" Shared\r\n' in out and b"Private" not in out
        assert b'* LIST (\\HasNoChildren \\Sent) "/" Sent\r\n' in out  # Ann's own, marked
        assert b"Shared/info@example.com/Sent" not in out
        # Bob was given the INBOX only; Eve nothing at all.
        out = await (await login(ctx, BOB)).cmd('d LIST "" Shared/*')
        assert b"Orders" not in out and f"Shared/{INFO}/INBOX".encode() in out
        assert b"Shared" not in await (await login(ctx, EVE)).cmd('e LIST "" *')
        # Subscriptions are the user's own names.
        assert b"f OK" in await a.cmd(f"f SUBSCRIBE {SHARED_INBOX}")
        assert await a.cmd(f'g LSUB "" Shared/{INFO}/%') == (
            f'* LSUB () "/" {SHARED_INBOX}\r\ng OK LSUB completed\r\n'
        ).encode()
        out = await a.cmd('h LIST (SUBSCRIBED) "" Shared/*')
        assert f'* LIST (\\HasNoChildren \\Subscribed) "/" {SHARED_INBOX}\r\n'.encode() in out, out

    run(go())


def test_team_mailbox_read_by_two_staff_with_their_own_seen(ctx: Context) -> None:
    async def go() -> None:
        await team_inbox(ctx)
        a, b = await login(ctx, ANN), await login(ctx, BOB)
        assert b"[UNSEEN 1]" in await a.cmd(f"s SELECT {SHARED_INBOX}")
        await b.cmd(f"s SELECT {SHARED_INBOX}")
        # Ann reads message 1 and marks 2 read; Bob reads 3.
        assert b"\\Seen" in await a.cmd("f FETCH 1 BODY[]")
        await a.cmd("g STORE 2 +FLAGS.SILENT (\\Seen)")
        await b.cmd("f FETCH 3 (BODY[TEXT])")
        out = await a.cmd("h FETCH 1:* (FLAGS)")
        assert b"* 1 FETCH (FLAGS (\\Seen" in out and b"* 2 FETCH (FLAGS (\\Seen" in out
        assert b"* 3 FETCH (FLAGS (\\Recent))" in out or b"* 3 FETCH (FLAGS ())" in out, out
        assert (await a.cmd("i SEARCH UNSEEN")).startswith(b"* SEARCH 3\r\n")
        assert (await b.cmd("i SEARCH UNSEEN")).startswith(b"* SEARCH 1 2\r\n")
        assert (await b.cmd("j SEARCH SEEN")).startswith(b"* SEARCH 3\r\n")
        # Other flags are the team's: Bob flags 1, Ann sees it.
        await b.cmd("k STORE 1 +FLAGS (\\Flagged)")
        assert b"\\Flagged" in await a.cmd("l FETCH 1 FLAGS")
        # STATUS counts each one's unseen; the owner's mail is still unread for the owner.
        assert b"(UNSEEN 1)" in await (await login(ctx, ANN)).cmd(f"m STATUS {SHARED_INBOX} (UNSEEN)")
        assert b"(UNSEEN 2)" in await (await login(ctx, BOB)).cmd(f"m STATUS {SHARED_INBOX} (UNSEEN)")
        owner = await login(ctx, INFO)
        assert b"(MESSAGES 3 UNSEEN 3)" in await owner.cmd("n STATUS INBOX (MESSAGES UNSEEN)")
        await owner.cmd("o SELECT INBOX")
        out = await owner.cmd("p FETCH 1:3 FLAGS")
        assert out.count(b"\\Seen") == 0 and b"\\Flagged" in out, out
        # The owner reads 3: the owner's \Seen; Ann still has 3 unread.
        await owner.cmd("q STORE 3 +FLAGS (\\Seen)")
        assert b"* SEARCH 3\r\n" in await a.cmd("r SEARCH UNSEEN")
        assert b"(UNSEEN 2)" in await owner.cmd("n STATUS INBOX (UNSEEN)")
        # SORT and THREAD work there too.
        assert b"* SORT 3 2 1\r\n" in await a.cmd("u SORT (REVERSE SUBJECT) UTF-8 ALL")
        assert b"* THREAD (1)(2)(3)\r\n" in await a.cmd("v THREAD ORDEREDSUBJECT UTF-8 ALL")
        # CONDSTORE: Ann's change of her own \Seen is a change with a MODSEQ.
        out = await a.cmd("s STORE 3 +FLAGS (\\Seen)")
        assert b"* 3 FETCH (FLAGS (\\Seen" in out
        out = await a.cmd("t FETCH 3 (FLAGS MODSEQ)")
        assert b"MODSEQ (" in out and b"\\Seen" in out

    run(go())


def test_idle_in_a_shared_mailbox_hears_deliveries_to_the_owner(ctx: Context) -> None:
    async def go() -> None:
        await team_inbox(ctx, 1)
        a = await login(ctx, ANN)
        await a.cmd(f"s SELECT {SHARED_INBOX}")
        assert await a.cmd("i IDLE") == b"+ idling\r\n"
        info = await ctx.store.account(INFO)
        await info.append("INBOX", MSG % 2)
        assert a.session.subscription is not None and a.session.subscription.pending()
        out = await a.changed()
        assert b"* 2 EXISTS\r\n" in out, out
        # Bob marks it read: Ann is told nothing changed for her (her \Seen is her own).
        b = await login(ctx, BOB)
        await b.cmd(f"s SELECT {SHARED_INBOX}")
        await b.cmd("f STORE 2 +FLAGS (\\Seen \\Answered)")
        out = await a.changed()
        assert b"* 2 FETCH (FLAGS (\\Answered" in out and b"\\Seen" not in out, out
        assert await a.send(b"DONE\r\n") == b"i OK IDLE terminated\r\n"

    run(go())


def test_copy_and_move_between_a_shared_mailbox_and_ones_own(ctx: Context) -> None:
    async def go() -> None:
        await team_inbox(ctx, 2)
        a = await login(ctx, ANN)
        await a.cmd(f"s SELECT {SHARED_INBOX}")
        await a.cmd("f STORE 1 +FLAGS (\\Seen $Urgent)")
        out = await a.cmd("c COPY 1:2 Archive")
        assert b"c OK [COPYUID " in out, out
        ann = await ctx.store.account(ANN)
        archive = await ann.get_mailbox("Archive")
        flags = {r.uid: sorted(r.flags) for r in await ann.fetch(archive.id, [1, 2], ["flags"])}
        assert flags == {1: ["$Urgent", "\\Seen"], 2: []}  # Ann's view of them, now hers
        # APPEND into the shared mailbox: Ann's \Seen is Ann's.
        out = await a.cmd(b"d APPEND " + SHARED_INBOX.encode() + b" (\\Seen) {5+}\r\nHi!\r\n")
        assert b"d OK [APPENDUID " in out
        info = await ctx.store.account(INFO)
        assert (await info.status("INBOX")).unseen == 3
        # MOVE into her own mailbox: gone from the team's.
        out = await a.cmd("m MOVE 2 Archive")
        assert b"* 2 EXPUNGE" in out and b"m OK" in out, out
        assert (await info.status("INBOX")).messages == 2
        # From her own mailbox into the team's.
        await a.cmd("s SELECT Archive")
        assert b"n OK [COPYUID " in await a.cmd(f"n COPY 1 {SHARED_INBOX}")
        assert (await info.status("INBOX")).messages == 3
        # Within the owner's account, from one shared mailbox to another.
        await info.create_mailbox("Done")
        await info.set_acl("Done", ANN, "lrswi")
        await a.cmd(f"s SELECT {SHARED_INBOX}")
        assert b"o OK [COPYUID " in await a.cmd(f"o COPY 1 Shared/{INFO}/Done")
        done = await info.get_mailbox("Done")
        assert await info.reader(ANN).uids_with_flag(done.id, "\\Seen") == [1]

    run(go())


def test_rights_taken_away_while_selected(ctx: Context) -> None:
    async def go() -> None:
        await team_inbox(ctx, 1)
        a = await login(ctx, ANN)
        await a.cmd(f"s SELECT {SHARED_INBOX}")
        info = await ctx.store.account(INFO)
        # Fewer rights: new PERMANENTFLAGS (RFC 4314 5.1.1), and STORE follows them.
        await info.set_acl("INBOX", ANN, "lrs")
        out = await a.cmd("n NOOP")
        assert b"* OK [PERMANENTFLAGS (\\Seen)]" in out, out
        assert b"f NO [NOPERM]" in await a.cmd("f STORE 1 +FLAGS (\\Flagged)")
        # No "r" any more: the session ends rather than go on serving the mailbox.
        await info.set_acl("INBOX", ANN, "")
        out = await a.cmd("g FETCH 1 FLAGS")
        assert out == b"* BYE Access to the selected mailbox was taken away\r\n", out

    run(go())


def test_quota_root_of_a_shared_mailbox(ctx: Context) -> None:
    async def go() -> None:
        await team_inbox(ctx, 1)
        a = await login(ctx, ANN)
        out = await a.cmd(f"q GETQUOTAROOT {SHARED_INBOX}")
        assert out == f"* QUOTAROOT {SHARED_INBOX}\r\nq OK GETQUOTAROOT completed\r\n".encode()

    run(go())


def test_a_personal_name_under_shared_is_not_ones_own(ctx: Context) -> None:
    async def go() -> None:
        c = await login(ctx, ANN)
        assert b"a NO [NOPERM]" in await c.cmd("a CREATE Shared/mine")
        assert b"b NO [CANNOT]" in await c.cmd("b RENAME Archive Shared/Archive")
        assert b"c NO [NONEXISTENT]" in await c.cmd(f"c SELECT Shared/{ANN}/INBOX")
        # One made before the namespace is not listed, and RENAME moves it out of the way.
        await (await ctx.store.account(ANN)).create_mailbox("Shared/Old")
        assert b"Shared" not in await c.cmd('d LIST "" *')
        assert b"e OK" in await c.cmd("e RENAME Shared/Old Old")
        assert b'"/" Old\r\n' in await c.cmd('f LIST "" *')

    run(go())


# --- a real server: two staff, IMAP IDLE, LMTP delivery, `user del` --------------------------


def _deliver(server: ServerProcess, to: str, subject: str) -> None:
    with smtplib.LMTP("127.0.0.1", server.port("lmtp")) as lmtp:
        lmtp.sendmail("customer@example.org", [to], f"Subject: {subject}\r\n\r\nhello\r\n".encode())


def test_two_staff_on_a_real_server(server: ServerProcess) -> None:
    for user in (INFO, ANN, BOB):
        server.add_user(user, "pw")
    _deliver(server, INFO, "first")
    server.cli("acl", "set", INFO, "INBOX", ANN, STAFF)
    server.cli("acl", "set", INFO, "INBOX", BOB, STAFF)
    ann = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    bob = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    try:
        ann.login(ANN, "pw")
        bob.login(BOB, "pw")
        assert ann.select(SHARED_INBOX) == ("OK", [b"1"])
        assert bob.select(SHARED_INBOX) == ("OK", [b"1"])
        typ, data = ann.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT)] FLAGS)")
        assert typ == "OK" and b"Subject: first" in data[0][1]
        assert ann.search(None, "UNSEEN") == ("OK", [b""])
        assert bob.search(None, "UNSEEN") == ("OK", [b"1"])
        # Bob idles in the team's INBOX; a delivery to info@ reaches him at once.
        tag = bob._new_tag().decode()  # type: ignore[attr-defined]
        bob.send(f"{tag} IDLE\r\n".encode())
        assert bob.readline().startswith(b"+")
        _deliver(server, INFO, "second")
        bob.sock.settimeout(10)
        assert bob.readline() == b"* 2 EXISTS\r\n"
        bob.send(b"DONE\r\n")
        while not (line := bob.readline()).startswith(tag.encode()):
            pass
        assert b"OK" in line
        # `user del` of a staff member takes them out of the ACL.
        server.cli("user", "del", BOB, "--yes")
        assert BOB not in server.cli("acl", "get", INFO, "INBOX").stdout
        ann.noop()
        assert ann.search(None, "UNSEEN") == ("OK", [b"2"])
    finally:
        ann.logout()
        try:
            bob.logout()
        except (imaplib.IMAP4.abort, OSError):
            pass  # ended by `user del`


def test_new_mail_in_a_shared_mailbox_counts_against_the_owner(ctx: Context) -> None:
    async def go() -> None:
        ctx.directory.set_quota(INFO, Quota(messages=3))
        await team_inbox(ctx, 2)
        ann = await ctx.store.account(ANN)
        for i in range(2):
            await ann.append("INBOX", MSG % (10 + i))
        a = await login(ctx, ANN)
        await a.cmd("s SELECT INBOX")
        # Two copies would pass info@'s quota: none is kept (RFC 9051 6.4.7).
        out = await a.cmd(f"c COPY 1:2 {SHARED_INBOX}")
        assert b"c NO [OVERQUOTA]" in out, out
        info = await ctx.store.account(INFO)
        assert (await info.status("INBOX")).messages == 2
        assert b"d OK [COPYUID " in await a.cmd(f"d COPY 1 {SHARED_INBOX}")
        out = await a.cmd(b"e APPEND " + SHARED_INBOX.encode() + b" {5+}\r\nHi!\r\n")
        assert b"e NO [OVERQUOTA]" in out, out
        # Ann's own quota is hers: unlimited.
        assert b"f OK" in await a.cmd(b"f APPEND INBOX {5+}\r\nHi!\r\n")
        out = await a.cmd(f'g LIST "" Shared/{INFO}/* RETURN (STATUS (MESSAGES UNSEEN))')
        assert f"* STATUS {SHARED_INBOX} (MESSAGES 3 UNSEEN 3)".encode() in out, out

    run(go())


def test_replace_in_a_shared_mailbox_needs_t_and_e_rfc8508_4_1(ctx: Context) -> None:
    async def go() -> None:
        await team_inbox(ctx, 1)
        info = await ctx.store.account(INFO)
        await info.set_acl("INBOX", ANN, "lrswi")
        a = await login(ctx, ANN)
        await a.cmd(f"s SELECT {SHARED_INBOX}")
        out = await a.cmd(f"r REPLACE 1 {SHARED_INBOX} {{5+}}\r\nHi!\r\n".encode())
        assert b"r NO [NOPERM]" in out and b"EXPUNGE" not in out, out
        await info.set_acl("INBOX", ANN, "lrswite")
        out = await a.cmd(f"r REPLACE 1 {SHARED_INBOX} {{5+}}\r\nHi!\r\n".encode())
        assert b"* OK [APPENDUID " in out and b"* 1 EXPUNGE" in out and b"r OK" in out, out
        assert (await info.status("INBOX")).messages == 1

    run(go())


# --- main's extensions in shared mailboxes --------------------------------------------


def _esearch_mailboxes(out: bytes) -> list[bytes]:
    return [line.split(b" MAILBOX ", 1)[1].split(b" UIDVALIDITY", 1)[0]
            for line in out.split(b"\r\n") if line.startswith(b"* ESEARCH ")]


def test_esearch_over_shared_mailboxes_needs_r_and_l_unless_named_rfc7377_2_2(ctx: Context) -> None:
    async def go() -> None:
        await team_inbox(ctx)
        info = await ctx.store.account(INFO)
        await info.create_mailbox("Orders")
        await info.append("Orders", MSG % 9)
        await info.set_acl("Orders", ANN, "r")  # readable, not listed
        await info.create_mailbox("Notes")
        await info.append("Notes", MSG % 8)
        await info.set_acl("Notes", ANN, "l")  # listed, not readable
        await info.create_mailbox("Private")
        await info.append("Private", MSG % 7)
        ann = await ctx.store.account(ANN)
        await ann.append("INBOX", MSG % 4)
        a = await login(ctx, ANN)
        # personal and inboxes are the user's own mailboxes (RFC 5465 6.2, 6.3).
        out = await a.cmd("a ESEARCH IN (personal) ALL")
        assert _esearch_mailboxes(out) == [b"INBOX"], out
        # subtree needs "l" as well as "r": INBOX only (Orders is not listed, Notes not readable).
        out = await a.cmd(f"b ESEARCH IN (subtree Shared/{INFO}) ALL")
        assert _esearch_mailboxes(out) == [SHARED_INBOX.encode()], out
        assert b"* ESEARCH (TAG \"b\" MAILBOX Shared/info@example.com/INBOX UIDVALIDITY " in out
        # Named by MAILBOXES, "r" is enough; the owner's address in any case; a mailbox the
        # user may not read, or that does not exist, is passed over without a word.
        out = await a.cmd(
            f"c ESEARCH IN (mailboxes (Shared/INFO@example.com/Orders Shared/{INFO}/Notes "
            f"Shared/{INFO}/Private Shared/{INFO}/Nowhere)) ALL"
        )
        assert _esearch_mailboxes(out) == [f"Shared/{INFO}/Orders".encode()] and b"c OK" in out, out
        # subscribed: the user's own subscriptions, which may name shared mailboxes.
        await a.cmd(f"d SUBSCRIBE {SHARED_INBOX}")
        await a.cmd(f"d SUBSCRIBE Shared/{INFO}/Orders")
        out = await a.cmd("e ESEARCH IN (subscribed) ALL")
        assert _esearch_mailboxes(out) == [b"INBOX", SHARED_INBOX.encode()], out
        # Searches see the user's own \Seen.
        await (await login(ctx, BOB)).cmd(f"s SELECT {SHARED_INBOX}")
        await a.cmd(f"f SELECT {SHARED_INBOX}")
        await a.cmd("g STORE 1 +FLAGS (\\Seen)")
        out = await a.cmd("h ESEARCH IN (selected personal) UNSEEN")
        assert _esearch_mailboxes(out) == [b"INBOX", SHARED_INBOX.encode()], out
        line = next(x for x in out.split(b"\r\n") if SHARED_INBOX.encode() in x)
        assert line.endswith(b" UID ALL 2:3"), out
        out = await (await login(ctx, BOB)).cmd(f"i ESEARCH IN (mailboxes {SHARED_INBOX}) UNSEEN")
        assert out.split(b"\r\n")[0].endswith(b" UID ALL 1:3"), out
        # Taking "r" away takes the mailbox out of the search.
        await info.set_acl("Orders", ANN, "")
        out = await a.cmd(f"j ESEARCH IN (mailboxes Shared/{INFO}/Orders) ALL")
        assert out == b"j OK ESEARCH completed\r\n", out

    run(go())


def test_metadata_on_a_shared_mailbox_rfc5464_3_3(ctx: Context) -> None:
    async def go() -> None:
        await team_inbox(ctx)
        info = await ctx.store.account(INFO)
        await info.set_metadata("INBOX", [("/shared/comment", b"Team inbox"), ("/private/comment", b"owner's own")])
        await info.create_mailbox("Orders")
        await info.set_acl("Orders", ANN, "r")
        await info.create_mailbox("Notes")
        await info.set_acl("Notes", ANN, "l")
        a, b = await login(ctx, ANN), await login(ctx, BOB)
        # /shared is the mailbox's; /private each user's own: none yet for Ann.
        out = await a.cmd(f"a GETMETADATA {SHARED_INBOX} (/shared/comment /private/comment)")
        assert out == (
            f'* METADATA {SHARED_INBOX} (/shared/comment "Team inbox")\r\na OK GETMETADATA completed\r\n'
        ).encode()
        assert b"b OK" in await a.cmd(f'b SETMETADATA {SHARED_INBOX} (/private/comment "Ann\'s note")')
        out = await a.cmd(f"c GETMETADATA (DEPTH infinity) {SHARED_INBOX} /private")
        assert b'(/private/comment "Ann\'s note")' in out, out
        assert b"Ann" not in await b.cmd(f"d GETMETADATA {SHARED_INBOX} /private/comment")
        assert await info.get_metadata("INBOX", ["/private/comment"]) == [("/private/comment", b"owner's own")]
        # A /shared entry set by a staff member is the owner's to read too.
        assert b"e OK" in await b.cmd(f'e SETMETADATA {SHARED_INBOX} (/shared/comment "Answer within a day")')
        assert await info.get_metadata("INBOX", ["/shared/comment"]) == [("/shared/comment", b"Answer within a day")]
        # 3.3: "l" and one of r s w i p, or NO; a mailbox the user may not see does not exist.
        for cmd in (f"f GETMETADATA Shared/{INFO}/Orders /shared/comment",
                    f"f SETMETADATA Shared/{INFO}/Notes (/shared/comment \"x\")"):
            out = await a.cmd(cmd)
            assert out.startswith(b"f NO [NOPERM] "), out
        eve = await login(ctx, EVE)
        out = await eve.cmd(f"g GETMETADATA {SHARED_INBOX} /shared/comment")
        assert out.startswith(b"g NO [NONEXISTENT] "), out
        out = await eve.cmd(f'g SETMETADATA {SHARED_INBOX} (/shared/comment "mine now")')
        assert out.startswith(b"g NO [NONEXISTENT] "), out
        # The server's entries stay each account's own.
        await a.cmd('h SETMETADATA "" (/shared/comment "Ann\'s server note")')
        assert b"Ann" not in await b.cmd('i GETMETADATA "" /shared/comment')

    run(go())


def test_catenate_urls_into_shared_mailboxes_need_r(ctx: Context) -> None:
    async def go() -> None:
        await team_inbox(ctx, 1)
        info = await ctx.store.account(INFO)
        await info.create_mailbox("Notes")
        await info.append("Notes", MSG % 5)
        await info.set_acl("Notes", ANN, "l")
        await info.create_mailbox("Private")
        await info.append("Private", MSG % 6)
        a = await login(ctx, ANN)
        url = f"/Shared/{INFO}/INBOX/;UID=1/;SECTION=TEXT"
        out = await a.cmd(f'a APPEND Drafts CATENATE (TEXT {{11+}}\r\nSubject: \r\n URL "{url}")'.encode())
        assert b"a OK [APPENDUID " in out, out
        ann = await ctx.store.account(ANN)
        drafts = await ann.get_mailbox("Drafts")
        assert await ann.read_message(drafts.id, 1) == b"Subject: \r\nHow much is it?\r\n"
        # Listed but not readable, or not shared at all: a bad URL, nothing read.
        for name in ("Notes", "Private", "Nowhere"):
            bad = f"/Shared/{INFO}/{name}/;UID=1"
            out = await a.cmd(f'b APPEND Drafts CATENATE (URL "{bad}")'.encode())
            assert out.startswith(f"b NO [BADURL {bad}] ".encode()), out
        # Relative to a selected shared mailbox: its owner's messages.
        await a.cmd(f"s SELECT {SHARED_INBOX}")
        out = await a.cmd(b'c APPEND Drafts CATENATE (URL ";UID=1/;SECTION=HEADER")')
        assert b"c OK [APPENDUID " in out, out
        assert (await ann.read_message(drafts.id, 2)).startswith(b"From: customer@example.org\r\n")
        # Reading for CATENATE sets no \Seen (RFC 4469 3), the reader's own neither.
        assert b"(UNSEEN 1)" in await a.cmd(f"d STATUS {SHARED_INBOX} (UNSEEN)")

    run(go())


def test_preview_savedate_and_updating_searches_in_a_shared_mailbox(ctx: Context) -> None:
    async def go() -> None:
        await team_inbox(ctx, 2)
        a, b = await login(ctx, ANN), await login(ctx, BOB)
        await a.cmd(f"s SELECT {SHARED_INBOX}")
        await b.cmd(f"s SELECT {SHARED_INBOX}")
        out = await a.cmd("f FETCH 1 (PREVIEW SAVEDATE)")
        assert b'PREVIEW "How much is it?"' in out and b"SAVEDATE \"" in out, out
        assert b"* SEARCH 1 2\r\n" in await a.cmd("g SEARCH SAVEDSINCE 1-Jan-2000")
        # An updating search follows Ann's own \Seen, not Bob's, and the owner's deliveries.
        out = await a.cmd("h SEARCH RETURN (UPDATE ALL) UNSEEN")
        assert b'* ESEARCH (TAG "h") ALL 1:2' in out, out
        await b.cmd("i STORE 1 +FLAGS (\\Seen)")
        assert b"REMOVEFROM" not in await a.cmd("j NOOP")
        out = await a.cmd("k STORE 2 +FLAGS (\\Seen)")
        assert b'* ESEARCH (TAG "h") REMOVEFROM (0 2)' in out, out
        info = await ctx.store.account(INFO)
        await info.append("INBOX", MSG % 3)
        out = await a.cmd("l NOOP")
        assert b"* 3 EXISTS" in out and b'* ESEARCH (TAG "h") ADDTO (0 3)' in out, out
        # UIDONLY works there as anywhere.
        assert b"UIDONLY" in await b.cmd("m ENABLE UIDONLY")
        out = await b.cmd("n UID FETCH 3 (FLAGS)")
        assert b"* 3 UIDFETCH (FLAGS (" in out, out

    run(go())
