"""PREVIEW text (RFC 8970 3): which part it comes from, how it is decoded and cleaned,
how long it may be, and that the work is bounded whatever the message."""

from __future__ import annotations

import base64
import quopri

import pytest

from letterbox.mime import parse_message
from letterbox.mime.preview import (
    MAX_CHARS,
    MAX_HEADER,
    MAX_INPUT,
    content_info,
    decode_body,
    html_preview,
    make_preview,
    plain_preview,
    to_text,
)
from letterbox.mime.sections import load_parts

from .mimeutil import corpus, corpus_names


def preview(raw: bytes) -> str:
    """The preview made at delivery; the one made later from the stored bytes (the path
    of messages indexed before previews were kept) must be the same."""
    parsed = parse_message(raw)
    assert parsed.preview is not None
    assert make_preview(load_parts(parsed.parts), lambda start, end: raw[start:end]) == parsed.preview
    return parsed.preview


def mime(*parts: bytes, subtype: str = "mixed", boundary: str = "b") -> bytes:
    out = f"MIME-Version: 1.0\r\nContent-Type: multipart/{subtype}; boundary={boundary}\r\n\r\n".encode()
    for part in parts:
        out += f"--{boundary}\r\n".encode() + part + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def part(ctype: str, body: bytes, *extra: str) -> bytes:
    head = f"Content-Type: {ctype}\r\n" + "".join(f"{e}\r\n" for e in extra)
    return head.encode() + b"\r\n" + body


# --- which part -------------------------------------------------------------------------


def test_a_plain_message() -> None:
    assert preview(b"Subject: hi\r\n\r\nHello,\r\n\r\nsee you at  noon.\r\n") == "Hello, see you at noon."
    # No Content-Type at all is text/plain (RFC 2045 5.2).
    assert preview(b"From: a@example.com\r\n\r\nJust text.") == "Just text."


def test_the_rfc_example_shape() -> None:
    """RFC 8970 5, Example 1: a preview of a long text is cut to the limit."""
    text = (
        b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n"
        b"Curabitur aliquam turpis et ante dictum, et pulvinar dui congue.\r\n"
        b"Maecenas hendrerit, lorem non imperdiet pellentesque, nulla\r\n"
        b"ligula nullam tortor, vel laoreet metus massa eget sem. Donec at leo.\r\n"
    )
    got = preview(b"Subject: lorem\r\n\r\n" + text)
    assert len(got) == MAX_CHARS == 200
    assert got.startswith("Lorem ipsum dolor sit amet, consectetur adipiscing elit. Curabitur aliquam")
    assert " ".join(text.decode().split()).startswith(got)


def test_alternative_prefers_plain_text_wherever_it_is() -> None:
    html_first = mime(
        part("text/html; charset=utf-8", b"<p>The <b>HTML</b> version</p>"),
        part("text/plain; charset=utf-8", b"The plain version"),
        subtype="alternative",
    )
    assert preview(html_first) == "The plain version"
    # An empty plain alternative: the HTML one is used.
    empty_plain = mime(
        part("text/plain", b"\r\n  \r\n"),
        part("text/html", b"<div>Only the HTML says something</div>"),
        subtype="alternative",
    )
    assert preview(empty_plain) == "Only the HTML says something"


def test_html_inside_related_inside_alternative() -> None:
    related = mime(
        part("text/html", b"<p>Look at <img src=cid:x>this picture</p>"),
        part("image/png", b"iVBORw0KGgo=", "Content-Transfer-Encoding: base64"),
        subtype="related",
        boundary="r",
    )
    msg = mime(related, subtype="alternative", boundary="a")
    assert preview(msg) == "Look at this picture"


def test_the_first_readable_part_of_a_mixed_message() -> None:
    msg = mime(
        part("application/pdf", b"%PDF-1.4", 'Content-Disposition: attachment; filename="a.pdf"'),
        part("text/plain", b"The body comes second here."),
        part("text/plain", b"A later part."),
    )
    assert preview(msg) == "The body comes second here."


