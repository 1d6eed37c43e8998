"""A SCRAM-SHA-256-PLUS client for tests (RFC 5802 section 3, RFC 9266): scramp's client
knows no tls-exporter, and the tests need to send wrong bindings on purpose."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


class PlusClient:
    def __init__(self, user: str, password: str, binding: bytes, flag: str = "p=tls-exporter") -> None:
        self.user, self.password, self.binding, self.flag = user, password, binding, flag
        self.nonce = secrets.token_hex(12)
        self.bare = f"n={user},r={self.nonce}"
        self.server_signature = b""

    def first(self) -> bytes:
        return f"{self.flag},,{self.bare}".encode()

    def final(self, server_first: bytes) -> bytes:
        attrs = dict(a.split("=", 1) for a in server_first.decode().split(","))
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored = hashlib.sha256(client_key).digest()
        cbind = base64.b64encode(f"{self.flag},,".encode() + self.binding).decode()
        without_proof = f"c={cbind},r={attrs['r']}"
        message = f"{self.bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.digest(stored, message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self.server_signature = hmac.digest(hmac.digest(salted, b"Server Key", "sha256"), message, "sha256")
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> bool:
        return server_final == b"v=" + base64.b64encode(self.server_signature)
