"""Password hashing with argon2id, and the SCRAM-SHA-256 secrets stored beside the hash."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .scram import make_scram_secrets

# OWASP's argon2id baseline (19 MiB, 2 passes): strong, yet cheap enough that a burst of
# logins does not exhaust memory. The credential cache absorbs clients that poll often.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)

# Verified against when the account does not exist, so that answer takes as long.
_DUMMY = _hasher.hash("letterbox-no-such-account")


@dataclass(frozen=True, slots=True)
class Secrets:
    """What the directory keeps for a password: never the password itself."""

    password_hash: str
    """argon2id, checked for USER/PASS, LOGIN and PLAIN."""
    scram: str = ""
    """SCRAM-SHA-256 secrets (see scram.ScramSecrets.encode); empty when there are none."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def make_secrets(password: str) -> Secrets:
    """Everything to store when a password is set (user add, passwd): use this rather
    than hash_password, so that SCRAM works for the account."""
    scram = make_scram_secrets(password)
    return Secrets(hash_password(password), scram.encode() if scram is not None else "")


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
