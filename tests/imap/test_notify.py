"""NOTIFY (RFC 5465): the command's syntax and rules, the RFC's examples, what is told of
the selected mailbox (SELECTED, SELECTED-DELAYED, none at all) and of the others (STATUS,
LIST, METADATA), when it is told (between commands, at a command's end, in IDLE, never in the
middle of a command), the client's own changes left out, NOTIFICATIONOVERFLOW; then the
same across a real server: a delivery by LMTP, another session's EXPUNGE, CREATE, RENAME,
DELETE and SUBSCRIBE."""

from __future__ import annotations

import asyncio
import re
import smtplib
import socket
from pathlib import Path

import pytest

import letterbox.imap.session  # noqa: F401  (first: it builds the command table)
from letterbox.imap import notifier as notifier_module
from letterbox.imap.grammar import FetchAttribute, Section
from letterbox.imap.grammar.notify import EventGroup, Notify
from letterbox.imap.grammar.parser import CommandSyntaxError, parse_command
from letterbox.service.context import Context
from letterbox.store import feed as feed_module
from tests.conftest import ServerProcess

from .imaputil import Client, add_user, make_context

USER = "bob@example.com"
SUPPORTED = (
    b"[BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange"
    b" MailboxMetadataChange ServerMetadataChange)]"
)
MORNING = b"Subject: Re: good morning\r\nFrom: alice@example.org\r\nTo: bob@example.org\r\nX-Other: 1\r\n\r\nhi\r\n"


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    c = make_context(tmp_path)
    add_user(c, USER)
    return c


def append(tag: str, mailbox: str, message: bytes = MORNING) -> bytes:
    return f"{tag} APPEND {mailbox} {{{len(message)}+}}\r\n".encode() + message + b"\r\n"


async def deliver(ctx: Context, mailbox: str = "INBOX", message: bytes = MORNING) -> int:
    """What a delivery does: an append made by no session."""
    return (await (await ctx.store.account(USER)).append(mailbox, message)).uid


async def two(ctx: Context) -> tuple[Client, Client]:
    """The client under test and another session of the same account."""
    c, other = Client(ctx), Client(ctx)
    await c.login(USER)
    await other.login(USER)
    return c, other


def lines(out: bytes) -> list[bytes]:
    return [line for line in out.split(b"\r\n") if line]


# --- syntax ------------------------------------------------------------------------------


def parse(line: bytes) -> Notify:
    cmd = parse_command([line], [])
    assert isinstance(cmd, Notify)
    return cmd


def test_the_rfc_examples_parse() -> None:
    peek = FetchAttribute("BODY", Section(text="HEADER.FIELDS", headers=("from", "to", "subject")), peek=True)
    # Section 3.1 writes the events of a group without parentheses.
    cmd = parse(
        b"b notify set status (selected MessageNew (uid body.peek[header.fields (from to subject)]) "
        b"MessageExpunge) (subtree Lists MessageNew)"
    )
    assert cmd.status and cmd.groups == (
        EventGroup("SELECTED", ("MessageNew", "MessageExpunge"), (), (FetchAttribute("UID"), peek)),
        EventGroup("SUBTREE", ("MessageNew",), (b"Lists",)),
    )
    cmd = parse(b"a notify set (mailboxes INBOX (Messagenew messageExpunge)) (personal (SubscriptionChange))")
    assert not cmd.status and cmd.groups == (
        EventGroup("MAILBOXES", ("MessageNew", "MessageExpunge"), (b"INBOX",)),
        EventGroup("PERSONAL", ("SubscriptionChange",)),
    )
    cmd = parse(b"a notify set (selected (Messagenew (uid flags) messageExpunge)) (personal (MessageNew FlagChange MessageExpunge))")
    assert cmd.groups is not None and cmd.groups[0].fetch == (FetchAttribute("UID"), FetchAttribute("FLAGS"))
    assert parse(b"a NOTIFY NONE").groups is None
    cmd = parse(b'a NOTIFY SET (subtree (inbox "Two words") NONE) (inboxes (x-Future))')
    assert cmd.groups == (EventGroup("SUBTREE", (), (b"INBOX", b"Two words")), EventGroup("INBOXES", ("x-Future",)))


@pytest.mark.parametrize(
    "line",
    [
        b"a NOTIFY",
        b"a NOTIFY SET",
        b"a NOTIFY SET STATUS",
        b"a NOTIFY SET ()",
        b"a NOTIFY SET (personal)",
        b"a NOTIFY SET (personal ())",
        b"a NOTIFY SET (elsewhere (MessageNew))",
        b"a NOTIFY SET (subtree (MessageNew))",
        b"a NOTIFY SET (mailboxes () (MessageNew))",
        b"a NOTIFY SET (selected (MessageNew (nonsense) MessageExpunge))",
        b"a NOTIFY SET (selected (MessageNew (ALL) MessageExpunge))",
        b"a NOTIFY SET (personal (MessageNew)",
        b"a NOTIFY SET (personal (MessageNew))(inboxes (MessageNew))",
        b"a NOTIFY NONE (personal (MessageNew))",
        b"a NOTIFY CLEAR",
    ],
)
def test_syntax_errors(line: bytes) -> None:
    with pytest.raises(CommandSyntaxError):
        parse_command([line], [])


# --- the command's answers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "events",
    ["(AnnotationChange)", "(MessageNew x-Future)", "(MailboxMetadataChange AnnotationChange)"],
)
def test_unsupported_events_are_no_badevent_listing_the_supported_ones(ctx: Context, events: str) -> None:
    async def go() -> None:
        c, _ = await two(ctx)
        out = await c.cmd(f"a NOTIFY SET (personal {events})")
        assert out.startswith(b"a NO " + SUPPORTED), out
        # Also for the selected mailbox, where AnnotationChange would be a message event.
        out = await c.cmd("b NOTIFY SET (selected (MessageNew MessageExpunge AnnotationChange))")
        assert out.startswith(b"b NO " + SUPPORTED), out

    asyncio.run(go())


@pytest.mark.parametrize(
    "groups",
    [
        "(selected (MessageNew MessageExpunge)) (selected-delayed (MessageNew MessageExpunge))",  # 6.1
        "(selected (MessageNew MessageExpunge MailboxName))",  # 6.1
        "(selected-delayed (SubscriptionChange))",
        "(selected (MessageNew MessageExpunge MailboxMetadataChange))",  # 8: message events only
        "(selected-delayed (ServerMetadataChange))",
        "(selected (MessageNew))",  # 5
        "(selected (MessageExpunge))",
        "(selected (FlagChange))",
        "(selected (MessageNew FlagChange))",
        "(personal (FlagChange))",
        "(inboxes (MessageExpunge FlagChange))",
        "(personal (MessageNew (UID) MessageExpunge))",  # 8: fetch-atts for SELECTED only
        "(selected (MessageNew (BODY[HEADER]) MessageExpunge))",  # 5.2: would set \\Seen
        "(selected (MessageNew (RFC822) MessageExpunge))",
        "(selected (MessageNew (BINARY[]) MessageExpunge))",
        "(selected (MessageNew (BODY.PEEK[2]) MessageExpunge))",  # 5.2: a part it may lack
        "(selected (MessageNew (BINARY.SIZE[1]) MessageExpunge))",
    ],
)
def test_events_a_filter_may_not_have_are_bad(ctx: Context, groups: str) -> None:
    async def go() -> None:
        c, _ = await two(ctx)
        out = await c.cmd("a NOTIFY SET " + groups)
        assert out.startswith(b"a BAD "), out
        assert c.session.notify is None

    asyncio.run(go())


