"""In-process fault injection: every multi-step store write, failed at every step.

For each operation the points it passes (letterbox.store.faults) are learnt once, at
collection, by running it under `faults.recording()` on a fresh fixture. Each test then
builds a fresh fixture, arms one fault (point, hit, errno), runs the operation, and
expects success or a StoreError -- never another exception. It then "restarts" (closes
the store, opens a new exclusive one, runs `reconcile_all()` and, like the server's
start-up, `rebuild_unavailable()` for accounts whose index must be rebuilt) and checks:

- every message acknowledged before the operation is there exactly once, byte-exact,
  with its flags, where the operation's outcome says it must be;
- a successful operation's effect is there; a failed folder operation (create, delete,
  rename) left the state fully old or fully new, and so did a failed copy, move, expunge
  and flag change (each is one transaction);
- whatever the store showed right after the operation (through the same handle) is what
  it shows after the restart: committed state is neither lost nor resurrected;
- index and folders agree (no file without a row or row without a file, nothing in new/,
  in the folder trash or kept aside);
- no UID is reused: a message appended to each mailbox after the restart gets a UID above
  every UID ever seen in that mailbox under the same UIDVALIDITY, and no surviving mailbox
  changed its UIDVALIDITY.

A failed APPEND is "at least once", not "exactly once": when the fault hits after the
index commit (say, the fsync of cur/), the message is visible even though the client was
told NO, and a client that retries stores it twice. A crash between the rename into cur/
and the commit would leave a file that start-up indexes under its UID, which is allowed
too (the file is complete and fsynced). So the check is: at most once, byte-exact, with
the flags asked for. (The in-process failures here do not crash, so the stronger
"restart changes nothing the store showed" check holds as well: nothing appears at the
restart that the handle did not show.) The same holds for a failed COPY, all copies or
none.
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import tempfile
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from letterbox.store import faults
from letterbox.store.api import MessageGone, StoreError
from letterbox.store.maildir import MaildirStore, folderfile
from letterbox.store.maildir.account import MaildirAccount

ADDRESS = "alice@example.com"
INCARNATION = "incarnation-1"
NEW_INCARNATION = "new-incarnation"
ERRNOS = ("ENOSPC", "EIO")
# About a thousand cases, each fsyncing a few dozen times: on tmpfs when there is one.
FAST_TMP = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
# Points that create or rename a name, where ENAMETOOLONG is a plausible failure too.
NAME_POINTS = ("fs.rename", "fs.mkdir", "fs.link", "fs.replace")


def body(tag: str) -> bytes:
    return (
        f"From: a@example.com\r\nTo: b@example.com\r\nSubject: {tag}\r\n"
        f"Message-ID: <{tag}@example.com>\r\n\r\nbody of {tag}\r\n"
    ).encode()


# --- what an account holds --------------------------------------------------------------------
@dataclass
class Box:
    uidvalidity: int
    msgs: dict[int, tuple[bytes, frozenset[str]]]


State = dict[str, Box]
Loc = tuple[str, int, frozenset[str]]


async def read_state(acc: MaildirAccount, unreadable: list[str] | None = None) -> State:
    """Every mailbox and message. With *unreadable*, a message whose file cannot be
    read is listed there instead of failing (and left out)."""
    state: State = {}
    for mbox in await acc.list_mailboxes():
        _, metas = await acc.snapshot(mbox.name)
        msgs = {}
        for m in metas:
            try:
                msgs[m.uid] = (await acc.read_message(mbox.id, m.uid), m.flags)
            except MessageGone:
                if unreadable is None:
                    raise
                unreadable.append(f"{mbox.name}:{m.uid}")
        state[mbox.name] = Box(mbox.uidvalidity, msgs)
    return state


def locs(state: State, data: bytes) -> list[Loc]:
    """Where (mailbox, UID, flags) the message with these bytes is, in name order."""
    return sorted(
        (name, uid, flags)
        for name, box in state.items()
        for uid, (d, flags) in box.msgs.items()
        if d == data
    )


def bodies(state: State) -> set[bytes]:
    return {d for box in state.values() for d, _ in box.msgs.values()}


def boxes(state: State) -> dict[str, int]:
    return {name: box.uidvalidity for name, box in state.items()}


def same_box(a: Box, b: Box) -> bool:
    return a.uidvalidity == b.uidvalidity and a.msgs == b.msgs


# --- fixtures ---------------------------------------------------------------------------------
@dataclass
class Fx:
    root: Path
    store: MaildirStore | None = None
    acc: MaildirAccount | None = None
    before: State = field(default_factory=dict)
    stores: list[MaildirStore] = field(default_factory=list)
    """Every store opened, closed before the restart."""
    handed_out: dict[int, int] = field(default_factory=dict)
    """UIDVALIDITY -> the highest UID seen under it."""
    extra: dict[str, Any] = field(default_factory=dict)

    def saw(self, uidvalidity: int, uid: int) -> None:
        self.handed_out[uidvalidity] = max(self.handed_out.get(uidvalidity, 0), uid)

    def saw_state(self, state: State) -> None:
        for box in state.values():
            for uid in box.msgs:
                self.saw(box.uidvalidity, uid)

    def open_store(self) -> MaildirStore:
        store = MaildirStore(self.root, exclusive=True)
        self.stores.append(store)
        return store

    async def put(self, mailbox: str, tag: str, flags: tuple[str, ...] = ()) -> None:
        assert self.acc is not None
        await self.acc.append(mailbox, body(tag), flags)

    async def settle(self) -> None:
        """The flag letters in file names brought up to date (as the server does within
        seconds), then the state before the operation recorded."""
        assert self.store is not None and self.acc is not None
        await self.store.sync_names()
        self.before = await read_state(self.acc)
        self.saw_state(self.before)

    async def close(self) -> None:
        for store in self.stores:
            await store.close()


COMMENT = [("/shared/comment", b"kept with its mailbox")]


async def comments(acc: MaildirAccount, name: str) -> list[tuple[str, bytes]]:
    return await acc.get_metadata(name, ["/shared/comment"])


async def base(root: Path) -> Fx:
    fx = Fx(root)
    fx.store = fx.open_store()
    fx.acc = await fx.store.account(ADDRESS, INCARNATION)
    await fx.acc.set_metadata("INBOX", COMMENT)
    await fx.put("INBOX", "m1", ("\\Seen",))
    await fx.put("INBOX", "m2", ("\\Flagged", "$Label"))
    await fx.put("INBOX", "m3")
    await fx.put("Archive", "a1", ("\\Seen",))
    return fx


async def setup_base(root: Path) -> Fx:
    fx = await base(root)
    await fx.settle()
    return fx


async def setup_projects(root: Path) -> Fx:
    fx = await base(root)
    assert fx.acc is not None
    await fx.acc.create_mailbox("Projects")
    await fx.acc.set_metadata("Projects", COMMENT)
    await fx.put("Projects", "p1", ("\\Seen",))
    await fx.put("Projects", "p2", ("\\Answered", "$Label"))
    await fx.settle()
    return fx


async def setup_hierarchy(root: Path) -> Fx:
    fx = await base(root)
    assert fx.acc is not None
    await fx.acc.create_mailbox("A/B/C")
    await fx.acc.set_metadata("A/B", COMMENT)
    await fx.put("A", "x1", ("\\Seen",))
    await fx.put("A/B", "x2", ("\\Flagged",))
    await fx.put("A/B/C", "x3")
    await fx.settle()
    return fx


async def setup_reservation_low(root: Path) -> Fx:
    """The base fixture after enough flag changes that INBOX's MODSEQ reservation (see
    folderfile) runs low: the next write extends it in the folder file first. (With a
    fresh reservation a flag change passes no fault point at all.)"""
    fx = await base(root)
    assert fx.acc is not None
    acc = fx.acc
    inbox = await acc.get_mailbox("INBOX")
    while True:
        info = folderfile.read(acc.adir, "")
        hms = (await acc.get_mailbox("INBOX")).highestmodseq
        assert info is not None
        if info.modseq - (hms + 2) < folderfile.BLOCK // 2:
            break
        await acc.store_flags(inbox.id, [3], "add", ["\\Draft"])
        await acc.store_flags(inbox.id, [3], "remove", ["\\Draft"])
    await fx.settle()
    return fx


STRAY_NEW = body("stray-new")
STRAY_FOREIGN = body("stray-foreign")
STRAY_LOST_ROW = body("stray-lost-row")
STRAY_ORPHAN = body("stray-orphan")


ORPHAN_UIDVALIDITY = 1234567


async def setup_strays(root: Path, folder_file: bool = True) -> Fx:
    """Files the index does not know, as crashes and outside agents leave them: a file
    in new/, a foreign Maildir file and a file with a UID but no row in cur/, a second
    name of an indexed file, an expunged file whose unlink never happened, a stale tmp/
    file, a row whose file is gone, and a folder without a row (copied from another
    Letterbox account, with its folder file, or, without *folder_file*, from another
    Maildir server)."""
    fx = await base(root)
    assert fx.store is not None and fx.acc is not None
    acc = fx.acc
    await fx.store.sync_names()
    adir = root / "example.com" / "alice"
    inbox = await acc.get_mailbox("INBOX")
    cur = adir / "cur"
    by_uid = {int(n.split(",U=")[1].split(":")[0]): n for n in os.listdir(cur)}
    # m3 is expunged, but its file comes back (a crash before the unlink).
    m3 = (cur / by_uid[3]).read_bytes()
    await acc.expunge(inbox.id, [3])
    (cur / by_uid[3]).write_bytes(m3)
    # A second name of m1 (a crash in the middle of a flag-letter rename).
    os.link(cur / by_uid[1], cur / (by_uid[1].partition(":")[0] + ":2,ST"))
    before = await read_state(acc)
    fx.saw_state(before)
    # a1's file is lost.
    arch_cur = adir / ".Archive" / "cur"
    for n in os.listdir(arch_cur):
        os.unlink(arch_cur / n)
    await fx.close()
    fx.store = fx.acc = None
    (adir / "new" / "1700000000.outside.host").write_bytes(STRAY_NEW)
    (cur / "1600000000.foreign.host:2,S").write_bytes(STRAY_FOREIGN)
    (cur / f"1600000001.lost.host,S={len(STRAY_LOST_ROW)},U=50:2,F").write_bytes(STRAY_LOST_ROW)
    stale = adir / "tmp" / "1600000002.stale.host"
    stale.write_bytes(b"half a message")
    os.utime(stale, (1, 1))
    for sub in ("cur", "new", "tmp"):
        (adir / ".Orphan" / sub).mkdir(parents=True)
    (adir / ".Orphan" / "new" / "1700000001.orphan.host").write_bytes(STRAY_ORPHAN)
    if folder_file:
        (adir / ".Orphan" / folderfile.FOLDER_FILE).write_text(
            f"letterbox-folder 1\nuidvalidity {ORPHAN_UIDVALIDITY}\nuidnext 300\nmodseq 300\n"
        )
        fx.saw(ORPHAN_UIDVALIDITY, 299)
    fx.before = {name: box for name, box in before.items()}
    fx.before["Archive"] = Box(before["Archive"].uidvalidity, {})
    fx.saw(before["INBOX"].uidvalidity, 50)
    return fx


async def setup_foreign_folder(root: Path) -> Fx:
    return await setup_strays(root, folder_file=False)


# Each fixture is built once, into a template, and copied for every case.
_TEMPLATES = tempfile.TemporaryDirectory(dir=FAST_TMP, prefix="letterbox-fault-templates-")
_built: dict[str, tuple[Path, State, dict[int, int]]] = {}


def fixture(build: Callable[[Path], Awaitable[Fx]], open_as: str) -> Callable[[Path], Awaitable[Fx]]:
    """A fresh copy of *build*'s account, opened as the operation needs it: "account"
    (a store and the account's handle), "stale" (also a handle of another store, as
    `letterbox deliver` in another process would hold) or "closed" (nothing open)."""

    async def setup(root: Path) -> Fx:
        key = f"{build.__name__}"
        if key not in _built:
            where = Path(_TEMPLATES.name) / key / "mail"
            fx = await build(where)
            await fx.close()
            _built[key] = (where, fx.before, fx.handed_out)
        where, before, handed_out = _built[key]
        shutil.copytree(where, root, symlinks=True)
        fx = Fx(root, before=copy.deepcopy(before), handed_out=dict(handed_out))
        if open_as in ("account", "stale"):
            fx.store = fx.open_store()
            fx.acc = await fx.store.account(ADDRESS, INCARNATION)
        if open_as == "stale":
            other = MaildirStore(root)
            fx.stores.append(other)
            fx.extra["stale"] = await other.account(ADDRESS, INCARNATION)
        return fx

    return setup


# --- operations -------------------------------------------------------------------------------
NEW = body("new")
NEW_FLAGS = frozenset({"\\Seen", "$New"})
LATE = body("late")
ADD_FLAGS = frozenset({"\\Answered", "$Kw2"})
RENAMES = {"A": "Q/R", "A/B": "Q/R/B", "A/B/C": "Q/R/B/C"}


async def op_append(fx: Fx) -> Any:
    assert fx.acc is not None
    return await fx.acc.append("INBOX", NEW, sorted(NEW_FLAGS))


async def op_copy(fx: Fx) -> Any:
    assert fx.acc is not None
    inbox = await fx.acc.get_mailbox("INBOX")
    return await fx.acc.copy(inbox.id, [1, 2], "Archive")


async def op_move(fx: Fx) -> Any:
    assert fx.acc is not None
    inbox = await fx.acc.get_mailbox("INBOX")
    return await fx.acc.move(inbox.id, [1, 2], "Archive")


async def op_expunge(fx: Fx) -> Any:
    assert fx.acc is not None
    inbox = await fx.acc.get_mailbox("INBOX")
    return await fx.acc.expunge(inbox.id, [1, 2])


async def op_store_flags(fx: Fx) -> Any:
    assert fx.acc is not None
    inbox = await fx.acc.get_mailbox("INBOX")
    return await fx.acc.store_flags(inbox.id, [1, 2, 3], "add", sorted(ADD_FLAGS))


async def op_create(fx: Fx) -> Any:
    assert fx.acc is not None
    return await fx.acc.create_mailbox("New/Sub")


async def op_delete(fx: Fx) -> Any:
    assert fx.acc is not None
    return await fx.acc.delete_mailbox("Projects")


async def op_rename(fx: Fx) -> Any:
    assert fx.acc is not None
    return await fx.acc.rename_mailbox("A", "Q/R")


async def op_rename_inbox(fx: Fx) -> Any:
    assert fx.acc is not None
    return await fx.acc.rename_mailbox("INBOX", "Old")


async def _delete_account(fx: Fx, keep_mail: bool) -> None:
    """Delete the account, then deliver through a handle opened before the delete: that
    may succeed (into the folder moved aside) or fail, never reach a later account."""
    assert fx.store is not None
    await fx.store.delete_account(ADDRESS, keep_mail=keep_mail)
    try:
        await fx.extra["stale"].append("INBOX", LATE)
    except StoreError:
        pass


async def op_delete_account(fx: Fx) -> Any:
    """...and the next account of the address is made at once (its first login)."""
    assert fx.store is not None
    fx.extra["keep_mail"] = False
    await _delete_account(fx, keep_mail=False)
    return await read_state(await fx.store.account(ADDRESS, NEW_INCARNATION))


async def op_delete_account_keep(fx: Fx) -> Any:
    """...the next account is made only after the restart."""
    fx.extra["keep_mail"] = True
    await _delete_account(fx, keep_mail=True)


async def op_reconcile(fx: Fx) -> Any:
    fx.store = fx.open_store()
    return fx.store.reconcile_all()


async def op_rebuild(fx: Fx) -> Any:
    fx.store = fx.open_store()
    return fx.store.rebuild(ADDRESS)


async def op_repair(fx: Fx) -> Any:
    fx.store = fx.open_store()
    return fx.store.repair(ADDRESS, force=True)


# --- what each operation must leave -----------------------------------------------------------
def assert_untouched(before: State, final: State, skip: set[bytes]) -> None:
    """Messages the operation had nothing to do with are where they were, as they were."""
    for data in bodies(before) - skip:
        assert locs(final, data) == locs(before, data), data


def assert_boxes_kept(before: State, final: State, skip: set[str]) -> None:
    for name, box in before.items():
        if name in skip:
            continue
        assert name in final, f"mailbox {name} lost"
        assert final[name].uidvalidity == box.uidvalidity, f"UIDVALIDITY of {name} changed"


def msg(before: State, name: str, uid: int) -> tuple[bytes, frozenset[str]]:
    return before[name].msgs[uid]


async def check_append(fx: Fx, ok: bool, result: Any, final: State, acc: MaildirAccount) -> None:
    assert_untouched(fx.before, final, set())
    assert_boxes_kept(fx.before, final, set())
    where = locs(final, NEW)
    if ok:
        assert where == [("INBOX", result.uid, NEW_FLAGS)]
        assert final["INBOX"].uidvalidity == result.uidvalidity
    else:
        # Not acknowledged: at most once (see the module's docstring), never mangled.
        assert len(where) <= 1, where
        assert all(n == "INBOX" and f == NEW_FLAGS for n, _, f in where), where


async def check_copy(fx: Fx, ok: bool, result: Any, final: State, acc: MaildirAccount) -> None:
    b = fx.before
    moved = [msg(b, "INBOX", 1), msg(b, "INBOX", 2)]
    assert_untouched(b, final, {d for d, _ in moved})
    assert_boxes_kept(b, final, set())
    copies = []
    for data, flags in moved:
        where = locs(final, data)
        src = [w for w in where if w[0] == "INBOX"]
        assert src == [w for w in locs(b, data)], (data, where)
        dst = [w for w in where if w[0] != "INBOX"]
        assert all(n == "Archive" and f == flags for n, _, f in dst), where
        assert len(dst) <= 1, where
        copies.append(dst)
    if ok:
        assert [d[0][1] for d in copies] == list(result.dest_uids)
        assert result.uidvalidity == final["Archive"].uidvalidity
    else:
        assert all(copies) or not any(copies), f"a failed copy left some copies: {copies}"


async def check_move(fx: Fx, ok: bool, result: Any, final: State, acc: MaildirAccount) -> None:
    b = fx.before
    moved = [msg(b, "INBOX", 1), msg(b, "INBOX", 2)]
    assert_untouched(b, final, {d for d, _ in moved})
    assert_boxes_kept(b, final, set())
    places = []
    for data, flags in moved:
        where = locs(final, data)
        assert len(where) == 1, f"moved message found {len(where)} times: {where}"
        name, uid, fl = where[0]
        assert fl == flags
        if name == "INBOX":
            assert where == locs(b, data)
        else:
            assert name == "Archive"
        places.append(name)
    if ok:
        assert places == ["Archive", "Archive"]
        assert [locs(final, d)[0][1] for d, _ in moved] == list(result.dest_uids)
    else:
        assert len(set(places)) == 1, f"a failed move split the messages: {places}"


async def check_expunge(fx: Fx, ok: bool, result: Any, final: State, acc: MaildirAccount) -> None:
    b = fx.before
    doomed = [msg(b, "INBOX", 1)[0], msg(b, "INBOX", 2)[0]]
    assert_untouched(b, final, set(doomed))
    assert_boxes_kept(b, final, set())
    there = [locs(final, d) == locs(b, d) for d in doomed]
    gone = [not locs(final, d) for d in doomed]
    if ok:
        assert result == [1, 2]
        assert all(gone), "an acknowledged expunge came back"
    else:
        assert all(there) or all(gone), f"a failed expunge did half: there={there}"


async def check_store_flags(fx: Fx, ok: bool, result: Any, final: State, acc: MaildirAccount) -> None:
    b = fx.before
    assert_untouched(b, final, {d for d, _ in b["INBOX"].msgs.values()})
    assert_boxes_kept(b, final, set())
    old = {uid: f for uid, (_, f) in b["INBOX"].msgs.items()}
    new = {uid: f | ADD_FLAGS for uid, f in old.items()}
    assert {uid: d for uid, (d, _) in final["INBOX"].msgs.items()} == {
        uid: d for uid, (d, _) in b["INBOX"].msgs.items()
    }
    now = {uid: f for uid, (_, f) in final["INBOX"].msgs.items()}
    if ok:
        assert now == new
        assert sorted(m.uid for m in result) == [1, 2, 3]
    else:
        assert now in (old, new), f"a failed flag change did half: {now}"


async def check_create(fx: Fx, ok: bool, result: Any, final: State, acc: MaildirAccount) -> None:
    assert_untouched(fx.before, final, set())
    assert_boxes_kept(fx.before, final, set())
    made = {n for n in final if n not in fx.before}
    assert made in (set(), {"New", "New/Sub"}), f"create left {made}"
    if ok:
        assert made == {"New", "New/Sub"}
        assert final["New/Sub"].uidvalidity == result.uidvalidity
    for name in made:
        assert not final[name].msgs
    if not made:
        # Failed without a trace: it can be done now.
        await acc.create_mailbox("New/Sub")


async def check_delete(fx: Fx, ok: bool, result: Any, final: State, acc: MaildirAccount) -> None:
    b = fx.before
    doomed = {d for d, _ in b["Projects"].msgs.values()}
    assert_untouched(b, final, doomed)
    assert_boxes_kept(b, final, {"Projects"})
    assert set(final) <= set(b)
    if "Projects" in final:
        assert not ok, "an acknowledged delete did not happen"
        assert same_box(final["Projects"], b["Projects"]), "a failed delete changed the mailbox"
        assert await comments(acc, "Projects") == COMMENT, "a failed delete lost the metadata"
        await acc.delete_mailbox("Projects")  # failed without a trace: it can be done now
        again = await acc.create_mailbox("Projects")
        assert await comments(acc, "Projects") == [], "metadata of a deleted mailbox came back"
        fx.saw(again.uidvalidity, 0)
    else:
        assert not any(locs(final, d) for d in doomed), "deleted mail survived elsewhere"
        # Made again, it is a new mailbox: empty, with another UIDVALIDITY.
        again = await acc.create_mailbox("Projects")
        assert again.uidvalidity != b["Projects"].uidvalidity
        _, metas = await acc.snapshot("Projects")
        assert metas == [], "deleted mail came back in a mailbox of the same name"
        assert await comments(acc, "Projects") == [], "metadata of a deleted mailbox came back"
        fx.saw(again.uidvalidity, 0)


async def check_rename(fx: Fx, ok: bool, result: Any, final: State, acc: MaildirAccount) -> None:
    b = fx.before
    moved = {d for name in RENAMES for d, _ in b[name].msgs.values()}
    assert_untouched(b, final, moved)
    assert_boxes_kept(b, final, set(RENAMES))
    old_state = all(n in final for n in RENAMES) and not any(
        n in final for n in [*RENAMES.values(), "Q"]
    )
    new_state = all(n in final for n in [*RENAMES.values(), "Q"]) and not any(
        n in final for n in RENAMES
    )
    assert old_state or new_state, f"a rename left a mix: {sorted(final)}"
    if ok:
        assert new_state
    for old, new in RENAMES.items():
        name = old if old_state else new
        assert same_box(final[name], b[old]), f"{name} is not what {old} was"
        assert await comments(acc, name) == (COMMENT if old == "A/B" else []), f"{name}'s metadata"
    if new_state:
        assert not final["Q"].msgs
    else:
        await acc.rename_mailbox("A", "Q/R")  # failed without a trace: it can be done now


async def check_rename_inbox(fx: Fx, ok: bool, result: Any, final: State, acc: MaildirAccount) -> None:
    b = fx.before
    moved = {d: f for d, f in b["INBOX"].msgs.values()}
    assert_untouched(b, final, set(moved))
    assert_boxes_kept(b, final, set())
    assert "INBOX" in final
    places = []
    for data, flags in moved.items():
        where = locs(final, data)
        assert len(where) == 1, f"message found {len(where)} times: {where}"
        name, _, fl = where[0]
        assert fl == flags
        if name == "INBOX":
            assert where == locs(b, data)
        else:
            assert name == "Old"
        places.append(name)
    old_state = "Old" not in final and set(places) == {"INBOX"}
    new_state = "Old" in final and set(places) == {"Old"}
    if ok:
        assert new_state
    # RFC 5464 4.1: INBOX keeps its metadata, the new mailbox has a copy.
    assert await comments(acc, "INBOX") == COMMENT
    if new_state:
        assert await comments(acc, "Old") == COMMENT
    assert old_state or new_state, (
        f"a failed RENAME INBOX left a mix: Old {'exists' if 'Old' in final else 'absent'},"
        f" messages in {places}"
    )
    if old_state:
        await acc.rename_mailbox("INBOX", "Old")  # failed without a trace: it can be done now


def _files_under(path: Path) -> Iterator[Path]:
    for dirpath, _, names in os.walk(path):
        for n in names:
            yield Path(dirpath) / n


async def check_account_delete(
    fx: Fx, ok: bool, result: Any, final: State, acc: MaildirAccount
) -> None:
    # The account after the restart is the new incarnation's: empty, whatever happened.
    old = bodies(fx.before) | {LATE}
    assert acc.incarnation == NEW_INCARNATION
    assert not bodies(final), "mail of the deleted account is visible in the new one"
    assert set(final) == {"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"}
    for box in final.values():
        assert box.uidvalidity not in {b.uidvalidity for b in fx.before.values()}
    for p in _files_under(fx.root / "example.com" / "alice"):
        if p.is_file() and not p.is_symlink():
            assert p.read_bytes() not in old, f"{p} of the deleted account is in the new one"
    if ok and result is not None:
        assert not bodies(result)
    # Deleted mail is removed for good by the restart at the latest; kept mail is kept
    # out of every account's reach. (A delete that failed before its rename leaves the
    # folder in place: the new account's first open moves it to the archive.)
    deleted = {p.read_bytes() for p in _files_under(fx.root / ".deleted") if p.is_file()}
    assert not deleted & bodies(fx.before), "deleted mail is still on disk after the restart"
    if fx.extra.get("keep_mail") and ok:
        kept = {p.read_bytes() for p in _files_under(fx.root / ".archive") if p.is_file()}
        assert bodies(fx.before) <= kept, "mail kept aside is missing"


async def check_reconcile(fx: Fx, ok: bool, result: Any, final: State, acc: MaildirAccount) -> None:
    b = fx.before
    assert_untouched(b, final, set())
    assert_boxes_kept(b, final, set())
    assert len(locs(final, body("m1"))) == 1
    assert not locs(final, body("m3")), "an expunged message came back"
    assert not locs(final, body("a1")), "a message whose file is gone is still listed"
    for data, where, flags in (
        (STRAY_NEW, "INBOX", frozenset()),
        (STRAY_FOREIGN, "INBOX", frozenset({"\\Seen"})),
        (STRAY_LOST_ROW, "INBOX", frozenset({"\\Flagged"})),
        (STRAY_ORPHAN, "Orphan", frozenset()),
    ):
        found = locs(final, data)
        assert [(n, f) for n, _, f in found] == [(where, flags)], (data, found)
    if ORPHAN_UIDVALIDITY in fx.handed_out:
        # Adopted with its folder file: its UIDVALIDITY, and UIDs above its reservation.
        assert final["Orphan"].uidvalidity == ORPHAN_UIDVALIDITY
        assert locs(final, STRAY_ORPHAN)[0][1] >= 300
    assert [u for n, u, _ in locs(final, STRAY_LOST_ROW)] == [50]
    assert not (fx.root / "example.com" / "alice" / "tmp" / "1600000002.stale.host").exists()


async def check_rebuild(fx: Fx, ok: bool, result: Any, final: State, acc: MaildirAccount) -> None:
    # A rebuild keeps UIDVALIDITY, UIDs and flags (from the folder files and file names).
    assert_untouched(fx.before, final, set())
    assert boxes(final) == boxes(fx.before)


Check = Callable[[Fx, bool, Any, State, MaildirAccount], Awaitable[None]]


@dataclass(frozen=True)
class Op:
    name: str
    setup: Callable[[Path], Awaitable[Fx]]
    run: Callable[[Fx], Awaitable[Any]]
    check: Check
    incarnation: str = INCARNATION


BASE = fixture(setup_base, "account")
CLOSED = fixture(setup_base, "closed")
OPS = [
    Op("append", BASE, op_append, check_append),
    Op("copy", BASE, op_copy, check_copy),
    Op("move", BASE, op_move, check_move),
    Op("expunge", BASE, op_expunge, check_expunge),
    Op("store_flags", fixture(setup_reservation_low, "account"), op_store_flags, check_store_flags),
    Op("create_mailbox", BASE, op_create, check_create),
    Op("delete_mailbox", fixture(setup_projects, "account"), op_delete, check_delete),
    Op("rename_mailbox", fixture(setup_hierarchy, "account"), op_rename, check_rename),
    Op("rename_inbox", BASE, op_rename_inbox, check_rename_inbox),
    Op("delete_account", fixture(setup_base, "stale"), op_delete_account, check_account_delete,
       NEW_INCARNATION),
    Op("delete_account_keep", fixture(setup_base, "stale"), op_delete_account_keep,
       check_account_delete, NEW_INCARNATION),
    Op("reconcile_all", fixture(setup_strays, "closed"), op_reconcile, check_reconcile),
    Op("reconcile_all_foreign_folder", fixture(setup_foreign_folder, "closed"), op_reconcile,
       check_reconcile),
    Op("rebuild", CLOSED, op_rebuild, check_rebuild),
    Op("repair", CLOSED, op_repair, check_rebuild),
]
OPS_BY_NAME = {op.name: op for op in OPS}


# --- learning the points, once ----------------------------------------------------------------
def record(op: Op) -> list[str]:
    async def go(root: Path) -> list[str]:
        fx = await op.setup(root)
        try:
            with faults.recording() as rec:
                try:
                    await op.run(fx)
                except Exception:
                    pass  # the op's own "nofault" case reports it
            return list(rec)
        finally:
            await fx.close()

    faults.disarm()
    with tempfile.TemporaryDirectory(dir=FAST_TMP) as tmp:
        return asyncio.run(go(Path(tmp) / "mail"))


PLANS = {op.name: record(op) for op in OPS}


@dataclass(frozen=True)
class Case:
    op: str
    point: str | None
    hit: int
    errno: str
    index: int
    """Position of this (point, hit) in the operation's recorded list."""

    @property
    def id(self) -> str:
        if self.point is None:
            return f"{self.op}-nofault"
        return f"{self.op}-{self.point}@{self.hit}-{self.errno}"


