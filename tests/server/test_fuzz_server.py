"""A short whole-server fuzz run: for each protocol state, seeded random and mutated
command streams over raw sockets (see tests/server/fuzzing.py); the long run is
tools/fuzz_server.py.

LETTERBOX_FUZZ_SEED picks other streams, LETTERBOX_FUZZ_STREAMS how many per state.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerProcess
from tests.server.fuzzing import (
    CASES,
    SERVER_OPTIONS,
    LogWatcher,
    Target,
    Timing,
    prepare,
    run_case,
)

SEED = int(os.environ.get("LETTERBOX_FUZZ_SEED", "1"))
STREAMS = int(os.environ.get("LETTERBOX_FUZZ_STREAMS", "20"))


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, tls_pair: tuple[Path, Path]) -> Iterator[Target]:
    srv = ServerProcess(tmp_path_factory.mktemp("fuzz"), tls_pair, **SERVER_OPTIONS)
    srv.start()
    try:
        watcher = LogWatcher(srv.log)
        # A server answering costs no wait; 3 s of silence before "stuck" leaves room for
        # fsyncs on a loaded machine (LMTP's DATA ends with them).
        t = prepare(srv, Timing(reply=3.0, quiet=0.05))
        assert not watcher.new_problems(), srv.log_text()
        yield t
    finally:
        srv.stop()


@pytest.mark.parametrize("case", [c.name for c in CASES])
def test_fuzz_streams(target: Target, case: str) -> None:
    assert target.alive(), "the server died in an earlier case"
    _, failures = run_case(target, case, SEED, STREAMS)
    if failures:
        pytest.fail(f"seed {SEED}, {len(failures)} failing streams:\n\n" + "\n\n".join(failures), pytrace=False)
