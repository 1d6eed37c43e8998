"""Start and stop the servers under test, each in its own temporary folder.

Both run on 127.0.0.1 with ephemeral ports. CPU time is read from /proc: a process's own
user+system time plus that of the children it has reaped (cutime/cstime), summed over the
process and its living descendants. Dovecot forks a process per login, per LMTP, POP3
and IMAP session and for auth; the master reaps them, so their time lands in its
cutime/cstime. Memory is summed the same way over the living processes.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- CPU accounting ----------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) is in parentheses and may itself contain spaces or ')'.
    return raw[raw.rindex(")") + 2 :].split()


def _children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None:
            continue
        out.setdefault(int(fields[1]), []).append(int(entry))
    return out


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) seconds of *pid*, its living descendants and all reaped children."""
    children = _children_map()
    user = system = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        fields = _stat_fields(p)
        if fields is not None:
            # After "(comm) ": state ppid ... utime(12th) stime cutime cstime.
            utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
            user += utime + cutime
            system += stime + cstime
        stack.extend(children.get(p, ()))
    return user / CLK_TCK, system / CLK_TCK


def postgres_backends(database: str) -> list[int]:
    """The PostgreSQL server processes serving *database* on this machine, found by their
    process titles ("postgres: [CLUSTER: ]USER DATABASE HOST(PORT) STATE"): the work a front end asks
    of PostgreSQL is done there, not in the front end."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            title = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        words = title.split()
        if words[:1] == ["postgres:"] and database in words[2:4]:
            pids.append(int(entry))
    return pids


def memory_kib(pid: int) -> dict[str, int]:
    """RSS and PSS in KiB, summed over *pid* and its living descendants.

    RSS counts pages shared between processes (Dovecot's code, its mmapped indexes) once
    per process; PSS splits each shared page among the processes sharing it.
    """
    children = _children_map()
    rss = pss = procs = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        stack.extend(children.get(p, ()))
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        procs += 1
        for line in text.splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return {"rss_kib": rss, "pss_kib": pss, "processes": procs}


def _tree(pid: int) -> list[int]:
    children = _children_map()
    out: list[int] = []
    stack = [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(children.get(p, ()))
    return out


def _status_kib(pid: int, field: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def rss_now_kib(pid: int) -> tuple[int, int]:
    """(VmRSS summed over *pid* and its living descendants in KiB, process count): cheap
    enough to sample several times a second."""
    total = procs = 0
    for p in _tree(pid):
        kib = _status_kib(p, "VmRSS")
        if kib is not None:
            total += kib
            procs += 1
    return total, procs


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM of *pid* and its descendants (clear_refs 5, Linux 4.0+); False if not allowed."""
    ok = True
    for p in _tree(pid):
        try:
            Path(f"/proc/{p}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


def peak_rss_kib(pid: int) -> int | None:
    """VmHWM of *pid*: its peak resident memory since start or the last reset_peak_rss()."""
    return _status_kib(pid, "VmHWM")


def link_or_copy(src: Path, dest: Path) -> None:
    """Message files are never rewritten in place, so servers may share one inode."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not open port {port}:\n{_tail(log)}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class BenchServer:
    name = "?"
    lmtp_port = 0
    pop3_port = 0
    imap_port = 0
    imaps_port = 0
    """Implicit-TLS IMAP, only while set_tls() has given a certificate (else 0)."""
    proc: subprocess.Popen[bytes] | None = None
    start_s = 0.0
    """Seconds the last start() took until the server accepted connections."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root / "server.log"
        self.tls: tuple[Path, Path] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the server so far."""
        return cpu_seconds(self.pid)

    def memory(self) -> dict[str, int]:
        return memory_kib(self.pid)

    def set_tls(self, pair: tuple[Path, Path] | None) -> None:
        """Certificate and key for an IMAPS listener (None: none); takes effect at the next start."""
        self.tls = pair

    def ports(self, kind: str) -> list[int]:
        """Every port serving *kind* (lmtp, pop3, imap, imaps): one, or one per front end."""
        port: int = getattr(self, f"{kind}_port")
        return [port]

    def import_messages(self, user: str, sources: list[Path]) -> None:
        """Put message files into *user*'s INBOX while the server is stopped, as another
        delivery agent would; the server indexes them in its own way."""
        raise NotImplementedError

    def add_users(self, users: list[str], password: str) -> None:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> None:
        raise NotImplementedError

    def _terminate(self, timeout: float = 20.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        self._terminate()

    def version(self) -> str:
        return ""


# --- Letterbox ---------------------------------------------------------------------------

LETTERBOX_CONFIG = """\
[server]
hostname = "bench.localhost"
data_dir = "data"
run_dir = "run"
log_level = "info"
# Every client connects from 127.0.0.1; the IDLE run holds thousands of sessions.
max_connections_per_ip = 10000
workers = {workers}
{tls}
[imap]
listen = ["127.0.0.1:0"]
tls_listen = [{imaps}]

[pop3]
listen = ["127.0.0.1:0"]
tls_listen = []

[lmtp]
listen = ["127.0.0.1:0"]

[smtp]
enabled = false

[web]
enabled = {web}
listen = "127.0.0.1:0"
{store}"""


class Letterbox(BenchServer):
    """`letterbox serve` with its defaults apart from ports and the per-IP limit."""

    name = "Letterbox"

    web = False
    """Serve the web console too (off unless a workload measures it)."""
    web_url = ""

    def __init__(self, root: Path, workers: int = 1, dsn: str | None = None, name: str | None = None) -> None:
        super().__init__(root)
        self.workers = workers
        self.dsn = dsn
        """A PostgreSQL database to keep the mail in (None: the embedded Maildir store)."""
        if workers > 1:  # side by side with a Letterbox of one process (bench/run.py --workers)
            self.name = f"Letterbox {workers}w"
        if name is not None:
            self.name = name
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / "letterbox.toml"
        self.configure()

    def configure(self) -> None:
        """(Re)write the config; takes effect at the next start."""
        tls = imaps = ""
        if self.tls is not None:
            tls = f'\n[tls]\ncert = "{self.tls[0]}"\nkey = "{self.tls[1]}"\n'
            imaps = '"127.0.0.1:0"'
        store = f'\n[store]\nbackend = "postgresql"\ndsn = "{self.dsn}"\n' if self.dsn else ""
        self.config.write_text(LETTERBOX_CONFIG.format(tls=tls, imaps=imaps, web=str(self.web).lower(),
                                                       workers=self.workers, store=store))

    def set_tls(self, pair: tuple[Path, Path] | None) -> None:
        super().set_tls(pair)
        self.configure()

    def add_users(self, users: list[str], password: str) -> None:
        # The directory API is what `letterbox user add` uses; one hash serves every
        # account (same password) so set-up does not spend seconds in argon2.
        from letterbox.auth.directory import Directory
        from letterbox.auth.passwords import hash_password
        from letterbox.config import load
        from letterbox.store.maildir import MaildirStore

        settings = load(self.config)
        hashed = hash_password(password)
        directory = Directory(settings.data_dir / "accounts.sqlite")
        store = None if self.dsn else MaildirStore(settings.data_dir / "mail")
        try:
            for u in users:
                if directory.get(u) is None:
                    directory.add(u, hashed, ("imap", "pop3"))
                    account = directory.get(u)
                    # The folder is the account's (an unowned one may be an earlier
                    # account's mail, which the server would put aside at start). On
                    # PostgreSQL the first front end to open the account claims it.
                    if store is not None:
                        store.account_sync(u, account.incarnation if account is not None else None)
        finally:
            directory.close()
            if store is not None:
                import asyncio

                asyncio.run(store.close())

    def incarnations(self) -> dict[str, str]:
        """Each account's incarnation in this server's directory."""
        from letterbox.auth.directory import Directory
        from letterbox.config import load

        directory = Directory(load(self.config).data_dir / "accounts.sqlite")
        try:
            return {a.address: a.incarnation for a in directory.list()}
        finally:
            directory.close()

    def adopt_incarnations(self, incarnations: dict[str, str]) -> None:
        """Give the accounts the incarnations another front end's directory has: front ends
        on one database share the mail, not the directory, and an account opened under
        another incarnation is a new account whose predecessor's mail is set aside."""
        import sqlite3

        from letterbox.config import load

        db = sqlite3.connect(load(self.config).data_dir / "accounts.sqlite", isolation_level=None)
        try:
            db.executemany("UPDATE accounts SET incarnation = ? WHERE address = ?",
                           [(inc, address) for address, inc in incarnations.items()])
        finally:
            db.close()

    def start(self, timeout: float = 30.0) -> None:
        run_dir = self.root / "run"
        listeners = run_dir / "listeners.json"
        listeners.unlink(missing_ok=True)
        t0 = time.monotonic()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "letterbox", "-c", str(self.config), "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"letterbox exited early:\n{_tail(self.log)}")
            try:
                data = json.loads(listeners.read_text())
            except (OSError, ValueError):
                time.sleep(0.05)
                continue
            if data.get("pid") == self.proc.pid:
                bound = data["listeners"]
                missing = [k for k in ("lmtp", "pop3", "imap") if k not in bound]
                if missing:
                    raise RuntimeError(
                        f"letterbox started without {', '.join(missing)}:\n{_tail(self.log)}"
                    )
                self.lmtp_port = int(bound["lmtp"][0].rsplit(":", 1)[1])
                self.pop3_port = int(bound["pop3"][0].rsplit(":", 1)[1])
                self.imap_port = int(bound["imap"][0].rsplit(":", 1)[1])
                imaps = bound.get("imaps") if self.tls is not None else None
                if self.tls is not None and not imaps:
                    raise RuntimeError(f"letterbox started without imaps:\n{_tail(self.log)}")
                self.imaps_port = int(imaps[0].rsplit(":", 1)[1]) if imaps else 0
                self.web_url = f"http://{bound['web'][0]}" if bound.get("web") else ""
                self.start_s = time.monotonic() - t0
                return
            time.sleep(0.05)
        raise RuntimeError(f"letterbox did not start:\n{_tail(self.log)}")

    def import_messages(self, user: str, sources: list[Path]) -> None:
        # Start-up reconciliation gives files in new/ fresh UIDs, parses and indexes them.
        from letterbox.config import load

        local, _, domain = user.rpartition("@")
        new = load(self.config).data_dir / "mail" / domain / local / "new"
        new.mkdir(parents=True, exist_ok=True)
        for j, src in enumerate(sources):
            link_or_copy(src, new / f"{IMPORT_TIME + j}.M{j}P1.bench")

    def version(self) -> str:
        try:
            import letterbox

            return str(getattr(letterbox, "__version__", ""))
        except ImportError:
            return ""


# --- Dovecot -----------------------------------------------------------------------------

DOVECOT_BIN = "/usr/sbin/dovecot"
# Modification times of imported message files, one second apart, as if delivered so.
IMPORT_TIME = 1_700_000_000

DOVECOT_CONFIG = """\
# Private benchmark instance: loopback, unprivileged ports, everything under {root}.
base_dir = {root}/base
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
instance_name = letterbox-bench-{port_hint}
listen = 127.0.0.1
protocols = pop3 lmtp imap
{users}
mail_location = maildir:{root}/mail/%u
# Every delivered message is fsynced before the LMTP reply, as Letterbox does.
mail_fsync = always
auth_mechanisms = plain
disable_plaintext_auth = no
{ssl}
# Letterbox remembers a verified password for a minute; let Dovecot cache lookups too.
auth_cache_size = 4M
auth_cache_ttl = 60s
passdb {{
  driver = passwd-file
  args = {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
protocol pop3 {{
  # RFC 1939 exclusive access, as Letterbox enforces; both wait for the lock (Dovecot
  # up to its built-in timeout, Letterbox up to [pop3] lock_wait) before [IN-USE].
  pop3_lock_session = {pop3_lock}
  mail_max_userip_connections = 1000
}}
protocol imap {{
  # The IDLE run holds thousands of sessions from 127.0.0.1, many per account.
  mail_max_userip_connections = 10000
}}
# Room for thousands of IMAP processes: every one of them is a client of the log, anvil,
# stats and auth services, and the master.
default_client_limit = 12000
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
  }}
  # Debian's high-security mode (one login process per connection, handing over to
  # imap after login), with room for the IDLE run's waves of logins.
  process_limit = 1000
}}
service imap {{
  process_limit = 6000{imap_sharing}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
  unix_listener lmtp {{
    mode = 0600
  }}
}}
"""


def _mail_owner() -> tuple[int, int, str]:
    """Dovecot refuses mail processes with uid 0: as root, deliver as an unprivileged user."""
    if os.getuid() != 0:
        return os.getuid(), os.getgid(), ""
    for name in ("mail", "nobody"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return pw.pw_uid, pw.pw_gid, name
    raise RuntimeError("running as root but found neither a 'mail' nor a 'nobody' user")


def _service_users() -> str:
    if os.getuid() != 0:
        me = pwd.getpwuid(os.getuid()).pw_name
        return f"default_internal_user = {me}\ndefault_login_user = {me}\n"
    lines = []
    for key, candidates in (
        ("default_internal_user", ("dovecot", "nobody")),
        ("default_login_user", ("dovenull", "nobody")),
    ):
        for name in candidates:
            try:
                pwd.getpwnam(name)
            except KeyError:
                continue
            lines.append(f"{key} = {name}")
            break
    # Mail is owned by a system account (uid < 500): allow it.
    lines.append("first_valid_uid = 1")
    return "\n".join(lines)


class Dovecot(BenchServer):
    """A private `dovecot -F` with its own config (never the system instance)."""

    name = "Dovecot"

    def __init__(self, root: Path, scheme: str = "SSHA512", pop3_lock: bool = True) -> None:
        super().__init__(root)
        self.scheme = scheme
        self.pop3_lock = pop3_lock
        self.uid, self.gid, _ = _mail_owner()
        root.mkdir(parents=True, exist_ok=True)
        for sub in ("base", "state", "mail"):
            (root / sub).mkdir(exist_ok=True)
        os.chown(root / "mail", self.uid, self.gid)
        self.lmtp_port = free_port()
        self.pop3_port = free_port()
        self.imap_port = free_port()
        self.tls_port = free_port()
        self.log = root / "dovecot.log"
        self.config = root / "dovecot.conf"
        self.configure()
        (root / "passwd").write_text("")

    def configure(self, imap_client_limit: int = 1) -> None:
        """(Re)write the config; takes effect at the next start.

        imap_client_limit 1 is Dovecot's default, one imap process per session. Above 1,
        processes live on (service_count = 0) and take up to that many sessions each.
        """
        sharing = ""
        ssl = "ssl = no"
        self.imaps_port = 0
        if self.tls is not None:
            ssl = f"ssl = yes\nssl_cert = <{self.tls[0]}\nssl_key = <{self.tls[1]}"
            self.imaps_port = self.tls_port
        if imap_client_limit > 1:
            sharing = (f"\n  client_limit = {imap_client_limit}\n  service_count = 0"
                       "\n  vsz_limit = 2G")
        self.config.write_text(
            DOVECOT_CONFIG.format(
                root=self.root,
                port_hint=self.lmtp_port,
                users=_service_users(),
                uid=self.uid,
                gid=self.gid,
                pop3_lock="yes" if self.pop3_lock else "no",
                lmtp_port=self.lmtp_port,
                pop3_port=self.pop3_port,
                imap_port=self.imap_port,
                imaps_port=self.imaps_port,
                ssl=ssl,
                imap_sharing=sharing,
            )
        )

    def set_tls(self, pair: tuple[Path, Path] | None) -> None:
        super().set_tls(pair)
        self.configure()

    def add_users(self, users: list[str], password: str) -> None:
        hashed = _dovecot_hash(self.scheme, password)
        with open(self.root / "passwd", "a") as f:
            for u in users:
                f.write(f"{u}:{hashed}\n")

    def start(self, timeout: float = 30.0) -> None:
        if not Path(DOVECOT_BIN).exists():
            raise RuntimeError(f"{DOVECOT_BIN} not found (apt-get install dovecot-pop3d dovecot-lmtpd)")
        out = self.root / "stdout.log"
        t0 = time.monotonic()
        with open(out, "ab") as log:
            self.proc = subprocess.Popen(
                [DOVECOT_BIN, "-F", "-c", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        for port in (self.lmtp_port, self.pop3_port, self.imap_port, self.imaps_port):
            if not port:
                continue
            try:
                _wait_port(port, self.proc, self.log, timeout)
            except RuntimeError as e:
                raise RuntimeError(f"{e}\n{_tail(out)}") from None
        self.start_s = time.monotonic() - t0

    def import_messages(self, user: str, sources: list[Path]) -> None:
        # Files in cur/ with no dovecot-uidlist yet: the first SELECT gives them UIDs and
        # builds the index. S= spares Dovecot a stat() for the size, as its own names do.
        home = self.root / "mail" / user
        for sub in ("", "cur", "new", "tmp"):
            (home / sub).mkdir(exist_ok=True)
            os.chown(home / sub, self.uid, self.gid)
        for j, src in enumerate(sources):
            dest = home / "cur" / f"{IMPORT_TIME + j}.M{j}P1.bench,S={src.stat().st_size}:2,"
            link_or_copy(src, dest)
            os.chown(dest, self.uid, self.gid)

    def version(self) -> str:
        try:
            return subprocess.run(
                [DOVECOT_BIN, "--version"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except OSError:
            return ""


def _dovecot_hash(scheme: str, password: str) -> str:
    """A passwd-file hash; SSHA512 costs about as much as a credential-cache hit."""
    scheme = scheme.upper()
    if scheme == "PLAIN":
        return "{PLAIN}" + password
    if scheme == "SSHA512":
        import base64
        import hashlib

        salt = os.urandom(8)
        digest = hashlib.sha512(password.encode() + salt).digest()
        return "{SSHA512}" + base64.b64encode(digest + salt).decode()
    if scheme == "ARGON2ID":
        # The very hash Letterbox stores (same parameters), so both pay the same per check.
        from letterbox.auth.passwords import hash_password

        return "{ARGON2ID}" + hash_password(password)
    raise ValueError(f"unknown Dovecot password scheme {scheme!r}")


def make_root(prefix: str = "letterbox-bench-") -> Path:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix=prefix))
    # Dovecot's mail processes run as an unprivileged user and must traverse it.
    root.chmod(0o755)
    return root


def remove_root(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
