"""The store interface: everything protocol code may know about mail storage.

Protocol cores (IMAP, POP3, delivery) import this module only, never a backend, so a
shared PostgreSQL backend can stand beside the embedded Maildir+SQLite one. Every change
goes through a store method, bumps the mailbox's MODSEQ and is published on the change
feed; sessions learn about other sessions' changes only through `changes_since`.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ..mime import ParsedMessage
    from .feed import ChangeFeed, Subscription

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
SPECIAL_USES = ("\\Drafts", "\\Sent", "\\Trash", "\\Junk", "\\Archive", "\\All", "\\Flagged")
DEFAULT_MAILBOXES = (
    ("Drafts", "\\Drafts"),
    ("Sent", "\\Sent"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)
DELIMITER = "/"
LEGACY = "legacy-"
"""Prefix of the incarnations given to accounts made before incarnations existed: only
they may claim a mail folder that has no owner yet."""
CHUNK = 256 * 1024
"""Size of the pieces message content is read and sent in (see AccountStore.read_chunks)."""

Progress = Callable[[int], Awaitable[None]]
"""Awaited by long store operations (expunge, copy, move) between their batches with the
number of messages handled so far: the caller may tell its client (IMAP INPROGRESS).
Awaited outside any transaction; it may take its time."""


class StoreError(Exception):
    """Base of store failures that protocol code turns into NO / -ERR / 4xx-5xx."""


class MailboxNotFound(StoreError):
    pass


class MailboxExists(StoreError):
    pass


class BadMailboxName(StoreError):
    pass


class OverQuota(StoreError):
    """The account's quota would be exceeded (IMAP [OVERQUOTA], LMTP 552 5.2.2)."""


class MessageGone(StoreError):
    """The message was expunged by another session."""


class MailboxInUse(StoreError):
    """A POP3 maildrop lock is held by another session (POP3 [IN-USE])."""


class LimitExceeded(StoreError):
    """A configured limit (mailboxes per account, keywords per mailbox, their length)
    would be passed: IMAP [LIMIT]."""


class MetadataTooBig(StoreError):
    """A metadata value is larger than one value may be (IMAP [METADATA MAXSIZE n])."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class MetadataTooMany(StoreError):
    """No room for more metadata: the entries of one mailbox (or of the server) or the
    account's metadata bytes are at their limit (IMAP [METADATA TOOMANY])."""


class DiskFull(StoreError):
    """No space left for this write (IMAP [OVERQUOTA] "Not enough disk space", LMTP 452
    4.3.1). Reading and deleting keep working on a full disk."""


class Unavailable(StoreError):
    """The account cannot be used for a moment (its index is being rebuilt, or another
    process holds it too long): IMAP [UNAVAILABLE], POP3 [SYS/TEMP], LMTP 451."""


REPAIRING = "being repaired"
"""Why an account is unavailable while an administrator's repair runs (see
Store.unavailable_accounts): not a damage to mend by itself."""


class AccountGone(StoreError):
    """The account was deleted while this handle was in use."""


@dataclass(frozen=True, slots=True)
class Mailbox:
    id: int
    name: str
    """IMAP name, "/"-delimited, Unicode; INBOX is always spelled "INBOX"."""
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    special_use: str | None = None
    subscribed: bool = False
    keywords: tuple[str, ...] = ()
    """Keywords ever used in this mailbox (IMAP FLAGS / PERMANENTFLAGS)."""
    mailboxid: str = ""
    """RFC 8474 MAILBOXID: 1 to 255 of [A-Za-z0-9_-], starting with a letter; the same as
    long as name and UIDVALIDITY are (kept by a RENAME, not by RENAME INBOX's new
    mailbox), never two mailboxes' of an account at once, never given to another."""


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    mailbox: Mailbox
    messages: int
    unseen: int
    deleted: int
    size: int
    recent: int = 0
    deleted_size: int = 0
    """Octets an EXPUNGE would free (RFC 9208 DELETED-STORAGE)."""


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """The cheap per-message facts a selected session keeps in memory."""

    uid: int
    flags: frozenset[str]
    modseq: int


