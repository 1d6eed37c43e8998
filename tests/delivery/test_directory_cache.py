"""Delivery looks recipients up in a cache: a change made through another connection
(the CLI) or through the server's own must show at the very next lookup."""

from __future__ import annotations

from pathlib import Path

from letterbox.auth.directory import Directory
from letterbox.store.api import Quota


def test_other_connections_changes_show_at_once(tmp_path: Path) -> None:
    server = Directory(tmp_path / "accounts.sqlite")
    cli = Directory(tmp_path / "accounts.sqlite")
    try:
        cli.add("alice@example.com", "x")
        assert server.local_domains() == {"example.com"}
        assert server.get("alice@example.com").enabled  # type: ignore[union-attr]
        assert server.get("bob@example.org") is None

        cli.set_enabled("alice@example.com", False)
        assert not server.get("Alice@Example.com").enabled  # type: ignore[union-attr]
        cli.add("bob@example.org", "x")
        assert server.get("bob@example.org") is not None
        assert server.local_domains() == {"example.com", "example.org"}
        cli.set_quota("bob@example.org", Quota(bytes=1000))
        assert server.get("bob@example.org").quota == Quota(bytes=1000)  # type: ignore[union-attr]
        cli.mark_deleted("bob@example.org")
        assert server.get("bob@example.org") is None
        assert server.local_domains() == {"example.com"}
    finally:
        server.close()
        cli.close()


def test_own_writes_show_at_once(tmp_path: Path) -> None:
    d = Directory(tmp_path / "accounts.sqlite")
    try:
        assert d.get("carol@example.net") is None
        assert d.local_domains() == frozenset()
        d.add("carol@example.net", "x")
        assert d.get("carol@example.net") is not None
        assert d.local_domains() == {"example.net"}
        d.set_protocols("carol@example.net", ["imap"])
        assert d.get("carol@example.net").protocols == {"imap"}  # type: ignore[union-attr]
        d.set_password("carol@example.net", "y")
        assert d.get("carol@example.net").password_hash == "y"  # type: ignore[union-attr]
        d.mark_deleted("carol@example.net")
        assert d.get("carol@example.net") is None
        assert d.local_domains() == frozenset()
    finally:
        d.close()
