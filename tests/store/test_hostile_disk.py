"""What a careless administrator or a user with a shell can leave in a Maildir, and what
the store does with it: links and FIFOs are kept aside (never followed, never waited on),
names that are not UTF-8 too; two names of one message stay one message; an index older
than its folders hands out no UID twice; a failed step leaves nothing that a later start
could misread."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from letterbox.store import faults
from letterbox.store.api import StoreError
from letterbox.store.maildir import MaildirStore, reconcile, strays

MSG = b"Subject: s\r\n\r\nbody\r\n"


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.fixture(autouse=True)
def _disarmed():  # type: ignore[no-untyped-def]
    faults.disarm()
    yield
    faults.disarm()


def folder(root: Path, local: str) -> Path:
    return root / "example.com" / local


def subjects(store: MaildirStore, address: str, mailbox: str = "INBOX") -> list[bytes]:
    async def go() -> list[bytes]:
        acc = await store.account(address)
        mbox, metas = await acc.snapshot(mailbox)
        return [await acc.read_message(mbox.id, m.uid) for m in metas]

    return run(go())


def test_a_folder_that_is_a_link_to_another_account_is_never_followed(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path)
    run(run(store.account("bob@example.com")).append("INBOX", b"Subject: secret\r\n\r\nbob's\r\n"))
    run(store.account("mallory@example.com"))
    run(store.close())
    mallory = folder(tmp_path, "mallory")
    os.symlink("../bob", mallory / ".Shared")
    shutil.rmtree(mallory / ".Junk" / "cur")
    os.symlink("../../bob/cur", mallory / ".Junk" / "cur")
    store = MaildirStore(tmp_path, exclusive=True)
    store.reconcile_all()
    names = {m.name for m in run(run(store.account("mallory@example.com")).list_mailboxes())}
    assert "Shared" not in names
    assert subjects(store, "mallory@example.com", "Junk") == []
    assert subjects(store, "bob@example.com") == [b"Subject: secret\r\n\r\nbob's\r\n"]
    kept = mallory / reconcile.KEPT
    assert (kept / "root" / ".Shared").is_symlink() and (kept / ".Junk" / "cur").is_symlink()


@pytest.mark.parametrize("pool", [False, True])
def test_links_and_fifos_in_new_are_kept_aside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pool: bool) -> None:
    monkeypatch.setattr(strays, "_POOL_MIN", 1 if pool else 10**9)
    store = MaildirStore(tmp_path)
    bob = run(store.account("bob@example.com"))
    run(bob.append("INBOX", b"Subject: SECRET merger\r\n\r\nx\r\n"))
    run(store.account("mallory@example.com"))
    run(store.close())
    mallory = folder(tmp_path, "mallory")
    [bobs] = list((folder(tmp_path, "bob") / "cur").iterdir())
    os.symlink(bobs, mallory / "new" / "1700000000.link.host")
    os.mkfifo(mallory / "new" / "1700000001.fifo.host")
    (mallory / "new" / "1700000002.plain.host").write_bytes(MSG)
    store = MaildirStore(tmp_path, exclusive=True)
    assert store.reconcile_all()["kept"] == 2  # and it did not hang on the FIFO
    assert subjects(store, "mallory@example.com") == [MSG]


def test_names_that_are_not_utf8_are_kept_aside_and_the_account_works(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path)
    run(run(store.account("cafe@example.com")).append("INBOX", MSG))
    run(store.close())
    base = os.fsencode(folder(tmp_path, "cafe"))
    os.makedirs(base + b"/.Caf\xe9/cur")
    os.makedirs(base + b"/.Caf\xe9/new")
    os.makedirs(base + b"/.Caf\xe9/tmp")
    with open(base + b"/cur/1700000000.x\xff.host,U=9:2,", "wb") as f:
        f.write(MSG)
    store = MaildirStore(tmp_path, exclusive=True)
    assert store.reconcile_all()["kept"] == 2
    assert store.unavailable == {}
    assert subjects(store, "cafe@example.com") == [MSG]


def test_two_names_of_one_message_are_one_message_after_a_rebuild(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path, exclusive=True)
    acc = run(store.account("dup@example.com"))
    for _ in range(3):
        run(acc.append("INBOX", MSG))
    run(store.close())
    cur = folder(tmp_path, "dup") / "cur"
    for p in list(cur.iterdir()):  # a flag rename cut short between its link and unlink
        os.link(p, cur / (p.name + "S"))
    (folder(tmp_path, "dup") / "letterbox.index").unlink()
    store = MaildirStore(tmp_path, exclusive=True)
    store.reconcile_all()
    store.rebuild_unavailable()
    assert subjects(store, "dup@example.com") == [MSG] * 3
    assert len(list(cur.iterdir())) == 3


def test_an_index_restored_from_a_backup_hands_out_no_uid_twice(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path, exclusive=True)
    acc = run(store.account("old@example.com"))
    run(acc.append("INBOX", MSG))
    run(store.close())
    index = folder(tmp_path, "old") / "letterbox.index"
    backup = index.read_bytes()
    store = MaildirStore(tmp_path, exclusive=True)
    acc = run(store.account("old@example.com"))
    inbox = run(acc.get_mailbox("INBOX"))
    top = run(acc.append("INBOX", MSG)).uid
    run(acc.expunge(inbox.id, [top]))
    run(store.close())
    for suffix in ("-wal", "-shm"):
        Path(str(index) + suffix).unlink(missing_ok=True)
    index.write_bytes(backup)
    store = MaildirStore(tmp_path, exclusive=True)
    store.reconcile_all()
    assert run(run(store.account("old@example.com")).append("INBOX", MSG)).uid > top


def test_a_copy_that_fails_part_way_leaves_the_destination_as_it_was(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path)
    acc = run(store.account("copy@example.com"))
    for _ in range(1200):  # three batches
        run(acc.append("INBOX", MSG))
    inbox = run(acc.get_mailbox("INBOX"))
    faults.arm("copy.linked", "EIO", hit=1100)
    with pytest.raises(StoreError):
        run(acc.copy(inbox.id, list(range(1, 1201)), "Archive"))
    assert subjects(store, "copy@example.com", "Archive") == []
    result = run(acc.copy(inbox.id, list(range(1, 1201)), "Archive"))
    assert len(result.dest_uids) == 1200 and result.dest_uids[0] > 1000  # no UID reused


def test_a_journal_entry_left_by_a_failure_never_undoes_later_mail(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path, exclusive=True)
    acc = run(store.account("j@example.com"))
    faults.arm("create.journaled", "ENOSPC")
    with pytest.raises(StoreError):
        run(acc.create_mailbox("X"))
    run(acc.create_mailbox("X"))
    run(acc.append("X", MSG))
    run(acc.create_mailbox("A"))
    faults.arm("rename.journaled", "ENOSPC")
    with pytest.raises(StoreError):
        run(acc.rename_mailbox("A", "B"))
    run(acc.rename_mailbox("A", "B"))
    run(acc.append("B", MSG))
    # A failed clean-up of the journal would leave entries behind: simulate it.
    with acc.tx() as db:
        db.execute("INSERT INTO folder_moves (old_dir, new_dir) VALUES (NULL, '.X')")
        db.execute("INSERT INTO folder_moves (old_dir, new_dir) VALUES ('.A', '.B')")
    run(store.close())
    store = MaildirStore(tmp_path, exclusive=True)
    store.reconcile_all()
    assert subjects(store, "j@example.com", "X") == [MSG]
    assert subjects(store, "j@example.com", "B") == [MSG]
