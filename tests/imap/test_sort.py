"""SORT and UID SORT (RFC 5256), ESORT (RFC 5267 section 3) and SORT=DISPLAY (RFC 5957)
through a real IMAPSession and store: the RFCs' examples, every sort key, REVERSE and
ties, base subjects, collation, charsets, MODSEQ, SAVE, and the event loop kept free."""

from __future__ import annotations

import asyncio
import calendar
import re
import time

import pytest

import letterbox.imap.session  # noqa: F401  (first: it builds the command table)
from letterbox.imap import sort as sort_module
from letterbox.imap.sortkeys import (
    ENV_FROM,
    address_display,
    address_mailbox,
    base_subject,
    casemap,
    first_address,
    parse_list,
)
from letterbox.mime import parse_message

from .test_fetch_helpers import Env, Session, run, tagged


def utc(*fields: int) -> float:
    return float(calendar.timegm((*fields, 0, 0, 0)[:6] + (0, 0, 0)))


def message(
    subject: str | None = "x",
    date: str | None = None,
    frm: str | None = None,
    to: str | None = None,
    cc: str | None = None,
    body: str = "body",
    extra: str = "",
) -> bytes:
    head = ""
    for name, value in (("From", frm), ("To", to), ("Cc", cc), ("Subject", subject), ("Date", date)):
        if value is not None:
            head += f"{name}: {value}\r\n"
    return (head + extra + "\r\n" + body + "\r\n").encode()


async def fill(env: Env, *messages: bytes | tuple[bytes, float], flags: tuple[str, ...] = ()) -> list[int]:
    uids = []
    for m in messages:
        data, when = m if isinstance(m, tuple) else (m, None)
        uids += await env.append(data, flags=flags, date=when)
    return uids


async def sort(s: Session, command: str, tag: str = "q") -> list[int]:
    out = await s.cmd(f"{tag} {command}")
    assert tagged(out, tag).startswith(tag.encode() + b" OK"), out
    lines = [line for line in out.split(b"\r\n") if line.startswith(b"* SORT")]
    assert len(lines) == 1, out
    return [int(n) for n in lines[0][len(b"* SORT") :].split(b" (MODSEQ ")[0].split()]


# --- RFC 5256 section 3, the SORT examples ---------------------------------------------------


def test_rfc5256_sort_examples(env: Env) -> None:
    async def go() -> None:
        # A282: of 882 messages, 2, 84 and 882 arrived since 1-Feb-1994.
        old, new = utc(1994, 1, 15), utc(1994, 3, 1)
        subjects = {2: "Re: beta", 84: "alpha", 882: "[list] Gamma"}
        acc = await env.account()
        for n in range(1, 883):
            await acc.append("INBOX", message(subjects.get(n, f"filler {n}")), [], new if n in subjects else old)
        s = await env.session()
        assert await sort(s, "SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994", "A282") == [84, 2, 882]
        # A284: nothing matches.
        out = await s.cmd('A284 SORT (SUBJECT) US-ASCII TEXT "not in mailbox"')
        assert out.startswith(b"* SORT\r\nA284 OK"), out

    run(go())


def test_rfc5256_sort_subject_reverse_date(env: Env) -> None:
    # A283: SORT (SUBJECT REVERSE DATE) answering 5 3 4 1 2.
    async def go() -> None:
        await fill(
            env,
            message("Re: Second", "Mon, 1 Jan 2024 10:00:00 +0000"),
            message("second", "Mon, 1 Jan 2024 09:00:00 +0000"),
            message("First", "Mon, 1 Jan 2024 10:00:00 +0000"),
            message("Fwd: first", "Mon, 1 Jan 2024 09:00:00 +0000"),
            message("[x] first (fwd)", "Mon, 1 Jan 2024 11:00:00 +0000"),
        )
        s = await env.session()
        assert await sort(s, "SORT (SUBJECT REVERSE DATE) UTF-8 ALL", "A283") == [5, 3, 4, 1, 2]

    run(go())


# --- RFC 5267 3.3, the extended SORT example -----------------------------------------------


