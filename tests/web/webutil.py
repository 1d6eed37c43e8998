"""Helpers for console tests: a server with the console on, an administrator, a token,
and logged-in HTTP clients."""

from __future__ import annotations

import re
import smtplib
from dataclasses import dataclass

import httpx

from tests.conftest import ServerProcess

ADMIN = "root"
ADMIN_PASSWORD = "admin-secret-1"
MSG = b"From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n"


@dataclass
class Console:
    server: ServerProcess
    url: str
    token: str

    def api(self) -> httpx.Client:
        """A client that acts as the administrator through the API token."""
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=20)

    def anonymous(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=20)

    def login(self, username: str, password: str) -> tuple[httpx.Client, str]:
        """A browser-like client logged in through the login form; returns it and the
        session's CSRF token."""
        client = httpx.Client(base_url=self.url, timeout=20)
        form = client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None, form.text
        r = client.post("/login", data={"csrf": token.group(1), "username": username, "password": password})
        assert r.status_code == 303, (r.status_code, r.text)
        page = client.get(r.headers["location"])
        assert page.status_code == 200, page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        return client, csrf.group(1)


def start_console(make_server: object, **opts: object) -> Console:
    srv: ServerProcess = make_server(web="true", **opts)  # type: ignore[operator]
    d = srv.directory()
    try:
        d.admins.add(ADMIN, ADMIN_PASSWORD)
        token = d.admins.new_token(ADMIN, "tests")
    finally:
        d.close()
    return Console(srv, f"http://{srv.listeners['web'][0]}", token)


def deliver(srv: ServerProcess, rcpt: str, body: bytes = MSG) -> dict[str, tuple[int, bytes]]:
    """LMTP delivery; returns the refusals by recipient ({} when stored)."""
    with smtplib.LMTP("127.0.0.1", srv.port("lmtp")) as lmtp:
        try:
            return lmtp.sendmail("a@example.org", [rcpt], body)
        except smtplib.SMTPRecipientsRefused as e:
            return {k: (v[0], v[1]) for k, v in e.recipients.items()}
        except smtplib.SMTPDataError as e:
            return {rcpt: (e.smtp_code, e.smtp_error)}
