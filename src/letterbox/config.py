"""Settings: one TOML file, validated at start-up.

A bad value raises ConfigError with one line naming the key, the value and what is
allowed; the CLI prints it and exits instead of showing a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(value: Any) -> int:
    """Accept 1048576, "1M", "2G", "512K" (binary units) and return bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 10485760, 10M or 2G")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m:
            return int(m.group(1)) * _UNITS[m.group(2).upper()]
    raise ValueError("expected a size such as 10485760, 10M or 2G")


Size = Annotated[int, BeforeValidator(parse_size)]


def parse_listen(value: str) -> tuple[str, int]:
    """Split "host:port" (IPv6 as "[::1]:143") into its parts."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def _check_listen(values: Any) -> Any:
    if isinstance(values, str):
        values = [values]
    for v in values:
        if not isinstance(v, str):
            raise ValueError("expected a list of \"HOST:PORT\" strings")
        parse_listen(v)
    return values


Listen = Annotated[list[str], BeforeValidator(_check_listen)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    hostname: str = "localhost"
    """Name used in greetings and in the Received: header."""
    data_dir: Path = Path("data")
    """Where mail, indexes and the account directory live (relative to the config file)."""
    run_dir: Path = Path("run")
    """Control socket, LMTP socket and the listener file (relative to the config file)."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_connections_per_ip: int = Field(default=50, ge=1)
    """Concurrent IMAP+POP3 connections one client address (one /64 for IPv6) may hold;
    inbound SMTP has the same limit on its own; LMTP (the local MTA) none."""
    max_connections: int = Field(default=5000, ge=1)
    """Concurrent IMAP+POP3 connections in all (lowered to what the descriptor limit
    allows); beyond it new ones are refused with the protocol's goodbye, and logged."""
    login_timeout: float = Field(default=180.0, gt=0)
    """Seconds a connection may take, in all, to log in (as Dovecot: 3 minutes)."""
    tls_handshake_timeout: float = Field(default=30.0, gt=0)
    """Seconds a TLS handshake may take (implicit TLS, STARTTLS, STLS)."""
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)
    """Processes serving the listeners (default: one per core); 1 runs everything in
    the one process, as before workers existed."""


class TLSSettings(_Section):
    cert: Path | None = None
    """PEM certificate chain; without it implicit-TLS listeners and STARTTLS/STLS are off."""
    key: Path | None = None
    min_version: Literal["1.2", "1.3"] = "1.2"


def _check_networks(values: Any) -> Any:
    if not isinstance(values, list):
        raise ValueError('expected a list such as ["127.0.0.1", "10.0.0.0/8"]')
    for v in values:
        try:
            ipaddress.ip_network(str(v), strict=False)
        except ValueError:
            raise ValueError(f"{v!r} is not an address or network (CIDR)") from None
    return values


class AuthSettings(_Section):
    allow_plaintext_without_tls: bool = False
    """Allow passwords over unencrypted connections from non-loopback addresses."""
    failure_delay: float = Field(default=2.0, ge=0, le=30)
    """Seconds every login from a client network that failed lately waits before it is
    checked, doubled per recent failure (Dovecot's auth penalty); 0 turns it off."""
    penalty_max: float = Field(default=15.0, ge=0, le=300)
    """The longest such wait, in seconds."""
    max_failures_per_ip: int = Field(default=10, ge=1)
    """Recent failures counted per client network (the wait stops growing there)."""
    failure_window: float = Field(default=300.0, gt=0)
    """Seconds after which a failure is forgotten."""
    max_logins_in_flight_per_ip: int = Field(default=10, ge=1)
    """Logins of one client network checked at once; more wait their turn (up to four
    times as many), beyond that they are refused with a temporary error that says why
    (IMAP [UNAVAILABLE], POP3 [SYS/TEMP])."""
    trusted_networks: Annotated[list[str], BeforeValidator(_check_networks)] = []
    """Addresses or networks (CIDR) exempt from the penalty and the limit above, such as a
    webmail on this host that logs in for many users."""
    cache_ttl: float = Field(default=60.0, ge=0)
    """Seconds a verified password is remembered (0 turns the cache off)."""


class IMAPSettings(_Section):
    enabled: bool = True
    listen: Listen = ["127.0.0.1:1143"]
    tls_listen: Listen = ["127.0.0.1:1993"]
    max_line_length: Size = Field(default=65536, ge=1024)
    max_literal_size: Size = Field(default=64 * 1024**2, ge=1024)
    idle_timeout: float = Field(default=1800.0, ge=1800.0)
    """Autologout after this many idle seconds (RFC 9051 requires at least 30 minutes)."""
    login_timeout: float = Field(default=60.0, gt=0)
    """Seconds of silence allowed before login (the whole login has [server] login_timeout)."""
    command_timeout: float = Field(default=600.0, gt=0)
    """Seconds one command may take to arrive, its literals included (a slow client
    trickling a message byte by byte is cut off here)."""
    admin: str = ""
    """How to reach the administrator, for the METADATA server entry /shared/admin
    (RFC 5464 3.2.1.1): a URI (mailto:, tel:, https:) or a bare address, which becomes a
    mailto:. Empty: the [delivery] postmaster account; with neither, no such entry."""
    progress_interval: float = Field(default=10.0, ge=0)
    """Seconds between two INPROGRESS notices (RFC 9585) of a long command, the first
    one included (0: at every step of its work, for tests)."""
    max_search_mailboxes: int = Field(default=1000, ge=1)
    """Mailboxes one ESEARCH (RFC 7377 MULTISEARCH) may search; more is NO [LIMIT]."""
    literal_minus: bool = False
    """Advertise LITERAL- instead of LITERAL+ (RFC 7888 5; Dovecot's imap_literal_minus):
    non-synchronizing literals then carry at most 4096 octets, so a client never sends
    a big message the server will refuse before it has said so."""


