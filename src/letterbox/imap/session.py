"""The IMAP session: states, command dispatch, authentication, IDLE, untagged updates.

Commands live in modules by family (mailboxes, selected, append, fetch, search, quota);
each handler takes the session and its parsed command, queues untagged responses and
returns the tagged outcome. The dispatcher checks the state first (RFC 9051 section 3:
a command outside its state is BAD), and after the handler it sends the updates other
sessions caused, with EXPUNGE held back where 7.5.1 forbids it.
"""

from __future__ import annotations

import base64
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .. import __version__, metrics
from ..auth.authenticator import LoginResult, Outcome
from ..auth.directory import Account
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
from ..store.acl import ANYONE
from ..store.api import AccountStore, Change, Quota, StoreError, changes_by
from . import grammar as g
from . import uidonly, wire
from .grammar import mutf7
from .progress import Progress
from .view import SelectedView, ViewGone

if TYPE_CHECKING:
    from .notifier import Notifier

log = logging.getLogger("letterbox.imap")

NOT_AUTH, AUTH, SELECTED, LOGOUT = "not authenticated", "authenticated", "selected", "logout"
ANY = frozenset({NOT_AUTH, AUTH, SELECTED})
AUTHED = frozenset({AUTH, SELECTED})
ONLY_SELECTED = frozenset({SELECTED})

MAX_BAD_COMMANDS = 20
# Before login nobody may make the server hold more than a LOGIN or an ID needs (RFC 2971
# allows 30 fields of 30-octet names and 1,024-octet values: about 32 KB).
PRE_AUTH_LIMIT = 40 * 1024
_ORIGINS = itertools.count(1)
"""Session numbers, for telling a session's own changes on the feed (store.api.changes_by)."""


@dataclass(slots=True)
class Done:
    """A handler's tagged outcome."""

    status: str = "OK"
    text: str = "completed"
    code: str | None = None
    expunged: bool = False
    """Messages were expunged: with QRESYNC the tagged OK carries HIGHESTMODSEQ (RFC 7162
    3.2.7, 3.2.9; RFC 6851 4.4)."""


Handler = Callable[["IMAPSession", Any], Awaitable[Done | None]]


@dataclass(frozen=True, slots=True)
class Spec:
    handler: Handler
    states: frozenset[str]
    may_expunge: bool = True
    """False for FETCH, STORE and SEARCH (RFC 9051 7.5.1); their UID forms may."""


