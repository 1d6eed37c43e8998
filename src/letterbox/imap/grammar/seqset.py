"""Sequence sets as the client wrote them, resolved later against a mailbox.

The grammar layer cannot know what ``*`` means (the highest sequence number, or the
highest UID / UIDNEXT for UID commands), nor what ``$`` (RFC 5182 SEARCHRES) refers to,
so both are kept symbolic and the session resolves them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# ``None`` as a range end stands for "*".
Bound = int | None

_MAX32 = 0xFFFFFFFF
_SET_RE = re.compile(rb"(?:[0-9]+|\*)(?::(?:[0-9]+|\*))?(?:,(?:[0-9]+|\*)(?::(?:[0-9]+|\*))?)*")


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """``ranges`` holds (first, last) pairs in the order written, unnormalized.

    ``last_result`` is True for ``$`` (the saved SEARCH result); ``ranges`` is then empty.
    """

    ranges: tuple[tuple[Bound, Bound], ...] = ()
    last_result: bool = False

    @classmethod
    def parse(cls, text: bytes | str) -> SequenceSet:
        """Parse a complete sequence-set; raises ValueError when it is not one."""
        data = text.encode("ascii") if isinstance(text, str) else text
        result = parse_sequence_set(data, 0)
        if result is None or result[1] != len(data):
            raise ValueError(f"invalid sequence set: {data[:64]!r}")
        return result[0]

    @classmethod
    def of(cls, numbers: Iterable[int]) -> SequenceSet:
        """The compressed set of the given numbers (ascending, adjacent values merged)."""
        return cls(tuple((a, b) for a, b in _runs(numbers)))

    @property
    def uses_star(self) -> bool:
        return any(a is None or b is None for a, b in self.ranges)

    def resolve(self, star: int) -> list[tuple[int, int]]:
        """Ascending, merged, inclusive ranges with ``*`` replaced by ``star``.

        Ranges in either order are accepted (``4:2`` is ``2:4``, and ``3291:*`` covers
        ``star`` even when it is below 3291). Raises ValueError for ``$``.
        """
        if self.last_result:
            raise ValueError("'$' must be resolved against the saved search result")
        spans = []
        for a, b in self.ranges:
            lo = star if a is None else a
            hi = star if b is None else b
            if lo > hi:
                lo, hi = hi, lo
            spans.append((lo, hi))
        spans.sort()
        merged: list[tuple[int, int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1] + 1:
                if hi > merged[-1][1]:
                    merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        return merged

    def iter(self, star: int) -> Iterator[int]:
        """Every number in the set, ascending and without duplicates."""
        for lo, hi in self.resolve(star):
            yield from range(lo, hi + 1)

    def contains(self, number: int, star: int) -> bool:
        for a, b in self.ranges:
            lo = star if a is None else a
            hi = star if b is None else b
            if lo > hi:
                lo, hi = hi, lo
            if lo <= number <= hi:
                return True
        return False

    def __bytes__(self) -> bytes:
        return str(self).encode("ascii")

    def __str__(self) -> str:
        if self.last_result:
            return "$"
        out = []
        for a, b in self.ranges:
            first = "*" if a is None else str(a)
            if a == b:
                out.append(first)
            else:
                out.append(first + ":" + ("*" if b is None else str(b)))
        return ",".join(out)


def _runs(numbers: Iterable[int]) -> Iterator[tuple[int, int]]:
    it = iter(sorted(set(numbers)))
    for first in it:
        last = first
        for n in it:
            if n == last + 1:
                last = n
            else:
                yield first, last
                first = last = n
        yield first, last


def _bound(token: bytes) -> Bound:
    if token == b"*":
        return None
    # nz-number: no zero, no leading zeros, 32 bits.
    if token[0] == 0x30 or len(token) > 10:
        raise ValueError
    value = int(token)
    if value > _MAX32:
        raise ValueError
    return value


def parse_sequence_set(data: bytes, pos: int) -> tuple[SequenceSet, int] | None:
    """Parse a sequence-set at ``pos``; returns it and the end offset, or None.

    Callers check that what follows is a delimiter: ``1:2x`` stops at ``x``.
    """
    if data[pos : pos + 1] == b"$":
        return SequenceSet(last_result=True), pos + 1
    m = _SET_RE.match(data, pos)
    if m is None:
        return None
    ranges: list[tuple[Bound, Bound]] = []
    try:
        for item in m.group().split(b","):
            first, sep, last = item.partition(b":")
            a = _bound(first)
            ranges.append((a, _bound(last) if sep else a))
    except ValueError:
        return None
    return SequenceSet(tuple(ranges)), m.end()
