"""The eight ways acknowledged mail used to be lost or shown to the wrong account, each
tried against a real server process (issue: trust)."""

from __future__ import annotations

import imaplib
import os
import poplib
import re
import smtplib
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ServerProcess

PW = "secret"


def msg(subject: str, body: str = "body") -> bytes:
    return f"From: a@example.org\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()


def lmtp(srv: ServerProcess, rcpt: str, *subjects: str) -> None:
    with smtplib.LMTP("127.0.0.1", srv.port("lmtp")) as c:
        for s in subjects:
            c.sendmail("a@example.org", [rcpt], msg(s))


def imap(srv: ServerProcess, user: str) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    c.login(user, PW)
    return c


def imap_once_repaired(srv: ServerProcess, user: str) -> imaplib.IMAP4:
    """Log in once the account's index is rebuilt: meanwhile the server answers
    [UNAVAILABLE] (rebuilding takes longer on a busy machine)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return imap(srv, user)
        except imaplib.IMAP4.error as e:
            if "UNAVAILABLE" not in str(e) or time.monotonic() > deadline:
                raise
        while "rebuilt the index" not in srv.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)


def subjects(c: imaplib.IMAP4, mailbox: str = "INBOX") -> dict[int, str]:
    """UID -> Subject of every message in *mailbox* (selected read-only)."""
    typ, _ = c.select(mailbox, readonly=True)
    assert typ == "OK", mailbox
    typ, data = c.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    out = {}
    for item in data:
        if isinstance(item, tuple):
            uid = int(re.search(rb"UID (\d+)", item[0]).group(1))  # type: ignore[union-attr]
            out[uid] = item[1].decode().split(":", 1)[1].strip()
    return out


def comment(c: imaplib.IMAP4, mailbox: str, value: str | None = None) -> bytes | None:
    """Set (with *value*) or read the mailbox's /shared/comment METADATA entry."""
    for command in ("GETMETADATA", "SETMETADATA"):
        imaplib.Commands.setdefault(command, ("AUTH", "SELECTED"))
    if value is not None:
        typ, _ = c._simple_command("SETMETADATA", mailbox, f'(/shared/comment "{value}")')
        assert typ == "OK"
        return None
    typ, data = c._simple_command("GETMETADATA", mailbox, "/shared/comment")
    assert typ == "OK", data
    _, found = c._untagged_response(typ, data, "METADATA")
    return found[0] if found and found[0] is not None else None


def account_dir(srv: ServerProcess, address: str) -> Path:
    local, _, domain = address.partition("@")
    return srv.home / "data" / "mail" / domain / local


def uidvalidity(c: imaplib.IMAP4, mailbox: str) -> int:
    typ, data = c.status(mailbox, "(UIDVALIDITY UIDNEXT)")
    return int(re.search(rb"UIDVALIDITY (\d+)", data[0]).group(1))  # type: ignore[union-attr]


# --- 1 ---------------------------------------------------------------------------------
def test_a_second_server_on_the_same_data_changes_nothing(make_server) -> None:  # type: ignore[no-untyped-def]
    srv: ServerProcess = make_server()
    srv.add_user("one@example.com", PW)
    lmtp(srv, "one@example.com", "before")
    run_dir = srv.home / "run"
    before = (run_dir / "listeners.json").read_text()
    second = subprocess.run(
        [sys.executable, "-m", "letterbox", "serve"], env=srv.env, cwd=srv.home,
        capture_output=True, text=True, timeout=30,
    )
    assert second.returncode != 0
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"PID {srv.proc.pid}" in lines[0], second.stderr  # type: ignore[union-attr]
    assert "reconcil" not in second.stderr and "listening" not in second.stderr
    # The first server's files are its own still, and it goes on serving.
    assert (run_dir / "control.sock").exists()
    assert (run_dir / "listeners.json").read_text() == before
    lmtp(srv, "one@example.com", "after")
    assert sorted(subjects(imap(srv, "one@example.com")).values()) == ["after", "before"]
    assert srv.cli("protocols").returncode == 0  # CLI commands work beside it