class IMAPSession(Session):
    protocol = "imap"

    def __init__(self, ctx: Context, peer: Peer, implicit_tls: bool = False) -> None:
        super().__init__(peer)
        self.ctx = ctx
        self.settings = ctx.settings.imap
        self.reader = self._new_reader()
        self.progress = Progress(self, "")
        """The running command's INPROGRESS notices (RFC 9585)."""
        self.state = NOT_AUTH
        self.rev2 = False
        self.condstore = False
        """ENABLE CONDSTORE (RFC 7162 3.1): MODSEQ in every FETCH of selected mailboxes."""
        self.qresync = False
        """ENABLE QRESYNC (RFC 7162 3.2.3): VANISHED instead of EXPUNGE, SELECT (QRESYNC ...)."""
        self._announce_modseq = False
        self.store: AccountStore | None = None
        self.account: Account | None = None
        self.view: SelectedView | None = None
        self.notify: Notifier | None = None
        """Set by NOTIFY (RFC 5465): the events told on the session's own, also between
        commands; None until the first NOTIFY (then updates of the selected mailbox go
        out at the end of commands and during IDLE)."""
        self.origin = next(_ORIGINS)
        self.idle_tag: str | None = None
        self._sasl: tuple[str, str, list[bytes]] | None = None
        self._scram: ScramExchange | None = None
        self.compressed = False
        """COMPRESS=DEFLATE is on (RFC 4978)."""
        self.utf8_accept = False
        """ENABLE UTF8=ACCEPT (RFC 6855 3): mailbox names in UTF-8, as in IMAP4rev2."""
        self.uidonly = False
        """ENABLE UIDONLY (RFC 9586): messages are named by UID only, both ways."""
        self._dirty = False
        self._recheck_rights = False
        """An ACL change of the selected mailbox (another account's) came on the feed."""
        self._bad = 0
        self._failed_logins = 0
        self._ended = "connection closed"
        self._held = False
        self._command_since: float | None = None
        self.stats: dict[str, int] = {"fetch": 0, "fetch_bytes": 0, "append": 0, "expunge": 0, "store": 0}

    def _new_reader(self) -> g.CommandReader:
        # Before login nobody may make the server hold more than a LOGIN needs.
        return g.CommandReader(
            max_line_length=PRE_AUTH_LIMIT,
            max_literal_size=PRE_AUTH_LIMIT,
            max_string_literal_size=PRE_AUTH_LIMIT,
            max_command_size=PRE_AUTH_LIMIT,
            non_sync_literals=self.literal_capability,
        )

    @property
    def literal_capability(self) -> Literal["LITERAL+", "LITERAL-"]:
        """The non-synchronizing literals offered: never both (RFC 7888 5). LITERAL+
        is an extension that "specifies otherwise" in RFC 9051 4.3, so its literals
        stay unlimited after ENABLE IMAP4rev2; with LITERAL- (and so in rev2 without
        either) they carry at most 4096 octets in both revisions."""
        return "LITERAL-" if self.settings.literal_minus else "LITERAL+"

    def unauthenticate(self) -> None:
        """Forget the login and everything that came with it (RFC 8437)."""
        log.info("imap(%s)<%s>: unauthenticated", self.user, self.peer.ip)
        self.notify = None
        self._close_view()
        self.state = NOT_AUTH
        self.user = None
        self.account = None
        self.store = None
        self.rev2 = self.condstore = self.qresync = self._announce_modseq = self.utf8_accept = False
        self.uidonly = False
        # Commands pipelined after this one stay in the reader, under pre-login limits.
        r = self.reader
        r.max_line_length = r.max_literal_size = r.max_string_literal_size = PRE_AUTH_LIMIT
        r.max_command_size = PRE_AUTH_LIMIT
        r.max_metadata_value = None
        r.spool = None

    def _raise_limits(self) -> None:
        s = self.settings
        r = self.reader
        r.max_line_length = s.max_line_length
        r.max_literal_size = s.max_literal_size
        r.max_string_literal_size = max(65536, s.max_line_length)
        r.max_command_size = s.max_literal_size * 2
        r.max_metadata_value = self.ctx.settings.limits.metadata_value_size
        # Message data of any size then goes to disk as it arrives (see letterbox.spool).
        r.spool = self.ctx.spooler.new

    # --- capabilities ------------------------------------------------------------------
    def capabilities(self) -> list[str]:
        caps = ["IMAP4rev1", "IMAP4rev2", self.literal_capability, "SASL-IR", "ENABLE", "ID", "IDLE", "NAMESPACE"]
        if self.state == NOT_AUTH:
            if self.ctx.tls is not None and not self.peer.secure:
                caps.append("STARTTLS")
            if self.ctx.auth.plaintext_allowed(self.peer.secure, self.peer.ip):
                caps += ["AUTH=PLAIN", "AUTH=LOGIN"]
            else:
                caps.append("LOGINDISABLED")
            # SCRAM is offered wherever PLAIN is, and also without TLS where plaintext is
            # refused: the password never crosses the wire, and the server proves it
            # knows it (RFC 5802 section 9 leaves an eavesdropper an offline dictionary
            # attack on the exchange, which TLS prevents; RFC 5034 section 4 asks for
            # such non-plaintext mechanisms). Dovecot's disable_plaintext_auth does the
            # same. -PLUS where the runner has the TLS channel binding (RFC 7677 section 4).
            caps.append("AUTH=" + SCRAM_SHA_256)
            if self.peer.tls_exporter is not None:
                caps.append("AUTH=" + SCRAM_SHA_256_PLUS)
            return caps
        caps += [
            "UNSELECT", "UNAUTHENTICATE", "COMPRESS=DEFLATE", "UIDPLUS", "MOVE", "CHILDREN",
            "LIST-EXTENDED", "LIST-STATUS",
            "SPECIAL-USE", "CREATE-SPECIAL-USE", "ESEARCH", "MULTISEARCH", "SEARCHRES", "MULTIAPPEND", "REPLACE", "BINARY", "UTF8=ACCEPT",
            "CONDSTORE", "QRESYNC", "WITHIN", "OBJECTID", "INPROGRESS", "UIDONLY", "SAVEDATE", "PREVIEW", "NOTIFY",
            "SORT", "SORT=DISPLAY", "ESORT", "CONTEXT=SEARCH", "CONTEXT=SORT", "PARTIAL", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES",
            "QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE", "STATUS=SIZE", "METADATA", "CATENATE",
            # RFC 4314 2.2: RIGHTS= lists the rights RFC 2086 did not have.
            "ACL", "RIGHTS=texk", "LIST-MYRIGHTS",
            f"APPENDLIMIT={self.settings.max_literal_size}",
        ]
        return caps

    def capability_code(self) -> str:
        return "CAPABILITY " + " ".join(self.capabilities())

    # --- names -------------------------------------------------------------------------
    def decode_name(self, raw: bytes) -> str:
        """A mailbox name as the client wrote it: UTF-8 in rev2 (or after ENABLE
        UTF8=ACCEPT), modified UTF-7 in rev1."""
        if self.rev2 or self.utf8_accept:
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise BadName("mailbox name is not valid UTF-8") from None
        try:
            return mutf7.decode(raw)
        except ValueError:
            raise BadName("mailbox name is not valid modified UTF-7") from None

    def encode_name(self, name: str) -> bytes:
        if self.rev2 or self.utf8_accept:
            return wire.astring(name, utf8=True)
        return wire.astring(mutf7.encode(name))

    # --- Session contract --------------------------------------------------------------
    @property
    def timeout(self) -> float:
        if self.state == NOT_AUTH or self.reader.in_command or self._sasl is not None:
            return self.settings.login_timeout
        return self.settings.idle_timeout

    async def start(self) -> None:
        self.send(wire.untagged_status("OK", f"{self.ctx.hostname} Letterbox ready.", self.capability_code()))

    # --- output and pipelining ---------------------------------------------------------
    @property
    def backlog(self) -> bool:
        """Pipelined commands wait until the client has read what is queued."""
        return self._held and not self.closing and not self.start_tls and not self.start_compress

    async def receive(self, data: bytes) -> None:
        self.reader.feed(data)
        await self._run_commands(interactive=True)

    async def resume(self) -> None:
        await self._run_commands(interactive=False)

    async def _run_commands(self, interactive: bool) -> None:
        """Run the commands read so far: the first one of new bytes counts as
        interactive, the ones pipelined behind it take their turns after others'."""
        self._held = False
        while not self.closing:
            if self.output_limit is not None and self.queued >= self.output_limit:
                # A client that does not read is not served until it does: the runner
                # sends what is queued (waiting on the socket), then resumes us.
                self._held = True
                return
            event = self.reader.next_event()
            if event is None:
                self._note_command_start()
                return
            started = self.command_starts(interactive)
            await self._event(event)
            if self.start_tls or self.start_compress:
                return
            # One command at a time for everyone: pipelined commands of one client
            # never hold the event loop for the whole batch.
            await self.command_done(interactive, started, self.reader.pending_bytes > 0)
            interactive = False

    def _note_command_start(self) -> None:
        if not self.reader.in_command:
            self._command_since = None
        elif self._command_since is None:
            self._command_since = time.monotonic()

    @property
    def deadline(self) -> float | None:
        """A command begun (its literals on their way) must be whole within
        [imap] command_timeout, however slowly its bytes trickle in."""
        since = self._command_since
        return None if since is None else since + self.settings.command_timeout

    async def changed(self) -> None:
        self._take_changes()
        if self.idle_tag is not None:
            await self._send_updates(allow_expunge=True)
            await self._send_notifications()
        elif self.notify is not None and self._between_commands():
            # RFC 5465 3.1: after NOTIFY, events go out between commands too.
            await self._send_updates(allow_expunge=False)
            await self._send_notifications()

    def _between_commands(self) -> bool:
        """No command is being received or answered (nor AUTHENTICATE's exchange), and
        the client reads what it is sent (no pipelined commands held back)."""
        return (
            self.state in AUTHED
            and not self.closing
            and not self.reader.in_command
            and self._sasl is None
            and not self._held
        )

    def tls_started(self, tls_exporter: bytes | None = None) -> None:
        super().tls_started(tls_exporter)

    def take_unread(self) -> bytes:
        return self.reader.take_pending()

    async def shutdown(self, reason: str) -> None:
        self._ended = f"server ended session: {reason}"
        self.send(wire.untagged_status("BYE", reason, "UNAVAILABLE"))
        self.closing = True

    async def timed_out(self) -> None:
        self._ended = "autologout"
        self.send(wire.untagged_status("BYE", "Autologout: idle for too long"))
        self.closing = True

    async def connection_lost(self) -> None:
        self.notify = None
        self._close_view()

    def summary(self) -> str:
        who = f"imap({self.user})<{self.peer.ip}>" if self.user else f"imap<{self.peer.ip}>"
        if self.user is None:
            return f"{who}: Disconnected: {self._ended} (no login, {self._failed_logins} failed attempts)"
        s = self.stats
        return (
            f"{who}: Disconnected: {self._ended} fetch={s['fetch']}/{s['fetch_bytes']}"
            f" append={s['append']} expunge={s['expunge']} store={s['store']}"
        )

    # --- events ------------------------------------------------------------------------
    async def _event(self, event: g.Event) -> None:
        if isinstance(event, g.ParseError):
            waiting = self.idle_tag or (self._sasl[0] if self._sasl is not None else None)
            if waiting is not None and not event.fatal:
                # The line that was to end IDLE or answer AUTHENTICATE was refused (too
                # long): that command ends with it, and commands are read again.
                self.idle_tag = self._sasl = None
                self.send(wire.tagged(waiting, "BAD", event.message))
                self._count_bad()
                return
            self.send(event.response())
            if event.fatal:
                self._ended = "protocol error"
                self.closing = True
            else:
                self._count_bad()
            return
        if isinstance(event, g.NeedContinuation):
            if self.state == NOT_AUTH and event.size > PRE_AUTH_LIMIT:
                self.reader.cancel_command()
                self.send(wire.tagged(event.tag, "NO", "Literal too large before login", "LIMIT"))
                return
            self.send(b"+ Ready for literal data\r\n")
            return
        if isinstance(event, g.Line):
            await self._line(event.data)
            return
        await self._command(event)

    def _count_bad(self) -> None:
        self._bad += 1
        if self._bad >= MAX_BAD_COMMANDS:
            self.send(wire.untagged_status("BYE", "Too many invalid commands"))
            self._ended = "too many invalid commands"
            self.closing = True

    async def _command(self, cmd: g.Command) -> None:
        if not COMMANDS:
            COMMANDS.update(_registry())
        spec = COMMANDS.get(cmd.name)
        if spec is None:
            self.send(wire.tagged(cmd.tag, "BAD", f"{cmd.name} is not supported"))
            self._count_bad()
            return
        if self.state not in spec.states:
            self.send(wire.tagged(cmd.tag, "BAD", f"{cmd.name} is not allowed in the {self.state} state"))
            self._count_bad()
            return
        if self.uidonly and (why := uidonly.numbers_in(cmd)) is not None:
            # RFC 9586 3: no message sequence numbers once UIDONLY is on.
            self.send(wire.tagged(cmd.tag, "BAD", why, "UIDREQUIRED"))
            self._count_bad()
            return
        uid = bool(getattr(cmd, "uid", False))
        if self.view is not None and self.subscription is not None and self.subscription.pending():
            # Catch up first, so that this command already knows what other sessions
            # expunged (held back, not reported: 7.5.1) and added.
            await self._send_updates(allow_expunge=False, with_uid=uid, before_command=True)
            if self.closing:
                return  # a BYE: the mailbox is gone, or the user's access to it
        if (
            self.view is not None and self.view.owner != self.user and cmd.name != "LOGOUT"
            and not await self._rights_still_hold()
        ):
            return
        self.progress = Progress(self, cmd.tag)
        started = time.perf_counter()
        try:
            with changes_by(self.origin):
                done = await spec.handler(self, cmd)
        except BadName as e:
            done = Done("BAD" if self.rev2 else "NO", str(e), None if self.rev2 else "CANNOT")
        except ViewGone:
            self._close_view()
            self.send(wire.untagged_status("BYE", "The selected mailbox was deleted or renamed"))
            self.closing = True
            return
        except StoreError as e:
            done = store_failure(e)
        except Exception:
            # A defect costs the one command, not the session.
            log.exception("imap(%s): %s failed", self.user, cmd.name)
            done = Done("NO", "Internal error; the administrator can find details in the log", "SERVERBUG")
        metrics.imap_command(cmd.name, time.perf_counter() - started)
        if done is DEFERRED:
            return
        if done is None:
            done = Done(text=f"{cmd.name} completed")
        if done.status == "BAD":
            self._count_bad()
        else:
            self._bad = 0
        view = self.view
        if view is not None and self.state == SELECTED and not self.closing:
            await self._send_updates(allow_expunge=spec.may_expunge or uid, with_uid=uid)
        if self.notify is not None and self.state in AUTHED and not self.closing:
            await self._send_notifications()
        if view is not None and self.view is view and not self.closing:
            if view.condstore and view.expunge_floor is not None:
                # RFC 7162 3.2: MODSEQs may have gone out while expunges are held back;
                # a client that resyncs from here must still learn of those.
                self.send(wire.untagged_status(
                    "OK", "Expunges not reported yet", f"HIGHESTMODSEQ {view.expunge_floor}"
                ))
            elif self._announce_modseq:
                # RFC 7162 3.1: the first CONDSTORE enabling command with a mailbox
                # selected returns its HIGHESTMODSEQ.
                self.send(wire.untagged_status("OK", "Highest", f"HIGHESTMODSEQ {view.modseq}"))
            elif done.expunged and self.qresync and done.status == "OK" and done.code is None:
                done = Done(done.status, done.text, f"HIGHESTMODSEQ {view.modseq}")
        self._announce_modseq = False
        if self.closing and self.state != LOGOUT:
            return  # a BYE ended the session; no tagged answer follows it
        self.send(wire.tagged(cmd.tag, done.status, done.text, done.code))

    def enable_condstore(self) -> None:
        """RFC 7162 3.1: after a CONDSTORE enabling command, every untagged FETCH carries
        UID and MODSEQ until the connection closes."""
        self.condstore = True
        if self.view is not None and not self.view.condstore:
            self.view.condstore = True
            self._announce_modseq = True

    async def _rights_still_hold(self) -> bool:
        """Another account's mailbox is selected: its ACL may have changed since. New
        PERMANENTFLAGS if the flags the user may change did (RFC 4314 5.1.1); without "r"
        the session ends, as the RFC allows, rather than go on serving the mailbox."""
        view = self.view
        assert view is not None and self.user is not None
        try:
            rights = (await view.store.granted([self.user, ANYONE], view.mailbox.name)).get(view.mailbox.name, "")
        except StoreError:
            return True  # the next store call will say what is wrong
        if "r" not in rights:
            self._close_view()
            self.send(wire.untagged_status("BYE", "Access to the selected mailbox was taken away"))
            self._ended = "access to the selected mailbox was taken away"
            self.closing = True
            return False
        if rights != view.rights:
            before = view.permanent_flags_response()
            view.rights = rights
            if not view.readonly and view.permanent_flags_response() != before:
                self.send(view.permanent_flags_response())
        return True

    async def _send_updates(self, allow_expunge: bool, with_uid: bool = False, before_command: bool = False) -> None:
        """What other sessions changed in the selected mailbox, as far as may be told now
        (and, after NOTIFY, as far as SELECTED / SELECTED-DELAYED asks). Before a command
        runs expunges are always held: its message numbers are the ones the client knew."""
        view = self.view
        if view is None:
            return
        store = view.store
        self._take_changes()
        if self._recheck_rights:
            # Between commands too (NOTIFY, IDLE): nothing more is told of a mailbox the
            # user may no longer read (RFC 5465 5.9).
            self._recheck_rights = False
            if not await self._rights_still_hold():
                return
        fetch: tuple[g.FetchAttribute, ...] = ()
        flags = True
        if self.notify is not None:
            wanted = self.notify.selected
            if wanted is None:
                # RFC 5465 3.1: no message events for the selected mailbox at all; the
                # view stays as the client knows it until NOTIFY asks for them again.
                view.own_modseqs.clear()
                view.own_new.clear()
                return
            # 5.1: flag changes carry the UID; 6.1.1: SELECTED tells expunges at once.
            flags, with_uid, fetch = wanted.flags, True, wanted.fetch
            allow_expunge = allow_expunge or not (wanted.delayed or before_command)
        if not self._dirty and not (allow_expunge and view.pending_expunge):
            return
        self._dirty = False
        try:
            lines, new = await view.sync(store, allow_expunge, self.rev2, with_uid, flags)
        except ViewGone:
            self._close_view()
            self.send(wire.untagged_status("BYE", "The selected mailbox was deleted or renamed"))
            self.closing = True
            return
        except StoreError as e:
            # The store is away for now (PostgreSQL restarting): the view stays as the
            # client knows it and is brought up to date at the next chance; the
            # command's own answer says what failed.
            self._dirty = True
            log.info("imap(%s): mailbox updates held back: %s", self.user, e)
            return
        for line in lines:
            self.send(line)
        if fetch and new:
            # RFC 5465 5.2: after the EXISTS, what NOTIFY asked for of each new message.
            from .fetch import send_new

            await send_new(self, new, fetch)

    def _take_changes(self) -> None:
        """Take what the feed brought: the selected mailbox needs a sync, NOTIFY keeps
        what its filters want of the rest."""
        sub = self.subscription
        if sub is None or not sub.pending():
            return
        lost = sub.overflowed
        changes = sub.take()
        view = self.view
        if view is not None:
            mine = [c for c in changes if c.mailbox_id == view.mailbox.id and c.account == view.owner]
            for c in mine:
                if c.kind in ("metadata", "acl"):
                    continue
                if lost or self._dirty or not self._own_next_flags(view, c):
                    self._dirty = True
            if view.owner != self.user and any(c.kind == "acl" for c in mine):
                self._recheck_rights = True  # the user's rights there may have changed
        if self.notify is not None:
            self.notify.add(changes, lost)

    def _own_next_flags(self, view: SelectedView, change: Change) -> bool:
        """Take *change* without a sync when it is this session's own flag change and the
        very next MODSEQ after what the view knows (so nothing else happened in between):
        its FETCH responses went out with the command, and a sync would only read it back.
        Not with SEARCH/SORT contexts or NOTIFY, which want to hear of it."""
        if (
            change.kind != "flags" or change.origin != self.origin or change.modseq != view.modseq + 1
            or view.contexts or self.notify is not None
        ):
            return False
        view.modseq = change.modseq
        view.own_modseqs = {m for m in view.own_modseqs if m > view.modseq}  # as sync() keeps them
        return True

    async def _send_notifications(self) -> None:
        notify = self.notify
        if notify is None or self.store is None:
            return
        self._take_changes()
        if notify.pending():
            await notify.flush(self)
        self._update_subscription()  # an overflow ends the watch of other mailboxes

    def set_notify(self, notifier: Notifier) -> None:
        self.notify = notifier
        self._update_subscription()

    def _update_subscription(self) -> None:
        """Listen to the feed while something needs it: a selected mailbox, or NOTIFY
        watching other mailboxes."""
        accounts: set[str] = set()
        if self.user is not None:
            if self.view is not None:
                # Another account's mailbox is told of its changes through its owner's feed.
                accounts.add(self.view.owner)
            if self.notify is not None and self.notify.watching:
                accounts.add(self.user)
                accounts |= self.notify.owners  # the shared mailboxes NOTIFY watches
        sub = self.subscription
        if not accounts:
            if sub is not None:
                sub.close()
                self.subscription = None
        elif sub is None:
            self.subscription = self.ctx.store.subscribe(*accounts)
        elif sub.addresses != accounts:
            sub.follow(accounts)

    async def _line(self, data: bytes) -> None:
        if self.idle_tag is not None:
            tag, self.idle_tag = self.idle_tag, None
            if data.strip().upper() == b"DONE":
                self.send(wire.tagged(tag, "OK", "IDLE terminated"))
            else:
                self.send(wire.tagged(tag, "BAD", "Expected DONE to end IDLE"))
            return
        if self._sasl is not None:
            await self._sasl_step(data)

    def current_quota(self) -> Quota | None:
        """The account's quota as the directory has it now (an administrator may have
        changed it since login)."""
        if self.user is None:
            return None
        account = self.ctx.directory.get(self.user)
        return self.ctx.policy.quota_of(account.quota) if account is not None else None

    # --- selection helpers -------------------------------------------------------------
    def select_view(self, view: SelectedView) -> None:
        self._close_view()
        self.view = view
        self.state = SELECTED
        self._update_subscription()

    def _close_view(self) -> None:
        self.view = None
        if self.state == SELECTED:
            self.state = AUTH
        self._update_subscription()

    # --- authentication ----------------------------------------------------------------
    async def login(self, tag: str, user: str, password: str) -> Done:
        if not self.ctx.auth.plaintext_allowed(self.peer.secure, self.peer.ip):
            return Done("NO", "Plaintext authentication disallowed on non-secure connection", "PRIVACYREQUIRED")
        if self.state != NOT_AUTH:
            return Done("BAD", "Already authenticated")
        result = await self.ctx.auth.login(user, password, "imap", self.peer.ip)
        return await self._logged_in(result)

    async def _logged_in(self, result: LoginResult) -> Done:
        """The answer to a login, LOGIN or AUTHENTICATE, whatever the mechanism."""
        if result.outcome is Outcome.OK and result.account is not None:
            try:
                store = await self.ctx.store.account(result.account.address, result.account.incarnation)
            except StoreError as e:
                log.warning("imap(%s)<%s>: mailbox unavailable: %s", result.account.address, self.peer.ip, e)
                return Done("NO", f"Mailbox unavailable: {e}", "UNAVAILABLE")
            self.account = result.account
            self.user = result.account.address
            self.store = store
            self.state = AUTH
            self._raise_limits()
            log.info("imap(%s)<%s>: logged in", self.user, self.peer.ip)
            return Done("OK", "Logged in", self.capability_code())
        self._failed_logins += 1
        if result.outcome is Outcome.THROTTLED:
            return Done("NO", "Too many logins at once from your address; try again later", "UNAVAILABLE")
        if result.outcome is Outcome.UNAVAILABLE:
            return Done("NO", "The accounts directory is unavailable; try again shortly", "UNAVAILABLE")
        if result.outcome is Outcome.PROTOCOL_DISABLED:
            return Done("NO", "IMAP access is disabled for this account", "CONTACTADMIN")
        if result.outcome is Outcome.ACCOUNT_DISABLED:
            why = result.account.disabled_message if result.account is not None else ""
            return Done("NO", f"This account is disabled: {why}" if why else "This account is disabled",
                        "CONTACTADMIN")
        return Done("NO", "Authentication failed", "AUTHENTICATIONFAILED")

    async def authenticate(self, cmd: g.Authenticate) -> Done | None:
        mech = cmd.mechanism.upper()
        binding = self.peer.tls_exporter
        scram = mech == SCRAM_SHA_256 or (mech == SCRAM_SHA_256_PLUS and binding is not None)
        if mech not in ("PLAIN", "LOGIN") and not scram:
            return Done("NO", f"Unsupported authentication mechanism {mech}", "CANNOT")
        if not scram and not self.ctx.auth.plaintext_allowed(self.peer.secure, self.peer.ip):
            return Done("NO", "Plaintext authentication disallowed on non-secure connection", "PRIVACYREQUIRED")
        self._sasl = (cmd.tag, mech, [])
        self._scram = ScramExchange(
            self.ctx.auth, "imap", self.peer.ip, channel_binding=binding, plus=mech == SCRAM_SHA_256_PLUS,
        ) if scram else None
        if cmd.initial_response is not None:
            await self._sasl_step(cmd.initial_response)
            return DEFERRED
        self._sasl_prompt()
        return DEFERRED

    def _sasl_prompt(self) -> None:
        assert self._sasl is not None
        _, mech, got = self._sasl
        if mech == "PLAIN" or self._scram is not None:
            self.send(b"+ \r\n")
        else:
            self.send(b"+ VXNlcm5hbWU6\r\n" if not got else b"+ UGFzc3dvcmQ6\r\n")
        self.reader.expect_line()

    async def _sasl_step(self, data: bytes) -> None:
        assert self._sasl is not None
        tag, mech, got = self._sasl
        if data.strip() == b"*":
            self._sasl = None
            self.send(wire.tagged(tag, "BAD", "Authentication cancelled"))
            return
        if self._scram is not None:
            await self._scram_step(tag, data)
            return
        try:
            if mech == "PLAIN":
                user, password = decode_plain(data if data.strip() not in (b"=", b"") else b"")
            else:
                got.append(b64decode(data) if data.strip() != b"=" else b"")
                if len(got) < 2:
                    self._sasl_prompt()
                    return
                user, password = got[0].decode("utf-8"), got[1].decode("utf-8")
        except (SASLError, UnicodeDecodeError) as e:
            self._sasl = None
            self._failed_logins += 1
            self.send(wire.tagged(tag, "BAD", f"Invalid SASL response: {e}"))
            return
        self._sasl = None
        done = await self.login(tag, user, password)
        self.send(wire.tagged(tag, done.status, done.text, done.code))

    async def _scram_step(self, tag: str, data: bytes) -> None:
        """One SCRAM-SHA-256(-PLUS) response; with SASL-IR the first is the client-first message.
        The server-final goes in a continuation, and OK follows the client's empty answer."""
        assert self._scram is not None
        try:
            raw = b"" if data.strip() in (b"", b"=") else b64decode(data)
            out = await self._scram.step(raw)
        except (SASLError, ScramFailure) as e:
            self._sasl = self._scram = None
            self._failed_logins += 1
            if isinstance(e, SASLError):
                self.send(wire.tagged(tag, "BAD", f"Invalid SASL response: {e}"))
            else:
                self.send(wire.tagged(tag, "NO", str(e), "AUTHENTICATIONFAILED"))
            return
        if isinstance(out, bytes):
            self.send(b"+ " + base64.b64encode(out) + b"\r\n")
            self.reader.expect_line()
            return
        self._sasl = self._scram = None
        done = await self._logged_in(out)
        self.send(wire.tagged(tag, done.status, done.text, done.code))


