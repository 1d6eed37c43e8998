"""Exact ENVELOPE / BODYSTRUCTURE / BODY bytes for representative messages.

Expected values are written out by hand from RFC 3501 7.4.2 (field order,
defaults) and RFC 2045/2046/2231/5322 (what the header means).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from letterbox.mime import ParsedMessage, parse_message


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


def parse(text: str) -> ParsedMessage:
    return parse_message(crlf(text))


# -- ENVELOPE -----------------------------------------------------------------


def test_envelope_fields_in_rfc3501_order() -> None:
    msg = parse(
        'From: "Joe Q. Public" <john.q.public@example.com>\n'
        "To: Mary Smith <mary@x.test>, jdoe@example.org\n"
        "Cc: <boss@nil.test>\n"
        "Bcc: secret@example.org\n"
        "Subject: Saying Hello\n"
        "Date: Fri, 21 Nov 1997 09:55:06 -0600\n"
        "In-Reply-To: <1234@local.machine.example>\n"
        "Message-ID: <5678.21-Nov-1997@example.com>\n"
        "\n"
        "Hi.\n"
    )
    from_ = b'(("Joe Q. Public" NIL "john.q.public" "example.com"))'
    assert msg.envelope == (
        b'("Fri, 21 Nov 1997 09:55:06 -0600" "Saying Hello" '
        + from_  # from
        + b" "
        + from_  # sender defaults to from
        + b" "
        + from_  # reply-to defaults to from
        + b' (("Mary Smith" NIL "mary" "x.test")(NIL NIL "jdoe" "example.org"))'
        + b' ((NIL NIL "boss" "nil.test"))'
        + b' ((NIL NIL "secret" "example.org"))'
        + b' "<1234@local.machine.example>" "<5678.21-Nov-1997@example.com>")'
    )


def test_envelope_absent_fields_are_nil_and_empty_subject_is_empty_string() -> None:
    msg = parse("Subject:\nX-Other: 1\n\nbody\n")
    assert msg.envelope == b'(NIL "" NIL NIL NIL NIL NIL NIL NIL NIL)'
    assert parse_message(b"").envelope == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"


def test_envelope_sender_and_reply_to_given() -> None:
    msg = parse("From: a@x.test\nSender: s@x.test\nReply-To: r@x.test\n\n")
    assert msg.envelope == (
        b'(NIL NIL ((NIL NIL "a" "x.test")) ((NIL NIL "s" "x.test")) '
        b'((NIL NIL "r" "x.test")) NIL NIL NIL NIL NIL)'
    )


def test_envelope_groups() -> None:
    msg = parse(
        "To: undisclosed-recipients:;\n"
        'Cc: Team: alice@x.test, "Bob B." <bob@x.test>;, carol@x.test\n'
        "\n"
    )
    assert msg.envelope == (
        b"(NIL NIL NIL NIL NIL "
        # a group is (NIL NIL "name" NIL) ... (NIL NIL NIL NIL)
        b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) '
        b'((NIL NIL "Team" NIL)(NIL NIL "alice" "x.test")("Bob B." NIL "bob" "x.test")'
        b'(NIL NIL NIL NIL)(NIL NIL "carol" "x.test")) '
        b"NIL NIL NIL)"
    )


def test_envelope_comments_routes_and_missing_parts() -> None:
    msg = parse(
        "From: w@x.test (Real Name), (ignored) k@x.test\n"
        "Sender: <@relay1.test,@relay2.test:user@host.test>\n"
        "To: nohost, @nolocal.test, <>\n"
        'Cc: "quoted local"@x.test, user@[192.0.2.1]\n'
        "\n"
    )
    assert msg.envelope == (
        b'(NIL NIL (("Real Name" NIL "w" "x.test")(NIL NIL "k" "x.test")) '
        b'((NIL "@relay1.test,@relay2.test" "user" "host.test")) '
        b'(("Real Name" NIL "w" "x.test")(NIL NIL "k" "x.test")) '
        b'((NIL NIL "nohost" "MISSING_DOMAIN")(NIL NIL "MISSING_MAILBOX" "nolocal.test")'
        b'(NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN")) '
        b'((NIL NIL "quoted local" "x.test")(NIL NIL "user" "[192.0.2.1]")) '
        b"NIL NIL NIL)"
    )


def test_envelope_values_are_unfolded_and_encoded_words_kept() -> None:
    msg = parse(
        "Date: Fri, 21 Nov 1997\n 09:55:06 -0600\n"
        "Subject: =?utf-8?q?caf=C3=A9?=\n"
        "Message-ID:\n <folded@x.test>\n"
        "\n"
    )
    # unfolding removes only the line break (RFC 5322 2.2.3)
    assert msg.envelope == (
        b'("Fri, 21 Nov 1997 09:55:06 -0600" "=?utf-8?q?caf=C3=A9?=" '
        b'NIL NIL NIL NIL NIL NIL NIL " <folded@x.test>")'
    )


def test_envelope_strings_needing_literals() -> None:
    raw = (
        b"Subject: caf\xc3\xa9\r\n"
        b'From: "J\xc3\xb6rg" <j@x.test>\r\n'
        b'Message-ID: <a"b"c"d"e"f@x.test>\r\n'
        b'In-Reply-To: <"q"@x.test>\r\n'
        b"\r\n"
    )
    msg = parse_message(raw)
    assert msg.envelope == (
        b"(NIL {5}\r\ncaf\xc3\xa9 "  # 8-bit: literal
        b'(({5}\r\nJ\xc3\xb6rg NIL "j" "x.test")) '
        b'(({5}\r\nJ\xc3\xb6rg NIL "j" "x.test")) '
        b'(({5}\r\nJ\xc3\xb6rg NIL "j" "x.test")) '
        b"NIL NIL NIL "
        b'"<\\"q\\"@x.test>" '  # few quoted-specials: escaped in a quoted string
        b'{20}\r\n<a"b"c"d"e"f@x.test>)'  # more than four: a literal is shorter
    )


def test_envelope_duplicate_fields() -> None:
    msg = parse("Subject: one\nSubject: two\nTo: a@x.test\nTo: b@x.test\n\n")
    # the last single-valued field wins; address fields accumulate
    assert msg.envelope == (
        b'(NIL "two" NIL NIL NIL ((NIL NIL "a" "x.test")(NIL NIL "b" "x.test")) NIL NIL NIL NIL)'
    )


def test_envelope_nul_becomes_replacement_character() -> None:
    msg = parse_message(b"Subject: a\0b\r\n\r\n")
    assert msg.envelope == b"(NIL {5}\r\na\xef\xbf\xbdb NIL NIL NIL NIL NIL NIL NIL NIL)"


# -- BODYSTRUCTURE / BODY -------------------------------------------------------


def test_defaults_without_content_type() -> None:
    msg = parse("Subject: x\n\nline 1\nline 2\n")
    # RFC 2045 5.2: no Content-Type means text/plain; charset=us-ascii
    assert msg.bodystructure == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 16 2 NIL NIL NIL NIL)'
    )
    assert msg.body == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 16 2)'


def test_empty_message() -> None:
    msg = parse_message(b"")
    assert msg.bodystructure == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'
    )
    assert msg.header_size == 0
    assert json.loads(msg.parts) == [0, 0, 0, 0, "text/plain", "7bit", []]


def test_text_part_with_every_field() -> None:
    msg = parse(
        "MIME-Version: 1.0\n"
        'Content-Type: TEXT/HTML; CharSet="UTF-8"\n'
        "Content-Transfer-Encoding: Quoted-Printable\n"
        "Content-ID: <id@x.test>\n"
        "Content-Description: the description\n"
        'Content-Disposition: INLINE; FileName="a b.html"\n'
        "Content-Language: en-US, de\n"
        "Content-Location: http://x.test/a.html\n"
        "Content-MD5: Q2hlY2s=\n"
        "\n"
        "<p>x</p>\n"
    )
    # type, subtype and parameter names keep the sender's case
    assert msg.bodystructure == (
        b'("TEXT" "HTML" ("CharSet" "UTF-8") "<id@x.test>" "the description" '
        b'"Quoted-Printable" 10 1 "Q2hlY2s=" ("INLINE" ("FileName" "a b.html")) '
        b'("en-US" "de") "http://x.test/a.html")'
    )
    assert msg.body == (
        b'("TEXT" "HTML" ("CharSet" "UTF-8") "<id@x.test>" "the description" '
        b'"Quoted-Printable" 10 1)'
    )


def test_multipart_mixed_with_attachment() -> None:
    msg = parse(
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="XX"\n'
        "\n"
        "preamble\n"
        "--XX\n"
        "Content-Type: text/plain\n"
        "\n"
        "hello\n"
        "--XX\n"
        "Content-Type: application/pdf; name=a.pdf\n"
        "Content-Transfer-Encoding: base64\n"
        "Content-Disposition: attachment; filename=a.pdf\n"
        "\n"
        "JVBERg==\n"
        "--XX--\n"
        "epilogue\n"
    )
    # the CRLF before each delimiter belongs to the delimiter (RFC 2046 5.1.1)
    assert msg.bodystructure == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0 NIL NIL NIL NIL)'
        b'("application" "pdf" ("name" "a.pdf") NIL NIL "base64" 8 NIL '
        b'("attachment" ("filename" "a.pdf")) NIL NIL) '
        b'"mixed" ("boundary" "XX") NIL NIL NIL)'
    )
    assert msg.body == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0)'
        b'("application" "pdf" ("name" "a.pdf") NIL NIL "base64" 8) "mixed")'
    )


def test_message_rfc822_part() -> None:
    msg = parse(
        "Content-Type: multipart/mixed; boundary=b\n"
        "\n"
        "--b\n"
        "Content-Type: message/rfc822\n"
        "\n"
        "From: inner@x.test\n"
        "Subject: inner\n"
        "\n"
        "inner body\n"
        "--b--\n"
    )
    inner_env = (
        b'(NIL "inner" ((NIL NIL "inner" "x.test")) ((NIL NIL "inner" "x.test")) '
        b'((NIL NIL "inner" "x.test")) NIL NIL NIL NIL NIL)'
    )
    # message/rfc822: envelope, body structure and line count of the encapsulated message
    assert msg.bodystructure == (
        b'(("message" "rfc822" NIL NIL NIL "7bit" 48 '
        + inner_env
        + b' ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL NIL NIL) 3 '
        b'NIL NIL NIL NIL) "mixed" ("boundary" "b") NIL NIL NIL)'
    )
    assert msg.body == (
        b'(("message" "rfc822" NIL NIL NIL "7bit" 48 '
        + inner_env
        + b' ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0) 3) "mixed")'
    )


def test_bare_lf_sizes_count_crlf() -> None:
    msg = parse_message(b"Subject: x\n\nline1\nline2\n")
    # sent as CRLF: 12 stored bytes are 14 on the wire
    assert msg.body == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 14 2)'


def test_rfc2231_continuations_are_joined_not_decoded() -> None:
    msg = parse(
        "Content-Type: application/octet-stream\n"
        "Content-Disposition: attachment; filename*0*=utf-8''%C3%A9t%C3%A9;\n"
        ' filename*1=" 2024.txt"; size=10\n'
        "\n"
        "x"
    )
    # RFC 2231 3/4: segments joined; the unencoded segment is percent-escaped
    assert msg.bodystructure == (
        b'("application" "octet-stream" NIL NIL NIL "7bit" 1 NIL '
        b'("attachment" ("size" "10" "filename*" "utf-8\'\'%C3%A9t%C3%A9 2024.txt")) '
        b"NIL NIL)"
    )


def test_content_fields_need_mime() -> None:
    # without MIME-Version or Content-Type, Content-* fields carry no meaning
    plain = parse("Content-Transfer-Encoding: base64\n\naGk=\n")
    assert plain.body == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1)'
    mime = parse("MIME-Version: 1.0\nContent-Transfer-Encoding: base64\n\naGk=\n")
    assert mime.body == b'("text" "plain" ("charset" "us-ascii") NIL NIL "base64" 6 1)'


def test_multipart_without_parts_shows_one_empty_text_part() -> None:
    msg = parse("Content-Type: multipart/mixed; boundary=none\n\nno delimiter\n")
    assert msg.bodystructure == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) '
        b'"mixed" ("boundary" "none") NIL NIL NIL)'
    )


def test_missing_close_delimiter_ends_at_end_of_message() -> None:
    msg = parse("Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo\n")
    assert msg.body == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 3 0)'
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 1) "mixed")'
    )


def test_outer_boundary_closes_unterminated_inner_multipart() -> None:
    msg = parse(
        "Content-Type: multipart/mixed; boundary=abc\n\n"
        "--abc\nContent-Type: multipart/alternative; boundary=abcdef\n\n"
        "--abcdef\n\ninner\n"
        "--abc\n\nouter\n"
        "--abc--\n"
    )
    # "--abcdef" is the inner delimiter (longest match), "--abc" the outer one
    assert msg.body == (
        b'((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0) "alternative")'
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0) "mixed")'
    )


def test_nesting_beyond_the_limit_is_opaque() -> None:
    m = b"Content-Type: text/plain\r\n\r\nleaf\r\n"
    for i in range(120):
        m = (
            b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
            + m
            + b"\r\n--b%d--\r\n" % i
        )
    msg = parse_message(m)
    assert b'"text"' not in msg.bodystructure
    assert msg.bodystructure.count(b'"application" "octet-stream"') == 1
    depth = 0
    for c in msg.bodystructure[: msg.bodystructure.index(b'"application"')]:
        depth += {0x28: 1, 0x29: -1}.get(c, 0)
    assert depth == 100  # parts on 100 levels, the 100th is not looked into


# -- index fields -----------------------------------------------------------------


def test_index_fields() -> None:
    raw = crlf(
        "From: =?utf-8?q?J=C3=B6rg?= <Joerg@Example.COM>\n"
        "To: Mary <mary@x.test>,\n bob@x.test\n"
        "Cc: c@x.test\n"
        "Cc: d@x.test\n"
        "Subject: =?utf-8?b?R3LDvMOfZQ==?= AND  Hello\n"
        "Date: Fri, 21 Nov 1997 09:55:06 -0600\n"
        "Message-ID:  <ID@x.test>  \n"
        "\n"
        "body\n"
    )
    msg = parse_message(raw)
    assert msg.subject == "grüsse and hello"  # decoded, casefolded (ß -> ss)
    assert msg.from_ == "jörg <joerg@example.com>"
    assert msg.to == "mary <mary@x.test>, bob@x.test"
    assert msg.cc == "c@x.test, d@x.test"
    assert msg.bcc == ""
    assert msg.message_id == "<ID@x.test>"
    expected = datetime(1997, 11, 21, 15, 55, 6, tzinfo=UTC).timestamp()
    assert msg.sent_date == expected
    assert msg.header_size == raw.index(b"\r\n\r\n") + 4


def test_index_fields_absent_or_unparsable() -> None:
    msg = parse_message(b"Date: yesterday-ish\r\n\r\n")
    assert msg.sent_date is None
    assert (msg.subject, msg.from_, msg.message_id) == ("", "", "")
    assert parse_message(b"no header end").header_size == len(b"no header end")


def test_parts_tree_offsets() -> None:
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n"
        "\n"
        "--b\n"
        "Content-Type: text/plain\n"
        "Content-Transfer-Encoding: Base64\n"
        "\n"
        "aGk=\n"
        "--b--\n"
    )
    tree = json.loads(parse_message(raw).parts)
    part_start = raw.index(b"Content-Type: text/plain")
    body_start = raw.index(b"aGk=")
    assert tree == [
        0,
        raw.index(b"--b"),
        len(raw),
        1,
        "multipart/mixed",
        "7bit",
        [[part_start, body_start, body_start + 4, 0, "text/plain", "base64", []]],
    ]
