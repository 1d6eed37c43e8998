"""`letterbox protocols [enable|disable SERVICE]`: live server-wide switches."""

from __future__ import annotations

import click
from rich.table import Table

from ..auth.directory import SERVICES
from .admin import audit, directory, poke
from .common import console


def _effective(settings: object, overrides: dict[str, bool]) -> dict[str, bool]:
    return {s: overrides.get(s, bool(getattr(settings, s).enabled)) for s in SERVICES}


@click.group(invoke_without_command=True)
@click.pass_context
def protocols(ctx: click.Context) -> None:
    """Show which protocols are on; `enable`/`disable` switch them on the running server."""
    if ctx.invoked_subcommand is not None:
        return
    with directory(ctx) as (settings, d):
        state = _effective(settings, d.switches())
    from ..server.control import send_command

    status = send_command(settings.run_dir, {"cmd": "status"})
    table = Table("protocol", "state", "listening on")
    for s in SERVICES:
        listening = ""
        if status is not None:
            ls = status.get("listeners", {})
            listening = ", ".join(a for key, addrs in ls.items() if key.startswith(s) for a in addrs)
        table.add_row(s.upper(), "[green]on[/]" if state[s] else "[red]off[/]", listening)
    console.print(table)
    if status is None:
        console.print("(no running server found; changes apply when it starts)")


def _switch(ctx: click.Context, service: str, on: bool) -> None:
    with directory(ctx) as (settings, d):
        d.set_switch(service.lower(), on)
        audit(d, f"{'enabled' if on else 'disabled'} {service.upper()}")
    reply = poke(settings)
    word = "enabled" if on else "disabled"
    where = "on the running server" if reply is not None else "(no running server; applies at start)"
    console.print(f"{service.upper()} {word} {where}")


@protocols.command()
@click.argument("service", type=click.Choice(SERVICES, case_sensitive=False))
@click.pass_context
def enable(ctx: click.Context, service: str) -> None:
    """Switch a protocol on."""
    _switch(ctx, service, True)


@protocols.command()
@click.argument("service", type=click.Choice(SERVICES, case_sensitive=False))
@click.pass_context
def disable(ctx: click.Context, service: str) -> None:
    """Switch a protocol off: listeners close and open sessions end."""
    _switch(ctx, service, False)


COMMANDS = [protocols]