class BadName(Exception):
    pass


DEFERRED = Done("DEFERRED")
"""Returned by handlers that answer later themselves (AUTHENTICATE, IDLE)."""


def store_failure(e: StoreError) -> Done:
    from ..store.api import (
        AccountGone,
        BadMailboxName,
        DiskFull,
        LimitExceeded,
        MailboxExists,
        MailboxNotFound,
        MessageGone,
        OverQuota,
        Unavailable,
    )

    if isinstance(e, LimitExceeded):
        return Done("NO", str(e), "LIMIT")
    if isinstance(e, DiskFull):
        # As Dovecot: RFC 5530 has no code of its own for a full disk.
        return Done("NO", "Not enough disk space", "OVERQUOTA")
    if isinstance(e, (Unavailable, AccountGone)):
        return Done("NO", str(e), "UNAVAILABLE")
    if isinstance(e, MailboxNotFound):
        return Done("NO", str(e), "NONEXISTENT")
    if isinstance(e, MailboxExists):
        return Done("NO", str(e), "ALREADYEXISTS")
    if isinstance(e, OverQuota):
        return Done("NO", "Quota exceeded", "OVERQUOTA")
    if isinstance(e, BadMailboxName):
        return Done("NO", str(e), "CANNOT")
    if isinstance(e, MessageGone):
        return Done("NO", "Some of the requested messages no longer exist", "EXPUNGEISSUED")
    return Done("NO", str(e) or "Operation failed", "CANNOT")


