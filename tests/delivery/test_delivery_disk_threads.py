"""The worker threads that wait on fsync for every delivered copy."""

from __future__ import annotations

import asyncio
import threading

import pytest

from letterbox.store.maildir.files import disk_threads


def test_results_errors_and_cancellation() -> None:
    async def go() -> None:
        assert await disk_threads.run(pow, 2, 10) == 1024
        with pytest.raises(ZeroDivisionError):
            await disk_threads.run(divmod, 1, 0)
        gate = threading.Event()
        blocked = disk_threads.run(gate.wait, 10)
        blocked.cancel()
        gate.set()
        # The cancelled call finishes in its thread without harm; the pool goes on.
        assert await asyncio.gather(*(disk_threads.run(abs, -i) for i in range(50))) == list(range(50))

    asyncio.run(go())


def test_a_closed_loop_does_not_cost_a_thread() -> None:
    gate = threading.Event()

    async def leave_one_running() -> None:
        disk_threads.run(gate.wait, 10)

    for _ in range(20):  # more loops gone than there are threads
        gate.clear()
        asyncio.run(leave_one_running())
        gate.set()

    async def go() -> list[int]:
        return await asyncio.wait_for(
            asyncio.gather(*(disk_threads.run(abs, -i) for i in range(40))), 10
        )

    assert asyncio.run(go()) == list(range(40))
