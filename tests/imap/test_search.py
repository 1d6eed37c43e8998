"""SEARCH / UID SEARCH through a real IMAPSession and store: every key of RFC 3501 and
9051, MODSEQ, OLDER/YOUNGER, nesting, sequence sets and $, ESEARCH and rev2 answers."""

from __future__ import annotations

import calendar
import json
import time
from pathlib import Path

import pytest

import letterbox.imap.session  # noqa: F401  (first: it builds the command table)
from letterbox.imap.search import message_text
from letterbox.mime import parse_message

from .test_fetch_helpers import Env, Session, run, tagged


def utc(*fields: int) -> float:
    return float(calendar.timegm((*fields, 0, 0, 0)[:6] + (0, 0, 0)))


M1 = (
    b"From: Alice Smith <alice@example.org>\r\n"
    b"To: Bob <bob@example.com>\r\n"
    b"Cc: Dave <dave@example.com>\r\n"
    b"Subject: Hello World\r\n"
    b"Date: Mon, 1 Jan 2024 12:00:00 +0000\r\n"
    b"Message-ID: <one@example.org>\r\n"
    b"\r\n"
    b"plain ascii text\r\n"
)
M2 = (
    b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.de>\r\n"
    b"To: Bob <bob@example.com>\r\n"
    b"Bcc: secret@example.net\r\n"
    b"Subject: =?utf-8?b?R3LDvMOfZSBhdXMgS8O2bG4=?=\r\n"
    b"Date: Fri, 15 Mar 2024 09:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Die Stra=C3=9Fe ist lang\r\n"
)
M3 = (
    b"From: Eve <eve@example.org>\r\n"
    b"To: alice@example.org\r\n"
    b"Subject: Report\r\n"
    b"X-Custom: Foo\r\n"
    b"  Bar\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n'
    b"\r\n"
    b"--b\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"aGlkZGVuIHRyZWFzdXJl\r\n"  # "hidden treasure"
    b"--b\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"\r\n"
    b"binary needle\r\n"
    b"--b--\r\n"
)
M4 = (
    b"From: Frank <frank@example.com>\r\n"
    b"To: Bob <bob@example.com>\r\n"
    b"Subject: Big one\r\n"
    b"Date: Mon, 10 Jun 2024 10:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"\r\n"
    b"D\xe9j\xe0 vu\r\n" + b"x" * 5000 + b"\r\n"
)
def lit(text: str) -> str:
    """An 8-bit string as a LITERAL+ literal (atoms and rev1 quoted strings are ASCII)."""
    return f"{{{len(text.encode())}+}}\r\n{text}"


DATES = [utc(2024, 1, 2, 10), utc(2024, 3, 15, 23, 30), utc(2025, 11, 26, 8, 41, 44), utc(2024, 6, 10)]


@pytest.fixture
def env(tmp_path: Path):  # type: ignore[no-untyped-def]
    e = Env(tmp_path)

    async def fill() -> None:
        acc = await e.account()
        # A message expunged first makes UIDs (2..5) differ from sequence numbers (1..4).
        first = await acc.append("INBOX", M1)
        mbox = await acc.get_mailbox("INBOX")
        await acc.expunge(mbox.id, [first.uid])
        await acc.append("INBOX", M1, ["\\Seen", "\\Answered"], DATES[0])
        await acc.append("INBOX", M2, ["\\Flagged", "$Work"], DATES[1])
        await acc.append("INBOX", M3, ["\\Deleted", "\\Draft", "\\Seen"], DATES[2])
        await acc.append("INBOX", M4, [], DATES[3])

    run(fill())
    yield e
    e.close()


async def search(s: Session, criteria: str | bytes, uid: bool = False) -> list[int]:
    raw = criteria.encode() if isinstance(criteria, str) else criteria
    out = await s.cmd(b"q " + (b"UID " if uid else b"") + b"SEARCH " + raw)
    assert tagged(out, "q").startswith(b"q OK"), out
    lines = [line for line in out.split(b"\r\n") if line.startswith(b"* SEARCH")]
    assert len(lines) == 1, out
    numbers = lines[0][len(b"* SEARCH") :].split(b" (MODSEQ ")[0]
    return [int(n) for n in numbers.split()]