def _common_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


# A forced repair starts with the very rebuild the rebuild cases fail at every step.
SKIP_STEPS = {"repair": _common_prefix(PLANS["repair"], PLANS["rebuild"])}


def cases() -> list[Case]:
    out = []
    for op in OPS:
        out.append(Case(op.name, None, 0, "", -1))
        seen: dict[str, int] = {}
        for i, point in enumerate(PLANS[op.name]):
            seen[point] = hit = seen.get(point, 0) + 1
            if i < SKIP_STEPS.get(op.name, 0):
                continue
            named = point in NAME_POINTS or point.startswith(("create.", "rename."))
            for code in ERRNOS + (("ENAMETOOLONG",) if named else ()):
                out.append(Case(op.name, point, hit, code, i))
    return out


CASES = cases()

class Escaped(AssertionError):
    """The operation raised something other than a StoreError (everything else held)."""


def params() -> list[Any]:
    return [pytest.param(c, id=c.id) for c in CASES]


# --- the tests --------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _disarmed() -> Iterator[None]:
    faults.disarm()
    yield
    faults.disarm()


def test_every_operation_passes_fault_points() -> None:
    """The recording found steps to fail (else the cases below test nothing)."""
    for op in OPS:
        assert PLANS[op.name], f"{op.name} passes no fault point"


