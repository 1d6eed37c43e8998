"""Administration commands: accounts, passwords, quotas, usage, errors without tracebacks."""

from __future__ import annotations

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
