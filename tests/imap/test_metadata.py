"""GETMETADATA and SETMETADATA (RFC 5464): the RFC's examples, entry names, limits and
their response codes, the server's entries, and metadata through RENAME and DELETE."""

from __future__ import annotations

import asyncio
import imaplib
from pathlib import Path

import pytest

from letterbox.auth.passwords import make_secrets
from letterbox.config import AuthSettings, IMAPSettings, LimitSettings, ServerSettings, Settings
from letterbox.server.context import build_context
from letterbox.service.context import Context

from ..conftest import ServerProcess
from .imaputil import PASSWORD, Client

USER = "meta@example.com"


def context(tmp_path: Path, admin: str = "", postmaster: str = "", **limits: int) -> Context:
    settings = Settings(
        server=ServerSettings(data_dir=tmp_path / "data", run_dir=tmp_path / "run", hostname="mail.test"),
        auth=AuthSettings(failure_delay=0),
        imap=IMAPSettings(admin=admin),
        limits=LimitSettings(**limits),
    )
    settings.delivery.postmaster = postmaster
    ctx = build_context(settings)
    ctx.directory.add(USER, make_secrets(PASSWORD))
    return ctx


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return context(tmp_path, admin="mailto:admin@mail.test")


async def client(ctx: Context) -> Client:
    c = Client(ctx)
    await c.login(USER)
    return c


def test_capability_after_login(ctx: Context) -> None:
    async def go() -> None:
        c = Client(ctx)
        assert b"METADATA" not in await c.start()
        assert b" METADATA" in await c.cmd(f'l LOGIN "{USER}" "{PASSWORD}"')
        assert b" METADATA" in await c.cmd("c CAPABILITY")
        # Only in the authenticated and selected states (4.2, 4.3).
        c2 = Client(ctx)
        await c2.start()
        assert (await c2.cmd('g GETMETADATA "" /shared/comment')).startswith(b"g BAD")

    asyncio.run(go())


def test_rfc5464_setmetadata_examples(ctx: Context) -> None:
    async def go() -> None:
        c = await client(ctx)
        # 4.3: a multi-line value in a literal.
        assert (await c.cmd(b"a SETMETADATA INBOX (/private/comment {33}")).startswith(b"+ ")
        assert await c.send(b"My new comment across\r\ntwo lines.)\r\n") == b"a OK SETMETADATA completed\r\n"
        out = await c.cmd("b GETMETADATA INBOX /private/comment")
        assert out == (
            b"* METADATA INBOX (/private/comment {33}\r\nMy new comment across\r\ntwo lines.)\r\n"
            b"b OK GETMETADATA completed\r\n"
        )
        # Removed with NIL.
        assert b"c OK" in await c.cmd("c SETMETADATA INBOX (/private/comment NIL)")
        assert await c.cmd("d GETMETADATA INBOX /private/comment") == b"d OK GETMETADATA completed\r\n"
        # Several at once.
        out = await c.cmd('e SETMETADATA INBOX (/private/comment "My new comment" /shared/comment "This one is for you!")')
        assert out == b"e OK SETMETADATA completed\r\n"

    asyncio.run(go())


