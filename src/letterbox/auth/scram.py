"""SCRAM-SHA-256 secrets (RFC 5802 section 3, RFC 7677): what the directory keeps so that
a client can prove it knows the password without sending it.

For each account: a random salt, the iteration count, StoredKey = H(ClientKey) and
ServerKey, where SaltedPassword = Hi(SASLprep(password), salt, i), ClientKey =
HMAC(SaltedPassword, "Client Key") and ServerKey = HMAC(SaltedPassword, "Server Key").
The password itself is never stored, and StoredKey is not enough to log in (the client
proof needs ClientKey). They are made whenever a password is set, and stored as text
in Dovecot's layout, `iterations,salt,StoredKey,ServerKey` (base64).

Unknown users (and accounts that have no secrets yet) are answered with a salt derived
from the address and a key of this directory, so the server-first message is the same
on every attempt and does not show whether the account exists.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from scramp import ScramException, ScramMechanism

MECHANISM = "SCRAM-SHA-256"
MECHANISM_PLUS = "SCRAM-SHA-256-PLUS"
"""The same with TLS channel binding (RFC 5802 section 6), `tls-exporter` (RFC 9266)."""
MIN_ITERATIONS = 4096
"""RFC 7677 section 3's floor (and scramp's): stored secrets below it are not used."""
ITERATIONS = 4096
"""RFC 7677 section 3: at least 4096. Section 4's rule of thumb would be ~15,000, but the
client pays for every login and phones take ~0.5 s at 4096; Dovecot and Cyrus use 4096.
Each account keeps its own count, so raising this applies at the next password change."""
SALT_BYTES = 16

_MECH = ScramMechanism(MECHANISM)


@dataclass(frozen=True, slots=True)
class ScramSecrets:
    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes

    def encode(self) -> str:
        b64 = base64.b64encode
        return f"{self.iterations},{b64(self.salt).decode()},{b64(self.stored_key).decode()},{b64(self.server_key).decode()}"

    @classmethod
    def decode(cls, text: str) -> ScramSecrets | None:
        """The secrets stored as *text*, or None when there are none (or they are damaged)."""
        parts = text.split(",")
        if len(parts) != 4 or not parts[0].isdigit():
            return None
        try:
            salt, stored, server = (base64.b64decode(p, validate=True) for p in parts[1:])
        except (binascii.Error, ValueError):
            return None
        iterations = int(parts[0])
        if iterations < MIN_ITERATIONS or not salt or len(stored) != 32 or len(server) != 32:
            return None
        return cls(iterations, salt, stored, server)


def make_scram_secrets(password: str, iterations: int = ITERATIONS, salt: bytes | None = None) -> ScramSecrets | None:
    """Secrets for *password*, or None if SASLprep refuses it (RFC 4013: control
    characters, unassigned code points...); no SCRAM client could log in with it either."""
    try:
        salt_out, stored, server, i = _MECH.make_auth_info(
            password, iteration_count=iterations, salt=salt if salt is not None else secrets.token_bytes(SALT_BYTES)
        )
    except ScramException:
        return None
    return ScramSecrets(i, salt_out, stored, server)


def decoy_secrets(key: bytes, address: str) -> ScramSecrets:
    """What an unknown *address* is answered with: the same salt and count every time
    (derived from *key*, which stays with the directory), and keys nobody can match."""
    salt = hmac.new(key, b"scram-sha-256 salt\0" + address.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
    return ScramSecrets(ITERATIONS, salt[:SALT_BYTES], secrets.token_bytes(32), secrets.token_bytes(32))