def test_attachments_and_unreadable_parts_give_the_empty_preview() -> None:
    """RFC 8970 3.2: no meaningful text, a zero-length string."""
    only_attachments = mime(
        part("text/plain", b"notes.txt content", 'Content-Disposition: attachment; filename="notes.txt"'),
        part("image/jpeg", b"/9j/4AAQ", "Content-Transfer-Encoding: base64"),
    )
    assert preview(only_attachments) == ""
    encrypted = mime(
        part("application/pgp-encrypted", b"Version: 1"),
        part("application/octet-stream", b"-----BEGIN PGP MESSAGE-----\r\nhQEMA\r\n-----END PGP MESSAGE-----"),
        subtype='encrypted; protocol="application/pgp-encrypted"',
    )
    assert preview(encrypted) == ""
    assert preview(b"Content-Type: image/gif\r\nMIME-Version: 1.0\r\n\r\nGIF89a") == ""
    assert preview(b"Subject: nothing\r\n\r\n") == ""
    assert preview(b"") == ""
    # A calendar or a CSV file is text, but not for reading.
    assert preview(b"MIME-Version: 1.0\r\nContent-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR\r\n") == ""


def test_a_forwarded_message_shows_its_own_text() -> None:
    inner = b"Subject: inner\r\nContent-Type: text/plain\r\n\r\nThe forwarded words.\r\n"
    assert preview(b"MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n" + inner) == "The forwarded words."
    msg = mime(part("message/rfc822", inner))
    assert preview(msg) == "The forwarded words."


def test_signed_messages_show_their_content() -> None:
    msg = mime(
        part("text/plain; charset=us-ascii", b"Signed words."),
        part("application/pgp-signature", b"-----BEGIN PGP SIGNATURE-----"),
        subtype='signed; protocol="application/pgp-signature"; micalg=pgp-sha256',
    )
    assert preview(msg) == "Signed words."


def test_only_a_few_parts_are_tried() -> None:
    quoted = part("text/plain", b"> only quoted")
    late = part("text/plain", b"Too far.")
    assert preview(mime(quoted, quoted, quoted, part("text/plain", b"Fourth."))) == "Fourth."
    assert preview(mime(quoted, quoted, quoted, quoted, late)) == ""


def test_content_fields_of_a_message_without_mime_version_mean_nothing() -> None:
    """As the parser reads it (and Dovecot): without MIME-Version or Content-Type, the
    message is plain text, whatever other Content-* fields say."""
    raw = b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment\r\n\r\naGVsbG8K\r\n"
    assert preview(raw) == "aGVsbG8K"
    assert content_info(raw, message=True) == (None, False)
    assert content_info(b"Content-Disposition: attachment\r\n\r\n") == (None, True)
    mime_raw = b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8K\r\n"
    assert preview(mime_raw) == "hello"


# --- decoding ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("charset", "text"),
    [
        ("utf-8", "Grüße aus Köln — schön!"),
        ("iso-8859-1", "Voilà, ça marche."),
        ("windows-1252", "“Quoted” – and €5"),
        ("koi8-r", "Привет, мир"),
        ("shift_jis", "こんにちは世界"),
        ("iso-8859-7", "Καλημέρα"),
    ],
)
@pytest.mark.parametrize("cte", ["8bit", "base64", "quoted-printable"])
def test_transfer_encodings_and_charsets(charset: str, text: str, cte: str) -> None:
    data = text.encode(charset) + b"\r\n"
    if cte == "base64":
        body = base64.encodebytes(data)
    elif cte == "quoted-printable":
        body = quopri.encodestring(data)
    else:
        body = data
    raw = (
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"{charset}\"\r\n"
        f"Content-Transfer-Encoding: {cte}\r\n\r\n"
    ).encode() + body
    assert preview(raw) == text


def test_charsets_that_are_missing_unknown_or_not_text() -> None:
    utf8 = "naïve café".encode()
    latin1 = "naïve café".encode("latin-1")
    for charset in ("", "; charset=x-unknown", "; charset=us-ascii", "; charset=zlib",
                    "; charset=rot13", "; charset=base64", "; charset=idna", "; charset=\"../../etc\""):
        for data in (utf8, latin1):
            raw = f"MIME-Version: 1.0\r\nContent-Type: text/plain{charset}\r\n\r\n".encode() + data
            assert preview(raw) == "naïve café", (charset, data)


