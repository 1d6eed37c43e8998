"""`letterbox store copy --from CONFIG --to CONFIG`: move the mail of every account (or
one) from one store to another, embedded to PostgreSQL or back.

Accounts go over through the account directories (Directory.adopt: same password,
switches, quota and incarnation), mail through the store API (store.transfer), which
keeps UIDVALIDITY, UIDs, flags, keywords, INTERNALDATE and POP3 UIDLs. Both data
directories are locked as `letterbox serve` locks them, so neither side can be served
meanwhile: a copy of a store that changes under it, or into one that clients use, would
not be a copy. Interrupted, the same command goes on where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Column, Table

from .. import datalock
from ..auth.directory import (
    Account,
    Directory,
    DirectoryError,
    check_same_account,
    normalize_address,
)
from ..auth.factory import open_directory
from ..config import ConfigError, Settings, load
from ..store import faults
from ..store.api import Store, StoreError
from ..store.factory import clients_connected, migrate_store, open_store
from ..store.transfer import Advance, Tally, copy_account, size_of
from .admin import human_size
from .common import console, fail


@dataclass
class _Side:
    """One end of the copy: its settings, its held data directory, its directory."""

    label: str
    settings: Settings
    directory: Directory
    lock: datalock.DataDirLock
    store: Store | None = None
    opened: list[Store] = field(default_factory=list)


def _settings(label: str, path: Path) -> Settings:
    if not path.is_file():
        fail(f"{label} config {path}: no such file")
    try:
        return load(path)
    except ConfigError as e:
        fail(str(e))


def _describe(settings: Settings) -> str:
    if settings.store.backend == "postgresql":
        return "PostgreSQL"
    return f"embedded store in {settings.data_dir}"


def _same_store(a: Settings, b: Settings) -> bool:
    if a.data_dir.resolve() == b.data_dir.resolve():
        return True
    return a.store.backend == b.store.backend == "postgresql" and a.store.dsn == b.store.dsn


@contextlib.contextmanager
def _side(label: str, settings: Settings, must_exist: bool) -> Iterator[_Side]:
    path = settings.data_dir / "accounts.sqlite"
    if must_exist and settings.store.backend != "postgresql" and not path.is_file():
        fail(f"{label}: no account directory at {path}")
    try:
        lock = datalock.acquire(settings.data_dir)
    except datalock.DataDirBusy as e:
        fail(f"{label}: {e}; stop it before copying")
    except OSError as e:
        fail(f"{label}: cannot lock {settings.data_dir}: {e.strerror}")
    if settings.store.backend == "postgresql":
        try:  # an unreachable database is one line here, before the directory tries it
            asyncio.run(migrate_store(settings))
        except StoreError as e:
            lock.release()
            fail(f"{label}: {e}")
    try:
        try:
            # On PostgreSQL the shared directory, as the front ends see it (nothing adopted
            # from a local file: the copy brings the accounts itself).
            directory = open_directory(settings, adopt=False, listen=False)
        except (sqlite3.Error, StoreError) as e:
            fail(f"{label}: cannot open the account directory: {e}")
        try:
            yield _Side(label, settings, directory, lock)
        finally:
            directory.close()
    finally:
        lock.release()


@click.command("copy")
@click.option("--from", "source", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Config file of the store to copy from.")
@click.option("--to", "dest", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Config file of the store to copy into.")
@click.option("--account", "only", default=None, help="Copy this account only.")
def copy(source: Path, dest: Path, only: str | None) -> None:
    """Copy accounts and their mail from one store to another (embedded <-> PostgreSQL).

    UIDVALIDITY, UIDs, flags, keywords, internal dates and POP3 UIDLs stay the same, so
    clients keep their caches. Neither side may be served meanwhile. Interrupted, run it
    again: it goes on where it stopped, copying nothing twice."""
    faults.load_env()  # the tests' fault points (LETTERBOX_FAULTS); unset, nothing
    src_settings, dst_settings = _settings("source", source), _settings("destination", dest)
    if _same_store(src_settings, dst_settings):
        fail("the source and the destination are the same store")
    with _side("source", src_settings, True) as src, _side("destination", dst_settings, False) as dst:
        accounts = _accounts(src.directory, only)
        try:
            for account in accounts:
                _check_adoptable(dst.directory, account)
            for account in accounts:
                dst.directory.adopt(account)
        except DirectoryError as e:
            fail(str(e))
        except (sqlite3.Error, StoreError) as e:
            fail(f"destination: the account directory could not be written: {e}")
        console.print(f"copying {len(accounts)} account(s) from the {_describe(src_settings)}"
                      f" to the {_describe(dst_settings)}")
        try:
            tallies = asyncio.run(_copy(src, dst, accounts))
        except KeyboardInterrupt:
            fail("interrupted: run the same command again to go on where it stopped", 130)
    _summary(tallies)


def _accounts(directory: Directory, only: str | None) -> list[Account]:
    try:
        return directory.list() if only is None else [directory.require(normalize_address(only))]
    except DirectoryError as e:
        fail(f"source: {e}")
    except (sqlite3.Error, StoreError) as e:
        fail(f"source: the account directory cannot be read: {e}")


def _check_adoptable(directory: Directory, account: Account) -> None:
    """Every account is checked before any is written: a conflict stops the copy whole."""
    there = directory.get(account.address)
    if there is not None:
        check_same_account(account.address, there.incarnation, account.incarnation)


async def _check_alone(side: _Side) -> None:
    """Front ends on the same PostgreSQL database with data directories of their own
    are not held off by the lock: their sessions in the database say they are there."""
    try:
        others = await clients_connected(side.settings)
    except StoreError as e:
        fail(f"{side.label}: {e}")
    if others:
        fail(f"{side.label}: {others} connection(s) of running Letterbox front ends to its database;"
             " stop them before copying")


async def _open(side: _Side) -> Store:
    try:
        await migrate_store(side.settings)  # a clear line when PostgreSQL cannot be reached
        store = open_store(side.settings, exclusive=True)
        side.opened.append(store)
        await store.recover()  # what a crash left (of a copy interrupted, too) is put right
    except StoreError as e:
        fail(f"{side.label}: {e}")
    except OSError as e:
        fail(f"{side.label}: {e.strerror or e}")
    return store


async def _copy(src: _Side, dst: _Side, accounts: list[Account]) -> list[tuple[str, Tally]]:
    try:
        await _check_alone(src)
        await _check_alone(dst)
        src_store, dst_store = await _open(src), await _open(dst)
        return await _copy_accounts(src_store, dst_store, accounts)
    finally:
        for side in (dst, src):
            for store in side.opened:
                with contextlib.suppress(StoreError, OSError):
                    await store.settle()
                with contextlib.suppress(StoreError, OSError):
                    await store.close()


async def _copy_accounts(src: Store, dst: Store, accounts: list[Account]) -> list[tuple[str, Tally]]:
    tallies: list[tuple[str, Tally]] = []
    address = ""
    try:
        handles = []
        messages = octets = 0
        for account in accounts:
            address = account.address
            acc = await src.account(account.address, account.incarnation)
            count, size = await size_of(acc)
            messages, octets = messages + count, octets + size
            handles.append((account, acc))
        with Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[shown]}"),
            TimeRemainingColumn(), console=console,
        ) as progress:
            by_count = progress.add_task("messages", total=messages, shown=f"0/{messages}")
            by_bytes = progress.add_task("bytes", total=octets, shown=f"0/{human_size(octets)}")
            step = _advance(progress, by_count, by_bytes)
            for account, acc in handles:
                address = account.address
                progress.console.print(f"  {address}")
                target = await dst.account(account.address, account.incarnation)
                tallies.append((address, await copy_account(acc, target, step)))
    except StoreError as e:
        fail(f"{address}: {e}" if address and address not in str(e) else str(e))
    except OSError as e:
        fail(f"{address}: {e.strerror or e}")
    return tallies


def _advance(progress: Progress, by_count: TaskID, by_bytes: TaskID) -> Advance:
    done = [0, 0]
    totals = {t.id: t.total for t in progress.tasks}

    def step(count: int, size: int) -> None:
        done[0] += count
        done[1] += size
        progress.update(by_count, advance=count, shown=f"{done[0]}/{int(totals[by_count] or 0)}")
        progress.update(by_bytes, advance=size, shown=f"{human_size(done[1])}/{human_size(int(totals[by_bytes] or 0))}")

    return step


def _summary(tallies: list[tuple[str, Tally]]) -> None:
    table = Table(Column("account", overflow="fold"), "mailboxes", "copied", "bytes copied", "there already", "flags updated",
                  "expunged", title="Copied")
    total = Tally()
    for address, t in tallies:
        table.add_row(address, str(t.mailboxes), str(t.copied), human_size(t.copied_bytes), str(t.present),
                      str(t.reflagged), str(t.expunged))
        total.copied += t.copied
        total.copied_bytes += t.copied_bytes
        total.present += t.present
    console.print(table)
    console.print(f"{len(tallies)} account(s): {total.copied} message(s) copied ({human_size(total.copied_bytes)}),"
                  f" {total.present} there already")
