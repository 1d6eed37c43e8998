"""Quota checks, the Trash grace and what the Trash counts.

A write that grows the account (APPEND, delivery, COPY) is checked against the usage
before it starts (so nothing is written in vain) and, by backends that can, again inside
the transaction that allocates its UIDs (so two writes cannot both take the last room).
MOVE and flag changes are never refused: clients delete by moving to Trash, and must be
able to at the limit.
"""

from __future__ import annotations

from collections.abc import Callable

from ..api import OverQuota, Quota, Usage

TRASH = "\\Trash"
TRASH_GRACE = 0.1
"""How far past the quota a COPY into the Trash may go (a client without MOVE deletes by
COPY to Trash, then EXPUNGE: at the limit that must still work, as Dovecot's
quota_grace, or a full mailbox could not be emptied)."""


def applies(quota: Quota | None) -> bool:
    """Whether *quota* limits anything (a Quota of zeros is no limit)."""
    return quota is not None and bool(quota.bytes or quota.messages)


def check(quota: Quota | None, usage: Callable[[bool], Usage], add_bytes: int, add_messages: int) -> None:
    """Raise OverQuota if adding *add_messages* of *add_bytes* passes *quota*. *usage*
    reads the account's usage (with or without the Trash, as the quota counts it); it is
    not called when there is no quota."""
    if quota is None or not applies(quota):
        return
    if quota.exceeded_by(usage(quota.count_trash), add_bytes, add_messages):
        raise OverQuota("quota exceeded")


def for_destination(quota: Quota | None, special_use: str | None) -> Quota | None:
    """The quota a COPY into a mailbox of *special_use* is held to: the Trash gets the
    grace."""
    if quota is not None and special_use == TRASH:
        return quota.with_grace(TRASH_GRACE)
    return quota


def counts(special_use: str | None, count_trash: bool) -> bool:
    """Whether a mailbox's messages count toward usage (the trash_counts policy)."""
    return count_trash or special_use != TRASH
