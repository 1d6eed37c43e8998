"""Every core on one host: a supervisor and `[server] workers` worker processes.

The supervisor holds the data directory's lock, binds every listener and accepts; each
accepted connection is counted against the connection limits (server/limits.py) and
handed, with SCM_RIGHTS over the worker's channel, to the worker serving the fewest.
Accepting in one place keeps the per-client and total limits exact across workers (with
SO_REUSEPORT each worker would count only its own), lets a switched-off service refuse
connections at once (no socket is left listening in a worker), and loses no queued
connection when a worker dies. A worker reports each connection's end, and the
supervisor forgets those of a worker that died.

The channel carries requests both ways: the supervisor asks workers (control commands),
and the primary asks the supervisor for what its console must see of every worker (the
sessions, their counts, ending one), which the supervisor gathers from the others, each
given ASK_WAIT to answer. A console session's id carries its worker's index (see
session_id_base), so ending it reaches the worker that holds it.

Worker 0 is the primary: it alone runs start-up reconciliation (before the other workers
start), index rebuilds, indexing of new/, POP3 expiry, auto-expunge, usage scans, the
reserve file, pending account deletions, file-name sync and the web console. The others
serve connections and poll the directory and indexes like it. Changes travel between
workers on the cross-process change feed (store/crossfeed.py); the control socket is the
supervisor's, which passes each command on to every worker.

Workers are fresh interpreters (not forks), so no SQLite handle crosses a fork. A
worker that dies is started again (as soon as 0.1 s later, backing off to 10 s while it
keeps dying); SIGTERM/SIGINT stop them all, SIGHUP reloads everywhere. A worker whose
supervisor vanishes stops by itself.
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import itertools
import json
import logging
import os
import pickle
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import metrics
from ..auth.directory import SERVICES
from ..auth.factory import open_directory
from ..config import Settings, parse_listen
from ..service.session import Peer
from ..store.api import REPAIRING, Change
from ..store.crossfeed import CrossProcessFeed
from ..store.feed import ChangeFeed, LocalFeed
from . import control
from .accept import tls_failure
from .app import (
    _REFUSALS,
    BACKLOG,
    NEW_FILES_AT_START,
    POLL_INTERVAL,
    Server,
    StartupError,
    _session_factory,
)
from .connection import Connection
from .limits import ConnectionLimits, descriptor_budget
from .streams import WakingReader
from .tls import TLSError, server_context

log = logging.getLogger("letterbox.workers")

FEED_DIR = "feed"
"""Under run_dir: the workers' change-feed sockets."""
_MAX_MESSAGE = 1 << 20
_RESTART_FIRST = 0.1
_RESTART_MAX = 10.0
_STOP_WAIT = 30.0
_SMTP_REFUSAL = b"421 4.7.0 Too many connections, try again later\r\n"
ASK_WAIT = 2.0
"""Seconds a worker has to answer for the console: one that is stuck longer is left out
(the list is partial, the console never hangs)."""

# A session's id: the worker's index, how many times that worker started (mod 256), and
# the connection's number in that process. Below 2**53 (JavaScript's exact integers);
# worker 0's first life keeps the plain numbers, and a worker restarted (up to 255
# times) reuses none of its earlier lives' ids.
_INDEX_SHIFT = 45
_START_SHIFT = 37


def session_id_base(index: int, start: int) -> int:
    return index << _INDEX_SHIFT | (start % 256) << _START_SHIFT


def worker_of(session_id: int) -> int:
    """The index of the worker holding the session *session_id* names."""
    return session_id >> _INDEX_SHIFT


# --- the channel: one JSON message per packet, with at most one descriptor -----------------
def _channel_send(sock: socket.socket, msg: dict[str, Any], fd: int | None = None) -> None:
    """Send without blocking (raises BlockingIOError when the peer's queue is full)."""
    data = json.dumps(msg, separators=(",", ":")).encode()
    if fd is None:
        sock.send(data)
    else:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])


def _channel_recv(sock: socket.socket) -> tuple[dict[str, Any], socket.socket | None] | None:
    """One message and its descriptor (as a socket); None at end of file. Raises
    BlockingIOError when nothing waits."""
    data, fds, _flags, _addr = socket.recv_fds(sock, _MAX_MESSAGE, 1)
    if not data:
        for fd in fds:
            os.close(fd)
        return None
    conn = socket.socket(fileno=fds[0]) if fds else None
    try:
        msg = json.loads(data)
        if not isinstance(msg, dict):
            raise ValueError("not an object")
    except ValueError:
        if conn is not None:
            conn.close()
        log.error("ignored a malformed message on a worker channel")
        return {}, None
    return msg, conn


