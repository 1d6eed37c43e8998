"""Message bodies as content-addressed blobs: one row per distinct content (sha256 of the
exact bytes), shared by every copy and every recipient of one delivery, with the parse
FETCH and SEARCH read (a function of the bytes, so it is stored once with them).

The bytes are kept in pieces of api.CHUNK, each compressed with zstd on its own (or kept
as they are when that does not pay), so a range or a stream reads only its pieces and
the bytes come back exactly as delivered. See migrations/0001 for how refs keep a blob
alive while a message refers to it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from typing import Any

import zstandard

from ...mime import ParsedMessage
from ...mime.objectid import email_id_of
from ..api import CHUNK, StoreError

LEVEL = 1
"""zstd level: text compresses nearly as well as at the default 3, at half the CPU (each
delivery and APPEND pays it; reading back costs the same at any level)."""
_THREAD = 1024 * 1024
"""Messages from this size up are compressed and hashed in a worker thread."""


class Prepared:
    """A message ready to store: its digest and its compressed pieces."""

    __slots__ = ("sha", "size", "pieces", "emailid")

    def __init__(self, sha: bytes, size: int, pieces: list[tuple[bool, bytes]], emailid: str) -> None:
        self.sha = sha
        self.size = size
        self.pieces = pieces
        self.emailid = emailid


def _prepare(data: bytes, emailid: str) -> Prepared:
    comp = zstandard.ZstdCompressor(level=LEVEL)
    pieces = []
    for start in range(0, max(len(data), 1), CHUNK):
        raw = data[start : start + CHUNK]
        packed = comp.compress(raw)
        pieces.append((True, packed) if len(packed) < len(raw) else (False, raw))
    if not emailid:
        emailid = email_id_of(iter([data]))
    return Prepared(hashlib.sha256(data).digest(), len(data), pieces, emailid)


async def prepare(data: bytes, parsed: ParsedMessage) -> Prepared:
    """Hash and compress outside any transaction (a big message in a thread)."""
    if len(data) >= _THREAD:
        return await asyncio.to_thread(_prepare, data, parsed.emailid)
    return _prepare(data, parsed.emailid)


async def put(conn: Any, blob: Prepared, p: ParsedMessage) -> None:
    """Inside the caller's transaction: make sure the blob exists, and hold its row lock
    until commit (a concurrent last expunge of the same content cannot delete it before
    this message's row refers to it). The pieces are written only by the first."""
    inserted = await conn.fetchval(
        "INSERT INTO blobs (sha, size, chunks, header_size, envelope, body, bodystructure, parts,"
        " emailid, preview, sent_date, subject, from_, to_, cc, bcc, message_id, refs_ids)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        " ON CONFLICT (sha) DO UPDATE SET refs = blobs.refs RETURNING xmax = 0",
        blob.sha, blob.size, len(blob.pieces), p.header_size, p.envelope, p.body, p.bodystructure,
        p.parts, blob.emailid, p.preview, p.sent_date, p.subject, p.from_, p.to, p.cc, p.bcc,
        p.message_id, p.references,
    )
    if inserted:
        await conn.executemany(
            "INSERT INTO blob_chunks (sha, seq, zstd, data) VALUES ($1, $2, $3, $4)",
            [(blob.sha, i, z, d) for i, (z, d) in enumerate(blob.pieces)],
        )


_dctx = zstandard.ZstdDecompressor()


def unpack(zstd: bool, data: bytes) -> bytes:
    return _dctx.decompress(data, max_output_size=CHUNK) if zstd else bytes(data)


def pieces_for(start: int, length: int) -> tuple[int, int]:
    """The piece numbers [first, last] a byte range needs (length > 0)."""
    return start // CHUNK, (start + length - 1) // CHUNK


def cut(pieces: Iterator[tuple[int, bytes]], start: int, length: int) -> Iterator[bytes]:
    """The bytes [start, start+length) of pieces given as (seq, bytes), in order."""
    end = start + length
    for seq, raw in pieces:
        base = seq * CHUNK
        lo, hi = max(start, base) - base, min(end, base + len(raw)) - base
        if hi > lo:
            yield raw[lo:hi]


async def read_message(conn: Any, mailbox_id: int, uid: int, start: int = 0, length: int | None = None) -> bytes | None:
    """Bytes [start, start+length) of a message (whole by default), clipped to its size,
    read with its index row in one statement; None when the message is not there."""
    if length is not None and length <= 0:
        first, last = 0, -1
    else:
        first, last = pieces_for(start, length) if length is not None else (start // CHUNK, 2**31 - 1)
    rows = await conn.fetch(
        "SELECT m.size, c.seq, c.zstd, c.data FROM messages m LEFT JOIN blob_chunks c"
        " ON c.sha = m.blob AND c.seq BETWEEN $3 AND $4 WHERE m.mailbox_id = $1 AND m.uid = $2 ORDER BY c.seq",
        mailbox_id, uid, first, last,
    )
    if not rows:
        return None
    size = int(rows[0][0])
    length = max(0, min(size - start if length is None else length, size - start))
    if length <= 0:
        return b""
    first, last = pieces_for(start, length)
    if [r[1] for r in rows[: last - first + 1]] != list(range(first, last + 1)):
        raise StoreError("message content is incomplete in the store")
    pieces = rows[: last - first + 1]

    def join() -> bytes:
        return b"".join(cut(((r[1], unpack(r[2], r[3])) for r in pieces), start, length))

    return await asyncio.to_thread(join) if length >= _THREAD else join()


async def read(conn: Any, sha: bytes, size: int, start: int = 0, length: int | None = None) -> bytes:
    """Bytes [start, start+length) of a blob (whole by default), clipped to its size."""
    if length is None:
        length = size - start
    length = max(0, min(length, size - start))
    if length <= 0:
        return b""
    first, last = pieces_for(start, length)
    rows = await conn.fetch(
        "SELECT seq, zstd, data FROM blob_chunks WHERE sha = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
        sha, first, last,
    )
    if len(rows) != last - first + 1:
        raise StoreError("message content is incomplete in the store")

    def join() -> bytes:
        return b"".join(cut(((r[0], unpack(r[1], r[2])) for r in rows), start, length))

    return await asyncio.to_thread(join) if length >= _THREAD else join()
