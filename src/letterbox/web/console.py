"""What the console can do, once: the JSON API and the HTML pages both call these.

Every change goes where the CLI's would (the directory, the store) and is then applied
to the running server as a CLI change is (`Server.directory_changed`), and every
administrative change is written to the audit log with who made it and from where.
Store work goes through the store API, so IMAP sessions hear of expunges and moves.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import metrics, policy
from ..auth.admins import AdminError
from ..auth.authenticator import LoginResult, Outcome
from ..auth.directory import (
    PROTOCOLS,
    SERVICES,
    Account,
    DirectoryError,
    DirectoryUnavailable,
    normalize_address,
)
from ..auth.listing import SORTS, account_page, totals
from ..auth.passwords import make_secrets
from ..store.api import BadMailboxName, MailboxNotFound, Quota, StoreError, Usage
from .reads import Reads
from .websessions import WebSessions

if TYPE_CHECKING:
    from .host import Host

log = logging.getLogger("letterbox.web")

CLEANUP_BATCH = 1000
CLEANUP_MAX = 50_000
"""Messages one clean-up looks at (and removes) at most; a bigger one is done in several."""
MAX_PASSWORD = 1024
MAX_COUNT = 2**62
"""Largest quota (bytes or messages) and offset taken: SQLite integers stop at 2**63."""


def check_count(value: int | None, what: str) -> int | None:
    if value is not None and not 0 <= value <= MAX_COUNT:
        raise ConsoleError(400, f"{what} must be from 0 to {MAX_COUNT}")
    return value


class ConsoleError(Exception):
    """A request the console refuses, with the HTTP status and a message for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks: an administrator (by name) or a mail user (by address), and from where."""

    kind: str
    name: str
    ip: str

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}"


def check_password(password: str) -> str:
    if not password:
        raise ConsoleError(400, "the password may not be empty")
    if len(password) > MAX_PASSWORD:
        raise ConsoleError(400, f"the password is longer than {MAX_PASSWORD} characters")
    if len(password) < 8:
        raise ConsoleError(400, "the password must have at least 8 characters")
    return password


def check_protocols(protocols: list[str]) -> list[str]:
    bad = [p for p in protocols if p not in PROTOCOLS]
    if bad:
        raise ConsoleError(400, f"unknown protocol {bad[0]!r}: expected imap or pop3")
    return list(dict.fromkeys(protocols))


class Console:
    def __init__(self, server: Host, sessions: WebSessions) -> None:
        self.server = server
        self.ctx = server.ctx
        self.directory = server.ctx.directory
        self.sessions = sessions
        self.reads = Reads(self.directory)

    # --- helpers ---------------------------------------------------------------------------
    def audit(self, actor: Actor, what: str) -> None:
        self.directory.audit.write(actor.label, actor.ip, what)
        log.info("console: %s from %s: %s", actor.label, actor.ip, what)

    def account(self, address: str) -> Account:
        try:
            acc = self.directory.get(normalize_address(address))
        except DirectoryError as e:
            raise ConsoleError(400, str(e)) from None
        if acc is None:
            raise ConsoleError(404, f"no account {address!r}")
        return acc

    async def applied(self) -> None:
        await self.server.directory_changed()

    # --- dashboard -------------------------------------------------------------------------
    async def services(self) -> list[dict[str, Any]]:
        switches = self.server.switches()
        counts = await self.server.session_counts()
        bound = self.server.bound
        out = []
        for service in SERVICES:
            addresses = [a for label, addrs in bound.items() if label.startswith(service) for a in addrs]
            out.append({
                "name": service,
                "enabled": switches[service],
                "configured": self.server.configured(service),
                "listening": addresses,
                "sessions": counts.get(service, 0),
            })
        return out

    async def dashboard(self) -> dict[str, Any]:
        n, messages, stored = await self.reads.run(totals)
        disk = shutil.disk_usage(self.ctx.settings.data_dir)
        hour = metrics.LAST_HOUR
        return {
            "services": await self.services(),
            "last_hour": {
                "logins": hour.total("logins"),
                "login_failures": hour.total("login_failures"),
                "deliveries": hour.total("deliveries"),
                "delivery_refusals": hour.total("delivery_refusals"),
            },
            "storage": {
                "accounts": n, "messages": messages, "bytes": stored,
                "disk_free": disk.free, "disk_total": disk.total,
                "measured": self.server.usage.scanned,
            },
            "uptime": round(time.time() - self.server.started),
        }

    async def set_service(self, actor: Actor, service: str, enabled: bool) -> dict[str, Any]:
        if service not in SERVICES:
            raise ConsoleError(404, f"no service {service!r}: expected one of {', '.join(SERVICES)}")
        self.directory.set_switch(service, enabled)
        self.audit(actor, f"{'enabled' if enabled else 'disabled'} {service.upper()}")
        await self.applied()
        return next(s for s in await self.services() if s["name"] == service)

    # --- accounts --------------------------------------------------------------------------
    async def accounts(self, search: str = "", sort: str = "address", descending: bool = False,
                 over_percent: float | None = None, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        if sort not in SORTS:
            raise ConsoleError(400, f"sort must be one of {', '.join(SORTS)}")
        if over_percent is not None and not 0 <= over_percent <= 1000:
            raise ConsoleError(400, "over_percent must be from 0 to 1000")
        if len(search) > 320:
            raise ConsoleError(400, "the search text is too long")
        check_count(offset, "offset")
        page = await self.reads.run(
            lambda db: account_page(db, search, sort, descending, over_percent, offset, limit))
        return {
            "total": page.total,
            "offset": offset,
            "limit": limit,
            "accounts": [
                {"address": r.address, "enabled": r.enabled, "protocols": list(r.protocols),
                 "quota_bytes": r.quota_bytes, "quota_messages": r.quota_messages,
                 "messages": r.messages, "bytes": r.bytes, "percent": r.percent, "measured": r.measured}
                for r in page.rows
            ],
        }

    async def create_account(self, actor: Actor, address: str, password: str, protocols: list[str],
                             quota_bytes: int | None, quota_messages: int | None) -> dict[str, Any]:
        try:
            addr = normalize_address(address)
        except DirectoryError as e:
            raise ConsoleError(400, str(e)) from None
        if self.directory.get(addr) is not None:
            raise ConsoleError(409, f"account {addr!r} already exists")
        check_count(quota_bytes, "quota_bytes")
        check_count(quota_messages, "quota_messages")
        secrets_ = await asyncio.to_thread(make_secrets, check_password(password))
        defaults = self.ctx.settings.quota
        quota = Quota(defaults.default_bytes if quota_bytes is None else quota_bytes,
                      defaults.default_messages if quota_messages is None else quota_messages)
        try:
            account = self.directory.add(addr, secrets_, check_protocols(protocols), quota)
        except DirectoryError as e:
            raise ConsoleError(409, str(e)) from None
        try:
            await self.ctx.store.account(addr, account.incarnation)  # INBOX and special folders
        except StoreError as e:
            log.warning("console: mail folder of new account %s not made yet: %s", addr, e)
        self.server.usage.mark(addr)
        self.audit(actor, f"created account {addr} (protocols {','.join(protocols) or 'none'},"
                          f" quota {quota.bytes} bytes / {quota.messages} messages)")
        await self.applied()
        return await self.account_detail(addr)

    async def account_detail(self, address: str) -> dict[str, Any]:
        acc = self.account(address)
        folders: list[dict[str, Any]] = []
        available = True
        try:
            store = await self.ctx.store.account(acc.address, acc.incarnation)
            for f in await store.folder_usage():
                folders.append({"name": f.name, "special_use": f.special_use, "messages": f.messages,
                                "bytes": f.bytes, "unseen": f.unseen, "oldest": f.oldest})
        except StoreError:
            available = False
        last = self.directory.last_logins(acc.address)
        for (address_, protocol), (at, ip) in metrics.LAST_LOGINS.pending.items():
            if address_ == acc.address:
                last[protocol] = (at, ip)
        used_bytes = sum(f["bytes"] for f in folders)
        used_messages = sum(f["messages"] for f in folders)
        counted = [f for f in folders if self.ctx.policy.trash_counts or f["special_use"] != "\\Trash"]
        percent = acc.quota.percent_used(Usage(sum(f["messages"] for f in counted), sum(f["bytes"] for f in counted)))
        return {
            "address": acc.address,
            "enabled": acc.enabled,
            "disabled_message": acc.disabled_message,
            "protocols": [p for p in PROTOCOLS if p in acc.protocols],
            "quota_bytes": acc.quota.bytes,
            "quota_messages": acc.quota.messages,
            "messages": used_messages,
            "bytes": used_bytes,
            "percent": None if percent is None else round(percent, 1),
            "trash_counts": self.ctx.policy.trash_counts,
            "available": available,
            "folders": folders,
            "created": acc.created,
            "last_logins": {p: {"at": at, "ip": ip} for p, (at, ip) in sorted(last.items())},
            "sessions": await self.server.sessions(acc.address),
        }

    async def update_account(self, actor: Actor, address: str, changes: dict[str, Any]) -> dict[str, Any]:
        acc = self.account(address)
        said: list[str] = []
        if "protocols" in changes and changes["protocols"] is not None:
            protos = check_protocols(list(changes["protocols"]))
            self.directory.set_protocols(acc.address, protos)
            said.append(f"protocols {','.join(protos) or 'none'}")
        if changes.get("quota_bytes") is not None or changes.get("quota_messages") is not None:
            qb = changes.get("quota_bytes")
            qm = changes.get("quota_messages")
            quota = Quota(acc.quota.bytes if qb is None else int(qb), acc.quota.messages if qm is None else int(qm))
            check_count(quota.bytes, "quota_bytes")
            check_count(quota.messages, "quota_messages")
            self.directory.set_quota(acc.address, quota)
            self.server.usage.mark(acc.address)  # the quota warning is judged again
            said.append(f"quota {quota.bytes} bytes / {quota.messages} messages")
        if changes.get("enabled") is not None:
            message = str(changes.get("disabled_message") or "")
            self.directory.set_enabled(acc.address, bool(changes["enabled"]), message)
            if not changes["enabled"]:
                self.sessions.end_all("user", acc.address)
            said.append("enabled" if changes["enabled"] else f"disabled ({message or 'no message'})")
        if changes.get("password"):
            secrets_ = await asyncio.to_thread(make_secrets, check_password(str(changes["password"])))
            self.directory.set_password(acc.address, secrets_)
            self.sessions.end_all("user", acc.address)
            said.append("password reset")
        if not said:
            raise ConsoleError(400, "nothing to change")
        self.audit(actor, f"changed account {acc.address}: {'; '.join(said)}")
        await self.applied()
        return await self.account_detail(acc.address)

    async def delete_account(self, actor: Actor, address: str, keep_mail: bool = False) -> None:
        acc = self.account(address)
        self.directory.mark_deleted(acc.address, keep_mail)
        self.sessions.end_all("user", acc.address)
        self.audit(actor, f"deleted account {acc.address}" + (" (mail archived)" if keep_mail else ""))
        await self.applied()

    async def disconnect(self, actor: Actor, address: str, session_id: int) -> None:
        acc = self.account(address)
        if not await self.server.disconnect(session_id, "session ended by the administrator", acc.address):
            raise ConsoleError(404, "no such session (it may have ended already)")
        self.audit(actor, f"disconnected a session of {acc.address}")

    # --- policies and audit ------------------------------------------------------------------
    def policies(self) -> dict[str, Any]:
        overrides = self.directory.policies()
        current = self.ctx.policy.as_dict()
        configured = self.server.configured_policy.as_dict()
        return {key: {"value": current[key], "configured": configured[key], "overridden": key in overrides,
                      "description": policy.DESCRIPTIONS[key]} for key in policy.KEYS}

    async def set_policies(self, actor: Actor, changes: dict[str, Any]) -> dict[str, Any]:
        checked: dict[str, Any] = {}
        for key, value in changes.items():
            if value is None:
                continue
            try:
                checked[key] = policy.check(key, value)
            except policy.PolicyError as e:
                raise ConsoleError(400, str(e)) from None
        if not checked:
            raise ConsoleError(400, "nothing to change")
        current = self.ctx.policy.as_dict()
        checked = {k: v for k, v in checked.items() if v != current[k]}
        if not checked:
            return self.policies()  # as asked already
        for key, value in checked.items():
            self.directory.set_policy(key, json.dumps(value))
        self.audit(actor, "set policies " + ", ".join(f"{k}={json.dumps(v)}" for k, v in checked.items()))
        await self.applied()
        return self.policies()

    def audit_log(self, limit: int = 100, offset: int = 0, about: str | None = None) -> list[dict[str, Any]]:
        check_count(offset, "offset")
        return [
            {"id": e.id, "at": e.at, "who": e.who, "client": e.client, "what": e.what}
            for e in self.directory.audit.recent(max(1, min(limit, 500)), max(0, offset), about)
        ]

    # --- administrators ------------------------------------------------------------------------
    async def admin_login(self, name: str, password: str, ip: str) -> bool:
        async def check() -> LoginResult:
            try:
                stored = self.directory.admins.stored_hash(name) if len(name) <= 64 else None
            except DirectoryUnavailable:
                return LoginResult(Outcome.UNAVAILABLE)
            ok = await self.ctx.auth.verify_hash(stored, password[:MAX_PASSWORD])
            return LoginResult(Outcome.OK if ok and stored is not None else Outcome.BAD_CREDENTIALS)

        result = await self.ctx.auth.guarded("web", ip, check, name)
        if result.outcome is Outcome.UNAVAILABLE:
            raise ConsoleError(503, "the accounts directory is unavailable; try again shortly")
        if result.outcome is Outcome.THROTTLED:
            raise ConsoleError(429, "too many logins at once from your address; try again shortly")
        return result.ok

    def token_admin(self, token: str) -> str | None:
        try:
            return self.directory.admins.token_admin(token)
        except AdminError:
            return None

    # --- mail users ------------------------------------------------------------------------------
    async def user_login(self, address: str, password: str, ip: str) -> tuple[Account | None, str]:
        """(account, "") on success, else (None, why) in words for the login page."""
        result = await self.ctx.auth.login(address, password[:MAX_PASSWORD], "web", ip)
        if result.ok and result.account is not None:
            return result.account, ""
        if result.outcome is Outcome.ACCOUNT_DISABLED and result.account is not None:
            why = result.account.disabled_message
            return None, "This account is disabled" + (f": {why}" if why else ".")
        if result.outcome is Outcome.UNAVAILABLE:
            raise ConsoleError(503, "the accounts directory is unavailable; try again shortly")
        if result.outcome is Outcome.THROTTLED:
            raise ConsoleError(429, "too many logins at once from your address; try again shortly")
        return None, "Wrong address or password."

    async def my_usage(self, address: str) -> dict[str, Any]:
        detail = await self.account_detail(address)
        return {
            "address": detail["address"],
            "protocols": detail["protocols"],
            "quota_bytes": detail["quota_bytes"],
            "quota_messages": detail["quota_messages"],
            "messages": detail["messages"],
            "bytes": detail["bytes"],
            "percent": detail["percent"],
            "trash_counts": detail["trash_counts"],
            "folders": detail["folders"],
            "available": detail["available"],
        }

    async def cleanup(self, address: str, folder: str, older_than_days: int | None, larger_than_mb: float | None,
                      seen: bool, action: str) -> dict[str, Any]:
        """Find a folder's messages matching every criterion; with action "preview" only
        count them, with "trash" move them to Trash (delete them when the folder is the
        Trash), with "delete" expunge them."""
        if action not in ("preview", "trash", "delete"):
            raise ConsoleError(400, "action must be preview, trash or delete")
        if older_than_days is None and larger_than_mb is None and not seen:
            raise ConsoleError(400, "choose at least one criterion: older than, larger than or already read")
        if older_than_days is not None and not 0 <= older_than_days <= 36500:
            raise ConsoleError(400, "older than: 0 to 36500 days")
        if larger_than_mb is not None and not 0 <= larger_than_mb <= 1_000_000:
            raise ConsoleError(400, "larger than: 0 to 1,000,000 MB")
        acc = self.account(address)
        try:
            store = await self.ctx.store.account(acc.address, acc.incarnation)
            mailbox = await store.get_mailbox(folder)
            found = await store.select_messages(
                mailbox.id,
                received_before=None if older_than_days is None else time.time() - older_than_days * 86400,
                larger_than=None if larger_than_mb is None else int(larger_than_mb * 1024 * 1024),
                seen=seen,
                limit=CLEANUP_MAX + 1,
            )
        except MailboxNotFound:
            raise ConsoleError(404, f"no folder {folder!r}") from None
        except BadMailboxName as e:
            raise ConsoleError(400, f"no folder can be called {folder!r}: {e}") from None
        except StoreError as e:
            raise ConsoleError(503, f"the mailbox cannot be used just now: {e}") from None
        more = len(found) > CLEANUP_MAX
        found = found[:CLEANUP_MAX]
        result: dict[str, Any] = {"folder": mailbox.name, "messages": len(found), "more": more,
                                  "bytes": sum(z for _, z in found),
                                  "action": action, "done": 0, "is_trash": mailbox.special_use == "\\Trash"}
        if action == "preview" or not found:
            return result
        trash = None
        if action == "trash":
            trash = next((m for m in await store.list_mailboxes() if m.special_use == "\\Trash"), None)
            if trash is None:
                raise ConsoleError(409, "there is no Trash folder to move the messages to")
            if trash.id == mailbox.id:
                trash = None  # cleaning the Trash itself deletes
        uids = [u for u, _ in found]
        done = 0
        try:
            for i in range(0, len(uids), CLEANUP_BATCH):
                batch = uids[i : i + CLEANUP_BATCH]
                if trash is not None:
                    moved = await store.move(mailbox.id, batch, trash.name)
                    done += len(moved.source_uids)
                else:
                    done += len(await store.expunge(mailbox.id, batch))
                await asyncio.sleep(0)  # other sessions run between batches
        except StoreError as e:
            raise ConsoleError(503, f"the clean-up stopped after {done} messages: {e}") from None
        result["done"] = done
        result["moved_to"] = trash.name if trash is not None else None
        log.info("console: %s cleaned %s: %d messages (%s)", acc.address, mailbox.name, done,
                 "moved to " + trash.name if trash is not None else "deleted")
        return result

    async def change_password(self, address: str, current: str, new: str, ip: str) -> None:
        acc = self.account(address)
        ok, _ = await self.user_login(acc.address, current, ip)
        if ok is None:
            raise ConsoleError(403, "the current password is not right")
        secrets_ = await asyncio.to_thread(make_secrets, check_password(new))
        self.directory.set_password(acc.address, secrets_)
        await self.applied()
