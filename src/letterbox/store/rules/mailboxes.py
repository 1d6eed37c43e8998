"""The mailbox tree: what CREATE, DELETE, RENAME and SUBSCRIBE may do, whatever keeps it.

Names are checked and spelled by `store.names`. A CREATE makes missing parents too
(RFC 9051 6.3.4); DELETE refuses INBOX and a mailbox with children (we keep no
\\Noselect mailboxes); RENAME takes the children along and refuses a name inside the
mailbox itself; renaming INBOX moves its messages to a new mailbox and leaves INBOX
there, empty (RFC 3501 6.3.5, RFC 9051 6.3.6). At most one mailbox has each special use
(RFC 6154). Subscriptions are names, not mailboxes (RFC 9051 6.3.7).
"""

from __future__ import annotations

from collections.abc import Callable

from .. import names
from ..api import DELIMITER, BadMailboxName, LimitExceeded, Limits, MailboxExists, StoreError

INBOX = "INBOX"

Exists = Callable[[str], bool]
"""Whether a mailbox of that (normalized) name exists."""


def mailbox_objectid(uidvalidity: int) -> str:
    """RFC 8474 MAILBOXID: "F" and the UIDVALIDITY in 8 hex digits. UIDVALIDITY comes from
    a store-wide counter, so the id is never another mailbox's, a RENAME keeps it, and
    RENAME INBOX (which makes a mailbox) gives the new one its own."""
    return f"F{uidvalidity:08x}"


def is_inbox(name: str) -> bool:
    return name == INBOX


def check_count(current: int, more: int, limits: Limits) -> None:
    """Refuse making *more* mailboxes beside *current* past the limit."""
    if current + more > limits.mailboxes:
        raise LimitExceeded(f"at most {limits.mailboxes} mailboxes per account")


def to_create(name: str, exists: Exists) -> list[str]:
    """The mailboxes a CREATE of (normalized) *name* makes, parents first; raises
    MailboxExists when *name* exists."""
    wanted = [p for p in [*names.parent_names(name), name] if not exists(p)]
    if name not in wanted:
        raise MailboxExists(f"mailbox {name!r} already exists")
    return wanted


def missing_parents(name: str, exists: Exists) -> list[str]:
    """The parents of *name* that do not exist, outermost first."""
    return [p for p in names.parent_names(name) if not exists(p)]


def check_special_use(special_use: str | None, taken: Callable[[str], bool]) -> None:
    """At most one mailbox per special use (*taken*: whether one has it already)."""
    if special_use and taken(special_use):
        raise MailboxExists(f"a mailbox with {special_use} already exists")


def check_delete(name: str, has_children: bool) -> None:
    if is_inbox(name):
        raise StoreError("INBOX cannot be deleted")
    if has_children:
        raise StoreError(f"mailbox {name!r} has children; delete them first")


def children_prefix(name: str) -> str:
    """What the names of *name*'s descendants start with."""
    return name + DELIMITER


def check_rename(source: str, new: str, exists: Exists) -> None:
    """RENAME of existing *source* to (normalized) *new*: *new* must be free and, but
    for INBOX (whose children stay), not inside *source*."""
    if exists(new):
        raise MailboxExists(f"mailbox {new!r} already exists")
    if not is_inbox(source) and new.startswith(children_prefix(source)):
        raise BadMailboxName("cannot rename a mailbox into its own child")


def renamed(source: str, new: str, name: str) -> str:
    """The name *name* (source or one of its descendants) gets when *source* becomes
    *new*; raises BadMailboxName when that name is not valid (too long, too deep)."""
    out = new + name[len(source):]
    names.normalize(out)
    return out


def check_subscribe(current: int, limits: Limits) -> None:
    """Subscriptions are bounded as mailboxes are (LSUB sends them all)."""
    if current >= limits.mailboxes:
        raise LimitExceeded(f"at most {limits.mailboxes} subscriptions")

