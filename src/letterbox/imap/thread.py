"""THREAD and UID THREAD (RFC 5256): ORDEREDSUBJECT and REFERENCES.

Messages are chosen by the SEARCH machinery (see sort.select); what threading needs comes
from the index: the sent date, the decoded Subject, the Message-ID and the IDs the message
refers to (kept at delivery; read from the header of messages indexed before that was
kept). The REFERENCES steps below are numbered as in RFC 5256. The answer is kept for the
next THREAD of the same messages (see sortcache).

The thread tree lives in parallel lists indexed by node number (parent, first and last
child, next and previous sibling), not in an object per node: 100,000 messages then cost
the garbage collector nothing, links are undone in O(1), and trees are walked without
recursion (a reply chain may be thousands deep). Long loops let other sessions run.
"""

from __future__ import annotations

import asyncio
import re
from array import array
from collections.abc import Sequence

from ..mime.msgid import first_message_id, thread_references
from ..store.api import AccountStore, FetchField, MessageGone
from .grammar.sort import Thread
from .search import _header_fields
from .session import ONLY_SELECTED, Done, IMAPSession, Spec
from .sort import CHUNK, Row, SubjectKeys, load, msns, select
from .sortcache import RESULTS

ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")
# Header reads (messages indexed without their references) between two yields.
_READS_PER_YIELD = 100
# A Message-ID as nearly all are written: <id-left@id-right>, nothing to normalize.
_PLAIN_ID = re.compile(r"<([^<>\s\"\\()@]+@[^<>\s\"\\()@]+)>")


class Messages:
    """What threading knows of the searched messages, in mailbox order (index = order)."""

    def __init__(self, numbers: Sequence[int]) -> None:
        self.numbers = numbers
        """What the response shows: MSNs, or UIDs for UID THREAD."""
        self.dates: list[float] = []
        self.subjects: list[str] = []
        """Base subjects, case-mapped."""
        self.replies: list[bool] = []
        self.ids: list[str | None] = []
        self.references: list[str] = []
        """Space-separated IDs (see mime.msgid.thread_references)."""

    def add(
        self, date: float, subject: str, reply: bool = False, message_id: str | None = None,
        references: str = "",
    ) -> None:
        self.dates.append(date)
        self.subjects.append(subject)
        self.replies.append(reply)
        self.ids.append(message_id)
        self.references.append(references)

    def ranks(self) -> list[int]:
        """Each message's place in sent-date order, ties by mailbox order (RFC 5256 2.2)."""
        by_date = sorted(range(len(self.dates)), key=self.dates.__getitem__)
        rank = [0] * len(by_date)
        for r, m in enumerate(by_date):
            rank[m] = r
        return rank


class Forest:
    """Thread trees: node *k* shows message msg[k], or is a dummy (-1)."""

    def __init__(self) -> None:
        self.msg: list[int] = []
        self.parent: list[int] = []
        self.first: list[int] = []
        self.last: list[int] = []
        self.next: list[int] = []
        self.prev: list[int] = []
        self.rank: list[int] = []
        """Sort position: the message's rank; a dummy's is its first child's."""

    def node(self, msg: int = -1, rank: int = -1) -> int:
        self.msg.append(msg)
        self.rank.append(rank)
        self.parent.append(-1)
        self.first.append(-1)
        self.last.append(-1)
        self.next.append(-1)
        self.prev.append(-1)
        return len(self.msg) - 1

    def link(self, p: int, c: int) -> None:
        """*c* becomes *p*'s last child."""
        self.parent[c] = p
        tail = self.last[p]
        self.prev[c] = tail
        self.next[c] = -1
        if tail >= 0:
            self.next[tail] = c
        else:
            self.first[p] = c
        self.last[p] = c

    def unlink(self, c: int) -> None:
        p = self.parent[c]
        if p < 0:
            return
        a, b = self.prev[c], self.next[c]
        if a >= 0:
            self.next[a] = b
        else:
            self.first[p] = b
        if b >= 0:
            self.prev[b] = a
        else:
            self.last[p] = a
        self.parent[c] = self.prev[c] = self.next[c] = -1

    def children(self, p: int) -> list[int]:
        out = []
        c = self.first[p]
        nxt = self.next
        while c >= 0:
            out.append(c)
            c = nxt[c]
        return out

    def set_children(self, p: int, kids: list[int]) -> None:
        self.first[p] = self.last[p] = -1
        for c in kids:
            self.link(p, c)

    def is_ancestor(self, a: int, b: int) -> bool:
        """Whether *a* is *b* or one of its ancestors."""
        if a == b:
            return True
        if self.first[a] < 0:
            return False
        parent = self.parent
        p = parent[b]
        while p >= 0:
            if p == a:
                return True
            p = parent[p]
        return False

    def sort_children(self, p: int) -> None:
        """Children by rank; a dummy takes its first child's rank."""
        first = self.first[p]
        if first >= 0 and self.next[first] >= 0:
            kids = self.children(p)
            kids.sort(key=self.rank.__getitem__)
            self.set_children(p, kids)
        if self.msg[p] < 0 and self.first[p] >= 0:
            self.rank[p] = self.rank[self.first[p]]

    async def preorder(self, roots: list[int]) -> list[int]:
        out: list[int] = []
        stack = list(roots)
        first, nxt = self.first, self.next
        while stack:
            k = stack.pop()
            out.append(k)
            if len(out) % CHUNK == 0:
                await asyncio.sleep(0)
            c = first[k]
            while c >= 0:
                stack.append(c)
                c = nxt[c]
        return out