# --- commands valid in any state -------------------------------------------------------
async def cmd_capability(s: IMAPSession, cmd: g.Capability) -> Done:
    s.send(b"* CAPABILITY " + " ".join(s.capabilities()).encode() + b"\r\n")
    return Done(text="CAPABILITY completed")


async def cmd_noop(s: IMAPSession, cmd: g.Command) -> Done:
    s._dirty = True
    return Done(text=f"{cmd.name} completed")


async def cmd_logout(s: IMAPSession, cmd: g.Logout) -> Done:
    s.send(wire.untagged_status("BYE", "Logging out"))
    s._ended = "Logged out"
    s.closing = True
    s._close_view()
    s.state = LOGOUT
    return Done(text="LOGOUT completed")


async def cmd_id(s: IMAPSession, cmd: g.Id) -> Done:
    s.send(b'* ID ("name" "Letterbox" "version" ' + wire.quoted(__version__) + b")\r\n")
    return Done(text="ID completed")


async def cmd_starttls(s: IMAPSession, cmd: g.StartTLS) -> Done:
    if s.state != NOT_AUTH:
        return Done("BAD", "STARTTLS is only allowed before login")
    if s.ctx.tls is None or s.peer.secure:
        return Done("BAD", "TLS is not available" if s.ctx.tls is None else "TLS is already active")
    # RFC 9051 6.2.1: data pipelined after STARTTLS must not be acted upon (it would
    # have been injected in the clear); a fresh reader drops it.
    s.reader = s._new_reader()
    s.start_tls = True
    return Done(text="Begin TLS negotiation now")