CASES = [
    ("ALL", [1, 2, 3, 4]),
    ("ANSWERED", [1]),
    ("UNANSWERED", [2, 3, 4]),
    ("DELETED", [3]),
    ("UNDELETED", [1, 2, 4]),
    ("DRAFT", [3]),
    ("UNDRAFT", [1, 2, 4]),
    ("FLAGGED", [2]),
    ("UNFLAGGED", [1, 3, 4]),
    ("SEEN", [1, 3]),
    ("UNSEEN", [2, 4]),
    ("KEYWORD $Work", [2]),
    ("KEYWORD $work", []),  # keywords are case-sensitive
    ("UNKEYWORD $Work", [1, 3, 4]),
    # Headers, decoded and case-insensitive, from the index.
    ("SUBJECT hello", [1]),
    ("SUBJECT \"WORLD\"", [1]),
    ("SUBJECT \"o W\"", [1]),
    ("SUBJECT nothing", []),
    ("SUBJECT \"\"", [1, 2, 3, 4]),
    ("FROM alice", [1]),
    ("FROM \"example.org\"", [1, 3]),
    ("FROM " + lit("jürgen"), [2]),
    ("TO bob", [1, 2, 4]),
    ("TO alice", [3]),
    ("CC dave", [1]),
    ("BCC secret", [2]),
    # HEADER: any field, unfolded and decoded; an empty value tests presence.
    ("HEADER X-Custom \"foo bar\"", [3]),
    ("HEADER x-custom \"\"", [3]),
    ("HEADER Message-ID one@", [1]),
    ("HEADER MESSAGE-ID \"<ONE@EXAMPLE.ORG>\"", [1]),
    ("HEADER Message-ID \"\"", [1]),
    ("HEADER Content-Type iso-8859", [4]),
    ("HEADER Subject " + lit("grüße"), [2]),
    ("HEADER MIME-Version \"\"", [2, 3, 4]),
    ("HEADER X-None \"\"", []),
    # BODY and TEXT: decoded text parts; TEXT includes the headers.
    ("BODY ascii", [1]),
    ("BODY " + lit("straße"), [2]),
    ("BODY treasure", [3]),
    ("BODY needle", []),  # not a text part
    ("BODY " + lit("DÉJÀ"), [4]),
    ("BODY hello", []),
    ("TEXT hello", [1]),
    ("TEXT \"alice@example.org\"", [1, 3]),
    ("TEXT treasure", [3]),
    # Sizes.
    ("LARGER 5000", [4]),
    (f"SMALLER {len(M1) + 1}", [1]),
    (f"SMALLER {len(M1)}", []),
    (f"LARGER {len(M1)}", [2, 3, 4]),
    # Internal dates (UTC days).
    ("ON 2-Jan-2024", [1]),
    ("BEFORE 2-Jan-2024", []),
    ("BEFORE 3-Jan-2024", [1]),
    ("SINCE 15-Mar-2024", [2, 3, 4]),
    ("SINCE 16-Mar-2024", [3, 4]),
    ("ON 15-Mar-2024", [2]),
    ("SINCE 1-Jan-2025", [3]),
    # Date: header; M3 has none and matches no SENT key (see test_search_rfc).
    ("SENTON 1-Jan-2024", [1]),
    ("SENTBEFORE 15-Mar-2024", [1]),
    ("SENTSINCE 15-Mar-2024", [2, 4]),
    ("SENTON 26-Nov-2025", []),
    ("NOT SENTON 26-Nov-2025", [1, 2, 3, 4]),
    ("SENTON 10-Jun-2024", [4]),
    # Sequence sets and UID sets.
    ("1", [1]),
    ("2:3", [2, 3]),
    ("*", [4]),
    ("3:*", [3, 4]),
    ("1,4", [1, 4]),
    ("UID 2", [1]),
    ("UID 3:4", [2, 3]),
    ("UID 5:*", [4]),
    ("UID 1", []),
    ("UID 99:*", [4]),  # * is the highest UID: 99:* is 5:99
    # Nesting.
    ("NOT SEEN", [2, 4]),
    ("NOT NOT SEEN", [1, 3]),
    ("OR SEEN FLAGGED", [1, 2, 3]),
    ("OR ANSWERED OR DELETED FLAGGED", [1, 2, 3]),
    ("NOT OR SEEN FLAGGED", [4]),
    ("OR (SEEN DRAFT) SUBJECT big", [3, 4]),
    ("(TO bob) UNSEEN", [2, 4]),
    ("TO bob NOT (FROM frank)", [1, 2]),
    ("OR BODY treasure SUBJECT hello", [1, 3]),
    ("NOT BODY treasure", [1, 2, 4]),
    ("SEEN 2:4", [3]),
    ("OR 1 UID 5", [1, 4]),
    # MODSEQ: every message was stored at its own modseq.
    ("MODSEQ 1", [1, 2, 3, 4]),
    # OLDER / YOUNGER (RFC 5032), against now.
    ("OLDER 3600", [1, 2, 3, 4]),
    ("YOUNGER 3600", []),
    # rev1 \Recent: the session that selected first owns them.
    ("RECENT", [1, 2, 3, 4]),
    ("NEW", [2, 4]),
    ("OLD", []),
]


