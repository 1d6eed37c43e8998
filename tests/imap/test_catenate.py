"""APPEND with CATENATE (RFC 4469): messages made of literal text and parts of the
user's messages named by IMAP URLs (RFC 5092); [BADURL] and [TOOBIG]; big results
spooled; MULTIAPPEND and REPLACE."""

from __future__ import annotations

import asyncio
import imaplib
import re
from pathlib import Path

import pytest

from letterbox.auth.passwords import make_secrets
from letterbox.config import AuthSettings, IMAPSettings, ServerSettings, Settings
from letterbox.imap import imapurl
from letterbox.imap.grammar import Section
from letterbox.server.context import build_context
from letterbox.service.context import Context

from ..conftest import ServerProcess
from .imaputil import PASSWORD, Client

USER = "cat@example.com"
OTHER = "other@example.com"
BOUNDARY = b"--------------030308070208000400050907"
HEADER = (
    b"Return-Path: <bar@example.org>\r\nMessage-ID: <419399E1.6000505@example.org>\r\n"
    b"Date: Thu, 12 Nov 2004 16:57:05 +0000\r\nFrom: Bob Ar <bar@example.org>\r\nMIME-Version: 1.0\r\n"
    b"To: foo@example.net\r\nSubject: About our holiday trip\r\n"
    b'Content-Type: multipart/mixed;\r\n              boundary="' + BOUNDARY[2:] + b'"\r\n\r\n'
)
PART1_MIME = b"Content-Type: text/plain; charset=us-ascii; format=flowed\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
PART1 = b"Our travel agent has sent the schedule.\r\n\r\nCheers,\r\nBob"
PART2_MIME = b"Content-Type: application/x-zip-compressed; name=schedule.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n"
PART2 = b"UEsDBBQAAAAIAAAAIQAAAAAAAAAAAAAAAAAMAAAAc2NoZWR1bGUudHh0AwBQSwUGAAAAAAAAAAAAAAAA"
DRAFT = (
    HEADER + BOUNDARY + b"\r\n" + PART1_MIME + PART1 + b"\r\n" + BOUNDARY + b"\r\n" + PART2_MIME + PART2
    + b"\r\n" + BOUNDARY + b"--\r\n"
)
SEP = b"\r\n" + BOUNDARY + b"\r\n"
END = b"\r\n" + BOUNDARY + b"--\r\n"


def context(tmp_path: Path, **imap: int) -> Context:
    settings = Settings(
        server=ServerSettings(data_dir=tmp_path / "data", run_dir=tmp_path / "run", hostname="mail.test"),
        auth=AuthSettings(failure_delay=0),
        imap=IMAPSettings(**imap),
    )
    ctx = build_context(settings)
    for user in (USER, OTHER):
        ctx.directory.add(user, make_secrets(PASSWORD))
    return ctx


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return context(tmp_path)


async def setup(ctx: Context, *messages: bytes, mailbox: str = "Drafts") -> tuple[Client, int]:
    """A logged-in client and *mailbox*'s UIDVALIDITY, the messages in it (UIDs 1...)."""
    acc = await ctx.store.account(USER)
    for m in messages:
        await acc.append(mailbox, m, ["\\Draft"])
    c = Client(ctx)
    await c.login(USER)
    return c, (await acc.get_mailbox(mailbox)).uidvalidity


async def stored(ctx: Context, mailbox: str, uid: int) -> bytes:
    acc = await ctx.store.account(USER)
    return await acc.read_message((await acc.get_mailbox(mailbox)).id, uid)


def appenduid(out: bytes) -> int:
    m = re.search(rb"\[APPENDUID \d+ (\d+)\]", out)
    assert m is not None, out
    return int(m.group(1))


def test_capability(ctx: Context) -> None:
    async def go() -> None:
        c = Client(ctx)
        assert b"CATENATE" not in await c.start()
        await c.cmd(f'l LOGIN "{USER}" "{PASSWORD}"')
        assert b" CATENATE" in await c.cmd("c CAPABILITY")

    asyncio.run(go())


