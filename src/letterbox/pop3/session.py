"""The POP3 protocol core (RFC 1939, with CAPA RFC 2449, STLS RFC 2595, AUTH RFC 5034 and
response codes RFC 2449 section 8 / RFC 3206), sans-I/O.

The maildrop is INBOX as it was at login: message numbers, sizes and unique ids stay fixed
for the session. Nothing is deleted before the client's QUIT (the UPDATE state); a
dropped connection, a timeout or a server shutdown leaves the maildrop as it was.
"""

from __future__ import annotations

import base64
import enum
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

from ..auth.authenticator import LoginResult, Outcome
from ..auth.sasl import (
    SCRAM_SHA_256,
    SCRAM_SHA_256_PLUS,
    SASLError,
    ScramExchange,
    ScramFailure,
    b64decode,
    decode_plain,
)
from ..service.context import Context
from ..service.session import Peer, Session
from ..store.api import CHUNK, AccountStore, MailboxInUse, MessageGone, StoreError
from .commands import Command, CommandError, LineBuffer, TooLong, parse_command, parse_number
from .message import TERMINATOR, ByteStuffer, TopCut, multiline, top

log = logging.getLogger("letterbox.pop3")

MAX_BAD_COMMANDS = 20
"""Consecutive rejected commands after which the connection is closed."""
SASL_TIMEOUT = 60.0
"""Seconds to wait for an AUTH continuation line (sent by software, not typed)."""
SASL_LINE_LIMIT = 8192
"""AUTH responses may exceed the command limit (RFC 5034 section 4)."""
class State(enum.Enum):
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"


@dataclass(slots=True)
class _Message:
    uid: int
    size: int
    deleted: bool = False


@dataclass(slots=True)
class _Stats:
    top: int = 0
    top_bytes: int = 0
    retr: int = 0
    retr_bytes: int = 0
    deleted: int = 0
    start_messages: int = 0
    start_bytes: int = 0


