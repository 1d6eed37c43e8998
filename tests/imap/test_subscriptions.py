"""Subscriptions are names, independent of mailboxes (RFC 9051 6.3.7, RFC 3501 6.3.6 and
6.3.9, RFC 5258 3), and the other mailbox fixes of the same family: MOVE into the
selected mailbox, STORE on expunged messages, one table of STATUS items."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from letterbox.imap.grammar.parser import STATUS_ITEMS
from letterbox.service.context import Context

from .imaputil import Client, add_user, make_context

USER = "subs@example.com"


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    c = make_context(tmp_path)
    add_user(c, USER)
    return c


async def client(ctx: Context) -> Client:
    c = Client(ctx)
    await c.login(USER)
    return c


def lines(out: bytes) -> list[bytes]:
    return [line for line in out.split(b"\r\n") if line.startswith(b"* ")]


def test_subscriptions_outlive_their_mailbox_and_may_name_none(ctx: Context) -> None:
    async def go() -> None:
        c = await client(ctx)
        for cmd in ("a CREATE Fruit/Peach", "b SUBSCRIBE Fruit/Peach", "c SUBSCRIBE nothere"):
            assert b" OK " in await c.cmd(cmd)
        assert b"d OK" in await c.cmd("d DELETE Fruit/Peach")
        # RFC 9051 6.3.7: the server MUST NOT remove a name because its mailbox is gone.
        out = await c.cmd('e LSUB "" *')
        assert b'* LSUB (\\Noselect) "/" Fruit/Peach' in out and b'* LSUB (\\Noselect) "/" nothere' in out
        # RFC 5258 3 (example 5): subscribed names without a mailbox are \NonExistent.
        out = await c.cmd('f LIST (SUBSCRIBED) "" "Fruit/*"')
        assert lines(out) == [b'* LIST (\\NonExistent \\Subscribed) "/" Fruit/Peach']
        # RENAME leaves subscriptions as they are (RFC 9051 6.3.6).
        await c.cmd("g CREATE Veg")
        await c.cmd("h SUBSCRIBE Veg")
        await c.cmd("i RENAME Veg Greens")
        out = await c.cmd('j LSUB "" *')
        assert b'"/" Veg' in out and b"Greens" not in out
        assert b"k OK" in await c.cmd("k UNSUBSCRIBE nothere")
        assert b"nothere" not in await c.cmd('l LSUB "" *')
        # Another session (or process) sees a change at once.
        other = await client(ctx)
        await c.cmd("m SUBSCRIBE Late")
        assert b'"/" Late' in await other.cmd('n LSUB "" *')

    asyncio.run(go())


def test_lsub_percent_returns_the_level_above_a_subscribed_name(ctx: Context) -> None:
    async def go() -> None:
        c = await client(ctx)
        await c.cmd("a CREATE foo/bar")
        await c.cmd("b SUBSCRIBE foo/bar")
        # RFC 3501 6.3.9: "%" returns foo, not foo/bar, flagged \Noselect.
        out = await c.cmd('c LSUB "" %')
        assert b'* LSUB (\\Noselect) "/" foo' in out and b"foo/bar" not in out
        assert b'* LSUB () "/" foo/bar' in await c.cmd('d LSUB "" foo/%')

    asyncio.run(go())


def test_list_extended_recursivematch_examples_rfc5258(ctx: Context) -> None:
    async def go() -> None:
        c = await client(ctx)
        for name in ("Foo", "Foo/Bar", "Foo/Baz", "Moo"):
            await c.cmd(f"c CREATE {name}")
        for name in ("INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"):
            await c.cmd(f"u UNSUBSCRIBE {name}")
        await c.cmd("s SUBSCRIBE Foo/Baz")
        # Example 8 A.
        assert lines(await c.cmd('a LIST (SUBSCRIBED) "" "*"')) == [b'* LIST (\\HasNoChildren \\Subscribed) "/" Foo/Baz']
        assert lines(await c.cmd('b LIST (SUBSCRIBED) "" "%"')) == []
        out = await c.cmd('c LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)')
        assert lines(out) == [b'* LIST (\\HasChildren) "/" Foo ("CHILDINFO" ("SUBSCRIBED"))']
        # Example 8 A1: Foo subscribed too.
        await c.cmd("s SUBSCRIBE Foo")
        out = await c.cmd('d LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
        assert lines(out) == [b'* LIST (\\HasChildren \\Subscribed) "/" Foo ("CHILDINFO" ("SUBSCRIBED"))']
        # Example 8 A2: the parent is not a mailbox.
        await c.cmd("e SUBSCRIBE Ghost/Child")
        out = await c.cmd('f LIST (SUBSCRIBED RECURSIVEMATCH) "" "G%"')
        assert lines(out) == [b'* LIST (\\NonExistent) "/" Ghost ("CHILDINFO" ("SUBSCRIBED"))']

    asyncio.run(go())


def test_recursivematch_suppresses_redundant_childinfo_rfc5258_3_5(ctx: Context) -> None:
    """RFC 5258 3.5: "Servers SHOULD ONLY return a non-matching mailbox name along with
    CHILDINFO if at least one matching child is not also being returned" (example 9:
    foo2 gets CHILDINFO for foo2/bar1, which "*2" does not list)."""
    async def go() -> None:
        c = await client(ctx)
        for name in ("T2/a", "T2/b", "T8/x", "T8/y"):
            await c.cmd(f"c CREATE {name}")
            await c.cmd(f"s SUBSCRIBE {name}")
        # T2/a is listed itself: a CHILDINFO on T2 would say nothing new, so T2 (not
        # subscribed) has no line at all.
        out = await c.cmd('a LIST (SUBSCRIBED RECURSIVEMATCH) "" (T2 T2/a T2/b)')
        assert lines(out) == [b'* LIST (\\HasNoChildren \\Subscribed) "/" T2/a',
                              b'* LIST (\\HasNoChildren \\Subscribed) "/" T2/b'], out
        # T8/y is not listed (the pattern "*x" misses it): T8 keeps its CHILDINFO.
        out = await c.cmd('b LIST (SUBSCRIBED RECURSIVEMATCH) "" (T8 *x)')
        assert lines(out) == [b'* LIST (\\HasChildren) "/" T8 ("CHILDINFO" ("SUBSCRIBED"))',
                              b'* LIST (\\HasNoChildren \\Subscribed) "/" T8/x'], out
        # Subscribed itself, with every subscribed child listed: no CHILDINFO.
        await c.cmd("s SUBSCRIBE T2")
        out = await c.cmd('d LIST (SUBSCRIBED RECURSIVEMATCH) "" (T2 T2/%)')
        assert lines(out)[0] == b'* LIST (\\HasChildren \\Subscribed) "/" T2', out

    asyncio.run(go())


def test_move_into_the_selected_mailbox_renumbers_the_messages(ctx: Context) -> None:
    async def go() -> None:
        acc = await ctx.store.account(USER)
        for i in range(3):
            await acc.append("INBOX", b"Subject: m%d\r\n\r\nx\r\n" % i, ["$Keep"] if i == 1 else [])
        c = await client(ctx)
        await c.cmd("s SELECT INBOX")
        out = await c.cmd("m UID MOVE 2 INBOX")
        # As Dovecot: a new UID at the end (RFC 6851 COPYUID before the EXPUNGE).
        assert b"* OK [COPYUID " in out and b" 2 4] " in out
        assert out.index(b"[COPYUID") < out.index(b"* 2 EXPUNGE") < out.index(b"* 3 EXISTS")
        out = await c.cmd("f UID FETCH 1:* (FLAGS)")
        assert b"UID 4" in out and b"$Keep" in out and b"UID 2 " not in out

    asyncio.run(go())


def test_store_on_messages_another_session_expunged_rfc2180_4_2(ctx: Context) -> None:
    async def go() -> None:
        acc = await ctx.store.account(USER)
        for _ in range(2):
            await acc.append("INBOX", b"Subject: e\r\n\r\nx\r\n")
        a = await client(ctx)
        b = await client(ctx)
        await a.cmd("s SELECT INBOX")
        await b.cmd("s SELECT INBOX")
        await b.cmd("d STORE 1 +FLAGS (\\Deleted)")
        await b.cmd("x EXPUNGE")
        # A has not been told of the EXPUNGE (STORE may not report it, RFC 9051 7.5.1).
        out = await a.cmd("t STORE 1:2 +FLAGS ($Mixed)")  # 4.2.2: OK for the rest
        assert b"* 2 FETCH" in out and out.rstrip().endswith(b"STORE completed")
        assert b"u OK" in await a.cmd("u STORE 1 +FLAGS.SILENT ($Gone)")  # 4.2.1
        out = await a.cmd("v STORE 1 +FLAGS ($Gone)")  # 4.2.3: only expunged ones
        assert b"v NO [EXPUNGEISSUED]" in out

    asyncio.run(go())


def test_every_status_item_the_parser_takes_is_answered(ctx: Context) -> None:
    async def go() -> None:
        acc = await ctx.store.account(USER)
        await acc.append("INBOX", b"Subject: d\r\n\r\n12345\r\n", ["\\Deleted"])
        await acc.append("INBOX", b"Subject: k\r\n\r\nx\r\n")
        c = await client(ctx)
        items = " ".join(sorted(STATUS_ITEMS))
        out = await c.cmd(f"s STATUS INBOX ({items})")
        assert b"s OK" in out
        for item in STATUS_ITEMS:
            assert f" {item} ".encode() in out or f"({item} ".encode() in out, item
        # RFC 9208 4.1.4: what an EXPUNGE would free.
        assert b"DELETED 1 " in out and b"DELETED-STORAGE 21" in out
        out = await c.cmd("m STATUS INBOX (MAILBOXID)")  # RFC 8474 4.3
        assert out.startswith(b"* STATUS INBOX (MAILBOXID (F") and out.endswith(b"m OK STATUS completed\r\n")
        assert b"BAD" in await c.cmd("n STATUS INBOX (NOSUCHITEM)")

    asyncio.run(go())
