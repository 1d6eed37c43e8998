"""Parsing of each command other than FETCH, STORE and SEARCH."""

from __future__ import annotations

import datetime

import pytest

from letterbox.imap.grammar import (
    Append,
    AppendMessage,
    Authenticate,
    Capability,
    Check,
    Close,
    Command,
    CommandReader,
    Copy,
    Create,
    Delete,
    DeleteAcl,
    Enable,
    Examine,
    Expunge,
    GetAcl,
    GetQuota,
    GetQuotaRoot,
    Id,
    Idle,
    List,
    ListRights,
    Login,
    Logout,
    Lsub,
    Move,
    MyRights,
    Namespace,
    NeedContinuation,
    Noop,
    ParseError,
    QResync,
    Rename,
    Select,
    SequenceSet,
    SetAcl,
    SetQuota,
    StartTLS,
    Status,
    Subscribe,
    Unselect,
    Unsubscribe,
)


def parse(data: bytes) -> Command:
    reader = CommandReader()
    reader.feed(data if data.endswith(b"\n") else data + b"\r\n")
    while True:
        event = reader.next_event()
        if isinstance(event, NeedContinuation):
            continue
        assert isinstance(event, Command), event
        assert reader.next_event() is None
        return event


def error(data: bytes) -> ParseError:
    reader = CommandReader()
    reader.feed(data + b"\r\n")
    while True:
        event = reader.next_event()
        if isinstance(event, NeedContinuation):
            continue
        assert isinstance(event, ParseError), event
        return event


def S(text: str) -> SequenceSet:
    return SequenceSet.parse(text)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"a CAPABILITY", Capability("a")),
        (b"a noop", Noop("a")),
        (b"a LOGOUT", Logout("a")),
        (b"a STARTTLS", StartTLS("a")),
        (b"a NAMESPACE", Namespace("a")),
        (b"a IDLE", Idle("a")),
        (b"a CHECK", Check("a")),
        (b"a CLOSE", Close("a")),
        (b"a UNSELECT", Unselect("a")),
        (b"a EXPUNGE", Expunge("a")),
    ],
)
def test_commands_without_arguments(line: bytes, expected: Command) -> None:
    assert parse(line) == expected
    assert error(line + b" x").tag == "a"


def test_tags_may_contain_odd_characters() -> None:
    assert parse(b"A.1-]x! NOOP") == Noop("A.1-]x!")


def test_login_astring_forms() -> None:
    assert parse(b"a LOGIN fred secret") == Login("a", b"fred", b"secret")
    assert parse(b'a LOGIN "fred smith" "se\\\\cr\\"et"') == Login("a", b"fred smith", b'se\\cr"et')
    assert parse(b'a LOGIN "" {0}\r\n\r\n') == Login("a", b"", b"")
    # resp-specials "]" is an ASTRING-CHAR.
    assert parse(b"a LOGIN ]x[ y") == Login("a", b"]x[", b"y")


@pytest.mark.parametrize(
    "line",
    [
        b"a LOGIN fred",
        b'a LOGIN "fred secret',
        b'a LOGIN "a\\b" c',  # only \\ and \" are valid escapes
        b"a LOGIN fr%d x",
        b"a LOGIN fr*d x",
        b"a LOGIN (x) y",
        b"a LOGIN x y z",
    ],
)
def test_login_errors(line: bytes) -> None:
    assert error(line).tag == "a"


def test_authenticate() -> None:
    assert parse(b"a AUTHENTICATE plain") == Authenticate("a", "PLAIN")
    assert parse(b"a AUTHENTICATE PLAIN =") == Authenticate("a", "PLAIN", b"=")
    assert parse(b"a AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=") == Authenticate(
        "a", "PLAIN", b"AGJvYgBzZWNyZXQ="
    )
    token = b"biwsbj11c2VyLHI9ZnlrbytkMmxiYkZnT05Sdjlxa3hkYXdM"
    assert parse(b"a AUTHENTICATE SCRAM-SHA-256 " + token) == Authenticate("a", "SCRAM-SHA-256", token)
    for bad in (b"a AUTHENTICATE", b"a AUTHENTICATE PLAIN AGJ", b"a AUTHENTICATE PLAIN a=b", b"a AUTHENTICATE PLAIN =="):
        assert error(bad).tag == "a"


