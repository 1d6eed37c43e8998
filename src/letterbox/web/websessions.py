"""Console logins: who is behind a session cookie, and the CSRF token of each.

Sessions live in memory only (a restart logs everyone out), at most `max_sessions` of
them: one more pushes out the least recently used. Each ends after `session_minutes`
without a request and `session_max_hours` after its login, however active. An
administrator's session and a mail user's are different kinds; no request of one kind
is ever served with the other's rights.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["admin", "user"]
COOKIE = "lbx_session"
LOGIN_COOKIE = "lbx_login"
"""Carries the login form's CSRF token before there is a session (double submit)."""


@dataclass(slots=True)
class WebSession:
    id: str
    kind: Kind
    name: str
    """The administrator's name, or the mail user's address."""
    ip: str
    created: float
    seen: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    flash: list[str] = field(default_factory=list)
    """Notes for the next page shown (what the last form did)."""

    def say(self, text: str) -> None:
        self.flash = [*self.flash[-4:], text]

    def take_flash(self) -> list[str]:
        out, self.flash = self.flash, []
        return out

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())


class WebSessions:
    def __init__(self, idle_seconds: float, max_seconds: float, max_sessions: int) -> None:
        self.idle = idle_seconds
        self.lifetime = max_seconds
        self.limit = max_sessions
        self._by_id: OrderedDict[str, WebSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_id)

    def new(self, kind: Kind, name: str, ip: str) -> WebSession:
        while len(self._by_id) >= self.limit:
            self._by_id.popitem(last=False)
        now = time.monotonic()
        session = WebSession(secrets.token_urlsafe(32), kind, name, ip, now, now)
        self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> WebSession | None:
        """The live session behind a cookie value, marked as used now; None when there
        is none or it expired."""
        if not session_id or len(session_id) > 100:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.seen > self.idle or now - session.created > self.lifetime:
            del self._by_id[session_id]
            return None
        session.seen = now
        self._by_id.move_to_end(session_id)
        return session

    def end(self, session_id: str) -> None:
        self._by_id.pop(session_id, None)

    def end_all(self, kind: Kind, name: str, keep: str | None = None) -> None:
        """Log out every session of *kind* named *name* but *keep* (a password changed:
        the other browsers logged in with the old one)."""
        for sid in [s.id for s in self._by_id.values() if s.kind == kind and s.name == name and s.id != keep]:
            del self._by_id[sid]