async def cmd_compress(s: IMAPSession, cmd: g.Compress) -> Done:
    # RFC 4978 3: DEFLATE is the one mechanism; asked twice, NO [COMPRESSIONACTIVE].
    if cmd.mechanism != "DEFLATE":
        return Done("BAD", f"Unknown compression mechanism {cmd.mechanism}")
    if s.compressed:
        return Done("NO", "DEFLATE is active already", "COMPRESSIONACTIVE")
    s.compressed = True
    s.start_compress = True  # after this answer, which goes out uncompressed
    return Done(text="DEFLATE active")


async def cmd_unauthenticate(s: IMAPSession, cmd: g.Unauthenticate) -> Done:
    # RFC 8437 3: back to not authenticated, TLS and compression kept; a selected
    # mailbox is left without expunging; no NO is allowed.
    s.unauthenticate()
    return Done(text="UNAUTHENTICATE completed")


async def cmd_login(s: IMAPSession, cmd: g.Login) -> Done:
    try:
        user = cmd.userid.decode("utf-8")
        password = cmd.password.decode("utf-8")
    except UnicodeDecodeError:
        return Done("NO", "User name and password must be UTF-8", "AUTHENTICATIONFAILED")
    return await s.login(cmd.tag, user, password)


async def cmd_authenticate(s: IMAPSession, cmd: g.Authenticate) -> Done | None:
    if s.state != NOT_AUTH:
        return Done("BAD", "Already authenticated")
    return await s.authenticate(cmd)


