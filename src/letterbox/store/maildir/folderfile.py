"""What a rebuild needs beside the message files, one small text file per folder.

`letterbox-folder` in each Maildir folder holds the folder's UIDVALIDITY, its special-use
attribute, the keywords that have a file-name letter (a, b, c... in order), and two
reservations: no UID at or above `uidnext`, and no MODSEQ above `modseq`, has been handed
out. A writer extends a reservation (durably: the file is replaced and its folder fsynced)
before it uses a value beyond it, a block at a time, so the file is written once per few
hundred deliveries. When the index is lost, or may have been rolled back by a power loss,
UIDNEXT and HIGHESTMODSEQ restart from the reservations: never below a value a client saw.

It also keeps the folder's access control list (one `acl <identifier> <rights>` line per
entry), so a rebuilt index gives the same people the same rights.

`letterbox-subscriptions` in the account's root lists subscribed names, one per line.

Updates merge under a flock of the folder: counters only grow and keywords are only
added, so two processes (the server and `letterbox deliver`) never undo each other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .accountdir import AccountDir, join

FOLDER_FILE = "letterbox-folder"
SUBSCRIPTIONS_FILE = "letterbox-subscriptions"
_MAGIC = "letterbox-folder 1"
# How far ahead a reservation reaches when it is extended.
BLOCK = 256
MAX_KEYWORDS = 26
"""Keywords with a file-name letter (a-z: files.KEYWORD_LETTERS)."""


@dataclass
class FolderInfo:
    uidvalidity: int = 0
    uidnext: int = 1
    """Reserved: every UID handed out is below this."""
    modseq: int = 1
    """Reserved: every MODSEQ handed out is at most this."""
    used: int = 0
    """Every UID below this has been handed out (kept when the highest messages are
    expunged, whose files can then no longer tell)."""
    special_use: str | None = None
    keywords: list[str] = field(default_factory=list)
    """Keywords with a file-name letter, in letter order (a, b, c...)."""
    defaults: bool = False
    """(INBOX only) the account's default mailboxes were made once: a rebuild must not
    make again those the user deleted since."""
    acl: dict[str, str] = field(default_factory=dict)
    """The mailbox's ACL (identifier -> rights), as the index has it."""

    def encode(self) -> bytes:
        lines = [
            _MAGIC,
            f"uidvalidity {self.uidvalidity}",
            f"uidnext {self.uidnext}",
            f"modseq {self.modseq}",
        ]
        if self.used:
            lines.append(f"used {self.used}")
        if self.special_use:
            lines.append(f"special-use {self.special_use}")
        if self.keywords:
            lines.append("keywords " + " ".join(self.keywords))
        if self.defaults:
            lines.append("defaults made")
        lines.extend(f"acl {who} {rights}" for who, rights in sorted(self.acl.items()))
        return ("\n".join(lines) + "\n").encode("utf-8")

    @classmethod
    def decode(cls, text: str) -> FolderInfo | None:
        lines = text.splitlines()
        if not lines or lines[0].strip() != _MAGIC:
            return None
        info = cls()
        for line in lines[1:]:
            key, _, value = line.strip().partition(" ")
            try:
                if key == "uidvalidity":
                    info.uidvalidity = int(value)
                elif key == "uidnext":
                    info.uidnext = int(value)
                elif key == "modseq":
                    info.modseq = int(value)
                elif key == "used":
                    info.used = int(value)
                elif key == "special-use":
                    info.special_use = value or None
                elif key == "keywords":
                    info.keywords = value.split()
                elif key == "defaults":
                    info.defaults = True
                elif key == "acl":
                    who, _, rights = value.partition(" ")
                    if who and rights:
                        info.acl[who] = rights
            except ValueError:
                return None
        return info if info.uidvalidity > 0 else None


def read(adir: AccountDir, folder: str) -> FolderInfo | None:
    """The folder's file, or None when it is missing or unreadable."""
    try:
        text = adir.read_text(join(folder, FOLDER_FILE))
    except OSError:
        return None
    return FolderInfo.decode(text) if text is not None else None


def update(
    adir: AccountDir,
    folder: str,
    *,
    uidvalidity: int | None = None,
    uidnext: int = 0,
    modseq: int = 0,
    used: int = 0,
    special_use: str | None = None,
    keywords: list[str] | None = None,
    defaults: bool = False,
    acl: dict[str, str] | None = None,
    replace: bool = False,
) -> FolderInfo:
    """Merge into the folder's file and write it durably; returns what it now says.

    Reservations become the larger of the old and new values and keywords are appended;
    *uidvalidity*, *special_use* and *acl* are set when given. *replace* starts from nothing (a
    new folder, whose old file if any belongs to a deleted mailbox)."""
    with adir.locked(folder):
        old = None if replace else read(adir, folder)
        info = FolderInfo() if old is None else dataclasses.replace(
            old, keywords=list(old.keywords), acl=dict(old.acl)
        )
        if uidvalidity is not None:
            info.uidvalidity = uidvalidity
        info.uidnext = max(info.uidnext, uidnext)
        info.modseq = max(info.modseq, modseq)
        info.used = max(info.used, used)
        if special_use is not None:
            info.special_use = special_use or None
        for k in keywords or ():
            # At most one per letter, whatever a writer with an older view asked for.
            if k not in info.keywords and len(info.keywords) < MAX_KEYWORDS:
                info.keywords.append(k)
        info.defaults = info.defaults or defaults
        if acl is not None:
            info.acl = dict(acl)
        if old is None or info != old:
            adir.replace(join(folder, FOLDER_FILE), info.encode())
        return info


def read_subscriptions(adir: AccountDir) -> list[str] | None:
    text = adir.read_text(SUBSCRIPTIONS_FILE)
    if text is None:
        return None
    return [line for line in text.split("\n") if line]


def write_subscriptions(adir: AccountDir, names: list[str]) -> None:
    adir.replace(SUBSCRIPTIONS_FILE, "".join(n + "\n" for n in sorted(names)).encode("utf-8"))
