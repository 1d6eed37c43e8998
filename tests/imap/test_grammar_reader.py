"""Stream-level behaviour of CommandReader: lines, literals, limits, recovery."""

from __future__ import annotations

from typing import Any

import pytest

from letterbox.imap.grammar import (
    Append,
    Authenticate,
    CommandReader,
    Event,
    Idle,
    Line,
    Login,
    NeedContinuation,
    Noop,
    ParseError,
    Select,
    Spooled,
)


def drain(reader: CommandReader) -> list[Event]:
    events = []
    while (event := reader.next_event()) is not None:
        events.append(event)
    return events


def feed_all(data: bytes, **options: Any) -> list[Event]:
    reader = CommandReader(**options)
    reader.feed(data)
    return drain(reader)


def test_simple_command_and_need_more_bytes() -> None:
    reader = CommandReader()
    reader.feed(b"a1 NOO")
    assert reader.next_event() is None
    reader.feed(b"P\r")
    assert reader.next_event() is None
    reader.feed(b"\n")
    assert reader.next_event() == Noop("a1")
    assert reader.next_event() is None
    assert reader.pending_bytes == 0


def test_pipelined_commands_in_one_feed() -> None:
    events = feed_all(b"a NOOP\r\nb LOGIN u p\r\nc SELECT inbox\r\n")
    assert events == [Noop("a"), Login("b", b"u", b"p"), Select("c", b"INBOX")]


def test_bare_lf_and_empty_lines_are_tolerated() -> None:
    assert feed_all(b"\r\n\r\na NOOP\n\nb NOOP\r\n") == [Noop("a"), Noop("b")]


def test_command_names_are_case_insensitive() -> None:
    assert feed_all(b"x nOoP\r\n") == [Noop("x")]


def test_byte_by_byte_feeding() -> None:
    data = b'a LOGIN {3}\r\nbob "pw"\r\nb NOOP\r\n'
    reader = CommandReader()
    events: list[Event] = []
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        events.extend(drain(reader))
    assert events == [
        NeedContinuation("a", "LOGIN", 3),
        Login("a", b"bob", b"pw"),
        Noop("b"),
    ]


def test_synchronizing_literal_flow() -> None:
    reader = CommandReader()
    reader.feed(b"A001 LOGIN {11}\r\n")
    assert reader.next_event() == NeedContinuation("A001", "LOGIN", 11)
    assert reader.next_event() is None
    # The session now sends "+ Ready" and the client sends the literal.
    reader.feed(b"FRED FOOBAR {7}\r\n")
    assert reader.next_event() == NeedContinuation("A001", "LOGIN", 7)
    reader.feed(b"fat man\r\n")
    assert reader.next_event() == Login("A001", b"FRED FOOBAR", b"fat man")


def test_literal_split_across_feeds() -> None:
    reader = CommandReader()
    reader.feed(b"a LOGIN {10}\r\n01234")
    assert reader.next_event() == NeedContinuation("a", "LOGIN", 10)
    assert reader.next_event() is None
    reader.feed(b"56")
    assert reader.next_event() is None
    reader.feed(b"789 x\r")
    assert reader.next_event() is None
    reader.feed(b"\n")
    assert reader.next_event() == Login("a", b"0123456789", b"x")


def test_literal_may_contain_crlf_and_braces() -> None:
    events = feed_all(b"a LOGIN {8+}\r\n{1}\r\nx\r\n {0+}\r\n\r\n")
    assert events == [Login("a", b"{1}\r\nx\r\n", b"")]


def test_non_synchronizing_literal_has_no_continuation() -> None:
    events = feed_all(b"A001 LOGIN {11+}\r\nFRED FOOBAR {7+}\r\nfat man\r\n")
    assert events == [Login("A001", b"FRED FOOBAR", b"fat man")]


def test_literal8_in_append_allows_nul() -> None:
    events = feed_all(b"a APPEND INBOX ~{3}\r\n\x00\x01\x02\r\n")
    assert events[0] == NeedContinuation("a", "APPEND", 3, binary=True, message=True)
    cmd = events[1]
    assert isinstance(cmd, Append)
    assert cmd.messages[0].data == b"\x00\x01\x02" and cmd.messages[0].binary


def test_literal8_outside_append_is_bad() -> None:
    events = feed_all(b"a LOGIN ~{3+}\r\nabc x\r\nb NOOP\r\n")
    assert isinstance(events[0], ParseError) and events[0].tag == "a"
    assert events[1] == Noop("b")


