"""Helpers for CLI commands that change accounts: open the directory, poke the server."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from .. import datalock
from ..auth.audit import cli_user
from ..auth.directory import Account, Directory, DirectoryError, DirectoryUnavailable
from ..auth.factory import open_directory
from ..config import Settings
from ..server.control import send_command
from ..store.api import StoreError, Usage
from ..store.factory import open_store
from .common import fail, settings_from


@contextmanager
def directory(ctx: click.Context) -> Iterator[tuple[Settings, Directory]]:
    settings = settings_from(ctx)
    try:
        d = open_directory(settings, listen=False)
    except sqlite3.Error as e:
        fail(f"cannot open the account directory {settings.data_dir / 'accounts.sqlite'}: {e}")
    try:
        yield settings, d
    except DirectoryError as e:
        fail(str(e))
    except sqlite3.Error as e:
        fail(f"the account directory could not be changed: {e}")
    except DirectoryUnavailable as e:
        fail(f"{e}: is PostgreSQL at [store] dsn running?")
    finally:
        d.close()


def audit(d: Directory, what: str) -> None:
    """Write a CLI change to the audit log, which the console shows beside its own."""
    d.audit.write(cli_user(), "local", what)


def poke(settings: Settings) -> dict[str, Any] | None:
    """Tell a running server to apply directory changes now (None: no server running)."""
    return send_command(settings.run_dir, {"cmd": "reload"})


def usage_of(settings: Settings, accounts: list[Account]) -> dict[str, Usage | None]:
    """Each account's usage; None for one whose mailbox cannot be read just now."""
    store = open_store(settings)

    async def collect() -> dict[str, Usage | None]:
        out: dict[str, Usage | None] = {}
        try:
            for a in accounts:
                try:
                    out[a.address] = await (await store.account(a.address, a.incarnation)).usage()
                except StoreError:
                    out[a.address] = None
        finally:
            await store.close()
        return out

    return asyncio.run(collect())


def wait_for(done: Callable[[], bool], timeout: float) -> bool:
    """Poll *done* until it is true or *timeout* seconds pass."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def finish_offline_deletions(settings: Settings, d: Directory) -> None:
    """With no server running, remove the mail of deleted accounts here, holding the data
    directory so that no server starts meanwhile."""
    try:
        lock = datalock.acquire(settings.data_dir)
    except datalock.DataDirBusy:
        # A server is starting: it finishes pending deletions before it serves anyone.
        return
    store = open_store(settings, exclusive=True)
    try:
        for pending in d.pending_deletions():
            asyncio.run(store.delete_account(pending.address, pending.keep_mail))
            d.finish_delete(pending.address, pending.incarnation)
    finally:
        asyncio.run(store.close())
        lock.release()


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
