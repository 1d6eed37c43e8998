"""FETCH / UID FETCH through a real IMAPSession and store: every data item, every section
form, partials, implicit \\Seen, BINARY, CHANGEDSINCE and messages expunged meanwhile."""

from __future__ import annotations

import asyncio
import os
import re

import pytest

import letterbox.imap.session  # noqa: F401  (first: it builds the command table)
from letterbox.imap import wire
from letterbox.imap.fetch import BrokenContent, UnknownCTE, decode_binary
from letterbox.mime import parse_message

from .test_fetch_helpers import Env, run, tagged

SIMPLE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.com>\r\n"
    b"Subject: Hello\r\n"
    b"Date: Wed, 26 Nov 2025 08:41:44 +0000\r\n"
    b"\r\n"
    b"Hi Bob,\r\nhow are you?\r\n"
)

INNER = (
    b"From: Carol <carol@example.net>\r\n"
    b"Subject: Inner\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="YY"\r\n'
    b"\r\n"
    b"--YY\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"inner plain\r\n"
    b"--YY\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>inner html</p>\r\n"
    b"--YY--\r\n"
)
MULTI_HEADER = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.com>\r\n"
    b"Subject: Multipart test\r\n"
    b"Date: Wed, 26 Nov 2025 08:41:44 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n'
    b"\r\n"
)
PART1_MIME = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
PART1 = b"Caf=C3=A9 au lait, soft=\r\nbreak"
PART2_MIME = b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
PART2 = b"AAECAw=="
PART3_MIME = b"Content-Type: message/rfc822\r\n\r\n"
MULTI = (
    MULTI_HEADER
    + b"preamble\r\n--XX\r\n"
    + PART1_MIME
    + PART1
    + b"\r\n--XX\r\n"
    + PART2_MIME
    + PART2
    + b"\r\n--XX\r\n"
    + PART3_MIME
    + INNER
    + b"\r\n--XX--\r\nepilogue\r\n"
)
DATE = 1764146504.0  # 26-Nov-2025 08:41:44 UTC



def literal(name: bytes, data: bytes) -> bytes:
    return name + b" {%d}\r\n" % len(data) + data


def fetch_one(out: bytes) -> bytes:
    """The item list of the single FETCH response in *out* (a CONDSTORE HIGHESTMODSEQ
    announcement after it is allowed)."""
    m = re.match(rb"\* \d+ FETCH \((.*)\)\r\n(?:\* OK \[HIGHESTMODSEQ \d+\] Highest\r\n)?[a-z]+ OK", out, re.S)
    assert m is not None, out
    return m.group(1)


# --- index items -----------------------------------------------------------------------


def test_index_items_come_from_the_index(env: Env) -> None:
    async def go() -> None:
        await env.append(SIMPLE, flags=["\\Flagged", "$Work"], date=DATE)
        parsed = parse_message(SIMPLE)
        s = await env.session()
        out = await s.cmd("a FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE UID MODSEQ BODY BODYSTRUCTURE)")
        assert out == (
            b"* 1 FETCH (FLAGS ($Work \\Flagged \\Recent) "
            b'INTERNALDATE "26-Nov-2025 08:41:44 +0000" '
            b"RFC822.SIZE %d ENVELOPE %s UID 1 MODSEQ (2) BODY %s BODYSTRUCTURE %s)\r\n"
            # RFC 7162 3.1: the first CONDSTORE enabling command (MODSEQ) announces it.
            b"* OK [HIGHESTMODSEQ 2] Highest\r\n"
            b"a OK FETCH completed\r\n"
            % (len(SIMPLE), parsed.envelope, parsed.body, parsed.bodystructure)
        )
        assert parsed.envelope.startswith(b'("Wed, 26 Nov 2025 08:41:44 +0000" "Hello" (("Alice" NIL "alice"')
        # A single item without parentheses; FETCH counters move.
        out = await s.cmd("b FETCH 1 RFC822.SIZE")
        assert out == b"* 1 FETCH (RFC822.SIZE %d)\r\nb OK FETCH completed\r\n" % len(SIMPLE)
        assert s.s.stats["fetch"] == 2 and s.s.stats["fetch_bytes"] > 100

    run(go())


