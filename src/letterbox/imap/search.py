"""SEARCH and UID SEARCH (RFC 9051 6.4.4 / RFC 3501 6.4.4), with ESEARCH result options
(RFC 4731), SEARCHRES (RFC 5182), MODSEQ (RFC 7162), OLDER/YOUNGER (RFC 5032),
EMAILID/THREADID (RFC 8474), the save date keys of SAVEDATE (RFC 8514), CONTEXT=SEARCH's
CONTEXT, UPDATE and PARTIAL (RFC 5267 4, see contexts.py for updates) and PARTIAL's
negative ranges (RFC 9394).

A search narrows a candidate list of UIDs key by key, cheapest keys first: sequence sets
and \\Recent need only the view; flags, sizes and dates one index query for the
candidates left; SUBJECT/FROM/TO/CC/BCC run inside the index on its decoded header text,
FROM/TO/CC/BCC also on the addresses of the indexed ENVELOPE; HEADER reads only each
remaining candidate's header block, and BODY/TEXT, last, read whole messages. Strings
match as case-insensitive substrings of decoded text (RFC 2047 headers,
base64/quoted-printable and charsets of text parts).
"""

from __future__ import annotations

import calendar
import datetime
import operator
import re
import time
from collections.abc import Callable, Sequence
from email.utils import parsedate_tz
from typing import Any, TypeAlias

from ..mime.headers import decode_header_text, search_text
from ..mime.sections import decode_part, load_parts
from ..store.api import (
    AccountStore,
    FetchField,
    MessageGone,
    MessageRecord,
    SearchField,
    StoreError,
)
from . import grammar as g
from . import wire
from .contexts import Matcher, SearchContext, contexts_of, freeze, noupdate, tag_in_use
from .session import Done, IMAPSession
from .view import SelectedView

CHARSETS = ("US-ASCII", "UTF-8")

# Below this many candidates, and at most a quarter of the mailbox, reading their index
# rows beats scanning the mailbox's headers: the scan runs inside SQLite, several times
# cheaper per message than a row made into a record.
_FEW = 500
_FEW_SHARE = 4
# BODY/TEXT strings one SEARCH may hold: each message is decoded once whatever their
# number, but each string is looked for in all of its text.
MAX_CONTENT_KEYS = 64
# Decoded text longer than this lets other sessions run between two strings.
_LONG_TEXT = 1 << 20
# Searches that read files let other sessions run every this many messages.
_YIELD_EVERY = 100
# Index rows read at once: other sessions run between two reads.
_ROWS_PER_READ = 10000

_INDEXED: dict[str, SearchField] = {
    "SUBJECT": "subject",
    "FROM": "from",
    "TO": "to",
    "CC": "cc",
    "BCC": "bcc",
}
# HEADER <name> keys the index answers as well.
_INDEXED_HEADERS: dict[str, SearchField] = {**_INDEXED, "MESSAGE-ID": "message-id"}
# Position of each field in MessageRecord.search ("\0"-joined).
_SEARCH_POS = {"subject": 0, "from": 1, "to": 2, "cc": 3, "bcc": 4}
# Keys that match the addresses of the envelope too, and their position in it (RFC 9051
# 7.5.2: date, subject, from, sender, reply-to, to, cc, bcc, in-reply-to, message-id).
_ENVELOPE_POS = {"FROM": 2, "TO": 5, "CC": 6, "BCC": 7}
# What the address parser puts in place of a missing or broken part (mime.rfc822): not
# text of the message, so not searched.
_PLACEHOLDERS = frozenset((b"MISSING_MAILBOX", b"MISSING_DOMAIN", b"SYNTAX_ERROR"))
_WORD = re.compile(r"[^\W_]+")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "BEFORE": operator.lt,
    "ON": operator.eq,
    "SINCE": operator.ge,
}

_WS = re.compile(r"\s+")
_CHARSET = re.compile(rb'(?i)charset\s*=\s*"?([^";\s]+)')
_DAY = 86400