def test_enable() -> None:
    assert parse(b"a ENABLE condstore UTF8=ACCEPT") == Enable("a", ("CONDSTORE", "UTF8=ACCEPT"))
    assert error(b"a ENABLE").tag == "a"


def test_select_and_examine() -> None:
    assert parse(b"a SELECT INBOX") == Select("a", b"INBOX")
    assert parse(b'a select "iNbOx"') == Select("a", b"INBOX")
    assert parse(b"a SELECT inbox/sub") == Select("a", b"inbox/sub")
    cmd = parse(b"a EXAMINE Archive (CONDSTORE)")
    assert cmd == Examine("a", b"Archive", condstore=True)
    assert isinstance(cmd, Select) and cmd.readonly and not Select.readonly


def test_select_qresync() -> None:
    cmd = parse(b"A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))")
    assert cmd == Select(
        "A02", b"INBOX", qresync=QResync(67890007, 20050715194045000, S("41,43:211,214:541"))
    )
    cmd = parse(
        b"B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997)))"
    )
    assert isinstance(cmd, Select) and cmd.qresync is not None
    assert cmd.qresync.known_uids == S("1:29997")
    assert cmd.qresync.seq_match is not None
    assert cmd.qresync.seq_match[0] == S("5000,7500,9000,9990:9999")
    cmd = parse(b"a SELECT INBOX (CONDSTORE QRESYNC (1 2 (1:3 4:6)))")
    assert isinstance(cmd, Select) and cmd.condstore
    assert cmd.qresync == QResync(1, 2, None, (S("1:3"), S("4:6")))
    assert parse(b"a SELECT INBOX (QRESYNC (1 2))") == Select("a", b"INBOX", qresync=QResync(1, 2))


@pytest.mark.parametrize(
    "line",
    [
        b"a SELECT INBOX ()",
        b"a SELECT INBOX (FOO)",
        b"a SELECT INBOX (CONDSTORE CONDSTORE)",
        b"a SELECT INBOX (QRESYNC (0 2))",
        b"a SELECT INBOX (QRESYNC (1 2 1:*))",
        b"a SELECT INBOX (QRESYNC (1 2 1:4 5))",
        b"a SELECT INBOX (QRESYNC (1))",
    ],
)
def test_select_errors(line: bytes) -> None:
    assert error(line).tag == "a"


def test_create_with_special_use() -> None:
    assert parse(b"a CREATE foo/bar") == Create("a", b"foo/bar")
    assert parse(b"a CREATE MySpecialArchive (USE (\\archive \\Sent))") == Create(
        "a", b"MySpecialArchive", ("\\Archive", "\\Sent")
    )
    assert parse(b"a CREATE x (USE ())") == Create("a", b"x")
    assert error(b"a CREATE x (USE (Junk))").tag == "a"
    assert error(b"a CREATE x (FOO)").tag == "a"


def test_mailbox_commands() -> None:
    assert parse(b"a DELETE {3}\r\nfoo") == Delete("a", b"foo")
    assert parse(b'a RENAME "old box" new') == Rename("a", b"old box", b"new")
    assert parse(b"a SUBSCRIBE &AOQ-") == Subscribe("a", b"&AOQ-")
    assert parse(b"a UNSUBSCRIBE news.x") == Unsubscribe("a", b"news.x")
    assert parse(b"a GETQUOTAROOT INBOX") == GetQuotaRoot("a", b"INBOX")
    assert error(b"a RENAME a").tag == "a"


def test_list_basic() -> None:
    assert parse(b'a LIST "" *') == List("a", b"", (b"*",))
    assert parse(b"a LIST ~/Mail/ %") == List("a", b"~/Mail/", (b"%",))
    assert parse(b'a LIST "" "foo bar/*"') == List("a", b"", (b"foo bar/*",))
    assert parse(b"a LIST #news. comp.mail.*]") == List("a", b"#news.", (b"comp.mail.*]",))


