"""`letterbox store migrate`: bring the mail store's schema up to date.

Each `letterbox serve` migrates at start too; this runs it on its own, before an upgrade
reaches the front ends, and shows what was done."""

from __future__ import annotations

import asyncio

import click

from ..auth.factory import adopt_local, open_directory
from ..store.api import StoreError
from ..store.factory import migrate_store
from .common import console, fail, settings_from
from .storecopy import copy


@click.group()
def store() -> None:
    """Manage the mail store."""


@store.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Apply the store's schema migrations (PostgreSQL), showing the versions."""
    settings = settings_from(ctx)
    try:
        done = asyncio.run(migrate_store(settings))
    except StoreError as e:
        fail(str(e))
    if done is None:
        console.print(f"[bold]{settings.store.backend}[/] store: nothing to migrate")
        return
    if done.after > done.latest:
        console.print(f"[yellow]the database is at version {done.after}, newer than this release's "
                      f"{done.latest}[/]")
    if done.before == done.after:
        console.print(f"schema at version [cyan]{done.after}[/]: up to date")
    else:
        console.print(f"schema migrated from version [cyan]{done.before}[/] to [cyan]{done.after}[/]")
    # The accounts directory lives in the same database: a front end's own accounts are
    # adopted into it while it is empty (see auth.factory).
    local = settings.data_dir / "accounts.sqlite"
    directory = open_directory(settings, adopt=False, listen=False)
    try:
        adopted = adopt_local(directory, local)
    except StoreError as e:
        fail(f"the accounts of {local} could not be adopted: {e}")
    finally:
        directory.close()
    if adopted:
        console.print(f"adopted {adopted} accounts of {local} into the shared accounts directory")


store.add_command(copy)

COMMANDS = [store]