# --- 2 ---------------------------------------------------------------------------------
def test_a_deleted_mailbox_never_lends_its_identity_to_a_new_one(server: ServerProcess) -> None:
    server.add_user("ids@example.com", PW)
    a, b = imap(server, "ids@example.com"), imap(server, "ids@example.com")
    assert b.create("Old")[0] == "OK"
    assert b.append("Old", None, None, msg("old one"))[0] == "OK"
    assert a.select("Old")[0] == "OK"
    assert b.delete("Old")[0] == "OK"
    assert b.create("New")[0] == "OK"
    assert b.append("New", None, None, msg("new one"))[0] == "OK"
    # A's selection ends (RFC 2180 3.2); nothing it sends reaches "New".
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        a.uid("FETCH", "1", "(BODY[])")
        a.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
        a.expunge()
    assert subjects(b, "New") == {1: "new one"}
    typ, data = b.uid("FETCH", "1", "(FLAGS)")
    assert b"\\Deleted" not in data[0]


def test_a_session_learns_its_mailbox_was_renamed_away(server: ServerProcess) -> None:
    server.add_user("ren@example.com", PW)
    a, b = imap(server, "ren@example.com"), imap(server, "ren@example.com")
    b.create("Box")
    b.append("Box", None, None, msg("m"))
    a.select("Box")
    assert b.rename("Box", "Moved")[0] == "OK"
    b.create("Box")
    b.append("Box", None, None, msg("other"))
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        a.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
        a.expunge()
    assert subjects(b, "Box") == {1: "other"} and subjects(b, "Moved") == {1: "m"}


# --- 3 ---------------------------------------------------------------------------------
def test_a_rename_that_cannot_be_done_changes_nothing(server: ServerProcess) -> None:
    server.add_user("deep@example.com", PW)
    c = imap(server, "deep@example.com")
    child = "P/" + "c" * 150
    assert c.create(child)[0] == "OK"
    c.append("P", "(\\Flagged)", None, msg("parent"))
    c.append(child, "(\\Seen)", None, msg("child"))
    # The child's folder name would pass the file system's limit.
    typ, data = c.rename("P", "Q" * 120)
    assert typ == "NO", data
    server.stop()
    server.start()
    c = imap(server, "deep@example.com")
    assert subjects(c, "P") == {1: "parent"} and subjects(c, child) == {1: "child"}
    c.select(child, readonly=True)
    assert b"\\Seen" in c.uid("FETCH", "1", "(FLAGS)")[1][0]  # type: ignore[operator]


@pytest.mark.parametrize("point,survives", [
    ("rename.journaled", "old"), ("rename.moved", "old"), ("rename.committed", "new"),
])
def test_rename_killed_at_any_step_ends_old_or_new(make_server, point: str, survives: str) -> None:  # type: ignore[no-untyped-def]
    srv: ServerProcess = make_server()
    srv.add_user("kill@example.com", PW)
    c = imap(srv, "kill@example.com")
    for name in ("A", "A/B", "A/B/C"):
        c.create(name)
        c.append(name, "(\\Answered)", None, msg(f"in {name}"))
    comment(c, "A/B", "kept")
    c.logout()
    srv.stop()
    srv.start_with_faults(f"{point}=kill@2" if point == "rename.moved" else f"{point}=kill")
    c = imap(srv, "kill@example.com")
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        c.rename("A", "Z")
    srv.wait_killed()
    srv.start()
    c = imap(srv, "kill@example.com")
    base = "A" if survives == "old" else "Z"
    for name in ("A", "A/B", "A/B/C"):
        target = base + name[1:]
        assert subjects(c, target) == {1: f"in {name}"}, target
    # The mailbox's metadata went wherever it went.
    assert comment(c, base + "/B") == f'{base}/B (/shared/comment "kept")'.encode()
    gone = "Z" if survives == "old" else "A"
    assert c.select(gone, readonly=True)[0] == "NO"