# Parts-JSON node layout (see mime.parse._tree).
_HSTART, _BSTART, _BEND, _KIND, _CTYPE, _CTE, _CHILDREN = range(7)
_MULTIPART, _RFC822 = 1, 2


# --- costs and needs -------------------------------------------------------------------


def _cost(key: g.SearchKey) -> int:
    """Rough price of evaluating *key* per candidate, to order AND lists."""
    if isinstance(key, g.SearchAll | g.SearchSet | g.SearchSaveDateSupported):
        return 0
    if isinstance(key, g.SearchObjectId):
        return 0 if key.key == "THREADID" else 1
    if isinstance(key, g.SearchFlag):
        return 0 if key.flag == "\\Recent" else 1
    if isinstance(key, g.SearchSize | g.SearchDate | g.SearchModSeq | g.SearchAge):
        return 1
    if isinstance(key, g.SearchString):
        return 2 if key.key in _INDEXED else 4
    if isinstance(key, g.SearchHeader):
        return 2 if _header_via_index(key) else 3
    if isinstance(key, g.SearchNot):
        return _cost(key.key)
    if isinstance(key, g.SearchOr):
        return max(_cost(key.left), _cost(key.right))
    return max((_cost(k) for k in key.keys), default=0)


def _fields(key: g.SearchKey, out: set[FetchField]) -> bool:
    """Collect the index fields the key tree reads per message; True if it has MODSEQ."""
    has_modseq = False
    if isinstance(key, g.SearchFlag):
        if key.flag != "\\Recent":
            out.add("flags")
    elif isinstance(key, g.SearchSize):
        out.add("size")
    elif isinstance(key, g.SearchDate):
        # SENT* compare the Date: header (in the ENVELOPE), SAVED* the save date.
        if key.key.startswith("SENT"):
            out.add("envelope")
        else:
            out.add("savedate" if key.key.startswith("SAVED") else "internaldate")
    elif isinstance(key, g.SearchAge):
        out.add("internaldate")
    elif isinstance(key, g.SearchObjectId):
        if key.key == "EMAILID":
            out.add("emailid")
    elif isinstance(key, g.SearchModSeq):
        out.add("modseq")
        has_modseq = True
    elif isinstance(key, g.SearchNot):
        has_modseq = _fields(key.key, out)
    elif isinstance(key, g.SearchOr):
        has_modseq = _fields(key.left, out) | _fields(key.right, out)
    elif isinstance(key, g.SearchAnd):
        for k in key.keys:
            has_modseq |= _fields(k, out)
    return has_modseq


def _header_via_index(key: g.SearchHeader) -> bool:
    # HEADER SUBJECT x equals SUBJECT x; an empty value tests presence, which the index
    # cannot tell from an empty field.
    return key.name.upper() in _INDEXED_HEADERS and bool(key.value)


# --- text ------------------------------------------------------------------------------


def _needle(value: bytes) -> str:
    """A search string as text: UTF-8 (US-ASCII is a subset), casefolded."""
    return value.decode("utf-8", "replace").casefold()


def _header_needle(value: bytes) -> str:
    # The index keeps header text with whitespace runs collapsed; match it the same way.
    return _WS.sub(" ", _needle(value))


def _header_fields(block: bytes) -> list[tuple[bytes, bytes]]:
    """(lowercase name, raw value with its continuation lines) of a header block."""
    out: list[tuple[bytes, bytes]] = []
    for line in block.split(b"\n"):
        if not line.strip(b"\r"):
            break
        if line[:1] in (b" ", b"\t"):
            if out:
                name, value = out[-1]
                out[-1] = (name, value + b"\n" + line)
            continue
        name, colon, value = line.partition(b":")
        if colon:
            out.append((name.strip().lower(), value))
    return out