async def restart(fx: Fx, incarnation: str) -> tuple[MaildirStore, MaildirAccount]:
    await fx.close()
    store = MaildirStore(fx.root, exclusive=True)
    fx.stores = [store]
    store.reconcile_all()
    if store.unavailable:
        store.rebuild_unavailable()  # what the server starts right after reconcile_all
    assert not store.unavailable, store.unavailable
    return store, await store.account(ADDRESS, incarnation)


def assert_index_matches_folders(acc: MaildirAccount) -> None:
    root = acc.root
    dirs = dict(acc.db.execute("SELECT id, dirname FROM mailboxes").fetchall())
    for mid, dirname in dirs.items():
        folder = root / dirname if dirname else root
        rows = {r[0] for r in acc.db.execute("SELECT filename FROM messages WHERE mailbox_id = ?", (mid,))}
        assert set(os.listdir(folder / "cur")) == rows, f"{dirname or 'INBOX'}: cur/ and index disagree"
        assert not os.listdir(folder / "new"), f"{dirname or 'INBOX'}: files left in new/"
    on_disk = {e for e in os.listdir(root) if e.startswith(".") and (root / e).is_dir()}
    assert on_disk == set(dirs.values()) - {""}, "folders and mailboxes disagree"
    trash = root / "letterbox-trash"
    assert not trash.exists() or not os.listdir(trash), "the folder trash was not emptied"
    assert not (root / "letterbox-kept").exists(), "files were kept aside"


