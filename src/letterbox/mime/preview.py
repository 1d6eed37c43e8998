"""PREVIEW (RFC 8970): a short plain-text abstract of a message, made once at delivery.

The text comes from the first human-readable part: the first text/plain or text/html
part that is not an attachment, in the order the parts appear, except that inside a
multipart/alternative a text/plain alternative is preferred to HTML. HTML is reduced
to the text a reader would see. A part is decoded from its Content-Transfer-Encoding
and its charset; quoted lines (">" in plain text, <blockquote> in HTML) are left out,
as Dovecot leaves them out; whitespace runs become one space. At most `MAX_CHARS`
characters are kept (RFC 8970 3.3: "SHOULD" 200, never more than 256).

The work is bounded whatever the message: at most `MAX_INPUT` bytes of a part and
`MAX_HEADER` bytes of its header are read, and at most `MAX_TRIES` parts are tried.
A message with nothing to show (only attachments, an encrypted body, only quoted
text) has the empty preview, which RFC 8970 3.2 asks for.

Parts are read through a callback over the raw message, so the same code serves a
message being delivered (its bytes in memory) and one indexed before previews were
kept (its file read in ranges).
"""

from __future__ import annotations

import binascii
import html
import itertools
import logging
import re
from collections.abc import Callable, Iterator

from .rfc822 import Tokenizer, parse_content_type, parse_disposition, parse_params
from .sections import LEAF, MULTIPART, RFC822, Node

log = logging.getLogger(__name__)

MAX_CHARS = 200
"""Characters of a preview (RFC 8970 3.3)."""
MAX_INPUT = 64 * 1024
"""Bytes of a part, as stored (encoded), that are decoded to make a preview."""
MAX_HEADER = 64 * 1024
"""Bytes of a part's header searched for its Content-Type and Content-Disposition."""
MAX_TRIES = 4
"""Parts tried, in order, until one gives some text."""

Reader = Callable[[int, int], bytes]
"""read(start, end): bytes [start, end) of the stored message."""

_HSTART, _BSTART, _BEND, _KIND, _CTYPE, _CTE, _CHILDREN = range(7)
# Human-readable types, and whether they are HTML.
_READABLE = {"text/plain": False, "text/html": True, "application/xhtml+xml": True}
_IDENTITY = frozenset({"7bit", "8bit", "binary", ""})
_CHARSET_NAME = re.compile(r"[A-Za-z0-9._:+-]{1,40}")
_ASCII_OR_UTF8 = frozenset({"us-ascii", "ascii", "utf-8", "utf8"})
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


# --- choosing the part -------------------------------------------------------------------


def _candidates(node: Node, message: bool) -> Iterator[tuple[Node, bool, bool]]:
    """Readable leaves as (node, is HTML, is a message's own body), in the order they
    are worth trying. *message*: *node* is a message (the top one, or one a
    message/rfc822 part holds), not a MIME part."""
    kind = node[_KIND]
    if kind == MULTIPART:
        if node[_CTYPE] == "multipart/alternative":
            # Plain text first, then the rest in order (a stable sort).
            found = [c for child in node[_CHILDREN] for c in _candidates(child, False)]
            yield from sorted(found, key=lambda c: c[1])
        else:
            for child in node[_CHILDREN]:
                yield from _candidates(child, False)
    elif kind == RFC822:
        for child in node[_CHILDREN]:
            yield from _candidates(child, True)
    elif kind == LEAF:
        is_html = _READABLE.get(node[_CTYPE])
        if is_html is not None:
            yield node, is_html, message


def make_preview(tree: Node, read: Reader) -> str:
    """The preview of the message whose MIME tree (see mime.sections) is *tree*; ""
    when it has no text to show. Raises only what *read* raises."""
    try:
        for node, is_html, message in itertools.islice(_candidates(tree, True), MAX_TRIES):
            text = _part_preview(node, is_html, message, read)
            if text:
                return text
    except OSError:
        raise  # the reader's: the caller's to handle
    except Exception:  # a bug must cost a preview, never a delivery
        log.exception("making a preview failed")
    return ""