def _to_text(data: bytes, charset: str | None) -> str:
    if charset:
        try:
            return data.decode(charset, "replace")
        except LookupError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def message_text(raw: bytes, tree: list | None, header_size: int, with_headers: bool) -> str:
    """Decoded, casefolded text SEARCH BODY (or, *with_headers*, TEXT) matches against:
    the text parts, transfer-decoded and charset-decoded; other media types are left out
    (RFC 9051 6.4.4 allows it). TEXT adds every header block, RFC 2047-decoded."""
    if tree is None:
        body = raw[header_size:]
        text = _to_text(body, None)
        if with_headers:
            text = decode_header_text(raw[:header_size]) + "\n" + text
        return text.casefold()
    out: list[str] = []

    def walk(node: list) -> None:
        header = raw[node[_HSTART] : node[_BSTART]]
        if with_headers and header:
            out.append(decode_header_text(header))
        kind = node[_KIND]
        if kind in (_MULTIPART, _RFC822):
            for child in node[_CHILDREN]:
                walk(child)
            return
        ctype = node[_CTYPE]
        if not ctype.startswith("text/"):
            return
        m = _CHARSET.search(header)
        charset = m.group(1).decode("ascii", "replace") if m else None
        body = raw[node[_BSTART] : node[_BEND]]
        # Content that does not decode is searched as it is.
        out.append(_to_text(decode_part(node[_CTE], body) or body, charset))

    walk(tree)
    return "\n".join(out).casefold()


# --- evaluation ------------------------------------------------------------------------


def content_keys(key: g.SearchKey, out: dict[tuple[str, bool], int]) -> dict[tuple[str, bool], int]:
    """Every BODY/TEXT string of the search, numbered: (needle, with headers) -> index."""
    if isinstance(key, g.SearchString) and key.key not in _INDEXED:
        out.setdefault((_needle(key.value), key.key == "TEXT"), len(out))
    elif isinstance(key, g.SearchAnd):
        for k in key.keys:
            content_keys(k, out)
    elif isinstance(key, g.SearchOr):
        content_keys(key.left, out)
        content_keys(key.right, out)
    elif isinstance(key, g.SearchNot):
        content_keys(key.key, out)
    return out


