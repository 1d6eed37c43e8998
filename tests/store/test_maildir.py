"""The embedded store: durability, reconciliation, UIDs, quota, change feed."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from letterbox.store.api import (
    BadMailboxName,
    MailboxExists,
    MailboxInUse,
    MailboxNotFound,
    MessageGone,
    OverQuota,
    Quota,
    StoreError,
)
from letterbox.store.maildir import MaildirStore, reconcile

MSG = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hello\r\n\r\nbody line\r\n"


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "mail"


def test_new_account_has_special_use_folders(root: Path) -> None:
    async def go() -> None:
        acc = await MaildirStore(root).account("alice@example.com")
        boxes = {m.name: m.special_use for m in await acc.list_mailboxes()}
        assert boxes == {
            "INBOX": None,
            "Drafts": "\\Drafts",
            "Sent": "\\Sent",
            "Trash": "\\Trash",
            "Junk": "\\Junk",
            "Archive": "\\Archive",
        }
        assert (root / "example.com" / "alice" / "cur").is_dir()
        assert (root / "example.com" / "alice" / ".Sent" / "cur").is_dir()

    run(go())


def test_append_is_byte_exact_and_uids_increase(root: Path) -> None:
    async def go() -> None:
        acc = await MaildirStore(root).account("alice@example.com")
        raw = MSG + b"\x00\xff binary\r\n"
        r1 = await acc.append("INBOX", raw)
        r2 = await acc.append("inbox", MSG, flags=["\\seen", "$Label"])
        assert (r1.uid, r2.uid) == (1, 2)
        mbox = await acc.get_mailbox("INBOX")
        assert await acc.read_message(mbox.id, 1) == raw
        recs = await acc.fetch(mbox.id, [1, 2], ["flags", "size", "envelope"])
        assert [r.size for r in recs] == [len(raw), len(MSG)]
        assert recs[1].flags == {"\\Seen", "$Label"}
        assert recs[0].envelope.startswith(b"(")
        assert "$Label" in (await acc.get_mailbox("INBOX")).keywords
        usage = await acc.usage()
        assert (usage.messages, usage.bytes) == (2, len(raw) + len(MSG))

    run(go())


def test_expunge_never_reuses_uids_and_updates_usage(root: Path) -> None:
    async def go() -> None:
        acc = await MaildirStore(root).account("alice@example.com")
        for _ in range(3):
            await acc.append("INBOX", MSG)
        mbox = await acc.get_mailbox("INBOX")
        assert await acc.expunge(mbox.id, [2, 3]) == [2, 3]
        assert (await acc.usage()).messages == 1
        r = await acc.append("INBOX", MSG)
        assert r.uid == 4
        with pytest.raises(MessageGone):
            await acc.read_message(mbox.id, 2)
        cs = await acc.changes_since(mbox.id, mbox.highestmodseq)
        assert cs.expunged == [2, 3]
        assert [m.uid for m in cs.updated] == [4]

    run(go())


def test_flags_and_modseq(root: Path) -> None:
    async def go() -> None:
        acc = await MaildirStore(root).account("alice@example.com")
        await acc.append("INBOX", MSG)
        await acc.append("INBOX", MSG)
        mbox = await acc.get_mailbox("INBOX")
        changed = await acc.store_flags(mbox.id, [1, 2], "add", ["\\Seen"])
        assert [m.uid for m in changed] == [1, 2]
        assert await acc.store_flags(mbox.id, [1], "add", ["\\Seen"]) == []
        changed = await acc.store_flags(mbox.id, [2], "replace", ["\\Flagged"])
        assert changed[0].flags == {"\\Flagged"}
        st = await acc.status("INBOX")
        assert (st.messages, st.unseen, st.deleted) == (2, 1, 0)
        _, metas = await acc.snapshot("INBOX")
        assert metas[0].modseq < metas[1].modseq

    run(go())


def test_mailbox_names_cannot_escape(root: Path) -> None:
    async def go() -> None:
        acc = await MaildirStore(root).account("alice@example.com")
        for bad in ["", "..", "a/../b", "a//b", "/abs", "x\x00y", "tab\there", ".hidden", "a/" * 40 + "a"]:
            with pytest.raises(BadMailboxName):
                await acc.create_mailbox(bad)
        m = await acc.create_mailbox("Work/2024.Q1/50%")
        assert m.name == "Work/2024.Q1/50%"
        names = {x.name for x in await acc.list_mailboxes()}
        assert {"Work", "Work/2024.Q1", "Work/2024.Q1/50%"} <= names
        for p in (root / "example.com" / "alice").iterdir():
            assert p.resolve().is_relative_to((root / "example.com" / "alice").resolve())
        with pytest.raises(MailboxExists):
            await acc.create_mailbox("work/2024.Q1/50%".replace("work", "Work"))

    run(go())


def test_delete_recreate_changes_uidvalidity(root: Path) -> None:
    async def go() -> None:
        acc = await MaildirStore(root).account("alice@example.com")
        a = await acc.create_mailbox("Projects")
        await acc.append("Projects", MSG)
        with pytest.raises(StoreError):
            await acc.delete_mailbox("INBOX")
        await acc.delete_mailbox("Projects")
        with pytest.raises(MailboxNotFound):
            await acc.get_mailbox("Projects")
        b = await acc.create_mailbox("Projects")
        assert b.uidvalidity != a.uidvalidity
        assert (await acc.status("Projects")).messages == 0
        assert (await acc.usage()).messages == 0

    run(go())


def test_rename_keeps_messages_and_children(root: Path) -> None:
    async def go() -> None:
        acc = await MaildirStore(root).account("alice@example.com")
        await acc.create_mailbox("A/B")
        await acc.append("A/B", MSG)
        await acc.rename_mailbox("A", "Z/Y")
        names = {x.name for x in await acc.list_mailboxes()}
        assert {"Z", "Z/Y", "Z/Y/B"} <= names and "A" not in names
        b = await acc.get_mailbox("Z/Y/B")
        assert await acc.read_message(b.id, 1) == MSG
        # Renaming INBOX moves its messages and leaves INBOX empty.
        await acc.append("INBOX", MSG)
        await acc.rename_mailbox("INBOX", "Old")
        assert (await acc.status("INBOX")).messages == 0
        assert (await acc.status("Old")).messages == 1

    run(go())


def test_copy_and_move(root: Path) -> None:
    async def go() -> None:
        acc = await MaildirStore(root).account("alice@example.com")
        for _ in range(3):
            await acc.append("INBOX", MSG, flags=["\\Seen"])
        inbox = await acc.get_mailbox("INBOX")
        res = await acc.copy(inbox.id, [1, 3], "Archive")
        assert res.source_uids == (1, 3) and res.dest_uids == (1, 2)
        arch = await acc.get_mailbox("Archive")
        assert await acc.read_message(arch.id, 2) == MSG
        recs = await acc.fetch(arch.id, [1, 2], ["flags", "envelope"])
        assert all(r.flags == {"\\Seen"} and r.envelope for r in recs)
        mv = await acc.move(inbox.id, [2], "Trash")
        assert mv.dest_uids == (1,)
        assert (await acc.status("INBOX")).messages == 2
        assert (await acc.usage()).messages == 6 - 1 + 0  # 3 inbox-1 moved + 2 copies + 1 in trash

    run(go())


def test_quota_refuses_and_counts(root: Path) -> None:
    async def go() -> None:
        acc = await MaildirStore(root).account("alice@example.com")
        q = Quota(bytes=len(MSG) * 2, messages=0)
        await acc.append("INBOX", MSG, quota=q)
        await acc.append("INBOX", MSG, quota=q)
        with pytest.raises(OverQuota):
            await acc.append("INBOX", MSG, quota=q)
        with pytest.raises(OverQuota):
            await acc.append("INBOX", MSG, quota=Quota(messages=2))
        inbox = await acc.get_mailbox("INBOX")
        with pytest.raises(OverQuota):
            await acc.copy(inbox.id, [1], "Archive", quota=q)
        assert (await acc.usage()).messages == 2

    run(go())


def test_reconcile_restores_files_without_rows_and_drops_rows_without_files(root: Path) -> None:
    store = MaildirStore(root)
    acc = store.account_sync("alice@example.com")

    async def fill() -> None:
        for _ in range(4):
            await acc.append("INBOX", MSG)

    run(fill())
    inbox = acc.mailbox_by_name("INBOX")
    folder = root / "example.com" / "alice"
    files = {int(f.split(",U=")[1].split(":")[0]): f for f in os.listdir(folder / "cur")}
    # Row lost (as if the index commit never happened), file lost, and a file from an
    # outside delivery agent in new/.
    acc.db.execute("DELETE FROM messages WHERE mailbox_id = ? AND uid = 2", (inbox.id,))
    os.unlink(folder / "cur" / files[3])
    (folder / "new" / "1700000000.outside.host").write_bytes(MSG)
    (folder / "tmp" / "stale").write_bytes(b"half")
    os.utime(folder / "tmp" / "stale", (1, 1))
    acc.db.execute("UPDATE mailboxes SET uidnext = 3 WHERE id = ?", (inbox.id,))
    acc.close()

    store2 = MaildirStore(root)
    acc2 = store2.account_sync("alice@example.com")
    stats = reconcile.reconcile(acc2)
    assert stats == {"indexed": 2, "dropped": 1, "removed": 1, "folders": 0, "kept": 0, "restored": 0}

    async def check() -> None:
        mbox, metas = await acc2.snapshot("INBOX")
        assert [m.uid for m in metas] == [1, 2, 4, 5]
        assert mbox.uidnext == 6
        assert await acc2.read_message(mbox.id, 5) == MSG
        assert (await acc2.usage()).messages == 4

    run(check())
    assert not os.listdir(folder / "new")
    # Reconciling again finds nothing to do.
    assert not any(reconcile.reconcile(acc2).values())


def test_reconcile_imports_foreign_maildir_files_with_their_flags(root: Path) -> None:
    store = MaildirStore(root)
    acc = store.account_sync("alice@example.com")
    run(acc.append("INBOX", MSG))
    folder = root / "example.com" / "alice"
    # Files another Maildir server left in cur/ (flags in the ":2," info) and two copies
    # claiming one UID, as a careless copy would leave them.
    (folder / "cur" / "1600000000.a.host:2,SF").write_bytes(MSG + b"a\r\n")
    (folder / "cur" / "1600000001.b.host:2,RT").write_bytes(MSG + b"b\r\n")
    (folder / "cur" / "1600000002.c.host,U=7:2,").write_bytes(MSG + b"c\r\n")
    (folder / "cur" / "1600000003.d.host,U=7:2,").write_bytes(MSG + b"d\r\n")
    acc.close()

    acc2 = MaildirStore(root).account_sync("alice@example.com")
    assert reconcile.reconcile(acc2)["indexed"] == 4

    async def check() -> None:
        mbox, metas = await acc2.snapshot("INBOX")
        assert [m.uid for m in metas] == [1, 7, 8, 9, 10]
        bodies = {m.uid: await acc2.read_message(mbox.id, m.uid) for m in metas}
        assert sorted(bodies.values()) == sorted([MSG] + [MSG + x + b"\r\n" for x in (b"a", b"b", b"c", b"d")])
        flags = {bodies[m.uid][-3:-2]: set(m.flags) for m in metas if m.uid != 1}
        assert flags == {b"a": {"\\Seen", "\\Flagged"}, b"b": {"\\Answered", "\\Deleted"}, b"c": set(), b"d": set()}
        assert mbox.uidnext == 11

    run(check())
    assert reconcile.reconcile(acc2)["indexed"] == 0


@pytest.mark.parametrize("pool", [False, True])
def test_reconcile_indexes_new_files_in_arrival_order(root: Path, monkeypatch: pytest.MonkeyPatch, pool: bool) -> None:
    from letterbox.store.maildir import strays

    monkeypatch.setattr(reconcile, "BATCH", 7)
    monkeypatch.setattr(strays, "_POOL_MIN", 1 if pool else 10**9)
    monkeypatch.setattr(strays, "_POOL_CHUNK", 3)
    store = MaildirStore(root)
    acc = store.account_sync("alice@example.com")
    run(acc.append("INBOX", MSG))
    new = root / "example.com" / "alice" / "new"
    for i in range(40):
        name = new / f"{2000000000 - i}.outside{i}.host"  # names sort opposite to arrival
        name.write_bytes(b"Subject: n%d\r\n\r\nbody %d\r\n" % (i, i))
        os.utime(name, (1700000000 + i, 1700000000 + i))
    acc.close()

    acc2 = MaildirStore(root).account_sync("alice@example.com")
    assert reconcile.reconcile(acc2)["indexed"] == 40

    async def check() -> None:
        mbox, metas = await acc2.snapshot("INBOX")
        assert [m.uid for m in metas] == list(range(1, 42))
        for i in (0, 6, 7, 39):
            assert await acc2.read_message(mbox.id, i + 2) == b"Subject: n%d\r\n\r\nbody %d\r\n" % (i, i)
        recs = await acc2.fetch(mbox.id, [2, 41], ["envelope"])
        assert [b"n0" in r.envelope for r in recs] == [True, False]
        assert mbox.uidnext == 42 and mbox.highestmodseq > 1

    run(check())
    assert not os.listdir(new)


def test_expunged_file_left_behind_is_not_resurrected(root: Path) -> None:
    store = MaildirStore(root)
    acc = store.account_sync("alice@example.com")

    async def go() -> None:
        await acc.append("INBOX", MSG)
        await acc.append("INBOX", MSG)

    run(go())
    folder = root / "example.com" / "alice" / "cur"
    before = {f: (folder / f).read_bytes() for f in os.listdir(folder)}
    inbox = acc.mailbox_by_name("INBOX")
    run(acc.expunge(inbox.id, [1]))
    # Simulate a crash between the index commit and the unlink.
    for f, data in before.items():
        if ",U=1:" in f:
            (folder / f).write_bytes(data)
    reconcile.reconcile(acc)
    _, metas = run(acc.snapshot("INBOX"))
    assert [m.uid for m in metas] == [2]
    assert len(os.listdir(folder)) == 1


def test_change_feed_and_outside_writers(root: Path) -> None:
    async def go() -> None:
        store = MaildirStore(root)
        acc = await store.account("alice@example.com")
        sub = store.subscribe("alice@example.com")
        await acc.append("INBOX", MSG)
        assert sub.pending()
        changes = sub.take()
        assert changes[0].kind == "append" and not sub.pending()
        # Another process (a second store on the same files) delivers.
        other = MaildirStore(root)
        await (await other.account("alice@example.com")).append("INBOX", MSG)
        store.poll_external()
        await asyncio.wait_for(sub.wait(), 1)
        inbox = await acc.get_mailbox("INBOX")
        cs = await acc.changes_since(inbox.id, changes[0].modseq)
        assert [m.uid for m in cs.updated] == [2]
        sub.close()
        await other.close()
        await store.close()

    run(go())


def test_pop3_lock_is_exclusive(root: Path) -> None:
    async def go() -> None:
        acc = await MaildirStore(root).account("alice@example.com")
        async with acc.pop3_lock():
            with pytest.raises(MailboxInUse):
                async with acc.pop3_lock():
                    pass
        async with acc.pop3_lock():
            pass

    run(go())


def test_pop3_lock_waits_in_line_and_polls_other_processes(root: Path) -> None:
    import fcntl
    import time

    async def go() -> None:
        acc = await MaildirStore(root).account("alice@example.com")
        # Held by "another process": a lock on a file description of its own.
        other = os.open(root / "example.com" / "alice" / "pop3.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(other, fcntl.LOCK_EX)
        t0 = time.monotonic()
        with pytest.raises(MailboxInUse):
            async with acc.pop3_lock(wait=0.6):
                pass
        assert time.monotonic() - t0 >= 0.6
        assert not acc.pop3.waiting
        order: list[str] = []

        async def session(name: str, hold: float) -> None:
            async with acc.pop3_lock(wait=5):
                order.append(name)
                await asyncio.sleep(hold)

        first = asyncio.ensure_future(session("first", 0.1))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(session("second", 0))
        await asyncio.sleep(0.05)
        fcntl.flock(other, fcntl.LOCK_UN)  # noticed at the next poll
        await asyncio.sleep(0.01)
        late = asyncio.ensure_future(session("late", 0))  # queues behind the others
        await asyncio.gather(first, second, late)
        assert order == ["first", "second", "late"]
        assert not acc.pop3.waiting
        os.close(other)

    run(go())


def test_pop3_hide_and_expire(root: Path) -> None:
    async def go() -> None:
        acc = await MaildirStore(root).account("alice@example.com")
        for _ in range(3):
            await acc.append("INBOX", MSG)
        inbox = await acc.get_mailbox("INBOX")
        await acc.pop3_hide(inbox.id, [1])
        recs = await acc.fetch(inbox.id, [1, 2, 3], ["pop3"])
        assert [r.pop3_hidden for r in recs] == [True, False, False]
        await acc.pop3_mark_retrieved(inbox.id, [2])
        import time

        assert await acc.pop3_expire(time.time() + 1) == 1
        _, metas = await acc.snapshot("INBOX")
        assert [m.uid for m in metas] == [1, 3]

    run(go())


def test_concurrent_appends_become_visible_in_uid_order(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow large message and a quick small one: the small one must not be committed
    under a higher UID while the large one's lower UID is still invisible."""
    from letterbox.store.maildir.accountdir import AccountDir

    real = AccountDir.write_new

    def slow_for_big(self, rel, data, mtime=None):  # type: ignore[no-untyped-def]
        if len(data) > 1000:
            import time as _t

            _t.sleep(0.3)
        return real(self, rel, data, mtime)

    monkeypatch.setattr(AccountDir, "write_new", slow_for_big)

    async def go() -> None:
        acc = await MaildirStore(root).account("alice@example.com")
        inbox = await acc.get_mailbox("INBOX")
        big = asyncio.create_task(acc.append("INBOX", MSG + b"x" * 5000 + b"\r\n"))
        await asyncio.sleep(0.05)
        small = await acc.append("INBOX", MSG)
        # Whatever is visible now must be a prefix of the final UID order.
        _, now = await acc.snapshot("INBOX")
        await big
        _, final = await acc.snapshot("INBOX")
        assert [m.uid for m in final] == [1, 2]
        assert [m.uid for m in now] == [m.uid for m in final][: len(now)]
        assert small.uid in [m.uid for m in final]
        cs = await acc.changes_since(inbox.id, inbox.highestmodseq)
        assert [m.uid for m in cs.updated] == [1, 2]

    run(go())