def test_rfc4469_example_1_replacing_an_attachment(ctx: Context) -> None:
    async def go() -> None:
        c, v = await setup(ctx, DRAFT)
        url = b'"/Drafts;UIDVALIDITY=%d/;UID=1' % v
        text1 = SEP
        assert len(text1) == 42
        out = await c.cmd(b"A003 APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (URL " + url + b'/;section=HEADER" TEXT {42}')
        assert out.startswith(b"+ ")
        out = await c.send(
            text1 + b" URL " + url + b'/;section=1.MIME" URL ' + url + b'/;section=1" TEXT {42}\r\n'
        )
        assert out.startswith(b"+ ")
        new_part = b"Content-Type: text/plain\r\n\r\nthe new attachment"
        out = await c.send(SEP + b" TEXT {%d+}\r\n" % len(new_part) + new_part + b" TEXT {44}\r\n")
        assert out.startswith(b"+ ")
        assert len(END) == 44
        out = await c.send(END + b")\r\n")
        assert out.startswith(b"A003 OK [APPENDUID %d 2] " % v), out
        assert await stored(ctx, "Drafts", 2) == (
            HEADER + SEP + PART1_MIME + PART1 + SEP + new_part + END
        )

    asyncio.run(go())


def test_rfc4469_example_2_replacing_the_text(ctx: Context) -> None:
    async def go() -> None:
        c, v = await setup(ctx, DRAFT)
        text = HEADER + BOUNDARY + b"\r\n" + PART1_MIME + b"Our travel agent has sent the updated schedule." + SEP
        url = b'"/Drafts;UIDVALIDITY=%d/;UID=1' % v
        out = await c.cmd(b"A003 APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (TEXT {%d}" % len(text))
        assert out.startswith(b"+ ")
        out = await c.send(text + b" URL " + url + b'/;Section=2.MIME" URL ' + url + b'/;Section=2" TEXT {44}\r\n')
        assert out.startswith(b"+ ")
        out = await c.send(END + b")\r\n")
        uid = appenduid(out)
        assert out.startswith(b"A003 OK [APPENDUID %d %d] " % (v, uid))
        assert await stored(ctx, "Drafts", uid) == text + PART2_MIME + PART2 + END
        # The source is untouched: no \Seen from reading its parts (3).
        await c.cmd("f EXAMINE Drafts")
        out = await c.cmd("g FETCH 1 (FLAGS)")
        assert b"\\Seen" not in out and b"\\Draft" in out

    asyncio.run(go())


def test_rfc4469_example_4_badurl(ctx: Context) -> None:
    async def go() -> None:
        one = b"Subject: one\r\n\r\nfirst\r\n"
        two = b"Subject: two\r\n\r\nsecond\r\n"
        c, v = await setup(ctx, one, two, mailbox="INBOX")
        digest = b"Subject: Digest\r\nContent-Type: multipart/digest; boundary=\"b\"\r\n\r\n--b\r\n"
        bad = b"/INBOX;UIDVALIDITY=%d/;UID=2/;section=1.5.9" % v
        out = await c.cmd(
            b"A003 APPEND Sent (\\Seen $MDNSent) CATENATE (TEXT {%d+}\r\n" % len(digest) + digest
            + b' URL "/INBOX;UIDVALIDITY=%d/;UID=1" TEXT {7+}\r\n\r\n--b\r\n' % v
            + b' URL "' + bad + b'" TEXT {7+}\r\n\r\n--b\r\n URL "/INBOX;UIDVALIDITY=%d/;UID=99")' % v
        )
        assert out.startswith(b"A003 NO [BADURL " + bad + b"] "), out
        acc = await ctx.store.account(USER)
        assert (await acc.status("Sent")).messages == 0

    asyncio.run(go())


