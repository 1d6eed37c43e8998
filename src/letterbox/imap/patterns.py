"""LIST and LSUB mailbox patterns (RFC 9051 6.3.9), matched in linear time.

"*" matches any run of characters, "%" any run without the hierarchy delimiter. A
pattern is compiled to a small automaton run with bit sets (one bit per pattern position),
so a name of n characters costs n steps whatever the pattern: no backtracking, which a
hostile pattern such as "%%%%%%%%x" would make exponential with a regular expression.
INBOX is case-insensitive, also as the first component of a pattern.
"""

from __future__ import annotations

from collections.abc import Callable

from ..store.api import DELIMITER

_STAR, _PERCENT = "*", "%"


def compile_pattern(pattern: str) -> Callable[[str], bool]:
    """A predicate telling whether a mailbox name matches *pattern*."""
    head, sep, rest = pattern.partition(DELIMITER)
    if head.upper() == "INBOX":
        pattern = "INBOX" + sep + rest
    tokens: list[str] = []
    for ch in pattern:
        if ch in (_STAR, _PERCENT) and tokens and tokens[-1] in (_STAR, _PERCENT):
            # A run of wildcards is one: "*" if any of them is, else "%".
            if ch == _STAR:
                tokens[-1] = _STAR
            continue
        tokens.append(ch)
    literals = sum(1 for t in tokens if t not in (_STAR, _PERCENT))
    letters: dict[str, int] = {}
    star = percent = 0
    for i, t in enumerate(tokens):
        if t == _STAR:
            star |= 1 << i
        elif t == _PERCENT:
            percent |= 1 << i
        else:
            letters[t] = letters.get(t, 0) | (1 << i)
    wild = star | percent
    accept = 1 << len(tokens)

    def closure(states: int) -> int:
        # A wildcard may match nothing; wildcards never follow one another.
        return states | ((states & wild) << 1)

    start = closure(1)

    def match(name: str) -> bool:
        if len(name) < literals:
            return False  # every literal character needs one of the name's
        states = start
        for ch in name:
            step = ((states & letters.get(ch, 0)) << 1) | (states & star)
            if ch != DELIMITER:
                step |= states & percent
            states = closure(step)
            if not states:
                return False
        return bool(states & accept)

    return match
