"""Delivery inside a real `letterbox serve` process: the listeners the server layer opens
with our factories, and switching a delivery service off while a client is connected."""

from __future__ import annotations

import os
import smtplib
import socket
import time
from pathlib import Path
from typing import Any

import pytest

import letterbox

from .delivery_support import split_trace


@pytest.fixture(autouse=True)
def _absolute_pythonpath(monkeypatch: pytest.MonkeyPatch) -> None:
    # The server child runs in its own folder, where a relative PYTHONPATH (such as
    # PYTHONPATH=src) no longer finds the package.
    src = str(Path(letterbox.__file__).resolve().parents[1])
    paths = [str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([src, *paths]))


MSG = b"Subject: served\r\nMessage-ID: <srv@remote.example>\r\n\r\nhello\r\n"


def inbox(server: Any, address: str) -> list[bytes]:
    import asyncio

    from letterbox.store.maildir import MaildirStore

    async def go() -> list[bytes]:
        store = MaildirStore(server.home / "data" / "mail")
        acc = await store.account(address)
        mbox, metas = await acc.snapshot("INBOX")
        out = [await acc.read_message(mbox.id, m.uid) for m in metas]
        await store.close()
        return out

    return asyncio.run(go())


def test_lmtp_tcp_unix_and_smtp_in_the_server(server: Any) -> None:
    server.add_user("alice@example.com")
    with smtplib.LMTP("127.0.0.1", server.port("lmtp")) as c:
        c.ehlo("mta.example")
        assert c.sendmail("x@remote.example", ["alice@example.com"], MSG) == {}
    with smtplib.LMTP(server.lmtp_socket) as c:
        c.ehlo("mta.example")
        assert c.sendmail("x@remote.example", ["alice@example.com"], MSG) == {}
    with smtplib.SMTP("127.0.0.1", server.port("smtp")) as c:
        c.ehlo("mx.remote.example")
        assert c.sendmail("x@remote.example", ["alice@example.com"], MSG) == {}
    stored = inbox(server, "alice@example.com")
    assert [split_trace(m)[1] for m in stored] == [MSG, MSG, MSG]
    assert b"(unix socket)" in split_trace(stored[1])[0][1]


def test_switching_lmtp_off_ends_open_sessions(server: Any) -> None:
    s = socket.create_connection(("127.0.0.1", server.port("lmtp")), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220 ")
    s.sendall(b"LHLO mta.example\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    server.cli("protocols", "disable", "lmtp")
    deadline = time.monotonic() + 10
    line = f.readline()
    assert line.startswith(b"421 4.3.2 "), line
    assert f.readline() == b""
    assert time.monotonic() < deadline
    s.close()