def test_macros(env: Env) -> None:
    async def go() -> None:
        await env.append(SIMPLE, date=DATE)
        parsed = parse_message(SIMPLE)
        s = await env.session(rev2=True)
        head = b'FLAGS () INTERNALDATE "26-Nov-2025 08:41:44 +0000" RFC822.SIZE %d' % len(SIMPLE)
        assert fetch_one(await s.cmd("a FETCH 1 FAST")) == head
        assert fetch_one(await s.cmd("a FETCH 1 ALL")) == head + b" ENVELOPE " + parsed.envelope
        assert fetch_one(await s.cmd("a FETCH 1 FULL")) == head + b" ENVELOPE " + parsed.envelope + b" BODY " + parsed.body

    run(go())


def test_internaldate_format() -> None:
    assert wire.epoch_date_time(DATE) == b'"26-Nov-2025 08:41:44 +0000"'
    assert wire.epoch_date_time(0) == b'"01-Jan-1970 00:00:00 +0000"'
    assert wire.epoch_date_time(1709251199.9) == b'"29-Feb-2024 23:59:59 +0000"'


def test_uid_fetch_always_returns_uid_first(env: Env) -> None:
    async def go() -> None:
        await env.append(SIMPLE, SIMPLE, SIMPLE)
        s = await env.session(rev2=True)
        out = await s.cmd("a UID FETCH 2:* FLAGS")
        assert out == (
            b"* 2 FETCH (UID 2 FLAGS ())\r\n* 3 FETCH (UID 3 FLAGS ())\r\na OK UID FETCH completed\r\n"
        )
        # Asking for UID as well does not repeat it; unknown UIDs are skipped silently.
        out = await s.cmd("a UID FETCH 1,7,99 (FLAGS UID)")
        assert out == b"* 1 FETCH (UID 1 FLAGS ())\r\na OK UID FETCH completed\r\n"
        out = await s.cmd("a UID FETCH 50:60 FLAGS")
        assert out == b"a OK UID FETCH completed\r\n"
        # A plain FETCH lists UID where the client put it.
        assert fetch_one(await s.cmd("a FETCH 3 (FLAGS UID)")) == b"FLAGS () UID 3"

    run(go())


def test_sequence_numbers_beyond_exists_are_bad(env: Env) -> None:
    async def go() -> None:
        await env.append(SIMPLE, SIMPLE)
        s = await env.session()
        assert tagged(await s.cmd("a FETCH 3 FLAGS")).startswith(b"a BAD")
        assert tagged(await s.cmd("a FETCH 1:5 FLAGS")).startswith(b"a BAD")
        out = await s.cmd("a FETCH 2:* UID")
        assert out == b"* 2 FETCH (UID 2)\r\na OK FETCH completed\r\n"
        out = await s.cmd("a FETCH *:1 UID")
        assert out == b"* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 2)\r\na OK FETCH completed\r\n"

    run(go())


def test_recent_only_in_rev1(env: Env) -> None:
    async def go() -> None:
        await env.append(SIMPLE, flags=["\\Seen"])
        s1 = await env.session()
        assert fetch_one(await s1.cmd("a FETCH 1 FLAGS")) == b"FLAGS (\\Seen \\Recent)"
        # \Recent went to the first session; rev2 never shows it.
        s2 = await env.session()
        assert fetch_one(await s2.cmd("a FETCH 1 FLAGS")) == b"FLAGS (\\Seen)"
        await env.append(SIMPLE)
        s3 = await env.session(rev2=True)
        assert fetch_one(await s3.cmd("a FETCH 2 FLAGS")) == b"FLAGS ()"

    run(go())


# --- body sections ---------------------------------------------------------------------


