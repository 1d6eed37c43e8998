"""`letterbox acl set|get|delete`: share an account's mailboxes with other accounts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from rich.table import Table

from ..auth.directory import normalize_address
from ..server.control import send_command
from ..store import acl as rights
from ..store.api import AccountStore, MailboxNotFound, StoreError
from ..store.factory import open_store
from .admin import directory
from .common import console, fail

T = TypeVar("T")

MEANING = {
    "l": "see it in LIST",
    "r": "read",
    "s": "keep own \\Seen",
    "w": "set other flags",
    "i": "add messages",
    "p": "post",
    "k": "create mailboxes under it",
    "x": "delete or rename it",
    "t": "mark \\Deleted",
    "e": "expunge",
    "a": "administer the ACL",
}


def _in_store(
    ctx: click.Context, owner: str, work: Callable[[AccountStore], Awaitable[T]],
    changes: tuple[str, str] | None = None,
) -> T:
    """Run *work* on OWNER's account (the directory's incarnation of it). *changes*:
    the (mailbox, identifier) whose entry *work* changes, which a running server is told
    of, so that its sessions learn at once (NOTIFY, a selected shared mailbox)."""
    with directory(ctx) as (settings, d):
        account = d.require(owner)
    store = open_store(settings)

    async def go() -> T:
        try:
            return await work(await store.account(account.address, account.incarnation))
        finally:
            await store.close()

    try:
        result = asyncio.run(go())
    except MailboxNotFound as e:
        fail(f"{account.address}: {e}")
    except StoreError as e:
        fail(f"{account.address}: {e}")
    if changes is not None:
        mailbox, who = changes
        send_command(settings.run_dir, {"cmd": "acl", "address": account.address, "mailbox": mailbox, "identifier": who})
    return result


def _grantee(ctx: click.Context, owner: str, identifier: str) -> str:
    """"anyone" or the address of an account other than OWNER."""
    if identifier.lower() == rights.ANYONE:
        return rights.ANYONE
    if identifier.startswith("-"):
        fail(f"{identifier!r}: negative rights are not supported; take rights away with `acl set ... -RIGHTS`")
    with directory(ctx) as (_, d):
        who = normalize_address(identifier)
        if d.get(who) is None:
            fail(f"there is no account {who}: rights go to accounts, or to anyone")
        if who == normalize_address(owner):
            fail(f"{who} owns the mailbox and always has every right")
    return who


def _explain(have: str) -> str:
    return ", ".join(MEANING[r] for r in rights.canonical(have)) or "nothing"


@click.group()
def acl() -> None:
    """Share mailboxes: who may do what in an account's mailboxes (IMAP ACL, RFC 4314).

    Rights are letters: l (see it), r (read), s (keep own \\Seen), w (other flags),
    i (add messages), p (post), k (create below), x (delete/rename), t (\\Deleted),
    e (expunge), a (administer); c stands for kx and d for et. Others see a shared
    mailbox as Shared/OWNER/MAILBOX.
    """


@acl.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("owner")
@click.argument("mailbox")
@click.argument("identifier")
@click.argument("rights_", metavar="RIGHTS")
@click.pass_context
def set_acl(ctx: click.Context, owner: str, mailbox: str, identifier: str, rights_: str) -> None:
    """Give IDENTIFIER (an address, or anyone) RIGHTS on OWNER's MAILBOX.

    RIGHTS replaces what IDENTIFIER had; +RIGHTS adds, -RIGHTS takes away, "" removes
    the entry. For example, to let Ann work in the team's INBOX:

    \b
        letterbox acl set info@example.com INBOX ann@example.com lrswite
    """
    who = _grantee(ctx, owner, identifier)
    try:
        rights.modify("", rights_)
    except rights.RightsError as e:
        fail(f"{rights_!r}: {e} (rights are letters of {rights.RIGHTS}, c and d)")

    async def work(store: AccountStore) -> str:
        current = (await store.get_acl(mailbox)).get(who, "")
        new = rights.modify(current, rights_)
        await store.set_acl(mailbox, who, new)
        return new

    new = _in_store(ctx, owner, work, (mailbox, who))
    if new:
        console.print(f"[cyan]{owner}[/] {mailbox}: [bold]{who}[/] has [green]{new}[/] ({_explain(new)})")
    else:
        console.print(f"[cyan]{owner}[/] {mailbox}: [bold]{who}[/] has no rights any more")


@acl.command("delete")
@click.argument("owner")
@click.argument("mailbox")
@click.argument("identifier")
@click.pass_context
def delete_acl(ctx: click.Context, owner: str, mailbox: str, identifier: str) -> None:
    """Take IDENTIFIER's entry out of OWNER's MAILBOX's list."""
    who = rights.ANYONE if identifier.lower() == rights.ANYONE else identifier.strip().lower()
    if not who:
        fail("the identifier is empty")

    async def work(store: AccountStore) -> bool:
        had = who in await store.get_acl(mailbox)
        await store.set_acl(mailbox, who, "")
        return had

    if _in_store(ctx, owner, work, (mailbox, who)):
        console.print(f"[cyan]{owner}[/] {mailbox}: removed [bold]{who}[/]")
    else:
        console.print(f"[cyan]{owner}[/] {mailbox}: [yellow]{who} had no entry[/]")


@acl.command("get")
@click.argument("owner")
@click.argument("mailbox", required=False)
@click.pass_context
def get_acl(ctx: click.Context, owner: str, mailbox: str | None) -> None:
    """Show the access control list of OWNER's MAILBOX, or of every mailbox shared."""

    async def work(store: AccountStore) -> list[tuple[str, dict[str, str]]]:
        if mailbox is not None:
            box = await store.get_mailbox(mailbox)
            return [(box.name, await store.get_acl(box.name))]
        out = []
        for box in await store.list_mailboxes():
            entries = await store.get_acl(box.name)
            if entries:
                out.append((box.name, entries))
        return out

    lists = _in_store(ctx, owner, work)
    table = Table("mailbox", "identifier", "rights", "may", title=f"Access control lists of {owner.lower()}")
    for name, entries in lists:
        if not entries:
            table.add_row(name, "[dim](owner only)[/]", "", "")
        for who, have in sorted(entries.items()):
            table.add_row(name, who, rights.shown(have), _explain(have))
    if not lists:
        console.print(f"[cyan]{owner.lower()}[/] shares no mailbox")
        return
    console.print(table)


COMMANDS = [acl]
