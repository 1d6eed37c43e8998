"""The accounts directory on PostgreSQL (auth.pgdirectory): the Directory API on the
test's own schema, two handles standing for two front ends."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from letterbox.auth import listing
from letterbox.auth.admins import AdminError
from letterbox.auth.directory import Account, Directory, DirectoryError, DirectoryUnavailable
from letterbox.auth.factory import adopt_local
from letterbox.auth.passwords import make_secrets
from letterbox.auth.pgdirectory import PgDirectory
from letterbox.store.api import Quota
from letterbox.store.postgres import schema
from tests.server.pgproxy import PgProxy
from tests.waiting import wait_for

from .harness import dsn, schema_for


@pytest.fixture
def where(tmp_path: Path) -> tuple[str, str]:
    """(dsn, schema) of this test, migrated."""
    url = asyncio.run(dsn())
    name = schema_for(tmp_path)

    async def migrate() -> None:
        conn = await asyncpg.connect(url)
        try:
            await schema.migrate(conn, name)
        finally:
            await conn.close()

    asyncio.run(migrate())
    return url, name


@pytest.fixture
def two(where: tuple[str, str]) -> Iterator[tuple[PgDirectory, PgDirectory]]:
    a, b = PgDirectory(where[0], where[1]), PgDirectory(where[0], where[1])
    yield a, b
    a.close()
    b.close()



def test_accounts_are_shared_and_changes_reach_the_other_handle(two: tuple[PgDirectory, PgDirectory]) -> None:
    a, b = two
    assert b.get("alice@example.com") is None  # a miss, cached
    made = a.add("Alice@Example.com", make_secrets("pw"), ["imap"], Quota(1000, 10))
    assert made.address == "alice@example.com" and made.protocols == frozenset({"imap"}) and made.scram
    # B drops its cached miss when the notice comes, and says so once.
    assert wait_for(lambda: b.changed(), 5)
    assert not b.changed()
    found = b.get("alice@example.com")
    assert found == made
    assert b.local_domains() == frozenset({"example.com"})
    with pytest.raises(DirectoryError, match="already exists"):
        b.add("alice@example.com", make_secrets("x"))
    a.set_enabled("alice@example.com", False, "unpaid\nbill")
    assert wait_for(lambda: b.changed(), 5)
    gone = b.get("alice@example.com")
    assert gone is not None and not gone.enabled and gone.disabled_message == "unpaid bill"
    b.set_password("alice@example.com", make_secrets("new"))
    assert wait_for(lambda: a.changed(), 5)
    again = a.get("alice@example.com")
    assert again is not None and again.password_hash != made.password_hash and again.scram != made.scram
    assert [acc.address for acc in a.list()] == ["alice@example.com"]


def test_switches_policies_admins_tokens_and_audit(two: tuple[PgDirectory, PgDirectory]) -> None:
    a, b = two
    a.set_switch("pop3", False)
    a.set_policy("trash_days", "30")
    assert wait_for(lambda: b.changed(), 5)
    assert b.switches() == {"pop3": False} and b.policies() == {"trash_days": "30"}
    a.set_policy("trash_days", None)
    assert b.policies() == {}
    with pytest.raises(DirectoryError):
        a.set_switch("ftp", True)
    a.admins.add("root", "adminpw")
    with pytest.raises(AdminError, match="already exists"):
        b.admins.add("root", "other")
    assert b.admins.names() == ["root"] and b.admins.verify("root", "adminpw")
    token = b.admins.new_token("root", "prom")
    assert a.admins.token_admin(token) == "root"
    assert a.admins.revoke(a.admins.tokens()[0].digest[:8]) == 1
    assert b.admins.token_admin(token) is None
    a.admins.remove("root")
    assert not b.admins.exists("root")
    a.audit.write("cli:test", "local", "did a thing to alice@example.com")
    assert [e.what for e in b.audit.recent(about="alice@")] == ["did a thing to alice@example.com"]
    assert a.decoy_key == b.decoy_key and len(a.decoy_key) == 32


def test_two_step_deletion_usage_and_listing(two: tuple[PgDirectory, PgDirectory]) -> None:
    a, b = two
    for name in ("ann", "bob", "cid"):
        a.add(f"{name}@example.com", make_secrets("pw"), quota=Quota(1000, 0))
    a.record_usage([("ann@example.com", 3, 900), ("bob@example.com", 1, 100, 1, 50)])
    a.record_logins([("ann@example.com", "imap", 1.5, "192.0.2.1")])
    asyncio.run(b.arecord_logins([("ann@example.com", "pop3", 2.5, "192.0.2.2")]))  # from the event loop
    b.set_warned_level("ann@example.com", 80)
    assert b.warned_level("ann@example.com") == 80
    assert a.last_logins("ann@example.com") == {"imap": (1.5, "192.0.2.1"), "pop3": (2.5, "192.0.2.2")}
    page = listing.account_page(b.reader(), sort="percent", descending=True)
    assert [(r.address, r.percent, r.measured) for r in page.rows] == [
        ("ann@example.com", 90.0, True), ("bob@example.com", 5.0, True), ("cid@example.com", 0.0, False)]
    assert listing.account_page(b, search="b", over_percent=1).total == 1
    assert listing.totals(b) == (3, 4, 1000)
    acc = a.mark_deleted("ann@example.com")
    assert wait_for(lambda: b.changed(), 5)
    assert b.get("ann@example.com") is None and b.is_deleting("ann@example.com")
    with pytest.raises(DirectoryError, match="still being deleted"):
        b.add("ann@example.com", make_secrets("pw"))
    assert [p.address for p in b.pending_deletions()] == ["ann@example.com"]
    b.finish_delete("ann@example.com", acc.incarnation)
    assert b.pending_deletions() == [] and b.warned_level("ann@example.com") == 0
    assert wait_for(lambda: a.changed(), 5)
    assert a.pending_deletions() == []


def test_adopt_keeps_every_field_and_adoption_of_a_local_file_happens_once(
        where: tuple[str, str], tmp_path: Path) -> None:
    local = Directory(tmp_path / "accounts.sqlite")
    first = local.add("ann@example.com", make_secrets("pw"), ["pop3"], Quota(5, 6))
    local.set_enabled("ann@example.com", False, "moved")
    local.set_switch("smtp", False)
    local.admins.add("root", "adminpw")
    ann = local.require("ann@example.com")
    local.close()
    shared = PgDirectory(where[0], where[1])
    try:
        assert adopt_local(shared, tmp_path / "accounts.sqlite") == 1
        assert shared.list() == [ann] and shared.get("ann@example.com") == ann
        assert ann.incarnation == first.incarnation
        assert shared.switches() == {"smtp": False} and shared.admins.verify("root", "adminpw")
        assert adopt_local(shared, tmp_path / "accounts.sqlite") == 0  # not empty any more
        kept = Account("bob@example.com", "hash", True, frozenset({"imap"}), Quota(1, 2), 12.5, "inc-1", "scram", "")
        assert shared.adopt(kept) == kept
        assert shared.adopt(kept) == kept  # again: left as it is
        with pytest.raises(DirectoryError, match="another account"):
            shared.adopt(dataclasses.replace(kept, incarnation="inc-2"))
    finally:
        shared.close()
    # The SQLite directory's adopt means the same.
    again = Directory(tmp_path / "other.sqlite")
    assert again.adopt(kept) == kept
    again.close()


def test_an_unreachable_database_is_a_quick_temporary_failure_and_cached_lookups_go_on(
        two: tuple[PgDirectory, PgDirectory], where: tuple[str, str]) -> None:
    a, _b = two
    a.add("ann@example.com", make_secrets("pw"))
    a.add("cid@example.com", make_secrets("pw"))
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = PgDirectory(f"postgresql://postgres@127.0.0.1:{port}/x", where[1])
    try:
        started = time.monotonic()
        with pytest.raises(DirectoryUnavailable):
            dead.get("ann@example.com")
        with pytest.raises(DirectoryUnavailable):  # and again at once, without trying
            asyncio.run(dead.aget("ann@example.com"))
        assert time.monotonic() - started < 2.5
        assert dead.add_scram("ann@example.com", "h", "s") is False
    finally:
        dead.close()
    # A handle whose database goes away keeps what it has looked up, one by one or in
    # one go (prefetch: the accounts of open sessions, before they are checked).
    assert a.get("ann@example.com") is not None
    asyncio.run(a.prefetch(["CID@example.com", "ghost@example.com", "ann@example.com"]))
    a.pg.dsn = f"postgresql://postgres@127.0.0.1:{port}/x"
    a.pg._pool.terminate()
    a.pg._pool = None
    assert a.get("ann@example.com") is not None and a.get("cid@example.com") is not None
    assert a.get("ghost@example.com") is None
    with pytest.raises(DirectoryUnavailable):
        a.get("bob@example.com")


def test_the_change_feed_coming_back_ends_the_back_off(where: tuple[str, str]) -> None:
    """After an outage calls fail at once for a while (the back-off); once the change
    feed's LISTEN connects again the database is known to answer, and calls go through
    without waiting out the rest of it."""
    proxy = PgProxy(where[0])
    d = PgDirectory(proxy.dsn, where[1])
    try:
        d.add("ann@example.com", make_secrets("pw"))
        proxy.cut()
        with pytest.raises(DirectoryUnavailable):
            d.get("bob@example.com")  # not cached: it needs the database
        d.pg._down_until = time.monotonic() + 60  # as after many failures in a row
        with pytest.raises(DirectoryUnavailable):
            d.get("bob@example.com")
        proxy.restore()

        def answers() -> bool:
            try:
                return d.get("bob@example.com") is None  # asked of the database: no such account
            except DirectoryUnavailable:
                return False

        assert wait_for(answers, timeout=10)
    finally:
        d.close()
        proxy.cut()