def test_notify_needs_a_login_and_too_many_names_are_refused(ctx: Context) -> None:
    async def go() -> None:
        c = Client(ctx)
        await c.start()
        assert (await c.cmd("a NOTIFY NONE")).startswith(b"a BAD ")
        assert b"l OK" in await c.cmd(f'l LOGIN "{USER}" "pw"')
        names = " ".join(f"box{i}" for i in range(101))
        out = await c.cmd(f"b NOTIFY SET (mailboxes ({names}) (MessageNew MessageExpunge))")
        assert out.startswith(b"b NO [NOTIFICATIONOVERFLOW] "), out
        names = " ".join(f"box{i}" for i in range(100))
        assert (await c.cmd(f"c NOTIFY SET (mailboxes ({names}) (MessageNew MessageExpunge))")).startswith(b"c OK")

    asyncio.run(go())


def test_capability(ctx: Context) -> None:
    async def go() -> None:
        c = Client(ctx)
        assert b" NOTIFY" not in await c.start()
        assert b" NOTIFY" in await c.cmd(f'l LOGIN "{USER}" "pw"')
        assert b" NOTIFY" in await c.cmd("a CAPABILITY")

    asyncio.run(go())


# --- the RFC's examples ---------------------------------------------------------------------


def test_rfc5465_section_3_1_example(ctx: Context) -> None:
    async def go() -> None:
        c, other = await two(ctx)
        for name in ("Lists/Lemonade", "Lists/Im2000", "misc"):
            assert b"x OK" in await other.cmd(f"x CREATE {name}")
        for _ in range(3):
            await deliver(ctx, "Lists/Lemonade")
        out = await c.cmd(
            "b notify set status (selected MessageNew (uid body.peek[header.fields (from to subject)]) "
            "MessageExpunge) (subtree Lists MessageNew)"
        )
        assert re.search(rb"\* STATUS Lists/Lemonade \(MESSAGES 3 UIDNEXT 4 UIDVALIDITY \d+ UNSEEN 3\)\r\n", out), out
        assert re.search(rb"\* STATUS Lists/Im2000 \(MESSAGES 0 UIDNEXT 1 UIDVALIDITY \d+ UNSEEN 0\)\r\n", out), out
        assert b"STATUS Lists " in out  # the subtree's root too
        assert b"INBOX" not in out and b"misc" not in out and out.endswith(b"b OK NOTIFY completed\r\n")
        assert (await c.cmd("c select inbox")).endswith(b"c OK [READ-WRITE] SELECT completed\r\n")
        # A new message is delivered to Lists/Lemonade: told without a command.
        await deliver(ctx, "Lists/Lemonade")
        assert await c.changed() == b"* STATUS Lists/Lemonade (MESSAGES 4 UIDNEXT 5 UNSEEN 4)\r\n"
        # A new message is delivered to INBOX: EXISTS, then the FETCH asked for.
        await deliver(ctx)
        header = b"Subject: Re: good morning\r\nFrom: alice@example.org\r\nTo: bob@example.org\r\n\r\n"
        assert await c.changed() == (
            b"* 1 EXISTS\r\n* 1 RECENT\r\n"
            b"* 1 FETCH (UID 1 BODY[HEADER.FIELDS (FROM TO SUBJECT)] {%d}\r\n%s)\r\n" % (len(header), header)
        )
        out = await c.cmd("d STATUS misc (UIDVALIDITY UIDNEXT MESSAGES)")
        assert re.fullmatch(rb"\* STATUS misc \(UIDVALIDITY \d+ UIDNEXT 1 MESSAGES 0\)\r\nd OK STATUS completed\r\n", out)
        out = await c.cmd(
            "e notify set (selected MessageNew (uid body.peek[header.fields (from to subject)]) MessageExpunge) "
            "(subtree Lists MessageNew) (mailboxes misc MessageNew)"
        )
        assert out == b"e OK NOTIFY completed\r\n"
        await deliver(ctx, "misc")
        assert await c.changed() == b"* STATUS misc (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n"

    asyncio.run(go())


def test_rfc5465_section_6_examples(ctx: Context) -> None:
    async def go() -> None:
        c, other = await two(ctx)
        await c.cmd("s SELECT Drafts")
        out = await c.cmd("a notify set (mailboxes INBOX (Messagenew messageExpunge)) (personal (SubscriptionChange))")
        assert out == b"a OK NOTIFY completed\r\n"
        # MessageNew and MessageExpunge for INBOX from the first group...
        await deliver(ctx)
        assert await c.changed() == b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n"
        # ...a SubscriptionChange for INBOX from the second; no message events for Sent.
        await other.cmd("x UNSUBSCRIBE INBOX")
        assert await c.changed() == b'* LIST (\\HasNoChildren) "/" INBOX\r\n'
        await other.cmd("x SUBSCRIBE INBOX")
        assert await c.changed() == b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX\r\n'
        await deliver(ctx, "Sent")
        assert await c.changed() == b""
        out = await c.cmd("b notify set (selected (Messagenew (uid flags) messageExpunge)) (personal (MessageNew FlagChange MessageExpunge))")
        assert out == b"b OK NOTIFY completed\r\n"
        # SELECTED rules the selected mailbox (Drafts): no STATUS for it, a FETCH instead.
        await deliver(ctx, "Drafts")
        assert await c.changed() == b"* 1 EXISTS\r\n* 1 RECENT\r\n* 1 FETCH (UID 1 FLAGS (\\Recent))\r\n"
        await deliver(ctx, "Sent")
        assert await c.changed() == b"* STATUS Sent (MESSAGES 2 UIDNEXT 3 UNSEEN 2)\r\n"

    asyncio.run(go())


