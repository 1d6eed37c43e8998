"""SEARCH keys whose meaning RFC 9051 6.4.4 (and RFC 3501 6.4.4) pins down beyond a
substring of the raw header: SENTBEFORE/SENTON/SENTSINCE take the Date: header's own day,
"disregarding time and timezone"; FROM/TO/CC/BCC match "the envelope structure's" field,
i.e. the parsed addresses, while the decoded header text still matches as before."""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest

import letterbox.imap.session  # noqa: F401  (first: it builds the command table)
from letterbox.imap import search as search_module
from letterbox.store.api import FetchField, MessageRecord

from .test_fetch_helpers import Env, Session, run, tagged


def utc(year: int, month: int, day: int, hour: int = 0) -> float:
    return float(calendar.timegm((year, month, day, hour, 0, 0, 0, 0, 0)))


def lit(text: str) -> str:
    """An 8-bit string as a LITERAL+ literal."""
    return f"{{{len(text.encode())}+}}\r\n{text}"


async def search(s: Session, criteria: str) -> list[int]:
    out = await s.cmd(b"q SEARCH " + criteria.encode())
    assert tagged(out, "q").startswith(b"q OK"), out
    lines = [line for line in out.split(b"\r\n") if line.startswith(b"* SEARCH")]
    assert len(lines) == 1, out
    return [int(n) for n in lines[0][len(b"* SEARCH") :].split()]


def forbid_files(s: Session) -> None:
    """Make reading any message file fail: the keys must be answered from the index."""
    store = s.s.store
    assert store is not None

    async def no_files(*args: object) -> bytes:
        raise AssertionError("message file read")

    store.read_message = no_files  # type: ignore[method-assign]
    store.read_range = no_files  # type: ignore[method-assign]


# --- SENTBEFORE / SENTON / SENTSINCE -------------------------------------------------------


def dated(date: bytes | None) -> bytes:
    header = b"" if date is None else b"Date: " + date + b"\r\n"
    return b"From: a@example.org\r\nSubject: dates\r\n" + header + b"\r\nbody\r\n"


# (Date: value, INTERNALDATE); the internal dates all fall on 25-Mar-2007 (UTC) to show
# that SENT* never looks at them.
DATED = [
    # 1: 22:00 on the 24th in UTC, but the header's day is the 25th.
    (b"Sun, 25 Mar 2007 00:00:00 +0200", utc(2007, 3, 25, 12)),
    # 2: 04:30 on the 25th in UTC, but the header's day is the 24th.
    (b"Sat, 24 Mar 2007 23:30:00 -0500", utc(2007, 3, 25, 12)),
    # 3: folded, no seconds, two-digit year (RFC 5322 4.3), 10:59 on the 26th in UTC.
    (b"25 Mar 07\r\n 23:59 -1100", utc(2007, 3, 25, 12)),
    # 4: no Date: header at all.
    (None, utc(2007, 3, 25, 12)),
    # 5, 6: a Date: header that does not parse, one naming no real day.
    (b"yesterday", utc(2007, 3, 25, 12)),
    (b"Wed, 31 Feb 2007 10:00:00 +0000", utc(2007, 3, 25, 12)),
]


@pytest.fixture
def dated_env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)

    async def fill() -> None:
        for date, internal in DATED:
            await e.append(dated(date), date=internal)

    run(fill())
    yield e
    e.close()


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        # RFC 9051 6.4.4 SENTON: "Date: header field (disregarding time and timezone)".
        ("SENTON 25-Mar-2007", [1, 3]),
        ("SENTON 24-Mar-2007", [2]),
        ("SENTON 26-Mar-2007", []),
        # SENTBEFORE: earlier than the day; SENTSINCE: that day or later.
        ("SENTBEFORE 25-Mar-2007", [2]),
        ("SENTBEFORE 26-Mar-2007", [1, 2, 3]),
        ("SENTSINCE 25-Mar-2007", [1, 3]),
        ("SENTSINCE 26-Mar-2007", []),
        # No Date: (or none that parses) is no sent date: no SENT* key matches, whatever
        # the range, and NOT finds those messages.
        ("SENTSINCE 1-Jan-1970", [1, 2, 3]),
        ("SENTBEFORE 1-Jan-2100", [1, 2, 3]),
        ("NOT SENTON 25-Mar-2007", [2, 4, 5, 6]),
        ("OR SENTBEFORE 1-Jan-2100 SENTSINCE 1-Jan-1970", [1, 2, 3]),
        # The internal-date keys still use INTERNALDATE (in UTC).
        ("ON 25-Mar-2007", [1, 2, 3, 4, 5, 6]),
        ("ON 25-Mar-2007 SENTON 24-Mar-2007", [2]),
    ],
)
def test_sent_dates_use_the_header_day_rfc9051_6_4_4(
    dated_env: Env, criteria: str, expected: list[int]
) -> None:
    async def go() -> None:
        s = await dated_env.session()
        assert await search(s, criteria) == expected

    run(go())


def test_sent_dates_come_from_the_index_rfc9051_6_4_4(dated_env: Env) -> None:
    """SENT* reads the Date: kept in the indexed ENVELOPE, no message file."""

    async def go() -> None:
        s = await dated_env.session()
        forbid_files(s)
        assert await search(s, "SENTON 25-Mar-2007") == [1, 3]
        assert await search(s, "SENTSINCE 24-Mar-2007 SENTBEFORE 25-Mar-2007") == [2]

    run(go())


