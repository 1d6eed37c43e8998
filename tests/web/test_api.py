"""The console's JSON API against a real server: administrators' operations applied
live, users' self-service, and the boundaries between them."""

from __future__ import annotations

import imaplib
import poplib
import subprocess
import sys
import time
from contextlib import closing

import pytest

from tests.server.test_switches import refused
from tests.waiting import wait_for

from .webutil import ADMIN, Console, deliver


def test_api_needs_credentials(console: Console) -> None:
    with console.anonymous() as c:
        r = c.get("/api/v1/dashboard")
        assert r.status_code == 401 and "log in" in r.json()["detail"]
        r = c.get("/api/v1/accounts", headers={"Authorization": "Bearer lbx_made-up"})
        assert r.status_code == 401 and "token" in r.json()["detail"]
        r = c.get("/api/v1/accounts", headers={"Authorization": "Basic abc"})
        assert r.status_code == 401
        assert c.get("/metrics").status_code == 401


def test_dashboard_reports_services_and_storage(console: Console) -> None:
    console.server.add_user("alice@example.com", "alice-pw-1")
    deliver(console.server, "alice@example.com")
    with console.api() as c:
        assert wait_for(lambda: c.get("/api/v1/dashboard").json()["storage"]["messages"] == 1, 10)
        d = c.get("/api/v1/dashboard").json()
    names = {s["name"]: s for s in d["services"]}
    assert set(names) == {"imap", "pop3", "lmtp", "smtp"}
    assert names["imap"]["enabled"] and names["imap"]["listening"]
    assert d["last_hour"]["deliveries"] >= 1
    assert d["storage"]["accounts"] == 1 and d["storage"]["bytes"] > 0


def test_switching_pop3_off_ends_sessions_and_refuses_clients(console: Console) -> None:
    srv = console.server
    srv.add_user("alice@example.com", "alice-pw-1")
    port = srv.port("pop3")
    pop = poplib.POP3("127.0.0.1", port, timeout=10)
    pop.user("alice@example.com")
    pop.pass_("alice-pw-1")
    with console.api() as c:
        r = c.put("/api/v1/services/pop3", json={"enabled": False})
        assert r.status_code == 200 and r.json()["enabled"] is False
        # The open session got the goodbye, new clients are refused.
        with pytest.raises((poplib.error_proto, OSError, EOFError)):
            pop.stat()
            pop.stat()
        assert refused(port)
        assert c.put("/api/v1/services/nntp", json={"enabled": True}).status_code == 422
        r = c.put("/api/v1/services/pop3", json={"enabled": True})
        assert r.json()["enabled"] is True and r.json()["listening"]
        audit = c.get("/api/v1/audit").json()
    assert [e["what"] for e in audit[:2]] == ["enabled POP3", "disabled POP3"]
    assert audit[0]["who"] == f"admin:{ADMIN}" and audit[0]["client"] == "127.0.0.1"


