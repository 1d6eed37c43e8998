"""PARTIAL (RFC 9394, updating RFC 5267 4.4): the SEARCH and SORT result option with
positive and negative ranges, its interplay with MIN, MAX, COUNT, SAVE and MODSEQ, and the
FETCH / UID FETCH modifier with CHANGEDSINCE; the RFCs' examples, the grammar, and a real
server."""

from __future__ import annotations

import imaplib
import re

import pytest

import letterbox.imap.session  # noqa: F401  (first: it builds the command table)
from letterbox.imap.grammar import CommandReader, Fetch, ParseError, PartialRange, Search
from letterbox.imap.grammar.sort import Sort
from tests.conftest import ServerProcess

from .test_fetch_helpers import Env, run, tagged

# --- the grammar ---------------------------------------------------------------------------


def parse(line: bytes) -> object:
    reader = CommandReader()
    reader.feed(line + b"\r\n")
    return reader.next_event()


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [(b"1:500", 1, 500), (b"500:400", 500, 400), (b"-1:-100", -1, -100), (b"-500:-400", -500, -400),
     (b"4294967295:1", 4294967295, 1)],
)
def test_partial_ranges_of_both_rfcs(text: bytes, first: int, last: int) -> None:
    # RFC 9394 4 governs: RFC 5267's nz-number:nz-number, and its negative twin.
    cmd = parse(b"a UID SEARCH RETURN (PARTIAL " + text + b") ALL")
    assert isinstance(cmd, Search) and cmd.partial == PartialRange(first, last), cmd
    assert cmd.return_options == ("PARTIAL",)
    assert str(cmd.partial) == text.decode()
    cmd = parse(b"a SORT RETURN (COUNT PARTIAL " + text + b" MIN) (DATE) UTF-8 ALL")
    assert isinstance(cmd, Sort) and cmd.partial == PartialRange(first, last), cmd
    assert cmd.return_options == ("COUNT", "PARTIAL", "MIN")
    cmd = parse(b"a UID FETCH 1:* (FLAGS) (PARTIAL " + text + b")")
    assert isinstance(cmd, Fetch) and cmd.partial == PartialRange(first, last), cmd


@pytest.mark.parametrize(
    "line",
    [
        b"a SEARCH RETURN (PARTIAL) ALL",
        b"a SEARCH RETURN (PARTIAL 1) ALL",
        b"a SEARCH RETURN (PARTIAL 0:5) ALL",
        b"a SEARCH RETURN (PARTIAL 1:*) ALL",
        b"a SEARCH RETURN (PARTIAL -1:5) ALL",
        b"a SEARCH RETURN (PARTIAL 1:-5) ALL",
        b"a SEARCH RETURN (PARTIAL 01:5) ALL",
        b"a SEARCH RETURN (PARTIAL 1:4294967296) ALL",
        b"a SEARCH RETURN (PARTIAL 1:5,7) ALL",
        # RFC 5267 4.4: one PARTIAL or one ALL, not both, not two.
        b"a SEARCH RETURN (PARTIAL 1:5 ALL) ALL",
        b"a SEARCH RETURN (ALL PARTIAL 1:5) ALL",
        b"a SEARCH RETURN (PARTIAL 1:5 PARTIAL 6:9) ALL",
        b"a SORT RETURN (ALL PARTIAL -1:-5) (DATE) UTF-8 ALL",
        b"a UID FETCH 1:* FLAGS (PARTIAL 1:0)",
        b"a UID FETCH 1:* FLAGS (PARTIAL 1:2 PARTIAL 3:4)",
    ],
)
def test_bad_partial(line: bytes) -> None:
    event = parse(line)
    assert isinstance(event, ParseError) and not event.fatal, event
    assert event.response().startswith(b"a BAD "), event.response()


