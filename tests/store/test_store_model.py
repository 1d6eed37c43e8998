"""The embedded store against an in-memory model (hypothesis stateful testing).

Three MaildirStore instances share one root, as three processes would: the server
(exclusive) and two others, each with its own SQLite connections and caches. Random
sequences of APPEND (also several deliveries at once), STORE, EXPUNGE, COPY, MOVE,
CREATE/DELETE/RENAME (hierarchies; INBOX, which moves its mail out), SUBSCRIBE, the
\\Recent claim, QRESYNC-style resyncs, the file-name sync, account deletion and
re-creation under a new incarnation, index rebuilds, and restarts with start-up
reconciliation go through a randomly chosen instance. After every step each instance
shows exactly the model: every message byte-exact with its flags, INTERNALDATE and parse,
read by the mailbox id a session holds; nothing more (snapshot, SELECT, flag table,
STATUS, usage); UIDs ascending and never handed out twice under one UIDVALIDITY, also
per the folder files' reservations; every new mailbox, also of a re-created account, with
a UIDVALIDITY never seen and an id its index never had.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from letterbox.mime import parse_message
from letterbox.store.api import (
    SYSTEM_FLAGS,
    AppendResult,
    BadMailboxName,
    FetchField,
    MailboxExists,
    MailboxNotFound,
    StoreError,
)
from letterbox.store.maildir import MaildirAccount, MaildirStore, files, folderfile
from letterbox.store.maildir import account as account_module

T = TypeVar("T")
Mode = Literal["add", "remove", "replace"]

ADDRESSES = ("alice@example.com", "bob@example.org")
DEFAULTS = frozenset({"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"})
SHARED = 2
"""Non-exclusive instances beside the server (instance 0)."""
# fsync costs nothing on tmpfs: the many steps run fast and in steady time.
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
# Names operations are tried on: existing or not, nested, INBOX in other spellings and
# as a parent, and characters the folder names must escape.
NAMES = (
    "INBOX", "inbox", "Drafts", "Sent", "Trash", "Junk", "Archive",
    "A", "a", "A/B", "A/B/C", "B", "B/A", "Work.2024", "50%", "Käse", "INBOX/Sub", "inbox/Sub/x",
    "Trash/Old",
)
FLAGS = (
    "\\Seen", "\\seen", "\\Flagged", "\\Deleted", "\\DELETED", "\\Answered", "\\Draft",
    "\\Recent", "\\Unknown", "$Label1", "$Label2", "$Forwarded", "NonJunk",
)
_CANON = {f.lower(): f for f in SYSTEM_FLAGS}
FIELDS: list[FetchField] = ["flags", "size", "internaldate", "envelope", "bodystructure"]

instances = st.integers(0, SHARED)
addresses = st.sampled_from(ADDRESSES)
names = st.sampled_from(NAMES)
flag_sets = st.sets(st.sampled_from(FLAGS), max_size=4)
bodies = st.one_of(
    st.binary(max_size=120),
    st.builds(
        lambda subject, body: b"Subject: " + subject.encode() + b"\r\nFrom: a@example.com\r\n\r\n" + body,
        st.text(max_size=20),
        st.binary(max_size=200),
    ),
)


def canonical(name: str) -> str:
    """INBOX is case-insensitive, also as a parent (RFC 9051 5.1)."""
    first, sep, rest = name.partition("/")
    return ("INBOX" if first.upper() == "INBOX" else first) + sep + rest


def parents(name: str) -> set[str]:
    parts = name.split("/")
    return {"/".join(parts[:i]) for i in range(1, len(parts))}


def stored_flags(flags: Iterable[str]) -> frozenset[str]:
    """What the store keeps of flags a client sends: system flags in their canonical
    spelling, \\Recent and unknown system flags dropped, keywords as given."""
    out = set()
    for f in flags:
        if not f.startswith("\\"):
            out.add(f)
        elif f.lower() in _CANON and f.lower() != "\\recent":
            out.add(_CANON[f.lower()])
    return frozenset(out)


@dataclass(frozen=True)
class Msg:
    data: bytes
    flags: frozenset[str]
    internaldate: float | None
    """As given to APPEND (None: the time of arrival, not checked)."""
    envelope: bytes
    """What the index must keep of the parse, wherever the message goes."""
    bodystructure: bytes

    @classmethod
    def make(cls, data: bytes, flags: frozenset[str], internaldate: float | None) -> Msg:
        parsed = parse_message(data)
        return cls(data, flags, internaldate, parsed.envelope, parsed.bodystructure)


@dataclass
class Box:
    id: int
    uidvalidity: int
    special_use: str | None = None
    messages: dict[int, Msg] = field(default_factory=dict)
    """By UID, ascending."""
    recent: set[int] = field(default_factory=set)
    """UIDs added since \\Recent was last claimed (some may be gone since)."""

    def flags(self) -> dict[int, frozenset[str]]:
        return {uid: m.flags for uid, m in self.messages.items()}


@dataclass
class Session:
    """A client that selected a mailbox and remembers what it saw, to resync (QRESYNC)."""

    uidvalidity: int
    mailbox_id: int
    epoch: int
    modseq: int
    view: dict[int, frozenset[str]]


@dataclass
class Account:
    incarnation: str
    boxes: dict[str, Box] = field(default_factory=dict)
    subs: set[str] = field(default_factory=set)
    """Subscribed names: names, not mailboxes (RFC 9051 6.3.7)."""
    ids_seen: set[int] = field(default_factory=set)
    """Mailbox ids of this index: never given to another mailbox."""
    epoch: int = 0
    """Index rebuilds so far (a rebuilt index numbers its mailboxes anew)."""
    sessions: dict[int, Session] = field(default_factory=dict)


class StoreModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="letterbox-model-", dir=SCRATCH))
        self.loop = asyncio.new_event_loop()
        self.stores = self._open_stores()
        self.model: dict[str, Account] = {}
        self.uidvalidities: set[int] = set()
        """Every UIDVALIDITY any mailbox had (the store's are unique store-wide)."""
        self.top_uid: dict[int, int] = {}
        """UIDVALIDITY -> the highest UID ever handed out under it."""
        self.touched: set[str] = set()
        """Accounts used since the last check (the others cannot have changed)."""
        for address in ADDRESSES:
            self._new_account(address, 0)

    def teardown(self) -> None:
        try:
            for store in self.stores:
                self._run(store.close())
            self._run(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()
            shutil.rmtree(self.root, ignore_errors=True)

    # --- helpers -----------------------------------------------------------------------
    def _open_stores(self) -> list[MaildirStore]:
        mail = self.root / "mail"
        return [MaildirStore(mail, exclusive=True)] + [MaildirStore(mail) for _ in range(SHARED)]

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def _handle(self, i: int, address: str) -> MaildirAccount:
        self.touched.add(address)
        return self._run(self.stores[i].account(address, self.model[address].incarnation))

    def _refused(self, expected: type[StoreError], coro: Coroutine[Any, Any, object]) -> None:
        try:
            self._run(coro)
        except StoreError as e:
            assert isinstance(e, expected), f"{type(e).__name__}: {e}, expected {expected.__name__}"
            if expected is StoreError:
                assert not isinstance(e, MailboxNotFound | MailboxExists), e
        else:
            raise AssertionError(f"succeeded, expected {expected.__name__}")

    def _hand_out(self, uidvalidity: int, uids: Sequence[int]) -> None:
        """*uids* were just given to new messages under *uidvalidity*."""
        assert list(uids) == sorted(set(uids)), f"UIDs not ascending: {uids}"
        if uids:
            top = self.top_uid.get(uidvalidity, 0)
            assert uids[0] > top, f"UID {uids[0]} handed out again (highest so far {top})"
            self.top_uid[uidvalidity] = uids[-1]

    def _arrived(self, box: Box, results: Sequence[AppendResult], msg: Msg) -> None:
        """Copies of *msg* were stored in *box* with these *results*."""
        assert all(r.uidvalidity == box.uidvalidity for r in results)
        uids = sorted(r.uid for r in results)
        self._hand_out(box.uidvalidity, uids)
        for uid in uids:
            box.messages[uid] = msg
            box.recent.add(uid)

    def _adopt(self, address: str, h: MaildirAccount, expected: set[str]) -> None:
        """Learn the mailboxes an operation made: those in *expected* the model lacks.
        Each must have an id and a UIDVALIDITY never seen."""
        acc = self.model[address]
        listed = {m.name: m for m in self._run(h.list_mailboxes())}
        for name in sorted(expected - acc.boxes.keys()):
            m = listed.get(name)
            assert m is not None, f"{name} was not made; have {sorted(listed)}"
            assert m.id not in acc.ids_seen, f"mailbox id {m.id} reused for {name}"
            assert m.uidvalidity not in self.uidvalidities, f"UIDVALIDITY {m.uidvalidity} reused for {name}"
            acc.ids_seen.add(m.id)
            self.uidvalidities.add(m.uidvalidity)
            acc.boxes[name] = Box(m.id, m.uidvalidity, m.special_use)
            # A made mailbox is subscribed if it has a special use (and INBOX).
            if name == "INBOX" or m.special_use:
                acc.subs.add(name)
            assert m.subscribed == (name in acc.subs), f"{name} subscribed: {m.subscribed}"
        assert listed.keys() == acc.boxes.keys()

    def _new_account(self, address: str, opener: int) -> None:
        """The directory made the account (anew): a new incarnation, opened first by
        instance *opener*. It must start with the default mailboxes only, all empty."""
        self.model[address] = Account(secrets.token_hex(8))
        h = self._handle(opener, address)
        self._adopt(address, h, set(DEFAULTS))
        usage = self._run(h.usage())
        assert (usage.messages, usage.bytes) == (0, 0)

    def _name(self, data: st.DataObject, address: str, label: str) -> str:
        """A name from NAMES, or (as often) one of the account's mailboxes."""
        existing = st.sampled_from(sorted(self.model[address].boxes))
        return data.draw(st.one_of(names, existing), label=label)

    def _has_mail(self) -> bool:
        return any(b.messages for acc in self.model.values() for b in acc.boxes.values())

    def _pick(self, data: st.DataObject) -> tuple[str, Box, list[int]]:
        """A mailbox with messages and UIDs in it: existing ones, and some that are not."""
        full = [(a, n) for a, acc in self.model.items() for n, b in acc.boxes.items() if b.messages]
        address, name = data.draw(st.sampled_from(sorted(full)), label="mailbox")
        box = self.model[address].boxes[name]
        # Positions, not UID values, are drawn: what hypothesis replays must not depend on
        # the UIDs the store chose. Past the end: a UID no message has.
        uids = sorted(box.messages)
        absent = sorted(set(range(1, self.top_uid.get(box.uidvalidity, 0) + 2)) - set(uids))
        candidates = [*uids, absent[0], absent[-1]]  # the lowest UID gone (or UIDNEXT), UIDNEXT
        picks = data.draw(st.lists(st.integers(0, len(candidates) - 1), min_size=1, max_size=6))
        return address, box, [candidates[p] for p in picks]

    # --- messages ----------------------------------------------------------------------
    @initialize(
        mail=st.lists(st.tuples(instances, addresses, st.sampled_from(sorted(DEFAULTS)), bodies, flag_sets),
                      min_size=1, max_size=6),
    )
    def some_mail(self, mail: list[tuple[int, str, str, bytes, set[str]]]) -> None:
        """Mail in the default mailboxes first, so that the other rules find some."""
        for i, address, name, body, flags in mail:
            res = self._run(self._handle(i, address).append(name, body, flags))
            self._arrived(self.model[address].boxes[name], [res], Msg.make(body, stored_flags(flags), None))

    @rule(
        i=instances, address=addresses, data=st.data(), body=bodies, flags=flag_sets,
        when=st.none() | st.integers(0, 2**31).map(float),
    )
    def append(
        self, i: int, address: str, data: st.DataObject, body: bytes, flags: set[str], when: float | None
    ) -> None:
        h = self._handle(i, address)
        name = self._name(data, address, "mailbox")
        box = self.model[address].boxes.get(canonical(name))
        if box is None:
            self._refused(MailboxNotFound, h.append(name, body, flags, when))
            return
        res = self._run(h.append(name, body, flags, when))
        self._arrived(box, [res], Msg.make(body, stored_flags(flags), when))

    @rule(
        to=st.lists(st.tuples(instances, addresses), min_size=2, max_size=4), body=bodies,
        flags=flag_sets,
    )
    def deliver(self, to: list[tuple[int, str]], body: bytes, flags: set[str]) -> None:
        """One message delivered to INBOX through several processes at once: each copy
        gets a UID of its own, above every UID handed out before. (The copies are alike,
        so that which one got which UID, up to the scheduler, changes nothing.)"""
        handles = [self._handle(i, address) for i, address in to]

        async def at_once() -> list[AppendResult]:
            return await asyncio.gather(*(h.append("INBOX", body, flags) for h in handles))

        results = self._run(at_once())
        msg = Msg.make(body, stored_flags(flags), None)
        for address in ADDRESSES:
            got = [r for r, (_, a) in zip(results, to, strict=True) if a == address]
            self._arrived(self.model[address].boxes["INBOX"], got, msg)

    @precondition(_has_mail)
    @rule(i=instances, data=st.data(), mode=st.sampled_from(["add", "remove", "replace"]), flags=flag_sets)
    def store_flags(self, i: int, data: st.DataObject, mode: Mode, flags: set[str]) -> None:
        address, box, uids = self._pick(data)
        h = self._handle(i, address)
        given = stored_flags(flags)
        expected: dict[int, frozenset[str]] = {}
        for uid in sorted(set(uids) & box.messages.keys()):
            old = box.messages[uid].flags
            new = old | given if mode == "add" else old - given if mode == "remove" else given
            if new != old:
                expected[uid] = new
        changed = self._run(h.store_flags(box.id, uids, mode, flags))
        assert [(m.uid, m.flags) for m in changed] == list(expected.items())
        for uid, new in expected.items():
            box.messages[uid] = replace(box.messages[uid], flags=new)

    @precondition(_has_mail)
    @rule(i=instances, data=st.data())
    def expunge(self, i: int, data: st.DataObject) -> None:
        address, box, uids = self._pick(data)
        h = self._handle(i, address)
        gone = self._run(h.expunge(box.id, uids))
        assert gone == sorted(set(uids) & box.messages.keys())
        for uid in gone:
            del box.messages[uid]

    @precondition(_has_mail)
    @rule(i=instances, data=st.data(), move=st.booleans())
    def copy_or_move(self, i: int, data: st.DataObject, move: bool) -> None:
        address, box, uids = self._pick(data)
        h = self._handle(i, address)
        dest = self._name(data, address, "dest")
        target = self.model[address].boxes.get(canonical(dest))
        op = h.move if move else h.copy
        if target is None:
            self._refused(MailboxNotFound, op(box.id, uids, dest))
            return
        res = self._run(op(box.id, uids, dest))
        present = sorted(set(uids) & box.messages.keys())
        assert res.uidvalidity == target.uidvalidity
        assert list(res.source_uids) == present
        assert len(res.dest_uids) == len(present)
        self._hand_out(target.uidvalidity, res.dest_uids)
        for src, dst in zip(res.source_uids, res.dest_uids, strict=True):
            target.messages[dst] = box.messages.pop(src) if move else box.messages[src]
            target.recent.add(dst)

    # --- mailboxes ---------------------------------------------------------------------
    @rule(
        i=instances, address=addresses, name=names,
        use=st.sampled_from([None, None, "\\Archive", "\\Flagged", "\\All"]),
    )
    def create_mailbox(self, i: int, address: str, name: str, use: str | None) -> None:
        h = self._handle(i, address)
        canon = canonical(name)
        boxes = self.model[address].boxes
        if canon in boxes or (use and any(b.special_use == use for b in boxes.values())):
            self._refused(MailboxExists, h.create_mailbox(name, use))
            return
        made = self._run(h.create_mailbox(name, use))
        assert made.name == canon
        self._adopt(address, h, {canon} | parents(canon))
        box = boxes[canon]
        assert (made.id, made.uidvalidity, made.special_use) == (box.id, box.uidvalidity, use)

    @rule(i=instances, address=addresses, data=st.data())
    def delete_mailbox(self, i: int, address: str, data: st.DataObject) -> None:
        h = self._handle(i, address)
        name = self._name(data, address, "mailbox")
        boxes = self.model[address].boxes
        canon = canonical(name)
        if canon not in boxes:
            self._refused(MailboxNotFound, h.delete_mailbox(name))
        elif canon == "INBOX" or any(n.startswith(canon + "/") for n in boxes):
            self._refused(StoreError, h.delete_mailbox(name))
        else:
            self._run(h.delete_mailbox(name))
            del boxes[canon]

    @rule(i=instances, address=addresses, data=st.data(), new=names)
    def rename_mailbox(self, i: int, address: str, data: st.DataObject, new: str) -> None:
        h = self._handle(i, address)
        old = self._name(data, address, "old")
        boxes = self.model[address].boxes
        src, dst = canonical(old), canonical(new)
        if src not in boxes:
            self._refused(MailboxNotFound, h.rename_mailbox(old, new))
        elif dst in boxes:
            self._refused(MailboxExists, h.rename_mailbox(old, new))
        elif src == "INBOX":
            # RFC 9051 6.3.6: the messages move to a new mailbox; INBOX stays, empty.
            self._run(h.rename_mailbox(old, new))
            self._adopt(address, h, {dst} | parents(dst))
            inbox, made = boxes["INBOX"], boxes[dst]
            _, metas = self._run(h.snapshot(dst))
            uids = [m.uid for m in metas]
            assert len(uids) == len(inbox.messages)
            self._hand_out(made.uidvalidity, uids)
            made.messages = dict(zip(uids, inbox.messages.values(), strict=True))
            made.recent = set(uids)
            inbox.messages = {}
        elif dst.startswith(src + "/"):
            self._refused(BadMailboxName, h.rename_mailbox(old, new))
        else:
            self._run(h.rename_mailbox(old, new))
            moved = [n for n in boxes if n == src or n.startswith(src + "/")]
            taken = {n: boxes.pop(n) for n in moved}
            for n, box in taken.items():
                boxes[dst + n[len(src):]] = box
            self._adopt(address, h, parents(dst))

    @precondition(_has_mail)
    @rule(i=instances, data=st.data())
    def take_recent(self, i: int, data: st.DataObject) -> None:
        """A session claims \\Recent: exactly the messages added since the last claim."""
        address, box, _ = self._pick(data)
        h = self._handle(i, address)
        first, end = self._run(h.take_recent(box.id))
        assert {uid for uid in box.messages if first <= uid < end} == box.recent & box.messages.keys()
        box.recent = set()

    @rule(i=instances, address=addresses, data=st.data(), subscribed=st.booleans())
    def set_subscribed(self, i: int, address: str, data: st.DataObject, subscribed: bool) -> None:
        h = self._handle(i, address)
        name = self._name(data, address, "mailbox")
        # Any valid name, whether or not a mailbox has it (RFC 9051 6.3.7).
        self._run(h.set_subscribed(name, subscribed))
        subs = self.model[address].subs
        (subs.add if subscribed else subs.discard)(canonical(name))

    # --- clients coming back ---------------------------------------------------------------
    @rule(i=instances, address=addresses, data=st.data(), slot=st.integers(0, 1))
    def select(self, i: int, address: str, data: st.DataObject, slot: int) -> None:
        h = self._handle(i, address)
        acc = self.model[address]
        name = data.draw(st.sampled_from(sorted(acc.boxes)), label="mailbox")
        box = acc.boxes[name]
        mbox, metas = self._run(h.snapshot(name))
        view = {m.uid: m.flags for m in metas}
        assert view == box.flags()
        acc.sessions[slot] = Session(box.uidvalidity, box.id, acc.epoch, mbox.highestmodseq, view)

    @precondition(lambda self: any(acc.sessions for acc in self.model.values()))
    @rule(i=instances, data=st.data())
    def resync(self, i: int, data: st.DataObject) -> None:
        """What changed since the client's HIGHESTMODSEQ brings its view to the model's,
        through renames, restarts and index rebuilds."""
        address, slot = data.draw(st.sampled_from(
            sorted((a, s) for a, acc in self.model.items() for s in acc.sessions)
        ), label="session")
        acc = self.model[address]
        session = acc.sessions[slot]
        h = self._handle(i, address)
        found = [(n, b) for n, b in acc.boxes.items() if b.uidvalidity == session.uidvalidity]
        if not found:  # deleted
            if session.epoch == acc.epoch:
                cs = self._run(h.changes_since(session.mailbox_id, session.modseq))
                assert cs.uidvalidity_changed
            del acc.sessions[slot]
            return
        [(name, box)] = found
        assert session.epoch != acc.epoch or session.mailbox_id == box.id
        cs = self._run(h.changes_since(box.id, session.modseq))
        assert not cs.uidvalidity_changed and (cs.name, cs.uidvalidity) == (name, box.uidvalidity)
        assert cs.highestmodseq >= session.modseq
        assert all(m.modseq > session.modseq for m in cs.updated)
        gone = set(cs.expunged)
        assert not gone & box.messages.keys(), f"reported expunged but present: {gone}"
        view = {uid: fl for uid, fl in session.view.items() if uid not in gone}
        view.update((m.uid, m.flags) for m in cs.updated)
        assert view == box.flags(), f"resync of {name} from MODSEQ {session.modseq}: {cs}"
        acc.sessions[slot] = Session(box.uidvalidity, box.id, acc.epoch, cs.highestmodseq, view)

    # --- background work, accounts, restarts ---------------------------------------------
    @precondition(_has_mail)
    @rule(i=instances)
    def sync_names(self, i: int) -> None:
        """The server's background task: file names catch up with the flags."""
        self._run(self.stores[i].sync_names())
        self.touched.update(ADDRESSES)

    @precondition(_has_mail)
    @rule(address=addresses, opener=instances, drop=st.booleans(), keep_mail=st.booleans())
    def recreate_account(self, address: str, opener: int, drop: bool, keep_mail: bool) -> None:
        """The account is deleted by the server and added again: a new incarnation."""
        if drop:  # the other processes' sessions on it ended first
            for store in self.stores[1:]:
                acc = store._accounts.pop(address, None)
                if acc is not None:
                    acc.close()
        self._run(self.stores[0].delete_account(address, keep_mail=keep_mail))
        self._new_account(address, opener)

    @precondition(_has_mail)
    @rule(address=addresses)
    def rebuild(self, address: str) -> None:
        """`letterbox repair --force`: once the other processes let go of the account, the
        server rebuilds its index from the folders alone. With the file names caught up
        with the flags, what the README promises is kept: UIDVALIDITY, UIDs, flags,
        keywords, special-use, subscriptions, and the bytes (mailbox ids are numbered
        anew, \\Recent is claimed)."""
        server = self.stores[0]
        self._handle(0, address)
        server.mark_names_stale()
        self._run(server.sync_names())
        for store in self.stores[1:]:
            acc = store._accounts.pop(address, None)
            if acc is not None:
                acc.close()
            store._unlock_shared(address)
        server.rebuild(address, self.model[address].incarnation)
        model = self.model[address]
        listed = {m.name: m for m in self._run(self._handle(0, address).list_mailboxes())}
        assert listed.keys() == model.boxes.keys()
        model.epoch += 1
        model.ids_seen = set()
        for name, box in model.boxes.items():
            assert listed[name].uidvalidity == box.uidvalidity, name
            box.id = listed[name].id
            box.recent = set()
            model.ids_seen.add(box.id)

    @precondition(_has_mail)
    @rule(everyone=st.booleans())
    def restart(self, everyone: bool) -> None:
        """The server (and the other processes too, or not) stops cleanly; it starts
        again and reconciles every account."""
        stopped = self.stores if everyone else self.stores[:1]
        for store in stopped:
            self._run(store.close())
        self.stores[: len(stopped)] = self._open_stores()[: len(stopped)]
        self.touched.update(ADDRESSES)
        stats = self.stores[0].reconcile_all()
        assert not any(stats.values()), f"a clean stop left something to repair: {stats}"
        assert not self.stores[0].unavailable and not self.stores[0].new_waiting

    # --- what every instance must show -------------------------------------------------------
    @invariant()
    def every_instance_matches_the_model(self) -> None:
        self._run(self._check_all(sorted(self.touched)))
        self.touched.clear()

    async def _check_all(self, addresses: list[str]) -> None:
        for i, store in enumerate(self.stores):
            for address in addresses:
                h = await store.account(address, self.model[address].incarnation)
                await self._check(h, f"instance {i}, {address}", self.model[address])

    async def _check(self, h: MaildirAccount, where: str, acc: Account) -> None:
        # First by mailbox id alone, as a session that selected the mailbox earlier reads.
        for name, box in acc.boxes.items():
            uids = sorted(box.messages)
            top = self.top_uid.get(box.uidvalidity, 0)
            recs = await h.fetch(box.id, [*uids, top + 1], FIELDS)
            assert [r.uid for r in recs] == uids, f"{where}: fetch {name}"
            for r in recs:
                msg = box.messages[r.uid]
                assert (r.flags, r.size, r.envelope, r.bodystructure) == (
                    msg.flags, len(msg.data), msg.envelope, msg.bodystructure,
                ), f"{where}: fetch {name} UID {r.uid}"
                assert msg.internaldate in (None, r.internaldate), f"{where}: {name} UID {r.uid}"
                data = await h.read_message(box.id, r.uid)
                assert data == msg.data, f"{where}: {name} UID {r.uid}"
                assert await h.read_range(box.id, r.uid, 1, 7) == msg.data[1:8]
        listed = await h.list_mailboxes()
        assert {m.name: (m.id, m.uidvalidity, m.special_use, m.subscribed) for m in listed} == {
            n: (b.id, b.uidvalidity, b.special_use, n in acc.subs) for n, b in acc.boxes.items()
        }, where
        assert await h.subscriptions() == sorted(acc.subs), where
        total_messages = total_bytes = 0
        for m in listed:
            box = acc.boxes[m.name]
            messages = sorted(box.messages.items())
            flags = [(uid, msg.flags) for uid, msg in messages]
            top = self.top_uid.get(m.uidvalidity, 0)
            assert m.uidnext > top, f"{where}: {m.name} UIDNEXT {m.uidnext} <= {top}"
            keywords = {f for _, fl in flags for f in fl if not f.startswith("\\")}
            assert keywords <= set(m.keywords), f"{where}: {m.name} keywords {m.keywords}"
            _, metas = await h.snapshot(m.name)
            assert [(x.uid, x.flags) for x in metas] == flags, f"{where}: snapshot {m.name}"
            table = await h.flag_table(m.id)
            assert list(table.uids) == [uid for uid, _ in flags], f"{where}: flag table {m.name}"
            assert [frozenset(table.texts[f].split()) for f in table.flag_ids] == [fl for _, fl in flags]
            _, uids, first_unseen = await h.select_info(m.name)
            assert list(uids) == [uid for uid, _ in flags], f"{where}: select_info {m.name}"
            assert first_unseen == next((u for u, fl in flags if "\\Seen" not in fl), None)
            for flag in ("\\Deleted", "$Label1"):
                with_flag = await h.uids_with_flag(m.id, flag)
                assert with_flag == [u for u, fl in flags if flag in fl], f"{where}: {m.name} {flag}"
            status = await h.status(m.name)
            size = sum(len(msg.data) for _, msg in messages)
            assert (status.messages, status.unseen, status.deleted, status.size, status.recent) == (
                len(flags),
                sum("\\Seen" not in fl for _, fl in flags),
                sum("\\Deleted" in fl for _, fl in flags),
                size,
                len(box.recent & box.messages.keys()),
            ), f"{where}: status {m.name}"
            # What a rebuild from the folders would restart from: never below a UID or
            # MODSEQ handed out.
            info = folderfile.read(h.adir, files.folder_dirname(m.name))
            assert info is not None, f"{where}: {m.name} has no folder file"
            assert (info.uidvalidity, info.special_use) == (m.uidvalidity, m.special_use), where
            assert info.uidnext > top and info.modseq >= m.highestmodseq, f"{where}: {m.name} {info}"
            total_messages += len(flags)
            total_bytes += size
        usage = await h.usage()
        assert (usage.messages, usage.bytes) == (total_messages, total_bytes), where


@pytest.mark.timeout(600)  # passing takes about 30 s; a failure is then shrunk (up to 5 min)
def test_store_matches_model(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small reservation blocks, so that the folder files' UID and MODSEQ reservations are
    # extended often, also by instances whose idea of a folder may be stale.
    monkeypatch.setattr(folderfile, "BLOCK", 4)
    monkeypatch.setattr(account_module, "BLOCK", 4)
    run_state_machine_as_test(
        StoreModel,
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
