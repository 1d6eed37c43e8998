"""Inbound SMTP (RFC 5321) for local domains, driven by smtplib.SMTP."""

from __future__ import annotations

import logging
import smtplib
import ssl

import pytest

from letterbox.store.api import Quota, StoreError

from .delivery_support import Harness, split_trace

MSG = b"From: x@remote.example\r\nSubject: inbound\r\nMessage-ID: <s1@remote.example>\r\n\r\nhi\r\n"


def smtp(h: Harness) -> smtplib.SMTP:
    c = smtplib.SMTP("127.0.0.1", h.smtp_port, local_hostname="mx.remote.example")
    assert c.ehlo()[0] == 250
    return c


def test_ehlo_advertises_no_auth_and_no_starttls_without_tls(harness: Harness) -> None:
    with smtp(harness) as c:
        for ext in ("size", "8bitmime", "smtputf8", "pipelining", "enhancedstatuscodes"):
            assert c.has_extn(ext), ext
        assert not c.has_extn("auth")
        assert not c.has_extn("starttls")
        assert c.docmd("AUTH", "PLAIN AGFsaWNlAHB3")[0] == 502
        assert c.docmd("STARTTLS")[0] == 454


def test_single_and_multiple_recipients(harness: Harness) -> None:
    harness.add_user("alice@example.com")
    harness.add_user("bob@example.com")
    with smtp(harness) as c:
        assert c.sendmail("x@remote.example", ["alice@example.com"], MSG) == {}
        assert c.sendmail("x@remote.example", ["alice@example.com", "bob@example.com"], MSG) == {}
    alice = harness.messages("alice@example.com")
    bob = harness.messages("bob@example.com")
    assert len(alice) == 2 and len(bob) == 1
    (rp, received), body = split_trace(alice[0])
    assert body == MSG
    assert rp == b"Return-Path: <x@remote.example>"
    assert received.startswith(
        b"Received: from mx.remote.example ([127.0.0.1]) by mx.test (Letterbox) with ESMTP id "
    )
    assert b" for <alice@example.com>; " in received
    assert b" for <" not in split_trace(bob[0])[0][1]
    assert bob[0] == alice[1]


def test_helo_client_gets_smtp_protocol_name(harness: Harness) -> None:
    harness.add_user("alice@example.com")
    with smtplib.SMTP("127.0.0.1", harness.smtp_port) as c:
        assert c.helo("old.example")[0] == 250
        assert c.sendmail("x@remote.example", ["alice@example.com"], MSG) == {}
    received = split_trace(harness.messages("alice@example.com")[0])[0][1]
    assert received.startswith(b"Received: from old.example ([127.0.0.1]) by mx.test (Letterbox) with SMTP id ")


def test_never_an_open_relay(harness: Harness) -> None:
    harness.add_user("alice@example.com")
    with smtp(harness) as c:
        c.mail("alice@example.com")
        assert c.rcpt("someone@gmail.com") == (550, b"5.7.1 Relaying denied")
        assert c.rcpt("someone@example.com.evil.org") == (550, b"5.7.1 Relaying denied")
        assert c.rcpt("alice%gmail.com@example.com")[0] == 550
        assert c.rcpt("nobody@example.com") == (550, b"5.1.1 <nobody@example.com>: user unknown")
        code, _ = c.docmd("DATA")
        assert code == 503


def test_over_quota_refused_at_rcpt(harness: Harness) -> None:
    harness.add_user("full@example.com", quota=Quota(messages=1))
    with smtp(harness) as c:
        assert c.sendmail("x@remote.example", ["full@example.com"], MSG) == {}
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            c.sendmail("x@remote.example", ["full@example.com"], MSG)
        assert e.value.recipients["full@example.com"] == (552, b"5.2.2 <full@example.com>: mailbox full")


