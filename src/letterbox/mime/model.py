"""What the index keeps of a parsed message: computed once, at delivery or APPEND."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ParsedMessage:
    envelope: bytes
    """IMAP ENVELOPE (RFC 9051 7.5.2), serialized, parentheses included."""
    bodystructure: bytes
    """IMAP BODYSTRUCTURE with extension data, serialized, parentheses included."""
    body: bytes
    """IMAP BODY (BODYSTRUCTURE without extension data), serialized."""
    parts: str
    """JSON of the MIME tree with byte offsets, for BODY[section] without re-parsing."""
    header_size: int
    """Bytes of the top-level header, including the blank line that ends it."""
    sent_date: float | None
    """The Date: header as seconds since the epoch, or None when absent or unparsable."""
    subject: str
    from_: str
    to: str
    cc: str
    bcc: str
    """Decoded (RFC 2047) header text, casefolded, for index-only SEARCH."""
    message_id: str
    references: str = ""
    """Normalized IDs the message refers to, space-separated, for THREAD=REFERENCES
    (RFC 5256): those of References, else the first of In-Reply-To (see mime.msgid)."""
    emailid: str = ""
    """RFC 8474 EMAILID, a digest of the message's bytes (see mime.objectid); "" only
    for a ParsedMessage made by hand, which the store then indexes without one."""
    preview: str | None = None
    """RFC 8970 PREVIEW text (see mime.preview), "" for a message with nothing to show;
    None only for a ParsedMessage made by hand, whose preview is then made when asked."""
