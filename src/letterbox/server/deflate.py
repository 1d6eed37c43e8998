"""COMPRESS=DEFLATE (RFC 4978): raw deflate in both directions of a connection.

Output is flushed (Z_SYNC_FLUSH) at the end of every write, so no response waits in the
compressor for more to come: a client that sent a command gets its whole answer, and
an IDLE client its EXISTS, at once. Input is inflated a bounded piece at a time, so a
few bytes that inflate to gigabytes cost no more memory than plain input would.
"""

from __future__ import annotations

import zlib

PIECE = 64 * 1024
"""Most bytes one `inflate` call returns."""
# A smaller window and memory level than zlib's defaults keep the compressor's state
# about 64 KB per connection instead of about 260 KB; the stream stays plain deflate.
_WBITS = -13
_MEM_LEVEL = 6
_LEVEL = 6


class DeflateError(Exception):
    """The client's compressed stream is corrupt."""


class Deflate:
    def __init__(self) -> None:
        self._out = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS, _MEM_LEVEL)
        self._in = zlib.decompressobj(-15)  # the client may use any window
        self.raw_in = self.raw_out = self.plain_in = self.plain_out = 0

    def deflate(self, data: bytes) -> bytes:
        out = self._out.compress(data) + self._out.flush(zlib.Z_SYNC_FLUSH)
        self.plain_out += len(data)
        self.raw_out += len(out)
        return out

    def inflate(self, data: bytes = b"") -> bytes:
        """Plain bytes from *data* and what earlier calls left; at most PIECE of them.
        Call again with no data while `pending` to get the rest."""
        self.raw_in += len(data)
        try:
            out = self._in.decompress(self._in.unconsumed_tail + data, PIECE)
        except zlib.error as e:
            raise DeflateError(str(e)) from e
        self.plain_in += len(out)
        return out

    @property
    def pending(self) -> bool:
        """Input is left that the last `inflate` did not turn into output yet."""
        return bool(self._in.unconsumed_tail)