@pytest.mark.parametrize(
    "url, why",
    [
        ("/Drafts;UIDVALIDITY=1/;UID=1", "UIDVALIDITY"),
        ("/Drafts/;UID=2", "no such message"),
        ("/Nowhere/;UID=1", "no such mailbox"),
        ("/Drafts/;UID=1/;SECTION=3", "no such part"),
        ("/Drafts/;UID=1/;SECTION=BOGUS", "invalid section"),
        ("/Drafts/;UID=1/;URLAUTH=anonymous:internal:0123", "not the URL"),
        ("/Drafts", "not the URL"),
        ("imap://other%40example.com@mail.test/Drafts/;UID=1", "another user"),
        ("imap://cat%40example.com@elsewhere.test/Drafts/;UID=1", "another server"),
        ("https://mail.test/Drafts/;UID=1", "not an IMAP URL"),
        (";UID=1", "needs a selected mailbox"),
        ("/Caf%FF/;UID=1", "not UTF-8"),
    ],
)
def test_badurl(ctx: Context, url: str, why: str) -> None:
    async def go() -> None:
        c, _ = await setup(ctx, DRAFT)
        out = await c.cmd(f'a APPEND Drafts CATENATE (TEXT {{4+}}\r\nabcd URL "{url}")')
        assert out.startswith(f"a NO [BADURL {url}] ".encode()), out
        assert why.encode() in out
        assert (await (await ctx.store.account(USER)).status("Drafts")).messages == 1

    asyncio.run(go())


def test_url_forms_sections_and_partial(ctx: Context) -> None:
    async def go() -> None:
        c, v = await setup(ctx, DRAFT)
        cases = [
            # an absolute URL of this server and user (;AUTH=* and a port allowed)
            (b"imap://cat%40example.com;AUTH=*@MAIL.TEST:143/Drafts;UIDVALIDITY=" + str(v).encode() + b"/;UID=1", DRAFT),
            (b"Drafts/;UID=1/;SECTION=TEXT", DRAFT[len(HEADER):]),
            (b"/DRAFTS/;UID=1", None),  # mailbox names are case-sensitive but INBOX's
            (b"/Drafts/;UID=1/;SECTION=1/;PARTIAL=4.6", PART1[4:10]),
            (b"/Drafts/;UID=1/;SECTION=1/;PARTIAL=4", PART1[4:]),
            (b"/Drafts/;UID=1/;SECTION=2.MIME", PART2_MIME),
            (b"/Drafts/;UID=1/;SECTION=HEADER.FIELDS%20(Subject%20TO)", b"To: foo@example.net\r\nSubject: About our holiday trip\r\n\r\n"),
            (b"/Drafts/;UID=1/;SECTION=HEADER.FIELDS.NOT%20(Return-Path%20Message-ID%20Date%20From%20MIME-Version%20To%20Content-Type)/;PARTIAL=0.9", b"Subject: "),
        ]
        for url, expected in cases:
            out = await c.cmd(b'a APPEND Drafts CATENATE (URL "' + url + b'" TEXT {2+}\r\n--)')
            if expected is None:
                assert out.startswith(b"a NO [BADURL"), out
                continue
            assert out.startswith(b"a OK [APPENDUID"), (url, out)
            assert await stored(ctx, "Drafts", appenduid(out)) == expected + b"--", url
        # Relative to the selected mailbox; the result goes elsewhere.
        await c.cmd("s SELECT Drafts")
        out = await c.cmd(b'b APPEND Sent CATENATE (URL ";UID=1/;SECTION=1")')
        assert out.startswith(b"b OK [APPENDUID"), out
        assert await stored(ctx, "Sent", appenduid(out)) == PART1

    asyncio.run(go())


def test_multiappend_all_or_nothing(ctx: Context) -> None:
    async def go() -> None:
        c, v = await setup(ctx, DRAFT)
        ok = b'CATENATE (URL "/Drafts/;UID=1/;SECTION=1")'
        out = await c.cmd(b"a APPEND Sent (\\Seen) {5+}\r\nHi!\r\n " + ok + b" " + ok)
        assert re.match(rb"a OK \[APPENDUID \d+ 1:3\] ", out), out
        out = await c.cmd(b"b APPEND Sent " + ok + b' CATENATE (URL "/Drafts/;UID=7")')
        assert out.startswith(b"b NO [BADURL /Drafts/;UID=7] "), out
        acc = await ctx.store.account(USER)
        assert (await acc.status("Sent")).messages == 3

    asyncio.run(go())


