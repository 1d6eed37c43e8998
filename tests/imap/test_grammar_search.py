"""SEARCH programs: every key, nesting, RETURN and CHARSET."""

from __future__ import annotations

import datetime

import pytest

from letterbox.imap.grammar import (
    CommandReader,
    NeedContinuation,
    ParseError,
    Search,
    SearchAge,
    SearchAll,
    SearchAnd,
    SearchDate,
    SearchFlag,
    SearchHeader,
    SearchKey,
    SearchModSeq,
    SearchNot,
    SearchOr,
    SearchSet,
    SearchSize,
    SearchString,
    SequenceSet,
)


def search(data: bytes) -> Search:
    reader = CommandReader()
    reader.feed(b"a " + data + b"\r\n")
    while True:
        event = reader.next_event()
        if isinstance(event, Search):
            return event
        assert event is not None and not isinstance(event, ParseError), event


def key(text: bytes) -> SearchKey:
    return search(b"SEARCH " + text).key


def is_error(data: bytes) -> bool:
    reader = CommandReader()
    reader.feed(b"a " + data + b"\r\n")
    event = reader.next_event()
    while isinstance(event, NeedContinuation):
        event = reader.next_event()
    return isinstance(event, ParseError) and event.tag == "a"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"ALL", SearchAll()),
        (b"ANSWERED", SearchFlag("\\Answered")),
        (b"DELETED", SearchFlag("\\Deleted")),
        (b"DRAFT", SearchFlag("\\Draft")),
        (b"FLAGGED", SearchFlag("\\Flagged")),
        (b"SEEN", SearchFlag("\\Seen")),
        (b"RECENT", SearchFlag("\\Recent")),
        (b"unanswered", SearchFlag("\\Answered", False)),
        (b"UNDELETED", SearchFlag("\\Deleted", False)),
        (b"UNDRAFT", SearchFlag("\\Draft", False)),
        (b"UNFLAGGED", SearchFlag("\\Flagged", False)),
        (b"UNSEEN", SearchFlag("\\Seen", False)),
        (b"OLD", SearchFlag("\\Recent", False)),
        (b"NEW", SearchAnd((SearchFlag("\\Recent"), SearchFlag("\\Seen", False)))),
        (b"KEYWORD $Forwarded", SearchFlag("$Forwarded")),
        (b"UNKEYWORD Junk", SearchFlag("Junk", False)),
        (b"BCC x", SearchString("BCC", b"x")),
        (b'BODY "two words"', SearchString("BODY", b"two words")),
        (b"CC {3}\r\nabc", SearchString("CC", b"abc")),
        (b"FROM Smith", SearchString("FROM", b"Smith")),
        (b'SUBJECT ""', SearchString("SUBJECT", b"")),
        (b"TEXT x", SearchString("TEXT", b"x")),
        (b"TO x", SearchString("TO", b"x")),
        (b'HEADER Message-ID "<a@b>"', SearchHeader("Message-ID", b"<a@b>")),
        (b"BEFORE 1-Feb-1994", SearchDate("BEFORE", datetime.date(1994, 2, 1))),
        (b'ON "25-dec-2023"', SearchDate("ON", datetime.date(2023, 12, 25))),
        (b"SINCE 01-Jan-2000", SearchDate("SINCE", datetime.date(2000, 1, 1))),
        (b"SENTBEFORE 1-Feb-1994", SearchDate("SENTBEFORE", datetime.date(1994, 2, 1))),
        (b"SENTON 1-Feb-1994", SearchDate("SENTON", datetime.date(1994, 2, 1))),
        (b"SENTSINCE 1-Feb-1994", SearchDate("SENTSINCE", datetime.date(1994, 2, 1))),
        (b"LARGER 10000", SearchSize(True, 10000)),
        (b"SMALLER 9223372036854775807", SearchSize(False, 2**63 - 1)),
        (b"1:5,7", SearchSet(SequenceSet.parse("1:5,7"))),
        (b"*", SearchSet(SequenceSet.parse("*"))),
        (b"$", SearchSet(SequenceSet.parse("$"))),
        (b"UID 10:*", SearchSet(SequenceSet.parse("10:*"), uid=True)),
        (b"UID $", SearchSet(SequenceSet.parse("$"), uid=True)),
        (b"NOT SEEN", SearchNot(SearchFlag("\\Seen"))),
        (b"OR SEEN FLAGGED", SearchOr(SearchFlag("\\Seen"), SearchFlag("\\Flagged"))),
        (b"(SEEN)", SearchFlag("\\Seen")),
        (b"(SEEN FLAGGED)", SearchAnd((SearchFlag("\\Seen"), SearchFlag("\\Flagged")))),
        (b"MODSEQ 620162338", SearchModSeq(620162338)),
        (
            b'MODSEQ "/flags/\\\\draft" all 620162338',
            SearchModSeq(620162338, b"/flags/\\draft", "ALL"),
        ),
        (b"OLDER 3600", SearchAge(True, 3600)),
        (b"YOUNGER 259200", SearchAge(False, 259200)),
    ],
)
def test_search_keys(text: bytes, expected: SearchKey) -> None:
    assert key(text) == expected


