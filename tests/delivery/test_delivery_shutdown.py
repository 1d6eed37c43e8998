"""Ending sessions live (`shutdown_all`) and clients that vanish while we store."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from .delivery_support import Harness, split_trace

MSG = b"Subject: s\r\nMessage-ID: <sd@remote.example>\r\n\r\nbody\r\n"


def connect(h: Harness, service: str) -> tuple[socket.socket, object]:
    port = h.lmtp_port if service == "lmtp" else h.smtp_port
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220 ")
    s.sendall(b"LHLO mta.example\r\n" if service == "lmtp" else b"EHLO mta.example\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    return s, f


def test_idle_sessions_get_421_per_service(harness: Harness) -> None:
    lmtp1, lf1 = connect(harness, "lmtp")
    lmtp2, lf2 = connect(harness, "lmtp")
    smtp, sf = connect(harness, "smtp")
    harness.wait_sessions("lmtp", 2)
    harness.wait_sessions("smtp", 1)
    told = harness.call(lambda: harness.sessions.shutdown_all("lmtp", "LMTP switched off"))
    assert told == 2
    for f in (lf1, lf2):
        assert f.readline() == b"421 4.3.2 LMTP switched off\r\n"  # type: ignore[attr-defined]
        assert f.readline() == b""  # type: ignore[attr-defined]
    harness.wait_sessions("lmtp", 0)
    # SMTP is untouched.
    smtp.sendall(b"NOOP\r\n")
    assert sf.readline() == b"250 2.0.0 OK\r\n"  # type: ignore[attr-defined]
    for s in (lmtp1, lmtp2, smtp):
        s.close()


def test_transaction_in_progress_is_not_acknowledged(harness: Harness) -> None:
    harness.add_user("alice@example.com")
    s, f = connect(harness, "lmtp")
    s.sendall(b"MAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n")
    assert [f.readline()[:3] for _ in range(3)] == [b"250", b"250", b"354"]  # type: ignore[attr-defined]
    s.sendall(b"Subject: half\r\n\r\nsome of the body\r\n")
    harness.call(lambda: harness.sessions.shutdown_all("lmtp", "maintenance"))
    assert f.readline() == b"421 4.3.2 maintenance\r\n"  # type: ignore[attr-defined]
    # The client may not even read that: all it must see is no 250 for its message.
    try:
        s.sendall(b"rest of the body\r\n.\r\n")
        rest = f.read()  # type: ignore[attr-defined]
    except OSError:
        rest = b""
    assert b"250" not in rest
    s.close()
    harness.wait_sessions("lmtp", 0)
    assert harness.messages("alice@example.com") == []


def _gated(h: Harness, address: str) -> tuple[threading.Event, asyncio.Event]:
    entered = threading.Event()
    gate: asyncio.Event = h.call(asyncio.Event)
    h.break_account(address, gate=gate, entered=entered)
    return entered, gate


def test_lmtp_shutdown_while_storing_answers_each_recipient(harness: Harness) -> None:
    harness.add_user("alice@example.com")
    harness.add_user("bob@example.com")
    entered, gate = _gated(harness, "alice@example.com")

    def client() -> list[tuple[int, bytes]]:
        with smtplib.LMTP("127.0.0.1", harness.lmtp_port) as c:
            c.ehlo("mta.example")
            c.mail("x@remote.example")
            c.rcpt("alice@example.com")
            c.rcpt("bob@example.com")
            replies = [c.data(MSG), c.getreply()]
            replies.append(c.getreply())  # the goodbye
            return replies

    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(client)
        assert entered.wait(10)
        harness.call(lambda: harness.sessions.shutdown_all("lmtp", "LMTP switched off"))
        harness.call(gate.set)
        replies = result.result(10)
    # The copy being written completes and is acknowledged; the rest is retried later.
    assert replies[0] == (250, b"2.0.0 <alice@example.com> Saved")
    assert replies[1] == (451, b"4.3.2 <bob@example.com> LMTP switched off")
    assert replies[2] == (421, b"4.3.2 LMTP switched off")
    assert len(harness.messages("alice@example.com")) == 1
    assert harness.messages("bob@example.com") == []


def test_smtp_shutdown_while_storing_finishes_the_copies(harness: Harness) -> None:
    harness.add_user("alice@example.com")
    harness.add_user("bob@example.com")
    entered, gate = _gated(harness, "alice@example.com")

    def client() -> list[tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", harness.smtp_port) as c:
            c.ehlo("mta.example")
            c.mail("x@remote.example")
            c.rcpt("alice@example.com")
            c.rcpt("bob@example.com")
            return [c.data(MSG), c.getreply()]

    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(client)
        assert entered.wait(10)
        harness.call(lambda: harness.sessions.shutdown_all("smtp", "SMTP switched off"))
        harness.call(gate.set)
        replies = result.result(10)
    assert replies[0][0] == 250
    assert replies[1] == (421, b"4.3.2 SMTP switched off")
    assert len(harness.messages("alice@example.com")) == 1
    assert len(harness.messages("bob@example.com")) == 1


def test_client_leaving_during_store_leaves_a_whole_message(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.add_user("alice@example.com")
    entered, gate = _gated(harness, "alice@example.com")
    caplog.set_level(logging.INFO, "letterbox.delivery")
    s, f = connect(harness, "lmtp")
    s.sendall(b"MAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n")
    assert [f.readline()[:3] for _ in range(3)] == [b"250", b"250", b"354"]  # type: ignore[attr-defined]
    s.sendall(MSG + b".\r\n")
    assert entered.wait(10)
    s.close()
    f.close()  # type: ignore[attr-defined]
    harness.wait_sessions("lmtp", 0)
    harness.call(gate.set)
    assert harness.run(harness.sessions.drain(10))
    [stored] = harness.messages("alice@example.com")
    assert split_trace(stored)[1] == MSG
    assert any("client left before the reply" in r.getMessage() for r in caplog.records)
