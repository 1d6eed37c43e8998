"""BODY[section] offsets (RFC 3501 6.4.5), BINARY decoding (RFC 3516), POP3 TOP."""

from __future__ import annotations

import pytest

from letterbox.mime import parse_message
from letterbox.mime.sections import (
    decode_part,
    find_part,
    find_section,
    load_parts,
    part_encoding,
    pop3_top_end,
)

SINGLE = b"Subject: single\r\n\r\nbody line\r\n"

MIXED = (
    b"Subject: mp\r\n"
    b"Content-Type: multipart/mixed; boundary=X\r\n"
    b"\r\n"
    b"pre\r\n"
    b"--X\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"one\r\n"
    b"--X\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: inner\r\n"
    b"\r\n"
    b"inner body\r\n"
    b"--X\r\n"
    b"Content-Type: multipart/alternative; boundary=Y\r\n"
    b"\r\n"
    b"--Y\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"aGVsbG8=\r\n"
    b"--Y--\r\n"
    b"--X--\r\n"
    b"epi\r\n"
)

TOP_RFC822 = (
    b"Subject: rfc\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: in2\r\n"
    b"Content-Type: multipart/mixed; boundary=Y\r\n"
    b"\r\n"
    b"--Y\r\n\r\na\r\n--Y\r\n\r\nb\r\n--Y--\r\n"
)


def section(raw: bytes, path: tuple[int, ...], spec: str | None = None) -> bytes | None:
    rng = find_section(parse_message(raw).parts, path, spec)
    return None if rng is None else raw[rng[0] : rng[1]]


@pytest.mark.parametrize(
    ("path", "spec", "expected"),
    [
        ((), None, SINGLE),
        ((), "HEADER", b"Subject: single\r\n\r\n"),
        ((), "TEXT", b"body line\r\n"),
        ((), "MIME", None),  # MIME needs a part number
        ((1,), None, b"body line\r\n"),  # a non-multipart message has part 1: its body
        ((1,), "MIME", b"Subject: single\r\n\r\n"),
        ((1,), "HEADER", None),  # HEADER only for message/rfc822 parts
        ((2,), None, None),
        ((1, 1), None, None),
        ((0,), None, None),
    ],
)
def test_single_part_message(path: tuple[int, ...], spec: str | None, expected: bytes) -> None:
    assert section(SINGLE, path, spec) == expected


@pytest.mark.parametrize(
    ("path", "spec", "expected"),
    [
        ((), "HEADER", b"Subject: mp\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n"),
        ((1,), None, b"one"),  # the CRLF before a delimiter is the delimiter's
        ((1,), "MIME", b"Content-Type: text/plain\r\n\r\n"),
        ((1,), "TEXT", None),
        ((1, 1), None, b"one"),  # a text part has no part 1; Dovecot answers with the part
        ((1, 1, 1), None, None),
        ((2,), None, b"Subject: inner\r\n\r\ninner body"),
        ((2,), "MIME", b"Content-Type: message/rfc822\r\n\r\n"),
        ((2,), "HEADER", b"Subject: inner\r\n\r\n"),
        ((2,), "HEADER.FIELDS", b"Subject: inner\r\n\r\n"),
        ((2,), "TEXT", b"inner body"),
        ((2, 1), None, b"inner body"),  # part 1 of the non-multipart encapsulated message
        ((2, 1), "MIME", b"Subject: inner\r\n\r\n"),
        ((2, 2), None, None),
        # the line break ending the close delimiter stays in the inner
        # multipart when the outer delimiter follows at once (as in Dovecot)
        ((3,), None, b"--Y\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--Y--\r\n"),
        ((3, 1), None, b"aGVsbG8="),
        ((3, 1), "MIME", b"Content-Transfer-Encoding: base64\r\n\r\n"),
        ((4,), None, None),
    ],
)
def test_multipart_message(path: tuple[int, ...], spec: str | None, expected: bytes) -> None:
    assert section(MIXED, path, spec) == expected


@pytest.mark.parametrize(
    ("path", "spec", "expected"),
    [
        ((1,), None, TOP_RFC822[TOP_RFC822.index(b"Subject: in2") :]),
        ((1,), "MIME", b"Subject: rfc\r\nContent-Type: message/rfc822\r\n\r\n"),
        ((1,), "HEADER", b"Subject: in2\r\nContent-Type: multipart/mixed; boundary=Y\r\n\r\n"),
        ((1, 1), None, b"a"),
        ((1, 2), None, b"b"),
        ((1, 2), "MIME", b"\r\n"),
        ((1, 3), None, None),
    ],
)
def test_top_level_message_rfc822(path: tuple[int, ...], spec: str | None, expected: bytes) -> None:
    assert section(TOP_RFC822, path, spec) == expected


def test_loaded_tree_is_reusable_and_part_encoding() -> None:
    tree = load_parts(parse_message(MIXED).parts)
    assert part_encoding(tree, (3, 1)) == ("text/plain", "base64")
    assert part_encoding(tree, (2,)) == ("message/rfc822", "7bit")
    assert part_encoding(tree, ()) == ("multipart/mixed", "7bit")
    assert part_encoding(tree, (9,)) is None
    node = find_part(tree, (3,))
    assert node is not None and node[4] == "multipart/alternative"


def test_bare_lf_offsets_are_raw() -> None:
    raw = b"Subject: x\n\nline\n"
    assert section(raw, (), "HEADER") == b"Subject: x\n\n"
    assert section(raw, (1,), None) == b"line\n"


@pytest.mark.parametrize(
    ("cte", "data", "expected"),
    [
        ("7bit", b"as is\r\n", b"as is\r\n"),
        ("8BIT", b"\xe9", b"\xe9"),
        ("binary", b"\0\1", b"\0\1"),
        ("", b"x", b"x"),
        ("base64", b"aGVs\r\nbG8=\r\n", b"hello"),
        ("BASE64", b"aGVsbG8", b"hello"),  # missing padding tolerated
        ("base64", b"", b""),
        ("base64", b"a!b=", None),
        ("base64", b"aGVsbG8=aGk=", None),  # data after the padding
        ("base64", b"a", None),
        ("quoted-printable", b"a=3Db =C3=A9\r\nnext", b"a=b \xc3\xa9\r\nnext"),
        ("quoted-printable", b"soft=\r\nbreak=\nhere=", b"softbreakhere"),
        ("quoted-printable", b"trailing   \r\nspace\t", b"trailing\r\nspace"),
        ("quoted-printable", b"lower =e9", b"lower \xe9"),
        ("quoted-printable", b"bad =ZZ", None),
        ("quoted-printable", b"bad = escape", None),
        ("x-uuencode", b"begin", None),
        ("8 bit", b"x", None),
    ],
)
def test_decode_part(cte: str, data: bytes, expected: bytes | None) -> None:
    assert decode_part(cte, data) == expected


def test_pop3_top_end() -> None:
    raw = b"Subject: x\r\n\r\none\r\ntwo\r\nthree"
    hs = parse_message(raw).header_size
    assert raw[: pop3_top_end(raw, hs, 0)] == b"Subject: x\r\n\r\n"
    assert raw[: pop3_top_end(raw, hs, 2)] == b"Subject: x\r\n\r\none\r\ntwo\r\n"
    assert pop3_top_end(raw, hs, 3) == len(raw)
    assert pop3_top_end(raw, hs, 99) == len(raw)
    assert pop3_top_end(raw, hs, -1) == hs