@pytest.mark.parametrize(("criteria", "expected"), CASES)
def test_search_keys(env: Env, criteria: str, expected: list[int]) -> None:
    async def go() -> None:
        s = await env.session()
        assert await search(s, criteria) == expected
        # UID SEARCH: the same messages, as UIDs.
        assert await search(s, criteria, uid=True) == [n + 1 for n in expected]

    run(go())


def test_modseq_search_reports_the_highest(env: Env) -> None:
    async def go() -> None:
        s = await env.session()
        await s.cmd("a STORE 2 +FLAGS.SILENT (\\Answered)")
        # Appends got modseqs 4..7 (2 and 3 went to the expunged first message); the
        # STORE makes message 2's 8.
        out = await s.cmd("a SEARCH MODSEQ 8")
        # The first CONDSTORE enabling command announces HIGHESTMODSEQ (RFC 7162 3.1).
        assert out == b"* SEARCH 2 (MODSEQ 8)\r\n* OK [HIGHESTMODSEQ 8] Highest\r\na OK SEARCH completed\r\n"
        out = await s.cmd('a SEARCH MODSEQ "/flags/\\\\draft" all 5')
        assert out == b"* SEARCH 2 3 4 (MODSEQ 8)\r\na OK SEARCH completed\r\n"
        out = await s.cmd("a SEARCH MODSEQ 6 NOT FLAGGED")
        assert out == b"* SEARCH 3 4 (MODSEQ 7)\r\na OK SEARCH completed\r\n"
        # No match: no MODSEQ (RFC 7162 3.1.5).
        assert await s.cmd("a SEARCH MODSEQ 100") == b"* SEARCH\r\na OK SEARCH completed\r\n"
        out = await s.cmd("a SEARCH RETURN (COUNT) MODSEQ 6")
        assert out == b'* ESEARCH (TAG "a") COUNT 3 MODSEQ 8\r\na OK SEARCH completed\r\n'
        out = await s.cmd("a SEARCH RETURN (MIN) MODSEQ 6")
        assert out == b'* ESEARCH (TAG "a") MIN 2 MODSEQ 8\r\na OK SEARCH completed\r\n'
        # The MODSEQ key enabled CONDSTORE: flag changes now carry MODSEQ.
        out = await s.cmd("a STORE 1 +FLAGS (\\Flagged)")
        assert b"MODSEQ (9)" in out

    run(go())


