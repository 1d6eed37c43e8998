"""The store chosen by `[store] backend`, and the server's hooks every backend has.

The server and CLI see only store.api: a backend that implements none of the hooks must
still start, serve and stop (the defaults), and Maildir's hooks are its own methods."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from letterbox.config import load
from letterbox.store.api import StoreError
from letterbox.store.factory import open_store
from letterbox.store.maildir import MaildirStore
from tests.store.barestore import Bare


def settings_at(tmp_path: Path, extra: str = "") -> Any:
    path = tmp_path / "letterbox.toml"
    path.write_text(f"[server]\ndata_dir = 'data'\n{extra}")
    return load(path)


def test_maildir_is_the_default_and_gets_the_configured_limits(tmp_path: Path) -> None:
    settings = settings_at(
        tmp_path, "[store]\nreserve = '1M'\nopen_accounts = 7\n[limits]\nmailboxes = 50\nkeywords = 20\n"
    )
    assert settings.store.backend == "maildir"
    store = open_store(settings, exclusive=True)
    assert isinstance(store, MaildirStore)
    assert store.root == settings.data_dir / "mail"
    assert store.exclusive and store.reserve_size == 1024**2 and store.open_accounts == 7
    assert (store.limits.mailboxes, store.limits.keywords) == (50, 20)
    assert not open_store(settings).exclusive  # the CLI's: no rebuilds, no reserve


def test_postgresql_is_opened_lazily_with_the_dsn_and_limits(tmp_path: Path) -> None:
    settings = settings_at(
        tmp_path, "[store]\nbackend = 'postgresql'\ndsn = 'postgresql://u@127.0.0.1:1/mail'\n[limits]\nkeywords = 20\n"
    )
    store = open_store(settings)
    assert type(store).__name__ == "PostgresStore"  # the factory alone imports a backend
    assert store.dsn == "postgresql://u@127.0.0.1:1/mail"  # type: ignore[attr-defined]
    assert store.limits.keywords == 20  # type: ignore[attr-defined]
    # Nothing connects before the first use (port 1 would refuse).


def test_a_backend_without_hooks_has_nothing_to_do() -> None:
    asyncio.run(_without_hooks())


async def _without_hooks() -> None:
    store, stop = Bare(), threading.Event()
    assert await store.recover(10) == {}
    assert store.unavailable_accounts() == {}
    store.housekeeping()
    await store.run_background()  # returns: no task of its own
    assert not store.rebuild_due() and await store.rebuild_damaged(stop) == 0
    assert store.mail_waiting() == 0 and await store.index_waiting_mail(stop) == 0
    assert not store.can_repair
    with pytest.raises(StoreError, match="this store has no repair"):
        await store.repair_account("a@example.com", "x", False)
    await store.settle()


def test_maildir_repair_hook_closes_the_account_and_gives_it_back(tmp_path: Path) -> None:
    asyncio.run(_maildir_repair(tmp_path))


async def _maildir_repair(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path, exclusive=True)
    try:
        acc = await store.account("a@example.com", "inc1")
        assert store.can_repair
        assert not any((await store.recover()).values())
        report = await store.repair_account("a@example.com", "inc1", True)
        assert report["problems"] == [] and "rebuilt" in report
        assert "a@example.com" not in store.unavailable_accounts()
        again = await store.account("a@example.com", "inc1")
        assert again is not acc  # the old handle was closed for the repair
        assert await store.rebuild_damaged(threading.Event()) == 0
    finally:
        await store.close()