def test_account_life_cycle(console: Console) -> None:
    with console.api() as c:
        r = c.post("/api/v1/accounts", json={"address": "Carol@Example.com", "password": "carol-pw-1",
                                             "protocols": ["imap"], "quota_bytes": 2048})
        assert r.status_code == 201, r.text
        a = r.json()
        assert a["address"] == "carol@example.com" and a["protocols"] == ["imap"]
        assert {f["name"] for f in a["folders"]} >= {"INBOX", "Trash", "Sent"}
        assert c.post("/api/v1/accounts", json={"address": "carol@example.com",
                                                "password": "carol-pw-1"}).status_code == 409
        bad = c.post("/api/v1/accounts", json={"address": "not an address", "password": "carol-pw-1"})
        assert bad.status_code == 400 and "user@domain" in bad.json()["detail"]
        assert c.post("/api/v1/accounts", json={"address": "x@example.com", "password": "short"}).status_code == 422
        # POP3 is not allowed, IMAP is.
        with pytest.raises(poplib.error_proto, match="disabled"):
            pop = poplib.POP3("127.0.0.1", console.server.port("pop3"), timeout=10)
            pop.user("carol@example.com")
            pop.pass_("carol-pw-1")
        imap = imaplib.IMAP4("127.0.0.1", console.server.port("imap"))
        imap.login("carol@example.com", "carol-pw-1")
        imap.select("INBOX")
        sessions = c.get("/api/v1/accounts/carol@example.com").json()["sessions"]
        assert [s["protocol"] for s in sessions] == ["imap"]
        # Disabling with a message ends the session; the message is shown at login.
        r = c.patch("/api/v1/accounts/carol@example.com",
                    json={"enabled": False, "disabled_message": "Invoice 42 unpaid: call us"})
        assert r.status_code == 200 and r.json()["enabled"] is False
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            imap.noop()
            imap.noop()
        again = imaplib.IMAP4("127.0.0.1", console.server.port("imap"))
        with pytest.raises(imaplib.IMAP4.error, match="Invoice 42 unpaid"):
            again.login("carol@example.com", "carol-pw-1")
        c.patch("/api/v1/accounts/carol@example.com", json={"enabled": True, "password": "carol-pw-2"})
        again = imaplib.IMAP4("127.0.0.1", console.server.port("imap"))
        again.login("carol@example.com", "carol-pw-2")
        again.logout()
        last = c.get("/api/v1/accounts/carol@example.com").json()["last_logins"]
        assert last["imap"]["ip"] == "127.0.0.1"
        assert c.delete("/api/v1/accounts/carol@example.com").status_code == 204
        assert c.get("/api/v1/accounts/carol@example.com").status_code == 404
        assert c.delete("/api/v1/accounts/carol@example.com").status_code == 404
        whats = [e["what"] for e in c.get("/api/v1/audit", params={"about": "carol@example.com"}).json()]
    assert whats[0] == "deleted account carol@example.com"
    assert any("disabled (Invoice 42 unpaid: call us)" in w for w in whats)


def test_disconnect_one_session(console: Console) -> None:
    console.server.add_user("dave@example.com", "dave-pw-1")
    imap = imaplib.IMAP4("127.0.0.1", console.server.port("imap"))
    imap.login("dave@example.com", "dave-pw-1")
    with console.api() as c:
        [s] = c.get("/api/v1/accounts/dave@example.com").json()["sessions"]
        assert c.delete(f"/api/v1/accounts/dave@example.com/sessions/{s['id']}").status_code == 204
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            imap.noop()
            imap.noop()
        assert wait_for(lambda: not c.get("/api/v1/accounts/dave@example.com").json()["sessions"], 5)
        assert c.delete(f"/api/v1/accounts/dave@example.com/sessions/{s['id']}").status_code == 404


def test_quota_set_through_the_api_refuses_delivery(console: Console) -> None:
    srv = console.server
    srv.add_user("erin@example.com", "erin-pw-1")
    assert deliver(srv, "erin@example.com") == {}
    with console.api() as c:
        r = c.patch("/api/v1/accounts/erin@example.com", json={"quota_bytes": 100})
        assert r.json()["quota_bytes"] == 100
        refusal = deliver(srv, "erin@example.com")
        assert refusal["erin@example.com"][0] == 552
        # Deferring instead of rejecting is a live policy.
        r = c.patch("/api/v1/policies", json={"when_full": "defer"})
        assert r.json()["when_full"]["value"] == "defer" and r.json()["when_full"]["overridden"]
        refusal = deliver(srv, "erin@example.com")
        assert refusal["erin@example.com"][0] == 452 and b"4.2.2" in refusal["erin@example.com"][1]
        assert c.patch("/api/v1/policies", json={"trash_days": -1}).status_code == 422
        assert c.patch("/api/v1/policies", json={"warn_at": [0]}).status_code == 400


