"""Recursive-descent parser for complete client commands.

The reader hands over a command as its lines (CRLF stripped) and the literals between
them: every line but the last ends with a literal announcement whose data is
``literals[k]``. Parsing is a single left-to-right pass with regexes anchored at the
cursor, so a command costs a few microseconds.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable

from . import commands as c
from .events import LiteralData, Spooled
from .seqset import SequenceSet, parse_sequence_set


class CommandSyntaxError(Exception):
    def __init__(self, message: str, tag: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tag = tag


class UnknownCommand(CommandSyntaxError):
    pass


class IncompleteCommand(Exception):
    """The parse reached a literal that has not arrived yet (early validation)."""


MAX_NESTING = 64
_MAX32 = 0xFFFFFFFF
_MAX63 = 0x7FFFFFFFFFFFFFFF

# ATOM-CHAR is CHAR minus atom-specials: ( ) { SP CTL % * " \ ]
_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
# ASTRING-CHAR adds "]"; list-char adds the wildcards % and *.
_ASTRING_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')
_LIST_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){"\\]+')
# tag is ASTRING-CHAR minus "+".
TAG_RE = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+')
_FLAG = re.compile(rb'\\?[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
_WORD = re.compile(rb"[A-Za-z][A-Za-z0-9.\-]*")
# RFC 8474 7: objectid = 1*255(ALPHA / DIGIT / "_" / "-"), case-sensitive.
_OBJECTID = re.compile(r"[A-Za-z0-9_-]{1,255}")
_DIGITS = re.compile(rb"[0-9]+")
# RFC 9394 4: partial-range-first / partial-range-last, nz-numbers of one sign.
_PARTIAL_RANGE = re.compile(rb"(-?)([1-9][0-9]{0,9}):(-?)([1-9][0-9]{0,9})(?=[ )]|$)")
# 8-bit octets are let through in quoted strings: IMAP4rev2 and UTF8=ACCEPT allow UTF-8
# there, and whether raw bytes are acceptable is the session's call (it knows the mode).
_QUOTED = re.compile(rb'"([^"\\\x00\r\n]*(?:\\["\\][^"\\\x00\r\n]*)*)"')
_UNESCAPE = re.compile(rb"\\(.)")
_LITERAL = re.compile(rb"(~?)\{([0-9]+)(\+?)\}")
_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_SECTION_PART = re.compile(rb"[1-9][0-9]*(?:\.[1-9][0-9]*)*")
_SECTION_TEXT = re.compile(rb"[A-Za-z][A-Za-z.]*")
_PARTIAL = re.compile(rb"<([0-9]+)\.([0-9]+)>")
_DATE = re.compile(rb'("?)([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})')
_DATE_TIME = re.compile(
    rb'" ?([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"'
)
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        (b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec")
    )
}

SYSTEM_FLAGS = {
    f.lower(): f
    for f in ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent")
}
SPECIAL_USE = {
    f.lower(): f
    for f in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
}
STATUS_ITEMS = frozenset(
    {
        "MESSAGES",
        "RECENT",
        "UIDNEXT",
        "UIDVALIDITY",
        "UNSEEN",
        "DELETED",
        "DELETED-STORAGE",
        "SIZE",
        "HIGHESTMODSEQ",
        "APPENDLIMIT",
        "MAILBOXID",
    }
)
"""The STATUS items Letterbox answers; the command checks nothing more."""
SEARCH_RETURN_OPTIONS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE", "CONTEXT", "UPDATE", "PARTIAL"})
_LIST_SELECT = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
_LIST_RETURN = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS", "MYRIGHTS"})


class Cursor:
    __slots__ = ("lines", "literals", "k", "s", "i")

    def __init__(self, lines: list[bytes], literals: list[LiteralData]) -> None:
        self.lines = lines
        self.literals = literals
        self.k = 0
        self.s = lines[0]
        self.i = 0

    # -- primitives ---------------------------------------------------------------------

    def fail(self, message: str) -> CommandSyntaxError:
        return CommandSyntaxError(message)

    def peek(self) -> bytes:
        return self.s[self.i : self.i + 1]

    def at_end(self) -> bool:
        return self.i == len(self.s) and self.k == len(self.lines) - 1

    def end(self) -> None:
        if not self.at_end():
            raise self.fail("Unexpected extra arguments")

    def sp(self) -> None:
        if self.s[self.i : self.i + 1] != b" ":
            raise self.fail("Missing space between arguments" if self.i < len(self.s) else "Missing arguments")
        self.i += 1

    def expect(self, char: bytes, what: str) -> None:
        if self.s[self.i : self.i + 1] != char:
            raise self.fail(f"Expected {what}")
        self.i += 1

    def match(self, regex: re.Pattern[bytes]) -> re.Match[bytes] | None:
        m = regex.match(self.s, self.i)
        if m is not None:
            self.i = m.end()
        return m

    def word(self, what: str) -> str:
        m = _WORD.match(self.s, self.i)
        if m is None:
            raise self.fail(f"Expected {what}")
        self.i = m.end()
        return m.group().decode("ascii").upper()

    def atom(self, what: str) -> bytes:
        m = _ATOM.match(self.s, self.i)
        if m is None:
            raise self.fail(f"Expected {what}")
        self.i = m.end()
        return m.group()

    # -- numbers ------------------------------------------------------------------------

    def number(self, what: str, *, nonzero: bool = False, bits64: bool = False) -> int:
        m = _DIGITS.match(self.s, self.i)
        if m is None:
            raise self.fail(f"Expected {what}")
        digits = m.group()
        if len(digits) > 19:
            raise self.fail(f"{what} out of range")
        value = int(digits)
        if value > (_MAX63 if bits64 else _MAX32) or (nonzero and value == 0):
            raise self.fail(f"{what} out of range")
        self.i = m.end()
        return value

    def sequence_set(self) -> SequenceSet:
        parsed = parse_sequence_set(self.s, self.i)
        if parsed is None:
            raise self.fail("Invalid sequence set")
        seqset, end = parsed
        if end < len(self.s) and self.s[end] not in b" )":
            raise self.fail("Invalid sequence set")
        self.i = end
        return seqset

    # -- strings ------------------------------------------------------------------------

    def quoted(self) -> bytes:
        m = _QUOTED.match(self.s, self.i)
        if m is None:
            raise self.fail("Invalid quoted string")
        self.i = m.end()
        body = m.group(1)
        if b"\\" in body:
            body = _UNESCAPE.sub(rb"\1", body)
        return body

    def literal(self) -> tuple[bytes, bool]:
        """The string literal announced at the cursor, which must end the current line."""
        data, binary = self.message_literal(binary_ok=False)
        if isinstance(data, Spooled):  # the reader spools message data only
            raise self.fail("Literal too large")
        return data, binary

    def message_literal(self, binary_ok: bool = True) -> tuple[LiteralData, bool]:
        """The literal announced at the cursor, which must end the current line; message
        data may have been spooled."""
        m = _LITERAL.match(self.s, self.i)
        if m is None or m.end() != len(self.s):
            raise self.fail("Invalid literal")
        binary = bool(m.group(1))
        if binary and not binary_ok:
            raise self.fail("literal8 is only allowed for message data")
        if self.k >= len(self.literals):
            raise IncompleteCommand()
        data = self.literals[self.k]
        if not binary and (data.has_nul if isinstance(data, Spooled) else b"\x00" in data):
            raise self.fail("NUL octet in literal (use literal8)")
        self.k += 1
        self.s = self.lines[self.k]
        self.i = 0
        return data, binary

    def string(self, what: str = "string") -> bytes:
        first = self.s[self.i : self.i + 1]
        if first == b'"':
            return self.quoted()
        if first == b"{":
            return self.literal()[0]
        raise self.fail(f"Expected {what}")

    def astring(self, what: str = "string") -> bytes:
        first = self.s[self.i : self.i + 1]
        if first == b'"':
            return self.quoted()
        if first == b"{":
            return self.literal()[0]
        m = _ASTRING_ATOM.match(self.s, self.i)
        if m is None:
            raise self.fail(f"Expected {what}")
        self.i = m.end()
        return m.group()

    def nstring(self) -> bytes | None:
        if self.s[self.i : self.i + 3].upper() == b"NIL" and not _ATOM.match(self.s, self.i + 3):
            self.i += 3
            return None
        return self.string()

    def mailbox(self) -> bytes:
        name = self.astring("mailbox name")
        # All case variants of INBOX name INBOX (RFC 9051 section 9, "mailbox").
        if len(name) == 5 and name.upper() == b"INBOX":
            return b"INBOX"
        return name

    def mailboxes(self) -> tuple[bytes, ...]:
        """One mailbox, or several in parentheses (RFC 5465 and RFC 7377
        "one-or-more-mailbox")."""
        if self.peek() != b"(":
            return (self.mailbox(),)
        self.i += 1
        names = [self.mailbox()]
        while self.peek() == b" ":
            self.i += 1
            names.append(self.mailbox())
        self.expect(b")", "')' after the mailbox names")
        return tuple(names)

    def list_mailbox(self) -> bytes:
        first = self.s[self.i : self.i + 1]
        if first == b'"':
            return self.quoted()
        if first == b"{":
            return self.literal()[0]
        m = _LIST_ATOM.match(self.s, self.i)
        if m is None:
            raise self.fail("Expected mailbox pattern")
        self.i = m.end()
        return m.group()

    def ascii_astring(self, what: str) -> str:
        raw = self.astring(what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"Invalid {what}") from None

    # -- flags and dates ----------------------------------------------------------------

    def flag(self) -> str:
        m = _FLAG.match(self.s, self.i)
        if m is None:
            raise self.fail("Invalid flag")
        self.i = m.end()
        text = m.group().decode("ascii")
        if text[0] == "\\":
            return SYSTEM_FLAGS.get(text.lower(), text)
        return text

    def flag_list(self) -> tuple[str, ...]:
        self.expect(b"(", "flag list")
        flags: list[str] = []
        if self.s[self.i : self.i + 1] != b")":
            flags.append(self.flag())
            while self.s[self.i : self.i + 1] == b" ":
                self.i += 1
                flags.append(self.flag())
        self.expect(b")", "')' closing the flag list")
        return tuple(flags)

    def date(self) -> datetime.date:
        m = _DATE.match(self.s, self.i)
        if m is None:
            raise self.fail("Invalid date")
        end = m.end()
        if m.group(1):
            if self.s[end : end + 1] != b'"':
                raise self.fail("Invalid date")
            end += 1
        month = _MONTHS.get(m.group(3).lower())
        try:
            if month is None:
                raise ValueError
            value = datetime.date(int(m.group(4)), month, int(m.group(2)))
        except ValueError:
            raise self.fail("Invalid date") from None
        self.i = end
        return value

    def date_time(self) -> datetime.datetime:
        m = _DATE_TIME.match(self.s, self.i)
        if m is None:
            raise self.fail("Invalid date-time")
        day, mon, year, hh, mm, ss, sign, zh, zm = m.groups()
        month = _MONTHS.get(mon.lower())
        try:
            if month is None or int(zm) > 59:
                raise ValueError
            offset = datetime.timedelta(hours=int(zh), minutes=int(zm))
            tz = datetime.timezone(-offset if sign == b"-" else offset)
            value = datetime.datetime(
                int(year), month, int(day), int(hh), int(mm), int(ss), tzinfo=tz
            )
        except ValueError:
            raise self.fail("Invalid date-time") from None
        self.i = m.end()
        return value

    def paren_words(self, what: str) -> list[str]:
        """``"(" word *(SP word) ")"`` as uppercase strings."""
        self.expect(b"(", f"'(' before {what}")
        words = [self.word(what)]
        while self.s[self.i : self.i + 1] == b" ":
            self.i += 1
            words.append(self.word(what))
        self.expect(b")", f"')' after {what}")
        return words


# ---------------------------------------------------------------------------------------
# Commands


def _no_args(cls: type[c.Command]) -> Callable[[Cursor, str], c.Command]:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.end()
        return cls(tag)

    return parse


def _login(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    user = cur.astring("user name")
    cur.sp()
    password = cur.astring("password")
    cur.end()
    return c.Login(tag, user, password)


def _authenticate(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    mechanism = cur.atom("SASL mechanism").decode("ascii").upper()
    initial: bytes | None = None
    if cur.peek() == b" ":
        cur.i += 1
        if cur.peek() == b"=" and cur.i + 1 == len(cur.s):
            cur.i += 1
            initial = b"="
        else:
            m = cur.match(_BASE64)
            if m is None or not m.group():
                raise cur.fail("Invalid initial response")
            initial = m.group()
    cur.end()
    return c.Authenticate(tag, mechanism, initial)


def _enable(cur: Cursor, tag: str) -> c.Command:
    caps = []
    cur.sp()
    caps.append(cur.atom("capability").decode("ascii").upper())
    while cur.peek() == b" ":
        cur.i += 1
        caps.append(cur.atom("capability").decode("ascii").upper())
    cur.end()
    return c.Enable(tag, tuple(caps))


def _known_set(cur: Cursor) -> SequenceSet:
    seqset = cur.sequence_set()
    if seqset.last_result or seqset.uses_star:
        raise cur.fail("'*' and '$' are not allowed in QRESYNC sets")
    return seqset


def _qresync(cur: Cursor) -> c.QResync:
    cur.expect(b"(", "'(' after QRESYNC")
    uidvalidity = cur.number("UIDVALIDITY", nonzero=True)
    cur.sp()
    modseq = cur.number("mod-sequence", bits64=True)
    known: SequenceSet | None = None
    match: tuple[SequenceSet, SequenceSet] | None = None
    if cur.peek() == b" ":
        cur.i += 1
        if cur.peek() != b"(":
            known = _known_set(cur)
            if cur.peek() == b" ":
                cur.i += 1
                if cur.peek() != b"(":
                    raise cur.fail("Expected '(' before sequence match data")
        if cur.peek() == b"(":
            cur.i += 1
            seqs = _known_set(cur)
            cur.sp()
            uids = _known_set(cur)
            cur.expect(b")", "')' after sequence match data")
            match = (seqs, uids)
    cur.expect(b")", "')' closing QRESYNC")
    return c.QResync(uidvalidity, modseq, known, match)


def _select(cls: type[c.Select]) -> Callable[[Cursor, str], c.Command]:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        mailbox = cur.mailbox()
        condstore = False
        qresync = None
        seen: set[str] = set()
        if cur.peek() == b" ":
            cur.i += 1
            cur.expect(b"(", "'(' before select parameters")
            while True:
                param = cur.word("select parameter")
                if param in seen:
                    raise cur.fail(f"Duplicate select parameter {param}")
                seen.add(param)
                if param == "CONDSTORE":
                    condstore = True
                elif param == "QRESYNC":
                    cur.sp()
                    qresync = _qresync(cur)
                else:
                    raise cur.fail(f"Unknown select parameter {param}")
                if cur.peek() != b" ":
                    break
                cur.i += 1
            cur.expect(b")", "')' after select parameters")
        cur.end()
        return cls(tag, mailbox, condstore, qresync)

    return parse


def _create(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    mailbox = cur.mailbox()
    uses: list[str] = []
    if cur.peek() == b" ":
        cur.i += 1
        cur.expect(b"(", "'(' before create parameters")
        param = cur.word("create parameter")
        if param != "USE":
            raise cur.fail(f"Unknown create parameter {param}")
        cur.sp()
        cur.expect(b"(", "'(' before special-use attributes")
        if cur.peek() != b")":
            while True:
                flag = cur.flag()
                if flag[0] != "\\":
                    raise cur.fail("Invalid special-use attribute")
                uses.append(SPECIAL_USE.get(flag.lower(), flag))
                if cur.peek() != b" ":
                    break
                cur.i += 1
        cur.expect(b")", "')' after special-use attributes")
        cur.expect(b")", "')' after create parameters")
    cur.end()
    return c.Create(tag, mailbox, tuple(uses))


def _mailbox_only(cls: type[c.Command]) -> Callable[[Cursor, str], c.Command]:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        mailbox = cur.mailbox()
        cur.end()
        return cls(tag, mailbox)  # type: ignore[call-arg]

    return parse


def _rename(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    old = cur.mailbox()
    cur.sp()
    new = cur.mailbox()
    cur.end()
    return c.Rename(tag, old, new)


def _status_items(cur: Cursor) -> tuple[str, ...]:
    items = cur.paren_words("status item")
    for item in items:
        if item not in STATUS_ITEMS:
            raise cur.fail(f"Unknown status item {item}")
    return tuple(dict.fromkeys(items))


def _list(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    extended = False
    selection: set[str] = set()
    if cur.peek() == b"(":
        extended = True
        cur.i += 1
        if cur.peek() != b")":
            while True:
                opt = cur.word("selection option")
                if opt not in _LIST_SELECT:
                    raise cur.fail(f"Unknown LIST selection option {opt}")
                selection.add(opt)
                if cur.peek() != b" ":
                    break
                cur.i += 1
        cur.expect(b")", "')' after selection options")
        if "RECURSIVEMATCH" in selection and "SUBSCRIBED" not in selection:
            raise cur.fail("RECURSIVEMATCH requires another selection option")
        cur.sp()
    reference = cur.astring("reference name")
    cur.sp()
    patterns: list[bytes] = []
    if cur.peek() == b"(":
        extended = True
        cur.i += 1
        patterns.append(cur.list_mailbox())
        while cur.peek() == b" ":
            cur.i += 1
            patterns.append(cur.list_mailbox())
        cur.expect(b")", "')' after mailbox patterns")
    else:
        patterns.append(cur.list_mailbox())
    returns: set[str] = set()
    status_items: tuple[str, ...] = ()
    if cur.peek() == b" ":
        cur.i += 1
        if cur.word("RETURN") != "RETURN":
            raise cur.fail("Expected RETURN")
        extended = True
        cur.sp()
        cur.expect(b"(", "'(' after RETURN")
        if cur.peek() != b")":
            while True:
                opt = cur.word("return option")
                if opt not in _LIST_RETURN:
                    raise cur.fail(f"Unknown LIST return option {opt}")
                returns.add(opt)
                if opt == "STATUS":
                    cur.sp()
                    status_items = _status_items(cur)
                if cur.peek() != b" ":
                    break
                cur.i += 1
        cur.expect(b")", "')' after return options")
    cur.end()
    return c.List(
        tag,
        reference,
        tuple(patterns),
        frozenset(selection),
        frozenset(returns),
        status_items,
        extended,
    )


def _lsub(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    reference = cur.astring("reference name")
    cur.sp()
    pattern = cur.list_mailbox()
    cur.end()
    return c.Lsub(tag, reference, pattern)


def _status(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    mailbox = cur.mailbox()
    cur.sp()
    items = _status_items(cur)
    cur.end()
    return c.Status(tag, mailbox, items)


def _append_message(cur: Cursor) -> c.AppendMessage:
    """[flag-list SP] [date-time SP] literal, after the SP that precedes them."""
    flags: tuple[str, ...] = ()
    date = None
    if cur.peek() == b"(":
        flags = cur.flag_list()
        cur.sp()
    if cur.peek() == b'"':
        date = cur.date_time()
        cur.sp()
    if cur.peek() in (b"U", b"u"):
        # RFC 6855 4: UTF8 (literal8), a message with UTF-8 header fields.
        word = cur.atom("UTF8")
        if word.upper() != b"UTF8" or cur.peek() != b" ":
            raise cur.fail("Expected message literal")
        cur.sp()
        cur.expect(b"(", "(")
        if cur.peek() != b"~":
            raise cur.fail("UTF8 needs a literal8")
        data, binary = cur.message_literal()
        cur.expect(b")", ")")
        return c.AppendMessage(data, flags, date, binary)
    if cur.peek() in (b"C", b"c"):
        if cur.word("CATENATE") != "CATENATE":
            raise cur.fail("Expected message literal or CATENATE")
        cur.sp()
        return c.AppendMessage(b"", flags, date, catenate=_cat_parts(cur))
    if cur.peek() not in (b"{", b"~"):
        raise cur.fail("Expected message literal")
    data, binary = cur.message_literal()
    return c.AppendMessage(data, flags, date, binary)


MAX_CAT_PARTS = 1000
"""Parts one CATENATE may name (each URL costs a lookup and a read)."""


def _cat_parts(cur: Cursor) -> tuple[c.CatPart, ...]:
    """"(" cat-part *(SP cat-part) ")", cat-part = "TEXT" SP literal / "URL" SP astring
    (RFC 4469 5)."""
    cur.expect(b"(", "'(' after CATENATE")
    parts: list[c.CatPart] = []
    while True:
        if len(parts) >= MAX_CAT_PARTS:
            raise cur.fail(f"At most {MAX_CAT_PARTS} CATENATE parts")
        kind = cur.word("TEXT or URL")
        cur.sp()
        if kind == "TEXT":
            if cur.peek() not in (b"{", b"~"):
                raise cur.fail("Expected a literal after TEXT")
            data, _binary = cur.message_literal()
            parts.append(c.CatText(data))
        elif kind == "URL":
            if cur.peek() == b"{":
                # Sent as a literal, the reader took it for message data: it may not be
                # held in memory only if it was too big for any URL.
                data, _binary = cur.message_literal(binary_ok=False)
                if not isinstance(data, bytes):
                    raise cur.fail("URL too long")
                parts.append(c.CatUrl(data))
            else:
                parts.append(c.CatUrl(cur.astring("URL")))
        else:
            raise cur.fail("Expected TEXT or URL")
        if cur.peek() != b" ":
            break
        cur.i += 1
    cur.expect(b")", "')' after CATENATE parts")
    return tuple(parts)


def _append(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    mailbox = cur.mailbox()
    messages = []
    while True:
        cur.sp()
        messages.append(_append_message(cur))
        if cur.at_end():
            break
    return c.Append(tag, mailbox, tuple(messages))


def _replace(uid: bool) -> Callable[[Cursor, str], c.Command]:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        number = cur.number("UID" if uid else "message sequence number", nonzero=True)
        cur.sp()
        mailbox = cur.mailbox()
        cur.sp()
        message = _append_message(cur)
        cur.end()
        return c.Replace(tag, number, mailbox, message, uid)

    return parse


def _expunge(cur: Cursor, tag: str) -> c.Command:
    cur.end()
    return c.Expunge(tag)


def _uid_expunge(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    seqset = cur.sequence_set()
    cur.end()
    return c.Expunge(tag, seqset, uid=True)


def _copy_move(cls: type[c.Copy] | type[c.Move], uid: bool) -> Callable[[Cursor, str], c.Command]:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        seqset = cur.sequence_set()
        cur.sp()
        mailbox = cur.mailbox()
        cur.end()
        return cls(tag, seqset, mailbox, uid)

    return parse


# -- FETCH ------------------------------------------------------------------------------

_FA = c.FetchAttribute
_SIMPLE_FETCH = {
    name: _FA(name)
    for name in (
        "ENVELOPE",
        "FLAGS",
        "INTERNALDATE",
        "RFC822.SIZE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.TEXT",
        "BODYSTRUCTURE",
        "UID",
        "MODSEQ",
        "EMAILID",
        "THREADID",
        "SAVEDATE",
    )
}
_FETCH_MACROS = {
    "FAST": (_FA("FLAGS"), _FA("INTERNALDATE"), _FA("RFC822.SIZE")),
    "ALL": (_FA("FLAGS"), _FA("INTERNALDATE"), _FA("RFC822.SIZE"), _FA("ENVELOPE")),
    "FULL": (_FA("FLAGS"), _FA("INTERNALDATE"), _FA("RFC822.SIZE"), _FA("ENVELOPE"), _FA("BODY")),
}
_MSGTEXT = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"})
_PREVIEW_MODIFIERS = re.compile(rb" \(([A-Za-z][A-Za-z0-9-]*(?: [A-Za-z][A-Za-z0-9-]*)*)\)")
_FETCH_MODIFIERS = frozenset({b"CHANGEDSINCE", b"VANISHED"})


def _section(cur: Cursor, binary: bool) -> c.Section:
    cur.expect(b"[", "'[' opening the section")
    part: tuple[int, ...] = ()
    text: str | None = None
    headers: tuple[str, ...] = ()
    if cur.peek() != b"]":
        m = cur.match(_SECTION_PART)
        if m is not None:
            part = tuple(int(p) for p in m.group().split(b"."))
            if any(p > _MAX32 for p in part):
                raise cur.fail("Invalid section part number")
            if not binary and cur.peek() == b".":
                cur.i += 1
                text, headers = _section_text(cur, mime_ok=True)
        elif binary:
            raise cur.fail("Invalid binary section")
        else:
            text, headers = _section_text(cur, mime_ok=False)
    cur.expect(b"]", "']' closing the section")
    return c.Section(part, text, headers)


def _section_text(cur: Cursor, mime_ok: bool) -> tuple[str, tuple[str, ...]]:
    m = cur.match(_SECTION_TEXT)
    text = m.group().decode("ascii").upper() if m is not None else ""
    if text not in _MSGTEXT and not (mime_ok and text == "MIME"):
        raise cur.fail("Invalid section")
    if not text.startswith("HEADER.FIELDS"):
        return text, ()
    cur.sp()
    cur.expect(b"(", "'(' before header field names")
    names = [cur.ascii_astring("header field name")]
    while cur.peek() == b" ":
        cur.i += 1
        names.append(cur.ascii_astring("header field name"))
    cur.expect(b")", "')' after header field names")
    return text, tuple(names)


def _fetch_att(cur: Cursor) -> c.FetchAttribute:
    name = cur.word("fetch attribute")
    simple = _SIMPLE_FETCH.get(name)
    if simple is not None:
        return simple
    if name == "BODY":
        if cur.peek() != b"[":
            return _FA("BODY")
        section = _section(cur, False)
        return _FA("BODY", section, _partial(cur))
    if name == "BODY.PEEK":
        section = _section(cur, False)
        return _FA("BODY", section, _partial(cur), peek=True)
    if name in ("BINARY", "BINARY.PEEK"):
        section = _section(cur, True)
        return _FA("BINARY", section, _partial(cur), peek=name == "BINARY.PEEK")
    if name == "BINARY.SIZE":
        return _FA("BINARY.SIZE", _section(cur, True))
    if name == "PREVIEW":
        return _FA("PREVIEW", lazy=_preview_modifiers(cur))
    raise cur.fail(f"Unknown fetch attribute {name}")


def _preview_modifiers(cur: Cursor) -> bool:
    """RFC 8970 6: ``PREVIEW [SP "(" preview-mod *(SP preview-mod) ")"]``, preview-mod
    "LAZY"; True if LAZY is given. After a lone PREVIEW (no parenthesized list) a "("
    may open the FETCH modifiers instead: it is PREVIEW's when it holds only words and
    not a FETCH modifier's (CHANGEDSINCE takes a number, VANISHED needs it)."""
    m = _PREVIEW_MODIFIERS.match(cur.s, cur.i)
    if m is None:
        return False
    words = m.group(1).upper().split(b" ")
    if words[0] in _FETCH_MODIFIERS:
        return False
    cur.i = m.end()
    for word in words:
        if word != b"LAZY":
            raise cur.fail(f"Unknown preview modifier {word.decode('ascii')}")
    return True


