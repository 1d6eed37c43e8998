"""Serialization of IMAP response elements (RFC 9051 / RFC 3501 formal syntax).

Everything returns bytes ready to be joined into a response line. These run for every
FETCH row, so checks use regexes and bytes methods rather than per-character loops.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Iterable, Sequence

# Longer strings go out as literals: quoting them saves nothing and clients cope better.
QUOTED_MAX = 1024

_ASTRING_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')
_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
_NOT_QUOTABLE = re.compile(rb"[\x00\r\n]")
_LINE_BREAKS = re.compile(rb"[\r\n]+")
_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec")

NIL = b"NIL"
CRLF = b"\r\n"

Text = bytes | str


def _b(value: Text) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def quoted(value: Text) -> bytes:
    """``"..."`` with ``\\`` and ``"`` escaped; CR, LF and NUL cannot be quoted."""
    data = _b(value)
    if _NOT_QUOTABLE.search(data):
        raise ValueError("CR, LF and NUL cannot appear in a quoted string")
    if b"\\" in data:
        data = data.replace(b"\\", b"\\\\")
    if b'"' in data:
        data = data.replace(b'"', b'\\"')
    return b'"' + data + b'"'


def literal(value: Text) -> bytes:
    """``{n}`` CRLF followed by the data."""
    data = _b(value)
    return b"{%d}\r\n" % len(data) + data


def literal8(value: bytes) -> bytes:
    """``~{n}`` CRLF followed by the data (RFC 3516, may contain NUL)."""
    return b"~{%d}\r\n" % len(value) + value


def _quotable(data: bytes, utf8: bool) -> bool:
    if len(data) > QUOTED_MAX or _NOT_QUOTABLE.search(data):
        return False
    if data.isascii():
        return True
    if not utf8:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def string(value: Text, *, utf8: bool = False) -> bytes:
    """A quoted string when possible, else a literal.

    Literals are used for CR, LF, NUL, long values and 8-bit data; with ``utf8`` (after
    ENABLE IMAP4rev2 / UTF8=ACCEPT) valid UTF-8 may be quoted.
    """
    data = _b(value)
    return quoted(data) if _quotable(data, utf8) else literal(data)


def nstring(value: Text | None, *, utf8: bool = False) -> bytes:
    return NIL if value is None else string(value, utf8=utf8)


def binary_nstring(value: bytes | None) -> bytes:
    """BINARY[...] data: literal8 when it holds NUL, else a literal or quoted string."""
    if value is None:
        return NIL
    if b"\x00" in value:
        return literal8(value)
    return string(value)


def astring(value: Text, *, utf8: bool = False) -> bytes:
    """An atom when the value is one (and not NIL, which clients would misread)."""
    data = _b(value)
    m = _ASTRING_ATOM.fullmatch(data)
    if m is not None and data.upper() != NIL:
        return data
    return string(data, utf8=utf8)


def is_atom(value: bytes) -> bool:
    return _ATOM.fullmatch(value) is not None


def paren_list(items: Iterable[bytes]) -> bytes:
    return b"(" + b" ".join(items) + b")"


def flag_list(flags: Iterable[str]) -> bytes:
    return b"(" + " ".join(flags).encode("ascii") + b")"


def number_list(numbers: Iterable[int]) -> bytes:
    """Space-separated numbers, e.g. for ``* SEARCH``."""
    return " ".join(map(str, numbers)).encode("ascii")


def sequence_set(numbers: Iterable[int]) -> bytes:
    """Compressed set of message numbers or UIDs: ``1:5,7,9:12`` (ascending).

    Raises ValueError for an empty set, which has no representation.
    """
    nums = sorted(set(numbers))
    if not nums:
        raise ValueError("empty sequence set")
    out = []
    start = prev = nums[0]
    for n in nums:
        if n > prev + 1:
            out.append(str(start) if start == prev else f"{start}:{prev}")
            start = n
        prev = n
    out.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(out).encode("ascii")


def ordered_set(numbers: Sequence[int]) -> bytes:
    """A sequence-set that keeps *numbers*' order (SORT results): only ascending runs
    become ranges (RFC 5267 3.2)."""
    out: list[str] = []
    i, n = 0, len(numbers)
    while i < n:
        j = i
        while j + 1 < n and numbers[j + 1] == numbers[j] + 1:
            j += 1
        out.append(str(numbers[i]) if i == j else f"{numbers[i]}:{numbers[j]}")
        i = j + 1
    return ",".join(out).encode("ascii")


def date_time(value: datetime.datetime) -> bytes:
    """``"26-Nov-2026 08:41:44 +0000"``; naive datetimes are taken as UTC."""
    offset = value.utcoffset()
    minutes = 0 if offset is None else int(offset.total_seconds()) // 60
    sign = b"-" if minutes < 0 else b"+"
    hours, mins = divmod(abs(minutes), 60)
    return b'"%02d-%s-%04d %02d:%02d:%02d %s%02d%02d"' % (
        value.day,
        _MONTHS[value.month - 1],
        value.year,
        value.hour,
        value.minute,
        value.second,
        sign,
        hours,
        mins,
    )


def epoch_date_time(epoch: float) -> bytes:
    """`date_time` of seconds since the epoch, in UTC (INTERNALDATE: the index keeps no
    sender zone); without a datetime object, since FETCH formats one per message."""
    t = time.gmtime(epoch)
    return b'"%02d-%s-%04d %02d:%02d:%02d +0000"' % (
        t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec
    )


def resp_text(text: Text, code: Text | None = None) -> bytes:
    """``[code] text`` with line breaks flattened, since text may echo client input."""
    data = _b(text)
    if b"\r" in data or b"\n" in data:
        data = _LINE_BREAKS.sub(b" ", data)
    if code is None:
        return data
    code_bytes = _b(code)
    if b"\r" in code_bytes or b"\n" in code_bytes:
        code_bytes = _LINE_BREAKS.sub(b" ", code_bytes)
    return b"[" + code_bytes + b"] " + data if data else b"[" + code_bytes + b"]"


def untagged(*parts: bytes) -> bytes:
    """``* part part ...`` CRLF, e.g. ``untagged(b"3", b"EXISTS")``."""
    return b"* " + b" ".join(parts) + CRLF


def untagged_status(status: str, text: Text, code: Text | None = None) -> bytes:
    """``* OK/NO/BAD/BYE/PREAUTH [code] text`` CRLF."""
    return b"* " + status.encode("ascii") + b" " + resp_text(text, code) + CRLF


def tagged(tag: Text, status: str, text: Text, code: Text | None = None) -> bytes:
    """``tag OK/NO/BAD [code] text`` CRLF."""
    return _b(tag) + b" " + status.encode("ascii") + b" " + resp_text(text, code) + CRLF


def continuation(text: Text = b"") -> bytes:
    """``+ text`` CRLF (also used with base64 SASL challenges)."""
    return b"+ " + resp_text(text) + CRLF


def fetch_response(number: int, items: Iterable[bytes]) -> bytes:
    """``* n FETCH (item item ...)`` CRLF; items are pre-serialized name/value pairs."""
    return b"* %d FETCH (" % number + b" ".join(items) + b")\r\n"