def _part_preview(node: Node, is_html: bool, message: bool, read: Reader) -> str:
    hstart, bstart, bend = node[_HSTART], node[_BSTART], node[_BEND]
    charset, attachment = content_info(read(hstart, min(bstart, hstart + MAX_HEADER)), message)
    if attachment:
        return ""
    cte = node[_CTE]
    truncated = bend - bstart > MAX_INPUT
    data = decode_body(cte, read(bstart, min(bend, bstart + MAX_INPUT)))
    if data is None:
        return ""  # an encoding we cannot undo: no text to show
    text = to_text(data, charset, truncated)
    return html_preview(text) if is_html else plain_preview(text)


# --- a part's header ---------------------------------------------------------------------

_FIELD = re.compile(
    rb"(?im)^(content-type|content-disposition|mime-version)[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)"
)


def content_info(header: bytes, message: bool = False) -> tuple[str | None, bool]:
    """(charset, is an attachment) from a part's header block: its first Content-Type
    and Content-Disposition fields. The header of a *message* (not a MIME part) without
    MIME-Version or Content-Type has no Content-* fields that count, as the parser
    (mime.parse) and Dovecot read it."""
    fields: dict[bytes, bytes] = {}
    for m in _FIELD.finditer(header):
        fields.setdefault(m.group(1).lower(), m.group(2).replace(b"\r", b"").replace(b"\n", b""))
        if len(fields) == 3:
            break
    if message and b"mime-version" not in fields and b"content-type" not in fields:
        return None, False
    charset: str | None = None
    value = fields.get(b"content-type")
    if value is not None:
        tok = Tokenizer(value)
        if parse_content_type(tok)[2] >= 0:
            for key, val in parse_params(tok):
                if key.lower() == b"charset":
                    charset = val.decode("ascii", "replace")
                    break
    value = fields.get(b"content-disposition")
    disp = parse_disposition(value) if value is not None else None
    return charset, disp is not None and disp[0].lower() == b"attachment"


# --- decoding ----------------------------------------------------------------------------


def decode_body(cte: str, data: bytes) -> bytes | None:
    """Undo a Content-Transfer-Encoding, tolerating damage and a cut end (the data may
    be the first `MAX_INPUT` bytes of a part); None for an encoding we do not know."""
    if cte in _IDENTITY:
        return data
    if cte == "base64":
        # Whatever is not base64 goes, and what follows the padding. A last group of
        # two or three characters (padded, or cut) still holds whole octets.
        clean = _B64_JUNK.sub(b"", data.split(b"=", 1)[0])
        if len(clean) % 4 == 1:
            clean = clean[:-1]
        clean += b"=" * (-len(clean) % 4)
        try:
            return binascii.a2b_base64(clean)
        except (binascii.Error, ValueError):
            return b""
    if cte == "quoted-printable":
        return binascii.a2b_qp(data)
    return None


def to_text(data: bytes, charset: str | None, truncated: bool = False) -> str:
    """Decode text in *charset*; without a usable one, UTF-8 when it is that, else
    Latin-1. A character cut in two by *truncated* input is dropped."""
    name = charset.strip().lower() if charset else ""
    if name and name not in _ASCII_OR_UTF8 and _CHARSET_NAME.fullmatch(name):
        try:
            text = data.decode(name, "replace")  # refuses codecs that are not text
        except (LookupError, UnicodeError, ValueError):
            pass
        else:
            return text[:-1] if truncated and text.endswith("\ufffd") else text
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        if truncated and e.start >= len(data) - 3 and e.reason == "unexpected end of data":
            return data[: e.start].decode("utf-8")
    return data.decode("latin-1")


# --- text --------------------------------------------------------------------------------

# Control characters: shown as the space they stand between words.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x9f]")
# Never shown: byte order marks, soft hyphens, bidirectional overrides, lone surrogates.
_DROP = re.compile("[\u00ad\u034f\u202a-\u202e\u2066-\u2069\ufeff\ufff9-\ufffb\ud800-\udfff]")
# A "word" of nothing but zero-width characters: the padding of HTML mail.
_INVISIBLE = re.compile("[\u200b-\u200f\u2060-\u2064]+")