class _Search:
    def __init__(
        self, s: IMAPSession, view: SelectedView, store: AccountStore, fields: set[FetchField],
        needles: dict[tuple[str, bool], int], counts: bool = True,
    ) -> None:
        self.s = s
        self.counts = counts
        """Whether this search's own progress is the command's (not for one mailbox of
        many: ESEARCH counts mailboxes)."""
        self.view = view
        self.store = store
        self.mailbox_id = view.mailbox.id
        self.fields = tuple(sorted(fields))
        self.cache: dict[tuple[FetchField, ...], dict[int, MessageRecord]] = {}
        self.now = time.time()
        self.needles = needles
        self.content_hits: dict[int, frozenset[int]] = {}
        """UID -> which BODY/TEXT strings its text holds: each message is read and
        decoded at most once per SEARCH, however many such keys there are."""

    async def rows(self, uids: Sequence[int], fields: tuple[FetchField, ...]) -> dict[int, MessageRecord]:
        """Index rows with *fields* for *uids*, read once per search; messages gone from
        the store have none and match nothing."""
        rows = self.cache.setdefault(fields, {})
        missing = [u for u in uids if u not in rows]
        for start in range(0, len(missing), _ROWS_PER_READ):
            if start:
                await self.pause(start, len(missing))  # a big mailbox is read in pieces
            for r in await self.store.fetch(self.mailbox_id, missing[start : start + _ROWS_PER_READ], fields):
                rows[r.uid] = r
        return rows

    async def pause(self, done: int | None = None, total: int | None = None) -> None:
        """Let other sessions run, and tell the client how far the search is when it
        has taken long (RFC 9585)."""
        if self.counts:
            await self.s.progress.step(done, total)
        else:
            await self.s.progress.step()

    async def match(self, key: g.SearchKey, cands: list[int]) -> list[int]:
        """The candidates (ascending UIDs) that match *key*, still ascending."""
        if not cands:
            return cands
        if isinstance(key, g.SearchAll):
            return cands
        if isinstance(key, g.SearchSaveDateSupported):
            # Every mailbox keeps save dates (RFC 8514 4.3): all its messages match.
            return cands
        if isinstance(key, g.SearchAnd):
            for k in sorted(key.keys, key=_cost):
                cands = await self.match(k, cands)
                if not cands:
                    break
            return cands
        if isinstance(key, g.SearchOr):
            left = set(await self.match(key.left, cands))
            rest = [u for u in cands if u not in left]
            right = set(await self.match(key.right, rest))
            return [u for u in cands if u in left or u in right]
        if isinstance(key, g.SearchNot):
            hit = set(await self.match(key.key, cands))
            return [u for u in cands if u not in hit]
        if isinstance(key, g.SearchSet):
            return self._set(key, cands)
        if isinstance(key, g.SearchObjectId) and key.key == "THREADID":
            # No THREADIDs (every FETCH THREADID is NIL): RFC 8474 5.2, nothing matches.
            return []
        if isinstance(key, g.SearchFlag) and key.flag == "\\Recent":
            # \Recent exists only in IMAP4rev1 (RFC 3501 2.3.2); rev2 has none.
            recent = self.view.recent
            if self.s.rev2:
                return [] if key.present else cands
            return [u for u in cands if (u in recent) == key.present]
        if isinstance(key, g.SearchString):
            if key.key in _ENVELOPE_POS:
                return await self._address(key.key, _header_needle(key.value), cands)
            if key.key in _INDEXED:
                return await self._indexed(_INDEXED[key.key], _header_needle(key.value), cands)
            return await self._content(_needle(key.value), key.key == "TEXT", cands)
        if isinstance(key, g.SearchHeader):
            if _header_via_index(key):
                return await self._indexed(_INDEXED_HEADERS[key.name.upper()], _header_needle(key.value), cands)
            return await self._header(key, cands)
        rows = await self.rows(cands, self.fields)
        test = _row_test(key, self.now)
        return [u for u in cands if (r := rows.get(u)) is not None and test(r)]

    def _set(self, key: g.SearchSet, cands: list[int]) -> list[int]:
        if key.sequence_set.last_result:
            wanted = set(self.view.saved)
        else:
            wanted = {u for _, u in self.view.resolve(key.sequence_set, key.uid)}
        return [u for u in cands if u in wanted]

    def _few(self, cands: list[int]) -> bool:
        """Whether to read the candidates' rows rather than scan the mailbox (_FEW)."""
        return len(cands) <= _FEW and len(cands) * _FEW_SHARE <= len(self.view.uids)

    async def _indexed(self, field: SearchField, needle: str, cands: list[int]) -> list[int]:
        pos = _SEARCH_POS.get(field)
        if self._few(cands) and pos is not None:
            rows = await self.rows(cands, ("search",))
            out = []
            for u in cands:
                r = rows.get(u)
                if r is not None and r.search and needle in r.search.split("\0")[pos]:
                    out.append(u)
            return out
        hits = set(await self.store.search_headers(self.mailbox_id, field, needle))
        return [u for u in cands if u in hits]

    async def _address(self, key: str, needle: str, cands: list[int]) -> list[int]:
        """FROM/TO/CC/BCC: "the envelope structure's FROM field" (RFC 9051 6.4.4), so the
        addresses as the envelope has them ("name <mailbox@host>", the name RFC
        2047-decoded: comments, quoting and folding gone), as Dovecot matches them; and,
        for what users type from what they see, the decoded header text the index keeps
        (`FROM "<j@x>"`, a comment, a group name)."""
        field = _INDEXED[key]
        pos = _SEARCH_POS[field]
        # Each word of an envelope address is a word of the header text too (but for a
        # quoted-pair inside a quoted local part): only the messages whose text holds the
        # needle's longest word have envelopes worth reading.
        words = _WORD.findall(needle)
        word = max(words, key=len) if words else ""
        hits: set[int] = set()
        maybe: list[int] = []
        if self._few(cands):
            rows = await self.rows(cands, ("search",))
            for u in cands:
                r = rows.get(u)
                if r is None:
                    continue
                text = _search_field(r.search, pos)
                if needle in text:
                    hits.add(u)
                elif word in text:
                    maybe.append(u)
        else:
            hits.update(await self.store.search_headers(self.mailbox_id, field, needle))
            with_word = set(await self.store.search_headers(self.mailbox_id, field, word))
            maybe = [u for u in cands if u in with_word and u not in hits]
        if maybe:
            index = _ENVELOPE_POS[key]
            envelopes = await self.rows(maybe, ("envelope",))
            for i, u in enumerate(maybe):
                if i % _YIELD_EVERY == _YIELD_EVERY - 1:
                    await self.pause(i, len(maybe))
                r = envelopes.get(u)
                if r is not None and needle in _address_text(r.envelope, index):
                    hits.add(u)
        return [u for u in cands if u in hits]

    async def _header(self, key: g.SearchHeader, cands: list[int]) -> list[int]:
        name = key.name.lower().encode("ascii", "replace")
        needle = _header_needle(key.value)
        rows = await self.rows(cands, ("header_size",))
        out = []
        for i, u in enumerate(cands):
            if i % _YIELD_EVERY == _YIELD_EVERY - 1:
                await self.pause(i, len(cands))
            r = rows.get(u)
            if r is None:
                continue
            try:
                block = await self.store.read_range(self.mailbox_id, u, 0, r.header_size)
            except MessageGone:
                continue
            for fname, value in _header_fields(block):
                # An empty string matches any message that has the field (RFC 9051 6.4.4).
                if fname == name and (not needle or needle in search_text(value)):
                    out.append(u)
                    break
        return out

    async def _content(self, needle: str, with_headers: bool, cands: list[int]) -> list[int]:
        rows = await self.rows(cands, ("header_size", "parts"))
        index = self.needles[(needle, with_headers)]
        out = []
        for i, u in enumerate(cands):
            if i % _YIELD_EVERY == _YIELD_EVERY - 1:
                await self.pause(i, len(cands))
            r = rows.get(u)
            if r is None:
                continue
            if not needle:
                out.append(u)
                continue
            hits = self.content_hits.get(u)
            if hits is None:
                try:
                    hits = self.content_hits[u] = await self._scan(u, r)
                except MessageGone:
                    continue
            if index in hits:
                out.append(u)
        return out

    async def _scan(self, uid: int, r: MessageRecord) -> frozenset[int]:
        """Read and decode one message once; which of the search's strings it holds."""
        raw = await self.store.read_message(self.mailbox_id, uid)
        tree = load_parts(r.parts) if r.parts else None
        texts: dict[bool, str] = {}
        hits = set()
        for (needle, with_headers), index in self.needles.items():
            text = texts.get(with_headers)
            if text is None:
                text = texts[with_headers] = message_text(raw, tree, r.header_size, with_headers)
            if needle in text:
                hits.add(index)
            if len(text) > _LONG_TEXT:
                await self.pause()
        return frozenset(hits)