def test_errors(ctx: Context) -> None:
    async def go() -> None:
        c, _ = await setup(ctx, DRAFT)
        for line in (
            b"a APPEND Drafts CATENATE ()",
            b"a APPEND Drafts CATENATE",
            b"a APPEND Drafts CATENATE (FOO {1+}\r\nx)",
            b'a APPEND Drafts CATENATE (TEXT "quoted")',
            b"a APPEND Drafts CATENATE (URL)",
            b"a APPEND Drafts CATENATED (TEXT {1+}\r\nx)",
        ):
            assert (await c.cmd(line)).startswith(b"a BAD "), line
        # Empty: NO, as for APPEND.
        out = await c.cmd(b'b APPEND Drafts CATENATE (TEXT {0+}\r\n URL "/Drafts/;UID=1/;PARTIAL=99999")')
        assert out.startswith(b"b NO [CANNOT]"), out
        out = await c.cmd(b'c APPEND Nowhere CATENATE (URL "/Drafts/;UID=1")')
        assert out.startswith(b"c NO [TRYCREATE]")

    asyncio.run(go())


def test_toobig(tmp_path: Path) -> None:
    async def go() -> None:
        ctx = context(tmp_path, max_literal_size=4096)
        body = b"Subject: big\r\n\r\n" + b"x" * 1500 + b"\r\n"
        c, _ = await setup(ctx, body)
        url = b' URL "/Drafts/;UID=1"'
        out = await c.cmd(b"a APPEND Drafts CATENATE (" + url[1:] + url + url + b")")
        assert out.startswith(b"a NO [TOOBIG] "), out
        out = await c.cmd(b"b APPEND Drafts CATENATE (" + url[1:] + url + b")")
        assert out.startswith(b"b OK "), out

    asyncio.run(go())


def test_big_messages_are_assembled_on_disk(ctx: Context) -> None:
    async def go() -> None:
        made: list[object] = []
        new = ctx.spooler.new

        def counting():  # type: ignore[no-untyped-def]
            spool = new()
            made.append(spool)
            return spool

        ctx.spooler.new = counting  # type: ignore[method-assign]
        big = b"Subject: big\r\n\r\n" + b"0123456789abcdef" * 40_000 + b"\r\n"  # 640 KB
        c, _ = await setup(ctx, big)
        text = b"x" * 300_000
        out = await c.cmd(
            b'a APPEND Drafts CATENATE (URL "/Drafts/;UID=1" TEXT {%d+}\r\n' % len(text) + text
            + b' URL "/Drafts/;UID=1/;SECTION=TEXT")'
        )
        assert out.startswith(b"a OK [APPENDUID"), out[:200]
        assert await stored(ctx, "Drafts", appenduid(out)) == big + text + big[len(b"Subject: big\r\n\r\n"):]
        # The TEXT literal and the message went to spool files, all given back.
        assert len(made) == 2
        assert ctx.spooler.used == 0

    asyncio.run(go())


def test_replace_with_catenate(ctx: Context) -> None:
    async def go() -> None:
        c, _ = await setup(ctx, DRAFT)
        await c.cmd("s SELECT Drafts")
        out = await c.cmd(b'a REPLACE 1 Drafts CATENATE (URL ";UID=1/;SECTION=HEADER" TEXT {5+}\r\nnew\r\n)')
        assert b"* 1 EXPUNGE" in out and out.endswith(b"a OK REPLACE completed\r\n"), out
        assert await stored(ctx, "Drafts", 2) == HEADER + b"new\r\n"
        out = await c.cmd(b'b REPLACE 1 Drafts CATENATE (URL ";UID=1")')
        assert out.startswith(b"b NO [BADURL ;UID=1] ") and b"EXPUNGE" not in out

    asyncio.run(go())


def test_a_message_expunged_meanwhile_is_a_badurl(ctx: Context) -> None:
    async def go() -> None:
        c, _ = await setup(ctx, DRAFT)
        await c.cmd("s SELECT Drafts")
        acc = await ctx.store.account(USER)
        await acc.expunge((await acc.get_mailbox("Drafts")).id, [1])  # another session's EXPUNGE
        for url in (b";UID=1", b";UID=1/;SECTION=HEADER.FIELDS%20(SUBJECT)", b"/Drafts/;UID=1/;SECTION=1"):
            out = await c.cmd(b'a APPEND Sent CATENATE (URL "' + url + b'")')
            assert b"a NO [BADURL " + url + b"] " in out, out

    asyncio.run(go())


