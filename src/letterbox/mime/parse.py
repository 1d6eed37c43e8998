"""Parse a message once, at delivery, into what IMAP FETCH/SEARCH and POP3 need.

The parser is a byte-offset scanner over the raw message: it never copies
bodies, never decodes transfer encodings and never rewrites anything. MIME
boundary handling follows RFC 2046 with the tolerance rules of Dovecot 2.3
(the server our IMAP output is compared against), in particular:

* a boundary line is ``--`` plus any active boundary as a *prefix* of the
  line; the longest matching active boundary wins, so an inner part is
  closed by an outer boundary when the inner closing delimiter is missing;
* the line break before a boundary line belongs to the boundary;
* a header block also ends at a boundary line (missing blank line);
* at most :data:`MAX_NESTING` levels of parts and :data:`MAX_PARTS` parts are
  parsed; deeper or further containers are reported as opaque
  ``application/octet-stream`` parts.

Sizes reported in BODYSTRUCTURE count bare LF line ends as CRLF, because the
IMAP layer sends the message with CRLF line ends.
"""

from __future__ import annotations

import json
import logging
import re
from email.utils import mktime_tz, parsedate_tz

from . import imapstr
from .headers import search_text
from .model import ParsedMessage
from .msgid import thread_references
from .objectid import email_id
from .preview import make_preview
from .rfc822 import (
    NUL_REPLACEMENT,
    Address,
    Tokenizer,
    parse_addresses,
    parse_content_type,
    parse_disposition,
    parse_language,
    parse_params,
    parse_token_value,
)

log = logging.getLogger(__name__)

MAX_NESTING = 100
"""Levels of MIME parts (the message itself is level 0), as in Dovecot."""
MAX_PARTS = 10000
"""Parts parsed per message; the rest of the message is left unparsed."""
MAX_BOUNDARY = 80
"""Boundary parameters are cut to this length (RFC 2046 allows 70)."""
MAX_ADDRESSES = 1000
"""Addresses kept per ENVELOPE field (From, To, Cc...): a To: of 300,000 empty groups
costs the parser a moment, not seconds, and the index a few KB, not 150 MB."""
MAX_SEARCH_TEXT = 64 * 1024
"""Characters of a header kept for index-only SEARCH (Subject, From, To, Cc, Bcc)."""

LEAF, MULTIPART, RFC822 = 0, 1, 2

_ENVELOPE_FIELDS = frozenset(
    (
        b"date",
        b"subject",
        b"from",
        b"sender",
        b"reply-to",
        b"to",
        b"cc",
        b"bcc",
        b"in-reply-to",
        b"message-id",
        b"references",
    )
)
_ADDRESS_FIELDS = (b"from", b"sender", b"reply-to", b"to", b"cc", b"bcc")
_EMPTY_ENVELOPE = b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
_BLANK_LINE = re.compile(rb"\n\r?\n")
# candidate field names at line starts (verified again after NUL and space trimming)
_MIME_FIELD = re.compile(rb"^((?:content-|mime-version)[^:\n]*):", re.I | re.M)
_ENVELOPE_OR_MIME_FIELD = re.compile(
    rb"^((?:content-|mime-version|date|subject|from|sender|reply-to|to|cc|bcc|in-reply-to"
    rb"|message-id|references)[^:\n]*):",
    re.I | re.M,
)
# the rest of a field: its first line and any continuation lines
_FOLDED_VALUE = re.compile(rb"[^\n]*(?:\n[ \t][^\n]*)*")
_DEFAULT_CHARSET = b'"charset" "us-ascii"'
_EMPTY_BODY = b'("text" "plain" (' + _DEFAULT_CHARSET + b') NIL NIL "7bit" 0 0)'
_EMPTY_BODYSTRUCTURE = (
    b'("text" "plain" (' + _DEFAULT_CHARSET + b') NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'
)

# (line start, index in the boundary stack, closing delimiter, end of the
# content before it): how a part's body was ended by a boundary line
_Hit = tuple[int, int, bool, int]
_Fields = list[tuple[bytes, bytes]]


def _strdup(value: bytes) -> bytes:
    """A header value as a C string would keep it: NUL becomes U+FFFD."""
    return value.replace(b"\0", NUL_REPLACEMENT) if b"\0" in value else value


