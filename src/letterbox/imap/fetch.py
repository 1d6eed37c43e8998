"""FETCH and UID FETCH (RFC 9051 6.4.5 / RFC 3501 6.4.5, BINARY RFC 3516, CONDSTORE RFC 7162,
OBJECTID RFC 8474, SAVEDATE RFC 8514, PREVIEW RFC 8970, the PARTIAL modifier RFC 9394 3.3).

Everything but message content (FLAGS, UID, MODSEQ, INTERNALDATE, RFC822.SIZE, ENVELOPE,
BODY, BODYSTRUCTURE, EMAILID, SAVEDATE, PREVIEW) comes from one `store.fetch` over all
requested messages; ENVELOPE, the body structures, the EMAILID and the PREVIEW were
computed at delivery. A message indexed before previews were kept has none: PREVIEW
makes it then (and the index keeps it), PREVIEW (LAZY) answers NIL instead (RFC 8970
4.1). THREADID is always NIL: no thread ids are kept (RFC 8474 5.2). Message files are
opened only for body sections, and then only for the byte range the section covers.
Responses are joined into large chunks, since `FETCH 1:* (FLAGS)` over 100,000 messages
is a common client start-up and per-line overhead would dominate it.

Sections are located by `mime.sections`. The answers follow Dovecot, which the output is
compared against: a part that does not exist, or HEADER/TEXT of a part that is not
message/rfc822, is an empty literal (`{0}`); NULs in BODY[] data become 0x80, since only
literal8 (BINARY) may carry them; BINARY of undecodable data is NIL. Message bytes go out
exactly as stored, so their length always equals RFC822.SIZE.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..mime.headers import get_header_fields, get_header_fields_not
from ..mime.sections import LEAF, Node, decode_part, find_part, find_section, load_parts
from ..store.api import AccountStore, FetchField, MessageGone, MessageRecord, StoreError
from . import grammar as g
from . import wire
from .session import Done, IMAPSession
from .view import RecentSet, SelectedView

log = logging.getLogger("letterbox.imap")

# Responses are sent in chunks of this many rows (or bytes), not one `send` per line.
_BATCH_ROWS = 1000
_FETCH_ROWS = 100
"""Messages whose index rows one FETCH reads at once. Other sessions run between two such
slices, so a command of theirs waits for the rest of one: 100 rows with ENVELOPE take
under a millisecond, and a slice's own cost (one query, a few turns of the loop) is
small beside its rows'."""
_BATCH_BYTES = 1 << 20
# Raw content at least this big is sent while it is read, a piece at a time, never held
# whole: a FETCH of several sections of a 60 MB message holds CHUNK bytes, not 60 MB each.
_STREAM_MIN = 256 * 1024

# Content-Transfer-Encodings that BINARY can undo (others are [UNKNOWN-CTE]).
_KNOWN_CTE = frozenset({"", "7bit", "8bit", "binary", "base64", "quoted-printable"})
_IDENTITY_CTE = frozenset({"", "7bit", "8bit", "binary"})
_BSTART, _BEND, _KIND, _CTE = 1, 2, 3, 5  # parts-JSON node fields (see mime.sections)


class UnknownCTE(Exception):
    """A BINARY fetch hit a Content-Transfer-Encoding we cannot decode (RFC 3516 4.3)."""


class BrokenContent(Exception):
    """A BINARY fetch hit data invalid in its (known) encoding: Dovecot answers NIL."""


# --- sections --------------------------------------------------------------------------


def section_range(tree: Node | None, rec: MessageRecord, section: g.Section) -> tuple[int, int] | None:
    """Byte range [start, end) of the raw message that *section* covers before any
    HEADER.FIELDS filtering, or None for a section that does not exist."""
    if not section.part:
        # The message's own sections need no parts tree: the index has the sizes.
        if section.text is None:
            return 0, rec.size
        if section.text == "TEXT":
            return rec.header_size, rec.size
        return 0, rec.header_size  # HEADER, HEADER.FIELDS[.NOT]
    if tree is None:
        return None
    return find_section(tree, section.part, section.text)