def test_cut_input_decodes_cleanly() -> None:
    assert to_text(b"ab\xc3", None, truncated=True) == "ab"
    assert to_text(b"ab\xc3", None) == "ab\xc3".encode("latin-1").decode("latin-1")
    assert to_text("ab€".encode("utf-16-le")[:-1], "utf-16-le", truncated=True) == "ab"
    assert decode_body("base64", b"aGVsbG8gd29y") == b"hello wor"
    assert decode_body("base64", b"aGVsbG8gd29yb") == b"hello wor"  # a group cut short
    assert decode_body("base64", b"aGVsbG8gd29ybA") == b"hello worl"
    assert decode_body("base64", b"aGVs\r\nbG8=\r\n!!junk") == b"hello"
    # A cut escape stays as it is; soft line breaks go.
    assert decode_body("quoted-printable", b"caf=C3=A9 =\r\nnext=C3=A") == b"caf\xc3\xa9 next\xc3=A"
    assert decode_body("x-uuencode", b"begin 644 x") is None
    assert decode_body("7bit", b"as is") == b"as is"


# --- the text ---------------------------------------------------------------------------


def test_plain_text_cleanup() -> None:
    assert plain_preview("line1\n>quote2\n> quote3\n > not a quote\n\n \t\t \nline5\n \t ") == (
        "line1 > not a quote line5"
    )
    assert plain_preview("> all\n>> of it\n> quoted") == ""
    # Non-breaking and other Unicode spaces are whitespace too.
    assert plain_preview("a\u00a0\u00a0b\u2003c\u2028d") == "a b c d"
    # Controls stand between words; invisible format characters go.
    assert plain_preview("null\x00byte esc\x1b[0m \ufeffbom soft\u00adhyphen \u202eevil") == (
        "null byte esc [0m bom softhyphen evil"
    )


def test_length_is_counted_in_characters() -> None:
    """RFC 8970 3.3: preview characters, not octets; never more than 256."""
    for word in ("é", "世界", "😀", "a"):
        got = plain_preview((word * 7 + " ") * 100)
        assert 0 < len(got) <= MAX_CHARS <= 256
        assert not got.endswith(" ")
        assert got == (" ".join([word * 7] * 100))[:MAX_CHARS].rstrip()
    one_word = plain_preview("x" * 100_000)
    assert one_word == "x" * MAX_CHARS


def test_html_to_text() -> None:
    page = (
        "<!DOCTYPE html><html><head><title>Newsletter</title>"
        "<style>p { color: red } /* <p>not text</p> */</style>"
        "<script>document.write('<p>no</p>')</script></head>"
        "<body><!-- a comment <p>hidden</p> -->"
        "<p>Dear <b>Ann</b>,</p><p>Tom&nbsp;&amp;&#160;Jerry&#x21; caf&eacute;</p>"
        "<table><tr><td>one</td><td>two</td></tr></table>"
        "<ul><li>first<li>second</ul>Hel<span>lo</span><br>World"
        "<blockquote>quoted <blockquote>nested</blockquote> still quoted</blockquote>after"
        "</body></html>"
    )
    assert html_preview(page) == "Dear Ann, Tom & Jerry! café one two first second Hello World after"


def test_html_only_message_in_quoted_printable() -> None:
    body = quopri.encodestring(
        "<html><body><div dir=\"auto\">Ça va? Let&#39;s meet at <a href=\"https://example.com/x?a=1&amp;b=2\">the café</a>"
        "</div><div class=\"gmail_quote\"><blockquote>Old stuff</blockquote></div></body></html>".encode()
    )
    raw = (
        b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=UTF-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + body
    )
    assert preview(raw) == "Ça va? Let's meet at the café"


