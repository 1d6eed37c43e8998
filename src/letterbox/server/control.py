"""The control socket: how the CLI tells a running server that something changed.

One JSON object per line each way over a UNIX socket in run_dir. The CLI always writes
its change to the directory first, so a server that is not running loses nothing; the
poke only makes the change take effect at once instead of within a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("letterbox.control")

SOCKET_NAME = "control.sock"

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def send_command(run_dir: Path, cmd: dict[str, Any], timeout: float = 5.0) -> dict[str, Any] | None:
    """Send one command to a running server; None when no server is listening."""
    path = run_dir / SOCKET_NAME
    if not path.exists():
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall(json.dumps(cmd).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except OSError:
        return None
    try:
        reply = json.loads(buf)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None


async def serve(run_dir: Path, handler: Handler) -> asyncio.Server:
    path = run_dir / SOCKET_NAME
    path.unlink(missing_ok=True)

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=10)
            try:
                cmd = json.loads(line)
                if not isinstance(cmd, dict):
                    raise ValueError("not an object")
                reply = await handler(cmd)
            except ValueError as e:
                reply = {"ok": False, "error": f"bad control command: {e}"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (OSError, TimeoutError) as e:
            log.debug("control client: %s", e)
        finally:
            writer.close()

    server = await asyncio.start_unix_server(on_client, path=str(path))
    path.chmod(0o600)
    return server
