"""Helpers shared by LMTP, SMTP and `letterbox deliver`."""

from __future__ import annotations

import re

import pytest

from letterbox.delivery.core import client_address, message_id, received_header, return_path
from letterbox.delivery.protocol import with_status

DATE = rb"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}"


@pytest.mark.parametrize(
    ("peer", "text"),
    [
        (("192.0.2.7", 2525), "[192.0.2.7]"),
        (("2001:db8::1", 2525, 0, 0), "[IPv6:2001:db8::1]"),
        (("::ffff:192.0.2.7", 2525, 0, 0), "[192.0.2.7]"),
        (("fe80::1%eth0", 2525, 0, 2), "[IPv6:fe80::1]"),
        ("", "unix socket"),
        (None, "unix socket"),
    ],
)
def test_client_address(peer: object, text: str) -> None:
    assert client_address(peer) == text


def test_received_header_grammar() -> None:
    one = received_header("mx.test", "ESMTP", "ABC123", ["a@example.com"], helo="mail.remote", peer=("192.0.2.7", 1))
    assert re.fullmatch(
        rb"Received: from mail\.remote \(\[192\.0\.2\.7\]\)\r\n\tby mx\.test \(Letterbox\) with ESMTP id ABC123"
        rb"\r\n\tfor <a@example\.com>; " + DATE + rb"\r\n",
        one,
    ), one
    many = received_header("mx.test", "LMTP", "X", ["a@example.com", "b@example.com"], helo="h", peer="")
    assert b"for <" not in many
    assert many.startswith(b"Received: from h (unix socket)\r\n\tby mx.test (Letterbox) with LMTP id X; ")
    local = received_header("mx.test", "local", "Y", ["a@example.com"], local=True)
    assert local.startswith(b"Received: by mx.test (Letterbox) with local id Y\r\n\tfor <a@example.com>; ")


def test_hostile_helo_cannot_inject_header_lines() -> None:
    h = received_header("mx.test", "ESMTP", "X", [], helo="evil\r\nX-Injected: yes (x) ;", peer=("192.0.2.7", 1))
    assert h.count(b"\r\n") == 2
    assert b"X-Injected: yes" not in h
    assert received_header("mx.test", "ESMTP", "X", [], helo=None, peer=None).startswith(b"Received: from unknown ")


def test_return_path() -> None:
    assert return_path("a@example.com") == b"Return-Path: <a@example.com>\r\n"
    assert return_path("") == b"Return-Path: <>\r\n"
    assert return_path("<>") == b"Return-Path: <>\r\n"
    assert return_path("a\r\nX-Evil: 1@example.com") == b"Return-Path: <aX-Evil: 1@example.com>\r\n"


@pytest.mark.parametrize(
    ("data", "msgid"),
    [
        (b"Subject: x\r\nMessage-ID: <a@b>\r\n\r\nbody", "<a@b>"),
        (b"message-id:\r\n <folded@b>\r\n\r\n", "<folded@b>"),
        (b"Subject: x\r\n\r\nMessage-ID: <in-body@b>\r\n", "unspecified"),
        (b"Message-ID: <\x1b[31mred@b>\r\n\r\n", "<?[31mred@b>"),
        (b"", "unspecified"),
    ],
)
def test_message_id_for_logs(data: bytes, msgid: str) -> None:
    assert message_id(data) == msgid


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("250 OK", "250 2.0.0 OK"),
        ("500 Error: bad syntax", "500 5.5.2 Error: bad syntax"),
        ("552 Error: Too much mail data", "552 5.3.4 Error: Too much mail data"),
        ("250 2.1.5 <a@b> OK", "250 2.1.5 <a@b> OK"),
        ("220 mx.test Letterbox ESMTP ready", "220 mx.test Letterbox ESMTP ready"),
        ("354 End data with <CR><LF>.<CR><LF>", "354 End data with <CR><LF>.<CR><LF>"),
        ("250 a\r\n552 5.2.2 b", "250 a\r\n552 5.2.2 b"),
        ("599 odd", "599 5.0.0 odd"),
    ],
)
def test_with_status(reply: str, expected: str) -> None:
    assert with_status(reply) == expected