def test_rfc5465_section_5_examples_in_the_selected_mailbox(ctx: Context) -> None:
    async def go() -> None:
        c, other = await two(ctx)
        for _ in range(3):
            await deliver(ctx)
        await c.cmd("e ENABLE IMAP4rev2")
        await c.cmd("s SELECT INBOX")
        await other.cmd("s SELECT INBOX")
        await c.cmd("a NOTIFY SET (selected (MessageNew (UID) MessageExpunge FlagChange))")
        # 5.2
        await deliver(ctx)
        assert await c.changed() == b"* 4 EXISTS\r\n* 4 FETCH (UID 4)\r\n"
        # 5.1: the UID with the FLAGS, and FLAGS first for a new keyword
        await other.cmd("x STORE 3 +FLAGS ($Junk)")
        out = await c.changed()
        assert out.startswith(b"* FLAGS (") and b"$Junk" in out.split(b"\r\n")[0]
        assert lines(out)[-1] == b"* 3 FETCH (FLAGS ($Junk) UID 3)"
        # 5.3
        await other.cmd("x STORE 2 +FLAGS (\\Deleted)")
        await c.changed()
        await other.cmd("x EXPUNGE")
        assert await c.changed() == b"* 2 EXPUNGE\r\n"
        # 5.3 with QRESYNC
        await c.cmd("q ENABLE QRESYNC")
        await other.cmd("x UID STORE 4 +FLAGS (\\Deleted)")
        await c.changed()
        await other.cmd("x EXPUNGE")
        assert await c.changed() == b"* VANISHED 4\r\n"

    asyncio.run(go())


def test_rfc5465_section_5_examples_in_other_mailboxes(ctx: Context) -> None:
    async def go() -> None:
        c, other = await two(ctx)
        await other.cmd("x CREATE Lists/Lemonade")
        await other.cmd("x CREATE misc")
        for box in ("Lists/Lemonade", "misc", "misc"):
            await deliver(ctx, box)
        await c.cmd("a NOTIFY SET (personal (MessageNew MessageExpunge FlagChange))")
        await other.cmd("x SELECT misc")
        # 5.1 without CONDSTORE: UNSEEN
        await other.cmd("x STORE 1 +FLAGS (\\Seen)")
        assert await c.changed() == b"* STATUS misc (UNSEEN 1)\r\n"
        # 5.3 without QRESYNC
        await other.cmd("x STORE 2 +FLAGS (\\Deleted)")
        await c.changed()
        await other.cmd("x EXPUNGE")
        assert await c.changed() == b"* STATUS misc (MESSAGES 1 UIDNEXT 3 UNSEEN 0)\r\n"
        # 5.2 without CONDSTORE
        await deliver(ctx, "Lists/Lemonade")
        assert await c.changed() == b"* STATUS Lists/Lemonade (MESSAGES 2 UIDNEXT 3 UNSEEN 2)\r\n"
        # 5.1 and 5.2 with CONDSTORE: HIGHESTMODSEQ, and UIDVALIDITY for flag changes
        await c.cmd("e ENABLE CONDSTORE")
        await other.cmd("x SELECT Lists/Lemonade")
        await other.cmd("x STORE 1 +FLAGS (\\Flagged)")
        out = await c.changed()
        assert re.fullmatch(rb"\* STATUS Lists/Lemonade \(UIDVALIDITY \d+ UNSEEN 2 HIGHESTMODSEQ \d+\)\r\n", out), out
        await deliver(ctx, "Lists/Lemonade")
        out = await c.changed()
        assert re.fullmatch(rb"\* STATUS Lists/Lemonade \(MESSAGES 3 UIDNEXT 4 UNSEEN 3 HIGHESTMODSEQ \d+\)\r\n", out), out

    asyncio.run(go())


def test_rfc5465_section_5_4_and_5_5_examples(ctx: Context) -> None:
    async def go() -> None:
        c, other = await two(ctx)
        await c.cmd("a NOTIFY SET (personal (MailboxName SubscriptionChange))")
        await other.cmd("x CREATE NewMailbox")
        assert await c.changed() == b'* LIST (\\HasNoChildren) "/" NewMailbox\r\n'
        await other.cmd("x RENAME NewMailbox Renamed")
        assert await c.changed() == b'* LIST (\\HasNoChildren) "/" Renamed ("OLDNAME" (NewMailbox))\r\n'
        await other.cmd("x SUBSCRIBE Renamed")
        assert await c.changed() == b'* LIST (\\HasNoChildren \\Subscribed) "/" Renamed\r\n'
        await other.cmd("x DELETE Renamed")
        # Subscriptions are names: it stays subscribed.
        assert await c.changed() == b'* LIST (\\NonExistent \\Subscribed) "/" Renamed\r\n'
        await other.cmd("x UNSUBSCRIBE Renamed")
        assert await c.changed() == b'* LIST (\\NonExistent) "/" Renamed\r\n'

    asyncio.run(go())


def test_rfc5465_section_5_6_and_5_7_examples(ctx: Context) -> None:
    async def go() -> None:
        c, other = await two(ctx)
        # No ENABLE METADATA needed (5.6, 5.7).
        out = await c.cmd("a NOTIFY SET (personal (MailboxMetadataChange ServerMetadataChange))")
        assert out == b"a OK NOTIFY completed\r\n"
        await other.cmd('x SETMETADATA INBOX (/shared/comment "Its sunny outside!")')
        assert await c.changed() == b"* METADATA INBOX /shared/comment\r\n"
        await other.cmd('x SETMETADATA "" (/shared/comment "My comment")')
        assert await c.changed() == b'* METADATA "" /shared/comment\r\n'

    asyncio.run(go())


# --- metadata -----------------------------------------------------------------------------------


def test_metadata_changes_name_the_entries_that_changed(ctx: Context) -> None:
    async def go() -> None:
        c, other = await two(ctx)
        await other.cmd('x SETMETADATA INBOX (/shared/comment "a" /private/comment "b")')
        await c.cmd("a NOTIFY SET (personal (MailboxMetadataChange))")
        # 4.4.2 of RFC 5464: names only; both scopes are this user's own.
        await other.cmd('x SETMETADATA INBOX (/shared/comment "new" /private/comment "b" /private/x "c")')
        assert await c.changed() == b"* METADATA INBOX /private/x /shared/comment\r\n"
        # 5.6: a removed entry is always named; one that was not there is no change.
        await other.cmd("x SETMETADATA INBOX (/private/x NIL /private/never NIL)")
        assert await c.changed() == b"* METADATA INBOX /private/x\r\n"
        await other.cmd('x SETMETADATA INBOX (/shared/comment "new")')
        assert await c.changed() == b""
        # Changes waiting together are told together, each entry once.
        await other.cmd('x SETMETADATA Sent (/shared/a "1")')
        await other.cmd('x SETMETADATA Sent (/shared/b "1" /shared/a "2")')
        await other.cmd('x SETMETADATA INBOX (/shared/comment NIL)')
        assert await c.changed() == b"* METADATA Sent /shared/a /shared/b\r\n* METADATA INBOX /shared/comment\r\n"
        # Server entries need ServerMetadataChange.
        await other.cmd('x SETMETADATA "" (/shared/comment "x")')
        assert await c.changed() == b""
        # Mailbox names in the client's spelling (modified UTF-7 before UTF8=ACCEPT).
        await other.cmd("x CREATE &AMk-t&AOk-")
        await other.cmd('x SETMETADATA &AMk-t&AOk- (/shared/comment "x")')
        assert await c.changed() == b"* METADATA &AMk-t&AOk- /shared/comment\r\n"

    asyncio.run(go())


