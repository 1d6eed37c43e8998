"""The server reaches the store only through the Store interface: `letterbox repair`
against a store without repair says so and ends nobody's session; Maildir's repair runs
through the same control command."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from letterbox.config import load
from letterbox.server.app import Server
from tests.store.barestore import Bare

USER = "a@example.com"


def test_repair_needs_a_store_that_can(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "letterbox.toml"
    config.write_text("[server]\ndata_dir = 'data'\nrun_dir = 'run'\n")
    server = Server(load(config))
    maildir = server.ctx.store
    ended: list[str] = []
    monkeypatch.setattr(server, "_end_sessions", lambda address, reason: ended.append(address))
    repair = {"cmd": "repair", "address": USER}
    try:
        server.ctx.directory.add(USER, "$argon2id$not-for-logins", ("imap",))
        server.ctx.store = Bare()
        reply = asyncio.run(server._handle_control(repair))
        assert reply == {"ok": False, "error": "this store has no repair"}
        assert ended == []
        server.ctx.store = maildir
        reply = asyncio.run(server._handle_control(repair))
        assert reply["ok"], reply
        assert reply["report"]["problems"] == [] and ended == [USER]
    finally:
        server.retention.close()
        asyncio.run(maildir.close())
        server.ctx.directory.close()