def test_copy_skips_a_source_expunged_meanwhile(root: Path) -> None:
    async def go() -> None:
        acc = await MaildirStore(root).account("alice@example.com")
        for _ in range(2):
            await acc.append("INBOX", MSG)
        inbox = await acc.get_mailbox("INBOX")
        folder = root / "example.com" / "alice" / "cur"
        victim = next(p for p in folder.iterdir() if ",U=1:" in p.name)
        victim.unlink()  # as if another session's expunge unlinked it just now
        res = await acc.copy(inbox.id, [1, 2], "Trash")
        assert res.source_uids == (2,)
        trash = await acc.get_mailbox("Trash")
        _, metas = await acc.snapshot("Trash")
        assert [m.uid for m in metas] == list(res.dest_uids)
        assert await acc.read_message(trash.id, res.dest_uids[0]) == MSG

    run(go())


def test_move_is_not_refused_at_quota(root: Path) -> None:
    async def go() -> None:
        acc = await MaildirStore(root).account("alice@example.com")
        q = Quota(messages=2)
        await acc.append("INBOX", MSG, quota=q)
        await acc.append("INBOX", MSG, quota=q)
        inbox = await acc.get_mailbox("INBOX")
        res = await acc.move(inbox.id, [1], "Trash")
        assert res.dest_uids == (1,)
        assert await acc.uids_with_flag(inbox.id, "\\Deleted") == []

    run(go())