def test_list_extended() -> None:
    cmd = parse(b'a LIST (SUBSCRIBED RECURSIVEMATCH) "" (INBOX "%/x" foo*) RETURN (CHILDREN)')
    assert cmd == List(
        "a",
        b"",
        (b"INBOX", b"%/x", b"foo*"),
        frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}),
        frozenset({"CHILDREN"}),
        (),
        True,
    )
    cmd = parse(b'a LIST "" % RETURN (STATUS (MESSAGES UNSEEN size) SPECIAL-USE)')
    assert isinstance(cmd, List) and cmd.extended
    assert cmd.returns == {"STATUS", "SPECIAL-USE"}
    assert cmd.status_items == ("MESSAGES", "UNSEEN", "SIZE")
    cmd = parse(b'a LIST () "" %')
    assert isinstance(cmd, List) and cmd.extended and not cmd.selection
    cmd = parse(b'a LIST (SPECIAL-USE) "" *')
    assert isinstance(cmd, List) and cmd.selection == {"SPECIAL-USE"}
    cmd = parse(b'A01 LIST "" % RETURN (MYRIGHTS)')  # RFC 8440 4
    assert isinstance(cmd, List) and cmd.returns == {"MYRIGHTS"}


def test_acl_commands_rfc4314() -> None:
    assert parse(b"A001 SeTacl INBOX/Drafts David lrswida") == SetAcl("A001", b"INBOX/Drafts", b"David", b"lrswida")
    assert parse(b'A002 SETACL inbox "-Fred" "+cda"') == SetAcl("A002", b"INBOX", b"-Fred", b"+cda")
    assert parse(b'A003 SETACL Box Fred ""') == SetAcl("A003", b"Box", b"Fred", b"")
    assert parse(b"B002 DeleteAcl INBOX Fred") == DeleteAcl("B002", b"INBOX", b"Fred")
    assert parse(b"A002 getacl INBOX") == GetAcl("A002", b"INBOX")
    assert parse(b"a001 LISTRIGHTS ~/Mail/saved smith") == ListRights("a001", b"~/Mail/saved", b"smith")
    assert parse(b"A003 MYRIGHTS {5}\r\nINBOX") == MyRights("A003", b"INBOX")
    for line in (b"a SETACL INBOX Fred", b"a SETACL INBOX", b"a DELETEACL INBOX", b"a GETACL",
                 b"a LISTRIGHTS INBOX", b"a MYRIGHTS", b"a MYRIGHTS INBOX extra", b"a GETACL (INBOX)"):
        assert error(line).tag == "a", line


@pytest.mark.parametrize(
    "line",
    [
        b'a LIST (RECURSIVEMATCH) "" %',
        b'a LIST (REMOTE RECURSIVEMATCH) "" %',
        b'a LIST (BOGUS) "" %',
        b'a LIST "" () ',
        b'a LIST "" %  RETURN ()',
        b'a LIST "" % RETURN (BOGUS)',
        b'a LIST "" % RETURN (STATUS (BOGUS))',
        b'a LIST "" % RETURNS ()',
        b'a LIST ""',
    ],
)
def test_list_errors(line: bytes) -> None:
    assert error(line).tag == "a"


def test_lsub() -> None:
    assert parse(b'a LSUB "#news." "comp.mail.*"') == Lsub("a", b"#news.", b"comp.mail.*")


def test_status() -> None:
    assert parse(b"a STATUS blurdybloop (UIDNEXT MESSAGES)") == Status(
        "a", b"blurdybloop", ("UIDNEXT", "MESSAGES")
    )
    cmd = parse(b"a STATUS INBOX (recent SIZE HIGHESTMODSEQ DELETED uidvalidity unseen deleted)")
    assert isinstance(cmd, Status)
    assert cmd.items == ("RECENT", "SIZE", "HIGHESTMODSEQ", "DELETED", "UIDVALIDITY", "UNSEEN")
    for bad in (b"a STATUS INBOX ()", b"a STATUS INBOX (FOO)", b"a STATUS INBOX MESSAGES"):
        assert error(bad).tag == "a"


def test_append() -> None:
    msg = b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nSubject: hi\r\n\r\nHello\r\n"
    data = b'A003 APPEND saved-messages (\\Seen) "07-Feb-1994 21:52:25 -0800" {%d}\r\n' % len(msg)
    cmd = parse(data + msg + b"\r\n")
    date = datetime.datetime(1994, 2, 7, 21, 52, 25, tzinfo=datetime.timezone(datetime.timedelta(hours=-8)))
    assert cmd == Append("A003", b"saved-messages", (AppendMessage(msg, ("\\Seen",), date),))
    assert parse(b"a APPEND INBOX {0+}\r\n\r\n") == Append("a", b"INBOX", (AppendMessage(b""),))
    cmd = parse(b'a APPEND INBOX " 7-Feb-1994 01:02:03 +0000" {1}\r\nx\r\n')
    assert isinstance(cmd, Append) and cmd.messages[0].internal_date == datetime.datetime(
        1994, 2, 7, 1, 2, 3, tzinfo=datetime.UTC
    )


