"""SCRAM-SHA-256 against a running server: Python's imaplib and poplib with scramp's
client, mbsync (Cyrus SASL) and GNU SASL's client, and the CLI writing the secrets.

(neomutt 20220429 tries PLAIN before GNU SASL and takes no SASL name in
imap_authenticators, so it cannot be made to use SCRAM where PLAIN is offered.)"""

from __future__ import annotations

import base64
import imaplib
import poplib
import smtplib
import ssl
import subprocess
from pathlib import Path

import pytest
from scramp import ScramClient

from letterbox.auth.passwords import hash_password
from letterbox.server.tlsbinding import tls_exporter
from tests.conftest import REQUIRE_CLIENTS, ServerProcess, require_program
from tests.scramplus import PlusClient

PASSWORD = "correct horse"


class ScramAuth:
    """An imaplib authobject: called with each decoded challenge, returns the response."""

    def __init__(self, user: str, password: str) -> None:
        self.client = ScramClient(["SCRAM-SHA-256"], user, password)
        self.step = 0
        self.verified = False

    def __call__(self, challenge: bytes) -> bytes:
        self.step += 1
        if self.step == 1:
            return self.client.get_client_first().encode()
        if self.step == 2:
            self.client.set_server_first(challenge.decode())
            return self.client.get_client_final().encode()
        self.client.set_server_final(challenge.decode())  # raises if the server is a fake
        self.verified = True
        return b""


def imap_scram(srv: ServerProcess, user: str, password: str, tls: ssl.SSLContext | None = None) -> imaplib.IMAP4:
    if tls is None:
        c = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    else:
        c = imaplib.IMAP4_SSL("localhost", srv.port("imaps"), ssl_context=tls)
    auth = ScramAuth(user, password)
    try:
        typ, data = c.authenticate("SCRAM-SHA-256", auth)
    except imaplib.IMAP4.error:
        c.shutdown()
        raise
    assert typ == "OK" and auth.verified, data
    return c


def deliver(srv: ServerProcess, rcpt: str, subject: str) -> None:
    with smtplib.LMTP("127.0.0.1", srv.port("lmtp")) as lmtp:
        lmtp.sendmail("sender@example.org", [rcpt], f"From: sender@example.org\r\nSubject: {subject}\r\n\r\nhi\r\n")


def test_imaplib_scram_login(server: ServerProcess, tls_pair) -> None:  # type: ignore[no-untyped-def]
    server.add_user("scram@example.com", PASSWORD)
    deliver(server, "scram@example.com", "over scram")
    c = imap_scram(server, "scram@example.com", PASSWORD)
    assert c.select("INBOX") == ("OK", [b"1"])
    c.logout()
    ctx = ssl.create_default_context(cafile=str(tls_pair[0]))
    imap_scram(server, "scram@example.com", PASSWORD, tls=ctx).logout()
    # Wrong password and unknown user: the same NO [AUTHENTICATIONFAILED].
    answers = []
    for user, pw in (("scram@example.com", "wrong"), ("nobody@example.com", PASSWORD)):
        with pytest.raises(imaplib.IMAP4.error) as e:
            imap_scram(server, user, pw)
        answers.append(str(e.value))
    assert answers[0] == answers[1] and "AUTHENTICATIONFAILED" in answers[0]


def test_imap_capability_offers_scram_without_plus(server: ServerProcess) -> None:
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    assert "AUTH=SCRAM-SHA-256" in c.capabilities
    assert not any(cap.endswith("-PLUS") for cap in c.capabilities)
    c.logout()


def pop3_scram(srv: ServerProcess, user: str, password: str) -> tuple[poplib.POP3, bytes]:
    p = poplib.POP3("127.0.0.1", srv.port("pop3"))
    client = ScramClient(["SCRAM-SHA-256"], user, password)
    b64 = base64.b64encode
    p._putcmd("AUTH SCRAM-SHA-256 " + b64(client.get_client_first().encode()).decode())
    resp = p._getresp()
    assert resp.startswith(b"+ "), resp
    client.set_server_first(base64.b64decode(resp[2:]).decode())
    p._putcmd(b64(client.get_client_final().encode()).decode())
    try:
        resp = p._getresp()
    except poplib.error_proto as e:
        return p, e.args[0]
    client.set_server_final(base64.b64decode(resp[2:]).decode())
    p._putcmd("")
    return p, p._getresp()