def test_rfc5267_esort_example(env: Env) -> None:
    async def go() -> None:
        uids = await fill(
            env,
            message("a", "Mon, 1 Jan 2024 01:00:00 +0000"),
            message("b", "Mon, 1 Jan 2024 02:00:00 +0000"),
            message("c", "Mon, 1 Jan 2024 03:00:00 +0000"),
            message("d", "Mon, 1 Jan 2024 04:00:00 +0000"),
            message("e", "Mon, 1 Jan 2024 05:00:00 +0000"),
            message("f", "Mon, 1 Jan 2024 06:00:00 +0000"),
        )
        acc = await env.account()
        inbox = await acc.get_mailbox("INBOX")
        await acc.store_flags(inbox.id, [uids[1]], "add", ["\\Deleted"])
        await acc.store_flags(inbox.id, [uids[5]], "add", ["$Junk"])
        s = await env.session()
        out = await s.cmd("E01 UID SORT RETURN () (REVERSE DATE) UTF-8 UNDELETED UNKEYWORD $Junk")
        # Descending runs are not ranges (RFC 5267 3.2).
        assert out == b'* ESEARCH (TAG "E01") UID ALL 5,4,3,1\r\nE01 OK UID SORT completed\r\n'

    run(go())


# --- each key -------------------------------------------------------------------------------------


@pytest.fixture
def mailbox(env: Env) -> Env:
    """Six messages (UIDs 2..7 after an expunge, sequence numbers 1..6)."""

    async def go() -> None:
        acc = await env.account()
        first = await acc.append("INBOX", message("gone"))
        inbox = await acc.get_mailbox("INBOX")
        await acc.expunge(inbox.id, [first.uid])
        await fill(
            env,
            (message("Re: Lunch", "Tue, 2 Jan 2024 10:00:00 +0100", "Zoe <zoe@example.org>",
                     "Bob <bob@example.com>", "Carl <carl@example.net>", body="x" * 3000),
             utc(2024, 1, 5)),
            (message("lunch", "Tue, 2 Jan 2024 08:30:00 -0100", '"Adam Ant" <adam@example.org>',
                     "alice@example.com", None, body="x" * 1000), utc(2024, 1, 3)),
            (message("[team] Budget", None, "=?utf-8?q?=C3=89mile?= <emile@example.org>",
                     "Yves <yves@example.com>", "bob@example.net", body="x" * 2000), utc(2024, 1, 4)),
            (message(None, "Mon, 1 Jan 2024 00:00:00 +0000", None, None, "Ann <ann@example.net>",
                     body="x" * 500), utc(2024, 1, 1)),
            (message("budget", "garbage date", "mallory@example.org", "Bob <BOB@example.com>",
                     body="x" * 4000), utc(2024, 1, 2)),
            (message("Re: [fwd: LUNCH]", "Tue, 2 Jan 2024 09:00:00 +0000", "undisclosed:; , adam@example.org",
                     "group: carl@example.com;", None, body="x" * 100), utc(2024, 1, 6)),
        )

    run(go())
    return env


SORTS = [
    # Internal dates: 4 5 2 3 1 6.
    ("ARRIVAL", [4, 5, 2, 3, 1, 6]),
    ("REVERSE ARRIVAL", [6, 1, 3, 2, 5, 4]),
    # Sent dates in UTC: 1 is 09:00, 2 is 09:30, 6 is 09:00 (a tie with 1: mailbox order);
    # 3 has no Date and 5 an unparsable one: their internal dates (Jan 4, Jan 2) count.
    ("DATE", [4, 5, 1, 6, 2, 3]),
    ("REVERSE DATE", [3, 2, 1, 6, 5, 4]),
    ("SIZE", [6, 4, 2, 3, 1, 5]),
    ("REVERSE SIZE", [5, 1, 3, 2, 4, 6]),
    # Base subjects: "" (4), budget (3 5), lunch (1 2 6).
    ("SUBJECT", [4, 3, 5, 1, 2, 6]),
    ("SUBJECT DATE", [4, 5, 3, 1, 6, 2]),
    ("SUBJECT REVERSE DATE", [4, 3, 5, 2, 1, 6]),
    # REVERSE reverses the key only; ties stay in mailbox order.
    ("REVERSE SUBJECT", [1, 2, 6, 3, 5, 4]),
    # addr-mailbox of the first From: "" (4), adam (2, 6: the group is no address), emile,
    # mallory, zoe.
    ("FROM", [4, 2, 6, 3, 5, 1]),
    ("REVERSE FROM", [1, 5, 3, 2, 6, 4]),
    # To: "" (4), alice, bob (1), BOB (5: case does not count), carl (6, in a group), yves.
    ("TO", [4, 2, 1, 5, 6, 3]),
    ("TO SIZE", [4, 2, 1, 5, 6, 3]),
    ("TO REVERSE SIZE", [4, 2, 5, 1, 6, 3]),
    # Cc: "" (2 5 6), ann, bob, carl.
    ("CC", [2, 5, 6, 4, 3, 1]),
    # RFC 5957: the display name, else the address: "" (4), Adam Ant, adam@example.org (6),
    # Émile (decoded; decomposed, it sorts among the Es), mallory@example.org, Zoe.
    ("DISPLAYFROM", [4, 2, 6, 3, 5, 1]),
    # "" (4), alice@example.com, Bob (1), Bob (5), carl@example.com, Yves.
    ("DISPLAYTO", [4, 2, 1, 5, 6, 3]),
    ("REVERSE DISPLAYTO", [3, 6, 1, 5, 2, 4]),
]


