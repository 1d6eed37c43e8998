"""The server's usage table and quota warnings.

Each account's usage lives in its own index; the console's accounts table needs it for
thousands of accounts at once, sorted and filtered. So the server keeps a copy in the
directory's `usage` table: every account once at start-up (in the background, read-only,
a batch at a time), then each account the change feed names, a few seconds later, in one
transaction per round. Measuring an account is also when its quota warnings are judged:
crossing one of the policy's percentages upwards puts one message in its INBOX, and
falling below it again arms it for the next crossing.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Iterable

from ..auth.directory import BUSY, Account
from ..service.context import Context
from ..store.api import StoreError, Usage

log = logging.getLogger("letterbox.usage")

START_BATCH = 200
MAX_DIRTY = 100_000


def warning_message(hostname: str, account: Account, level: int, usage: Usage, percent: float) -> bytes:
    """The notice a user finds in INBOX when their mailbox passes *level* percent."""
    quota = account.quota
    lines = [
        f"Your mailbox {account.address} is now {percent:.0f}% full.",
        "",
        f"It holds {usage.messages} messages, {usage.bytes / 1048576:.1f} MiB"
        + (f" of the {quota.bytes / 1048576:.1f} MiB allowed" if quota.bytes else "")
        + (f" ({quota.messages} messages allowed)" if quota.messages else "")
        + ".",
        "",
        "When it is full, new mail cannot be delivered. Delete messages you no longer",
        "need and empty the Trash, or use the clean-up tool of the web console.",
    ]
    head = [
        f"From: Mail server <postmaster@{hostname}>",
        f"To: <{account.address}>",
        f"Subject: Your mailbox is {level}% full",
        f"Date: {email.utils.formatdate(localtime=True)}",
        f"Message-ID: {email.utils.make_msgid('quota', domain=hostname)}",
        "Auto-Submitted: auto-generated",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
    ]
    return ("\r\n".join(head) + "\r\n\r\n" + "\r\n".join(lines) + "\r\n").encode("ascii", "replace")


class UsageTracker:
    """Keeps the directory's usage table (usage as the quota counts it: without Trash
    under the trash_counts policy) and sends quota warnings."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.dirty: set[str] = set()
        self.scanned = False
        """Every account was measured once since start."""
        ctx.store.watch(self.mark)

    def mark(self, address: str) -> None:
        if len(self.dirty) < MAX_DIRTY:
            self.dirty.add(address)

    async def scan_all(self) -> None:
        """Measure every account (start-up), a batch at a time between other work."""
        addresses = [a.address for a in self.ctx.directory.list()]
        for i in range(0, len(addresses), START_BATCH):
            await self.measure(addresses[i : i + START_BATCH])
        self.scanned = True
        log.info("measured the mail of %d accounts", len(addresses))

    async def flush(self) -> None:
        """Measure the accounts that changed since the last round."""
        if not self.dirty:
            return
        batch, self.dirty = self.dirty, set()
        await self.measure(sorted(batch))

    async def measure(self, addresses: Iterable[str]) -> None:
        addresses = list(addresses)
        try:
            await self._measure(addresses)
        except BUSY as e:
            # The directory is locked by another process's write (or, shared, out of
            # reach): measured again next round.
            log.debug("usage table not written this round: %s", e)
            for address in addresses:
                self.mark(address)

    async def _measure(self, addresses: list[str]) -> None:
        rows: list[tuple[str, int, int, int, int]] = []
        measured: list[tuple[Account, Usage]] = []
        trash_counts = self.ctx.policy.trash_counts
        for address in addresses:
            account = self.ctx.directory.get(address)
            if account is None:
                continue
            usage = await self.ctx.store.peek_usage(address)
            counted = usage if trash_counts or usage is None else await self.ctx.store.peek_usage(address, False)
            if usage is None or counted is None:
                continue
            rows.append((address, usage.messages, usage.bytes, counted.messages, counted.bytes))
            measured.append((account, counted))
        if rows:
            self.ctx.directory.record_usage(rows)  # one transaction; a batch is a millisecond or two
        for account, usage in measured:
            await self.judge(account, usage)

    async def judge(self, account: Account, usage: Usage) -> None:
        """Send a quota warning when the account crossed a threshold upwards."""
        percent = account.quota.percent_used(usage)
        levels = self.ctx.policy.warn_at
        reached = max((lv for lv in levels if percent is not None and percent >= lv), default=0)
        directory = self.ctx.directory
        warned = directory.warned_level(account.address)
        if reached == warned:
            return
        # The level is written first: a notice is never sent twice for one crossing.
        directory.set_warned_level(account.address, reached)
        if reached > warned and percent is not None:
            data = warning_message(self.ctx.hostname, account, reached, usage, percent)
            try:
                store = await self.ctx.store.account(account.address, account.incarnation)
                # No quota check: the notice must reach a mailbox that is nearly full.
                await store.append("INBOX", data, internaldate=time.time())
            except StoreError as e:
                log.warning("quota warning for %s not delivered: %s", account.address, e)
                directory.set_warned_level(account.address, warned)  # tried again next time
                return
            log.info("quota warning: %s is %.0f%% full (threshold %d%%)", account.address, percent, reached)