def test_poplib_scram_login(server: ServerProcess) -> None:
    server.add_user("pop@example.com", PASSWORD)
    deliver(server, "pop@example.com", "popped")
    p, resp = pop3_scram(server, "pop@example.com", PASSWORD)
    assert resp.startswith(b"+OK Logged in, maildrop has 1 message"), resp
    assert b"Subject: popped" in b"\r\n".join(p.retr(1)[1])
    p.quit()
    p, resp = pop3_scram(server, "pop@example.com", "wrong")
    assert resp == b"-ERR [AUTH] Authentication failed."
    p.quit()


def test_cli_writes_secrets_on_add_and_passwd(server: ServerProcess) -> None:
    server.cli("user", "add", "cli@example.com", "--password-stdin", input="first pw\n")
    assert "SCRAM-SHA-256  yes" in server.cli("user", "show", "cli@example.com").stdout
    imap_scram(server, "cli@example.com", "first pw").logout()
    server.cli("user", "passwd", "cli@example.com", "--password-stdin", input="second pw\n")
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imap_scram(server, "cli@example.com", "first pw")
    imap_scram(server, "cli@example.com", "second pw").logout()


def test_account_from_before_scram_gets_secrets_at_its_next_login(server: ServerProcess) -> None:
    d = server.directory()
    try:
        d.add("legacy@example.com", hash_password(PASSWORD))  # as `user add` did before SCRAM
    finally:
        d.close()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imap_scram(server, "legacy@example.com", PASSWORD)
    assert "not yet" in server.cli("user", "show", "legacy@example.com").stdout
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    c.login("legacy@example.com", PASSWORD)
    c.logout()
    imap_scram(server, "legacy@example.com", PASSWORD).logout()
    d = server.directory()
    try:
        assert d.require("legacy@example.com").scram
    finally:
        d.close()