async def cmd_enable(s: IMAPSession, cmd: g.Enable) -> Done:
    enabled = []
    had_condstore = s.condstore
    for cap in cmd.capabilities:
        c = cap.upper()
        if c == "IMAP4REV2" and not s.rev2:
            s.rev2 = True
            enabled.append("IMAP4rev2")
        elif c == "UTF8=ACCEPT" and not s.utf8_accept and s.state == AUTH:
            # RFC 6855 3: only in the authenticated state (names already sent to a
            # selected session must not change their spelling).
            s.utf8_accept = True
            enabled.append("UTF8=ACCEPT")
        elif c == "CONDSTORE" and not had_condstore and "CONDSTORE" not in enabled:
            s.enable_condstore()
            enabled.append("CONDSTORE")
        elif c == "QRESYNC" and not s.qresync:
            # RFC 7162 3.2.3: QRESYNC implies CONDSTORE.
            s.qresync = True
            s.enable_condstore()
            enabled.append("QRESYNC")
            if s.view is not None:
                s.view.qresync = True
        elif c == "UIDONLY" and not s.uidonly:
            s.uidonly = True
            enabled.append("UIDONLY")
            if s.view is not None:
                s.view.uidonly = True
    s.send(b"* ENABLED" + b"".join(b" " + e.encode() for e in enabled) + b"\r\n")
    return Done(text="ENABLE completed")


