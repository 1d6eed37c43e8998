"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 section 4): the CONTEXT hint, UPDATE with its
ADDTO and REMOVEFROM notifications (as this or another session stores flags, appends,
expunges or moves), NOUPDATE and its limits, tag reuse, CANCELUPDATE, the end of updates
when the mailbox is left, SORT context positions; the RFC's examples, a client model
checked against fresh searches, the cost of re-checking, and a real server."""

from __future__ import annotations

import asyncio
import random
import re
import socket
from collections.abc import Callable
from typing import BinaryIO

import pytest

import letterbox.imap.session  # noqa: F401  (first: it builds the command table)
from letterbox.imap import contexts as contexts_module
from letterbox.imap.contexts import MAX_CONTEXTS, MAX_SORT_CONTEXTS
from letterbox.imap.grammar import CancelUpdate, CommandReader, ParseError, Search, SearchAll
from tests.conftest import ServerProcess

from .test_fetch_helpers import Env, Session, run, tagged


def message(subject: str, body: str = "body") -> bytes:
    return f"Subject: {subject}\r\n\r\n{body}\r\n".encode()


def expand(text: bytes) -> list[int]:
    """A sequence-set in the order written (SORT results keep theirs), ranges ascending."""
    out: list[int] = []
    for item in text.split(b","):
        lo, _, hi = item.partition(b":")
        a, b = int(lo), int(hi or lo)
        out.extend(range(a, b + 1) if a <= b else range(a, b - 1, -1))
    return out


def all_of(out: bytes, tag: str) -> list[int]:
    m = re.search(rb'(?m)^\* ESEARCH \(TAG "' + re.escape(tag.encode()) + rb'"\)(?: UID)?(?: ALL ([0-9,:]+))?\r\n', out)
    assert m is not None, out
    return expand(m.group(1)) if m.group(1) else []


def updates(out: bytes) -> list[bytes]:
    return [line for line in out.split(b"\r\n") if line.startswith(b"* ESEARCH") and (b"ADDTO" in line or b"REMOVEFROM" in line)]


class Model:
    """What a client keeps of one updating search: the result list, changed only by the
    rules of RFC 5267 4.3.2-4.3.4, and for message numbers by EXPUNGE."""

    def __init__(self, tag: str, results: list[int], uid: bool) -> None:
        self.tag = tag
        self.results = results
        self.uid = uid

    def feed(self, out: bytes) -> None:
        for line in out.split(b"\r\n"):
            m = re.fullmatch(rb'\* ESEARCH \(TAG "([^"]*)"\)( UID)? (.*)', line)
            if m is not None and m.group(1).decode() == self.tag:
                assert bool(m.group(2)) == self.uid, line
                items = re.findall(rb"(ADDTO|REMOVEFROM) \(([^)]*)\)", m.group(3))
                assert items and b" ".join(b"%s (%s)" % i for i in items) == m.group(3), line
                for name, pairs in items:
                    words = pairs.split()
                    assert len(words) % 2 == 0, line
                    for pos, seqset in zip(words[::2], words[1::2], strict=True):
                        self.apply(name, int(pos), expand(seqset), line)
            e = re.fullmatch(rb"\* (\d+) EXPUNGE", line)
            if e is not None and not self.uid:
                n = int(e.group(1))
                # REMOVEFROM must have come first, while the number was still valid.
                assert n not in self.results, (self.tag, n, out)
                self.results = [r - (r > n) for r in self.results]

    def apply(self, name: bytes, pos: int, numbers: list[int], line: bytes) -> None:
        if name == b"ADDTO":
            assert not set(numbers) & set(self.results), line
            if pos == 0:
                self.results = sorted(self.results + numbers)
            else:
                assert 1 <= pos <= len(self.results) + 1, line
                self.results[pos - 1 : pos - 1] = numbers
        elif pos == 0:
            assert set(numbers) <= set(self.results), line
            self.results = [r for r in self.results if r not in numbers]
        else:
            assert self.results[pos - 1 : pos - 1 + len(numbers)] == numbers, (line, self.results)
            del self.results[pos - 1 : pos - 1 + len(numbers)]


async def start(s: Session, tag: str, command: str) -> Model:
    """Run an updating SEARCH or SORT (RETURN (UPDATE ALL)) and model its result."""
    out = await s.cmd(f"{tag} {command}")
    assert tagged(out, tag).startswith(tag.encode() + b" OK"), out
    assert b"NOUPDATE" not in out, out
    return Model(tag, all_of(out, tag), command.startswith("UID "))


async def store(s: Session, line: str) -> None:
    out = await s.cmd("w " + line)
    assert tagged(out, "w").startswith(b"w OK"), out


# --- the grammar -----------------------------------------------------------------------------


def test_grammar() -> None:
    def parse(line: bytes) -> object:
        reader = CommandReader()
        reader.feed(line + b"\r\n")
        return reader.next_event()

    cmd = parse(b"a SEARCH RETURN (context update COUNT update) ALL")
    assert isinstance(cmd, Search) and cmd.return_options == ("CONTEXT", "UPDATE", "COUNT")
    assert parse(b'a CANCELUPDATE "B01"') == CancelUpdate("a", ("B01",))
    assert parse(b'a CANCELUPDATE "B01" "x y" "B01"') == CancelUpdate("a", ("B01", "x y"))
    for bad in (b"a CANCELUPDATE", b"a CANCELUPDATE B01", b'a CANCELUPDATE "B01" B02', b'a CANCELUPDATE  "B01"',
                b"a CANCELUPDATE {3}", b"a SEARCH RETURN (UPDATE (FLAGS)) ALL"):
        event = parse(bad)
        assert isinstance(event, ParseError) and event.response().startswith(b"a BAD "), (bad, event)


# --- RFC 5267 4.2: CONTEXT -------------------------------------------------------------------


def test_rfc5267_context_hint(env: Env) -> None:
    async def go() -> None:
        await env.append(message("a"), message("b"), message("c"), flags=())
        await env.append(message("junk"), flags=("$Junk",))
        s = await env.session()
        out = await s.cmd("A01 SEARCH RETURN (CONTEXT COUNT) UNDELETED UNKEYWORD $Junk")
        assert out == b'* ESEARCH (TAG "A01") COUNT 3\r\nA01 OK SEARCH completed\r\n'
        # A hint only: alone it leaves the default, ALL; no updates follow.
        out = await s.cmd("A02 SEARCH RETURN (CONTEXT) UNKEYWORD $Junk")
        assert out == b'* ESEARCH (TAG "A02") ALL 1:3\r\nA02 OK SEARCH completed\r\n'
        out = await s.cmd("A03 UID SORT RETURN (CONTEXT) (REVERSE SUBJECT) UTF-8 ALL")
        assert out == b'* ESEARCH (TAG "A03") UID ALL 4,3,2,1\r\nA03 OK UID SORT completed\r\n'
        await store(s, "STORE 1 +FLAGS ($Junk)")
        assert updates(await s.cmd("n NOOP")) == []

    run(go())


# --- RFC 5267 4.3: UPDATE --------------------------------------------------------------------


def test_rfc5267_update_count_and_tag_reuse(env: Env) -> None:
    async def go() -> None:
        await env.append(*[message(f"m{i}") for i in range(4)])
        await env.append(message("x"), message("y"), flags=("\\Deleted", "$Junk"))
        s = await env.session()
        out = await s.cmd("B01 UID SEARCH RETURN (UPDATE COUNT) DELETED KEYWORD $Junk")
        assert out == b'* ESEARCH (TAG "B01") UID COUNT 2\r\nB01 OK UID SEARCH completed\r\n'
        # "Note that the following is rejected, and has no effect":
        out = await s.cmd("B01 SORT RETURN (UPDATE) (ARRIVAL) UTF-8 FLAGGED")
        assert out.startswith(b"B01 BAD "), out
        out = await s.cmd("B01 SEARCH RETURN (UPDATE SAVE) FLAGGED")
        assert out.startswith(b"B01 BAD "), out
        # Without UPDATE the tag is the client's business.
        out = await s.cmd("B01 SEARCH RETURN (COUNT) FLAGGED")
        assert out == b'* ESEARCH (TAG "B01") COUNT 0\r\nB01 OK SEARCH completed\r\n'
        assert len(s.s.view.contexts) == 1  # type: ignore[union-attr,arg-type]

    run(go())


def test_update_alone_returns_only_the_correlator(env: Env) -> None:
    async def go() -> None:
        await env.append(message("a"), message("b"))
        s = await env.session()
        out = await s.cmd("u SEARCH RETURN (UPDATE) ALL")
        assert out == b'* ESEARCH (TAG "u")\r\nu OK SEARCH completed\r\n'
        out = await s.cmd("v UID SORT RETURN (UPDATE SAVE) (SUBJECT) UTF-8 SUBJECT b")
        assert out == b'* ESEARCH (TAG "v") UID\r\nv OK UID SORT completed\r\n'
        assert all_of(await s.cmd("w UID SEARCH RETURN (ALL) $"), "w") == [2]
        await env.append(message("c"))
        out = await s.cmd("n NOOP")
        # RFC 5267 A.3: SEARCH RETURN (UPDATE) ALL notifies of every message.
        assert out == b'* 3 EXISTS\r\n* 3 RECENT\r\n* ESEARCH (TAG "u") ADDTO (0 3)\r\nn OK NOOP completed\r\n'

    run(go())


def test_rfc5267_addto_example(env: Env) -> None:
    """4.3.3: two messages come to match through another session's STORE; the ADDTO
    follows the FETCHes, and no COUNT comes with it."""

    async def go() -> None:
        await env.append(*[message(f"m{i}") for i in range(6)])
        await env.append(message("old"), flags=("\\Deleted", "$Junk"))
        a = await env.session()
        b = await env.session()
        out = await a.cmd("B01 UID SEARCH RETURN (UPDATE COUNT) DELETED KEYWORD $Junk")
        assert b"COUNT 1" in out
        await store(b, "STORE 3:4 +FLAGS (\\Deleted \\Seen $Junk)")
        out = await a.cmd("B03 NOOP")
        assert out.endswith(
            b"* 3 FETCH (FLAGS ($Junk \\Deleted \\Seen \\Recent))\r\n"
            b"* 4 FETCH (FLAGS ($Junk \\Deleted \\Seen \\Recent))\r\n"
            b'* ESEARCH (TAG "B01") UID ADDTO (0 3:4)\r\n'
            b"B03 OK NOOP completed\r\n"
        ), out
        assert out.index(b"* 4 FETCH") < out.index(b"ADDTO")
        assert updates(out) == [b'* ESEARCH (TAG "B01") UID ADDTO (0 3:4)']

    run(go())


def test_rfc5267_removefrom_before_expunge(env: Env) -> None:
    """4.3.4 and A.3: an expunged result leaves the context at once, before the EXPUNGE,
    which waits for a command that may shift message numbers."""

    async def go() -> None:
        await env.append(*[message(f"m{i}") for i in range(5)], flags=("\\Deleted",))
        a = await env.session()
        b = await env.session()
        await a.cmd("B01 UID SEARCH RETURN (UPDATE) DELETED")
        await a.cmd("C01 SEARCH RETURN (UPDATE) DELETED")
        await store(b, "EXPUNGE")  # all five
        out = await a.cmd("f FETCH 1 (UID)")
        assert updates(out) == [b'* ESEARCH (TAG "B01") UID REMOVEFROM (0 1:5)', b'* ESEARCH (TAG "C01") REMOVEFROM (0 1:5)']
        assert b" EXPUNGE\r\n" not in out and b"* 1 FETCH (UID 1)" not in out
        out = await a.cmd("B03 NOOP")
        assert out == b"* 5 EXPUNGE\r\n* 4 EXPUNGE\r\n* 3 EXPUNGE\r\n* 2 EXPUNGE\r\n* 1 EXPUNGE\r\nB03 OK NOOP completed\r\n"

    run(go())


def test_own_store_expunge_and_move(env: Env) -> None:
    async def go() -> None:
        await env.append(*[message(f"m{i}") for i in range(5)])
        s = await env.session()
        await s.cmd("A SEARCH RETURN (UPDATE) FLAGGED")
        out = await s.cmd("b STORE 2,4 +FLAGS (\\Flagged)")
        # The STORE's own FETCHes, then the ADDTO, then its tagged OK.
        assert re.fullmatch(
            rb"\* 2 FETCH \(FLAGS \(\\Flagged \\Recent\)\)\r\n\* 4 FETCH \(FLAGS \(\\Flagged \\Recent\)\)\r\n"
            rb'\* ESEARCH \(TAG "A"\) ADDTO \(0 2,4\)\r\nb OK STORE completed\r\n', out), out
        out = await s.cmd("c STORE 2 +FLAGS.SILENT (\\Deleted)")
        assert updates(out) == []
        out = await s.cmd("d EXPUNGE")
        assert out == b'* ESEARCH (TAG "A") REMOVEFROM (0 2)\r\n* 2 EXPUNGE\r\nd OK EXPUNGE completed\r\n'
        # Message 4 is now 3; MOVE takes it away: REMOVEFROM first, with its number.
        out = await s.cmd("e MOVE 3 Trash")
        assert re.fullmatch(
            rb'\* OK \[COPYUID \d+ 4 1\] Moved UIDs\r\n\* ESEARCH \(TAG "A"\) REMOVEFROM \(0 3\)\r\n'
            rb"\* 3 EXPUNGE\r\ne OK MOVE completed\r\n", out), out
        out = await s.cmd("f STORE 1 -FLAGS (\\Flagged)")
        assert updates(out) == []

    run(go())


def test_append_by_another_session(env: Env) -> None:
    async def go() -> None:
        await env.append(message("a"), message("b"))
        a = await env.session(rev2=True)
        b = await env.session()
        await a.cmd("C1 SEARCH RETURN (UPDATE) UNSEEN")
        await a.cmd("C2 UID SEARCH RETURN (UPDATE) SEEN")
        assert b"OK" in await b.cmd('x APPEND INBOX () {19}\r\nSubject: c\r\n\r\nhi\r\n')
        assert b"OK" in await b.cmd('x APPEND INBOX (\\Seen) {19}\r\nSubject: d\r\n\r\nhi\r\n')
        out = await a.cmd("n NOOP")
        # The ADDTO with message numbers comes after the EXISTS that makes them valid.
        assert out == (
            b'* 4 EXISTS\r\n* ESEARCH (TAG "C1") ADDTO (0 3)\r\n* ESEARCH (TAG "C2") UID ADDTO (0 4)\r\n'
            b"n OK NOOP completed\r\n"
        )

    run(go())


def test_updates_during_idle(env: Env) -> None:
    async def go() -> None:
        await env.append(message("a"), message("b"), message("c"))
        a = await env.session()
        b = await env.session()
        await a.cmd("S UID SEARCH RETURN (UPDATE) FLAGGED")
        assert await a.cmd("i IDLE") == b"+ idling\r\n"
        await store(b, "STORE 2 +FLAGS (\\Flagged)")
        await a.s.changed()
        out = a.take()
        assert out.endswith(b'* ESEARCH (TAG "S") UID ADDTO (0 2)\r\n'), out
        await store(b, "STORE 2 +FLAGS (\\Deleted)")
        await store(b, "EXPUNGE")
        await a.s.changed()
        out = a.take()
        assert out == b'* ESEARCH (TAG "S") UID REMOVEFROM (0 2)\r\n* 2 EXPUNGE\r\n', out
        assert await a.cmd("DONE") == b"i OK IDLE terminated\r\n"

    run(go())


def test_message_numbers_are_taken_when_the_search_runs(env: Env) -> None:
    """4.3: sequence numbers in the program (and "*", and "$") stay what they named."""

    async def go() -> None:
        await env.append(*[message(f"m{i}") for i in range(6)])
        a = await env.session()
        b = await env.session()
        await a.cmd("s UID SEARCH RETURN (SAVE) 5")
        m = await start(a, "N", "SEARCH RETURN (UPDATE ALL) 2:3 FLAGGED")
        u = await start(a, "U", "UID SEARCH RETURN (UPDATE ALL) UID 4:* FLAGGED")
        d = await start(a, "D", "UID SEARCH RETURN (UPDATE ALL) $ FLAGGED")
        await store(b, "STORE 1 +FLAGS (\\Deleted)")
        await store(b, "EXPUNGE")
        out = await a.cmd("n NOOP")
        assert out.startswith(b"* 1 EXPUNGE\r\n"), out
        # Message 3 (UID 4) was message 4 when N ran: not one of its 2:3.
        out = await a.cmd("x STORE 3 +FLAGS (\\Flagged)")
        out += await a.cmd("y STORE 2 +FLAGS (\\Flagged)")  # UID 3, message 3 when N ran
        await env.append(message("new"), flags=("\\Flagged",))  # UID 7: past U's "*"
        out += await a.cmd("n NOOP")
        for model in (m, u, d):
            model.feed(out)
        assert m.results == [2] and u.results == [4] and d.results == []
        d.feed(await a.cmd("z UID STORE 5 +FLAGS (\\Flagged)"))
        assert d.results == [5]

    run(go())


def test_programs_that_ignore_flags(env: Env) -> None:
    async def go() -> None:
        await env.append(message("apple"), message("pear"), message("apple pie"))
        a = await env.session()
        b = await env.session()
        await a.cmd("T UID SEARCH RETURN (UPDATE) SUBJECT apple")
        calls: list[list[int]] = []
        context = a.s.view.contexts.by_tag["T"]  # type: ignore[union-attr]
        real = context.match

        async def counting(uids: list[int]) -> set[int]:
            calls.append(uids)
            return await real(uids)

        context.match = counting
        await store(b, "STORE 1:3 +FLAGS (\\Seen)")
        assert updates(await a.cmd("n NOOP")) == [] and calls == []
        await env.append(message("apple tart"), message("plum"))
        assert updates(await a.cmd("n NOOP")) == [b'* ESEARCH (TAG "T") UID ADDTO (0 4)']
        assert calls == [[4, 5]]  # the new messages only

    run(go())


def test_only_changed_messages_are_checked_again(env: Env) -> None:
    async def go() -> None:
        await env.append(*[message(f"m{i}") for i in range(40)])
        a = await env.session()
        b = await env.session()
        await a.cmd("T UID SEARCH RETURN (UPDATE) FLAGGED")
        calls: list[list[int]] = []
        context = a.s.view.contexts.by_tag["T"]  # type: ignore[union-attr]
        real = context.match

        async def counting(uids: list[int]) -> set[int]:
            calls.append(uids)
            return await real(uids)

        context.match = counting
        await store(b, "STORE 7,30 +FLAGS (\\Flagged)")
        assert updates(await a.cmd("n NOOP")) == [b'* ESEARCH (TAG "T") UID ADDTO (0 7,30)']
        assert calls == [[7, 30]]

    run(go())


def test_big_changes_let_others_run(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contexts_module, "CHECK_CHUNK", 5)

    async def go() -> None:
        await env.append(*[message(f"m{i:02d}") for i in range(80)])
        a = await env.session()
        b = await env.session()
        await a.cmd("T UID SEARCH RETURN (UPDATE) UNSEEN")
        await a.cmd("U UID SORT RETURN (UPDATE) (SUBJECT) UTF-8 SEEN")
        await store(b, "STORE 1:* +FLAGS (\\Seen)")
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        out = await a.cmd("n NOOP")
        done = True
        await task
        assert updates(out) == [b'* ESEARCH (TAG "T") UID REMOVEFROM (0 1:80)', b'* ESEARCH (TAG "U") UID ADDTO (1 1:80)']
        assert ticks >= 30

    run(go())


def test_older_and_younger_are_not_updated(env: Env) -> None:
    async def go() -> None:
        await env.append(message("a"))
        s = await env.session()
        out = await s.cmd("Y SEARCH RETURN (UPDATE COUNT) YOUNGER 3600")
        assert re.fullmatch(rb'\* ESEARCH \(TAG "Y"\) COUNT 1\r\n\* NO \[NOUPDATE "Y"\] [^\r\n]+\r\nY OK SEARCH completed\r\n', out), out
        assert s.s.view.contexts is not None and len(s.s.view.contexts) == 0

    run(go())


# --- RFC 5267 4.3.1: limits ------------------------------------------------------------------


def test_rfc5267_noupdate_beyond_the_limits(env: Env) -> None:
    async def go() -> None:
        await env.append(message("a"), message("b"), flags=("$Junk",))
        s = await env.session()
        for i in range(MAX_SORT_CONTEXTS):
            assert b"NOUPDATE" not in await s.cmd(f"S{i} SORT RETURN (UPDATE) (DATE) UTF-8 ALL")
        out = await s.cmd("B02 UID SORT RETURN (UPDATE COUNT) (DATE) UTF-8 KEYWORD $Junk")
        assert re.fullmatch(
            rb'\* ESEARCH \(TAG "B02"\) UID COUNT 2\r\n\* NO \[NOUPDATE "B02"\] [^\r\n]+\r\nB02 OK UID SORT completed\r\n', out
        ), out
        # A refused SORT does not mean a refused SEARCH (4.3.1).
        for i in range(MAX_CONTEXTS - MAX_SORT_CONTEXTS):
            assert b"NOUPDATE" not in await s.cmd(f"T{i} SEARCH RETURN (UPDATE) ALL")
        out = await s.cmd("B03 SEARCH RETURN (UPDATE MIN) ALL")
        assert out.startswith(b'* ESEARCH (TAG "B03") MIN 1\r\n* NO [NOUPDATE "B03"] '), out
        # B02 and B03 got no context: their tags are free, and a cancelled one frees a slot.
        assert (await s.cmd('c CANCELUPDATE "B02"')).startswith(b"c NO ")
        assert await s.cmd('c CANCELUPDATE "T0" "S1"') == b"c OK CANCELUPDATE completed\r\n"
        assert b"NOUPDATE" not in await s.cmd("B03 UID SORT RETURN (UPDATE) (SUBJECT) UTF-8 ALL")
        assert b"NOUPDATE" in await s.cmd("B04 UID SORT RETURN (UPDATE) (SUBJECT) UTF-8 ALL")

    run(go())


# --- RFC 5267 4.3.5: CANCELUPDATE, and leaving the mailbox -----------------------------------


def test_rfc5267_cancelupdate(env: Env) -> None:
    async def go() -> None:
        await env.append(message("a"), message("b"))
        a = await env.session()
        b = await env.session()
        await a.cmd("B01 UID SEARCH RETURN (UPDATE COUNT) FLAGGED")
        await a.cmd("B02 UID SEARCH RETURN (UPDATE COUNT) UNFLAGGED")
        assert await a.cmd('B04 CANCELUPDATE "B01"') == b"B04 OK CANCELUPDATE completed\r\n"
        await store(b, "STORE 1 +FLAGS (\\Flagged)")
        assert updates(await a.cmd("n NOOP")) == [b'* ESEARCH (TAG "B02") UID REMOVEFROM (0 1)']
        # Unknown tags are NO; the known ones among them are cancelled still.
        out = await a.cmd('B05 CANCELUPDATE "B01" "B02"')
        assert out.startswith(b"B05 NO ") and b"B01" in out, out
        await store(b, "STORE 2 +FLAGS (\\Flagged)")
        assert updates(await a.cmd("n NOOP")) == []
        # The tag may serve a new updating search again.
        assert b"NOUPDATE" not in await a.cmd("B01 UID SEARCH RETURN (UPDATE) FLAGGED")
        assert (await a.cmd("B06 CANCELUPDATE B01")).startswith(b"B06 BAD ")

    run(go())


@pytest.mark.parametrize("leave", ["SELECT INBOX", "EXAMINE INBOX", "UNSELECT", "CLOSE", "SELECT Trash"])
def test_updates_end_when_the_mailbox_is_left(env: Env, leave: str) -> None:
    async def go() -> None:
        await env.append(message("a"), message("b"))
        a = await env.session()
        b = await env.session()
        await a.cmd("K UID SEARCH RETURN (UPDATE) FLAGGED")
        await a.cmd("L UID SORT RETURN (UPDATE) (SUBJECT) UTF-8 UNFLAGGED")
        assert b"OK" in await a.cmd("x " + leave)
        if not leave.startswith(("SELECT", "EXAMINE")):
            assert b"OK" in await a.cmd("y SELECT INBOX")
        await store(b, "STORE 1 +FLAGS (\\Flagged)")
        await env.append(message("c"))
        assert updates(await a.cmd("n NOOP")) == []
        # Nothing of the old contexts is left: their tags are free.
        assert b"NOUPDATE" not in await a.cmd("K UID SEARCH RETURN (UPDATE) FLAGGED")
        assert (await a.cmd('c CANCELUPDATE "L"')).startswith(b"c NO ")

    run(go())


def test_cancelupdate_needs_a_selected_mailbox(env: Env) -> None:
    async def go() -> None:
        s = await env.session(select=None)
        assert (await s.cmd('c CANCELUPDATE "x"')).startswith(b"c BAD ")

    run(go())


# --- SORT contexts: positions ------------------------------------------------------------------


def test_sort_context_positions(env: Env) -> None:
    async def go() -> None:
        await env.append(*[message(s) for s in ("c", "a", "e", "b", "d")], flags=("\\Seen",))
        a = await env.session()
        b = await env.session()
        out = await a.cmd("C01 UID SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 UNSEEN")
        assert b'* ESEARCH (TAG "C01") UID\r\n' in out
        await store(b, "STORE 4,5 -FLAGS (\\Seen)")  # b, d
        out = await a.cmd("n NOOP")
        assert updates(out) == [b'* ESEARCH (TAG "C01") UID ADDTO (1 4:5)']
        # 4.3.3's preferred form: three that sort before all others, one run at 1.
        await store(b, "STORE 1:3 -FLAGS (\\Seen)")  # c, a, e
        out = await a.cmd("n NOOP")
        # Now a(2) b(4) c(1) d(5) e(3): a at 1, c at 3, e at 5, each its own run.
        assert updates(out) == [b'* ESEARCH (TAG "C01") UID ADDTO (1 2 3 1 5 3)']
        await store(b, "STORE 1,2,4 +FLAGS (\\Seen)")  # c, a, b: positions 1, 2, 3
        out = await a.cmd("n NOOP")
        assert updates(out) == [b'* ESEARCH (TAG "C01") UID REMOVEFROM (1 2,4,1)']
        await store(b, "STORE 1 -FLAGS (\\Seen)")
        await store(b, "STORE 3 +FLAGS (\\Seen)")
        out = await a.cmd("n NOOP")
        # Removals first (e at 2 of d, e), then additions (c before d).
        assert updates(out) == [b'* ESEARCH (TAG "C01") UID REMOVEFROM (2 3) ADDTO (1 1)']
        await env.append(message("bb"), message("a"), message("zz"))
        out = await a.cmd("n NOOP")
        # c d + a(7) bb(6) zz(8): a at 1, bb at 2, zz at 5; runs 1-2 and 5.
        assert updates(out) == [b'* ESEARCH (TAG "C01") UID ADDTO (1 7,6 5 8)']
        # a bb c d zz: a and d leave; d's position counts a gone already.
        await store(b, "UID STORE 5,7 +FLAGS (\\Seen)")
        out = await a.cmd("n NOOP")
        assert updates(out) == [b'* ESEARCH (TAG "C01") UID REMOVEFROM (1 7 3 5)']

    run(go())


def test_sort_context_with_message_numbers_and_reverse(env: Env) -> None:
    async def go() -> None:
        await env.append(*[message(s) for s in ("c", "a", "e", "b", "d")])
        a = await env.session()
        b = await env.session()
        m = await start(a, "R", "SORT RETURN (UPDATE ALL) (REVERSE SUBJECT) UTF-8 UNDELETED")
        assert m.results == [3, 5, 1, 4, 2]
        await store(b, "STORE 1,5 +FLAGS (\\Deleted)")
        await store(b, "EXPUNGE")
        out = await a.cmd("n NOOP")
        assert updates(out) == [b'* ESEARCH (TAG "R") REMOVEFROM (2 5,1)']
        m.feed(out)
        assert m.results == [2, 3, 1]  # e b a, renumbered by the EXPUNGEs
        await env.append(message("f"), message("c"))
        out = await a.cmd("n NOOP")
        m.feed(out)
        assert updates(out) == [b'* ESEARCH (TAG "R") ADDTO (1 4 3 5)']
        assert m.results == [4, 2, 5, 3, 1]

    run(go())


@pytest.mark.parametrize("bulk", [256, 1])
def test_sort_places_step_over_results_expunged_meanwhile(monkeypatch: pytest.MonkeyPatch, bulk: int) -> None:
    """A result expunged after the view last looked has no keys left in the index: the
    bisection steps over it, and the others keep their order around the newcomers."""
    monkeypatch.setattr(contexts_module, "_BULK", bulk)
    gone = {7, 20, 30, 40}

    async def keys_for(uids: list[int]) -> dict[int, tuple[int, ...]]:
        return {u: (u % 100, u) for u in uids if u not in gone}

    async def nothing(uids: list[int]) -> set[int]:
        return set()

    async def go() -> None:
        # 7 sits first, where a message without keys was sorted: it is no evidence.
        initial = [7, 10, 20, 30, 40, 50, 60]
        context = contexts_module.SortContext("t", True, SearchAll(), nothing, keys_for, initial)
        client = Model("t", list(initial), uid=True)
        view = None  # UIDs: no message numbers to look up
        client.feed(context.line(await context.add(view, [135, 5, 155, 165])))  # type: ignore[arg-type]
        assert [u for u in context.order if u not in gone] == [5, 10, 135, 50, 155, 60, 165]
        assert client.results == list(context.order)
        gone.update({10, 50, 60})
        client.feed(context.line(await context.add(view, [55])))  # type: ignore[arg-type]
        assert [u for u in context.order if u not in gone] == [5, 135, 55, 155, 165]
        assert client.results == list(context.order)
        client.feed(context.line(context.remove(view, [20, 7, 60, 99])))  # type: ignore[arg-type]
        assert client.results == list(context.order) and not {7, 20, 60} & set(context.order)
        assert sorted(context.order) == list(context.members)

    run(go())


# --- a client model against fresh searches ------------------------------------------------------

SEARCHES = [
    ("S1", "UID SEARCH RETURN (UPDATE ALL) UNSEEN", "UID SEARCH RETURN (ALL) UNSEEN"),
    ("S2", "SEARCH RETURN (UPDATE ALL) OR FLAGGED KEYWORD $x", "SEARCH RETURN (ALL) OR FLAGGED KEYWORD $x"),
    ("S3", "SEARCH RETURN (UPDATE ALL) NOT SUBJECT s1", "SEARCH RETURN (ALL) NOT SUBJECT s1"),
    ("O1", "UID SORT RETURN (UPDATE ALL) (REVERSE SUBJECT) UTF-8 UNDELETED",
     "UID SORT RETURN (ALL) (REVERSE SUBJECT) UTF-8 UNDELETED"),
    ("O2", "SORT RETURN (UPDATE ALL) (SUBJECT REVERSE ARRIVAL) UTF-8 OR SEEN FLAGGED",
     "SORT RETURN (ALL) (SUBJECT REVERSE ARRIVAL) UTF-8 OR SEEN FLAGGED"),
]


@pytest.mark.parametrize(("seed", "bulk"), [(1, 256), (2, 256), (3, 256), (4, 1)])
def test_client_model_matches_fresh_searches(env: Env, monkeypatch: pytest.MonkeyPatch, seed: int, bulk: int) -> None:
    monkeypatch.setattr(contexts_module, "_BULK", bulk)  # 1: lists rebuilt, not edited
    rng = random.Random(seed)
    subjects = ["s0", "s1", "s2", "Re: s1", "s3"]

    async def go() -> None:
        for _ in range(12):
            await env.append(message(rng.choice(subjects)), date=1.7e9 + rng.randrange(5) * 60)
        a = await env.session()
        b = await env.session()
        models = {tag: await start(a, tag, cmd) for tag, cmd, _ in SEARCHES}
        for step in range(40):
            actor = a if rng.random() < 0.3 else b
            n = len(a.s.view.uids)  # type: ignore[union-attr]
            r = rng.random()
            if r < 0.45 and n:
                nums = ",".join(str(rng.randint(1, n)) for _ in range(rng.randint(1, 4)))
                flags = " ".join(rng.sample(["\\Seen", "\\Flagged", "$x", "\\Deleted"], rng.randint(1, 2)))
                out = await actor.cmd(f"w STORE {nums} {rng.choice('+-')}FLAGS ({flags})")
            elif r < 0.7:
                flags = rng.choice(["", "\\Seen", "\\Flagged", "$x"])
                data = message(rng.choice(subjects))
                out = await actor.cmd(b"w APPEND INBOX (%s) {%d}\r\n" % (flags.encode(), len(data)) + data)
            elif r < 0.85:
                out = await actor.cmd("w EXPUNGE")
            else:
                out = await actor.cmd(f"w MOVE {rng.randint(1, n) if n else 1} Trash")
            if actor is a:
                for model in models.values():
                    model.feed(out)
            # FETCH and SEARCH hold expunges back; NOOP lets them out.
            sync = rng.choice(["n NOOP", "n FETCH 1:* (UID)", "n UID FETCH 1:* (FLAGS)"]) if n else "n NOOP"
            out = await a.cmd(sync)
            for model in models.values():
                model.feed(out)
            for tag, _, fresh in SEARCHES:
                out = await a.cmd(f"q {fresh}")
                for model in models.values():
                    model.feed(out)  # nothing changed since: no updates
                assert models[tag].results == all_of(out, "q"), (seed, step, tag, out)

    run(go())


# --- a real server -----------------------------------------------------------------------------


def _until(f: BinaryIO, done: Callable[[bytes], bool]) -> list[bytes]:
    lines = []
    while True:
        line = f.readline()
        assert line, "connection closed"
        lines.append(line)
        if done(line):
            return lines


def test_updates_through_a_real_server(server: ServerProcess) -> None:
    server.add_user("ctx@example.com", "pw")

    def connect() -> tuple[socket.socket, BinaryIO]:
        sock = socket.create_connection(("127.0.0.1", server.port("imap")), timeout=30)
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"l LOGIN ctx@example.com pw\r\ns SELECT INBOX\r\n")
        _until(f, lambda line: line.startswith(b"s "))
        return sock, f

    a, fa = connect()
    b, fb = connect()
    try:
        a.sendall(b"c CAPABILITY\r\n")
        caps = _until(fa, lambda line: line.startswith(b"c "))[0].split()
        assert b"CONTEXT=SEARCH" in caps and b"CONTEXT=SORT" in caps and b"ESORT" in caps, caps
        a.sendall(b"A1 SEARCH RETURN (UPDATE COUNT) UNSEEN\r\nA2 UID SORT RETURN (UPDATE) (REVERSE ARRIVAL) UTF-8 ALL\r\n")
        assert _until(fa, lambda line: line.startswith(b"A2 "))[0] == b'* ESEARCH (TAG "A1") COUNT 0\r\n'
        a.sendall(b"i IDLE\r\n")
        assert fa.readline().startswith(b"+ ")
        b.sendall(b"x APPEND INBOX {18}\r\n")
        assert fb.readline().startswith(b"+ ")
        b.sendall(b"Subject: a\r\n\r\nhi\r\n\r\n")
        _until(fb, lambda line: line.startswith(b"x "))
        got = _until(fa, lambda line: b'TAG "A2"' in line)
        assert got[0] == b"* 1 EXISTS\r\n" and got[-2:] == [
            b'* ESEARCH (TAG "A1") ADDTO (0 1)\r\n', b'* ESEARCH (TAG "A2") UID ADDTO (1 1)\r\n'], got
        b.sendall(b"y STORE 1 +FLAGS (\\Seen \\Deleted)\r\nz EXPUNGE\r\n")
        _until(fb, lambda line: line.startswith(b"z "))
        got = _until(fa, lambda line: line.endswith(b"EXPUNGE\r\n"))
        # Whether the flag change and the expunge come together or apart, A1's result
        # loses message 1 before the EXPUNGE, and A2's too.
        removals = [line for line in got if b"REMOVEFROM" in line]
        assert b'* ESEARCH (TAG "A1") REMOVEFROM (0 1)\r\n' in removals, got
        assert b'* ESEARCH (TAG "A2") UID REMOVEFROM (1 1)\r\n' in removals, got
        assert got[-1] == b"* 1 EXPUNGE\r\n"
        a.sendall(b"DONE\r\n")
        assert _until(fa, lambda line: line.startswith(b"i "))[-1].startswith(b"i OK")
        a.sendall(b'k CANCELUPDATE "A1" "A2"\r\n')
        assert fa.readline().startswith(b"k OK")
    finally:
        a.close()
        b.close()
