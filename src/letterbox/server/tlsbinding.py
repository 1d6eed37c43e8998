"""TLS channel binding for SCRAM-SHA-256-PLUS: the `tls-exporter` value (RFC 9266).

RFC 9266 section 2: 32 bytes from the TLS exporter (RFC 8446 section 7.5) with the
label "EXPORTER-Channel-Binding" and an empty context. Python's ssl module exposes only
`tls-unique`, which TLS 1.3 does not define, so the exporter is called in the libssl
that the ssl module itself runs on, through ctypes.

That needs the `SSL *` inside the ssl object, which CPython keeps right after the
object header and the socket reference. Nothing is assumed blindly: the value is used
only on CPython, with the same OpenSSL build that `ssl` reports, and only when libssl,
asked through that pointer, names the same protocol version as the ssl object does.
Anything else gives None, and the server then simply does not offer -PLUS.

Offered on TLS 1.3 only: on TLS 1.2 the exporter is unsafe without the extended master
secret (RFC 9266 section 3), which Python cannot check.
"""

from __future__ import annotations

import ctypes
import logging
import ssl
import sys
from functools import cache

log = logging.getLogger(__name__)

LABEL = b"EXPORTER-Channel-Binding"
LENGTH = 32


class _LibSSL:
    def __init__(self, lib: ctypes.CDLL) -> None:
        self.export = lib.SSL_export_keying_material
        self.export.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int,
        ]
        self.export.restype = ctypes.c_int
        self.version = lib.SSL_get_version
        self.version.argtypes = [ctypes.c_void_p]
        self.version.restype = ctypes.c_char_p


@cache
def _libssl() -> _LibSSL | None:
    """The libssl the ssl module is linked with, found among the loaded libraries."""
    if sys.implementation.name != "cpython" or sys.getsizeof(object()) != 2 * ctypes.sizeof(ctypes.c_void_p):
        return None  # another interpreter, or a header of another size (a debug build)
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split()[-1] for line in maps if "libssl" in line and "/" in line}
    except OSError:
        return None
    if len(paths) != 1:
        return None
    try:
        lib = ctypes.CDLL(paths.pop())
        version = lib.OpenSSL_version
        version.argtypes = [ctypes.c_int]
        version.restype = ctypes.c_char_p
        if version(0).decode() != ssl.OPENSSL_VERSION:
            return None
        return _LibSSL(lib)
    except (OSError, AttributeError, UnicodeDecodeError):
        return None


def tls_exporter(ssl_object: object) -> bytes | None:
    """RFC 9266 `tls-exporter` data of the TLS 1.3 session behind *ssl_object* (an
    ssl.SSLObject or ssl.SSLSocket), or None where it cannot be had safely."""
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket) or ssl_object.version() != "TLSv1.3":
        return None
    lib = _libssl()
    inner = getattr(ssl_object, "_sslobj", None)
    if lib is None or type(inner).__name__ != "_SSLSocket":
        return None
    # PySSLSocket: PyObject_HEAD, PyObject *Socket, SSL *ssl.
    pointer = ctypes.c_void_p.from_address(id(inner) + 3 * ctypes.sizeof(ctypes.c_void_p)).value
    if not pointer or lib.version(pointer) != b"TLSv1.3":
        return None
    out = ctypes.create_string_buffer(LENGTH)
    if lib.export(pointer, out, LENGTH, LABEL, len(LABEL), b"", 0, 0) != 1:
        log.warning("the TLS exporter failed; SCRAM-SHA-256-PLUS is not offered on this connection")
        return None
    return out.raw
