"""The console's HTML pages: login, the administrator's pages and the mail user's page.

Forms post back here (with the session's CSRF token) and the handlers call the same
Console methods as the JSON API; a change answers with a redirect to the page it came
from and a note of what was done, a refusal with its 4xx and the reason.
"""

from __future__ import annotations

import datetime
import secrets
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ..config import parse_size
from .auth import Caller, admin, caller, client_ip, console_of, sessions_of, user
from .charts import folder_bars, human, quota_bar
from .console import ConsoleError
from .websessions import COOKIE, LOGIN_COOKIE

router = APIRouter(include_in_schema=False)

SORT_LABELS = (("address", "address"), ("bytes", "space used"), ("messages", "messages"),
               ("percent", "share of quota"), ("created", "creation"))
PAGE_SIZE = 50


def when(ts: float | None) -> str:
    if not ts:
        return "—"
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def size_text(n: int) -> str:
    if not n:
        return "0"
    for unit, factor in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


def shown(value: object) -> str:
    """A policy value as people write it: yes/no, comma-separated lists."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) or "none"
    return str(value)


def templates_for(directory: str) -> Jinja2Templates:
    t = Jinja2Templates(directory=directory)
    t.env.globals.update(human=human, when=when, quota_bar=quota_bar, folder_bars=folder_bars, size_text=size_text,
                         shown=shown)
    return t


def render(request: Request, name: str, who: Caller | None, status: int = 200, **context: Any) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    session = who.session if who is not None else None
    context.update(
        who=who.actor if who is not None else None,
        csrf=session.csrf if session is not None else "",
        flash=session.take_flash() if session is not None else [],
    )
    return templates.TemplateResponse(request, name, context, status_code=status)


def back_to(url: str, who: Caller, note: str) -> RedirectResponse:
    if who.session is not None:
        who.session.say(note)
    return RedirectResponse(url, status_code=303)


async def form_of(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _int(value: str | None, what: str) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise ConsoleError(400, f"{what}: expected a whole number") from None


def _float(value: str | None, what: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise ConsoleError(400, f"{what}: expected a number") from None


def _size(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    if value.strip().lower() in ("unlimited", "none"):
        return 0
    try:
        return parse_size(value.strip())
    except ValueError as e:
        raise ConsoleError(400, f"quota {value!r}: {e}") from None


def _protocols(form: dict[str, str]) -> list[str]:
    return [p for p in ("imap", "pop3") if form.get(p)]


# --- login -------------------------------------------------------------------------------
@router.get("/")
async def home(request: Request) -> Response:
    who = await caller(request)
    if who is None:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse("/admin" if who.actor.kind == "admin" else "/me", status_code=303)


def _login_page(request: Request, status: int = 200, error: str = "", username: str = "") -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = render(request, "login.html", None, status, login_csrf=token, error=error, username=username)
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, httponly=True, samesite="strict",
                        secure=request.app.state.tls, path="/login")
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await form_of(request)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    given = form.get("csrf", "")
    if not expected or not secrets.compare_digest(expected.encode(), given.encode()):
        return _login_page(request, 403, "The login form expired; please try again.")
    username = form.get("username", "").strip()[:320]
    password = form.get("password", "")
    if not username or not password:
        return _login_page(request, 400, "Give your mail address (or administrator name) and password.", username)
    console = console_of(request)
    ip = client_ip(request)
    if "@" in username:
        account, why = await console.user_login(username, password, ip)
        if account is None:
            return _login_page(request, 401, why, username)
        session = sessions_of(request).new("user", account.address, ip)
        target = "/me"
    else:
        if not await console.admin_login(username, password, ip):
            return _login_page(request, 401, "Wrong name or password.", username)
        session = sessions_of(request).new("admin", username.lower(), ip)
        target = "/admin"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict", secure=request.app.state.tls, path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    who = await caller(request)
    if who is not None and who.session is not None:
        sessions_of(request).end(who.session.id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# --- administrators ------------------------------------------------------------------------
@router.get("/admin")
async def dashboard(request: Request) -> Response:
    who = await admin(request)
    console = console_of(request)
    return render(request, "dashboard.html", who, nav="dashboard", d=await console.dashboard(),
                  services=await console.services())


@router.get("/admin/services")
async def services_fragment(request: Request) -> Response:
    who = await admin(request)
    return render(request, "services.html", who, services=await console_of(request).services())


@router.post("/admin/services/{service}")
async def switch_service(request: Request, service: str) -> Response:
    who = await admin(request)
    form = await form_of(request)
    if form.get("enabled") not in ("0", "1"):
        raise ConsoleError(400, "enabled must be 0 or 1")
    on = form["enabled"] == "1"
    await console_of(request).set_service(who.actor, service, on)
    return back_to("/admin", who, f"{service.upper()} switched {'on' if on else 'off'}.")


@router.get("/admin/accounts")
async def accounts(request: Request) -> Response:
    who = await admin(request)
    p = request.query_params
    search = p.get("search", "")[:320]
    sort = p.get("sort", "address")
    descending = p.get("descending") in ("true", "1", "on")
    over = _float(p.get("over_percent"), "over % of quota")
    offset = max(0, _int(p.get("offset"), "offset") or 0)
    page = await console_of(request).accounts(search, sort, descending, over, offset, PAGE_SIZE)
    query = {"search": search, "sort": sort, "descending": "true" if descending else "",
             "over_percent": "" if over is None else over}

    def link(off: int) -> str:
        return "/admin/accounts?" + urlencode({**query, "offset": off})

    return render(
        request, "accounts.html", who, nav="accounts", page=page, sorts=SORT_LABELS,
        q={"search": search, "sort": sort, "descending": descending, "over_percent": over},
        prev_url=link(max(0, offset - PAGE_SIZE)) if offset else None,
        next_url=link(offset + PAGE_SIZE) if offset + PAGE_SIZE < page["total"] else None,
    )


@router.post("/admin/accounts")
async def create_account(request: Request) -> Response:
    who = await admin(request)
    form = await form_of(request)
    detail = await console_of(request).create_account(
        who.actor, form.get("address", ""), form.get("password", ""), _protocols(form), _size(form.get("quota")), None
    )
    return back_to(f"/admin/accounts/{quote(detail['address'])}", who, f"Account {detail['address']} created.")


@router.get("/admin/accounts/{address}")
async def account(request: Request, address: str) -> Response:
    who = await admin(request)
    detail = await console_of(request).account_detail(address)
    return render(request, "account.html", who, nav="accounts", a=detail, percent=detail["percent"])


@router.post("/admin/accounts/{address}")
async def change_account(request: Request, address: str) -> Response:
    who = await admin(request)
    form = await form_of(request)
    console = console_of(request)
    action = form.get("action", "")
    here = f"/admin/accounts/{quote(address)}"
    if action == "quota":
        await console.update_account(who.actor, address, {
            "quota_bytes": _size(form.get("quota")) or 0,
            "quota_messages": _int(form.get("quota_messages"), "messages") or 0,
        })
        return back_to(here, who, "Quota set.")
    if action == "protocols":
        await console.update_account(who.actor, address, {"protocols": _protocols(form)})
        return back_to(here, who, "Protocols set.")
    if action == "password":
        await console.update_account(who.actor, address, {"password": form.get("password", "")})
        return back_to(here, who, "Password reset.")
    if action in ("enable", "disable"):
        await console.update_account(who.actor, address, {
            "enabled": action == "enable", "disabled_message": form.get("message", ""),
        })
        return back_to(here, who, f"Account {action}d.")
    if action == "delete":
        if not form.get("confirm"):
            raise ConsoleError(400, "tick the box to confirm the deletion")
        await console.delete_account(who.actor, address, bool(form.get("keep_mail")))
        return back_to("/admin/accounts", who, f"Account {address} deleted.")
    if action == "disconnect":
        session_id = _int(form.get("session"), "session")
        if session_id is None:
            raise ConsoleError(400, "which session?")
        await console.disconnect(who.actor, address, session_id)
        return back_to(here, who, "Session ended.")
    raise ConsoleError(400, f"unknown action {action!r}")


@router.get("/admin/policies")
async def policies(request: Request) -> Response:
    who = await admin(request)
    return render(request, "policies.html", who, nav="policies", p=console_of(request).policies())


@router.post("/admin/policies")
async def set_policies(request: Request) -> Response:
    who = await admin(request)
    form = await form_of(request)
    changes: dict[str, Any] = {"when_full": form.get("when_full") or None, "warn_at": form.get("warn_at"),
                               "plaintext_auth": form.get("plaintext_auth") or None,
                               "trash_counts": form.get("trash_counts") or None,
                               "pop3_delete_mode": form.get("pop3_delete_mode") or None}
    for key in ("trash_days", "junk_days", "pop3_leave_days"):
        changes[key] = _int(form.get(key), key)
    for key in ("failure_delay", "penalty_max"):
        changes[key] = _float(form.get(key), key)
    await console_of(request).set_policies(who.actor, changes)
    return back_to("/admin/policies", who, "Policies saved and applied.")


@router.get("/admin/audit")
async def audit(request: Request) -> Response:
    who = await admin(request)
    offset = max(0, _int(request.query_params.get("offset"), "offset") or 0)
    entries = console_of(request).audit_log(100, offset)
    return render(request, "audit.html", who, nav="audit", entries=entries, offset=offset)


# --- mail users --------------------------------------------------------------------------------
@router.get("/me")
async def me(request: Request) -> Response:
    who = await user(request)
    return render(request, "me.html", who, u=await console_of(request).my_usage(who.actor.name))


@router.post("/me/cleanup")
async def cleanup(request: Request) -> Response:
    who = await user(request)
    form = await form_of(request)
    wanted = {
        "folder": form.get("folder", "")[:1000],
        "older_than_days": _int(form.get("older_than_days"), "older than"),
        "larger_than_mb": _float(form.get("larger_than_mb"), "larger than"),
        "seen": bool(form.get("seen")),
    }
    action = form.get("action") or "preview"
    console = console_of(request)
    result = await console.cleanup(who.actor.name, wanted["folder"], wanted["older_than_days"],  # type: ignore[arg-type]
                                   wanted["larger_than_mb"], bool(wanted["seen"]), action)  # type: ignore[arg-type]
    in_trash = bool(result["is_trash"])
    if request.headers.get("hx-request") == "true":
        return render(request, "cleanup_result.html", who, result=result, form=wanted, in_trash=in_trash)
    return render(request, "me.html", who, u=await console.my_usage(who.actor.name), result=result, form=wanted,
                  in_trash=in_trash)


@router.post("/me/password")
async def change_password(request: Request) -> Response:
    who = await user(request)
    form = await form_of(request)
    await console_of(request).change_password(who.actor.name, form.get("current", ""), form.get("new", ""),
                                              client_ip(request))
    sessions_of(request).end_all("user", who.actor.name, keep=who.session.id if who.session else None)
    return back_to("/me", who, "Password changed.")