async def references(m: Messages) -> tuple[Forest, list[int]]:
    """RFC 5256 REFERENCES: the threads of *m*, sorted: (the forest, its top nodes)."""
    f = Forest()
    rank = m.ranks()
    by_id: dict[str, int] = {}
    # (1) link each message and its references
    msg, parent, ids, all_refs = f.msg, f.parent, m.ids, m.references
    new, link, is_ancestor = f.node, f.link, f.is_ancestor
    for j in range(len(m.dates)):
        if j % CHUNK == CHUNK - 1:
            await asyncio.sleep(0)
        node = -1
        mid = ids[j]
        if mid is not None:
            node = by_id.get(mid, -1)
            if node < 0:
                node = by_id[mid] = new(j, rank[j])
            elif msg[node] >= 0:
                node = -1  # a duplicate Message-ID: the later message gets a unique one
            else:
                msg[node] = j
                f.rank[node] = rank[j]
        if node < 0:
            node = new(j, rank[j])
        # (1.A) each reference the parent of the next, unless linked already or a loop
        prev = -1
        refs = all_refs[j]
        if refs:
            for ref in refs.split():
                r = by_id.get(ref, -1)
                if r < 0:
                    r = by_id[ref] = new()
                if prev >= 0 and parent[r] < 0 and not is_ancestor(r, prev):
                    link(prev, r)
                prev = r
        # (1.B) the last reference is the parent, replacing any link made before
        if parent[node] != prev:
            f.unlink(node)
            if prev >= 0 and not is_ancestor(node, prev):
                link(prev, node)
    await asyncio.sleep(0)
    # (2) the nodes without a parent are the threads' heads
    roots = [k for k in range(len(f.msg)) if f.parent[k] < 0]
    # (3) prune dummies, bottom-up: one gives way to its children (at the top only when
    # it has one), and goes when it has none
    order = await f.preorder(roots)
    for i, k in enumerate(reversed(order)):
        if i % CHUNK == CHUNK - 1:
            await asyncio.sleep(0)
        if f.first[k] < 0:
            continue
        kids = f.children(k)
        if all(f.msg[c] >= 0 for c in kids):
            continue
        kept: list[int] = []
        for c in kids:
            if f.msg[c] >= 0:
                kept.append(c)
            else:
                kept.extend(f.children(c))
        f.set_children(k, kept)
    top: list[int] = []
    for i, k in enumerate(roots):
        if i % CHUNK == CHUNK - 1:
            await asyncio.sleep(0)
        if f.msg[k] < 0:
            first = f.first[k]
            if first < 0:
                continue
            if f.next[first] < 0:
                f.unlink(first)
                top.append(first)
                continue
        top.append(k)
    # (4) the heads by sent date, a dummy by its first child's
    for k in top:
        if f.msg[k] < 0:
            f.sort_children(k)
    top.sort(key=f.rank.__getitem__)
    await asyncio.sleep(0)
    # (5) threads whose heads share a base subject are gathered
    top = await _merge_subjects(f, m, top)
    await asyncio.sleep(0)
    # (6) every set of siblings by sent date, children before their parents
    order = await f.preorder(top)
    for i, k in enumerate(reversed(order)):
        if i % CHUNK == CHUNK - 1:
            await asyncio.sleep(0)
        f.sort_children(k)
    top.sort(key=f.rank.__getitem__)
    return f, top