def test_nul_in_plain_literal_is_bad() -> None:
    events = feed_all(b"a LOGIN {3+}\r\na\x00c x\r\nb NOOP\r\n")
    assert isinstance(events[0], ParseError)
    assert events[0].tag == "a" and "NUL" in events[0].message
    assert events[1] == Noop("b")


def test_nul_in_line_is_bad() -> None:
    events = feed_all(b"a LOGIN a\x00b c\r\nb NOOP\r\n")
    assert isinstance(events[0], ParseError) and events[0].tag == "a"
    assert events[1] == Noop("b")


def test_eight_bit_bytes() -> None:
    # Unquoted 8-bit is not an atom; quoted 8-bit and literals are kept as bytes.
    events = feed_all("a LOGIN jörg x\r\nb LOGIN \"jörg\" {2+}\r\nü\r\n".encode())
    assert isinstance(events[0], ParseError) and events[0].tag == "a"
    assert events[1] == Login("b", "jörg".encode(), "ü".encode())


def test_mailbox_literal_in_append_is_not_message_data() -> None:
    events = feed_all(b"a APPEND {5}\r\nDraft {2}\r\nhi\r\n")
    assert events[0] == NeedContinuation("a", "APPEND", 5, message=False)
    assert events[1] == NeedContinuation("a", "APPEND", 2, message=True)
    assert isinstance(events[2], Append) and events[2].mailbox == b"Draft"


# -- errors and resynchronization --------------------------------------------------------


def test_unknown_command_keeps_tag() -> None:
    events = feed_all(b"t1 FROB x y\r\nt2 NOOP\r\n")
    error = events[0]
    assert isinstance(error, ParseError)
    assert error.tag == "t1" and "Unknown command FROB" in error.message
    assert error.status == "BAD" and not error.fatal
    assert error.response() == b"t1 BAD Unknown command FROB\r\n"
    assert events[1] == Noop("t2")


def test_missing_tag_gives_untagged_error() -> None:
    events = feed_all(b"NOOP\r\n+tag NOOP\r\n(x) NOOP\r\nok NOOP\r\n")
    assert [e.tag for e in events[:3] if isinstance(e, ParseError)] == [None, None, None]
    assert isinstance(events[0], ParseError)
    assert events[0].response().startswith(b"* BAD ")
    assert events[3] == Noop("ok")


def test_syntax_error_keeps_tag() -> None:
    events = feed_all(b"a SELECT\r\nb SELECT a b\r\nc NOOP extra\r\nd LOGIN  x y\r\n")
    assert all(isinstance(e, ParseError) for e in events)
    assert [e.tag for e in events if isinstance(e, ParseError)] == list("abcd")


def test_synchronizing_literal_of_bad_command_is_refused_early() -> None:
    reader = CommandReader()
    reader.feed(b"a FROB {5}\r\n")
    error = reader.next_event()
    assert isinstance(error, ParseError) and error.tag == "a"
    # No continuation was sent, so the client sends the next command instead.
    reader.feed(b"b NOOP\r\n")
    assert reader.next_event() == Noop("b")
    reader.feed(b"c SELECT INBOX {5}\r\nd NOOP\r\n")
    assert isinstance(reader.next_event(), ParseError)
    assert reader.next_event() == Noop("d")


def test_error_after_non_synchronizing_literals_discards_the_whole_command() -> None:
    data = b"a LOGIN {3+}\r\nabc {5+}\r\nx\r\ny\n junk {2+}\r\n\r\n\r\nb NOOP\r\n"
    events = feed_all(data)
    assert len(events) == 2
    assert isinstance(events[0], ParseError) and events[0].tag == "a"
    assert events[1] == Noop("b")


def test_cancel_command_after_continuation_refused() -> None:
    reader = CommandReader()
    reader.feed(b"a APPEND INBOX {100}\r\n")
    event = reader.next_event()
    assert isinstance(event, NeedContinuation) and event.message and event.size == 100
    assert reader.in_command
    reader.cancel_command()  # session answered "a NO [OVERQUOTA] ..."
    assert not reader.in_command
    reader.feed(b"b NOOP\r\n")
    assert reader.next_event() == Noop("b")


# -- limits ---------------------------------------------------------------------------


