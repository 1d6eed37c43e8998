"""Console administrators and their API tokens, kept in the account directory.

Administrators are not mail accounts: a name (no @), an argon2id hash, nothing else. A
mail address can never log in as an administrator, nor an administrator read mail.
API tokens are random strings shown once when made; only their SHA-256 is stored, so a
copy of the directory gives no working token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass

from .passwords import hash_password, verify_password

SCHEMA = """
CREATE TABLE IF NOT EXISTS admins (
    name     TEXT PRIMARY KEY,
    password TEXT NOT NULL,
    created  REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS api_tokens (
    digest    TEXT PRIMARY KEY,
    admin     TEXT NOT NULL,
    label     TEXT NOT NULL,
    created   REAL NOT NULL,
    last_used REAL
) WITHOUT ROWID;
"""

_NAME_RE = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
TOKEN_PREFIX = "lbx_"


class AdminError(Exception):
    """A problem with an administrator or token, worded for the administrator."""


@dataclass(frozen=True, slots=True)
class Token:
    admin: str
    label: str
    created: float
    last_used: float | None
    digest: str


def check_name(name: str) -> str:
    name = name.strip().lower()
    if not _NAME_RE.match(name):
        raise AdminError(
            f"{name!r} is not an administrator name: a letter, then up to 63 letters, digits, '.', '_' or '-'"
        )
    return name


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class Admins:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.executescript(SCHEMA)

    def names(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM admins ORDER BY name")]

    def exists(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM admins WHERE name = ?", (name.strip().lower(),)).fetchone() is not None

    def add(self, name: str, password: str) -> str:
        name = check_name(name)
        try:
            self.db.execute(
                "INSERT INTO admins (name, password, created) VALUES (?, ?, ?)",
                (name, hash_password(password), time.time()),
            )
        except sqlite3.IntegrityError:
            raise AdminError(f"administrator {name!r} already exists") from None
        return name

    def set_password(self, name: str, password: str) -> None:
        cur = self.db.execute(
            "UPDATE admins SET password = ? WHERE name = ?", (hash_password(password), name.strip().lower())
        )
        if not cur.rowcount:
            raise AdminError(f"no administrator {name!r}")

    def remove(self, name: str) -> None:
        name = name.strip().lower()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            cur = self.db.execute("DELETE FROM admins WHERE name = ?", (name,))
            self.db.execute("DELETE FROM api_tokens WHERE admin = ?", (name,))
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        if not cur.rowcount:
            raise AdminError(f"no administrator {name!r}")

    def stored_hash(self, name: str) -> str | None:
        """The hash to verify a login against (None: no such administrator; the caller
        verifies against a dummy so that both cost the same)."""
        row = self.db.execute("SELECT password FROM admins WHERE name = ?", (name.strip().lower(),)).fetchone()
        return str(row[0]) if row else None

    def verify(self, name: str, password: str) -> bool:
        """Blocking (argon2): call it in a worker thread."""
        return verify_password(self.stored_hash(name), password)

    # --- API tokens ------------------------------------------------------------------------
    def new_token(self, admin: str, label: str = "") -> str:
        admin = admin.strip().lower()
        if not self.exists(admin):
            raise AdminError(f"no administrator {admin!r}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.db.execute(
            "INSERT INTO api_tokens (digest, admin, label, created) VALUES (?, ?, ?, ?)",
            (_digest(token), admin, label[:100], time.time()),
        )
        return token

    def token_admin(self, token: str) -> str | None:
        """The administrator a token belongs to, or None."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        row = self.db.execute("SELECT admin FROM api_tokens WHERE digest = ?", (_digest(token),)).fetchone()
        return str(row[0]) if row else None

    def tokens(self) -> list[Token]:
        return [
            Token(admin, label, created, last_used, digest)
            for digest, admin, label, created, last_used in self.db.execute(
                "SELECT digest, admin, label, created, last_used FROM api_tokens ORDER BY created"
            )
        ]

    def revoke(self, digest_prefix: str) -> int:
        """Remove tokens whose digest starts with *digest_prefix* (at least 8 characters)."""
        if len(digest_prefix) < 8 or not all(c in "0123456789abcdef" for c in digest_prefix):
            raise AdminError("give at least the first 8 hex digits of the token's id")
        cur = self.db.execute("DELETE FROM api_tokens WHERE digest LIKE ?", (digest_prefix + "%",))
        return int(cur.rowcount)
