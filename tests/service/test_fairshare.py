"""Pipelined commands go after the commands of clients waiting for their answers
(service/fairshare.py), counted in turns of the event loop, not in time."""

from __future__ import annotations

import asyncio

from letterbox.service.fairshare import ALLOWANCE_BURST, Allowance, LoopShare


async def _turns_until(done: asyncio.Future[None], busy: LoopShare | None = None) -> int:
    """Turns of the loop until *done*; with *busy*, an interactive command on each."""
    turns = 0
    while not done.done():
        if busy is not None:
            busy.note_interactive()
        turns += 1
        await asyncio.sleep(0)
    return turns


def test_alone_a_pipelined_command_waits_two_turns_only() -> None:
    async def main() -> int:
        share = LoopShare()
        waiting = asyncio.ensure_future(share.after_pipelined(10.0))
        turns = await _turns_until(waiting)
        await waiting
        return turns

    assert asyncio.run(main()) <= 3


def test_beside_busy_sessions_it_waits_while_they_run_and_is_never_starved() -> None:
    async def main() -> tuple[int, int]:
        share = LoopShare()
        waiting = asyncio.ensure_future(share.after_pipelined(0.005))
        # Bounded by the wait the command earned (19 times 5 ms), not by the busy task:
        # a starved command would make this hang, so it is capped well above.
        turns = await asyncio.wait_for(_turns_until(waiting, busy=share), timeout=30)
        await waiting
        return turns, share.interactive

    turns, interactive = asyncio.run(main())
    assert interactive == turns
    assert turns > 50  # other commands ran while it waited


def test_the_wait_grows_with_the_cost_of_the_command() -> None:
    async def waited(spent: float) -> int:
        share = LoopShare()
        waiting = asyncio.ensure_future(share.after_pipelined(spent))
        turns = await asyncio.wait_for(_turns_until(waiting, busy=share), timeout=30)
        await waiting
        return turns

    cheap = asyncio.run(waited(0.0001))
    dear = asyncio.run(waited(0.01))
    assert dear > cheap


def test_a_few_pipelined_commands_are_within_the_allowance() -> None:
    allowance = Allowance()
    assert allowance.spend(ALLOWANCE_BURST * 0.4)
    assert allowance.spend(ALLOWANCE_BURST * 0.4)
    assert not allowance.spend(ALLOWANCE_BURST * 0.4)  # the rest waits its turn
    assert not allowance.spend(0.0)  # until time refills it