def test_metadata_events_follow_the_groups_and_leave_out_the_clients_own(ctx: Context) -> None:
    async def go() -> None:
        c, other = await two(ctx)
        await other.cmd("x CREATE Lists/Lemonade")
        await c.cmd("s SELECT INBOX")
        await c.cmd(
            "a NOTIFY SET (selected (MessageNew MessageExpunge)) (subtree Lists (MailboxMetadataChange))"
            " (mailboxes INBOX (MailboxMetadataChange)) (inboxes (ServerMetadataChange))"
        )
        await other.cmd('x SETMETADATA Lists/Lemonade (/shared/comment "x")')
        await other.cmd('x SETMETADATA Sent (/shared/comment "x")')  # no group names Sent
        # The selected mailbox's metadata is no message event: the other groups say (6).
        await other.cmd('x SETMETADATA INBOX (/shared/comment "x")')
        await other.cmd('x SETMETADATA "" (/private/comment "x")')
        assert await c.changed() == (
            b"* METADATA Lists/Lemonade /shared/comment\r\n* METADATA INBOX /shared/comment\r\n"
            b'* METADATA "" /private/comment\r\n'
        )
        # 5: the client's own SETMETADATA is not told to it.
        out = await c.cmd('b SETMETADATA Lists/Lemonade (/shared/comment "mine")')
        assert out == b"b OK SETMETADATA completed\r\n"
        assert await c.changed() == b""
        # A mailbox deleted meanwhile is told by its MailboxName event, if asked for, not here.
        await other.cmd('x SETMETADATA Lists/Lemonade (/shared/comment "gone")')
        await other.cmd("x DELETE Lists/Lemonade")
        assert await c.changed() == b""
        # NOTIFY NONE: nothing.
        await c.cmd("n NOTIFY NONE")
        await other.cmd('x SETMETADATA INBOX (/shared/comment "y")')
        assert await c.changed() == b""

    asyncio.run(go())


def test_metadata_entries_count_towards_the_overflow(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notifier_module, "MAX_PENDING", 3)

    async def go() -> None:
        c, other = await two(ctx)
        await c.cmd("a NOTIFY SET (personal (MailboxMetadataChange))")
        assert (await c.cmd(f"b APPEND Sent {{{len(MORNING)}}}")).startswith(b"+ ")
        await other.cmd('x SETMETADATA INBOX (/shared/a "1" /shared/b "1" /shared/c "1")')
        await other.cmd('x SETMETADATA INBOX (/shared/a "2")')  # named already: still three
        assert await c.changed() == b""
        await other.cmd('x SETMETADATA INBOX (/shared/d "1")')
        out = await c.send(MORNING + b"\r\n")
        assert out.startswith(b"* OK [NOTIFICATIONOVERFLOW] ") and b"METADATA" not in out, out

    asyncio.run(go())


# --- mailbox names ---------------------------------------------------------------------------


def test_create_delete_tell_the_parent_and_a_renamed_hierarchy_is_one_event(ctx: Context) -> None:
    async def go() -> None:
        c, other = await two(ctx)
        await c.cmd("a NOTIFY SET (subtree Work (MailboxName))")
        await other.cmd("x CREATE Work/Projects/2026")
        assert lines(await c.changed()) == [
            b'* LIST (\\HasChildren) "/" Work',
            b'* LIST (\\HasChildren) "/" Work/Projects',
            b'* LIST (\\HasNoChildren) "/" Work/Projects/2026',
        ]
        await other.cmd("x CREATE Elsewhere")
        assert await c.changed() == b""
        await other.cmd("x DELETE Work/Projects/2026")
        assert lines(await c.changed()) == [
            b'* LIST (\\NonExistent) "/" Work/Projects/2026', b'* LIST (\\HasNoChildren) "/" Work/Projects',
        ]
        # Renamed out of the subtree: still told (the old name is watched); children not.
        await other.cmd("x RENAME Work Play")
        assert await c.changed() == b'* LIST (\\HasChildren) "/" Play ("OLDNAME" (Work))\r\n'
        await other.cmd("x RENAME Play/Projects Work")
        assert await c.changed() == b'* LIST (\\HasNoChildren) "/" Work ("OLDNAME" (Play/Projects))\r\n'

    asyncio.run(go())


def test_filter_names_are_spelled_as_mailbox_names(ctx: Context) -> None:
    async def go() -> None:
        c, other = await two(ctx)
        # INBOX in any case, also as a parent; a trailing delimiter as CREATE takes it.
        out = await c.cmd('a NOTIFY SET (subtree inbox/ (MailboxName)) (mailboxes (Inbox/Sub "nope*") (MessageNew))')
        assert out == b"a OK NOTIFY completed\r\n"
        await other.cmd("x CREATE inBox/Sub")
        out = lines(await c.changed())
        assert out[:2] == [b'* LIST (\\HasNoChildren) "/" INBOX/Sub', b'* LIST (\\HasChildren \\Subscribed) "/" INBOX']
        assert re.fullmatch(rb"\* STATUS INBOX/Sub \(MESSAGES 0 UIDNEXT 1 UIDVALIDITY \d+ UNSEEN 0\)", out[2]), out
        await deliver(ctx, "INBOX/Sub")
        assert await c.changed() == b"* STATUS INBOX/Sub (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n"
        # No wildcards in MAILBOXES (6.6).
        await other.cmd("x CREATE nopeX")
        await deliver(ctx, "nopeX")
        assert await c.changed() == b""

    asyncio.run(go())


def test_renaming_inbox_is_a_rename_to_the_new_name(ctx: Context) -> None:
    async def go() -> None:
        c, other = await two(ctx)
        await deliver(ctx)
        await c.cmd("a NOTIFY SET (personal (MailboxName MessageNew MessageExpunge))")
        await other.cmd("x RENAME INBOX Old/2026")
        out = lines(await c.changed())
        assert out[:2] == [
            b'* LIST (\\HasChildren) "/" Old',  # made as the new name's parent
            b'* LIST (\\HasNoChildren) "/" Old/2026 ("OLDNAME" (INBOX))',
        ], out
        # INBOX lost its message, the new mailbox has it; the parent is new.
        assert b"* STATUS INBOX (MESSAGES 0 UIDNEXT 2 UNSEEN 0)" in out
        assert b"* STATUS Old/2026 (MESSAGES 1 UIDNEXT 2 UNSEEN 1)" in out
        assert any(re.fullmatch(rb"\* STATUS Old \(MESSAGES 0 UIDNEXT 1 UIDVALIDITY \d+ UNSEEN 0\)", x) for x in out)
        assert len(out) == 5, out

    asyncio.run(go())


