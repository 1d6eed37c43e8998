"""`letterbox store migrate`: the versions before and after on PostgreSQL, nothing to do
on Maildir, one clear line when the database cannot be reached."""

from __future__ import annotations

import asyncio
from pathlib import Path

from click.testing import CliRunner

from letterbox.cli.main import _register, cli
from tests.store.postgres.harness import fresh_database


def run(tmp_path: Path, store: str) -> tuple[int, str]:
    config = tmp_path / "letterbox.toml"
    config.write_text(f"[server]\ndata_dir = 'data'\n[store]\n{store}\n")
    _register()
    result = CliRunner().invoke(cli, ["-c", str(config), "store", "migrate"])
    return result.exit_code, result.output


def test_maildir_has_nothing_to_migrate(tmp_path: Path) -> None:
    assert run(tmp_path, "backend = 'maildir'") == (0, "maildir store: nothing to migrate\n")


def test_migrates_a_new_database_then_finds_it_up_to_date(tmp_path: Path) -> None:
    dsn = asyncio.run(fresh_database())
    code, out = run(tmp_path, f"backend = 'postgresql'\ndsn = '{dsn}'")
    assert code == 0, out
    assert out.startswith("schema migrated from version 0 to ")
    latest = out.split()[-1]
    assert int(latest) >= 1
    assert run(tmp_path, f"backend = 'postgresql'\ndsn = '{dsn}'") == (0, f"schema at version {latest}: up to date\n")


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    code, out = run(tmp_path, "backend = 'postgresql'\ndsn = 'postgresql://u:hunter2@127.0.0.1:1/mail'")
    assert code == 1
    assert "cannot connect to the PostgreSQL store" in out and "hunter2" not in out
    assert "Traceback" not in out and out.count("\n") == 1