def test_sent_dates_in_rev1_sessions_rfc3501_6_4_4(dated_env: Env) -> None:
    """RFC 3501 6.4.4 words SENTON the same way; UID SEARCH answers in UIDs."""

    async def go() -> None:
        s = await dated_env.session()
        out = await s.cmd("u UID SEARCH SENTON 25-Mar-2007")
        assert out == b"* SEARCH 1 3\r\nu OK UID SEARCH completed\r\n"

    run(go())


# --- FROM / TO / CC / BCC --------------------------------------------------------------


ADDRESSED = [
    # 1: comments inside the address: the envelope has user-from@domain.org.
    b"From: <user-from (comment)@ (comment) domain.org>\r\n"
    b"To: Bob <bob@example.com>\r\n",
    # 2: a quoted display name; a comment standing for the name (the envelope takes it).
    b'From: "John Smith" <j@x.example>\r\n'
    b"To: jane@example.net (Jane Doe)\r\n",
    # 3: an RFC 2047 display name; a group.
    b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@example.de>\r\n"
    b'Cc: team: ann@example.com, "Bob Q" <bobq@example.com>;\r\n',
    # 4: a folded field; a quoted local part.
    b"From: Mary Jones\r\n <mary@example.com>\r\n"
    b'Bcc: "odd local"@example.org\r\n',
]

ADDRESS_CASES = [
    # RFC 9051 6.4.4 FROM: "the envelope structure's FROM field" (the addresses).
    ("FROM user-from@domain.org", [1]),
    ("FROM USER-FROM@DOMAIN.ORG", [1]),
    ('FROM "<user-from@domain.org>"', [1]),
    ("FROM from@domain", [1]),
    ('FROM "John Smith <j@x.example>"', [2]),
    ('FROM "smith <j@x"', [2]),
    ("FROM " + lit("jürgen müller <jm@"), [3]),
    ('FROM "mary jones <mary@example.com>"', [4]),
    ("TO bob@example.com", [1]),
    ('TO "Jane Doe <jane@example.net>"', [2]),
    ('CC "Bob Q <bobq@example.com>"', [3]),
    ("CC ann@example.com", [3]),
    ('BCC "odd local@example.org"', [4]),
    # What the header text shows still matches: display names, quotes, comments,
    # angle brackets, group names, decoded encoded words.
    ("FROM smith", [2]),
    ('FROM "\\"John Smith\\""', [2]),
    ('FROM "(comment)"', [1]),
    ("FROM " + lit("JÜRGEN"), [3]),
    ('FROM "=?utf-8?"', []),
    ('TO "jane doe"', [2]),
    ('TO "(Jane Doe)"', [2]),
    ("CC team", [3]),
    ('BCC "\\"odd local\\"@example.org"', [4]),
    # Substrings, case-insensitive; NOT, OR and the empty string as with any key.
    ("FROM example", [2, 3, 4]),
    ("FROM nobody@example.com", []),
    ("NOT FROM user-from@domain.org", [2, 3, 4]),
    ("OR FROM user-from@domain.org TO jane@example.net", [1, 2]),
    ('FROM ""', [1, 2, 3, 4]),
]


@pytest.fixture
def addressed_env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    run(e.append(*(h + b"Subject: addresses\r\n\r\nbody\r\n" for h in ADDRESSED)))
    yield e
    e.close()


@pytest.mark.parametrize("many", [False, True], ids=["rows", "index-scan"])
@pytest.mark.parametrize(("criteria", "expected"), ADDRESS_CASES)
def test_address_keys_match_the_envelope_rfc9051_6_4_4(
    addressed_env: Env, monkeypatch: pytest.MonkeyPatch, many: bool, criteria: str, expected: list[int]
) -> None:
    """Both ways the index is asked: rows of a few candidates, or its scan of many."""
    if many:
        monkeypatch.setattr(search_module, "_FEW", 0)
    else:
        monkeypatch.setattr(search_module, "_FEW_SHARE", 0)

    async def go() -> None:
        s = await addressed_env.session()
        forbid_files(s)
        assert await search(s, criteria) == expected

    run(go())


def test_address_keys_read_envelopes_only_where_the_words_are(addressed_env: Env) -> None:
    """An envelope is read only for a message whose header text holds the needle's
    longest word: a match in the envelope needs it, and the text is cheaper."""

    async def go() -> None:
        s = await addressed_env.session()
        store = s.s.store
        assert store is not None
        asked: list[tuple[list[int], tuple[FetchField, ...]]] = []
        real = store.fetch

        async def spy(
            mailbox_id: int, uids: Sequence[int], fields: Iterable[FetchField]
        ) -> list[MessageRecord]:
            fields = tuple(fields)
            asked.append((list(uids), fields))
            return await real(mailbox_id, uids, fields)

        store.fetch = spy  # type: ignore[method-assign]
        assert await search(s, "FROM user-from@domain.org") == [1]
        assert [u for u, f in asked if "envelope" in f] == [[1]]
        asked.clear()
        assert await search(s, "FROM nobody@nowhere.invalid") == []
        assert not [u for u, f in asked if "envelope" in f]

    run(go())
