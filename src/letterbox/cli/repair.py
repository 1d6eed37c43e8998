"""`letterbox repair ADDRESS`: check an account's index against its folders, and rebuild
it from the folders when it is damaged (as `doveadm force-resync` does for Dovecot)."""

from __future__ import annotations

import asyncio
from typing import Any

import click
from rich.table import Table

from .. import datalock
from ..server.control import send_command
from ..store.api import StoreError
from ..store.factory import open_store
from .admin import directory
from .common import console, fail

_LABELS = {
    "indexed": "files indexed",
    "dropped": "rows without a file dropped",
    "removed": "duplicate or expunged files removed",
    "folders": "folders",
    "kept": "files kept aside (see letterbox-kept/)",
    "restored": "folders put back (unfinished DELETE/RENAME)",
    "messages": "messages",
}


@click.command("repair")
@click.argument("address")
@click.option("--rebuild", is_flag=True, help="Rebuild the index from the folders even if it looks sound.")
@click.pass_context
def repair(ctx: click.Context, address: str, rebuild: bool) -> None:
    """Check ADDRESS's index against its mail folders and repair it.

    With a server running, the account's sessions end and the server does the work;
    otherwise it is done here."""
    with directory(ctx) as (settings, d):
        account = d.require(address)
    reply = send_command(
        settings.run_dir, {"cmd": "repair", "address": account.address, "rebuild": rebuild}, timeout=3600
    )
    if reply is not None:
        if not reply.get("ok"):
            fail(str(reply.get("error", "the server could not repair the account")))
        report: dict[str, Any] = reply["report"]
    else:
        try:
            lock = datalock.acquire(settings.data_dir)
        except datalock.DataDirBusy as e:
            fail(f"{e}, but it does not answer on its control socket")
        store = open_store(settings, exclusive=True)

        async def run() -> dict[str, Any]:
            try:
                return await store.repair_account(account.address, account.incarnation, rebuild)
            finally:
                await store.close()

        try:
            report = asyncio.run(run())
        except StoreError as e:
            fail(f"{account.address}: {e}")
        finally:
            lock.release()
    _show(account.address, report)


def _show(address: str, report: dict[str, Any]) -> None:
    problems = report.get("problems") or []
    if problems:
        console.print(f"[yellow]{address}: the index was damaged:[/] " + "; ".join(map(str, problems[:5])))
    else:
        console.print(f"{address}: the index is sound")
    table = Table("", "count", title=f"Repair of {address}")
    rebuilt = report.get("rebuilt")
    if rebuilt:
        table.add_row("[bold]rebuilt from the folders[/]", "")
        for key, value in rebuilt.items():
            table.add_row("  " + _LABELS.get(key, key), str(value))
    for key, value in (report.get("reconciled") or {}).items():
        table.add_row(_LABELS.get(key, key), str(value))
    table.add_row("mailboxes", str(report.get("mailboxes", "?")))
    table.add_row("messages", str(report.get("messages", "?")))
    console.print(table)


COMMANDS = [repair]