SECTIONS = [
    ("", MULTI),
    ("HEADER", MULTI_HEADER),
    ("TEXT", MULTI[len(MULTI_HEADER) :]),
    ("1", PART1),
    ("1.MIME", PART1_MIME),
    ("2", PART2),
    ("2.MIME", PART2_MIME),
    ("3", INNER),
    ("3.MIME", PART3_MIME),
    ("3.HEADER", INNER[: INNER.index(b"\r\n\r\n") + 4]),
    ("3.TEXT", INNER[INNER.index(b"\r\n\r\n") + 4 :]),
    ("3.1", b"inner plain"),
    ("3.1.MIME", b"Content-Type: text/plain\r\n\r\n"),
    ("3.2", b"<p>inner html</p>"),
    # Parts that do not exist, and HEADER/TEXT of parts that are not message/rfc822,
    # are empty (as in Dovecot).
    ("1.HEADER", b""),
    ("2.TEXT", b""),
    ("4", b""),
    ("3.3", b""),
    # A leaf has no parts, but as in Dovecot "N.1" of a leaf in a multipart is N.
    ("1.1", PART1),
    ("3.1.1", b"inner plain"),
    ("1.1.1", b""),
    ("1.2", b""),
    ("0", b""),
]


@pytest.mark.parametrize(("section", "expected"), SECTIONS)
def test_body_sections_of_a_multipart_message(env: Env, section: str, expected: bytes) -> None:
    async def go() -> None:
        await env.append(MULTI)
        s = await env.session()
        out = await s.cmd(f"a FETCH 1 BODY.PEEK[{section}]")
        assert fetch_one(out) == literal(f"BODY[{section}]".encode(), expected)

    if section == "0":
        # A zero part number is not valid syntax.
        async def bad() -> None:
            await env.append(MULTI)
            s = await env.session()
            assert tagged(await s.cmd("a FETCH 1 BODY.PEEK[0]")).startswith(b"a BAD")

        run(bad())
        return
    run(go())


def test_sections_of_a_single_part_message(env: Env) -> None:
    async def go() -> None:
        await env.append(SIMPLE)
        s = await env.session()
        header, body = SIMPLE.split(b"\r\n\r\n", 1)
        out = await s.cmd("a FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2] BODY.PEEK[TEXT])")
        # Part 1 of a non-multipart message is its body; its MIME header is the header.
        assert fetch_one(out) == b" ".join([
            literal(b"BODY[1]", body),
            literal(b"BODY[1.MIME]", header + b"\r\n\r\n"),
            literal(b"BODY[2]", b""),
            literal(b"BODY[TEXT]", body),
        ])

    run(go())


def test_header_fields(env: Env) -> None:
    async def go() -> None:
        await env.append(MULTI)
        s = await env.session()
        out = await s.cmd('a FETCH 1 (BODY.PEEK[HEADER.FIELDS (subject "From" X-Missing)])')
        assert fetch_one(out) == literal(
            b"BODY[HEADER.FIELDS (SUBJECT FROM X-MISSING)]",
            b"From: Alice <alice@example.org>\r\nSubject: Multipart test\r\n\r\n",
        )
        out = await s.cmd("a FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (From To Date MIME-Version)]")
        assert fetch_one(out) == literal(
            b"BODY[HEADER.FIELDS.NOT (FROM TO DATE MIME-VERSION)]",
            b"Subject: Multipart test\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n",
        )
        out = await s.cmd("a FETCH 1 BODY.PEEK[3.HEADER.FIELDS (SUBJECT)]")
        assert fetch_one(out) == literal(b"BODY[3.HEADER.FIELDS (SUBJECT)]", b"Subject: Inner\r\n\r\n")
        out = await s.cmd("a FETCH 1 BODY.PEEK[HEADER.FIELDS (X-None)]")
        assert fetch_one(out) == literal(b"BODY[HEADER.FIELDS (X-NONE)]", b"\r\n")

    run(go())