class Part:
    """One MIME entity: offsets into the raw message plus its Content-* data."""

    __slots__ = (
        "hstart",
        "bstart",
        "bend",
        "kind",
        "overflow",
        "children",
        "fields",
        "envelope",
        "ctype",
        "csub",
        "cparams",
        "cte",
        "cid",
        "cdesc",
        "cmd5",
        "cdisp",
        "cdisp_params",
        "clang",
        "cloc",
        "digest",
        "boundary",
    )

    def __init__(self, start: int) -> None:
        self.hstart = start
        self.bstart = start
        self.bend = start
        self.kind = LEAF
        self.overflow = False
        self.children: list[Part] = []
        self.fields: _Fields = []
        self.envelope = False
        self.ctype: bytes | None = None
        self.csub = b""
        self.cparams: list[tuple[bytes, bytes]] = []
        self.cte: bytes | None = None
        self.cid: bytes | None = None
        self.cdesc: bytes | None = None
        self.cmd5: bytes | None = None
        self.cdisp: bytes | None = None
        self.cdisp_params: list[tuple[bytes, bytes]] = []
        self.clang: list[bytes] | None = None
        self.cloc: bytes | None = None
        self.digest = False
        self.boundary: bytes | None = None

    def opaque(self) -> bool:
        """A container type whose content was not parsed as such."""
        if self.overflow:
            return True
        if self.kind != LEAF or self.ctype is None:
            return False
        main = self.ctype.lower()
        return main == b"multipart" or (main == b"message" and self.csub.lower() == b"rfc822")

    def content_type(self) -> str:
        """Lower-case ``type/subtype`` as BODYSTRUCTURE reports it."""
        if self.kind == RFC822:
            return "message/rfc822"
        if self.opaque():
            return "application/octet-stream"
        if self.ctype is None:
            return "text/plain"
        return (self.ctype + b"/" + self.csub).decode("latin-1").lower()


