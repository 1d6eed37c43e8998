"""Access control lists (RFC 4314): the rights, how they are written, and who has them.

A mailbox's ACL maps identifiers (account addresses, or "anyone" for every logged-in
user) to rights, each one letter. The owner is not in the list: the owner always has
every right. A user's rights on another account's mailbox are the union of the rights
given to the user's address and to "anyone". Negative rights ("-user") are not kept.

Shared by every backend and by the protocols and the CLI, which all speak these letters.
"""

from __future__ import annotations

from collections.abc import Iterable

RIGHTS = "lrswipkxtea"
"""Every right, in the order they are written: lookup, read, seen, write, insert, post,
create (k), delete mailbox (x), delete messages (t), expunge, administer."""
ALL = RIGHTS
ANYONE = "anyone"
# RFC 4314 2.1.1: the obsolete "c" and "d" stand for the rights that replaced them; they
# are accepted on input and shown beside those rights, as Dovecot does (c = kx, d = et).
_VIRTUAL = {"c": "kx", "d": "et"}


class RightsError(ValueError):
    """A rights string a client or administrator wrote that is not valid (IMAP BAD)."""


def canonical(rights: Iterable[str]) -> str:
    """The rights among *rights*, each once, in RIGHTS order (virtual ones expanded)."""
    have: set[str] = set()
    for r in rights:
        have.update(_VIRTUAL.get(r, r))
    return "".join(r for r in RIGHTS if r in have)


def parse(text: str) -> str:
    """Rights as written in SETACL or on the command line; raises RightsError naming the
    first letter that is not a right (RFC 4314 3.1: never ignored silently)."""
    for ch in text:
        if ch.isupper():
            raise RightsError("Uppercase rights are not allowed")
        if ch not in RIGHTS and ch not in _VIRTUAL:
            raise RightsError(f"The {ch} right is not supported")
    return canonical(text)


def modify(current: str, change: str) -> str:
    """SETACL's third argument applied to *current*: "+rights" adds, "-rights" removes,
    plain rights replace (RFC 4314 3.1)."""
    if change.startswith("+"):
        return canonical(current + parse(change[1:]))
    if change.startswith("-"):
        gone = set(parse(change[1:]))
        return canonical(r for r in current if r not in gone)
    return parse(change)


def shown(rights: str) -> str:
    """Rights as ACL and MYRIGHTS responses write them: with "c" when k or x is among
    them and "d" when e or t is (RFC 4314 2.1.1); "" for none."""
    out = canonical(rights)
    if "k" in out or "x" in out:
        out += "c"
    if "e" in out or "t" in out:
        out += "d"
    return out


def union(*rights: str) -> str:
    return canonical("".join(rights))


def rights_of(acl: dict[str, str], user: str) -> str:
    """What *acl* gives *user*: the user's own entry and anyone's, together."""
    return union(acl.get(user, ""), acl.get(ANYONE, ""))


def may_change(rights: str, flag: str) -> bool:
    """Whether *rights* let a user set or clear *flag* (RFC 4314 4: \\Seen needs "s",
    \\Deleted "t", every other flag "w")."""
    return {"\\Seen": "s", "\\Deleted": "t"}.get(flag, "w") in rights


def allowed_flags(rights: str, flags: Iterable[str]) -> list[str]:
    """The flags a user with *rights* may give a message they append or copy (RFC 4314 4:
    the others are dropped, the message is stored all the same)."""
    return [f for f in flags if may_change(rights, f)]