def _partial(cur: Cursor) -> tuple[int, int] | None:
    if cur.peek() != b"<":
        return None
    m = cur.match(_PARTIAL)
    if m is None:
        raise cur.fail("Invalid partial range")
    offset, length = m.group(1), m.group(2)
    if len(offset) > 19 or len(length) > 19:
        raise cur.fail("Partial range out of range")
    start, count = int(offset), int(length)
    if count == 0 or start > _MAX63 or count > _MAX63:
        raise cur.fail("Invalid partial range")
    return start, count


def _fetch(uid: bool) -> Callable[[Cursor, str], c.Command]:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        seqset = cur.sequence_set()
        cur.sp()
        attributes: tuple[c.FetchAttribute, ...]
        if cur.peek() == b"(":
            cur.i += 1
            atts = [_fetch_att(cur)]
            while cur.peek() == b" ":
                cur.i += 1
                atts.append(_fetch_att(cur))
            cur.expect(b")", "')' after fetch attributes")
            attributes = tuple(atts)
        else:
            save = cur.i
            word = cur.word("fetch attribute")
            macro = _FETCH_MACROS.get(word)
            if macro is not None:
                attributes = macro
            else:
                cur.i = save
                attributes = (_fetch_att(cur),)
        changedsince = None
        vanished = False
        partial = None
        if cur.peek() == b" ":
            cur.i += 1
            seen: set[str] = set()
            cur.expect(b"(", "'(' before fetch modifiers")
            while True:
                modifier = cur.word("fetch modifier")
                if modifier in seen:
                    raise cur.fail(f"Duplicate fetch modifier {modifier}")
                seen.add(modifier)
                if modifier == "CHANGEDSINCE":
                    cur.sp()
                    changedsince = cur.number("mod-sequence", bits64=True)
                elif modifier == "VANISHED" and uid:
                    vanished = True
                elif modifier == "PARTIAL":
                    cur.sp()
                    partial = partial_range(cur)  # RFC 9394 3.3
                else:
                    raise cur.fail(f"Unknown fetch modifier {modifier}")
                if cur.peek() != b" ":
                    break
                cur.i += 1
            cur.expect(b")", "')' after fetch modifiers")
            # RFC 7162 3.2.6: VANISHED is only meaningful together with CHANGEDSINCE.
            if vanished and changedsince is None:
                raise cur.fail("VANISHED requires CHANGEDSINCE")
        cur.end()
        return c.Fetch(tag, seqset, attributes, uid, changedsince, vanished, partial)

    return parse


