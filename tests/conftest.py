"""Shared fixtures: a real Letterbox server process on ephemeral loopback ports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from letterbox.auth.directory import Directory
from letterbox.auth.factory import open_directory
from letterbox.auth.passwords import make_secrets
from letterbox.config import load
from letterbox.store.api import Quota

REQUIRE_CLIENTS = os.environ.get("LETTERBOX_REQUIRE_CLIENTS") == "1"
_CERT_CACHE: dict[str, tuple[Path, Path]] = {}


def require_program(name: str) -> str:
    """Path of a real client program; skip (or fail in CI) when it is missing."""
    path = shutil.which(name)
    if path is None:
        msg = f"{name} is not installed (apt-get install it; .ci/run does)"
        if REQUIRE_CLIENTS:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _cert(tmp_root: Path) -> tuple[Path, Path]:
    if "pair" not in _CERT_CACHE:
        from letterbox.server.tls import write_self_signed

        d = tmp_root / "tls"
        write_self_signed(d / "cert.pem", d / "key.pem", "localhost")
        _CERT_CACHE["pair"] = (d / "cert.pem", d / "key.pem")
    return _CERT_CACHE["pair"]


CONFIG = """\
[server]
hostname = "mail.test"
data_dir = "data"
run_dir = "run"
log_level = "{log_level}"
max_connections_per_ip = {max_conn}
max_connections = {max_total}
login_timeout = {login_deadline}
tls_handshake_timeout = {handshake_timeout}
workers = {workers}

[tls]
cert = "{cert}"
key = "{key}"

[auth]
failure_delay = {failure_delay}
penalty_max = {penalty_max}
max_failures_per_ip = {max_failures}
allow_plaintext_without_tls = {allow_plain}

[imap]
listen = ["127.0.0.1:0"]
tls_listen = ["127.0.0.1:0"]
command_timeout = {command_timeout}
{imap_extra}

[pop3]
listen = ["127.0.0.1:0"]
tls_listen = ["127.0.0.1:0"]
delete_mode = "{delete_mode}"
leave_on_server_days = {leave_days}

[lmtp]
listen = ["127.0.0.1:0"]
unix_socket = "lmtp.sock"

[smtp]
listen = ["127.0.0.1:0"]

[delivery]
max_message_size = "{max_size}"
data_timeout = {data_timeout}

[store]
reserve = "{reserve}"
{store_extra}

[quota]
when_full = "{when_full}"

[web]
enabled = {web}
listen = "127.0.0.1:0"
{web_extra}
"""


class ServerProcess:
    """A `letterbox serve` child process and helpers to reach it."""

    def __init__(self, home: Path, cert: tuple[Path, Path], **opts: object) -> None:
        self.home = home
        self.config = home / "letterbox.toml"
        values: dict[str, object] = {
            "log_level": "info",
            "max_conn": 200,
            "max_total": 5000,
            "login_deadline": 180,
            "handshake_timeout": 30,
            "workers": 1,  # the tests of one process; tests/server/test_workers.py runs several
            "command_timeout": 600,
            "imap_extra": "",  # more [imap] lines, e.g. "literal_minus = true"
            "failure_delay": 0.05,
            "penalty_max": 0.2,
            "max_failures": 1000,
            "allow_plain": "false",
            "delete_mode": "expunge",
            "leave_days": 0,
            "max_size": "10M",
            "data_timeout": 600,
            "reserve": "16M",
            "store_extra": "",  # more [store] lines, e.g. 'backend = "postgresql"' and its dsn
            "when_full": "reject",
            "web": "false",
            "web_extra": "",  # more [web] lines, e.g. "request_timeout = 1"
            "cert": cert[0],
            "key": cert[1],
        }
        values.update(opts)
        home.mkdir(parents=True, exist_ok=True)
        self.config.write_text(CONFIG.format(**values))
        self.proc: subprocess.Popen[bytes] | None = None
        self.listeners: dict[str, list[str]] = {}
        self.log = home / "server.log"
        self.faults = ""

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["LETTERBOX_CONFIG"] = str(self.config)
        env.pop("LETTERBOX_FAULTS", None)
        return env

    def start_with_faults(self, faults: str, timeout: float = 20.0) -> ServerProcess:
        """Start with fault points armed (see letterbox.store.faults), e.g.
        "rename.moved=kill@2": the server kills itself at that step."""
        self.faults = faults
        try:
            return self.start(timeout)
        finally:
            self.faults = ""

    def wait_killed(self, timeout: float = 20.0) -> None:
        """Wait for a server that an armed fault killed."""
        assert self.proc is not None
        self.proc.wait(timeout)
        assert self.proc.returncode == -9, f"server ended with {self.proc.returncode}:\n{self.log_text()}"
        self.proc = None

    def start(self, timeout: float = 20.0) -> ServerProcess:
        run_dir = self.home / "run"
        (run_dir / "listeners.json").unlink(missing_ok=True)
        with open(self.log, "ab") as log:
            env = self.env
            if self.faults:
                env["LETTERBOX_FAULTS"] = self.faults
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "letterbox", "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()}")
            try:
                data = json.loads((run_dir / "listeners.json").read_text())
                if data.get("pid") == self.proc.pid:
                    self.listeners = data["listeners"]
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def refresh(self) -> dict[str, list[str]]:
        data = json.loads((self.home / "run" / "listeners.json").read_text())
        self.listeners = data["listeners"]
        return self.listeners

    def port(self, label: str) -> int:
        """Port of the first listener labelled imap, imaps, pop3, pop3s, lmtp or smtp."""
        return int(self.listeners[label][0].rsplit(":", 1)[1])

    @property
    def lmtp_socket(self) -> str:
        return self.listeners["lmtp_unix"][0]

    def directory(self) -> Directory:
        """The server's directory as its config names it (shared on PostgreSQL)."""
        return open_directory(load(self.config), adopt=False, listen=False)

    def add_user(self, address: str, password: str = "secret", protocols: tuple[str, ...] = ("imap", "pop3"),
                 quota: Quota = Quota()) -> str:
        d = self.directory()
        try:
            d.add(address, make_secrets(password), protocols, quota)
        finally:
            d.close()
        return address

    def cli(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "letterbox", *args],
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.home,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"letterbox {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture(scope="session")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def make_server(tmp_path: Path, tls_pair: tuple[Path, Path]) -> Iterator[object]:
    """Factory: make_server(**config options) -> started ServerProcess (stopped after the test)."""
    started: list[ServerProcess] = []

    def factory(**opts: object) -> ServerProcess:
        s = ServerProcess(tmp_path / f"server{len(started)}", tls_pair, **opts)
        started.append(s)
        return s.start()

    yield factory
    for s in started:
        s.stop()


@pytest.fixture
def server(make_server: object) -> ServerProcess:
    srv: ServerProcess = make_server()  # type: ignore[operator]
    return srv