def test_line_too_long_then_recovery() -> None:
    reader = CommandReader(max_line_length=100)
    reader.feed(b"a1 LOGIN " + b"x" * 200)
    error = reader.next_event()
    assert isinstance(error, ParseError)
    assert error.tag == "a1" and error.status == "BAD" and "too long" in error.message
    assert reader.next_event() is None
    # Further bytes of that line are dropped, not buffered.
    reader.feed(b"y" * 100_000)
    assert reader.next_event() is None
    assert reader.pending_bytes <= 64
    reader.feed(b"zz\r\na2 NOOP\r\n")
    assert reader.next_event() == Noop("a2")


def test_complete_line_too_long() -> None:
    events = feed_all(b"a LOGIN " + b"x" * 200 + b" y\r\nb NOOP\r\n", max_line_length=100)
    assert isinstance(events[0], ParseError) and events[0].tag == "a"
    assert events[1] == Noop("b")


def test_too_long_line_announcing_non_sync_literal_skips_it() -> None:
    # The six literal octets "b NOOP" belong to the rejected command.
    data = b"a LOGIN " + b"x" * 200 + b" {6+}\r\nb NOOP\r\nc NOOP\r\n"
    events = feed_all(data, max_line_length=100)
    assert [type(e) for e in events] == [ParseError, Noop]
    assert events[1] == Noop("c")


def test_too_long_line_with_non_sync_literal_exact() -> None:
    data = b"a LOGIN " + b"x" * 200 + b" {4+}\r\nABCD\r\nc NOOP\r\n"
    events = feed_all(data, max_line_length=100)
    assert [type(e) for e in events] == [ParseError, Noop]


def test_oversized_synchronizing_literal() -> None:
    reader = CommandReader(max_string_literal_size=10)
    reader.feed(b"a LOGIN {11}\r\n")
    error = reader.next_event()
    assert error == ParseError("a", "Literal too large", "LIMIT", "NO")
    assert error.response() == b"a NO [LIMIT] Literal too large\r\n"
    reader.feed(b"b NOOP\r\n")
    assert reader.next_event() == Noop("b")


def test_oversized_append_literal_is_toobig() -> None:
    events = feed_all(b"a APPEND INBOX {1000}\r\nb NOOP\r\n", max_literal_size=999)
    assert events == [ParseError("a", "Message too large", "TOOBIG", "NO"), Noop("b")]


def test_oversized_non_sync_literal_is_swallowed_without_buffering() -> None:
    reader = CommandReader(max_literal_size=1000)
    reader.feed(b"a APPEND INBOX {5000000+}\r\n")
    error = reader.next_event()
    assert isinstance(error, ParseError) and error.code == "TOOBIG" and error.tag == "a"
    chunk = b"\r\n" * 50_000
    for _ in range(50):
        reader.feed(chunk)
        assert reader.next_event() is None
        assert reader.pending_bytes == 0
    reader.feed(b" more args\r\nb NOOP\r\n")
    assert reader.next_event() == Noop("b")


def test_literal_minus_rejects_large_non_sync_literals() -> None:
    reader = CommandReader(non_sync_literals="LITERAL-")
    reader.feed(b"a LOGIN {4096+}\r\n" + b"x" * 4096 + b" p\r\n")
    event = reader.next_event()
    assert isinstance(event, Login) and len(event.userid) == 4096
    reader.feed(b"b APPEND INBOX {4097+}\r\n" + b"x" * 4097 + b"\r\nc NOOP\r\n")
    error = reader.next_event()
    assert error == ParseError("b", "Non-synchronizing literal larger than 4096 octets", "TOOBIG")
    assert error.response().startswith(b"b BAD [TOOBIG] ")
    assert reader.next_event() == Noop("c")
    # Synchronizing literals of any size stay fine.
    reader.feed(b"d APPEND INBOX {5000}\r\n")
    assert isinstance(reader.next_event(), NeedContinuation)


def test_non_sync_literals_disabled() -> None:
    events = feed_all(b"a LOGIN {1+}\r\nx y\r\nb NOOP\r\n", non_sync_literals=None)
    assert isinstance(events[0], ParseError) and events[0].tag == "a"
    assert events[1] == Noop("b")


def test_command_size_limit_bounds_literal_chains() -> None:
    chain = b"a LOGIN {1+}\r\nx" + b"{1+}\r\nx" * 1000 + b" y\r\nb NOOP\r\n"
    events = feed_all(chain, max_command_size=10_000)
    assert isinstance(events[0], ParseError) and events[0].code == "LIMIT"
    assert events[-1] == Noop("b")


