"""The console's HTML side over plain HTTP: login and cookies, CSRF, headers, refusals,
the login penalty, TLS, and console sessions' expiry and bound."""

from __future__ import annotations

import re
import ssl
from contextlib import closing

import httpx
import pytest

from letterbox.web.security import CSP
from letterbox.web.websessions import WebSessions

from .webutil import ADMIN, ADMIN_PASSWORD, Console, start_console


def _login_form(client: httpx.Client) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert m is not None
    return m.group(1)


def test_login_sets_a_strict_httponly_cookie_and_every_page_has_a_csp(console: Console) -> None:
    with console.anonymous() as c:
        r = c.get("/login")
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
        token = _login_form(c)
        r = c.post("/login", data={"csrf": token, "username": ADMIN, "password": ADMIN_PASSWORD})
        assert r.status_code == 303 and r.headers["location"] == "/admin"
        cookie = r.headers["set-cookie"]
        assert "lbx_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Secure" not in cookie  # plain HTTP on loopback
        assert c.get("/admin").status_code == 200
        assert c.get("/static/htmx.min.js").status_code == 200
        # Anything that changes state needs the session's CSRF token.
        r = c.post("/admin/services/pop3", data={"enabled": "0"})
        assert r.status_code == 403 and "CSRF" in r.text
        r = c.post("/admin/services/pop3", data={"enabled": "0", "csrf": "forged"})
        assert r.status_code == 403


def test_login_form_needs_its_token_and_refuses_clearly(console: Console) -> None:
    with console.anonymous() as c:
        r = c.post("/login", data={"csrf": "made-up", "username": ADMIN, "password": ADMIN_PASSWORD})
        assert r.status_code == 403 and "expired" in r.text
        token = _login_form(c)
        r = c.post("/login", data={"csrf": token, "username": ADMIN, "password": "wrong"})
        assert r.status_code == 401 and "Wrong name or password." in r.text
        token = _login_form(c)
        r = c.post("/login", data={"csrf": token, "username": "nobody@example.com", "password": "wrong"})
        assert r.status_code == 401 and "Wrong address or password." in r.text
        assert c.get("/admin").status_code == 303  # to the login page


def test_disabled_user_is_told_why(console: Console) -> None:
    console.server.add_user("lee@example.com", "lee-pw-123")
    console.server.cli("user", "set", "lee@example.com", "--disable", "--message", "Moved to the new server")
    with console.anonymous() as c:
        token = _login_form(c)
        r = c.post("/login", data={"csrf": token, "username": "lee@example.com", "password": "lee-pw-123"})
        assert r.status_code == 401 and "This account is disabled: Moved to the new server" in r.text


def test_refusals_are_pages_with_a_status(console: Console) -> None:
    console.server.add_user("max@example.com", "max-pw-123")
    client, csrf = console.login(ADMIN, ADMIN_PASSWORD)
    with closing(client):
        r = client.get("/admin/accounts/nobody@example.com")
        assert r.status_code == 404 and "no account" in r.text and "<html" in r.text
        r = client.get("/no/such/page")
        assert r.status_code == 404
        r = client.post("/admin/accounts/max@example.com", data={"csrf": csrf, "action": "explode"})
        assert r.status_code == 400 and "unknown action" in r.text
        r = client.post("/admin/accounts/max@example.com", data={"csrf": csrf, "action": "quota", "quota": "lots"})
        assert r.status_code == 400 and "quota" in r.text
        r = client.post("/admin/accounts/max@example.com", data={"csrf": csrf, "action": "delete"})
        assert r.status_code == 400 and "confirm" in r.text
        r = client.get("/admin/accounts", params={"over_percent": "many"})
        assert r.status_code == 400
        r = client.post("/admin/accounts", data={"csrf": csrf, "address": "max@example.com",
                                                 "password": "another-pw-1", "imap": "1"})
        assert r.status_code == 409 and "already exists" in r.text
        # A form changes the account and says so.
        r = client.post("/admin/accounts/max@example.com", data={"csrf": csrf, "action": "protocols", "imap": "1"})
        assert r.status_code == 303
        page = client.get(r.headers["location"]).text
        assert "Protocols set." in page
        assert 'name="pop3" value="1">' in page and 'name="imap" value="1" checked>' in page


def test_web_logins_pay_the_penalty(make_server: object) -> None:
    console = start_console(make_server, failure_delay=0.1, penalty_max=0.2)
    with console.anonymous() as c:
        for _ in range(2):
            token = _login_form(c)
            c.post("/login", data={"csrf": token, "username": ADMIN, "password": "guess"})
        token = _login_form(c)
        r = c.post("/login", data={"csrf": token, "username": ADMIN, "password": ADMIN_PASSWORD})
    assert r.status_code == 303  # the right password still works, after its wait
    with console.api() as c:
        text = c.get("/metrics").text
    assert 'letterbox_logins_total{outcome="bad_credentials",protocol="web"} 2.0' in text
    # The second and third logins came after failures from the same address and waited,
    # as IMAP and POP3 logins do (the authenticator's penalty).
    assert 'letterbox_login_penalties_total{protocol="web"} 2.0' in text