def test_header_sections_read_only_the_header(env: Env) -> None:
    async def go() -> None:
        await env.append(MULTI)
        acc = await env.account()
        reads: list[tuple[int, int]] = []
        original = acc.read_range

        async def spy(mailbox_id: int, uid: int, start: int, length: int) -> bytes:
            reads.append((start, length))
            return await original(mailbox_id, uid, start, length)

        async def no_whole(mailbox_id: int, uid: int) -> bytes:
            raise AssertionError("whole message read")

        acc.read_range = spy  # type: ignore[method-assign]
        acc.read_message = no_whole  # type: ignore[method-assign]
        s = await env.session()
        await s.cmd("a FETCH 1 (BODY.PEEK[HEADER] RFC822.HEADER BODY.PEEK[HEADER.FIELDS (TO)])")
        assert reads == [(0, len(MULTI_HEADER))]
        reads.clear()
        await s.cmd("a FETCH 1 BODY.PEEK[3.1]")
        start = MULTI.index(b"inner plain")
        assert reads == [(start, len(b"inner plain"))]
        reads.clear()
        await s.cmd("a FETCH 1 BODY.PEEK[]<10.5>")
        assert reads == [(10, 5)]
        reads.clear()
        # FLAGS, ENVELOPE, BODYSTRUCTURE and friends never open the file.
        await s.cmd("a FETCH 1 (FLAGS ENVELOPE BODYSTRUCTURE BODY RFC822.SIZE INTERNALDATE)")
        assert reads == []

    run(go())


def test_partial_fetches(env: Env) -> None:
    async def go() -> None:
        await env.append(MULTI)
        s = await env.session()
        out = await s.cmd("a FETCH 1 BODY.PEEK[]<0.10>")
        assert fetch_one(out) == literal(b"BODY[]<0>", MULTI[:10])
        out = await s.cmd("a FETCH 1 BODY.PEEK[TEXT]<3.5>")
        assert fetch_one(out) == literal(b"BODY[TEXT]<3>", b"amble")
        out = await s.cmd("a FETCH 1 BODY.PEEK[3.1]<6.100>")
        assert fetch_one(out) == literal(b"BODY[3.1]<6>", b"plain")
        # Past the end: an empty string.
        out = await s.cmd("a FETCH 1 BODY.PEEK[1]<1000.10>")
        assert fetch_one(out) == literal(b"BODY[1]<1000>", b"")
        out = await s.cmd("a FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]<2.5>")
        assert fetch_one(out) == literal(b"BODY[HEADER.FIELDS (SUBJECT)]<2>", b"bject")
        out = await s.cmd("a FETCH 1 BINARY.PEEK[1]<0.5>")
        assert fetch_one(out) == literal(b"BINARY[1]<0>", "Café".encode())

    run(go())


def test_rfc822_items(env: Env) -> None:
    async def go() -> None:
        await env.append(SIMPLE)
        s = await env.session(rev2=True)
        header, body = SIMPLE.split(b"\r\n\r\n", 1)
        out = await s.cmd("a FETCH 1 RFC822.HEADER")
        assert fetch_one(out) == literal(b"RFC822.HEADER", header + b"\r\n\r\n")
        out = await s.cmd("a FETCH 1 FLAGS")
        assert fetch_one(out) == b"FLAGS ()"  # RFC822.HEADER is a peek
        out = await s.cmd("a FETCH 1 RFC822.TEXT")
        assert fetch_one(out) == literal(b"RFC822.TEXT", body) + b" FLAGS (\\Seen)"
        await s.cmd("a STORE 1 -FLAGS (\\Seen)")
        out = await s.cmd("a FETCH 1 (RFC822.SIZE RFC822)")
        assert fetch_one(out) == b"RFC822.SIZE %d " % len(SIMPLE) + literal(b"RFC822", SIMPLE) + b" FLAGS (\\Seen)"

    run(go())


def test_nul_becomes_0x80_outside_binary(env: Env) -> None:
    async def go() -> None:
        raw = b"Subject: nul\r\n\r\na\x00b\r\n"
        await env.append(raw)
        s = await env.session()
        out = await s.cmd("a FETCH 1 (BODY.PEEK[TEXT] BINARY.PEEK[1])")
        assert fetch_one(out) == literal(b"BODY[TEXT]", b"a\x80b\r\n") + b" BINARY[1] ~{5}\r\na\x00b\r\n"

    run(go())


# --- implicit \Seen ------------------------------------------------------------------


