"""INPROGRESS (RFC 9585): how far a long command has got, told while it runs.

Every command gets a `Progress` from the dispatcher (`IMAPSession.progress`). Long ones
call `step` where a whole line may go out (between the responses they send, between the
batches of store work) and where they let other sessions run anyway. A notice goes out
only when `[imap] progress_interval` seconds have passed since the command began or since
its last notice, so a quick command never sends one and a slow one sends one per
interval, however many messages it handles in between::

    * OK [INPROGRESS ("A7" 15000 100000)] 15000 of 100000 done

The count and total are NIL when the command cannot tell them (RFC 9585 allows it). A
command that works in phases (SEARCH narrows its candidates key by key, SORT then reads
their sort keys) counts within the phase it is in.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from . import wire

if TYPE_CHECKING:
    from .session import IMAPSession

_clock = time.monotonic


class Progress:
    __slots__ = ("session", "tag", "total", "done", "_interval", "_next")

    def __init__(self, session: IMAPSession, tag: str, total: int | None = None) -> None:
        self.session = session
        self.tag = tag
        self.total = total
        """Items the command works on, when it knows (messages, or mailboxes searched)."""
        self.done = 0
        self._interval = session.settings.progress_interval
        self._next = _clock() + self._interval

    def due(self) -> bool:
        """Whether the next `step` sends a notice (a caller holding unsent responses
        sends them first, so the notice comes after them)."""
        return _clock() >= self._next

    async def step(self, done: int | None = None, total: int | None = None) -> None:
        """*done* of *total* items are handled (either may be left out): send a notice
        if one is due, and let other sessions run either way."""
        if total is not None:
            self.total = total
        if done is not None:
            self.done = done
        if not self.due():
            await asyncio.sleep(0)
            return
        self.session.send(self.notice())
        self._next = _clock() + self._interval
        await self.session.flush(now=True)

    def notice(self) -> bytes:
        # A "]" in the tag would end the response code early: NIL instead (tags may hold
        # one; Dovecot does the same). The count stays below the total: it counts what
        # is done, and the command is not done.
        tag = b"NIL" if "]" in self.tag else wire.quoted(self.tag)
        total = self.total if self.total else None
        if total is not None:
            done = min(self.done, total - 1)
            return wire.untagged_status(
                "OK", f"{done} of {total} done", f"INPROGRESS ({tag.decode()} {done} {total})"
            )
        if self.done:
            return wire.untagged_status("OK", f"{self.done} done", f"INPROGRESS ({tag.decode()} {self.done} NIL)")
        return wire.untagged_status("OK", "Still working", f"INPROGRESS ({tag.decode()} NIL NIL)")
