"""Server policies: Trash/Junk auto-expunge, quota warnings once per crossing, and what a
full mailbox does to a delivery (reject or defer), in the config, the CLI and live."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from letterbox import policy
from letterbox.config import Settings
from letterbox.server.retention import Retention
from letterbox.server.usage import UsageTracker
from letterbox.store.api import Quota
from tests.conftest import ServerProcess
from tests.imap.test_fetch_helpers import USER, Env
from tests.web.webutil import deliver

DAY = 86400.0
MSG = b"From: a@example.org\r\nSubject: old news\r\n\r\nhello\r\n"


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    yield e  # type: ignore[misc]
    e.close()


def test_trash_expunged_days_after_it_arrived_there(env: Env, tmp_path: Path) -> None:
    async def go() -> None:
        env.ctx.policy = policy.Policy(trash_days=7, junk_days=2)
        retention = Retention(env.ctx, tmp_path / "retention.sqlite")
        # Old mail thrown away now counts from now, not from its INTERNALDATE.
        await env.append(MSG, MSG, mailbox="Trash", date=1_000_000.0)
        await env.append(MSG, mailbox="Junk")
        await env.append(MSG)  # INBOX is never touched
        watcher = await env.session("SELECT Trash")
        t0 = 2_000_000_000.0
        assert await retention.run(now=t0) == 0
        await env.append(MSG, mailbox="Trash")
        assert await retention.run(now=t0 + 1 * DAY) == 0
        assert await retention.run(now=t0 + 3 * DAY) == 1  # Junk after 2 days
        assert await retention.run(now=t0 + 7 * DAY + 1) == 2  # the first two of Trash
        # The selected session hears of the expunges as usual.
        out = await watcher.cmd("n NOOP")
        assert out.count(b" EXPUNGE\r\n") == 2, out
        assert await retention.run(now=t0 + 8 * DAY + 1) == 1  # the one thrown away a day later
        acc = await env.account()
        counts = {f.name: f.messages for f in await acc.folder_usage()}
        assert counts["Trash"] == 0 and counts["Junk"] == 0 and counts["INBOX"] == 1
        env.ctx.policy = policy.Policy()
        await env.append(MSG, mailbox="Trash")
        assert await retention.run(now=t0 + 100 * DAY) == 0  # off: nothing goes
        retention.close()

    asyncio.run(go())


def test_quota_warning_once_per_crossing(env: Env) -> None:
    async def go() -> None:
        env.ctx.policy = policy.Policy(warn_at=(50, 80))
        env.ctx.directory.set_quota(USER, Quota(bytes=100_000))
        tracker = UsageTracker(env.ctx)
        body = b"From: a@example.org\r\nSubject: fill\r\n\r\n" + b"x" * 10_000 + b"\r\n"

        async def inbox_subjects() -> list[str]:
            acc = await env.account()
            box = await acc.get_mailbox("INBOX")
            _m, uids, _u = await acc.select_info("INBOX")
            rows = await acc.fetch(box.id, uids, ["subject"])
            return [r.subject for r in rows if "full" in r.subject]

        await env.append(*[body] * 4)  # 40%
        await tracker.flush()
        assert await inbox_subjects() == []
        await env.append(body, body)  # 60%: one warning
        await tracker.flush()
        assert await inbox_subjects() == ["your mailbox is 50% full"]
        await env.append(body)  # still between 50 and 80: nothing new
        await tracker.flush()
        assert len(await inbox_subjects()) == 1
        await env.append(body, body)  # over 80%
        await tracker.flush()
        assert await inbox_subjects() == ["your mailbox is 50% full", "your mailbox is 80% full"]
        assert env.ctx.directory.warned_level(USER) == 80
        # Falling below arms the warnings again; the next crossing warns once more.
        acc = await env.account()
        box = await acc.get_mailbox("INBOX")
        _m, uids, _u = await acc.select_info("INBOX")
        await acc.expunge(box.id, list(uids)[:6])
        await tracker.flush()
        assert env.ctx.directory.warned_level(USER) == 0
        await env.append(*[body] * 4)
        await tracker.flush()
        assert (await inbox_subjects())[-1] == "your mailbox is 50% full"

    asyncio.run(go())


def test_percent_used_takes_the_larger_share(env: Env) -> None:
    from letterbox.store.api import Usage

    acc = env.ctx.directory.set_quota(USER, Quota(bytes=1000, messages=10))
    assert acc.quota.percent_used(Usage(messages=5, bytes=100)) == 50.0
    assert acc.quota.percent_used(Usage(messages=1, bytes=900)) == 90.0
    acc = env.ctx.directory.set_quota(USER, Quota())
    assert acc.quota.percent_used(Usage(1, 1)) is None


def test_policy_values_are_checked() -> None:
    assert policy.check("warn_at", "95, 80,90%") == [80, 90, 95]
    assert policy.check("warn_at", "none") == []
    assert policy.check("trash_days", "30") == 30
    for key, value in (("when_full", "bounce"), ("warn_at", "0"), ("warn_at", "x"), ("trash_days", -1),
                       ("junk_days", True), ("colour", 1)):
        with pytest.raises(policy.PolicyError):
            policy.check(key, value)
    # A stored override that no longer validates is ignored, not fatal.
    p = policy.effective(Settings(), {"when_full": json.dumps("defer"), "trash_days": "\"many\""})
    assert p.when_full == "defer" and p.trash_days == 0


def test_reject_or_defer_when_full_config_and_cli(make_server: object) -> None:
    srv: ServerProcess = make_server(when_full="defer")  # type: ignore[operator]
    srv.add_user("kim@example.com", "kim-pw-123", quota=Quota(bytes=300))
    assert deliver(srv, "kim@example.com") == {}
    big = b"From: a@example.org\r\nSubject: big\r\n\r\n" + b"y" * 400 + b"\r\n"
    code, text = deliver(srv, "kim@example.com", big)["kim@example.com"]
    assert code == 452 and b"4.2.2" in text
    deliver_cli = srv.cli("deliver", "--to", "kim@example.com", input=big.decode(), check=False)
    assert deliver_cli.returncode == 75, deliver_cli.stderr  # EX_TEMPFAIL: the MTA retries
    out = srv.cli("policy", "set", "when_full", "reject")
    assert "on the running server" in out.stdout
    code, text = deliver(srv, "kim@example.com", big)["kim@example.com"]
    assert code == 552 and b"5.2.2" in text
    deliver_cli = srv.cli("deliver", "--to", "kim@example.com", input=big.decode(), check=False)
    assert deliver_cli.returncode == 77  # EX_NOPERM: bounce
    assert "reject" in srv.cli("policy").stdout
    srv.cli("policy", "reset", "when_full")
    code, _ = deliver(srv, "kim@example.com", big)["kim@example.com"]
    assert code == 452
    bad = srv.cli("policy", "set", "warn_at", "150", check=False)
    assert bad.returncode != 0 and "from 1 to 100" in bad.stderr
    audit = srv.cli("audit").stdout
    assert 'set policies when_full="reject"' in audit and "reset policy when_full" in audit


def test_pop3_and_login_policies_apply_live(make_server: object) -> None:
    import imaplib
    import poplib

    srv: ServerProcess = make_server()  # type: ignore[operator]
    srv.add_user("ned@example.com", "ned-pw-123")
    for _ in range(2):
        deliver(srv, "ned@example.com")
    srv.cli("policy", "set", "pop3_delete_mode", "hide")
    srv.cli("policy", "set", "pop3_leave_days", "30")
    pop = poplib.POP3("127.0.0.1", srv.port("pop3"), timeout=10)
    assert pop.capa()["EXPIRE"] == ["30"]
    pop.user("ned@example.com")
    pop.pass_("ned-pw-123")
    pop.dele(1)
    pop.quit()
    imap = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    imap.login("ned@example.com", "ned-pw-123")
    assert imap.select("INBOX")[1] == [b"2"]  # hidden from POP3 only
    imap.logout()
    pop = poplib.POP3("127.0.0.1", srv.port("pop3"), timeout=10)
    pop.user("ned@example.com")
    pop.pass_("ned-pw-123")
    assert pop.stat()[0] == 1
    pop.quit()
    srv.cli("policy", "reset", "pop3_delete_mode")
    pop = poplib.POP3("127.0.0.1", srv.port("pop3"), timeout=10)
    pop.user("ned@example.com")
    pop.pass_("ned-pw-123")
    pop.dele(1)
    pop.quit()
    imap = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    imap.login("ned@example.com", "ned-pw-123")
    assert imap.select("INBOX")[1] == [b"1"]  # expunged this time
    imap.logout()
    shown = srv.cli("policy").stdout
    assert "pop3_leave_days" in shown and "plaintext_auth" in shown
    bad = srv.cli("policy", "set", "failure_delay", "99", check=False)
    assert bad.returncode == 1 and "from 0 to 30 seconds" in bad.stderr


def test_trash_need_not_count_toward_the_quota(make_server: object) -> None:
    import imaplib

    srv: ServerProcess = make_server()  # type: ignore[operator]
    body = b"From: a@example.org\r\nSubject: x\r\n\r\n" + b"x" * 3000 + b"\r\n"
    srv.add_user("ola@example.com", "ola-pw-123", quota=Quota(bytes=8000))
    srv.cli("policy", "set", "warn_at", "none")  # no notices in INBOX to count here
    assert deliver(srv, "ola@example.com", body) == {}
    assert deliver(srv, "ola@example.com", body) == {}
    imap = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    imap.login("ola@example.com", "ola-pw-123")
    imap.select("INBOX")
    assert imap.uid("MOVE", "1:*", "Trash")[0] == "OK"  # MOVE is free at any usage
    assert deliver(srv, "ola@example.com", body)["ola@example.com"][0] == 552  # Trash counts
    srv.cli("policy", "set", "trash_counts", "no")
    typ, data = imap.getquotaroot("INBOX")
    assert typ == "OK" and b"STORAGE 0 8" in data[1][0], data
    assert deliver(srv, "ola@example.com", body) == {}
    assert deliver(srv, "ola@example.com", body) == {}
    assert deliver(srv, "ola@example.com", body)["ola@example.com"][0] == 552  # INBOX alone is full now
    # The server's usage table keeps both: all the mail, and what the quota counts.
    from tests.waiting import wait_for

    def row() -> tuple[int, int]:
        d = srv.directory()
        try:
            found = d.db.execute("SELECT bytes, counted_bytes FROM usage WHERE address = ?",
                                 ("ola@example.com",)).fetchone()
        finally:
            d.close()
        return (found[0], found[1]) if found else (0, 0)

    assert wait_for(lambda: row()[0] > 12_000 and 6_000 < row()[1] < 7_000, 10), row()
    srv.cli("policy", "set", "trash_counts", "yes")
    assert wait_for(lambda: row()[0] == row()[1], 10), row()
    typ, data = imap.getquotaroot("INBOX")
    assert b"STORAGE 13 8" in data[1][0] or b"STORAGE 12 8" in data[1][0], data
    imap.logout()
