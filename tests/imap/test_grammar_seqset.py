from __future__ import annotations

import pytest

from letterbox.imap.grammar import SequenceSet


def test_parse_and_format() -> None:
    s = SequenceSet.parse("2,4:7,9,12:*")
    assert s.ranges == ((2, 2), (4, 7), (9, 9), (12, None))
    assert str(s) == "2,4:7,9,12:*" and bytes(s) == b"2,4:7,9,12:*"
    assert s.uses_star and not s.last_result
    assert str(SequenceSet.parse("*:4")) == "*:4"
    assert SequenceSet.parse("$").last_result and str(SequenceSet.parse("$")) == "$"


def test_resolve_against_mailbox() -> None:
    # RFC 9051 examples: 15 messages, and *:4,5:7 with 10 messages.
    assert list(SequenceSet.parse("2,4:7,9,12:*").iter(15)) == [2, 4, 5, 6, 7, 9, 12, 13, 14, 15]
    assert SequenceSet.parse("*:4,5:7").resolve(10) == [(4, 10)]
    assert SequenceSet.parse("4:2").resolve(10) == [(2, 4)]
    # 3291:* covers the last UID even when it is smaller than 3291.
    assert SequenceSet.parse("3291:*").resolve(100) == [(100, 3291)]
    assert SequenceSet.parse("1,3,2,7:9,5").resolve(0) == [(1, 3), (5, 5), (7, 9)]
    assert SequenceSet.parse("5:*").contains(20, 30)
    assert not SequenceSet.parse("5:10,12").contains(11, 30)
    with pytest.raises(ValueError):
        SequenceSet.parse("$").resolve(5)


def test_of_compresses() -> None:
    assert str(SequenceSet.of([9, 1, 2, 3, 4, 5, 7, 10, 11, 12, 3])) == "1:5,7,9:12"
    assert str(SequenceSet.of([])) == ""


@pytest.mark.parametrize(
    "text", ["", "0", "01", "1:0", "1,", ",1", "1::2", "1:2:3", "a", "4294967296", "$,1", "1 2", "-1"]
)
def test_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        SequenceSet.parse(text)


def test_limits() -> None:
    assert SequenceSet.parse("4294967295").ranges == ((4294967295, 4294967295),)
