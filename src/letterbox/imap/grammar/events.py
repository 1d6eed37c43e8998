"""Events produced by `CommandReader.next_event` besides parsed commands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Sink(Protocol):
    """Where a big message literal goes as it arrives (a file, not memory): supplied by
    the session, so the reader itself stays free of I/O."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class Spooled:
    """A message literal whose data went to a `Sink`."""

    sink: Sink
    size: int
    has_nul: bool

    def __len__(self) -> int:
        return self.size

    def close(self) -> None:
        self.sink.close()


LiteralData = bytes | Spooled


@dataclass(frozen=True, slots=True)
class NeedContinuation:
    """A synchronizing literal was announced: the client now waits for ``+ ...``.

    The session either sends a continuation request and keeps feeding, or refuses with
    a tagged NO/BAD and calls `CommandReader.cancel_command` (the client then sends
    neither the literal nor the rest of the command).
    """

    tag: str
    command: str
    size: int
    binary: bool = False
    # The literal is APPEND message data rather than a string argument.
    message: bool = False


@dataclass(frozen=True, slots=True)
class Line:
    """One raw line (without CRLF) read in line mode: AUTHENTICATE data, IDLE's DONE."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ParseError:
    """A command that cannot be executed, to be answered and then forgotten.

    ``status`` is "BAD" (syntax, protocol violations) or "NO" (limits exceeded);
    ``code`` an optional response code such as "TOOBIG" or "LIMIT". The reader has
    already skipped the rest of the command unless ``fatal`` is set, in which case the
    stream cannot be resynchronized and the connection must be closed.
    """

    tag: str | None
    message: str
    code: str | None = None
    status: str = "BAD"
    fatal: bool = False

    def response(self) -> bytes:
        """The response line: tagged when the tag is known, ``* BYE`` when fatal."""
        text = self.message.encode("utf-8", "replace").replace(b"\r", b" ").replace(b"\n", b" ")
        if self.code:
            text = b"[" + self.code.encode("ascii") + b"] " + text
        if self.fatal:
            return b"* BYE " + text + b"\r\n"
        tag = self.tag.encode("ascii") if self.tag is not None else b"*"
        return tag + b" " + self.status.encode("ascii") + b" " + text + b"\r\n"
