"""Whole-server fuzzing: seeded random and mutated command streams for IMAP, POP3, LMTP
and SMTP, sent over raw sockets to a running Letterbox in a chosen protocol state, and
the checks made after each stream.

A stream is rebuilt from its id ("case:seed:index") alone, so every failure can be
replayed with ``tools/fuzz_server.py --replay ID``. After each stream: no reply shows an
internal error, the server process lives, the same connection (or, once it is closed
or legitimately waiting for literal data, a new one) answers a good command, and the
server's log has no traceback and no ERROR line.
"""

from __future__ import annotations

import base64
import collections
import functools
import itertools
import random
import re
import select
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.conftest import ServerProcess

PASSWORD = "pw"
IMAP_USER = "fuzz@example.com"
POP3_USER = "pop@example.com"
RCPT_USER = "rcpt@example.com"

SERVER_OPTIONS: dict[str, object] = {
    "failure_delay": 0,  # wrong passwords are part of the corpus: no auth penalty
    "max_failures": 1_000_000,
    "login_deadline": 600,
}
"""ServerProcess options for a fuzzed server."""

CORPUS_DIR = Path(__file__).resolve().parent.parent / "mime" / "corpus"


def _load_messages() -> list[bytes]:
    msgs = [p.read_bytes() for p in sorted(CORPUS_DIR.glob("*.eml"))]
    msgs.append(
        b"From: A <a@fuzz.test>\r\nTo: rcpt@example.com\r\nSubject: plain\r\n"
        b"Message-ID: <1@fuzz.test>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nHello\r\n.dot\r\n"
    )
    return [m for m in msgs if m]


MESSAGES = _load_messages()


# --- building blocks ---------------------------------------------------------------------

_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')

INTERESTING = [
    b"\x00", b"\r", b"\n", b"\r\n", b"\xff", b"\x80", b"\xc3", b"{", b"}", b"(", b")",
    b"[", b"]", b"<", b">", b'"', b"\\", b"*", b"%", b" ", b"~", b"+", b"$", b":", b",",
    b".", b"\t", b"\x7f", b"{0}\r\n", b"{1+}\r\n", b"NIL", b"-", b"=", b"\r\n.\r\n",
]
HUGE = [
    b"0", b"-1", b"4294967295", b"4294967296", b"2147483648", b"9223372036854775807",
    b"9223372036854775808", b"18446744073709551616", b"99999999999999999999999999999999",
    b"00000000000000000001", b"1" * 60,
]
MAX_DATA = 256 * 1024
"""Bytes a mutation may grow a command to."""
MAX_STREAM = 1024 * 1024


