"""What the console needs of the server that runs it.

The server starts the console and hands itself over; the console sees it only through
this interface, so the web package stands below the server and imports nothing of it
(server.app.Server implements it, and mypy checks that it does).
"""

from __future__ import annotations

from typing import Any, Protocol

from ..config import Settings
from ..policy import Policy
from ..service.context import Context


class UsageMarks(Protocol):
    """The server's usage table, as far as the console reads and pokes it."""

    @property
    def scanned(self) -> bool:
        """Every account has been measured once since start-up."""

    def mark(self, address: str) -> None:
        """Measure *address* again soon (and judge its quota warning)."""


class Host(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def ctx(self) -> Context: ...

    @property
    def usage(self) -> UsageMarks: ...

    @property
    def started(self) -> float:
        """time.time() at start-up."""

    @property
    def bound(self) -> dict[str, list[str]]:
        """Listener label -> addresses bound."""

    @property
    def configured_policy(self) -> Policy:
        """The policies as the config file has them, before run-time overrides."""

    def configured(self, service: str) -> bool: ...

    def switches(self) -> dict[str, bool]: ...

    # With several worker processes these ask the others, hence async.
    async def session_counts(self) -> dict[str, int]:
        """Open sessions per service, in every worker that answered in time."""

    def local_session_counts(self) -> dict[str, int]:
        """This process's alone, read synchronously (the /metrics gauges)."""

    async def sessions(self, address: str | None = None) -> list[dict[str, Any]]:
        """Open IMAP and POP3 sessions (of *address* only, if given), oldest first."""

    async def disconnect(self, session_id: int, reason: str, address: str | None = None) -> bool:
        """End one session, in whichever worker holds it; False when there is none
        (of *address*, if given)."""

    async def directory_changed(self) -> None: ...