def test_names_in_modified_utf7_and_utf8(ctx: Context) -> None:
    async def go() -> None:
        c, other = await two(ctx)
        await c.cmd("a NOTIFY SET (mailboxes (Entw&APw-rfe) (MessageNew MessageExpunge MailboxName))")
        await other.cmd("x ENABLE UTF8=ACCEPT")
        await other.cmd('x CREATE "Entwürfe"'.encode())
        out = lines(await c.changed())
        assert out[0] == b'* LIST (\\HasNoChildren) "/" Entw&APw-rfe'
        assert re.fullmatch(rb"\* STATUS Entw&APw-rfe \(MESSAGES 0 UIDNEXT 1 UIDVALIDITY \d+ UNSEEN 0\)", out[1]), out
        await c.cmd("e ENABLE UTF8=ACCEPT")
        await deliver(ctx, "Entwürfe")
        assert await c.changed() == "* STATUS \"Entwürfe\" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n".encode()

    asyncio.run(go())


# --- the selected mailbox --------------------------------------------------------------------


def test_selected_delayed_holds_expunges_for_a_command_that_may_report_them(ctx: Context) -> None:
    async def go() -> None:
        c, other = await two(ctx)
        for _ in range(2):
            await deliver(ctx)
        await c.cmd("e ENABLE IMAP4rev2")
        await c.cmd("s SELECT INBOX")
        await other.cmd("s SELECT INBOX")
        await c.cmd("a NOTIFY SET (selected-delayed (MessageNew MessageExpunge))")
        await other.cmd("x STORE 1 +FLAGS (\\Deleted)")
        assert await c.changed() == b""  # no FlagChange asked for
        await other.cmd("x EXPUNGE")
        assert await c.changed() == b""
        await deliver(ctx)
        assert await c.changed() == b"* 3 EXISTS\r\n"  # other events may go at once
        out = await c.cmd("f FETCH 2 (UID)")  # FETCH may not report expunges (RFC 9051 7.5.1)
        assert out == b"* 2 FETCH (UID 2)\r\nf OK FETCH completed\r\n"
        assert await c.cmd("n NOOP") == b"* 1 EXPUNGE\r\nn OK NOOP completed\r\n"

    asyncio.run(go())


def test_selected_tells_expunges_at_once_even_after_fetch(ctx: Context) -> None:
    async def go() -> None:
        c, other = await two(ctx)
        for _ in range(3):
            await deliver(ctx)
        await c.cmd("s SELECT INBOX")
        await other.cmd("s SELECT INBOX")
        await c.cmd("a NOTIFY SET (selected (MessageNew MessageExpunge))")
        await other.cmd("x STORE 1:2 +FLAGS (\\Deleted)")
        await other.cmd("x EXPUNGE")
        # 5.3: a client that asked for SELECTED MessageExpunge cannot rely on numbers;
        # they change at the end of a FETCH too (not before it: the command's numbers
        # are the ones the client knew).
        out = await c.cmd("f FETCH 3 (UID)")
        assert out == b"* 3 FETCH (UID 3)\r\n* 2 EXPUNGE\r\n* 1 EXPUNGE\r\nf OK FETCH completed\r\n", out

    asyncio.run(go())


def test_without_selected_the_view_stays_as_the_client_knows_it(ctx: Context) -> None:
    async def go() -> None:
        c, other = await two(ctx)
        await deliver(ctx)
        await c.cmd("e ENABLE IMAP4rev2")
        await c.cmd("s SELECT INBOX")
        await other.cmd("s SELECT INBOX")
        # 3.1: no SELECTED, no message events for the selected mailbox, not even at the
        # end of commands: a snapshot.
        assert await c.cmd("a NOTIFY SET (personal (MailboxName))") == b"a OK NOTIFY completed\r\n"
        await deliver(ctx)
        await other.cmd("x STORE 1 +FLAGS (\\Deleted)")
        await other.cmd("x EXPUNGE")
        assert await c.changed() == b""
        assert await c.cmd("n NOOP") == b"n OK NOOP completed\r\n"
        assert await c.cmd("i IDLE") == b"+ idling\r\n"
        await deliver(ctx)
        assert await c.changed() == b""
        assert await c.cmd("DONE") == b"i OK IDLE terminated\r\n"
        # The message expunged meanwhile is answered as such.
        assert b"EXPUNGEISSUED" in await c.cmd("f FETCH 1 (FLAGS)")
        # Asking for SELECTED again: what accumulated comes with NOTIFY's answer (3.1).
        out = await c.cmd("b NOTIFY SET (selected (MessageNew MessageExpunge))")
        assert out == b"* 1 EXPUNGE\r\n* 2 EXISTS\r\nb OK NOTIFY completed\r\n", out
        # NOTIFY NONE is a snapshot too.
        await c.cmd("c NOTIFY NONE")
        await deliver(ctx)
        assert await c.cmd("n NOOP") == b"n OK NOOP completed\r\n"

    asyncio.run(go())


def test_the_clients_own_changes_are_not_told(ctx: Context) -> None:
    async def go() -> None:
        c, other = await two(ctx)
        await c.cmd("e ENABLE IMAP4rev2")
        await c.cmd("s SELECT INBOX")
        await c.cmd("a NOTIFY SET (selected (MessageNew (UID) MessageExpunge)) (personal (MessageNew MessageExpunge MailboxName SubscriptionChange))")
        # 5.2: EXISTS for its own APPEND to the selected mailbox, but no FETCH.
        out = await c.send(append("b", "INBOX"))
        assert out.startswith(b"* 1 EXISTS\r\nb OK [APPENDUID "), out
        # 5: none of its own doing elsewhere either.
        for line in (append("d", "Sent"), b"f CREATE Mine", b"g SUBSCRIBE Mine", b"h RENAME Mine Yours"):
            out = await c.send(line + b"\r\n")
            assert out.count(b"\r\n") == 1 and b" OK " in out, out
        assert await c.changed() == b""
        # Another session's append to the selected mailbox is fetched.
        await other.send(append("x", "INBOX"))
        assert await c.changed() == b"* 2 EXISTS\r\n* 2 FETCH (UID 2)\r\n"
        # Its COPY into the selected mailbox is its own again.
        out = await c.cmd("k COPY 1 INBOX")
        assert out.startswith(b"* 3 EXISTS\r\nk OK [COPYUID "), out

    asyncio.run(go())


# --- when events go out -------------------------------------------------------------------


