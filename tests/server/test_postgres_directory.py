"""The accounts directory shared by front ends on one PostgreSQL database, as real
processes: two `letterbox serve` with separate data dirs (so separate local files), one
database; account changes made with the CLI through A's config reach B at once."""

from __future__ import annotations

import imaplib
import poplib
import re
import smtplib
import socket
import threading
import time
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg
import pytest

from tests.clients.test_scram_clients import ScramAuth
from tests.conftest import ServerProcess
from tests.server.pgserve import PASSWORD, lmtp, msg, new_database, on_postgres
from tests.waiting import wait_for

USER = "alice@example.com"


@pytest.fixture
def fronts(make_server: Any) -> tuple[ServerProcess, ServerProcess]:
    dsn = new_database()
    a, b = on_postgres(make_server, dsn), on_postgres(make_server, dsn)
    assert a.home / "data" != b.home / "data"
    return a, b


def add(srv: ServerProcess, address: str, password: str = PASSWORD, *options: str) -> None:
    srv.cli("user", "add", address, "--password-stdin", *options, input=password + "\n")


def login(srv: ServerProcess, user: str, password: str = PASSWORD) -> imaplib.IMAP4:
    conn = imaplib.IMAP4("127.0.0.1", srv.port("imap"), timeout=15)
    try:
        conn.login(user, password)
    except imaplib.IMAP4.error:
        conn.shutdown()
        raise
    return conn


def pop3_login(srv: ServerProcess, user: str, password: str = PASSWORD) -> poplib.POP3:
    conn = poplib.POP3("127.0.0.1", srv.port("pop3"), timeout=15)
    conn.user(user)
    conn.pass_(password)
    return conn



def ended(conn: imaplib.IMAP4) -> bool:
    """The server closed this IMAP session."""
    try:
        conn.noop()
    except (imaplib.IMAP4.abort, OSError):
        return True
    return False


def refused(fn: Any, *args: Any) -> bool:
    try:
        fn(*args).logout() if fn is login else fn(*args).quit()
    except (imaplib.IMAP4.error, poplib.error_proto, OSError, EOFError):
        return True
    return False


