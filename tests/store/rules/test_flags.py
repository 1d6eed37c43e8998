"""Flag spelling and STORE arithmetic, apart from any backend."""

from __future__ import annotations

import pytest

from letterbox.store.api import LimitExceeded, Limits
from letterbox.store.rules.flags import (
    BadFlag,
    apply_store,
    check_keywords,
    flag_text,
    flagset,
    is_keyword,
    normalize_flags,
)


def test_system_flags_are_case_insensitive_and_canonical() -> None:
    assert normalize_flags(["\\seen", "\\DELETED", "\\Flagged", "$Label"]) == {
        "\\Seen", "\\Deleted", "\\Flagged", "$Label"}


def test_recent_and_unknown_system_flags_are_dropped() -> None:
    assert normalize_flags(["\\Recent", "\\Nonsense", "\\*"]) == set()


def test_keywords_keep_their_case() -> None:
    assert normalize_flags(["$label", "$Label"]) == {"$label", "$Label"}


@pytest.mark.parametrize("bad", ["two words", "back\\slash", "par(en", 'quo"te', "brack]et", "ctl\x01",
                                 "", "pct%", "star*", "brace{", "caf\u00e9"])
def test_keywords_must_be_atoms(bad: str) -> None:
    assert not is_keyword(bad)
    with pytest.raises(BadFlag):
        normalize_flags([bad])


def test_atoms_are_keywords() -> None:
    for ok in ("$Forwarded", "NonJunk", "a.b-c_d+e", "[Label", "x!#&'"):
        assert is_keyword(ok), ok


def test_keyword_length_limit() -> None:
    limits = Limits(keyword_length=5)
    check_keywords(["abcde", "\\Answered"], limits)
    with pytest.raises(LimitExceeded):
        check_keywords(["abcdef"], limits)


def test_flag_text_round_trips_through_flagset() -> None:
    text = flag_text(["\\Seen", "$b", "$a", "\\Seen"])
    assert text == "$a $b \\Seen"
    assert flagset(text) == {"$a", "$b", "\\Seen"}
    assert flagset(text) is flagset(text)
    assert flagset("") == frozenset()


def test_store_modes() -> None:
    old = frozenset({"\\Seen", "$a"})
    assert apply_store(old, "add", {"\\Flagged"}) == {"\\Seen", "$a", "\\Flagged"}
    assert apply_store(old, "remove", {"$a", "$absent"}) == {"\\Seen"}
    assert apply_store(old, "replace", {"$b"}) == {"$b"}


def test_store_leaves_flags_the_user_may_not_change() -> None:
    old = frozenset({"\\Seen", "$a"})
    no_seen = lambda f: f != "\\Seen"  # noqa: E731 - RFC 4314 4: no "s" right
    assert apply_store(old, "replace", {"$b"}, no_seen) == {"\\Seen", "$b"}
    assert apply_store(old, "remove", {"\\Seen", "$a"}, no_seen) == {"\\Seen"}
    assert apply_store(frozenset(), "add", {"\\Seen"}, no_seen) == frozenset()


def test_a_reader_sees_and_sets_their_own_seen() -> None:
    from letterbox.store.rules.seen import overlay, overlay_text, reader_store

    stored = frozenset({"\\Seen", "$a"})  # the owner has seen it
    assert overlay(stored, False) == {"$a"} and overlay(stored, True) is stored
    assert overlay_text("$a \\Seen", False) == "$a" and overlay_text("$a", True) == "$a \\Seen"
    # The reader marks it seen and flags it: the flag is everyone's, the mark the reader's.
    shown = overlay(stored, False)
    assert reader_store(stored, shown, frozenset({"$a", "\\Seen", "\\Flagged"})) == (
        {"\\Seen", "$a", "\\Flagged"}, True)
    # The reader clears everything: the owner's \Seen stays, the reader's mark goes.
    assert reader_store(stored, overlay(stored, True), frozenset()) == ({"\\Seen"}, False)
    assert reader_store(frozenset(), frozenset({"$a"}), frozenset()) == (frozenset(), None)
