"""Administration commands: accounts, passwords, quotas, usage, errors without tracebacks."""

from __future__ import annotations

import imaplib
import poplib
import smtplib

from tests.conftest import ServerProcess

MSG = b"From: a@example.org\r\nSubject: hi\r\n\r\n" + b"hello world\r\n" * 20


def test_user_lifecycle_and_usage(server: ServerProcess) -> None:
    server.cli("user", "add", "Frank@Example.com", "--password-stdin", input="pw1\n")
    listing = server.cli("user", "list").stdout
    assert "frank@example.com" in listing
    # Duplicate and malformed addresses give one clear line, no traceback.
    dup = server.cli("user", "add", "frank@example.com", "--password-stdin", input="x\n", check=False)
    assert dup.returncode != 0 and "already exists" in dup.stderr and "Traceback" not in dup.stderr
    bad = server.cli("user", "add", "not-an-address", "--password-stdin", input="x\n", check=False)
    assert bad.returncode != 0 and "user@domain" in bad.stderr and "Traceback" not in bad.stderr

    with smtplib.LMTP("127.0.0.1", server.port("lmtp")) as lmtp:
        for _ in range(3):
            lmtp.sendmail("a@example.org", ["frank@example.com"], MSG)
    server.cli("quota", "set", "frank@example.com", "--bytes", "1M", "--messages", "100")
    usage = server.cli("usage").stdout
    line = next(ln for ln in usage.splitlines() if "frank@example.com" in ln)
    assert " 3 " in line and "1.0 MiB" in line
    shown = server.cli("user", "show", "frank@example.com").stdout
    assert "messages" in shown and "3 (quota 100)" in shown

    # Password change takes effect at once, also for a client whose login was cached.
    pop = poplib.POP3("127.0.0.1", server.port("pop3"))
    pop.user("frank@example.com")
    pop.pass_("pw1")
    n, size = pop.stat()
    assert n == 3
    pop.dele(1)
    pop.quit()
    usage = server.cli("usage").stdout
    line = next(ln for ln in usage.splitlines() if "frank@example.com" in ln)
    assert " 2 " in line and str(size - size // 3) in line.replace(",", "") or " 2 " in line
    server.cli("user", "passwd", "frank@example.com", "--password-stdin", input="pw2\n")
    pop = poplib.POP3("127.0.0.1", server.port("pop3"))
    pop.user("frank@example.com")
    try:
        pop.pass_("pw1")
        raise AssertionError("old password still accepted")
    except poplib.error_proto:
        pass
    pop = poplib.POP3("127.0.0.1", server.port("pop3"))
    pop.user("frank@example.com")
    pop.pass_("pw2")
    pop.quit()

    server.cli("user", "del", "frank@example.com", "--yes")
    assert "frank@example.com" not in server.cli("user", "list").stdout
    assert not (server.home / "data" / "mail" / "example.com" / "frank").exists()


def test_usage_equals_sum_of_stored_messages(server: ServerProcess) -> None:
    server.add_user("gina@example.com")
    server.add_user("hank@example.com")
    sizes = []
    with smtplib.LMTP("127.0.0.1", server.port("lmtp")) as lmtp:
        for i in range(5):
            body = MSG + (b"x" * 70 + b"\r\n") * (i * 10)
            lmtp.sendmail("a@example.org", ["gina@example.com"], body)
    folder = server.home / "data" / "mail" / "example.com" / "gina" / "cur"
    sizes = [p.stat().st_size for p in folder.iterdir()]
    usage = server.cli("usage").stdout.splitlines()
    gina = next(ln for ln in usage if "gina@example.com" in ln)
    assert str(sum(sizes)) in gina
    # Sorted by use: gina (5 messages) before hank (none).
    assert usage.index(gina) < usage.index(next(ln for ln in usage if "hank@example.com" in ln))


def test_bad_config_is_one_clear_line(server: ServerProcess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.toml"
    bad.write_text("[pop3]\ndelete_mode = 'shred'\n")
    proc = server.cli("-c", str(bad), "serve", check=False)
    assert proc.returncode == 1
    assert "pop3.delete_mode = 'shred' is not allowed" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_protocols_table(server: ServerProcess) -> None:
    out = server.cli("protocols").stdout
    for name in ("IMAP", "POP3", "LMTP", "SMTP"):
        assert name in out
    assert "127.0.0.1" in out


def test_acl_set_get_delete(server: ServerProcess) -> None:
    for user in ("info@example.com", "ann@example.com"):
        server.add_user(user)
    out = server.cli("acl", "set", "info@example.com", "INBOX", "Ann@Example.com", "lrsd").stdout
    assert "ann@example.com" in out and "lrste" in out and "expunge" in out
    server.cli("acl", "set", "info@example.com", "INBOX", "ann@example.com", "+w")
    server.cli("acl", "set", "info@example.com", "INBOX", "ann@example.com", "-d")
    server.cli("acl", "set", "info@example.com", "Sent", "anyone", "l")
    listing = server.cli("acl", "get", "info@example.com").stdout
    assert "INBOX" in listing and "lrsw" in listing and "anyone" in listing and "Sent" in listing
    one = server.cli("acl", "get", "info@example.com", "INBOX").stdout
    assert "ann@example.com" in one and "anyone" not in one
    # Ann sees it at once through the running server.
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    c.login("ann@example.com", "secret")
    assert c.myrights("Shared/info@example.com/INBOX") == ("OK", [b"Shared/info@example.com/INBOX lrsw"])
    c.logout()
    out = server.cli("acl", "delete", "info@example.com", "INBOX", "ann@example.com").stdout
    assert "removed" in out
    assert "ann@example.com" not in server.cli("acl", "get", "info@example.com", "INBOX").stdout
    # Every mistake is one clear line naming it, no traceback.
    for args, said in [
        (("acl", "set", "nobody@example.com", "INBOX", "ann@example.com", "lr"), "no account"),
        (("acl", "set", "info@example.com", "Nowhere", "ann@example.com", "lr"), "Nowhere"),
        (("acl", "set", "info@example.com", "INBOX", "bob@example.com", "lr"), "no account bob@example.com"),
        (("acl", "set", "info@example.com", "INBOX", "ann@example.com", "lrQ"), "Uppercase"),
        (("acl", "set", "info@example.com", "INBOX", "ann@example.com", "lrz"), "z right"),
        (("acl", "set", "info@example.com", "INBOX", "info@example.com", "lr"), "always has every right"),
        (("acl", "set", "info@example.com", "INBOX", "not-an-address", "lr"), "user@domain"),
        (("acl", "get", "info@example.com", "Nowhere"), "Nowhere"),
    ]:
        res = server.cli(*args, check=False)
        assert res.returncode != 0 and said in res.stderr and "Traceback" not in res.stderr, (args, res.stderr)
