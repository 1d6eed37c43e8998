"""`letterbox user add|del|passwd|list|show|set`."""

from __future__ import annotations

import asyncio

import click
from rich.table import Table

from ..auth.directory import PROTOCOLS, normalize_address
from ..auth.passwords import make_secrets
from ..config import parse_size
from ..store.api import Quota, StoreError
from ..store.factory import open_store
from .admin import (
    audit,
    directory,
    finish_offline_deletions,
    human_size,
    poke,
    read_password,
    usage_of,
    wait_for,
)
from .common import console, fail


def _protocols(value: str) -> list[str]:
    value = value.strip().lower()
    if value in ("none", ""):
        return []
    return [p.strip() for p in value.replace("+", ",").split(",") if p.strip()]


def _size(value: str | None) -> int:
    if value is None or value.lower() in ("0", "none", "unlimited"):
        return 0
    try:
        return parse_size(value)
    except ValueError as e:
        fail(f"{value!r}: {e}")


@click.group()
def user() -> None:
    """Manage mail accounts."""


@user.command("add")
@click.argument("address")
@click.option("--protocols", default="imap,pop3", show_default=True,
              help="Protocols the account may use: imap, pop3, both (imap,pop3) or none.")
@click.option("--quota-bytes", default=None, help="Storage quota, e.g. 2G (default from config).")
@click.option("--quota-messages", type=click.IntRange(min=0), default=None, help="Message-count quota.")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
@click.pass_context
def add(ctx: click.Context, address: str, protocols: str, quota_bytes: str | None,
        quota_messages: int | None, password_stdin: bool) -> None:
    """Create an account (the password is asked for, never taken from the command line)."""
    with directory(ctx) as (settings, d):
        addr = normalize_address(address)
        if d.get(addr) is not None:
            fail(f"account {addr!r} already exists")
        password = read_password(True, password_stdin)
        quota = Quota(
            _size(quota_bytes) if quota_bytes is not None else settings.quota.default_bytes,
            quota_messages if quota_messages is not None else settings.quota.default_messages,
        )
        account = d.add(addr, make_secrets(password), _protocols(protocols), quota)
        audit(d, f"created account {addr} (protocols {','.join(_protocols(protocols)) or 'none'},"
                 f" quota {quota.bytes} bytes / {quota.messages} messages)")
        store = open_store(settings)

        async def make() -> None:
            try:
                # Creates INBOX and the special-use folders; mail left at this address by
                # an earlier account is moved aside, never shown to this one.
                await store.account(addr, account.incarnation)
            finally:
                await store.close()

        try:
            asyncio.run(make())
        except StoreError as e:
            fail(f"account {addr} was added, but its mail folder could not be made: {e}")
    poke(settings)
    console.print(f"created [cyan]{addr}[/]")


