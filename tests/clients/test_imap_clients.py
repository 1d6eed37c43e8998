"""IMAP with real clients: imaplib, curl, mbsync (isync), offlineimap3 and neomutt."""

from __future__ import annotations

import imaplib
import os
import smtplib
import ssl
import subprocess
import time
from pathlib import Path

from tests.conftest import ServerProcess, require_program

PASSWORD = "pw"


def msg(subject: str, body: str = "hello") -> bytes:
    return (
        f"From: Sender <sender@example.org>\r\nTo: user@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.org>\r\nDate: Thu, 26 Nov 2026 08:00:00 +0000\r\n"
        f"\r\n{body}\r\n"
    ).encode()


def deliver(srv: ServerProcess, rcpt: str, *subjects: str) -> None:
    with smtplib.LMTP("127.0.0.1", srv.port("lmtp")) as lmtp:
        for s in subjects:
            lmtp.sendmail("sender@example.org", [rcpt], msg(s))


def imap(srv: ServerProcess, user: str) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    c.login(user, PASSWORD)
    return c


def test_imaplib_session(server: ServerProcess, tls_pair) -> None:  # type: ignore[no-untyped-def]
    server.add_user("ima@example.com", PASSWORD)
    deliver(server, "ima@example.com", "one", "two")
    c = imap(server, "ima@example.com")
    typ, data = c.select("INBOX")
    assert (typ, data) == ("OK", [b"2"])
    typ, data = c.fetch("1:2", "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK" and b"Subject: one" in data[0][1]
    typ, data = c.uid("SEARCH", None, "SUBJECT", "two")
    assert data == [b"2"]
    typ, data = c.append("INBOX", "(\\Seen)", None, msg("three"))
    assert typ == "OK" and b"APPENDUID" in data[0]
    c.logout()
    # IMAPS and STARTTLS with certificate verification.
    ctx = ssl.create_default_context(cafile=str(tls_pair[0]))
    s = imaplib.IMAP4_SSL("localhost", server.port("imaps"), ssl_context=ctx)
    s.login("ima@example.com", PASSWORD)
    assert s.select("INBOX", readonly=True)[1] == [b"3"]
    s.logout()
    t = imaplib.IMAP4("localhost", server.port("imap"))
    t.starttls(ssl_context=ctx)
    t.login("ima@example.com", PASSWORD)
    t.logout()


def test_idle_push_within_a_second(server: ServerProcess) -> None:
    server.add_user("idle@example.com", PASSWORD)
    c = imap(server, "idle@example.com")
    c.select("INBOX")
    tag = c._new_tag().decode()  # type: ignore[attr-defined]
    c.send(f"{tag} IDLE\r\n".encode())
    assert c.readline().startswith(b"+")
    start = time.monotonic()
    deliver(server, "idle@example.com", "pushed")
    c.sock.settimeout(5)
    line = c.readline()
    assert line == b"* 1 EXISTS\r\n"
    assert time.monotonic() - start < 1.0
    c.send(b"DONE\r\n")
    while not (line := c.readline()).startswith(tag.encode()):
        pass
    assert b"OK" in line
    c.logout()


def test_curl_imap(server: ServerProcess, tls_pair) -> None:  # type: ignore[no-untyped-def]
    curl = require_program("curl")
    server.add_user("curl@example.com", PASSWORD)
    deliver(server, "curl@example.com", "curl subject")
    user = f"curl@example.com:{PASSWORD}"
    out = subprocess.run([curl, "-s", "-u", user, f"imap://127.0.0.1:{server.port('imap')}/"],
                         capture_output=True, check=True).stdout
    assert b"INBOX" in out and b"Sent" in out
    out = subprocess.run([curl, "-s", "-u", user, f"imap://127.0.0.1:{server.port('imap')}/INBOX;UID=1"],
                         capture_output=True, check=True).stdout
    assert b"Subject: curl subject" in out
    out = subprocess.run(
        [curl, "-s", "--cacert", str(tls_pair[0]), "-u", user,
         f"imaps://localhost:{server.port('imaps')}/INBOX?SUBJECT%20curl"],
        capture_output=True, check=True,
    ).stdout
    assert b"SEARCH 1" in out
    out = subprocess.run(
        [curl, "-s", "--ssl-reqd", "--cacert", str(tls_pair[0]), "-u", user,
         f"imap://localhost:{server.port('imap')}/INBOX;UID=1;SECTION=HEADER"],
        capture_output=True, check=True,
    ).stdout
    assert b"Subject: curl subject" in out and b"hello" not in out


def _maildir_files(folder: Path) -> list[Path]:
    return [p for sub in ("cur", "new") for p in (folder / sub).iterdir()]


def test_mbsync_two_way(server: ServerProcess, tmp_path: Path) -> None:
    mbsync = require_program("mbsync")
    server.add_user("sync@example.com", PASSWORD)
    deliver(server, "sync@example.com", "first", "second", "third", "extra")
    c = imap(server, "sync@example.com")
    c.create("Projects")
    c.append("Projects", None, None, msg("project plan"))
    c.logout()
    local = tmp_path / "mail"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"IMAPAccount lb\nHost 127.0.0.1\nPort {server.port('imap')}\nUser sync@example.com\n"
        f"Pass {PASSWORD}\nSSLType None\nAuthMechs LOGIN\n\n"
        "IMAPStore remote\nAccount lb\n\n"
        f"MaildirStore local\nPath {local}/\nInbox {local}/INBOX\nSubFolders Verbatim\n\n"
        "Channel c\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nExpunge Both\n"
        "SyncState *\n"
    )

    def sync() -> None:
        proc = subprocess.run([mbsync, "-c", str(rc), "-a"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    sync()
    inbox = _maildir_files(local / "INBOX")
    assert len(inbox) == 4
    assert len(_maildir_files(local / "Projects")) == 1
    # Local changes: flag one message seen, delete one, and a new folder with a message.
    first = next(p for p in inbox if b"Subject: first" in p.read_bytes())
    second = next(p for p in inbox if b"Subject: second" in p.read_bytes())
    base = first.name.split(":2,")[0]
    first.rename(local / "INBOX" / "cur" / f"{base}:2,FS")
    second.unlink()
    newbox = local / "Local"
    for sub in ("cur", "new", "tmp"):
        (newbox / sub).mkdir(parents=True)
    (newbox / "new" / "1700000000.1.host").write_bytes(msg("made locally"))
    # Server changes: new mail, a flag set and a message deleted by another client.
    deliver(server, "sync@example.com", "fourth")
    c = imap(server, "sync@example.com")
    c.select("INBOX")
    c.uid("STORE", "3", "+FLAGS", "(\\Answered)")
    c.uid("STORE", "4", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.logout()
    sync()
    c = imap(server, "sync@example.com")
    typ, data = c.select("INBOX")
    assert data == [b"3"]  # first, third, fourth: second deleted locally, extra on the server
    typ, data = c.uid("SEARCH", None, "SUBJECT", "first")
    uid_first = data[0]
    typ, data = c.uid("FETCH", uid_first, "(FLAGS)")
    assert b"\\Seen" in data[0] and b"\\Flagged" in data[0]
    typ, data = c.select("Local")
    assert typ == "OK" and data == [b"1"]
    c.logout()
    inbox = _maildir_files(local / "INBOX")
    assert len(inbox) == 3
    assert not any(b"Subject: extra" in p.read_bytes() for p in inbox)
    third = next(p for p in inbox if b"Subject: third" in p.read_bytes())
    assert "R" in third.name.split(":2,")[1]


def test_offlineimap_full_sync(server: ServerProcess, tmp_path: Path) -> None:
    offlineimap = require_program("offlineimap")
    server.add_user("oi@example.com", PASSWORD)
    deliver(server, "oi@example.com", "a", "b", "c", "d")
    c = imap(server, "oi@example.com")
    c.select("INBOX")
    c.store("1", "+FLAGS", "(\\Seen)")
    c.store("2", "+FLAGS", "(\\Flagged \\Seen)")
    c.create("Lists/python")
    c.append("Lists/python", None, None, msg("list post"))
    c.logout()
    rc = tmp_path / "offlineimaprc"
    rc.write_text(
        f"[general]\naccounts = lb\nmetadata = {tmp_path / 'meta'}\n\n"
        "[Account lb]\nlocalrepository = local\nremoterepository = remote\n\n"
        f"[Repository local]\ntype = Maildir\nlocalfolders = {tmp_path / 'oi'}\n\n"
        f"[Repository remote]\ntype = IMAP\nremotehost = 127.0.0.1\nremoteport = {server.port('imap')}\n"
        f"remoteuser = oi@example.com\nremotepass = {PASSWORD}\nssl = no\nstarttls = no\n"
    )
    proc = subprocess.run([offlineimap, "-c", str(rc), "-o", "-u", "quiet"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    inbox = _maildir_files(tmp_path / "oi" / "INBOX")
    assert len(inbox) == 4
    flags = sorted(p.name.split(":2,")[1] for p in inbox)
    assert flags == ["", "", "FS", "S"]
    lists = [d for d in (tmp_path / "oi").iterdir() if "python" in d.name]
    assert lists and len(_maildir_files(lists[0])) == 1


class NeoMutt:
    """neomutt in a detached tmux session, on one account, with a header cache."""

    def __init__(self, srv: ServerProcess, user: str, tmp_path: Path, extra: str = "") -> None:
        self.tmux = require_program("tmux")
        self.neomutt = require_program("neomutt")
        self.tmp_path = tmp_path
        self.muttrc = tmp_path / "muttrc"
        self.muttrc.write_text(
            f'set imap_user="{user}"\nset imap_pass="{PASSWORD}"\n'
            f'set folder="imap://127.0.0.1:{srv.port("imap")}/"\n'
            'set spoolfile="+INBOX"\nset ssl_starttls=no\nset ssl_force_tls=no\n'
            f'set header_cache="{tmp_path}/hc"\nset message_cachedir="{tmp_path}/mc"\n'
            "set mail_check=1\nset timeout=1\n" + extra
        )
        self.env = {**os.environ, "HOME": str(tmp_path), "TERM": "xterm"}
        self.runs = 0

    def screen_with(self, *wanted: str, unwanted: tuple[str, ...] = ()) -> tuple[str, str]:
        """Start neomutt, wait until the index shows every *wanted* text and none of
        *unwanted*, quit; returns the screen and neomutt's protocol log."""
        self.runs += 1
        name = f"lb{os.getpid()}-{self.runs}"
        log = self.tmp_path / f"neomutt{self.runs}.log"
        subprocess.run([self.tmux, "new-session", "-d", "-s", name, "-x", "160", "-y", "40",
                        f"{self.neomutt} -n -d 5 -l {log} -F {self.muttrc}"], check=True, env=self.env)
        try:
            screen = ""
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                screen = subprocess.run([self.tmux, "capture-pane", "-p", "-t", name], capture_output=True,
                                        text=True, env=self.env).stdout
                if all(w in screen for w in wanted) and not any(u in screen for u in unwanted):
                    break
                time.sleep(0.3)
            assert all(w in screen for w in wanted) and not any(u in screen for u in unwanted), screen
        finally:
            subprocess.run([self.tmux, "send-keys", "-t", name, "q"], env=self.env)
            time.sleep(0.5)
            subprocess.run([self.tmux, "kill-session", "-t", name], env=self.env, stderr=subprocess.DEVNULL)
        # neomutt appends a number to the log file's name.
        return screen, "".join(p.read_text(errors="replace") for p in self.tmp_path.glob(log.name + "*"))


def test_neomutt_shows_subject(server: ServerProcess, tmp_path: Path) -> None:
    server.add_user("mutt@example.com", PASSWORD)
    deliver(server, "mutt@example.com", "Quarterly numbers from Letterbox")
    NeoMutt(server, "mutt@example.com", tmp_path).screen_with("Quarterly numbers from Letterbox")


def test_neomutt_resyncs_with_qresync(server: ServerProcess, tmp_path: Path) -> None:
    """neomutt with its header cache and imap_qresync: a second start asks only for what
    changed (UID FETCH ... CHANGEDSINCE ... VANISHED) and shows the same as a full sync."""
    server.add_user("mutt@example.com", PASSWORD)
    deliver(server, "mutt@example.com", "First subject", "Second subject")
    mutt = NeoMutt(server, "mutt@example.com", tmp_path, "set imap_qresync=yes\n")
    _, log = mutt.screen_with("First subject", "Second subject")
    assert "ENABLED QRESYNC" in log

    c = imap(server, "mutt@example.com")
    c.select("INBOX")
    c.store("2", "+FLAGS", "(\\Flagged)")
    c.logout()
    deliver(server, "mutt@example.com", "Third subject")
    screen, log = mutt.screen_with("Third subject")
    assert "VANISHED)" in log and "QRESYNC failed" not in log
    assert any("Second subject" in line and "!" in line for line in screen.splitlines()), screen

    c = imap(server, "mutt@example.com")
    c.select("INBOX")
    c.store("1", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.logout()
    screen, log = mutt.screen_with("Second subject", "Third subject", unwanted=("First subject",))
    assert "* VANISHED (EARLIER) 1" in log



def test_mbsync_compresses(server: ServerProcess, tmp_path: Path) -> None:
    """mbsync turns COMPRESS=DEFLATE on when offered (RFC 4978) and syncs as usual:
    every answer arrives whole, none held back in the compressor."""
    mbsync = require_program("mbsync")
    server.add_user("zip@example.com", PASSWORD)
    deliver(server, "zip@example.com", "Compressed hello", "Another compressed one")
    local = tmp_path / "mail"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"IMAPAccount lb\nHost 127.0.0.1\nPort {server.port('imap')}\nUser zip@example.com\n"
        f"Pass {PASSWORD}\nSSLType None\nAuthMechs LOGIN\n\n"
        "IMAPStore remote\nAccount lb\n\n"
        f"MaildirStore local\nPath {local}/\nInbox {local}/INBOX\n\n"
        "Channel c\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Both\nSyncState *\n"
    )
    proc = subprocess.run([mbsync, "-D", "-c", str(rc), "-a"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "COMPRESS DEFLATE" in proc.stdout + proc.stderr
    bodies = [p.read_bytes() for p in _maildir_files(local / "INBOX")]
    assert sorted(b.split(b"Subject: ")[1].split(b"\n")[0].rstrip() for b in bodies) == [
        b"Another compressed one", b"Compressed hello"]