async def _merge_subjects(f: Forest, m: Messages, top: list[int]) -> list[int]:
    def subject(k: int) -> str:
        j = f.msg[k] if f.msg[k] >= 0 else f.msg[f.first[k]]
        return m.subjects[j]

    def reply(k: int) -> bool:
        return m.replies[f.msg[k]]

    # (5.B) one head per base subject: a dummy before a message, a message that is not a
    # reply or forward before one that is
    table: dict[str, int] = {}
    for i, k in enumerate(top):
        if i % CHUNK == CHUNK - 1:
            await asyncio.sleep(0)
        s = subject(k)
        if not s:
            continue
        old = table.get(s)
        if old is None or (f.msg[old] >= 0 and (f.msg[k] < 0 or (reply(old) and not reply(k)))):
            table[s] = k
    # (5.C) the other heads join the table's
    out = list(top)
    place = {k: i for i, k in enumerate(out)}
    joined: set[int] = set()
    for i, k in enumerate(top):
        if i % CHUNK == CHUNK - 1:
            await asyncio.sleep(0)
        s = subject(k)
        if not s:
            continue
        t = table[s]
        if t == k:
            continue
        joined.add(k)
        if f.msg[t] < 0 and f.msg[k] < 0:
            for c in f.children(k):
                f.link(t, c)
        elif f.msg[t] < 0 or (f.msg[k] >= 0 and reply(k) and not reply(t)):
            f.link(t, k)
        else:
            # a new dummy takes the table head's place, with both below it
            d = f.node()
            out[place[t]] = d
            place[d] = place[t]
            f.link(d, t)
            f.link(d, k)
            table[s] = d
    return [k for k in out if k not in joined]


async def ordered_subject(m: Messages) -> tuple[Forest, list[int]]:
    """RFC 5256 ORDEREDSUBJECT: messages by base subject then sent date, a thread per
    base subject (the first message its head, the others its children), the threads by
    their first message's sent date."""
    f = Forest()
    rank = m.ranks()
    by_date = sorted(range(len(rank)), key=rank.__getitem__)
    await asyncio.sleep(0)
    ordered = sorted(by_date, key=m.subjects.__getitem__)
    await asyncio.sleep(0)
    top: list[int] = []
    head = -1
    for i, j in enumerate(ordered):
        if i % CHUNK == CHUNK - 1:
            await asyncio.sleep(0)
        k = f.node(j, rank[j])
        if head >= 0 and m.subjects[f.msg[head]] == m.subjects[j]:
            f.link(head, k)
        else:
            head = k
            top.append(k)
    top.sort(key=f.rank.__getitem__)
    return f, top


OPEN, CLOSE, SPACE = -1, -2, -3
_MARKS = {OPEN: "(", CLOSE: ")", SPACE: " "}


async def tokens(f: Forest, top: list[int]) -> array:
    """The THREAD response as tokens: a message's index in mailbox order, or OPEN, CLOSE
    or SPACE. Each thread is a list of its members (RFC 5256 thread-list); a message with
    one child continues the list, one with more nests a list per child; a dummy shows
    only its children's lists."""
    out = array("q")
    first, nxt, msg = f.first, f.next, f.msg
    stack = [CLOSE - 1 - k for k in reversed(top)]  # nodes are pushed as CLOSE - 1 - k
    lists = 0
    while stack:
        item = stack.pop()
        if item == CLOSE:
            out.append(CLOSE)
            continue
        k = CLOSE - 1 - item
        lists += 1
        if lists % CHUNK == 0:
            await asyncio.sleep(0)
        out.append(OPEN)
        stack.append(CLOSE)
        if msg[k] >= 0:
            out.append(msg[k])
            while first[k] >= 0 and nxt[first[k]] < 0:
                k = first[k]
                out.append(SPACE)
                out.append(msg[k])
            if first[k] >= 0:
                out.append(SPACE)
        kids = f.children(k)
        kids.reverse()
        stack.extend(CLOSE - 1 - c for c in kids)
    return out


async def text(toks: array, numbers: Sequence[int]) -> bytes:
    """Tokens as the response shows them, message indexes as *numbers*."""
    strs = list(map(str, numbers))
    marks = _MARKS
    pieces: list[str] = []
    for start in range(0, len(toks), 8 * CHUNK):
        pieces.extend([strs[t] if t >= 0 else marks[t] for t in toks[start : start + 8 * CHUNK]])
        await asyncio.sleep(0)
    return "".join(pieces).encode("ascii")


