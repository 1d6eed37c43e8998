"""PREVIEW (RFC 8970): FETCH PREVIEW and PREVIEW (LAZY). The preview is made when the
message is parsed at delivery or APPEND and kept in the index (a COPY or MOVE keeps it);
messages indexed before have none, and get it from their file when PREVIEW asks (LAZY
answers NIL instead). The RFC's examples, adapted."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import re
import sqlite3

import pytest

from letterbox.imap.grammar import (
    CommandReader,
    Fetch,
    FetchAttribute,
    NeedContinuation,
    ParseError,
)
from letterbox.mime import parse_message
from letterbox.store.maildir.index import SCHEMA_VERSION
from tests.conftest import ServerProcess

from .test_fetch_helpers import USER, Env, Session, run, tagged

LOREM = (
    b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n"
    b"Curabitur aliquam turpis et ante dictum, et pulvinar dui congue.\r\n"
    b"Maecenas hendrerit, lorem non imperdiet pellentesque, nulla\r\n"
    b"ligula nullam tortor, vel laoreet metus massa eget sem.\r\n"
)
LOREM_PREVIEW = " ".join(LOREM.decode().split())[:200].rstrip()
PREVIEW = re.compile(rb"\* (\d+) FETCH \((?:[^\r\n]*? )?PREVIEW (NIL|\"(?:[^\"\\]|\\.)*\"|\{(\d+)\}\r\n)")


def text_message(subject: str, body: bytes, sender: str = "a@example.com") -> bytes:
    return f"From: {sender}\r\nSubject: {subject}\r\n\r\n".encode() + body


def multipart(boundary: bytes, *parts: bytes, subtype: bytes = b"mixed") -> bytes:
    out = b"MIME-Version: 1.0\r\nContent-Type: multipart/%s; boundary=%s\r\n\r\n" % (subtype, boundary)
    for part in parts:
        out += b"--" + boundary + b"\r\n" + part + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


HTML_ONLY = (
    b"From: news@example.com\r\nSubject: news\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"<html><head><style>p {margin: 0}</style></head><body><p>Caf=C3=A9 &amp; =\r\n"
    b"<b>cr=C3=AApes</b></p><p>tonight!</p></body></html>\r\n"
)
ALTERNATIVE = b"From: a@example.com\r\nSubject: alt\r\n" + multipart(
    b"alt",
    b"Content-Type: text/html\r\n\r\n<p>the <i>HTML</i> side</p>",
    b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes("Deux façons de dire \"bonjour\" \\o/".encode("latin-1")),
    subtype=b"alternative",
)
ATTACHMENT_ONLY = b"From: a@example.com\r\nSubject: scan\r\n" + multipart(
    b"m",
    b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename=scan.png\r\n\r\niVBORw0KGgo=",
)


def previews(out: bytes) -> dict[int, str | None]:
    """Message number -> PREVIEW value (None for NIL) of the FETCH responses in *out*."""
    found: dict[int, str | None] = {}
    for m in PREVIEW.finditer(out):
        value = m.group(2)
        if value == b"NIL":
            found[int(m.group(1))] = None
        elif m.group(3) is not None:
            found[int(m.group(1))] = out[m.end() : m.end() + int(m.group(3))].decode()
        else:
            found[int(m.group(1))] = re.sub(rb"\\(.)", rb"\1", value[1:-1]).decode()
    assert len(found) == out.count(b" FETCH ("), out
    return found


async def fetch_previews(s: Session, command: str, tag: str = "f") -> dict[int, str | None]:
    out = await s.cmd(f"{tag} {command}")
    assert tagged(out, tag).startswith(tag.encode() + b" OK"), out
    return previews(out)


async def forget_previews(env: Env, mailbox: str = "INBOX", uids: tuple[int, ...] | None = None) -> None:
    """Make messages look as if indexed before previews were kept (NULL)."""
    acc = await env.account()
    mbox = await acc.get_mailbox(mailbox)
    sql = "UPDATE parsed SET preview = NULL WHERE mailbox_id = ?"
    if uids is None:
        acc.db.execute(sql, (mbox.id,))  # type: ignore[attr-defined]
    else:
        acc.db.executemany(sql + " AND uid = ?", [(mbox.id, u) for u in uids])  # type: ignore[attr-defined]


async def stored_previews(env: Env, mailbox: str = "INBOX") -> dict[int, str | None]:
    acc = await env.account()
    mbox = await acc.get_mailbox(mailbox)
    rows = acc.db.execute("SELECT uid, preview FROM parsed WHERE mailbox_id = ?", (mbox.id,))  # type: ignore[attr-defined]
    return dict(rows.fetchall())


# --- capability and the examples -------------------------------------------------------------


def test_preview_is_advertised_after_login(env: Env) -> None:
    from letterbox.imap.session import IMAPSession
    from letterbox.service.session import Peer

    async def go() -> None:
        s = Session(IMAPSession(env.ctx, Peer("127.0.0.1", 1, False)))
        await s.s.start()
        assert b"PREVIEW" not in s.take()
        s = await env.session(select=None)
        out = await s.cmd("A1 CAPABILITY")
        assert b" PREVIEW" in out.split(b"\r\n")[0] and out.endswith(b"A1 OK CAPABILITY completed\r\n")

    run(go())


def test_example_1_preview_without_lazy(env: Env) -> None:
    """RFC 8970 5, Example 1."""

    async def go() -> None:
        raw = text_message("lorem", LOREM)
        await env.append(raw)
        s = await env.session()
        out = await s.cmd("A2 FETCH 1 (RFC822.SIZE PREVIEW)")
        assert out == (
            b'* 1 FETCH (RFC822.SIZE %d PREVIEW "%s")\r\nA2 OK FETCH completed\r\n'
            % (len(raw), LOREM_PREVIEW.encode())
        )
        assert len(LOREM_PREVIEW) == 200

    run(go())


def test_example_2_lazy_then_in_the_background(env: Env) -> None:
    """RFC 8970 5, Example 2: LAZY returns what is at hand (message 1's preview, message
    2's empty one) and NIL for the previews not made yet (3 and 4, indexed before
    previews were kept); a FETCH without LAZY makes them, and they are kept."""

    async def go() -> None:
        await env.append(
            text_message("one", b"Preview text for message 1."),
            ATTACHMENT_ONLY,
            text_message("three", b"Message data from message 3."),
            text_message("four", b"Message 4 preview"),
        )
        await forget_previews(env, uids=(3, 4))
        s = await env.session()
        out = await s.cmd("B1 FETCH 1:4 (ENVELOPE PREVIEW (LAZY))")
        assert out.endswith(b"B1 OK FETCH completed\r\n")
        assert previews(out) == {1: "Preview text for message 1.", 2: "", 3: None, 4: None}
        assert b'* 2 FETCH (ENVELOPE (NIL "scan" ' in out and b' PREVIEW "")\r\n' in out
        assert await fetch_previews(s, "FETCH 3:4 (PREVIEW)", "B2") == {
            3: "Message data from message 3.", 4: "Message 4 preview"}
        # Made once, then kept: LAZY has them now, and so does the index.
        assert await fetch_previews(s, "FETCH 1:4 (PREVIEW (LAZY))", "B3") == {
            1: "Preview text for message 1.", 2: "", 3: "Message data from message 3.", 4: "Message 4 preview"}
        assert (await stored_previews(env))[3] == "Message data from message 3."

    run(go())


def test_example_3_with_searchres(env: Env) -> None:
    """RFC 8970 5, Example 3: SEARCH RETURN (SAVE) FROM "FOO", then FETCH $ (UID PREVIEW
    (LAZY)) and UID FETCH of the one left NIL. Messages 5 and 9 are UIDs 13 and 23."""

    async def go() -> None:
        messages = [
            text_message(f"m{uid}", b"Another preview!" if uid == 23 else b"Preview!" if uid == 13 else b"Other",
                         "foo@example.com" if uid in (13, 23) else "bar@example.com")
            for uid in range(1, 24)
        ]
        await env.append(*messages)
        await forget_previews(env, uids=(23,))
        s = await env.session()
        await s.cmd("x UID STORE 5:12,17:22 +FLAGS.SILENT (\\Deleted)")
        await s.cmd("y EXPUNGE")
        out = await s.cmd("C1 CAPABILITY")
        assert b" PREVIEW" in out and b" SEARCHRES" in out
        assert await s.cmd('C2 SEARCH RETURN (SAVE) FROM "FOO"') == b"C2 OK SEARCH completed\r\n"
        out = await s.cmd("C3 FETCH $ (UID PREVIEW (LAZY))")
        assert out == b'* 5 FETCH (UID 13 PREVIEW "Preview!")\r\n* 9 FETCH (UID 23 PREVIEW NIL)\r\nC3 OK FETCH completed\r\n'
        out = await s.cmd("C4 UID FETCH 23 (PREVIEW)")
        assert out == b'* 9 FETCH (UID 23 PREVIEW "Another preview!")\r\nC4 OK UID FETCH completed\r\n'

    run(go())


# --- what the preview shows, and how it is sent ----------------------------------------------


def test_multipart_encoded_and_html_messages(env: Env) -> None:
    async def go() -> None:
        nested = b"From: a@example.com\r\nSubject: fwd\r\n" + multipart(
            b"outer",
            b"Content-Type: text/plain\r\n\r\n> quoted reply\r\n> lines\r\n",
            b"Content-Type: message/rfc822\r\n\r\n" + HTML_ONLY,
        )
        await env.append(HTML_ONLY, ALTERNATIVE, ATTACHMENT_ONLY, nested, text_message("empty", b""))
        s = await env.session(rev2=True)
        assert await fetch_previews(s, "FETCH 1:* (PREVIEW)", "f") == {
            1: "Café & crêpes tonight!",
            2: 'Deux façons de dire "bonjour" \\o/',
            3: "",
            4: "Café & crêpes tonight!",
            5: "",
        }

    run(go())


def test_utf8_is_a_literal_unless_the_session_takes_utf8_quoted(env: Env) -> None:
    """RFC 8970 3.3: the preview is UTF-8. IMAP4rev1 quoted strings are 7-bit: a literal
    then (as in the RFC's examples); after ENABLE IMAP4rev2 or UTF8=ACCEPT a quoted
    string may carry it. Quotes and backslashes are escaped."""

    async def go() -> None:
        await env.append(HTML_ONLY, text_message("q", b'Say "hi" to C:\\temp'))
        s = await env.session()
        out = await s.cmd("a FETCH 1:2 (PREVIEW)")
        body = "Café & crêpes tonight!".encode()
        assert out == (
            b"* 1 FETCH (PREVIEW {%d}\r\n%s)\r\n" % (len(body), body)
            + b'* 2 FETCH (PREVIEW "Say \\"hi\\" to C:\\\\temp")\r\na OK FETCH completed\r\n'
        )
        for enable in ("IMAP4rev2", "UTF8=ACCEPT"):
            s = await env.session(select=None)
            assert b"e OK" in await s.cmd(f"e ENABLE {enable}")
            await s.cmd("s SELECT INBOX")
            out = await s.cmd("b FETCH 1 (PREVIEW)")
            assert out == b'* 1 FETCH (PREVIEW "' + body + b'")\r\nb OK FETCH completed\r\n'

    run(go())


def test_made_at_delivery_and_kept_by_copy_and_move(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parse once at delivery: FETCH PREVIEW then reads the index only, never a message
    file; COPY and MOVE carry the preview with the message."""

    async def go() -> None:
        acc = await env.account()
        await acc.append("INBOX", ALTERNATIVE)  # as a delivery does
        s = await env.session()
        data = text_message("appended", b"By APPEND.")
        out = await s.cmd(f"a APPEND INBOX {{{len(data)}+}}\r\n".encode() + data)
        assert tagged(out).startswith(b"a OK")
        await s.cmd("n NOOP")
        assert tagged(await s.cmd("c COPY 1:2 Archive"), "c").startswith(b"c OK")
        assert tagged(await s.cmd("m MOVE 2 Trash"), "m").startswith(b"m OK")

        def no_files(*args: object, **kwargs: object) -> object:
            raise AssertionError("a message file was read")

        monkeypatch.setattr(acc.adir, "open_read", no_files)  # type: ignore[attr-defined]
        monkeypatch.setattr(acc.adir, "read", no_files)  # type: ignore[attr-defined]
        expected = 'Deux façons de dire "bonjour" \\o/'
        assert await fetch_previews(s, "FETCH 1:* (PREVIEW)", "f") == {1: expected}
        await s.cmd("s SELECT Archive")
        assert await fetch_previews(s, "FETCH 1:* (PREVIEW)", "f") == {1: expected, 2: "By APPEND."}
        await s.cmd("s SELECT Trash")
        assert await fetch_previews(s, "FETCH 1:* (PREVIEW)", "f") == {1: "By APPEND."}

    run(go())


def test_preview_asked_twice_is_answered_once(env: Env) -> None:
    """With and without LAZY in one FETCH: one PREVIEW, never NIL (RFC 8970 3.2)."""

    async def go() -> None:
        await env.append(text_message("x", b"Some text."))
        await forget_previews(env)
        s = await env.session()
        out = await s.cmd("a FETCH 1 (PREVIEW (LAZY) UID PREVIEW)")
        assert out == b'* 1 FETCH (PREVIEW "Some text." UID 1)\r\na OK FETCH completed\r\n'

    run(go())


def test_preview_with_condstore_and_content_items(env: Env) -> None:
    async def go() -> None:
        await env.append(text_message("x", b"Some text."), text_message("y", b"More text."))
        s = await env.session()
        out = await s.cmd("a UID FETCH 1:* PREVIEW (CHANGEDSINCE 1)")
        assert re.fullmatch(
            rb'\* 1 FETCH \(UID 1 PREVIEW "Some text." MODSEQ \(\d+\)\)\r\n'
            rb'\* 2 FETCH \(UID 2 PREVIEW "More text." MODSEQ \(\d+\)\)\r\n(\* OK \[HIGHESTMODSEQ \d+\] [^\r]*\r\n)?a OK UID FETCH completed\r\n',
            out,
        ), out
        out = await s.cmd("b FETCH 2 (PREVIEW (LAZY) BODY[TEXT])")
        assert out.startswith(b'* 2 FETCH (PREVIEW "More text." BODY[TEXT] {10}\r\nMore text. FLAGS (\\Seen'), out

    run(go())


def test_bad_syntax_is_bad(env: Env) -> None:
    async def go() -> None:
        await env.append(text_message("x", b"Some text."))
        s = await env.session()
        for bad in (
            "FETCH 1 (PREVIEW (FUZZY))", "FETCH 1 (PREVIEW ())", "FETCH 1 (PREVIEW (LAZY)", "FETCH 1 (PREVIEW LAZY)",
            "FETCH 1 PREVIEW (LAZY=1)", "FETCH 1 (PREVIEW[])", "FETCH 1 PREVIEW (VANISHED)", "FETCH 1 (PREVIEW (LAZY FUZZY))",
            "FETCH 1 PREVIEW.PEEK", "SEARCH PREVIEW x",
        ):
            out = await s.cmd("b " + bad)
            assert tagged(out, "b").startswith(b"b BAD"), (bad, out)
            assert b"SERVERBUG" not in out
        assert previews(await s.cmd("c FETCH 1 PREVIEW (lazy LAZY)")) == {1: "Some text."}

    run(go())


def parse(line: bytes) -> object:
    reader = CommandReader()
    reader.feed(b"a " + line + b"\r\n")
    event = reader.next_event()
    while isinstance(event, NeedContinuation):
        event = reader.next_event()
    return event


def test_grammar() -> None:
    """RFC 8970 6: fetch-att =/ "PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"]."""
    fetch = parse(b"FETCH 1:4 (ENVELOPE PREVIEW (LAZY))")
    assert isinstance(fetch, Fetch)
    assert fetch.attributes == (FetchAttribute("ENVELOPE"), FetchAttribute("PREVIEW", lazy=True))
    fetch = parse(b"UID FETCH 1 preview")
    assert isinstance(fetch, Fetch) and fetch.attributes == (FetchAttribute("PREVIEW"),)
    fetch = parse(b"FETCH $ (UID PREVIEW (LAZY) FLAGS)")
    assert isinstance(fetch, Fetch) and fetch.attributes[1] == FetchAttribute("PREVIEW", lazy=True)
    # A lone PREVIEW followed by FETCH modifiers, with and without LAZY.
    fetch = parse(b"UID FETCH 1:* PREVIEW (CHANGEDSINCE 5 VANISHED)")
    assert isinstance(fetch, Fetch) and fetch.attributes == (FetchAttribute("PREVIEW"),)
    assert fetch.changedsince == 5 and fetch.vanished
    fetch = parse(b"FETCH 1 PREVIEW (LAZY) (CHANGEDSINCE 5)")
    assert isinstance(fetch, Fetch) and fetch.attributes == (FetchAttribute("PREVIEW", lazy=True),)
    assert fetch.changedsince == 5
    assert isinstance(parse(b"FETCH 1 (PREVIEW (SNIPPET))"), ParseError)


# --- messages indexed before previews were kept ----------------------------------------------


def test_an_index_of_schema_5_upgrades(env: Env) -> None:
    """Schema 6 adds the preview, NULL for the messages indexed before: LAZY answers NIL
    for them, PREVIEW makes each from its file (the same text as at delivery) and keeps
    it. A COPY made before carries the NULL, and gets its own made the same way."""

    async def go() -> None:
        big = multipart(
            b"big",
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes("Le début d'un très long texte. ".encode() * 100_000),
            b"Content-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b"UEsDBA==\r\n" * 10_000,
        )
        messages = [HTML_ONLY, ALTERNATIVE, ATTACHMENT_ONLY, text_message("empty", b""), big]
        await env.append(*messages)
        at_delivery = {i + 1: parse_message(m).preview for i, m in enumerate(messages)}
        acc = await env.account()
        inbox = await acc.get_mailbox("INBOX")
        folder = env.ctx.store.account_dir(USER)  # type: ignore[attr-defined]
        env.ctx.store.close_account(USER)  # type: ignore[attr-defined]
        db = sqlite3.connect(folder / "letterbox.index", isolation_level=None)
        db.execute("ALTER TABLE messages DROP COLUMN savedate")
        db.execute("ALTER TABLE parsed DROP COLUMN preview")
        db.execute("UPDATE meta SET value = 5 WHERE key = 'schema'")
        db.close()
        del env.ctx.store.unavailable[USER]  # type: ignore[attr-defined]

        acc = await env.account()
        assert acc.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == SCHEMA_VERSION  # type: ignore[attr-defined]
        assert set((await stored_previews(env)).values()) == {None}
        await acc.copy(inbox.id, [1], "Archive")
        s = await env.session()
        assert await fetch_previews(s, "FETCH 1:* (PREVIEW (LAZY))", "a") == dict.fromkeys(range(1, 6))
        assert await fetch_previews(s, "FETCH 1:* (PREVIEW)", "b") == at_delivery
        assert await stored_previews(env) == at_delivery
        assert await fetch_previews(s, "FETCH 1:* (PREVIEW (LAZY))", "c") == at_delivery
        await s.cmd("s SELECT Archive")
        assert await fetch_previews(s, "FETCH 1 (PREVIEW)", "d") == {1: at_delivery[1]}

    run(go())


def test_a_message_whose_file_is_gone_gets_no_preview(env: Env) -> None:
    """make_previews leaves out what no longer exists; FETCH says EXPUNGEISSUED and
    answers the others."""

    async def go() -> None:
        await env.append(text_message("a", b"First."), text_message("b", b"Second."))
        await forget_previews(env)
        acc = await env.account()
        inbox = await acc.get_mailbox("INBOX")
        name = acc.db.execute(  # type: ignore[attr-defined]
            "SELECT filename FROM messages WHERE mailbox_id = ? AND uid = 1", (inbox.id,)
        ).fetchone()[0]
        (env.ctx.store.account_dir(USER) / "cur" / name).unlink()  # type: ignore[attr-defined]
        assert await acc.make_previews(inbox.id, [1, 2, 3]) == {2: "Second."}
        await forget_previews(env)
        s = await env.session()
        out = await s.cmd("a FETCH 1:2 (PREVIEW)")
        assert previews(out) == {2: "Second."}
        assert tagged(out).startswith(b"a OK [EXPUNGEISSUED]"), out

    run(go())


def test_a_rebuilt_index_has_every_preview(env: Env) -> None:
    class Corrupt(sqlite3.DatabaseError):
        sqlite_errorcode = 11  # SQLITE_CORRUPT

    async def go() -> None:
        await env.append(HTML_ONLY, ALTERNATIVE, ATTACHMENT_ONLY)
        before = await stored_previews(env)
        acc = await env.account()
        acc.translate(Corrupt("database disk image is malformed"))  # type: ignore[attr-defined]
        assert await asyncio.to_thread(env.ctx.store.rebuild_unavailable) == 1  # type: ignore[attr-defined]
        assert await stored_previews(env) == before
        assert None not in before.values()

    run(go())


# --- a real server, a real client ------------------------------------------------------------


def test_imaplib_preview(server: ServerProcess) -> None:
    server.add_user("previewer@example.com", "pw")
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    try:
        c.login("previewer@example.com", "pw")
        assert b"PREVIEW" in c.capability()[1][0].split()
        for data in (HTML_ONLY, ALTERNATIVE, text_message("lorem", LOREM)):
            assert c.append("INBOX", "", None, data)[0] == "OK"
        c.select("INBOX")
        typ, data = c.fetch("1:3", "(PREVIEW)")
        assert typ == "OK"
        # imaplib splits literals from the rest: (header, literal) pairs and bytes.
        assert data[0] == (b"1 (PREVIEW {24}", "Café & crêpes tonight!".encode())
        alt = 'Deux façons de dire "bonjour" \\o/'.encode()
        assert data[2] == (b"2 (PREVIEW {%d}" % len(alt), alt)
        typ, data = c.fetch("3", "(UID PREVIEW (LAZY))")
        assert typ == "OK" and data == [b'3 (UID 3 PREVIEW "' + LOREM_PREVIEW.encode() + b'")']
        with pytest.raises(imaplib.IMAP4.error, match="preview modifier"):
            c.fetch("1", "(PREVIEW (FUZZY))")
    finally:
        c.logout()