def test_html_padding_of_invisible_characters_is_dropped() -> None:
    padded = "<div>" + "&zwnj;&nbsp;" * 150 + "</div><p>The real text</p>"
    assert html_preview(padded) == "The real text"
    # Zero-width joiners inside words stay: they are part of the text.
    assert html_preview("<p>a\u200db</p>") == "a\u200db"


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("text <!-- never closed <p>x</p>", "text"),
        ("text <style> never closed", "text"),
        ("one <blockquote> never closed", "one"),
        ("a < b and c > d", "a < b and c > d"),
        ("<" * 5000 + "x", "<" * MAX_CHARS),
        ("<a" * 5000 + ">word", "word"),
        ("<p" * 3000 + " x", ""),
        ("<!--" * 3000 + "-->end", "end"),
        ("<b>a</b>" * 5000, "a" * MAX_CHARS),
        ("&amp;" * 5000, "&" * MAX_CHARS),
        ("<script/>shown", "shown"),
        ("<title>t</title><TITLE>T</TITLE >x", "x"),
    ],
)
def test_hostile_or_broken_html(markup: str, expected: str) -> None:
    assert html_preview(markup) == expected


# --- bounds -----------------------------------------------------------------------------


class Recorder:
    """A reader over *raw* that remembers the ranges read."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.ranges: list[tuple[int, int]] = []

    def __call__(self, start: int, end: int) -> bytes:
        self.ranges.append((start, end))
        return self.raw[start:end]

    @property
    def total(self) -> int:
        return sum(end - start for start, end in self.ranges)


@pytest.mark.parametrize("cte", ["8bit", "base64", "quoted-printable"])
def test_a_huge_part_is_read_only_in_part(cte: str) -> None:
    text = b"".join(b"Line %d of a very long message.\r\n" % i for i in range(200_000))  # ~6 MB
    body = base64.encodebytes(text) if cte == "base64" else quopri.encodestring(text) if cte != "8bit" else text
    raw = (
        f"MIME-Version: 1.0\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: {cte}\r\n\r\n".encode()
        + body
    )
    parsed = parse_message(raw)
    assert parsed.preview is not None and parsed.preview.startswith("Line 0 of a very long message. Line 1 of")
    reader = Recorder(raw)
    assert make_preview(load_parts(parsed.parts), reader) == parsed.preview
    assert reader.total <= parsed.header_size + MAX_INPUT
    assert all(end - start <= max(MAX_INPUT, MAX_HEADER) for start, end in reader.ranges)


def test_many_empty_parts_are_not_all_read() -> None:
    msg = mime(*[part("text/plain", b"> quoted only") for _ in range(5000)])
    reader = Recorder(msg)
    parsed = parse_message(msg)
    assert make_preview(load_parts(parsed.parts), reader) == parsed.preview == ""
    assert len(reader.ranges) <= 8  # four parts tried: a header and a body each


def test_a_huge_header_is_read_only_in_part() -> None:
    raw = b"X-Filler: " + b"y" * 200_000 + b"\r\nContent-Type: text/plain\r\n\r\nBody."
    reader = Recorder(raw)
    parsed = parse_message(raw)
    assert make_preview(load_parts(parsed.parts), reader) == "Body."
    assert reader.total <= MAX_HEADER + len(b"Body.")


# --- the corpus -------------------------------------------------------------------------


@pytest.mark.parametrize("name", corpus_names())
def test_corpus_previews_are_clean(name: str) -> None:
    got = preview(corpus(name))
    assert len(got) <= MAX_CHARS
    assert got == got.strip() and "  " not in got
    assert not any(ch < " " or "\x7f" <= ch <= "\x9f" for ch in got), got
    got.encode("utf-8")  # no lone surrogates


def test_corpus_previews() -> None:
    assert preview(corpus("02-multipart-alternative.eml")) == "Great offers this week: 20% off € items. Soft line break here."
    assert preview(corpus("05-message-rfc822-multipart.eml")) == "See the forwarded message."
    assert preview(corpus("09-8bit-utf8-headers.eml")) == "Hallo Zoë, schöne Grüße!"
    assert preview(corpus("10-8bit-latin1-headers.eml")) == "Voilà le compte-rendu."
    assert preview(corpus("15-bare-lf.eml")) == "line one line two"