async def render(f: Forest, top: list[int], numbers: Sequence[int]) -> bytes:
    return await text(await tokens(f, top), numbers)


# --- the command ---------------------------------------------------------------------------------


def message_id(text: str | None) -> str | None:
    """The normalized ID of a stored Message-ID field."""
    if not text:
        return None
    m = _PLAIN_ID.fullmatch(text)
    if m is not None:
        return m.group(1)
    return first_message_id(text.encode("utf-8"))


async def _header_references(store: AccountStore, mailbox_id: int, uid: int) -> str:
    """References of a message the index has none for, from its header."""
    (row,) = await store.fetch_values(mailbox_id, [uid], ("header_size",)) or [(uid, 0)]
    try:
        block = await store.read_range(mailbox_id, uid, 0, row[1] or 0)
    except MessageGone:
        return ""
    refs: bytes | None = None
    irt: bytes | None = None
    for name, value in _header_fields(block):
        if name == b"references":
            refs = value
        elif name == b"in-reply-to":
            irt = value
    return thread_references(refs, irt)


async def messages_for(
    s: IMAPSession, uids: list[int], numbers: Sequence[int], with_references: bool
) -> Messages:
    view = s.view
    assert view is not None
    store = view.store
    mailbox_id = view.mailbox.id
    fields: list[FetchField] = ["sent_date", "internaldate", "subject"]
    if with_references:
        fields += ["message_id", "references"]
    rows: list[Row] = await load(store, mailbox_id, uids, fields, s.progress)
    subject = SubjectKeys()
    out = Messages(numbers)
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        out.dates.extend([r[1] if r[1] is not None else r[2] or 0.0 for r in chunk])
        keys = [subject(r[3]) for r in chunk]
        out.subjects.extend([k[0] for k in keys])
        out.replies.extend([k[1] for k in keys])
        if with_references:
            out.ids.extend([message_id(r[4]) for r in chunk])
            out.references.extend([r[5] or "" for r in chunk])
        await asyncio.sleep(0)
    if not with_references:
        out.ids = [None] * len(rows)
        out.references = [""] * len(rows)
        return out
    # Messages indexed before references were kept (None; a message expunged meanwhile
    # has no internal date either): from their header.
    unknown = [j for j, r in enumerate(rows) if r[5] is None and r[2] is not None]
    for n, j in enumerate(unknown):
        if n % _READS_PER_YIELD == _READS_PER_YIELD - 1:
            await s.progress.step(n, len(unknown))
        out.references[j] = await _header_references(store, mailbox_id, rows[j][0])
    return out


async def cmd_thread(s: IMAPSession, cmd: Thread) -> Done:
    view = s.view
    assert view is not None
    verb = "UID THREAD" if cmd.uid else "THREAD"
    if cmd.algorithm not in ALGORITHMS:
        return Done("NO", f"Unsupported threading algorithm {cmd.algorithm}")
    chosen = await select(s, cmd.charset, cmd.key)
    if isinstance(chosen, Done):
        return chosen
    uids = chosen.uids
    if cmd.uid:
        numbers: Sequence[int] = uids
    else:
        numbers = msns(view, uids)
        if len(numbers) != len(uids):  # every UID searched is in the view: not expected
            uids = [u for u in uids if view.msn(u) is not None]
    store = view.store
    key = (view.mailbox.id, view.mailbox.uidvalidity, "THREAD", cmd.algorithm)
    toks = RESULTS.get(store, key, uids)
    if toks is None:
        messages = await messages_for(s, uids, numbers, cmd.algorithm == "REFERENCES")
        if cmd.algorithm == "REFERENCES":
            forest, top = await references(messages)
        else:
            forest, top = await ordered_subject(messages)
        toks = await tokens(forest, top)
        RESULTS.put(store, key, uids, toks)
    line = b"* THREAD"
    if toks:
        line += b" " + await text(toks, numbers)
    s.send(line + b"\r\n")
    return Done(text=f"{verb} completed")


COMMANDS = {
    # No EXPUNGE while THREAD answers (RFC 5256 3); UID THREAD may have them.
    "THREAD": Spec(cmd_thread, ONLY_SELECTED, may_expunge=False),
}
