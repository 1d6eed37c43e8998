from __future__ import annotations

import datetime

import pytest

from letterbox.imap import wire


def test_quoted_escapes() -> None:
    assert wire.quoted(b"plain") == b'"plain"'
    assert wire.quoted('a "b" \\c') == b'"a \\"b\\" \\\\c"'
    assert wire.quoted(b"") == b'""'
    for bad in (b"a\rb", b"a\nb", b"a\x00b"):
        with pytest.raises(ValueError):
            wire.quoted(bad)


def test_literals() -> None:
    assert wire.literal(b"ab\r\n") == b"{4}\r\nab\r\n"
    assert wire.literal("ä") == b"{2}\r\n\xc3\xa4"
    assert wire.literal8(b"\x00") == b"~{1}\r\n\x00"


def test_string_chooses_quoted_or_literal() -> None:
    assert wire.string(b"hello world") == b'"hello world"'
    assert wire.string(b"two\r\nlines") == b"{10}\r\ntwo\r\nlines"
    assert wire.string(b"nul\x00") == b"{4}\r\nnul\x00"
    assert wire.string("grüß") == b"{6}\r\ngr\xc3\xbc\xc3\x9f"
    assert wire.string("grüß", utf8=True) == '"grüß"'.encode()
    # Invalid UTF-8 is never quoted, even in UTF-8 mode.
    assert wire.string(b"\xff", utf8=True) == b"{1}\r\n\xff"
    long = b"x" * (wire.QUOTED_MAX + 1)
    assert wire.string(long).startswith(b"{%d}\r\n" % len(long))
    assert wire.string(b"x" * wire.QUOTED_MAX).startswith(b'"')


def test_astring_and_nstring() -> None:
    assert wire.astring(b"INBOX") == b"INBOX"
    assert wire.astring(b"a]b") == b"a]b"
    assert wire.astring(b"") == b'""'
    assert wire.astring(b"two words") == b'"two words"'
    assert wire.astring(b"a*") == b'"a*"'
    assert wire.astring(b"x{1}") == b'"x{1}"'
    assert wire.astring(b"nil") == b'"nil"'
    assert wire.astring("Entwürfe", utf8=True) == '"Entwürfe"'.encode()
    assert wire.nstring(None) == b"NIL"
    assert wire.nstring(b"NIL") == b'"NIL"'
    assert wire.binary_nstring(b"a\x00") == b"~{2}\r\na\x00"
    assert wire.binary_nstring(b"ab") == b'"ab"'
    assert wire.binary_nstring(None) == b"NIL"
    assert wire.is_atom(b"abc") and not wire.is_atom(b"a]") and not wire.is_atom(b"")


def test_lists() -> None:
    assert wire.paren_list([b"a", b"b"]) == b"(a b)"
    assert wire.paren_list([]) == b"()"
    assert wire.flag_list(["\\Seen", "$Junk"]) == b"(\\Seen $Junk)"
    assert wire.number_list([1, 5, 7]) == b"1 5 7"


def test_sequence_set_compression() -> None:
    assert wire.sequence_set([1, 2, 3, 4, 5, 7, 9, 10, 11, 12]) == b"1:5,7,9:12"
    assert wire.sequence_set([12, 9, 3, 3, 11, 10]) == b"3,9:12"
    assert wire.sequence_set([42]) == b"42"
    assert wire.sequence_set(range(1, 100_001)) == b"1:100000"
    with pytest.raises(ValueError):
        wire.sequence_set([])


def test_date_time() -> None:
    utc = datetime.datetime(2026, 11, 26, 8, 41, 44, tzinfo=datetime.UTC)
    assert wire.date_time(utc) == b'"26-Nov-2026 08:41:44 +0000"'
    west = datetime.timezone(-datetime.timedelta(hours=7, minutes=30))
    assert wire.date_time(datetime.datetime(1996, 7, 1, 2, 4, 5, tzinfo=west)) == (
        b'"01-Jul-1996 02:04:05 -0730"'
    )
    assert wire.date_time(datetime.datetime(2000, 1, 2, 3, 4, 5)) == b'"02-Jan-2000 03:04:05 +0000"'


def test_response_lines() -> None:
    assert wire.untagged(b"3", b"EXISTS") == b"* 3 EXISTS\r\n"
    assert wire.tagged("a1", "OK", "SELECT completed", "READ-WRITE") == (
        b"a1 OK [READ-WRITE] SELECT completed\r\n"
    )
    assert wire.tagged(b"a2", "NO", "nope") == b"a2 NO nope\r\n"
    assert wire.untagged_status("BYE", "Logging out") == b"* BYE Logging out\r\n"
    assert wire.untagged_status("OK", "", "CLOSED") == b"* OK [CLOSED]\r\n"
    assert wire.continuation() == b"+ \r\n"
    assert wire.continuation("Ready") == b"+ Ready\r\n"
    # Text echoing client input cannot break the line structure.
    assert wire.tagged("a", "BAD", "bad\r\n* OK injected") == b"a BAD bad * OK injected\r\n"
    assert wire.fetch_response(12, [b"UID 7", b"FLAGS (\\Seen)"]) == (
        b"* 12 FETCH (UID 7 FLAGS (\\Seen))\r\n"
    )