def test_multiappend() -> None:
    data = (
        b"A003 APPEND saved-messages (\\Seen) {3}\r\none (\\Seen $Label) ~{3}\r\n\x00wo"
        b' "07-Feb-1994 21:52:25 +0000" {5+}\r\nthree {1}\r\n4\r\n'
    )
    cmd = parse(data)
    assert isinstance(cmd, Append)
    assert [(m.data, m.flags, m.binary) for m in cmd.messages] == [
        (b"one", ("\\Seen",), False),
        (b"\x00wo", ("\\Seen", "$Label"), True),
        (b"three", (), False),
        (b"4", (), False),
    ]
    assert cmd.messages[2].internal_date is not None


@pytest.mark.parametrize(
    "line",
    [
        b"a APPEND INBOX",
        b'a APPEND INBOX "message"',
        b"a APPEND INBOX (\\Seen)",
        b'a APPEND INBOX "31-Feb-2020 00:00:00 +0000" {1}\r\nx',
        b'a APPEND INBOX "01-Foo-2020 00:00:00 +0000" {1}\r\nx',
        b'a APPEND INBOX "01-Jan-2020 00:00:00 +0099" {1}\r\nx',
        b'a APPEND INBOX "01-Jan-2020 00:00:00" {1}\r\nx',
        b"a APPEND INBOX (\\Seen) (\\Draft) {1}\r\nx",
        b"a APPEND INBOX {1}\r\nx junk",
        b"a APPEND INBOX (\\*) {1}\r\nx",
    ],
)
def test_append_errors(line: bytes) -> None:
    assert error(line).tag == "a"


def test_expunge_copy_move() -> None:
    assert parse(b"a UID EXPUNGE 3000:3002") == Expunge("a", S("3000:3002"), uid=True)
    assert parse(b"a COPY 2:4 MEETING") == Copy("a", S("2:4"), b"MEETING")
    assert parse(b'a uid copy 1,3:* "x y"') == Copy("a", S("1,3:*"), b"x y", uid=True)
    assert parse(b"a MOVE $ Trash") == Move("a", S("$"), b"Trash")
    assert parse(b"a UID MOVE 42 inbox") == Move("a", S("42"), b"INBOX", uid=True)
    for bad in (b"a UID EXPUNGE", b"a COPY 0 x", b"a MOVE 1", b"a UID FROB 1", b"a UID"):
        assert error(bad).tag == "a"


def test_unknown_uid_subcommand_message() -> None:
    assert error(b"a UID NOOP").message == "Unknown command UID NOOP"


def test_id() -> None:
    assert parse(b"a ID NIL") == Id("a", None)
    assert parse(b"a ID ()") == Id("a", ())
    assert parse(b'a ID ("name" "sodr" "version" "19.34" "vendor" NIL)') == Id(
        "a", (("name", "sodr"), ("version", "19.34"), ("vendor", None))
    )
    for bad in (b'a ID ("name")', b"a ID", b'a ID ("a" "b""c" "d")', b"a ID NILL"):
        assert error(bad).tag == "a"


def test_quota_commands() -> None:
    assert parse(b'a GETQUOTA "#user/alice"') == GetQuota("a", b"#user/alice")
    assert parse(b"a GETQUOTA {0}\r\n\r\n") == GetQuota("a", b"")
    assert parse(b'S0001 SETQUOTA "#user/alice" (STORAGE 510 message 2)') == SetQuota(
        "S0001", b"#user/alice", (("STORAGE", 510), ("MESSAGE", 2))
    )
    assert parse(b'a SETQUOTA "" ()') == SetQuota("a", b"", ())
    for bad in (b"a SETQUOTA x (STORAGE)", b"a SETQUOTA x STORAGE 1", b"a SETQUOTA x (STORAGE -1)"):
        assert error(bad).tag == "a"
