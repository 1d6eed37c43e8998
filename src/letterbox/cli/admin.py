"""Helpers for CLI commands that change accounts: open the directory, poke the server."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from ..auth.directory import Directory, DirectoryError
from ..config import Settings
from ..server.control import send_command
from ..store.api import Usage
from ..store.maildir.backend import MaildirStore
from .common import fail, settings_from


@contextmanager
def directory(ctx: click.Context) -> Iterator[tuple[Settings, Directory]]:
    settings = settings_from(ctx)
    d = Directory(settings.data_dir / "accounts.sqlite")
    try:
        yield settings, d
    except DirectoryError as e:
        fail(str(e))
    finally:
        d.close()


def poke(settings: Settings) -> dict[str, Any] | None:
    """Tell a running server to apply directory changes now (None: no server running)."""
    return send_command(settings.run_dir, {"cmd": "reload"})


def usage_of(settings: Settings, addresses: list[str]) -> dict[str, Usage]:
    store = MaildirStore(settings.data_dir / "mail")

    async def collect() -> dict[str, Usage]:
        out = {}
        for a in addresses:
            out[a] = await (await store.account(a)).usage()
        await store.close()
        return out

    return asyncio.run(collect())


def read_password(prompt: bool, stdin: bool) -> str:
    """From a hidden prompt (asked twice) or one line of stdin; never from argv."""
    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        fail("the password may not be empty")
    if len(password) > 1024:
        fail("the password is longer than 1024 characters")
    return password


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
