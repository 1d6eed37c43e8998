"""HEADER.FIELDS extraction (byte-exact) and RFC 2047 decoding for the SEARCH index."""

from __future__ import annotations

import pytest

from letterbox.mime.headers import (
    decode_header_text,
    get_header_fields,
    get_header_fields_not,
    search_text,
)

HEADER = (
    b"Received: from a\r\n"
    b"\tby b; Tue, 1 Jul 2003\r\n"
    b"Subject: folded\r\n"
    b"  subject line\r\n"
    b"from: lower@x.test\r\n"
    b"X-Empty:\r\n"
    b"To : spaced@x.test\r\n"
    b"broken line without colon\r\n"
    b"Subject: second\r\n"
    b"\r\n"
)


def test_fields_keep_message_order_and_continuation_lines() -> None:
    assert get_header_fields(HEADER, [b"SUBJECT", b"From"]) == (
        b"Subject: folded\r\n  subject line\r\nfrom: lower@x.test\r\nSubject: second\r\n\r\n"
    )


def test_field_name_ends_before_space_and_colon() -> None:
    assert get_header_fields(HEADER, {b"to"}) == b"To : spaced@x.test\r\n\r\n"


def test_no_match_still_has_blank_line() -> None:
    assert get_header_fields(HEADER, {b"cc"}) == b"\r\n"


def test_fields_not() -> None:
    assert get_header_fields_not(HEADER, [b"subject", b"received", b"from", b"to"]) == (
        b"X-Empty:\r\nbroken line without colon\r\n\r\n"
    )


def test_bytes_are_kept_exactly() -> None:
    header = b"Subject: caf\xc3\xa9 \0 x\n X\n\n"
    assert get_header_fields(header, [b"subject"]) == b"Subject: caf\xc3\xa9 \0 x\n X\n\r\n"


def test_header_without_blank_line() -> None:
    # RFC 3501 6.4.5: no blank line for a message with no body and no blank line
    assert get_header_fields(b"Subject: x\r\nTo: y", [b"subject"]) == b"Subject: x\r\n"
    assert get_header_fields(b"Subject: x\r\nTo: y", [b"to"]) == b"To: y\r\n"
    assert get_header_fields(b"", [b"to"]) == b""
    assert get_header_fields(b"\r\n", [b"to"]) == b"\r\n"


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"plain ascii", "plain ascii"),
        (b"=?utf-8?q?caf=C3=A9?=", "café"),
        (b"=?UTF-8?B?Y2Fmw6k=?=", "café"),
        (b"=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),  # whitespace between words goes
        (b"=?utf-8?q?a?=\r\n =?utf-8?q?_b?=", "a b"),
        (b"x =?utf-8?q?a?= y", "x a y"),
        (b"=?iso-8859-1?q?caf=E9?=", "café"),
        (b"=?utf-8*en?q?lang?=", "lang"),  # RFC 2231 language suffix
        (b"=?x-unknown?q?a=FFb?=", "a\ufffdb"),
        (b"=?base64?q?x?=", "x"),  # a codec that is not a text encoding
        (b"=?utf-8?b?!!!?=", ""),
        (b"=?utf-8?q?=FF?=", "\ufffd"),
        (b"raw \xc3\xa9", "raw é"),
        (b"raw \xe9", "raw é"),  # not UTF-8: Latin-1
        (b"=?utf-8?q?unterminated", "=?utf-8?q?unterminated"),
    ],
)
def test_decode_header_text(raw: bytes, text: str) -> None:
    assert decode_header_text(raw) == text


def test_search_text_is_unfolded_collapsed_and_casefolded() -> None:
    assert search_text(b"  Stra=?utf-8?q?=C3=9Fe?=\r\n\tIN\t K\xc3\xb6ln  ") == "strasse in köln"
