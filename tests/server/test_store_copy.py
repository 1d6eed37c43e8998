"""`letterbox store copy`: embedded -> PostgreSQL -> embedded keeps what clients know
(checked with imaplib and poplib against servers started on each copy), an interrupted
copy (kill -9) run again copies each message once, and the refusals are one clear line.
"""

from __future__ import annotations

import asyncio
import imaplib
import poplib
import re
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from letterbox.store.maildir import MaildirStore
from tests.conftest import ServerProcess
from tests.server.pgserve import new_database

PW = "secret"
ANN, BOB = "ann@example.com", "bob@example.org"
BIG = b"Subject: big\r\n\r\n" + b"".join(b"line %07d of a long message\r\n" % i for i in range(120_000))
BARE = b"Subject: bare LF and 8-bit\nFrom: x@example.org\n\nbyte \xe9\xff\x80 here\nno CR\n"


def copy(src: ServerProcess, dst: ServerProcess, *more: str, faults: str = "") -> subprocess.CompletedProcess[str]:
    env = src.env
    if faults:
        env["LETTERBOX_FAULTS"] = faults
    return subprocess.run(
        [sys.executable, "-m", "letterbox", "store", "copy", "--from", str(src.config), "--to", str(dst.config),
         *more],
        env=env, capture_output=True, text=True, timeout=300, cwd=src.home,
    )


def imap(srv: ServerProcess, user: str) -> imaplib.IMAP4:
    conn = imaplib.IMAP4("127.0.0.1", srv.port("imap"), timeout=30)
    conn.starttls()
    conn.login(user, PW)
    return conn


def pop3(srv: ServerProcess, user: str) -> poplib.POP3:
    """A POP3 session of *user*, logged in over STLS."""
    p = poplib.POP3("127.0.0.1", srv.port("pop3"), timeout=30)
    try:
        p.stls()
        p.user(user)
        p.pass_(PW)
    except BaseException:
        p.close()
        raise
    return p


