"""A mailbox's keyword list: grows, never shrinks, bounded for clients."""

from __future__ import annotations

import pytest

from letterbox.store.api import LimitExceeded, Limits
from letterbox.store.rules.keywords import accumulate


def test_new_keywords_join_the_list_sorted() -> None:
    assert accumulate(["$b"], ["$a", "\\Seen", "$b"], Limits()) == ["$a", "$b"]


def test_nothing_new_is_no_change() -> None:
    assert accumulate(["$a"], ["$a", "\\Seen", "\\Deleted"], Limits()) is None
    assert accumulate([], [], Limits()) is None


def test_clients_may_not_pass_the_limit() -> None:
    limits = Limits(keywords=2)
    assert accumulate(["$a"], ["$b"], limits, limit=True) == ["$a", "$b"]
    with pytest.raises(LimitExceeded):
        accumulate(["$a", "$b"], ["$c"], limits, limit=True)
    # The limit counts the list, not the flags given: known ones cost nothing.
    assert accumulate(["$a", "$b"], ["$a", "$b"], limits, limit=True) is None


def test_copies_carry_their_keywords_past_the_limit() -> None:
    assert accumulate(["$a", "$b"], ["$c"], Limits(keywords=2)) == ["$a", "$b", "$c"]