# -- STORE ------------------------------------------------------------------------------

_STORE_ACTION = re.compile(rb"([+-]?)FLAGS(\.SILENT)?(?= |$)", re.IGNORECASE)


def _store(uid: bool) -> Callable[[Cursor, str], c.Command]:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        seqset = cur.sequence_set()
        cur.sp()
        unchangedsince = None
        if cur.peek() == b"(":
            cur.i += 1
            modifier = cur.word("store modifier")
            if modifier != "UNCHANGEDSINCE":
                raise cur.fail(f"Unknown store modifier {modifier}")
            cur.sp()
            unchangedsince = cur.number("mod-sequence", bits64=True)
            cur.expect(b")", "')' after store modifiers")
            cur.sp()
        m = cur.match(_STORE_ACTION)
        if m is None:
            raise cur.fail("Expected FLAGS, +FLAGS or -FLAGS")
        cur.sp()
        if cur.peek() == b"(":
            flags = cur.flag_list()
        else:
            found = [cur.flag()]
            while cur.peek() == b" ":
                cur.i += 1
                found.append(cur.flag())
            flags = tuple(found)
        cur.end()
        return c.Store(
            tag,
            seqset,
            m.group(1).decode("ascii"),
            flags,
            m.group(2) is not None,
            uid,
            unchangedsince,
        )

    return parse


