"""Spools: uploads on disk, a bounded number loaded at once, a bounded total on disk."""

from __future__ import annotations

import asyncio

import pytest

from letterbox.spool import Spooler
from letterbox.store.api import DiskFull


def test_an_upload_comes_back_byte_exact() -> None:
    spooler = Spooler()
    spool = spooler.new()
    for piece in (b"Subject: x\r\n", b"\r\n", b"\x00\xff" * 1000):
        spool.write(piece)

    async def go() -> bytes:
        async with spooler.loaded(spool) as data:
            return data

    assert asyncio.run(go()) == b"Subject: x\r\n\r\n" + b"\x00\xff" * 1000
    assert spooler.used == 0  # closed after use


def test_the_total_on_disk_is_bounded_and_given_back() -> None:
    spooler = Spooler(total=1000)
    first, second = spooler.new(), spooler.new()
    first.write(b"a" * 600)
    second.write(b"b" * 600)  # past the total: refused, the rest only counted
    second.write(b"b" * 10)
    assert spooler.used == 600 and second.error is not None and second.size == 610

    async def refused() -> None:
        async with spooler.loaded(second):
            pass

    with pytest.raises(DiskFull):
        asyncio.run(refused())
    first.close()
    assert spooler.used == 0
    third = spooler.new()
    third.write(b"c" * 900)
    assert third.error is None and spooler.used == 900
    third.close()
