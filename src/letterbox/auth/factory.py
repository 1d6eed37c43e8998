"""Open the accounts directory the config names, as store.factory opens the store.

With the embedded (Maildir) store it is `data_dir/accounts.sqlite`. With `[store]
backend = "postgresql"` it is the shared directory in the store's database
(auth.pgdirectory), so that every front end has the same accounts, switches, policies
and administrators. The server, the CLI and the console get theirs here and never
import an engine.

Adopting a front end's accounts: a front end moved to PostgreSQL with accounts in its
own accounts.sqlite brings them into the shared directory when that has no account yet,
keeping their incarnations (the store knows their mail by them), password hashes and
SCRAM secrets, with its administrators, API tokens, switches and policies. It happens
at the first opening (a `letterbox serve` start, `letterbox store migrate`, any
account command) that finds the shared directory empty, in one transaction, so it is
done once: a second front end's file is left as it is (its accounts are named in the
log) and the file is never read again once the shared directory has accounts.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

from ..config import Settings
from ..store.api import StoreError
from ..store.factory import migrate_store
from .directory import Account, Directory

log = logging.getLogger("letterbox.auth")


def open_directory(settings: Settings, *, adopt: bool = True, listen: bool = True) -> Directory:
    """The directory of *settings*. On PostgreSQL the schema is brought up to date
    first when the database answers (the store does it at its start otherwise) and,
    with *adopt*, a local accounts.sqlite adopted (see above); *listen*: keep a LISTEN
    connection for change notices (a server; a CLI command has no use for one)."""
    path = settings.data_dir / "accounts.sqlite"
    if settings.store.backend != "postgresql":
        return Directory(path)
    from .pgdirectory import PgDirectory

    _migrate(settings)
    directory = PgDirectory(settings.store.dsn, listen=listen)
    if adopt:
        try:
            adopt_local(directory, path)
        except StoreError as e:  # unreachable: tried again at the next opening
            log.warning("the accounts of %s were not adopted just now: %s", path, e)
    return directory


def _migrate(settings: Settings) -> None:
    try:
        asyncio.get_running_loop()
        return  # inside an event loop: the store migrates at its start
    except RuntimeError:
        pass
    try:
        asyncio.run(migrate_store(settings))
    except StoreError as e:
        log.warning("the PostgreSQL database cannot be migrated now: %s", e)


def adopt_local(shared: Any, path: Path) -> int:
    """Bring the accounts of the SQLite directory at *path* into *shared*, an empty
    PgDirectory; the number adopted (0: nothing to do)."""
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'accounts'").fetchone():
            return 0
        accounts = _accounts(db)
        if not accounts:
            return 0
        extra = {
            "admins": _rows(db, "SELECT name, password, created FROM admins"),
            "api_tokens": _rows(db, "SELECT digest, admin, label, created, last_used FROM api_tokens"),
            "switches": [(s, bool(e)) for s, e in _rows(db, "SELECT service, enabled FROM switches")],
            "policies": _rows(db, "SELECT key, value FROM policies"),
        }
    finally:
        db.close()
    n: int = shared.adopt_all(accounts, extra)
    if n:
        log.info("adopted %d accounts of %s into the shared accounts directory", n, path)
    else:
        log.warning("%s has accounts (%s) that the shared accounts directory did not adopt: it had accounts"
                    " already; add them with `letterbox user add` if they are wanted",
                    path, ", ".join(a.address for a in accounts[:10]) + (" ..." if len(accounts) > 10 else ""))
    return n


def _accounts(db: sqlite3.Connection) -> list[Account]:
    from .directory import _row_to_account

    cols = {r[1] for r in db.execute("PRAGMA table_info(accounts)")}
    scram = "scram_sha256" if "scram_sha256" in cols else "''"
    message = "disabled_message" if "disabled_message" in cols else "''"
    deleting = "NOT deleting" if "deleting" in cols else "1"
    if "incarnation" not in cols:
        return []  # a directory from before incarnations: opened once by this release first
    return [
        _row_to_account(r)
        for r in db.execute(
            "SELECT address, password, enabled, protocols, quota_bytes, quota_messages, created, incarnation,"
            f" {scram}, {message} FROM accounts WHERE {deleting} ORDER BY address"
        )
    ]


def _rows(db: sqlite3.Connection, sql: str) -> list[tuple[Any, ...]]:
    try:
        return [tuple(r) for r in db.execute(sql)]
    except sqlite3.OperationalError:  # a table this file never had
        return []