@user.command("del")
@click.argument("address")
@click.option("--keep-mail", is_flag=True,
              help="Keep the account's mail in the archive folder (mail/.archive/) instead of removing it.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def delete(ctx: click.Context, address: str, keep_mail: bool, yes: bool) -> None:
    """Delete an account: its sessions end and its mail is removed (or archived) at once."""
    with directory(ctx) as (settings, d):
        acc = d.require(address)
        if not yes:
            what = " (its mail is kept in the archive)" if keep_mail else " and all its mail"
            click.confirm(f"Delete {acc.address}{what}?", abort=True)
        # From here the account is gone for every lookup; its mail follows.
        d.mark_deleted(acc.address, keep_mail)
        audit(d, f"deleted account {acc.address}" + (" (mail archived)" if keep_mail else ""))
        if poke(settings) is not None:
            finished = wait_for(lambda: not d.is_deleting(acc.address), 30.0)
            if not finished:
                fail(f"{acc.address} is deleted, but the server has not removed its mail yet;"
                     " it keeps trying (see its log)")
        else:
            finish_offline_deletions(settings, d)
    console.print(f"deleted [cyan]{acc.address}[/]" + (" (mail archived)" if keep_mail else ""))


@user.command("passwd")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
@click.pass_context
def passwd(ctx: click.Context, address: str, password_stdin: bool) -> None:
    """Change an account's password (cached logins are forgotten at once)."""
    with directory(ctx) as (settings, d):
        acc = d.require(address)
        d.set_password(acc.address, make_secrets(read_password(True, password_stdin)))
        audit(d, f"changed account {acc.address}: password reset")
    poke(settings)
    console.print(f"password changed for [cyan]{acc.address}[/]")


@user.command("set")
@click.argument("address")
@click.option("--protocols", default=None, help="imap, pop3, imap,pop3 or none.")
@click.option("--enable/--disable", "enabled", default=None, help="Allow or refuse all logins.")
@click.option("--message", default="", help="With --disable: what the user is told at login.")
@click.pass_context
def set_(ctx: click.Context, address: str, protocols: str | None, enabled: bool | None, message: str) -> None:
    """Change an account's protocols or switch it on/off, live."""
    if protocols is None and enabled is None:
        fail("nothing to change: give --protocols and/or --enable/--disable")
    with directory(ctx) as (settings, d):
        acc = d.require(address)
        said = []
        if protocols is not None:
            acc = d.set_protocols(acc.address, _protocols(protocols))
            said.append(f"protocols {','.join(p for p in PROTOCOLS if p in acc.protocols) or 'none'}")
        if enabled is not None:
            acc = d.set_enabled(acc.address, enabled, message)
            said.append("enabled" if enabled else f"disabled ({acc.disabled_message or 'no message'})")
        audit(d, f"changed account {acc.address}: {'; '.join(said)}")
    running = poke(settings) is not None
    protos = ", ".join(p for p in PROTOCOLS if p in acc.protocols) or "none"
    state = "enabled" if acc.enabled else "disabled"
    note = " (applied to the running server)" if running else ""
    console.print(f"[cyan]{acc.address}[/]: {state}, protocols {protos}{note}")


def _quota_text(limit: int, fmt: bool = True) -> str:
    if not limit:
        return "unlimited"
    return human_size(limit) if fmt else str(limit)


@user.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """List accounts."""
    with directory(ctx) as (settings, d):
        accounts = d.list()
    usage = usage_of(settings, accounts)
    table = Table("account", "enabled", "protocols", "messages", "used", "quota")
    for a in accounts:
        u = usage[a.address]
        table.add_row(
            a.address,
            "yes" if a.enabled else "[red]no[/]",
            ",".join(p for p in PROTOCOLS if p in a.protocols) or "none",
            str(u.messages) if u is not None else "[yellow]?[/]",
            human_size(u.bytes) if u is not None else "[yellow]unavailable[/]",
            _quota_text(a.quota.bytes),
        )
    console.print(table)


@user.command("show")
@click.argument("address")
@click.pass_context
def show(ctx: click.Context, address: str) -> None:
    """Show one account."""
    with directory(ctx) as (settings, d):
        a = d.require(address)
    u = usage_of(settings, [a])[a.address]
    table = Table(show_header=False, box=None)
    table.add_row("account", a.address)
    table.add_row("enabled", "yes" if a.enabled else "no")
    table.add_row("protocols", ",".join(p for p in PROTOCOLS if p in a.protocols) or "none")
    table.add_row("SCRAM-SHA-256", "yes" if a.scram else "not yet (at the next password change or password login)")
    if u is None:
        table.add_row("messages", "unavailable (the mailbox index is being rebuilt)")
    else:
        table.add_row("messages", f"{u.messages} (quota {_quota_text(a.quota.messages, False)})")
        table.add_row("storage", f"{human_size(u.bytes)} = {u.bytes} bytes (quota {_quota_text(a.quota.bytes)})")
    console.print(table)


COMMANDS = [user]