def test_absurd_non_sync_literal_size_is_fatal() -> None:
    reader = CommandReader()
    reader.feed(b"a LOGIN {99999999999999999999+}\r\nb NOOP\r\n")
    error = reader.next_event()
    assert isinstance(error, ParseError) and error.fatal
    assert error.response().startswith(b"* BYE ")
    assert reader.closed and reader.next_event() is None
    reader.feed(b"c NOOP\r\n")
    assert reader.next_event() is None


def test_absurd_synchronizing_literal_size_is_not_fatal() -> None:
    events = feed_all(b"a LOGIN {99999999999999999999}\r\nb NOOP\r\n")
    assert isinstance(events[0], ParseError) and not events[0].fatal
    assert events[1] == Noop("b")


def test_limits_can_change_between_commands() -> None:
    reader = CommandReader(max_string_literal_size=4)
    reader.feed(b"a LOGIN {5+}\r\nabcde x\r\n")
    assert isinstance(reader.next_event(), ParseError)
    reader.max_string_literal_size = 5
    reader.feed(b"b LOGIN {5+}\r\nabcde x\r\n")
    assert reader.next_event() == Login("b", b"abcde", b"x")


# -- line mode: AUTHENTICATE and IDLE -------------------------------------------------


def test_authenticate_exchange_in_line_mode() -> None:
    reader = CommandReader()
    reader.feed(b"a AUTHENTICATE PLAIN\r\n")
    assert reader.next_event() == Authenticate("a", "PLAIN")
    reader.expect_line()  # session sent "+ "
    assert reader.next_event() is None
    reader.feed(b"AGJvYgBzZWNyZXQ=\r\nb NOOP\r\n")
    assert reader.next_event() == Line(b"AGJvYgBzZWNyZXQ=")
    # Line mode lasts for one line; "b NOOP" is a command again.
    assert reader.next_event() == Noop("b")


def test_authenticate_cancel_and_empty_response() -> None:
    reader = CommandReader()
    reader.feed(b"a AUTHENTICATE X\r\n\r\n*\r\n")
    assert isinstance(reader.next_event(), Authenticate)
    reader.expect_line()
    assert reader.next_event() == Line(b"")
    reader.expect_line()
    assert reader.next_event() == Line(b"*")


def test_idle_done_pipelined() -> None:
    reader = CommandReader()
    reader.feed(b"a IDLE\r\nDONE\r\nb NOOP\r\n")
    assert reader.next_event() == Idle("a")
    reader.expect_line()
    assert reader.next_event() == Line(b"DONE")
    assert reader.next_event() == Noop("b")


def test_line_mode_too_long() -> None:
    reader = CommandReader(max_line_length=10)
    reader.expect_line()
    reader.feed(b"x" * 20 + b"\r\na NOOP\r\n")
    error = reader.next_event()
    assert isinstance(error, ParseError) and error.tag is None
    assert reader.next_event() == Noop("a")


def test_pending_bytes_after_starttls() -> None:
    reader = CommandReader()
    reader.feed(b"a STARTTLS\r\nb LOGIN injected x\r\n")
    assert reader.next_event() is not None
    assert reader.pending_bytes == len(b"b LOGIN injected x\r\n")


def test_large_pipelined_stream_is_linear() -> None:
    reader = CommandReader()
    n = 20_000
    reader.feed(b"".join(b"t%d NOOP\r\n" % i for i in range(n)))
    events = drain(reader)
    assert len(events) == n and events[-1] == Noop(f"t{n - 1}")
    assert reader.pending_bytes == 0