@dataclass(slots=True)
class MessageRecord:
    """An index row. Fields not asked for in `fetch(..., fields=...)` stay at defaults."""

    uid: int
    flags: frozenset[str] = frozenset()
    modseq: int = 0
    size: int = 0
    internaldate: float = 0.0
    """Arrival time, seconds since the epoch (with the sender's zone lost: we keep UTC)."""
    envelope: bytes = b""
    """IMAP ENVELOPE, serialized (computed once at delivery)."""
    bodystructure: bytes = b""
    """IMAP BODYSTRUCTURE with extension data, serialized."""
    body: bytes = b""
    """IMAP BODY (no extension data), serialized."""
    parts: str = ""
    """JSON of the MIME tree with byte offsets (see letterbox.mime.model.Part)."""
    header_size: int = 0
    sent_date: float | None = None
    search: str = ""
    """Decoded, lower-cased header text for SEARCH on common fields (see mime.model)."""
    subject: str = ""
    """The Subject field decoded and casefolded, as in *search*."""
    message_id: str = ""
    """The Message-ID field as written (trimmed, unfolded)."""
    references: str | None = None
    """Normalized IDs the message refers to, for THREAD (see mime.model); None when the
    index does not have them (messages indexed by a version that did not keep them)."""
    emailid: str = ""
    """RFC 8474 EMAILID: the same for the same content (a COPY, a MOVE, the same bytes
    appended again), never changing (see mime.objectid)."""
    savedate: float = 0.0
    """RFC 8514 save date: when the message was saved into this mailbox (delivery,
    APPEND, COPY, MOVE), seconds since the epoch; unlike INTERNALDATE, never copied."""
    preview: str | None = None
    """RFC 8970 PREVIEW text ("" when the message has none to show); None when the index
    does not have it (messages indexed before previews were kept): see make_previews."""
    pop3_hidden: bool = False
    pop3_retrieved: float | None = None


FetchField = Literal[
    "flags",
    "modseq",
    "size",
    "internaldate",
    "envelope",
    "bodystructure",
    "body",
    "parts",
    "header_size",
    "sent_date",
    "search",
    "subject",
    "message_id",
    "references",
    "emailid",
    "savedate",
    "preview",
    "pop3",
]


SearchField = Literal["subject", "from", "to", "cc", "bcc", "message-id"]


@dataclass(frozen=True, slots=True)
class FlagTable:
    """Every message of a mailbox as of one MODSEQ: UIDs ascending, and for each the
    index of its flags in *texts* (flag names sorted, space-separated, as stored);
    *counts* says how many messages have each index (only indexes in use).
    Never changed once handed out; *texts* only grows."""

    modseq: int
    uidvalidity: int
    uids: Sequence[int]
    flag_ids: Sequence[int]
    texts: Sequence[str]
    counts: Mapping[int, int]


@dataclass(frozen=True, slots=True)
class ImportedMessage:
    """A message as another store kept it, for `AccountStore.import_message`: a copy
    keeps its UID, flags and keywords, INTERNALDATE and what POP3 knew of it (UIDLs are
    UIDVALIDITY and UID, so keeping those keeps them)."""

    uid: int
    data: bytes
    flags: frozenset[str]
    internaldate: float
    pop3_hidden: bool = False
    pop3_retrieved: float | None = None


@dataclass(frozen=True, slots=True)
class AppendResult:
    uidvalidity: int
    uid: int


@dataclass(frozen=True, slots=True)
class CopyResult:
    uidvalidity: int
    """UIDVALIDITY of the destination."""
    source_uids: tuple[int, ...]
    dest_uids: tuple[int, ...]


@dataclass(slots=True)
class ChangeSet:
    """What changed in a mailbox since a MODSEQ."""

    highestmodseq: int
    updated: list[MessageMeta] = field(default_factory=list)
    """Messages added or whose flags changed, in UID order."""
    expunged: list[int] = field(default_factory=list)
    """UIDs removed, in UID order."""
    uidvalidity_changed: bool = False
    """The mailbox no longer exists under this identity (deleted, or made anew)."""
    name: str | None = None
    """The mailbox's name now (a RENAME by another session changes it)."""
    uidvalidity: int = 0
    """The mailbox's UIDVALIDITY now (0: not known)."""


ChangeKind = Literal["append", "flags", "expunge", "mailbox", "subscription", "metadata", "acl"]