def test_size_limit_and_long_lines(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = make_harness(max_message_size=4096)
    h.add_user("alice@example.com")
    with smtp(h) as c:
        assert c.esmtp_features["size"] == "4096"
        big = MSG + (b"z" * 78 + b"\r\n") * 60
        # smtplib declares SIZE=, refused at MAIL (RFC 1870 6.1)...
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            c.sendmail("x@remote.example", ["alice@example.com"], big)
        assert refused.value.smtp_code == 552
        # ...and without SIZE= the data itself is refused after the final dot.
        c.mail("x@remote.example")
        c.rcpt("alice@example.com")
        code, text = c.data(big)
        assert code == 552 and text.startswith(b"5.3.4")
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.sendmail("x@remote.example", ["alice@example.com"], MSG + b"z" * 1200 + b"\r\n")
        assert e.value.smtp_code == 500 and b"too long" in e.value.smtp_error.lower()
        assert c.sendmail("x@remote.example", ["alice@example.com"], MSG) == {}
    assert [split_trace(m)[1] for m in h.messages("alice@example.com")] == [MSG]


def test_8bit_smtputf8_and_nul_stored_exactly(harness: Harness) -> None:
    harness.add_user("alice@example.com")
    body = "Subject: ünïcödé\r\nFrom: jöe@bücher.example\r\n\r\n".encode() + b"\x00\xff\xfe\r\n"
    with smtp(harness) as c:
        refused = c.sendmail("jöe@bücher.example", ["alice@example.com"], body,
                             mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        assert refused == {}
    [stored] = harness.messages("alice@example.com")
    (rp, received), got = split_trace(stored)
    assert got == body
    assert rp == "Return-Path: <jöe@bücher.example>".encode()
    assert b" with UTF8SMTP id " in received


def test_partial_store_failure_accepts_and_logs(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    harness.add_user("alice@example.com")
    harness.add_user("broken@example.com")
    harness.break_account("broken@example.com", fail=StoreError("disk on fire"))
    caplog.set_level(logging.INFO, "letterbox.delivery")
    with smtp(harness) as c:
        # Some copies stored: one reply only, so 250 (a 4xx would duplicate alice's copy).
        assert c.sendmail("x@remote.example", ["broken@example.com", "alice@example.com"], MSG) == {}
        # Nothing stored: a temporary failure, so the client retries.
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.sendmail("x@remote.example", ["broken@example.com"], MSG)
        assert (e.value.smtp_code, e.value.smtp_error) == (451, b"4.3.0 Temporary failure, try again later")
    assert len(harness.messages("alice@example.com")) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("smtp(broken@example.com)" in m and "NOT stored" in m for m in errors), errors


def test_quota_exceeded_for_every_recipient_after_data_is_permanent(harness: Harness) -> None:
    harness.add_user("small@example.com", quota=Quota(bytes=200))
    with smtp(harness) as c:
        c.mail("x@remote.example")  # no SIZE=: the RCPT check cannot see it coming
        assert c.rcpt("small@example.com")[0] == 250
        assert c.data(MSG + b"p" * 300 + b"\r\n") == (552, b"5.2.2 <small@example.com>: mailbox full")
    assert harness.messages("small@example.com") == []


def test_starttls(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = make_harness(tls=True)
    h.add_user("alice@example.com")
    client_tls = ssl.create_default_context()
    client_tls.check_hostname = False
    client_tls.verify_mode = ssl.CERT_NONE
    with smtp(h) as c:
        assert c.has_extn("starttls")
        assert not c.has_extn("auth")
        assert c.starttls(context=client_tls)[0] == 220
        c.ehlo("mx.remote.example")
        assert not c.has_extn("starttls")
        assert not c.has_extn("auth")  # no AUTH even under TLS: not a submission service
        assert c.sendmail("x@remote.example", ["alice@example.com"], MSG) == {}
    (_, received), body = split_trace(h.messages("alice@example.com")[0])
    assert body == MSG
    assert b" with ESMTPS id " in received
