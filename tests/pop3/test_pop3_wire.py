"""POP3 line framing, command parsing and message byte-stuffing, without a session."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from letterbox.pop3.commands import (
    TOO_LONG,
    CommandError,
    LineBuffer,
    parse_command,
    parse_number,
)
from letterbox.pop3.message import (
    TERMINATOR,
    ByteStuffer,
    TopCut,
    crlf_lines,
    multiline,
    top,
    top_end,
)


def unstuff(wire: bytes) -> bytes:
    """What a client makes of a multi-line body (RFC 1939 section 3)."""
    assert wire.endswith(b"\r\n.\r\n") or wire == b".\r\n"
    lines = wire.split(b"\r\n")
    assert lines[-2:] == [b".", b""]
    out = []
    for line in lines[:-2]:
        assert line != b".", "terminator inside the body"
        out.append(line[1:] if line.startswith(b".") else line)
    return b"".join(line + b"\r\n" for line in out)


# --- LineBuffer ------------------------------------------------------------------------


def drain(buf: LineBuffer, limit: int = 512) -> list[object]:
    out: list[object] = []
    while (item := buf.next_line(limit)) is not None:
        out.append(item)
    return out


def test_lines_split_anywhere() -> None:
    data = b"USER a\r\nPASS b c\r\nSTAT\r\n"
    for cut in range(len(data) + 1):
        buf = LineBuffer()
        buf.feed(data[:cut])
        got = drain(buf)
        buf.feed(data[cut:])
        got += drain(buf)
        assert got == [b"USER a", b"PASS b c", b"STAT"]


def test_bare_lf_ends_a_line_and_lone_cr_stays() -> None:
    buf = LineBuffer()
    buf.feed(b"NOOP\nST\rAT\r\n")
    assert drain(buf) == [b"NOOP", b"ST\rAT"]


def test_too_long_complete_line() -> None:
    buf = LineBuffer()
    buf.feed(b"A" * 510 + b"\r\n" + b"B" * 511 + b"\r\nNOOP\r\n")
    assert drain(buf) == [b"A" * 510, TOO_LONG, b"NOOP"]


def test_too_long_line_reported_early_and_discarded() -> None:
    buf = LineBuffer()
    buf.feed(b"X" * 600)
    assert drain(buf) == [TOO_LONG]
    buf.feed(b"X" * 10000)
    assert drain(buf) == []
    buf.feed(b"XX\r\nNOOP\r\n")
    assert drain(buf) == [b"NOOP"]


def test_line_of_exactly_the_limit_with_cr_pending() -> None:
    buf = LineBuffer()
    buf.feed(b"A" * 510 + b"\r")
    assert drain(buf) == []
    buf.feed(b"\n")
    assert drain(buf) == [b"A" * 510]


# --- parse_command ---------------------------------------------------------------------


def test_keyword_case_insensitive_and_args() -> None:
    cmd = parse_command(b"top 1  10 ")
    assert cmd.name == "TOP"
    assert cmd.args == ["1", "10"]


def test_pass_keeps_spaces() -> None:
    assert parse_command(b"PASS two words ").rest == "two words "


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"", "empty command"),
        (b"NO\x00OP", "NUL or control characters are not allowed in commands"),
        (b"RETR\t1", "NUL or control characters are not allowed in commands"),
        (b"RETR \xff", "8-bit characters are not allowed in commands"),
        (b"\xc3\xa9TAT", "8-bit characters are not allowed in commands"),
        (b"PASS \xff\xfe", "argument is not valid UTF-8"),
        (b"R3TR 1", "unknown command"),
    ],
)
def test_bad_lines(line: bytes, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        parse_command(line)


def test_utf8_password_allowed() -> None:
    assert parse_command("PASS pässwörd".encode()).rest == "pässwörd"


@pytest.mark.parametrize(
    ("arg", "value"),
    [("1", 1), ("007", 7), ("0", 0), ("-1", None), ("+1", None), ("1a", None), ("", None),
     ("١", None), ("9" * 40, int("9" * 40)), ("9" * 41, None)],
)
def test_parse_number(arg: str, value: int | None) -> None:
    assert parse_number(arg) == value


# --- byte-stuffing and TOP -------------------------------------------------------------


def test_stuffing_examples() -> None:
    raw = b".starts\r\nmid\r\n.\r\n..two\r\nend"
    wire = b"".join(multiline(raw))
    assert wire == b"..starts\r\nmid\r\n..\r\n...two\r\nend\r\n.\r\n"
    assert unstuff(wire) == raw + b"\r\n"


def test_empty_message() -> None:
    assert b"".join(multiline(b"")) == b".\r\n"


def test_bare_lf_repaired() -> None:
    assert crlf_lines(b"a\nb\r\n.\n") == b"a\r\nb\r\n.\r\n"
    assert b"".join(multiline(b"a\n.\n")) == b"a\r\n..\r\n.\r\n"


lines_st = st.lists(
    st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    max_size=30,
)


@given(lines_st)
def test_stuffing_round_trip(lines: list[bytes]) -> None:
    raw = b"".join(line + b"\r\n" for line in lines)
    assert unstuff(b"".join(multiline(raw))) == raw


@given(lines_st, st.binary(min_size=1, max_size=10).filter(lambda b: b"\n" not in b and not b.endswith(b"\r")))
def test_stuffing_round_trip_without_final_crlf(lines: list[bytes], last: bytes) -> None:
    raw = b"".join(line + b"\r\n" for line in lines) + last
    assert unstuff(b"".join(multiline(raw))) == raw + b"\r\n"


MSG = b"Subject: x\r\nFrom: y\r\n\r\nline1\r\nline2\r\nline3\r\n"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (0, b"Subject: x\r\nFrom: y\r\n\r\n"),
        (2, b"Subject: x\r\nFrom: y\r\n\r\nline1\r\nline2\r\n"),
        (3, MSG),
        (1000, MSG),
    ],
)
def test_top(lines: int, expected: bytes) -> None:
    assert top(MSG, lines) == expected


def test_top_edge_cases() -> None:
    assert top(b"Subject: no body\r\n", 5) == b"Subject: no body\r\n"
    assert top(b"\r\nbody only\r\nmore\r\n", 1) == b"\r\nbody only\r\n"
    assert top(b"H: 1\r\n\r\nunterminated", 3) == b"H: 1\r\n\r\nunterminated"
    assert top_end(b"H: 1\r\n\r\nfirst\r\nsecond", 2) is None


def _streamed_top(data: bytes, lines: int, cuts: list[int]) -> bytes:
    """TOP as the session streams a big message: ByteStuffer then TopCut per piece."""
    stuffer, cut = ByteStuffer(), TopCut(lines)
    out = bytearray()
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for start, end in zip(bounds, bounds[1:], strict=False):
        part, done = cut.feed(stuffer.feed(data[start:end]))
        out += part
        if done:
            return bytes(out + TERMINATOR)
    return bytes(out + stuffer.end())


message_st = st.lists(st.sampled_from([b"H: v", b"", b".", b"..x", b"body", b"\r", b"a\nb"]), max_size=25).map(
    lambda parts: b"\r\n".join(parts)
)


@given(message_st, st.integers(min_value=0, max_value=12), st.lists(st.integers(min_value=0), max_size=8))
def test_streamed_top_is_top_in_any_pieces(data: bytes, lines: int, cuts: list[int]) -> None:
    assert _streamed_top(data, lines, cuts) == b"".join(multiline(top(data, lines)))


def test_streamed_top_examples() -> None:
    msg = b"Subject: x\r\n\r\n.dot\r\nline2\r\nline3\r\n"
    assert _streamed_top(msg, 1, [3, 13, 14, 15]) == b"Subject: x\r\n\r\n..dot\r\n.\r\n"
    assert _streamed_top(b"\r\nbody\r\n", 0, [1]) == b"\r\n.\r\n"
    assert _streamed_top(b"no header end", 3, [4]) == b"no header end\r\n.\r\n"
