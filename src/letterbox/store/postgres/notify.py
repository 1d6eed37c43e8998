"""The change feed across front ends: NOTIFY at commit, LISTEN into the local feed.

Every transaction that changes something sends its changes with `pg_notify` before it
commits, so PostgreSQL delivers them at commit and never for a rollback. Each front end
keeps one LISTEN connection and publishes what the others did on its own ChangeFeed;
its own changes it published at once, so it ignores their echo (by its sender id).
After the LISTEN connection is lost and made again, changes may have been missed:
the store then tells its open accounts to look again (`on_reconnect`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from ..api import Change
from ..feed import ChangeFeed

log = logging.getLogger("letterbox.store")

MAX_PAYLOAD = 7900
"""NOTIFY payloads must stay under 8000 bytes; metadata entry lists beyond are dropped
(the change itself still goes)."""
_RETRY = (0.1, 0.2, 0.5, 1.0, 2.0)


def new_sender() -> str:
    return secrets.token_hex(6)


def encode(sender: str, change: Change) -> str:
    """"<account> <mailbox_id> <modseq> <kind> <sender> <JSON of the rest>"."""
    head = f"{change.account} {change.mailbox_id} {change.modseq} {change.kind} {sender} "
    rest = [change.name, change.old_name, list(change.entries), change.user]
    text = head + json.dumps(rest, ensure_ascii=False)
    if len(text.encode()) > MAX_PAYLOAD:
        rest[2] = []
        text = head + json.dumps(rest, ensure_ascii=False)
    return text


def around_modseq(sender: str, account: str, mailbox_id: int, kind: str) -> tuple[str, str]:
    """For a statement that takes the MODSEQ itself: the payload of a change with no
    old name, entries nor user is `head || modseq || tail || json_build_array(name, '',
    '[]'::json, '')` (the JSON decode reads)."""
    return f"{account} {mailbox_id} ", f" {kind} {sender} "


def decode(payload: str) -> tuple[str, Change] | None:
    """(sender, change) or None for a payload that is not ours."""
    try:
        account, mid, modseq, kind, sender, rest = payload.split(" ", 5)
        name, old_name, entries, user = json.loads(rest)
        return sender, Change(account, int(mid), int(modseq), kind, str(name), str(old_name),  # type: ignore[arg-type]
                              0, tuple(str(e) for e in entries), str(user))
    except (ValueError, TypeError):
        return None


def also_for(change: Change) -> tuple[str, ...]:
    """An ACL change concerns its grantee's sessions too (every session for ANYONE, see
    ChangeFeed.publish)."""
    return (change.user,) if change.kind == "acl" and change.user else ()


class Listener:
    """One LISTEN connection, made again whenever it is lost."""

    def __init__(
        self, connect: Callable[[], Awaitable[Any]], channel: str, sender: str, feed: ChangeFeed,
        on_reconnect: Callable[[], Awaitable[None]],
    ) -> None:
        self._connect = connect
        self.channel = channel
        self.sender = sender
        self.feed = feed
        self._on_reconnect = on_reconnect
        self._conn: Any = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        await self._listen()
        self._task = asyncio.create_task(self._keep())

    async def _listen(self) -> None:
        conn = await self._connect()
        self._lost.clear()
        conn.add_termination_listener(lambda _c: self._lost.set())
        await conn.add_listener(self.channel, self._received)
        self._conn = conn
        self.ready.set()

    def _received(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        found = decode(payload)
        if found is None:
            log.warning("ignoring a change notice that is not ours: %.80r", payload)
            return
        sender, change = found
        if sender == self.sender:
            return  # published here already, at commit
        self.feed.publish(change, also=also_for(change))

    async def _keep(self) -> None:
        while True:
            await self._lost.wait()
            self.ready.clear()
            log.warning("the change feed's connection to PostgreSQL was lost; reconnecting")
            for i in range(1_000_000):
                await asyncio.sleep(_RETRY[min(i, len(_RETRY) - 1)])
                try:
                    await self._listen()
                    break
                except Exception as e:  # noqa: BLE001 - keep trying, whatever went wrong
                    log.info("reconnecting the change feed failed: %s", e)
            with contextlib.suppress(Exception):
                await self._on_reconnect()

    def abandon(self) -> None:
        """Let go of a listener whose event loop is gone (nothing can be awaited there)."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.terminate()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