def test_recent_in_rev2_does_not_exist(env: Env) -> None:
    async def go() -> None:
        s = await env.session(rev2=True)
        await env.append(M1)
        await s.cmd("n NOOP")
        out = await s.cmd("a SEARCH RECENT")
        assert out == b'* ESEARCH (TAG "a")\r\na OK SEARCH completed\r\n'
        out = await s.cmd("a SEARCH RETURN (COUNT) OLD")
        assert out == b'* ESEARCH (TAG "a") COUNT 5\r\na OK SEARCH completed\r\n'

    run(go())


def test_younger_finds_new_mail(env: Env) -> None:
    async def go() -> None:
        s = await env.session()
        await env.append(M1, date=time.time() - 10)
        await s.cmd("n NOOP")
        assert await search(s, "YOUNGER 3600") == [5]
        assert await search(s, "OLDER 3600") == [1, 2, 3, 4]

    run(go())


def test_esearch_forms(env: Env) -> None:
    async def go() -> None:
        s = await env.session()
        out = await s.cmd("a SEARCH RETURN (MIN MAX COUNT ALL) TO bob")
        assert out == b'* ESEARCH (TAG "a") MIN 1 MAX 4 ALL 1:2,4 COUNT 3\r\na OK SEARCH completed\r\n'
        out = await s.cmd("b UID SEARCH RETURN (COUNT MIN) TO bob")
        assert out == b'* ESEARCH (TAG "b") UID MIN 2 COUNT 3\r\nb OK UID SEARCH completed\r\n'
        out = await s.cmd("c SEARCH RETURN () TO bob")
        assert out == b'* ESEARCH (TAG "c") ALL 1:2,4\r\nc OK SEARCH completed\r\n'
        out = await s.cmd("d UID SEARCH RETURN (ALL) TO bob")
        assert out == b'* ESEARCH (TAG "d") UID ALL 2:3,5\r\nd OK UID SEARCH completed\r\n'
        # No match: COUNT 0, and no MIN/MAX/ALL.
        out = await s.cmd("e SEARCH RETURN (MIN MAX ALL COUNT) SUBJECT nothing")
        assert out == b'* ESEARCH (TAG "e") COUNT 0\r\ne OK SEARCH completed\r\n'
        out = await s.cmd("f SEARCH RETURN (MAX) SUBJECT nothing")
        assert out == b'* ESEARCH (TAG "f")\r\nf OK SEARCH completed\r\n'
        # rev1 without RETURN: plain SEARCH, empty too.
        assert await s.cmd("g SEARCH SUBJECT nothing") == b"* SEARCH\r\ng OK SEARCH completed\r\n"

    run(go())


def test_rev2_answers_with_esearch(env: Env) -> None:
    async def go() -> None:
        s = await env.session(rev2=True)
        out = await s.cmd("a SEARCH TO bob")
        assert out == b'* ESEARCH (TAG "a") ALL 1:2,4\r\na OK SEARCH completed\r\n'
        out = await s.cmd("b UID SEARCH UNSEEN")
        assert out == b'* ESEARCH (TAG "b") UID ALL 3,5\r\nb OK UID SEARCH completed\r\n'
        out = await s.cmd("c SEARCH RETURN (COUNT) ALL")
        assert out == b'* ESEARCH (TAG "c") COUNT 4\r\nc OK SEARCH completed\r\n'
        out = await s.cmd("d SEARCH SUBJECT nothing")
        assert out == b'* ESEARCH (TAG "d")\r\nd OK SEARCH completed\r\n'

    run(go())