def test_other_users_messages_are_out_of_reach(ctx: Context) -> None:
    async def go() -> None:
        other = await ctx.store.account(OTHER)
        await other.append("INBOX", b"Subject: secret\r\n\r\nsecret\r\n")
        c, _ = await setup(ctx)
        for url in (b"imap://other%40example.com@mail.test/INBOX/;UID=1", b"/INBOX/;UID=1"):
            out = await c.cmd(b'a APPEND Drafts CATENATE (URL "' + url + b'")')
            assert out.startswith(b"a NO [BADURL"), out

    asyncio.run(go())


# --- the URL parser alone -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, expected",
    [
        ("/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER",
         imapurl.MessagePart("Drafts", 20, 385759045, Section((), "HEADER"))),
        ("/INBOX;UIDVALIDITY=785799047/;UID=113330/;section=1.5.9",
         imapurl.MessagePart("INBOX", 113330, 785799047, Section((1, 5, 9)))),
        ("/inbox/;UID=3/;SECTION=2.MIME/;PARTIAL=10.20", imapurl.MessagePart("INBOX", 3, None, Section((2,), "MIME"), (10, 20))),
        ("/Caf%C3%A9/Sub/;UID=3/;PARTIAL=5", imapurl.MessagePart("Café/Sub", 3, None, None, (5, None))),
        ("imap://cat%40example.com@Mail.Test/A%20B/;UID=1/;SECTION=HEADER.FIELDS%20(FROM%20TO)",
         imapurl.MessagePart("A B", 1, None, Section((), "HEADER.FIELDS", ("FROM", "TO")))),
        ("IMAP://cat@example.com;AUTH=PLAIN@mail.test:993/INBOX/;UID=1", imapurl.MessagePart("INBOX", 1)),
        (";UID=4/;SECTION=TEXT", imapurl.MessagePart(None, 4, None, Section((), "TEXT"))),
        ("Sent/;UID=1", imapurl.MessagePart("Sent", 1)),
    ],
)
def test_url_parsing(url: str, expected: imapurl.MessagePart) -> None:
    assert imapurl.parse(url, USER, "mail.test", selected=True) == expected


@pytest.mark.parametrize(
    "url",
    ["/INBOX/;UID=0", "/INBOX/;UID=4294967296", "/INBOX/;UID=1/;SECTION=1.0", "/INBOX/;UID=1/;PARTIAL=1.0",
     "/INBOX/;UID=1/;EXPIRE=2030-01-01T00:00:00Z/;URLAUTH=user+x", "imap://mail.test/INBOX/;UID=1",
     "imap://cat%40example.com@mail.test/INBOX", "//mail.test/INBOX/;UID=1", "mailto:x@y", "/%00/;UID=1"],
)
def test_url_parsing_refuses(url: str) -> None:
    with pytest.raises(imapurl.BadURL):
        imapurl.parse(url, USER, "mail.test", selected=True)


def test_badurl_text() -> None:
    # RFC 4469 5: url-resp-text is TEXT-CHARs without "]".
    assert imapurl.shown("/a]b\r\n\u00e9 c") == "/a%5Db%0D%0A%C3%A9 c"


# --- a real server, a real client ------------------------------------------------------------


def test_imaplib_against_a_server(server: ServerProcess) -> None:
    server.add_user(USER, "pw")
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    try:
        c.starttls()
        c.login(USER, "pw")
        typ, caps = c.capability()
        assert b" CATENATE" in caps[0]
        typ, _ = c.append("INBOX", "", None, DRAFT)
        assert typ == "OK"
        typ, data = c._simple_command("APPEND", "Sent", 'CATENATE (URL "/INBOX/;UID=1/;SECTION=1")')
        assert typ == "OK", data
        c.select("Sent")
        typ, data = c.fetch("1", "(BODY.PEEK[])")
        assert data[0][1] == PART1
        typ, data = c._simple_command("APPEND", "Sent", 'CATENATE (URL "/INBOX/;UID=9")')
        assert typ == "NO" and data[0].startswith(b"[BADURL /INBOX/;UID=9]")
    finally:
        c.logout()
