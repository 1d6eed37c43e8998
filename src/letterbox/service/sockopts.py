"""TCP_QUICKACK: acknowledge the client's next bytes at once instead of on Linux's
delayed-ACK timer.

A client with Nagle's algorithm on (imaplib, most scripts) holds a small write until its
previous small write is acknowledged. When the server answers nothing to that previous
write because the command is not complete yet (a literal whose CRLF follows in a second
write, a SASL response), Linux delays the ACK up to 40 ms, and so the command. The flag is
not permanent: the kernel goes back to delaying once the server sends again, and even
between two reads, so it is set again after every read that leaves a command open.
"""

from __future__ import annotations

import socket
from typing import Any

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
_TCP = (socket.AF_INET, socket.AF_INET6)


def quickack(sock: Any) -> None:
    """Set TCP_QUICKACK on *sock* (a socket, asyncio's or uvloop's transport socket, or
    None). A no-op where the option does not exist: UNIX sockets, non-Linux systems, a
    socket already closed."""
    if _QUICKACK is None or sock is None or getattr(sock, "family", None) not in _TCP:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
    except (OSError, ValueError):
        pass