def test_accounts_search_sort_filter_and_paging(console: Console) -> None:
    srv = console.server
    from letterbox.store.api import Quota

    for i in range(12):
        srv.add_user(f"user{i:02d}@example.com", "pw-long-enough", quota=Quota(bytes=1000 if i % 2 else 0))
    for i in (1, 3, 4):
        for _ in range(i):
            deliver(srv, f"user{i:02d}@example.com")
    srv.cli("protocols")  # any CLI call; the server measures changed accounts within seconds
    with console.api() as c:
        assert wait_for(lambda: c.get("/api/v1/accounts", params={"sort": "bytes", "descending": True})
                        .json()["accounts"][0]["address"] == "user04@example.com", 10)
        page = c.get("/api/v1/accounts", params={"limit": 5, "offset": 10}).json()
        assert page["total"] == 12 and [a["address"] for a in page["accounts"]] == ["user10@example.com",
                                                                                    "user11@example.com"]
        found = c.get("/api/v1/accounts", params={"search": "user0"}).json()
        assert found["total"] == 10
        # About 200 bytes a message against 1,000 bytes of quota for the odd ones.
        over = c.get("/api/v1/accounts", params={"over_percent": 50}).json()["accounts"]
        assert [(a["address"], a["percent"] > 50) for a in over] == [("user03@example.com", True)]
        over = c.get("/api/v1/accounts", params={"over_percent": 10, "sort": "percent"}).json()["accounts"]
        assert [a["address"] for a in over] == ["user01@example.com", "user03@example.com"]
        assert c.get("/api/v1/accounts", params={"sort": "nonsense"}).status_code == 422
        assert c.get("/api/v1/accounts", params={"limit": 100000}).status_code == 422