def _day_start(day: datetime.date) -> int:
    return calendar.timegm(day.timetuple())


def _search_field(search: str, pos: int) -> str:
    fields = search.split("\0")
    return fields[pos] if pos < len(fields) else ""


# --- the indexed ENVELOPE ----------------------------------------------------------------

_Item: TypeAlias = "bytes | None | list[_Item]"
# One token of a serialized ENVELOPE (mime.parse writes it): a parenthesis, NIL, a
# quoted string or a literal's announcement.
_ENV_TOKEN = re.compile(rb' ?(?:(\()|(\))|NIL|"([^"\\]*(?:\\.[^"\\]*)*)"|\{([0-9]+)\}\r\n)')
_QUOTED_PAIR = re.compile(rb"\\(.)", re.S)


def _envelope_items(data: bytes, count: int) -> list[_Item] | None:
    """The first *count* items of a serialized ENVELOPE, or None if it does not parse."""
    stack: list[list[_Item]] = []
    pos = 0
    while True:
        m = _ENV_TOKEN.match(data, pos)
        if m is None:
            return None
        pos = m.end()
        item: _Item
        if m.group(1):
            stack.append([])
            continue
        if m.group(2):
            if len(stack) == 1:
                return stack[0]
            if not stack:
                return None
            item = stack.pop()
        elif m.group(4) is not None:
            size = int(m.group(4))
            item = data[pos : pos + size]
            pos += size
        elif m.group(3) is not None:
            item = _QUOTED_PAIR.sub(rb"\1", m.group(3))
        else:
            item = None
        if not stack:
            return None
        stack[-1].append(item)
        if len(stack) == 1 and len(stack[0]) >= count:
            return stack[0]