async def cmd_namespace(s: IMAPSession, cmd: g.Namespace) -> Done:
    # RFC 2342 5: other accounts' mailboxes are the other users' namespace, Shared/<owner>/.
    s.send(b'* NAMESPACE (("" "/")) (("Shared/" "/")) NIL\r\n')
    return Done(text="NAMESPACE completed")


async def cmd_idle(s: IMAPSession, cmd: g.Idle) -> Done:
    s.idle_tag = cmd.tag
    s.send(b"+ idling\r\n")
    s.reader.expect_line()
    if s.view is not None:
        s._dirty = True
        await s._send_updates(allow_expunge=True)
    await s._send_notifications()
    return DEFERRED


def _registry() -> dict[str, Spec]:
    from . import (
        acl,
        append,
        contexts,
        fetch,
        mailboxes,
        metadata,
        multisearch,
        notify,
        quota,
        search,
        selected,
        sort,
        thread,
    )

    table: dict[str, Spec] = {
        "CAPABILITY": Spec(cmd_capability, ANY),
        "NOOP": Spec(cmd_noop, ANY),
        "LOGOUT": Spec(cmd_logout, ANY),
        "ID": Spec(cmd_id, ANY),
        "STARTTLS": Spec(cmd_starttls, frozenset({NOT_AUTH})),
        "COMPRESS": Spec(cmd_compress, AUTHED),
        "UNAUTHENTICATE": Spec(cmd_unauthenticate, AUTHED),
        "LOGIN": Spec(cmd_login, frozenset({NOT_AUTH})),
        "AUTHENTICATE": Spec(cmd_authenticate, frozenset({NOT_AUTH})),
        "ENABLE": Spec(cmd_enable, AUTHED),
        "NAMESPACE": Spec(cmd_namespace, AUTHED),
        "IDLE": Spec(cmd_idle, AUTHED),
        "CHECK": Spec(cmd_noop, ONLY_SELECTED),
        "FETCH": Spec(fetch.cmd_fetch, ONLY_SELECTED, may_expunge=False),
        "SEARCH": Spec(search.cmd_search, ONLY_SELECTED, may_expunge=False),
        "CANCELUPDATE": Spec(contexts.cmd_cancelupdate, ONLY_SELECTED),
        "GETQUOTA": Spec(quota.cmd_getquota, AUTHED),
        "GETQUOTAROOT": Spec(quota.cmd_getquotaroot, AUTHED),
        "SETQUOTA": Spec(quota.cmd_setquota, AUTHED),
        "APPEND": Spec(append.cmd_append, AUTHED),
        "REPLACE": Spec(append.cmd_replace, ONLY_SELECTED),
    }
    table.update(mailboxes.COMMANDS)
    table.update(acl.COMMANDS)
    table.update(selected.COMMANDS)
    table.update(sort.COMMANDS)
    table.update(thread.COMMANDS)
    table.update(metadata.COMMANDS)
    table.update(multisearch.COMMANDS)
    table.update(notify.COMMANDS)
    return table


COMMANDS: dict[str, Spec] = {}
"""Filled on first use: the command modules import this one."""