def test_files_dropped_into_new_get_uids_in_arrival_order(root: Path) -> None:
    store = MaildirStore(root)
    acc = store.account_sync("alice@example.com")
    new = root / "example.com" / "alice" / "new"
    for i, name in enumerate(["c.host", "a.host", "b.host"]):
        p = new / name
        p.write_bytes(b"Subject: %d\r\n\r\nx\r\n" % i)
        os.utime(p, (1_700_000_000 + i, 1_700_000_000 + i))
    reconcile.reconcile(acc)

    async def check() -> None:
        mbox, metas = await acc.snapshot("INBOX")
        bodies = [await acc.read_message(mbox.id, m.uid) for m in metas]
        assert [b.split(b"\r\n")[0] for b in bodies] == [b"Subject: 0", b"Subject: 1", b"Subject: 2"]

    run(check())


def test_big_new_backlog_waits_for_index_new(root: Path) -> None:
    import threading

    store = MaildirStore(root)
    acc = store.account_sync("alice@example.com")
    run(acc.append("INBOX", MSG))
    new = root / "example.com" / "alice" / "new"
    for i in range(12):
        (new / f"{1700000000 + i}.x{i}.host").write_bytes(MSG)
    acc.close()

    store2 = MaildirStore(root)
    assert store2.reconcile_all(new_limit=10)["indexed"] == 0
    assert store2.new_waiting == {"alice@example.com": 12}
    # Set before it starts: nothing is indexed, nothing is lost.
    stopped = threading.Event()
    stopped.set()
    assert store2.index_waiting(stopped) == 0 and len(os.listdir(new)) == 12
    assert store2.index_waiting(threading.Event()) == 12
    assert not os.listdir(new) and store2.new_waiting == {}
    acc2 = store2.account_sync("alice@example.com")
    _, metas = run(acc2.snapshot("INBOX"))  # the server's own connection sees them
    assert [m.uid for m in metas] == list(range(1, 14))
    # Few enough: indexed at once.
    (new / "1800000000.y.host").write_bytes(MSG)
    assert MaildirStore(root).reconcile_all(new_limit=10)["indexed"] == 1