def _address_text(envelope: bytes, index: int) -> str:
    """The addresses of envelope field *index* as SEARCH matches them: "name
    <mailbox@host>", comma-separated, RFC 2047-decoded, casefolded."""
    items = _envelope_items(envelope, index + 1)
    addrs = items[index] if items is not None and len(items) > index else None
    if not isinstance(addrs, list):
        return ""
    out: list[bytes] = []
    for addr in addrs:
        if not isinstance(addr, list) or len(addr) != 4:
            continue
        name, _route, mailbox, host = addr
        if not isinstance(mailbox, bytes) or not isinstance(host, bytes):
            continue  # a group's start or end: its name is in the header text
        spec = b"@".join(p for p in (mailbox, host) if p not in _PLACEHOLDERS)
        out.append((name + b" " if isinstance(name, bytes) and name else b"") + b"<" + spec + b">")
    return search_text(b", ".join(out))


def _sent_day(envelope: bytes) -> datetime.date | None:
    """The day of the Date: header as written there (its own zone's), if it parses."""
    items = _envelope_items(envelope, 1)
    value = items[0] if items else None
    if not isinstance(value, bytes):
        return None
    try:
        parsed = parsedate_tz(value.decode("latin-1"))
        return None if parsed is None else datetime.date(parsed[0], parsed[1], parsed[2])
    except Exception:  # an impossible day, or the stdlib parser raising on odd input
        return None


RowTest = Callable[[MessageRecord], bool]


def _row_test(key: g.SearchKey, now: float) -> RowTest:
    """A predicate over an index row for the keys that need only the row."""
    if isinstance(key, g.SearchFlag):
        flag, present = key.flag, key.present
        return lambda r: (flag in r.flags) == present
    if isinstance(key, g.SearchSize):
        size = key.size
        if key.larger:
            return lambda r: r.size > size
        return lambda r: r.size < size
    if isinstance(key, g.SearchModSeq):
        # RFC 7162 3.1.5: mod-sequence equal to or greater than the value.
        modseq = key.modseq
        return lambda r: r.modseq >= modseq
    if isinstance(key, g.SearchObjectId):
        # EMAILID: exact and case-sensitive (RFC 8474 7).
        value = key.value
        return lambda r: r.emailid == value
    if isinstance(key, g.SearchAge):
        # RFC 5032: OLDER matches at or before now - n, YOUNGER at or after it.
        target = now - key.seconds
        if key.older:
            return lambda r: r.internaldate <= target
        return lambda r: r.internaldate >= target
    if isinstance(key, g.SearchDate):
        day = key.date
        op = key.key.removeprefix("SENT")
        if op != key.key:
            # SENT*: the date as the Date: header writes it, "disregarding time and
            # timezone" (RFC 9051 6.4.4): +0200 on the 25th is the 25th, not UTC's 24th.
            # Without a Date: that parses there is no such date, and no SENT* key
            # matches (NOT SENTON does): that is the RFC's text, and Dovecot's when it
            # reads the header; the INTERNALDATE stand-in is SORT's (RFC 5256 2.2).
            compare = _COMPARE[op]
            return lambda r: (sent := _sent_day(r.envelope)) is not None and compare(sent, day)
        # INTERNALDATE and the save date (SAVED*, RFC 8514 4.3): days in UTC,
        # disregarding time, as FETCH shows them; the index keeps times as UTC epochs,
        # the zone given at APPEND is not kept.
        start = _day_start(day)
        end = start + _DAY
        saved = op.startswith("SAVED")
        op = op.removeprefix("SAVED")
        when: Callable[[MessageRecord], float] = (
            operator.attrgetter("savedate") if saved else operator.attrgetter("internaldate")
        )
        if op == "BEFORE":
            return lambda r: when(r) < start
        if op == "ON":
            return lambda r: start <= when(r) < end
        return lambda r: when(r) >= start
    raise TypeError(f"not a row key: {key!r}")