def test_nested_program() -> None:
    assert key(b"OR (FROM a NOT (SEEN 2:3)) NOT OR DELETED 1 UNSEEN") == SearchAnd(
        (
            SearchOr(
                SearchAnd(
                    (
                        SearchString("FROM", b"a"),
                        SearchNot(
                            SearchAnd((SearchFlag("\\Seen"), SearchSet(SequenceSet.parse("2:3"))))
                        ),
                    )
                ),
                SearchNot(SearchOr(SearchFlag("\\Deleted"), SearchSet(SequenceSet.parse("1")))),
            ),
            SearchFlag("\\Seen", False),
        )
    )


def test_return_and_charset() -> None:
    cmd = search(b"UID SEARCH RETURN (MIN MAX count save ALL) CHARSET utf-8 TEXT {4}\r\n\xc3\xa4\xc3\xb6")
    assert cmd.uid and cmd.charset == "UTF-8"
    assert cmd.return_options == ("MIN", "MAX", "COUNT", "SAVE", "ALL")
    assert cmd.key == SearchString("TEXT", "äö".encode())
    cmd = search(b"SEARCH RETURN () ALL")
    assert cmd.return_options == () and cmd.charset is None
    cmd = search(b'SEARCH CHARSET "US-ASCII" ALL')
    assert cmd.charset == "US-ASCII" and cmd.return_options is None


@pytest.mark.parametrize(
    "data",
    [
        b"SEARCH",
        b"SEARCH ()",
        b"SEARCH BOGUS",
        b"SEARCH FROM",
        b"SEARCH OR SEEN",
        b"SEARCH NOT",
        b"SEARCH (SEEN",
        b"SEARCH SEEN)",
        b"SEARCH SEEN  UNSEEN",
        b"SEARCH BEFORE 30-Feb-2020",
        b"SEARCH BEFORE 1-Foo-2020",
        b"SEARCH BEFORE 1-Feb-20",
        b'SEARCH BEFORE "1-Feb-2020',
        b"SEARCH LARGER x",
        b"SEARCH LARGER 9223372036854775808",
        b"SEARCH OLDER 0",
        b"SEARCH KEYWORD \\Seen",
        b"SEARCH UID",
        b"SEARCH 1:x",
        b"SEARCH $,1",
        b"SEARCH RETURN (BOGUS) ALL",
        b"SEARCH RETURN MIN ALL",
        b"SEARCH CHARSET",
        b"SEARCH CHARSET UTF-8",
        b'SEARCH MODSEQ "/flags/x" bogus 5',
        b"SEARCH HEADER {2}\r\n\xc3\xa4 x",
    ],
)
def test_search_errors(data: bytes) -> None:
    assert is_error(data)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    assert is_error(b"SEARCH " + b"(" * 5000 + b"ALL" + b")" * 5000)
    assert is_error(b"SEARCH " + b"NOT " * 5000 + b"ALL")
    assert is_error(b"SEARCH " + b"OR ALL " * 5000 + b"ALL")
    assert isinstance(key(b"NOT " * 50 + b"ALL"), SearchNot)