@dataclass(frozen=True, slots=True)
class Change:
    """One event on the change feed: mailbox *mailbox_id* of *account* reached *modseq*.

    "mailbox" is a CREATE (*name* set), DELETE (*old_name* set) or RENAME (both; each
    mailbox of a renamed hierarchy has its own change); with neither, another process
    changed the mailbox. "subscription" is a SUBSCRIBE or UNSUBSCRIBE of *name*
    (*mailbox_id* 0 when no mailbox has the name). "metadata" is a SETMETADATA that
    changed *entries* of mailbox *name* (*mailbox_id* 0 and *name* "" for the server's
    entries; *modseq* 0: metadata has none). "acl" is a change of what mailbox *name*'s
    ACL gives *user* (an address, or "anyone"); it also goes to the sessions of the
    account(s) *user* names, whose rights it changed."""

    account: str
    mailbox_id: int
    modseq: int
    kind: ChangeKind
    name: str = ""
    """The mailbox's name after the change ("" once deleted)."""
    old_name: str = ""
    """Before a RENAME or DELETE, the name the mailbox had."""
    origin: int = 0
    """Who made the change (see `changes_by`): 0 for a delivery or another process."""
    entries: tuple[str, ...] = ()
    """For "metadata": the entries whose values changed (set, changed or removed)."""
    user: str = ""
    """For "metadata": the user whose command made the change, whose own /private entries
    any in *entries* are (RFC 5464 3.2: per user): the account's own user or, on a shared
    mailbox, another. For "acl": the identifier whose rights changed."""


_ORIGIN: ContextVar[int] = ContextVar("letterbox_change_origin", default=0)


@contextmanager
def changes_by(origin: int) -> Iterator[None]:
    """Mark the changes made inside (by this task) as *origin*'s: a session runs each
    command inside, so it can tell its own changes from others' on the feed."""
    token = _ORIGIN.set(origin)
    try:
        yield
    finally:
        _ORIGIN.reset(token)


def current_origin() -> int:
    """For backends publishing a change: whose it is (see `changes_by`)."""
    return _ORIGIN.get()


@dataclass(frozen=True, slots=True)
class Usage:
    messages: int
    bytes: int


@dataclass(frozen=True, slots=True)
class FolderUsage:
    """One mailbox's share of an account's usage."""

    name: str
    special_use: str | None
    messages: int
    bytes: int
    unseen: int
    oldest: float | None
    """INTERNALDATE of the oldest message (None when empty)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one account may make, whatever its quota: every resource a client can make
    the server hold has a bound (SELECT sends all of a mailbox's keywords, LIST all its
    mailboxes)."""

    mailboxes: int = 10_000
    keywords: int = 256
    """Keywords per mailbox."""
    keyword_length: int = 128
    acl_entries: int = 256
    """Identifiers in one mailbox's ACL."""
    acl_total: int = 10_000
    """ACL entries of all the account's mailboxes together (a new mailbox's inherited
    ones included)."""
    metadata_value: int = 64 * 1024
    """Octets in one metadata value (RFC 5464 asks for at least 1024)."""
    metadata_entries: int = 100
    """Metadata entries per mailbox, and for the server (at least 10)."""
    metadata_bytes: int = 1024 * 1024
    """Octets of metadata (entry names and values) per account."""


@dataclass(frozen=True, slots=True)
class Quota:
    """An account's limits; 0 means unlimited."""

    bytes: int = 0
    messages: int = 0
    count_trash: bool = True
    """False: what the Trash folder (special use \\Trash) holds is not counted (the
    trash_counts policy)."""

    def with_grace(self, share: float) -> Quota:
        """The limits raised by *share* (0.1: a tenth more), for writes that must work at
        the limit (a client without MOVE putting mail into Trash before expunging it)."""
        return Quota(int(self.bytes * (1 + share)), int(self.messages * (1 + share)) if self.messages else 0,
                     self.count_trash)

    def percent_used(self, usage: Usage) -> float | None:
        """The larger of the byte and message shares of the quota; None without a quota."""
        shares = []
        if self.bytes:
            shares.append(100.0 * usage.bytes / self.bytes)
        if self.messages:
            shares.append(100.0 * usage.messages / self.messages)
        return max(shares) if shares else None

    def exceeded_by(self, usage: Usage, add_bytes: int, add_messages: int) -> bool:
        if self.bytes and usage.bytes + add_bytes > self.bytes:
            return True
        return bool(self.messages and usage.messages + add_messages > self.messages)