class _Scanner:
    __slots__ = ("raw", "n", "bounds", "count", "stop")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.n = len(raw)
        self.bounds: list[bytes] = []
        self.count = 0
        self.stop: _Hit | None = None

    # -- boundaries ---------------------------------------------------------

    def _match(self, line: int) -> tuple[int, bool] | None:
        """Which active boundary the ``--`` line at ``line`` starts with, if any."""
        raw = self.raw
        s = line + 2
        lf = raw.find(b"\n", s)
        if lf >= 0:
            size = lf - s
            if size > 0 and raw[lf - 1] == 0x0D:
                size -= 1
            if size > 2 and raw[s + size - 2] == 0x2D and raw[s + size - 1] == 0x2D:
                size -= 2
        else:
            size = min(self.n - s, MAX_BOUNDARY + 4)
        best = -1
        best_len = -1
        bounds = self.bounds
        for i in range(len(bounds) - 1, -1, -1):
            b = bounds[i]
            blen = len(b)
            if best_len < blen <= size and raw.startswith(b, s):
                best = i
                best_len = blen
                if blen == size:
                    break
        if best < 0:
            return None
        return best, raw.startswith(b"--", s + best_len)

    def _find(self, pos: int) -> _Hit | None:
        """The first boundary line at or after the line start ``pos``."""
        if not self.bounds:
            return None
        raw = self.raw
        if raw.startswith(b"--", pos):
            m = self._match(pos)
            if m is not None:
                return pos, m[0], m[1], pos
        p = pos
        while True:
            i = raw.find(b"\n--", p)
            if i < 0:
                return None
            m = self._match(i + 1)
            if m is not None:
                end = i - 1 if i - 1 >= pos and raw[i - 1] == 0x0D else i
                return i + 1, m[0], m[1], end
            p = i + 1

    # -- headers ------------------------------------------------------------

    def _header(self, part: Part) -> tuple[bool, _Hit | None]:
        """Scan the header at ``part.hstart``; set ``bstart`` and ``fields``.

        Returns (ended by a blank line, boundary line that cut it short).
        """
        raw = self.raw
        n = self.n
        pos = part.hstart
        if pos >= n:
            part.bstart = n
            return False, None
        # the header ends at the first empty line, else at the end of input
        if raw[pos] == 0x0A:
            eoh = True
            block_end = pos
            part.bstart = pos + 1
        elif raw.startswith(b"\r\n", pos):
            eoh = True
            block_end = pos
            part.bstart = pos + 2
        else:
            m = _BLANK_LINE.search(raw, pos)
            if m is None:
                eoh = False
                block_end = part.bstart = n
            else:
                eoh = True
                block_end = m.start() + 1
                part.bstart = m.end()
        hit: _Hit | None = None
        if self.bounds:
            # a boundary line also ends a header (missing blank line)
            line = pos
            while 0 <= line < block_end:
                if raw.startswith(b"--", line):
                    found = self._match(line)
                    if found is not None:
                        end = line
                        if end > pos:
                            end -= 2 if end - 2 >= pos and raw[end - 2] == 0x0D else 1
                        hit = (line, found[0], found[1], end)
                        eoh = False
                        block_end = part.bstart = end
                        break
                line = raw.find(b"\n--", line, block_end)
                if line >= 0:
                    line += 1
        if block_end > pos:
            self._fields(part, raw[pos:block_end])
        return eoh, hit

    @staticmethod
    def _fields(part: Part, block: bytes) -> None:
        """Collect the fields the index needs from a header block."""
        fields = part.fields
        pattern = _ENVELOPE_OR_MIME_FIELD if part.envelope else _MIME_FIELD
        size = len(block)
        for m in pattern.finditer(block):
            name = m.group(1).rstrip(b" \t")
            if b"\0" in name:
                name = name[: name.index(b"\0")]  # names are C strings in Dovecot
            name = name.lower()
            if not (
                name.startswith(b"content-")
                or name == b"mime-version"
                or (part.envelope and name in _ENVELOPE_FIELDS)
            ):
                continue
            value_match = _FOLDED_VALUE.match(block, m.end())
            assert value_match is not None  # the pattern matches the empty string
            ended = value_match.end() < size  # a line break follows the value
            lines = value_match.group().split(b"\n")
            last = len(lines) - 1
            for i in range(last + 1):
                if (i < last or ended) and lines[i].endswith(b"\r"):
                    lines[i] = lines[i][:-1]
            first = lines[0]
            value = first.lstrip(b" \t")
            if not value and first:
                value = first[1:]  # only whitespace: skip just one
            if last:
                # A continuation line that is a single SP or TAB is joined
                # without the LF, as Dovecot does; this only shows in
                # unterminated comments, which keep text up to their last LF.
                out = bytearray(value)
                for line in lines[1:]:
                    if line != b" " and line != b"\t":
                        out += b"\n"
                    out += line
                value = bytes(out)
            fields.append((name, value))

    def _content(self, part: Part, mime_child: bool, digest_parent: bool) -> None:
        """Interpret the Content-* fields like Dovecot's message parser does."""
        ct_value: bytes | None = None
        mime = mime_child
        for name, value in part.fields:
            if name == b"mime-version":
                mime = True
                continue
            if not name.startswith(b"content-"):
                continue
            sub = name[8:]
            if sub == b"type":
                if ct_value is None:
                    ct_value = value
                    mime = True
            elif sub == b"transfer-encoding":
                if part.cte is None:
                    part.cte = parse_token_value(value)
            elif sub == b"id":
                if part.cid is None:
                    part.cid = _strdup(value)
            elif sub == b"description":
                if part.cdesc is None:
                    part.cdesc = _strdup(value)
            elif sub == b"md5":
                if part.cmd5 is None:
                    part.cmd5 = _strdup(value)
            elif sub == b"location":
                if part.cloc is None:
                    part.cloc = _strdup(value)
            elif sub == b"language":
                if part.clang is None:
                    part.clang = parse_language(value)
            elif sub == b"disposition" and not part.cdisp_params:
                # a disposition without parameters may be replaced by a later one
                disp = parse_disposition(value)
                if disp is not None:
                    part.cdisp, part.cdisp_params = disp
        kind = LEAF
        if ct_value is not None:
            tok = Tokenizer(ct_value)
            main, sub, ret = parse_content_type(tok)
            part.ctype = main
            part.csub = sub
            lmain = main.lower()
            if ret >= 0:
                part.cparams = parse_params(tok)
                if lmain == b"multipart":
                    kind = MULTIPART
                    part.digest = sub.lower() == b"digest"
                    for key, val in part.cparams:
                        if key.lower() == b"boundary":
                            part.boundary = val[:MAX_BOUNDARY]
                            break
                elif lmain == b"message" and sub.lower() == b"rfc822":
                    kind = RFC822
        elif not mime:
            # without MIME-Version the Content-* fields mean nothing
            part.cte = part.cid = part.cdesc = part.cmd5 = part.cloc = None
            part.cdisp = None
            part.cdisp_params = []
            part.clang = None
        if ct_value is None and digest_parent:
            kind = RFC822
        part.kind = kind

    # -- entities -----------------------------------------------------------

    def entity(
        self, start: int, depth: int, mime_child: bool, digest_parent: bool, envelope: bool
    ) -> Part:
        part = Part(start)
        part.envelope = envelope
        self.count += 1
        if self.count >= MAX_PARTS:
            # the last part parsed: it runs to the end of the message
            self.bounds.clear()
        eoh, hit = self._header(part)
        self._content(part, mime_child, digest_parent)
        if part.kind != LEAF and (depth + 1 >= MAX_NESTING or self.count >= MAX_PARTS):
            part.kind = LEAF
            part.overflow = True
        if hit is not None:
            part.bend = part.bstart
            self.stop = hit
            if part.kind == RFC822:
                child = Part(part.bstart)
                child.envelope = True
                self.count += 1
                part.children.append(child)
            return part
        if part.kind == RFC822:
            child = self.entity(part.bstart, depth + 1, False, False, True)
            part.children.append(child)
            part.bend = child.bend
            return part
        if part.kind == MULTIPART and eoh and part.boundary is not None:
            self._multipart(part, depth)
            return part
        hit = self._find(part.bstart)
        part.bend = self.n if hit is None else hit[3]
        self.stop = hit
        return part

    def _multipart(self, part: Part, depth: int) -> None:
        raw = self.raw
        own = len(self.bounds)
        assert part.boundary is not None
        self.bounds.append(part.boundary)
        hit = self._find(part.bstart)
        while True:
            if hit is None:
                part.bend = self.n
                break
            line, idx, closing, end = hit
            if idx < own:
                # an enclosing part's boundary: this multipart ends unclosed
                part.bend = end
                break
            del self.bounds[own + 1 :]
            lf = raw.find(b"\n", line)
            if closing:
                del self.bounds[own:]
                if lf < 0:
                    hit = None
                    part.bend = self.n
                    break
                hit = self._find(lf + 1)  # the epilogue runs to an outer boundary
                part.bend = self.n if hit is None else hit[3]
                break
            if lf < 0:
                hit = None  # the delimiter line runs to the end: no part follows
                part.bend = self.n
                break
            child = self.entity(lf + 1, depth + 1, True, part.digest, False)
            part.children.append(child)
            hit = self.stop
        del self.bounds[own:]
        self.stop = hit


