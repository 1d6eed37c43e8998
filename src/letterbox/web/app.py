"""The console as an ASGI application: pages, JSON API, /metrics and static files.

Every refusal is a 4xx with a message: JSON `{"detail": ...}` under /api and /metrics,
an HTML page elsewhere (a page that needs a login sends the browser to it). A defect is
logged and answered with a plain 500 naming no internals.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException

from .. import __version__, metrics
from ..auth.directory import DirectoryUnavailable
from . import api, pages
from .auth import admin
from .console import Console, ConsoleError
from .security import BodyLimit, SecurityHeaders
from .websessions import WebSessions

if TYPE_CHECKING:
    from .host import Host

log = logging.getLogger("letterbox.web")

HERE = Path(__file__).parent
_TITLES = {400: "Bad request", 401: "Please log in", 403: "Not allowed", 404: "Not found",
           405: "Not allowed", 409: "Conflict", 413: "Too large", 422: "Bad request", 429: "Too many attempts",
           503: "Unavailable"}


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path == "/metrics"


def _back(request: Request) -> str:
    """Where the error page's "Back" goes: the form's page (its path only) or home."""
    referer = request.headers.get("referer", "")
    path = urlsplit(referer).path if request.method == "POST" and referer else ""
    return path if path.startswith("/") and not path.startswith("//") else "/"


def _refusal(request: Request, status: int, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": message}, status_code=status)
    if status == 401 and request.method == "GET":
        return RedirectResponse("/login", status_code=303)
    templates = request.app.state.templates
    return templates.TemplateResponse(
        request, "error.html",
        {"status": status, "title": _TITLES.get(status, "Error"), "message": message, "who": None, "csrf": "",
         "flash": [], "back": _back(request)},
        status_code=status,
    )


def build_app(server: Host) -> FastAPI:
    web = server.settings.web
    sessions = WebSessions(web.session_minutes * 60, web.session_max_hours * 3600, web.max_sessions)
    app = FastAPI(
        title="Letterbox console API", version=__version__,
        description="Administration and self-service of a Letterbox mail server.",
        openapi_url="/api/v1/openapi.json", docs_url=None, redoc_url=None,
    )
    app.state.console = Console(server, sessions)
    app.state.sessions = sessions
    app.state.tls = web.tls
    app.state.templates = pages.templates_for(str(HERE / "templates"))

    @app.exception_handler(ConsoleError)
    async def console_error(request: Request, exc: ConsoleError) -> Response:
        return _refusal(request, exc.status, exc.message)

    @app.exception_handler(DirectoryUnavailable)
    async def directory_away(request: Request, exc: DirectoryUnavailable) -> Response:
        return _refusal(request, 503, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _refusal(request, exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        message = "; ".join(problems) or "invalid request"
        if _wants_json(request):
            # Where and what, never the input itself: it may be a password, or text that
            # cannot even be encoded (a lone surrogate from a JSON escape).
            errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "invalid")), "type": str(e.get("type", ""))}
                      for e in exc.errors()[:5]]
            return JSONResponse({"detail": message.encode("utf-8", "replace").decode("utf-8"),
                                 "errors": jsonable_encoder(errors)}, status_code=422)
        return _refusal(request, 400, message)

    @app.exception_handler(Exception)
    async def defect(request: Request, exc: Exception) -> Response:
        log.exception("console: %s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the administrator can find details in the log"},
                            status_code=500)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        """Prometheus text format; an administrator's token or session."""
        await admin(request)
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        """Browsers ask for it on pages without an icon link (JSON answers)."""
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(BodyLimit, max_body=web.max_body)
    app.add_middleware(SecurityHeaders, tls=web.tls)
    return app