def decode_binary(cte: str, data: bytes) -> bytes:
    """Undo a Content-Transfer-Encoding for BINARY; raises UnknownCTE or BrokenContent."""
    if cte not in _KNOWN_CTE:
        raise UnknownCTE(cte)
    decoded = decode_part(cte, data)
    if decoded is None:
        raise BrokenContent(cte)
    return decoded


def _section_spec(section: g.Section) -> bytes:
    """The section as echoed in the response: header names uppercased, as Dovecot does."""
    spec = ".".join(map(str, section.part))
    if section.text is not None:
        spec = f"{spec}.{section.text}" if spec else section.text
    out = spec.encode("ascii")
    if section.headers:
        names = b" ".join(wire.astring(h.upper()) for h in section.headers)
        out += b" (" + names + b")"
    return out


# --- the plan --------------------------------------------------------------------------


@dataclass(slots=True)
class _Body:
    """A content item: BODY[...], BINARY[...], BINARY.SIZE[...] or RFC822[.HEADER|.TEXT]."""

    name: bytes
    section: g.Section
    partial: tuple[int, int] | None
    binary: bool = False
    size_only: bool = False

    @property
    def header_only(self) -> bool:
        return not self.section.part and self.section.text is not None and self.section.text.startswith("HEADER")


_RFC822_SECTIONS = {
    "RFC822": g.Section(),
    "RFC822.HEADER": g.Section(text="HEADER"),
    "RFC822.TEXT": g.Section(text="TEXT"),
}


class _Plan:
    """What one FETCH command returns per message, decided once for all messages."""

    def __init__(self, s: IMAPSession, view: SelectedView, cmd: g.Fetch) -> None:
        attrs = list(cmd.attributes)
        self.uidonly = view.uidonly
        self.head = b"* %d UIDFETCH (" if view.uidonly else b"* %d FETCH ("
        """Each response's start, for its message number (with UIDONLY, its UID)."""
        if view.uidonly:
            # RFC 9586: a UIDFETCH response names the message by its UID; a UID item
            # would say it again (Cyrus leaves it out too), unless it is all there is.
            attrs = [a for a in attrs if a.name != "UID"] or [g.FetchAttribute("UID")]
        elif cmd.uid:
            # RFC 9051 6.4.9: UID FETCH always returns UID; Dovecot puts it first.
            attrs.insert(0, g.FetchAttribute("UID"))
        if cmd.changedsince is not None:
            # RFC 7162 3.1.4.1: CHANGEDSINCE implies the MODSEQ item.
            attrs.append(g.FetchAttribute("MODSEQ"))
        self.items: list[str | _Body] = []
        seen_names: set[bytes] = set()
        self.sets_seen = False
        fields: set[FetchField] = set()
        # RFC 8970 3.2: only PREVIEW (LAZY) may answer NIL; asked for both ways, the
        # preview is made.
        self.make_previews = any(a.name == "PREVIEW" and not a.lazy for a in attrs)
        for a in attrs:
            if a.sets_seen:
                self.sets_seen = True
            item: str | _Body
            if a.name in _RFC822_SECTIONS:
                item = _Body(a.name.encode("ascii"), _RFC822_SECTIONS[a.name], None)
            elif a.section is not None:
                name = b"%s[%s]" % (a.name.encode("ascii"), _section_spec(a.section))
                if a.partial is not None:
                    name += b"<%d>" % a.partial[0]
                item = _Body(name, a.section, a.partial, a.name != "BODY", a.name == "BINARY.SIZE")
            else:
                item = a.name
            key = item.name if isinstance(item, _Body) else item.encode("ascii")
            if key in seen_names:
                continue
            seen_names.add(key)
            self.items.append(item)
            if isinstance(item, _Body):
                fields.update(("size", "header_size", "parts"))
            else:
                fields.update(_INDEX_FIELDS[item])
        self.bodies = [i for i in self.items if isinstance(i, _Body)]
        self.has_flags = "FLAGS" in self.items
        self.has_uid = "UID" in self.items
        self.has_modseq = "MODSEQ" in self.items
        # RFC 4314 4: a body fetch sets \\Seen only for a user with the "s" right.
        self.sets_seen = self.sets_seen and not view.readonly and "s" in view.rights
        if self.sets_seen:
            fields.add("flags")
        if cmd.changedsince is not None:
            fields.add("modseq")
        self.fields = sorted(fields)
        self.index_writers = [_index_writer(i, s, view) if isinstance(i, str) else None for i in self.items]
        self.flags_writer = _index_writer("FLAGS", s, view)
        # Parts JSON is decoded only when a section names a part or BINARY must decode.
        self.needs_tree = any(b.section.part or b.binary for b in self.bodies)
        # Several content items over more than the header: read the file once, whole.
        self.read_whole = len(self.bodies) > 1 and not all(b.header_only for b in self.bodies)


