"""kill -9 of a real server at each step of each multi-step store write, then a restart.

Whatever step the server dies at: every acknowledged message is there exactly once with
its flags, no UID is handed out twice, nothing deleted comes back, and no account sees
another's mail. (RENAME and DELETE of folders: tests/server/test_trust.py.)
"""

from __future__ import annotations

import imaplib
import re
import smtplib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from letterbox.server.control import send_command
from tests.conftest import ServerProcess

PW = "pw"
USER, OTHER = "k@example.com", "other@example.com"

Message = tuple[str, int, str, frozenset[str]]  # mailbox, UID, subject, flags
State = dict[str, list[Message]]


def msg(subject: str) -> bytes:
    return f"From: a@example.org\r\nSubject: {subject}\r\n\r\n{subject} body\r\n".encode()


def imap(srv: ServerProcess, user: str = USER) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", srv.port("imap"))
    c.login(user, PW)
    return c


def state(srv: ServerProcess, user: str = USER) -> tuple[State, dict[str, tuple[int, int]]]:
    """Every message of *user* by mailbox, and each mailbox's (UIDVALIDITY, UIDNEXT)."""
    c = imap(srv, user)
    names = [re.search(rb'"/" (.*)$', line).group(1).decode().strip('"')  # type: ignore[union-attr]
             for line in c.list()[1] if line]
    out: State = {}
    ids: dict[str, tuple[int, int]] = {}
    for name in names:
        typ, data = c.status(f'"{name}"', "(UIDVALIDITY UIDNEXT)")
        v, n = (int(x) for x in re.search(rb"UIDVALIDITY (\d+) UIDNEXT (\d+)", data[0]).groups())  # type: ignore[union-attr]
        ids[name] = (v, n)
        c.select(f'"{name}"', readonly=True)
        typ, data = c.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        for item in data:
            if not isinstance(item, tuple):
                continue
            uid = int(re.search(rb"UID (\d+)", item[0]).group(1))  # type: ignore[union-attr]
            flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split()  # type: ignore[union-attr]
            subject = item[1].decode().split(":", 1)[1].strip()
            out.setdefault(name, []).append((name, uid, subject, frozenset(flags) - {"\\Recent"}))
    c.logout()
    return out, ids


def everywhere(s: State) -> list[Message]:
    return [m for msgs in s.values() for m in msgs]


@pytest.fixture
def seeded(make_server) -> ServerProcess:  # type: ignore[no-untyped-def]
    srv: ServerProcess = make_server()
    srv.add_user(USER, PW)
    srv.add_user(OTHER, PW)
    c = imap(srv)
    c.append("INBOX", "(\\Seen)", None, msg("s1"))
    c.append("INBOX", "(\\Flagged $Label)", None, msg("s2"))
    c.append("INBOX", None, None, msg("s3"))
    c.append("INBOX", None, None, msg("s4"))
    c.create("F")
    c.append("F", "(\\Answered)", None, msg("f1"))
    c.logout()
    with smtplib.LMTP("127.0.0.1", srv.port("lmtp")) as lmtp:
        lmtp.sendmail("a@example.org", [OTHER], msg("o1"))
    srv.stop()  # at rest: file names carry the flags
    return srv


@dataclass
class Op:
    run: Callable[[ServerProcess], None]
    touched: set[str]
    check: Callable[[list[Message], list[Message]], None]
    """(messages before, after) of the touched subjects."""


def expect_killed(action: Callable[[], object]) -> None:
    with pytest.raises((imaplib.IMAP4.abort, OSError, imaplib.IMAP4.error)):
        action()
        action()


def _append(srv: ServerProcess) -> None:
    c = imap(srv)
    expect_killed(lambda: c.append("INBOX", None, None, msg("new")))


def _check_append(before: list[Message], after: list[Message]) -> None:
    assert [m[2] for m in after] in ([], ["new"])  # not acknowledged: at most once


def _copy(srv: ServerProcess) -> None:
    c = imap(srv)
    c.select("INBOX")
    expect_killed(lambda: c.uid("COPY", "1:2", "F"))