class POP3Settings(_Section):
    enabled: bool = True
    listen: Listen = ["127.0.0.1:1110"]
    tls_listen: Listen = ["127.0.0.1:1995"]
    delete_mode: Literal["expunge", "hide"] = "expunge"
    """What DELE does at QUIT: remove the message, or only hide it from POP3 (IMAP still sees it)."""
    leave_on_server_days: int = Field(default=0, ge=0)
    """Delete messages this many days after POP3 first retrieved them (0: never; advertised as EXPIRE)."""
    idle_timeout: float = Field(default=600.0, ge=600.0)
    """RFC 1939 section 3: the autologout timer must be at least 10 minutes."""
    max_line_length: int = Field(default=512, ge=255, le=65536)
    lock_wait: float = Field(default=5.0, ge=0.0, le=60.0)
    """Seconds a login waits for another session on the same maildrop to end before [IN-USE]."""


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


class LMTPSettings(_Section):
    enabled: bool = True
    listen: Listen = ["127.0.0.1:1024"]
    unix_socket: Annotated[Path | None, BeforeValidator(_empty_is_none)] = Path("lmtp.sock")
    """UNIX socket for the MTA (relative to run_dir); empty to turn off."""


class SMTPSettings(_Section):
    enabled: bool = True
    listen: Listen = ["127.0.0.1:1025"]


class DeliverySettings(_Section):
    max_message_size: Size = Field(default=50 * 1024**2, ge=1024)
    """Largest message accepted by LMTP, SMTP and `letterbox deliver` (advertised as SIZE)."""
    max_recipients: int = Field(default=100, ge=1)
    timeout: float = Field(default=300.0, gt=0)
    """Seconds an SMTP/LMTP client may stay silent."""
    data_timeout: float = Field(default=600.0, gt=0)
    """Seconds one DATA transfer may take in all, however its bytes trickle in."""
    postmaster: str = ""
    """The account that gets mail for "postmaster" (bare, or at any local domain without
    a postmaster account of its own), which RFC 5321 4.5.1 says must be accepted."""


def _check_thresholds(values: Any) -> Any:
    if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError("expected a list of percentages such as [80, 90, 95]")
    if any(not 1 <= v <= 100 for v in values) or len(values) > 10:
        raise ValueError("expected at most 10 percentages, each from 1 to 100")
    return sorted(set(values))


Thresholds = Annotated[list[int], BeforeValidator(_check_thresholds)]


class QuotaSettings(_Section):
    default_bytes: Size = 0
    """Quota given to new accounts, in bytes (0: unlimited)."""
    default_messages: int = Field(default=0, ge=0)
    when_full: Literal["reject", "defer"] = "reject"
    """What a delivery to a full mailbox gets: "reject" (552 5.2.2, the sender is told
    now) or "defer" (452 4.2.2, the sending MTA retries for days)."""
    warn_at: Thresholds = [80, 90, 95]
    """Percentages of the quota at which the user gets a warning in INBOX, once per
    crossing ([] for none)."""
    trash_counts: bool = True
    """Whether what the Trash folder holds counts toward the quota."""


class PolicySettings(_Section):
    trash_days: int = Field(default=0, ge=0, le=36500)
    """Messages that have been in the Trash folder (special use \\Trash) this many days
    are expunged by the server (0: kept)."""
    junk_days: int = Field(default=0, ge=0, le=36500)
    """The same for the Junk folder (\\Junk)."""


class WebSettings(_Section):
    enabled: bool = True
    listen: str = "127.0.0.1:8080"
    tls: bool = False
    """Serve the console over HTTPS with [tls] cert and key."""
    session_minutes: float = Field(default=30.0, gt=0, le=24 * 60)
    """A console login ends after this many minutes without a request."""
    session_max_hours: float = Field(default=12.0, gt=0, le=24 * 7)
    """... and this many hours after it began, however active."""
    max_sessions: int = Field(default=1000, ge=1)
    """Console logins held at once; the oldest goes when one more logs in."""
    max_body: Size = Field(default=64 * 1024, ge=1024)
    """Largest request body accepted (413 beyond)."""
    request_timeout: float = Field(default=20.0, gt=0, le=600)
    """Seconds a request may take to arrive, headers and body, counted from the connection
    (or the previous response): a client that trickles them is disconnected."""


