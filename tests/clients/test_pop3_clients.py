"""POP3 with real client programs: curl, fetchmail (delete and keep) and getmail6."""

from __future__ import annotations

import os
import smtplib
import subprocess
from pathlib import Path

from tests.conftest import ServerProcess, require_program

PASSWORD = "s3cret pw"


def messages(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        body = b"".join(b"line %d of message %d\r\n" % (j, i) for j in range(50))
        # A line starting with "." exercises dot-stuffing on the way out.
        out.append(b"From: sender@example.org\r\nSubject: message %d\r\n\r\n" % i + body + b".dot line\r\n")
    return out


def deliver(srv: ServerProcess, rcpt: str, bodies: list[bytes]) -> list[bytes]:
    """Deliver over LMTP; return what the store holds (Received: header prepended)."""
    with smtplib.LMTP("127.0.0.1", srv.port("lmtp")) as lmtp:
        for b in bodies:
            lmtp.sendmail("sender@example.org", [rcpt], b)
    folder = srv.home / "data" / "mail" / rcpt.split("@")[1] / rcpt.split("@")[0] / "cur"
    files = sorted(folder.iterdir(), key=lambda p: int(p.name.split(",U=")[1].split(":")[0]))
    return [p.read_bytes() for p in files]


def stored_count(srv: ServerProcess, rcpt: str) -> int:
    folder = srv.home / "data" / "mail" / rcpt.split("@")[1] / rcpt.split("@")[0] / "cur"
    return len(list(folder.iterdir()))


def test_curl_pop3_and_pop3s(server: ServerProcess, tls_pair) -> None:  # type: ignore[no-untyped-def]
    curl = require_program("curl")
    server.add_user("curl@example.com", PASSWORD)
    stored = deliver(server, "curl@example.com", messages(2))
    user = f"curl@example.com:{PASSWORD}"
    listing = subprocess.run([curl, "-s", "-u", user, f"pop3://127.0.0.1:{server.port('pop3')}/"],
                             capture_output=True, check=True).stdout
    assert listing.split(b"\r\n")[:2] == [b"1 %d" % len(stored[0]), b"2 %d" % len(stored[1])]
    got = subprocess.run([curl, "-s", "-u", user, f"pop3://127.0.0.1:{server.port('pop3')}/2"],
                         capture_output=True, check=True).stdout
    assert got == stored[1]
    got = subprocess.run(
        [curl, "-s", "--cacert", str(tls_pair[0]), "-u", user, f"pop3s://localhost:{server.port('pop3s')}/1"],
        capture_output=True, check=True,
    ).stdout
    assert got == stored[0]
    # STLS on the plain port, required by the client.
    got = subprocess.run(
        [curl, "-s", "--ssl-reqd", "--cacert", str(tls_pair[0]), "-u", user,
         f"pop3://localhost:{server.port('pop3')}/1"],
        capture_output=True, check=True,
    ).stdout
    assert got == stored[0]


def _fetchmail(srv: ServerProcess, home: Path, tls_pair, keep: bool) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    fetchmail = require_program("fetchmail")
    home.mkdir(exist_ok=True)
    out = home / "out"
    out.mkdir(exist_ok=True)
    save = home / "save.sh"
    save.write_text('#!/bin/sh\ncat > "$1/msg.$(date +%s%N)"\n')
    save.chmod(0o755)
    rc = home / "fetchmailrc"
    rc.write_text(
        f'poll 127.0.0.1 service {srv.port("pop3")} protocol pop3 uidl\n'
        f'  user "fm@example.com" password "{PASSWORD}" mda "{save} {out}"\n'
        f"  sslcertck sslcertfile {tls_pair[0]} sslcommonname localhost"
        + (" keep\n" if keep else "\n")
    )
    rc.chmod(0o600)
    return subprocess.run(
        [fetchmail, "-f", str(rc), "--nosyslog", "--invisible"],
        env={**os.environ, "HOME": str(home)}, capture_output=True, text=True, timeout=60,
    )


def test_fetchmail_downloads_and_deletes(server: ServerProcess, tmp_path: Path, tls_pair) -> None:  # type: ignore[no-untyped-def]
    server.add_user("fm@example.com", PASSWORD)
    stored = deliver(server, "fm@example.com", messages(3))
    proc = _fetchmail(server, tmp_path / "fm", tls_pair, keep=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = sorted((tmp_path / "fm" / "out").iterdir())
    assert len(got) == 3
    # fetchmail hands messages to the MDA with LF line ends; otherwise byte-identical.
    assert sorted(p.read_bytes() for p in got) == sorted(m.replace(b"\r\n", b"\n") for m in stored)
    assert stored_count(server, "fm@example.com") == 0


def test_fetchmail_keep_uses_uidl(server: ServerProcess, tmp_path: Path, tls_pair) -> None:  # type: ignore[no-untyped-def]
    server.add_user("fm@example.com", PASSWORD)
    deliver(server, "fm@example.com", messages(2))
    home = tmp_path / "fmk"
    assert _fetchmail(server, home, tls_pair, keep=True).returncode == 0
    assert len(list((home / "out").iterdir())) == 2
    assert stored_count(server, "fm@example.com") == 2
    # Second run: nothing new (fetchmail exit 1 means "no mail").
    assert _fetchmail(server, home, tls_pair, keep=True).returncode == 1
    assert len(list((home / "out").iterdir())) == 2
    deliver(server, "fm@example.com", messages(1))
    assert _fetchmail(server, home, tls_pair, keep=True).returncode == 0
    assert len(list((home / "out").iterdir())) == 3
    assert stored_count(server, "fm@example.com") == 3


def test_getmail_leaves_mail_on_server(server: ServerProcess, tmp_path: Path, tls_pair) -> None:  # type: ignore[no-untyped-def]
    getmail = require_program("getmail")
    server.add_user("gm@example.com", PASSWORD)
    stored = deliver(server, "gm@example.com", messages(2))
    out = tmp_path / "out"
    out.mkdir()
    rcdir = tmp_path / "getmail"
    rcdir.mkdir()
    # getmail's Maildir destination refuses to run as root (CI runs as root), so an
    # external MDA stores each message as one file.
    save = tmp_path / "save.sh"
    save.write_text('#!/bin/sh\ncat > "$1/msg.$(date +%s%N)"\n')
    save.chmod(0o755)
    (rcdir / "getmailrc").write_text(
        "[retriever]\ntype = SimplePOP3SSLRetriever\nserver = localhost\n"
        f"port = {server.port('pop3s')}\nusername = gm@example.com\npassword = {PASSWORD}\n"
        f"ca_certs = {tls_pair[0]}\n\n"
        f"[destination]\ntype = MDA_external\npath = {save}\narguments = ('{out}',)\n"
        "allow_root_commands = true\nunixfrom = false\n\n"
        "[options]\nread_all = false\ndelete = false\nreceived = false\ndelivered_to = false\n"
        "message_log_syslog = false\n"
    )

    def run() -> int:
        proc = subprocess.run([getmail, "--getmaildir", str(rcdir), "-q"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return len(list(out.iterdir()))

    assert run() == 2
    got = sorted(p.read_bytes() for p in out.iterdir())
    assert got == sorted(m.replace(b"\r\n", b"\n") for m in stored)
    assert run() == 2  # UIDL: nothing fetched twice
    deliver(server, "gm@example.com", messages(1))
    assert run() == 3
    assert stored_count(server, "gm@example.com") == 3
