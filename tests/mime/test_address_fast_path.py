"""parse_addresses answers one plain address without the tokenizer; it must give exactly
what the full parser gives, for those and for everything near them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from letterbox.mime.rfc822 import _SIMPLE_ADDRESS, _AddressParser, parse_addresses

CORPUS = Path(__file__).parent / "corpus"

PLAIN = [
    b"a@b",
    b"John Smith <john.smith@example.com>",
    b"  <x@y.z>  ",
    b"Name<x@y>",
    b"\tR2-D2 <r2+d2@droids.example>\t",
    b"o'brien@example.ie",
    b"{weird}|~ <a.b.c@d.e.f>",
]
NEAR = [
    b"John  Smith <j@x>",
    b"John Smith  <j@x>",
    b"John.Smith <j@x>",
    b'"John Smith" <j@x>',
    b"John (Johnny) Smith <j@x>",
    b"j@x (John)",
    b"<j@x>, <k@y>",
    b"j@x,",
    b"a.@b",
    b".a@b",
    b"a@b.",
    b"a@[1.2.3.4]",
    b"<@route:a@b>",
    b"group: a@b;",
    b"a@b\r\n c@d",
    b"a\0b@c",
    b"",
    b" ",
    b"<>",
    b"a",
    b"John <j@x> trailing",
]


@pytest.mark.parametrize("value", PLAIN)
def test_plain_addresses_take_the_fast_path(value: bytes) -> None:
    assert _SIMPLE_ADDRESS.fullmatch(value)
    assert parse_addresses(value) == _AddressParser(value).parse()


@pytest.mark.parametrize("value", NEAR)
def test_near_misses_agree(value: bytes) -> None:
    assert parse_addresses(value) == _AddressParser(value).parse()


def test_corpus_address_fields_agree() -> None:
    seen = 0
    for path in sorted(CORPUS.glob("*.eml")):
        header = path.read_bytes().split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
        for line in header.replace(b"\r\n", b"\n").split(b"\n"):
            name, _, value = line.partition(b":")
            if name.lower() in (b"from", b"to", b"cc", b"bcc", b"reply-to", b"sender"):
                assert parse_addresses(value) == _AddressParser(value).parse(), value
                seen += 1
    assert seen > 10


_piece = st.sampled_from([b"a", b"Bob", b"x1", b" ", b"  ", b"\t", b".", b"@", b"<", b">", b",", b'"', b"(", b")",
                          b"-", b"+", b"'", b"example", b"com", b":", b";", b"[", b"]", b"\\", b"\x80", b"\0"])


@settings(max_examples=1000, deadline=None)
@given(st.lists(_piece, max_size=14).map(b"".join))
def test_random_values_agree(value: bytes) -> None:
    assert parse_addresses(value) == _AddressParser(value).parse()


_atomish = st.text(alphabet="aZ09!#$%&'*+/=?^_`{|}~-.\"( )<>@,;:\\", min_size=1, max_size=6).map(str.encode)
_space = st.sampled_from([b"", b" ", b"  ", b"\t"])


@settings(max_examples=1000, deadline=None)
@given(st.lists(_atomish, max_size=3), _space, _atomish, _atomish, _space, st.booleans())
def test_address_shaped_values_agree(
    words: list[bytes], gap: bytes, local: bytes, domain: bytes, pad: bytes, angle: bool
) -> None:
    spec = local + b"@" + domain
    value = pad + b" ".join(words) + gap + (b"<" + spec + b">" if angle else spec) + pad
    assert parse_addresses(value) == _AddressParser(value).parse()
