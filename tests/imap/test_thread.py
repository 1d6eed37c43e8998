"""THREAD and UID THREAD (RFC 5256): ORDEREDSUBJECT and REFERENCES through a real
IMAPSession and store, with the RFC's examples rebuilt message by message; message-ID
rules, loops, subjects, deep threads, indexes from before references were kept, and
imaplib against a running server."""

from __future__ import annotations

import asyncio
import calendar
import imaplib
import sqlite3
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

import letterbox.imap.session  # noqa: F401  (first: it builds the command table)
from letterbox.imap.thread import Forest, Messages, message_id, ordered_subject, references, render
from letterbox.mime import parse_message
from letterbox.mime.msgid import message_ids, thread_references
from letterbox.store.maildir import MaildirStore
from letterbox.store.maildir.index import SCHEMA_VERSION, connect
from tests.conftest import ServerProcess

from .test_fetch_helpers import Env, Session, run, tagged

MARCH_2000 = float(calendar.timegm((2000, 3, 10, 0, 0, 0, 0, 0, 0)))


def message(
    n: int, subject: str, refs: str | None = None, date: float | None = None, irt: str | None = None,
    mid: str | None = None,
) -> bytes:
    head = f"From: user{n}@example.org\r\nSubject: {subject}\r\nMessage-ID: {mid or f'<m{n}@x>'}\r\n"
    if date is not None:
        head += "Date: " + _rfc5322(date) + "\r\n"
    if refs is not None:
        head += f"References: {refs}\r\n"
    if irt is not None:
        head += f"In-Reply-To: {irt}\r\n"
    return (head + "\r\nbody\r\n").encode()


def _rfc5322(when: float) -> str:
    from email.utils import formatdate

    return formatdate(when, usegmt=True)


async def thread(s: Session, command: str, tag: str = "q") -> bytes:
    out = await s.cmd(f"{tag} {command}")
    assert tagged(out, tag).startswith(tag.encode() + b" OK"), out
    lines = [line for line in out.split(b"\r\n") if line.startswith(b"* THREAD")]
    assert len(lines) == 1, out
    return lines[0][len(b"* THREAD") :].strip()


# --- RFC 5256 section 3, the THREAD examples -------------------------------------------------

# Messages 166..208 in order of their sent dates.
CHRONOLOGY = [
    166, 167, 168, 169, 172, 170, 171, 173, 174, 175, 176, 178, 181, 180, 179, 177, 183, 182,
    188, 184, 185, 186, 187, 189, 190, 191, 192, 193, 194, 195, 196, 197, 198, 199, 200, 202,
    201, 203, 204, 205, 206, 207, 208,
]
# n -> (Subject, References) of the messages that are not alone in their thread.
THREADED = {
    170: ("Topic 170", "<lost170@x>"),
    179: ("Topic 179", "<lost170@x>"),
    **{n: ("Re: Topic 174", None) for n in (174, 175, 176, 178, 180, 181)},
    177: ("Topic 177", "<lost177@x>"),
    **{n: ("Re: Topic 177", "<lost177@x>") for n in (182, 183, 185, 187, 188)},
    184: ("Re: Topic 177", "<lost177@x> <m188@x>"),
    189: ("Re: Topic 177", "<lost177@x> <m188@x>"),
    186: ("Re: Topic 177", "<lost177@x>\r\n <m185@x>"),
    194: ("Topic 194", None),
    195: ("Topic 194", None),
    196: ("Topic 196", "<m195@x>"),
    197: ("Re: Topic 196", None),
    198: ("Re: Topic 196", "<m197@x>"),
    200: ("Topic 200", None),
    202: ("Re: Topic 200", "<m200@x>"),
    205: ("Topic 205", None),
    206: ("Topic 206", "<m205@x>"),
    207: ("RE: Topic 206", "<m205@x> <m206@x>"),
}


