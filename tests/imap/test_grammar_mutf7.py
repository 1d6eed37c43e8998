from __future__ import annotations

import pytest

from letterbox.imap.grammar.mutf7 import (
    MUTF7Error,
    decode,
    decode_mailbox_name,
    encode,
    encode_mailbox_name,
)


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("INBOX", b"INBOX"),
        ("~peter/mail/台北/日本語", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("Entwürfe", b"Entw&APw-rfe"),
        ("Tom & Jerry", b"Tom &- Jerry"),
        ("&&", b"&-&-"),
        ("ä&ö", b"&AOQ-&-&APY-"),
        ("😀", b"&2D3eAA-"),
        ("tab\there", b"tab&AAk-here"),
        ("", b""),
    ],
)
def test_round_trip(text: str, wire: bytes) -> None:
    assert encode(text) == wire
    assert decode(wire) == text


@pytest.mark.parametrize(
    "wire",
    [
        b"&",
        b"a&b",
        b"&U,BTFw",
        b"&Jjo!-",
        "ä".encode(),
        b"\x01",
        b"&AGE-",  # "a" must represent itself
        b"&AOQ-&APY-",  # superfluous shift
        b"&AOR-",  # non-zero padding bits
        b"&2D0-",  # lone surrogate
    ],
)
def test_invalid(wire: bytes) -> None:
    with pytest.raises(MUTF7Error):
        decode(wire)


def test_lenient_decoding_accepts_non_canonical_forms() -> None:
    assert decode(b"&AOQ-&APY-", strict=False) == "äö"
    assert decode(b"&AGE-", strict=False) == "a"


def test_mailbox_name_helpers() -> None:
    assert decode_mailbox_name(b"Entw&APw-rfe", utf8=False) == "Entwürfe"
    assert decode_mailbox_name("Entwürfe".encode(), utf8=True) == "Entwürfe"
    # In UTF-8 mode "&" is an ordinary character.
    assert decode_mailbox_name(b"Entw&APw-rfe", utf8=True) == "Entw&APw-rfe"
    assert encode_mailbox_name("Entwürfe", utf8=False) == b"Entw&APw-rfe"
    assert encode_mailbox_name("Entwürfe", utf8=True) == "Entwürfe".encode()
    with pytest.raises(MUTF7Error):
        decode_mailbox_name(b"\xff", utf8=True)
    with pytest.raises(MUTF7Error):
        encode("\udc00")
