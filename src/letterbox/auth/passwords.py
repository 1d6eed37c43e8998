"""Password hashing with argon2id."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP's argon2id baseline (19 MiB, 2 passes): strong, yet cheap enough that a burst of
# logins does not exhaust memory. The credential cache absorbs clients that poll often.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)

# Verified against when the account does not exist, so that answer takes as long.
_DUMMY = _hasher.hash("letterbox-no-such-account")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