@pytest.fixture
def rfc_mailbox(env: Env) -> Env:
    """208 messages; 166..208 arrived since 5-Mar-2000 and thread as in RFC 5256's example."""

    async def go() -> None:
        acc = await env.account()
        for n in range(1, 209):
            if n < 166:
                data, arrived = message(n, f"Old {n}", date=MARCH_2000 - 86400 * 30), MARCH_2000 - 86400 * 30
            else:
                subject, refs = THREADED.get(n, (f"Topic {n}", None))
                sent = MARCH_2000 + 60 * CHRONOLOGY.index(n)
                data, arrived = message(n, subject, refs, sent), MARCH_2000
            await acc.append("INBOX", data, [], arrived)

    run(go())
    return env


RFC_ORDEREDSUBJECT = (
    b"(166)(167)(168)(169)(172)(170)(171)(173)(174 (175)(176)(178)(181)(180))(179)"
    b"(177 (183)(182)(188)(184)(185)(186)(187)(189))(190)(191)(192)(193)(194 195)"
    b"(196 (197)(198))(199)(200 202)(201)(203)(204)(205)(206 207)(208)"
)
RFC_REFERENCES = (
    b"(166)(167)(168)(169)(172)((170)(179))(171)(173)((174)(175)(176)(178)(181)(180))"
    b"((177)(183)(182)(188 (184)(189))(185 186)(187))(190)(191)(192)(193)((194)(195 196))"
    b"(197 198)(199)(200 202)(201)(203)(204)(205 206 207)(208)"
)


def test_rfc5256_thread_examples(rfc_mailbox: Env) -> None:
    async def go() -> None:
        s = await rfc_mailbox.session()
        assert await thread(s, "THREAD ORDEREDSUBJECT UTF-8 SINCE 5-MAR-2000", "A283") == RFC_ORDEREDSUBJECT
        out = await s.cmd('A284 THREAD ORDEREDSUBJECT US-ASCII TEXT "gewp"')
        assert out == b"* THREAD\r\nA284 OK THREAD completed\r\n"
        assert await thread(s, "THREAD REFERENCES UTF-8 SINCE 5-MAR-2000", "A285") == RFC_REFERENCES
        # UID THREAD: the same with UIDs (here equal to the sequence numbers).
        assert await thread(s, "UID THREAD REFERENCES UTF-8 SINCE 5-MAR-2000") == RFC_REFERENCES

    run(go())


def test_rfc5256_thread_response_examples(env: Env) -> None:
    # "* THREAD (2)(3 6 (4 23)(44 7 96))" and "* THREAD ((3)(5))" (RFC 5256 4).
    refs = {
        6: "<m3@x>", 4: "<m3@x> <m6@x>", 44: "<m3@x> <m6@x>", 23: "<m3@x> <m6@x> <m4@x>",
        7: "<m3@x> <m6@x> <m44@x>", 96: "<m3@x> <m6@x> <m44@x> <m7@x>",
    }

    async def go() -> None:
        for n in range(1, 97):
            await env.append(message(n, "Re: thread" if n in refs else f"Other {n}", refs.get(n), MARCH_2000 + n))
        s = await env.session()
        assert await thread(s, "THREAD REFERENCES UTF-8 2,3,4,6,7,23,44,96") == b"(2)(3 6 (4 23)(44 7 96))"
        # 3 and 5 are children of 4, which the search leaves out.
        for n in (97, 98, 99):
            await env.append(message(n, "siblings", "<m4@x>" if n != 98 else None, MARCH_2000 + n))
        await s.cmd("n NOOP")
        assert await thread(s, "UID THREAD REFERENCES UTF-8 UID 97,99") == b"((97)(99))"

    run(go())


# --- REFERENCES rules ---------------------------------------------------------------------------


