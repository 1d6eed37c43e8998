"""RFC 5322 / RFC 2045 tokenizing of header values: addresses, MIME types, parameters.

Everything works on bytes and never raises for any input. The tolerance rules
for broken input follow Dovecot 2.3 (the reference for our IMAP output), so
that ENVELOPE and BODYSTRUCTURE match what clients already see from it:

* status codes of the primitives mirror Dovecot's rfc822-parser: ``1`` means
  "parsed, more input follows", ``0`` "parsed, input ended", ``-1`` "broken";
* NUL bytes inside quoted strings, comments and domain literals become U+FFFD;
* missing mailbox/domain parts become ``MISSING_MAILBOX``/``MISSING_DOMAIN``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NUL_REPLACEMENT = "\ufffd".encode()

# atext (RFC 5322) is 1; MIME tspecials that are atext ('/', '=', '?') are 4.
# 8-bit bytes count as atext: raw UTF-8 in headers is common and Dovecot keeps it.
_ATEXT = bytearray(256)
for _c in b"!#$%&'*+-^_`{|}~":
    _ATEXT[_c] = 1
for _c in b"/=?":
    _ATEXT[_c] = 4
for _c in range(256):
    if (48 <= _c <= 57) or (65 <= _c <= 90) or (97 <= _c <= 122) or _c >= 128:
        _ATEXT[_c] = 2
ATEXT = bytes(_ATEXT)
# A MIME token: atext without tspecials, plus '.'.
TOKEN = bytes(1 if (v & 3) or c == 0x2E else 0 for c, v in enumerate(ATEXT))

_SP, _TAB, _CR, _LF = 0x20, 0x09, 0x0D, 0x0A
_LPAREN, _RPAREN, _BSLASH, _DQUOTE = 0x28, 0x29, 0x5C, 0x22
_AT, _DOT, _COMMA, _COLON, _SEMI, _LT, _GT = 0x40, 0x2E, 0x2C, 0x3A, 0x3B, 0x3C, 0x3E
_LBRACKET, _RBRACKET, _EQ, _SLASH = 0x5B, 0x5D, 0x3D, 0x2F


class Tokenizer:
    """A cursor over one header value (Dovecot's rfc822_parser_context)."""

    __slots__ = ("data", "pos", "end", "comment", "nul")

    def __init__(self, data: bytes, keep_comment: bool = False) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.comment: bytearray | None = bytearray() if keep_comment else None
        self.nul: bytes | None = None

    def peek(self) -> int:
        """The current byte, or -1 at the end (never a valid token byte)."""
        return self.data[self.pos] if self.pos < self.end else -1

    def skip_comment(self) -> int:
        data = self.data
        comment = self.comment
        if comment is not None:
            del comment[:]
        level = 1
        self.pos += 1
        start = self.pos
        end = self.end
        while self.pos < end:
            c = data[self.pos]
            if c == 0:
                if comment is not None and self.nul is not None:
                    comment += data[start : self.pos]
                    comment += self.nul
                    start = self.pos + 1
            elif c == _LPAREN:
                level += 1
            elif c == _RPAREN:
                level -= 1
                if level == 0:
                    if comment is not None:
                        comment += data[start : self.pos]
                    self.pos += 1
                    return 1 if self.pos < end else 0
            elif c == _LF:
                if comment is not None:
                    stop = self.pos
                    if stop > start and data[stop - 1] == _CR:
                        stop -= 1
                    comment += data[start:stop]
                    start = self.pos + 1
            elif c == _BSLASH:
                self.pos += 1
                if self.pos >= end:
                    return -1
                if data[self.pos] in (_CR, _LF, 0):
                    self.pos -= 1
                else:
                    if comment is not None:
                        comment += data[start : self.pos - 1]
                    start = self.pos
            self.pos += 1
        return -1

    def skip_lwsp(self) -> int:
        data = self.data
        end = self.end
        while self.pos < end:
            c = data[self.pos]
            if c in (_SP, _TAB, _CR, _LF):
                self.pos += 1
                continue
            if c != _LPAREN:
                break
            if self.skip_comment() < 0:
                return -1
        return 1 if self.pos < end else 0

    def _run(self, table: bytes, extra: int = -1) -> bytes:
        data = self.data
        start = pos = self.pos
        end = self.end
        while pos < end and (table[data[pos]] or data[pos] == extra):
            pos += 1
        self.pos = pos
        return data[start:pos]

    def atom(self, out: bytearray) -> int:
        if self.pos >= self.end or not ATEXT[self.data[self.pos]]:
            return -1
        out += self._run(ATEXT)
        if self.pos >= self.end:
            return 0
        return self.skip_lwsp()

    def dot_atom(self, out: bytearray) -> int:
        if self.pos >= self.end or not ATEXT[self.data[self.pos]]:
            return -1
        while True:
            word = self._run(ATEXT)
            if not word:
                return -1
            out += word
            if self.pos >= self.end:
                return 0
            ret = self.skip_lwsp()
            if ret <= 0:
                return ret
            if self.data[self.pos] != _DOT:
                return 1
            self.pos += 1
            out.append(_DOT)
            if self.skip_lwsp() <= 0:
                return -1

    def mime_token(self, out: bytearray) -> int:
        out += self._run(TOKEN)
        if self.pos >= self.end:
            return 0
        return self.skip_lwsp()

    def quoted_string(self, out: bytearray) -> int:
        data = self.data
        end = self.end
        self.pos += 1
        start = self.pos
        while self.pos < end:
            c = data[self.pos]
            if c == 0:
                if self.nul is not None:
                    out += data[start : self.pos]
                    out += self.nul
                    start = self.pos + 1
            elif c == _DQUOTE:
                out += data[start : self.pos]
                self.pos += 1
                return self.skip_lwsp()
            elif c == _LF:
                stop = self.pos
                if stop > start and data[stop - 1] == _CR:
                    stop -= 1
                out += data[start:stop]
                start = self.pos + 1
            elif c == _BSLASH:
                self.pos += 1
                if self.pos >= end:
                    return -1
                if data[self.pos] in (_CR, _LF, 0):
                    self.pos -= 1
                else:
                    out += data[start : self.pos - 1]
                    start = self.pos
            self.pos += 1
        return -1

    def _atom_or_dot(self, out: bytearray) -> int:
        data = self.data
        start = pos = self.pos
        end = self.end
        while pos < end and (ATEXT[data[pos]] or data[pos] == _DOT):
            pos += 1
        self.pos = pos
        out += data[start:pos]
        if pos >= end:
            return 0
        return self.skip_lwsp()

    def phrase(self, out: bytearray) -> int:
        if self.pos >= self.end:
            return 0
        if self.data[self.pos] == _DOT:
            return -1
        while True:
            if self.data[self.pos] == _DQUOTE:
                ret = self.quoted_string(out)
            else:
                ret = self._atom_or_dot(out)
            if ret <= 0:
                return ret
            c = self.data[self.pos]
            if not ATEXT[c] and c != _DQUOTE and c != _DOT:
                break
            out.append(_SP)
        return self.skip_lwsp()

    def _domain_literal(self, out: bytearray) -> int:
        data = self.data
        end = self.end
        start = self.pos
        self.pos += 1
        while self.pos < end:
            c = data[self.pos]
            if c == 0:
                if self.nul is not None:
                    out += data[start : self.pos]
                    out += self.nul
                    start = self.pos + 1
            elif c == _LBRACKET:
                return -1
            elif c == _RBRACKET:
                out += data[start : self.pos + 1]
                self.pos += 1
                return self.skip_lwsp()
            elif c == _LF:
                stop = self.pos
                if stop > start and data[stop - 1] == _CR:
                    stop -= 1
                out += data[start:stop]
                start = self.pos + 1
            elif c == _BSLASH:
                self.pos += 1
                if self.pos >= end:
                    return -1
                if data[self.pos] in (_CR, _LF, 0):
                    out += data[start : self.pos]
                    start = self.pos
                    self.pos -= 1
            self.pos += 1
        return -1

    def domain(self, out: bytearray) -> int:
        """Parse ``@domain`` (the cursor is on the ``@``)."""
        self.pos += 1
        if self.skip_lwsp() <= 0:
            return -1
        if self.data[self.pos] == _LBRACKET:
            return self._domain_literal(out)
        return self.dot_atom(out)


# ---------------------------------------------------------------------------
# Content-Type, parameters (RFC 2045 + RFC 2231)


def parse_content_type(tok: Tokenizer) -> tuple[bytes, bytes, int]:
    """``type/subtype`` at the cursor: (type, subtype, status).

    On failure the type may still be set (``text`` alone), matching Dovecot:
    a broken Content-Type is kept as well as it could be read rather than
    silently becoming text/plain.
    """
    if tok.skip_lwsp() <= 0:
        return b"", b"", -1
    main = bytearray()
    if tok.mime_token(main) <= 0 or not main:
        return bytes(main), b"", -1
    if tok.data[tok.pos] != _SLASH:
        return b"", b"", -1
    tok.pos += 1
    if tok.skip_lwsp() <= 0:
        return b"", b"", -1
    sub = bytearray()
    ret = tok.mime_token(sub)
    if ret < 0 or not sub or (tok.pos < tok.end and tok.data[tok.pos] != _SEMI):
        return b"", b"", -1
    return bytes(main), bytes(sub), ret


def _content_param(tok: Tokenizer) -> tuple[int, bytes, bytes]:
    if tok.pos >= tok.end:
        return 0, b"", b""
    if tok.data[tok.pos] != _SEMI:
        return -1, b"", b""
    tok.pos += 1
    if tok.skip_lwsp() <= 0:
        return -1, b"", b""
    key = bytearray()
    if tok.mime_token(key) <= 0:
        return -1, b"", b""
    if tok.data[tok.pos] != _EQ:
        return -1, b"", b""
    tok.pos += 1
    value = bytearray()
    ret = tok.skip_lwsp()
    if ret <= 0:
        pass  # no value
    elif tok.data[tok.pos] == _DQUOTE:
        ret = tok.quoted_string(value)
    elif tok.data[tok.pos] == _EQ:
        # tolerate unquoted encoded-words: name==?utf-8?b?...?=
        data = tok.data
        start = pos = tok.pos
        while pos < tok.end and data[pos] not in (_SEMI, _SP, _TAB, _CR, _LF):
            pos += 1
        tok.pos = pos
        value += data[start:pos]
    else:
        ret = tok.mime_token(value)
    return (-1 if ret < 0 else 1), bytes(key), bytes(value)


def _leading_index(rest: bytes) -> tuple[int, bytes]:
    idx = 0
    i = 0
    while i < len(rest) and 48 <= rest[i] <= 57:
        idx = (idx * 10 + rest[i] - 48) & 0xFFFFFFFF
        i += 1
    return idx, rest[i:]


def parse_params(tok: Tokenizer) -> list[tuple[bytes, bytes]]:
    """``; key=value`` parameters, with RFC 2231 continuations merged.

    Continued parameters (``name*0``, ``name*1``...) are joined; when any
    segment is extended (``name*0*``) the result is re-emitted as
    ``name*`` = ``charset'lang'percent-encoded`` without decoding, exactly like
    Dovecot does, so clients that understand RFC 2231 decode it themselves.
    """
    saved_nul = tok.nul
    tok.nul = NUL_REPLACEMENT
    result: list[tuple[bytes, bytes]] = []
    indexed: list[tuple[bytes, int, bool, bytes]] = []
    while True:
        ret, key, value = _content_param(tok)
        if ret == 0:
            break
        if ret < 0:
            # skip the garbage one byte at a time until the next ';'
            if tok.pos >= tok.end:
                break
            tok.pos += 1
            continue
        star = key.find(b"*")
        if star < 0:
            result.append((key, value))
            continue
        idx, rem = _leading_index(key[star + 1 :])
        if rem == b"*" or key[star + 1 :] == b"":
            indexed.append((key[:star], idx, True, value))
        elif rem == b"":
            indexed.append((key[:star], idx, False, value))
        else:
            result.append((key, value))
    tok.nul = saved_nul
    if not indexed:
        return result
    indexed.sort(key=lambda p: (p[0], p[1]))
    i = 0
    count = len(indexed)
    while i < count:
        name = indexed[i][0].lower()
        j = i
        ok = True
        extended = False
        while j < count and indexed[j][0].lower() == name:
            if indexed[j][1] != j - i:
                ok = False
            if indexed[j][2]:
                extended = True
            j += 1
        group = indexed[i:j]
        if not ok:
            for key, idx, ext, value in group:
                result.append((b"%s*%d*" % (key, idx) if ext else b"%s*%d" % (key, idx), value))
        else:
            merged = bytearray()
            if extended and not group[0][2]:
                merged += b"''"
            for _key, _idx, ext, value in group:
                merged += value.replace(b"%", b"%25") if extended and not ext else value
            result.append((group[0][0] + b"*" if extended else group[0][0], bytes(merged)))
        i = j
    return result


def parse_token_value(value: bytes) -> bytes | None:
    """A single MIME token filling the whole value (Content-Transfer-Encoding)."""
    tok = Tokenizer(value)
    tok.skip_lwsp()
    out = bytearray()
    if tok.mime_token(out) >= 0 and tok.skip_lwsp() == 0 and out:
        return bytes(out)
    return None


def parse_disposition(value: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
    tok = Tokenizer(value)
    tok.skip_lwsp()
    out = bytearray()
    if tok.mime_token(out) < 0:
        return None
    return bytes(out), parse_params(tok)


def parse_language(value: bytes) -> list[bytes] | None:
    tok = Tokenizer(value)
    tok.skip_lwsp()
    langs: list[bytes] = []
    out = bytearray()
    while tok.atom(out) >= 0:
        langs.append(bytes(out))
        del out[:]
        if tok.pos >= tok.end or tok.data[tok.pos] != _COMMA:
            break
        tok.pos += 1
        tok.skip_lwsp()
    return langs or None


# ---------------------------------------------------------------------------
# Address lists (RFC 5322 3.4, plus the obsolete and broken forms seen in mail)


@dataclass(slots=True)
class Address:
    """One ENVELOPE address: a mailbox, or a group start (domain None) or end.

    A group start has ``mailbox`` set to the group's display name and
    ``domain`` None; a group end has every field None (RFC 3501 7.4.2).
    """

    name: bytes | None = None
    route: bytes | None = None
    mailbox: bytes | None = None
    domain: bytes | None = None
    invalid: bool = False


class _AddressParser:
    __slots__ = ("tok", "out", "cur", "limit")

    def __init__(self, value: bytes, limit: int = 1 << 30) -> None:
        self.tok = Tokenizer(value, keep_comment=True)
        self.tok.nul = NUL_REPLACEMENT
        self.out: list[Address] = []
        self.cur = Address()
        self.limit = limit

    def _add(self) -> None:
        self.out.append(self.cur)
        self.cur = Address()

    def _add_fixed(self) -> None:
        cur = self.cur
        if cur.mailbox is None:
            cur.mailbox = b"MISSING_MAILBOX"
            cur.invalid = True
        if not cur.domain:
            cur.domain = b"MISSING_DOMAIN"
            cur.invalid = True
        self._add()

    def _nonstrict_dot_atom(self, out: bytearray) -> int:
        tok = self.tok
        ret = -1
        while True:
            while tok.peek() == _DOT:
                out.append(_DOT)
                tok.pos += 1
                if tok.pos >= tok.end:
                    return 0
                ret = 1
            if tok.peek() == _AT:
                break
            ret = tok.atom(out)
            if not (ret > 0 and tok.peek() == _DOT):
                break
        return ret

    def _local_part(self, buf: bytearray) -> int:
        tok = self.tok
        del buf[:]
        if tok.peek() == _DQUOTE:
            ret = tok.quoted_string(buf)
        else:
            ret = self._nonstrict_dot_atom(buf)
        if ret < 0:
            return -1
        self.cur.mailbox = bytes(buf)
        return ret

    def _domain(self) -> int:
        out = bytearray()
        ret = self.tok.domain(out)
        if ret < 0:
            return -1
        self.cur.domain = bytes(out)
        return ret

    def _domain_list(self) -> int:
        tok = self.tok
        route = bytearray()
        while True:
            if tok.pos >= tok.end:
                return 0
            if tok.peek() != _AT:
                break
            if route:
                route.append(_COMMA)
            route.append(_AT)
            ret = tok.domain(route)
            if ret <= 0:
                return ret
            while tok.skip_lwsp() > 0 and tok.peek() == _COMMA:
                tok.pos += 1
        self.cur.route = bytes(route)
        return 1

    def _angle_addr(self) -> int:
        tok = self.tok
        tok.pos += 1
        if tok.skip_lwsp() <= 0:
            return -1
        if tok.peek() == _AT:
            if self._domain_list() > 0 and tok.peek() == _COLON:
                tok.pos += 1
            else:
                self.cur.route = b"INVALID_ROUTE"
                if tok.pos >= tok.end:
                    return -1
            if tok.skip_lwsp() <= 0:
                return -1
        if tok.peek() != _GT:
            if self._local_part(bytearray()) <= 0:
                return -1
            if tok.peek() == _AT and self._domain() <= 0:
                return -1
        if tok.peek() != _GT:
            return -1
        tok.pos += 1
        return tok.skip_lwsp()

    def _name_addr(self) -> int:
        tok = self.tok
        buf = bytearray()
        if tok.phrase(buf) <= 0 or tok.peek() != _LT:
            return -1
        self.cur.name = bytes(buf) or None
        if self._angle_addr() < 0:
            self.cur.domain = b"SYNTAX_ERROR"
            self.cur.invalid = True
        return 1 if tok.pos < tok.end else 0

    def _addr_spec(self) -> int:
        tok = self.tok
        comment = tok.comment
        assert comment is not None
        del comment[:]
        quoted = tok.peek() == _DQUOTE
        buf = bytearray()
        ret = self._local_part(buf)
        if ret <= 0:
            self.cur.invalid = True
        ret2 = -2
        if ret != 0 and tok.peek() == _AT:
            ret2 = self._domain()
            if ret2 <= 0:
                ret = ret2
        if comment:
            self.cur.name = bytes(comment)
        elif ret2 == -2:
            # "user" alone is a mailbox, but "user more words" is a display name
            buf.append(_SP)
            before = len(buf)
            tok.phrase(buf)
            if len(buf) != before:
                self.cur.mailbox = None
                self.cur.name = bytes(buf)
            elif not quoted:
                self.cur.domain = b""
            self.cur.invalid = True
            ret = -1
        return ret

    def _mailbox(self) -> int:
        tok = self.tok
        start = tok.pos
        ret = self._name_addr()
        if ret < 0:
            tok.pos = start
            self.cur = Address()
            ret = self._addr_spec()
            cur = self.cur
            if cur.invalid and cur.name is None and cur.mailbox is not None and cur.domain is None:
                cur.name = cur.mailbox
                cur.mailbox = None
        if ret < 0:
            self.cur.invalid = True
        self._add_fixed()
        return ret

    def _group(self) -> int:
        tok = self.tok
        buf = bytearray()
        if tok.phrase(buf) <= 0 or tok.peek() != _COLON:
            return -1
        tok.pos += 1
        ret = tok.skip_lwsp()
        if ret <= 0:
            self.cur.invalid = True
        self.cur.mailbox = bytes(buf)
        self._add()
        if ret > 0 and tok.peek() != _SEMI:
            while True:
                self._mailbox()
                if tok.peek() != _COMMA:
                    break
                tok.pos += 1
                if tok.skip_lwsp() <= 0:
                    ret = -1
                    break
        if ret >= 0:
            if tok.peek() != _SEMI:
                ret = -1
            else:
                tok.pos += 1
                ret = tok.skip_lwsp()
        if ret < 0:
            self.cur.invalid = True
        self._add()
        return 0 if ret == 0 else 1

    def _address(self) -> int:
        tok = self.tok
        start = tok.pos
        ret = self._group()
        if ret < 0:
            tok.pos = start
            self.cur = Address()
            ret = self._mailbox()
        return ret

    def parse(self) -> list[Address]:
        tok = self.tok
        if tok.skip_lwsp() <= 0:
            return self.out
        while True:
            if self._address() == 0:
                break
            if len(self.out) >= self.limit:
                break  # enough: the rest of a huge list is not parsed at all
            if tok.peek() != _COMMA:
                break
            tok.pos += 1
            ret = tok.skip_lwsp()
            if ret <= 0:
                if ret < 0:
                    self._add_fixed()  # the list ends with garbage
                break
        return self.out


# Most headers hold one plain address: "Name Words <local@domain>" or "local@domain".
# These parse the same as with _AddressParser (tests/mime compare the two), without
# going through the tokenizer a byte at a time.
_ATOM = rb"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = _ATOM + rb"(?:\." + _ATOM + rb")*"
_SIMPLE_ADDRESS = re.compile(
    rb"[ \t]*(?:(" + _ATOM + rb"(?: " + _ATOM + rb")*) ?)?<(" + _DOT_ATOM + rb")@(" + _DOT_ATOM + rb")>[ \t]*"
    rb"|[ \t]*(" + _DOT_ATOM + rb")@(" + _DOT_ATOM + rb")[ \t]*"
)


def parse_addresses(value: bytes, limit: int = 1 << 30) -> list[Address]:
    """Parse an address-list header value, stopping after about *limit* addresses; never
    raises, possibly empty."""
    m = _SIMPLE_ADDRESS.fullmatch(value)
    if m is not None:
        if m.group(3) is not None:
            return [Address(m.group(1), None, m.group(2), m.group(3))]
        return [Address(None, None, m.group(4), m.group(5))]
    return _AddressParser(value, limit).parse()
