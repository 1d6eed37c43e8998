"""Shared helpers for the MIME tests: the corpus, the Dovecot fixture, IMAP parsing."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
FIXTURE = HERE / "fixtures" / "dovecot.json"


def corpus_names() -> list[str]:
    return sorted(p.name for p in CORPUS.glob("*.eml"))


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


@cache
def fixture() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(FIXTURE.read_text())
    return doc


def wire(data: bytes) -> bytes:
    """Stored bytes as an IMAP server sends them: CRLF line ends, no NUL.

    Dovecot sends NUL as 0x80 in non-BINARY fetches.
    """
    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return data.replace(b"\0", b"\x80")


class ImapSyntaxError(ValueError):
    pass


def parse_imap(data: bytes) -> Any:
    """Parse one IMAP parenthesized list into nested lists of bytes / None.

    Strict: quoted strings may only hold TEXT-CHARs with \\ escaping only
    quoted-specials, literals must be well formed and nothing may follow.
    """
    value, pos = _item(data, 0)
    if pos != len(data):
        raise ImapSyntaxError(f"trailing data at {pos}")
    return value


def _item(data: bytes, pos: int) -> tuple[Any, int]:
    if pos >= len(data):
        raise ImapSyntaxError("unexpected end")
    c = data[pos]
    if c == 0x28:  # (
        out: list[Any] = []
        pos += 1
        while True:
            if pos >= len(data):
                raise ImapSyntaxError("unterminated list")
            if data[pos] == 0x29:
                return out, pos + 1
            if out:
                # 1*address and 1*body follow each other without a space
                adjacent_lists = isinstance(out[-1], list) and data[pos] == 0x28
                if not adjacent_lists:
                    if data[pos] != 0x20:
                        raise ImapSyntaxError(f"missing space at {pos}")
                    pos += 1
            value, pos = _item(data, pos)
            out.append(value)
    if c == 0x22:  # "
        buf = bytearray()
        pos += 1
        while True:
            if pos >= len(data):
                raise ImapSyntaxError("unterminated quoted string")
            ch = data[pos]
            if ch == 0x22:
                return bytes(buf), pos + 1
            if ch == 0x5C:
                if pos + 1 >= len(data) or data[pos + 1] not in b'"\\':
                    raise ImapSyntaxError("bad escape")
                buf.append(data[pos + 1])
                pos += 2
                continue
            if ch in (0x0D, 0x0A, 0) or ch >= 0x80:
                raise ImapSyntaxError(f"byte {ch:#x} in quoted string")
            buf.append(ch)
            pos += 1
    if c == 0x7B:  # {n}\r\n
        close = data.index(b"}", pos)
        size = int(data[pos + 1 : close])
        if data[close + 1 : close + 3] != b"\r\n":
            raise ImapSyntaxError("literal without CRLF")
        start = close + 3
        if start + size > len(data):
            raise ImapSyntaxError("short literal")
        value = data[start : start + size]
        if b"\0" in value:
            raise ImapSyntaxError("NUL in literal")
        return value, start + size
    end = pos
    while end < len(data) and data[end] not in b" ()":
        end += 1
    atom = data[pos:end]
    if atom == b"NIL":
        return None, end
    if not atom.isdigit():
        raise ImapSyntaxError(f"unexpected atom {atom!r}")
    return int(atom), end