def test_many_small_feeds_of_a_big_literal() -> None:
    reader = CommandReader()
    size = 2_000_000
    reader.feed(b"a APPEND INBOX {%d+}\r\n" % size)
    assert reader.next_event() is None
    piece = b"0123456789" * 100
    for _ in range(size // len(piece)):
        reader.feed(piece)
        assert reader.next_event() is None
    reader.feed(b"\r\n")
    event = reader.next_event()
    assert isinstance(event, Append) and len(event.messages[0].data) == size


@pytest.mark.parametrize(
    "line",
    [b"a NOOP {5}", b"a LOGIN {5} x", b"a LOGIN x {5"],
)
def test_brace_not_at_line_end_is_not_a_literal(line: bytes) -> None:
    events = feed_all(line + b"\r\nb NOOP\r\n")
    assert isinstance(events[0], ParseError) and events[0].tag == "a"
    assert events[-1] == Noop("b")


class MemorySink:
    """A sink that records what it got, and whether it was closed."""

    def __init__(self, made: list[MemorySink]) -> None:
        self.data = bytearray()
        self.closed = False
        self.largest_write = 0
        made.append(self)

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.largest_write = max(self.largest_write, len(data))
        self.data += data

    def close(self) -> None:
        self.closed = True


def spooling_reader(made: list[MemorySink], **options: Any) -> CommandReader:
    return CommandReader(spool=lambda: MemorySink(made), spool_min=1000, **options)


def test_big_message_literal_goes_to_the_sink_as_it_arrives() -> None:
    made: list[MemorySink] = []
    reader = spooling_reader(made)
    message = b"Subject: x\r\n\r\n" + b"y" * 5000
    reader.feed(b"a APPEND INBOX {%d}\r\n" % len(message))
    assert isinstance(reader.next_event(), NeedContinuation)
    for i in range(0, len(message), 700):
        reader.feed(message[i : i + 700])
        assert reader.next_event() is None
        # Nothing of the literal waits in the reader's own buffer.
        assert reader.pending_bytes == 0
    reader.feed(b"\r\n")
    cmd = reader.next_event()
    assert isinstance(cmd, Append)
    data = cmd.messages[0].data
    assert isinstance(data, Spooled) and data.size == len(message) and not data.has_nul
    assert bytes(made[0].data) == message and made[0].largest_write <= 700
    assert not made[0].closed  # the command owns it now


def test_small_message_literals_stay_in_memory_up_to_the_command_budget() -> None:
    made: list[MemorySink] = []
    reader = spooling_reader(made, max_memory=1500)
    reader.feed(b"a APPEND INBOX {600+}\r\n" + b"x" * 600 + b" {600+}\r\n" + b"y" * 600
                + b" {600+}\r\n" + b"z" * 600 + b"\r\n")
    cmd = reader.next_event()
    assert isinstance(cmd, Append)
    kinds = [type(m.data) for m in cmd.messages]
    # The third would pass the budget: spooled although small.
    assert kinds == [bytes, bytes, Spooled] and bytes(made[0].data) == b"z" * 600


def test_string_literals_beyond_the_memory_budget_are_refused() -> None:
    made: list[MemorySink] = []
    reader = spooling_reader(made, max_memory=1500)
    reader.feed(b"a SEARCH TEXT {1000+}\r\n" + b"x" * 1000 + b" TEXT {1000+}\r\n" + b"x" * 1000
                + b"\r\nb NOOP\r\n")
    events = drain(reader)
    assert isinstance(events[0], ParseError) and events[0].code == "LIMIT" and events[0].tag == "a"
    assert isinstance(events[1], Noop) and not made


def test_nul_in_a_spooled_literal_is_refused_unless_literal8() -> None:
    made: list[MemorySink] = []
    reader = spooling_reader(made)
    body = b"a" * 1500 + b"\x00" + b"b" * 10
    reader.feed(b"a APPEND INBOX {%d+}\r\n" % len(body) + body + b"\r\n")
    event = reader.next_event()
    assert isinstance(event, ParseError) and "NUL" in event.message
    assert made[0].closed  # dropped with the command
    reader.feed(b"b APPEND INBOX ~{%d+}\r\n" % len(body) + body + b"\r\n")
    cmd = reader.next_event()
    assert isinstance(cmd, Append) and isinstance(cmd.messages[0].data, Spooled)
    assert cmd.messages[0].data.has_nul


def test_a_spooled_literal_of_a_refused_or_abandoned_command_is_closed() -> None:
    made: list[MemorySink] = []
    reader = spooling_reader(made, max_line_length=1024)
    reader.feed(b"a APPEND INBOX {2000}\r\n")
    assert isinstance(reader.next_event(), NeedContinuation)
    reader.cancel_command()
    assert made[0].closed
    reader.feed(b"b APPEND INBOX {2000+}\r\n" + b"x" * 2000 + b" " + b"y" * 2000 + b"\r\n")
    event = reader.next_event()
    assert isinstance(event, ParseError) and event.tag == "b"
    assert made[1].closed


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"a REPLACE 4 {6}", False),  # the mailbox name
        (b"a REPLACE 4 Drafts {312}", True),
        (b"a UID REPLACE 2000 {6}", False),
        (b"a uid replace 2000 Drafts (\\Seen) {312}", True),
        (b"a APPEND {6}", False),
        (b"a APPEND Drafts {312}", True),
    ],
)
def test_message_literals_of_append_and_replace(line: bytes, message: bool) -> None:
    reader = CommandReader()
    reader.feed(line + b"\r\n")
    event = reader.next_event()
    assert isinstance(event, NeedContinuation) and event.message is message
