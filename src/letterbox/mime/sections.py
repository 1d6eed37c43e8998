"""Serve IMAP BODY[section], BINARY[section] and POP3 TOP from byte offsets.

``ParsedMessage.parts`` is the JSON of the MIME tree computed at delivery.
Each node is a list::

    [header_start, body_start, body_end, kind, content_type, cte, children]

* offsets index the stored message bytes: the header is
  ``raw[header_start:body_start]`` (including the blank line that ends it),
  the body ``raw[body_start:body_end]``;
* ``kind`` is 0 for a leaf, 1 for multipart, 2 for message/rfc822;
* ``content_type`` is the lower-case ``type/subtype`` BODYSTRUCTURE reports,
  ``cte`` the lower-case Content-Transfer-Encoding (``7bit`` when absent);
* ``children`` are the parts of a multipart, or the single encapsulated
  message of a message/rfc822 part (whose own header is that message's
  header).

The root node is the message itself; its header starts at 0 and its body
ends at the end of the message. Offsets are raw bytes: a message stored
with bare LF line ends must still be sent with CRLF.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Sequence
from typing import Any

LEAF, MULTIPART, RFC822 = 0, 1, 2
HEADER_SPECIFIERS = frozenset(("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"))

Node = list[Any]


def load_parts(parts: str) -> Node:
    """Decode ``ParsedMessage.parts`` once, to look up several sections."""
    node: Node = json.loads(parts)
    return node


def _node(parts: str | Node) -> Node:
    return load_parts(parts) if isinstance(parts, str) else parts


def find_part(parts: str | Node, path: Sequence[int]) -> Node | None:
    """The node for an IMAP section part number, or None if there is none.

    Follows RFC 3501 6.4.5: the parts of a multipart are numbered from 1; a
    message whose body is not multipart has only part 1, its body, whose MIME
    header is the message header; a message/rfc822 part is numbered through
    to the parts of the message it encapsulates. The empty path is the
    message itself.
    """
    node = _node(parts)
    as_message = True  # ``node`` is a message and ``num`` indexes its body
    in_multipart = False  # ``node`` is a part of a multipart
    for num in path:
        if num < 1:
            return None
        if not as_message:
            if node[3] == RFC822:
                node = node[6][0]
            elif node[3] != MULTIPART:
                # A leaf has no parts. Dovecot answers "N.1" of a leaf N in a multipart
                # with N itself (not "N.1.1", nor "1.1" of a single-part message).
                if num != 1 or not in_multipart:
                    return None
                in_multipart = False
                continue
        if node[3] == MULTIPART:
            children = node[6]
            if num > len(children):
                return None
            node = children[num - 1]
            in_multipart = True
        elif num != 1:
            return None
        else:
            in_multipart = False
        as_message = False
    return node


def find_section(
    parts: str | Node, path: Sequence[int], specifier: str | None = None
) -> tuple[int, int] | None:
    """Byte range ``(start, end)`` of ``BODY[<path>.<specifier>]``, or None.

    ``path`` is the numeric part (``()`` for the whole message, ``(1, 2)``
    for ``1.2``). ``specifier`` is None, ``"HEADER"``, ``"TEXT"``, ``"MIME"``
    or ``"HEADER.FIELDS"``/``"HEADER.FIELDS.NOT"`` (these give the header
    range; filter it with :func:`letterbox.mime.headers.get_header_fields`).
    HEADER and TEXT exist for the message itself and for message/rfc822
    parts; MIME exists for numbered parts only.
    """
    spec = None if specifier is None else specifier.upper()
    node = find_part(parts, path)
    if node is None:
        return None
    if spec is None:
        if not path:
            return node[0], node[2]
        return node[1], node[2]
    if spec == "MIME":
        return (node[0], node[1]) if path else None
    if spec in HEADER_SPECIFIERS or spec == "TEXT":
        if path:
            if node[3] != RFC822:
                return None
            node = node[6][0]
        return (node[0], node[1]) if spec != "TEXT" else (node[1], node[2])
    return None


def part_encoding(parts: str | Node, path: Sequence[int]) -> tuple[str, str] | None:
    """``(content_type, content_transfer_encoding)`` of a part, for BINARY."""
    node = find_part(parts, path)
    if node is None:
        return None
    return node[4], node[5]


_QP_TRAILING_SPACE = re.compile(rb"[ \t]+(?=\r?\n|\Z)")
_QP_SOFT_BREAK = re.compile(rb"=\r?\n|=\Z")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_BASE64_SPACE = b" \t\r\n"


def _decode_qp(data: bytes) -> bytes | None:
    data = _QP_TRAILING_SPACE.sub(b"", data)
    data = _QP_SOFT_BREAK.sub(b"", data)
    if b"=" not in data:
        return data
    pieces = _QP_ESCAPE.split(data)
    # split() alternates literal text and the hex digits of each escape
    literal = pieces[0::2]
    if any(b"=" in text for text in literal):
        return None  # an '=' that starts no escape
    out = bytearray(literal[0])
    for i in range(1, len(pieces), 2):
        out.append(int(pieces[i], 16))
        out += pieces[i + 1]
    return bytes(out)


def _decode_base64(data: bytes) -> bytes | None:
    # tolerate missing or short padding, which some encoders produce
    data = data.translate(None, _BASE64_SPACE).rstrip(b"=")
    missing = -len(data) % 4
    if missing == 3:
        return None
    data += b"=" * missing
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        return None


def decode_part(cte: str, data: bytes) -> bytes | None:
    """Undo a Content-Transfer-Encoding for IMAP BINARY (RFC 3516).

    Returns None when the encoding is unknown or the data is not valid in
    it; the IMAP layer answers that with ``[UNKNOWN-CTE]``.
    """
    encoding = cte.strip().lower()
    if encoding in ("", "7bit", "8bit", "binary"):
        return data
    if encoding == "base64":
        return _decode_base64(data)
    if encoding == "quoted-printable":
        return _decode_qp(data)
    return None


def pop3_top_end(raw: bytes, header_size: int, lines: int) -> int:
    """End offset of POP3 ``TOP n``: the header plus the first ``lines`` body lines."""
    pos = header_size
    n = len(raw)
    for _ in range(max(lines, 0)):
        if pos >= n:
            return n
        lf = raw.find(b"\n", pos)
        if lf < 0:
            return n
        pos = lf + 1
    return pos
