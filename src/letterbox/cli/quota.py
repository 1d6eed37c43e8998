"""`letterbox quota set` and `letterbox usage`."""

from __future__ import annotations

import click
from rich.table import Table

from ..store.api import Quota
from .admin import audit, directory, human_size, poke, usage_of
from .common import console
from .user import _size


@click.group()
def quota() -> None:
    """Manage quotas."""


@quota.command("set")
@click.argument("address")
@click.option("--bytes", "bytes_", default=None, help="Storage limit, e.g. 2G, 500M; 0 or 'unlimited' for none.")
@click.option("--messages", type=click.IntRange(min=0), default=None, help="Message-count limit; 0 for none.")
@click.pass_context
def set_quota(ctx: click.Context, address: str, bytes_: str | None, messages: int | None) -> None:
    """Set an account's quota (what is not given stays as it was)."""
    with directory(ctx) as (settings, d):
        acc = d.require(address)
        new = Quota(
            _size(bytes_) if bytes_ is not None else acc.quota.bytes,
            messages if messages is not None else acc.quota.messages,
        )
        d.set_quota(acc.address, new)
        audit(d, f"changed account {acc.address}: quota {new.bytes} bytes / {new.messages} messages")
    poke(settings)
    b = human_size(new.bytes) if new.bytes else "unlimited"
    m = str(new.messages) if new.messages else "unlimited"
    console.print(f"[cyan]{acc.address}[/]: quota {b}, {m} messages")


@click.command()
@click.pass_context
def usage(ctx: click.Context) -> None:
    """Disk usage per account, largest first."""
    with directory(ctx) as (settings, d):
        accounts = d.list()
    used = usage_of(settings, accounts)
    rows = sorted(accounts, key=lambda a: (-(u.bytes if (u := used[a.address]) else 0), a.address))
    table = Table("account", "messages", "used", "bytes", "quota", "use %", title="Disk usage")
    total_m = total_b = 0
    for a in rows:
        q = human_size(a.quota.bytes) if a.quota.bytes else "unlimited"
        if a.quota.messages:
            q += f", {a.quota.messages} msgs"
        u = used[a.address]
        if u is None:
            table.add_row(a.address, "?", "[yellow]unavailable[/]", "", q, "")
            continue
        total_m += u.messages
        total_b += u.bytes
        pct = ""
        if a.quota.bytes:
            pct = f"{100 * u.bytes / a.quota.bytes:.1f}%"
        elif a.quota.messages:
            pct = f"{100 * u.messages / a.quota.messages:.1f}%"
        table.add_row(a.address, str(u.messages), human_size(u.bytes), str(u.bytes), q, pct)
    table.add_section()
    table.add_row("total", str(total_m), human_size(total_b), str(total_b), "", "")
    console.print(table)


COMMANDS = [quota, usage]
