"""POP3 core fixtures: a real Context on a temp dir and a session driven without sockets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from letterbox.auth.passwords import make_secrets
from letterbox.config import AuthSettings, POP3Settings, ServerSettings, Settings
from letterbox.server.context import build_context

from .pop3util import ALICE, HOST, PASSWORD, Env, MakeEnv, run


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[MakeEnv]:
    made: list[Env] = []

    def factory(**pop3: Any) -> Env:
        settings = Settings(
            server=ServerSettings(hostname=HOST, data_dir=tmp_path / f"data{len(made)}"),
            auth=AuthSettings(failure_delay=0, cache_ttl=60),
            pop3=POP3Settings(**pop3),
        )
        ctx = build_context(settings)
        ctx.directory.add(ALICE, make_secrets(PASSWORD))
        env = Env(ctx)
        made.append(env)
        return env

    yield factory
    for env in made:
        run(env.ctx.store.close())
        env.ctx.directory.close()


@pytest.fixture
def env(make_env: MakeEnv) -> Env:
    return make_env()