def test_message_ids_are_normalized() -> None:
    # RFC 5256: <"01KF8JCEOCBS0045PS"@xxx.yyy.com> is <01KF8JCEOCBS0045PS@xxx.yyy.com>.
    assert message_ids(b'<"01KF8JCEOCBS0045PS"@xxx.yyy.com>') == ["01KF8JCEOCBS0045PS@xxx.yyy.com"]
    assert message_ids(b"<a@b> (comment) <no-at-sign> <\r\n c@d> <e (x) @f>") == ["a@b", "c@d", "e@f"]
    assert message_ids(b'<"a\\"b"@c>') == ['a"b@c']
    assert message_ids(b"<A@B>") == ["A@B"]  # comparisons are case-sensitive
    # The stored Message-ID field, plain or not.
    assert message_id("<a@b>") == "a@b"
    assert message_id('<"a"@b> (x)') == "a@b"
    assert message_id("") is None and message_id("none") is None
    assert message_ids(None) == message_ids(b"") == message_ids(b"garbage") == []
    # References first; else the first valid ID of In-Reply-To only.
    assert thread_references(b"<a@x> <b@x>", b"<c@x>") == "a@x b@x"
    assert thread_references(None, b"bob's message <c@x> <d@x>") == "c@x"
    assert thread_references(b"<broken>", b"<c@x>") == "c@x"
    assert thread_references(None, None) == ""
    parsed = parse_message(
        b"Subject: x\r\nReferences: <a@x>\r\n <\"b\"@x>\r\nIn-Reply-To: <c@x>\r\n\r\nbody\r\n"
    )
    assert parsed.references == "a@x b@x"


async def _threads(env: Env, *messages: bytes, algorithm: str = "REFERENCES") -> bytes:
    await env.append(*messages)
    s = await env.session()
    return await thread(s, f"THREAD {algorithm} UTF-8 ALL")


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        # Quoting does not matter; a reply by In-Reply-To alone.
        ([message(1, "a", mid='<"x1"@host>'), message(2, "b", irt="<x1@host>")], b"(1 2)"),
        # References win over In-Reply-To.
        ([message(1, "a"), message(2, "b"), message(3, "c", refs="<m1@x>", irt="<m2@x>")], b"(1 3)(2)"),
        # A duplicate Message-ID: the first message keeps it.
        ([message(1, "a"), message(2, "b", mid="<m1@x>"), message(3, "c", refs="<m1@x>")], b"(1 3)(2)"),
        # No Message-ID: a unique one.
        ([message(1, "a", mid="none"), message(2, "b", mid="none"), message(3, "c", refs="<none>")],
         b"(1)(2)(3)"),
        # Loops are not made: 1 says 2 is its parent, 2 says 1 is.
        ([message(1, "a", refs="<m2@x>"), message(2, "b", refs="<m1@x>")], b"(2 1)"),
        ([message(1, "a", refs="<m1@x>")], b"(1)"),
        ([message(1, "a", refs="<m2@x> <m1@x> <m2@x>"), message(2, "b")], b"(2 1)"),
        # A truncated References chain: the message's own last reference decides.
        ([message(1, "a"), message(2, "b", refs="<m1@x>"), message(3, "c", refs="<lost@x> <m2@x>"),
          message(4, "d", refs="<lost@x> <m3@x>")], b"(1 2 3 4)"),
        # Dummies: one child is promoted, two stay under a dummy at the top.
        ([message(1, "a", refs="<lost@x>")], b"(1)"),
        ([message(1, "a", refs="<lost@x>"), message(2, "b", refs="<lost@x>")], b"((1)(2))"),
        # Below the top, a dummy gives way to its children.
        ([message(1, "a"), message(2, "b", refs="<m1@x> <lost@x>"), message(3, "c", refs="<m1@x> <lost@x>")],
         b"(1 (2)(3))"),
        # Subjects: a reply joins the thread of the message it answers...
        ([message(1, "Hello"), message(2, "Re: hello", refs="<lost@x>")], b"(1 2)"),
        # ... two originals (or two replies) share a dummy ...
        ([message(1, "Hello"), message(2, "hello")], b"((1)(2))"),
        ([message(1, "Re: Hello"), message(2, "Fwd: hello")], b"((1)(2))"),
        # ... and an original found after a reply takes the reply in.
        ([message(1, "Re: Hello"), message(2, "Hello")], b"(2 1)"),
        # Empty subjects are not gathered.
        ([message(1, ""), message(2, "Re:")], b"(1)(2)"),
        # A dummy's subject is its first child's.
        ([message(1, "Topic", refs="<lost@x>"), message(2, "other", refs="<lost@x>"), message(3, "Re: topic")],
         b"((1)(2)(3))"),
    ],
)
def test_references_rules(env: Env, messages: list[bytes], expected: bytes) -> None:
    assert run(_threads(env, *messages)) == expected