def test_rfc5464_getmetadata_examples(ctx: Context) -> None:
    async def go() -> None:
        c = await client(ctx)
        await c.cmd('s1 SETMETADATA "" (/shared/comment "Shared comment")')
        await c.cmd('s2 SETMETADATA INBOX (/shared/comment "Shared comment" /private/comment "My own comment")')
        assert await c.cmd('a GETMETADATA "" /shared/comment') == (
            b'* METADATA "" (/shared/comment "Shared comment")\r\na OK GETMETADATA completed\r\n'
        )
        assert await c.cmd('b GETMETADATA "INBOX" /private/comment') == (
            b'* METADATA INBOX (/private/comment "My own comment")\r\nb OK GETMETADATA completed\r\n'
        )
        out = await c.cmd('c GETMETADATA "INBOX" (/shared/comment /private/comment)')
        assert out == (
            b'* METADATA INBOX (/private/comment "My own comment" /shared/comment "Shared comment")\r\n'
            b"c OK GETMETADATA completed\r\n"
        )
        # 4.2.1 MAXSIZE: the 2199-octet value is left out and its size reported.
        await c.cmd(b"s3 SETMETADATA INBOX (/shared/comment {2199+}\r\n" + b"x" * 2199 + b")")
        out = await c.cmd('d GETMETADATA "INBOX" (MAXSIZE 1024) (/shared/comment /private/comment)')
        assert out == (
            b'* METADATA INBOX (/private/comment "My own comment")\r\n'
            b"d OK [METADATA LONGENTRIES 2199] GETMETADATA completed\r\n"
        )
        # The options may also come first, as the ABNF (5) has them.
        out = await c.cmd('e GETMETADATA (MAXSIZE 1024) "INBOX" (/shared/comment /private/comment)')
        assert out.endswith(b"e OK [METADATA LONGENTRIES 2199] GETMETADATA completed\r\n")
        # 4.2.2 DEPTH 1: the children, not the grandchildren.
        await c.cmd(
            's4 SETMETADATA INBOX (/private/filters/values/small "SMALLER 5000"'
            ' /private/filters/values/boss "FROM \\"boss@example.com\\"" /private/filters/values/boss/x "deep")'
        )
        out = await c.cmd('f GETMETADATA "INBOX" (DEPTH 1) (/private/filters/values)')
        assert out == (
            b'* METADATA INBOX (/private/filters/values/boss "FROM \\"boss@example.com\\""'
            b' /private/filters/values/small "SMALLER 5000")\r\nf OK GETMETADATA completed\r\n'
        )
        out = await c.cmd('g GETMETADATA "INBOX" (DEPTH infinity) /private/filters')
        assert out.count(b"/private/filters/values/") == 3
        assert b"/private/filters/values/boss/x" not in await c.cmd('h GETMETADATA INBOX (DEPTH 0) /private/filters')

    asyncio.run(go())


def test_values_binary_and_empty(ctx: Context) -> None:
    async def go() -> None:
        c = await client(ctx)
        assert (await c.cmd(b"a SETMETADATA INBOX (/private/bin ~{3}")).startswith(b"+ ")
        assert b"a OK" in await c.send(b"a\x00b /private/empty \"\")\r\n")
        out = await c.cmd("b GETMETADATA INBOX (/private/bin /private/empty)")
        assert out == (
            b'* METADATA INBOX (/private/bin ~{3}\r\na\x00b /private/empty "")\r\nb OK GETMETADATA completed\r\n'
        )
        # 8-bit text goes in a literal, unless the session takes UTF-8 in quoted strings.
        value = "café".encode()
        assert b"e OK" in await c.cmd(b'e SETMETADATA INBOX (/private/comment {5+}\r\n' + value + b")")
        assert b"(/private/comment {5}\r\ncaf\xc3\xa9)" in await c.cmd("f GETMETADATA INBOX /private/comment")
        await c.cmd("g ENABLE IMAP4rev2")
        assert b'(/private/comment "caf\xc3\xa9")' in await c.cmd("h GETMETADATA INBOX /private/comment")
        # Entry names are case-insensitive.
        assert b"c OK" in await c.cmd('c SETMETADATA INBOX (/Private/Comment "x")')
        assert b'(/private/comment "x")' in await c.cmd("d GETMETADATA INBOX /PRIVATE/COMMENT")

    asyncio.run(go())


@pytest.mark.parametrize(
    "entry",
    [
        "/comment",  # neither /private nor /shared
        "comment",
        "/shared",  # one component
        "/shared//comment",
        "/shared/comment/",
        '"/shared/com*ment"',
        '"/shared/com%ment"',
        '"/shared/tab\tbed"',
        "/shared/vendor/vendor.example",  # vendor entries have four components
        "/private/vendor/vendor.letterbox/x",  # the server's own vendor subtree
    ],
)
def test_invalid_entry_names_are_bad(ctx: Context, entry: str) -> None:
    async def go() -> None:
        c = await client(ctx)
        out = await c.cmd(f'a SETMETADATA INBOX ({entry} "x")')
        assert out.startswith(b"a BAD "), out
        if entry not in ("/shared", "/shared/vendor/vendor.example", "/private/vendor/vendor.letterbox/x"):
            assert (await c.cmd(f"b GETMETADATA INBOX {entry}")).startswith(b"b BAD ")
        assert await c.cmd("c GETMETADATA INBOX (DEPTH infinity) (/shared /private)") == (
            b"c OK GETMETADATA completed\r\n"
        )

    asyncio.run(go())