_INDEX_FIELDS: dict[str, tuple[FetchField, ...]] = {
    "FLAGS": ("flags",),
    "UID": (),
    "MODSEQ": ("modseq",),
    "INTERNALDATE": ("internaldate",),
    "RFC822.SIZE": ("size",),
    "ENVELOPE": ("envelope",),
    "BODY": ("body",),
    "BODYSTRUCTURE": ("bodystructure",),
    "EMAILID": ("emailid",),
    "THREADID": (),
    "SAVEDATE": ("savedate",),
    "PREVIEW": ("preview",),
}

Writer = Callable[[MessageRecord], bytes]


def _index_writer(name: str, s: IMAPSession, view: SelectedView) -> Writer:
    if name == "UID":
        return lambda r: b"UID %d" % r.uid
    if name == "FLAGS":
        return _flags_writer(view, s.rev2)
    if name == "MODSEQ":
        return lambda r: b"MODSEQ (%d)" % r.modseq
    if name == "INTERNALDATE":
        return lambda r: b"INTERNALDATE " + wire.epoch_date_time(r.internaldate)
    if name == "RFC822.SIZE":
        return lambda r: b"RFC822.SIZE %d" % r.size
    if name == "ENVELOPE":
        return lambda r: b"ENVELOPE " + r.envelope
    if name == "BODY":
        return lambda r: b"BODY " + r.body
    if name == "BODYSTRUCTURE":
        return lambda r: b"BODYSTRUCTURE " + r.bodystructure
    if name == "EMAILID":
        return lambda r: b"EMAILID (" + r.emailid.encode("ascii") + b")"
    if name == "THREADID":
        return lambda r: b"THREADID NIL"
    if name == "SAVEDATE":
        # RFC 8514 4.2: every message has one (never NIL here), in UTC as INTERNALDATE.
        return lambda r: b"SAVEDATE " + wire.epoch_date_time(r.savedate)
    if name == "PREVIEW":
        # RFC 8970 3.3: UTF-8, quoted where the session allows it, else a literal.
        utf8 = s.rev2 or s.utf8_accept
        return lambda r: b"PREVIEW " + wire.nstring(r.preview, utf8=utf8)
    raise ValueError(f"unknown fetch item {name}")


def _flags_writer(view: SelectedView, rev2: bool) -> Writer:
    """FLAGS bytes, built once per distinct flag set (mailboxes have few of them)."""
    plain: dict[frozenset[str], bytes] = {}
    recent: dict[frozenset[str], bytes] = {}
    recent_set = view.recent

    def build(flags: frozenset[str], is_recent: bool) -> bytes:
        shown = sorted(flags)
        if is_recent:
            shown.append("\\Recent")
        return b"FLAGS " + wire.flag_list(shown)

    if rev2:
        def write(r: MessageRecord) -> bytes:
            out = plain.get(r.flags)
            if out is None:
                out = plain[r.flags] = build(r.flags, False)
            return out
        return write

    def write_rev1(r: MessageRecord) -> bytes:
        # \Recent exists only in IMAP4rev1 (RFC 3501 2.3.2).
        cache = recent if r.uid in recent_set else plain
        out = cache.get(r.flags)
        if out is None:
            out = cache[r.flags] = build(r.flags, cache is recent)
        return out

    return write_rev1


# --- content ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Stream:
    """A content item sent as it is read: its name and literal length, then the bytes."""

    head: bytes
    start: int
    length: int