def test_save_and_dollar(env: Env) -> None:
    async def go() -> None:
        s = await env.session()
        # SAVE alone answers nothing but the tagged OK.
        assert await s.cmd("a SEARCH RETURN (SAVE) TO bob") == b"a OK SEARCH completed\r\n"
        assert await search(s, "$") == [1, 2, 4]
        assert await search(s, "UID $") == [1, 2, 4]
        assert await search(s, "$ UNSEEN") == [2, 4]
        assert await search(s, "NOT $") == [3]
        out = await s.cmd("b FETCH $ (UID)")
        assert out == b"* 1 FETCH (UID 2)\r\n* 2 FETCH (UID 3)\r\n* 4 FETCH (UID 5)\r\nb OK FETCH completed\r\n"
        # SAVE with MIN/MAX only keeps those (RFC 5182 2.4).
        out = await s.cmd("c UID SEARCH RETURN (SAVE MIN MAX) TO bob")
        assert out == b'* ESEARCH (TAG "c") UID MIN 2 MAX 5\r\nc OK UID SEARCH completed\r\n'
        assert await search(s, "$") == [1, 4]
        out = await s.cmd("d SEARCH RETURN (SAVE MIN COUNT) TO bob")
        assert out == b'* ESEARCH (TAG "d") MIN 1 COUNT 3\r\nd OK SEARCH completed\r\n'
        assert await search(s, "$") == [1, 2, 4]
        # $ refers to the previous result while the new one is computed.
        assert await s.cmd("e SEARCH RETURN (SAVE) $ SEEN") == b"e OK SEARCH completed\r\n"
        assert await search(s, "$") == [1]
        # A failed SEARCH (SAVE) empties it.
        out = await s.cmd("f SEARCH RETURN (SAVE) CHARSET KOI8-R SUBJECT x")
        assert tagged(out, "f").startswith(b"f NO [BADCHARSET")
        assert await search(s, "$") == []

    run(go())


def test_charsets(env: Env) -> None:
    async def go() -> None:
        s = await env.session()
        assert await search(s, "CHARSET UTF-8 SUBJECT hello") == [1]
        assert await search(s, "CHARSET us-ascii SUBJECT hello") == [1]
        out = await s.cmd("a SEARCH CHARSET ISO-8859-1 SUBJECT hello")
        assert out == b"a NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset ISO-8859-1\r\n"
        # 8-bit UTF-8 in literals (LITERAL+ and synchronizing).
        needle = "Grüße".encode()
        assert await search(s, b"CHARSET UTF-8 SUBJECT {%d+}\r\n" % len(needle) + needle) == [2]
        assert await s.send(b"b SEARCH CHARSET UTF-8 BODY {7}\r\n") == b"+ Ready for literal data\r\n"
        out = await s.send("straße".encode() + b"\r\n")
        assert out == b"* SEARCH 2\r\nb OK SEARCH completed\r\n"
        assert await search(s, b"FROM {7+}\r\nJ\xc3\xbcrgen") == [2]

    run(go())


def test_sequence_numbers_follow_the_view(env: Env) -> None:
    async def go() -> None:
        s = await env.session()
        other = await env.session()
        await other.cmd("x STORE 1 +FLAGS.SILENT (\\Deleted)")
        await other.cmd("x EXPUNGE")
        # A FETCH learns of the expunge but may not announce it (RFC 9051 7.5.1) ...
        await s.cmd("f FETCH 1 FLAGS")
        # ... and neither may SEARCH; the gone message matches nothing.
        # (Message 3 was \Deleted already, so it went too.)
        out = await s.cmd("a SEARCH ALL")
        assert out == b"* SEARCH 2 4\r\na OK SEARCH completed\r\n"
        out = await s.cmd("b UID SEARCH ALL")
        assert out == b"* SEARCH 3 5\r\n* 3 EXPUNGE\r\n* 1 EXPUNGE\r\nb OK UID SEARCH completed\r\n"
        assert await search(s, "2") == [2]
        assert await search(s, "UID 5") == [2]

    run(go())


def test_header_keys_use_the_index(env: Env) -> None:
    async def go() -> None:
        acc = await env.account()

        async def no_files(*args: object) -> bytes:
            raise AssertionError("message file read")

        acc.read_message = no_files  # type: ignore[method-assign]
        acc.read_range = no_files  # type: ignore[method-assign]
        s = await env.session()
        assert await search(s, "OR SUBJECT world FROM eve") == [1, 3]
        assert await search(s, "HEADER TO alice") == [3]
        assert await search(s, "HEADER Message-ID <one@") == [1]
        assert await search(s, "UNSEEN SMALLER 3000 SINCE 1-Jan-2024") == [2]

    run(go())


