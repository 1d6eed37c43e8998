"""SASL mechanism decoding (PLAIN per RFC 4616, LOGIN as clients send it)."""

from __future__ import annotations

import base64
import binascii


class SASLError(Exception):
    pass


def b64decode(data: bytes) -> bytes:
    try:
        return base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SASLError("invalid base64") from None


def decode_plain(data: bytes) -> tuple[str, str]:
    """RFC 4616: [authzid] NUL authcid NUL passwd. Returns (user, password).

    Acting as another user (an authzid different from the authcid) is not supported.
    """
    raw = b64decode(data)
    parts = raw.split(b"\0")
    if len(parts) != 3:
        raise SASLError("malformed PLAIN response")
    authzid, authcid, passwd = parts
    try:
        user = authcid.decode("utf-8")
        password = passwd.decode("utf-8")
        authz = authzid.decode("utf-8")
    except UnicodeDecodeError:
        raise SASLError("PLAIN response is not UTF-8") from None
    if authz and authz.lower() != user.lower():
        raise SASLError("authorization identity differs from authentication identity")
    return user, password
