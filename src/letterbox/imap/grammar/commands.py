"""Typed client commands (RFC 9051 / RFC 3501 plus the extensions Letterbox offers).

Values whose meaning depends on session state stay bytes: mailbox names (modified UTF-7
or UTF-8, see `mutf7`), user names and passwords, search strings (their charset comes
from SEARCH CHARSET). Protocol keywords are uppercase ``str``; flags are ``str`` with the
system flags in their canonical spelling (``\\Seen``) and keywords as the client sent them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import ClassVar

from .events import LiteralData
from .seqset import SequenceSet

# ---------------------------------------------------------------------------------------
# FETCH


@dataclass(frozen=True, slots=True)
class Section:
    """A ``[section]`` of BODY[...] / BINARY[...].

    ``part`` is the nested part number path (empty for the whole message); ``text`` is
    None, "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT" or "MIME".
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    headers: tuple[str, ...] = ()

    def __str__(self) -> str:
        spec = ".".join(map(str, self.part))
        if self.text is not None:
            spec = f"{spec}.{self.text}" if spec else self.text
            if self.headers:
                spec += " (" + " ".join(self.headers) + ")"
        return spec


@dataclass(frozen=True, slots=True)
class FetchAttribute:
    """One FETCH data item.

    ``name`` is one of ENVELOPE, FLAGS, INTERNALDATE, RFC822.SIZE, RFC822, RFC822.HEADER,
    RFC822.TEXT, BODY, BODYSTRUCTURE, UID, MODSEQ, EMAILID, THREADID, SAVEDATE, PREVIEW,
    BINARY, BINARY.SIZE. ``BODY`` with a ``section`` is BODY[...] (``peek`` for
    BODY.PEEK), without one the non-extensible body structure. ``partial`` is (offset,
    length) from ``<offset.length>``. ``lazy`` is PREVIEW's LAZY modifier (RFC 8970 4.1).
    """

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False
    lazy: bool = False

    def response_name(self) -> str:
        """The data item name as echoed in the FETCH response (RFC 9051 7.5.2)."""
        if self.section is None:
            return self.name
        name = f"{self.name}[{self.section}]"
        if self.partial is not None:
            name += f"<{self.partial[0]}>"
        return name

    @property
    def sets_seen(self) -> bool:
        """Whether fetching this item implicitly sets \\Seen (in a read-write mailbox)."""
        if self.name in ("RFC822", "RFC822.TEXT"):
            return True
        return self.section is not None and not self.peek and self.name in ("BODY", "BINARY")


@dataclass(frozen=True, slots=True)
class PartialRange:
    """A PARTIAL range (RFC 9394 4, which updates RFC 5267's: negative ranges count from
    the last result), as the client wrote it: ``first`` and ``last`` both positive
    (``1:500``) or both negative (``-1:-100``), in either order."""

    first: int
    last: int

    def window(self, count: int) -> slice:
        """The slice of *count* results (in their order) that the range names; results
        past either end are left out, so the slice may be short or empty."""
        lo, hi = sorted((abs(self.first), abs(self.last)))
        if self.first > 0:
            return slice(min(lo - 1, count), min(hi, count))
        # -1 is the last result: -hi:-lo is the slice [count - hi, count - lo + 1).
        return slice(max(count - hi, 0), max(count - lo + 1, 0))

    def __str__(self) -> str:
        return f"{self.first}:{self.last}"

    def canonical(self) -> str:
        """The range as ESEARCH's PARTIAL data gives it back: the end nearer the start
        of the results first (``2:4`` for ``4:2``, ``-1:-3`` for ``-3:-1``), since RFC 9394
        4 makes the two spellings one range; Dovecot answers the same way."""
        lo, hi = sorted((abs(self.first), abs(self.last)))
        sign = "-" if self.first < 0 else ""
        return f"{sign}{lo}:{sign}{hi}"


# ---------------------------------------------------------------------------------------
# SEARCH keys


@dataclass(frozen=True, slots=True)
class SearchAll:
    pass


@dataclass(frozen=True, slots=True)
class SearchFlag:
    """ANSWERED, DELETED, DRAFT, FLAGGED, SEEN, RECENT, KEYWORD and their negations.

    OLD is ``SearchFlag("\\Recent", False)``; NEW is RECENT and UNSEEN.
    """

    flag: str
    present: bool = True


