"""OBJECTID (RFC 8474): MAILBOXID for CREATE, SELECT/EXAMINE, STATUS and LIST-STATUS;
EMAILID and THREADID for FETCH and SEARCH. The RFC's examples, adapted."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from letterbox.imap.grammar import (
    CommandReader,
    Fetch,
    FetchAttribute,
    NeedContinuation,
    ParseError,
    Search,
    SearchNot,
    SearchObjectId,
    SearchOr,
)
from letterbox.mime import email_id
from letterbox.service.context import Context

from .imaputil import Client, add_user, make_context

USER = "objects@example.com"
OBJECTID = re.compile(rb"[A-Za-z0-9_-]{1,255}")
MAILBOXID = re.compile(rb"MAILBOXID \(([A-Za-z0-9_-]+)\)")
EMAILID = re.compile(rb"\* (\d+) FETCH \((?:UID \d+ )?EMAILID \(([A-Za-z0-9_-]+)\) THREADID NIL\)\r\n")


def message(subject: str, msgid: str, refs: str = "") -> bytes:
    head = f"From: a@example.com\r\nSubject: {subject}\r\nMessage-ID: <{msgid}>\r\n"
    if refs:
        head += f"References: <{refs}>\r\n"
    return head.encode() + b"\r\nBody of " + subject.encode() + b"\r\n"


MESSAGE_A = message("Message A", "fake.1521475657.54797@example.com")
MESSAGE_B = message("Re: Message A", "fake.1521475657.21213@example.org", "fake.1521475657.54797@example.com")
MESSAGE_C = message("Message C", "fake.1521475657.60280@example.com")


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    c = make_context(tmp_path)
    add_user(c, USER)
    return c


async def login(ctx: Context) -> Client:
    c = Client(ctx)
    await c.login(USER)
    return c


def mailboxid(out: bytes) -> str:
    found = MAILBOXID.findall(out)
    assert len(found) == 1, out
    assert found[0][:1].isalpha() and OBJECTID.fullmatch(found[0]), found
    return found[0].decode()


def emailids(out: bytes) -> dict[int, str]:
    """Message number -> EMAILID of `FETCH ... (EMAILID THREADID)` responses."""
    lines = [line for line in out.split(b"\r\n") if line.startswith(b"* ") and b" FETCH " in line]
    found = {int(m.group(1)): m.group(2).decode() for m in EMAILID.finditer(out)}
    assert len(found) == len(lines), out
    return found


async def append(c: Client, mailbox: str, data: bytes, tag: str = "a") -> bytes:
    out = await c.send(f"{tag} APPEND {mailbox} {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    assert f"{tag} OK".encode() in out, out
    return out


# --- capability ------------------------------------------------------------------------------


def test_objectid_is_advertised_after_login(ctx: Context) -> None:
    async def go() -> None:
        c = Client(ctx)
        assert b"OBJECTID" not in await c.start()
        out = await c.login(USER)
        assert b" OBJECTID " in out
        out = await c.cmd("c CAPABILITY")
        assert b" OBJECTID" in out.split(b"\r\n")[0]

    run(go())


# --- MAILBOXID -------------------------------------------------------------------------------


def test_create_status_rename_keep_the_mailboxid(ctx: Context) -> None:
    """RFC 8474 4.1 and 4.3, the examples."""

    async def go() -> None:
        c = await login(ctx)
        out = await c.cmd("3 create foo")
        assert re.fullmatch(rb"3 OK \[MAILBOXID \(F[0-9a-f]{8}\)\] CREATE completed\r\n", out), out
        foo = mailboxid(out)
        out = await c.cmd("4 create bar")
        assert out.startswith(b"4 OK [MAILBOXID (")
        bar = mailboxid(out)
        assert foo != bar
        out = await c.cmd("5 create foo")
        assert out.startswith(b"5 NO") and b"MAILBOXID" not in out

        out = await c.cmd("6 status foo (mailboxid)")
        assert out == f"* STATUS foo (MAILBOXID ({foo}))\r\n6 OK STATUS completed\r\n".encode()
        out = await c.cmd("7 status bar (mailboxid)")
        assert out == f"* STATUS bar (MAILBOXID ({bar}))\r\n7 OK STATUS completed\r\n".encode()
        assert (await c.cmd("8 rename foo renamed")).endswith(b"8 OK RENAME completed\r\n")
        out = await c.cmd("9 status renamed (mailboxid)")
        assert out == f"* STATUS renamed (MAILBOXID ({foo}))\r\n9 OK STATUS completed\r\n".encode()
        out = await c.cmd("10 status bar (mailboxid)")
        assert out == f"* STATUS bar (MAILBOXID ({bar}))\r\n10 OK STATUS completed\r\n".encode()
        # With other items, in the order asked for.
        out = await c.cmd("11 STATUS bar (MESSAGES MAILBOXID UIDNEXT)")
        assert out.startswith(f"* STATUS bar (MESSAGES 0 MAILBOXID ({bar}) UIDNEXT 1)\r\n".encode())

    run(go())


def test_select_and_examine_send_the_mailboxid(ctx: Context) -> None:
    """RFC 8474 4.2."""

    async def go() -> None:
        c = await login(ctx)
        foo = mailboxid(await c.cmd("1 CREATE foo"))
        for verb in ("select", "examine"):
            out = await c.cmd(f'27 {verb} "foo"')
            assert f"\r\n* OK [MAILBOXID ({foo})] Ok\r\n".encode() in out, out
            assert out.endswith(b"] " + verb.upper().encode() + b" completed\r\n")
        inbox = await c.cmd("2 SELECT INBOX")
        status = await c.cmd("3 STATUS INBOX (MAILBOXID)")
        assert mailboxid(inbox) == mailboxid(status) != foo
        # IMAP4rev2 too.
        await c.cmd("u UNSELECT")
        assert b"e OK" in await c.cmd("e ENABLE IMAP4rev2")
        assert mailboxid(await c.cmd("4 SELECT foo")) == foo

    run(go())


def test_list_return_status_mailboxid(ctx: Context) -> None:
    """RFC 8474 4.3, with LIST-STATUS (RFC 5819)."""

    async def go() -> None:
        c = await login(ctx)
        made = {name: mailboxid(await c.cmd(f"c CREATE {name}")) for name in ("foo", "bar")}
        await c.cmd("r RENAME foo renamed")
        made["renamed"] = made.pop("foo")
        out = await c.cmd('11 list "" "*" return (status (mailboxid))')
        assert out.endswith(b"11 OK LIST completed\r\n")
        lines = out.split(b"\r\n")[:-2]
        listed: dict[str, str] = {}
        for list_line, status_line in zip(lines[::2], lines[1::2], strict=True):
            name = list_line.rsplit(b" ", 1)[1].decode()
            assert list_line.startswith(b"* LIST (")
            m = re.fullmatch(rb"\* STATUS (\S+) \(MAILBOXID \(([A-Za-z0-9_-]+)\)\)", status_line)
            assert m is not None and m.group(1).decode() == name, status_line
            listed[name] = m.group(2).decode()
        assert {"INBOX", "bar", "renamed", "Sent", "Trash"} <= set(listed)
        assert all(listed[name] == made[name] for name in made)
        # Every mailbox has its own (RFC 8474 4: never two at the same time).
        assert len(set(listed.values())) == len(listed)
        for name, mid in listed.items():
            assert mailboxid(await c.cmd(f'x STATUS "{name}" (MAILBOXID)')) == mid

    run(go())


def test_rename_of_a_hierarchy_keeps_every_mailboxid(ctx: Context) -> None:
    async def go() -> None:
        c = await login(ctx)
        top = mailboxid(await c.cmd("1 CREATE top"))
        child = mailboxid(await c.cmd("2 CREATE top/child"))
        await c.cmd("3 RENAME top moved")
        assert mailboxid(await c.cmd("4 STATUS moved (MAILBOXID)")) == top
        assert mailboxid(await c.cmd("5 STATUS moved/child (MAILBOXID)")) == child
        # A mailbox deleted and made again under its name is another mailbox.
        await c.cmd("6 DELETE moved/child")
        again = mailboxid(await c.cmd("7 CREATE moved/child"))
        assert again not in (top, child)

    run(go())


def test_rename_inbox_makes_a_new_mailbox_with_its_own_id(ctx: Context) -> None:
    """RFC 8474 4 and 8.2: RENAME INBOX is a new mailbox the messages move to; INBOX
    stays itself. The messages keep their EMAILIDs (a move)."""

    async def go() -> None:
        c = await login(ctx)
        await append(c, "INBOX", MESSAGE_A)
        inbox = mailboxid(await c.cmd("1 STATUS INBOX (MAILBOXID)"))
        await c.cmd("2 SELECT INBOX")
        before = emailids(await c.cmd("3 FETCH 1:* (EMAILID THREADID)"))
        await c.cmd("4 UNSELECT")
        assert b"5 OK" in await c.cmd("5 RENAME INBOX old-inbox")
        moved = mailboxid(await c.cmd("6 STATUS old-inbox (MAILBOXID)"))
        assert moved != inbox
        assert mailboxid(await c.cmd("7 STATUS INBOX (MAILBOXID)")) == inbox
        await c.cmd("8 SELECT old-inbox")
        assert emailids(await c.cmd("9 FETCH 1:* (EMAILID THREADID)")) == before

    run(go())


# --- EMAILID and THREADID --------------------------------------------------------------------


def test_fetch_emailid_threadid_and_move(ctx: Context) -> None:
    """RFC 8474 5.3, the example without THREADID support: EMAILIDs stay with their
    messages through a MOVE, THREADID is NIL."""

    async def go() -> None:
        c = await login(ctx)
        await c.cmd("1 CREATE foo")
        for tag, data in (("5", MESSAGE_A), ("11", MESSAGE_B), ("17", MESSAGE_C)):
            assert b"[APPENDUID " in await append(c, "inbox", data, tag)
        await c.cmd("s SELECT INBOX")
        out = await c.cmd("22 fetch 1:* (emailid threadid)")
        assert out.endswith(b"22 OK FETCH completed\r\n")
        first = emailids(out)
        assert sorted(first) == [1, 2, 3] and len(set(first.values())) == 3
        assert first == {1: email_id(MESSAGE_A), 2: email_id(MESSAGE_B), 3: email_id(MESSAGE_C)}
        assert all(re.fullmatch(r"M[0-9a-f]{24}", e) for e in first.values())
        out = await c.cmd("23 move 2 foo")
        assert b"[COPYUID " in out and b"* 2 EXPUNGE\r\n" in out
        out = await c.cmd("24 fetch 1:* (emailid threadid)")
        assert emailids(out) == {1: first[1], 2: first[3]}
        await c.cmd('25 select "foo"')
        out = await c.cmd("26 fetch 1:* (emailid threadid)")
        assert emailids(out) == {1: first[2]}
        # The response syntax of RFC 8474 7, and UID FETCH puts UID first.
        assert out.startswith(f"* 1 FETCH (EMAILID ({first[2]}) THREADID NIL)\r\n".encode())
        out = await c.cmd("27 UID FETCH 1 (THREADID)")
        assert out.startswith(b"* 1 FETCH (UID 1 THREADID NIL)\r\n")
        out = await c.cmd("28 FETCH 1 (FLAGS EMAILID)")
        assert re.match(rb"\* 1 FETCH \(FLAGS \([^)]*\) EMAILID \(%s\)\)\r\n" % first[2].encode(), out), out
        # With content items too.
        out = await c.cmd("29 FETCH 1 (EMAILID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert out.startswith(f"* 1 FETCH (EMAILID ({first[2]}) BODY[HEADER.FIELDS (SUBJECT)] {{".encode())

    run(go())


def test_copy_keeps_the_emailid(ctx: Context) -> None:
    """RFC 8474 5.1: the same EMAILID as the source for the COPYUID pairing."""

    async def go() -> None:
        c = await login(ctx)
        await c.cmd("1 CREATE dest")
        await append(c, "INBOX", MESSAGE_A)
        await append(c, "INBOX", MESSAGE_C)
        await c.cmd("2 SELECT INBOX")
        source = emailids(await c.cmd("3 UID FETCH 1:* (EMAILID THREADID)"))
        out = await c.cmd("4 UID COPY 2,1 dest")
        assert b"[COPYUID " in out
        await c.cmd("5 SELECT dest")
        copied = emailids(await c.cmd("6 UID FETCH 1:* (EMAILID THREADID)"))
        assert sorted(copied.values()) == sorted(source.values())
        m = re.search(rb"\[COPYUID \d+ (\S+) (\S+)\]", out)
        assert m is not None
        # Pair them by COPYUID: source UID -> destination UID.
        src_uids = [int(u) for u in m.group(1).replace(b":", b",").split(b",")]
        dst_uids = [int(u) for u in m.group(2).replace(b":", b",").split(b",")]
        for s_uid, d_uid in zip(src_uids, dst_uids, strict=True):
            assert source[s_uid] == copied[d_uid]
        # The copy in the same mailbox too.
        out = await c.cmd("7 COPY 1 dest")
        ids = emailids(await c.cmd("8 FETCH 1:* (EMAILID THREADID)"))
        assert ids[3] == ids[1]

    run(go())


def test_identical_appends_share_an_emailid(ctx: Context) -> None:
    """RFC 8474 5.1: the server MAY give identical content the same EMAILID; ours is a
    digest of the message, so it does. Any other byte makes another one."""

    async def go() -> None:
        c = await login(ctx)
        await append(c, "INBOX", MESSAGE_A)
        await append(c, "INBOX", MESSAGE_A)
        await append(c, "Archive", MESSAGE_A)
        await append(c, "INBOX", MESSAGE_A.replace(b"Body", b"body"))
        await c.cmd("s SELECT INBOX")
        ids = emailids(await c.cmd("f FETCH 1:* (EMAILID THREADID)"))
        assert ids[1] == ids[2] != ids[3]
        await c.cmd("s SELECT Archive")
        assert emailids(await c.cmd("f FETCH 1 (EMAILID THREADID)")) == {1: ids[1]}
        # Delivery (LMTP/SMTP) parses once; that parse gives the same.
        acc = await ctx.store.account(USER)
        await acc.append("INBOX", MESSAGE_A)
        await c.cmd("s SELECT INBOX")
        assert emailids(await c.cmd("f FETCH 4 (EMAILID THREADID)")) == {4: ids[1]}

    run(go())


def test_search_emailid_and_threadid(ctx: Context) -> None:
    """RFC 8474 6, the example (before the MOVE): EMAILID matches exactly, THREADID
    matches nothing (no THREADIDs)."""

    async def go() -> None:
        c = await login(ctx)
        for data in (MESSAGE_A, MESSAGE_B, MESSAGE_C):
            await append(c, "inbox", data)
        await c.cmd("s SELECT INBOX")
        ids = emailids(await c.cmd("f FETCH 1:* (EMAILID THREADID)"))
        out = await c.cmd(f"27 search emailid {ids[1]}")
        assert out == b"* SEARCH 1\r\n27 OK SEARCH completed\r\n"
        out = await c.cmd("28 search threadid T64b478a75b7ea9")
        assert out == b"* SEARCH\r\n28 OK SEARCH completed\r\n"
        assert (await c.cmd("29 SEARCH NOT THREADID T1")).startswith(b"* SEARCH 1 2 3\r\n")
        assert (await c.cmd(f"30 UID SEARCH OR EMAILID {ids[3]} EMAILID {ids[2]}")).startswith(b"* SEARCH 2 3\r\n")
        assert (await c.cmd(f"31 SEARCH NOT EMAILID {ids[2]}")).startswith(b"* SEARCH 1 3\r\n")
        assert (await c.cmd(f"32 SEARCH EMAILID {ids[2]} SUBJECT message")).startswith(b"* SEARCH 2\r\n")
        # Object ids are case-sensitive (RFC 8474 7).
        assert (await c.cmd(f"33 SEARCH EMAILID {ids[1].upper()}")).startswith(b"* SEARCH\r\n")
        assert (await c.cmd("34 SEARCH EMAILID Mnosuchmessage")).startswith(b"* SEARCH\r\n")
        assert (await c.cmd(f'35 SEARCH EMAILID "{ids[1]}"')).startswith(b"* SEARCH 1\r\n")
        out = await c.cmd(f"36 SEARCH RETURN (COUNT) EMAILID {ids[1]}")
        assert out.startswith(b'* ESEARCH (TAG "36") COUNT 1\r\n')
        # SORT takes the keys as well.
        assert (await c.cmd(f"37 SORT (SUBJECT) UTF-8 EMAILID {ids[3]}")).startswith(b"* SORT 3\r\n")
        # Not an objectid: a syntax error.
        for bad in ("EMAILID", "EMAILID M+1", "EMAILID \"\"", "THREADID (T1)"):
            assert (await c.cmd(f"b SEARCH {bad}")).startswith(b"b BAD"), bad

    run(go())


def test_emailid_survives_expunge_of_others_and_flags(ctx: Context) -> None:
    """EMAILID only names content: flags may differ between messages that share one."""

    async def go() -> None:
        c = await login(ctx)
        await append(c, "INBOX", MESSAGE_A)
        await append(c, "INBOX", MESSAGE_B)
        await c.cmd("s SELECT INBOX")
        ids = emailids(await c.cmd("f FETCH 1:* (EMAILID THREADID)"))
        await c.cmd("1 STORE 1 +FLAGS (\\Deleted \\Seen $Work)")
        await c.cmd("2 EXPUNGE")
        assert emailids(await c.cmd("f FETCH 1:* (EMAILID THREADID)")) == {1: ids[2]}

    run(go())


# --- grammar ---------------------------------------------------------------------------------


def parse(line: bytes) -> object:
    reader = CommandReader()
    reader.feed(b"a " + line + b"\r\n")
    event = reader.next_event()
    while isinstance(event, NeedContinuation):
        event = reader.next_event()
    return event


def test_grammar() -> None:
    fetch = parse(b"FETCH 1:* (emailid THREADID)")
    assert isinstance(fetch, Fetch)
    assert fetch.attributes == (FetchAttribute("EMAILID"), FetchAttribute("THREADID"))
    one = parse(b"UID FETCH 1 EmailId")
    assert isinstance(one, Fetch) and one.attributes == (FetchAttribute("EMAILID"),)
    search = parse(b"SEARCH OR emailid M6d99ac3275bb4e NOT THREADID T_x-1")
    assert isinstance(search, Search)
    assert search.key == SearchOr(
        SearchObjectId("EMAILID", "M6d99ac3275bb4e"), SearchNot(SearchObjectId("THREADID", "T_x-1"))
    )
    assert isinstance(parse(b"SEARCH EMAILID " + b"M" * 256), ParseError)
    assert not isinstance(parse(b"STATUS INBOX (MailboxId)"), ParseError)
    assert not isinstance(parse(b'LIST "" "*" RETURN (STATUS (MAILBOXID MESSAGES))'), ParseError)
