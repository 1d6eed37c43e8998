"""SAVEDATE (RFC 8514): FETCH SAVEDATE, and SEARCH SAVEDBEFORE / SAVEDON / SAVEDSINCE /
SAVEDATESUPPORTED, also inside SORT, ESEARCH and SEARCHRES. The save date is when the
message was saved into its mailbox: APPEND, delivery, COPY and MOVE set it, a COPY keeps
the INTERNALDATE but never the save date. The RFC's examples, adapted."""

from __future__ import annotations

import asyncio
import calendar
import datetime
import imaplib
import re
import sqlite3
import time

import pytest

from letterbox.imap.grammar import (
    CommandReader,
    Fetch,
    FetchAttribute,
    NeedContinuation,
    ParseError,
    Search,
    SearchAnd,
    SearchDate,
    SearchNot,
    SearchSaveDateSupported,
)
from letterbox.store.maildir.index import SCHEMA_VERSION
from tests.conftest import ServerProcess

from .test_fetch_helpers import USER, Env, Session, run, tagged

DATES = re.compile(rb'\* (\d+) FETCH \((?:UID \d+ )?SAVEDATE "([^"]+)"(?: INTERNALDATE "([^"]+)")?\)\r\n')


def message(n: int) -> bytes:
    return b"From: a@example.com\r\nSubject: message %d\r\n\r\nBody %d\r\n" % (n, n)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


def epoch(text: bytes) -> float:
    return datetime.datetime.strptime(text.decode(), "%d-%b-%Y %H:%M:%S %z").timestamp()


async def dates(s: Session, which: str = "1:*", tag: str = "f") -> dict[int, tuple[float, float]]:
    """Message number -> (save date, INTERNALDATE) from FETCH (SAVEDATE INTERNALDATE)."""
    out = await s.cmd(f"{tag} FETCH {which} (SAVEDATE INTERNALDATE)")
    assert tagged(out, tag) == f"{tag} OK FETCH completed".encode(), out
    found = {int(m.group(1)): (epoch(m.group(2)), epoch(m.group(3))) for m in DATES.finditer(out)}
    assert len(found) == out.count(b" FETCH ("), out
    return found


async def numbers(s: Session, command: str, tag: str = "q") -> list[int]:
    out = await s.cmd(f"{tag} {command}")
    assert tagged(out, tag).startswith(tag.encode() + b" OK"), out
    line = next(x for x in out.split(b"\r\n") if x.startswith((b"* SEARCH", b"* SORT")))
    return [int(n) for n in line.split()[2:]]


async def set_saved(env: Env, mailbox: str, saved: dict[int, float]) -> None:
    """Give messages (by UID) the save dates of the examples: written into the index,
    as if they had been saved then."""
    acc = await env.account()
    mbox = await acc.get_mailbox(mailbox)
    acc.db.executemany(  # type: ignore[attr-defined]
        "UPDATE messages SET savedate = ? WHERE mailbox_id = ? AND uid = ?",
        [(when, mbox.id, uid) for uid, when in saved.items()],
    )


# --- capability and FETCH --------------------------------------------------------------------


def test_savedate_is_advertised_after_login(env: Env) -> None:
    async def go() -> None:
        s = await env.session(select=None)
        out = await s.cmd("c CAPABILITY")
        assert b" SAVEDATE" in out.split(b"\r\n")[0]

    run(go())


def test_capability_not_before_login(env: Env) -> None:
    from letterbox.imap.session import IMAPSession
    from letterbox.service.session import Peer

    async def go() -> None:
        s = Session(IMAPSession(env.ctx, Peer("127.0.0.1", 1, False)))
        await s.s.start()
        assert b"SAVEDATE" not in s.take()
        assert b"SAVEDATE" not in await s.cmd("c CAPABILITY")

    run(go())


