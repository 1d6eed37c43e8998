"""Where a mailbox name leads, and what the user may do there (RFC 4314, RFC 2342).

A user's own mailboxes have the names the store gives them (the personal namespace, "").
Other accounts' mailboxes shared with the user are `Shared/<owner address>/<name>` (the
other users' namespace, "Shared/"): the owner's ACL on the mailbox says what the user may
do, and the owner always may do everything. A name under "Shared/" never names one of
the user's own mailboxes.

A user who has neither "l" nor "r" on a mailbox is answered as if it did not exist
(RFC 4314 6), so names alone tell nobody what others keep.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..store import acl, names
from ..store.api import (
    DELIMITER,
    AccountStore,
    BadMailboxName,
    Mailbox,
    MailboxNotFound,
    Quota,
    StoreError,
)
from .session import Done, IMAPSession

SHARED = "Shared"
"""The other users' namespace: NAMESPACE says `(("Shared/" "/"))`."""
SHARED_PREFIX = SHARED + DELIMITER


def is_shared_name(name: str) -> bool:
    return name == SHARED or name.startswith(SHARED_PREFIX)


@dataclass(frozen=True, slots=True)
class Place:
    """A mailbox name as the session resolved it."""

    store: AccountStore | None
    """The store to act on (another account as the user reads it); None where no account
    is (the namespace's own levels, an owner that does not exist)."""
    owner: str
    name: str
    """The mailbox's name in the owner's account ("" where there is no account)."""
    shown: str
    """The name as the user writes it."""
    rights: str
    own: bool = False
    """One of the user's own mailboxes."""

    def may(self, rights: str) -> bool:
        """Whether the user has every one of *rights*."""
        return all(r in self.rights for r in rights)

    @property
    def visible(self) -> bool:
        """Whether the user may know the mailbox exists (RFC 4314 6)."""
        return "l" in self.rights or "r" in self.rights

    def account(self) -> AccountStore:
        if self.store is None:
            raise MailboxNotFound(f"mailbox {self.shown!r} does not exist")
        return self.store


def shared_name(owner: str, name: str) -> str:
    return f"{SHARED_PREFIX}{owner}{DELIMITER}{name}"


def canonical(name: str) -> str:
    """*name* (decoded) as mailbox names are compared: INBOX in capitals, also as the
    first level of a child's name (RFC 9051 5.1); a trailing delimiter dropped (RFC 9051
    6.3.4); under Shared/, the owner's address in lower case (as `resolve` reads it)."""
    name = name.rstrip(DELIMITER) or name
    first, sep, rest = name.partition(DELIMITER)
    if first.upper() == "INBOX":
        return "INBOX" + sep + rest
    if first == SHARED and rest:
        owner, sep2, inner = rest.partition(DELIMITER)
        return first + sep + owner.lower() + sep2 + inner
    return name


def _nowhere(shown: str, owner: str = "") -> Place:
    return Place(None, owner, "", shown, "")


async def owner_store(s: IMAPSession, owner: str, grantors: list[str] | None = None) -> AccountStore | None:
    """Another account's store as this session's user reads it, or None if there is no
    such account or it shares nothing with the user: an account is opened for a user
    only when the store's register says it may grant the user something (*grantors*,
    when the caller has read it)."""
    assert s.user is not None
    if grantors is None:
        grantors = await s.ctx.store.grantors(s.user)
    account = s.ctx.directory.get(owner)
    if account is None or owner == s.user or account.address not in grantors:
        return None
    store = await s.ctx.store.account(account.address, account.incarnation)
    return store.reader(s.user)


def identities(s: IMAPSession) -> list[str]:
    """The identifiers an ACL entry may name the session's user by."""
    assert s.user is not None
    return [s.user, acl.ANYONE]


async def resolve(s: IMAPSession, name: str) -> Place:
    """The place *name* (decoded) leads to, with the user's rights there."""
    assert s.store is not None and s.user is not None
    if not is_shared_name(name):
        return Place(s.store, s.user, name, name, acl.ALL, own=True)
    parts = name.split(DELIMITER, 2)
    if len(parts) < 3 or not parts[2]:
        return _nowhere(name)  # "Shared" or "Shared/owner": levels, not mailboxes
    owner = parts[1].lower()
    store = await owner_store(s, owner)
    if store is None:
        return _nowhere(name, owner)
    try:
        inner = names.normalize(parts[2])
    except BadMailboxName:
        return _nowhere(name, owner)
    rights = (await store.granted(identities(s), inner)).get(inner, "")
    return Place(store, owner, inner, shared_name(owner, inner), rights)