# --- the supervisor ---------------------------------------------------------------------------
@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes]
    chan: socket.socket
    started: float
    ready: asyncio.Future[dict[str, Any]]
    conns: dict[int, tuple[str, str]] = field(default_factory=dict)
    """token -> (service, client ip) of the connections it serves."""
    replies: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    alive: bool = True


@dataclass
class _Listening:
    label: str
    service: str
    sock: socket.socket
    task: asyncio.Task[None] | None = None


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.n = settings.server.workers
        self.run_dir = settings.run_dir
        self.directory = open_directory(settings)
        server = settings.server
        self.limits = ConnectionLimits(server.max_connections_per_ip, descriptor_budget(server.max_connections))
        # SMTP from the Internet has the same per-client limit on its own (LMTP none).
        self.smtp_limits = ConnectionLimits(server.max_connections_per_ip, 1 << 30)
        self.workers: dict[int, _Worker] = {}
        self.listening: dict[str, list[_Listening]] = {}
        self.web: str | None = None
        self.bound: dict[str, list[str]] = {}
        self._listener_text = ""
        self._tokens = itertools.count(1)
        self._ids = itertools.count(1)
        self._failures: dict[int, int] = {}
        self._stopping = False
        self._repairing: set[str] = set()
        self._stopped = asyncio.Event()
        self._control: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._answering: set[asyncio.Task[None]] = set()
        self._starts: dict[int, int] = {}
        """Worker index -> how many times it was started."""

    # --- workers ---------------------------------------------------------------------------
    def _spawn(self, index: int, role: str) -> _Worker:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            proc = subprocess.Popen(
                [sys.executable, "-c", "from letterbox.server.workers import worker_main; worker_main()",
                 str(index), str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
            )
        start = self._starts.get(index, 0)
        self._starts[index] = start + 1
        mine.sendall(pickle.dumps((self.settings, role, self.n, start)))
        mine.setblocking(False)
        loop = asyncio.get_running_loop()
        w = _Worker(index, proc, mine, time.monotonic(), loop.create_future())
        self.workers[index] = w
        loop.add_reader(mine.fileno(), self._on_message, w)
        log.info("worker %d started (pid %d, %s)", index, proc.pid, role)
        return w

    def _on_message(self, w: _Worker) -> None:
        while True:
            try:
                got = _channel_recv(w.chan)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                got = None
            if got is None:
                self._lost(w)
                return
            msg, conn = got
            if conn is not None:  # workers send no descriptors
                conn.close()
            if "closed" in msg:
                self._release(w, int(msg["closed"]))
            elif "reply" in msg:
                fut = w.replies.pop(int(msg["reply"]), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg.get("result") or {})
            elif "ask" in msg:
                task = asyncio.create_task(self._answer(w, msg))
                self._answering.add(task)
                task.add_done_callback(self._answering.discard)
            elif "ready" in msg and not w.ready.done():
                w.ready.set_result(msg)
            elif "reload" in msg:
                self._tasks.append(asyncio.create_task(self.reload()))
            elif "damaged" in msg:
                address = str(msg["damaged"])
                if address not in self._repairing:
                    log.warning("worker %d found the index of %s damaged; the primary rebuilds it", w.index, address)
                    self._tasks.append(asyncio.create_task(self._rebuild(address)))

    def _release(self, w: _Worker, token: int) -> None:
        entry = w.conns.pop(token, None)
        if entry is None:
            return
        service, ip = entry
        if service in ("imap", "pop3"):
            self.limits.release(ip)
        elif service == "smtp":
            self.smtp_limits.release(ip)

    def _lost(self, w: _Worker) -> None:
        """The worker's channel closed: it exited (or is about to)."""
        if not w.alive:
            return
        w.alive = False
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            loop.remove_reader(w.chan.fileno())
        w.chan.close()
        for token in list(w.conns):
            self._release(w, token)
        for fut in w.replies.values():
            if not fut.done():
                fut.set_result({"ok": False, "error": "the worker stopped"})
        if not w.ready.done():
            w.ready.set_exception(StartupError(f"worker {w.index} exited while starting: see the log above"))
            w.ready.exception()
        if not self._stopping:
            self._tasks = [t for t in self._tasks if not t.done()]
            self._tasks.append(asyncio.create_task(self._restart(w)))

    async def _restart(self, w: _Worker) -> None:
        code = await asyncio.to_thread(w.proc.wait)
        quick = time.monotonic() - w.started < 10.0
        failures = self._failures.get(w.index, 0) + 1 if quick else 1
        self._failures[w.index] = failures
        delay = min(_RESTART_MAX, _RESTART_FIRST * 2 ** (failures - 1))
        log.error("worker %d (pid %d) exited with status %s; starting it again in %.1f s",
                  w.index, w.proc.pid, code, delay)
        await asyncio.sleep(delay)
        if self._stopping:
            return
        fresh = self._spawn(w.index, "primary" if w.index == 0 else "secondary")
        try:
            await fresh.ready
        except StartupError as e:
            log.error("%s", e)  # its own _lost() schedules the next try
            return
        self._write_listener_file()

    async def _ask(self, w: _Worker, cmd: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        if not w.alive or not w.ready.done():
            return {"ok": False, "error": "the worker is not running"}
        n = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        w.replies[n] = fut
        try:
            _channel_send(w.chan, {"cmd": cmd, "id": n})
            return await asyncio.wait_for(fut, timeout)
        except (OSError, TimeoutError) as e:
            return {"ok": False, "error": f"worker {w.index} did not answer: {e or 'timed out'}"}
        finally:
            w.replies.pop(n, None)

    async def _ask_all(
        self, cmd: dict[str, Any], skip: int | None = None, timeout: float = 60.0,
    ) -> list[dict[str, Any]]:
        targets = [w for i, w in sorted(self.workers.items()) if i != skip]
        return list(await asyncio.gather(*(self._ask(w, cmd, timeout) for w in targets)))

    async def _answer(self, w: _Worker, msg: dict[str, Any]) -> None:
        """A worker's request (the primary's console): answered on its channel."""
        cmd = msg.get("ask")
        try:
            result = await self._handle_ask(w, cmd if isinstance(cmd, dict) else {})
        except Exception as e:
            log.exception("worker %d's request %r failed", w.index, cmd)
            result = {"ok": False, "error": str(e)}
        if w.alive:
            with contextlib.suppress(OSError):  # a full queue: the asker times out instead
                _channel_send(w.chan, {"answer": msg.get("id"), "result": result})

    async def _handle_ask(self, w: _Worker, cmd: dict[str, Any]) -> dict[str, Any]:
        """What the other workers hold; one that does not answer in time is left out."""
        what = cmd.get("cmd")
        if what in ("sessions", "session_counts"):
            replies = await self._ask_all(cmd, skip=w.index, timeout=ASK_WAIT)
            missing = [r.get("error") for r in replies if not r.get("ok")]
            if missing:
                log.info("the console's %s leave out a worker: %s", what, "; ".join(map(str, missing)))
            answered = [r for r in replies if r.get("ok")]
            if what == "sessions":
                return {"ok": True, "sessions": [s for r in answered for s in r.get("sessions") or []]}
            counts: dict[str, int] = {}
            for r in answered:
                for service, n in (r.get("counts") or {}).items():
                    counts[service] = counts.get(service, 0) + int(n)
            return {"ok": True, "counts": counts}
        if what == "disconnect":
            target = self.workers.get(worker_of(int(cmd.get("id", -1))))
            if target is None or target is w:
                return {"ok": True, "found": False}
            reply = await self._ask(target, cmd, ASK_WAIT)
            if not reply.get("ok"):
                return reply
            return {"ok": True, "found": bool(reply.get("found"))}
        return {"ok": False, "error": f"unknown request {what!r}"}

    # --- listeners -------------------------------------------------------------------------
    def switches(self) -> dict[str, bool]:
        overrides = self.directory.switches()
        return {s: overrides.get(s, bool(getattr(self.settings, s).enabled)) for s in SERVICES}

    def _bind(self, host: str, port: int) -> socket.socket:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(BACKLOG)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _start_service(self, service: str) -> bool:
        section = getattr(self.settings, service)
        made: list[_Listening] = []
        try:
            for addr in section.listen:
                made.append(_Listening(service, service, self._bind(*parse_listen(addr))))
            if service in ("imap", "pop3") and self.settings.tls.cert is not None:
                for addr in section.tls_listen:
                    made.append(_Listening(service + "s", service, self._bind(*parse_listen(addr))))
            if service == "lmtp" and section.unix_socket:
                path = self.run_dir / section.unix_socket
                path.unlink(missing_ok=True)
                usock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                made.append(_Listening("lmtp_unix", service, usock))
                usock.bind(str(path))
                path.chmod(0o660)
                usock.listen(BACKLOG)
                usock.setblocking(False)
        except OSError as e:
            for one in made:
                one.sock.close()
            log.error("cannot start %s: %s", service.upper(), e)
            return False
        for one in made:
            one.task = asyncio.create_task(self._accept_loop(one))
            for name in _names(one.sock):
                log.info("%s listening on %s", one.label.upper().replace("_UNIX", " (unix)"), name)
        self.listening[service] = made
        return True

    def _stop_service(self, service: str) -> None:
        for one in self.listening.pop(service, []):
            if one.task is not None:
                one.task.cancel()
            one.sock.close()
        log.info("%s stopped", service.upper())

    def apply_switches(self) -> list[str]:
        failed = []
        for service, want in self.switches().items():
            running = service in self.listening
            if want and not running:
                if not self._start_service(service):
                    failed.append(service)
            elif not want and running:
                self._stop_service(service)
        self._write_listener_file()
        return failed

    def _write_listener_file(self) -> None:
        out: dict[str, list[str]] = {}
        for made in self.listening.values():
            for one in made:
                out.setdefault(one.label, []).extend(_names(one.sock))
        if self.web is not None:
            out["web"] = [self.web]
        self.bound = out
        pids = [w.proc.pid for _, w in sorted(self.workers.items()) if w.alive]
        text = json.dumps({"pid": os.getpid(), "listeners": out, "workers": pids}, indent=2)
        if text == self._listener_text:
            return
        path = self.run_dir / "listeners.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        self._listener_text = text

    async def _accept_loop(self, one: _Listening) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(one.sock)
            except asyncio.CancelledError:
                raise
            except OSError as e:  # out of descriptors, say: wait a moment, go on
                log.warning("%s: accepting a connection failed: %s", one.label, e)
                await asyncio.sleep(0.1)
                continue
            with conn:
                self._dispatch(one, conn, peer)

    def _dispatch(self, one: _Listening, conn: socket.socket, peer: Any) -> None:
        """Count the connection (or refuse it) and hand it to the least busy worker; the
        caller closes this process's copy."""
        service = one.service
        ip, port = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else ("", 0)
        limits = self.limits if service in ("imap", "pop3") else self.smtp_limits if service == "smtp" else None
        if limits is not None and limits.admit(service, ip) is not None:
            refusal = _SMTP_REFUSAL if service == "smtp" else None if one.label.endswith("s") else _REFUSALS[service]
            if refusal is not None:
                with contextlib.suppress(OSError):
                    conn.send(refusal)
            return
        token = next(self._tokens)
        msg = {"conn": token, "service": service, "tls": one.label in ("imaps", "pop3s"), "peer": [ip, port]}
        for w in sorted((w for w in self.workers.values() if w.alive and w.ready.done()), key=lambda w: len(w.conns)):
            try:
                _channel_send(w.chan, msg, conn.fileno())
            except OSError:  # its queue is full (it is stuck) or it is going: the next one
                continue
            w.conns[token] = (service, ip)
            return
        log.warning("%s connection from %s dropped: no worker is running", service, ip)
        if limits is not None:
            limits.release(ip)

    # --- control ---------------------------------------------------------------------------
    async def _handle_control(self, cmd: dict[str, Any]) -> dict[str, Any]:
        what = cmd.get("cmd")
        if what == "reload":
            await self.reload()
            return {"ok": True, "switches": self.switches(), "listeners": self.bound}
        if what == "status":
            replies = await self._ask_all({"cmd": "status"})
            sessions: dict[str, int] = {}
            per_worker = []
            for (i, w), r in zip(sorted(self.workers.items()), replies, strict=True):
                for s, n in (r.get("sessions") or {}).items():
                    sessions[s] = sessions.get(s, 0) + int(n)
                per_worker.append({"index": i, "pid": w.proc.pid, "alive": w.alive, "feed": r.get("feed") or {},
                                   "sessions": r.get("sessions") or {}, "connections": len(w.conns)})
            return {"ok": True, "switches": self.switches(), "listeners": self.bound,
                    "sessions": sessions, "pid": os.getpid(), "workers": per_worker}
        if what == "repair":
            return await self._repair(cmd)
        if what in ("changed", "acl"):
            # Every worker's sessions hear of it; a delivery outcome is counted once, by
            # the primary (whose /metrics the console serves).
            quiet = {k: v for k, v in cmd.items() if k != "outcome"}
            await asyncio.gather(*(self._ask(w, cmd if i == 0 else quiet) for i, w in sorted(self.workers.items())))
            return {"ok": True}
        primary = self.workers.get(0)
        if primary is None:
            return {"ok": False, "error": "the primary worker is not running"}
        return await self._ask(primary, cmd)

    async def reload(self) -> None:
        """SIGHUP or `reload`: apply the directory here (switches) and in every worker."""
        self.directory.changed()
        self.apply_switches()
        await self._ask_all({"cmd": "reload"})

    async def _repair(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """The other workers close the account (letting go of it) while the primary
        repairs it, then may open it again."""
        address = str(cmd.get("address", ""))
        primary = self.workers.get(0)
        if primary is None or not primary.alive:
            return {"ok": False, "error": "the primary worker is not running; try again shortly"}
        self._repairing.add(address)
        try:
            await self._ask_all({"cmd": "close_account", "address": address}, skip=0)
            reply = await self._ask(primary, cmd, timeout=3600.0)
            if not reply.get("ok"):
                log.error("repairing %s failed: %s", address, reply.get("error"))
            return reply
        finally:
            await self._ask_all({"cmd": "reopen_account", "address": address}, skip=0)
            self._repairing.discard(address)

    async def _rebuild(self, address: str) -> None:
        await self._repair({"cmd": "repair", "address": address, "rebuild": True})

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            try:
                if self.directory.changed():
                    self.apply_switches()
            except Exception:
                log.exception("checking the directory for switched services failed")

    # --- life cycle ------------------------------------------------------------------------
    async def start(self) -> None:
        tls = self.settings.tls
        if tls.cert is not None and tls.key is not None:
            # A bad certificate is told here in one line, not by each worker's log.
            server_context(self.settings.resolve(tls.cert), self.settings.resolve(tls.key), tls.min_version)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / FEED_DIR).mkdir(exist_ok=True)
        primary = self._spawn(0, "first")  # start-up housekeeping before anyone serves
        ready = await primary.ready
        self.web = ready.get("web")
        others = [self._spawn(i, "secondary") for i in range(1, self.n)]
        for w in others:
            await w.ready
        failed = self.apply_switches()
        if failed:
            raise StartupError(f"cannot start {', '.join(f.upper() for f in failed)}: see the log above")
        self._control = await control.serve(self.run_dir, self._handle_control)
        self._tasks.append(asyncio.create_task(self._poll()))
        log.info("serving with %d workers", self.n)

    async def stop(self) -> None:
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        for service in list(self.listening):
            self._stop_service(service)
        if self._control is not None:
            self._control.close()
        for w in self.workers.values():
            if w.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(signal.SIGTERM)
        for w in self.workers.values():
            try:
                await asyncio.to_thread(w.proc.wait, _STOP_WAIT)
            except subprocess.TimeoutExpired:
                log.error("worker %d did not stop in %.0f s; killing it", w.index, _STOP_WAIT)
                w.proc.kill()
                await asyncio.to_thread(w.proc.wait)
            if w.alive:
                w.alive = False
                w.chan.close()
        (self.run_dir / control.SOCKET_NAME).unlink(missing_ok=True)
        (self.run_dir / "listeners.json").unlink(missing_ok=True)
        self.directory.close()

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopped.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._tasks.append(asyncio.create_task(self.reload())))
        try:
            start = asyncio.create_task(self.start())
            stopped = asyncio.create_task(self._stopped.wait())
            await asyncio.wait({start, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if start.done():
                start.result()  # a failed start raises here
                await stopped
            else:
                start.cancel()
        finally:
            log.info("stopping")
            await self.stop()


def supervise(settings: Settings, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None) -> None:
    """Run the supervisor and its workers until SIGINT/SIGTERM (the caller holds the
    data directory's lock)."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(Supervisor(settings).run_forever())


def _names(sock: socket.socket) -> list[str]:
    name = sock.getsockname()
    if isinstance(name, str):
        return [name]
    if ":" in name[0]:
        return [f"[{name[0]}]:{name[1]}"]
    return [f"{name[0]}:{name[1]}"]


# --- a worker -----------------------------------------------------------------------------------
class WorkerServer(Server):
    """The Server, serving the connections its supervisor hands it; housekeeping only in
    the primary (worker 0)."""

    def __init__(
        self, settings: Settings, index: int, workers: int, role: str, chan: socket.socket, start: int = 0,
    ) -> None:
        super().__init__(settings)
        self.index = index
        self.id_base = session_id_base(index, start)
        self.role = role
        self.primary = role in ("first", "primary")
        self.chan = chan
        feeds: list[CrossProcessFeed] = []

        def cross(local: ChangeFeed) -> ChangeFeed:
            assert isinstance(local, LocalFeed)
            feeds.append(CrossProcessFeed(settings.run_dir / FEED_DIR, index, workers, local))
            return feeds[0]

        # Before any session subscribes (the usage tracker watches the local feed already).
        self.ctx.store.serve_with_workers(self.primary, cross)
        self.feed: CrossProcessFeed | None = feeds[0] if feeds else None
        """None when the store's own feed crosses processes (PostgreSQL's LISTEN/NOTIFY)."""
        self._factories: dict[str, Callable[[], asyncio.Protocol]] = {}
        self._reported: set[str] = set()
        self._unsent: collections.deque[dict[str, Any]] = collections.deque()
        self._handed: set[asyncio.Task[None]] = set()
        self._asks = itertools.count(1)
        self._answers: dict[int, asyncio.Future[dict[str, Any]]] = {}

    # The supervisor listens; a worker's services are only on or off.
    async def _start_service(self, service: str) -> bool:
        if service in ("lmtp", "smtp"):
            delivery = self._delivery_module()
            make = delivery.lmtp_protocol_factory if service == "lmtp" else delivery.smtp_protocol_factory
            self._factories[service] = make(self.ctx)
        self.listeners[service] = []
        return True

    def _write_listener_file(self) -> None:
        self.bound = {}

    async def _finish_deletions(self) -> None:
        if self.primary:
            await super()._finish_deletions()
            return
        for pending in self.ctx.directory.pending_deletions():
            self._end_sessions(pending.address, "account deleted by the administrator")

    async def directory_changed(self) -> None:
        """The console (in the primary) changed the directory: every worker applies it
        now, as for a CLI change."""
        await super().directory_changed()
        self._tell({"reload": True})

    async def _directory_chore(self) -> None:
        # The other workers write the directory every few seconds (last logins, usage),
        # so it "changes" all the time: the credential cache is kept (its keys cover the
        # stored hash, and each login reads the account afresh, enabled or not); an
        # administrator's change comes with a reload, which flushes it.
        if self.ctx.directory.changed():
            self._accounts_changed = True
            self.refresh_policy()
            await self.apply_switches()

    async def _store_chore(self) -> None:
        if self.primary:
            await super()._store_chore()
        else:
            store = self.ctx.store
            store.housekeeping()
            # A damaged index found here is rebuilt by the primary, with every worker
            # letting go of the account meanwhile (as for `letterbox repair`).
            unavailable = store.unavailable_accounts()
            for address, why in unavailable.items():
                if why != REPAIRING and address not in self._reported:
                    self._reported.add(address)
                    self._end_sessions(address, "mailbox index being repaired")
                    self._tell({"damaged": address})
            self._reported.intersection_update(unavailable)

    async def _handle_control(self, cmd: dict[str, Any]) -> dict[str, Any]:
        what = cmd.get("cmd")
        store = self.ctx.store
        if what == "close_account":
            address = str(cmd.get("address", ""))
            self._end_sessions(address, "mailbox being repaired by the administrator")
            store.close_account(address)
            return {"ok": True}
        if what == "reopen_account":
            store.reopen_account(str(cmd.get("address", "")))
            return {"ok": True}
        # For the primary's console, through the supervisor.
        of = None if cmd.get("address") is None else str(cmd["address"])
        if what == "sessions":
            return {"ok": True, "sessions": self.local_sessions(of)}
        if what == "session_counts":
            return {"ok": True, "counts": self.local_session_counts()}
        if what == "disconnect":
            found = self.local_disconnect(int(cmd.get("id", -1)), str(cmd.get("reason", "")), of)
            return {"ok": True, "found": found}
        reply = await super()._handle_control(cmd)
        if what == "status":
            feed = self.feed
            if feed is not None:
                reply["feed"] = {"sent": feed.sent, "received": feed.received, "dropped": feed.dropped}
        return reply

    # --- every worker's sessions, for the console ---------------------------------------------
    async def sessions(self, address: str | None = None) -> list[dict[str, Any]]:
        answer = await self._ask_supervisor({"cmd": "sessions", "address": address})
        found = self.local_sessions(address) + list(answer.get("sessions") or [])
        return sorted(found, key=lambda s: s["since"])

    async def session_counts(self) -> dict[str, int]:
        counts = self.local_session_counts()
        answer = await self._ask_supervisor({"cmd": "session_counts"})
        for service, n in (answer.get("counts") or {}).items():
            counts[service] = counts.get(service, 0) + int(n)
        return counts

    async def disconnect(self, session_id: int, reason: str, address: str | None = None) -> bool:
        if worker_of(session_id) == self.index:
            return self.local_disconnect(session_id, reason, address)
        answer = await self._ask_supervisor(
            {"cmd": "disconnect", "id": session_id, "reason": reason, "address": address})
        return bool(answer.get("found"))

    async def _ask_supervisor(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """The supervisor's answer, or a failure when it does not come in time (it
        waits ASK_WAIT for the other workers; this waits a little longer)."""
        n = next(self._asks)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers[n] = fut
        try:
            self._tell({"ask": cmd, "id": n})
            return await asyncio.wait_for(fut, ASK_WAIT + 1.0)
        except TimeoutError:
            log.warning("worker %d: no answer from the supervisor to %s", self.index, cmd.get("cmd"))
            return {"ok": False, "error": "the supervisor did not answer"}
        finally:
            self._answers.pop(n, None)

    # --- changes made in another worker --------------------------------------------------------
    def _on_remote(self, change: Change) -> None:
        self.ctx.store.changed_elsewhere(change)
        if self.primary and change.kind == "flags":
            task = asyncio.create_task(self._names_of(change))
            self._handed.add(task)
            task.add_done_callback(self._handed.discard)

    async def _names_of(self, change: Change) -> None:
        account = self.ctx.directory.get(change.account)
        if account is None:
            return
        with contextlib.suppress(Exception):
            await self.ctx.store.flags_changed_elsewhere(change.account, account.incarnation, change.mailbox_id)

    def _on_account(self, address: str) -> None:
        task = asyncio.create_task(self.ctx.store.notify_external(address))
        self._handed.add(task)
        task.add_done_callback(self._handed.discard)

    # --- life cycle ------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        store = self.ctx.store
        if self.feed is not None:
            self.feed.on_account = self._on_account
            self.feed.on_remote = self._on_remote
            self.feed.open(loop)
        if self.primary:
            await self._finish_deletions()
            if self.role == "first":
                stats = await store.recover(NEW_FILES_AT_START)
                if any(stats.values()):
                    log.warning("start-up reconciliation repaired the index: %s", stats)
                for address, why in store.unavailable_accounts().items():
                    log.warning("%s is unavailable until its index is rebuilt (%s)", address, why)
            else:
                store.housekeeping()  # the reserve, kept by the primary
            if self.settings.web.enabled:
                from ..web.serve import start_console

                try:
                    self._web = await start_console(self)
                except OSError as e:
                    raise StartupError(f"cannot start the web console on {self.settings.web.listen}: {e}") from None
        await self.apply_switches()
        self._tasks.append(asyncio.create_task(self._poll()))
        if self.primary:
            self._tasks.append(asyncio.create_task(self._expire()))
            self._tasks.append(asyncio.create_task(self._scan_usage()))
            self._tasks.append(asyncio.create_task(self._auto_expunge()))
            self._tasks.append(asyncio.create_task(store.run_background()))
            self._start_rebuilds(store)
            if store.mail_waiting():
                self._indexing = asyncio.create_task(self._index_waiting(store))
        loop.add_reader(self.chan.fileno(), self._on_channel)
        web = self._web.address if self._web is not None else None
        _channel_send(self.chan, {"ready": True, "pid": os.getpid(), "web": web})

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.chan.fileno())
        await super().stop()
        if self.feed is not None:
            self.feed.close()

    def _on_channel(self) -> None:
        while True:
            try:
                got = _channel_recv(self.chan)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                got = None
            if got is None:  # the supervisor is gone: stop serving
                log.error("worker %d: the supervisor went away; stopping", self.index)
                asyncio.get_running_loop().remove_reader(self.chan.fileno())
                for fut in self._answers.values():
                    if not fut.done():
                        fut.set_result({"ok": False, "error": "the supervisor went away"})
                self._stopped.set()
                return
            msg, conn = got
            if "answer" in msg:
                if conn is not None:
                    conn.close()
                n = msg["answer"]
                waiting = self._answers.pop(n, None) if isinstance(n, int) else None
                if waiting is not None and not waiting.done():
                    waiting.set_result(msg.get("result") or {})
                continue
            if conn is not None and "conn" in msg:
                task = asyncio.create_task(self._serve_handed(msg, conn))
            elif "cmd" in msg:
                task = asyncio.create_task(self._command(msg))
            else:
                if conn is not None:
                    conn.close()
                continue
            self._handed.add(task)
            task.add_done_callback(self._handed.discard)

    def _tell(self, msg: dict[str, Any]) -> None:
        """To the supervisor, in order; what its queue cannot take yet waits here (at
        most one message per connection and command this worker has)."""
        if not self._unsent:
            try:
                _channel_send(self.chan, msg)
                return
            except BlockingIOError:
                asyncio.get_running_loop().add_writer(self.chan.fileno(), self._send_unsent)
            except OSError:
                return  # the supervisor is gone
        self._unsent.append(msg)

    def _send_unsent(self) -> None:
        while self._unsent:
            try:
                _channel_send(self.chan, self._unsent[0])
            except BlockingIOError:
                return
            except OSError:
                self._unsent.clear()
                break
            self._unsent.popleft()
        asyncio.get_running_loop().remove_writer(self.chan.fileno())

    async def _command(self, msg: dict[str, Any]) -> None:
        cmd = msg.get("cmd")
        try:
            reply = await self._handle_control(cmd if isinstance(cmd, dict) else {})
        except Exception as e:
            log.exception("control command %r failed", cmd)
            reply = {"ok": False, "error": str(e)}
        self._tell({"reply": msg.get("id"), "result": reply})

    async def _serve_handed(self, msg: dict[str, Any], sock: socket.socket) -> None:
        token = msg.get("conn")
        try:
            service = str(msg.get("service"))
            peer = msg.get("peer") or ["", 0]
            ip, port = str(peer[0]), int(peer[1])
            # The directory decides, not this worker's view of it, which may lag the
            # supervisor's either way by a poll.
            if not self.switches().get(service, False):  # switched off since it was accepted
                sock.close()
                return
            if service not in self.listeners:
                await self._start_service(service)
            if service in ("imap", "pop3"):
                await self._serve_session(service, sock, ip, port, bool(msg.get("tls")))
            else:
                await self._serve_delivery(service, sock)
        except Exception:
            log.exception("serving a %s connection failed", msg.get("service"))
            sock.close()
        finally:
            self._tell({"closed": token})

    async def _serve_session(self, service: str, sock: socket.socket, ip: str, port: int, implicit_tls: bool) -> None:
        loop = asyncio.get_running_loop()
        tls = self.ctx.tls if implicit_tls else None
        reader = WakingReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, sock, ssl=tls,
                ssl_handshake_timeout=self.settings.server.tls_handshake_timeout if tls is not None else None,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError, EOFError) as e:
            log.info("%s TLS handshake with %s failed: %s", service, ip, tls_failure(e))
            sock.close()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        metrics.CONNECTIONS.labels(service).inc()
        session = _session_factory(service)(self.ctx, Peer(ip, port, implicit_tls), implicit_tls)
        conn = Connection(
            session, reader, writer, self.ctx.tls, self._connection_done,
            login_timeout=self.settings.server.login_timeout,
            handshake_timeout=self.settings.server.tls_handshake_timeout,
        )
        self.connections[service].add(conn)
        await conn.run()

    async def _serve_delivery(self, service: str, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        make = self._factories[service]

        def tracked() -> asyncio.Protocol:
            proto = make()
            lost = proto.connection_lost

            def connection_lost(exc: Exception | None) -> None:
                try:
                    lost(exc)
                finally:
                    if not done.done():
                        done.set_result(None)

            proto.connection_lost = connection_lost  # type: ignore[method-assign]
            return proto

        await loop.connect_accepted_socket(tracked, sock)
        await done


def worker_main() -> None:
    """Entry point of a worker process: `worker_main()` with argv [index, channel fd]."""
    from ..store import faults

    index, fd = int(sys.argv[1]), int(sys.argv[2])
    chan = socket.socket(fileno=fd)
    settings, role, workers, start = pickle.loads(chan.recv(_MAX_MESSAGE))
    chan.setblocking(False)
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format=f"%(asctime)s %(levelname)s %(name)s [worker {index}]: %(message)s",
    )
    faults.load_env()
    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(WorkerServer(settings, index, workers, role, chan, start).run_forever())
    except (StartupError, TLSError) as e:
        log.error("%s", e)
        sys.exit(1)
    except KeyboardInterrupt:
        pass