class _Content:
    """Reads one message's bytes lazily: the whole file (a small one asked for several
    sections), or just the ranges asked for."""

    __slots__ = ("store", "mailbox_id", "rec", "whole", "data", "cache", "tree")

    def __init__(self, store: AccountStore, mailbox_id: int, rec: MessageRecord, whole: bool, tree: bool) -> None:
        self.store = store
        self.mailbox_id = mailbox_id
        self.rec = rec
        self.whole = whole and rec.size < _STREAM_MIN
        self.data: bytes | None = None
        self.cache: dict[tuple[int, int], bytes] = {}
        self.tree: Node | None = load_parts(rec.parts) if tree and rec.parts else None

    async def read(self, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        if self.data is None and self.whole:
            self.data = await self.store.read_message(self.mailbox_id, self.rec.uid)
        if self.data is not None:
            return self.data[start:end]
        key = (start, end)
        got = self.cache.get(key)
        if got is None:
            got = await self.store.read_range(self.mailbox_id, self.rec.uid, start, end - start)
            self.cache[key] = got
        return got


async def _body_item(body: _Body, c: _Content) -> bytes | _Stream:
    """One content item, name and value (or, for big raw content, what to stream);
    raises MessageGone or UnknownCTE."""
    rec = c.rec
    section = body.section
    if body.binary:
        try:
            data = await _binary_data(section, c)
        except BrokenContent:
            # Undecodable content in a known encoding: NIL, and size 0, like Dovecot.
            return body.name + (b" 0" if body.size_only else b" NIL")
        if body.size_only:
            return body.name + b" %d" % len(data)
        if body.partial is not None:
            off, length = body.partial
            data = data[off : off + length]
        return body.name + (b" ~{%d}\r\n" % len(data) if b"\0" in data else b" {%d}\r\n" % len(data)) + data
    span = section_range(c.tree, rec, section)
    if span is None:
        data = b""
    elif section.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        header = await c.read(*span)
        names = [h.encode("ascii") for h in section.headers]
        pick = get_header_fields if section.text == "HEADER.FIELDS" else get_header_fields_not
        data = pick(header, names)
        if body.partial is not None:
            off, length = body.partial
            data = data[off : off + length]
    else:
        start, end = span
        if body.partial is not None:
            # Only the requested window of the section is read.
            off, length = body.partial
            start, end = min(start + off, end), min(start + off + length, end)
        if end - start >= _STREAM_MIN:
            return _Stream(body.name + b" {%d}\r\n" % (end - start), start, end - start)
        data = await c.read(start, end)
    if b"\0" in data:
        data = data.replace(b"\0", b"\x80")
    return body.name + b" {%d}\r\n" % len(data) + data


async def _binary_data(section: g.Section, c: _Content) -> bytes:
    rec = c.rec
    tree = c.tree
    if not section.part:
        # BINARY[]: the header plus the decoded body of a single-part message.
        if tree is not None and tree[_KIND] == LEAF and tree[_CTE] not in _IDENTITY_CTE:
            header = await c.read(0, rec.header_size)
            return header + decode_binary(tree[_CTE], await c.read(rec.header_size, rec.size))
        return await c.read(0, rec.size)
    node = find_part(tree, section.part) if tree is not None else None
    if node is None:
        return b""
    return decode_binary(node[_CTE], await c.read(node[_BSTART], node[_BEND]))


# --- the command -----------------------------------------------------------------------


async def cmd_fetch(s: IMAPSession, cmd: g.Fetch) -> Done:
    view = s.view
    assert view is not None
    store = view.store
    verb = "UID FETCH" if cmd.uid else "FETCH"
    if not cmd.uid and not view.valid_msns(cmd.sequence_set):
        return Done("BAD", "Message sequence number out of range")
    if cmd.vanished and not s.qresync:
        return Done("BAD", "VANISHED needs ENABLE QRESYNC first")  # RFC 7162 3.2.6
    plan = _Plan(s, view, cmd)
    if plan.has_modseq:
        # RFC 7162 3.1: MODSEQ (and CHANGEDSINCE, which implies it) enables CONDSTORE.
        s.enable_condstore()
    if (
        plan.items in (["FLAGS"], ["UID", "FLAGS"])
        and cmd.changedsince is None
        and cmd.partial is None
        and not view.pending_expunge
        and not cmd.sequence_set.last_result
    ):
        return await _fetch_flags_fast(s, view, store, cmd, verb, plan)
    pairs = view.resolve(cmd.sequence_set, cmd.uid)
    if cmd.partial is not None:
        # RFC 9394 3.3: only the messages of the set in that range, counted in mailbox
        # order (negative from the last) among those the client knows, an expunge not
        # yet reported included; CHANGEDSINCE then filters those (3.4).
        pairs = pairs[cmd.partial.window(len(pairs))]
    if plan.uidonly:
        pairs = [(u, u) for _, u in pairs]  # the UIDFETCH responses' numbers are UIDs
    gone = view.pending_expunge
    # RFC 2180 4.1.2: messages another session expunged (not yet reported) return nothing;
    # like Dovecot the command still succeeds, flagged EXPUNGEISSUED.
    expunge_issued = bool(gone) and any(u in gone for _, u in pairs)
    if expunge_issued:
        pairs = [(m, u) for m, u in pairs if u not in gone]
    mailbox_id = view.mailbox.id
    if cmd.vanished and cmd.changedsince is not None:
        await _send_vanished(s, view, store, cmd)
    if not pairs:
        return _done(verb, expunge_issued)
    unknown_cte = False
    s.progress.total = len(pairs)
    # A part of the messages at a time: reading 100,000 index rows in one go would hold
    # the event loop (and every other session) for a third of a second.
    for start in range(0, len(pairs), _FETCH_ROWS):
        part = pairs[start : start + _FETCH_ROWS]
        recs = await store.fetch(mailbox_id, [u for _, u in part], plan.fields)
        if plan.make_previews:
            recs = await _with_previews(s, store, mailbox_id, recs)
        if len(recs) != len(part):
            expunge_issued = True  # expunged in the store, not yet known to this view
            msn_of = {u: m for m, u in part}
            rows = [(msn_of[r.uid], r) for r in recs]
        else:
            rows = [(m, r) for (m, _), r in zip(part, recs, strict=True)]
        if cmd.changedsince is not None:
            since = cmd.changedsince
            rows = [(m, r) for m, r in rows if r.modseq > since]
        seen_now: set[int] = set()
        if plan.sets_seen:
            seen_now = await _set_seen(view, store, [r for _, r in rows if "\\Seen" not in r.flags])
        if plan.bodies:
            try:
                cte, vanished = await _send_with_content(s, plan, view, store, rows, seen_now, start)
            except StreamBroken:
                return Done("NO", "Reading a message failed")  # not sent: the connection ends
            unknown_cte = unknown_cte or cte
            expunge_issued = expunge_issued or vanished
        else:
            await _send_index_rows(s, plan, rows, start)
        if start + _FETCH_ROWS < len(pairs):
            await s.flush()  # the last part's answers go out with the tagged one, at once
    if unknown_cte:
        # RFC 3516 4.3: a CTE the server cannot decode fails the command.
        return Done("NO", "Unknown Content-Transfer-Encoding", "UNKNOWN-CTE")
    return _done(verb, expunge_issued)


async def _with_previews(
    s: IMAPSession, store: AccountStore, mailbox_id: int, recs: list[MessageRecord]
) -> list[MessageRecord]:
    """*recs* with a PREVIEW each: those the index lacks are made now (RFC 8970 3.2: no
    NIL without LAZY); messages expunged meanwhile are left out."""
    lacking = [r.uid for r in recs if r.preview is None]
    if not lacking:
        return recs
    made = await store.make_previews(mailbox_id, lacking)
    # RFC 8970 8: who makes the server generate previews is logged.
    log.info("imap(%s): %d previews made from message files", s.user, len(made))
    out = []
    for r in recs:
        if r.preview is None:
            r.preview = made.get(r.uid)
            if r.preview is None:
                continue
        out.append(r)
    return out


async def send_new(s: IMAPSession, uids: Sequence[int], attributes: tuple[g.FetchAttribute, ...]) -> None:
    """RFC 5465 5.2: the fetch-atts NOTIFY names, for messages that just arrived in the
    selected mailbox, as one unsolicited FETCH each (UID first, as UID FETCH answers)."""
    await cmd_fetch(s, g.Fetch("*", g.SequenceSet.of(uids), attributes, uid=True))


async def _fetch_flags_fast(
    s: IMAPSession, view: SelectedView, store: AccountStore, cmd: g.Fetch, verb: str, plan: _Plan
) -> Done:
    """`FETCH 1:* (FLAGS)` and `UID FETCH 1:* (FLAGS)`, the commands clients resync with,
    answered from the store's flag table and formatted in bulk, with one `FLAGS (...)`
    text per distinct flag set."""
    uids = view.uids
    n = len(uids)
    if not n:
        return _done(verb, False)
    last = uids[-1]
    if cmd.uid:
        # Messages the view has not announced yet have higher UIDs: leave them out.
        uid_ranges = [(lo, min(hi, last)) for lo, hi in cmd.sequence_set.resolve(last) if lo <= last]
    else:
        uid_ranges = [(uids[lo - 1], uids[hi - 1]) for lo, hi in cmd.sequence_set.resolve(n) if lo <= n]
    s.progress.total = sum(bisect.bisect_right(uids, hi) - bisect.bisect_left(uids, lo) for lo, hi in uid_ranges)
    table = await store.flag_table(view.mailbox.id)
    tuids, tids = table.uids, table.flag_ids
    shown = [view.shown_flags(0, t.split(), True) for t in table.texts]
    plain = [wire.flag_list(f) for f in shown]
    recent = [wire.flag_list([*f, "\\Recent"]) for f in shown]
    recent_set = view.recent if not s.rev2 else RecentSet()
    with_uid = plan.items[0] == "UID"
    missing = False
    count = size = 0
    for lo, hi in uid_ranges:
        k, end = bisect.bisect_left(uids, lo), bisect.bisect_right(uids, hi)
        i, j = bisect.bisect_left(tuids, lo), bisect.bisect_right(tuids, hi)
        msns: Sequence[int]
        if end - k == j - i and uids[k:end] == tuids[i:j]:
            # The same messages (the usual case): message k + 1 + x is the table's row i + x.
            msns, ruids, rids = range(k + 1, end + 1), tuids[i:j], tids[i:j]
        else:  # the view still shows messages expunged meanwhile (reported later)
            msns, ruids, rids = _common_rows(uids, k, end, tuids, tids, i, j)
            missing = missing or len(msns) < end - k
        if plan.uidonly:
            msns = ruids  # UIDFETCH responses are numbered by UID
        for a in range(0, len(msns), _BATCH_ROWS):
            b = min(a + _BATCH_ROWS, len(msns))
            data = b"".join(
                _flag_lines(plan.head, msns[x:y], ruids[x:y], rids[x:y], recent if is_recent else plain, with_uid)
                for x, y, is_recent in recent_set.segments(ruids, a, b)
            )
            size += len(data)
            count += b - a
            s.send(data)
            await s.flush()
            await s.progress.step(count)
    s.stats["fetch"] += count
    s.stats["fetch_bytes"] += size
    return _done(verb, missing)


def _flag_lines(
    head: bytes, msns: Sequence[int], uids: Sequence[int], ids: Sequence[int], flags: list[bytes], with_uid: bool
) -> bytes:
    shown = map(flags.__getitem__, ids)
    if with_uid:
        return b"".join(map((head + b"UID %d FLAGS %s)\r\n").__mod__, zip(msns, uids, shown, strict=True)))
    return b"".join(map((head + b"FLAGS %s)\r\n").__mod__, zip(msns, shown, strict=True)))


def _common_rows(
    uids: Sequence[int], k: int, end: int, tuids: Sequence[int], tids: Sequence[int], i: int, j: int
) -> tuple[list[int], list[int], list[int]]:
    """(message number, UID, flag id) of the messages both the view (its positions k to
    end) and the table (its rows i to j) hold."""
    msns, ruids, rids = [], [], []
    while k < end and i < j:
        if uids[k] < tuids[i]:
            k += 1
        elif uids[k] > tuids[i]:
            i += 1
        else:
            msns.append(k + 1)
            ruids.append(uids[k])
            rids.append(tids[i])
            k += 1
            i += 1
    return msns, ruids, rids


def _done(verb: str, expunge_issued: bool) -> Done:
    if expunge_issued:
        return Done("OK", "Some messages were already expunged", "EXPUNGEISSUED")
    return Done(text=f"{verb} completed")


async def _set_seen(view: SelectedView, store: AccountStore, recs: list[MessageRecord]) -> set[int]:
    """RFC 9051 6.4.5: a non-peek body fetch sets \\Seen; the new flags go out in the
    same FETCH response, so the change is not reported again (own_modseqs)."""
    if not recs:
        return set()
    changed = await store.store_flags(view.mailbox.id, [r.uid for r in recs], "add", ["\\Seen"])
    by_uid = {m.uid: m for m in changed}
    for r in recs:
        m = by_uid.get(r.uid)
        if m is not None:
            r.flags = m.flags
            r.modseq = m.modseq
    view.own_modseqs.update(m.modseq for m in changed)
    return set(by_uid)


def _extra_items(plan: _Plan, view: SelectedView, r: MessageRecord) -> list[bytes]:
    """Items a FETCH that set \\Seen adds for that message: FLAGS (RFC 9051 6.4.5), and
    with CONDSTORE enabled also UID and MODSEQ (RFC 7162 3.2.4)."""
    out = []
    if not plan.has_flags:
        out.append(plan.flags_writer(r))
    if view.condstore:
        if not plan.has_uid and not plan.uidonly:
            out.append(b"UID %d" % r.uid)
        if not plan.has_modseq:
            out.append(b"MODSEQ (%d)" % r.modseq)
    return out


async def _send_index_rows(s: IMAPSession, plan: _Plan, rows: list[tuple[int, MessageRecord]], done: int) -> None:
    """Rows made of index items only (no body item, so no implicit \\Seen either).

    This is the `FETCH 1:* (FLAGS)` path: one comprehension per chunk, with the common
    shapes (UID first, one or two items) formatted in a single %-operation per row.
    """
    writers = [w for w in plan.index_writers if w is not None]
    uid_first = plan.items[0] == "UID"
    if uid_first:
        writers = writers[1:]
    head = plan.head
    uid_alone, with_uid, with_one = head + b"UID %d)\r\n", head + b"UID %d %s)\r\n", head + b"%s)\r\n"
    size = 0
    for start in range(0, len(rows), _BATCH_ROWS):
        batch = rows[start : start + _BATCH_ROWS]
        if uid_first and not writers:
            lines = [uid_alone % (m, r.uid) for m, r in batch]
        elif uid_first and len(writers) == 1:
            w = writers[0]
            lines = [with_uid % (m, r.uid, w(r)) for m, r in batch]
        elif uid_first:
            lines = [with_uid % (m, r.uid, b" ".join([w(r) for w in writers])) for m, r in batch]
        elif len(writers) == 1:
            w = writers[0]
            lines = [with_one % (m, w(r)) for m, r in batch]
        else:
            lines = [with_one % (m, b" ".join([w(r) for w in writers])) for m, r in batch]
        data = b"".join(lines)
        size += len(data)
        s.send(data)
        await s.flush()
        await s.progress.step(done + start + len(batch))
    s.stats["fetch"] += len(rows)
    s.stats["fetch_bytes"] += size


async def _send_with_content(
    s: IMAPSession,
    plan: _Plan,
    view: SelectedView,
    store: AccountStore,
    rows: list[tuple[int, MessageRecord]],
    seen_now: set[int],
    done: int,
) -> tuple[bool, bool]:
    """Rows that need message content (*done* rows of the command came before them).
    Returns whether a BINARY item hit an unknown Content-Transfer-Encoding and whether a
    message file had vanished; either way that message gets no response."""
    mailbox_id = view.mailbox.id
    chunk: list[bytes] = []
    chunk_size = 0
    unknown_cte = vanished = False
    for i, (m, r) in enumerate(rows):
        if s.progress.due():
            # Reading content can be slow: a notice between two whole responses.
            if chunk:
                s.send(b"".join(chunk))
                s.stats["fetch"] += len(chunk)
                s.stats["fetch_bytes"] += chunk_size
                chunk, chunk_size = [], 0
            await s.progress.step(done + i)
        c = _Content(store, mailbox_id, r, plan.read_whole, plan.needs_tree)
        items: list[bytes | _Stream] = []
        try:
            for item, writer in zip(plan.items, plan.index_writers, strict=True):
                if writer is not None:
                    items.append(writer(r))
                else:
                    assert isinstance(item, _Body)
                    items.append(await _body_item(item, c))
        except MessageGone:
            vanished = True
            continue
        except UnknownCTE:
            unknown_cte = True
            if r.uid not in seen_now:
                continue
            # \Seen was set already and is not echoed later: report the flags alone.
            flags = [plan.flags_writer(r)]
            if view.condstore:
                flags += [b"MODSEQ (%d)" % r.modseq] if plan.uidonly else [b"UID %d" % r.uid, b"MODSEQ (%d)" % r.modseq]
            line = (plan.head + b"%s)\r\n") % (m, b" ".join(flags))
            chunk.append(line)
            chunk_size += len(line)
            continue
        if r.uid in seen_now:
            items += _extra_items(plan, view, r)
        if any(isinstance(i, _Stream) for i in items):
            if chunk:
                s.send(b"".join(chunk))
                chunk, chunk_size = [], 0
            try:
                sent = await _stream_response(s, store, mailbox_id, plan.head % m, r.uid, items)
            except MessageGone:
                vanished = True
                continue
            s.stats["fetch"] += 1
            s.stats["fetch_bytes"] += sent
            continue
        line = plan.head % m + b" ".join(i for i in items if isinstance(i, bytes)) + b")\r\n"
        chunk.append(line)
        chunk_size += len(line)
        if len(chunk) >= _BATCH_ROWS or chunk_size >= _BATCH_BYTES:
            s.send(b"".join(chunk))
            await s.flush()
            s.stats["fetch"] += len(chunk)
            s.stats["fetch_bytes"] += chunk_size
            chunk, chunk_size = [], 0
    if chunk:
        s.send(b"".join(chunk))
        s.stats["fetch"] += len(chunk)
        s.stats["fetch_bytes"] += chunk_size
    return unknown_cte, vanished


async def _stream_response(
    s: IMAPSession, store: AccountStore, mailbox_id: int, head: bytes, uid: int, items: list[bytes | _Stream]
) -> int:
    """One FETCH response whose big content goes out as it is read. Every file is opened
    before the first byte is sent (MessageGone then means no response at all); a read that
    fails later leaves the response cut, so the connection is closed."""
    async with contextlib.AsyncExitStack() as opened:
        pieces = {}
        for i, item in enumerate(items):
            if isinstance(item, _Stream):
                pieces[i] = await opened.enter_async_context(
                    store.read_chunks(mailbox_id, uid, item.start, item.length)
                )
        sent = 0
        s.send(head)
        for i, item in enumerate(items):
            if i:
                s.send(b" ")
            if isinstance(item, bytes):
                s.send(item)
                sent += len(item)
                continue
            s.send(item.head)
            try:
                async for piece in pieces[i]:
                    # Only literal8 (BINARY) may carry NULs (see the module docstring).
                    s.send(piece.replace(b"\0", b"\x80") if b"\0" in piece else piece)
                    sent += len(piece)
                    await s.flush()
            except StoreError as e:
                log.error("imap(%s): reading UID %d failed mid-response: %s", s.user, uid, e)
                s.closing = True
                raise StreamBroken() from e
        s.send(b")\r\n")
        await s.flush()
        return sent


class StreamBroken(Exception):
    """Content could not be read after its response began: the connection ends."""


async def _send_vanished(s: IMAPSession, view: SelectedView, store: AccountStore, cmd: g.Fetch) -> None:
    """UID FETCH ... (CHANGEDSINCE n VANISHED): expunged UIDs of the set, before the FETCH
    responses (RFC 7162 3.2.6)."""
    assert cmd.changedsince is not None
    if cmd.sequence_set.last_result:
        return
    cs = await store.changes_since(view.mailbox.id, cmd.changedsince)
    star = max(view.uids[-1] if view.uids else 0, view.uidnext - 1)
    uids = [u for u in cs.expunged if cmd.sequence_set.contains(u, star)]
    if uids:
        s.send(b"* VANISHED (EARLIER) " + wire.sequence_set(uids) + b"\r\n")