@pytest.mark.parametrize("point,survives", [
    ("delete.journaled", True), ("delete.moved", True), ("delete.committed", False),
])
def test_delete_killed_at_any_step_never_brings_mail_back(make_server, point: str, survives: bool) -> None:  # type: ignore[no-untyped-def]
    srv: ServerProcess = make_server()
    srv.add_user("del@example.com", PW)
    c = imap(srv, "del@example.com")
    c.create("Gone")
    c.append("Gone", None, None, msg("doomed"))
    comment(c, "Gone", "doomed too")
    c.logout()
    srv.stop()
    srv.start_with_faults(f"{point}=kill")
    c = imap(srv, "del@example.com")
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        c.delete("Gone")
    srv.wait_killed()
    srv.start()
    srv.stop()  # a second start must not bring it back either
    srv.start()
    c = imap(srv, "del@example.com")
    if survives:
        assert subjects(c, "Gone") == {1: "doomed"}
        assert comment(c, "Gone") == b'Gone (/shared/comment "doomed too")'
    else:
        assert c.select("Gone", readonly=True)[0] == "NO"
        typ, data = c.list()
        assert not any(b"Gone" in line for line in data)  # type: ignore[operator]
        # A mailbox made again under the name has none of the deleted one's metadata.
        assert c.create("Gone")[0] == "OK"
        assert comment(c, "Gone") is None
    assert not list((account_dir(srv, "del@example.com") / "letterbox-trash").glob("*"))


