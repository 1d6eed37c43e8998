"""SASL mechanisms: PLAIN (RFC 4616) and LOGIN (as clients send it) decoding, and the
server side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677, RFC 9266) on top
of the scramp library."""

from __future__ import annotations

import base64
import binascii

from scramp import ScramException, ScramMechanism
from scramp.core import ScramServer

from .authenticator import Authenticator, LoginResult
from .directory import Account
from .scram import MECHANISM as SCRAM_SHA_256
from .scram import MECHANISM_PLUS as SCRAM_SHA_256_PLUS

_MECH = ScramMechanism(SCRAM_SHA_256)


class SASLError(Exception):
    pass


def b64decode(data: bytes) -> bytes:
    try:
        return base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SASLError("invalid base64") from None


def decode_plain(data: bytes) -> tuple[str, str]:
    """RFC 4616: [authzid] NUL authcid NUL passwd. Returns (user, password).

    Acting as another user (an authzid different from the authcid) is not supported.
    """
    raw = b64decode(data)
    parts = raw.split(b"\0")
    if len(parts) != 3:
        raise SASLError("malformed PLAIN response")
    authzid, authcid, passwd = parts
    try:
        user = authcid.decode("utf-8")
        password = passwd.decode("utf-8")
        authz = authzid.decode("utf-8")
    except UnicodeDecodeError:
        raise SASLError("PLAIN response is not UTF-8") from None
    if authz and authz.lower() != user.lower():
        raise SASLError("authorization identity differs from authentication identity")
    return user, password


class ScramFailure(Exception):
    """A SCRAM exchange the server ends before any password check (channel binding it
    cannot do, an authorization identity, a malformed message); the text is for the client."""