def test_body_fetch_sets_seen_and_reports_it(env: Env) -> None:
    async def go() -> None:
        await env.append(SIMPLE, SIMPLE, SIMPLE)
        await env.append(SIMPLE, flags=["\\Seen"])
        s = await env.session(rev2=True)
        other = await env.session(rev2=True)
        out = await s.cmd("a FETCH 1 BODY.PEEK[TEXT]")
        assert b"FLAGS" not in out
        # Non-peek: the new flags are added at the end (Dovecot's place for them).
        out = await s.cmd("a FETCH 1:2 (UID BODY[TEXT]<0.2>)")
        assert out == (
            b"* 1 FETCH (UID 1 BODY[TEXT]<0> {2}\r\nHi FLAGS (\\Seen))\r\n"
            b"* 2 FETCH (UID 2 BODY[TEXT]<0> {2}\r\nHi FLAGS (\\Seen))\r\n"
            b"a OK FETCH completed\r\n"
        )
        # Already seen: no FLAGS. Asked for FLAGS: shown where asked, with \Seen.
        out = await s.cmd("a FETCH 1,3,4 (FLAGS BINARY[1]<0.2>)")
        assert out == (
            b"* 1 FETCH (FLAGS (\\Seen) BINARY[1]<0> {2}\r\nHi)\r\n"
            b"* 3 FETCH (FLAGS (\\Seen) BINARY[1]<0> {2}\r\nHi)\r\n"
            b"* 4 FETCH (FLAGS (\\Seen) BINARY[1]<0> {2}\r\nHi)\r\n"
            b"a OK FETCH completed\r\n"
        )
        # Our own change is not echoed back by NOOP; the other session hears about it.
        assert await s.cmd("n NOOP") == b"n OK NOOP completed\r\n"
        out = await other.cmd("n NOOP")
        assert b"* 1 FETCH (FLAGS (\\Seen))" in out and b"* 3 FETCH (FLAGS (\\Seen))" in out

    run(go())


def test_examine_never_sets_seen(env: Env) -> None:
    async def go() -> None:
        await env.append(SIMPLE)
        s = await env.session(select="EXAMINE INBOX", rev2=True)
        out = await s.cmd("a FETCH 1 (BODY[] RFC822.TEXT BINARY[1])")
        assert b"FLAGS" not in out and tagged(out) == b"a OK FETCH completed"
        assert fetch_one(await s.cmd("a FETCH 1 FLAGS")) == b"FLAGS ()"

    run(go())


def test_condstore_adds_uid_and_modseq_to_implicit_flags(env: Env) -> None:
    async def go() -> None:
        await env.append(SIMPLE, SIMPLE)
        s = await env.session(rev2=True)
        out = await s.cmd("a FETCH 1 MODSEQ")
        assert fetch_one(out) == b"MODSEQ (2)"
        out = await s.cmd("a FETCH 2 BODY[]<0.4>")
        # RFC 7162 3.2.4: once CONDSTORE is on, a FETCH that sets \Seen reports UID and MODSEQ.
        assert fetch_one(out) == literal(b"BODY[]<0>", b"From") + b" FLAGS (\\Seen) UID 2 MODSEQ (4)"

    run(go())


# --- BINARY ----------------------------------------------------------------------------


def test_binary_decodes_transfer_encodings(env: Env) -> None:
    async def go() -> None:
        await env.append(MULTI)
        s = await env.session()
        out = await s.cmd("a FETCH 1 (BINARY.PEEK[1] BINARY.PEEK[2] BINARY.SIZE[1] BINARY.SIZE[2] BINARY.PEEK[3.1])")
        text = "Café au lait, softbreak".encode()
        assert fetch_one(out) == (
            literal(b"BINARY[1]", text)
            + b" BINARY[2] ~{4}\r\n\x00\x01\x02\x03"
            + b" BINARY.SIZE[1] %d BINARY.SIZE[2] 4 " % len(text)
            + literal(b"BINARY[3.1]", b"inner plain")
        )
        # BINARY of a missing part is empty; BINARY[] of a multipart is the message.
        out = await s.cmd("a FETCH 1 (BINARY.PEEK[9] BINARY.SIZE[9] BINARY.PEEK[])")
        assert fetch_one(out) == literal(b"BINARY[9]", b"") + b" BINARY.SIZE[9] 0 " + literal(b"BINARY[]", MULTI)

    run(go())