def raw_append(srv: ServerProcess, user: str, mailbox: str, data: bytes) -> None:
    """APPEND over IMAPS with the literal sent exactly as given."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", srv.port("imaps")), timeout=30) as plain, \
            ctx.wrap_socket(plain) as conn:
        f = conn.makefile("rb")

        def until(tag: bytes) -> bytes:
            while not (line := f.readline()).startswith(tag):
                assert line, "connection closed"
            return line

        f.readline()
        conn.sendall(f"a LOGIN {user} {PW}\r\n".encode())
        assert until(b"a ").startswith(b"a OK")
        conn.sendall(f"b APPEND {mailbox} () {{{len(data)}}}\r\n".encode())
        assert f.readline().startswith(b"+")
        conn.sendall(data + b"\r\n")
        assert until(b"b ").startswith(b"b OK")


def fill(srv: ServerProcess) -> None:
    """Mail of several kinds in nested folders, with flags, keywords, dates, \\Deleted."""
    for user in (ANN, BOB):
        srv.add_user(user, PW)
    c = imap(srv, ANN)
    try:
        for box in ("Work/Projects/2026", "Lists"):
            assert c.create(box)[0] == "OK"
        assert c.subscribe("Lists")[0] == "OK"
        assert c.unsubscribe("Drafts")[0] == "OK"
        when = '"07-Feb-1994 21:52:25 -0800"'
        for n in range(6):
            msg = f"Subject: {n}\r\nMessage-ID: <{n}@x>\r\n\r\nbody {n}\r\n".encode()
            flags = ["(\\Seen)", "(\\Flagged $Label)", "()", "(\\Deleted \\Answered)", "(Junk-ish)", "()"][n]
            assert c.append("INBOX", flags, when if n % 2 else None, msg)[0] == "OK"
        assert c.append("Work/Projects/2026", "(\\Seen $Important)", '"01-Jan-2026 00:00:01 +0000"', BIG)[0] == "OK"
        c.select("INBOX")
        c.uid("STORE", "6", "+FLAGS", "(\\Deleted)")
        assert c.uid("EXPUNGE", "6")[0] == "OK"
    finally:
        c.logout()
    raw_append(srv, ANN, "Lists", BARE)  # imaplib would turn each LF into CRLF
    c = imap(srv, BOB)
    try:
        assert c.append("INBOX", "(\\Seen)", None, b"Subject: hi bob\r\n\r\nhello\r\n")[0] == "OK"
    finally:
        c.logout()
    # POP3 sees INBOX; a DELE in "hide" mode keeps the message for IMAP only.
    p = pop3(srv, ANN)
    try:
        p.dele(2)
        p.quit()
    except BaseException:
        p.close()
        raise


def state(srv: ServerProcess, user: str) -> dict[str, object]:
    """What a client can know of *user*'s mail, as the server tells it."""
    out: dict[str, object] = {}
    c = imap(srv, user)
    try:
        _, listed = c.list()
        names = sorted(re.search(rb'"/" "?([^"]*)"?$', line).group(1).decode() for line in listed)  # type: ignore[union-attr]
        _, subs = c.lsub()
        out["subscribed"] = sorted(line.rsplit(b" ", 1)[-1].strip(b'"').decode() for line in subs if line)
        for name in names:
            typ, _ = c.select(f'"{name}"', readonly=True)
            assert typ == "OK", name
            uidvalidity = c.untagged_responses.get("UIDVALIDITY", [b"?"])[-1]
            uidnext = int(c.untagged_responses.get("UIDNEXT", [b"0"])[-1])
            typ, data = c.uid("FETCH", "1:*", "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
            messages = []
            for item in data:
                if isinstance(item, tuple):
                    head = item[0]
                    flags = sorted(re.search(rb"FLAGS \(([^)]*)\)", head).group(1).split())  # type: ignore[union-attr]
                    flags = [f for f in flags if f != b"\\Recent"]
                    uid = int(re.search(rb"UID (\d+)", head).group(1))  # type: ignore[union-attr]
                    date = re.search(rb'INTERNALDATE "([^"]+)"', head).group(1)  # type: ignore[union-attr]
                    messages.append((uid, flags, date, item[1]))
            out[name] = (uidvalidity, uidnext, messages)
    finally:
        c.logout()
    p = pop3(srv, user)
    try:
        out["uidl"] = p.uidl()[1]
    finally:
        p.quit()
    return out


def test_embedded_to_postgresql_and_back_keeps_what_clients_know(
    make_server: object, tls_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    src: ServerProcess = make_server(delete_mode="hide")  # type: ignore[operator]
    fill(src)
    before = {user: state(src, user) for user in (ANN, BOB)}
    inbox = before[ANN]["INBOX"]
    assert isinstance(inbox, tuple) and len(inbox[2]) == 5  # UIDs 1-5, 6 expunged
    assert len(before[ANN]["uidl"]) == 4  # type: ignore[arg-type]  # one hidden from POP3
    # What the comparison below covers is there at the source, as sent.
    assert inbox[2][1][:3] == (2, [b"$Label", b"\\Flagged"], b"08-Feb-1994 05:52:25 +0000")  # kept in UTC
    assert [m[1] for m in inbox[2]] == [[b"\\Seen"], [b"$Label", b"\\Flagged"], [], [b"\\Answered", b"\\Deleted"],
                                        [b"Junk-ish"]]
    assert before[ANN]["Lists"][2][0][3] == BARE  # type: ignore[index]
    assert before[ANN]["Work/Projects/2026"][2][0][1:] == (  # type: ignore[index]
        [b"$Important", b"\\Seen"], b"01-Jan-2026 00:00:01 +0000", BIG)
    assert "Drafts" not in before[ANN]["subscribed"] and "Lists" in before[ANN]["subscribed"]  # type: ignore[operator]
    src.stop()

    pg = ServerProcess(tmp_path / "pg", tls_pair, delete_mode="hide",
                       store_extra=f'backend = "postgresql"\ndsn = "{new_database()}"')
    done = copy(src, pg)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Copied" in done.stdout and "8 message(s) copied" in done.stdout, done.stdout
    try:
        pg.start()
        for user in (ANN, BOB):
            assert state(pg, user) == before[user], user
    finally:
        pg.stop()

    back = ServerProcess(tmp_path / "back", tls_pair, delete_mode="hide")
    done = copy(pg, back)
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        back.start()
        for user in (ANN, BOB):
            assert state(back, user) == before[user], user
        # New mail goes on above the copied UIDs, in the copied mailbox.
        c = imap(back, ANN)
        try:
            c.append("INBOX", "()", None, b"Subject: later\r\n\r\nx\r\n")
            c.select("INBOX")
            assert c.uid("SEARCH", "ALL")[1][0].split()[-1] == b"7"
        finally:
            c.logout()
    finally:
        back.stop()


def test_a_copy_killed_midway_goes_on_and_copies_each_message_once(
    make_server: object, tls_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    src: ServerProcess = make_server()  # type: ignore[operator]
    src.add_user(ANN, PW)
    c = imap(src, ANN)
    try:
        for n in range(30):
            c.append("INBOX", "(\\Seen)" if n % 3 else "()", None, f"Subject: {n}\r\n\r\nbody {n}\r\n".encode())
    finally:
        c.logout()
    before = state(src, ANN)
    src.stop()

    # Into the embedded store: killed between the message's rename and its commit, then
    # (second run) after a message is committed; the third run finishes.
    dst = ServerProcess(tmp_path / "dst", tls_pair)
    killed = copy(src, dst, faults="append.renamed=kill@7")
    assert killed.returncode == -9, killed.stdout + killed.stderr
    killed = copy(src, dst, faults="copy.imported=kill@12")
    assert killed.returncode == -9, killed.stdout + killed.stderr
    done = copy(src, dst)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "there already" in done.stdout
    try:
        dst.start()
        assert state(dst, ANN) == before
    finally:
        dst.stop()

    # Into PostgreSQL, killed after a commit.
    pg = ServerProcess(tmp_path / "pg", tls_pair, store_extra=f'backend = "postgresql"\ndsn = "{new_database()}"')
    killed = copy(src, pg, faults="copy.imported=kill@9")
    assert killed.returncode == -9, killed.stdout + killed.stderr
    done = copy(src, pg, "--account", ANN)
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        pg.start()
        assert state(pg, ANN) == before
    finally:
        pg.stop()


def test_ctrl_c_stops_cleanly_and_the_next_run_goes_on(tls_pair: tuple[Path, Path], tmp_path: Path) -> None:
    src = ServerProcess(tmp_path / "src", tls_pair)
    src.add_user(ANN, PW)
    account = src.directory().require(ANN)

    async def fill() -> None:
        store = MaildirStore(src.home / "data" / "mail")
        try:
            acc = await store.account(ANN, account.incarnation)
            for n in range(600):
                await acc.append("INBOX", f"Subject: {n}\r\n\r\n".encode() + b"x" * 2000, ["\\Seen"] if n % 2 else [])
        finally:
            await store.close()

    asyncio.run(fill())
    dst = ServerProcess(tmp_path / "dst", tls_pair)
    env = dict(src.env, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "letterbox", "store", "copy", "--from", str(src.config), "--to", str(dst.config)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=src.home,
    )
    assert proc.stdout is not None
    while not (line := proc.stdout.readline()).strip().startswith(ANN.encode()):  # its account's copy begins
        assert line, "the copy ended before it began the account"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert b"run the same command again" in err and b"Traceback" not in err, err
    done = copy(src, dst)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "600 there already" not in done.stdout  # the first run stopped part way
    src.start()
    dst.start()
    try:
        assert state(dst, ANN) == state(src, ANN)
    finally:
        src.stop()
        dst.stop()


def test_refusals_are_one_clear_line(make_server: object, tls_pair: tuple[Path, Path], tmp_path: Path) -> None:
    src: ServerProcess = make_server()  # type: ignore[operator]
    src.add_user(ANN, PW)
    c = imap(src, ANN)
    try:
        c.append("INBOX", "()", None, b"Subject: 1\r\n\r\none\r\n")
    finally:
        c.logout()

    dst = ServerProcess(tmp_path / "dst", tls_pair)
    # A running server holds its data directory: the copy will not read under it.
    busy = copy(src, dst)
    assert busy.returncode == 1 and "in use by a running server" in busy.stderr, busy.stderr
    src.stop()

    def refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
        for w in words:
            assert w in result.stderr, result.stderr

    # Another account of the same address at the destination.
    dst.add_user(ANN, "other")
    refused(copy(src, dst), ANN, "another account")
    (dst.home / "data" / "accounts.sqlite").unlink()

    # A mailbox made again at the destination (another UIDVALIDITY) and holding mail.
    assert copy(src, dst).returncode == 0
    dst.start()
    c = imap(dst, ANN)
    try:
        c.create("Lists")
        c.append("Lists", "()", None, b"Subject: here\r\n\r\nx\r\n")
    finally:
        c.logout()
    dst.stop()
    src.start()
    c = imap(src, ANN)
    try:
        c.create("Lists")
        c.append("Lists", "()", None, b"Subject: there\r\n\r\ny\r\n")
    finally:
        c.logout()
    src.stop()
    refused(copy(src, dst), ANN, "'Lists'", "UIDVALIDITY")

    refused(copy(src, dst, "--account", "nobody@example.com"), "nobody@example.com")
    missing = ServerProcess(tmp_path / "none", tls_pair)
    missing.config.unlink()
    refused(copy(src, missing), "no such file")
    same = copy(src, src)
    refused(same, "the same store")
    down = ServerProcess(tmp_path / "down", tls_pair,
                         store_extra='backend = "postgresql"\ndsn = "postgresql://u:hunter2@127.0.0.1:1/mail"')
    result = copy(src, down)
    refused(result, "cannot connect to the PostgreSQL store")
    assert "hunter2" not in result.stderr

    # A front end with a data directory of its own serves the destination's database.
    dsn = new_database()
    front = make_server(store_extra=f'backend = "postgresql"\ndsn = "{dsn}"')  # type: ignore[operator]
    assert front.home != src.home
    into = ServerProcess(tmp_path / "into", tls_pair, store_extra=f'backend = "postgresql"\ndsn = "{dsn}"')
    refused(copy(src, into), "running Letterbox front ends", "stop them")
    front.stop()
    assert copy(src, into).returncode == 0


@pytest.fixture(autouse=True)
def _no_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LETTERBOX_FAULTS", raising=False)