@pytest.mark.parametrize(
    ("first", "last", "count", "expected"),
    [
        (1, 3, 10, [0, 1, 2]),
        (3, 1, 10, [0, 1, 2]),
        (9, 12, 10, [8, 9]),  # runs past the end: what there is
        (11, 20, 10, []),
        (-1, -3, 10, [7, 8, 9]),  # the last three, still in their order
        (-3, -1, 10, [7, 8, 9]),
        (-9, -12, 10, [0, 1]),  # runs past the start
        (-11, -12, 10, []),
        (1, 1, 0, []),
        (-1, -1, 0, []),
    ],
)
def test_partial_window(first: int, last: int, count: int, expected: list[int]) -> None:
    assert list(range(count))[PartialRange(first, last).window(count)] == expected


# --- a mailbox -------------------------------------------------------------------------------

N = 60


def expand(text: bytes) -> list[int]:
    """A sequence-set in the order written (SORT results keep theirs), ranges ascending."""
    out: list[int] = []
    for item in text.split(b","):
        lo, _, hi = item.partition(b":")
        a, b = int(lo), int(hi or lo)
        out.extend(range(a, b + 1) if a <= b else range(a, b - 1, -1))
    return out


def esearch(out: bytes, tag: str) -> dict[str, bytes]:
    """The data items of the ESEARCH response of *tag*: name -> raw value."""
    m = re.search(rb'(?m)^\* ESEARCH \(TAG "' + re.escape(tag.encode()) + rb'"\)( UID)?([^\r\n]*)', out)
    assert m is not None, out
    items = dict(re.findall(rb" (MIN|MAX|ALL|COUNT|MODSEQ) ([0-9,:]+)", m.group(2)))
    items.update(re.findall(rb" (PARTIAL) (\([^)]*\))", m.group(2)))
    return {k.decode(): v for k, v in items.items()}


def partial(out: bytes, tag: str) -> tuple[bytes, list[int] | None]:
    m = re.fullmatch(rb"\((\S+) (\S+)\)", esearch(out, tag)["PARTIAL"])
    assert m is not None, out
    return m.group(1), None if m.group(2) == b"NIL" else expand(m.group(2))


@pytest.fixture
def box(env: Env) -> tuple[Env, list[int]]:
    """N messages, UIDs 2.. (the first one expunged); every 7th \\Deleted, every 5th $Junk.
    Returns the env and the UIDs that are UNDELETED UNKEYWORD $Junk."""

    async def go() -> list[int]:
        acc = await env.account()
        first = await acc.append("INBOX", b"Subject: gone\r\n\r\nx\r\n")
        inbox = await acc.get_mailbox("INBOX")
        await acc.expunge(inbox.id, [first.uid])
        wanted = []
        for n in range(1, N + 1):
            flags = (["\\Deleted"] if n % 7 == 0 else []) + (["$Junk"] if n % 5 == 0 else [])
            # Subjects run backwards, so SORT (SUBJECT) reverses the mailbox order.
            uid = (await acc.append("INBOX", b"Subject: %03d\r\n\r\nbody\r\n" % (N - n), flags)).uid
            if not flags:
                wanted.append(uid)
        return wanted

    return env, run(go())


UNWANTED = "UNDELETED UNKEYWORD $Junk"


# --- RFC 9394 3.1 and RFC 5267 4.4: SEARCH ------------------------------------------------------


def test_rfc9394_newest_results(box: tuple[Env, list[int]]) -> None:
    env, wanted = box

    async def go() -> None:
        s = await env.session()
        out = await s.cmd(f"A01 UID SEARCH RETURN (PARTIAL -1:-10) {UNWANTED}")
        assert tagged(out, "A01") == b"A01 OK UID SEARCH completed"
        # The ten most recent results, in mailbox order, the range echoed as written.
        assert partial(out, "A01") == (b"-1:-10", wanted[-10:])
        assert re.search(rb'^\* ESEARCH \(TAG "A01"\) UID PARTIAL \(-1:-10 [0-9,:]+\)\r\n', out), out

    run(go())