@dataclass(frozen=True, slots=True)
class SearchString:
    """BCC, BODY, CC, FROM, SUBJECT, TEXT, TO: substring match on raw bytes."""

    key: str
    value: bytes


@dataclass(frozen=True, slots=True)
class SearchHeader:
    name: str
    value: bytes


@dataclass(frozen=True, slots=True)
class SearchDate:
    """BEFORE, ON, SINCE (internal date), SENTBEFORE, SENTON, SENTSINCE (Date:) and
    SAVEDBEFORE, SAVEDON, SAVEDSINCE (save date, RFC 8514 4.3)."""

    key: str
    date: datetime.date


@dataclass(frozen=True, slots=True)
class SearchSize:
    larger: bool
    size: int


@dataclass(frozen=True, slots=True)
class SearchSet:
    """A bare sequence set (``uid`` False) or ``UID <set>``; either may be ``$``."""

    sequence_set: SequenceSet
    uid: bool = False


@dataclass(frozen=True, slots=True)
class SearchModSeq:
    """MODSEQ [entry-name entry-type] <n> (RFC 7162)."""

    modseq: int
    entry_name: bytes | None = None
    entry_type: str | None = None


@dataclass(frozen=True, slots=True)
class SearchAge:
    """OLDER / YOUNGER <seconds> (RFC 5032 WITHIN)."""

    older: bool
    seconds: int


@dataclass(frozen=True, slots=True)
class SearchObjectId:
    """EMAILID / THREADID <objectid> (RFC 8474 6): an exact, case-sensitive match."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class SearchSaveDateSupported:
    """SAVEDATESUPPORTED (RFC 8514 4.3): every message, where the mailbox keeps save dates."""


@dataclass(frozen=True, slots=True)
class SearchNot:
    key: SearchKey


@dataclass(frozen=True, slots=True)
class SearchOr:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class SearchAnd:
    keys: tuple[SearchKey, ...]


SearchKey = (
    SearchAll
    | SearchFlag
    | SearchString
    | SearchHeader
    | SearchDate
    | SearchSize
    | SearchSet
    | SearchModSeq
    | SearchAge
    | SearchObjectId
    | SearchSaveDateSupported
    | SearchNot
    | SearchOr
    | SearchAnd
)


# ---------------------------------------------------------------------------------------
# Commands


@dataclass(slots=True)
class Command:
    tag: str
    name: ClassVar[str] = ""


@dataclass(slots=True)
class Capability(Command):
    name: ClassVar[str] = "CAPABILITY"


@dataclass(slots=True)
class Noop(Command):
    name: ClassVar[str] = "NOOP"


@dataclass(slots=True)
class Logout(Command):
    name: ClassVar[str] = "LOGOUT"


@dataclass(slots=True)
class StartTLS(Command):
    name: ClassVar[str] = "STARTTLS"


@dataclass(slots=True)
class Replace(Command):
    """REPLACE / UID REPLACE (RFC 8508): append *message* to *mailbox* and expunge the
    selected mailbox's message *number* (a sequence number, or a UID with ``uid``)."""

    number: int
    mailbox: bytes
    message: AppendMessage
    uid: bool = False
    name: ClassVar[str] = "REPLACE"


@dataclass(slots=True)
class Compress(Command):
    """COMPRESS <mechanism> (RFC 4978); the mechanism uppercased."""

    name: ClassVar[str] = "COMPRESS"
    mechanism: str = ""


@dataclass(slots=True)
class Unauthenticate(Command):
    """UNAUTHENTICATE (RFC 8437)."""

    name: ClassVar[str] = "UNAUTHENTICATE"


@dataclass(slots=True)
class Authenticate(Command):
    """``initial_response`` is the SASL-IR token as sent, None when absent.

    Like the `Line` events of the exchange that follows it is base64 text, or ``=`` for
    an empty response (RFC 4959); the syntax has been checked, decoding is left to the
    SASL layer so that both paths share it.
    """

    mechanism: str
    initial_response: bytes | None = None
    name: ClassVar[str] = "AUTHENTICATE"


@dataclass(slots=True)
class Login(Command):
    userid: bytes
    password: bytes
    name: ClassVar[str] = "LOGIN"