def test_new_file_taken_away_during_indexing(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from letterbox.store.maildir import accountdir

    store = MaildirStore(root)
    acc = store.account_sync("alice@example.com")
    run(acc.append("INBOX", MSG))
    new = root / "example.com" / "alice" / "new"
    for i in range(5):
        (new / f"{1700000000 + i}.n{i}.host").write_bytes(MSG + b"%d\r\n" % i)
    acc.close()
    real_rename = os.rename

    def rename(src: str, dst: str, **kw: int) -> None:
        if src.endswith(".n2.host"):  # another agent moves it away first
            os.unlink(src, dir_fd=kw["src_dir_fd"])
            raise FileNotFoundError(src)
        real_rename(src, dst, **kw)

    monkeypatch.setattr(accountdir.os, "rename", rename)
    acc2 = MaildirStore(root).account_sync("alice@example.com")
    assert reconcile.reconcile(acc2)["indexed"] == 4
    monkeypatch.setattr(accountdir.os, "rename", real_rename)

    async def check() -> None:
        mbox, metas = await acc2.snapshot("INBOX")
        bodies = [await acc2.read_message(mbox.id, m.uid) for m in metas]
        assert bodies == [MSG] + [MSG + b"%d\r\n" % i for i in (0, 1, 3, 4)]
        # The UID the lost file was given stays unused.
        assert [m.uid for m in metas] == [1, 2, 3, 5, 6]
        assert (await acc2.append("INBOX", MSG)).uid == 7

    run(check())
    assert not any(reconcile.reconcile(acc2).values())


def test_limits_on_mailboxes_and_keywords(root: Path) -> None:
    from letterbox.store.api import LimitExceeded, Limits

    async def go() -> None:
        store = MaildirStore(root, limits=Limits(mailboxes=10, keywords=3, keyword_length=10))
        acc = await store.account("alice@example.com")
        await acc.create_mailbox("A/B")  # 6 defaults + 2
        with pytest.raises(LimitExceeded):
            await acc.create_mailbox("C/D/E")  # 3 more: 11
        await acc.create_mailbox("C")
        r = await acc.append("INBOX", MSG, flags=["$a", "$b"])
        inbox = await acc.get_mailbox("INBOX")
        await acc.store_flags(inbox.id, [r.uid], "add", ["$c"])
        with pytest.raises(LimitExceeded):
            await acc.store_flags(inbox.id, [r.uid], "add", ["$d"])
        with pytest.raises(LimitExceeded):
            await acc.append("INBOX", MSG, flags=["$toolongkeyword"])
        # Keywords the mailbox has already may be set again, and removed.
        await acc.store_flags(inbox.id, [r.uid], "replace", ["$a"])
        await acc.store_flags(inbox.id, [r.uid], "remove", ["$a"])
        await store.close()

    run(go())