class ScramExchange:
    """The server side of one SCRAM-SHA-256 exchange (RFC 5802 section 5, RFC 7677),
    protocol-neutral: `step` takes each client response, base64 already removed, and
    answers with the next challenge (bytes, to send as a continuation) or, at the end,
    the LoginResult that the protocol turns into its answer as for a password login.

        client-first  ->  server-first (salt, iterations, nonce)
        client-final  ->  the proof is checked through Authenticator.scram_login (same
                          penalty, limits and outcomes as a password); on success the
                          server-final "v=..." is the last challenge
        empty         ->  LoginResult (OK)

    Neither IMAP (RFC 9051 6.2.2 without SASL-IR's success data) nor POP3 (RFC 5034
    section 4) carries data with the success reply, hence the last round trip.
    """

    def __init__(
        self, auth: Authenticator, protocol: str, client_ip: str, *,
        channel_binding: bytes | None = None, plus: bool = False, server_nonce: str | None = None,
    ) -> None:
        self.auth = auth
        self.protocol = protocol
        self.client_ip = client_ip
        self.channel_binding = channel_binding
        """The connection's `tls-exporter` data (RFC 9266); SCRAM-SHA-256-PLUS is offered
        exactly when there is one."""
        self.plus = plus
        """The client chose SCRAM-SHA-256-PLUS (it must then bind to the channel)."""
        if plus and channel_binding is None:
            raise ValueError(f"{SCRAM_SHA_256_PLUS} needs the connection's channel binding")
        self.username = ""
        """The authentication identity the client gave (for logs), once it did."""
        self._address = ""
        self._stored = ""
        self._server: ScramServer = _MECH.make_server(self._lookup, s_nonce=server_nonce)
        self._result: LoginResult | None = None
        self._stage = 0

    def _lookup(self, username: str) -> tuple[bytes, bytes, bytes, int]:
        self.username = username
        self._address, secrets, self._stored = self.auth.scram_secrets(username)
        return secrets.salt, secrets.stored_key, secrets.server_key, secrets.iterations

    async def step(self, response: bytes) -> bytes | LoginResult:
        stage, self._stage = self._stage, self._stage + 1
        if stage == 0:
            await self.auth.look_up(_username(response))
            return self._client_first(response)
        if stage == 1:
            return await self._client_final(response)
        if stage == 2 and self._result is not None:
            if response:
                raise ScramFailure("Expected an empty response after the server's final message")
            return self._result
        raise ScramFailure("The SCRAM exchange is over")

    def _client_first(self, response: bytes) -> bytes:
        try:
            text = response.decode("utf-8")
        except UnicodeDecodeError:
            raise ScramFailure("Malformed SCRAM client-first message: not UTF-8") from None
        flag, _, rest = text.partition(",")
        authzid, sep, bare = rest.partition(",")
        # RFC 5802 section 6: "p" asks for channel binding, which comes only with the
        # -PLUS mechanism and then is required, of a type this server computes
        # (tls-exporter only: RFC 9266 section 3); "y" says the client could bind but
        # thinks the server cannot, a downgrade if -PLUS was in fact offered.
        if self.plus and flag != "p=tls-exporter":
            if flag.startswith("p="):
                raise ScramFailure(f"Channel binding type {flag[2:]!r} is not supported; this server binds with tls-exporter")
            raise ScramFailure("SCRAM-SHA-256-PLUS needs channel binding (p=tls-exporter)")
        if not self.plus and flag.startswith("p="):
            raise ScramFailure("Channel binding needs SCRAM-SHA-256-PLUS")
        if flag == "y" and self.channel_binding is not None:
            raise ScramFailure("Channel binding was offered but not used (downgrade?)")
        if authzid and not (authzid.startswith("a=") and sep):
            raise ScramFailure("Malformed SCRAM client-first message: bad authorization identity")
        binding = self.channel_binding if self.plus else None
        try:
            # scramp takes no authorization identity and knows no tls-exporter: it gets the
            # header without either, and the binding is checked through _SentHeader below.
            self._server.set_client_first(f"{'n' if binding is not None else flag},,{bare}")
            server_first = self._server.get_server_first().encode()
        except ScramException as e:
            raise ScramFailure(f"SCRAM client-first message refused ({_reason(e)})") from None
        if authzid and _unescape(authzid[2:]).lower() != self.username.lower():
            # As with PLAIN: only the user itself (Cyrus SASL clients such as mbsync name it).
            raise ScramFailure("Acting as another user is not supported")
        if authzid or binding is not None:
            # The client's c= must be the header it sent followed by the binding data; scramp
            # compares client-final with what _SentHeader gives (in constant time). Should
            # scramp's internals change, the comparison fails and so does the login (closed,
            # never open).
            self._server.gs2_header = _SentHeader(f"{flag},{authzid},".encode() + (binding or b""))
        return server_first

    async def _client_final(self, response: bytes) -> bytes | LoginResult:
        def verify(account: Account | None) -> bool:
            try:
                self._server.set_client_final(response.decode("utf-8"))  # compare_digest inside
                proof_ok = True
            except (ScramException, UnicodeDecodeError):
                proof_ok = False
            # The secrets the proof was made with must still be the account's (a password
            # changed during the exchange, or an account deleted and made again, fail).
            return proof_ok and account is not None and bool(self._stored) and account.scram == self._stored

        result = await self.auth.scram_login(self._address, self.protocol, self.client_ip, verify)
        if not result.ok:
            self._stage = 3
            return result
        self._result = result
        return self._server.get_server_final().encode()


class _SentHeader:
    """The gs2-header as the client sent it, and the binding data under -PLUS: what the
    client's c= must decode to (RFC 5802 section 7, cbind-input)."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def make_cbind_input(self, channel_binding: object) -> bytes:
        return self.raw


def _username(client_first: bytes) -> str:
    """The user a client-first message names ("" if it names none or is malformed: the
    exchange itself then says what is wrong)."""
    parts = client_first.decode("utf-8", "replace").split(",")
    return _unescape(parts[2][2:]) if len(parts) > 2 and parts[2].startswith("n=") else ""


def _unescape(saslname: str) -> str:
    return saslname.replace("=2C", ",").replace("=3D", "=")


def _reason(e: ScramException) -> str:
    return e.server_error.value if e.server_error is not None else "other-error"