def test_syntax_errors(ctx: Context) -> None:
    async def go() -> None:
        c = await client(ctx)
        for line in (
            "a GETMETADATA INBOX (DEPTH 2) /shared/comment",
            "a GETMETADATA INBOX (MAXSIZE x) /shared/comment",
            "a GETMETADATA INBOX (MAXSIZE 1 MAXSIZE 2) /shared/comment",
            "a GETMETADATA INBOX (FOO 1) /shared/comment",
            "a GETMETADATA INBOX",
            "a SETMETADATA INBOX /shared/comment x",
            "a SETMETADATA INBOX (/shared/comment)",
            "a SETMETADATA INBOX ()",
        ):
            assert (await c.cmd(line)).startswith(b"a BAD "), line

    asyncio.run(go())


def test_nonexistent_mailbox(ctx: Context) -> None:
    async def go() -> None:
        c = await client(ctx)
        assert (await c.cmd('a SETMETADATA Nope (/shared/comment "x")')).startswith(b"a NO [NONEXISTENT]")
        assert (await c.cmd("b GETMETADATA Nope /shared/comment")).startswith(b"b NO [NONEXISTENT]")

    asyncio.run(go())


def test_limits(tmp_path: Path) -> None:
    async def go() -> None:
        ctx = context(tmp_path, metadata_value_size=1024, metadata_entries=10, metadata_bytes=4096)
        c = await client(ctx)
        # 4.3: a value too big is NO [METADATA MAXSIZE n]; a literal is refused before
        # the client sends it, and nothing of the command is kept.
        out = await c.cmd(b"a SETMETADATA INBOX (/shared/a \"ok\" /shared/b {1025}")
        assert out == b"a NO [METADATA MAXSIZE 1024] A metadata value may have 1024 octets\r\n"
        out = await c.cmd(b"b SETMETADATA INBOX (/shared/a \"ok\" /shared/b {1025+}\r\n" + b"x" * 1025 + b")")
        assert out.startswith(b"b NO [METADATA MAXSIZE 1024] ")
        long_quoted = b'"' + b"y" * 1025 + b'"'
        out = await c.cmd(b'c SETMETADATA INBOX (/shared/a "ok" /shared/b ' + long_quoted + b")")
        assert out.startswith(b"c NO [METADATA MAXSIZE 1024] ")
        assert await c.cmd("d GETMETADATA INBOX /shared/a") == b"d OK GETMETADATA completed\r\n"
        # 4.3: TOOMANY once a mailbox holds its limit of entries.
        pairs = " ".join(f'/shared/e{i} "v"' for i in range(10))
        assert b"e OK" in await c.cmd(f"e SETMETADATA INBOX ({pairs})")
        out = await c.cmd('f SETMETADATA INBOX (/private/comment "My new comment")')
        assert out.startswith(b"f NO [METADATA TOOMANY] ")
        assert b"g OK" in await c.cmd('g SETMETADATA INBOX (/shared/e0 "replaced")')
        # The account's bytes.
        big = " ".join(f'/shared/b{i} "{"z" * 1000}"' for i in range(4))
        assert (await c.cmd(f"h SETMETADATA Sent ({big})")).startswith(b"h NO [METADATA TOOMANY] ")
        # More entries in one command than any command may name.
        many = " ".join(f"/shared/n{i}" for i in range(1001))
        assert (await c.cmd(f"i GETMETADATA INBOX ({many})")).startswith(b"i BAD ")

    asyncio.run(go())