# --- the command -----------------------------------------------------------------------


Plan = tuple[set[FetchField], bool, dict[tuple[str, bool], int]]
"""What a search reads per message: index fields, whether it has MODSEQ, BODY/TEXT strings."""


def plan(s: IMAPSession, charset: str | None, key: g.SearchKey) -> Plan | Done:
    """The checks every SEARCH and ESEARCH makes before it reads a message, and what it
    will read; or the answer that ends it."""
    if charset is not None and s.utf8_accept:
        # RFC 6855 3: after ENABLE UTF8=ACCEPT a charset conflicts with the UTF-8 quoting.
        return Done("BAD", "No CHARSET after ENABLE UTF8=ACCEPT")
    if charset is not None and charset not in CHARSETS:
        return Done("NO", f"Unsupported charset {charset}", "BADCHARSET (" + " ".join(CHARSETS) + ")")
    fields: set[FetchField] = set()
    has_modseq = _fields(key, fields)
    if has_modseq:
        s.enable_condstore()  # RFC 7162 3.1: a MODSEQ search key enables CONDSTORE
    needles = content_keys(key, {})
    if len(needles) > MAX_CONTENT_KEYS:
        return Done("NO", f"At most {MAX_CONTENT_KEYS} BODY/TEXT strings per search", "LIMIT")
    return fields, has_modseq, needles


async def highest_modseq(search: _Search, uids: list[int]) -> int | None:
    """The highest MODSEQ of *uids*, for a search with a MODSEQ key (RFC 7162 3.1.5)."""
    if not uids:
        return None
    rows = await search.rows(uids, ("modseq",))
    return max((rows[u].modseq for u in uids if u in rows), default=None)


def matcher(s: IMAPSession, view: SelectedView, store: AccountStore, key: g.SearchKey) -> Matcher:
    """*key*'s test of given messages, for an updating search (contexts.py)."""
    fields: set[FetchField] = set()
    _fields(key, fields)
    needles = content_keys(key, {})

    async def match(uids: list[int]) -> set[int]:
        return set(await _Search(s, view, store, fields, needles).match(key, uids))

    return match


def returned_results(results: Sequence[int], opts: set[str], partial: g.PartialRange | None) -> list[int]:
    """Of *results* (in their order), those the command returns: what SAVE keeps and
    MODSEQ is the highest of. That is all of them, but without ALL or COUNT only those
    MIN, MAX and PARTIAL return (RFC 5182 2.4, RFC 9394 3.2)."""
    if not results or opts & {"ALL", "COUNT"} or not (opts & {"MIN", "MAX"} or partial is not None):
        return list(results)
    picked = list(results[partial.window(len(results))]) if partial is not None else []
    if "MIN" in opts:
        picked.append(results[0])
    if "MAX" in opts:
        picked.append(results[-1])
    return list(dict.fromkeys(picked))