def test_between_commands_never_inside_one(ctx: Context) -> None:
    async def go() -> None:
        c, _ = await two(ctx)
        # Before NOTIFY nothing is said between commands.
        await c.cmd("s SELECT Drafts")
        await deliver(ctx, "Drafts")
        assert await c.changed() == b""
        await c.cmd("a NOTIFY SET (inboxes (MessageNew MessageExpunge))")
        # A command whose literal is on its way: the event waits for its end.
        assert (await c.cmd(f"b APPEND Sent {{{len(MORNING)}}}")).startswith(b"+ ")
        await deliver(ctx)
        assert await c.changed() == b""
        out = await c.send(MORNING + b"\r\n")
        assert out.startswith(b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\nb OK [APPENDUID "), out
        # In IDLE, with no mailbox selected.
        await c.cmd("u UNSELECT")
        assert await c.cmd("i IDLE") == b"+ idling\r\n"
        await deliver(ctx)
        assert await c.changed() == b"* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UNSEEN 2)\r\n"
        assert await c.cmd("DONE") == b"i OK IDLE terminated\r\n"

    asyncio.run(go())


def test_the_watch_follows_notify_and_the_login(ctx: Context) -> None:
    async def go() -> None:
        c, _ = await two(ctx)
        s = c.session
        assert s.subscription is None
        await c.cmd("a NOTIFY SET (selected (MessageNew MessageExpunge))")
        assert s.subscription is None  # nothing to watch without a selected mailbox
        await c.cmd("b NOTIFY SET (personal (MailboxName))")
        assert s.subscription is not None
        await c.cmd("s SELECT INBOX")
        await c.cmd("u UNSELECT")
        assert s.subscription is not None
        await c.cmd("c NOTIFY NONE")
        assert s.subscription is None
        await c.cmd("d NOTIFY SET (personal (MailboxName))")
        await c.cmd("x UNAUTHENTICATE")
        assert s.subscription is None and s.notify is None

    asyncio.run(go())


# --- NOTIFICATIONOVERFLOW ----------------------------------------------------------------------


def test_too_many_waiting_events_overflow(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notifier_module, "MAX_PENDING", 3)

    async def go() -> None:
        c, other = await two(ctx)
        for i in range(4):
            await other.cmd(f"x CREATE box{i}")
        await c.cmd("a NOTIFY SET (personal (MessageNew MessageExpunge))")
        assert (await c.cmd(f"b APPEND Sent {{{len(MORNING)}}}")).startswith(b"+ ")
        for i in range(3):  # one mailbox each: three wait (several changes of one are one)
            await deliver(ctx, f"box{i}")
            await deliver(ctx, f"box{i}")
            assert await c.changed() == b""
        await deliver(ctx, "box3")
        assert await c.changed() == b""
        out = await c.send(MORNING + b"\r\n")
        # 5.8: said, and then as after NOTIFY NONE.
        assert out.startswith(b"* OK [NOTIFICATIONOVERFLOW] "), out
        assert b"STATUS" not in out and c.session.subscription is None
        await deliver(ctx)
        assert await c.cmd("n NOOP") == b"n OK NOOP completed\r\n"
        # A new NOTIFY SET starts afresh.
        await c.cmd("d NOTIFY SET (personal (MessageNew MessageExpunge))")
        await deliver(ctx, "box0")
        assert await c.changed() == b"* STATUS box0 (MESSAGES 3 UIDNEXT 4 UNSEEN 3)\r\n"

    asyncio.run(go())


def test_changes_the_feed_dropped_overflow(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed_module, "MAX_PENDING", 4)

    async def go() -> None:
        c, other = await two(ctx)
        await c.cmd("s SELECT INBOX")
        await c.cmd("a NOTIFY SET (selected (MessageNew MessageExpunge)) (personal (MailboxName))")
        for i in range(5):  # the session is not woken meanwhile (its client does not read)
            await other.cmd(f"x CREATE box{i}")
        await deliver(ctx)
        out = await c.changed()
        assert out.startswith(b"* OK [NOTIFICATIONOVERFLOW] ") and b"LIST" not in out, out
        # The selected mailbox lost nothing, but NOTIFY is NONE now: a snapshot.
        assert await c.cmd("n NOOP") == b"n OK NOOP completed\r\n"
        out = await c.cmd("b NOTIFY SET (selected (MessageNew MessageExpunge))")
        assert out.startswith(b"* 1 EXISTS\r\n"), out

    asyncio.run(go())


# --- a real server -------------------------------------------------------------------------------

PW = "secret"


class Wire:
    """A raw IMAP connection that reads line by line (no literals in what these tests await)."""

    def __init__(self, srv: ServerProcess, user: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", srv.port("imap")), timeout=15)
        self.file = self.sock.makefile("rb")
        self.file.readline()
        self.cmd(f"l LOGIN {user} {PW}")

    def cmd(self, line: str) -> list[bytes]:
        tag = line.split(" ", 1)[0].encode()
        self.sock.sendall(line.encode() + b"\r\n")
        got = self.until(re.escape(tag) + rb" ")
        assert got[-1].startswith(tag + b" OK"), got
        return got

    def until(self, pattern: bytes) -> list[bytes]:
        """Lines up to one matching *pattern* (the socket's timeout fails the test)."""
        got = []
        while True:
            line = self.file.readline()
            assert line, f"connection closed; got {got!r}"
            got.append(line.rstrip(b"\r\n"))
            if re.match(pattern, got[-1]):
                return got

    def close(self) -> None:
        self.sock.close()


def test_real_server_delivery_expunge_and_mailbox_events(server: ServerProcess) -> None:
    user = server.add_user("notified@example.com", PW)
    watcher, other = Wire(server, user), Wire(server, user)
    try:
        assert b"NOTIFY" in b" ".join(watcher.cmd("c CAPABILITY"))
        watcher.cmd("s SELECT Drafts")
        watcher.cmd(
            "n NOTIFY SET (selected (MessageNew MessageExpunge)) "
            "(personal (MessageNew MessageExpunge MailboxName SubscriptionChange))"
        )
        # A delivery by LMTP to INBOX: STATUS, with no command from the client.
        with smtplib.LMTP("127.0.0.1", server.port("lmtp")) as lmtp:
            lmtp.sendmail("a@example.org", [user], b"Subject: hi\r\n\r\nbody\r\n")
        assert watcher.until(rb"\* STATUS")[-1] == b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"
        # Another session's APPEND and EXPUNGE in the selected mailbox.
        other.sock.sendall(b"a APPEND Drafts {4+}\r\nhi\r\n\r\n")
        other.until(rb"a OK")
        assert watcher.until(rb"\* \d+ EXISTS")[-1] == b"* 1 EXISTS"
        other.cmd("s SELECT Drafts")
        other.cmd("e STORE 1 +FLAGS (\\Deleted)")
        other.cmd("x EXPUNGE")
        assert watcher.until(rb"\* \d+ EXPUNGE")[-1] == b"* 1 EXPUNGE"
        # CREATE, RENAME, DELETE, SUBSCRIBE by another session.
        other.cmd("x CREATE Projects")
        assert watcher.until(rb"\* LIST")[-1] == b'* LIST (\\HasNoChildren) "/" Projects'
        other.cmd("x RENAME Projects Done")
        assert watcher.until(rb"\* LIST")[-1] == b'* LIST (\\HasNoChildren) "/" Done ("OLDNAME" (Projects))'
        other.cmd("x SUBSCRIBE Done")
        assert watcher.until(rb"\* LIST")[-1] == b'* LIST (\\HasNoChildren \\Subscribed) "/" Done'
        other.cmd("x DELETE Done")
        assert watcher.until(rb"\* LIST")[-1] == b'* LIST (\\NonExistent \\Subscribed) "/" Done'
        # SETMETADATA by another session (5.6, 5.7).
        watcher.cmd("m NOTIFY SET (personal (MailboxMetadataChange ServerMetadataChange))")
        other.cmd('x SETMETADATA INBOX (/private/comment "hello")')
        assert watcher.until(rb"\* METADATA")[-1] == b"* METADATA INBOX /private/comment"
        other.cmd('x SETMETADATA "" (/shared/comment NIL /private/comment "x")')
        assert watcher.until(rb"\* METADATA")[-1] == b'* METADATA "" /private/comment'
        # Nothing else was queued: the next answer is NOOP's own.
        assert watcher.cmd("z NOOP") == [b"z OK NOOP completed"]
    finally:
        watcher.close()
        other.close()


# --- shared mailboxes (RFC 4314) ------------------------------------------------------------

INFO, ANN, BOB, EVE = "info@example.com", "ann@example.com", "rob@example.com", "eve@example.com"
TEAM = f"Shared/{INFO}/INBOX"


@pytest.fixture
def team(ctx: Context) -> Context:
    """info@ shares its INBOX with Ann and Bob; Notes only listed for Ann; Private not."""
    for user in (INFO, ANN, BOB, EVE):
        add_user(ctx, user)

    async def go() -> None:
        info = await ctx.store.account(INFO)
        await info.append("INBOX", MORNING)
        for name in ("Notes", "Private"):
            await info.create_mailbox(name)
        await info.set_acl("INBOX", ANN, "lrswi")
        await info.set_acl("INBOX", BOB, "lrswi")
        await info.set_acl("Notes", ANN, "l")

    asyncio.run(go())
    return ctx


async def as_user(ctx: Context, user: str) -> Client:
    c = Client(ctx)
    await c.login(user)
    return c


async def info_store(ctx: Context):  # type: ignore[no-untyped-def]
    return await ctx.store.account(INFO)


def test_personal_and_inboxes_are_the_users_own_mailboxes_rfc5465_6_2(team: Context) -> None:
    async def go() -> None:
        a = await as_user(team, ANN)
        out = await a.cmd("a NOTIFY SET STATUS (personal (MessageNew MessageExpunge MailboxName MailboxMetadataChange))"
                          " (inboxes (MessageNew MessageExpunge))")
        assert b"Shared" not in out and b"a OK" in out, out
        info = await info_store(team)
        await info.append("INBOX", MORNING)
        await info.create_mailbox("INBOX/Support")
        await info.set_metadata("INBOX", [("/shared/comment", b"x")])
        assert await a.changed() == b""
        await deliver_to(team, ANN)
        assert await a.changed() == b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n"
        assert a.session.subscription is not None and a.session.subscription.addresses == {ANN}
        # Also while another group has the owner's account followed.
        await a.cmd(f"b NOTIFY SET (personal (MessageNew MessageExpunge MailboxMetadataChange))"
                    f" (mailboxes Shared/{INFO}/Notes (MailboxName))")
        assert a.session.subscription.addresses == {ANN, INFO}
        await info.append("INBOX", MORNING)
        await info.set_metadata("INBOX", [("/shared/comment", b"y")])
        assert await a.changed() == b""

    asyncio.run(go())


async def deliver_to(ctx: Context, user: str, mailbox: str = "INBOX") -> None:
    await (await ctx.store.account(user)).append(mailbox, MORNING)


def test_subtree_and_mailboxes_reach_shared_mailboxes_the_user_may_read(team: Context) -> None:
    async def go() -> None:
        a = await as_user(team, ANN)
        # 3.1: STATUS for what the user may read; \NoAccess for one listed but not
        # readable; nothing at all for one the user may not see.
        out = await a.cmd(
            f"a NOTIFY SET STATUS (subtree Shared/{INFO} (MessageNew MessageExpunge FlagChange "
            f"MailboxMetadataChange)) (mailboxes Shared/{INFO}/Private (MessageNew MessageExpunge))"
        )
        assert lines(out) == [
            f'* LIST (\\NoAccess) "/" Shared/{INFO}/Notes'.encode(),
            f"* STATUS {TEAM} (MESSAGES 1 UIDNEXT 2 UIDVALIDITY ".encode() + lines(out)[1].split(b"UIDVALIDITY ")[1],
            b"a OK NOTIFY completed",
        ], out
        assert b"UNSEEN 1 HIGHESTMODSEQ" in out
        assert a.session.subscription is not None and a.session.subscription.addresses == {ANN, INFO}
        info = await info_store(team)
        # The owner's delivery, as Ann reads the mailbox (her own \Seen).
        await (await as_user(team, ANN)).cmd(f"s SELECT {TEAM}")
        await info.append("INBOX", MORNING)
        assert await a.changed() == f"* STATUS {TEAM} (MESSAGES 2 UIDNEXT 3 UNSEEN 2)\r\n".encode()
        # Nothing of the mailboxes she may not read.
        await info.append("Notes", MORNING)
        await info.append("Private", MORNING)
        assert await a.changed() == b""
        # Metadata: the mailbox's /shared entries; nobody else's /private ones, nor the
        # owner's server entries.
        await info.set_metadata("INBOX", [("/shared/comment", b"x"), ("/private/comment", b"mine")])
        assert await a.changed() == f"* METADATA {TEAM} /shared/comment\r\n".encode()
        b = await as_user(team, BOB)
        await b.cmd(f'x SETMETADATA {TEAM} (/private/comment "bob\'s" /shared/other "y")')
        assert await a.changed() == f"* METADATA {TEAM} /shared/other\r\n".encode()
        await info.set_metadata(None, [("/shared/comment", b"x")])
        await info.set_metadata("Notes", [("/shared/comment", b"x")])
        await info.set_subscribed("Notes", True)
        assert await a.changed() == b""
        # Ann's own changes there are not told to her.
        await a.cmd(f'b SETMETADATA {TEAM} (/shared/comment "z")')
        assert await a.changed() == b""

    asyncio.run(go())


def test_mailbox_names_in_shared_accounts_follow_the_l_right_rfc5465_5_4(team: Context) -> None:
    async def go() -> None:
        a = await as_user(team, ANN)
        await a.cmd("a NOTIFY SET (subtree Shared (MailboxName))")
        info = await info_store(team)
        # A mailbox made below the shared INBOX inherits its ACL: Ann sees it made.
        await info.create_mailbox("INBOX/Support")
        assert await a.changed() == (
            f'* LIST (\\HasNoChildren) "/" {TEAM}/Support\r\n'
            f'* LIST (\\HasChildren) "/" {TEAM}\r\n'
        ).encode()
        await info.rename_mailbox("INBOX/Support", "INBOX/Help")
        assert await a.changed() == f'* LIST (\\HasNoChildren) "/" {TEAM}/Help ("OLDNAME" ({TEAM}/Support))\r\n'.encode()
        await info.delete_mailbox("INBOX/Help")
        assert await a.changed() == (
            f'* LIST (\\NonExistent) "/" {TEAM}/Help\r\n* LIST (\\HasNoChildren) "/" {TEAM}\r\n'
        ).encode()
        # Not for mailboxes she may not see.
        await info.create_mailbox("Private/Sub")
        await info.rename_mailbox("Private/Sub", "Private/Other")
        await info.delete_mailbox("Private/Other")
        assert await a.changed() == b""
        # Granting "l" is a creation, taking it away a deletion; other rights are no news.
        await info.set_acl("Private", ANN, "l")
        assert await a.changed() == (
            f'* LIST (\\Noselect \\HasNoChildren) "/" Shared/{INFO}/Private\r\n'
            f'* LIST (\\Noselect \\HasChildren) "/" Shared/{INFO}\r\n'
        ).encode()
        await info.set_acl("Private", ANN, "lr")
        assert await a.changed() == b""
        await info.set_acl("Private", ANN, "")
        assert await a.changed() == (
            f'* LIST (\\NonExistent) "/" Shared/{INFO}/Private\r\n'
            f'* LIST (\\Noselect \\HasChildren) "/" Shared/{INFO}\r\n'
        ).encode()
        # Also through "anyone", and from an account that shared nothing with her before,
        # whose changes she then hears of.
        eve = await team.store.account(EVE)
        await eve.set_acl("INBOX", "anyone", "lr")
        assert await a.changed() == (
            f'* LIST (\\HasNoChildren) "/" Shared/{EVE}/INBOX\r\n'
            f'* LIST (\\Noselect \\HasChildren) "/" Shared/{EVE}\r\n'
        ).encode()
        assert EVE in a.session.subscription.addresses  # type: ignore[union-attr]
        await eve.create_mailbox("INBOX/Sub")
        assert f"Shared/{EVE}/INBOX/Sub".encode() in await a.changed()
        # The owner's subscriptions are the owner's.
        await info.set_subscribed("INBOX", False)
        assert await a.changed() == b""

    asyncio.run(go())


def test_losing_and_regaining_access_shows_as_noaccess_rfc5465_5_9(team: Context) -> None:
    async def go() -> None:
        a = await as_user(team, ANN)
        assert (await a.cmd(f"a NOTIFY SET (mailboxes {TEAM} (MessageNew MessageExpunge))")).startswith(b"a OK")
        info = await info_store(team)
        await info.set_acl("INBOX", ANN, "lsw")  # "r" taken away: monitoring stops
        assert await a.changed() == f'* LIST (\\NoAccess) "/" {TEAM}\r\n'.encode()
        await info.append("INBOX", MORNING)
        await info.set_acl("INBOX", ANN, "l")
        assert await a.changed() == b""
        await info.set_acl("INBOX", ANN, "lr")  # and back again
        assert await a.changed() == f'* LIST (\\HasNoChildren) "/" {TEAM}\r\n'.encode()
        await info.append("INBOX", MORNING)
        assert await a.changed() == f"* STATUS {TEAM} (MESSAGES 3 UIDNEXT 4 UNSEEN 3)\r\n".encode()
        await info.set_acl("INBOX", ANN, "")  # 5.9: no longer listable
        assert await a.changed() == f'* LIST (\\NoAccess) "/" {TEAM}\r\n'.encode()
        await info.append("INBOX", MORNING)
        await info.set_metadata("INBOX", [("/shared/comment", b"x")])
        assert await a.changed() == b""

    asyncio.run(go())


def test_subscribed_reaches_the_shared_mailboxes_the_user_subscribed(team: Context) -> None:
    async def go() -> None:
        a, other = await as_user(team, ANN), await as_user(team, ANN)
        await other.cmd(f"x SUBSCRIBE {TEAM}")
        await a.cmd("a NOTIFY SET (subscribed (MessageNew MessageExpunge SubscriptionChange))")
        info = await info_store(team)
        await info.append("INBOX", MORNING)
        assert await a.changed() == f"* STATUS {TEAM} (MESSAGES 2 UIDNEXT 3 UNSEEN 2)\r\n".encode()
        await other.cmd(f"x UNSUBSCRIBE {TEAM}")
        assert await a.changed() == f'* LIST (\\HasNoChildren) "/" {TEAM}\r\n'.encode()
        await info.append("INBOX", MORNING)
        assert await a.changed() == b""

    asyncio.run(go())


def test_a_selected_shared_mailbox_stops_being_told_once_r_is_gone(team: Context) -> None:
    async def go() -> None:
        a = await as_user(team, ANN)
        await a.cmd(f"s SELECT {TEAM}")
        await a.cmd("a NOTIFY SET (selected (MessageNew (UID) MessageExpunge))")
        info = await info_store(team)
        await info.append("INBOX", MORNING)
        out = await a.changed()
        assert out.startswith(b"* 2 EXISTS\r\n") and out.endswith(b"* 2 FETCH (UID 2)\r\n"), out
        # Between commands, as soon as the ACL changes: no more of its events.
        await info.set_acl("INBOX", ANN, "l")
        await info.append("INBOX", MORNING)
        out = await a.changed()
        assert out.startswith(b"* BYE ") and b"EXISTS" not in out, out
        assert a.session.closing

    asyncio.run(go())


def test_real_server_acl_changes_by_the_cli_reach_notify_sessions(server: ServerProcess) -> None:
    owner = server.add_user("team@example.com", PW)
    user = server.add_user("staff@example.com", PW)
    watcher = Wire(server, user)
    try:
        watcher.cmd("n NOTIFY SET (subtree Shared (MessageNew MessageExpunge MailboxName))")
        # `letterbox acl` writes the owner's index in another process and tells the server.
        server.cli("acl", "set", owner, "INBOX", user, "lr")
        got = watcher.until(rb"\* LIST .* Shared/team@example.com$")  # the mailbox, then its parent
        assert got[-2:] == [
            b'* LIST (\\HasNoChildren) "/" Shared/team@example.com/INBOX',
            b'* LIST (\\Noselect \\HasChildren) "/" Shared/team@example.com',
        ], got
        with smtplib.LMTP("127.0.0.1", server.port("lmtp")) as lmtp:
            lmtp.sendmail("a@example.org", [owner], b"Subject: hi\r\n\r\nbody\r\n")
        line = watcher.until(rb"\* STATUS")[-1]
        assert line == b"* STATUS Shared/team@example.com/INBOX (MESSAGES 1 UIDNEXT 2 UNSEEN 1)", line
        server.cli("acl", "delete", owner, "INBOX", user)
        line = watcher.until(rb"\* LIST")[-1]
        assert line == b'* LIST (\\NonExistent) "/" Shared/team@example.com/INBOX', line
        watcher.until(rb"\* LIST")  # its parent, the owner's level
        with smtplib.LMTP("127.0.0.1", server.port("lmtp")) as lmtp:
            lmtp.sendmail("a@example.org", [owner], b"Subject: again\r\n\r\nbody\r\n")
        assert watcher.cmd("z NOOP") == [b"z OK NOOP completed"]
    finally:
        watcher.close()