@pytest.mark.parametrize(("criteria", "expected"), SORTS)
def test_sort_keys(mailbox: Env, criteria: str, expected: list[int]) -> None:
    async def go() -> None:
        s = await mailbox.session()
        assert await sort(s, f"SORT ({criteria}) UTF-8 ALL") == expected
        # UID SORT: the same order in UIDs (one above each sequence number here).
        assert await sort(s, f"UID SORT ({criteria}) US-ASCII ALL") == [n + 1 for n in expected]

    run(go())


def test_sort_with_search_criteria(mailbox: Env) -> None:
    async def go() -> None:
        s = await mailbox.session()
        assert await sort(s, "SORT (DATE) UTF-8 SUBJECT lunch") == [1, 6, 2]
        assert await sort(s, "SORT (DATE) UTF-8 OR FROM adam TO bob") == [5, 1, 6, 2]
        assert await sort(s, "SORT (SIZE) UTF-8 2:4 UNSEEN") == [4, 2, 3]
        assert await sort(s, "UID SORT (SIZE) UTF-8 UID 4:7") == [7, 5, 4, 6]
        assert await sort(s, 'SORT (ARRIVAL) "UTF-8" BODY ' + "x" * 150) == [4, 5, 2, 3, 1]
        # UTF-8 search strings (here as a LITERAL+ literal).
        text = "Émile".encode()
        out = await s.cmd(b"u SORT (DATE) UTF-8 FROM {%d+}\r\n%s" % (len(text), text))
        assert out.startswith(b"* SORT 3\r\n"), out

    run(go())


def test_sort_charsets_and_errors(mailbox: Env) -> None:
    async def go() -> None:
        s = await mailbox.session()
        out = await s.cmd("a SORT (DATE) ISO-8859-1 ALL")
        assert out == b"a NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset ISO-8859-1\r\n"
        for bad in (
            "SORT (DATE) ALL",  # the charset is mandatory (RFC 5256 3)
            "SORT DATE UTF-8 ALL",
            "SORT () UTF-8 ALL",
            "SORT (REVERSE) UTF-8 ALL",
            "SORT (REVERSE REVERSE DATE) UTF-8 ALL",
            "SORT (SENDER) UTF-8 ALL",
            "SORT (DATE) UTF-8",
            "SORT (DATE) UTF-8 ALL)",
            "SORT RETURN (FOO) (DATE) UTF-8 ALL",
            "SORT RETURN (DATE) UTF-8 ALL",
            "SORT (DATE)  UTF-8 ALL",
        ):
            out = await s.cmd("b " + bad)
            assert tagged(out, "b").startswith(b"b BAD"), (bad, out)

    run(go())


def test_sort_needs_a_selected_mailbox(env: Env) -> None:
    async def go() -> None:
        s = await env.session(select=None)
        out = await s.cmd("a SORT (DATE) UTF-8 ALL")
        assert tagged(out).startswith(b"a BAD"), out
        out = await s.cmd("b CAPABILITY")
        for cap in (b" SORT ", b" SORT=DISPLAY ", b" ESORT ", b" THREAD=ORDEREDSUBJECT ", b" THREAD=REFERENCES "):
            assert cap in out, out

    run(go())


def test_capabilities_only_after_login(env: Env) -> None:
    from letterbox.imap.session import IMAPSession
    from letterbox.service.session import Peer

    async def go() -> None:
        s = Session(IMAPSession(env.ctx, Peer("127.0.0.1", 1, False)))
        await s.s.start()
        greeting = s.take()
        assert b"SORT" not in greeting and b"THREAD" not in greeting

    run(go())


