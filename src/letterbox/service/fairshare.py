"""How one event loop's time is shared between sessions that wait for their answers and
sessions that pipeline.

Every session of a process runs on one event loop. A client that waits for each answer
before it sends the next command needs little of the loop, but needs it at once: its
user is waiting. A client that pipelines (hundreds of commands in one write) could have
one command running at every turn of the loop, and each of its commands delays everyone
whose command arrives meanwhile. So a pipelined command goes after the interactive ones:
once it has run, its session waits while other sessions' commands keep coming, for up to
PIPELINE_YIELD times the time its command took. Alone on the server, or beside sessions
that are quiet, a pipelining client runs at full speed; beside busy ones it still gets at
least 1/(1 + PIPELINE_YIELD) of the loop, so it is slowed, never starved.

A mail client pipelines too, a few commands at a time (the bodies it is about to show,
a couple of STOREs): each session has a small allowance of pipelined time (Allowance)
that takes its turns as an interactive command does; only what goes past it waits.
"""

from __future__ import annotations

import asyncio
import time

PIPELINE_YIELD = 19
"""A pipelining session beside busy ones gets at least 1/20 of the loop."""
MAX_WAIT = 0.25
"""The longest a pipelined command waits for its turn (seconds)."""
_POLL = 0.002
ALLOWANCE_RATE = 0.025
"""Seconds of pipelined loop time per second a session may use without waiting..."""
ALLOWANCE_BURST = 0.025
"""...and at most this much at once."""


class Allowance:
    """A session's pipelined loop time that needs no waiting: a token bucket."""

    __slots__ = ("left", "at")

    def __init__(self) -> None:
        self.left = ALLOWANCE_BURST
        self.at = time.monotonic()

    def spend(self, spent: float) -> bool:
        """Take *spent* seconds; whether they were within the allowance."""
        now = time.monotonic()
        self.left = min(ALLOWANCE_BURST, self.left + (now - self.at) * ALLOWANCE_RATE) - spent
        self.at = now
        return self.left >= 0


class LoopShare:
    """Counts the commands that arrive one at a time, and makes pipelined ones wait
    while such commands keep coming."""

    __slots__ = ("interactive",)

    def __init__(self) -> None:
        self.interactive = 0
        """Commands run so far that the client sent on their own (not pipelined)."""

    def note_interactive(self) -> None:
        self.interactive += 1

    async def after_pipelined(self, spent: float) -> None:
        """Called after a pipelined command that took *spent* seconds: return once no
        other session's command came in for a turn of the loop, or after the wait."""
        seen = self.interactive
        # Two turns: a client's bytes wake its connection's task on one turn, and its
        # command runs on the next.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        if self.interactive == seen:
            return
        deadline = time.monotonic() + min(spent * PIPELINE_YIELD, MAX_WAIT)
        while self.interactive != seen:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            seen = self.interactive
            await asyncio.sleep(min(_POLL, left))


SHARE = LoopShare()
"""The share of this process's event loop (one loop per process)."""
