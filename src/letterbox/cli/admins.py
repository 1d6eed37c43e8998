"""`letterbox admin add|list|del|passwd|token|tokens|revoke`, `letterbox policy` and
`letterbox audit`: console administrators, server policies and the audit log."""

from __future__ import annotations

import datetime
import json

import click
from rich.table import Table

from .. import policy as policies
from ..auth.admins import AdminError
from .admin import audit, directory, poke, read_password
from .common import console, fail


def _when(ts: float | None) -> str:
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "never"


@click.group("admin")
def admin() -> None:
    """Console administrators and their API tokens (not mail accounts)."""


@admin.command("add")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
@click.pass_context
def add(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Create an administrator who logs in to the web console as NAME."""
    with directory(ctx) as (_settings, d):
        try:
            made = d.admins.add(name, read_password(True, password_stdin))
        except AdminError as e:
            fail(str(e))
        audit(d, f"created administrator {made}")
    console.print(f"administrator [cyan]{made}[/] created")


@admin.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """List administrators."""
    with directory(ctx) as (_settings, d):
        names = d.admins.names()
    for name in names:
        console.print(name)
    if not names:
        console.print("(no administrators: add one with `letterbox admin add NAME`)")


@admin.command("del")
@click.argument("name")
@click.pass_context
def delete(ctx: click.Context, name: str) -> None:
    """Remove an administrator and their API tokens."""
    with directory(ctx) as (_settings, d):
        try:
            d.admins.remove(name)
        except AdminError as e:
            fail(str(e))
        audit(d, f"removed administrator {name.lower()}")
    console.print(f"administrator [cyan]{name.lower()}[/] removed")


@admin.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
@click.pass_context
def passwd(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Change an administrator's password."""
    with directory(ctx) as (_settings, d):
        try:
            d.admins.set_password(name, read_password(True, password_stdin))
        except AdminError as e:
            fail(str(e))
        audit(d, f"changed the password of administrator {name.lower()}")
    console.print(f"password changed for administrator [cyan]{name.lower()}[/]")


@admin.command("token")
@click.argument("name")
@click.option("--label", default="", help="What the token is for (shown by `admin tokens`).")
@click.pass_context
def token(ctx: click.Context, name: str, label: str) -> None:
    """Make an API token acting as administrator NAME; it is printed once, never stored."""
    with directory(ctx) as (_settings, d):
        try:
            made = d.admins.new_token(name, label)
        except AdminError as e:
            fail(str(e))
        audit(d, f"made an API token for administrator {name.lower()}" + (f" ({label})" if label else ""))
    click.echo(made)


@admin.command("tokens")
@click.pass_context
def tokens(ctx: click.Context) -> None:
    """List API tokens (by id: the start of their SHA-256)."""
    with directory(ctx) as (_settings, d):
        rows = d.admins.tokens()
    table = Table("id", "administrator", "label", "made")
    for t in rows:
        table.add_row(t.digest[:12], t.admin, t.label, _when(t.created))
    console.print(table)


@admin.command("revoke")
@click.argument("token_id")
@click.pass_context
def revoke(ctx: click.Context, token_id: str) -> None:
    """Revoke the API token with this id (see `admin tokens`)."""
    with directory(ctx) as (_settings, d):
        try:
            n = d.admins.revoke(token_id.lower())
        except AdminError as e:
            fail(str(e))
        if not n:
            fail(f"no token with id {token_id!r}")
        audit(d, f"revoked API token {token_id.lower()}")
    console.print(f"revoked {n} token(s)")


@click.group("policy", invoke_without_command=True)
@click.pass_context
def policy(ctx: click.Context) -> None:
    """Show server policies; `set KEY VALUE` / `reset KEY` change them live."""
    if ctx.invoked_subcommand is not None:
        return
    with directory(ctx) as (settings, d):
        overrides = d.policies()
        current = policies.effective(settings, overrides).as_dict()
    table = Table("policy", "value", "from", "meaning")
    for key in policies.KEYS:
        table.add_row(key, json.dumps(current[key]), "set at run time" if key in overrides else "config",
                      policies.DESCRIPTIONS[key])
    console.print(table)


@policy.command("set")
@click.argument("key", type=click.Choice(policies.KEYS))
@click.argument("value")
@click.pass_context
def policy_set(ctx: click.Context, key: str, value: str) -> None:
    """Set a policy (it wins over the config file until reset)."""
    try:
        checked = policies.check(key, value)
    except policies.PolicyError as e:
        fail(str(e))
    with directory(ctx) as (settings, d):
        d.set_policy(key, json.dumps(checked))
        audit(d, f"set policies {key}={json.dumps(checked)}")
    where = "on the running server" if poke(settings) is not None else "(no running server; applies at start)"
    console.print(f"{key} = {json.dumps(checked)} {where}")


@policy.command("reset")
@click.argument("key", type=click.Choice(policies.KEYS))
@click.pass_context
def policy_reset(ctx: click.Context, key: str) -> None:
    """Let the config file decide a policy again."""
    with directory(ctx) as (settings, d):
        d.set_policy(key, None)
        audit(d, f"reset policy {key} to the config file's")
    poke(settings)
    console.print(f"{key} follows the config file again")


@click.command("audit")
@click.option("-n", "--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--about", default=None, help="Only entries mentioning this text (an address, say).")
@click.pass_context
def audit_log(ctx: click.Context, limit: int, about: str | None) -> None:
    """Show the latest administrative changes (console, API and CLI)."""
    with directory(ctx) as (_settings, d):
        entries = d.audit.recent(limit, 0, about)
    table = Table("when", "who", "from", "what")
    for e in reversed(entries):
        table.add_row(_when(e.at), e.who, e.client, e.what)
    console.print(table)


COMMANDS = [admin, policy, audit_log]