class AccountStore(abc.ABC):
    """One account's mailboxes and messages."""

    address: str

    # --- mailboxes -------------------------------------------------------------------
    @abc.abstractmethod
    async def list_mailboxes(self) -> list[Mailbox]: ...

    @abc.abstractmethod
    async def get_mailbox(self, name: str) -> Mailbox:
        """Look up by name (INBOX case-insensitively); raises MailboxNotFound."""

    @abc.abstractmethod
    async def create_mailbox(self, name: str, special_use: str | None = None) -> Mailbox: ...

    @abc.abstractmethod
    async def delete_mailbox(self, name: str) -> None: ...

    @abc.abstractmethod
    async def rename_mailbox(self, old: str, new: str) -> None:
        """RFC 9051 6.3.6: renaming INBOX moves its messages to a new mailbox."""

    @abc.abstractmethod
    async def set_subscribed(self, name: str, subscribed: bool) -> None: ...

    @abc.abstractmethod
    async def subscriptions(self) -> list[str]: ...

    @abc.abstractmethod
    async def status(self, mailbox: str) -> MailboxStatus: ...

    @abc.abstractmethod
    async def take_recent(self, mailbox_id: int, claim: bool = True) -> tuple[int, int]:
        """\\Recent (IMAP4rev1) for one session: the UIDs [lo, hi) that no session has
        been told of yet; with *claim* they are this session's alone (RFC 3501 2.3.1.2:
        the mailbox's recent mark moves past them), else (EXAMINE) they stay recent."""

    # --- messages --------------------------------------------------------------------
    @abc.abstractmethod
    async def snapshot(self, mailbox: str) -> tuple[Mailbox, list[MessageMeta]]:
        """Every message's UID, flags and MODSEQ, in UID order: what SELECT needs."""

    @abc.abstractmethod
    async def select_info(self, mailbox: str) -> tuple[Mailbox, Sequence[int], int | None]:
        """What SELECT needs and no more: the UIDs in order and the first unseen UID."""

    @abc.abstractmethod
    async def fetch(
        self, mailbox_id: int, uids: Sequence[int], fields: Iterable[FetchField]
    ) -> list[MessageRecord]:
        """Index rows for *uids* that still exist, in UID order."""

    @abc.abstractmethod
    async def fetch_values(
        self, mailbox_id: int, uids: Sequence[int], fields: Sequence[FetchField]
    ) -> list[tuple[Any, ...]]:
        """What `fetch` reads, as (UID, one value per field) tuples, for fields of one
        value ("flags" as stored text; not "search" nor "pop3"): SORT and THREAD read
        every message of a mailbox and need no record per message."""

    @abc.abstractmethod
    async def make_previews(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, str]:
        """The PREVIEW of each of *uids* that the index lacks (`fetch` gave None), made
        from the stored message (a few tens of KB of it at most) and kept, so that it
        is made once; messages gone meanwhile are left out. `fetch` never makes them,
        so a FETCH PREVIEW (LAZY) can answer NIL without the delay (RFC 8970 4.1)."""

    @abc.abstractmethod
    async def flag_table(self, mailbox_id: int) -> FlagTable:
        """Every message's UID and flags, current: what `FETCH 1:* (FLAGS)` over a large
        mailbox needs, without a record per message."""

    @abc.abstractmethod
    async def read_message(self, mailbox_id: int, uid: int) -> bytes:
        """The stored bytes, exactly as delivered; raises MessageGone."""

    @abc.abstractmethod
    async def read_range(self, mailbox_id: int, uid: int, start: int, length: int) -> bytes:
        """A byte range of the stored message (headers, a part); raises MessageGone."""

    @abc.abstractmethod
    def read_chunks(
        self, mailbox_id: int, uid: int, start: int, length: int
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """A byte range in pieces of at most CHUNK bytes, for answers sent while they are
        read (so one big message never sits whole in memory). Entering raises
        MessageGone; once entered, the pieces come from the message as it was then, even
        if it is expunged meanwhile."""

    @abc.abstractmethod
    async def append(
        self,
        mailbox: str,
        data: bytes,
        flags: Iterable[str] = (),
        internaldate: float | None = None,
        quota: Quota | None = None,
        parsed: ParsedMessage | None = None,
    ) -> AppendResult:
        """Store a message durably (file fsynced, index committed) before returning.
        *parsed* is the message's parse when the caller has it already (a delivery to
        several recipients parses once)."""

    @abc.abstractmethod
    async def uids_with_flag(self, mailbox_id: int, flag: str) -> list[int]:
        """UIDs of the messages that have *flag* (e.g. \\Deleted for EXPUNGE)."""

    @abc.abstractmethod
    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: Literal["add", "remove", "replace"],
        flags: Iterable[str],
        unchangedsince: int | None = None,
        only: Callable[[str], bool] | None = None,
    ) -> list[MessageMeta]:
        """Change flags; returns the messages whose flags actually changed. Flags for
        which *only* is false keep their state whatever *mode* says (a user may lack the
        right to change them, RFC 4314 4)."""

    @abc.abstractmethod
    async def expunge(self, mailbox_id: int, uids: Sequence[int], progress: Progress | None = None) -> list[int]:
        """Remove messages; returns the UIDs actually removed."""

    @abc.abstractmethod
    async def copy(
        self, mailbox_id: int, uids: Sequence[int], dest: str, quota: Quota | None = None,
        progress: Progress | None = None,
    ) -> CopyResult: ...

    @abc.abstractmethod
    async def move(
        self, mailbox_id: int, uids: Sequence[int], dest: str, progress: Progress | None = None
    ) -> CopyResult: ...

    @abc.abstractmethod
    async def changes_since(self, mailbox_id: int, modseq: int) -> ChangeSet: ...

    @abc.abstractmethod
    async def search_headers(self, mailbox_id: int, field: SearchField, needle: str) -> list[int]:
        """UIDs, ascending, whose indexed *field* text (decoded, casefolded: see
        `MessageRecord.search`; the Message-ID lower-cased) contains *needle*, which the
        caller casefolds the same way. Lets SEARCH SUBJECT/FROM/TO/CC/BCC and HEADER
        Message-ID run inside the index, without a row per message."""

    # --- access control (RFC 4314; rights as in store.acl) ------------------------------
    @abc.abstractmethod
    async def get_acl(self, mailbox: str) -> dict[str, str]:
        """The mailbox's ACL, identifier -> rights. The owner, who always has every right,
        is not in it. Raises MailboxNotFound."""

    @abc.abstractmethod
    async def set_acl(self, mailbox: str, identifier: str, rights: str) -> None:
        """Give *identifier* (an address or "anyone") exactly *rights* on the mailbox;
        "" takes its entry away. Raises MailboxNotFound, LimitExceeded."""

    @abc.abstractmethod
    async def granted(self, identifiers: Sequence[str], mailbox: str | None = None) -> dict[str, str]:
        """Mailbox name -> the rights the ACLs give *identifiers* together, for every
        mailbox (or only *mailbox*) whose ACL names one of them."""

    @abc.abstractmethod
    async def forget_identifier(self, identifier: str) -> None:
        """Take *identifier* out of every ACL of the account, with what it kept here (its
        own \\Seen marks): its account is gone."""

    @abc.abstractmethod
    def reader(self, user: str) -> AccountStore:
        """This account as *user*, who is not its owner, sees it: the same mailboxes and
        messages, except that \\Seen is *user*'s own (kept per user, as Dovecot keeps it
        on shared mailboxes), while the owner keeps the owner's."""

    # --- metadata (RFC 5464) -------------------------------------------------------------
    @abc.abstractmethod
    async def get_metadata(
        self, mailbox: str | None, entries: Sequence[str], depth: int = 0
    ) -> list[tuple[str, bytes]]:
        """The (entry, value) pairs of *mailbox* (None: the server's, which are the
        account's own) named by *entries* and, with *depth* 1 or -1 (infinity), the
        entries below them one level or all the way; sorted, each once. Entry names are
        lower-case and valid (the protocol checks them). Raises MailboxNotFound."""

    @abc.abstractmethod
    async def set_metadata(self, mailbox: str | None, changes: Sequence[tuple[str, bytes | None]]) -> None:
        """Set (a value) or remove (None) entries of *mailbox* (None: the server's), all
        in one transaction or none of them. Raises MailboxNotFound, MetadataTooBig and
        MetadataTooMany (see `Limits`). A mailbox's entries go with it: kept by RENAME
        (copied by RENAME INBOX), removed by DELETE."""

    # --- POP3 ------------------------------------------------------------------------
    @abc.abstractmethod
    async def pop3_maildrop(self) -> tuple[Mailbox, list[tuple[int, int]]]:
        """INBOX as POP3 sees it: (UID, size) of every message not hidden from POP3."""

    @abc.abstractmethod
    def pop3_lock(self, wait: float = 0.0) -> AbstractAsyncContextManager[None]:
        """Exclusive maildrop lock for one POP3 session, waiting up to *wait* seconds for
        the session holding it to end; raises MailboxInUse."""

    @abc.abstractmethod
    async def pop3_hide(self, mailbox_id: int, uids: Sequence[int]) -> None:
        """DELE in "hide" mode: never shown to POP3 again, still visible to IMAP."""

    @abc.abstractmethod
    async def pop3_mark_retrieved(self, mailbox_id: int, uids: Sequence[int]) -> None:
        """Remember when POP3 first retrieved these (for leave_on_server_days)."""

    @abc.abstractmethod
    async def pop3_expire(self, older_than: float) -> int:
        """Delete INBOX messages POP3 retrieved before *older_than*; returns the count."""

    # --- accounting ------------------------------------------------------------------
    @abc.abstractmethod
    async def usage(self, count_trash: bool = True) -> Usage:
        """Messages and bytes stored, in all mailboxes or (*count_trash* false) in all
        but the Trash."""

    @abc.abstractmethod
    async def folder_usage(self) -> list[FolderUsage]:
        """Every mailbox's counts and oldest message, in name order (INBOX first)."""

    @abc.abstractmethod
    async def select_messages(
        self,
        mailbox_id: int,
        received_before: float | None = None,
        larger_than: int | None = None,
        seen: bool = False,
        limit: int | None = None,
    ) -> list[tuple[int, int]]:
        """(UID, size) of the messages matching every criterion given: INTERNALDATE
        before *received_before*, size above *larger_than* bytes, \\Seen set (*seen*);
        the first *limit* of them by UID. The clean-up tool shows what it would remove,
        then expunges or moves these."""

    # --- moving mail between stores (`letterbox store copy`, see store.transfer) ---------
    # Not for protocols: only the copy calls these, on stores no server holds. A backend
    # that cannot take mail from another store keeps the defaults, which refuse.
    async def set_uidvalidity(self, mailbox_id: int, uidvalidity: int) -> Mailbox:
        """Give a mailbox that has never held a message (UIDNEXT 1) *uidvalidity*, the
        source's, and move the store's UIDVALIDITY counter past it so that no mailbox made
        later repeats it; raises StoreError when the mailbox has held mail (its UIDs may
        be known to clients under the UIDVALIDITY it has)."""
        raise StoreError("this store cannot take mail from another store")

    async def import_message(self, mailbox_id: int, message: ImportedMessage) -> None:
        """Store *message* under its own UID, which must be at least the mailbox's
        UIDNEXT (UIDs are never reused; UIDNEXT becomes UID + 1), with its flags (keywords
        added to the mailbox's list whatever the keyword limit), INTERNALDATE and POP3
        state, durably before returning, as `append` does. No quota applies."""
        raise StoreError("this store cannot take mail from another store")

    async def raise_marks(self, mailbox_id: int, uidnext: int, highestmodseq: int) -> Mailbox:
        """After an import: UIDNEXT and HIGHESTMODSEQ at least these (never lowered), so
        that no UID or MODSEQ a client saw at the source comes again; the copied mail is
        not \\Recent."""
        raise StoreError("this store cannot take mail from another store")


