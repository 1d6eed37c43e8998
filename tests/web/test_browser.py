"""The console in headless Chromium (Debian's, driven by Playwright): what an
administrator and a mail user do, checked against the mail protocols. A screenshot of
each main page is saved under tmp/artifacts/ (or $LETTERBOX_ARTIFACTS)."""

from __future__ import annotations

import imaplib
import os
import poplib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUIRE_CLIENTS
from tests.server.test_switches import refused
from tests.waiting import wait_for

from .webutil import ADMIN, ADMIN_PASSWORD, Console, deliver

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("LETTERBOX_ARTIFACTS", Path(__file__).resolve().parents[2] / "tmp" / "artifacts"))


def _missing(why: str) -> None:
    msg = f"{why} (apt-get install chromium; pip install playwright; .ci/run does)"
    if REQUIRE_CLIENTS:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        _missing("Chromium is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                    args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    # A Content-Security-Policy violation or a script error shows up here.
    # Refusals a test asks for (401, 403) are expected; anything else is not.
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and not any(
        f"status of {code}" in m.text for code in (401, 403)) else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, errors


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page: Any, console: Console, username: str, password: str) -> None:
    page.goto(console.url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_admin_switches_pop3_off(console: Console, page: Any) -> None:
    srv = console.server
    srv.add_user("alice@example.com", "alice-pw-1")
    deliver(srv, "alice@example.com")
    port = srv.port("pop3")
    pop = poplib.POP3("127.0.0.1", port, timeout=10)
    pop.user("alice@example.com")
    pop.pass_("alice-pw-1")
    log_in(page, console, ADMIN, ADMIN_PASSWORD)
    assert page.url.endswith("/admin")
    row = page.locator("tr[data-service=pop3]")
    assert row.locator("td.on").inner_text() == "on"
    assert row.locator("td").nth(3).inner_text() == "1"  # the open POP3 session
    shot(page, "dashboard")
    row.get_by_role("button", name="Switch off").click()
    page.wait_for_url("**/admin")
    assert "POP3 switched off." in page.locator(".flash").inner_text()
    assert page.locator("tr[data-service=pop3] td.off").inner_text() == "off"
    # The open session ended with its goodbye; a new client is refused.
    with pytest.raises((poplib.error_proto, OSError, EOFError)):
        pop.stat()
        pop.stat()
    assert refused(port)


def test_admin_sets_quota_and_delivery_is_refused(console: Console, page: Any) -> None:
    srv = console.server
    for i in range(30):
        srv.add_user(f"user{i:02d}@example.com", "pw-long-enough")
    srv.add_user("bob@example.com", "bob-pw-123")
    body = b"From: a@example.org\r\nSubject: report\r\n\r\n" + b"z" * 2000 + b"\r\n"
    for _ in range(3):
        assert deliver(srv, "bob@example.com", body) == {}
    log_in(page, console, ADMIN, ADMIN_PASSWORD)
    page.goto(console.url + "/admin/accounts?sort=bytes&descending=true")
    assert wait_for(lambda: page.reload() or page.locator("table.accounts tbody tr").first.locator("td").first
                    .inner_text() == "bob@example.com", 10)
    shot(page, "accounts")
    page.click("text=bob@example.com")
    page.wait_for_url("**/admin/accounts/bob%40example.com")
    shot(page, "account")
    page.fill("input[name=quota]", "1K")
    page.get_by_role("button", name="Set quota").click()
    assert "Quota set." in page.locator(".flash").inner_text()
    refusal = deliver(srv, "bob@example.com")
    assert refusal["bob@example.com"][0] == 552


def test_user_cleans_up_and_imap_sees_fewer_messages(console: Console, page: Any) -> None:
    srv = console.server
    srv.add_user("carol@example.com", "carol-pw-1")
    big = b"From: a@example.org\r\nSubject: photos\r\n\r\n" + b"y" * 1_500_000 + b"\r\n"
    for body in (big, big, big, b"From: a@example.org\r\nSubject: note\r\n\r\nhi\r\n"):
        deliver(srv, "carol@example.com", body)
    imap = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    imap.login("carol@example.com", "carol-pw-1")
    assert imap.select("INBOX")[1] == [b"4"]
    log_in(page, console, "carol@example.com", "carol-pw-1")
    assert page.url.endswith("/me")
    assert page.locator("svg.chart").count() == 1
    used_before = page.locator("main p").nth(0).inner_text()
    shot(page, "usage")
    page.select_option("select[name=folder]", "INBOX")
    page.fill("input[name=larger_than_mb]", "1")
    page.get_by_role("button", name="Show what would go").click()
    preview = page.locator("#cleanup-preview")
    preview.wait_for()
    assert preview.inner_text().startswith("3 messages in INBOX")
    shot(page, "cleanup-preview")
    assert imap.select("INBOX")[1] == [b"4"]  # nothing happened yet
    page.get_by_role("button", name="Delete them for good").click()
    assert page.locator("#cleanup-done").inner_text() == "3 messages deleted."
    assert imap.select("INBOX")[1] == [b"1"]
    page.goto(console.url + "/me")
    assert page.locator("main p").nth(0).inner_text() != used_before
    assert page.locator("table.folders tbody tr").first.locator("td").nth(1).inner_text() == "1"
    imap.logout()


def test_user_cannot_reach_other_accounts_or_admin_pages(console: Console, page: Any) -> None:
    srv = console.server
    srv.add_user("dan@example.com", "dan-pw-123")
    srv.add_user("eve@example.com", "eve-pw-123")
    log_in(page, console, "dan@example.com", "dan-pw-123")
    assert page.url.endswith("/me")
    for path in ("/admin", "/admin/accounts", "/admin/accounts/eve%40example.com", "/admin/policies",
                 "/api/v1/accounts/eve@example.com", "/metrics"):
        response = page.goto(console.url + path)
        assert response.status == 403, path
    assert "administrators only" in page.content()
    page.goto(console.url + "/admin/accounts/eve%40example.com")
    assert "eve@example.com" not in page.locator("main").inner_text()
    # A wrong password for the login form: a clear refusal, no session.
    page.context.clear_cookies()
    log_in(page, console, "eve@example.com", "wrong-password")
    assert "Wrong address or password." in page.locator(".error").inner_text()
    assert page.goto(console.url + "/me").url.endswith("/login")


def test_admin_sets_policies(console: Console, page: Any) -> None:
    log_in(page, console, ADMIN, ADMIN_PASSWORD)
    page.goto(console.url + "/admin/policies")
    page.select_option("select[name=when_full]", "defer")
    page.fill("input[name=trash_days]", "30")
    page.get_by_role("button", name="Save").click()
    assert "Policies saved" in page.locator(".flash").inner_text()
    shot(page, "policies")
    page.goto(console.url + "/admin/audit")
    assert 'set policies when_full="defer"' in page.locator("table.audit").inner_text()
    shot(page, "audit")