def big_message(rng: random.Random) -> bytes:
    """A message beyond the 256 KB at which uploads are spooled to disk."""
    size = rng.choice([256 * 1024 - 100, 256 * 1024 + 1, 300_000, 700_000])
    head = b"From: big@fuzz.test\r\nSubject: big\r\nContent-Type: text/plain\r\n\r\n"
    if rng.random() < 0.2:
        return head + b"x" * size  # one line
    line = bytes(rng.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ.") for _ in range(76)) + b"\r\n"
    return head + line * (size // len(line))


def pick(rng: random.Random, items: list[bytes]) -> bytes:
    return items[rng.randrange(len(items))]


def quoted(value: bytes) -> bytes:
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def literal(rng: random.Random, value: bytes) -> bytes:
    kind = rng.random()
    plus = b"+" if kind < 0.5 else b""
    return b"{%d%s}\r\n" % (len(value), plus) + value


def astring(rng: random.Random, value: bytes) -> bytes:
    r = rng.random()
    if r < 0.55 and _ATOM.fullmatch(value):
        return value
    if r < 0.85 and b"\r" not in value and b"\n" not in value:
        return quoted(value)
    return literal(rng, value)


# --- IMAP corpus -------------------------------------------------------------------------

MAILBOXES = [
    b"INBOX", b"inbox", b"Archive", b"Fuzz", b"Fuzz/Sub", b"Fuzz/Sub/Deep", b"Trash", b"Sent",
    b"with space", b"&AOk-t&AOk-", b"", b"Nope", b"a/b/c/d/e/f", b"INBOX/child",
    b"\xc3\xa9t\xc3\xa9", b"&Jjo-", b"/", b"..", b"Fuzz/", b"&", b"&-", b"&AOk",
    b"Shared", b"Shared/rcpt@example.com/INBOX", b"Shared/fuzz@example.com/Fuzz", b"Shared/x",
]
KEEP_SMALL = ["INBOX", "Archive", "Fuzz", "Fuzz/Sub", "Trash", "Sent", "with space"]
"""Mailboxes the fuzzer fills; kept below a few hundred messages between streams."""
PATTERNS = [b"*", b"%", b"Fuzz/%", b"*/*", b"%%%%x", b"INBOX*", b"", b"&AOk-*", b"*%" * 20]
FLAGS = [
    b"\\Seen", b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Draft", b"$Forwarded", b"$Junk",
    b"NonJunk", b"$MDNSent", b"kw", b"kw",
]
ODD_FLAGS = [b"\\Recent", b"\\*", b"\\Bogus", b"\\", b"$"]
SEQS = [
    b"1", b"2", b"1:*", b"*", b"1:3", b"2,4:6,8", b"$", b"3:1", b"*:2", b"1:4294967295",
    b"4294967295", b"1,1,1", b"100", b"1:2,2:3",
]
FETCH_ATOMS = [
    b"ALL", b"FAST", b"FULL", b"BODY", b"BODYSTRUCTURE", b"ENVELOPE", b"FLAGS", b"INTERNALDATE",
    b"RFC822", b"RFC822.HEADER", b"RFC822.SIZE", b"RFC822.TEXT", b"UID", b"MODSEQ",
]
SECTION_TEXTS = [
    b"", b"HEADER", b"TEXT", b"MIME", b"HEADER.FIELDS (Subject From)",
    b"HEADER.FIELDS.NOT (Received To Date)", b'HEADER.FIELDS ("Message-ID" CC)',
    b"HEADER.FIELDS ()", b"HEADER.FIELDS (" + b"X " * 40 + b")",
]
SECTION_PARTS = [b"", b"1", b"2", b"1.1", b"1.2.3", b"3.1", b"99", b"1.1.1.1.1.1.1.1", b"0"]
SEARCH_SIMPLE = [
    b"ALL", b"ANSWERED", b"DELETED", b"DRAFT", b"FLAGGED", b"NEW", b"OLD", b"RECENT", b"SEEN",
    b"UNANSWERED", b"UNDELETED", b"UNDRAFT", b"UNFLAGGED", b"UNSEEN", b"$", b"SAVEDATESUPPORTED",
]
SEARCH_TEXTS = [b"hello", b"Subject", b"", b"\xc3\xa9", b"=?utf-8?q?x?=", b"a" * 300, b"@", b"fuzz.test"]
DATES = [b"1-Jan-2020", b"01-Feb-1999", b"31-Dec-2099", b"29-Feb-2024", b'"5-Mar-2024"', b"1-Jan-1970"]
DATE_TIMES = [
    b'"01-Jan-2020 10:00:00 +0000"', b'" 1-Feb-1999 23:59:59 -1200"', b'"31-Dec-2099 23:59:59 +1400"',
]


def seqset(rng: random.Random) -> bytes:
    if rng.random() < 0.7:
        return pick(rng, SEQS)
    parts = []
    for _ in range(rng.randint(1, 6)):
        a = b"*" if rng.random() < 0.1 else b"%d" % rng.randint(1, 40)
        parts.append(a if rng.random() < 0.5 else a + b":" + (b"*" if rng.random() < 0.2 else b"%d" % rng.randint(1, 40)))
    return b",".join(parts)


def flag(rng: random.Random) -> bytes:
    f = pick(rng, FLAGS if rng.random() < 0.95 else ODD_FLAGS)
    return f + b"%d" % rng.randint(0, 30) if f == b"kw" else f


def flag_list(rng: random.Random) -> bytes:
    return b"(" + b" ".join(flag(rng) for _ in range(rng.randint(0, 4))) + b")"


def mailbox(rng: random.Random) -> bytes:
    return astring(rng, pick(rng, MAILBOXES))


def section(rng: random.Random, binary: bool = False) -> bytes:
    part, text = pick(rng, SECTION_PARTS), b"" if binary else pick(rng, SECTION_TEXTS)
    return b"[" + (part + b"." + text if part and text else part + text) + b"]"


def fetch_att(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.4:
        return pick(rng, FETCH_ATOMS)
    if r < 0.42:
        return pick(rng, [
            b"SAVEDATE", b"EMAILID", b"X-GM-MSGID", b"BINARY.SIZE[1.TEXT]", b"BODY[1.2.3.MIME]",
            b"PREVIEW", b"PREVIEW (LAZY)", b"PREVIEW (LAZY LAZY)", b"PREVIEW (FUZZY)", b"PREVIEW ()",
        ])
    if r < 0.85:
        name = pick(rng, [b"BODY", b"BODY.PEEK", b"BINARY", b"BINARY.PEEK"])
        att = name + section(rng, name.startswith(b"BINARY"))
        if rng.random() < 0.3:
            att += b"<%s.%s>" % (pick(rng, [b"0", b"1", b"10", b"4294967295"]), pick(rng, [b"0", b"1", b"100", b"4294967295"]))
        return att
    return b"BINARY.SIZE" + section(rng, True)


def search_key(rng: random.Random, depth: int = 0) -> bytes:
    r = rng.random()
    if r < 0.25:
        return pick(rng, SEARCH_SIMPLE)
    if r < 0.4:
        key = pick(rng, [b"BCC", b"BODY", b"CC", b"FROM", b"SUBJECT", b"TEXT", b"TO"])
        return key + b" " + astring(rng, pick(rng, SEARCH_TEXTS))
    if r < 0.45:
        return b"HEADER " + astring(rng, pick(rng, [b"Subject", b"X-Nope", b""])) + b" " + astring(rng, pick(rng, SEARCH_TEXTS))
    if r < 0.52:
        key = pick(rng, [
            b"BEFORE", b"ON", b"SINCE", b"SENTBEFORE", b"SENTON", b"SENTSINCE", b"SAVEDBEFORE", b"SAVEDON",
            b"SAVEDSINCE",
        ])
        return key + b" " + pick(rng, DATES)
    if r < 0.57:
        return pick(rng, [b"LARGER", b"SMALLER", b"OLDER", b"YOUNGER"]) + b" " + pick(rng, [b"100", b"1", b"0", *HUGE[:4]])
    if r < 0.62:
        return pick(rng, [b"KEYWORD", b"UNKEYWORD"]) + b" " + pick(rng, [b"$Forwarded", b"$Junk", b"kw1", b"kw2", b"NonJunk"])
    if r < 0.68:
        return (b"UID " if rng.random() < 0.5 else b"") + seqset(rng)
    if r < 0.72:
        if rng.random() < 0.5:
            return b"MODSEQ %d" % rng.randint(0, 50)
        return b'MODSEQ "/flags/\\\\seen" ' + pick(rng, [b"all", b"priv", b"shared"]) + b" %d" % rng.randint(0, 50)
    if depth >= 4:
        return b"ALL"
    if r < 0.8:
        return b"NOT " + search_key(rng, depth + 1)
    if r < 0.9:
        return b"OR " + search_key(rng, depth + 1) + b" " + search_key(rng, depth + 1)
    return b"(" + b" ".join(search_key(rng, depth + 1) for _ in range(rng.randint(1, 4))) + b")"


def _uid(rng: random.Random) -> bytes:
    return b"UID " if rng.random() < 0.4 else b""


def _append(rng: random.Random) -> bytes:
    body = mailbox(rng)
    for _ in range(1 if rng.random() < 0.8 else rng.randint(2, 3)):
        if rng.random() < 0.5:
            body += b" " + flag_list(rng)
        if rng.random() < 0.3:
            body += b" " + pick(rng, DATE_TIMES)
        if rng.random() < 0.1:
            body += b" " + pick(rng, [
                b'CATENATE (URL "/INBOX/;UID=1" TEXT {4+}\r\nabcd)', b'CATENATE (URL ";UID=1/;SECTION=1.MIME")',
                b'CATENATE (URL "/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(SUBJECT)/;PARTIAL=0.5")',
                b'CATENATE (URL "imap://fuzz%40example.com@mail.test/INBOX;UIDVALIDITY=1/;UID=1")',
                b'CATENATE (URL "/INBOX/;UID=99999999999/;SECTION=9.9")', b"CATENATE ()", b"CATENATE (TEXT {0+}\r\n)",
                b'CATENATE (URL "http://x/")', b"CATENATE (URL {6+}\r\n/a]b\r\n)", b"CATENATE (TEXT ~{1+}\r\n\x00)",
            ])
            continue
        msg = pick(rng, MESSAGES) if rng.random() < 0.97 else big_message(rng)
        if rng.random() < 0.3 and len(msg) < MAX_DATA:
            msg = mutate(rng, msg, rng.randint(1, 3))
        prefix = b"~" if rng.random() < 0.15 else b""
        plus = b"+" if rng.random() < 0.5 else b""
        body += b" " + prefix + b"{%d%s}\r\n" % (len(msg), plus) + msg
    return b"APPEND " + body


def _login(rng: random.Random) -> bytes:
    user = pick(rng, [IMAP_USER.encode(), b"FUZZ@EXAMPLE.COM", b"nobody@example.com", b"", b"\xc3\xa9@example.com"])
    password = pick(rng, [PASSWORD.encode(), b"wrong", b"", b"p\x00w"])
    return b"LOGIN " + astring(rng, user) + b" " + astring(rng, password)


def _authenticate(rng: random.Random) -> bytes:
    mech = pick(rng, [b"PLAIN", b"LOGIN", b"plain", b"CRAM-MD5", b"XOAUTH2"])
    creds = base64.b64encode(b"\x00" + IMAP_USER.encode() + b"\x00" + pick(rng, [PASSWORD.encode(), b"bad"]))
    r = rng.random()
    if r < 0.3:
        return b"AUTHENTICATE " + mech + b" " + pick(rng, [creds, b"=", b"!!!", b"AAAA"])
    if r < 0.6:
        return b"AUTHENTICATE " + mech + b"\r\n" + pick(rng, [creds, b"*", b"", b"=", b"not base64"])
    user, pw = base64.b64encode(IMAP_USER.encode()), base64.b64encode(PASSWORD.encode())
    return b"AUTHENTICATE LOGIN\r\n" + user + b"\r\n" + pick(rng, [pw, b"*", b"////"])


def _select(rng: random.Random) -> bytes:
    cmd = pick(rng, [b"SELECT ", b"EXAMINE "]) + mailbox(rng)
    r = rng.random()
    if r < 0.2:
        cmd += b" (CONDSTORE)"
    elif r < 0.4:
        q = b"QRESYNC (%d %d" % (rng.choice([1, 1796289620, 4294967295]), rng.randint(1, 40))
        if rng.random() < 0.5:
            q += b" " + seqset(rng)
            if rng.random() < 0.5:
                q += b" (" + seqset(rng) + b" " + seqset(rng) + b")"
        cmd += b" (" + q + b"))"
    return cmd


def _list(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.15:
        return b"LSUB " + astring(rng, b"") + b" " + astring(rng, pick(rng, PATTERNS))
    cmd = b"LIST "
    if r < 0.4:
        opts = rng.sample([b"SUBSCRIBED", b"REMOTE", b"RECURSIVEMATCH", b"SPECIAL-USE", b"BOGUS"], rng.randint(0, 3))
        cmd += b"(" + b" ".join(opts) + b") "
    cmd += astring(rng, pick(rng, [b"", b"Fuzz", b"Fuzz/", b"INBOX"])) + b" "
    if rng.random() < 0.2:
        cmd += b"(" + b" ".join(quoted(pick(rng, PATTERNS)) for _ in range(rng.randint(1, 3))) + b")"
    else:
        pat = pick(rng, PATTERNS)
        cmd += quoted(pat) if rng.random() < 0.7 or not _ATOM.fullmatch(pat) else pat
    if rng.random() < 0.3:
        ret = rng.sample([b"CHILDREN", b"SUBSCRIBED", b"SPECIAL-USE", b"STATUS (MESSAGES UNSEEN SIZE)", b"MYRIGHTS"], rng.randint(0, 3))
        cmd += b" RETURN (" + b" ".join(ret) + b")"
    return cmd


def _acl(rng: random.Random) -> bytes:
    who = astring(rng, pick(rng, [
        b"anyone", RCPT_USER.encode(), b"-" + RCPT_USER.encode(), IMAP_USER.encode(), b"nobody@example.com",
        b"", b"x y", b"RCPT@EXAMPLE.COM",
    ]))
    rights = astring(rng, pick(rng, [b"lr", b"+lrs", b"-w", b"lrswipkxtecda", b"", b"lrQ", b"zz", b"+", b"-"]))
    box = mailbox(rng)
    return pick(rng, [
        b"SETACL " + box + b" " + who + b" " + rights, b"DELETEACL " + box + b" " + who, b"GETACL " + box,
        b"LISTRIGHTS " + box + b" " + who, b"MYRIGHTS " + box, b"SETACL " + box, b"GETACL",
    ])


STATUS_ITEMS = [
    b"MESSAGES", b"RECENT", b"UIDNEXT", b"UIDVALIDITY", b"UNSEEN", b"DELETED", b"DELETED-STORAGE",
    b"SIZE", b"HIGHESTMODSEQ", b"APPENDLIMIT", b"MAILBOXID", b"BOGUS",
]


def _partial_range(rng: random.Random) -> bytes:
    a, b = rng.choice([(1, 5), (5, 1), (-1, -3), (0, 4), (1, -2), (3, 4294967296), (2, 2)])
    return pick(rng, [b"%d:%d" % (a, b), b"%d" % a, b"%d:*" % a])


NOTIFY_FILTERS = [b"selected", b"SELECTED-DELAYED", b"inboxes", b"personal", b"subscribed", b"bogus"]
NOTIFY_EVENTS = [
    b"MessageNew", b"MessageExpunge", b"FlagChange", b"MailboxName", b"SubscriptionChange",
    b"AnnotationChange", b"ServerMetadataChange", b"MailboxMetadataChange", b"x-Future",
]


def _notify(rng: random.Random) -> bytes:
    if rng.random() < 0.1:
        return b"NOTIFY NONE"
    groups = []
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        if r < 0.15:
            where = b"subtree " + mailbox(rng)
        elif r < 0.3:
            where = b"mailboxes (" + mailbox(rng) + b" " + mailbox(rng) + b")"
        else:
            where = pick(rng, NOTIFY_FILTERS)
        events = rng.sample(NOTIFY_EVENTS, rng.randint(1, 4))
        if rng.random() < 0.3:
            events.append(b"MessageNew (UID " + fetch_att(rng) + b")")
        listed = b"NONE" if rng.random() < 0.1 else b"(" + b" ".join(events) + b")"
        groups.append(b"(" + where + b" " + listed + b")")
    return b"NOTIFY SET " + (b"STATUS " if rng.random() < 0.3 else b"") + b" ".join(groups)


def _imap_body(rng: random.Random) -> bytes:
    """One IMAP command without its tag and final CRLF."""
    r = rng.randrange(40)
    if r < 5:
        cmd = _uid(rng) + b"FETCH " + seqset(rng) + b" "
        if rng.random() < 0.3:
            cmd += fetch_att(rng)
        else:
            cmd += b"(" + b" ".join(fetch_att(rng) for _ in range(rng.randint(1, 5))) + b")"
        if rng.random() < 0.15:
            cmd += b" (CHANGEDSINCE %d%s)" % (rng.randint(0, 40), b" VANISHED" if rng.random() < 0.5 else b"")
        elif rng.random() < 0.1:
            cmd += b" (PARTIAL " + _partial_range(rng) + b")"
        return cmd
    if r < 9:
        cmd = _uid(rng) + b"SEARCH"
        if rng.random() < 0.25:
            cmd = _esearch_source(rng)
        if rng.random() < 0.3:
            options = [b"MIN", b"MAX", b"ALL", b"COUNT", b"SAVE", b"CONTEXT", b"UPDATE", b"PARTIAL " + _partial_range(rng)]
            cmd += b" RETURN (" + b" ".join(rng.sample(options, rng.randint(0, 3))) + b")"
        if rng.random() < 0.2:
            cmd += b" CHARSET " + pick(rng, [b"UTF-8", b"US-ASCII", b"ISO-8859-1", b"KOI8-R", b"BOGUS"])
        return cmd + b" " + b" ".join(search_key(rng) for _ in range(rng.randint(1, 3)))
    if r < 12:
        cmd = _uid(rng) + b"STORE " + seqset(rng) + b" "
        if rng.random() < 0.15:
            cmd += b"(UNCHANGEDSINCE %d) " % rng.randint(0, 40)
        cmd += pick(rng, [b"", b"+", b"-"]) + b"FLAGS" + (b".SILENT" if rng.random() < 0.4 else b"") + b" "
        return cmd + (flag_list(rng) if rng.random() < 0.8 else flag(rng))
    if r < 14:
        return _uid(rng) + pick(rng, [b"COPY ", b"MOVE "]) + seqset(rng) + b" " + mailbox(rng)
    if r < 16:
        return _append(rng)
    if r < 18:
        return _select(rng)
    if r < 20:
        return _list(rng)
    if r < 21:
        items = rng.sample(STATUS_ITEMS, rng.randint(0, 5))
        return b"STATUS " + mailbox(rng) + b" (" + b" ".join(items) + b")"
    if r < 22:
        cmd = b"CREATE " + mailbox(rng)
        if rng.random() < 0.2:
            cmd += b" (USE (" + pick(rng, [b"\\Drafts", b"\\Junk", b"\\Bogus", b"\\All \\Archive"]) + b"))"
        return cmd
    if r < 23:
        return pick(rng, [b"DELETE ", b"SUBSCRIBE ", b"UNSUBSCRIBE "]) + mailbox(rng)
    if r < 24:
        return b"RENAME " + mailbox(rng) + b" " + mailbox(rng)
    if r < 26:
        return _login(rng)
    if r < 27:
        return _authenticate(rng)
    if r < 28:
        caps = [b"CONDSTORE", b"QRESYNC", b"IMAP4rev2", b"UTF8=ACCEPT", b"UIDONLY", b"BOGUS"]
        return b"ENABLE " + b" ".join(rng.sample(caps, rng.randint(1, 3)))
    if r < 29:
        return pick(rng, [b"ID NIL", b'ID ("name" "fuzz" "version" "1")', b"ID ()", b'ID ("k" NIL)', b'ID ("a")'])
    if r < 30:
        if rng.random() < 0.5:
            return _acl(rng)
        return pick(rng, [b'GETQUOTA ""', b"GETQUOTAROOT INBOX", b'SETQUOTA "" (STORAGE 512)', b"GETQUOTA x", b"GETQUOTAROOT Nope"])
    if r < 31:
        return (b"UID EXPUNGE " + seqset(rng)) if rng.random() < 0.5 else b"EXPUNGE"
    if r < 33:
        return pick(rng, [b"NOOP", b"CHECK", b"CAPABILITY", b"NAMESPACE", b"UNSELECT", b"CLOSE"])
    if r < 34:
        return b"IDLE\r\n" + pick(rng, [b"DONE", b"done", b"DONE x", b"NOPE", b""])
    if r < 35 and rng.random() < 0.2:
        return pick(rng, [b"LOGOUT", b"STARTTLS"])
    if r < 36 and rng.random() < 0.5:
        return pick(rng, [
            b'GETMETADATA "" /shared/admin', b"GETMETADATA INBOX (DEPTH infinity) (/shared /private)",
            b'GETMETADATA (MAXSIZE 4) INBOX /private/comment', b"GETMETADATA Nope /shared/comment",
            b'SETMETADATA INBOX (/private/comment "fuzz" /shared/x NIL)', b'SETMETADATA "" (/shared/admin "x")',
            b"SETMETADATA INBOX (/private/comment {3}\r\nabc)", b"SETMETADATA INBOX (/private/c ~{2+}\r\n\x00a)",
            b'SETMETADATA INBOX (/bad "x")', b"GETMETADATA INBOX (DEPTH 7) /shared", b"SETMETADATA INBOX ()",
        ])
    if r < 37:
        return pick(rng, [b"XYZZY", b"UID XYZZY 1", b"FETCH", b"UID", b"SEARCH", b"STORE 1", b"LIST", b"SELECT"])
    if r < 38:
        tags = [b'"a"', b'"A1"', b'"x]"', b"a", b'""', b'"' + b"t" * 300 + b'"']
        return b"CANCELUPDATE " + b" ".join(rng.sample(tags, rng.randint(0, 3)))
    if r < 39:
        return _notify(rng)
    return pick(rng, [b"NOOP", b"CHECK", b"CAPABILITY"])


def _esearch_source(rng: random.Random) -> bytes:
    """ESEARCH (RFC 7377) with source options, good and bad."""
    filters = []
    for _ in range(rng.randint(0, 3)):
        kind = pick(rng, [b"selected", b"inboxes", b"personal", b"subscribed", b"subtree", b"subtree-one",
                          b"mailboxes", b"selected-delayed", b"BOGUS"])
        if kind in (b"subtree", b"subtree-one", b"mailboxes"):
            names = [mailbox(rng) for _ in range(rng.randint(1, 3))]
            kind += b" " + (names[0] if len(names) == 1 and rng.random() < 0.5 else b"(" + b" ".join(names) + b")")
        filters.append(kind)
    cmd = pick(rng, [b"ESEARCH", b"UID ESEARCH"])
    if filters or rng.random() < 0.1:
        cmd += b" IN (" + b" ".join(filters) + (b" (SCOPE)" if rng.random() < 0.05 else b"") + b")"
    return cmd


def imap_command(rng: random.Random) -> bytes:
    tag = pick(rng, [b"a", b"A%d" % rng.randint(0, 999), b"t.%d" % rng.randint(0, 9), b"x]", b"1"])
    return tag + b" " + _imap_body(rng) + b"\r\n"


# --- POP3, LMTP and SMTP corpora ---------------------------------------------------------

def _number(rng: random.Random) -> bytes:
    return b"%d" % rng.randint(1, 8) if rng.random() < 0.7 else pick(rng, HUGE)


def pop3_command(rng: random.Random) -> bytes:
    r = rng.randrange(24)
    if r < 2:
        cmd = b"USER " + pick(rng, [POP3_USER.encode(), b"nobody@example.com", b"", b"\xc3\xa9", b"a b"])
    elif r < 4:
        cmd = b"PASS " + pick(rng, [PASSWORD.encode(), b"wrong", b"", b"p w", b"\xff"])
    elif r < 5:
        creds = base64.b64encode(b"\x00" + POP3_USER.encode() + b"\x00" + PASSWORD.encode())
        cmd = pick(rng, [b"AUTH", b"AUTH PLAIN", b"AUTH PLAIN " + creds, b"AUTH PLAIN\r\n" + creds,
                         b"AUTH PLAIN\r\n*", b"AUTH PLAIN =", b"AUTH LOGIN", b"AUTH PLAIN a b c"])
    elif r < 8:
        cmd = pick(rng, [b"RETR ", b"DELE ", b"LIST ", b"UIDL "]) + _number(rng)
    elif r < 10:
        cmd = b"TOP " + _number(rng) + b" " + _number(rng)
    elif r < 16:
        cmd = pick(rng, [b"STAT", b"LIST", b"UIDL", b"NOOP", b"RSET", b"CAPA"])
    elif r < 17 and rng.random() < 0.3:
        cmd = pick(rng, [b"QUIT", b"STLS"])
    else:
        cmd = pick(rng, [b"APOP a b", b"XTND", b"LIST 1 2", b"TOP 1", b"RETR", b"NOOP x", b"CAPA x", b"UTF8"])
    return cmd + b"\r\n"


SENDERS = [
    b"<sender@fuzz.test>", b"<>", b"sender@fuzz.test", b"<@relay.test:sender@fuzz.test>",
    b'<"quoted local"@fuzz.test>', b"<s\xc3\xa9@fuzz.test>", b"<" + b"a" * 300 + b"@fuzz.test>",
    b"<a@[127.0.0.1]>", b"<a@b@c>", b"<", b"",
]
RECIPIENTS = [
    b"<rcpt@example.com>", b"<RCPT@EXAMPLE.COM>", b"<postmaster>", b"<postmaster@example.com>",
    b"<nobody@example.com>", b"<x@elsewhere.test>", b'<"rcpt"@example.com>', b"<rcpt+tag@example.com>",
    b"<fuzz@example.com>", b"<pop@example.com>", b"rcpt@example.com",
]
PARAMS = [
    b"", b"", b" SIZE=1000", b" SIZE=99999999999999999999", b" BODY=8BITMIME", b" BODY=BINARYMIME",
    b" SMTPUTF8", b" RET=FULL ENVID=x", b" FOO=bar", b" SIZE=", b" SIZE=-1", b" NOTIFY=NEVER",
]


def data_block(rng: random.Random) -> bytes:
    """A message as sent after DATA: CRLF lines, dot-stuffed, ending with the final dot
    (each of these sometimes left out)."""
    msg = pick(rng, MESSAGES) if rng.random() < 0.96 else big_message(rng)
    if rng.random() < 0.4 and len(msg) < MAX_DATA:
        msg = mutate(rng, msg, rng.randint(1, 4))
    if rng.random() < 0.8:
        msg = re.sub(rb"\r?\n", b"\r\n", msg)
    if rng.random() < 0.9:
        msg = re.sub(rb"(?m)^\.", b"..", msg)
    if not msg.endswith(b"\r\n") and rng.random() < 0.8:
        msg += b"\r\n"
    return msg + (b".\r\n" if rng.random() < 0.85 else pick(rng, [b"", b".", b"\n.\n", b". \r\n"]))


def smtp_command(rng: random.Random, lmtp: bool) -> bytes:
    r = rng.randrange(24)
    if r < 3:
        hello = b"LHLO" if lmtp and rng.random() < 0.8 else pick(rng, [b"EHLO", b"HELO", b"LHLO"])
        cmd = hello + pick(rng, [b" fuzz.test", b" [127.0.0.1]", b"", b" " + b"x" * 300, b" \xc3\xa9.test"])
    elif r < 6:
        cmd = b"MAIL FROM:" + pick(rng, SENDERS) + pick(rng, PARAMS)
    elif r < 10:
        cmd = b"RCPT TO:" + pick(rng, RECIPIENTS) + pick(rng, PARAMS)
    elif r < 13:
        cmd = b"DATA"
    elif r < 15:
        return b"DATA\r\n" + data_block(rng)
    elif r < 16:
        return data_block(rng)
    elif r < 20:
        cmd = pick(rng, [b"RSET", b"NOOP", b"VRFY rcpt@example.com", b"EXPN list", b"HELP", b"HELP DATA"])
    elif r < 21 and rng.random() < 0.3:
        cmd = pick(rng, [b"QUIT", b"STARTTLS"])
    else:
        cmd = pick(rng, [b"AUTH PLAIN AHVzZXIAcGFzcw==", b"BDAT 10 LAST", b"XCLIENT ADDR=1.2.3.4",
                         b"ETRN x", b"TURN", b"MAIL", b"RCPT", b"MAIL TO:<a@b>", b"DATA x"])
    return cmd + b"\r\n"


# --- mutations ---------------------------------------------------------------------------

def _pos(rng: random.Random, d: bytes) -> int:
    return rng.randint(0, len(d))


def _flip(rng: random.Random, d: bytes) -> bytes:
    if not d:
        return d
    i = rng.randrange(len(d))
    return d[:i] + bytes([d[i] ^ (1 << rng.randrange(8))]) + d[i + 1:]


def _replace(rng: random.Random, d: bytes) -> bytes:
    i = _pos(rng, d)
    return d[:i] + pick(rng, INTERESTING) + d[i + 1:]


def _insert(rng: random.Random, d: bytes) -> bytes:
    i = _pos(rng, d)
    ins = pick(rng, INTERESTING) if rng.random() < 0.6 else rng.randbytes(rng.randint(1, 16))
    return d[:i] + ins + d[i:]


def _delete(rng: random.Random, d: bytes) -> bytes:
    i = _pos(rng, d)
    return d[:i] + d[i + rng.randint(1, 16):]


def _truncate(rng: random.Random, d: bytes) -> bytes:
    return d[:_pos(rng, d)]


def _tokens(rng: random.Random, d: bytes) -> tuple[list[bytes], int]:
    toks = d.split(b" ")
    return toks, rng.randrange(len(toks))


def _dup_token(rng: random.Random, d: bytes) -> bytes:
    toks, k = _tokens(rng, d)
    toks[k:k + 1] = [toks[k]] * (1 + rng.choice([1, 1, 2, 10, 100, 1000]))
    return b" ".join(toks)


def _drop_token(rng: random.Random, d: bytes) -> bytes:
    toks, k = _tokens(rng, d)
    del toks[k]
    return b" ".join(toks)


def _swap_tokens(rng: random.Random, d: bytes) -> bytes:
    toks, k = _tokens(rng, d)
    j = rng.randrange(len(toks))
    toks[k], toks[j] = toks[j], toks[k]
    return b" ".join(toks)


def _huge_number(rng: random.Random, d: bytes) -> bytes:
    found = list(re.finditer(rb"\d+", d))
    if not found:
        i = _pos(rng, d)
        return d[:i] + pick(rng, HUGE) + d[i:]
    m = found[rng.randrange(len(found))]
    return d[:m.start()] + pick(rng, HUGE) + d[m.end():]


def _swapcase(rng: random.Random, d: bytes) -> bytes:
    i = _pos(rng, d)
    j = min(len(d), i + rng.randint(1, 20))
    return d[:i] + d[i:j].swapcase() + d[j:]


def _nest(rng: random.Random, d: bytes) -> bytes:
    k = rng.choice([1, 2, 10, 63, 64, 65, 200, 1000])
    i = _pos(rng, d)
    j = rng.randint(i, len(d))
    close = b")" * k if rng.random() < 0.8 else b""
    return d[:i] + b"(" * k + d[i:j] + close + d[j:]


def _line_ends(rng: random.Random, d: bytes) -> bytes:
    new = pick(rng, [b"\n", b"\r", b"", b"\r\r\n", b"\n\r", b"\r\n\r\n", b" \r\n"])
    return d.replace(b"\r\n", new, -1 if rng.random() < 0.5 else 1)


def _literalize(rng: random.Random, d: bytes) -> bytes:
    toks, k = _tokens(rng, d)
    tok = toks[k]
    n = max(0, len(tok) + rng.choice([0, 0, 0, -1, 1, 1000]))
    toks[k] = pick(rng, [b"", b"~"]) + b"{%d%s}\r\n" % (n, pick(rng, [b"", b"+"])) + tok
    return b" ".join(toks)


def _long(rng: random.Random, d: bytes) -> bytes:
    i = _pos(rng, d)
    unit = pick(rng, [b"x", b"a ", b"(", b"1,", b"\\", b"%", b"*"] + INTERESTING)
    return d[:i] + unit * rng.choice([100, 1000, 5000, 70000]) + d[i:]


MUTATORS: list[Callable[[random.Random, bytes], bytes]] = [
    _flip, _replace, _insert, _delete, _truncate, _dup_token, _drop_token, _swap_tokens,
    _huge_number, _huge_number, _swapcase, _nest, _line_ends, _literalize, _long,
]


def mutate(rng: random.Random, data: bytes, rounds: int) -> bytes:
    for _ in range(rounds):
        data = MUTATORS[rng.randrange(len(MUTATORS))](rng, data)[:MAX_DATA]
    return data


# --- cases and streams -------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    name: str
    protocol: str
    """imap, pop3, lmtp or smtp"""
    state: str


CASES = [
    Case("imap-notauth", "imap", "notauth"),
    Case("imap-auth", "imap", "auth"),
    Case("imap-selected", "imap", "selected"),
    Case("imap-idle", "imap", "idle"),
    Case("imap-literal", "imap", "literal"),
    Case("pop3-authorization", "pop3", "authorization"),
    Case("pop3-transaction", "pop3", "transaction"),
    *(Case(f"{p}-{s}", p, s) for p in ("lmtp", "smtp") for s in ("greeting", "hello", "mail", "rcpt", "data")),
]
CASE_BY_NAME = {c.name: c for c in CASES}


@dataclass
class Stream:
    id: str
    case: Case
    base: str
    """The state good commands bring the connection to before the prelude."""
    prelude: bytes = b""
    """Sent after the base state; part of the setup, not of the fuzz."""
    prelude_wait: bytes | None = None
    """The start of the reply line to wait for after the prelude."""
    chunks: list[bytes] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    """Seconds to read replies before writing each chunk."""

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)

    def describe(self, limit: int = 3000) -> str:
        out = [f"  setup: {self.case.protocol} {self.base} state, then prelude {self.prelude!r}"]
        out.append(f"  sent ({len(self.chunks)} writes, {len(self.data)} bytes):")
        for chunk, gap in zip(self.chunks, self.gaps, strict=True):
            out.append(f"    [after {gap * 1000:.0f} ms] {show(chunk, limit)}")
        return "\n".join(out)


_RUN = re.compile(rb"(.)\1{15,}", re.DOTALL)


def show(data: bytes, limit: int = 3000) -> str:
    """*data* as a Python expression, a run of one byte written as a multiplication."""
    parts: list[str] = []
    last = 0
    for m in _RUN.finditer(data):
        if m.start() > last:
            parts.append(repr(data[last:m.start()]))
        parts.append(f"{data[m.start():m.start() + 1]!r} * {m.end() - m.start()}")
        last = m.end()
    if last < len(data) or not parts:
        parts.append(repr(data[last:]))
    text = " + ".join(parts)
    if len(text) > limit:
        text = f"{text[:limit * 2 // 3]} ... {text[-limit // 3:]} (shortened; --replay shows the whole)"
    return text


def stream_id(case: str, seed: int, index: int) -> str:
    return f"{case}:{seed}:{index}"


def _split(rng: random.Random, data: bytes) -> list[bytes]:
    if not data:
        return [data]
    r = rng.random()
    if r < 0.3:
        return [data]
    if r < 0.4:
        n = min(len(data), 40)  # the first bytes one at a time
        return [data[i:i + 1] for i in range(n)] + ([data[n:]] if len(data) > n else [])
    cuts = sorted(rng.sample(range(1, len(data) + 1), min(len(data), rng.choice([1, 2, 3, 5, 10]))))
    pieces, last = [], 0
    for c in cuts:
        pieces.append(data[last:c])
        last = c
    if last < len(data):
        pieces.append(data[last:])
    return pieces


def _gap(rng: random.Random) -> float:
    r = rng.random()
    if r < 0.6:
        return 0.0
    if r < 0.95:
        return rng.uniform(0.001, 0.005)
    return rng.uniform(0.02, 0.05)


def make_stream(sid: str) -> Stream:
    """The stream an id names; the same id gives the same bytes."""
    case = CASE_BY_NAME[sid.split(":", 1)[0]]
    rng = random.Random(sid)
    s = Stream(sid, case, case.state)
    head = b""
    if case.protocol == "imap":
        gen: Callable[[random.Random], bytes] = imap_command
        if case.state == "idle":
            s.base, s.prelude, s.prelude_wait = "selected", b"I1 IDLE\r\n", b"+ "
            head = pick(rng, [b"DONE\r\n", b"done\r\n", b"DONE \r\n", b"DONE\n", b"DONX\r\n", b"\r\n", b""])
            if rng.random() < 0.5:
                head = mutate(rng, head or b"DONE\r\n", rng.randint(1, 2))
        elif case.state == "literal":
            s.base, s.prelude, s.prelude_wait, head = _literal_prelude(rng)
    elif case.protocol == "pop3":
        gen = pop3_command
    else:
        gen = functools.partial(smtp_command, lmtp=case.protocol == "lmtp")
        if case.state == "data":
            head = data_block(rng) if rng.random() < 0.7 else b""
    parts = [head]
    for _ in range(rng.randint(1, 8)):
        cmd = gen(rng)
        if rng.random() < 0.6:
            cmd = mutate(rng, cmd, rng.choice([1, 1, 1, 2, 3, 4]))
        parts.append(cmd)
        if rng.random() < 0.05:
            parts.append(rng.randbytes(rng.randint(1, 200)))
    if rng.random() < 0.3:
        i = rng.randrange(len(parts))
        parts[i] = mutate(rng, parts[i], 1)
    data = b"".join(parts)[:MAX_STREAM]
    s.chunks = _split(rng, data)
    s.gaps = [_gap(rng) if i else 0.0 for i in range(len(s.chunks))]
    return s


def _literal_prelude(rng: random.Random) -> tuple[str, bytes, bytes | None, bytes]:
    """(base state, prelude, wait for, head of the stream) for the inside-a-literal case."""
    r = rng.random()
    if r < 0.15:
        user = pick(rng, [IMAP_USER.encode(), b"nobody", b""])
        n = len(user) if rng.random() < 0.7 else rng.choice([0, 1, 5000, 39000])
        return "notauth", b"L1 LOGIN {%d}\r\n" % n, b"+ ", user + b" " + pick(rng, [PASSWORD.encode(), b"x"]) + b"\r\n"
    if r < 0.25:
        text = pick(rng, SEARCH_TEXTS)
        return "selected", b"L1 SEARCH TEXT {%d}\r\n" % len(text), b"+ ", text + pick(rng, [b"\r\n", b" ALL\r\n", b" {3}\r\n"])
    if r < 0.3:
        name = pick(rng, MAILBOXES)
        return "auth", b"L1 CREATE {%d}\r\n" % len(name), b"+ ", name + b"\r\n"
    msg = pick(rng, MESSAGES) if rng.random() < 0.95 else big_message(rng)
    n = len(msg) if rng.random() < 0.7 else rng.choice([0, 1, len(msg) + 10, 60000])
    if rng.random() < 0.4 and len(msg) < MAX_DATA:
        msg = mutate(rng, msg, rng.randint(1, 4))
    binary = b"~" if rng.random() < 0.15 else b""
    flags = pick(rng, [b"", b"", b" ()", b" (\\Seen)", b" (\\Flagged $Forwarded kw1)"])
    tail = pick(rng, [b"\r\n", b"\r\n", b" {5}\r\nHello\r\n", b" (\\Seen) {3+}\r\nabc\r\n", b"", b" x\r\n"])
    if rng.random() < 0.3:
        return "selected", b"L1 APPEND INBOX%s %s{%d+}\r\n" % (flags, binary, n), None, msg + tail
    return "selected", b"L1 APPEND INBOX%s %s{%d}\r\n" % (flags, binary, n), b"+ ", msg + tail


# --- talking to the server ---------------------------------------------------------------

class SetupFailed(Exception):
    """Good commands did not bring the connection to the wanted state."""


_TLS_GRANTED = re.compile(rb"220 Ready to start TLS|\+OK Begin TLS|\S+ OK Begin TLS")


class Conn:
    """A raw client connection: writes interleaved with reads, replies split into lines."""

    def __init__(self, port: int, markers: tuple[bytes, ...], connect_timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=connect_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.markers = markers
        self.lines: collections.deque[bytes] = collections.deque(maxlen=20000)
        """Complete lines not yet looked at by wait_for (the start of each)."""
        self.recent: collections.deque[bytes] = collections.deque(maxlen=30)
        self.flagged: list[bytes] = []
        self.last_line = b""
        self.tls = False
        """The server agreed to STARTTLS/STLS: what follows is a TLS handshake."""
        self.watch: bytes | None = None
        self.watch_seen = False
        """Whether a line started with *watch* (the tag of a command begun in the setup)."""
        self.eof = False
        self._partial = b""

    def close(self) -> None:
        self.sock.close()

    def _line(self, line: bytes) -> None:
        if any(m in line for m in self.markers):
            self.flagged.append(line[:500])
        if _TLS_GRANTED.match(line):
            self.tls = True
        if self.watch is not None and line.startswith(self.watch):
            self.watch_seen = True
        short = line[:300]
        self.recent.append(short)
        self.lines.append(short)
        self.last_line = short

    def _feed(self, data: bytes) -> None:
        parts = (self._partial + data).split(b"\n")
        self._partial = parts.pop()
        for p in parts:
            self._line(p + b"\n")
        if len(self._partial) > 65536:  # literal data without line ends
            if any(m in self._partial for m in self.markers):
                self.flagged.append(self._partial[:500])
            self._partial = self._partial[-1024:]

    def _read_available(self) -> bool:
        got = False
        while not self.eof:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self.eof = True
                if self._partial:
                    self._line(self._partial)
                    self._partial = b""
                break
            self._feed(data)
            got = True
        return got

    def pump(self, timeout: float) -> bool:
        """Wait up to *timeout* seconds for replies; True if any came."""
        if self.eof:
            return False
        readable, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        return self._read_available() if readable else False

    def send(self, data: bytes, timeout: float) -> bool:
        """Write *data*, reading replies meanwhile. False if the server closed first;
        TimeoutError if it took none of the data for *timeout* seconds."""
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view and not self.eof:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise TimeoutError(f"the server took no data for {timeout:.0f} s ({len(view)} bytes left)")
            readable, writable, _ = select.select([self.sock], [self.sock], [], wait)
            if readable:
                self._read_available()
            if writable:
                try:
                    n = self.sock.send(view[: 1 << 16])
                except BlockingIOError:
                    continue
                except OSError:
                    self.eof = True
                    break
                view = view[n:]
                deadline = time.monotonic() + timeout
        return not view

    def wait_for(self, match: Callable[[bytes], bool], idle: float, cap: float = 60.0) -> bytes | None:
        """The first new line that *match*es; None when the connection closed or the
        server was silent for *idle* seconds (or *cap* passed) first."""
        end = time.monotonic() + cap
        while True:
            while self.lines:
                line = self.lines.popleft()
                if match(line):
                    return line
            now = time.monotonic()
            if self.eof or now >= end:
                return None
            if not self.pump(min(idle, end - now)) and not self.lines:
                return None

    def drain(self, quiet: float, cap: float = 30.0) -> None:
        """Read until the server has been silent for *quiet* seconds."""
        end = time.monotonic() + cap
        while time.monotonic() < end and self.pump(quiet):
            pass
        self.lines.clear()


def _starts(prefix: bytes) -> Callable[[bytes], bool]:
    return lambda line: line.startswith(prefix)


def _reply_end(line: bytes) -> bool:
    return re.match(rb"\d{3} ", line) is not None


# --- protocol drivers --------------------------------------------------------------------

@dataclass
class Timing:
    reply: float = 1.0
    """Seconds of server silence after which an answer is taken as not coming."""
    quiet: float = 0.05
    """Seconds of silence that end the replies to a stream (POP3, LMTP, SMTP)."""
    send: float = 10.0
    """Seconds the server may take none of our data before that is a failure."""


@dataclass
class Target:
    """A running server and the accounts the fuzzer uses."""

    ports: dict[str, int]
    alive: Callable[[], bool]
    log: Path
    timing: Timing = field(default_factory=Timing)
    _tags: Iterator[int] = field(default_factory=itertools.count)
    _imap_streams: int = 0

    def tag(self) -> bytes:
        return b"ZZ%d" % next(self._tags)

    def connect(self, protocol: str) -> Conn:
        return Conn(self.ports[protocol], MARKERS[protocol])


MARKERS: dict[str, tuple[bytes, ...]] = {
    # IMAP: a handler's exception (imap/session.py _command).
    "imap": (b"SERVERBUG", b"Internal error"),
    # POP3 has no reply for an internal error (the connection ends and the log tells);
    # [SYS/...] is store trouble or throttling, neither expected here.
    "pop3": (b"-ERR [SYS/", b"nternal error"),
    # delivery/handler.py handle_exception and _smtp_data; aiosmtpd's own fallback.
    "lmtp": (b"451 4.3.0", b"Internal error", b"500 Error: (", b"Cannot describe error"),
    "smtp": (b"451 4.3.0", b"Internal error", b"500 Error: (", b"Cannot describe error"),
}


def _expect(conn: Conn, match: Callable[[bytes], bool], what: str, timeout: float = 10.0) -> bytes:
    line = conn.wait_for(match, idle=timeout, cap=timeout * 3)
    if line is None:
        raise SetupFailed(f"no {what} ({'closed' if conn.eof else 'timeout'}); last replies {list(conn.recent)[-5:]}")
    return line


def _imap_cmd(t: Target, conn: Conn, command: bytes, ok: bool = True) -> bytes:
    tag = t.tag()
    conn.send(tag + b" " + command + b"\r\n", t.timing.send)
    line = _expect(conn, _starts(tag + b" "), f"answer to {command[:60]!r}")
    if ok and not line.startswith(tag + b" OK"):
        raise SetupFailed(f"{command[:60]!r} answered {line!r}")
    return line


def _imap_select(t: Target, conn: Conn, name: str, must: bool = True) -> int:
    """SELECT a mailbox; its message count (-1 when refused and not *must*)."""
    tag = t.tag()
    conn.send(tag + b" SELECT " + quoted(name.encode()) + b"\r\n", t.timing.send)
    exists = 0
    while True:
        line = _expect(conn, lambda _l: True, f"answer to SELECT {name}")
        m = re.match(rb"\* (\d+) EXISTS", line)
        if m:
            exists = int(m[1])
        if line.startswith(tag + b" "):
            if line.startswith(tag + b" OK"):
                return exists
            if must:
                raise SetupFailed(f"SELECT {name} answered {line!r}")
            return -1


def _imap_append(t: Target, conn: Conn, mailbox: str, messages: list[bytes]) -> None:
    for msg in messages:
        binary = b"~" if b"\x00" in msg else b""
        _imap_cmd(t, conn, b"APPEND " + quoted(mailbox.encode()) + b" %s{%d+}\r\n" % (binary, len(msg)) + msg)


def imap_setup(t: Target, conn: Conn, base: str) -> None:
    _expect(conn, _starts(b"* OK"), "IMAP greeting")
    if base == "notauth":
        return
    _imap_cmd(t, conn, b"LOGIN " + quoted(IMAP_USER.encode()) + b" " + quoted(PASSWORD.encode()))
    if base == "auth":
        return
    t._imap_streams += 1
    if t._imap_streams % 50 == 0:
        imap_prune(t, conn)
    if _imap_select(t, conn, "INBOX") < 3:
        _imap_append(t, conn, "INBOX", MESSAGES[:8])


def imap_prune(t: Target, conn: Conn, keep: int = 200) -> None:
    """Keep the mailboxes the fuzzer fills (COPY 1:* doubles one) below *keep* messages."""
    for name in KEEP_SMALL:
        if _imap_select(t, conn, name, must=False) > keep:
            _imap_cmd(t, conn, b"STORE 1:* +FLAGS.SILENT (\\Deleted)")
            _imap_cmd(t, conn, b"EXPUNGE")
    _imap_cmd(t, conn, b"UNSELECT", ok=False)


def imap_probe(t: Target, conn: Conn, stream: Stream) -> tuple[str, list[str]]:
    """Ask the same connection for NOOP: (verdict, problems)."""
    prefix = b"" if stream.data.endswith(b"\n") else b"\r\n"
    tags: list[bytes] = []
    # The second try ends what may still be waiting for input: literal data (up to the
    # 64 KB a non-APPEND literal may have), an AUTHENTICATE response, IDLE's DONE.
    for escape in (prefix, prefix + b"x" * 70000 + b"\r\n*\r\nDONE\r\n"):
        tags.append(t.tag())
        if not conn.send(escape + tags[-1] + b" NOOP\r\n", t.timing.send):
            return "closed", []
        line = conn.wait_for(lambda ln: any(ln.startswith(x + b" ") for x in tags), t.timing.reply)
        if line is not None:
            problems = [] if re.match(rb"ZZ\d+ OK", line) else [f"NOOP answered {line!r}"]
            if conn.watch is not None and not conn.watch_seen:
                # Commands are answered in order: the one begun in the setup (IDLE, or
                # APPEND with its literal) must have had its tagged reply by now.
                problems.append(f"{stream.prelude.splitlines()[0]!r} never got a tagged reply")
            return "answered", problems
        if conn.eof or conn.tls:
            return "closed", []
    return "stuck", []


def pop3_setup(t: Target, conn: Conn, base: str) -> None:
    _expect(conn, _starts(b"+OK"), "POP3 greeting")
    if base == "authorization":
        return
    conn.send(b"USER " + POP3_USER.encode() + b"\r\n", t.timing.send)
    _expect(conn, _starts(b"+OK"), "+OK to USER")
    conn.send(b"PASS " + PASSWORD.encode() + b"\r\n", t.timing.send)
    line = _expect(conn, lambda _l: True, "answer to PASS")
    m = re.match(rb"\+OK Logged in, maildrop has (\d+) message", line)
    if m is None:
        raise SetupFailed(f"PASS answered {line!r}")
    if int(m[1]) < 3:
        deliver(t, POP3_USER, MESSAGES[:5])


def pop3_probe(t: Target, conn: Conn, stream: Stream) -> tuple[str, list[str]]:
    conn.drain(t.timing.quiet)
    prefix = b"" if stream.data.endswith(b"\n") else b"\r\n"
    for attempt in (prefix, b""):  # the first CAPA may be taken as an AUTH response
        if not conn.send(attempt + b"CAPA\r\n", t.timing.send):
            return "closed", []
        line = conn.wait_for(_starts(b"+OK Capability list follows"), t.timing.reply)
        if line is not None:
            if conn.wait_for(lambda ln: ln == b".\r\n", t.timing.reply) is None:
                return "answered", ["CAPA list does not end"]
            return "answered", []
        if conn.eof or conn.tls:
            return "closed", []
    return "stuck", ["the same connection does not answer CAPA"]


def smtp_setup(t: Target, conn: Conn, base: str, lmtp: bool) -> None:
    _expect(conn, _starts(b"220 "), "greeting")
    steps = [
        (b"LHLO fuzz.test" if lmtp else b"EHLO fuzz.test", b"250 "),
        (b"MAIL FROM:<sender@fuzz.test>", b"250 "),
        (b"RCPT TO:<" + RCPT_USER.encode() + b">", b"250 "),
        (b"DATA", b"354 "),
    ]
    count = ["greeting", "hello", "mail", "rcpt", "data"].index(base)
    for command, want in steps[:count]:
        conn.send(command + b"\r\n", t.timing.send)
        line = _expect(conn, _reply_end, f"answer to {command!r}")
        if not line.startswith(want):
            raise SetupFailed(f"{command!r} answered {line!r}")


def smtp_probe(t: Target, conn: Conn, stream: Stream) -> tuple[str, list[str]]:
    prefix = b"" if stream.data.endswith(b"\n") else b"\r\n"
    for _ in range(2):
        conn.drain(t.timing.quiet)
        end_data = b".\r\n" if conn.last_line.startswith(b"354") else b""
        if not conn.send(prefix + end_data + b"NOOP\r\n", t.timing.send):
            return "closed", []
        if conn.wait_for(lambda ln: ln == b"250 2.0.0 OK\r\n", t.timing.reply) is not None:
            return "answered", []
        if conn.eof or conn.tls:
            return "closed", []
        prefix = b"\r\n"
    return "stuck", ["the same connection does not answer NOOP"]


def deliver(t: Target, rcpt: str, messages: list[bytes]) -> None:
    """Deliver *messages* to *rcpt* over LMTP."""
    conn = t.connect("lmtp")
    try:
        smtp_setup(t, conn, "hello", lmtp=True)
        for msg in messages:
            body = re.sub(rb"(?m)^\.", b"..", re.sub(rb"\r?\n", b"\r\n", msg))
            if not body.endswith(b"\r\n"):
                body += b"\r\n"
            conn.send(b"MAIL FROM:<seed@fuzz.test>\r\nRCPT TO:<" + rcpt.encode() + b">\r\nDATA\r\n", t.timing.send)
            for want in (b"250", b"250", b"354"):
                line = _expect(conn, _reply_end, "LMTP reply")
                if not line.startswith(want):
                    raise SetupFailed(f"seeding over LMTP: {line!r}")
            conn.send(body + b".\r\n", t.timing.send)
            line = _expect(conn, _reply_end, "LMTP reply to the message")
            if not line.startswith(b"250"):
                raise SetupFailed(f"seeding over LMTP: {line!r}")
    finally:
        conn.close()


def fresh_check(t: Target, protocol: str) -> list[str]:
    """A new connection gets a greeting and an answer to a good command."""
    try:
        conn = t.connect(protocol)
    except OSError as e:
        return [f"a new {protocol} connection failed: {e}"]
    try:
        if protocol == "imap":
            _expect(conn, _starts(b"* OK"), "greeting")
            conn.send(b"F CAPABILITY\r\n", t.timing.send)
            _expect(conn, _starts(b"* CAPABILITY "), "CAPABILITY")
            _expect(conn, _starts(b"F OK"), "F OK")
        elif protocol == "pop3":
            _expect(conn, _starts(b"+OK"), "greeting")
            conn.send(b"CAPA\r\n", t.timing.send)
            _expect(conn, _starts(b"+OK"), "+OK to CAPA")
        else:
            _expect(conn, _starts(b"220 "), "greeting")
            conn.send(b"NOOP\r\n", t.timing.send)
            _expect(conn, lambda ln: ln == b"250 2.0.0 OK\r\n", "250 to NOOP")
    except (SetupFailed, TimeoutError) as e:
        return [f"a new {protocol} connection: {e}"]
    finally:
        conn.close()
    return []


# --- one stream --------------------------------------------------------------------------

@dataclass
class Outcome:
    stream: Stream
    verdict: str = ""
    """answered (the same connection), closed (by the server, or switched to TLS),
    stuck (waiting for literal data it was promised) or setup (the state was not
    reached)."""
    problems: list[str] = field(default_factory=list)
    recent: list[bytes] = field(default_factory=list)
    seconds: float = 0.0

    def report(self, replay: str = ".venv/bin/python tools/fuzz_server.py --replay", limit: int = 3000) -> str:
        lines = [f"stream {self.stream.id}: {self.verdict}; replay: {replay} {self.stream.id}"]
        lines += [f"  problem: {p}" for p in self.problems]
        lines.append(self.stream.describe(limit))
        lines.append("  last replies:")
        lines += [f"    {r!r}" for r in self.recent[-12:]]
        return "\n".join(lines)


def run_stream(t: Target, stream: Stream) -> Outcome:
    """Bring a connection to the stream's state, send it and check the server."""
    started = time.monotonic()
    out = Outcome(stream)
    protocol = stream.case.protocol
    try:
        conn = t.connect(protocol)
    except OSError as e:
        out.verdict = "setup"
        out.problems.append(f"cannot connect: {e}")
        return out
    try:
        try:
            if protocol == "imap":
                imap_setup(t, conn, stream.base)
            elif protocol == "pop3":
                pop3_setup(t, conn, stream.base)
            else:
                smtp_setup(t, conn, stream.base, lmtp=protocol == "lmtp")
            if stream.prelude:
                conn.watch = stream.prelude.split(b" ", 1)[0] + b" "
                conn.send(stream.prelude, t.timing.send)
                if stream.prelude_wait is not None:
                    _expect(conn, _starts(stream.prelude_wait), f"{stream.prelude_wait!r} after the prelude")
        except (SetupFailed, TimeoutError) as e:
            out.verdict = "setup"
            out.problems.append(f"setup: {e}")
        else:
            try:
                for chunk, gap in zip(stream.chunks, stream.gaps, strict=True):
                    if gap:
                        conn.pump(gap)
                    if not conn.send(chunk, t.timing.send):
                        break
                probe = {"imap": imap_probe, "pop3": pop3_probe}.get(protocol, smtp_probe)
                out.verdict, problems = probe(t, conn, stream)
                out.problems += problems
            except TimeoutError as e:
                out.verdict = "stuck"
                out.problems.append(str(e))
        out.problems += [f"reply shows an internal error: {line!r}" for line in conn.flagged]
        out.recent = list(conn.recent)
    finally:
        conn.close()
    if out.verdict != "answered":
        out.problems += fresh_check(t, protocol)
    if not t.alive():
        out.problems.append("the server process is gone")
    out.seconds = time.monotonic() - started
    return out


# --- the server log ----------------------------------------------------------------------

_LOG_PROBLEM = re.compile(
    r"^\S+ \S+ (ERROR|CRITICAL) |Traceback \(most recent call last\)|session for .* failed"
    r"|Task exception was never retrieved"
)
_LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:")


class LogWatcher:
    """New lines of the server log that tell of an internal error."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def new_problems(self) -> list[str]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1  # a line being written is read next time
        self.offset += end
        lines = data[:end].decode("utf-8", "replace").splitlines()
        out: list[str] = []
        i = 0
        while i < len(lines):
            # A record: a time-stamped line and what follows it (a traceback).
            j = i + 1
            while j < len(lines) and not _LOG_RECORD.match(lines[j]):
                j += 1
            if any(_LOG_PROBLEM.search(line) for line in lines[i:j]):
                out.append("\n".join(lines[i:j][:60]))
            i = j
        return out


# --- a server to fuzz --------------------------------------------------------------------

def prepare(srv: ServerProcess, timing: Timing | None = None) -> Target:
    """Accounts and mail for a started server; the Target that reaches it."""
    for user in (IMAP_USER, POP3_USER, RCPT_USER):
        srv.add_user(user, PASSWORD)

    def alive() -> bool:
        return srv.proc is not None and srv.proc.poll() is None

    ports = {p: srv.port(p) for p in ("imap", "pop3", "lmtp", "smtp")}
    t = Target(ports, alive, srv.log, timing or Timing())
    conn = t.connect("imap")
    try:
        imap_setup(t, conn, "auth")
        for name in KEEP_SMALL[1:5]:
            _imap_cmd(t, conn, b"CREATE " + quoted(name.encode()), ok=False)
        _imap_append(t, conn, "INBOX", MESSAGES)
        _imap_append(t, conn, "Archive", MESSAGES[:5])
    finally:
        conn.close()
    deliver(t, POP3_USER, MESSAGES[:6])
    return t


def run_case(t: Target, case: str, seed: int, count: int) -> tuple[list[Outcome], list[str]]:
    """*count* streams of one case: every outcome, and failure reports."""
    watcher = LogWatcher(t.log)
    outcomes: list[Outcome] = []
    failures: list[str] = []
    for index in range(count):
        out = run_stream(t, make_stream(stream_id(case, seed, index)))
        out.problems += [f"server log (during or just before this stream):\n{p}" for p in watcher.new_problems()]
        outcomes.append(out)
        if out.problems:
            failures.append(out.report())
        if not t.alive():
            break
    # What the server logs as the last connection ends comes after that stream's check.
    protocol = CASE_BY_NAME[case].protocol
    late = fresh_check(t, protocol) if t.alive() else ["the server process is gone"]
    late += [f"server log (after the last stream):\n{p}" for p in watcher.new_problems()]
    if late:
        failures.append(f"case {case}, seed {seed}, after {count} streams:\n" + "\n".join(f"  problem: {p}" for p in late))
    return outcomes, failures
