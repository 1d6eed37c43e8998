"""What SORT and THREAD compare (RFC 5256, RFC 5957): base subjects, collation keys and
the first address of an ENVELOPE field.

Strings collate with i;unicode-casemap (RFC 5256 section 7, RFC 5051), which for ASCII
is i;ascii-casemap: each character titlecased (ASCII letters uppercased), the result
canonically decomposed, then compared code point by code point (the order of their UTF-8
octets). The empty string collates first.
"""

from __future__ import annotations

import re
import unicodedata

from ..mime.headers import decode_header_text

# --- collation ---------------------------------------------------------------------------

_TITLE: dict[str, str] = {}


def _title(ch: str) -> str:
    t = _TITLE.get(ch)
    if t is None:
        t = ch.title()
        if len(t) != 1:  # RFC 5051 uses the simple (one-character) titlecase mapping
            t = ch.upper() if len(ch.upper()) == 1 else ch
        if len(_TITLE) < 65536:
            _TITLE[ch] = t
    return t


def casemap(text: str) -> str:
    """The i;unicode-casemap collation key of *text*."""
    if text.isascii():
        return text.upper()
    return unicodedata.normalize("NFD", "".join(map(_title, text)))


# --- base subject (RFC 5256 section 2.1) -------------------------------------------------

_BLOB = r"\[[^\[\]]*\] ?"
# subj-leader's non-WSP form: *subj-blob subj-refwd.
_REFWD = re.compile(rf"(?:{_BLOB})*(?:re|fwd?) ?(?:{_BLOB})?:", re.IGNORECASE)
_BLOB_RE = re.compile(_BLOB)


def base_subject(subject: str) -> tuple[str, bool]:
    """(base subject, whether the extraction shows a reply or forward: it removed a
    subj-refwd, a "(fwd)" trailer or a [fwd: ...] wrapper). *subject* is the decoded
    (RFC 2047) Subject; step 1 (whitespace) is done here."""
    s = " ".join(subject.split())  # (1) tabs, continuations and runs of spaces: one space
    reply = False
    while True:
        # (2) trailers: "(fwd)" and WSP, repeatedly
        while True:
            if s.endswith(" "):
                s = s[:-1]
            elif s[-5:].lower() == "(fwd)":
                s = s[:-5]
                reply = True
            else:
                break
        # (3)-(5) leaders, and a blob when something is left after it
        while True:
            before = s
            while True:
                if s.startswith(" "):
                    s = s[1:]
                    continue
                m = _REFWD.match(s)
                if m is not None:
                    s = s[m.end() :]
                    reply = True
                    continue
                break
            m = _BLOB_RE.match(s)
            if m is not None and m.end() < len(s):
                s = s[m.end() :]
            if s == before:
                break
        # (6) a [fwd: ...] wrapper: off, and again from (2)
        if s[:5].lower() == "[fwd:" and s.endswith("]"):
            s = s[5:-1]
            reply = True
            continue
        return s, reply


# --- ENVELOPE addresses --------------------------------------------------------------------

# Fields of a serialized ENVELOPE (RFC 9051 7.5.2).
ENV_FROM, ENV_TO, ENV_CC = 2, 5, 6

_TOKEN = re.compile(rb' *(?:(NIL)|"((?:[^"\\]|\\.)*)"|\{([0-9]+)\}\r\n|(\()|(\)))', re.DOTALL)
_UNESCAPE = re.compile(rb"\\(.)", re.DOTALL)

Item = bytes | None | list["Item"]


def parse_list(data: bytes) -> list[Item]:
    """A parenthesized list of nstrings and lists, as the index stores ENVELOPE; what
    does not parse ends the list early (the index wrote it, so that does not happen)."""
    stack: list[list[Item]] = []
    current: list[Item] = []
    i, n = 0, len(data)
    top: list[Item] = current
    first = True
    while i < n:
        m = _TOKEN.match(data, i)
        if m is None:
            break
        i = m.end()
        if m.group(4) is not None:
            if first:
                first = False
                continue
            new: list[Item] = []
            current.append(new)
            stack.append(current)
            current = new
        elif m.group(5) is not None:
            if not stack:
                break
            current = stack.pop()
        elif m.group(1) is not None:
            current.append(None)
        elif m.group(3) is not None:
            size = int(m.group(3))
            current.append(data[i : i + size])
            i += size
        else:
            value = m.group(2)
            current.append(_UNESCAPE.sub(rb"\1", value) if b"\\" in value else value)
    return top


# The common case, without literals: regexes find the first address of a field at once.
_NSTR = rb'(?:NIL|"(?:[^"\\\r\n]|\\.)*")'
_ADDR = rb"\(" + _NSTR + rb" " + _NSTR + rb" " + _NSTR + rb" " + _NSTR + rb"\)"
_ALIST = rb"(?:NIL|\((?:" + _ADDR + rb")+\))"
_BEFORE = {
    field: re.compile(rb"\(" + _NSTR + rb" " + _NSTR + rb" " + (_ALIST + rb" ") * (field - 2))
    for field in (ENV_FROM, ENV_TO, ENV_CC)
}
_FIRST = re.compile(rb"\(\((" + _NSTR + rb") " + _NSTR + rb" (" + _NSTR + rb") (" + _NSTR + rb")\)")

Address = tuple[bytes | None, bytes | None, bytes | None]


def _nstring(token: bytes) -> bytes | None:
    if token == b"NIL":
        return None
    token = token[1:-1]
    return _UNESCAPE.sub(rb"\1", token) if b"\\" in token else token


def first_address(envelope: bytes, field: int) -> Address | None:
    """(addr-name, addr-mailbox, addr-host) of the first address of ENVELOPE *field*,
    group markers skipped; None when it has none."""
    before = _BEFORE.get(field)
    m = before.match(envelope) if before is not None else None
    if m is not None:
        i = m.end()
        if envelope.startswith(b"NIL", i):
            return None
        a = _FIRST.match(envelope, i)
        if a is not None and a.group(3) != b"NIL":
            return _nstring(a.group(1)), _nstring(a.group(2)), _nstring(a.group(3))
    items = parse_list(envelope)
    if len(items) <= field:
        return None
    addrs = items[field]
    if not isinstance(addrs, list):
        return None
    for addr in addrs:
        if isinstance(addr, list) and len(addr) == 4 and addr[3] is not None:
            name, _route, mailbox, host = addr
            return (
                name if isinstance(name, bytes) else None,
                mailbox if isinstance(mailbox, bytes) else None,
                host if isinstance(host, bytes) else None,
            )
    return None


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def address_mailbox(envelope: bytes, field: int) -> str:
    """RFC 5256 FROM/TO/CC: the addr-mailbox of the field's first address, or ""."""
    a = first_address(envelope, field)
    return _text(a[1]) if a is not None and a[1] is not None else ""


def address_display(envelope: bytes, field: int) -> str:
    """RFC 5957 section 3: the decoded addr-name of the field's first address when not
    empty, else addr-mailbox@addr-host, else addr-mailbox, else ""."""
    a = first_address(envelope, field)
    if a is None:
        return ""
    name, mailbox, host = a
    if name is not None:
        text = " ".join(decode_header_text(name).split())
        if text:
            return text
    if mailbox is not None and host is not None:
        return _text(mailbox) + "@" + _text(host)
    return _text(mailbox) if mailbox is not None else ""
