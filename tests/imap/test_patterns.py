"""LIST/LSUB patterns: the automaton agrees with RFC 9051 6.3.9's wildcards as a
(backtracking) regular expression states them, and hostile patterns cost linear time."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from letterbox.imap.patterns import compile_pattern


def reference(pattern: str) -> re.Pattern[str]:
    head, sep, rest = pattern.partition("/")
    if head.upper() == "INBOX":
        pattern = "INBOX" + sep + rest
    out = "".join(".*" if c == "*" else "[^/]*" if c == "%" else re.escape(c) for c in pattern)
    return re.compile(out, re.DOTALL)


alphabet = st.sampled_from("ab/*%INBOXinbox.")


@settings(max_examples=3000)
@given(st.text(alphabet, max_size=10), st.text(st.sampled_from("ab/IiNBOX."), max_size=12))
def test_agrees_with_the_rfc_wildcards(pattern: str, name: str) -> None:
    assert compile_pattern(pattern)(name) == bool(reference(pattern).fullmatch(name))


def test_examples() -> None:
    m = compile_pattern("Work/%")
    assert m("Work/2024") and not m("Work/2024/Q1") and not m("Work")
    assert compile_pattern("*")("a/b/c") and compile_pattern("%")("abc") and not compile_pattern("%")("a/b")
    assert compile_pattern("inbox/%")("INBOX/x") and compile_pattern("")("") and not compile_pattern("")("a")


def test_hostile_patterns_are_linear() -> None:
    """As a regular expression each of these takes seconds to hours on one name."""
    name = "a" * 254
    for pattern in ("%" * 48 + "x", "%%%%%x", "*%" * 2000 + "x", "%a" * 200 + "x", "*a*a*a*a*a*a*a*a*a*b"):
        assert not compile_pattern(pattern)(name)
    assert compile_pattern("%a" * 100 + "%")(name)
