"""Console fixtures: a real server with the web console on an ephemeral port."""

from __future__ import annotations

import pytest

from .webutil import Console, start_console


@pytest.fixture
def console(make_server: object) -> Console:
    return start_console(make_server)
