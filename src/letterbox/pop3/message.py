"""Message bytes on the POP3 wire: CRLF lines, byte-stuffing, TOP's header+lines cut."""

from __future__ import annotations

import re

_BARE_LF = re.compile(rb"(?<!\r)\n")

TERMINATOR = b".\r\n"


def has_bare_lf(data: bytes) -> bool:
    return data.count(b"\n") != data.count(b"\r\n")


def crlf_lines(data: bytes) -> bytes:
    """Make every line end in CRLF (RFC 1939 section 3).

    Delivered mail is stored with CRLF already, so this normally returns *data* as is. A
    bare LF left in place could be read by a lenient client as a line break, and a "."
    after it as the end of the response, so it is repaired rather than sent.
    """
    if not has_bare_lf(data):
        return data
    return _BARE_LF.sub(b"\r\n", data)


def multiline(data: bytes) -> list[bytes]:
    """The pieces of a multi-line response body, terminator included (RFC 1939 section 3).

    Byte-stuffing: every line that begins with "." gets another "." in front. Done with
    one bytes.replace over the whole message rather than line by line.
    """
    data = crlf_lines(data)
    if not data:
        return [TERMINATOR]
    out = []
    if data[:1] == b".":
        out.append(b".")
    out.append(data.replace(b"\r\n.", b"\r\n.."))
    if not data.endswith(b"\r\n"):
        out.append(b"\r\n")
    out.append(TERMINATOR)
    return out


# A LF with a byte before it that is not CR; at the start of a piece the byte before is
# in the previous piece, which ByteStuffer puts in front.
_BARE_LF_INSIDE = re.compile(rb"(?<=[^\r])\n")


class ByteStuffer:
    """`multiline` for a message sent in pieces: each piece comes out repaired and
    stuffed as it would be in the whole, with no more than a piece in memory."""

    def __init__(self) -> None:
        # The last two octets sent (repaired, not stuffed); a message starts a line.
        self._tail = b"\r\n"

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        # With the tail in front, a CRLF or a line-starting dot split between pieces is
        # seen whole; the tail itself comes out unchanged, as it has no bare LF and a
        # dot is only ever added after a CRLF.
        work = _BARE_LF_INSIDE.sub(b"\r\n", self._tail + data)
        self._tail = work[-2:]
        return work.replace(b"\r\n.", b"\r\n..")[2:]

    def end(self) -> bytes:
        """What follows the last piece: a CRLF if the message lacks one, then the dot."""
        return TERMINATOR if self._tail == b"\r\n" else b"\r\n" + TERMINATOR


def top_end(data: bytes, lines: int) -> int | None:
    """Where TOP's output ends in *data*: the header, the blank line, then *lines* body
    lines (RFC 1939 section 7). None when *data* ends before that point (either the
    message is shorter, so all of it is sent, or *data* is only its beginning).
    """
    if data.startswith(b"\r\n"):
        pos = 2
    else:
        blank = data.find(b"\r\n\r\n")
        if blank < 0:
            return None
        pos = blank + 4
    for _ in range(lines):
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return None
        pos = eol + 2
    return pos


def top(data: bytes, lines: int) -> bytes:
    """TOP's part of a whole message (CRLF-normalized, not yet byte-stuffed)."""
    data = crlf_lines(data)
    end = top_end(data, lines)
    return data if end is None else data[:end]


class TopCut:
    """`top_end` found in a message's pieces as they stream out of a ByteStuffer, so
    TOP of a big message holds one piece, not the message. Stuffing adds dots, never
    line breaks, so lines are counted on the stuffed bytes."""

    def __init__(self, lines: int) -> None:
        self._left = lines
        self._header = True
        # Bytes before the piece (the last of the previous ones), so that a CRLF or a
        # blank line split between pieces is seen; a message starts a line.
        self._carry = b"\r\n"

    def feed(self, piece: bytes) -> tuple[bytes, bool]:
        """The part of *piece* TOP sends, and whether TOP's output ends there."""
        work = self._carry + piece
        skip = len(self._carry)
        pos = 0
        if self._header:
            blank = work.find(b"\r\n\r\n")
            if blank < 0:
                self._carry = work[-3:]
                return piece, False
            self._header = False
            pos = blank + 4
        while self._left > 0:
            eol = work.find(b"\r\n", pos)
            if eol < 0:
                self._carry = work[-1:]
                return piece, False
            pos = eol + 2
            self._left -= 1
        return work[skip:pos], True