# --- ESORT -------------------------------------------------------------------------------------


def test_esort_return_options(mailbox: Env) -> None:
    async def go() -> None:
        s = await mailbox.session()
        out = await s.cmd("a SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL")
        # MIN and MAX are the first and last in sort order (RFC 5267 3.1).
        assert out.startswith(b'* ESEARCH (TAG "a") MIN 4 MAX 3 COUNT 6\r\na OK'), out
        out = await s.cmd("b UID SORT RETURN (ALL) (SIZE) UTF-8 ALL")
        assert out.startswith(b'* ESEARCH (TAG "b") UID ALL 7,5,3:4,2,6\r\n'), out
        out = await s.cmd("c SORT RETURN () (ARRIVAL) UTF-8 ALL")
        assert out.startswith(b'* ESEARCH (TAG "c") ALL 4:5,2:3,1,6\r\n'), out
        out = await s.cmd("d SORT RETURN (COUNT ALL MIN) (DATE) UTF-8 SUBJECT nothing")
        assert out.startswith(b'* ESEARCH (TAG "d") COUNT 0\r\nd OK'), out
        out = await s.cmd("e SORT RETURN (MAX) (REVERSE SIZE) UTF-8 ALL")
        assert out.startswith(b'* ESEARCH (TAG "e") MAX 6\r\n'), out

    run(go())


def test_esort_save(mailbox: Env) -> None:
    # SAVE keeps the result for $ (RFC 5182), alone without an ESEARCH answer.
    async def go() -> None:
        s = await mailbox.session()
        out = await s.cmd("a SORT RETURN (SAVE) (REVERSE DATE) UTF-8 SUBJECT lunch")
        assert out == b"a OK SORT completed\r\n"
        out = await s.cmd("b SEARCH $")
        assert out.startswith(b"* SEARCH 1 2 6\r\n"), out
        # MIN/MAX alone save just those.
        out = await s.cmd("c SORT RETURN (SAVE MIN MAX) (DATE) UTF-8 ALL")
        assert out.startswith(b'* ESEARCH (TAG "c") MIN 4 MAX 3\r\n'), out
        out = await s.cmd("d SEARCH $")
        assert out.startswith(b"* SEARCH 3 4\r\n"), out
        # A failed SORT (SAVE) empties $.
        out = await s.cmd("e SORT RETURN (SAVE) (DATE) KOI8-R ALL")
        assert tagged(out, "e").startswith(b"e NO"), out
        out = await s.cmd("f SEARCH $")
        assert out.startswith(b"* SEARCH\r\n"), out
        # $ in the search criteria of a SORT.
        await s.cmd("g SEARCH RETURN (SAVE) SUBJECT budget")
        assert await sort(s, "SORT (REVERSE SIZE) UTF-8 $") == [5, 3]

    run(go())


def test_sort_modseq(mailbox: Env) -> None:
    # RFC 7162 3.1.9 and 3.1.10: a MODSEQ criterion adds the highest MODSEQ of the result.
    async def go() -> None:
        s = await mailbox.session()
        out = await s.cmd("a SORT (DATE) UTF-8 MODSEQ 1")
        m = re.match(rb"\* SORT 4 5 1 6 2 3 \(MODSEQ (\d+)\)\r\n", out)
        assert m is not None, out
        highest = int(m.group(1))
        out = await s.cmd("b SORT RETURN (ALL) (DATE) UTF-8 MODSEQ 1")
        assert f'* ESEARCH (TAG "b") ALL 4:5,1,6,2:3 MODSEQ {highest}\r\n'.encode() in out, out
        out = await s.cmd(f"c SORT (DATE) UTF-8 MODSEQ {highest + 1}")
        assert b"* SORT\r\n" in out, out

    run(go())


def test_sort_after_expunge_by_another_session(mailbox: Env) -> None:
    # SORT may not send EXPUNGE (RFC 5256 3); UID SORT may. Messages another session
    # expunged are left out either way.
    async def go() -> None:
        s = await mailbox.session()
        other = await mailbox.session()
        await other.cmd("a STORE 2 +FLAGS (\\Deleted)")
        await other.cmd("b EXPUNGE")
        out = await s.cmd("c SORT (DATE) UTF-8 ALL")
        assert b"EXPUNGE" not in out and out.startswith(b"* SORT 4 5 1 6 3\r\n"), out
        out = await s.cmd("d UID SORT (DATE) UTF-8 ALL")
        assert b"* 2 EXPUNGE\r\n" in out and b"* SORT 5 6 2 7 4\r\n" in out, out

    run(go())


