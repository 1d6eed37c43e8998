"""Quota checks, the Trash grace and the trash_counts policy."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from letterbox.store.api import OverQuota, Quota, Usage
from letterbox.store.rules import quotas


def _usage(messages: int, size: int) -> Callable[[bool], Usage]:
    def read(count_trash: bool) -> Usage:
        return Usage(messages, size) if count_trash else Usage(messages - 1, size - 100)

    return read


def test_no_quota_reads_no_usage() -> None:
    def never(count_trash: bool) -> Usage:
        raise AssertionError("usage read without a quota")

    quotas.check(None, never, 10**9, 10**6)
    quotas.check(Quota(), never, 10**9, 10**6)
    assert not quotas.applies(Quota()) and quotas.applies(Quota(bytes=1)) and quotas.applies(Quota(messages=1))


def test_bytes_and_messages_limits() -> None:
    quotas.check(Quota(bytes=1000), _usage(5, 900), 100, 1)
    with pytest.raises(OverQuota):
        quotas.check(Quota(bytes=1000), _usage(5, 900), 101, 1)
    quotas.check(Quota(messages=6), _usage(5, 900), 10**6, 1)
    with pytest.raises(OverQuota):
        quotas.check(Quota(messages=6), _usage(5, 900), 0, 2)


def test_trash_left_out_when_it_does_not_count() -> None:
    with pytest.raises(OverQuota):
        quotas.check(Quota(bytes=1000), _usage(5, 1000), 50, 1)
    quotas.check(Quota(bytes=1000, count_trash=False), _usage(5, 1000), 50, 1)
    assert quotas.counts("\\Trash", True) and not quotas.counts("\\Trash", False)
    assert quotas.counts(None, False) and quotas.counts("\\Junk", False)


def test_copy_into_trash_gets_the_grace() -> None:
    q = Quota(bytes=1000, messages=10)
    assert quotas.for_destination(q, "\\Trash") == Quota(1100, 11)
    assert quotas.for_destination(q, "\\Junk") is q
    assert quotas.for_destination(None, "\\Trash") is None
    assert quotas.for_destination(Quota(bytes=1000, count_trash=False), "\\Trash") == Quota(1100, 0, False)