class LimitSettings(_Section):
    mailboxes: int = Field(default=10_000, ge=10)
    """Mailboxes one account may have (CREATE beyond: NO [LIMIT])."""
    keywords: int = Field(default=256, ge=1)
    """Keywords one mailbox may hold (APPEND or STORE of another: NO [LIMIT])."""
    keyword_length: int = Field(default=128, ge=8)
    """Characters in one keyword."""
    metadata_value_size: Size = Field(default=64 * 1024, ge=1024, le=1024**2)
    """Octets in one IMAP METADATA value (beyond: NO [METADATA MAXSIZE n]); RFC 5464
    4.1 asks for at least 1024."""
    metadata_entries: int = Field(default=100, ge=10)
    """METADATA entries on one mailbox, and on the server (beyond: NO [METADATA TOOMANY])."""
    metadata_bytes: Size = Field(default=1024**2, ge=1024)
    """Octets of METADATA (entry names and values) one account may keep (beyond:
    NO [METADATA TOOMANY])."""


class StoreSettings(_Section):
    backend: Literal["maildir", "postgresql"] = "maildir"
    """Where mail is kept: "maildir" (Maildir++ folders and one SQLite index per account,
    under data_dir/mail) or "postgresql" (one database shared by any number of front
    ends, at *dsn*). The server and the CLI open it through store.factory."""
    dsn: str = ""
    """For "postgresql": the database, "postgresql://user:password@host:port/database".
    Never logged or shown whole (it may hold a password)."""
    reserve: Size = 16 * 1024**2
    """Disk space the server keeps set aside (a preallocated file in the mail folder) and
    gives back when the disk fills up, so users can still read and delete mail; new mail
    is refused until space is free again. 0 turns it off."""
    open_accounts: int = Field(default=500, ge=1)
    """Accounts kept open (four descriptors each) after their last session or delivery,
    so the next one starts at once; the least recently used beyond this are closed."""
    statement_timeout: float = Field(default=60.0, gt=0)
    """For "postgresql": seconds one statement may take. A database that hangs (packets
    go nowhere) holds a command no longer: it fails as a temporary error (NO
    [UNAVAILABLE], -ERR [SYS/TEMP], 4xx). Deleting an account is not bound by it."""


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    tls: TLSSettings = TLSSettings()
    auth: AuthSettings = AuthSettings()
    imap: IMAPSettings = IMAPSettings()
    pop3: POP3Settings = POP3Settings()
    lmtp: LMTPSettings = LMTPSettings()
    smtp: SMTPSettings = SMTPSettings()
    delivery: DeliverySettings = DeliverySettings()
    quota: QuotaSettings = QuotaSettings()
    store: StoreSettings = StoreSettings()
    limits: LimitSettings = LimitSettings()
    policy: PolicySettings = PolicySettings()
    web: WebSettings = WebSettings()

    config_path: Path | None = Field(default=None, exclude=True)

    @property
    def data_dir(self) -> Path:
        return self._resolve(self.server.data_dir)

    @property
    def run_dir(self) -> Path:
        return self._resolve(self.server.run_dir)

    def _resolve(self, p: Path) -> Path:
        if p.is_absolute() or self.config_path is None:
            return p
        return (self.config_path.parent / p).resolve()

    def resolve(self, p: Path) -> Path:
        """Resolve a path from the file relative to the config file's folder."""
        return self._resolve(p)


class ConfigError(Exception):
    """A configuration problem, worded for the administrator."""


def _describe(err: dict[str, Any]) -> str:
    key = ".".join(str(p) for p in err["loc"])
    value = err.get("input")
    msg = err["msg"]
    if key == "store.dsn":  # may hold a password: never repeat it
        return f"{key} is not valid: {msg}"
    if err["type"] == "extra_forbidden":
        return f"unknown key {key!r} (check the spelling; see the sample config for every key)"
    if err["type"] == "literal_error":
        allowed = err.get("ctx", {}).get("expected", "")
        return f"{key} = {value!r} is not allowed: expected {allowed}"
    return f"{key} = {value!r} is not valid: {msg}"


def _check_store(path: Path, store: StoreSettings) -> None:
    if store.backend == "postgresql":
        if not store.dsn:
            raise ConfigError(f'{path}: store.backend = "postgresql" needs store.dsn = "postgresql://..."')
        if not store.dsn.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"{path}: store.dsn must start with postgresql:// (value not shown: it may hold a password)")


def load(path: Path) -> Settings:
    """Read and validate the TOML file at *path*."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        more = len(e.errors()) - 1
        extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ConfigError(f"{path}: {_describe(dict(first))}{extra}") from None
    settings.config_path = path.resolve()
    _check_store(path, settings.store)
    tls = settings.tls
    if (tls.cert is None) != (tls.key is None):
        raise ConfigError(f"{path}: tls.cert and tls.key must be set together")
    if settings.web.enabled:
        try:
            parse_listen(settings.web.listen)
        except ValueError as e:
            raise ConfigError(f"{path}: web.listen: {e}") from None
        if settings.web.tls and tls.cert is None:
            raise ConfigError(f"{path}: web.tls = true needs tls.cert and tls.key")
    return settings
