"""CATENATE (RFC 4469): a message made of literal text and parts of the user's messages.

Every URL is resolved first, from the index alone, so a bad one ([BADURL]) or a total
over the APPEND limit ([TOOBIG]) costs no reading. The message is then put together in
a spool file when it is big, a piece of at most CHUNK octets in memory at a time, and is
loaded for the store like any spooled APPEND (`Spooler.loaded`, a few at a time
server-wide). Octets are copied as FETCH BODY[...] would return them, unconverted, and
reading them sets no \\Seen (3). A URL may name another account's shared mailbox, as
the user names it (Shared/<owner>/...): reading a message there needs "r" (RFC 4314 4),
as FETCH does; one the user may not see is "no such mailbox".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ..mime.headers import get_header_fields, get_header_fields_not
from ..mime.sections import load_parts
from ..spool import SPOOL_MIN, Spool
from ..store.api import CHUNK, AccountStore, FetchField, MailboxNotFound, MessageGone
from . import grammar as g
from . import imapurl
from .access import resolve
from .fetch import section_range
from .session import IMAPSession


class BadURL(Exception):
    def __init__(self, url: bytes, why: str) -> None:
        super().__init__(why)
        self.url = url.decode("utf-8", "replace")

    @property
    def code(self) -> str:
        return "BADURL " + imapurl.shown(self.url)


class TooBig(Exception):
    pass


@dataclass(slots=True)
class _Range:
    """Octets [start, end) of a stored message."""

    url: bytes
    store: AccountStore
    mailbox_id: int
    uid: int
    start: int
    end: int


Piece = bytes | g.Spooled | _Range


async def assemble(s: IMAPSession, parts: tuple[g.CatPart, ...], limit: int) -> bytes | Spool:
    """The message *parts* make, at most *limit* octets; raises BadURL or TooBig (or a
    StoreError)."""
    pieces: list[Piece] = []
    total = 0
    for part in parts:
        piece = part.data if isinstance(part, g.CatText) else await _resolve(s, part.url)
        pieces.append(piece)
        total += piece.end - piece.start if isinstance(piece, _Range) else len(piece)
        if total > limit:
            raise TooBig(f"The message would be larger than {limit} octets")
    if total < SPOOL_MIN:
        return b"".join([chunk for piece in pieces async for chunk in _chunks(s, piece)])
    spool = s.ctx.spooler.new()
    try:
        for piece in pieces:
            async for chunk in _chunks(s, piece):
                spool.write(chunk)
                await asyncio.sleep(0)  # other sessions run between two pieces
    except BaseException:
        spool.close()
        raise
    return spool


async def _resolve(s: IMAPSession, raw: bytes) -> bytes | _Range:
    """Where the octets *raw* names are (or, for HEADER.FIELDS, the octets)."""
    assert s.user is not None
    try:
        url = raw.decode("utf-8")
        ref = imapurl.parse(url, s.user, s.ctx.hostname, s.view is not None)
    except (UnicodeDecodeError, imapurl.BadURL) as e:
        raise BadURL(raw, str(e)) from None
    if ref.mailbox is None:
        assert s.view is not None
        mailbox, store = s.view.mailbox, s.view.store
    else:
        place = await resolve(s, ref.mailbox)
        if not place.visible:
            raise BadURL(raw, "no such mailbox")
        if not place.may("r"):
            raise BadURL(raw, "reading that mailbox needs the r right")
        store = place.account()
        try:
            mailbox = await store.get_mailbox(place.name)
        except MailboxNotFound:
            raise BadURL(raw, "no such mailbox") from None
    if ref.uidvalidity is not None and ref.uidvalidity != mailbox.uidvalidity:
        raise BadURL(raw, "the mailbox's UIDVALIDITY has changed")
    fields: list[FetchField] = ["size", "header_size"]
    if ref.section is not None and ref.section.part:
        fields.append("parts")
    recs = await store.fetch(mailbox.id, [ref.uid], fields)
    if not recs:
        raise BadURL(raw, "no such message")
    rec = recs[0]
    section = ref.section or g.Section()
    tree = load_parts(rec.parts) if rec.parts else None
    span = section_range(tree, rec, section)
    if span is None:
        raise BadURL(raw, "no such part")
    start, end = span
    if section.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        try:
            header = await store.read_range(mailbox.id, ref.uid, start, end - start)
        except MessageGone:
            raise BadURL(raw, "the message was expunged") from None
        names = [h.encode("ascii") for h in section.headers]
        pick = get_header_fields if section.text == "HEADER.FIELDS" else get_header_fields_not
        data = pick(header, names)
        return data[ref.partial[0] : _stop(ref.partial)] if ref.partial is not None else data
    if ref.partial is not None:
        offset, length = ref.partial
        start = min(start + offset, end)
        if length is not None:
            end = min(start + length, end)
    return _Range(raw, store, mailbox.id, ref.uid, start, end)


def _stop(partial: tuple[int, int | None]) -> int | None:
    offset, length = partial
    return None if length is None else offset + length


async def _chunks(s: IMAPSession, piece: Piece) -> AsyncIterator[bytes]:
    if isinstance(piece, bytes):
        yield piece
    elif isinstance(piece, g.Spooled):
        sink = piece.sink
        assert isinstance(sink, Spool)  # the session's spooler makes them
        for chunk in sink.pieces(CHUNK):
            yield chunk
    elif piece.end > piece.start:
        try:
            async with piece.store.read_chunks(piece.mailbox_id, piece.uid, piece.start, piece.end - piece.start) as it:
                async for chunk in it:
                    yield chunk
        except MessageGone:
            raise BadURL(piece.url, "the message was expunged") from None