class Store(abc.ABC):
    """All accounts' mail."""

    @abc.abstractmethod
    async def account(self, address: str, incarnation: str | None = None) -> AccountStore:
        """Open (creating on first use, with the default mailboxes) an account's store.

        *incarnation* is the directory's identity of the account (see auth.directory):
        mail left by an earlier account of the same address is never shown to this one.
        Raises Unavailable while the account cannot be used."""

    @abc.abstractmethod
    async def delete_account(self, address: str, keep_mail: bool = False) -> None:
        """Remove the account's mail for good (or, with *keep_mail*, move it where no
        account can reach it); open handles on it stop working. The address leaves every
        other account's ACLs."""

    @abc.abstractmethod
    async def grantors(self, address: str) -> list[str]:
        """Accounts other than *address* whose ACLs may name *address* or "anyone": a
        superset, each account's own ACLs say for sure."""

    @abc.abstractmethod
    def subscribe(self, address: str, *more: str) -> Subscription:
        """Changes to the mailboxes of *address* (and of *more* accounts), from any
        session in any front end."""

    @abc.abstractmethod
    def watch(self, callback: Callable[[str], None]) -> None:
        """Call *callback* with the address of every account that changed (cheaply: it
        runs inside every change)."""

    @abc.abstractmethod
    async def peek_usage(self, address: str, count_trash: bool = True) -> Usage | None:
        """An account's usage, read without opening the account for use (the server's
        usage table is built from it for thousands of accounts); None when it has no
        mail folder yet or cannot be read just now."""

    @abc.abstractmethod
    async def notify_external(self, address: str) -> None:
        """Another process changed *address*: re-read and publish what changed."""

    @abc.abstractmethod
    async def notify_acl(self, address: str, incarnation: str, mailbox: str, identifier: str) -> None:
        """Another process changed what *address*'s *mailbox*'s ACL gives *identifier*:
        publish it as the account's own change would be."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    # --- the server's hooks: a backend implements those it needs; the defaults do nothing
    can_repair = False
    """Whether `repair_account` checks and mends an account (`letterbox repair`)."""

    async def recover(self, new_limit: int | None = None) -> dict[str, int]:
        """At start-up, before anyone is served: make the store consistent after a stop or
        a crash, and set up what housekeeping keeps. Returns counts of what was repaired.
        *new_limit*: mail waiting to be indexed beyond this much per folder is left for
        `index_waiting_mail`, after the listeners open."""
        return {}

    def unavailable_accounts(self) -> Mapping[str, str]:
        """Accounts that cannot be served until `rebuild_damaged` mends them, and why."""
        return {}

    def housekeeping(self) -> None:  # noqa: B027 - optional hook
        """Called by the server twice a second: cheap periodic work (outside changes to
        accounts with listeners, free-space reserve)."""

    async def run_background(self) -> None:  # noqa: B027 - optional hook
        """The store's own background task, run for as long as the server serves."""

    def rebuild_due(self) -> bool:
        """Whether `rebuild_damaged` has work to do now."""
        return False

    async def rebuild_damaged(self, stop: threading.Event) -> int:
        """Mend the unavailable accounts, one at a time, off the event loop, giving up
        when *stop* is set; returns how many were mended."""
        return 0

    def mail_waiting(self) -> int:
        """How much mail `recover` left for `index_waiting_mail`."""
        return 0

    async def index_waiting_mail(self, stop: threading.Event) -> int:
        """Index what `recover` left waiting, off the event loop, while the server
        serves; returns how much. Stops early when *stop* is set."""
        return 0

    async def repair_account(self, address: str, incarnation: str, rebuild: bool) -> dict[str, object]:
        """Check (with *rebuild*: rebuild) one account and report what was found. The
        account is closed to everyone meanwhile; the caller holds the data directory (a
        store opened exclusive) and has ended the account's sessions."""
        raise StoreError("this store has no repair")

    # --- several processes serving one store ([server] workers) -------------------------
    def serve_with_workers(self, primary: bool, wrap: Callable[[ChangeFeed], ChangeFeed]) -> None:
        """This process is one of several serving the store: its change feed becomes
        `wrap(feed)` (which also tells the other processes), and only the *primary* keeps
        what must be kept once (rebuilds, reserves, lazily kept state). A store whose own
        feed already crosses processes keeps it and does not call *wrap*."""
        raise StoreError("this store cannot be served by several processes")

    def close_account(self, address: str) -> None:  # noqa: B027 - optional hook
        """Let go of *address* until `reopen_account`: another process repairs it."""

    def reopen_account(self, address: str) -> None:  # noqa: B027 - optional hook
        """The repair by another process is over: *address* may be opened again."""

    def changed_elsewhere(self, change: Change) -> None:  # noqa: B027 - optional hook
        """Another process made *change* and told this one (the feed published it here):
        a check for outside changes need not tell it again."""

    async def flags_changed_elsewhere(  # noqa: B027 - optional hook
        self, address: str, incarnation: str | None, mailbox_id: int
    ) -> None:
        """(In the primary) another process changed flags in *mailbox_id*: what is kept
        lazily of them (file names, for the Maildir store) is brought up to date here."""

    async def settle(self) -> None:  # noqa: B027 - optional hook
        """At a clean stop, before `close`: bring up to date what is kept lazily."""