# ---------------------------------------------------------------------------
# serialization


def _addresses(addrs: list[Address]) -> bytes:
    if not addrs:
        return imapstr.NIL
    out = [b"("]
    for a in addrs:
        out.append(b"(")
        out.append(imapstr.NIL if a.name is None else imapstr.for_humans(a.name))
        out.append(b" ")
        out.append(imapstr.nstring(a.route))
        out.append(b" ")
        out.append(imapstr.nstring(a.mailbox))
        out.append(b" ")
        out.append(imapstr.nstring(a.domain))
        out.append(b")")
    out.append(b")")
    return b"".join(out)


class _Envelope:
    __slots__ = ("date", "subject", "in_reply_to", "message_id", "references", "addrs", "raw_addrs")

    def __init__(self, fields: _Fields) -> None:
        self.date: bytes | None = None
        self.subject: bytes | None = None
        self.in_reply_to: bytes | None = None
        self.message_id: bytes | None = None
        self.references: bytes | None = None
        self.raw_addrs: dict[bytes, list[bytes]] = {name: [] for name in _ADDRESS_FIELDS}
        for name, value in fields:
            if name == b"date":
                self.date = value
            elif name == b"subject":
                self.subject = value
            elif name == b"in-reply-to":
                self.in_reply_to = value
            elif name == b"message-id":
                self.message_id = value
            elif name == b"references":
                self.references = value
            elif name in self.raw_addrs:
                self.raw_addrs[name].append(value)
        self.addrs: dict[bytes, list[Address]] = {}
        for name, values in self.raw_addrs.items():
            parsed: list[Address] = []
            for value in values:
                if len(parsed) >= MAX_ADDRESSES:
                    break
                parsed.extend(parse_addresses(value, MAX_ADDRESSES - len(parsed)))
            self.addrs[name] = parsed[:MAX_ADDRESSES]

    def write(self) -> bytes:
        addrs = self.addrs
        sender = addrs[b"sender"] or addrs[b"from"]
        reply_to = addrs[b"reply-to"] or addrs[b"from"]
        return b"".join(
            (
                b"(",
                imapstr.nstring_nolf(None if self.date is None else _strdup(self.date)),
                b" ",
                imapstr.NIL if self.subject is None else imapstr.for_humans(_strdup(self.subject)),
                b" ",
                _addresses(addrs[b"from"]),
                b" ",
                _addresses(sender),
                b" ",
                _addresses(reply_to),
                b" ",
                _addresses(addrs[b"to"]),
                b" ",
                _addresses(addrs[b"cc"]),
                b" ",
                _addresses(addrs[b"bcc"]),
                b" ",
                imapstr.nstring_nolf(
                    None if self.in_reply_to is None else _strdup(self.in_reply_to)
                ),
                b" ",
                imapstr.nstring_nolf(None if self.message_id is None else _strdup(self.message_id)),
                b")",
            )
        )


