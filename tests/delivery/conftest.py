"""Fixtures for the delivery tests (see delivery_support.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .delivery_support import Harness

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_factory(request: pytest.FixtureRequest) -> LoopFactory:
    """Both event loops: the server runs on uvloop when it is installed, whose transports
    are not asyncio's classes."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory: LoopFactory = uvloop.new_event_loop
        return factory
    return asyncio.new_event_loop


@pytest.fixture
def make_harness(tmp_path: Path, loop_factory: LoopFactory) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def factory(**delivery: Any) -> Harness:
        h = Harness(tmp_path / f"h{len(made)}", loop_factory=loop_factory, **delivery)
        made.append(h)
        return h

    yield factory
    for h in made:
        h.close()


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()
