"""Sans-I/O command reader: bytes in, commands and protocol events out.

Usage::

    reader = CommandReader()
    reader.feed(data)
    while (event := reader.next_event()) is not None:
        ...

Bytes are kept in one bytearray with a read offset; line ends are searched for only in
bytes not yet scanned, and literal data is sliced out once, so the cost of a command is
linear in its size however it was split across feeds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from .commands import Command
from .events import Line, LiteralData, NeedContinuation, ParseError, Sink, Spooled
from .parser import TAG_RE, CommandSyntaxError, IncompleteCommand, parse_command

Event = Command | NeedContinuation | Line | ParseError

NonSyncLiterals = Literal["LITERAL+", "LITERAL-", None]

# RFC 7888 section 5: with LITERAL- only non-synchronizing literals up to 4096 octets.
LITERAL_MINUS_MAX = 4096
_MAX63 = 0x7FFFFFFFFFFFFFFF
# Bytes of an unfinished over-long line kept while discarding it, enough to recognize
# a literal announcement (``~{`` + 19 digits + ``+}`` + CR) at its end.
_TAIL_KEEP = 64
# Synchronizing literals announced early in a command get the command checked before
# the continuation request; the count bounds that re-parsing.
_EARLY_CHECKS = 16
# Memory accounted per line or literal held for a command besides its bytes, so that a
# flood of tiny literals is bounded by max_command_size too.
_PART_OVERHEAD = 64
_COMPACT_AT = 1 << 16
SPOOL_MIN = 256 * 1024
"""Message literals at least this big go to the sink (when there is one)."""
MAX_MEMORY = 4 * 1024 * 1024
"""Literal bytes one command may hold in memory; message data beyond goes to the sink."""

_LITERAL_TAIL = re.compile(rb"\{([0-9]+)(\+?)\}\Z")
_HEAD = re.compile(rb'([^\x00-\x20\x7f-\xff(){%*"\\+]+) ([A-Za-z]+)(?: |\Z)')
_UID_SUB = re.compile(rb"([A-Za-z]+)(?: |\Z)")
_NUMBER = re.compile(rb"[0-9]+ ")

_LINE, _LITERAL, _SKIP, _DISCARD, _CLOSED = range(5)


class CommandReader:
    """Splits a client byte stream into commands (RFC 9051 / RFC 3501 grammar).

    ``max_line_length`` bounds one line (literal data not included): longer lines are
    answered ``BAD`` and skipped. ``max_literal_size`` bounds APPEND message data
    (``NO [TOOBIG]``), ``max_string_literal_size`` any other literal and
    ``max_command_size`` everything held for one command (``NO [LIMIT]``).
    With a ``spool`` (a factory of `Sink`), message literals of at least ``spool_min``
    octets, or beyond ``max_memory`` held for the command, go to a sink as they arrive
    and reach the command as `Spooled`; other literals beyond ``max_memory`` are refused
    (``NO [LIMIT]``), so a command holds little memory whatever its size.
    ``max_metadata_value``, when set, bounds the literals of SETMETADATA instead
    (``NO [METADATA MAXSIZE n]``, RFC 5464 4.3), refused before the client sends them.
    ``non_sync_literals`` is the advertised capability: "LITERAL+", "LITERAL-" (then
    ``{n+}`` above 4096 octets is refused with ``BAD [TOOBIG]``) or None (``{n+}`` is
    refused). Refused non-synchronizing literals are read and dropped without being
    buffered, so the connection stays usable. All limits may be changed between
    commands, e.g. raised after authentication.
    """

    def __init__(
        self,
        *,
        max_line_length: int = 65536,
        max_literal_size: int = 64 * 1024 * 1024,
        max_string_literal_size: int = 65536,
        max_command_size: int = 128 * 1024 * 1024,
        non_sync_literals: NonSyncLiterals = "LITERAL+",
        spool: Callable[[], Sink] | None = None,
        spool_min: int = SPOOL_MIN,
        max_memory: int = MAX_MEMORY,
        max_metadata_value: int | None = None,
    ) -> None:
        self.max_line_length = max_line_length
        self.max_literal_size = max_literal_size
        self.max_string_literal_size = max_string_literal_size
        self.max_command_size = max_command_size
        self.non_sync_literals: NonSyncLiterals = non_sync_literals
        self.spool = spool
        self.spool_min = spool_min
        self.max_memory = max_memory
        self.max_metadata_value = max_metadata_value
        self._buf = bytearray()
        self._pos = 0
        # Offset from which to look for the next LF (bytes before it hold none).
        self._scan = 0
        self._mode = _LINE
        self._want_line = False
        self._lines: list[bytes] = []
        self._literals: list[LiteralData] = []
        self._size = 0
        self._memory = 0
        self._literal_size = 0
        self._skip = 0
        self._sink: Sink | None = None
        self._sink_left = 0
        self._sink_nul = False

    # -- public API --------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        if self._mode == _CLOSED or not data:
            return
        if self._mode == _SKIP and self._pos == len(self._buf):
            # Drop refused literal data straight away instead of buffering it.
            taken = min(self._skip, len(data))
            self._skip -= taken
            if taken == len(data):
                return
            data = data[taken:]
        self._buf += data

    def next_event(self) -> Event | None:
        """The next event, or None when more bytes are needed."""
        while True:
            mode = self._mode
            if mode in (_LINE, _DISCARD):
                event = self._read_line()
                if isinstance(event, _Again):
                    continue
                return event
            if mode == _LITERAL and self._sink is not None:
                if not self._to_sink(self._sink):
                    return None
                continue
            if mode == _LITERAL:
                end = self._pos + self._literal_size
                if len(self._buf) < end:
                    return None
                with memoryview(self._buf) as view:
                    self._literals.append(bytes(view[self._pos : end]))
                self._consume(end)
                self._mode = _LINE
                continue
            if mode == _SKIP:
                available = len(self._buf) - self._pos
                taken = min(available, self._skip)
                self._skip -= taken
                self._consume(self._pos + taken)
                if self._skip:
                    return None
                # The command goes on after the literal; drop the rest of it too.
                self._mode = _DISCARD
                continue
            return None

    def expect_line(self) -> None:
        """Make the next event a raw `Line` (AUTHENTICATE exchange, IDLE's DONE).

        The mode ends with that one event (a `Line`, or a `ParseError` when the line
        is too long) and command parsing resumes.
        """
        self._want_line = True

    def cancel_command(self) -> None:
        """Forget a command whose continuation the session refused (after
        `NeedContinuation`): the client sends neither the literal nor the rest."""
        if self._mode == _LITERAL:
            self._mode = _LINE
        self._reset_command()

    def take_pending(self) -> bytes:
        """Hand over the received bytes not consumed yet (sent after COMPRESS, so in
        another encoding) and forget them."""
        data = bytes(self._buf[self._pos :])
        self._buf.clear()
        self._pos = self._scan = 0
        return data

    @property
    def pending_bytes(self) -> int:
        """Received bytes not yet consumed, e.g. to refuse data pipelined after STARTTLS."""
        return len(self._buf) - self._pos

    @property
    def in_command(self) -> bool:
        """Whether part of a command has been read (a literal or line is pending)."""
        return bool(self._lines)

    @property
    def closed(self) -> bool:
        return self._mode == _CLOSED

    # -- internals ---------------------------------------------------------------------

    def _consume(self, end: int) -> None:
        self._pos = end
        if end >= len(self._buf):
            self._buf.clear()
            self._pos = self._scan = 0
        elif end >= _COMPACT_AT and end * 2 >= len(self._buf):
            del self._buf[:end]
            self._pos = 0
            self._scan = max(0, self._scan - end)
        elif self._scan < end:
            self._scan = end

    def _to_sink(self, sink: Sink) -> bool:
        """Move buffered literal data to the sink; True once the literal is complete."""
        take = min(len(self._buf) - self._pos, self._sink_left)
        if take:
            with memoryview(self._buf) as view:
                chunk = bytes(view[self._pos : self._pos + take])
            if not self._sink_nul and b"\x00" in chunk:
                self._sink_nul = True
            sink.write(chunk)
            self._sink_left -= take
            self._consume(self._pos + take)
        if self._sink_left:
            return False
        self._literals.append(Spooled(sink, self._literal_size, self._sink_nul))
        self._sink = None
        self._mode = _LINE
        return True

    def _reset_command(self, keep: bool = False) -> None:
        """Forget the command in progress; unless *keep* (it was handed over), close
        what it spooled."""
        if not keep:
            for literal in self._literals:
                if isinstance(literal, Spooled):
                    literal.close()
            if self._sink is not None:
                self._sink.close()
        self._sink = None
        self._lines = []
        self._literals = []
        self._size = 0
        self._memory = 0

    def _tag(self, first_line: bytes | bytearray) -> str | None:
        m = TAG_RE.match(first_line)
        if m is None or first_line[m.end() : m.end() + 1] != b" ":
            return None
        return m.group().decode("ascii")

    def _current_tag(self, line: bytes | bytearray) -> str | None:
        return self._tag(self._lines[0] if self._lines else line)

    def _read_line(self) -> Event | _Again | None:
        buf = self._buf
        lf = buf.find(b"\n", self._scan)
        if lf < 0:
            self._scan = len(buf)
            length = len(buf) - self._pos
            if self._mode == _DISCARD:
                if length > _TAIL_KEEP:
                    self._consume(len(buf) - _TAIL_KEEP)
                return None
            if length and buf[-1] == 0x0D:
                length -= 1  # the CR of a CRLF split across feeds
            if length > self.max_line_length:
                return self._line_too_long(self._pos)
            return None
        start = self._pos
        end = lf - 1 if lf > start and buf[lf - 1] == 0x0D else lf
        if self._mode == _DISCARD:
            tail = bytes(buf[max(start, end - _TAIL_KEEP) : end])
            self._consume(lf + 1)
            self._mode = _LINE
            found = _find_literal(tail)
            if found is not None and found[2]:
                # A non-synchronizing literal follows: its data is part of the discard.
                return self._start_skip(found[1])
            return _AGAIN
        if end - start > self.max_line_length:
            return self._line_too_long(start)
        line = bytes(buf[start:end])
        self._consume(lf + 1)
        if self._want_line:
            self._want_line = False
            return Line(line)
        if not line and not self._lines:
            # Stray empty lines between commands are harmless; ignore them.
            return _AGAIN
        if line.endswith(b"}"):
            found = _find_literal(line)
            if found is not None:
                return self._announce(line, *found)
        self._lines.append(line)
        lines, literals = self._lines, self._literals
        self._reset_command(keep=True)
        try:
            return parse_command(lines, literals)
        except CommandSyntaxError as exc:
            _close(literals)
            return ParseError(exc.tag, exc.message)
        except IncompleteCommand:  # pragma: no cover - a final line has no literal
            _close(literals)
            return ParseError(self._tag(lines[0]), "Incomplete command")

    def _line_too_long(self, start: int) -> ParseError:
        # Look for the tag only in bytes that are surely there when the limit trips, so
        # the outcome does not depend on how the input was split.
        head = self._buf[start : start + min(256, self.max_line_length)]
        tag = None if self._want_line else self._current_tag(head)
        self._want_line = False
        self._reset_command()
        self._mode = _DISCARD
        return ParseError(tag, "Command line too long")

    def _start_skip(self, digits: bytes) -> ParseError | _Again:
        size = int(digits) if len(digits) <= 19 else _MAX63 + 1
        if size > _MAX63:
            self._mode = _CLOSED
            self._buf.clear()
            self._pos = self._scan = 0
            return ParseError(None, "Literal size out of range", fatal=True)
        self._skip = size
        self._mode = _SKIP
        return _AGAIN

    def _announce(
        self, line: bytes, start: int, digits: bytes, nonsync: bool, binary: bool
    ) -> Event | _Again | None:
        first = self._lines[0] if self._lines else line
        tag = self._tag(first)
        head = _HEAD.match(first)
        command = head.group(2).decode("ascii").upper() if head else ""
        # In APPEND and REPLACE every literal is message data except a mailbox name sent
        # as one, which comes first (after REPLACE's message number).
        mailbox_at = head.end() if head else -1
        if command == "UID" and head is not None and (sub := _UID_SUB.match(first, head.end())):
            command = "UID " + sub.group(1).decode("ascii").upper()
            mailbox_at = sub.end()
        if command in ("REPLACE", "UID REPLACE") and (num := _NUMBER.match(first, mailbox_at)):
            mailbox_at = num.end()
        message = command in ("APPEND", "REPLACE", "UID REPLACE") and not (
            not self._lines and start == mailbox_at
        )
        size = int(digits) if len(digits) <= 19 else _MAX63 + 1

        def refuse(text: str, code: str | None = None, status: str = "BAD") -> Event | _Again:
            self._reset_command()
            if nonsync:
                follow = self._start_skip(digits)
                if isinstance(follow, ParseError):
                    return follow
            return ParseError(tag, text, code, status)

        if size > _MAX63:
            return refuse("Literal size out of range")
        if nonsync and self.non_sync_literals is None:
            return refuse("Non-synchronizing literals are not supported")
        if nonsync and self.non_sync_literals == "LITERAL-" and size > LITERAL_MINUS_MAX:
            return refuse("Non-synchronizing literal larger than 4096 octets", "TOOBIG")
        if message:
            if size > self.max_literal_size:
                return refuse("Message too large", "TOOBIG", "NO")
        elif command == "SETMETADATA" and self.max_metadata_value is not None:
            # Its literals are values (or names, which are never that long).
            if size > self.max_metadata_value:
                n = self.max_metadata_value
                return refuse(f"A metadata value may have {n} octets", f"METADATA MAXSIZE {n}", "NO")
        elif size > self.max_string_literal_size:
            return refuse("Literal too large", "LIMIT", "NO")
        cost = len(line) + size + 2 * _PART_OVERHEAD
        if self._size + cost > self.max_command_size:
            return refuse("Command too large", "LIMIT", "NO")
        spool = (
            message
            and self.spool is not None
            and (size >= self.spool_min or self._memory + size > self.max_memory)
        )
        if not spool and self._memory + size > self.max_memory and (self.spool is not None or not message):
            return refuse("Command too large", "LIMIT", "NO")
        self._lines.append(line)
        self._size += cost
        if not spool:
            self._memory += size
        if not nonsync and len(self._literals) < _EARLY_CHECKS:
            # Refuse a command that is already wrong before the client sends the data.
            try:
                parse_command(self._lines, self._literals)
            except CommandSyntaxError as exc:
                self._reset_command()
                return ParseError(exc.tag, exc.message)
            except IncompleteCommand:
                pass
        self._literal_size = size
        self._mode = _LITERAL
        if spool and self.spool is not None:
            self._sink = self.spool()
            self._sink_left = size
            self._sink_nul = False
        if nonsync:
            return _AGAIN
        return NeedContinuation(tag or "", command, size, binary, message)


def _find_literal(line: bytes) -> tuple[int, bytes, bool, bool] | None:
    """(start, digits, non-synchronizing, literal8) of a literal announced at the end."""
    brace = line.rfind(b"{")
    if brace < 0:
        return None
    m = _LITERAL_TAIL.match(line, brace)
    if m is None:
        return None
    binary = brace > 0 and line[brace - 1] == 0x7E
    return brace - binary, m.group(1), bool(m.group(2)), binary


def _close(literals: list[LiteralData]) -> None:
    for literal in literals:
        if isinstance(literal, Spooled):
            literal.close()


class _Again:
    """Returned by internal steps that produced no event but may have more to do."""


_AGAIN = _Again()