@dataclass(slots=True)
class Enable(Command):
    capabilities: tuple[str, ...]
    name: ClassVar[str] = "ENABLE"


@dataclass(frozen=True, slots=True)
class QResync:
    """The QRESYNC select parameter (RFC 7162 3.2.5)."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    # (known sequence numbers, their UIDs)
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(slots=True)
class Select(Command):
    mailbox: bytes
    condstore: bool = False
    qresync: QResync | None = None
    name: ClassVar[str] = "SELECT"
    readonly: ClassVar[bool] = False


@dataclass(slots=True)
class Examine(Select):
    name: ClassVar[str] = "EXAMINE"
    readonly: ClassVar[bool] = True


@dataclass(slots=True)
class Create(Command):
    mailbox: bytes
    special_use: tuple[str, ...] = ()
    name: ClassVar[str] = "CREATE"


@dataclass(slots=True)
class Delete(Command):
    mailbox: bytes
    name: ClassVar[str] = "DELETE"


@dataclass(slots=True)
class Rename(Command):
    mailbox: bytes
    new_name: bytes
    name: ClassVar[str] = "RENAME"


@dataclass(slots=True)
class Subscribe(Command):
    mailbox: bytes
    name: ClassVar[str] = "SUBSCRIBE"


@dataclass(slots=True)
class Unsubscribe(Command):
    mailbox: bytes
    name: ClassVar[str] = "UNSUBSCRIBE"


@dataclass(slots=True)
class List(Command):
    """LIST, basic or extended (RFC 5258, 5819, 6154).

    ``selection`` holds SUBSCRIBED / REMOTE / RECURSIVEMATCH / SPECIAL-USE; ``returns``
    holds SUBSCRIBED / CHILDREN / SPECIAL-USE / STATUS / MYRIGHTS (RFC 8440), with the STATUS items in
    ``status_items``. ``extended`` tells whether the extended syntax was used (then
    responses follow RFC 5258, e.g. \\NonExistent and CHILDINFO).
    """

    reference: bytes
    patterns: tuple[bytes, ...]
    selection: frozenset[str] = frozenset()
    returns: frozenset[str] = frozenset()
    status_items: tuple[str, ...] = ()
    extended: bool = False
    name: ClassVar[str] = "LIST"


@dataclass(slots=True)
class Lsub(Command):
    reference: bytes
    pattern: bytes
    name: ClassVar[str] = "LSUB"


@dataclass(slots=True)
class Namespace(Command):
    name: ClassVar[str] = "NAMESPACE"


@dataclass(slots=True)
class Status(Command):
    mailbox: bytes
    items: tuple[str, ...]
    name: ClassVar[str] = "STATUS"


@dataclass(frozen=True, slots=True)
class CatText:
    """CATENATE's TEXT part (RFC 4469 5): octets as sent."""

    data: LiteralData


@dataclass(frozen=True, slots=True)
class CatUrl:
    """CATENATE's URL part: an IMAP URL (RFC 5092) of a message or part to copy."""

    url: bytes


CatPart = CatText | CatUrl


@dataclass(frozen=True, slots=True)
class AppendMessage:
    data: LiteralData
    """The message: bytes, or `Spooled` when it was big enough to go to disk (empty
    with *catenate*)."""
    flags: tuple[str, ...] = ()
    internal_date: datetime.datetime | None = None
    # Sent as literal8 (~{n}, RFC 3516): may contain NULs.
    binary: bool = False
    catenate: tuple[CatPart, ...] | None = None
    """CATENATE (RFC 4469): the parts the message is made of, in order."""


@dataclass(slots=True)
class Append(Command):
    """APPEND, with several messages for MULTIAPPEND (RFC 3502).

    A zero-length message is legal syntax but MUST be answered with NO (RFC 3502).
    """

    mailbox: bytes
    messages: tuple[AppendMessage, ...]
    name: ClassVar[str] = "APPEND"


@dataclass(slots=True)
class Idle(Command):
    name: ClassVar[str] = "IDLE"


@dataclass(slots=True)
class Check(Command):
    name: ClassVar[str] = "CHECK"


@dataclass(slots=True)
class Close(Command):
    name: ClassVar[str] = "CLOSE"