@pytest.mark.parametrize("many", [False, True], ids=["rows", "index-scan"])
@pytest.mark.parametrize(
    ("criteria", "expected"),
    [(c, e) for c, e in CASES if c.split()[0] in ("SUBJECT", "FROM", "TO", "CC", "BCC", "HEADER", "OR")],
)
def test_header_keys_both_ways(
    env: Env, monkeypatch: pytest.MonkeyPatch, criteria: str, expected: list[int], many: bool
) -> None:
    """SUBJECT/FROM/... read the candidates' index rows when they are few and a small
    part of the mailbox, and otherwise scan the index (search_headers): same answers."""
    import letterbox.imap.search as search_module

    if many:
        monkeypatch.setattr(search_module, "_FEW", 0)
    else:
        monkeypatch.setattr(search_module, "_FEW_SHARE", 0)

    async def go() -> None:
        s = await env.session()
        assert await search(s, criteria) == expected

    run(go())


def test_header_key_scans_unless_candidates_are_a_small_part(env: Env) -> None:
    """SUBJECT over the whole mailbox is one scan of the index, no rows read; over one
    message of the four, that message's row is read, no scan."""

    async def go() -> None:
        s = await env.session()
        store = s.s.store
        assert store is not None
        calls: list[str] = []
        fetch, scan = store.fetch, store.search_headers

        async def counted_fetch(*args: object, **kwargs: object) -> object:
            calls.append("rows")
            return await fetch(*args, **kwargs)  # type: ignore[arg-type]

        async def counted_scan(*args: object) -> object:
            calls.append("scan")
            return await scan(*args)  # type: ignore[arg-type]

        store.fetch = counted_fetch  # type: ignore[method-assign]
        store.search_headers = counted_scan  # type: ignore[method-assign]
        assert await search(s, "SUBJECT report") == [3]
        assert calls == ["scan"]
        calls.clear()
        assert await search(s, "3 SUBJECT report") == [3]
        assert calls == ["rows"]

    run(go())


def test_files_are_read_only_for_remaining_candidates(env: Env) -> None:
    async def go() -> None:
        acc = await env.account()
        read: list[int] = []
        original = acc.read_message

        async def spy(mailbox_id: int, uid: int) -> bytes:
            read.append(uid)
            return await original(mailbox_id, uid)

        acc.read_message = spy  # type: ignore[method-assign]
        s = await env.session()
        # The cheap keys go first whatever the order written.
        assert await search(s, "BODY vu FLAGGED") == []
        assert read == [3]
        read.clear()
        assert await search(s, "BODY treasure SUBJECT report") == [3]
        assert read == [4]

    run(go())


def test_message_text() -> None:
    parsed = parse_message(M3)
    tree = json.loads(parsed.parts)
    body = message_text(M3, tree, parsed.header_size, False)
    assert "hidden treasure" in body and "needle" not in body and "report" not in body
    text = message_text(M3, tree, parsed.header_size, True)
    assert "subject: report" in text and "content-type: text/plain" in text
    assert "foo" in text


def test_many_body_keys_read_each_message_once(env: Env) -> None:
    """A line of BODY keys used to read and decode every message once per key."""
    async def go() -> None:
        s = await env.session()
        store = s.s.store
        assert store is not None
        reads: list[int] = []
        real = store.read_message

        async def counting(mailbox_id: int, uid: int) -> bytes:
            reads.append(uid)
            return await real(mailbox_id, uid)

        store.read_message = counting  # type: ignore[method-assign]
        keys = " ".join(f"NOT BODY nothing{i}" for i in range(60))
        assert await search(s, keys + " BODY treasure") == [3]
        assert sorted(reads) == sorted(set(reads)) and len(reads) <= 4
        out = await s.cmd("t SEARCH " + " ".join(f"BODY k{i}" for i in range(65)))
        assert tagged(out, "t").startswith(b"t NO [LIMIT]")

    run(go())