def test_binary_of_a_single_part_base64_message(env: Env) -> None:
    async def go() -> None:
        header = b"Subject: b64\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        await env.append(header + b"aGVsbG8g\r\nd29ybGQ=\r\n")
        s = await env.session()
        out = await s.cmd("a FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[] BINARY.PEEK[])")
        assert fetch_one(out) == (
            literal(b"BINARY[1]", b"hello world")
            + b" BINARY.SIZE[] %d " % (len(header) + 11)
            + literal(b"BINARY[]", header + b"hello world")
        )

    run(go())


def test_unknown_transfer_encoding_is_no_unknown_cte(env: Env) -> None:
    async def go() -> None:
        raw = b"Subject: uu\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 f\r\n"
        await env.append(SIMPLE, raw)
        s = await env.session(rev2=True)
        out = await s.cmd("a FETCH 1:2 BINARY.PEEK[1]")
        assert out.startswith(b"* 1 FETCH (BINARY[1] {")
        assert b"* 2 FETCH" not in out
        assert tagged(out) == b"a NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding"
        assert tagged(await s.cmd("a FETCH 2 BINARY.SIZE[1]")).startswith(b"a NO [UNKNOWN-CTE]")
        # BODY[] is not affected.
        assert tagged(await s.cmd("a FETCH 2 BODY.PEEK[1]")) == b"a OK FETCH completed"
        # A non-peek BINARY that fails still reports the \Seen it set.
        out = await s.cmd("b FETCH 2 BINARY[1]")
        assert out == b"* 2 FETCH (FLAGS (\\Seen))\r\nb NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding\r\n"

    run(go())


def test_decode_binary() -> None:
    assert decode_binary("7bit", b"a=20") == b"a=20"
    assert decode_binary("quoted-printable", b"a=20b=\r\nc") == b"a bc"
    assert decode_binary("base64", b"aGVs\r\nbG8=\r\n") == b"hello"
    with pytest.raises(BrokenContent):
        decode_binary("base64", b"aGVs*bG8")
    with pytest.raises(UnknownCTE):
        decode_binary("x-uue", b"")


def test_binary_of_broken_base64_is_nil(env: Env) -> None:
    async def go() -> None:
        raw = b"Subject: bad\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!*\r\n"
        await env.append(raw)
        s = await env.session()
        out = await s.cmd("a FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1] BODY.PEEK[1])")
        assert fetch_one(out) == b"BINARY[1] NIL BINARY.SIZE[1] 0 " + literal(b"BODY[1]", b"!!!*\r\n")

    run(go())


# --- CHANGEDSINCE, MODSEQ, expunged messages -----------------------------------------


def test_changedsince(env: Env) -> None:
    async def go() -> None:
        await env.append(SIMPLE, SIMPLE, SIMPLE)
        s = await env.session(rev2=True)
        await s.cmd("a STORE 2 +FLAGS.SILENT (\\Flagged)")
        out = await s.cmd("a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 4)")
        assert out == (
            b"* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ (5))\r\n* OK [HIGHESTMODSEQ 5] Highest\r\n"
            b"a OK UID FETCH completed\r\n"
        )
        out = await s.cmd("a FETCH 1:* (UID) (CHANGEDSINCE 5)")
        assert out == b"a OK FETCH completed\r\n"

    run(go())