@dataclass(slots=True)
class Unselect(Command):
    name: ClassVar[str] = "UNSELECT"


@dataclass(slots=True)
class Expunge(Command):
    """EXPUNGE, or UID EXPUNGE <set> (RFC 4315) when ``uid`` is set."""

    sequence_set: SequenceSet | None = None
    uid: bool = False
    name: ClassVar[str] = "EXPUNGE"


@dataclass(slots=True)
class Search(Command):
    """SEARCH / UID SEARCH.

    ``return_options`` is None without RETURN, else the uppercase options among MIN,
    MAX, ALL, COUNT, SAVE, CONTEXT, UPDATE and PARTIAL (``RETURN ()`` gives an empty
    tuple, meaning ALL); ``partial`` is PARTIAL's range. ``charset`` is None when absent.
    """

    key: SearchKey
    uid: bool = False
    charset: str | None = None
    return_options: tuple[str, ...] | None = None
    partial: PartialRange | None = None
    name: ClassVar[str] = "SEARCH"


@dataclass(slots=True)
class Fetch(Command):
    """FETCH / UID FETCH; macros (ALL, FAST, FULL) arrive expanded.

    For UID FETCH the session must add UID to the response items (RFC 9051 6.4.9).
    ``partial`` is the PARTIAL modifier (RFC 9394 3.3).
    """

    sequence_set: SequenceSet
    attributes: tuple[FetchAttribute, ...]
    uid: bool = False
    changedsince: int | None = None
    vanished: bool = False
    partial: PartialRange | None = None
    name: ClassVar[str] = "FETCH"


@dataclass(slots=True)
class Store(Command):
    """STORE / UID STORE. ``mode`` is "+" (add), "-" (remove) or "" (replace)."""

    sequence_set: SequenceSet
    mode: str
    flags: tuple[str, ...]
    silent: bool = False
    uid: bool = False
    unchangedsince: int | None = None
    name: ClassVar[str] = "STORE"


@dataclass(slots=True)
class Copy(Command):
    sequence_set: SequenceSet
    mailbox: bytes
    uid: bool = False
    name: ClassVar[str] = "COPY"


@dataclass(slots=True)
class Move(Command):
    sequence_set: SequenceSet
    mailbox: bytes
    uid: bool = False
    name: ClassVar[str] = "MOVE"


@dataclass(slots=True)
class CancelUpdate(Command):
    """CANCELUPDATE (RFC 5267 4.3.5): the tags of the updating searches to stop."""

    tags: tuple[str, ...]
    name: ClassVar[str] = "CANCELUPDATE"


@dataclass(slots=True)
class Id(Command):
    """ID (RFC 2971): None for ``ID NIL``, else (field, value-or-None) pairs."""

    parameters: tuple[tuple[str, str | None], ...] | None
    name: ClassVar[str] = "ID"


@dataclass(slots=True)
class GetQuota(Command):
    root: bytes
    name: ClassVar[str] = "GETQUOTA"


@dataclass(slots=True)
class GetQuotaRoot(Command):
    mailbox: bytes
    name: ClassVar[str] = "GETQUOTAROOT"


@dataclass(slots=True)
class SetQuota(Command):
    """SETQUOTA (RFC 9208): uppercase resource names with their new limits."""

    root: bytes
    limits: tuple[tuple[str, int], ...] = field(default_factory=tuple)
    name: ClassVar[str] = "SETQUOTA"


# ACL (RFC 4314): identifiers and rights are astrings, kept as the client wrote them.
@dataclass(slots=True)
class SetAcl(Command):
    mailbox: bytes
    identifier: bytes
    rights: bytes
    name: ClassVar[str] = "SETACL"


@dataclass(slots=True)
class DeleteAcl(Command):
    mailbox: bytes
    identifier: bytes
    name: ClassVar[str] = "DELETEACL"


@dataclass(slots=True)
class GetAcl(Command):
    mailbox: bytes
    name: ClassVar[str] = "GETACL"


@dataclass(slots=True)
class ListRights(Command):
    mailbox: bytes
    identifier: bytes
    name: ClassVar[str] = "LISTRIGHTS"


@dataclass(slots=True)
class MyRights(Command):
    mailbox: bytes
    name: ClassVar[str] = "MYRIGHTS"