# --- 4 ---------------------------------------------------------------------------------
def test_a_lost_index_is_rebuilt_keeping_uids_flags_and_keywords(server: ServerProcess) -> None:
    server.add_user("lost@example.com", PW)
    lmtp(server, "lost@example.com", "one", "two", "three")
    c = imap(server, "lost@example.com")
    c.select("INBOX")
    c.uid("STORE", "1", "+FLAGS", "(\\Seen $Important)")
    c.uid("STORE", "2", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.create("Work")
    c.append("Work", "(\\Flagged Project)", None, msg("w"))
    validity = {m: uidvalidity(c, m) for m in ("INBOX", "Work")}
    c.subscribe("Work")
    c.logout()
    server.stop()  # a clean stop brings the file names up to date with the flags
    folder = account_dir(server, "lost@example.com")
    files_before = sorted(p.name.split(":")[0] for p in folder.glob("cur/*"))
    for name in ("letterbox.index", "letterbox.index-wal", "letterbox.index-shm"):
        (folder / name).unlink(missing_ok=True)
    server.start()
    c = imap_once_repaired(server, "lost@example.com")
    assert subjects(c) == {1: "one", 3: "three"}
    assert {m: uidvalidity(c, m) for m in ("INBOX", "Work")} == validity
    c.select("INBOX")
    flags = c.uid("FETCH", "1:*", "(FLAGS)")[1]
    assert b"\\Seen" in flags[0] and b"$Important" in flags[0]  # type: ignore[operator]
    c.select("Work")
    assert b"\\Flagged" in c.uid("FETCH", "1", "(FLAGS)")[1][0]  # type: ignore[operator]
    assert b"Project" in c.uid("FETCH", "1", "(FLAGS)")[1][0]  # type: ignore[operator]
    # New mail continues above every UID used, also the expunged one; no file was lost.
    assert sorted(p.name.split(":")[0] for p in folder.glob("cur/*")) == files_before
    typ, data = c.append("INBOX", None, None, msg("four"))
    assert int(data[0].split()[2].rstrip(b"]")) > 3  # type: ignore[union-attr]
    assert "Work" in str(c.lsub()[1])
    assert "index is missing" in server.log_text()


# --- 5 ---------------------------------------------------------------------------------
def test_an_address_added_again_never_sees_the_old_owners_mail(server: ServerProcess) -> None:
    server.cli("user", "add", "frank@example.com", "--password-stdin", input=PW + "\n")
    lmtp(server, "frank@example.com", "for old frank")
    old = imap(server, "frank@example.com")
    old.select("INBOX")
    old_validity = uidvalidity(old, "INBOX")
    # An APPEND in flight: the literal is announced, the account goes, the bytes follow.
    raw = socket.create_connection(("127.0.0.1", server.port("imap")))
    f = raw.makefile("rb")
    f.readline()
    raw.sendall(b'a LOGIN frank@example.com "' + PW.encode() + b'"\r\n')
    assert f.readline().startswith(b"a OK")
    late = msg("late for old frank")
    raw.sendall(b"b APPEND INBOX {%d}\r\n" % len(late))
    assert f.readline().startswith(b"+")
    server.cli("user", "del", "frank@example.com", "--yes")
    raw.sendall(late + b"\r\n")
    raw.settimeout(10)
    tail = b""
    while not (tail.endswith(b"\r\n") and (b"b OK" in tail or b"b NO" in tail or b"BYE" in tail)):
        chunk = raw.recv(4096)
        if not chunk:
            break
        tail += chunk
    assert b"b OK" not in tail
    raw.close()
    # The old session is over.
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        old.noop()
        old.select("INBOX")
    server.cli("user", "add", "frank@example.com", "--password-stdin", input=PW + "\n")
    new = imap(server, "frank@example.com")
    assert subjects(new) == {}
    assert uidvalidity(new, "INBOX") != old_validity
    server.stop()
    server.start()
    assert subjects(imap(server, "frank@example.com")) == {}
    assert not (server.home / "data" / "mail" / ".deleted" / "example.com").exists() or not any(
        (server.home / "data" / "mail" / ".deleted" / "example.com").iterdir()
    )


def test_user_del_keep_mail_archives_out_of_every_accounts_reach(server: ServerProcess) -> None:
    server.add_user("kept@example.com", PW)
    lmtp(server, "kept@example.com", "keep me")
    server.cli("user", "del", "kept@example.com", "--yes", "--keep-mail")
    archive = server.home / "data" / "mail" / ".archive" / "example.com"
    [kept] = list(archive.iterdir())
    assert any(b"keep me" in p.read_bytes() for p in kept.glob("cur/*"))
    server.add_user("kept@example.com", PW)
    assert subjects(imap(server, "kept@example.com")) == {}


def test_mail_left_by_a_late_delivery_is_never_shown_to_a_new_owner(server: ServerProcess) -> None:
    """A delivery that looked the account up before `user del` and wrote after it (here
    a folder made by such a delivery, with the old incarnation) stays out of sight."""
    server.add_user("late@example.com", PW)
    lmtp(server, "late@example.com", "first")
    folder = account_dir(server, "late@example.com")
    marker = (folder / "letterbox-account").read_text()
    server.cli("user", "del", "late@example.com", "--yes")
    assert not folder.exists()
    # What the late delivery left behind: the old owner's folder, made again.
    (folder / "cur").mkdir(parents=True)
    (folder / "new").mkdir()
    (folder / "tmp").mkdir()
    (folder / "letterbox-account").write_text(marker)
    (folder / "cur" / "1700000000.x.host,S=30,U=1:2,").write_bytes(msg("late"))
    server.add_user("late@example.com", PW)
    assert subjects(imap(server, "late@example.com")) == {}
    server.stop()
    server.start()
    assert subjects(imap(server, "late@example.com")) == {}
    assert "belonged to an earlier account" in server.log_text()


# --- 6 ---------------------------------------------------------------------------------
def test_no_uid_reused_after_a_power_loss_rolls_the_index_back(server: ServerProcess) -> None:
    server.add_user("power@example.com", PW)
    lmtp(server, "power@example.com", "one")
    server.stop()
    folder = account_dir(server, "power@example.com")
    db = sqlite3.connect(folder / "letterbox.index")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    snapshot = (folder / "letterbox.index").read_bytes()
    server.start()
    c = imap(server, "power@example.com")
    typ, data = c.append("INBOX", None, None, msg("two"))
    acked = int(data[0].split()[2].rstrip(b"]"))  # type: ignore[union-attr]
    c.select("INBOX")
    c.uid("STORE", str(acked), "+FLAGS", "(\\Deleted)")
    c.expunge()
    server.kill()
    # The power loss: the index as it was before the APPEND, written in an earlier boot.
    for name in ("letterbox.index-wal", "letterbox.index-shm"):
        (folder / name).unlink(missing_ok=True)
    (folder / "letterbox.index").write_bytes(snapshot)
    db = sqlite3.connect(folder / "letterbox.index")
    db.execute("UPDATE meta SET value = 'an earlier boot' WHERE key = 'boot_id'")
    db.commit()
    db.close()
    server.start()
    c = imap(server, "power@example.com")
    typ, data = c.append("INBOX", None, None, msg("three"))
    assert int(data[0].split()[2].rstrip(b"]")) > acked  # type: ignore[union-attr]
    c.select("INBOX")
    typ, data = c.status("INBOX", "(UIDNEXT)")
    assert int(re.search(rb"UIDNEXT (\d+)", data[0]).group(1)) > acked + 1  # type: ignore[union-attr]


# --- 7 ---------------------------------------------------------------------------------
def test_one_damaged_index_does_not_stop_the_server(server: ServerProcess) -> None:
    server.add_user("ok@example.com", PW)
    server.add_user("bad@example.com", PW)
    lmtp(server, "ok@example.com", "fine")
    lmtp(server, "bad@example.com", "b1", "b2")
    c = imap(server, "bad@example.com")
    c.select("INBOX")
    c.uid("STORE", "2", "+FLAGS", "(\\Flagged)")
    c.logout()
    server.stop()
    index = account_dir(server, "bad@example.com") / "letterbox.index"
    data = bytearray(index.read_bytes())
    data[:100] = b"\x00garbage" * 12 + b"\x00" * 4
    index.write_bytes(bytes(data))
    server.start()
    assert subjects(imap(server, "ok@example.com")) == {1: "fine"}
    deadline = time.monotonic() + 20
    while True:
        try:
            c = imap(server, "bad@example.com")
            break
        except imaplib.IMAP4.error:
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.1)
    assert subjects(c) == {1: "b1", 2: "b2"}
    c.select("INBOX")
    assert b"\\Flagged" in c.uid("FETCH", "2", "(FLAGS)")[1][0]  # type: ignore[operator]
    assert list(index.parent.glob("letterbox.index.broken-*"))
    assert "damaged" in server.log_text()