def test_account_added_through_one_front_end_logs_in_on_the_other(fronts: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = fronts
    add(a, USER)
    conn = login(b, USER)
    try:
        assert conn.select("INBOX")[0] == "OK"
    finally:
        conn.logout()
    # B's CLI sees it too, and may not add it again.
    assert USER in b.cli("user", "list").stdout
    again = b.cli("user", "add", USER, "--password-stdin", input="x\n", check=False)
    assert again.returncode != 0 and "already exists" in again.stderr


def test_disable_through_one_front_end_ends_sessions_on_the_other(fronts: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = fronts
    add(a, USER)
    on_b = login(b, USER)
    on_b.select("INBOX")
    a.cli("user", "set", USER, "--disable", "--message", "unpaid bill")

    assert wait_for(lambda: ended(on_b), 5.0), "B kept the disabled account's session"
    with pytest.raises(imaplib.IMAP4.error, match="unpaid bill"):
        login(b, USER)
    with pytest.raises(poplib.error_proto, match="disabled"):
        pop3_login(b, USER)
    a.cli("user", "set", USER, "--enable")
    assert wait_for(lambda: not refused(login, b, USER), 5.0)


def test_protocol_switches_through_one_front_end_apply_on_the_other(
        fronts: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = fronts
    add(a, USER)
    pop3_login(b, USER).quit()
    # The account's own switch: POP3 taken away through A, refused by B.
    a.cli("user", "set", USER, "--protocols", "imap")
    assert wait_for(lambda: refused(pop3_login, b, USER), 5.0)
    with pytest.raises(poplib.error_proto, match=r"POP3 access is disabled"):
        pop3_login(b, USER)
    login(b, USER).logout()
    a.cli("user", "set", USER, "--protocols", "imap,pop3")
    assert wait_for(lambda: not refused(pop3_login, b, USER), 5.0)
    # The server-wide switch: POP3 off through A closes B's POP3 listener.
    port = b.port("pop3")
    a.cli("protocols", "disable", "pop3")

    def closed() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(2)
                return s.recv(100) == b""
        except OSError:
            return True

    assert wait_for(closed, 5.0), "B still serves POP3"
    assert wait_for(lambda: "pop3" not in b.refresh(), 5.0)
    assert "off" in b.cli("protocols").stdout
    a.cli("protocols", "enable", "pop3")
    assert wait_for(lambda: "pop3" in b.refresh(), 5.0)
    pop3_login(b, USER).quit()


def test_password_changed_through_one_front_end_on_the_other(fronts: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = fronts
    add(a, USER)
    login(b, USER).logout()  # cached by B's authenticator now
    a.cli("user", "passwd", USER, "--password-stdin", input="a new one\n")
    assert wait_for(lambda: refused(login, b, USER, PASSWORD), 5.0), "the old password still works on B"
    login(b, USER, "a new one").logout()
    # SCRAM on B, with the secrets A's CLI wrote.
    conn = imaplib.IMAP4("127.0.0.1", b.port("imap"), timeout=15)
    auth = ScramAuth(USER, "a new one")
    typ, _ = conn.authenticate("SCRAM-SHA-256", auth)
    assert typ == "OK" and auth.verified
    conn.logout()
    conn = imaplib.IMAP4("127.0.0.1", b.port("imap"), timeout=15)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        conn.authenticate("SCRAM-SHA-256", ScramAuth(USER, PASSWORD))
    conn.shutdown()


def test_mail_to_an_account_added_through_one_front_end_is_read_on_both(
        fronts: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = fronts
    add(a, USER)
    assert lmtp(b, USER, msg(1)) == {}
    assert lmtp(a, USER, msg(2)) == {}
    for srv in (a, b):
        conn = login(srv, USER)
        try:
            assert conn.select("INBOX", readonly=True) == ("OK", [b"2"])
            _, data = conn.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        finally:
            conn.logout()
        found = sorted(m for part in data if isinstance(part, tuple) for m in re.findall(rb"<(m\d)@test>", part[1]))
        assert found == [b"m1", b"m2"]
    # Unknown on both: refused as unknown, not deferred.
    assert lmtp(b, "nobody@example.com", msg(3))["nobody@example.com"][0] == 550


class Proxy:
    """A TCP relay to PostgreSQL that can stop relaying (the database hangs: packets
    go nowhere, nothing is refused) and start again."""

    def __init__(self, target: tuple[str, int] | str) -> None:
        self.target = target
        """(host, port), or the path of PostgreSQL's Unix socket."""
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.frozen = threading.Event()
        self.closing = threading.Event()
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.socks.append(client)
            if self.frozen.is_set():
                continue  # accepted, never answered
            try:
                if isinstance(self.target, str):
                    upstream = socket.socket(socket.AF_UNIX)
                    upstream.connect(self.target)
                else:
                    upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self.socks.append(upstream)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                while self.frozen.is_set() and not self.closing.is_set():
                    time.sleep(0.02)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.closing.set()
        self.listener.close()
        for s in self.socks:
            s.close()


def test_database_hanging_gives_temporary_failures_and_sessions_go_on(make_server: Any) -> None:
    dsn = new_database()
    parts = urlsplit(dsn)
    host = unquote(parts.netloc.rpartition("@")[2])
    # The relay reaches the database as the tests do: over TCP, or the local socket.
    proxy = Proxy(f"{host}/.s.PGSQL.5432" if host.startswith("/") else (parts.hostname or "", parts.port or 5432))
    try:
        relayed = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
        a = on_postgres(make_server, dsn)
        # A statement to the hanging database fails after 3 s (the default is 60).
        c = on_postgres(make_server, relayed, statement_timeout=3)
        add(a, USER)
        add(a, "bob@example.com")
        assert lmtp(c, USER, msg(1)) == {}
        login(c, USER).logout()
        waiting = imaplib.IMAP4("127.0.0.1", c.port("imap"), timeout=30)  # a session that needs no database
        reading = login(c, USER)  # one that does: its commands wait, then fail for now
        assert reading.select("INBOX")[0] == "OK"
        proxy.frozen.set()
        tries: list[str] = []

        def logins() -> None:
            for _ in range(3):
                conn = imaplib.IMAP4("127.0.0.1", c.port("imap"), timeout=30)
                try:
                    conn.login("bob@example.com", PASSWORD)
                    tries.append("OK")
                except imaplib.IMAP4.error as e:
                    tries.append(str(e))
                conn.shutdown()

        others = threading.Thread(target=logins)
        others.start()
        # Other sessions are served while logins wait for the directory: the loop is
        # never held longer than one bounded wait (2 s), wide margin here.
        while others.is_alive():
            started = time.monotonic()
            assert waiting.capability()[0] == "OK"
            assert time.monotonic() - started < 4.0
            time.sleep(0.1)
        others.join()
        assert tries and all("UNAVAILABLE" in t for t in tries), tries
        # Bob is not in C's cache: his login cannot be decided, so it is a temporary
        # failure, and so is an address nobody has (C cannot know that now).
        for who in ("bob@example.com", "nobody@example.com"):
            conn = imaplib.IMAP4("127.0.0.1", c.port("imap"), timeout=30)
            with pytest.raises(imaplib.IMAP4.error, match=r"UNAVAILABLE"):
                conn.login(who, PASSWORD)
            conn.shutdown()
        with pytest.raises(poplib.error_proto, match=r"SYS/TEMP"):
            pop3_login(c, "bob@example.com")
        with smtplib.LMTP("127.0.0.1", c.port("lmtp"), timeout=30) as lm:
            lm.ehlo()
            lm.mail("x@remote.example")
            code, _ = lm.rcpt("bob@example.com")
            assert 400 <= code < 500, code
            code, _ = lm.rcpt("nobody@example.com")
            assert 400 <= code < 500, code  # never "unknown user" while the directory is away
        # A selected session's command that needs the store gets a temporary failure (or
        # its answer), never a dropped connection.
        typ, data = reading._simple_command("STATUS", "INBOX", "(MESSAGES)")
        assert typ == "OK" or b"UNAVAILABLE" in b" ".join(data), (typ, data)
        # The other front end, on the database directly, goes on as before.
        login(a, "bob@example.com").logout()
        proxy.frozen.clear()
        # Back: C answers again by itself.
        assert wait_for(lambda: not refused(login, c, "bob@example.com"), 20.0)
        assert lmtp(c, "bob@example.com", msg(2)) == {}
        assert reading.noop()[0] == "OK"
        reading.logout()
        waiting.logout()
        assert "Traceback" not in c.log_text()
    finally:
        proxy.close()


def test_a_front_end_adopts_its_local_accounts_into_an_empty_shared_directory(make_server: Any) -> None:
    # A front end that ran on the embedded store, with its accounts, moves to PostgreSQL.
    old = make_server()
    old.add_user(USER, PASSWORD)
    old.add_user("bob@example.com", "bobs")
    old.cli("admin", "add", "root", "--password-stdin", input="adminpw\n")
    old.cli("user", "set", "bob@example.com", "--disable", "--message", "gone fishing")
    old.cli("protocols", "disable", "smtp")
    before = {acc.address: acc for acc in old.directory().list()}
    old.stop()
    dsn = new_database()
    text = old.config.read_text().replace("[store]\n", f'[store]\nbackend = "postgresql"\ndsn = "{dsn}"\n', 1)
    old.config.write_text(text)
    assert 'backend = "postgresql"' in old.config.read_text()
    out = old.cli("store", "migrate").stdout
    assert "adopted 2 accounts" in out
    assert "adopted" not in old.cli("store", "migrate").stdout  # once
    old.start()
    other = on_postgres(make_server, dsn)
    for srv in (old, other):
        after = {acc.address: acc for acc in srv.directory().list()}
        assert after == before  # incarnations, hashes, SCRAM secrets, switches as they were
    login(other, USER).logout()
    with pytest.raises(imaplib.IMAP4.error, match="gone fishing"):
        login(other, "bob@example.com", "bobs")
    assert "smtp" not in other.refresh()
    assert "root" in other.cli("admin", "list").stdout

    async def incarnation() -> str:
        conn = await asyncpg.connect(dsn)
        try:
            return str(await conn.fetchval("SELECT incarnation FROM directory_accounts WHERE address = $1", USER))
        finally:
            await conn.close()

    import asyncio

    assert asyncio.run(incarnation()) == before[USER].incarnation


def test_delete_through_one_front_end_ends_sessions_everywhere_and_the_address_starts_empty(
        fronts: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = fronts
    add(a, USER)
    assert lmtp(b, USER, msg(1)) == {}
    on_b = login(b, USER)
    on_b.select("INBOX")
    a.cli("user", "del", USER, "--yes")

    assert wait_for(lambda: ended(on_b), 5.0), "B kept the deleted account's session"
    assert wait_for(lambda: USER not in a.cli("user", "list").stdout, 10.0)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        login(b, USER)
    add(b, USER, "again")
    conn = login(a, USER, "again")
    try:
        assert conn.select("INBOX", readonly=True) == ("OK", [b"0"])  # none of the old owner's mail
    finally:
        conn.logout()
