"""Named points between the steps of multi-step store writes, for fault-injection tests.

Store code calls `point("append.renamed")` between two steps. Unarmed, that is a test of
an empty dict. A test arms a point to raise an OSError with a chosen errno (ENOSPC, EIO,
ENAMETOOLONG...) or to kill the process with SIGKILL, on its Nth hit; a server process
arms points from LETTERBOX_FAULTS ("append.renamed=kill,expunge.committed=EIO@2"), which
only the test suite sets. `recording()` lists the points an operation passes, so the
tests can fail it at every step without keeping their own list in step with the code.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Iterator

ENV = "LETTERBOX_FAULTS"

_armed: dict[str, tuple[str, int]] = {}
"""point -> (action, hits left before it fires)."""
_recorders: list[list[str]] = []


class InjectedFault(OSError):
    """An OSError raised on purpose at a named point."""


def point(name: str) -> None:
    """A step boundary. Does nothing unless a test armed or records points."""
    if _armed or _recorders:
        _reach(name)


def _reach(name: str) -> None:
    for rec in _recorders:
        rec.append(name)
    entry = _armed.get(name)
    if entry is None:
        return
    action, left = entry
    if left > 1:
        _armed[name] = (action, left - 1)
        return
    del _armed[name]
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    code = getattr(errno, action)
    raise InjectedFault(code, f"{os.strerror(code)} (injected at {name})")


def arm(name: str, action: str, hit: int = 1) -> None:
    """Fire at the *hit*-th pass of *name*: "kill", or an errno name such as "ENOSPC"."""
    if action != "kill" and not isinstance(getattr(errno, action, None), int):
        raise ValueError(f"unknown fault action {action!r}")
    _armed[name] = (action, hit)


def disarm() -> None:
    _armed.clear()


def armed() -> dict[str, tuple[str, int]]:
    return dict(_armed)


def load_env(value: str | None = None) -> None:
    """Arm the points listed in *value* (default: the LETTERBOX_FAULTS variable)."""
    spec = os.environ.get(ENV, "") if value is None else value
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, rest = item.partition("=")
        action, _, hit = rest.partition("@")
        arm(name.strip(), action.strip() or "kill", int(hit) if hit else 1)


@contextlib.contextmanager
def recording() -> Iterator[list[str]]:
    """The names of the points passed inside the block, in order."""
    rec: list[str] = []
    _recorders.append(rec)
    try:
        yield rec
    finally:
        _recorders.remove(rec)