def test_rfc5267_and_rfc9394_pages(box: tuple[Env, list[int]]) -> None:
    env, wanted = box
    n = len(wanted)

    async def go() -> None:
        s = await env.session()
        # A02 spans the end of the results, A03 is the first page, A04 lies past the end.
        out = await s.send(
            f"A02 UID SEARCH RETURN (PARTIAL {n - 5}:{n + 20}) {UNWANTED}\r\n"
            f"A03 UID SEARCH RETURN (PARTIAL 1:10) {UNWANTED}\r\n"
            f"A04 UID SEARCH RETURN (PARTIAL {n + 1}:{n + 50}) {UNWANTED}\r\n".encode()
        )
        assert partial(out, "A02") == (f"{n - 5}:{n + 20}".encode(), wanted[n - 6 :])
        assert partial(out, "A03") == (b"1:10", wanted[:10])
        assert f'* ESEARCH (TAG "A04") UID PARTIAL ({n + 1}:{n + 50} NIL)\r\n'.encode() in out
        # A range written backwards is the same range (RFC 9394 4: "A range 500:400 is
        # the same as 400:500"), given back with its nearer end first, as Dovecot does.
        out = await s.cmd(f"A05 UID SEARCH RETURN (PARTIAL 10:1) {UNWANTED}")
        assert partial(out, "A05") == (b"1:10", wanted[:10])
        out = await s.cmd(f"A06 UID SEARCH RETURN (PARTIAL -{n + 5}:-{n - 1}) {UNWANTED}")
        assert partial(out, "A06") == (f"-{n - 1}:-{n + 5}".encode(), wanted[:2])
        out = await s.cmd(f"A07 UID SORT RETURN (PARTIAL 4:2) (ARRIVAL) UTF-8 {UNWANTED}")
        assert partial(out, "A07") == (b"2:4", wanted[1:4])

    run(go())


def test_partial_of_message_numbers_and_other_options(box: tuple[Env, list[int]]) -> None:
    env, wanted = box
    msns = [u - 1 for u in wanted]  # UID 2 is message 1

    async def go() -> None:
        s = await env.session()
        out = await s.cmd(f"p SEARCH RETURN (MIN PARTIAL 3:5 COUNT MAX) {UNWANTED}")
        # Dovecot's order: MIN MAX ALL PARTIAL COUNT.
        line = out.split(b"\r\n")[0]
        assert re.fullmatch(rb'\* ESEARCH \(TAG "p"\) MIN \d+ MAX \d+ PARTIAL \(3:5 [0-9,:]+\) COUNT \d+', line), out
        assert partial(out, "p") == (b"3:5", msns[2:5])
        assert esearch(out, "p")["MIN"] == str(msns[0]).encode()
        assert esearch(out, "p")["MAX"] == str(msns[-1]).encode()
        assert esearch(out, "p")["COUNT"] == str(len(msns)).encode()
        # Nothing matches: PARTIAL still answers, with NIL.
        out = await s.cmd('q SEARCH RETURN (PARTIAL -1:-5 COUNT) SUBJECT "no such"')
        assert out.startswith(b'* ESEARCH (TAG "q") PARTIAL (-1:-5 NIL) COUNT 0\r\n'), out

    run(go())


# --- RFC 9394 3.2: SAVE (and MODSEQ) with PARTIAL ------------------------------------------------