def test_vanished_earlier(env: Env) -> None:
    async def go() -> None:
        await env.append(SIMPLE, SIMPLE, SIMPLE, SIMPLE)
        s = await env.session(rev2=True)
        # RFC 7162 3.2.6: VANISHED only after ENABLE QRESYNC.
        out = await s.cmd("a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
        assert out == b"a BAD VANISHED needs ENABLE QRESYNC first\r\n"
        assert b"* ENABLED QRESYNC\r\n" in await s.cmd("a ENABLE QRESYNC")
        await s.cmd("a STORE 2:3 +FLAGS.SILENT (\\Deleted)")
        out = await s.cmd("a EXPUNGE")
        assert re.fullmatch(rb"\* VANISHED 2:3\r\na OK \[HIGHESTMODSEQ \d+\] EXPUNGE completed\r\n", out)
        out = await s.cmd("a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
        assert out.startswith(b"* VANISHED (EARLIER) 2:3\r\n* 1 FETCH (UID 1 FLAGS () MODSEQ (2))\r\n")

    run(go())


def test_fetch_of_messages_expunged_by_another_session(env: Env) -> None:
    async def go() -> None:
        await env.append(SIMPLE, SIMPLE, SIMPLE)
        s = await env.session(rev2=True)
        other = await env.session(rev2=True)
        await other.cmd("x STORE 2 +FLAGS.SILENT (\\Deleted)")
        await other.cmd("x EXPUNGE")
        # The EXPUNGE is not reported during FETCH (RFC 9051 7.5.1), and the message,
        # still number 2 here, returns nothing.
        out = await s.cmd("a FETCH 1:3 (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"* 2 FETCH" not in out and b"* 2 EXPUNGE" not in out
        assert b"* 1 FETCH (UID 1 " in out and b"* 3 FETCH (UID 3 " in out
        assert tagged(out) == b"a OK [EXPUNGEISSUED] Some messages were already expunged"
        out = await s.cmd("b FETCH 2 FLAGS")
        assert out == b"b OK [EXPUNGEISSUED] Some messages were already expunged\r\n"
        # UID FETCH may report the EXPUNGE, after its own responses.
        out = await s.cmd("c UID FETCH 1:* FLAGS")
        assert out == (
            b"* 1 FETCH (UID 1 FLAGS ())\r\n* 3 FETCH (UID 3 FLAGS ())\r\n* 2 EXPUNGE\r\n"
            b"c OK [EXPUNGEISSUED] Some messages were already expunged\r\n"
        )
        out = await s.cmd("d FETCH 1:* UID")
        assert out == b"* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 3)\r\nd OK FETCH completed\r\n"

    run(go())


def test_message_file_gone_before_the_view_knows(env: Env) -> None:
    async def go() -> None:
        await env.append(SIMPLE, SIMPLE)
        s = await env.session(rev2=True)
        acc = await env.account()
        mbox = await acc.get_mailbox("INBOX")
        # Expunged in the store, and this session not yet told (no change delivered).
        await acc.expunge(mbox.id, [1])
        s.miss_changes()
        out = await s.cmd("a FETCH 1:2 (UID BODY.PEEK[])")
        assert b"* 1 FETCH" not in out and b"* 2 FETCH (UID 2 BODY[]" in out
        assert b"EXPUNGEISSUED" in tagged(out)

    run(go())


def test_saved_search_result_as_fetch_set(env: Env) -> None:
    async def go() -> None:
        await env.append(SIMPLE, SIMPLE, SIMPLE)
        s = await env.session(rev2=True)
        await s.cmd("a STORE 1,3 +FLAGS.SILENT (\\Flagged)")
        await s.cmd("a SEARCH RETURN (SAVE) FLAGGED")
        out = await s.cmd("a FETCH $ UID")
        assert out == b"* 1 FETCH (UID 1)\r\n* 3 FETCH (UID 3)\r\na OK FETCH completed\r\n"

    run(go())


# --- many messages ---------------------------------------------------------------------


def test_large_fetch_is_sent_in_few_chunks(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "fsync", lambda fd: None)

    async def go() -> None:
        acc = await env.account()
        for i in range(2100):
            await acc.append("INBOX", SIMPLE, ["\\Seen"] if i % 2 else [], DATE)
        s = await env.session(rev2=True)
        await s.s.receive(b"a UID FETCH 1:* (FLAGS)\r\n")
        chunks = s.s.take_output()
        assert len(chunks) <= 5
        out = b"".join(chunks)
        lines = out.split(b"\r\n")
        assert lines[0] == b"* 1 FETCH (UID 1 FLAGS ())"
        assert lines[1] == b"* 2 FETCH (UID 2 FLAGS (\\Seen))"
        assert lines[2099] == b"* 2100 FETCH (UID 2100 FLAGS (\\Seen))"
        assert lines[2100] == b"a OK UID FETCH completed"
        out = await s.cmd("b FETCH 1:* (ENVELOPE)")
        assert out.count(b" FETCH (ENVELOPE (") == 2100

    run(go())


def test_fetch_flags_fast_path_matches_the_row_by_row_answer(env: Env) -> None:
    async def go() -> None:
        acc = await env.account()
        for flags in ([], ["\\Seen"], ["$Work", "\\Flagged"], []):
            await acc.append("INBOX", SIMPLE, flags, DATE)
        first = await env.session()  # rev1: takes \Recent for messages 1-4
        await acc.append("INBOX", SIMPLE, ["\\Seen"], DATE)
        await acc.append("INBOX", SIMPLE, [], DATE)
        s = await env.session()  # \Recent for 5 and 6 only
        out = await s.cmd("a FETCH 1:* (FLAGS)")
        assert out == (
            b"* 1 FETCH (FLAGS ())\r\n* 2 FETCH (FLAGS (\\Seen))\r\n"
            b"* 3 FETCH (FLAGS ($Work \\Flagged))\r\n* 4 FETCH (FLAGS ())\r\n"
            b"* 5 FETCH (FLAGS (\\Seen \\Recent))\r\n* 6 FETCH (FLAGS (\\Recent))\r\n"
            b"a OK FETCH completed\r\n"
        )
        # The slow path (another item alongside) gives the same flags.
        slow = await s.cmd("a FETCH 1:* (FLAGS RFC822.SIZE)")
        assert re.findall(rb"FLAGS \([^)]*\)", slow) == re.findall(rb"FLAGS \([^)]*\)", out)
        out = await s.cmd("b UID FETCH 2:3,6:9 (FLAGS)")
        assert out == (
            b"* 2 FETCH (UID 2 FLAGS (\\Seen))\r\n* 3 FETCH (UID 3 FLAGS ($Work \\Flagged))\r\n"
            b"* 6 FETCH (UID 6 FLAGS (\\Recent))\r\nb OK UID FETCH completed\r\n"
        )
        # A message this session has not been told of yet stays out, even under '*'.
        await acc.append("INBOX", SIMPLE, [], DATE)
        s.miss_changes()
        out = await s.cmd("c UID FETCH 5:* (FLAGS)")
        assert out == (
            b"* 5 FETCH (UID 5 FLAGS (\\Seen \\Recent))\r\n* 6 FETCH (UID 6 FLAGS (\\Recent))\r\n"
            b"c OK UID FETCH completed\r\n"
        )
        # Expunged in the store, the session not yet told: the rest keep their numbers.
        mbox = await acc.get_mailbox("INBOX")
        await acc.expunge(mbox.id, [2])
        s.miss_changes()
        out = await s.cmd("d FETCH 1:3 (FLAGS)")
        assert out == (
            b"* 1 FETCH (FLAGS ())\r\n* 3 FETCH (FLAGS ($Work \\Flagged))\r\n"
            b"d OK [EXPUNGEISSUED] Some messages were already expunged\r\n"
        )
        await first.cmd("z LOGOUT")

    run(go())


def test_a_small_fetch_answers_without_letting_others_run_first(env: Env) -> None:
    """The last part of a FETCH goes out with its tagged answer at once: a ready task of
    another session does not get a turn in between (a big FETCH yields between parts)."""

    async def go() -> None:
        await env.append(b"From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n")
        s = await env.session()
        turns: list[str] = []
        asyncio.get_running_loop().call_soon(turns.append, "another session")
        out = await s.cmd("a FETCH 1 (BODY.PEEK[] FLAGS)")
        assert tagged(out).startswith(b"a OK") and b"body" in out
        assert turns == []

    run(go())
