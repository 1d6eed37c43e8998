"""Mailbox name encodings: modified UTF-7 (RFC 3501 5.1.3) and UTF-8 (RFC 9051, 6855).

IMAP4rev1 clients send and expect modified UTF-7; after ENABLE IMAP4rev2 or
UTF8=ACCEPT names are plain UTF-8 and "&" has no special meaning.
"""

from __future__ import annotations

import base64
import re

_ENCODE_RUN = re.compile(r"[^\x20-\x7e]+|&")
_SHIFT = re.compile(rb"&([A-Za-z0-9+,]*)-")
_PRINTABLE = re.compile(rb"[\x20-\x7e]*\Z")


class MUTF7Error(ValueError):
    pass


def _encode_run(m: re.Match[str]) -> str:
    run = m.group()
    if run == "&":
        return "&-"
    data = base64.b64encode(run.encode("utf-16-be")).rstrip(b"=").replace(b"/", b",")
    return "&" + data.decode("ascii") + "-"


def encode(name: str) -> bytes:
    """Modified UTF-7 form of ``name``; raises MUTF7Error for lone surrogates."""
    try:
        return _ENCODE_RUN.sub(_encode_run, name).encode("ascii")
    except UnicodeEncodeError as exc:
        raise MUTF7Error(f"cannot encode mailbox name: {exc}") from None


def decode(data: bytes, *, strict: bool = True) -> str:
    """Decode a modified UTF-7 name; raises MUTF7Error when malformed.

    ``strict`` also refuses non-canonical forms (superfluous shifts, printable ASCII in
    base64, stray padding bits), which RFC 3501 asks servers to verify on CREATE.
    """
    if _PRINTABLE.match(data) is None:
        raise MUTF7Error("mailbox name has octets outside printable US-ASCII")
    if b"&" not in data:
        return data.decode("ascii")
    out = []
    pos = 0
    while True:
        amp = data.find(b"&", pos)
        if amp < 0:
            out.append(data[pos:].decode("ascii"))
            break
        out.append(data[pos:amp].decode("ascii"))
        m = _SHIFT.match(data, amp)
        if m is None:
            raise MUTF7Error("unterminated or invalid modified base64")
        chunk = m.group(1)
        if not chunk:
            out.append("&")
        else:
            raw = chunk.replace(b",", b"/")
            raw += b"=" * (-len(raw) % 4)
            try:
                out.append(base64.b64decode(raw, validate=True).decode("utf-16-be"))
            except ValueError:
                raise MUTF7Error("invalid modified base64") from None
        pos = m.end()
    name = "".join(out)
    if strict and encode(name) != data:
        raise MUTF7Error("non-canonical modified UTF-7")
    return name


def decode_mailbox_name(raw: bytes, *, utf8: bool) -> str:
    """A mailbox name as received, for a session in UTF-8 mode or not."""
    if utf8:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MUTF7Error("mailbox name is not valid UTF-8") from None
    return decode(raw)


def encode_mailbox_name(name: str, *, utf8: bool) -> bytes:
    """A mailbox name to send, for a session in UTF-8 mode or not."""
    return name.encode("utf-8", "surrogatepass") if utf8 else encode(name)
