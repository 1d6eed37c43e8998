"""Rough parse speed, printed for the record (run with -s to see it).

The bounds are loose on purpose: they catch accidental quadratic behaviour,
not a slow machine.
"""

from __future__ import annotations

import time

from letterbox.mime import parse_message

from .mimeutil import corpus, corpus_names


def typical_message() -> bytes:
    """About 9 KB: a real-looking header block and a text + HTML alternative."""
    header = b"".join(
        [
            b"Return-Path: <bounce-123@mail.example.com>\r\n",
            b"Received: from mx1.example.com (mx1.example.com [192.0.2.1])\r\n"
            b"\tby mail.example.org (Postfix) with ESMTPS id 4ABCD123\r\n"
            b"\tfor <user@example.org>; Tue, 12 Mar 2024 10:11:12 +0100 (CET)\r\n" * 4,
            b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com;\r\n"
            b"\th=from:to:subject:date:message-id; bh=abcdefghijklmnopqrstuvwxyz0123=;\r\n"
            b"\tb=" + b"A" * 300 + b"\r\n",
            b'From: "Example Sender" <sender@example.com>\r\n',
            b"To: Some One <someone@example.org>, other@example.org\r\n",
            b"Cc: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <jm@example.net>\r\n",
            b"Subject: =?utf-8?b?SGVsbG8gV29ybGQgw6TDtsO8?= and more\r\n",
            b"Date: Tue, 12 Mar 2024 10:11:10 +0100\r\n",
            b"Message-ID: <abc123.456@mail.example.com>\r\n",
            b"MIME-Version: 1.0\r\n",
            b'Content-Type: multipart/alternative; boundary="----=_Part_1"\r\n',
            b"X-Mailer: Something 1.0\r\nList-Unsubscribe: <mailto:u@example.com>\r\n",
            b"\r\n",
        ]
    )
    text = b"".join(
        b"Line %d of the plain text part, long enough to be real.\r\n" % i for i in range(50)
    )
    html = b"".join(
        b"<p>Line <b>%d</b> of the html part, with some markup.</p>\r\n" % i for i in range(60)
    )
    return (
        header
        + b"------=_Part_1\r\nContent-Type: text/plain; charset=UTF-8\r\n"
        + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        + text
        + b"\r\n------=_Part_1\r\nContent-Type: text/html; charset=UTF-8\r\n"
        + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        + html
        + b"\r\n------=_Part_1--\r\n"
    )


def per_call(raw: bytes, minimum: float = 0.2) -> float:
    count = 0
    start = time.perf_counter()
    while True:
        parse_message(raw)
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= minimum:
            return elapsed / count


def test_typical_message_speed() -> None:
    raw = typical_message()
    seconds = per_call(raw)
    print(f"\ntypical {len(raw)} byte message: {seconds * 1e6:.0f} us per parse")
    assert seconds < 0.02


def test_large_attachment_is_linear() -> None:
    attachment = (b"QUJD" * 19 + b"\r\n") * 70_000  # about 5.4 MB of base64
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nhi\r\n--b\r\n"
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + attachment
        + b"--b--\r\n"
    )
    seconds = per_call(raw, 0.5)
    print(f"\n{len(raw) / 1e6:.1f} MB message: {seconds * 1e3:.1f} ms per parse")
    assert seconds < 1.0


def test_corpus_speed() -> None:
    total = 0.0
    for name in corpus_names():
        total += per_call(corpus(name), 0.02)
    print(f"\ncorpus: {total / len(corpus_names()) * 1e6:.0f} us per message on average")