def _params(params: list[tuple[bytes, bytes]], default_charset: bool) -> bytes:
    if not params and not default_charset:
        return imapstr.NIL
    out = []
    seen_charset = False
    for key, value in params:
        if default_charset and key.lower() == b"charset":
            seen_charset = True
        out.append(imapstr.string(key) + b" " + imapstr.string(value))
    if default_charset and not seen_charset:
        out.append(_DEFAULT_CHARSET)
    return b"(" + b" ".join(out) + b")"


def _extension(part: Part) -> bytes:
    if part.cdisp is None:
        disp = imapstr.NIL
    else:
        disp = b"(" + imapstr.string(part.cdisp) + b" " + _params(part.cdisp_params, False) + b")"
    if part.clang is None:
        lang = imapstr.NIL
    else:
        lang = b"(" + b" ".join(imapstr.string(x) for x in part.clang) + b")"
    return b" " + disp + b" " + lang + b" " + imapstr.nstring_nolf(part.cloc)


def _body_size(raw: bytes, start: int, end: int) -> tuple[int, int]:
    """(size with bare LF counted as CRLF, number of lines) of raw[start:end]."""
    lines = raw.count(b"\n", start, end)
    crlf = raw.count(b"\r\n", start, end)
    return end - start + lines - crlf, lines


def _write(part: Part, raw: bytes) -> tuple[bytes, bytes]:
    """(BODY, BODYSTRUCTURE) of a part, without the enclosing parentheses."""
    if part.kind == MULTIPART:
        if part.children:
            mbody = bytearray()
            mext = bytearray()
            for child in part.children:
                child_body, child_ext = _write(child, raw)
                mbody += b"(" + child_body + b")"
                mext += b"(" + child_ext + b")"
        else:
            # no parts in a multipart is invalid: show one empty text part
            mbody = bytearray(_EMPTY_BODY)
            mext = bytearray(_EMPTY_BODYSTRUCTURE)
        subtype = b" " + imapstr.string(part.csub)
        mbody += subtype
        mext += subtype
        mext += b" " + _params(part.cparams, False) + _extension(part)
        return bytes(mbody), bytes(mext)
    if part.kind == RFC822:
        head = b'"message" "rfc822"'
        text = False
    elif part.opaque():
        # too deep, too many parts, or no usable boundary/subtype
        head = b'"application" "octet-stream"'
        text = False
    elif part.ctype is None:
        head = b'"text" "plain"'
        text = True
    else:
        head = imapstr.string(part.ctype) + b" " + imapstr.string(part.csub)
        text = part.ctype.lower() == b"text"
    size, lines = _body_size(raw, part.bstart, part.bend)
    common = b"%s %s %s %s %s %d" % (
        head,
        _params(part.cparams, text),
        imapstr.nstring_nolf(part.cid),
        imapstr.nstring_nolf(part.cdesc),
        imapstr.string(part.cte) if part.cte is not None else b'"7bit"',
        size,
    )
    if text:
        common += b" %d" % lines
        body = ext_body = common
    elif part.kind == RFC822:
        child = part.children[0]
        envelope = _Envelope(child.fields).write() if child.fields else _EMPTY_ENVELOPE
        child_body, child_ext = _write(child, raw)
        body = b"%s %s (%s) %d" % (common, envelope, child_body, lines)
        ext_body = b"%s %s (%s) %d" % (common, envelope, child_ext, lines)
    else:
        body = ext_body = common
    return body, ext_body + b" " + imapstr.nstring_nolf(part.cmd5) + _extension(part)


