"""An account as a user other than its owner reads it (see AccountStore.reader).

Everything is the owner's account's, except \\Seen: what the reader is shown, searches,
sets and appends is the reader's own mark (kept by the backend: the owner's methods take
`reader=`). Rights are not checked here: the protocol decides what a reader may do
(RFC 4314 4) before it calls the store. Every backend hands out this same view.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, Literal

from ..mime import ParsedMessage
from .api import (
    AccountStore,
    AppendResult,
    ChangeSet,
    CopyResult,
    FetchField,
    FlagTable,
    FolderUsage,
    Mailbox,
    MailboxStatus,
    MessageMeta,
    MessageRecord,
    Progress,
    Quota,
    SearchField,
    Usage,
)


class ReaderAccount(AccountStore):
    def __init__(self, acc: Any, user: str) -> None:
        """*acc*: the owner's account in its backend (MaildirAccount, PgAccount), whose
        methods take the keyword `reader=` that the API leaves out (protocols read as the
        owner or through this view, never pass it themselves)."""
        self.acc = acc
        self.user = user
        self.address = acc.address

    # --- mailboxes: the owner's -------------------------------------------------------
    async def list_mailboxes(self) -> list[Mailbox]:
        return await self.acc.list_mailboxes()

    async def get_mailbox(self, name: str) -> Mailbox:
        return await self.acc.get_mailbox(name)

    async def create_mailbox(self, name: str, special_use: str | None = None) -> Mailbox:
        return await self.acc.create_mailbox(name, special_use)

    async def delete_mailbox(self, name: str) -> None:
        await self.acc.delete_mailbox(name)

    async def rename_mailbox(self, old: str, new: str) -> None:
        await self.acc.rename_mailbox(old, new)

    async def set_subscribed(self, name: str, subscribed: bool) -> None:
        await self.acc.set_subscribed(name, subscribed)

    async def subscriptions(self) -> list[str]:
        return await self.acc.subscriptions()

    async def status(self, mailbox: str) -> MailboxStatus:
        return await self.acc.status(mailbox, reader=self.user)

    async def take_recent(self, mailbox_id: int, claim: bool = True) -> tuple[int, int]:
        return await self.acc.take_recent(mailbox_id, claim)

    # --- messages: \Seen is the reader's ---------------------------------------------------
    async def snapshot(self, mailbox: str) -> tuple[Mailbox, list[MessageMeta]]:
        return await self.acc.snapshot(mailbox, reader=self.user)

    async def select_info(self, mailbox: str) -> tuple[Mailbox, Sequence[int], int | None]:
        return await self.acc.select_info(mailbox, reader=self.user)

    async def fetch(self, mailbox_id: int, uids: Sequence[int], fields: Iterable[FetchField]) -> list[MessageRecord]:
        return await self.acc.fetch(mailbox_id, uids, fields, reader=self.user)

    async def fetch_values(
        self, mailbox_id: int, uids: Sequence[int], fields: Sequence[FetchField]
    ) -> list[tuple[Any, ...]]:
        return await self.acc.fetch_values(mailbox_id, uids, fields, reader=self.user)

    async def make_previews(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, str]:
        return await self.acc.make_previews(mailbox_id, uids)

    async def flag_table(self, mailbox_id: int) -> FlagTable:
        return await self.acc.flag_table(mailbox_id, reader=self.user)

    async def read_message(self, mailbox_id: int, uid: int) -> bytes:
        return await self.acc.read_message(mailbox_id, uid)

    async def read_range(self, mailbox_id: int, uid: int, start: int, length: int) -> bytes:
        return await self.acc.read_range(mailbox_id, uid, start, length)

    def read_chunks(
        self, mailbox_id: int, uid: int, start: int, length: int
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[bytes]]:
        return self.acc.read_chunks(mailbox_id, uid, start, length)

    async def append(
        self,
        mailbox: str,
        data: bytes,
        flags: Iterable[str] = (),
        internaldate: float | None = None,
        quota: Quota | None = None,
        parsed: ParsedMessage | None = None,
    ) -> AppendResult:
        return await self.acc.append(mailbox, data, flags, internaldate, quota, parsed, reader=self.user)

    async def uids_with_flag(self, mailbox_id: int, flag: str) -> list[int]:
        return await self.acc.uids_with_flag(mailbox_id, flag, reader=self.user)

    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: Literal["add", "remove", "replace"],
        flags: Iterable[str],
        unchangedsince: int | None = None,
        only: Callable[[str], bool] | None = None,
    ) -> list[MessageMeta]:
        return await self.acc.store_flags(mailbox_id, uids, mode, flags, unchangedsince, only, reader=self.user)

    async def expunge(self, mailbox_id: int, uids: Sequence[int], progress: Progress | None = None) -> list[int]:
        return await self.acc.expunge(mailbox_id, uids, progress)

    async def copy(
        self, mailbox_id: int, uids: Sequence[int], dest: str, quota: Quota | None = None,
        progress: Progress | None = None,
    ) -> CopyResult:
        return await self.acc.copy(mailbox_id, uids, dest, quota, progress)

    async def move(
        self, mailbox_id: int, uids: Sequence[int], dest: str, progress: Progress | None = None
    ) -> CopyResult:
        return await self.acc.move(mailbox_id, uids, dest, progress)

    async def changes_since(self, mailbox_id: int, modseq: int) -> ChangeSet:
        return await self.acc.changes_since(mailbox_id, modseq, reader=self.user)

    async def search_headers(self, mailbox_id: int, field: SearchField, needle: str) -> list[int]:
        return await self.acc.search_headers(mailbox_id, field, needle)

    # --- metadata: /shared is the mailbox's, /private the reader's own (RFC 5464 3.2) ---
    async def get_metadata(
        self, mailbox: str | None, entries: Sequence[str], depth: int = 0
    ) -> list[tuple[str, bytes]]:
        return await self.acc.get_metadata(mailbox, entries, depth, reader=self.user)

    async def set_metadata(self, mailbox: str | None, changes: Sequence[tuple[str, bytes | None]]) -> None:
        await self.acc.set_metadata(mailbox, changes, reader=self.user)

    # --- access control: the owner's ----------------------------------------------------
    async def get_acl(self, mailbox: str) -> dict[str, str]:
        return await self.acc.get_acl(mailbox)

    async def set_acl(self, mailbox: str, identifier: str, rights: str) -> None:
        await self.acc.set_acl(mailbox, identifier, rights)

    async def granted(self, identifiers: Sequence[str], mailbox: str | None = None) -> dict[str, str]:
        return await self.acc.granted(identifiers, mailbox)

    async def forget_identifier(self, identifier: str) -> None:
        await self.acc.forget_identifier(identifier)

    def reader(self, user: str) -> AccountStore:
        return self.acc.reader(user)

    # --- POP3 is the owner's alone, of the owner's INBOX ---------------------------------
    async def pop3_maildrop(self) -> tuple[Mailbox, list[tuple[int, int]]]:
        return await self.acc.pop3_maildrop()

    def pop3_lock(self, wait: float = 0.0) -> contextlib.AbstractAsyncContextManager[None]:
        return self.acc.pop3_lock(wait)

    async def pop3_hide(self, mailbox_id: int, uids: Sequence[int]) -> None:
        await self.acc.pop3_hide(mailbox_id, uids)

    async def pop3_mark_retrieved(self, mailbox_id: int, uids: Sequence[int]) -> None:
        await self.acc.pop3_mark_retrieved(mailbox_id, uids)

    async def pop3_expire(self, older_than: float) -> int:
        return await self.acc.pop3_expire(older_than)

    async def usage(self, count_trash: bool = True) -> Usage:
        return await self.acc.usage(count_trash)

    # --- the administration tools' (the owner's \Seen, as the owner's account has it) ----
    async def folder_usage(self) -> list[FolderUsage]:
        return await self.acc.folder_usage()

    async def select_messages(
        self,
        mailbox_id: int,
        received_before: float | None = None,
        larger_than: int | None = None,
        seen: bool = False,
        limit: int | None = None,
    ) -> list[tuple[int, int]]:
        return await self.acc.select_messages(mailbox_id, received_before, larger_than, seen, limit)
