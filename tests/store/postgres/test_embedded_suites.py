"""The embedded store's API-level tests (ACLs and readers' \\Seen, metadata, the change
feed's names and origins), run as they are against the PostgreSQL store: the name
`MaildirStore` in their modules is made to build a PostgresStore on the test's schema
(handles made with one root share one store, as there). Tests of what only the embedded
store has (rebuilds, files, its index read with sqlite3) are left out."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from letterbox.store.feed import ChangeFeed
from letterbox.store.postgres import PostgresStore

from .. import test_acl_store, test_feed, test_metadata_store
from .harness import dsn, schema_for

SUITES: dict[ModuleType, tuple[str, ...]] = {
    test_acl_store: (
        "test_set_get_granted_and_limits",
        "test_readers_have_their_own_seen",
        "test_only_limits_what_a_store_changes",
        "test_marks_follow_copy_and_move_and_go_with_the_message",
        "test_an_account_keeps_a_bounded_number_of_entries",
        "test_create_inherits_the_parents_acl_and_rename_keeps_it",
        "test_deleting_an_account_takes_it_out_of_every_acl",
    ),
    test_metadata_store: (
        "test_set_get_and_remove",
        "test_depth",
        "test_limits_and_atomicity",
        "test_readers_of_a_shared_mailbox_keep_their_own_private_entries",
    ),
    test_feed: (
        "test_creates_renames_deletes_and_subscriptions_carry_their_names",
        "test_message_changes_carry_the_mailbox_name_and_who_made_them",
    ),
}
CASES = [(module, name) for module, names in SUITES.items() for name in names]


@pytest.mark.parametrize(("module", "name"), CASES, ids=[f"{m.__name__.rsplit('.', 1)[1]}::{n}" for m, n in CASES])
def test_embedded_suite_on_postgres(
    module: ModuleType, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = asyncio.run(dsn())

    def factory(root: Path, feed: ChangeFeed | None = None, **kwargs: Any) -> PostgresStore:
        return PostgresStore(url, schema=schema_for(root), feed=feed, limits=kwargs.get("limits"))

    monkeypatch.setattr(module, "MaildirStore", factory)
    test = getattr(module, name)
    params = list(inspect.signature(test).parameters)
    assert params in (["root"], ["tmp_path"]), params
    test(tmp_path / "mail" if params == ["root"] else tmp_path)
