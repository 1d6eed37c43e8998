"""`letterbox admin`, `letterbox audit`, and the audit entries CLI changes leave."""

from __future__ import annotations

import httpx

from tests.conftest import ServerProcess


def test_admin_commands(make_server: object) -> None:
    srv: ServerProcess = make_server(web="true")  # type: ignore[operator]
    out = srv.cli("admin", "add", "ops", "--password-stdin", input="ops-password-1\n")
    assert "administrator ops created" in out.stdout
    bad = srv.cli("admin", "add", "bob@example.com", "--password-stdin", input="pw\n", check=False)
    assert bad.returncode == 1 and "not an administrator name" in bad.stderr
    assert srv.cli("admin", "add", "ops", "--password-stdin", input="x\n", check=False).returncode == 1
    assert srv.cli("admin", "list").stdout.split() == ["ops"]
    token = srv.cli("admin", "token", "ops", "--label", "monitoring").stdout.strip()
    url = f"http://{srv.listeners['web'][0]}"
    r = httpx.get(url + "/api/v1/dashboard", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    listing = srv.cli("admin", "tokens").stdout
    assert "monitoring" in listing and token not in listing
    token_id = listing.split("\n")[3].split()[1]  # first row of the table, first column
    assert srv.cli("admin", "revoke", "0000000000", check=False).returncode == 1
    srv.cli("admin", "revoke", token_id)
    assert httpx.get(url + "/api/v1/dashboard", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    srv.cli("admin", "passwd", "ops", "--password-stdin", input="ops-password-2\n")
    srv.cli("admin", "del", "ops")
    assert "no administrators" in srv.cli("admin", "list").stdout


def test_cli_changes_are_audited(server: ServerProcess) -> None:
    server.cli("user", "add", "amy@example.com", "--password-stdin", input="amy-password\n")
    server.cli("quota", "set", "amy@example.com", "--bytes", "1M")
    server.cli("user", "set", "amy@example.com", "--disable", "--message", "Unpaid")
    server.cli("protocols", "disable", "smtp")
    server.cli("user", "del", "amy@example.com", "--yes")
    d = server.directory()
    try:
        entries = [(e.who.split(":")[0], e.client, e.what) for e in reversed(d.audit.recent())]
    finally:
        d.close()
    assert entries == [
        ("cli", "local", "created account amy@example.com (protocols imap,pop3, quota 0 bytes / 0 messages)"),
        ("cli", "local", "changed account amy@example.com: quota 1048576 bytes / 0 messages"),
        ("cli", "local", "changed account amy@example.com: disabled (Unpaid)"),
        ("cli", "local", "disabled SMTP"),
        ("cli", "local", "deleted account amy@example.com"),
    ]
    shown = server.cli("audit", "--about", "amy@example.com").stdout
    assert "deleted account" in shown and "disabled SMTP" not in shown