def test_letterbox_repair_rebuilds_on_demand(server: ServerProcess) -> None:
    server.add_user("rep@example.com", PW)
    lmtp(server, "rep@example.com", "x", "y")
    out = server.cli("repair", "rep@example.com", "--rebuild").stdout
    assert "rebuilt from the folders" in out and "messages" in out
    assert subjects(imap(server, "rep@example.com")) == {1: "x", 2: "y"}
    server.stop()
    out = server.cli("repair", "rep@example.com").stdout  # no server: done by the CLI
    assert "index is sound" in out
    server.start()
    assert subjects(imap(server, "rep@example.com")) == {1: "x", 2: "y"}


# --- 8 ---------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 24 MiB file system for one server's data (a tmpfs; needs root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (CI runs as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> Path:
    """Take every free byte of the file system holding *path*."""
    filler = path / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_still_lets_users_read_and_delete(make_server, small_disk: Path, tls_pair) -> None:  # type: ignore[no-untyped-def]
    srv = ServerProcess(small_disk / "home", tls_pair, reserve="4M")
    srv.start()
    try:
        srv.add_user("full@example.com", PW)
        lmtp(srv, "full@example.com", *[f"m{i}" for i in range(6)])
        filler = fill(small_disk)
        # Reading and deleting work: SELECT in IMAP4rev1 (it claims \Recent) and rev2.
        c = imap(srv, "full@example.com")
        assert c.select("INBOX")[0] == "OK"
        assert c.fetch("1", "(BODY[])")[0] == "OK"
        assert c.search(None, "SUBJECT", "m3")[1] == [b"4"]
        assert c.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
        assert c.expunge()[0] == "OK"
        r2 = imap(srv, "full@example.com")
        r2._simple_command("ENABLE", "IMAP4rev2")
        assert r2.select("INBOX")[0] == "OK"
        # Writing new mail answers a clear NO, never [SERVERBUG].
        typ, data = c.append("INBOX", None, None, msg("new"))
        assert typ == "NO" and b"[OVERQUOTA]" in data[0]  # type: ignore[operator]
        typ, data = c.create("Another")
        assert typ == "NO" and b"SERVERBUG" not in data[0]  # type: ignore[operator]
        typ, data = c.copy("1", "Archive")
        assert typ == "NO" and b"SERVERBUG" not in data[0]  # type: ignore[operator]
        # LMTP answers per recipient after DATA (RFC 2033 4.2): 452 4.3.1, try later.
        with smtplib.LMTP("127.0.0.1", srv.port("lmtp")) as d, pytest.raises(smtplib.SMTPDataError) as refused:
            d.sendmail("a@example.org", ["full@example.com"], msg("deferred"))
        assert refused.value.smtp_code == 452 and refused.value.smtp_error.startswith(b"4.3.1")
        # POP3 DELE + QUIT removes mail.
        c.logout()
        r2.logout()
        p = poplib.POP3("127.0.0.1", srv.port("pop3"))
        p.user("full@example.com")
        p.pass_(PW)
        count = p.stat()[0]
        p.dele(1)
        assert p.quit().startswith(b"+OK")
        c = imap(srv, "full@example.com")
        assert len(subjects(c)) == count - 1
        # Space comes back: so does new mail.
        filler.unlink()
        deadline = time.monotonic() + 10
        while True:
            typ, _ = c.append("INBOX", None, None, msg("after"))
            if typ == "OK":
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert "SERVERBUG" not in srv.log_text() and "Traceback" not in srv.log_text()
    finally:
        srv.stop()