async def run_case(case: Case, root: Path) -> None:
    op = OPS_BY_NAME[case.op]
    fx = await op.setup(root)
    ok, escaped = True, None
    result: Any = None
    with faults.recording() as rec:
        if case.point is not None:
            faults.arm(case.point, case.errno, case.hit)
        try:
            result = await op.run(fx)
        except StoreError as e:
            ok, result = False, e
        except Exception as e:
            # Not what the store promises; the restart is checked all the same, and the
            # test fails for it at the end.
            ok, result, escaped = False, e, e
        finally:
            fired = not faults.armed()
            faults.disarm()
    if case.point is not None:
        # The operation took the path it was recorded on, up to the fault, and failed there.
        plan = PLANS[case.op]
        assert fired, f"{case.point}@{case.hit} was never reached"
        assert rec[: case.index + 1] == plan[: case.index + 1]
    else:
        assert ok, f"the operation failed without a fault: {result!r}"
        assert rec == PLANS[case.op]

    # What the same handle shows right after the operation (if it can still be used).
    # A message it lists but cannot read is left out of the comparison below.
    post: State | None = None
    unreadable: list[str] = []
    if fx.acc is not None and not fx.acc.closed:
        post = await read_state(fx.acc, unreadable)
        fx.saw_state(post)
    if ok and hasattr(result, "uid"):
        fx.saw(result.uidvalidity, result.uid)
    if ok and hasattr(result, "dest_uids"):
        for uid in result.dest_uids:
            fx.saw(result.uidvalidity, uid)

    store, acc = await restart(fx, op.incarnation)
    final = await read_state(acc)
    fx.saw_state(final)
    assert_index_matches_folders(acc)
    if post is not None:
        # The restart changes nothing the store showed: committed state is not lost, and
        # nothing gone (or never committed) appears.
        assert boxes(final) == boxes(post), "the restart changed the mailboxes"
        for name, box in final.items():
            for uid, (data, flags) in box.msgs.items():
                if f"{name}:{uid}" in unreadable:
                    continue  # listed, but its file was not where the index said
                assert post[name].msgs.get(uid) == (data, flags), f"{name} UID {uid} appeared: {data!r}"
            for uid, msg in post[name].msgs.items():
                assert box.msgs.get(uid) == msg, f"{name} UID {uid} changed or lost: {msg!r}"
    await op.check(fx, ok, result, final, acc)

    # No UID is handed out twice under one UIDVALIDITY.
    for mbox in await acc.list_mailboxes():
        r = await acc.append(mbox.name, body(f"after-{mbox.name}"))
        assert r.uidvalidity == mbox.uidvalidity
        top = fx.handed_out.get(r.uidvalidity, 0)
        assert r.uid > top, f"{mbox.name}: UID {r.uid} handed out again (seen up to {top})"
    await store.close()
    if escaped is not None:
        origin = [f"{Path(f.filename).name}:{f.lineno} in {f.name}"
                  for f in traceback.extract_tb(escaped.__traceback__)
                  if "/letterbox/" in f.filename and not f.filename.endswith("faults.py")]
        raise Escaped(
            f"{type(escaped).__name__} escaped instead of a StoreError: {escaped!r}"
            f" (from {' < '.join(reversed(origin[-4:]))})"
        )


@pytest.fixture
def fast_tmp() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(dir=FAST_TMP, prefix="letterbox-faults-") as tmp:
        yield Path(tmp)


@pytest.mark.parametrize("case", params())
def test_fault(case: Case, fast_tmp: Path) -> None:
    try:
        asyncio.run(run_case(case, fast_tmp / "mail"))
    except AssertionError as e:
        # Hundreds of these are expected (xfail), and pytest takes a tenth of a second to
        # format each one's traceback through asyncio: raised again here, with the lines
        # of this file it went through in the message instead.
        here = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == __file__]
        where = " < ".join(f"line {f.lineno} in {f.name}" for f in reversed(here))
        raise type(e)(f"{e}\n(at {where})") from None