def _check_copy(before: list[Message], after: list[Message]) -> None:
    originals = [m for m in after if m[0] == "INBOX"]
    assert sorted(originals) == sorted(before)
    for subject, flags in (("s1", {"\\Seen"}), ("s2", {"\\Flagged", "$Label"})):
        copies = [m for m in after if m[0] == "F" and m[2] == subject]
        assert len(copies) <= 1 and all(m[3] == flags for m in copies)


def _move(srv: ServerProcess) -> None:
    c = imap(srv)
    c.select("INBOX")
    expect_killed(lambda: c.uid("MOVE", "1:2", "F"))


def _check_move(before: list[Message], after: list[Message]) -> None:
    assert Counter(m[2] for m in after) == Counter({"s1": 1, "s2": 1})
    assert {m[2]: m[3] for m in after} == {m[2]: m[3] for m in before}


def _expunge(srv: ServerProcess) -> None:
    c = imap(srv)
    c.select("INBOX")
    c.uid("STORE", "3", "+FLAGS", "(\\Deleted)")
    expect_killed(c.expunge)


def _check_expunge(before: list[Message], after: list[Message]) -> None:
    assert after == []  # committed before the kill: never back


def _store(srv: ServerProcess) -> None:
    c = imap(srv)
    c.select("INBOX")
    assert c.uid("STORE", "4", "+FLAGS", "(\\Answered $Other)")[0] == "OK"
    # The server dies a moment later, bringing file names up to date in the background.


def _check_store(before: list[Message], after: list[Message]) -> None:
    assert [(m[2], m[3]) for m in after] == [("s4", frozenset({"\\Answered", "$Other"}))]


def _create(srv: ServerProcess) -> None:
    c = imap(srv)
    expect_killed(lambda: c.create("N/M"))


def _delete_account(srv: ServerProcess) -> None:
    d = srv.directory()
    try:
        d.mark_deleted(USER)
    finally:
        d.close()
    send_command(srv.home / "run", {"cmd": "reload"})


OPS: dict[str, Op] = {
    "append": Op(_append, {"new"}, _check_append),
    "copy": Op(_copy, {"s1", "s2"}, _check_copy),
    "move": Op(_move, {"s1", "s2"}, _check_move),
    "expunge": Op(_expunge, {"s3"}, _check_expunge),
    "store": Op(_store, {"s4"}, _check_store),
}

CASES = [
    ("append", "append.written"), ("append", "append.renamed"), ("append", "append.committed"),
    ("copy", "copy.linked"), ("copy", "copy.linked@2"), ("copy", "copy.committed"),
    ("move", "move.renamed"), ("move", "move.renamed@2"), ("move", "move.committed"),
    ("expunge", "expunge.committed"), ("expunge", "expunge.synced"), ("expunge", "expunge.unlinked"),
    ("store", "names.linked"), ("store", "names.committed"),
]


def restart_after_kill(srv: ServerProcess) -> None:
    if srv.proc is not None:
        srv.wait_killed()
    srv.start()


def check_uids_never_reused(srv: ServerProcess, before_ids: dict[str, tuple[int, int]], after: State) -> None:
    """A new message in each mailbox gets a UID above every UID handed out before."""
    c = imap(srv)
    _, ids = state(srv)
    for name, (validity, uidnext) in before_ids.items():
        if name not in ids or ids[name][0] != validity:
            continue
        typ, data = c.append(f'"{name}"', None, None, msg("probe"))
        uid = int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))  # type: ignore[union-attr]
        seen = [m[1] for m in after.get(name, [])]
        assert uid >= uidnext and uid > max(seen, default=0), (name, uid, uidnext, seen)


@pytest.mark.parametrize("op,point", CASES, ids=[f"{o}-{p}" for o, p in CASES])
def test_killed_at_every_step(seeded: ServerProcess, op: str, point: str) -> None:
    srv = seeded
    srv.start()
    before, before_ids = state(srv)
    other_before, _ = state(srv, OTHER)
    srv.stop()
    spec = OPS[op]
    name, _, hit = point.partition("@")
    srv.start_with_faults(f"{name}=kill@{hit or 1}")
    spec.run(srv)
    restart_after_kill(srv)
    after, _ = state(srv)
    untouched_before = [m for m in everywhere(before) if m[2] not in spec.touched]
    untouched_after = [m for m in everywhere(after) if m[2] not in spec.touched]
    assert sorted(untouched_after) == sorted(untouched_before)
    spec.check(
        [m for m in everywhere(before) if m[2] in spec.touched],
        [m for m in everywhere(after) if m[2] in spec.touched],
    )
    assert state(srv, OTHER)[0] == other_before
    check_uids_never_reused(srv, before_ids, after)
    check_one_file_per_message(srv)