def test_threads_sort_by_sent_date(env: Env) -> None:
    async def go() -> None:
        await env.append(
            message(1, "a", date=MARCH_2000 + 50),
            message(2, "b", date=MARCH_2000 + 10),
            message(3, "c", refs="<m1@x>", date=MARCH_2000 + 70),
            message(4, "d", refs="<m1@x>", date=MARCH_2000 + 60),
            message(5, "e", refs="<lost@x>", date=MARCH_2000 + 40),
            message(6, "f", refs="<lost@x>", date=MARCH_2000 + 30),
        )
        # No Date: the internal date counts (RFC 5256 2.2); ties go by sequence number.
        await env.append(message(7, "g"), message(8, "h"), date=MARCH_2000 + 30)
        s = await env.session()
        assert await thread(s, "THREAD REFERENCES UTF-8 ALL") == b"(2)((6)(5))(7)(8)(1 (4)(3))"
        assert await thread(s, "THREAD ORDEREDSUBJECT UTF-8 ALL") == b"(2)(6)(7)(8)(5)(1)(4)(3)"

    run(go())


def test_ordered_subject(env: Env) -> None:
    async def go() -> None:
        await env.append(
            message(1, "Re: Lunch", date=MARCH_2000 + 30),
            message(2, "lunch", date=MARCH_2000 + 20),
            message(3, "[x] Budget", date=MARCH_2000 + 10),
            message(4, "Fwd: LUNCH", date=MARCH_2000 + 40),
            message(5, "lunch (fwd)", date=MARCH_2000 + 25),
        )
        s = await env.session()
        assert await thread(s, "THREAD ORDEREDSUBJECT UTF-8 ALL") == b"(3)(2 (5)(1)(4))"
        assert await thread(s, "THREAD ORDEREDSUBJECT UTF-8 1:2") == b"(2 1)"
        assert await thread(s, "UID THREAD ORDEREDSUBJECT UTF-8 NOT 3") == b"(2 (5)(1)(4))"

    run(go())


def test_thread_errors(env: Env) -> None:
    async def go() -> None:
        await env.append(message(1, "a"))
        s = await env.session()
        out = await s.cmd("a THREAD REFERENCES KOI8-R ALL")
        assert out == b"a NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset KOI8-R\r\n"
        out = await s.cmd("b THREAD REFS UTF-8 ALL")
        assert tagged(out, "b") == b"b NO Unsupported threading algorithm REFS"
        for bad in ("THREAD REFERENCES ALL", "THREAD UTF-8 ALL", "THREAD", "THREAD (REFERENCES) UTF-8 ALL",
                    "THREAD REFERENCES UTF-8 ALL)", "UID THREAD REFERENCES UTF-8"):
            out = await s.cmd("c " + bad)
            assert tagged(out, "c").startswith(b"c BAD"), (bad, out)
        unselected = await env.session(select=None)
        out = await unselected.cmd("d THREAD REFERENCES UTF-8 ALL")
        assert tagged(out, "d").startswith(b"d BAD"), out

    run(go())