_Handler = Callable[["POP3Session", Command], Awaitable[None]]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class POP3Session(Session):
    protocol = "pop3"

    def __init__(self, ctx: Context, peer: Peer, implicit_tls: bool) -> None:
        super().__init__(peer)
        self.ctx = ctx
        self.settings = ctx.settings.pop3
        self.implicit_tls = implicit_tls
        self.state = State.AUTHORIZATION
        self.output_limit: int | None = None
        """Queued output bytes after which `receive` stops taking pipelined commands.
        None (the default) never stops. A runner that sets it must flush and then call
        `resume()` for as long as `backlog` is true."""
        self._lines = LineBuffer()
        self._bad = 0
        self._pending_user: str | None = None
        self._sasl_pending = False
        self._scram: ScramExchange | None = None
        """The SCRAM-SHA-256 exchange in progress; None while AUTH PLAIN waits."""
        self._locks = AsyncExitStack()
        self._store: AccountStore | None = None
        self._mailbox_id = 0
        self._uidvalidity = 0
        self._messages: list[_Message] = []
        self._retrieved: set[int] = set()
        self._stats = _Stats()
        self._auth_attempts = 0
        self._auth_failure = ""
        self._last_user: str | None = None
        self._end = "connection closed"
        self._update_done = False

    # --- output --------------------------------------------------------------------------
    def _ok(self, text: str = "") -> None:
        self._bad = 0
        self.send(f"+OK {text}\r\n".encode() if text else b"+OK\r\n")

    def _err(self, text: str) -> None:
        """-ERR that is not counted as a bad command (failed login, store trouble)."""
        self.send(f"-ERR {text}\r\n".encode())

    def _reject(self, text: str) -> None:
        """A command that should not have been sent; enough in a row ends the session."""
        self._err(text)
        self._bad += 1
        if self._bad >= MAX_BAD_COMMANDS:
            self._err("Too many bad commands, closing connection")
            self._end = "too many bad commands"
            self.closing = True

    # --- properties the runner reads -----------------------------------------------------
    @property
    def timeout(self) -> float:
        # RFC 1939 section 3: the autologout timer must be at least 10 minutes; the
        # settings enforce that floor.
        return SASL_TIMEOUT if self._sasl_pending else self.settings.idle_timeout

    @property
    def secure(self) -> bool:
        return self.peer.secure or self.implicit_tls

    @property
    def backlog(self) -> bool:
        """Pipelined commands are waiting because `output_limit` was reached."""
        return not self.closing and not self.start_tls and self._lines.pending()

    def _plaintext_ok(self) -> bool:
        return self.ctx.auth.plaintext_allowed(self.secure, self.peer.ip)

    def _can_stls(self) -> bool:
        return self.ctx.tls is not None and not self.secure

    # --- events --------------------------------------------------------------------------
    async def start(self) -> None:
        self.send(f"+OK {self.ctx.hostname} Letterbox ready.\r\n".encode())

    async def receive(self, data: bytes) -> None:
        if self.closing:
            return
        self._lines.feed(data)
        interactive = bool(data)  # resume() feeds nothing: held pipelined commands
        while not self.closing and not self.start_tls:
            if self.output_limit is not None and self.queued >= self.output_limit:
                break
            limit = self.settings.max_line_length
            if self._sasl_pending:
                limit = max(limit, SASL_LINE_LIMIT)
            item = self._lines.next_line(limit)
            if item is None:
                break
            if isinstance(item, TooLong):
                self._sasl_pending = False
                self._scram = None
                self._reject("line too long")
                continue
            if self._sasl_pending:
                self._sasl_pending = False
                if self._scram is not None:
                    await self._scram_response(item)
                else:
                    await self._auth_plain_response(item)
                continue
            started = self.command_starts(interactive)
            await self._line(item)
            await self.command_done(interactive, started, self._lines.pending())  # pipelined ones take turns
            interactive = False
        if self.start_tls or self.closing:
            # RFC 2595 section 4: the client must wait for TLS before sending more; bytes
            # it sent in the clear after STLS must not be taken as commands under TLS.
            self._lines.clear()
        self._lines.compact()

    async def resume(self) -> None:
        """Go on with pipelined commands held back by `output_limit`."""
        await self.receive(b"")

    def tls_started(self, tls_exporter: bytes | None = None) -> None:
        super().tls_started(tls_exporter)
        # RFC 2595 section 4 / RFC 5034 section 4: forget what the client said before.
        self._pending_user = None
        self._sasl_pending = False
        self._scram = None
        self._bad = 0
        self._lines.clear()

    async def shutdown(self, reason: str) -> None:
        reason = " ".join(reason.split())
        self._err(f"[SYS/TEMP] Server shutting down: {reason}")
        self._end = f"server shutdown ({reason})"
        self.closing = True

    async def timed_out(self) -> None:
        self._err("autologout: idle too long")
        self._end = "autologout"
        self.closing = True

    async def connection_lost(self) -> None:
        self.closing = True
        await self._release()

    async def _release(self) -> None:
        try:
            await self._locks.aclose()
        except Exception:
            log.exception("pop3: releasing the maildrop lock of %s failed", self.user)

    # --- dispatch ------------------------------------------------------------------------
    async def _line(self, line: bytes) -> None:
        try:
            cmd = parse_command(line)
        except CommandError as e:
            self._reject(str(e))
            return
        entry = _COMMANDS.get(cmd.name)
        if entry is None:
            self._reject("unknown command")
            return
        handler, states = entry
        if self.state not in states:
            self._reject(f"{cmd.name} is not allowed in the {self.state.value} state")
            return
        if cmd.name not in ("PASS", "AUTH"):
            log.debug("pop3 %s<%s>: %s", self.user or "", self.peer.ip, cmd.name)
        await handler(self, cmd)

    def _no_args(self, cmd: Command) -> bool:
        if cmd.args:
            self._reject(f"{cmd.name} takes no arguments")
            return False
        return True

    # --- AUTHORIZATION -------------------------------------------------------------------
    async def _capa(self, cmd: Command) -> None:
        if not self._no_args(cmd):
            return
        caps = ["TOP", "UIDL"]
        # SCRAM also where plaintext is refused: the password is never sent (RFC 5034
        # section 4 asks for such mechanisms; see IMAPSession.capabilities for why).
        caps += ["USER", f"SASL PLAIN {self._scram_mechanisms()}"] if self._plaintext_ok() else [f"SASL {self._scram_mechanisms()}"]
        caps += ["RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        days = self.settings.leave_on_server_days
        # RFC 2449 section 6.7. The policy is server-wide, so the value is the same
        # before and after login and needs no "USER" suffix.
        caps.append(f"EXPIRE {days}" if days else "EXPIRE NEVER")
        if self.state is State.AUTHORIZATION and self._can_stls():
            # RFC 2595 section 4: STLS is listed only where it may be used.
            caps.append("STLS")
        caps.append("IMPLEMENTATION Letterbox")
        self._ok("Capability list follows")
        self.send("".join(f"{c}\r\n" for c in caps).encode() + b".\r\n")

    async def _stls(self, cmd: Command) -> None:
        if not self._no_args(cmd):
            return
        if self.secure:
            self._reject("Command not permitted when TLS active")
            return
        if self.ctx.tls is None:
            self._reject("TLS is not available on this server")
            return
        self._ok("Begin TLS negotiation")
        self.start_tls = True

    def _refuse_plaintext(self) -> bool:
        if self._plaintext_ok():
            return False
        self._auth_attempts += 1
        self._auth_failure = "plaintext refused on insecure connection"
        self._err("[AUTH] Plaintext authentication disallowed on non-secure connection")
        return True

    async def _user(self, cmd: Command) -> None:
        self._pending_user = None
        name = cmd.rest.strip()
        if not name:
            self._reject("USER needs a user name")
            return
        self._last_user = name
        if self._refuse_plaintext():
            return
        # The same answer for every name, so USER does not reveal which accounts exist.
        self._pending_user = name
        self._ok("Send your password")

    async def _pass(self, cmd: Command) -> None:
        user, self._pending_user = self._pending_user, None
        if user is None:
            self._reject("Send USER first")
            return
        if not cmd.rest:
            self._reject("PASS needs a password")
            return
        if self._refuse_plaintext():
            return
        await self._login(user, cmd.rest, "USER")

    def _scram_mechanisms(self) -> str:
        """-PLUS only where the runner has the TLS channel binding (RFC 9266)."""
        if self.peer.tls_exporter is None:
            return SCRAM_SHA_256
        return f"{SCRAM_SHA_256} {SCRAM_SHA_256_PLUS}"

    async def _auth(self, cmd: Command) -> None:
        self._pending_user = None
        if not cmd.args:
            # Not in RFC 5034, but the RFC 1734 form that some clients still probe with.
            mechs = ("PLAIN " if self._plaintext_ok() else "") + self._scram_mechanisms()
            mechs = mechs.replace(" ", "\r\n") + "\r\n"
            self._ok("Supported mechanisms follow")
            self.send(f"{mechs}.\r\n".encode())
            return
        if len(cmd.args) > 2:
            self._reject("AUTH takes a mechanism and an optional initial response")
            return
        mech = cmd.args[0].upper()
        binding = self.peer.tls_exporter
        if mech == SCRAM_SHA_256 or (mech == SCRAM_SHA_256_PLUS and binding is not None):
            self._auth_attempts += 1
            self._scram = ScramExchange(
                self.ctx.auth, "pop3", self.peer.ip, channel_binding=binding, plus=mech == SCRAM_SHA_256_PLUS,
            )
            if len(cmd.args) == 2:
                await self._scram_response(cmd.args[1].encode("ascii"), initial=True)
            else:
                self._sasl_pending = True
                self.send(b"+ \r\n")
            return
        if cmd.args[0].upper() != "PLAIN":
            self._reject("Unsupported authentication mechanism")
            return
        if self._refuse_plaintext():
            return
        if len(cmd.args) == 2:
            await self._auth_plain_response(cmd.args[1].encode("ascii"))
            return
        # RFC 5034 section 4: PLAIN needs an initial response; ask with an empty challenge.
        self._sasl_pending = True
        self.send(b"+ \r\n")

    async def _auth_plain_response(self, response: bytes) -> None:
        response = response.strip()
        if response == b"*":
            self._err("Authentication cancelled")
            return
        try:
            if response == b"=":
                raise SASLError("empty PLAIN response")
            user, password = decode_plain(response)
        except SASLError as e:
            self._auth_attempts += 1
            self._auth_failure = "malformed SASL response"
            self._err(f"[AUTH] Invalid AUTH PLAIN response: {e}")
            return
        await self._login(user, password, "PLAIN")

    async def _scram_response(self, line: bytes, initial: bool = False) -> None:
        """One SCRAM-SHA-256(-PLUS) response: each challenge is a "+ base64" line (the last one
        the server-final, since POP3 has no success data, RFC 5034 section 4)."""
        exchange = self._scram
        assert exchange is not None
        line = line.strip()
        if line == b"*":
            self._scram = None
            self._err("Authentication cancelled")
            return
        try:
            out = await exchange.step(b"" if line == b"" or (initial and line == b"=") else b64decode(line))
        except (SASLError, ScramFailure) as e:
            self._scram = None
            if isinstance(e, SASLError):
                self._auth_failure = "malformed SASL response"
                self._err(f"[AUTH] Invalid AUTH {SCRAM_SHA_256_PLUS if exchange.plus else SCRAM_SHA_256} response: {e}")
            else:
                self._auth_failure = "SCRAM refused"
                self._err(f"[AUTH] {e}")
            return
        if isinstance(out, bytes):
            self._sasl_pending = True
            self.send(b"+ " + base64.b64encode(out) + b"\r\n")
            return
        self._scram = None
        await self._login_result(exchange.username or "", out, SCRAM_SHA_256_PLUS if exchange.plus else SCRAM_SHA_256)

    async def _login(self, user: str, password: str, method: str) -> None:
        self._auth_attempts += 1
        result = await self.ctx.auth.login(user, password, "pop3", self.peer.ip)
        await self._login_result(user, result, method)

    async def _login_result(self, user: str, result: LoginResult, method: str) -> None:
        if not result.ok or result.account is None:
            if result.outcome is Outcome.ACCOUNT_DISABLED:
                self._auth_failure = "account disabled"
                why = result.account.disabled_message if result.account is not None else ""
                self._err(f"[SYS/PERM] This account is disabled: {why}" if why
                          else "[SYS/PERM] This account is disabled")
            elif result.outcome is Outcome.PROTOCOL_DISABLED:
                self._auth_failure = "POP3 disabled for account"
                self._err("[SYS/PERM] POP3 access is disabled for this account")
            elif result.outcome is Outcome.THROTTLED:
                self._auth_failure = "too many logins in progress"
                self._err("[SYS/TEMP] Too many logins at once from your address; try again later")
            elif result.outcome is Outcome.UNAVAILABLE:
                self._auth_failure = "accounts directory unavailable"
                self._err("[SYS/TEMP] The accounts directory is unavailable; try again shortly")
            else:
                self._auth_failure = "auth failed"
                self._err("[AUTH] Authentication failed.")
            self._last_user = user
            return
        address = result.account.address
        self._last_user = address
        if await self._open_maildrop(address, result.account.incarnation):
            self.user = address
            self.state = State.TRANSACTION
            log.debug("pop3 %s<%s>: logged in with %s", address, self.peer.ip, method)
            self._ok(
                f"Logged in, maildrop has {_plural(len(self._messages), 'message')}"
                f" ({self._stats.start_bytes} octets)"
            )

    async def _open_maildrop(self, address: str, incarnation: str) -> bool:
        # The lock is released on any failure here; on success it moves to self._locks
        # and is held until QUIT or the end of the connection.
        async with AsyncExitStack() as stack:
            try:
                store = await self.ctx.store.account(address, incarnation)
                await stack.enter_async_context(store.pop3_lock(self.settings.lock_wait))
                mailbox, listing = await store.pop3_maildrop()
            except MailboxInUse:
                self._auth_failure = "mailbox in use"
                self._err("[IN-USE] Mailbox is locked by another POP3 session")
                return False
            except (StoreError, OSError) as e:
                log.warning("pop3: cannot open the maildrop of %s: %s", address, e)
                self._auth_failure = "maildrop unavailable"
                self._err("[SYS/TEMP] Cannot open the maildrop, try again later")
                return False
            self._locks = stack.pop_all()
        self._store = store
        self._mailbox_id = mailbox.id
        self._uidvalidity = mailbox.uidvalidity
        self._messages = [_Message(uid, size) for uid, size in listing]
        self._stats.start_messages = len(self._messages)
        self._stats.start_bytes = sum(m.size for m in self._messages)
        return True

    # --- TRANSACTION ---------------------------------------------------------------------
    def _uidl(self, msg: _Message) -> str:
        # RFC 1939 section 7: 1..70 printable characters, the same for this message in
        # every session. (UIDVALIDITY, UID) never names another message.
        return f"{self._uidvalidity:08x}{msg.uid:08x}"

    def _live(self) -> list[tuple[int, _Message]]:
        return [(n, m) for n, m in enumerate(self._messages, 1) if not m.deleted]

    def _totals(self) -> tuple[int, int]:
        live = [m for m in self._messages if not m.deleted]
        return len(live), sum(m.size for m in live)

    def _message(self, arg: str) -> tuple[int, _Message] | None:
        """The message an argument names, or None after rejecting the command."""
        n = parse_number(arg)
        if n is None:
            self._reject(f"invalid message number {arg!r}" if len(arg) <= 40 else "invalid message number")
            return None
        if not 1 <= n <= len(self._messages):
            self._reject(
                f"no such message, only {_plural(len(self._messages), 'message')} in maildrop"
            )
            return None
        msg = self._messages[n - 1]
        if msg.deleted:
            self._reject(f"message {n} already deleted")
            return None
        return n, msg

    def _one_arg(self, cmd: Command, what: str) -> str | None:
        if len(cmd.args) != 1:
            self._reject(f"{cmd.name} needs {what}")
            return None
        return cmd.args[0]

    async def _stat(self, cmd: Command) -> None:
        if self._no_args(cmd):
            count, size = self._totals()
            self._ok(f"{count} {size}")

    async def _list(self, cmd: Command) -> None:
        await self._listing(cmd, lambda m: str(m.size))

    async def _uidl_cmd(self, cmd: Command) -> None:
        await self._listing(cmd, self._uidl)

    async def _listing(self, cmd: Command, value: Callable[[_Message], str]) -> None:
        if len(cmd.args) > 1:
            self._reject(f"{cmd.name} takes at most one message number")
            return
        if cmd.args:
            found = self._message(cmd.args[0])
            if found is not None:
                n, msg = found
                self._ok(f"{n} {value(msg)}")
            return
        if cmd.name == "LIST":
            count, size = self._totals()
            self._ok(f"{_plural(count, 'message')} ({size} octets)")
        else:
            self._ok()
        body = "".join(f"{n} {value(m)}\r\n" for n, m in self._live())
        self.send(body.encode() + b".\r\n")

    async def _read(self, n: int, msg: _Message) -> bytes | None:
        """The stored bytes, or None after an -ERR."""
        assert self._store is not None
        try:
            return await self._store.read_message(self._mailbox_id, msg.uid)
        except MessageGone:
            self._err(f"message {n} was removed by another session")
        except (StoreError, OSError) as e:
            log.warning("pop3 %s: cannot read UID %d: %s", self.user, msg.uid, e)
            self._err(f"[SYS/TEMP] cannot read message {n}, try again later")
        return None

    async def _retr(self, cmd: Command) -> None:
        arg = self._one_arg(cmd, "a message number")
        found = self._message(arg) if arg is not None else None
        if found is None:
            return
        n, msg = found
        if msg.size > CHUNK:
            if await self._stream(n, msg) < 0:
                return
        else:
            data = await self._read(n, msg)
            if data is None:
                return
            self._ok(f"{len(data)} octets")
            for piece in multiline(data):
                self.send(piece)
        self._retrieved.add(msg.uid)
        self._stats.retr += 1
        self._stats.retr_bytes += msg.size

    async def _stream(self, n: int, msg: _Message, cut: TopCut | None = None) -> int:
        """Send a big message (RETR, or TOP's part of it with *cut*) a piece at a time
        as the client takes it, so a client that reads slowly (or not at all) makes the
        server hold one piece, not the message. The bytes sent, or -1 if the message
        could not be sent whole."""
        assert self._store is not None
        stuffer = ByteStuffer()
        started = False
        sent = 0
        try:
            async with self._store.read_chunks(self._mailbox_id, msg.uid, 0, msg.size) as pieces:
                self._ok(f"{msg.size} octets" if cut is None else "")
                started = True
                async for piece in pieces:
                    out = stuffer.feed(piece)
                    done = False
                    if cut is not None:
                        out, done = cut.feed(out)
                    self.send(out)
                    sent += len(out)
                    if done:
                        self.send(TERMINATOR)  # the cut is at the end of a line
                        return sent
                    await self.flush()
        except (StoreError, OSError) as e:
            if not started and isinstance(e, MessageGone):
                self._err(f"message {n} was removed by another session")
                return -1
            log.warning("pop3 %s: cannot read UID %d: %s", self.user, msg.uid, e)
            if not started:
                self._err(f"[SYS/TEMP] cannot read message {n}, try again later")
                return -1
            # Half a message is on the wire: only closing the connection tells the
            # client that it is not the whole one.
            self.closing = True
            return -1
        self.send(stuffer.end())
        return sent

    async def _top(self, cmd: Command) -> None:
        if len(cmd.args) != 2:
            self._reject("TOP needs a message number and a number of lines")
            return
        found = self._message(cmd.args[0])
        if found is None:
            return
        lines = parse_number(cmd.args[1])
        if lines is None:
            self._reject("invalid number of lines")
            return
        n, msg = found
        self._stats.top += 1
        if msg.size > CHUNK:
            # Read a piece at a time up to the cut: a big message is never held whole.
            self._stats.top_bytes += max(0, await self._stream(n, msg, TopCut(lines)))
            return
        data = await self._read(n, msg)
        if data is None:
            return
        part = top(data, lines)
        self._ok()
        for piece in multiline(part):
            self.send(piece)
        self._stats.top_bytes += len(part)

    async def _dele(self, cmd: Command) -> None:
        arg = self._one_arg(cmd, "a message number")
        found = self._message(arg) if arg is not None else None
        if found is not None:
            n, msg = found
            msg.deleted = True
            self._ok(f"message {n} deleted")

    async def _noop(self, cmd: Command) -> None:
        if self._no_args(cmd):
            self._ok()

    async def _rset(self, cmd: Command) -> None:
        if not self._no_args(cmd):
            return
        for m in self._messages:
            m.deleted = False
        count, size = self._totals()
        self._ok(f"maildrop has {_plural(count, 'message')} ({size} octets)")

    async def _quit(self, cmd: Command) -> None:
        if not self._no_args(cmd):
            return
        self.closing = True
        self._end = "Logged out"
        if self.state is State.AUTHORIZATION:
            self._ok(f"{self.ctx.hostname} Letterbox signing off")
            return
        self.state = State.UPDATE
        failed = await self._update()
        self._update_done = True
        await self._release()
        if failed:
            self._err("[SYS/TEMP] some deleted messages not removed")
        else:
            self._ok(
                f"{self.ctx.hostname} signing off ({_plural(self._stats.deleted, 'message')} deleted)"
            )

    async def _update(self) -> bool:
        """RFC 1939 section 6: commit the DELEs; True if that failed."""
        assert self._store is not None
        store, mid = self._store, self._mailbox_id
        doomed = [m.uid for m in self._messages if m.deleted]
        kept = sorted(self._retrieved - set(doomed))
        if kept:
            try:
                await store.pop3_mark_retrieved(mid, kept)
            except Exception:
                # Only delays leave_on_server_days expiry; the deletions matter more.
                log.exception("pop3 %s: recording retrieved messages failed", self.user)
        if not doomed:
            return False
        try:
            if self.settings.delete_mode == "hide":
                await store.pop3_hide(mid, doomed)
            else:
                await store.expunge(mid, doomed)
        except Exception:
            # Whatever the backend raised, the client is owed a reply (RFC 1939 section 6).
            log.exception("pop3 %s: deleting %d messages failed", self.user, len(doomed))
            self._end = "Logged out, deletions failed"
            return True
        self._stats.deleted = len(doomed)
        return False

    # --- log line --------------------------------------------------------------------------
    def summary(self) -> str:
        if self.user is None:
            if self._auth_attempts:
                who = f", user=<{self._last_user}>" if self._last_user else ""
                detail = f"{self._auth_failure}, {_plural(self._auth_attempts, 'attempt')}{who}"
            else:
                detail = "no auth attempts"
            end = "Aborted login" if self._end in ("connection closed", "Logged out") else self._end
            return f"pop3<{self.peer.ip}>: Disconnected: {end} ({detail})"
        s = self._stats
        end = self._end
        if not self._update_done:
            marked = sum(m.deleted for m in self._messages)
            if marked:
                end += f" ({_plural(marked, 'DELE')} not committed)"
        return (
            f"pop3({self.user})<{self.peer.ip}>: Disconnected: {end}"
            f" top={s.top}/{s.top_bytes}, retr={s.retr}/{s.retr_bytes},"
            f" del={s.deleted}/{s.start_messages}, size={s.start_bytes}"
        )


_AUTH = frozenset({State.AUTHORIZATION})
_TRANS = frozenset({State.TRANSACTION})
_BOTH = _AUTH | _TRANS

_COMMANDS: dict[str, tuple[_Handler, frozenset[State]]] = {
    "CAPA": (POP3Session._capa, _BOTH),
    "QUIT": (POP3Session._quit, _BOTH),
    "STLS": (POP3Session._stls, _AUTH),
    "USER": (POP3Session._user, _AUTH),
    "PASS": (POP3Session._pass, _AUTH),
    "AUTH": (POP3Session._auth, _AUTH),
    "STAT": (POP3Session._stat, _TRANS),
    "LIST": (POP3Session._list, _TRANS),
    "UIDL": (POP3Session._uidl_cmd, _TRANS),
    "RETR": (POP3Session._retr, _TRANS),
    "TOP": (POP3Session._top, _TRANS),
    "DELE": (POP3Session._dele, _TRANS),
    "NOOP": (POP3Session._noop, _TRANS),
    "RSET": (POP3Session._rset, _TRANS),
}