def check_one_file_per_message(srv: ServerProcess) -> None:
    """At rest, each folder holds exactly one file per message: no second names left."""
    expected = {name: len(msgs) for name, msgs in state(srv)[0].items()}
    srv.stop()
    folder = srv.home / "data" / "mail" / "example.com" / "k"
    for name, _ in state_names(folder):
        assert len(list((folder / _dir(name) / "cur").iterdir())) == expected.get(name, 0), name
    srv.start()


def _dir(name: str) -> str:
    return "" if name == "INBOX" else "." + name.replace("/", ".")


def state_names(folder: Path) -> list[tuple[str, Path]]:
    out = [("INBOX", folder)]
    out += [(p.name[1:].replace(".", "/"), p) for p in folder.iterdir() if p.name.startswith(".") and (p / "cur").is_dir()]
    return out


@pytest.mark.parametrize("point", ["create.journaled", "create.made", "create.made@2", "create.committed"])
def test_create_killed_ends_with_all_or_nothing(seeded: ServerProcess, point: str) -> None:
    srv = seeded
    name, _, hit = point.partition("@")
    srv.start_with_faults(f"{name}=kill@{hit or 1}")
    _create(srv)
    restart_after_kill(srv)
    names = set(state(srv)[1])
    assert {"N", "N/M"} <= names if point == "create.committed" else not names & {"N", "N/M"}
    c = imap(srv)
    assert c.create("N/M")[0] == ("NO" if point == "create.committed" else "OK")


@pytest.mark.parametrize("point", ["account.deleting", "account.moved"])
def test_account_delete_killed_is_finished_at_the_next_start(seeded: ServerProcess, point: str) -> None:
    srv = seeded
    srv.start_with_faults(f"{point}=kill")
    other_before, _ = state(srv, OTHER)
    _delete_account(srv)
    restart_after_kill(srv)
    d = srv.directory()
    try:
        assert d.get(USER) is None and d.pending_deletions() == []
    finally:
        d.close()
    mail = srv.home / "data" / "mail"
    assert not (mail / "example.com" / "k").exists()
    assert not list((mail / ".deleted").rglob("*"))
    srv.add_user(USER, PW)
    assert state(srv)[0] == {}
    assert state(srv, OTHER)[0] == other_before


def _drop_strays(srv: ServerProcess) -> list[str]:
    folder = srv.home / "data" / "mail" / "example.com" / "k"
    names = []
    for i in range(3):
        p = folder / "new" / f"170000000{i}.outside{i}.host"
        p.write_bytes(msg(f"n{i}"))
        names.append(f"n{i}")
    return names


@pytest.mark.parametrize("hit", [1, 2, 3])
def test_start_up_indexing_killed_midway(seeded: ServerProcess, hit: int) -> None:
    srv = seeded
    subjects = _drop_strays(srv)
    with pytest.raises(RuntimeError, match="exited early"):
        srv.start_with_faults(f"reconcile.renamed=kill@{hit}")
    srv.proc = None
    srv.start()
    found = Counter(m[2] for m in everywhere(state(srv)[0]))
    assert all(found[s] == 1 for s in subjects), found
    assert found["s1"] == 1 and found["f1"] == 1


def test_rebuild_killed_is_done_again(seeded: ServerProcess) -> None:
    srv = seeded
    srv.start()
    before, _ = state(srv)
    srv.stop()
    folder: Path = srv.home / "data" / "mail" / "example.com" / "k"
    (folder / "letterbox.index").unlink()
    try:
        srv.start_with_faults("rebuild.built=kill")
        srv.wait_killed()
    except RuntimeError:  # killed before it even said it was listening
        srv.proc = None
    srv.start()
    after, _ = state(srv)
    assert {k: sorted(v) for k, v in after.items()} == {k: sorted(v) for k, v in before.items()}