def test_fetch_savedate_example(env: Env) -> None:
    """RFC 8514 4.2: `FETCH 998 (SAVEDATE)` -> "01-Jan-2015 18:50:53 +0100"; the index
    keeps UTC, as for INTERNALDATE."""

    async def go() -> None:
        await env.append(*[message(n) for n in range(1, 4)])
        await set_saved(env, "INBOX", {3: utc(2015, 1, 1, 17, 50, 53)})
        s = await env.session()
        out = await s.cmd("A101 FETCH 3 (SAVEDATE)")
        assert out == b'* 3 FETCH (SAVEDATE "01-Jan-2015 17:50:53 +0000")\r\nA101 OK FETCH completed\r\n'
        out = await s.cmd("A102 UID FETCH 3 (savedate)")
        assert out.startswith(b'* 3 FETCH (UID 3 SAVEDATE "01-Jan-2015 17:50:53 +0000")\r\n')
        # With other items and content items, in the order asked for.
        out = await s.cmd("A103 FETCH 3 (FLAGS SAVEDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert re.match(rb'\* 3 FETCH \(FLAGS \([^)]*\) SAVEDATE "01-Jan-2015 17:50:53 \+0000" BODY\[', out), out

    run(go())


def test_append_sets_the_save_date_not_the_internal_date(env: Env) -> None:
    """RFC 8514 3: APPEND may set INTERNALDATE to anything; the save date is now."""

    async def go() -> None:
        s = await env.session()
        before = int(time.time())
        data = message(1)
        out = await s.cmd(f'a APPEND INBOX () "01-Feb-1999 10:00:00 +0200" {{{len(data)}+}}\r\n'.encode() + data)
        assert tagged(out).startswith(b"a OK"), out
        # A delivery (LMTP, SMTP, the LDA): the store's append without a date.
        acc = await env.account()
        await acc.append("INBOX", message(2))
        after = time.time()
        await s.cmd("n NOOP")
        got = await dates(s)
        assert got[1][1] == utc(1999, 2, 1, 8)
        assert before <= got[1][0] <= after
        assert before <= got[2][0] <= after and abs(got[2][0] - got[2][1]) <= 1

    run(go())


def test_copy_and_move_give_new_save_dates(env: Env) -> None:
    """RFC 8514 3: the copy gets a new save date, the source keeps its own; a moved
    message gets a new one too. INTERNALDATE travels with the message."""

    async def go() -> None:
        await env.append(message(1), message(2), message(3), date=utc(2010, 5, 5, 5, 5, 5))
        old = utc(2014, 12, 28, 12)
        await set_saved(env, "INBOX", {1: old, 2: old, 3: old})
        s = await env.session()
        before = int(time.time())
        assert tagged(await s.cmd("c COPY 1 Archive"), "c").startswith(b"c OK")
        assert tagged(await s.cmd("d COPY 2 INBOX"), "d").startswith(b"d OK")  # the same mailbox
        assert tagged(await s.cmd("m MOVE 3 Trash"), "m").startswith(b"m OK")
        after = time.time()
        inbox = await dates(s)
        assert inbox[1] == inbox[2] == (old, utc(2010, 5, 5, 5, 5, 5))
        assert before <= inbox[3][0] <= after and inbox[3][1] == utc(2010, 5, 5, 5, 5, 5)
        for name in ("Archive", "Trash"):
            assert tagged(await s.cmd(f"s SELECT {name}"), "s").startswith(b"s OK")
            (saved, internal), = (await dates(s)).values()
            assert before <= saved <= after and internal == utc(2010, 5, 5, 5, 5, 5)

    run(go())


def test_rename_keeps_save_dates(env: Env) -> None:
    """RFC 8514 3: the save date does not change while the message stays in its mailbox;
    a renamed mailbox is the same mailbox."""

    async def go() -> None:
        await env.append(message(1), mailbox="Archive")
        await set_saved(env, "Archive", {1: utc(2014, 12, 28)})
        s = await env.session(select=None)
        assert tagged(await s.cmd("r RENAME Archive Old"), "r").startswith(b"r OK")
        await s.cmd("s SELECT Old")
        assert (await dates(s))[1][0] == utc(2014, 12, 28)

    run(go())


# --- SEARCH ----------------------------------------------------------------------------------


async def rfc_mailbox(env: Env) -> Session:
    """Twelve messages: 1-3 saved before 28-Dec-2014, 4-5 on it (the day's first and last
    second, UTC), 6-12 after; their INTERNALDATEs tell another story."""
    await env.append(*[message(n) for n in range(1, 13)], date=utc(2014, 12, 28, 12))
    saved = {1: utc(2014, 12, 1), 2: utc(2014, 12, 20), 3: utc(2014, 12, 27, 23, 59, 59),
             4: utc(2014, 12, 28), 5: utc(2014, 12, 28, 23, 59, 59)}
    saved.update({n: utc(2014, 12, 29) + n * 86400 for n in range(6, 13)})
    await set_saved(env, "INBOX", saved)
    return await env.session()


def test_search_examples(env: Env) -> None:
    """RFC 8514 4.3: SAVEDON and SAVEDSINCE "disregarding time and timezone"."""

    async def go() -> None:
        s = await rfc_mailbox(env)
        out = await s.cmd("A102 SEARCH SAVEDON 28-Dec-2014")
        assert out == b"* SEARCH 4 5\r\nA102 OK SEARCH completed\r\n"
        out = await s.cmd("A103 SEARCH SAVEDSINCE 28-Dec-2014")
        assert out == b"* SEARCH 4 5 6 7 8 9 10 11 12\r\nA103 OK SEARCH completed\r\n"
        assert await numbers(s, "SEARCH SAVEDBEFORE 28-Dec-2014") == [1, 2, 3]
        assert await numbers(s, 'SEARCH SAVEDBEFORE "1-Dec-2014"') == []
        assert await numbers(s, "SEARCH SAVEDON 1-Dec-2014") == [1]
        assert await numbers(s, "SEARCH SAVEDSINCE 1-Jan-2100") == []
        # Not the INTERNALDATE, which is the 28th for all.
        assert await numbers(s, "SEARCH ON 28-Dec-2014") == list(range(1, 13))
        assert await numbers(s, "SEARCH NOT SAVEDON 28-Dec-2014 SAVEDSINCE 20-Dec-2014") == list(range(2, 4)) + list(range(6, 13))
        assert await numbers(s, "SEARCH OR SAVEDON 1-Dec-2014 SAVEDON 29-Dec-2014") == [1]
        assert await numbers(s, "SEARCH OR SAVEDON 1-Dec-2014 SAVEDON 4-Jan-2015") == [1, 6]
        assert await numbers(s, "UID SEARCH SAVEDON 28-Dec-2014 UID 5:*") == [5]
        assert await numbers(s, "SEARCH savedsince 28-DEC-2014 SAVEDBEFORE 5-Jan-2015") == [4, 5, 6]

    run(go())


def test_savedatesupported_matches_every_message(env: Env) -> None:
    """RFC 8514 4.3: every mailbox here keeps save dates."""

    async def go() -> None:
        s = await rfc_mailbox(env)
        assert await numbers(s, "SEARCH SAVEDATESUPPORTED") == list(range(1, 13))
        assert await numbers(s, "SEARCH NOT SAVEDATESUPPORTED") == []
        assert await numbers(s, "SEARCH SAVEDATESUPPORTED 3:4") == [3, 4]
        assert await numbers(s, "SEARCH OR SAVEDATESUPPORTED DELETED") == list(range(1, 13))
        await s.cmd("s SELECT Drafts")
        assert await numbers(s, "SEARCH SAVEDATESUPPORTED") == []

    run(go())


def test_esearch_searchres_and_sort_take_the_keys(env: Env) -> None:
    async def go() -> None:
        s = await rfc_mailbox(env)
        out = await s.cmd("e SEARCH RETURN (MIN MAX COUNT) SAVEDSINCE 28-Dec-2014")
        assert out.startswith(b'* ESEARCH (TAG "e") MIN 4 MAX 12 COUNT 9\r\n'), out
        out = await s.cmd("u UID SEARCH RETURN (ALL) SAVEDBEFORE 28-Dec-2014")
        assert out.startswith(b'* ESEARCH (TAG "u") UID ALL 1:3\r\n'), out
        # SEARCHRES (RFC 5182), and the RFC 8514 use: find what was saved long ago.
        out = await s.cmd("v SEARCH RETURN (SAVE) SAVEDON 28-Dec-2014")
        assert out == b"v OK SEARCH completed\r\n"
        got = await dates(s, "$")
        assert sorted(got) == [4, 5] and {d[0] for d in got.values()} == {utc(2014, 12, 28), utc(2014, 12, 28, 23, 59, 59)}
        # SORT (RFC 5256) and ESORT choose messages by them as well.
        assert await numbers(s, "SORT (REVERSE SUBJECT) UTF-8 SAVEDON 28-Dec-2014") == [5, 4]
        out = await s.cmd("w SORT RETURN (COUNT) (SUBJECT) UTF-8 SAVEDATESUPPORTED SAVEDSINCE 5-Jan-2015")
        assert out.startswith(b'* ESEARCH (TAG "w") COUNT 6\r\n'), out
        out = await s.cmd("t THREAD ORDEREDSUBJECT UTF-8 SAVEDBEFORE 20-Dec-2014")
        assert out.startswith(b"* THREAD (1)\r\n"), out

    run(go())


def test_bad_syntax_is_bad(env: Env) -> None:
    async def go() -> None:
        s = await rfc_mailbox(env)
        for bad in (
            "SEARCH SAVEDON", "SEARCH SAVEDON 32-Dec-2014", "SEARCH SAVEDSINCE yesterday",
            "SEARCH SAVEDBEFORE 28-Dec-14", "SEARCH SAVEDATESUPPORTED(", "SEARCH SAVEDATE 1-Jan-2015",
            "FETCH 1 (SAVEDATE[])", "FETCH 1 SAVEDATES", "FETCH 1 (SAVEDATE (LAZY))",
        ):
            out = await s.cmd("b " + bad)
            assert tagged(out, "b").startswith(b"b BAD"), (bad, out)
            assert b"SERVERBUG" not in out

    run(go())


def parse(line: bytes) -> object:
    reader = CommandReader()
    reader.feed(b"a " + line + b"\r\n")
    event = reader.next_event()
    while isinstance(event, NeedContinuation):
        event = reader.next_event()
    return event


def test_grammar() -> None:
    """RFC 8514 5."""
    fetch = parse(b"FETCH 1:* (SaveDate UID)")
    assert isinstance(fetch, Fetch) and fetch.attributes == (FetchAttribute("SAVEDATE"), FetchAttribute("UID"))
    one = parse(b"UID FETCH 1 SAVEDATE")
    assert isinstance(one, Fetch) and one.attributes == (FetchAttribute("SAVEDATE"),)
    search = parse(b'SEARCH savedbefore 1-Feb-2020 NOT SAVEDON "02-Mar-2021" SAVEDSINCE 3-Apr-2022 savedatesupported')
    assert isinstance(search, Search)
    assert search.key == SearchAnd((
        SearchDate("SAVEDBEFORE", datetime.date(2020, 2, 1)),
        SearchNot(SearchDate("SAVEDON", datetime.date(2021, 3, 2))),
        SearchDate("SAVEDSINCE", datetime.date(2022, 4, 3)),
        SearchSaveDateSupported(),
    ))
    assert isinstance(parse(b"SEARCH SAVEDON 29-Feb-2023"), ParseError)


# --- the index: an upgrade, a rebuild --------------------------------------------------------


def test_an_index_of_schema_5_upgrades(env: Env) -> None:
    """Messages indexed before the index kept save dates get the time their file name
    records: every save always wrote a name made then, so it is their save date (to the
    microsecond). A name from elsewhere without a time falls back to the INTERNALDATE.
    FETCH and SEARCH agree."""

    async def go() -> None:
        await env.append(message(1), message(2), date=utc(2001, 1, 1))
        acc = await env.account()
        inbox = await acc.get_mailbox("INBOX")
        await acc.copy(inbox.id, [1], "Archive")
        kept = {r.uid: r.savedate for r in await acc.fetch(inbox.id, [1, 2], ("savedate",))}
        assert all(v > utc(2020, 1, 1) for v in kept.values())
        # Message 2's file is renamed as another program might have named it.
        name = acc.db.execute(  # type: ignore[attr-defined]
            "SELECT filename FROM messages WHERE mailbox_id = ? AND uid = 2", (inbox.id,)
        ).fetchone()[0]
        foreign = "from-elsewhere,U=2:2,"
        folder = env.ctx.store.account_dir(USER)  # type: ignore[attr-defined]
        (folder / "cur" / name).rename(folder / "cur" / foreign)
        acc.db.execute("UPDATE messages SET filename = ? WHERE mailbox_id = ? AND uid = 2",  # type: ignore[attr-defined]
                       (foreign, inbox.id))
        env.ctx.store.close_account(USER)  # type: ignore[attr-defined]
        path = folder / "letterbox.index"
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("ALTER TABLE messages DROP COLUMN savedate")
        db.execute("ALTER TABLE parsed DROP COLUMN preview")
        db.execute("UPDATE meta SET value = 5 WHERE key = 'schema'")
        db.close()
        del env.ctx.store.unavailable[USER]  # type: ignore[attr-defined]

        s = await env.session()
        got = await dates(s)
        assert got[1] == (int(kept[1]), utc(2001, 1, 1))
        assert got[2] == (utc(2001, 1, 1), utc(2001, 1, 1))
        acc = await env.account()
        assert acc.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == SCHEMA_VERSION  # type: ignore[attr-defined]
        assert [r.savedate for r in await acc.fetch(inbox.id, [1], ("savedate",))] == [kept[1]]
        today = time.strftime("%d-%b-%Y", time.gmtime(kept[1]))
        assert await numbers(s, f"SEARCH SAVEDON {today}") == [1]
        assert await numbers(s, "SEARCH SAVEDON 1-Jan-2001") == [2]
        await s.cmd("s SELECT Archive")
        (saved, internal), = (await dates(s)).values()
        assert saved >= int(kept[1]) and internal == utc(2001, 1, 1)

    run(go())


def test_a_rebuilt_index_keeps_save_dates(env: Env) -> None:
    """The index is lost or damaged: the save dates come back from the file names, the
    same to the microsecond (not the time of the rebuild)."""

    class Corrupt(sqlite3.DatabaseError):
        sqlite_errorcode = 11  # SQLITE_CORRUPT

    async def go() -> None:
        await env.append(message(1), message(2), date=utc(2001, 1, 1))
        acc = await env.account()
        inbox = await acc.get_mailbox("INBOX")
        await acc.copy(inbox.id, [2], "Archive")
        await acc.move(inbox.id, [1], "Trash")
        before = {}
        for name in ("INBOX", "Archive", "Trash"):
            mbox = await acc.get_mailbox(name)
            before[name] = [(r.uid, r.savedate, r.internaldate) for r in await acc.fetch(mbox.id, [1], ("savedate", "internaldate"))]
        store = env.ctx.store
        acc.translate(Corrupt("database disk image is malformed"))  # type: ignore[attr-defined]
        assert await asyncio.to_thread(store.rebuild_unavailable) == 1  # type: ignore[attr-defined]
        again = await env.account()
        for name, rows in before.items():
            mbox = await again.get_mailbox(name)
            assert [(r.uid, r.savedate, r.internaldate) for r in await again.fetch(mbox.id, [1], ("savedate", "internaldate"))] == rows
        s = await env.session("SELECT Trash")
        assert (await dates(s))[1] == (int(before["Trash"][0][1]), utc(2001, 1, 1))

    run(go())


# --- a real server, a real client ------------------------------------------------------------


def test_imaplib_savedate(server: ServerProcess) -> None:
    server.add_user("saver@example.com", "pw")
    c = imaplib.IMAP4("127.0.0.1", server.port("imap"))
    try:
        c.login("saver@example.com", "pw")
        assert b"SAVEDATE" in c.capability()[1][0].split()
        before = int(time.time())
        typ, _ = c.append("INBOX", "", imaplib.Time2Internaldate(utc(2003, 3, 3)), message(1))
        assert typ == "OK"
        c.select("INBOX")
        assert c.copy("1", "Archive")[0] == "OK"
        typ, data = c.fetch("1", "(SAVEDATE INTERNALDATE)")
        assert typ == "OK"
        m = re.fullmatch(rb'1 \(SAVEDATE "([^"]+)" INTERNALDATE "([^"]+)"\)', data[0])  # type: ignore[arg-type]
        assert m is not None, data
        assert before <= epoch(m.group(1)) <= time.time() and epoch(m.group(2)) == utc(2003, 3, 3)
        today = time.strftime("%d-%b-%Y", time.gmtime(epoch(m.group(1))))
        assert c.search(None, "SAVEDON", today) == ("OK", [b"1"])
        assert c.search(None, "SAVEDBEFORE", today) == ("OK", [b""])
        assert c.search(None, "SAVEDATESUPPORTED") == ("OK", [b"1"])
        with pytest.raises(imaplib.IMAP4.error, match="Invalid date"):
            c.search(None, "SAVEDON", "30-Feb-2003")
    finally:
        c.logout()


@pytest.mark.parametrize("key", ["SAVEDBEFORE", "SAVEDON", "SAVEDSINCE"])
def test_every_save_date_key_reads_only_the_index(env: Env, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-command work in proportion to what was asked: no message file is opened."""

    async def go() -> None:
        s = await rfc_mailbox(env)
        acc = await env.account()

        def no_files(*args: object, **kwargs: object) -> object:
            raise AssertionError("a message file was read")

        monkeypatch.setattr(acc.adir, "open_read", no_files)  # type: ignore[attr-defined]
        monkeypatch.setattr(acc.adir, "read", no_files)  # type: ignore[attr-defined]
        assert len(await numbers(s, f"SEARCH {key} 28-Dec-2014")) in (2, 3, 9)
        assert len(await dates(s)) == 12

    run(go())