def test_mbsync_with_scram(server: ServerProcess, tmp_path: Path) -> None:
    """isync through Cyrus SASL's SCRAM plugin (libsasl2-modules)."""
    mbsync = require_program("mbsync")
    server.add_user("mbscram@example.com", PASSWORD)
    deliver(server, "mbscram@example.com", "synced over scram")
    local = tmp_path / "mail"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"IMAPAccount lb\nHost 127.0.0.1\nPort {server.port('imap')}\nUser mbscram@example.com\n"
        f"Pass \"{PASSWORD}\"\nSSLType None\nAuthMechs SCRAM-SHA-256\n\n"
        "IMAPStore remote\nAccount lb\n\n"
        f"MaildirStore local\nPath {local}/\nInbox {local}/INBOX\n\n"
        "Channel c\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Both\nSyncState *\n"
    )
    proc = subprocess.run([mbsync, "-D", "-c", str(rc), "-a"], capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0 and "no worthy mechs" in out.lower():
        msg = "Cyrus SASL has no SCRAM plugin here (apt-get install libsasl2-modules; .ci/run does)"
        if REQUIRE_CLIENTS:
            pytest.fail(msg)
        pytest.skip(msg)
    assert proc.returncode == 0, out
    assert "AUTHENTICATE SCRAM-SHA-256" in out
    files = [p for sub in ("cur", "new") for p in (local / "INBOX" / sub).iterdir()]
    assert len(files) == 1 and b"Subject: synced over scram" in files[0].read_bytes()


def gsasl_imap(
    srv: ServerProcess, user: str, password: str, *options: str, mechanism: str = "SCRAM-SHA-256",
) -> subprocess.CompletedProcess[str]:
    gsasl = require_program("gsasl")
    return subprocess.run(
        [gsasl, "--client", "--imap", f"--connect=localhost:{srv.port('imap')}", f"--mechanism={mechanism}",
         "-a", user, "-p", password, *options],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )


def test_gnu_sasl_client(server: ServerProcess, tls_pair) -> None:  # type: ignore[no-untyped-def]
    """GNU SASL's own client (the library neomutt uses), which checks the server-final."""
    server.add_user("gnu@example.com", PASSWORD)
    proc = gsasl_imap(server, "gnu@example.com", PASSWORD, "--no-starttls")
    assert proc.returncode == 0 and "] Logged in" in proc.stdout, proc.stdout + proc.stderr
    assert "Client authentication finished (server trusted)" in proc.stderr
    # Over STARTTLS without channel binding: plain SCRAM-SHA-256 still works where -PLUS is offered.
    proc = gsasl_imap(server, "gnu@example.com", PASSWORD, "--starttls", "--no-cb", f"--x509-ca-file={tls_pair[0]}")
    assert proc.returncode == 0 and "] Logged in" in proc.stdout, proc.stdout + proc.stderr
    # An authorization identity naming the user itself, as PLAIN allows (RFC 5802 5.1 "a=").
    proc = gsasl_imap(server, "gnu@example.com", PASSWORD, "--no-starttls", "-z", "gnu@example.com")
    assert proc.returncode == 0 and "] Logged in" in proc.stdout, proc.stdout + proc.stderr
    proc = gsasl_imap(server, "gnu@example.com", PASSWORD, "--no-starttls", "-z", "other@example.com")
    assert proc.returncode != 0 and "Acting as another user is not supported" in proc.stdout
    proc = gsasl_imap(server, "gnu@example.com", "wrong", "--no-starttls")
    assert proc.returncode != 0 and "NO [AUTHENTICATIONFAILED] Authentication failed" in proc.stdout


def test_gnu_sasl_client_binds_to_the_tls_channel(server: ServerProcess, tls_pair) -> None:  # type: ignore[no-untyped-def]
    """SCRAM-SHA-256-PLUS with tls-exporter (RFC 9266): GnuTLS computes the binding on its
    side of the connection, so a login proves both ends agree on the TLS session."""
    server.add_user("bound@example.com", PASSWORD)
    proc = gsasl_imap(server, "bound@example.com", PASSWORD, "--starttls", f"--x509-ca-file={tls_pair[0]}",
                      mechanism="SCRAM-SHA-256-PLUS")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "] Logged in" in proc.stdout, out
    assert "AUTHENTICATE SCRAM-SHA-256-PLUS" in out
    assert "Client authentication finished (server trusted)" in proc.stderr
    # Under -PLUS a wrong password is refused as always.
    proc = gsasl_imap(server, "bound@example.com", "wrong", "--starttls", f"--x509-ca-file={tls_pair[0]}",
                      mechanism="SCRAM-SHA-256-PLUS")
    assert proc.returncode != 0 and "AUTHENTICATIONFAILED" in proc.stdout, proc.stdout + proc.stderr


class PlusAuth:
    """An imaplib authobject for SCRAM-SHA-256-PLUS, binding to the client's TLS socket."""

    def __init__(self, user: str, password: str, sock: ssl.SSLSocket) -> None:
        binding = tls_exporter(sock)
        assert binding is not None
        self.client = PlusClient(user, password, binding)
        self.step = 0
        self.verified = False

    def __call__(self, challenge: bytes) -> bytes:
        self.step += 1
        if self.step == 1:
            return self.client.first()
        if self.step == 2:
            return self.client.final(challenge)
        self.verified = self.client.verify(challenge)
        return b""


def test_imaps_and_pop3_stls_offer_and_accept_plus(server: ServerProcess, tls_pair) -> None:  # type: ignore[no-untyped-def]
    """Implicit TLS (IMAPS) and STLS (POP3) both carry the binding to the session."""
    server.add_user("plus@example.com", PASSWORD)
    deliver(server, "plus@example.com", "bound")
    ctx = ssl.create_default_context(cafile=str(tls_pair[0]))
    c = imaplib.IMAP4_SSL("localhost", server.port("imaps"), ssl_context=ctx)
    assert "AUTH=SCRAM-SHA-256-PLUS" in c.capabilities
    auth = PlusAuth("plus@example.com", PASSWORD, c.sock)  # type: ignore[arg-type]
    assert c.authenticate("SCRAM-SHA-256-PLUS", auth)[0] == "OK" and auth.verified
    assert c.select("INBOX") == ("OK", [b"1"])
    c.logout()

    p = poplib.POP3("127.0.0.1", server.port("pop3"))
    assert not any("PLUS" in cap for cap in p.capa().get("SASL", []))
    p.stls(ctx)
    assert "SCRAM-SHA-256-PLUS" in p.capa()["SASL"]
    binding = tls_exporter(p.sock)
    assert binding is not None
    b64 = base64.b64encode
    for password, expect in (("wrong", b"-ERR [AUTH] Authentication failed."), (PASSWORD, b"+OK Logged in")):
        client = PlusClient("plus@example.com", password, binding)
        p._putcmd("AUTH SCRAM-SHA-256-PLUS " + b64(client.first()).decode())
        resp = p._getresp()
        assert resp.startswith(b"+ "), resp
        p._putcmd(b64(client.final(base64.b64decode(resp[2:]))).decode())
        try:
            resp = p._getresp()
        except poplib.error_proto as e:
            assert e.args[0] == expect
            continue
        assert client.verify(base64.b64decode(resp[2:]))
        p._putcmd("")
        assert p._getresp().startswith(expect)
    assert b"Subject: bound" in b"\r\n".join(p.retr(1)[1])
    p.quit()
