"""Header-block helpers: HEADER.FIELDS extraction and RFC 2047 decoding for SEARCH."""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable

_CRLF = b"\r\n"
_WSP = (0x20, 0x09)


def _normalize_names(names: Iterable[bytes]) -> frozenset[bytes]:
    return frozenset(n.lower() for n in names)


def _select_fields(header: bytes, names: frozenset[bytes], wanted: bool) -> bytes:
    out: list[bytes] = []
    pos = 0
    n = len(header)
    keep = False
    blank_line = False
    while pos < n:
        lf = header.find(b"\n", pos)
        nxt = n if lf < 0 else lf + 1
        first = header[pos]
        if first in _WSP and pos > 0:
            if keep:
                out.append(header[pos:nxt])
        else:
            if first == 0x0A or (first == 0x0D and pos + 1 < n and header[pos + 1] == 0x0A):
                blank_line = True  # the empty line ending the header
                break
            colon = header.find(b":", pos, nxt)
            if colon < 0:
                end = lf if lf >= 0 else n
                if end > pos and header[end - 1] == 0x0D:
                    end -= 1
                name = header[pos:end]
            else:
                name = header[pos:colon].rstrip(b" \t")
            keep = (name.lower() in names) == wanted
            if keep:
                out.append(header[pos:nxt])
        pos = nxt
    if out and not out[-1].endswith(b"\n"):
        out.append(_CRLF)  # the header ended mid-line: complete the field
    if blank_line:
        # RFC 3501 6.4.5: keep the delimiting blank line, unless the
        # message has none (no body and no blank line)
        out.append(_CRLF)
    return b"".join(out)


def get_header_fields(header: bytes, names: Iterable[bytes]) -> bytes:
    """IMAP ``HEADER.FIELDS``: the fields named in ``names``, then a blank line.

    ``header`` is a raw header block (up to and including the blank line that
    ends it, as returned by the HEADER section). Matching is case-insensitive;
    each field is returned byte-exact with its continuation lines, in message
    order, followed by CRLF for the delimiting blank line (RFC 3501 6.4.5),
    which is left out when the header has none.
    """
    return _select_fields(header, _normalize_names(names), True)


def get_header_fields_not(header: bytes, names: Iterable[bytes]) -> bytes:
    """IMAP ``HEADER.FIELDS.NOT``: every field not named in ``names``, then a blank line."""
    return _select_fields(header, _normalize_names(names), False)


# ---------------------------------------------------------------------------
# RFC 2047 decoding, tolerant: used for the SEARCH index, never for IMAP output

_ENCODED_WORD = re.compile(rb"=\?([^?\s]*)\?([bBqQ])\?([^?]*)\?=")
_BETWEEN_WORDS = re.compile(rb"[ \t\r\n]*")
_Q_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def _q_decode(text: bytes) -> bytes:
    return _Q_HEX.sub(lambda m: bytes.fromhex(m.group(1).decode()), text.replace(b"_", b" "))


def _b_decode(text: bytes) -> bytes:
    text = _B64_JUNK.sub(b"", text)
    text = text[: len(text) - len(text) % 4] if len(text) % 4 == 1 else text
    try:
        return binascii.a2b_base64(text + b"=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return b""


def _to_str(data: bytes, charset: str) -> str:
    charset = charset.split("*", 1)[0].strip().lower()  # RFC 2231 language suffix
    if charset and charset not in ("us-ascii", "ascii", "utf-8", "utf8"):
        try:
            return data.decode(charset, "replace")
        except Exception:  # unknown charset, or not a text codec
            pass
    return data.decode("utf-8", "replace")


def _raw_to_str(data: bytes) -> str:
    if data.isascii():
        return data.decode("ascii")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def decode_header_text(value: bytes) -> str:
    """Decode RFC 2047 encoded-words in a raw header value, never raising.

    Raw 8-bit text is taken as UTF-8 when valid, else Latin-1; unknown
    charsets and undecodable bytes become U+FFFD. Whitespace between adjacent
    encoded-words is dropped (RFC 2047 section 6.2).
    """
    if b"=?" not in value:
        return _raw_to_str(value)
    parts: list[str] = []
    pos = 0
    last_was_word = False
    for m in _ENCODED_WORD.finditer(value):
        gap = value[pos : m.start()]
        if not (last_was_word and _BETWEEN_WORDS.fullmatch(gap)):
            parts.append(_raw_to_str(gap))
        charset = m.group(1).decode("latin-1")
        text = m.group(3)
        data = _b_decode(text) if m.group(2) in b"bB" else _q_decode(text)
        parts.append(_to_str(data, charset))
        pos = m.end()
        last_was_word = True
    parts.append(_raw_to_str(value[pos:]))
    return "".join(parts)


def search_text(value: bytes) -> str:
    """Header text for case-insensitive substring SEARCH: decoded, unfolded, casefolded."""
    return " ".join(decode_header_text(value).split()).casefold()