def test_sort_rev2(mailbox: Env) -> None:
    async def go() -> None:
        s = await mailbox.session(rev2=True)
        assert await sort(s, "SORT (SUBJECT) UTF-8 ALL") == [4, 3, 5, 1, 2, 6]

    run(go())


# --- base subject, collation, envelope ---------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "base", "reply"),
    [
        ("hello", "hello", False),
        ("  hello \t  world  ", "hello world", False),
        ("Re: hello", "hello", True),
        ("RE: Re: re:hello", "hello", True),
        ("Fwd: hello", "hello", True),
        ("FW: hello", "hello", True),
        ("re : hello", "hello", True),
        ("Re[2]: hello", "hello", True),
        ("Re [2]: hello", "hello", True),
        ("[list] Re: hello", "hello", True),
        ("[list] [x] re: [y] hello", "hello", True),
        ("[list] hello", "hello", False),
        ("[list]", "[list]", False),
        ("[a] [b]", "[b]", False),
        ("hello (fwd)", "hello", True),
        ("hello (FWD) (fwd)  ", "hello", True),
        ("[fwd: hello]", "hello", True),
        ("[Fwd: Re: hello (fwd)]", "hello", True),
        ("Re: [fwd: [list] hello]", "hello", True),
        ("[fwd: hello", "[fwd: hello", False),
        ("Re:", "", True),
        ("", "", False),
        ("Reply: hello", "Reply: hello", False),
        ("Fwdx: hello", "Fwdx: hello", False),
        ("hello re: world", "hello re: world", False),
    ],
)
def test_base_subject(subject: str, base: str, reply: bool) -> None:
    assert base_subject(subject) == (base, reply)


def test_casemap_collation() -> None:
    # i;ascii-casemap for ASCII: letters uppercased, so "_" sorts after them.
    assert casemap("Hello") == casemap("HELLO") == "HELLO"
    assert sorted(["a_", "AB", "aa"], key=casemap) == ["aa", "AB", "a_"]
    # i;unicode-casemap beyond: titlecase, then canonical decomposition.
    assert casemap("émile") == casemap("Émile") == casemap("E\u0301mile")
    assert casemap("adam") < casemap("eve") < casemap("émile") < casemap("fred")
    assert sorted(["", "b", "A"], key=casemap) == ["", "A", "b"]


def test_envelope_addresses() -> None:
    env = parse_message(
        b'From: undisclosed:; , "Doe, \\"J\\"" <j@x.org>\r\nTo: =?utf-8?q?J=C3=BCrgen?= <j@y>\r\n'
        b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\n"
    ).envelope
    assert address_mailbox(env, ENV_FROM) == "j"
    assert address_display(env, ENV_FROM) == 'Doe, "J"'
    assert address_display(env, 5) == "Jürgen"
    assert address_mailbox(env, 6) == ""
    assert parse_list(b'("a" NIL ({3}\r\nx y "z\\"" (NIL)))') == [b"a", None, [b"x y", b'z"', [None]]]
    # Envelopes as the index keeps them: the quick path and the full parse agree.
    for raw in (
        b"From: a@b\r\nTo: Bob <bob@c>\r\n\r\n",
        b'From: "x \\"y\\"" <a@b>\r\nCc: c@d, e@f\r\nTo: g:;, h@i\r\n\r\n',
        "Subject: Grüße\r\nFrom: Jürgen <j@x>\r\nTo: t@x\r\n\r\n".encode(),
        b"Subject: two\r\n lines\r\nSender: s@x\r\nFrom: f@x\r\nReply-To: r@x\r\nTo: t@x\r\nCc: c@x\r\n\r\n",
        b"Subject: none\r\n\r\n",
    ):
        env = parse_message(raw).envelope
        items = parse_list(env)
        for field in (2, 5, 6):
            slow = None
            if isinstance(items[field], list):
                slow = next((tuple(a[i] for i in (0, 2, 3)) for a in items[field] if a[3] is not None), None)
            assert first_address(env, field) == slow, (raw, field)
    assert address_mailbox(parse_message(b"To: g:;, h@i\r\n\r\n").envelope, 5) == "h"


# --- the event loop ------------------------------------------------------------------------


