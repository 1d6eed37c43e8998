"""POP3 command lines: framing, validation and argument parsing (no state, no I/O)."""

from __future__ import annotations

import re
from dataclasses import dataclass


class TooLong:
    """Marker returned by LineBuffer for a line over the length limit."""


TOO_LONG = TooLong()

_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_EIGHT_BIT = re.compile(rb"[\x80-\xff]")
_NUMBER = re.compile(r"[0-9]{1,40}")
_KEYWORD = re.compile(rb"[A-Za-z]{1,8}")

# Arguments that are opaque strings handed to the authenticator: UTF-8 is let through so
# users with non-ASCII passwords can still log in with USER/PASS.
_UTF8_ARG_COMMANDS = frozenset({b"USER", b"PASS"})


class LineBuffer:
    """Splits client bytes into lines, whatever the read boundaries.

    A line ends at LF; a CR before it is dropped, so clients that send bare LF still work.
    An over-long line is reported once, as soon as it is known to be too long, and the
    rest of it is discarded when it arrives, so a client cannot make the buffer grow.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._discarding = False

    def feed(self, data: bytes) -> None:
        self._buf += data

    def clear(self) -> None:
        self._buf.clear()
        self._pos = 0

    def compact(self) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0

    def pending(self) -> bool:
        """A complete line (or a too-long one) is waiting."""
        return self._buf.find(b"\n", self._pos) >= 0

    def next_line(self, limit: int) -> bytes | TooLong | None:
        """The next line without its terminator, TOO_LONG, or None when none is complete.

        *limit* counts the CRLF too (RFC 2449 section 4 sizes commands that way).
        """
        while True:
            end = self._buf.find(b"\n", self._pos)
            if self._discarding:
                if end < 0:
                    self.clear()
                    return None
                self._pos = end + 1
                self._discarding = False
                continue
            if end < 0:
                if len(self._buf) - self._pos >= limit:
                    self.clear()
                    self._discarding = True
                    return TOO_LONG
                return None
            start, self._pos = self._pos, end + 1
            if end > start and self._buf[end - 1] == 0x0D:
                end -= 1
            if end - start + 2 > limit:
                return TOO_LONG
            return bytes(self._buf[start:end])


class CommandError(Exception):
    """A line that is not a well-formed command; the message is the -ERR text."""


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    """Upper-cased keyword."""
    args: list[str]
    """Space-separated arguments (runs of spaces tolerated)."""
    rest: str
    """Everything after the keyword and one space, verbatim (PASS allows spaces, RFC 1939 7)."""


def parse_command(line: bytes) -> Command:
    if _CONTROL.search(line):
        raise CommandError("NUL or control characters are not allowed in commands")
    keyword, _, rest = line.partition(b" ")
    if not keyword:
        raise CommandError("empty command")
    if not _KEYWORD.fullmatch(keyword):
        if _EIGHT_BIT.search(keyword):
            raise CommandError("8-bit characters are not allowed in commands")
        raise CommandError("unknown command")
    name = keyword.upper()
    if _EIGHT_BIT.search(rest):
        if name not in _UTF8_ARG_COMMANDS:
            raise CommandError("8-bit characters are not allowed in commands")
        try:
            text = rest.decode("utf-8")
        except UnicodeDecodeError:
            raise CommandError("argument is not valid UTF-8") from None
    else:
        text = rest.decode("ascii")
    return Command(name.decode("ascii"), text.split(), text)


def parse_number(arg: str) -> int | None:
    """A decimal argument (RFC 1939: at most 40 characters), or None if malformed."""
    if not _NUMBER.fullmatch(arg):
        return None
    return int(arg)
