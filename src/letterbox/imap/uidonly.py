"""UIDONLY (RFC 9586): after ENABLE UIDONLY a session speaks of messages by UID alone.

In requests, message sequence numbers are refused with BAD [UIDREQUIRED] (section 3):
the non-UID forms of the commands that take them, a sequence set among the search keys
of UID SEARCH, UID SORT, UID THREAD and ESEARCH, and the sequence match data of SELECT's
QRESYNC parameter. In responses (see `SelectedView` and the FETCH module) FETCH becomes
UIDFETCH, which names the message by its UID, EXPUNGE becomes VANISHED, and SELECT leaves
out [UNSEEN n]. EXISTS and the counts stay: they are no message numbers.
"""

from __future__ import annotations

from . import grammar as g

_NUMBERED = frozenset({"FETCH", "STORE", "SEARCH", "COPY", "MOVE", "SORT", "THREAD", "REPLACE"})
"""Commands whose non-UID form takes or returns message sequence numbers."""


def numbers_in(cmd: g.Command) -> str | None:
    """Why *cmd* needs message sequence numbers, or None when it does not."""
    if cmd.name in _NUMBERED and not getattr(cmd, "uid", False):
        return f"{cmd.name} uses message sequence numbers; UID {cmd.name} is required"
    key = getattr(cmd, "key", None)
    if key is not None and _sequence_set_in(key):
        return "Message sequence numbers in a search; UID sets are required"
    if isinstance(cmd, g.Select) and cmd.qresync is not None and cmd.qresync.seq_match is not None:
        return "QRESYNC sequence match data uses message sequence numbers"
    return None


def _sequence_set_in(key: g.SearchKey) -> bool:
    if isinstance(key, g.SearchSet):
        # "$" is the saved result, which is UIDs; "UID set" is UIDs.
        return not key.uid and not key.sequence_set.last_result
    if isinstance(key, g.SearchNot):
        return _sequence_set_in(key.key)
    if isinstance(key, g.SearchOr):
        return _sequence_set_in(key.left) or _sequence_set_in(key.right)
    if isinstance(key, g.SearchAnd):
        return any(_sequence_set_in(k) for k in key.keys)
    return False
