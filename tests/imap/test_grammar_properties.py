"""Property tests: robustness on arbitrary input, chunking independence, round trips."""

from __future__ import annotations

import datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from letterbox.imap import wire
from letterbox.imap.grammar import (
    Append,
    Command,
    CommandReader,
    Event,
    Line,
    Login,
    NeedContinuation,
    Noop,
    ParseError,
    SequenceSet,
)
from letterbox.imap.grammar.mutf7 import decode, encode

# Fragments that steer random input into the interesting corners of the grammar.
FRAGMENTS = [
    b"a ",
    b"b1 ",
    b"UID ",
    b"NOOP",
    b"LOGIN ",
    b"SELECT ",
    b"FETCH ",
    b"STORE ",
    b"SEARCH ",
    b"APPEND ",
    b"LIST ",
    b"STATUS ",
    b"ID ",
    b"AUTHENTICATE ",
    b"1:*",
    b"$",
    b"5,7:9",
    b"INBOX",
    b"(",
    b")",
    b"[",
    b"]",
    b"<0.10>",
    b"BODY.PEEK[",
    b"HEADER.FIELDS (",
    b"FLAGS",
    b"\\Seen",
    b"OR ",
    b"NOT ",
    b"CHARSET ",
    b"RETURN (",
    b'"',
    b"\\",
    b'"q\\"x"',
    b" ",
    b"{3}\r\n",
    b"{2+}\r\n",
    b"~{1}\r\n",
    b"{0}\r\n",
    b"{99999999999999999999+}\r\n",
    b"\r\n",
    b"\n",
    b"\x00",
    b"\xff",
    b'"01-Jan-2020 00:00:00 +0000" ',
    b"1-Feb-2024",
]

streams = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=20)), max_size=40
).map(b"".join)

EVENT_TYPES = (Command, NeedContinuation, Line, ParseError)


def run(
    data: bytes, cuts: list[int], options: dict[str, Any] | None = None, line_mode: bool = False
) -> list[Event]:
    reader = CommandReader(**(options or {}))
    events: list[Event] = []
    last = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts} | {len(data)}):
        reader.feed(data[last:cut])
        last = cut
        while (event := reader.next_event()) is not None:
            assert isinstance(event, EVENT_TYPES)
            events.append(event)
            if line_mode and isinstance(event, Command) and event.name in (
                "AUTHENTICATE",
                "IDLE",
            ):
                reader.expect_line()
    return events


@settings(max_examples=400, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams, st.lists(st.integers(min_value=0), max_size=8))
def test_arbitrary_input_only_yields_events(data: bytes, cuts: list[int]) -> None:
    run(data, cuts)
    run(data, cuts, line_mode=True)


@settings(max_examples=300, database=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0), max_size=8))
def test_random_bytes_with_small_limits(data: bytes, cuts: list[int]) -> None:
    options = {
        "max_line_length": 16,
        "max_string_literal_size": 4,
        "max_literal_size": 8,
        "max_command_size": 200,
        "non_sync_literals": "LITERAL-",
    }
    run(data, cuts, options)


@settings(max_examples=300, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams, st.lists(st.integers(min_value=0), max_size=10))
def test_events_do_not_depend_on_chunking(data: bytes, cuts: list[int]) -> None:
    whole = run(data, [])
    assert run(data, cuts) == whole
    small = {"max_line_length": 24, "max_string_literal_size": 3}
    assert run(data, cuts, small) == run(data, [], small)


@settings(database=None)
@given(st.binary(max_size=300))
def test_resync_after_garbage_line(garbage: bytes) -> None:
    # A line without braces cannot announce a literal, so the next command is read.
    line = garbage.replace(b"\n", b"").replace(b"{", b"")
    events = run(line + b"\r\nz9 NOOP\r\n", [len(line) // 2])
    assert events[-1] == Noop("z9")


# -- round trips ------------------------------------------------------------------------

char8 = st.binary(max_size=200).map(lambda b: b.replace(b"\x00", b"\x01"))


def parse_all(data: bytes) -> list[Event]:
    reader = CommandReader()
    reader.feed(data)
    events = []
    while (event := reader.next_event()) is not None:
        events.append(event)
    return [e for e in events if not isinstance(e, NeedContinuation)]


@settings(database=None)
@given(char8, char8, st.booleans())
def test_strings_round_trip_through_login(user: bytes, password: bytes, utf8: bool) -> None:
    line = b"t LOGIN " + wire.astring(user, utf8=utf8) + b" " + wire.string(password, utf8=utf8)
    assert parse_all(line + b"\r\n") == [Login("t", user, password)]


@settings(database=None)
@given(char8)
def test_literals_round_trip(value: bytes) -> None:
    assert parse_all(b"t LOGIN " + wire.literal(value) + b" " + wire.quoted(b"x") + b"\r\n") == [
        Login("t", value, b"x")
    ]


@settings(database=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"], max_codepoint=0x7F), max_size=60))
def test_quoted_ascii_round_trip(text: str) -> None:
    value = text.replace("\r", "").replace("\n", "").replace("\x00", "").encode()
    assert parse_all(b"t LOGIN " + wire.quoted(value) + b" x\r\n") == [Login("t", value, b"x")]


@settings(database=None)
@given(st.binary(max_size=100), st.booleans())
def test_append_message_round_trip(message: bytes, binary: bool) -> None:
    lit = wire.literal8(message) if binary else wire.literal(message.replace(b"\x00", b"."))
    events = parse_all(b"t APPEND INBOX " + lit + b"\r\n")
    assert len(events) == 1 and isinstance(events[0], Append)
    expected = message if binary else message.replace(b"\x00", b".")
    assert events[0].messages[0].data == expected


bounds = st.one_of(st.none(), st.integers(min_value=1, max_value=2**32 - 1))


@settings(database=None)
@given(st.lists(st.tuples(bounds, bounds), min_size=1, max_size=10))
def test_sequence_set_text_round_trip(ranges: list[tuple[int | None, int | None]]) -> None:
    seqset = SequenceSet(tuple(ranges))
    assert SequenceSet.parse(str(seqset)) == seqset


@settings(database=None)
@given(st.sets(st.integers(min_value=1, max_value=5000), min_size=1, max_size=300))
def test_compressed_sequence_set_round_trip(numbers: set[int]) -> None:
    text = wire.sequence_set(numbers)
    assert list(SequenceSet.parse(text).iter(0)) == sorted(numbers)
    assert bytes(SequenceSet.of(numbers)) == text
    star = max(numbers)
    assert all(SequenceSet.parse(text).contains(n, star) for n in numbers)


@settings(database=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40))
def test_mutf7_round_trip(name: str) -> None:
    encoded = encode(name)
    assert encoded.isascii()
    assert decode(encoded) == name


@settings(database=None)
@given(
    st.datetimes(
        min_value=datetime.datetime(1000, 1, 1),
        max_value=datetime.datetime(9999, 12, 31),
        timezones=st.sampled_from(
            [datetime.UTC, datetime.timezone(datetime.timedelta(hours=5, minutes=30)),
             datetime.timezone(-datetime.timedelta(hours=11))]
        ),
    )
)
def test_date_time_round_trip(value: datetime.datetime) -> None:
    value = value.replace(microsecond=0)
    events = parse_all(b"t APPEND INBOX " + wire.date_time(value) + b" {1+}\r\nx\r\n")
    assert isinstance(events[0], Append)
    parsed = events[0].messages[0].internal_date
    assert parsed == value and parsed is not None and parsed.utcoffset() == value.utcoffset()