def test_thread_rev2_and_expunges(env: Env) -> None:
    async def go() -> None:
        await env.append(message(1, "a"), message(2, "b", refs="<m1@x>"), message(3, "c", refs="<m1@x> <m2@x>"))
        s = await env.session(rev2=True)
        other = await env.session()
        await other.cmd("a STORE 2 +FLAGS (\\Deleted)")
        await other.cmd("b EXPUNGE")
        # THREAD may not send EXPUNGE (RFC 5256 3): the expunged message is a dummy.
        out = await s.cmd("c THREAD REFERENCES UTF-8 ALL")
        assert out.startswith(b"* THREAD (1 3)\r\n") and b"EXPUNGE" not in out, out
        out = await s.cmd("d UID THREAD REFERENCES UTF-8 ALL")
        assert out.startswith(b"* THREAD (1 3)\r\n") and b"* 2 EXPUNGE\r\n" in out, out
        out = await s.cmd("e THREAD REFERENCES UTF-8 ALL")
        assert out.startswith(b"* THREAD (1 2)\r\n"), out

    run(go())


# --- without recursion, and with the event loop free ---------------------------------------------


def threads(algorithm: Coroutine[Any, Any, tuple[Forest, list[int]]], numbers: list[int]) -> bytes:
    async def go() -> bytes:
        return await render(*await algorithm, numbers)

    return run(go())


