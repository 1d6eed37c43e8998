"""The mailbox tree's rules, on a set of names standing for any backend's."""

from __future__ import annotations

import pytest

from letterbox.store.api import BadMailboxName, LimitExceeded, Limits, MailboxExists, StoreError
from letterbox.store.rules import mailboxes as rules
from letterbox.store.rules import recent

TREE = {"INBOX", "Work", "Work/2024", "Work/2024/Q1", "Sent"}


def test_create_makes_missing_parents_first() -> None:
    assert rules.to_create("a/b/c", TREE.__contains__) == ["a", "a/b", "a/b/c"]
    assert rules.to_create("Work/New", TREE.__contains__) == ["Work/New"]
    with pytest.raises(MailboxExists):
        rules.to_create("Work/2024", TREE.__contains__)


def test_mailbox_count_limit() -> None:
    rules.check_count(8, 2, Limits(mailboxes=10))
    with pytest.raises(LimitExceeded):
        rules.check_count(9, 2, Limits(mailboxes=10))


def test_one_mailbox_per_special_use() -> None:
    rules.check_special_use(None, lambda use: True)
    rules.check_special_use("\\Archive", {"\\Sent"}.__contains__)
    with pytest.raises(MailboxExists):
        rules.check_special_use("\\Sent", {"\\Sent"}.__contains__)


def test_delete_refuses_inbox_and_parents() -> None:
    with pytest.raises(StoreError, match="INBOX"):
        rules.check_delete("INBOX", False)
    with pytest.raises(StoreError, match="children"):
        rules.check_delete("Work", True)
    rules.check_delete("Work/2024/Q1", False)


def test_rename_targets() -> None:
    with pytest.raises(MailboxExists):
        rules.check_rename("Work", "Sent", TREE.__contains__)
    with pytest.raises(BadMailboxName):
        rules.check_rename("Work", "Work/2024/Inner", TREE.__contains__)
    rules.check_rename("Work", "Workshop", TREE.__contains__)  # a prefix, not a child
    # RFC 3501 6.3.5: INBOX's children stay where they are, so INBOX/x is a fine target.
    rules.check_rename("INBOX", "INBOX/old", TREE.__contains__)


def test_renamed_children_follow_and_stay_valid() -> None:
    assert rules.renamed("Work", "Play", "Work/2024/Q1") == "Play/2024/Q1"
    assert rules.renamed("Work", "Play", "Work") == "Play"
    deep = "/".join(["d"] * 15)
    with pytest.raises(BadMailboxName):
        rules.renamed("Work", deep, "Work/2024/Q1")
    assert rules.missing_parents("x/y/Work", TREE.__contains__) == ["x", "x/y"]


def test_subscriptions_are_bounded() -> None:
    rules.check_subscribe(9, Limits(mailboxes=10))
    with pytest.raises(LimitExceeded):
        rules.check_subscribe(10, Limits(mailboxes=10))


def test_mailboxid_follows_uidvalidity() -> None:
    assert rules.mailbox_objectid(0x1234) == "F00001234"
    assert rules.mailbox_objectid(1) != rules.mailbox_objectid(2)


def test_recent_is_claimed_once() -> None:
    assert recent.recent_range(3, 7) == (3, 7)
    taken, mark = recent.claim(3, 7)
    assert taken == (3, 7) and recent.recent_range(mark, 7) == (7, 7)
    assert recent.recent_range(mark, 9) == (7, 9)