@pytest.mark.parametrize(
    ("options", "saved"),
    [
        ("SAVE PARTIAL 2:3", lambda w: w[1:3]),
        ("SAVE PARTIAL 2:3 MIN", lambda w: [w[0], *w[1:3]]),
        ("SAVE PARTIAL -2:-3 MAX", lambda w: [*w[-3:-1], w[-1]]),
        ("SAVE PARTIAL 2:3 MIN MAX", lambda w: [w[0], *w[1:3], w[-1]]),
        ("SAVE PARTIAL 2:3 COUNT", lambda w: w),
        ("SAVE PARTIAL 2:3 COUNT MIN", lambda w: w),
    ],
)
def test_rfc9394_save_table(box: tuple[Env, list[int]], options: str, saved: object) -> None:
    env, wanted = box

    async def go() -> None:
        s = await env.session()
        out = await s.cmd(f"s UID SEARCH RETURN ({options}) {UNWANTED}")
        assert tagged(out, "s").startswith(b"s OK"), out
        assert partial(out, "s")[1] is not None  # SAVE does not hide PARTIAL
        out = await s.cmd("t UID SEARCH RETURN (ALL) $")
        assert expand(esearch(out, "t")["ALL"]) == sorted(saved(wanted))  # type: ignore[operator]

    run(go())


def test_modseq_is_the_highest_of_what_partial_returns(box: tuple[Env, list[int]]) -> None:
    env, wanted = box

    async def go() -> None:
        s = await env.session()
        # Touch the first and the last result: their MODSEQs are now the highest.
        assert b"a OK" in await s.cmd(f"a UID STORE {wanted[0]} +FLAGS (first)")
        assert b"b OK" in await s.cmd(f"b UID STORE {wanted[-1]} +FLAGS (last)")
        first = await s.cmd(f"c UID FETCH {wanted[0]} (MODSEQ)")
        last = await s.cmd(f"d UID FETCH {wanted[-1]} (MODSEQ)")
        m1 = int(re.search(rb"MODSEQ \((\d+)\)", first).group(1))  # type: ignore[union-attr]
        m2 = int(re.search(rb"MODSEQ \((\d+)\)", last).group(1))  # type: ignore[union-attr]
        out = await s.cmd(f"e UID SEARCH RETURN (PARTIAL 1:2) MODSEQ 1 {UNWANTED}")
        assert esearch(out, "e")["MODSEQ"] == str(m1).encode(), out
        out = await s.cmd(f"f UID SEARCH RETURN (PARTIAL -1:-2) MODSEQ 1 {UNWANTED}")
        assert esearch(out, "f")["MODSEQ"] == str(m2).encode(), out

    run(go())


# --- SORT ----------------------------------------------------------------------------------------


def test_sort_partial_follows_the_sort_order(box: tuple[Env, list[int]]) -> None:
    env, wanted = box
    by_subject = wanted[::-1]  # subjects run backwards

    async def go() -> None:
        s = await env.session()
        out = await s.cmd(f"a UID SORT RETURN (PARTIAL 1:4) (SUBJECT) UTF-8 {UNWANTED}")
        assert partial(out, "a") == (b"1:4", by_subject[:4])
        # Descending runs are written out, never as ranges (RFC 5267 3.2).
        assert b":" not in esearch(out, "a")["PARTIAL"].split(b" ")[1]
        out = await s.cmd(f"b UID SORT RETURN (PARTIAL -1:-3 MIN MAX) (SUBJECT) UTF-8 {UNWANTED}")
        assert partial(out, "b") == (b"-1:-3", by_subject[-3:])
        assert esearch(out, "b")["MIN"] == str(by_subject[0]).encode()
        assert esearch(out, "b")["MAX"] == str(by_subject[-1]).encode()
        # In ascending order the runs are ranges again.
        out = await s.cmd(f"c UID SORT RETURN (PARTIAL 1:2) (REVERSE SUBJECT) UTF-8 {UNWANTED}")
        assert partial(out, "c") == (b"1:2", wanted[:2])
        out = await s.cmd(f"d SORT RETURN (PARTIAL 500:600) (SUBJECT) UTF-8 {UNWANTED}")
        assert b'* ESEARCH (TAG "d") PARTIAL (500:600 NIL)\r\n' in out
        # SAVE with PARTIAL keeps the window.
        await s.cmd(f"e UID SORT RETURN (SAVE PARTIAL 2:3) (SUBJECT) UTF-8 {UNWANTED}")
        out = await s.cmd("f UID SEARCH RETURN (ALL) $")
        assert expand(esearch(out, "f")["ALL"]) == sorted(by_subject[1:3])

    run(go())


