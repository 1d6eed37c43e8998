"""Who makes a console request: an API token, or a session cookie with its CSRF token.

A token (`Authorization: Bearer lbx_...`, made by `letterbox admin token`) acts as its
administrator and needs no CSRF token: a browser never sends it by itself. A session
cookie does get sent by browsers, so every request that changes something with one must
carry the session's CSRF token (form field `csrf` or header `X-CSRF-Token`); the cookie
is also SameSite=Strict. Administrators and mail users are kept apart here: an admin
route never accepts a user's session, a user route never an administrator's.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from .console import Actor, Console, ConsoleError
from .websessions import COOKIE, WebSession, WebSessions

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Caller:
    actor: Actor
    session: WebSession | None
    """None for a token."""


def client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else ""


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def sessions_of(request: Request) -> WebSessions:
    sessions: WebSessions = request.app.state.sessions
    return sessions


async def _csrf_token(request: Request) -> str | None:
    token = request.headers.get("x-csrf-token")
    if token is None and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = await request.form()
        value = form.get("csrf")
        token = value if isinstance(value, str) else None
    return token


async def caller(request: Request) -> Caller | None:
    """The caller, or None when the request carries no valid credentials. Raises
    ConsoleError 403 for a cookie request that changes something without its CSRF token."""
    auth = request.headers.get("authorization", "")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ConsoleError(401, "use Authorization: Bearer TOKEN (see letterbox admin token)")
        name = console_of(request).token_admin(token.strip())
        if name is None:
            raise ConsoleError(401, "unknown or revoked API token")
        return Caller(Actor("admin", name, client_ip(request)), None)
    session = sessions_of(request).get(request.cookies.get(COOKIE))
    if session is None:
        return None
    if request.method not in SAFE_METHODS and not session.csrf_ok(await _csrf_token(request)):
        raise ConsoleError(403, "missing or wrong CSRF token: reload the page and try again")
    return Caller(Actor(session.kind, session.name, client_ip(request)), session)


async def admin(request: Request) -> Caller:
    who = await caller(request)
    if who is None:
        raise ConsoleError(401, "log in as an administrator first")
    if who.actor.kind != "admin":
        raise ConsoleError(403, "this is for administrators only")
    return who


async def user(request: Request) -> Caller:
    who = await caller(request)
    if who is None:
        raise ConsoleError(401, "log in with your mail address first")
    if who.actor.kind != "user":
        raise ConsoleError(403, "this is a mail user's page; administrators see accounts under /admin")
    return who