def _tree(part: Part) -> list[object]:
    cte = part.cte.decode("latin-1").lower() if part.cte is not None else "7bit"
    return [
        part.hstart,
        part.bstart,
        part.bend,
        part.kind,
        part.content_type(),
        cte,
        [_tree(c) for c in part.children],
    ]


def _sent_date(value: bytes | None) -> float | None:
    if value is None:
        return None
    try:
        text = value.decode("latin-1").replace("\r", " ").replace("\n", " ")
        parsed = parsedate_tz(text)
        if parsed is None:
            return None
        if parsed[9] is None:
            parsed = parsed[:9] + (0,)  # no zone: RFC 5322 says treat as UTC ("-0000")
        return float(mktime_tz(parsed))
    except Exception:  # the stdlib date parser has raised on odd input before
        return None


def _joined_search(values: list[bytes]) -> str:
    return _search(b", ".join(values)) if values else ""


def _search(value: bytes) -> str:
    # Cut before decoding (decoding cannot make text shorter than a quarter of it).
    return search_text(value[: 4 * MAX_SEARCH_TEXT])[:MAX_SEARCH_TEXT]


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse ``raw`` (the message exactly as stored) once; never raises.

    Should parsing fail anyway (a bug, or a call from an already deep stack),
    the message is indexed as a single text/plain part rather than refused.
    """
    try:
        parsed = _parse(raw)
    except RecursionError:
        log.warning("MIME parse ran out of stack; indexing as one text part")
        parsed = _fallback(raw)
    except Exception:
        log.exception("MIME parse failed; indexing as one text part")
        parsed = _fallback(raw)
    parsed.emailid = email_id(raw)
    return parsed


def _parse(raw: bytes) -> ParsedMessage:
    scanner = _Scanner(raw)
    root = scanner.entity(0, 0, False, False, True)
    env = _Envelope(root.fields)
    body, bodystructure = _write(root, raw)
    message_id = ""
    if env.message_id is not None:
        message_id = (
            env.message_id.replace(b"\r", b"")
            .replace(b"\n", b"")
            .decode("utf-8", "replace")
            .strip()
        )
    tree = _tree(root)
    return ParsedMessage(
        envelope=env.write(),
        bodystructure=b"(" + bodystructure + b")",
        body=b"(" + body + b")",
        parts=json.dumps(tree, separators=(",", ":")),
        header_size=root.bstart,
        sent_date=_sent_date(env.date),
        subject=_search(env.subject) if env.subject is not None else "",
        from_=_joined_search(env.raw_addrs[b"from"]),
        to=_joined_search(env.raw_addrs[b"to"]),
        cc=_joined_search(env.raw_addrs[b"cc"]),
        bcc=_joined_search(env.raw_addrs[b"bcc"]),
        message_id=message_id,
        references=thread_references(env.references, env.in_reply_to),
        preview=make_preview(tree, lambda start, end: raw[start:end]),
    )


def _fallback(raw: bytes) -> ParsedMessage:
    if raw.startswith((b"\n", b"\r\n")):
        header_size = raw.index(b"\n") + 1
    else:
        blank = _BLANK_LINE.search(raw)
        header_size = len(raw) if blank is None else blank.end()
    size, lines = _body_size(raw, header_size, len(raw))
    body = b'("text" "plain" (%s) NIL NIL "7bit" %d %d)' % (_DEFAULT_CHARSET, size, lines)
    tree = [0, header_size, len(raw), LEAF, "text/plain", "7bit", []]
    return ParsedMessage(
        envelope=_EMPTY_ENVELOPE,
        bodystructure=body[:-1] + b" NIL NIL NIL NIL)",
        body=body,
        parts=json.dumps(tree),
        header_size=header_size,
        sent_date=None,
        subject="",
        from_="",
        to="",
        cc="",
        bcc="",
        message_id="",
        preview=make_preview(tree, lambda start, end: raw[start:end]),
    )
