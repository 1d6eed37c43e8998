"""Open the store that `[store] backend` names.

The one module that imports a backend: the server and the CLI get their Store here and
talk to it through store.api only, so a new backend is added here and nowhere above.
The backend is imported when it is opened, so a process loads only the one it uses.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from ..config import Settings
from .api import Limits, Store, StoreError
from .feed import ChangeFeed


def open_store(settings: Settings, *, exclusive: bool = False, feed: ChangeFeed | None = None) -> Store:
    """The store of *settings*, with its limits. *exclusive*: this process holds the
    data directory (see letterbox.datalock) and may rebuild indexes, repair accounts and
    keep the disk space reserve."""
    backend = settings.store.backend
    if backend == "maildir":
        from .maildir import MaildirStore

        return MaildirStore(
            settings.data_dir / "mail", feed, exclusive=exclusive, reserve=settings.store.reserve,
            open_accounts=settings.store.open_accounts, limits=limits_of(settings),
        )
    if backend == "postgresql":
        from .postgres import PostgresStore

        # Connects (and migrates) on first use, in the event loop that serves.
        return PostgresStore(settings.store.dsn, feed=feed, limits=limits_of(settings),
                             statement_timeout=settings.store.statement_timeout)
    raise ValueError(f"unknown store backend {backend!r}")  # config validation stops it first


def limits_of(settings: Settings) -> Limits:
    """The store's share of `[limits]`."""
    lim = settings.limits
    return Limits(
        mailboxes=lim.mailboxes, keywords=lim.keywords, keyword_length=lim.keyword_length,
        metadata_value=lim.metadata_value_size, metadata_entries=lim.metadata_entries,
        metadata_bytes=lim.metadata_bytes,
    )


@dataclass(frozen=True)
class Migration:
    """What `letterbox store migrate` did: the schema version before and after, and the
    latest this release ships."""

    before: int
    after: int
    latest: int


async def migrate_store(settings: Settings) -> Migration | None:
    """Bring the store's schema up to date; None for a backend without one (Maildir's
    indexes are brought up to date as each account opens). Raises StoreError with a line
    for the administrator when the database cannot be reached or migrated."""
    if settings.store.backend != "postgresql":
        return None
    import asyncpg

    from .postgres import schema

    try:
        conn = await asyncpg.connect(settings.store.dsn, timeout=10, server_settings={"application_name": "letterbox"})
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        raise StoreError(f"cannot connect to the PostgreSQL store: {_reason(e)}") from None
    try:
        before = await schema.version(conn)
        await schema.migrate(conn)
        after = await schema.version(conn)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        raise StoreError(f"migration failed: {_reason(e)}") from None
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
    return Migration(before, after, schema.latest())


async def clients_connected(settings: Settings, wait: float = 3.0) -> int:
    """How many other Letterbox processes (front ends) are connected to the store's
    database, after waiting up to *wait* seconds for any that are stopping to go; 0 for
    a backend without a database (its data directory lock says whether one runs)."""
    if settings.store.backend != "postgresql":
        return 0
    import asyncpg

    try:
        conn = await asyncpg.connect(settings.store.dsn, timeout=10, server_settings={"application_name": "letterbox-cli"})
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        raise StoreError(f"cannot connect to the PostgreSQL store: {_reason(e)}") from None
    try:
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            count = int(await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = 'letterbox' AND pid <> pg_backend_pid()"
            ))
            if not count or asyncio.get_running_loop().time() > deadline:
                return count
            await asyncio.sleep(0.1)  # a front end that was just stopped: its sessions end
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        raise StoreError(f"cannot read the PostgreSQL store's sessions: {_reason(e)}") from None
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


def _reason(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__
