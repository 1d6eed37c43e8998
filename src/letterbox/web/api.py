"""The JSON API, under /api/v1: everything the console does, for scripts and automation.

Administrators authenticate with an API token (`letterbox admin token NAME`) as
`Authorization: Bearer TOKEN`, or with the console's session cookie and CSRF token;
mail users with their session cookie only. FastAPI validates every body and parameter
against the models below (a bad one is a 422 naming the field) and publishes the OpenAPI
description at /api/v1/openapi.json.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from .auth import Caller, admin, client_ip, console_of, sessions_of, user
from .console import MAX_PASSWORD

router = APIRouter(prefix="/api/v1")

Protocol = Literal["imap", "pop3"]
Service = Literal["imap", "pop3", "lmtp", "smtp"]
BIG = 2**62


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServiceSwitch(_Body):
    enabled: bool


class AccountCreate(_Body):
    address: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=8, max_length=MAX_PASSWORD)
    protocols: list[Protocol] = Field(default=["imap", "pop3"], max_length=2)
    quota_bytes: int | None = Field(default=None, ge=0, le=BIG, description="0: unlimited; absent: the default")
    quota_messages: int | None = Field(default=None, ge=0, le=BIG)


class AccountChange(_Body):
    enabled: bool | None = None
    disabled_message: str | None = Field(default=None, max_length=200,
                                         description="shown to the user while the account is disabled")
    protocols: list[Protocol] | None = Field(default=None, max_length=2)
    quota_bytes: int | None = Field(default=None, ge=0, le=BIG)
    quota_messages: int | None = Field(default=None, ge=0, le=BIG)
    password: str | None = Field(default=None, min_length=8, max_length=MAX_PASSWORD)


class PolicyChange(_Body):
    when_full: Literal["reject", "defer"] | None = None
    warn_at: list[int] | None = Field(default=None, max_length=10)
    trash_days: int | None = Field(default=None, ge=0, le=36500)
    junk_days: int | None = Field(default=None, ge=0, le=36500)
    plaintext_auth: bool | None = None
    trash_counts: bool | None = None
    failure_delay: float | None = Field(default=None, ge=0, le=30)
    penalty_max: float | None = Field(default=None, ge=0, le=300)
    pop3_delete_mode: Literal["expunge", "hide"] | None = None
    pop3_leave_days: int | None = Field(default=None, ge=0, le=36500)


class Cleanup(_Body):
    folder: str = Field(min_length=1, max_length=1000)
    older_than_days: int | None = Field(default=None, ge=0, le=36500)
    larger_than_mb: float | None = Field(default=None, ge=0, le=1_000_000)
    seen: bool = False
    action: Literal["preview", "trash", "delete"] = "preview"


class PasswordChange(_Body):
    current: str = Field(min_length=1, max_length=MAX_PASSWORD)
    new: str = Field(min_length=8, max_length=MAX_PASSWORD)


Admin = Depends(admin)
User = Depends(user)


# --- administrators ------------------------------------------------------------------------
@router.get("/dashboard", tags=["admin"])
async def dashboard(request: Request, who: Caller = Admin) -> dict[str, Any]:
    """Services with live state and addresses, sessions, last hour's logins and
    deliveries, storage."""
    return await console_of(request).dashboard()


@router.put("/services/{service}", tags=["admin"])
async def switch_service(request: Request, service: Service, body: ServiceSwitch,
                         who: Caller = Admin) -> dict[str, Any]:
    """Switch a protocol on or off server-wide, live (open sessions end with the
    protocol's goodbye when it goes off)."""
    return await console_of(request).set_service(who.actor, service, body.enabled)


@router.get("/accounts", tags=["admin"])
async def list_accounts(
    request: Request,
    search: str = Query("", max_length=320),
    sort: Literal["address", "bytes", "messages", "percent", "created"] = "address",
    descending: bool = False,
    over_percent: float | None = Query(None, ge=0, le=1000),
    offset: int = Query(0, ge=0, le=10_000_000),
    limit: int = Query(50, ge=1, le=500),
    who: Caller = Admin,
) -> dict[str, Any]:
    """One page of accounts, searched by address, filtered by the share of the quota
    used and sorted (usage as the server measured it last, within seconds)."""
    return await console_of(request).accounts(search, sort, descending, over_percent, offset, limit)


@router.post("/accounts", status_code=201, tags=["admin"])
async def create_account(request: Request, body: AccountCreate, who: Caller = Admin) -> dict[str, Any]:
    return await console_of(request).create_account(
        who.actor, body.address, body.password, list(body.protocols), body.quota_bytes, body.quota_messages
    )


@router.get("/accounts/{address}", tags=["admin"])
async def get_account(request: Request, address: str, who: Caller = Admin) -> dict[str, Any]:
    """Usage per folder, quota, protocols, live sessions, last login per protocol."""
    return await console_of(request).account_detail(address)


@router.patch("/accounts/{address}", tags=["admin"])
async def change_account(request: Request, address: str, body: AccountChange, who: Caller = Admin) -> dict[str, Any]:
    return await console_of(request).update_account(who.actor, address, body.model_dump(exclude_none=True))


@router.delete("/accounts/{address}", status_code=204, tags=["admin"])
async def delete_account(request: Request, address: str, keep_mail: bool = False, who: Caller = Admin) -> Response:
    """Delete the account: its sessions end and its mail is removed (or archived)."""
    await console_of(request).delete_account(who.actor, address, keep_mail)
    return Response(status_code=204)


@router.delete("/accounts/{address}/sessions/{session_id}", status_code=204, tags=["admin"])
async def disconnect(request: Request, address: str, session_id: int, who: Caller = Admin) -> Response:
    """End one of the account's IMAP or POP3 sessions with the protocol's goodbye."""
    await console_of(request).disconnect(who.actor, address, session_id)
    return Response(status_code=204)


@router.get("/policies", tags=["admin"])
async def get_policies(request: Request, who: Caller = Admin) -> dict[str, Any]:
    return console_of(request).policies()


@router.patch("/policies", tags=["admin"])
async def set_policies(request: Request, body: PolicyChange, who: Caller = Admin) -> dict[str, Any]:
    return await console_of(request).set_policies(who.actor, body.model_dump(exclude_none=True))


@router.get("/audit", tags=["admin"])
async def audit(
    request: Request,
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10_000_000),
    about: str | None = Query(None, max_length=320),
    who: Caller = Admin,
) -> list[dict[str, Any]]:
    """Administrative changes, newest first (console, API and CLI)."""
    return console_of(request).audit_log(limit, offset, about)


# --- mail users ------------------------------------------------------------------------------
@router.get("/me", tags=["user"])
async def me(request: Request, who: Caller = User) -> dict[str, Any]:
    """The logged-in user's usage per folder, quota and protocols."""
    return await console_of(request).my_usage(who.actor.name)


@router.post("/me/cleanup", tags=["user"])
async def cleanup(request: Request, body: Cleanup, who: Caller = User) -> dict[str, Any]:
    """Count (action "preview"), move to Trash or delete a folder's messages that are
    older, larger or already read."""
    return await console_of(request).cleanup(
        who.actor.name, body.folder, body.older_than_days, body.larger_than_mb, body.seen, body.action
    )


@router.post("/me/password", status_code=204, tags=["user"])
async def change_password(request: Request, body: PasswordChange, who: Caller = User) -> Response:
    await console_of(request).change_password(who.actor.name, body.current, body.new, client_ip(request))
    # Other console sessions of this user end; this one stays.
    sessions_of(request).end_all("user", who.actor.name, keep=who.session.id if who.session else None)
    return Response(status_code=204)
