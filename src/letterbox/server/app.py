"""The running server: listeners per service, live switches, control socket, housekeeping.

Switches: a service runs when the config enables it, unless `letterbox protocols` has
switched it at run time (kept in the directory, so it survives restarts). When a service
goes off, its listeners close (new connections are refused) and its open sessions end
with the protocol's goodbye; a POP3 session never reaches UPDATE that way, so nothing
it marked for deletion is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import datalock, metrics
from ..auth.directory import BUSY, SERVICES
from ..config import Settings, parse_listen
from ..policy import configured, effective
from ..service.context import Context
from ..service.session import Peer, Session
from ..store import faults
from ..store.api import Store, StoreError
from . import control, streams
from .accept import TLSListener, tls_server
from .connection import Connection
from .context import build_context
from .limits import ConnectionLimits, descriptor_budget
from .retention import Retention
from .streams import WakingReader
from .usage import UsageTracker

log = logging.getLogger("letterbox.server")

POLL_INTERVAL = 0.5
# A burst of reconnecting clients (a server restart, a network blip) must not overflow
# the accept queue; the default of 100 did at a few hundred clients.
BACKLOG = 1024
EXPIRE_INTERVAL = 3600.0
RETENTION_INTERVAL = 3600.0
USAGE_INTERVAL = 2.0
"""Seconds between rounds of measuring the accounts that changed (usage table, quota
warnings) and of writing last logins to the directory."""
# A folder with more files than this in new/ is indexed after the listeners open.
NEW_FILES_AT_START = 1000

_REFUSALS = {
    "imap": b"* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
    "pop3": b"-ERR [SYS/TEMP] Too many connections, try again later\r\n",
}


Listener = asyncio.Server | TLSListener


def _socket_names(server: Listener) -> list[str]:
    out = []
    for sock in server.sockets:
        name = sock.getsockname()
        if isinstance(name, str):
            out.append(name)
        elif ":" in name[0]:
            out.append(f"[{name[0]}]:{name[1]}")
        else:
            out.append(f"{name[0]}:{name[1]}")
    return out


def _session_factory(service: str) -> Callable[[Context, Peer, bool], Session]:
    if service == "pop3":
        from ..pop3.session import POP3Session

        return POP3Session
    from ..imap.session import IMAPSession

    return IMAPSession


class StartupError(Exception):
    pass


class Server:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ctx = build_context(settings)
        self.listeners: dict[str, list[tuple[str, Listener]]] = {}
        """service -> [(label, server)]; labels are "imap", "imaps", "lmtp_unix", ..."""
        self.bound: dict[str, list[str]] = {}
        self._listener_file = ""
        """What run_dir/listeners.json was last written with."""
        self.connections: dict[str, set[Connection]] = {"imap": set(), "pop3": set()}
        server = settings.server
        self.limits = ConnectionLimits(server.max_connections_per_ip, descriptor_budget(server.max_connections))
        self._tasks: list[asyncio.Task[None]] = []
        self._indexing: asyncio.Task[None] | None = None
        self._rebuilding: asyncio.Task[None] | None = None
        self._closed_for_rebuild: set[str] = set()
        self._chores = (self._directory_chore, self._accounts_chore, self._store_chore, self._usage_chore)
        self._accounts_changed = False
        self._stop_indexing = threading.Event()
        self._control: asyncio.Server | None = None
        self._stopped = asyncio.Event()
        self._delivery: Any = None
        self.configured_policy = configured(settings)
        """The policies as the config file has them (run-time overrides go into the
        settings, so this is taken before any)."""
        self.refresh_policy()
        self.usage = UsageTracker(self.ctx)
        self.retention = Retention(self.ctx, settings.data_dir / "retention.sqlite")
        self.started = time.time()
        self._web: Any = None
        self._last_round = 0.0
        self.id_base = 0
        """Added to a connection's number to name its session to the console (a worker
        puts its index here, so that ids are unique across workers)."""

    # --- switches ------------------------------------------------------------------------
    def configured(self, service: str) -> bool:
        section = getattr(self.settings, service)
        return bool(section.enabled)

    def switches(self) -> dict[str, bool]:
        overrides = self.ctx.directory.switches()
        return {s: overrides.get(s, self.configured(s)) for s in SERVICES}

    async def apply_switches(self) -> list[str]:
        """Start and stop services to match the switches; returns services that failed."""
        failed = []
        for service, want in self.switches().items():
            running = service in self.listeners
            if want and not running:
                if not await self._start_service(service):
                    failed.append(service)
            elif not want and running:
                await self._stop_service(service, f"{service.upper()} has been disabled by the administrator")
        self._write_listener_file()
        return failed

    # --- listeners -----------------------------------------------------------------------
    async def _start_service(self, service: str) -> bool:
        servers: list[tuple[str, Listener]] = []
        loop = asyncio.get_running_loop()
        section = getattr(self.settings, service)
        try:
            if service in ("imap", "pop3"):
                for addr in section.listen:
                    servers.append((service, await self._listen_session(service, addr, False)))
                if self.ctx.tls is not None:
                    for addr in section.tls_listen:
                        servers.append((service + "s", await self._listen_session(service, addr, True)))
            else:
                delivery = self._delivery_module()
                factory = (
                    delivery.lmtp_protocol_factory(self.ctx)
                    if service == "lmtp"
                    else delivery.smtp_protocol_factory(self.ctx)
                )
                for addr in section.listen:
                    host, port = parse_listen(addr)
                    servers.append((service, await loop.create_server(factory, host, port, backlog=BACKLOG)))
                if service == "lmtp" and section.unix_socket:
                    path = self.settings.run_dir / section.unix_socket
                    path.unlink(missing_ok=True)
                    servers.append((service + "_unix", await loop.create_unix_server(factory, str(path))))
                    path.chmod(0o660)
        except OSError as e:
            for _, srv in servers:
                srv.close()
            log.error("cannot start %s: %s", service.upper(), e)
            return False
        self.listeners[service] = servers
        for label, srv in servers:
            for name in _socket_names(srv):
                log.info("%s listening on %s", label.upper().replace("_UNIX", " (unix)"), name)
        return True

    async def _listen_session(self, service: str, addr: str, implicit_tls: bool) -> Listener:
        host, port = parse_listen(addr)
        factory = _session_factory(service)
        tls = self.ctx.tls

        async def serve(ip: str, cport: int, reader: WakingReader, writer: asyncio.StreamWriter) -> None:
            metrics.CONNECTIONS.labels(service).inc()
            session = factory(self.ctx, Peer(ip, cport, implicit_tls), implicit_tls)
            conn = Connection(
                session, reader, writer, tls, self._connection_done,
                login_timeout=self.settings.server.login_timeout,
                handshake_timeout=self.settings.server.tls_handshake_timeout,
            )
            self.connections[service].add(conn)
            await conn.run()

        if implicit_tls:
            assert tls is not None

            async def serve_tls(reader: WakingReader, writer: asyncio.StreamWriter) -> None:
                peer = writer.get_extra_info("peername") or ("", 0)
                await serve(str(peer[0]), int(peer[1]), reader, writer)

            # Counted from accept, through the TLS handshake, until the connection closes.
            return await tls_server(
                host, port, tls, self.settings.server.tls_handshake_timeout, BACKLOG,
                lambda ip: self.limits.admit(service, ip) is None,
                self.limits.release, serve_tls, service,
            )

        async def on_client(reader: WakingReader, writer: asyncio.StreamWriter) -> None:
            peername = writer.get_extra_info("peername") or ("", 0)
            ip, cport = str(peername[0]), int(peername[1])
            if self.limits.admit(service, ip) is not None:
                with contextlib.suppress(Exception):
                    writer.write(_REFUSALS[service])
                    await writer.drain()
                writer.close()
                return
            try:
                await serve(ip, cport, reader, writer)
            finally:
                self.limits.release(ip)

        return await streams.start_server(on_client, host, port, backlog=BACKLOG)

    def _end_sessions(self, address: str, reason: str) -> None:
        for conns in self.connections.values():
            for conn in list(conns):
                if conn.session.user == address:
                    conn.request_shutdown(reason)

    def _connection_done(self, conn: Connection) -> None:
        self.connections[conn.session.protocol].discard(conn)

    async def _stop_service(self, service: str, reason: str) -> None:
        for _, srv in self.listeners.pop(service, []):
            srv.close()
        log.info("%s stopped: %s", service.upper(), reason)
        if service in self.connections:
            for conn in list(self.connections[service]):
                conn.request_shutdown(reason)
        elif self._delivery is not None:
            self._delivery.shutdown_all(service, reason)
        # Let goodbyes reach the clients before anyone assumes the service is quiet.
        for _ in range(50):
            if not self.connections.get(service):
                break
            await asyncio.sleep(0.02)

    def _delivery_module(self) -> Any:
        if self._delivery is None:
            from .. import delivery

            self._delivery = delivery
        return self._delivery

    def _write_listener_file(self) -> None:
        """run_dir/listeners.json: what is bound where (tests and tools read it)."""
        out: dict[str, list[str]] = {}
        for servers in self.listeners.values():
            for label, srv in servers:
                out.setdefault(label, []).extend(_socket_names(srv))
        if self._web is not None:
            out["web"] = [self._web.address]
        self.bound = out
        text = json.dumps({"pid": os.getpid(), "listeners": out}, indent=2)
        if text == self._listener_file:
            return  # a directory change that switched nothing: no write (the disk may be full)
        path = self.settings.run_dir / "listeners.json"
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(text)
            tmp.replace(path)
        except OSError as e:  # informational only: the listeners serve regardless
            log.warning("cannot write %s (written at the next change): %s", path, e.strerror or e)
            return
        self._listener_file = text

    # --- accounts changing under open sessions -------------------------------------------
    def _enforce_accounts(self) -> bool:
        """End sessions whose account was deleted, disabled or lost the protocol; False
        when some account could not be looked up (a shared directory out of reach):
        its sessions go on, and it is looked at again at the next poll."""
        done = True
        for service, conns in self.connections.items():
            for conn in list(conns):
                user = conn.session.user
                if user is None:
                    continue
                try:
                    acc = self.ctx.directory.get(user)
                except StoreError:
                    done = False
                    continue
                if acc is None or not acc.enabled:
                    conn.request_shutdown("account disabled by the administrator")
                elif service not in acc.protocols:
                    conn.request_shutdown(f"{service.upper()} access disabled for this account")
        return done

    async def _look_up_session_accounts(self) -> None:
        """Every logged-in account, looked up in one go before _enforce_accounts asks
        one by one (a shared directory answers them off the event loop)."""
        users = {c.session.user for conns in self.connections.values() for c in conns if c.session.user}
        with contextlib.suppress(StoreError):  # unreachable: _enforce_accounts tries later
            await self.ctx.directory.prefetch(users)

    async def _on_directory_change(self) -> None:
        self.ctx.auth.cache.flush()
        self.refresh_policy()
        await self.apply_switches()
        await self._look_up_session_accounts()
        self._enforce_accounts()
        await self._finish_deletions()

    async def directory_changed(self) -> None:
        """This process changed the directory (the console): apply it now, as a CLI
        change is applied when the CLI pokes the control socket."""
        self.ctx.directory.changed()
        await self._on_directory_change()

    def refresh_policy(self) -> None:
        before = self.ctx.policy
        self.ctx.policy = effective(self.settings, self.ctx.directory.policies(), self.configured_policy)
        self.ctx.policy.apply(self.settings)
        usage = getattr(self, "usage", None)
        if usage is not None and before.trash_counts != self.ctx.policy.trash_counts and usage.scanned:
            # Every account's usage is counted anew (with or without Trash).
            usage.scanned = False
            self._tasks.append(asyncio.create_task(self._scan_usage()))

    # --- sessions, for the console --------------------------------------------------------
    def local_sessions(self, address: str | None = None) -> list[dict[str, Any]]:
        """This process's open IMAP and POP3 sessions (of *address* only, if given)."""
        out = []
        for service, conns in self.connections.items():
            for conn in conns:
                user = conn.session.user
                if address is not None and user != address:
                    continue
                peer = conn.session.peer
                out.append({"id": self.id_base + conn.id, "protocol": service, "user": user, "ip": peer.ip,
                            "secure": peer.secure, "since": conn.started})
        return sorted(out, key=lambda s: s["since"])

    def local_disconnect(self, session_id: int, reason: str, address: str | None = None) -> bool:
        """End one of this process's sessions with its protocol's goodbye; False when
        there is no such session (of *address*, if given)."""
        for conns in self.connections.values():
            for conn in conns:
                if self.id_base + conn.id == session_id and (address is None or conn.session.user == address):
                    conn.request_shutdown(reason)
                    return True
        return False

    def local_session_counts(self) -> dict[str, int]:
        counts = {s: len(c) for s, c in self.connections.items()}
        for service in ("lmtp", "smtp"):
            counts[service] = (
                self._delivery.sessions_for(self.ctx).count(service) if self._delivery is not None else 0
            )
        return counts

    # One process holds every session; workers (server/workers.py) gather them.
    async def sessions(self, address: str | None = None) -> list[dict[str, Any]]:
        return self.local_sessions(address)

    async def disconnect(self, session_id: int, reason: str, address: str | None = None) -> bool:
        return self.local_disconnect(session_id, reason, address)

    async def session_counts(self) -> dict[str, int]:
        return self.local_session_counts()

    async def _finish_deletions(self) -> None:
        """Second step of `letterbox user del`: the account's sessions end, its mail goes
        out of reach at once, and only then does its directory row go."""
        directory = self.ctx.directory
        for pending in directory.pending_deletions():
            self._end_sessions(pending.address, "account deleted by the administrator")
            try:
                # A shared directory: another front end may have finished it, and the
                # address been given to a new account, since the list was read.
                if directory.shared and not directory.is_deleting(pending.address):
                    continue
                await self.ctx.store.delete_account(pending.address, pending.keep_mail)
            except Exception:
                log.exception("deleting the mail of %s failed; will retry", pending.address)
                continue
            directory.finish_delete(pending.address, pending.incarnation)
            what = "kept in the archive" if pending.keep_mail else "removed"
            log.info("account %s deleted; its mail was %s", pending.address, what)

    # --- control socket ------------------------------------------------------------------
    async def _handle_control(self, cmd: dict[str, Any]) -> dict[str, Any]:
        what = cmd.get("cmd")
        if what == "reload":
            self.ctx.directory.changed()
            await self._on_directory_change()
            return {"ok": True, "switches": self.switches(), "listeners": self.bound}
        if what == "status":
            return {
                "ok": True,
                "switches": self.switches(),
                "listeners": self.bound,
                "sessions": {s: len(c) for s, c in self.connections.items()},
                "pid": os.getpid(),
            }
        if what == "changed":
            address = str(cmd.get("address", ""))
            await self.ctx.store.notify_external(address)
            self.usage.mark(address)  # also when no session has it open
            if cmd.get("outcome") == "stored":  # `letterbox deliver`
                metrics.delivery("lda", "stored")
            return {"ok": True}
        if what == "delivered":  # `letterbox deliver` refused or deferred a message
            outcome = str(cmd.get("outcome", ""))
            if outcome in metrics.DELIVERY_OUTCOMES:
                metrics.delivery("lda", outcome)
            return {"ok": True}
        if what == "acl":
            account = self.ctx.directory.get(str(cmd.get("address", "")))
            if account is not None:
                await self.ctx.store.notify_acl(
                    account.address, account.incarnation, str(cmd.get("mailbox", "")), str(cmd.get("identifier", ""))
                )
            return {"ok": True}
        if what == "repair":
            return await self._repair(str(cmd.get("address", "")), bool(cmd.get("rebuild")))
        return {"ok": False, "error": f"unknown control command {what!r}"}

    async def _repair(self, address: str, rebuild: bool) -> dict[str, Any]:
        """`letterbox repair` against the running server: the account's sessions end
        and it is closed to everyone while its index is checked (and rebuilt)."""
        store = self.ctx.store
        account = self.ctx.directory.get(address)
        if account is None:
            return {"ok": False, "error": f"no account {address!r}"}
        if not store.can_repair:
            return {"ok": False, "error": "this store has no repair"}
        self._end_sessions(address, "mailbox being repaired by the administrator")
        try:
            report = await store.repair_account(address, account.incarnation, rebuild)
        except Exception as e:
            log.exception("repairing %s failed", address)
            return {"ok": False, "error": f"repair failed: {e}"}
        return {"ok": True, "report": report}

    # --- housekeeping --------------------------------------------------------------------
    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            # Each chore on its own: one failing (a full disk, say) must not stop the
            # others, and what it left undone is tried again at the next poll.
            for chore in self._chores:
                try:
                    await chore()
                except Exception:
                    log.exception("housekeeping (%s) failed", chore.__name__)

    async def _directory_chore(self) -> None:
        if self.ctx.directory.changed():
            self._accounts_changed = True
            self.ctx.auth.cache.flush()
            self.refresh_policy()
            await self.apply_switches()

    async def _usage_chore(self) -> None:
        now = time.monotonic()
        if now - self._last_round < USAGE_INTERVAL:
            return
        self._last_round = now
        logins = metrics.LAST_LOGINS.take()
        if logins:
            try:
                await self.ctx.directory.arecord_logins([(a, p, at, ip) for (a, p), (at, ip) in logins.items()])
            except BUSY:  # another process is writing, or the database is away: next round
                for key, value in logins.items():
                    metrics.LAST_LOGINS.pending.setdefault(key, value)
        if self.usage.scanned:
            await self.usage.flush()

    async def _accounts_chore(self) -> None:
        if self._accounts_changed:
            await self._look_up_session_accounts()
        if self._accounts_changed and self._enforce_accounts():
            self._accounts_changed = False  # only once it went through
        if self.ctx.directory.pending_deletions():
            await self._finish_deletions()

    async def _store_chore(self) -> None:
        store = self.ctx.store
        store.housekeeping()
        self._start_rebuilds(store)

    def _start_rebuilds(self, store: Store) -> None:
        """Indexes found damaged (at start-up or while serving) are rebuilt one account
        at a time in a thread; everyone else is served meanwhile."""
        for address in list(store.unavailable_accounts()):
            if address not in self._closed_for_rebuild:
                self._closed_for_rebuild.add(address)
                self._end_sessions(address, "mailbox index being repaired")
        if (self._rebuilding is None or self._rebuilding.done()) and store.rebuild_due():
            self._rebuilding = asyncio.create_task(self._rebuild(store))

    async def _rebuild(self, store: Store) -> None:
        done = await store.rebuild_damaged(self._stop_indexing)
        self._closed_for_rebuild.intersection_update(store.unavailable_accounts())
        if done:
            log.info("rebuilt the index of %d account(s)", done)

    async def _expire(self) -> None:
        while True:
            days = self.settings.pop3.leave_on_server_days  # a live policy
            if not days:
                await asyncio.sleep(60)  # it may be switched on at run time
                continue
            try:
                cutoff = time.time() - days * 86400
                for acc in self.ctx.directory.list():
                    try:
                        store = await self.ctx.store.account(acc.address, acc.incarnation)
                        n = await store.pop3_expire(cutoff)
                    except StoreError as e:
                        log.warning("pop3 expire: skipped %s: %s", acc.address, e)
                        continue
                    if n:
                        log.info("pop3 expire: deleted %d messages of %s older than %d days", n, acc.address, days)
            except StoreError as e:
                log.warning("POP3 expiry run failed: %s", e)
            except Exception:
                log.exception("POP3 expiry run failed")
            await asyncio.sleep(EXPIRE_INTERVAL)

    async def _auto_expunge(self) -> None:
        while True:
            try:
                n = await self.retention.run()
                if n:
                    log.info("auto-expunge removed %d messages from Trash and Junk folders", n)
            except StoreError as e:
                log.warning("auto-expunge run failed: %s", e)
            except Exception:
                log.exception("auto-expunge run failed")
            await asyncio.sleep(RETENTION_INTERVAL)

    async def _scan_usage(self) -> None:
        try:
            await self.usage.scan_all()
        except StoreError as e:  # the store or a shared directory is out of reach
            log.warning("measuring the accounts' mail failed: %s; the console's usage figures may lag", e)
            self.usage.scanned = True
        except Exception:
            log.exception("measuring the accounts' mail failed; the console's usage figures may lag")
            self.usage.scanned = True

    # --- life cycle ----------------------------------------------------------------------
    async def start(self) -> None:
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        store = self.ctx.store
        await self._finish_deletions()
        stats = await store.recover(NEW_FILES_AT_START)
        if any(stats.values()):
            log.warning("start-up reconciliation repaired the index: %s", stats)
        for address, why in store.unavailable_accounts().items():
            log.warning("%s is unavailable until its index is rebuilt (%s)", address, why)
        self._control = await control.serve(self.settings.run_dir, self._handle_control)
        if self.settings.web.enabled:
            from ..web.serve import start_console

            try:
                self._web = await start_console(self)
            except OSError as e:
                log.error("cannot start the web console on %s: %s", self.settings.web.listen, e)
                await self.stop()
                raise StartupError(f"cannot start the web console on {self.settings.web.listen}: {e}") from None
        failed = await self.apply_switches()
        if failed:
            # Like any daemon: a configured port that cannot be bound stops the start.
            await self.stop()
            raise StartupError(f"cannot start {', '.join(f.upper() for f in failed)}: see the log above")
        self._tasks.append(asyncio.create_task(self._poll()))
        self._tasks.append(asyncio.create_task(self._expire()))
        self._tasks.append(asyncio.create_task(self._scan_usage()))
        self._tasks.append(asyncio.create_task(self._auto_expunge()))
        self._tasks.append(asyncio.create_task(store.run_background()))
        self._start_rebuilds(store)
        if store.mail_waiting():
            self._indexing = asyncio.create_task(self._index_waiting(store))

    async def _index_waiting(self, store: Store) -> None:
        """Big new/ backlogs are indexed while the server already serves; sessions see
        the messages arrive as if delivered."""
        waiting = store.mail_waiting()
        log.info("indexing %d files found in new/ folders in the background", waiting)
        t0 = time.monotonic()
        try:
            done = await store.index_waiting_mail(self._stop_indexing)
        except Exception:
            log.exception("indexing files from new/ failed; they stay there for the next start")
            return
        log.info("indexed %d of %d files from new/ folders in %.1f s", done, waiting, time.monotonic() - t0)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._web is not None:
            await self._web.stop()
            self._web = None
        self._stop_indexing.set()
        for task in (self._indexing, self._rebuilding):
            if task is not None:
                # An indexer finishes its batch (the files stay consistent) and gives up.
                with contextlib.suppress(Exception):
                    await task
        for service in list(self.listeners):
            await self._stop_service(service, "server shutting down")
        if self._delivery is not None:
            # Store writes of departing delivery sessions finish before the store closes.
            await self._delivery.drain(10.0)
        try:
            await self.ctx.store.settle()
        except Exception:
            log.exception("bringing file names up to date at shutdown failed")
        if self._control is not None:  # a worker has none: the supervisor owns both files
            self._control.close()
            (self.settings.run_dir / control.SOCKET_NAME).unlink(missing_ok=True)
            (self.settings.run_dir / "listeners.json").unlink(missing_ok=True)
        logins = metrics.LAST_LOGINS.take()
        if logins:
            with contextlib.suppress(Exception):
                self.ctx.directory.record_logins([(a, p, at, ip) for (a, p), (at, ip) in logins.items()])
        self.retention.close()
        await self.ctx.store.close()
        self.ctx.directory.close()

    async def run_forever(self) -> None:
        await self.start()
        # Long-lived start-up objects leave the collector's view, and generation 0 is
        # collected less often: a FETCH over 100,000 messages creates that many
        # short-lived tuples, and the default threshold (700) collected hundreds of times.
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopped.set)
        try:
            await self._stopped.wait()
        finally:
            log.info("stopping")
            await self.stop()


def run(settings: Settings) -> None:
    """Run the server until SIGINT/SIGTERM, with uvloop when it is installed."""
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    # Before anything is opened: a second server must change nothing of the first's.
    lock = datalock.acquire(settings.data_dir)
    faults.load_env()
    try:
        if settings.server.workers > 1:  # the supervisor holds the lock for its workers
            from .workers import supervise

            supervise(settings, loop_factory)
            return
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(Server(settings).run_forever())
    finally:
        lock.release()


def listener_file(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "listeners.json").read_text())
    return data