def test_user_self_service_and_boundaries(console: Console) -> None:
    srv = console.server
    srv.add_user("fay@example.com", "fay-pw-12")
    srv.add_user("gus@example.com", "gus-pw-12")
    for _ in range(3):
        deliver(srv, "fay@example.com")
    client, csrf = console.login("fay@example.com", "fay-pw-12")
    with closing(client):
        me = client.get("/api/v1/me").json()
        assert me["address"] == "fay@example.com" and me["messages"] == 3
        # A user's session is not an administrator's, and never reaches another account.
        for path in ("/api/v1/dashboard", "/api/v1/accounts", "/api/v1/accounts/gus@example.com", "/metrics"):
            r = client.get(path)
            assert r.status_code == 403, (path, r.text)
        assert client.get("/admin/accounts/gus@example.com").status_code == 403
        # Changes need the CSRF token.
        body = {"folder": "INBOX", "seen": False, "older_than_days": 0, "action": "preview"}
        assert client.post("/api/v1/me/cleanup", json=body).status_code == 403
        r = client.post("/api/v1/me/cleanup", json=body, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200 and r.json()["messages"] == 3
        r = client.post("/api/v1/me/cleanup", json={**body, "folder": "Nope"}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 404
        r = client.post("/api/v1/me/password", json={"current": "wrong", "new": "fay-pw-new1"},
                        headers={"X-CSRF-Token": csrf})
        assert r.status_code == 403
        # A lone surrogate (a JSON escape no UTF-8 can carry) is a clear 422 that does not
        # repeat what was sent: it may be a password.
        for raw in (b'{"current": "\\udd9f", "new": "fay-pw-new1"}', b'{"current": "fay-pw-12", "new": "\\udd9f-secret"}'):
            r = client.post("/api/v1/me/password", content=raw,
                            headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})
            assert r.status_code == 422, r.text
            assert "secret" not in r.text and "input" not in r.json()["errors"][0]
        r = client.post("/api/v1/me/password", json={"current": "fay-pw-12", "new": "fay-pw-new1"},
                        headers={"X-CSRF-Token": csrf})
        assert r.status_code == 204
    imap = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    imap.login("fay@example.com", "fay-pw-new1")
    imap.logout()
    # An administrator's session cannot use the user API either.
    admin, _ = console.login(ADMIN, "admin-secret-1")
    with closing(admin):
        assert admin.get("/api/v1/me").status_code == 403


def test_cleanup_moves_to_trash_and_imap_sees_it(console: Console) -> None:
    srv = console.server
    srv.add_user("hal@example.com", "hal-pw-123")
    big = b"From: a@example.org\r\nSubject: big\r\n\r\n" + b"x" * 3_000_000 + b"\r\n"
    for body in (big, big, b"From: a@example.org\r\nSubject: small\r\n\r\nhi\r\n"):
        deliver(srv, "hal@example.com", body)
    imap = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    imap.login("hal@example.com", "hal-pw-123")
    assert imap.select("INBOX")[1] == [b"3"]
    client, csrf = console.login("hal@example.com", "hal-pw-123")
    with closing(client):
        body = {"folder": "INBOX", "larger_than_mb": 2}
        r = client.post("/api/v1/me/cleanup", json={**body, "action": "trash"}, headers={"X-CSRF-Token": csrf})
        assert r.json()["done"] == 2 and r.json()["moved_to"] == "Trash"
        typ, data = imap.noop()
        assert imap.response("EXPUNGE")[1] or imap.select("INBOX")[1] == [b"1"]
        folders = {f["name"]: f for f in client.get("/api/v1/me").json()["folders"]}
        assert folders["INBOX"]["messages"] == 1 and folders["Trash"]["messages"] == 2
        before = client.get("/api/v1/me").json()["bytes"]
        r = client.post("/api/v1/me/cleanup", json={"folder": "Trash", "older_than_days": 0, "action": "trash"},
                        headers={"X-CSRF-Token": csrf})
        assert r.json()["done"] == 2 and r.json()["moved_to"] is None  # in Trash: deleted
        after = client.get("/api/v1/me").json()["bytes"]
        assert before - after > 6_000_000
    imap.logout()


def test_bad_requests_get_clear_4xx(console: Console) -> None:
    with console.api() as c:
        r = c.post("/api/v1/accounts", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["detail"]
        r = c.post("/api/v1/accounts", content=b"x" * 100_000, headers={"content-type": "application/json"})
        assert r.status_code == 413 and "larger than" in r.json()["detail"]
        r = c.get("/api/v1/nothing-here")
        assert r.status_code == 404 and r.json()["detail"]
        r = c.get("/api/v1/accounts/nobody@example.com")
        assert r.status_code == 404 and "no account" in r.json()["detail"]
        r = c.patch("/api/v1/accounts/%00", json={"enabled": True})
        assert r.status_code in (400, 404)
        r = c.patch("/api/v1/policies", json={})
        assert r.status_code == 400 and "nothing to change" in r.json()["detail"]
        r = c.get("/api/v1/openapi.json")
        assert r.status_code == 200 and "/api/v1/accounts" in r.json()["paths"]


def test_metrics(console: Console) -> None:
    srv = console.server
    srv.add_user("ivy@example.com", "ivy-pw-123")
    deliver(srv, "ivy@example.com")
    imap = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    with pytest.raises(imaplib.IMAP4.error):
        imap.login("ivy@example.com", "wrong")
    imap = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    imap.login("ivy@example.com", "ivy-pw-123")
    imap.select("INBOX")
    # `letterbox deliver` (an MTA's pipe) tells the running server what it did.
    for to, code in (("ivy@example.com", 0), ("nobody@example.com", 67)):
        lda = subprocess.run([sys.executable, "-m", "letterbox", "deliver", "--to", to],
                             input=b"Subject: lda\n\nhi\n", capture_output=True, env=srv.env, timeout=60)
        assert lda.returncode == code, lda.stderr
    with console.api() as c:
        deadline = time.monotonic() + 10
        while True:
            text = c.get("/metrics").text
            if 'letterbox_stored_messages 2.0' in text or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    imap.logout()
    assert 'letterbox_logins_total{outcome="ok",protocol="imap"} 1.0' in text
    assert 'letterbox_logins_total{outcome="bad_credentials",protocol="imap"} 1.0' in text
    assert 'letterbox_login_penalties_total{protocol="imap"} 1.0' in text
    assert 'letterbox_deliveries_total{outcome="stored",protocol="lmtp"} 1.0' in text
    assert 'letterbox_deliveries_total{outcome="stored",protocol="lda"} 1.0' in text
    assert 'letterbox_deliveries_total{outcome="unknown_user",protocol="lda"} 1.0' in text
    assert 'letterbox_imap_command_seconds_count{command="SELECT"} 1.0' in text
    assert 'letterbox_sessions{protocol="imap"} 1.0' in text
    assert 'letterbox_connections_total{protocol="imap"} 2.0' in text
    assert 'letterbox_stored_messages 2.0' in text