def test_console_over_tls_has_secure_cookies(make_server: object) -> None:
    console = start_console(make_server)
    srv = console.server
    text = srv.config.read_text().replace('[web]\nenabled = true', '[web]\nenabled = true\ntls = true')
    srv.stop()
    srv.config.write_text(text)
    srv.start()
    url = f"https://{srv.listeners['web'][0]}"
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with httpx.Client(base_url=url, verify=ctx) as c:
        token = _login_form(c)
        r = c.post("/login", data={"csrf": token, "username": ADMIN, "password": ADMIN_PASSWORD})
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]
        assert r.headers["strict-transport-security"].startswith("max-age=")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{srv.listeners['web'][0]}/login", timeout=5)


def test_sessions_expire_and_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("letterbox.web.websessions.time.monotonic", lambda: now[0])
    sessions = WebSessions(idle_seconds=60, max_seconds=300, max_sessions=3)
    a = sessions.new("admin", "root", "127.0.0.1")
    now[0] += 59
    assert sessions.get(a.id) is a
    now[0] += 61
    assert sessions.get(a.id) is None  # idle too long
    b = sessions.new("user", "x@example.com", "127.0.0.1")
    for _ in range(6):
        now[0] += 50
        assert sessions.get(b.id) is b
    now[0] += 1
    assert sessions.get(b.id) is None  # 301 s after login, however active
    made = [sessions.new("user", f"u{i}@example.com", "127.0.0.1") for i in range(5)]
    assert len(sessions) == 3 and sessions.get(made[0].id) is None and sessions.get(made[4].id) is made[4]
    sessions.end_all("user", "u4@example.com")
    assert sessions.get(made[4].id) is None
    assert sessions.get(None) is None and sessions.get("x" * 1000) is None
    assert not made[3].csrf_ok(None) and not made[3].csrf_ok("nope") and made[3].csrf_ok(made[3].csrf)


def test_numbers_out_of_range_are_refused(console: Console) -> None:
    console.server.add_user("oz@example.com", "oz-pw-1234")
    client, csrf = console.login(ADMIN, ADMIN_PASSWORD)
    huge = "9" * 30
    with closing(client):
        for path, params in (("/admin/accounts", {"offset": huge}), ("/admin/audit", {"offset": huge}),
                             ("/admin/accounts", {"over_percent": "1e999"})):
            r = client.get(path, params=params)
            assert r.status_code == 400, (path, r.status_code, r.text[-300:])
        for data in ({"action": "quota", "quota": huge + "G"}, {"action": "quota", "quota_messages": huge},
                     {"action": "disconnect", "session": huge}):
            r = client.post("/admin/accounts/oz@example.com", data={"csrf": csrf, **data})
            assert r.status_code in (400, 404), (data, r.status_code, r.text[-300:])


def test_random_forms_never_cause_a_server_error(console: Console) -> None:
    """Form posts with made-up fields and values, to every page that takes one."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    console.server.add_user("pat@example.com", "pat-pw-1234")
    admin, admin_csrf = console.login(ADMIN, ADMIN_PASSWORD)
    user, user_csrf = console.login("pat@example.com", "pat-pw-1234")
    text = st.one_of(st.text(max_size=30), st.sampled_from(["", "0", "-1", "1e999", "nan", "9" * 25, "2G", "yes",
                                                            "INBOX", "Trash", "\x00", "imap", "1"]))
    fields = st.dictionaries(
        st.sampled_from(["action", "quota", "quota_messages", "password", "message", "imap", "pop3", "confirm",
                         "session", "keep_mail", "address", "when_full", "warn_at", "trash_days", "junk_days",
                         "trash_counts", "plaintext_auth", "failure_delay", "penalty_max", "pop3_delete_mode",
                         "pop3_leave_days", "folder", "older_than_days", "larger_than_mb", "seen", "enabled",
                         "current", "new"]),
        text, max_size=6,
    )
    admin_paths = ["/admin/accounts/pat@example.com", "/admin/accounts", "/admin/policies", "/admin/services/pop3"]
    user_paths = ["/me/cleanup"]

    @given(data=fields, path=st.sampled_from(admin_paths + user_paths))
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def post(data: dict[str, str], path: str) -> None:
        if path in user_paths:
            r = user.post(path, data={**data, "csrf": user_csrf})
        else:
            if data.get("action") == "delete" or data.get("enabled") == "0":
                return  # the account and POP3 stay for the other examples
            r = admin.post(path, data={**data, "csrf": admin_csrf})
        assert r.status_code < 500, (path, data, r.status_code, r.text[-300:])

    with closing(admin), closing(user):
        post()
    assert "Traceback" not in console.server.log_text()


def test_requests_that_trickle_in_are_cut_off(make_server: object) -> None:
    """A client that connects and sends nothing, trickles its headers, or never finishes
    its body is disconnected after [web] request_timeout: slow clients cannot hold the
    console's connections for good. A client that sends its request keeps being served."""
    c = start_console(make_server, web_extra="request_timeout = 1")
    host, _, port = c.url.removeprefix("http://").rpartition(":")
    partial = [
        b"",
        b"GET /login HTTP/1.1\r\nHost: x\r\n",
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 100\r\n\r\ncsrf=",
    ]
    import socket

    socks = []
    for data in partial:
        s = socket.create_connection((host, int(port)), timeout=15)
        if data:
            s.sendall(data)
        socks.append(s)
    for s in socks:
        with closing(s):
            # The server closes it: recv returns b"" well before our own 15 s timeout.
            assert s.recv(4096) == b""
    with c.anonymous() as client:
        assert client.get("/login").status_code == 200
