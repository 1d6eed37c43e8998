"""Console administrators, API tokens, the audit log and the accounts listing, on the
directory alone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from letterbox.auth.admins import AdminError
from letterbox.auth.directory import Directory
from letterbox.auth.listing import account_page, totals
from letterbox.store.api import Quota


@pytest.fixture
def directory(tmp_path: Path) -> Directory:
    d = Directory(tmp_path / "accounts.sqlite")
    yield d  # type: ignore[misc]
    d.close()


def test_administrators_are_not_accounts(directory: Directory) -> None:
    admins = directory.admins
    assert admins.add("Root", "a-long-secret") == "root"
    with pytest.raises(AdminError, match="already exists"):
        admins.add("root", "x")
    for bad in ("alice@example.com", "", "1root", "a" * 65, "ro ot"):
        with pytest.raises(AdminError, match="not an administrator name"):
            admins.add(bad, "pw")
    assert admins.verify("root", "a-long-secret") and not admins.verify("root", "wrong")
    assert not admins.verify("nobody", "a-long-secret")
    assert directory.get("root") is None  # no mail account of that name
    assert admins.stored_hash("root", ).startswith("$argon2id$")  # type: ignore[union-attr]
    admins.set_password("root", "another-secret")
    assert admins.verify("root", "another-secret")
    with pytest.raises(AdminError):
        admins.set_password("nobody", "x")


def test_tokens_are_stored_as_digests_and_revocable(directory: Directory) -> None:
    admins = directory.admins
    admins.add("ops", "secret-secret")
    token = admins.new_token("ops", "prometheus")
    assert token.startswith("lbx_") and admins.token_admin(token) == "ops"
    stored = directory.db.execute("SELECT digest FROM api_tokens").fetchall()
    assert token not in str(stored)
    assert admins.token_admin(token + "x") is None and admins.token_admin("nope") is None
    [t] = admins.tokens()
    assert t.label == "prometheus"
    with pytest.raises(AdminError, match="8 hex"):
        admins.revoke("abc")
    assert admins.revoke(t.digest[:10]) == 1 and admins.token_admin(token) is None
    with pytest.raises(AdminError, match="no administrator"):
        admins.new_token("ghost")
    second = admins.new_token("ops")
    admins.remove("ops")  # its tokens go with it
    assert admins.token_admin(second) is None


def test_audit_log_newest_first(directory: Directory) -> None:
    directory.audit.write("admin:root", "10.0.0.1", "disabled POP3")
    directory.audit.write("cli:root", "local", "created account a@example.com")
    entries = directory.audit.recent()
    assert [e.what for e in entries] == ["created account a@example.com", "disabled POP3"]
    assert [e.what for e in directory.audit.recent(about="a@example.com")] == ["created account a@example.com"]


def test_account_listing_in_sql_for_ten_thousand_accounts(directory: Directory) -> None:
    now = time.time()
    rows = [(f"user{i:05d}@example.com", "x", 1, "imap pop3", 10_000 if i % 10 == 0 else 0, 0, now + i, f"inc{i}",
             "", "") for i in range(10_000)]
    directory.db.execute("BEGIN")
    directory.db.executemany(f"INSERT INTO accounts ({directory._COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    directory.db.execute("COMMIT")
    directory.record_usage([(f"user{i:05d}@example.com", i % 7, i) for i in range(10_000)])
    page = account_page(directory, sort="bytes", descending=True, limit=3)
    assert page.total == 10_000
    assert [r.address for r in page.rows] == ["user09999@example.com", "user09998@example.com",
                                              "user09997@example.com"]
    over = account_page(directory, over_percent=50, sort="percent", descending=True, limit=500)
    # Every tenth account has 10,000 bytes of quota; those from 5,000 bytes used are over half.
    assert over.total == 500 and over.rows[0].address == "user09990@example.com" and over.rows[0].percent == 99.9
    found = account_page(directory, search="user0004", limit=50)
    assert found.total == 10 and found.rows[0].address == "user00040@example.com"
    # LIKE wildcards in the search are taken literally.
    assert account_page(directory, search="user_0").total == 0
    assert account_page(directory, offset=9_999).rows[0].address == "user09999@example.com"
    assert totals(directory) == (10_000, sum(i % 7 for i in range(10_000)), sum(range(10_000)))
    with pytest.raises(ValueError):
        account_page(directory, sort="password")


def test_deleting_an_account_forgets_what_the_server_noted(directory: Directory) -> None:
    acc = directory.add("gone@example.com", "hash", quota=Quota(bytes=1))
    directory.record_usage([(acc.address, 1, 100)])
    directory.record_logins([(acc.address, "imap", 1.0, "127.0.0.1")])
    directory.set_warned_level(acc.address, 80)
    directory.mark_deleted(acc.address)
    directory.finish_delete(acc.address, acc.incarnation)
    for table in ("usage", "last_login", "quota_warned"):
        assert directory.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0


def test_disabled_message_is_one_printable_line(directory: Directory) -> None:
    directory.add("m@example.com", "hash")
    acc = directory.set_enabled("m@example.com", False, "Unpaid\r\n* BYE é " + "x" * 300)
    assert acc.disabled_message.startswith("Unpaid * BYE ? x") and len(acc.disabled_message) == 200
    assert directory.set_enabled("m@example.com", True, "ignored").disabled_message == ""