def test_sort_lets_others_run(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Long SORTs yield: with small chunks, a ticker runs many times during one."""
    monkeypatch.setattr(sort_module, "CHUNK", 5)

    async def go() -> None:
        await fill(env, *[message(f"s{i % 7}", f"Mon, 1 Jan 2024 00:{i:02d}:00 +0000") for i in range(60)])
        s = await env.session()
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        start = time.monotonic()
        got = await sort(s, "SORT (SUBJECT REVERSE DATE FROM) UTF-8 ALL")
        done = True
        await task
        assert len(got) == 60 and time.monotonic() - start < 10
        assert ticks >= 20

    run(go())


# --- results kept for the next SORT or THREAD ------------------------------------------------


def test_results_are_reused_only_for_the_same_messages(mailbox: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from letterbox.imap.sortcache import RESULTS

    monkeypatch.setattr(RESULTS, "min_messages", 1)
    RESULTS.clear()
    computed = 0
    real = sort_module.sort_uids

    async def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal computed
        computed += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(sort_module, "sort_uids", counting)

    async def go() -> None:
        s = await mailbox.session()
        assert await sort(s, "SORT (DATE) UTF-8 ALL") == [4, 5, 1, 6, 2, 3]
        # Another session, the same messages: the kept result, in its sequence numbers.
        other = await mailbox.session()
        assert await sort(other, "UID SORT (DATE) UTF-8 ALL") == [5, 6, 2, 7, 3, 4]
        assert computed == 1
        # Other criteria, other messages: computed.
        assert await sort(s, "SORT (REVERSE DATE) UTF-8 ALL") == [3, 2, 1, 6, 5, 4]
        assert await sort(s, "SORT (DATE) UTF-8 NOT 1") == [4, 5, 6, 2, 3]
        assert computed == 3
        # New mail and expunges change the messages searched.
        await mailbox.append(message("new", "Mon, 1 Jan 2024 01:00:00 +0000"))
        await s.cmd("n NOOP")
        assert await sort(s, "SORT (DATE) UTF-8 ALL") == [4, 7, 5, 1, 6, 2, 3]
        await s.cmd("x STORE 4 +FLAGS (\\Deleted)")
        await s.cmd("y EXPUNGE")
        assert await sort(s, "SORT (DATE) UTF-8 ALL") == [6, 4, 1, 5, 2, 3]
        assert computed == 5
        # The other session has not been told of the expunge (SORT may not): its numbers.
        assert await sort(other, "SORT (DATE) UTF-8 ALL") == [7, 5, 1, 6, 2, 3]
        assert computed == 5
        assert RESULTS.items > 0

    run(go())
    RESULTS.clear()


def test_result_cache_bounds() -> None:
    from array import array

    from letterbox.imap.sortcache import ResultCache

    class Store:  # any object the cache can hold a weak reference to
        pass

    a, b = Store(), Store()
    cache = ResultCache(max_items=20, min_messages=2)
    cache.put(a, "k", [1, 2, 3], array("q", [3, 2, 1]))  # type: ignore[arg-type]
    assert cache.get(a, "k", [1, 2, 3]) == array("q", [3, 2, 1])  # type: ignore[arg-type]
    assert cache.get(a, "k", [1, 2]) is None  # type: ignore[arg-type]
    assert cache.get(b, "k", [1, 2, 3]) is None  # type: ignore[arg-type]
    assert cache.get(a, "other", [1, 2, 3]) is None  # type: ignore[arg-type]
    cache.put(a, "small", [1], array("q", [1]))  # type: ignore[arg-type]
    assert cache.get(a, "small", [1]) is None  # type: ignore[arg-type]
    # Least recently used out when the items pass the bound.
    cache.put(b, "k", [4, 5, 6, 7], array("q", [7, 6, 5, 4]))  # type: ignore[arg-type]
    cache.put(b, "j", [4, 5, 6, 7], array("q", [4, 5, 6, 7]))  # type: ignore[arg-type]
    assert cache.items <= 20
    assert cache.get(a, "k", [1, 2, 3]) is None  # type: ignore[arg-type]
    assert cache.get(b, "j", [4, 5, 6, 7]) is not None  # type: ignore[arg-type]
    cache.put(b, "huge", list(range(30)), array("q", range(30)))  # type: ignore[arg-type]
    assert cache.get(b, "huge", list(range(30))) is None  # type: ignore[arg-type]
