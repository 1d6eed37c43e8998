"""Parse on append: the caller's parse is used as is, else the message is parsed."""

from __future__ import annotations

import asyncio

from letterbox.mime import parse_message
from letterbox.store.rules import messages

MSG = b"From: a@example.com\r\nSubject: Hi there\r\n\r\nbody\r\n"


def test_a_given_parse_is_kept() -> None:
    given = parse_message(MSG)
    assert asyncio.run(messages.parse(b"other bytes", given)) is given


def test_small_and_big_messages_parse_alike() -> None:
    small = asyncio.run(messages.parse(MSG))
    big_data = MSG + b"x" * messages.THREAD_PARSE
    big = asyncio.run(messages.parse(big_data))
    assert small.subject == big.subject == "hi there"
    assert big.envelope == parse_message(big_data).envelope
