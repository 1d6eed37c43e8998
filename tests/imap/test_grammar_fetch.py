"""FETCH attributes and modifiers, STORE forms."""

from __future__ import annotations

import pytest

from letterbox.imap.grammar import (
    Command,
    CommandReader,
    Fetch,
    FetchAttribute,
    NeedContinuation,
    ParseError,
    Section,
    SequenceSet,
    Store,
)

FA = FetchAttribute


def parse(line: bytes) -> Command:
    reader = CommandReader()
    reader.feed(line + b"\r\n")
    event = reader.next_event()
    while isinstance(event, NeedContinuation):
        event = reader.next_event()
    assert isinstance(event, Command), event
    return event


def fetch(line: bytes) -> Fetch:
    cmd = parse(line)
    assert isinstance(cmd, Fetch)
    return cmd


def is_error(line: bytes) -> bool:
    reader = CommandReader()
    reader.feed(line + b"\r\n")
    event = reader.next_event()
    while isinstance(event, NeedContinuation):
        event = reader.next_event()
    return isinstance(event, ParseError) and event.tag == "a"


def atts(text: bytes) -> tuple[FetchAttribute, ...]:
    return fetch(b"a FETCH 1 " + text).attributes


def test_macros_expand() -> None:
    assert [a.name for a in atts(b"FAST")] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]
    assert [a.name for a in atts(b"all")] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]
    assert [a.name for a in atts(b"FULL")] == [
        "FLAGS",
        "INTERNALDATE",
        "RFC822.SIZE",
        "ENVELOPE",
        "BODY",
    ]
    # Macros cannot be combined with other items.
    assert is_error(b"a FETCH 1 (ALL)")
    assert is_error(b"a FETCH 1 (FLAGS FAST)")


@pytest.mark.parametrize(
    "name",
    [
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
        "BODY",
    ],
)
def test_simple_attributes(name: str) -> None:
    assert atts(name.lower().encode()) == (FA(name),)
    assert atts(b"(" + name.encode() + b")") == (FA(name),)


def test_body_sections() -> None:
    assert atts(b"BODY[]") == (FA("BODY", Section()),)
    assert atts(b"BODY.PEEK[]<0.2048>") == (FA("BODY", Section(), (0, 2048), peek=True),)
    assert atts(b"body[text]") == (FA("BODY", Section((), "TEXT")),)
    assert atts(b"BODY[HEADER]") == (FA("BODY", Section((), "HEADER")),)
    assert atts(b"BODY[1]") == (FA("BODY", Section((1,))),)
    assert atts(b"BODY[1.2.3]") == (FA("BODY", Section((1, 2, 3))),)
    assert atts(b"BODY[4.2.MIME]") == (FA("BODY", Section((4, 2), "MIME")),)
    assert atts(b"BODY[3.HEADER]") == (FA("BODY", Section((3,), "HEADER")),)
    assert atts(b"BODY[2.TEXT]<10.5>") == (FA("BODY", Section((2,), "TEXT"), (10, 5)),)
    assert atts(b"BODY.PEEK[HEADER.FIELDS (DATE FROM)]") == (
        FA("BODY", Section((), "HEADER.FIELDS", ("DATE", "FROM")), peek=True),
    )
    assert atts(b'BODY[1.HEADER.FIELDS.NOT ("X-Spam" {4}\r\nList)]') == (
        FA("BODY", Section((1,), "HEADER.FIELDS.NOT", ("X-Spam", "List"))),
    )


def test_binary_items() -> None:
    assert atts(b"BINARY[]") == (FA("BINARY", Section()),)
    assert atts(b"BINARY.PEEK[1.2]<0.100>") == (FA("BINARY", Section((1, 2)), (0, 100), peek=True),)
    assert atts(b"BINARY.SIZE[3]") == (FA("BINARY.SIZE", Section((3,))),)


def test_many_attributes_and_modifiers() -> None:
    cmd = fetch(
        b"a UID FETCH 300:500 (FLAGS UID BODY.PEEK[HEADER.FIELDS (From To Subject)] MODSEQ)"
        b" (CHANGEDSINCE 12345 VANISHED)"
    )
    assert cmd.uid and cmd.vanished and cmd.changedsince == 12345
    assert cmd.sequence_set == SequenceSet.parse("300:500")
    assert [a.name for a in cmd.attributes] == ["FLAGS", "UID", "BODY", "MODSEQ"]
    assert fetch(b"a FETCH 1:* FLAGS (CHANGEDSINCE 0)").changedsince == 0