def test_server_entries_and_admin(tmp_path: Path) -> None:
    async def go() -> None:
        ctx = context(tmp_path / "a", admin="admin@mail.test")
        c = await client(ctx)
        assert await c.cmd('a GETMETADATA "" /shared/admin') == (
            b'* METADATA "" (/shared/admin "mailto:admin@mail.test")\r\na OK GETMETADATA completed\r\n'
        )
        # 3.2.1.1: read-only.
        assert (await c.cmd('b SETMETADATA "" (/shared/admin "tel:+1")')).startswith(b"b NO [NOPERM]")
        assert b"c OK" in await c.cmd('c SETMETADATA "" (/private/motd "hello" /shared/comment "hi")')
        out = await c.cmd('d GETMETADATA "" (DEPTH infinity) (/shared /private)')
        assert out == (
            b'* METADATA "" (/private/motd "hello" /shared/admin "mailto:admin@mail.test"'
            b' /shared/comment "hi")\r\nd OK GETMETADATA completed\r\n'
        )
        # Server entries are not INBOX's.
        assert await c.cmd("e GETMETADATA INBOX /private/motd") == b"e OK GETMETADATA completed\r\n"
        ctx.directory.close()
        await ctx.store.close()
        # Without [imap] admin, the postmaster; a URI is kept as it is.
        for admin, postmaster, expected in (
            ("", "pm@mail.test", b"mailto:pm@mail.test"),
            ("https://help.mail.test/", "pm@mail.test", b"https://help.mail.test/"),
            ("", "", None),
        ):
            other = context(tmp_path / (postmaster or "none") / admin.replace("/", "_"), admin, postmaster)
            c = await client(other)
            out = await c.cmd('f GETMETADATA "" /shared/admin')
            if expected is None:
                assert out == b"f OK GETMETADATA completed\r\n"
            else:
                assert b'(/shared/admin "' + expected + b'")' in out
            other.directory.close()
            await other.store.close()

    asyncio.run(go())


def test_rename_and_delete(ctx: Context) -> None:
    async def go() -> None:
        c = await client(ctx)
        await c.cmd("a CREATE Projects")
        await c.cmd('b SETMETADATA Projects (/shared/comment "kept")')
        assert b"c OK" in await c.cmd("c RENAME Projects Work")
        assert b'(/shared/comment "kept")' in await c.cmd("d GETMETADATA Work /shared/comment")
        await c.cmd("e CREATE Projects")
        assert await c.cmd("f GETMETADATA Projects /shared/comment") == b"f OK GETMETADATA completed\r\n"
        # 4.1: a mailbox made again under a deleted one's name does not inherit its entries.
        assert b"g OK" in await c.cmd("g DELETE Work")
        assert (await c.cmd("h GETMETADATA Work /shared/comment")).startswith(b"h NO [NONEXISTENT]")
        await c.cmd("i CREATE Work")
        assert await c.cmd("j GETMETADATA Work /shared/comment") == b"j OK GETMETADATA completed\r\n"
        # RENAME INBOX: INBOX keeps its entries, the new mailbox gets a copy.
        await c.cmd('k SETMETADATA INBOX (/private/comment "inbox")')
        assert b"l OK" in await c.cmd("l RENAME INBOX Old")
        assert b'"inbox"' in await c.cmd("m GETMETADATA INBOX /private/comment")
        assert b'"inbox"' in await c.cmd("n GETMETADATA Old /private/comment")

    asyncio.run(go())


def test_utf8_mailbox_names(ctx: Context) -> None:
    async def go() -> None:
        c = await client(ctx)
        await c.cmd('a CREATE "Caf&AOk-"')
        assert b"b OK" in await c.cmd('b SETMETADATA "Caf&AOk-" (/shared/comment "x")')
        assert (await c.cmd('c GETMETADATA "Caf&AOk-" /shared/comment')).startswith(b"* METADATA Caf&AOk- (")
        await c.cmd("d ENABLE UTF8=ACCEPT")
        out = await c.cmd('e GETMETADATA "Café" /shared/comment')
        assert out.startswith('* METADATA "Café" ('.encode()), out

    asyncio.run(go())


# --- a real server, a real client ------------------------------------------------------------


def test_imaplib_against_a_server(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    for command in ("GETMETADATA", "SETMETADATA"):
        monkeypatch.setitem(imaplib.Commands, command, ("AUTH", "SELECTED"))
    server.add_user(USER, "pw")
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    try:
        c.starttls()
        c.login(USER, "pw")
        typ, caps = c.capability()
        assert b" METADATA" in caps[0]
        typ, _ = c._simple_command("SETMETADATA", "INBOX", '(/private/comment "from imaplib")')
        assert typ == "OK"
        typ, data = c._simple_command("GETMETADATA", "INBOX", "/private/comment")
        assert typ == "OK"
        _, found = c._untagged_response(typ, data, "METADATA")
        assert found == [b'INBOX (/private/comment "from imaplib")']
        typ, data = c._simple_command("SETMETADATA", '""', '(/shared/admin "x")')
        assert typ == "NO" and b"[NOPERM]" in data[0]
    finally:
        c.logout()