def test_repair_while_file_names_are_being_renamed_loses_nothing(server: ServerProcess) -> None:
    """Repair on a live server used to reconcile the server's own handle while the
    background name sync had a file under two names: both went."""
    server.add_user("busy@example.com", PW)
    c = imap(server, "busy@example.com")
    with smtplib.LMTP("127.0.0.1", server.port("lmtp")) as d:
        for i in range(800):
            d.sendmail("a@example.org", ["busy@example.com"], msg(f"m{i}"))
    for delay in (0.95, 1.1):
        c.select("INBOX")
        c.store("1:*", "+FLAGS", "(\\Flagged)")  # the name sync starts about a second later
        time.sleep(delay)
        server.cli("repair", "busy@example.com")
        c = imap(server, "busy@example.com")
        c.select("INBOX")
        c.store("1:*", "-FLAGS", "(\\Flagged)")
    server.stop()
    server.start()
    assert len(subjects(imap(server, "busy@example.com"))) == 800


def test_a_folder_without_an_owner_is_not_given_to_a_new_account(server: ServerProcess) -> None:
    """A folder left by a version before incarnations (or by a deletion then) belongs to
    none of today's accounts: a new account of that address starts empty."""
    server.add_user("frank2@example.com", PW)
    lmtp(server, "frank2@example.com", "old frank's secret")
    server.stop()
    folder = account_dir(server, "frank2@example.com")
    (folder / "letterbox-account").unlink()
    d = server.directory()
    d.db.execute("DELETE FROM accounts WHERE address = 'frank2@example.com'")
    d.close()
    server.start()
    server.cli("user", "add", "frank2@example.com", "--password-stdin", input=PW + "\n")
    assert subjects(imap(server, "frank2@example.com")) == {}
    archived = list((server.home / "data" / "mail" / ".archive" / "example.com").iterdir())
    assert len(archived) == 1 and any(b"old frank" in p.read_bytes() for p in archived[0].glob("cur/*"))