def test_deep_threads_need_no_recursion() -> None:
    n = 20000
    numbers = list(range(1, n + 1))
    chain = Messages(numbers)
    for i in range(n):
        chain.add(float(i), "S", i > 0, f"m{i}", f"m{i - 1}" if i else "")
    assert threads(references(chain), numbers) == b"(" + b" ".join(b"%d" % i for i in numbers) + b")"
    # A comb: each message has a leaf and the next message as children.
    comb = Messages(numbers)
    for i in range(n // 2):
        comb.add(float(2 * i), "", False, f"c{i}", f"c{i - 1}" if i else "")
        comb.add(float(2 * i + 1), "", False, f"l{i}", f"c{i}")
    text = threads(references(comb), numbers)
    assert text.startswith(b"(1 (2)(3 (4)(5 (6)(7") and text.count(b"(") == n - 1
    flat = Messages(numbers)
    for i in range(n):
        flat.add(float(i), f"S{i % 3}")
    assert threads(ordered_subject(flat), numbers).startswith(b"(1 (4)(7)")


def test_long_threads_let_others_run() -> None:
    n = 30000
    msgs = Messages(list(range(1, n + 1)))
    for i in range(n):
        msgs.add(float(i), f"S{i % 50}", i % 2 == 1, f"m{i}", f"m{i // 2}" if i else "")

    async def go() -> int:
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await references(msgs)
        done = True
        await task
        return ticks

    assert run(go()) >= 10


# --- indexes from before references were kept --------------------------------------------------


def test_references_read_from_headers_when_the_index_lacks_them(env: Env) -> None:
    async def go() -> None:
        await env.append(
            message(1, "a"), message(2, "b", irt="<m1@x>"), message(3, "c", refs="<lost@x> <m2@x>"),
            message(4, "d", refs="<lost@x>"),
        )
        acc = await env.account()
        assert acc.db.execute("SELECT count(*) FROM headers WHERE refs IS NULL").fetchone()[0] == 0
        s = await env.session()
        expected = await thread(s, "THREAD REFERENCES UTF-8 ALL")
        acc.db.execute("UPDATE headers SET refs = NULL")
        assert await thread(s, "THREAD REFERENCES UTF-8 ALL") == expected == b"(1 2 3)(4)"

    run(go())


def test_index_upgrade_adds_the_references_column(tmp_path: Path) -> None:
    user = "alice@example.com"

    async def fill() -> None:
        acc = MaildirStore(tmp_path).account_sync(user)
        await acc.append("INBOX", message(1, "a"))
        acc.close()

    asyncio.run(fill())
    path = tmp_path / "example.com" / "alice" / "letterbox.index"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("ALTER TABLE headers DROP COLUMN refs")
    db.execute("UPDATE meta SET value = 3 WHERE key = 'schema'")
    db.close()
    connect(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    assert db.execute("SELECT refs FROM headers").fetchall() == [(None,)]
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == SCHEMA_VERSION
    db.close()

    async def check() -> None:
        acc = MaildirStore(tmp_path).account_sync(user)
        await acc.append("INBOX", message(2, "b", refs="<m1@x>"))
        inbox = await acc.get_mailbox("INBOX")
        rows = await acc.fetch(inbox.id, [1, 2], ("references", "message_id"))
        assert [(r.references, r.message_id) for r in rows] == [(None, "<m1@x>"), ("m1@x", "<m2@x>")]
        await acc.copy(inbox.id, [2], "Archive")
        archive = await acc.get_mailbox("Archive")
        assert [r.references for r in await acc.fetch(archive.id, [1], ("references",))] == ["m1@x"]
        acc.close()

    asyncio.run(check())


# --- a real server, a real client ------------------------------------------------------------


def test_imaplib_sort_and_thread(server: ServerProcess) -> None:
    server.add_user("sorter@example.com", "pw")
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    try:
        c.login("sorter@example.com", "pw")
        caps = c.capability()[1][0].split()
        for cap in ("SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES"):
            assert cap.encode() in caps, caps
        for n, (subject, refs, day) in enumerate(
            [("Hello", None, 3), ("Re: Hello", "<m1@x>", 5), ("Budget", None, 1), ("Re: Budget", "<m3@x>", 4)],
            start=1,
        ):
            data = message(n, subject, refs, MARCH_2000 + day * 86400)
            typ, _ = c.append("INBOX", "", imaplib.Time2Internaldate(MARCH_2000), data)
            assert typ == "OK"
        c.select("INBOX")
        assert c.sort("(DATE)", "UTF-8", "ALL") == ("OK", [b"3 1 4 2"])
        assert c.sort("(SUBJECT REVERSE DATE)", "US-ASCII", "ALL") == ("OK", [b"4 3 2 1"])
        assert c.uid("SORT", "(REVERSE ARRIVAL)", "UTF-8", "ALL") == ("OK", [b"1 2 3 4"])
        assert c.thread("REFERENCES", "UTF-8", "ALL") == ("OK", [b"(3 4)(1 2)"])
        assert c.thread("ORDEREDSUBJECT", "UTF-8", "SUBJECT", "hello") == ("OK", [b"(1 2)"])
        typ, data = c.sort("(DATE)", "KOI8-R", "ALL")
        assert typ == "NO"
        tag = c._new_tag().decode()
        c.send(f"{tag} SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL\r\n".encode())
        assert c.readline() == f'* ESEARCH (TAG "{tag}") MIN 3 MAX 2 COUNT 4\r\n'.encode()
        assert c.readline().startswith(f"{tag} OK".encode())
    finally:
        c.logout()


def test_thread_results_are_reused_only_for_the_same_messages(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from letterbox.imap import thread as thread_module
    from letterbox.imap.sortcache import RESULTS

    monkeypatch.setattr(RESULTS, "min_messages", 1)
    RESULTS.clear()
    computed = 0
    real = thread_module.messages_for

    async def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal computed
        computed += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(thread_module, "messages_for", counting)

    async def go() -> None:
        await env.append(message(1, "a"), message(2, "b", refs="<m1@x>"), message(3, "c", refs="<m2@x>"))
        s = await env.session()
        assert await thread(s, "THREAD REFERENCES UTF-8 ALL") == b"(1 2 3)"
        assert await thread(s, "UID THREAD REFERENCES UTF-8 ALL") == b"(1 2 3)"
        assert computed == 1
        assert await thread(s, "THREAD ORDEREDSUBJECT UTF-8 ALL") == b"(1)(2)(3)"
        assert computed == 2
        await s.cmd("x STORE 1 +FLAGS (\\Deleted)")
        await s.cmd("y EXPUNGE")
        # The same threads as UIDs; in sequence numbers, shifted.
        assert await thread(s, "UID THREAD REFERENCES UTF-8 ALL") == b"(2 3)"
        assert await thread(s, "THREAD REFERENCES UTF-8 ALL") == b"(1 2)"
        assert computed == 3

    run(go())
    RESULTS.clear()