async def resolve_legacy(s: IMAPSession, name: str) -> Place:
    """As resolve, except that a mailbox of the user's own with this name, made before the
    Shared/ namespace took it over, is found first: RENAME moves it out of the way."""
    assert s.store is not None and s.user is not None
    if is_shared_name(name):
        try:
            mine = await s.store.get_mailbox(name)
        except (MailboxNotFound, BadMailboxName):
            pass
        else:
            return Place(s.store, s.user, mine.name, mine.name, acl.ALL, own=True)
    return await resolve(s, name)


async def parent_rights(s: IMAPSession, place: Place) -> str:
    """The user's rights on the nearest existing parent of *place* in its account (where
    CREATE needs "k", RFC 4314 4); "" when it has none."""
    if place.own:
        return acl.ALL
    store = place.account()
    for parent in reversed(names.parent_names(place.name)):
        try:
            await store.get_mailbox(parent)
        except MailboxNotFound:
            continue
        return (await store.granted(identities(s), parent)).get(parent, "")
    return ""


def denied(place: Place, why: str) -> Done:
    """The answer to a user who lacks a right: NOPERM where the user may know the mailbox
    exists, else what a missing mailbox gets (RFC 4314 6)."""
    if place.visible:
        return Done("NO", f"Permission denied: {why}", "NOPERM")
    return not_found(place)


def not_found(place: Place) -> Done:
    return Done("NO", f"Mailbox {place.shown!r} does not exist", "NONEXISTENT")


async def quota_for(s: IMAPSession, place: Place) -> Quota | None:
    """The quota that new mail in *place* counts against: its owner's."""
    if place.owner == s.user:
        return s.current_quota()
    account = s.ctx.directory.get(place.owner)
    return s.ctx.policy.quota_of(account.quota) if account is not None else None


@dataclass(frozen=True, slots=True)
class Listed:
    """One name LIST can show: a mailbox the user may look up, or a level above some
    (the namespace's own levels, parents the user may not look up): then no mailbox."""

    shown: str
    place: Place | None
    mailbox: Mailbox | None


async def shared(s: IMAPSession) -> list[Listed]:
    """Every mailbox of another account whose ACL gives the user some right, under
    Shared/<owner>/, in no particular order. Accounts that cannot be read just now are
    left out (LIST must not fail for them, RFC 4314 4)."""
    assert s.user is not None
    out: list[Listed] = []
    grantors = await s.ctx.store.grantors(s.user)
    for owner in grantors:
        try:
            store = await owner_store(s, owner, grantors)
            if store is None:
                continue
            rights = await store.granted(identities(s))
            mailboxes = [m for m in await store.list_mailboxes() if rights.get(m.name)]
        except StoreError:
            continue
        for m in mailboxes:
            shown = shared_name(owner, m.name)
            out.append(Listed(shown, Place(store, owner, m.name, shown, rights[m.name]), m))
    return out


def own(s: IMAPSession, mailboxes: list[Mailbox]) -> list[Listed]:
    """The user's own *mailboxes* as `Listed` entries (names from before the Shared/
    namespace left out: out of reach)."""
    assert s.store is not None and s.user is not None
    return [
        Listed(m.name, Place(s.store, s.user, m.name, m.name, acl.ALL, own=True), m)
        for m in mailboxes
        if not is_shared_name(m.name)
    ]


async def visible(s: IMAPSession) -> list[Listed]:
    """Everything the user may list, in name order: the user's own mailboxes, then every
    mailbox of another account whose ACL gives the user "l", under Shared/<owner>/, with
    the levels above them."""
    assert s.store is not None
    out = own(s, await s.store.list_mailboxes())
    listed = [e for e in await shared(s) if e.place is not None and "l" in e.place.rights]
    if listed:
        have = {e.shown for e in listed}
        levels = {SHARED}
        for e in listed:
            parts = e.shown.split(DELIMITER)
            for i in range(2, len(parts)):
                levels.add(DELIMITER.join(parts[:i]))
        listed.extend(Listed(n, None, None) for n in levels - have)
        out.extend(sorted(listed, key=lambda e: e.shown))
    return out