class _Words:
    """Collects visible words until there are enough for a preview."""

    __slots__ = ("words", "size")

    def __init__(self) -> None:
        self.words: list[str] = []
        self.size = -1

    def add(self, text: str) -> bool:
        """Take the words of *text*; False once the preview is full."""
        if _CONTROL.search(text):
            text = _CONTROL.sub(" ", text)
        if _DROP.search(text):
            text = _DROP.sub("", text)
        for word in text.split():
            if _INVISIBLE.fullmatch(word):
                continue
            self.words.append(word)
            self.size += len(word) + 1
            if self.size >= MAX_CHARS:
                return False
        return True

    def text(self) -> str:
        return " ".join(self.words)[:MAX_CHARS].rstrip()


def plain_preview(text: str) -> str:
    """The preview of plain text: quoted lines left out, whitespace collapsed."""
    words = _Words()
    for line in text.splitlines():
        if line.startswith(">"):
            continue
        if not words.add(line):
            break
    return words.text()


# Elements whose content is not shown text.
_HIDDEN = re.compile(r"<(script|style|title|template|xml)\b[^>]*>", re.IGNORECASE)
_CLOSE = {name: re.compile(rf"</{name}\s*>", re.IGNORECASE) for name in ("script", "style", "title", "template", "xml")}
_BLOCKQUOTE = re.compile(r"<(/?)blockquote\b[^>]*>", re.IGNORECASE)
_DECLARATION = re.compile(r"<[!?][^>]*>")  # <!DOCTYPE ...>, <?xml ...?>
_TAG_START = re.compile(r"<[A-Za-z/!?]")
# Elements inside a line of text: their tags break no word; any other tag does.
_INLINE = frozenset({
    "a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "del", "dfn", "em", "font",
    "i", "ins", "kbd", "mark", "q", "s", "samp", "small", "span", "strike", "strong", "sub",
    "sup", "time", "tt", "u", "var", "wbr",
})
_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9]*)[^>]*>")


def _tag_break(m: re.Match[str]) -> str:
    return "" if m.group(1).lower() in _INLINE else " "


def html_preview(markup: str) -> str:
    """The preview of HTML: the text a reader sees (no markup, comments, scripts or
    styles; entities decoded), quoted text (<blockquote>) left out.

    Every step moves forward through the text, and every tag looked at has a ">" after
    it (a tag the markup ends inside is cut off first, as a browser drops it), so hostile
    markup (unclosed comments, thousands of unclosed tags) costs time in proportion to
    its length."""
    text = _without_comments(markup)
    cut = _TAG_START.search(text, text.rfind(">") + 1)
    if cut is not None:
        text = text[: cut.start()]
    text = _DECLARATION.sub(" ", text)
    text = _without_hidden(text)
    text = _without_quotes(text)
    text = _TAG.sub(_tag_break, text)
    if "&" in text:
        text = html.unescape(text)
    words = _Words()
    words.add(text)
    return words.text()


def _without_comments(markup: str) -> str:
    if "<!--" not in markup:
        return markup
    out: list[str] = []
    pos = 0
    while True:
        start = markup.find("<!--", pos)
        if start < 0:
            out.append(markup[pos:])
            break
        out.append(markup[pos:start])
        end = markup.find("-->", start + 4)
        if end < 0:
            break  # a comment to the end
        pos = end + 3
    return "".join(out)


def _without_hidden(markup: str) -> str:
    out: list[str] = []
    pos = 0
    while (m := _HIDDEN.search(markup, pos)) is not None:
        out.append(markup[pos : m.start()])
        out.append(" ")
        pos = m.end()
        if m.group().endswith("/>"):
            continue
        close = _CLOSE[m.group(1).lower()].search(markup, pos)
        if close is None:
            return "".join(out)  # hidden to the end
        pos = close.end()
    out.append(markup[pos:])
    return "".join(out)


def _without_quotes(markup: str) -> str:
    out: list[str] = []
    pos = depth = 0
    for m in _BLOCKQUOTE.finditer(markup):
        if m.group(1):
            if depth:
                depth -= 1
                if not depth:
                    pos = m.end()
        elif not m.group().endswith("/>"):
            if not depth:
                out.append(markup[pos : m.start()])
                out.append(" ")
            depth += 1
    if not depth:
        out.append(markup[pos:])
    return "".join(out)
