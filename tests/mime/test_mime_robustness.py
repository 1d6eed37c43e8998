"""parse_message never raises, and its output is always well-formed and consistent.

The strict internal parser is driven directly so that a bug cannot hide
behind parse_message's last-resort fallback.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from letterbox.mime import ParsedMessage, parse_message
from letterbox.mime.parse import _parse
from letterbox.mime.sections import find_section

from .mimeutil import corpus, corpus_names, parse_imap

CORPUS = [corpus(name) for name in corpus_names()]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOKENS = [
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b"\0",
    b"\xff",
    b":",
    b";",
    b'"',
    b"\\",
    b"(",
    b")",
    b"<",
    b">",
    b"@",
    b",",
    b"=",
    b"*",
    b"--",
    b"--b",
    b"--b--",
    b"--b1",
    b"From: a@b",
    b"To: x:;",
    b"Subject: =?utf-8?q?x?=",
    b"Date: Tue, 1 Jul 2003 10:52:37 +0200",
    b"MIME-Version: 1.0",
    b"Content-Type: multipart/mixed; boundary=b",
    b'Content-Type: multipart/digest; boundary="b1"',
    b"Content-Type: message/rfc822",
    b"Content-Type: text/plain; charset*0*=utf-8''a; charset*1=b",
    b"Content-Transfer-Encoding: base64",
    b"Content-Disposition: attachment; filename=x",
    b"Content-Language: en",
]


def _virtual_size(data: bytes) -> int:
    return len(data) + data.count(b"\n") - data.count(b"\r\n")


def _leading_lists(body: list[Any]) -> int:
    """How many body parts a multipart lists before its subtype."""
    count = 0
    while isinstance(body[count], list):
        count += 1
    return count


def _strip_extension(body: Any) -> Any:
    """BODYSTRUCTURE without extension data, i.e. what BODY must be."""
    if isinstance(body[0], list):
        count = _leading_lists(body)
        return [*(_strip_extension(p) for p in body[:count]), body[count]]
    kind = (body[0].lower(), body[1].lower())
    if kind == (b"message", b"rfc822"):
        return [*body[:8], _strip_extension(body[8]), body[9]]
    return body[:8] if body[0].lower() == b"text" else body[:7]


def _check_node(raw: bytes, node: list[Any], body: Any, lo: int, hi: int) -> None:
    h, b, e, kind, ctype, cte, children = node
    assert lo <= h <= b <= e <= hi, node[:3]
    assert isinstance(ctype, str) and isinstance(cte, str)
    if kind == 1:  # multipart
        subs = body[: _leading_lists(body)]
        if not children:
            assert len(subs) == 1 and subs[0][6] == 0  # the empty text/plain stand-in
        else:
            assert len(subs) == len(children)
        start = b
        for child, sub in zip(children, subs, strict=False):
            _check_node(raw, child, sub, start, e)
            start = child[2]
        return
    size = body[6]
    assert size == _virtual_size(raw[b:e])
    if kind == 2:  # message/rfc822: one child, the encapsulated message
        assert len(children) == 1 and children[0][0] == b
        assert body[9] == raw.count(b"\n", b, e)
        _check_node(raw, children[0], body[8], b, e)
    else:
        assert not children
        if body[0].lower() == b"text":
            assert body[7] == raw.count(b"\n", b, e)


def check(raw: bytes, msg: ParsedMessage) -> None:
    envelope = parse_imap(msg.envelope)
    assert len(envelope) == 10
    structure = parse_imap(msg.bodystructure)
    assert parse_imap(msg.body) == _strip_extension(structure)
    tree = json.loads(msg.parts)
    assert tree[0] == 0 and tree[1] == msg.header_size and tree[2] == len(raw)
    _check_node(raw, tree, structure, 0, len(raw))
    assert find_section(msg.parts, ()) == (0, len(raw))
    for value in (msg.subject, msg.from_, msg.to, msg.cc, msg.bcc):
        assert value == value.casefold()
    assert msg.sent_date is None or isinstance(msg.sent_date, float)


@SETTINGS
@given(st.binary(max_size=3000))
def test_random_bytes(raw: bytes) -> None:
    check(raw, _parse(raw))


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS) | st.binary(max_size=8), max_size=80))
def test_token_soup(tokens: list[bytes]) -> None:
    raw = b"".join(tokens)
    check(raw, _parse(raw))


@st.composite
def mutated_corpus(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "truncate", "newlines"]))
        pos = draw(st.integers(0, len(raw)))
        if op == "delete":
            del raw[pos : pos + draw(st.integers(1, 40))]
        elif op == "insert":
            raw[pos:pos] = draw(st.sampled_from(TOKENS) | st.binary(max_size=12))
        elif op == "replace" and pos < len(raw):
            raw[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del raw[pos:]
        elif op == "newlines":
            raw = bytearray(
                raw.replace(b"\r\n", b"\n")
                if draw(st.booleans())
                else raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            )
    return bytes(raw)


@SETTINGS
@given(mutated_corpus())
def test_mutated_corpus(raw: bytes) -> None:
    check(raw, _parse(raw))


def test_corpus_output_is_consistent() -> None:
    for raw in CORPUS:
        check(raw, _parse(raw))


def test_deep_stack_falls_back_instead_of_raising() -> None:
    raw = corpus("17-deep-nesting.eml")

    def nest(depth: int) -> ParsedMessage:
        return parse_message(raw) if depth == 0 else nest(depth - 1)

    limit = sys.getrecursionlimit()
    msg = nest(limit - 60)  # too little stack left for 100 levels of parts
    assert msg.bodystructure.startswith(b'("text" "plain"')
    assert msg.header_size == _parse(raw).header_size
    check(raw, msg)


def test_fallback_finds_the_header_end() -> None:
    from letterbox.mime.parse import _fallback

    for raw in (b"A: b\n\nbody\n", b"A: b\r\n\r\nbody", b"\r\nbody", b"no end", b""):
        msg = _fallback(raw)
        assert msg.header_size == _parse(raw).header_size
        check(raw, msg)


def test_huge_inputs_stay_linear() -> None:
    # many lines that almost look like delimiters, and many tiny parts
    near = b"Content-Type: multipart/mixed; boundary=abc\r\n\r\n" + b"--ab\r\n" * 200_000
    parts = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n\r\nx\r\n" * 50_000
    for raw in (near, parts):
        check(raw, _parse(raw))


def test_an_envelope_bomb_is_cut_short() -> None:
    """300,000 empty groups in To: used to cost seconds and 150 MB of index per copy."""
    from letterbox.mime.parse import MAX_ADDRESSES, MAX_SEARCH_TEXT

    raw = b"To: " + b"g:;," * 300_000 + b"\r\nFrom: a@b.example\r\nSubject: x\r\n\r\nbody\r\n"
    parsed = parse_message(raw)
    assert parsed.envelope.count(b"(NIL NIL") == MAX_ADDRESSES + 3  # To:, and From:, Sender:, Reply-To:
    assert len(parsed.envelope) < 64 * 1024 and len(parsed.to) <= MAX_SEARCH_TEXT
    assert b'"a" "b.example"' in parsed.envelope  # the other fields are whole
