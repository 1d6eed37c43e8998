"""A message streamed in pieces goes on the POP3 wire exactly as when sent whole."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from letterbox.pop3.message import ByteStuffer, multiline

_bytes = st.lists(
    st.sampled_from([b".", b"..", b"\r", b"\n", b"\r\n", b"x", b"\r\n.", b"\n."]), max_size=40
).map(b"".join)


def streamed(data: bytes, cuts: list[int]) -> bytes:
    stuffer = ByteStuffer()
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    out = b"".join(stuffer.feed(data[a:b]) for a, b in itertools.pairwise(bounds))
    return out + stuffer.end()


@settings(max_examples=500, deadline=None)
@given(data=_bytes, cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=10))
def test_pieces_come_out_as_the_whole(data: bytes, cuts: list[int]) -> None:
    assert streamed(data, cuts) == b"".join(multiline(data))


def test_edges() -> None:
    assert streamed(b"", []) == b".\r\n"
    assert streamed(b".a\r\n.\r\n", [1, 5]) == b"..a\r\n..\r\n.\r\n"
    assert streamed(b"a\r", []) == b"a\r\r\n.\r\n"
    assert streamed(b"a\r\nb", [2]) == b"a\r\nb\r\n.\r\n"
    assert streamed(b"a\n.b\n", [1, 2]) == b"a\r\n..b\r\n.\r\n"