@pytest.mark.parametrize(
    "line",
    [
        b"a FETCH 1",
        b"a FETCH 1 ()",
        b"a FETCH 1 (FLAGS",
        b"a FETCH 1 FLAGS)",
        b"a FETCH 1 (FLAGS  UID)",
        b"a FETCH 1 BOGUS",
        b"a FETCH 1 BODY[MIME]",
        b"a FETCH 1 BODY[0]",
        b"a FETCH 1 BODY[1.0]",
        b"a FETCH 1 BODY[01]",
        b"a FETCH 1 BODY[1.]",
        b"a FETCH 1 BODY[HEADER.FIELDS]",
        b"a FETCH 1 BODY[HEADER.FIELDS ()]",
        b"a FETCH 1 BODY[TEXT.MIME]",
        b"a FETCH 1 BODY[1]<0.0>",
        b"a FETCH 1 BODY[1]<5>",
        b"a FETCH 1 BODY[1]<-1.5>",
        b"a FETCH 1 BODY.PEEK",
        b"a FETCH 1 BINARY[TEXT]",
        b"a FETCH 1 BINARY.SIZE[1]<0.5>",
        b"a FETCH 1 BODY[1",
        b"a FETCH 1 FLAGS (VANISHED)",
        b"a UID FETCH 1 FLAGS (VANISHED)",
        b"a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)",
        b"a FETCH 1 FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)",
        b"a FETCH 1 FLAGS (CHANGEDSINCE x)",
        b"a FETCH 1 FLAGS (BOGUS)",
        b"a FETCH 0 FLAGS",
        b"a FETCH 1, FLAGS",
        b"a FETCH 4294967296 FLAGS",
        b"a FETCH 1:2:3 FLAGS",
        b"a FETCH * FLAGS extra",
    ],
)
def test_fetch_errors(line: bytes) -> None:
    assert is_error(line)


def test_response_names() -> None:
    names = [a.response_name() for a in atts(
        b"(BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.100> BODY[] BINARY.PEEK[2]<5.7> "
        b"BINARY.SIZE[] RFC822 BODY)"
    )]
    assert names == [
        "BODY[1.2.HEADER.FIELDS (From To)]<0>",
        "BODY[]",
        "BINARY[2]<5>",
        "BINARY.SIZE[]",
        "RFC822",
        "BODY",
    ]


def test_sets_seen() -> None:
    flags = [a.sets_seen for a in atts(
        b"(BODY[] BODY.PEEK[] RFC822 RFC822.HEADER RFC822.TEXT BINARY[1] BINARY.PEEK[1] "
        b"BINARY.SIZE[1] BODY FLAGS)"
    )]
    assert flags == [True, False, True, False, True, True, False, False, False, False]


# -- STORE ------------------------------------------------------------------------------


def test_store_forms() -> None:
    seq = SequenceSet.parse("2:4")
    assert parse(b"a STORE 2:4 +FLAGS (\\Deleted)") == Store("a", seq, "+", ("\\Deleted",))
    assert parse(b"a STORE 2:4 -flags.silent \\seen $Label") == Store(
        "a", seq, "-", ("\\Seen", "$Label"), silent=True
    )
    assert parse(b"a STORE 2:4 FLAGS ()") == Store("a", seq, "", ())
    assert parse(b"a UID STORE 2:4 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)") == Store(
        "a", seq, "+", ("\\Deleted",), silent=True, uid=True, unchangedsince=320162338
    )
    assert parse(b"a STORE 2:4 (UNCHANGEDSINCE 0) FLAGS \\Draft") == Store(
        "a", seq, "", ("\\Draft",), unchangedsince=0
    )


@pytest.mark.parametrize(
    "line",
    [
        b"a STORE 1 FLAGS",
        b"a STORE 1 +FLAGS",
        b"a STORE 1 *FLAGS (\\Seen)",
        b"a STORE 1 FLAGSX (\\Seen)",
        b"a STORE 1 FLAGS.LOUD (\\Seen)",
        b"a STORE 1 FLAGS (\\*)",
        b"a STORE 1 FLAGS (\\)",
        b"a STORE 1 FLAGS (a b",
        b"a STORE 1 (FOO 1) FLAGS (\\Seen)",
        b"a STORE 1 (UNCHANGEDSINCE) FLAGS (\\Seen)",
        b"a STORE FLAGS (\\Seen)",
    ],
)
def test_store_errors(line: bytes) -> None:
    assert is_error(line)