# --- RFC 9394 3.3 and 3.4: the FETCH modifier ----------------------------------------------------


def uid_flags(out: bytes) -> list[tuple[int, int]]:
    return [(int(m), int(u)) for m, u in re.findall(rb"\* (\d+) FETCH \([^\r\n]*UID (\d+)", out)]


def test_rfc9394_uid_fetch_examples(box: tuple[Env, list[int]]) -> None:
    env, _ = box

    async def go() -> None:
        s = await env.session()
        # UIDs 2..61 are messages 1..60; UID 1 is gone, so the set names 1..60 messages.
        out = await s.cmd("10 UID FETCH 1:100 (UID FLAGS) (PARTIAL -1:-3)")
        assert uid_flags(out) == [(58, 59), (59, 60), (60, 61)], out
        assert tagged(out, "10") == b"10 OK UID FETCH completed"
        out = await s.cmd("11 UID FETCH 1:100 (UID FLAGS) (PARTIAL 1:5)")
        assert uid_flags(out) == [(m, m + 1) for m in range(1, 6)], out
        out = await s.cmd("12 UID FETCH 30:40 (UID) (PARTIAL 100:200)")
        assert out == b"12 OK UID FETCH completed\r\n"
        # A plain FETCH counts in the same way, within its message numbers.
        out = await s.cmd("13 FETCH 10:20,40 (UID) (PARTIAL -2:-3)")
        assert uid_flags(out) == [(19, 20), (20, 21)], out

    run(go())


def test_rfc9394_partial_with_changedsince(box: tuple[Env, list[int]]) -> None:
    env, _ = box

    async def go() -> None:
        s = await env.session()
        out = await s.cmd("m UID FETCH 61 (MODSEQ)")
        since = int(re.search(rb"MODSEQ \((\d+)\)", out).group(1))  # type: ignore[union-attr]
        # Change one message inside the last 30 and one outside them.
        await s.cmd("a UID STORE 59 +FLAGS (\\Flagged \\Answered)")
        await s.cmd("b UID STORE 5 +FLAGS (\\Flagged)")
        for order in (f"PARTIAL -1:-30 CHANGEDSINCE {since}", f"CHANGEDSINCE {since} PARTIAL -1:-30"):
            out = await s.cmd(f"101 UID FETCH 1:100 (UID FLAGS) ({order})")
            assert uid_flags(out) == [(58, 59)], out
            assert b"MODSEQ (" in out

    run(go())


# --- capability and a real server ------------------------------------------------------------------


def test_partial_through_a_real_server(server: ServerProcess) -> None:
    server.add_user("pager@example.com", "pw")
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    try:
        c.login("pager@example.com", "pw")
        assert b"PARTIAL" in c.capability()[1][0].split()
        for n in range(8):
            assert c.append("INBOX", "", imaplib.Time2Internaldate(1.7e9 + n), b"Subject: %d\r\n\r\nx\r\n" % n)[0] == "OK"
        c.select("INBOX")
        tag = c._new_tag().decode()
        c.send(f"{tag} UID SEARCH RETURN (PARTIAL -1:-3 COUNT) ALL\r\n".encode())
        assert c.readline() == f'* ESEARCH (TAG "{tag}") UID PARTIAL (-1:-3 6:8) COUNT 8\r\n'.encode()
        assert c.readline().startswith(f"{tag} OK".encode())
        typ, data = c.uid("FETCH", "1:*", "(FLAGS)", "(PARTIAL 2:3)")
        assert typ == "OK" and [d for d in data if d] and len(data) == 2, data
        assert b"UID 2 " in data[0] and b"UID 3 " in data[1], data
    finally:
        c.logout()