async def cmd_search(s: IMAPSession, cmd: g.Search) -> Done:
    view = s.view
    assert view is not None
    store = view.store
    verb = "UID SEARCH" if cmd.uid else "SEARCH"
    options = cmd.return_options
    # CONTEXT only hints that the search comes again (RFC 5267 4.2): nothing to do.
    opts = set(options or ()) - {"CONTEXT"}
    save = "SAVE" in opts
    if "UPDATE" in opts and tag_in_use(s, cmd.tag):
        return Done("BAD", "An updating search already has this tag")  # RFC 5267 4.3
    planned = plan(s, cmd.charset, cmd.key)
    if isinstance(planned, Done):
        if save and planned.status == "NO":
            view.saved = []  # RFC 5182 2.1: a failed SEARCH (SAVE) empties $
        return planned
    fields, has_modseq, needles = planned
    gone = view.pending_expunge
    cands = [u for u in view.uids if u not in gone] if gone else list(view.uids)
    search = _Search(s, view, store, fields, needles)
    try:
        found = await search.match(cmd.key, cands)
    except StoreError:
        if save:
            view.saved = []
        raise
    chosen = returned_results(found, opts, cmd.partial)
    if save:
        view.saved = sorted(chosen)
    highest = await highest_modseq(search, sorted(chosen)) if has_modseq else None
    numbers = found if cmd.uid else _msns(view, found)
    refused = None
    if "UPDATE" in opts:
        contexts = contexts_of(view)
        refused = contexts.refusal(cmd.key, sort=False)
        if refused is None:
            key = freeze(cmd.key, view)
            contexts.add(SearchContext(cmd.tag, cmd.uid, key, matcher(s, view, store, key), found))
    if options is None and not s.rev2:
        line = b"* SEARCH"
        if numbers:
            line += b" " + " ".join(map(str, numbers)).encode("ascii")
            if highest is not None:
                line += b" (MODSEQ %d)" % highest
        s.send(line + b"\r\n")
        return Done(text=f"{verb} completed")
    # RETURN () means ALL, and so does a rev2 SEARCH without RETURN (RFC 9051 6.4.4).
    wanted = opts or {"ALL"}
    if wanted != {"SAVE"}:
        # SAVE alone suppresses the ESEARCH response (RFC 5182 2.4).
        partial = None
        if cmd.partial is not None:
            partial = (cmd.partial, numbers[cmd.partial.window(len(numbers))])
        s.send(esearch(cmd.tag, cmd.uid, wanted, numbers, highest, partial=partial))
    if refused is not None:
        s.send(noupdate(cmd.tag, refused))  # RFC 5267 4.3.1: the rest is still answered
    return Done(text=f"{verb} completed")


def _msns(view: SelectedView, uids: list[int]) -> list[int]:
    out = []
    for u in uids:
        m = view.msn(u)
        if m is not None:
            out.append(m)
    return out


def esearch(
    tag: str, uid: bool, wanted: set[str], numbers: Sequence[int], highest: int | None,
    all_text: Callable[[Sequence[int]], bytes] = wire.sequence_set, correlators: bytes = b"",
    partial: tuple[g.PartialRange, Sequence[int]] | None = None,
) -> bytes:
    """``* ESEARCH (TAG "t") [UID] MIN MAX ALL PARTIAL COUNT [MODSEQ]`` in Dovecot's
    order; with no match MIN, MAX and ALL are left out but COUNT stays (RFC 4731 3.1),
    and PARTIAL says NIL (RFC 9394 3.1). MIN and MAX are the first and last of
    *numbers*, ALL is *all_text* of them (ESORT keeps sort order); *partial* is the
    requested range and the numbers in it. *correlators* follow the tag (ESEARCH's
    MAILBOX and UIDVALIDITY, RFC 7377 2.1)."""
    parts = [b'* ESEARCH (TAG ' + wire.quoted(tag) + correlators + b")"]
    if uid:
        parts.append(b"UID")
    if numbers:
        if "MIN" in wanted:
            parts.append(b"MIN %d" % numbers[0])
        if "MAX" in wanted:
            parts.append(b"MAX %d" % numbers[-1])
        if "ALL" in wanted:
            parts.append(b"ALL " + all_text(numbers))
    if partial is not None:
        window = partial[1]
        parts.append(b"PARTIAL (%s %s)" % (partial[0].canonical().encode(), all_text(window) if window else wire.NIL))
    if "COUNT" in wanted:
        parts.append(b"COUNT %d" % len(numbers))
    if highest is not None:
        parts.append(b"MODSEQ %d" % highest)
    return b" ".join(parts) + b"\r\n"
