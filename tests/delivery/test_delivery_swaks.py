"""Interoperability with a real SMTP/LMTP client: swaks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .delivery_support import Harness, require_program, split_trace

MSG = b"Subject: swaks\r\nMessage-ID: <sw@remote.example>\r\n\r\n\xc3\xa9t\xc3\xa9\r\n.dotted line\r\n"


@pytest.fixture
def swaks() -> str:
    return require_program("swaks")


def run_swaks(swaks: str, tmp_path: Path, to: str, *args: str) -> str:
    data = tmp_path / "message.eml"
    # --no-data-fixup sends the file as DATA verbatim, so it carries its own dot-stuffing
    # and end marker; what the server stores must then be MSG exactly.
    data.write_bytes(MSG.replace(b"\r\n.", b"\r\n..") + b".\r\n")
    proc = subprocess.run(
        [swaks, "--to", to, "--from", "x@remote.example", "--helo", "swaks.example",
         "--data", f"@{data}", "--no-data-fixup", *args],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_swaks_smtp_with_starttls(make_harness, swaks: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    h: Harness = make_harness(tls=True)
    h.add_user("alice@example.com")
    out = run_swaks(swaks, tmp_path, "alice@example.com",
                    "--server", "127.0.0.1", "--port", str(h.smtp_port), "--tls")
    assert "TLS started" in out
    [stored] = h.messages("alice@example.com")
    (_, received), body = split_trace(stored)
    assert body == MSG
    assert received.startswith(b"Received: from swaks.example ([127.0.0.1]) by mx.test (Letterbox) with ESMTPS")


def test_swaks_lmtp_tcp_two_recipients(harness: Harness, swaks: str, tmp_path: Path) -> None:
    harness.add_user("alice@example.com")
    harness.add_user("bob@example.com")
    out = run_swaks(swaks, tmp_path, "alice@example.com,bob@example.com",
                    "--server", "127.0.0.1", "--port", str(harness.lmtp_port), "--protocol", "LMTP")
    assert "250 2.0.0 <alice@example.com> Saved" in out
    assert "250 2.0.0 <bob@example.com> Saved" in out
    for addr in ("alice@example.com", "bob@example.com"):
        [stored] = harness.messages(addr)
        assert split_trace(stored)[1] == MSG


def test_swaks_lmtp_unix_socket(harness: Harness, swaks: str, tmp_path: Path) -> None:
    harness.add_user("alice@example.com")
    run_swaks(swaks, tmp_path, "alice@example.com", "--socket", harness.lmtp_socket, "--protocol", "LMTP")
    [stored] = harness.messages("alice@example.com")
    (_, received), body = split_trace(stored)
    assert body == MSG
    assert received.startswith(b"Received: from swaks.example (unix socket) by mx.test")


def test_missing_client_skips_or_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = "letterbox-no-such-client-program"
    monkeypatch.delenv("LETTERBOX_REQUIRE_CLIENTS", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_program(missing)
    monkeypatch.setenv("LETTERBOX_REQUIRE_CLIENTS", "1")
    with pytest.raises(pytest.fail.Exception):
        require_program(missing)