# -- SEARCH -----------------------------------------------------------------------------

# Search keys without an argument: the flag keys, and SAVEDATESUPPORTED (RFC 8514 4.3).
_SEARCH_SIMPLE: dict[str, c.SearchKey] = {
    "ALL": c.SearchAll(),
    "ANSWERED": c.SearchFlag("\\Answered"),
    "DELETED": c.SearchFlag("\\Deleted"),
    "DRAFT": c.SearchFlag("\\Draft"),
    "FLAGGED": c.SearchFlag("\\Flagged"),
    "SEEN": c.SearchFlag("\\Seen"),
    "RECENT": c.SearchFlag("\\Recent"),
    "UNANSWERED": c.SearchFlag("\\Answered", False),
    "UNDELETED": c.SearchFlag("\\Deleted", False),
    "UNDRAFT": c.SearchFlag("\\Draft", False),
    "UNFLAGGED": c.SearchFlag("\\Flagged", False),
    "UNSEEN": c.SearchFlag("\\Seen", False),
    "OLD": c.SearchFlag("\\Recent", False),
    "NEW": c.SearchAnd((c.SearchFlag("\\Recent"), c.SearchFlag("\\Seen", False))),
    "SAVEDATESUPPORTED": c.SearchSaveDateSupported(),
}
_SEARCH_STRINGS = frozenset({"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"})
_SEARCH_DATES = frozenset(
    {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE", "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE"}
)
_ENTRY_TYPES = frozenset({"PRIV", "SHARED", "ALL"})


def _search_key(cur: Cursor, depth: int) -> c.SearchKey:
    if depth > MAX_NESTING:
        raise cur.fail("Search keys nested too deeply")
    first = cur.peek()
    if first == b"(":
        cur.i += 1
        keys = [_search_key(cur, depth + 1)]
        while cur.peek() == b" ":
            cur.i += 1
            keys.append(_search_key(cur, depth + 1))
        cur.expect(b")", "')' closing the search key list")
        return keys[0] if len(keys) == 1 else c.SearchAnd(tuple(keys))
    if first and first in b"0123456789*$":
        return c.SearchSet(cur.sequence_set())
    key = cur.word("search key")
    simple = _SEARCH_SIMPLE.get(key)
    if simple is not None:
        return simple
    cur.sp()
    if key in _SEARCH_STRINGS:
        return c.SearchString(key, cur.astring())
    if key in _SEARCH_DATES:
        return c.SearchDate(key, cur.date())
    if key == "HEADER":
        name = cur.ascii_astring("header field name")
        cur.sp()
        return c.SearchHeader(name, cur.astring())
    if key in ("LARGER", "SMALLER"):
        return c.SearchSize(key == "LARGER", cur.number("size", bits64=True))
    if key in ("KEYWORD", "UNKEYWORD"):
        flag = cur.atom("keyword").decode("ascii")
        return c.SearchFlag(SYSTEM_FLAGS.get(flag.lower(), flag), key == "KEYWORD")
    if key == "NOT":
        return c.SearchNot(_search_key(cur, depth + 1))
    if key == "OR":
        left = _search_key(cur, depth + 1)
        cur.sp()
        return c.SearchOr(left, _search_key(cur, depth + 1))
    if key == "UID":
        return c.SearchSet(cur.sequence_set(), uid=True)
    if key == "MODSEQ":
        entry_name = None
        entry_type = None
        if cur.peek() == b'"':
            entry_name = cur.quoted()
            cur.sp()
            entry_type = cur.word("entry type")
            if entry_type not in _ENTRY_TYPES:
                raise cur.fail("Invalid MODSEQ entry type")
            cur.sp()
        return c.SearchModSeq(cur.number("mod-sequence", bits64=True), entry_name, entry_type)
    if key in ("OLDER", "YOUNGER"):
        return c.SearchAge(key == "OLDER", cur.number("interval", nonzero=True))
    if key in ("EMAILID", "THREADID"):
        # An objectid is an atom; a quoted one is taken too.
        value = cur.astring().decode("ascii", "replace")
        if not _OBJECTID.fullmatch(value):
            raise cur.fail("Invalid object identifier")
        return c.SearchObjectId(key, value)
    raise cur.fail(f"Unknown search key {key}")


def partial_range(cur: Cursor) -> c.PartialRange:
    """``partial-range``: RFC 9394's grammar governs, RFC 5267's ``nz-number ":"
    nz-number`` being its first half; it adds ``-n:-m``, counted from the last result.
    Both numbers have one sign and fit in 32 bits; no ``*``."""
    m = cur.match(_PARTIAL_RANGE)
    if m is None or m.group(1) != m.group(3):
        raise cur.fail("Invalid PARTIAL range")
    first, last = int(m.group(2)), int(m.group(4))
    if first > _MAX32 or last > _MAX32:
        raise cur.fail("PARTIAL range out of range")
    sign = -1 if m.group(1) else 1
    return c.PartialRange(sign * first, sign * last)


def return_option_list(
    cur: Cursor, allowed: frozenset[str], what: str
) -> tuple[tuple[str, ...], c.PartialRange | None]:
    """"(" [option *(SP option)] ")" after RETURN (RFC 4731, RFC 5267, RFC 9394), each
    in *allowed*, and PARTIAL's range; repeats dropped. One PARTIAL at most, never with
    ALL (RFC 5267 4.4)."""
    cur.expect(b"(", "'(' after RETURN")
    options: list[str] = []
    partial: c.PartialRange | None = None
    if cur.peek() != b")":
        while True:
            option = cur.word("return option")
            if option not in allowed:
                raise cur.fail(f"Unknown {what} return option {option}")
            if option == "PARTIAL":
                if partial is not None:
                    raise cur.fail("PARTIAL may be given once")
                cur.sp()
                partial = partial_range(cur)
            options.append(option)
            if cur.peek() != b" ":
                break
            cur.i += 1
    cur.expect(b")", "')' after return options")
    if partial is not None and "ALL" in options:
        raise cur.fail("PARTIAL and ALL cannot be combined")
    return tuple(dict.fromkeys(options)), partial


def search_program(
    cur: Cursor,
) -> tuple[tuple[str, ...] | None, c.PartialRange | None, str | None, c.SearchKey]:
    """``[RETURN (options) SP] [CHARSET charset SP] search-key *(SP search-key)`` to the
    command's end, as SEARCH and ESEARCH (RFC 7377) take it: (return options, PARTIAL's
    range, charset, key)."""
    return_options: tuple[str, ...] | None = None
    partial: c.PartialRange | None = None
    charset = None
    save = cur.i
    word = cur.word("search key") if cur.peek().isalpha() else ""
    if word == "RETURN":
        cur.sp()
        return_options, partial = return_option_list(cur, SEARCH_RETURN_OPTIONS, "search")
        cur.sp()
        save = cur.i
        word = cur.word("search key") if cur.peek().isalpha() else ""
    if word == "CHARSET":
        cur.sp()
        raw = cur.quoted() if cur.peek() == b'"' else cur.atom("charset")
        try:
            charset = raw.decode("ascii").upper()
        except UnicodeDecodeError:
            raise cur.fail("Invalid charset") from None
        cur.sp()
    else:
        cur.i = save
    keys = [_search_key(cur, 0)]
    while cur.peek() == b" ":
        cur.i += 1
        keys.append(_search_key(cur, 0))
    cur.end()
    return return_options, partial, charset, keys[0] if len(keys) == 1 else c.SearchAnd(tuple(keys))


def _search(uid: bool) -> Callable[[Cursor, str], c.Command]:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        return_options, partial, charset, key = search_program(cur)
        return c.Search(tag, key, uid, charset, return_options, partial)

    return parse


def _cancelupdate(cur: Cursor, tag: str) -> c.Command:
    """``"CANCELUPDATE" 1*(SP quoted)`` (RFC 5267 5)."""
    tags: list[str] = []
    while not cur.at_end():
        cur.sp()
        if cur.peek() != b'"':
            raise cur.fail("CANCELUPDATE takes quoted tags")
        tags.append(cur.quoted().decode("utf-8", "replace"))
    if not tags:
        raise cur.fail("Missing arguments")
    return c.CancelUpdate(tag, tuple(dict.fromkeys(tags)))


# -- ID and QUOTA ----------------------------------------------------------------------


def _id(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    params: tuple[tuple[str, str | None], ...] | None = None
    if cur.peek() == b"(":
        cur.i += 1
        pairs: list[tuple[str, str | None]] = []
        while cur.peek() != b")":
            if pairs:
                cur.sp()
            key = cur.string("ID field name").decode("utf-8", "replace")
            cur.sp()
            value = cur.nstring()
            pairs.append((key, None if value is None else value.decode("utf-8", "replace")))
        cur.i += 1
        params = tuple(pairs)
    elif cur.word("ID parameter list") != "NIL":
        raise cur.fail("Expected ID parameter list or NIL")
    cur.end()
    return c.Id(tag, params)


def _getquota(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    root = cur.astring("quota root")
    cur.end()
    return c.GetQuota(tag, root)


def _setquota(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    root = cur.astring("quota root")
    cur.sp()
    cur.expect(b"(", "'(' before quota limits")
    limits: list[tuple[str, int]] = []
    while cur.peek() != b")":
        if limits:
            cur.sp()
        resource = cur.atom("resource name").decode("ascii").upper()
        cur.sp()
        limits.append((resource, cur.number("resource limit", bits64=True)))
    cur.i += 1
    cur.end()
    return c.SetQuota(tag, root, tuple(limits))


# -- ACL (RFC 4314) ---------------------------------------------------------------------


def _setacl(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    mailbox = cur.mailbox()
    cur.sp()
    identifier = cur.astring("identifier")
    cur.sp()
    rights = cur.astring("rights")
    cur.end()
    return c.SetAcl(tag, mailbox, identifier, rights)


def _with_identifier(cls: type[c.DeleteAcl] | type[c.ListRights]) -> Callable[[Cursor, str], c.Command]:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        mailbox = cur.mailbox()
        cur.sp()
        identifier = cur.astring("identifier")
        cur.end()
        return cls(tag, mailbox, identifier)

    return parse


def _compress(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    mechanism = cur.atom("compression mechanism").decode("ascii").upper()
    cur.end()
    return c.Compress(tag, mechanism)


# ---------------------------------------------------------------------------------------

Parser = Callable[[Cursor, str], c.Command]

COMMANDS: dict[bytes, Parser] = {
    b"CAPABILITY": _no_args(c.Capability),
    b"NOOP": _no_args(c.Noop),
    b"LOGOUT": _no_args(c.Logout),
    b"STARTTLS": _no_args(c.StartTLS),
    b"COMPRESS": _compress,
    b"UNAUTHENTICATE": _no_args(c.Unauthenticate),
    b"AUTHENTICATE": _authenticate,
    b"LOGIN": _login,
    b"ENABLE": _enable,
    b"SELECT": _select(c.Select),
    b"EXAMINE": _select(c.Examine),
    b"CREATE": _create,
    b"DELETE": _mailbox_only(c.Delete),
    b"RENAME": _rename,
    b"SUBSCRIBE": _mailbox_only(c.Subscribe),
    b"UNSUBSCRIBE": _mailbox_only(c.Unsubscribe),
    b"LIST": _list,
    b"LSUB": _lsub,
    b"NAMESPACE": _no_args(c.Namespace),
    b"STATUS": _status,
    b"APPEND": _append,
    b"REPLACE": _replace(False),
    b"IDLE": _no_args(c.Idle),
    b"CHECK": _no_args(c.Check),
    b"CLOSE": _no_args(c.Close),
    b"UNSELECT": _no_args(c.Unselect),
    b"EXPUNGE": _expunge,
    b"SEARCH": _search(False),
    b"CANCELUPDATE": _cancelupdate,
    b"FETCH": _fetch(False),
    b"STORE": _store(False),
    b"COPY": _copy_move(c.Copy, False),
    b"MOVE": _copy_move(c.Move, False),
    b"ID": _id,
    b"GETQUOTA": _getquota,
    b"GETQUOTAROOT": _mailbox_only(c.GetQuotaRoot),
    b"SETQUOTA": _setquota,
    b"SETACL": _setacl,
    b"DELETEACL": _with_identifier(c.DeleteAcl),
    b"GETACL": _mailbox_only(c.GetAcl),
    b"LISTRIGHTS": _with_identifier(c.ListRights),
    b"MYRIGHTS": _mailbox_only(c.MyRights),
}

UID_COMMANDS: dict[bytes, Parser] = {
    b"COPY": _copy_move(c.Copy, True),
    b"MOVE": _copy_move(c.Move, True),
    b"FETCH": _fetch(True),
    b"REPLACE": _replace(True),
    b"SEARCH": _search(True),
    b"STORE": _store(True),
    b"EXPUNGE": _uid_expunge,
}

# SORT and THREAD (RFC 5256, 5267, 5957) and ESEARCH (RFC 7377) have modules of their
# own, which use this one's.
from . import esearch as _esearch  # noqa: E402
from . import sort as _sort  # noqa: E402

COMMANDS.update(_sort.COMMANDS)
UID_COMMANDS.update(_sort.UID_COMMANDS)
COMMANDS.update(_esearch.COMMANDS)
UID_COMMANDS.update(_esearch.UID_COMMANDS)

# So have GETMETADATA and SETMETADATA (RFC 5464).
from . import metadata as _metadata  # noqa: E402

COMMANDS.update(_metadata.COMMANDS)

# NOTIFY (RFC 5465) likewise.
from . import notify as _notify  # noqa: E402

COMMANDS.update(_notify.COMMANDS)


def _printable(name: bytes) -> str:
    text = name[:40].decode("ascii")
    return text + "..." if len(name) > 40 else text


def parse_command(lines: list[bytes], literals: list[LiteralData]) -> c.Command:
    """Parse one command; raises CommandSyntaxError (with ``tag`` when known).

    Raises IncompleteCommand when the last line announces a literal that the parse
    actually reached, i.e. the command is valid so far.
    """
    cur = Cursor(lines, literals)
    m = cur.match(TAG_RE)
    if m is None or cur.peek() != b" ":
        raise CommandSyntaxError("Missing or invalid tag")
    tag = m.group().decode("ascii")
    try:
        cur.i += 1
        name = cur.atom("command name")
        table = COMMANDS
        upper = name.upper()
        if upper == b"UID":
            cur.sp()
            name = cur.atom("command name after UID")
            upper = name.upper()
            table = UID_COMMANDS
            parser = table.get(upper)
            if parser is None:
                raise UnknownCommand(f"Unknown command UID {_printable(name)}")
        else:
            parser = table.get(upper)
            if parser is None:
                raise UnknownCommand(f"Unknown command {_printable(name)}")
        return parser(cur, tag)
    except CommandSyntaxError as exc:
        exc.tag = tag
        raise
