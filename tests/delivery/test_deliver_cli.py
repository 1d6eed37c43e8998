"""`letterbox deliver --to USER`: pipe delivery and its sysexits codes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from letterbox.auth.directory import Directory
from letterbox.cli import deliver as deliver_module
from letterbox.cli.deliver import deliver
from letterbox.store.api import Quota, StoreError
from letterbox.store.maildir import MaildirStore

from .delivery_support import split_trace

LF_MSG = b"From: x@remote.example\nSubject: piped\nMessage-ID: <p1@remote.example>\n\nline one\n.line two\n"
CRLF_MSG = LF_MSG.replace(b"\n", b"\r\n")


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    # run_dir holds the control socket: keep its path short (UNIX socket name limit).
    run_dir = tempfile.mkdtemp(prefix="lbrun-")
    (tmp_path / "letterbox.toml").write_text(
        "[server]\n"
        'hostname = "mx.test"\n'
        'data_dir = "data"\n'
        f'run_dir = "{run_dir}"\n'
        "[delivery]\n"
        'max_message_size = "4K"\n'
    )
    d = Directory(tmp_path / "data" / "accounts.sqlite")
    d.add("alice@example.com", "x")
    d.add("full@example.com", "x", quota=Quota(messages=1))
    d.add("off@example.com", "x")
    d.set_enabled("off@example.com", False)
    d.close()
    yield tmp_path
    shutil.rmtree(run_dir, ignore_errors=True)


def run(home: Path, *args: str, input: bytes = CRLF_MSG) -> Result:
    return CliRunner().invoke(deliver, list(args), input=input, obj={"config": home / "letterbox.toml"})


def inbox(home: Path, address: str) -> list[bytes]:
    async def go() -> list[bytes]:
        store = MaildirStore(home / "data" / "mail")
        acc = await store.account(address)
        mbox, metas = await acc.snapshot("INBOX")
        out = [await acc.read_message(mbox.id, m.uid) for m in metas]
        await store.close()
        return out

    return asyncio.run(go())


def test_delivers_with_crlf_and_trace_fields(home: Path) -> None:
    result = run(home, "--to", "Alice@Example.com", "-f", "x@remote.example", input=LF_MSG)
    assert result.exit_code == 0, result.output
    [stored] = inbox(home, "alice@example.com")
    (rp, received), body = split_trace(stored)
    # Bare LF from the MTA becomes CRLF, the wire form everything else stores.
    assert body == CRLF_MSG
    assert rp == b"Return-Path: <x@remote.example>"
    assert received.startswith(b"Received: by mx.test (Letterbox) with local id ")
    assert b" for <alice@example.com>; " in received


def test_crlf_and_binary_input_kept_exactly(home: Path) -> None:
    msg = b"Subject: bin\r\n\r\n\x00\xff\rlone CR\r\n"
    assert run(home, "--to", "alice@example.com", input=msg).exit_code == 0
    [stored] = inbox(home, "alice@example.com")
    assert stored.startswith(b"Received: ")
    # Without -f or a "From " line there is no sender to record: only Received is added.
    assert split_trace(b"Return-Path: <>\r\n" + stored)[1] == msg



def test_mbox_from_line_dropped_and_used_as_sender(home: Path) -> None:
    msg = b"From bounce@remote.example Mon Jan  1 00:00:00 2024\n" + LF_MSG
    assert run(home, "--to", "alice@example.com", input=msg).exit_code == 0
    [stored] = inbox(home, "alice@example.com")
    (rp, _), body = split_trace(stored)
    assert rp == b"Return-Path: <bounce@remote.example>"
    assert body == CRLF_MSG


def test_null_sender(home: Path) -> None:
    assert run(home, "--to", "alice@example.com", "-f", "").exit_code == 0
    [stored] = inbox(home, "alice@example.com")
    assert split_trace(stored)[0][0] == b"Return-Path: <>"


@pytest.mark.parametrize(
    ("to", "code", "words"),
    [
        ("nobody@example.com", 67, "no such user"),
        ("not-an-address", 67, "not an address"),
        ("off@example.com", 77, "disabled"),
    ],
)
def test_refusals(home: Path, to: str, code: int, words: str) -> None:
    result = run(home, "--to", to)
    assert result.exit_code == code
    assert words in result.stderr
    assert result.stderr.count("\n") == 1


def test_over_quota_bounces(home: Path) -> None:
    assert run(home, "--to", "full@example.com").exit_code == 0
    result = run(home, "--to", "full@example.com")
    assert result.exit_code == 77
    assert "mailbox full" in result.stderr
    assert len(inbox(home, "full@example.com")) == 1


def test_too_big_is_a_data_error(home: Path) -> None:
    result = run(home, "--to", "alice@example.com", input=CRLF_MSG + b"x" * 5000 + b"\r\n")
    assert result.exit_code == 65
    assert "too big" in result.stderr
    # Bare LFs count as the CRLFs they become.
    result = run(home, "--to", "alice@example.com", input=b"Subject: lf\n\n" + b"\n" * 2100)
    assert result.exit_code == 65
    assert inbox(home, "alice@example.com") == []


def test_store_failure_is_temporary(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: Any) -> None:
        raise StoreError("disk on fire")

    monkeypatch.setattr(deliver_module, "store_copy", broken)
    result = run(home, "--to", "alice@example.com")
    assert result.exit_code == 75
    assert "disk on fire" in result.stderr


@pytest.mark.parametrize("config", ["[server]\nhostname = 3\n", "not toml ["])
def test_config_errors_are_ex_config(home: Path, config: str) -> None:
    (home / "letterbox.toml").write_text(config)
    assert run(home, "--to", "alice@example.com").exit_code == 78


def test_missing_config_is_ex_config(tmp_path: Path) -> None:
    result = CliRunner().invoke(deliver, ["--to", "a@example.com"], input=b"x",
                                obj={"config": tmp_path / "absent.toml"})
    assert result.exit_code == 78


def test_pokes_a_running_server(home: Path) -> None:
    from letterbox.config import load

    run_dir = load(home / "letterbox.toml").run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    received: list[dict[str, Any]] = []
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(run_dir / "control.sock"))
    listener.listen(1)
    listener.settimeout(10)

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            with conn:
                received.append(json.loads(conn.makefile("rb").readline()))
                conn.sendall(b'{"ok": true}\n')

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        assert run(home, "--to", "alice@example.com").exit_code == 0
        assert run(home, "--to", "zed@example.com").exit_code == 67
        t.join(10)
    finally:
        listener.close()
    # The change, and each outcome for the server's delivery metrics.
    assert received == [
        {"cmd": "changed", "address": "alice@example.com", "outcome": "stored"},
        {"cmd": "delivered", "outcome": "unknown_user"},
    ]


def test_real_process_via_letterbox_command(home: Path) -> None:
    src = Path(deliver_module.__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(src), LETTERBOX_CONFIG=str(home / "letterbox.toml"))
    ok = subprocess.run([sys.executable, "-m", "letterbox", "deliver", "--to", "alice@example.com"],
                        input=LF_MSG, capture_output=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    unknown = subprocess.run([sys.executable, "-m", "letterbox", "deliver", "--to", "zed@example.com"],
                             input=LF_MSG, capture_output=True, env=env, timeout=60)
    assert unknown.returncode == 67
    assert unknown.stderr == b"letterbox deliver: zed@example.com: no such user\n"
    assert len(inbox(home, "alice@example.com")) == 1
