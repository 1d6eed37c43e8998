"""Requests generated from the console's own OpenAPI description (schemathesis): valid
and invalid bodies, parameters and paths, as an administrator (API token) and as a mail
user (session cookie and CSRF token). Whatever is sent, no answer may be a server error."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess

from .webutil import ADMIN, ADMIN_PASSWORD

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

USER, USER_PASSWORD = "gen@example.com", "generated-pw-1"


@pytest.fixture(scope="module")
def generated_server(tmp_path_factory: pytest.TempPathFactory, tls_pair: tuple[Path, Path]) -> Iterator[dict[str, Any]]:
    srv = ServerProcess(tmp_path_factory.mktemp("generated"), tls_pair, web="true")
    srv.start()
    d = srv.directory()
    try:
        d.admins.add(ADMIN, ADMIN_PASSWORD)
        token = d.admins.new_token(ADMIN)
    finally:
        d.close()
    srv.add_user(USER, USER_PASSWORD)
    url = f"http://{srv.listeners['web'][0]}"
    # A mail user's session: cookie plus CSRF token from the login form.
    client = httpx.Client(base_url=url)
    form = client.get("/login").text
    login_csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert login_csrf is not None
    client.post("/login", data={"csrf": login_csrf.group(1), "username": USER, "password": USER_PASSWORD})
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/me").text)
    assert csrf is not None
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    yield {"url": url, "token": token, "user": {"Cookie": cookie, "X-CSRF-Token": csrf.group(1)}, "server": srv}
    client.close()
    log = srv.log_text()
    srv.stop()
    assert "Traceback" not in log, log[-5000:]


def _fuzz(url: str, headers: dict[str, str], tag: str | None = None) -> int:
    """Run generated cases against every operation (of *tag*); returns how many ran."""
    api = schemathesis.openapi.from_url(url + "/api/v1/openapi.json")
    ran = 0
    for result in api.get_all_operations():
        operation = result.ok()
        if tag is not None and tag not in (operation.tags or []):
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            # A generous timeout: a loaded 2-CPU machine can take seconds per password check.
            case.call_and_validate(headers=headers, checks=[not_a_server_error], timeout=60)

        check()
        ran += 1
    return ran


def test_no_server_error_as_admin(generated_server: dict[str, Any]) -> None:
    token = {"Authorization": f"Bearer {generated_server['token']}"}
    assert _fuzz(generated_server["url"], token) >= 14


def test_no_server_error_as_user(generated_server: dict[str, Any]) -> None:
    # The administrator's run may have left any live policy behind, a login penalty of a
    # minute included: wrong current passwords would then wait it out, as they should.
    with httpx.Client(base_url=generated_server["url"],
                      headers={"Authorization": f"Bearer {generated_server['token']}"}) as admin:
        r = admin.patch("/api/v1/policies", json={"failure_delay": 0.05, "penalty_max": 0.2})
        assert r.status_code == 200, r.text
    assert _fuzz(generated_server["url"], generated_server["user"], tag="user") == 3
