"""LMTP (RFC 2033) against the real aiosmtpd-based server, driven by smtplib.LMTP."""

from __future__ import annotations

import smtplib
import socket
import time

import pytest

from letterbox.store.api import Quota

from .delivery_support import Harness, split_trace

MSG = (
    b"From: Sender <sender@remote.example>\r\n"
    b"To: Alice <alice@example.com>\r\n"
    b"Subject: hello\r\n"
    b"Message-ID: <m1@remote.example>\r\n"
    b"\r\n"
    b"Hello Alice.\r\n"
    b".a line that starts with a dot\r\n"
)


def lmtp(h: Harness) -> smtplib.LMTP:
    c = smtplib.LMTP("127.0.0.1", h.lmtp_port, local_hostname="mta.example")
    code, _ = c.ehlo()
    assert code == 250
    return c


def transaction(c: smtplib.LMTP, rcpts: list[str], msg: bytes, mail_options: tuple[str, ...] = ()
                ) -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
    """MAIL, RCPTs and DATA; returns the RCPT replies and the per-recipient DATA replies
    (RFC 2033 4.2: one per accepted recipient, in order)."""
    assert c.mail("sender@remote.example", list(mail_options))[0] == 250
    rcpt_replies = [c.rcpt(r) for r in rcpts]
    accepted = sum(1 for code, _ in rcpt_replies if code == 250)
    data_replies: list[tuple[int, bytes]] = []
    if accepted:
        data_replies.append(c.data(msg))
        data_replies += [c.getreply() for _ in range(accepted - 1)]
    return rcpt_replies, data_replies


def test_greeting_and_lhlo_extensions(harness: Harness) -> None:
    c = smtplib.LMTP("127.0.0.1", harness.lmtp_port)
    code, text = c.ehlo("mta.example")
    assert code == 250
    assert text.split(b"\n")[0] == b"mx.test"
    for ext in ("size", "8bitmime", "smtputf8", "pipelining", "enhancedstatuscodes"):
        assert c.has_extn(ext), ext
    assert c.esmtp_features["size"] == str(50 * 1024**2)
    assert not c.has_extn("auth")
    assert not c.has_extn("starttls")
    # LMTP has no HELO/EHLO (RFC 2033 4.1).
    assert c.docmd("EHLO", "x")[0] == 500
    assert c.docmd("HELO", "x")[0] == 500
    c.quit()


def test_single_recipient_stored_byte_exact(harness: Harness) -> None:
    harness.add_user("alice@example.com")
    with lmtp(harness) as c:
        rcpt, data = transaction(c, ["alice@example.com"], MSG)
    assert rcpt == [(250, b"2.1.5 <alice@example.com> OK")]
    assert data == [(250, b"2.0.0 <alice@example.com> Saved")]
    [stored] = harness.messages("alice@example.com")
    (return_path, received), body = split_trace(stored)
    assert body == MSG
    assert return_path == b"Return-Path: <sender@remote.example>"
    assert received.startswith(b"Received: from mta.example ([127.0.0.1]) by mx.test (Letterbox) with LMTP id ")
    assert b" for <alice@example.com>; " in received


def test_multiple_recipients_one_copy_each(harness: Harness) -> None:
    for u in ("alice", "bob", "carol"):
        harness.add_user(f"{u}@example.com")
    with lmtp(harness) as c:
        rcpt, data = transaction(c, ["alice@example.com", "Bob@Example.COM", "carol@example.com"], MSG)
    assert [code for code, _ in rcpt] == [250, 250, 250]
    assert data == [
        (250, b"2.0.0 <alice@example.com> Saved"),
        (250, b"2.0.0 <bob@example.com> Saved"),
        (250, b"2.0.0 <carol@example.com> Saved"),
    ]
    copies = [harness.messages(f"{u}@example.com") for u in ("alice", "bob", "carol")]
    assert all(len(c) == 1 for c in copies)
    traces = {c[0] for c in copies}
    assert len(traces) == 1, "every copy gets the same trace fields"
    fields, body = split_trace(copies[0][0])
    assert body == MSG
    # Several recipients: "for" would tell each one about the others.
    assert b" for <" not in fields[1]


def test_unknown_user_and_relaying(harness: Harness) -> None:
    harness.add_user("alice@example.com")
    with lmtp(harness) as c:
        rcpt, data = transaction(
            c, ["nobody@example.com", "alice@elsewhere.org", "not an address", "alice@example.com"], MSG
        )
    assert rcpt[0] == (550, b"5.1.1 <nobody@example.com>: user unknown")
    assert rcpt[1] == (550, b"5.7.1 Relaying denied")
    assert rcpt[2][0] in (501, 550, 553)
    assert rcpt[3][0] == 250
    assert data == [(250, b"2.0.0 <alice@example.com> Saved")]
    assert harness.messages("nobody@example.com") == []


def test_no_accepted_recipient_means_no_data(harness: Harness) -> None:
    harness.add_user("alice@example.com")
    with lmtp(harness) as c:
        c.mail("s@remote.example")
        assert c.rcpt("bob@example.com")[0] == 550
        code, _ = c.docmd("DATA")
        assert code == 503
        assert c.noop()[0] == 250


def test_disabled_account_refused(harness: Harness) -> None:
    harness.add_user("alice@example.com")
    harness.call(lambda: harness.ctx.directory.set_enabled("alice@example.com", False))
    with lmtp(harness) as c:
        c.mail("s@remote.example")
        assert c.rcpt("alice@example.com") == (550, b"5.2.1 <alice@example.com>: mailbox disabled")


def test_too_many_recipients(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = make_harness(max_recipients=2)
    for u in ("a", "b", "c"):
        h.add_user(f"{u}@example.com")
    with lmtp(h) as c:
        rcpt, data = transaction(c, ["a@example.com", "b@example.com", "c@example.com"], MSG)
    assert [code for code, _ in rcpt] == [250, 250, 452]
    assert rcpt[2][1].startswith(b"4.5.3")
    assert len(data) == 2
    assert h.messages("c@example.com") == []


def test_over_quota_recipient_refused_others_served(harness: Harness) -> None:
    harness.add_user("alice@example.com")
    harness.add_user("full@example.com", quota=Quota(messages=1))
    harness.add_user("small@example.com", quota=Quota(bytes=300))
    harness.add_user("bob@example.com")
    with lmtp(harness) as c:
        transaction(c, ["full@example.com"], MSG)  # fills it up
        big = MSG + b"x" * 400 + b"\r\n"
        rcpt, data = transaction(
            c, ["alice@example.com", "full@example.com", "small@example.com", "bob@example.com"], big
        )
    # Already full: refused at RCPT time.
    assert rcpt[1] == (552, b"5.2.2 <full@example.com>: mailbox full")
    # Would go over with this message (no SIZE= given): refused after DATA, alone.
    assert data == [
        (250, b"2.0.0 <alice@example.com> Saved"),
        (552, b"5.2.2 <small@example.com>: mailbox full"),
        (250, b"2.0.0 <bob@example.com> Saved"),
    ]
    assert harness.messages("small@example.com") == []
    assert len(harness.messages("alice@example.com")) == 1
    assert len(harness.messages("bob@example.com")) == 1
    assert len(harness.messages("full@example.com")) == 1


def test_declared_size_checked_against_quota_at_rcpt(harness: Harness) -> None:
    harness.add_user("small@example.com", quota=Quota(bytes=1000))
    with lmtp(harness) as c:
        c.mail("s@remote.example", ["SIZE=5000"])
        assert c.rcpt("small@example.com") == (552, b"5.2.2 <small@example.com>: mailbox full")
        c.rset()
        c.mail("s@remote.example", ["SIZE=500"])
        assert c.rcpt("small@example.com")[0] == 250


def test_size_limit(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = make_harness(max_message_size=2048)
    h.add_user("alice@example.com")
    with lmtp(h) as c:
        assert c.esmtp_features["size"] == "2048"
        # RFC 1870: refused as soon as the declared size is too big.
        code, text = c.mail("s@remote.example", ["SIZE=4096"])
        assert code == 552 and text.startswith(b"5.3.4")
        c.rset()
        c.mail("s@remote.example")
        c.rcpt("alice@example.com")
        code, text = c.data(MSG + (b"x" * 70 + b"\r\n") * 50)
        assert code == 552 and text.startswith(b"5.3.4")
        # The session goes on, and a message that fits is accepted.
        rcpt, data = transaction(c, ["alice@example.com"], MSG)
        assert data[0][0] == 250
    assert len(h.messages("alice@example.com")) == 1


def test_binary_and_malformed_content_stored_byte_exact(harness: Harness) -> None:
    harness.add_user("alice@example.com")
    bodies = [
        # 8-bit header and body, NUL and DEL bytes, a bare CR and a bare LF.
        b"Subject: caf\xc3\xa9 \xff\r\n\r\n\x00\x01\x7f\x80\xfe\xff\r\nbare\rCR and bare\nLF\r\n",
        # Multipart cut off in the middle: no closing boundary, truncated base64.
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
        b"--b1\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n--b1\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"AAECAwQFBgcICQ\r\n",
        # No header section at all, and lines that look like the end of data.
        b"no headers here\r\n..\r\n.\t\r\n. \r\n",
        # Header without a body separator.
        b"Subject: only a header\r\n",
    ]
    with lmtp(harness) as c:
        for body in bodies:
            _, data = transaction(c, ["alice@example.com"], body)
            assert data[0][0] == 250
    stored = harness.messages("alice@example.com")
    assert [split_trace(m)[1] for m in stored] == bodies


def test_usage_is_sum_of_stored_sizes(harness: Harness) -> None:
    harness.add_user("alice@example.com")
    harness.add_user("bob@example.com")
    with lmtp(harness) as c:
        for i in range(5):
            transaction(c, ["alice@example.com", "bob@example.com"], MSG + b"x" * i * 100 + b"\r\n")
    for addr in ("alice@example.com", "bob@example.com"):
        stored = harness.messages(addr)
        usage = harness.usage(addr)
        assert usage.messages == len(stored) == 5
        assert usage.bytes == sum(len(m) for m in stored)


def test_client_dropping_mid_data_stores_nothing(harness: Harness) -> None:
    harness.add_user("alice@example.com")
    c = lmtp(harness)
    harness.wait_sessions("lmtp", 1)
    c.mail("s@remote.example")
    c.rcpt("alice@example.com")
    code, _ = c.docmd("DATA")
    assert code == 354
    c.send(b"Subject: cut\r\n\r\nhalf a message\r\nmore")
    c.close()
    harness.wait_sessions("lmtp", 0)
    assert harness.messages("alice@example.com") == []


def test_long_command_lines_refused_clearly_and_session_goes_on(harness: Harness) -> None:
    harness.add_user("alice@example.com")
    with lmtp(harness) as c:
        code, text = c.docmd("NOOP " + "x" * 3000)
        assert code == 500 and b"too long" in text.lower()
        assert c.noop()[0] == 250
        _, data = transaction(c, ["alice@example.com"], MSG)
        assert data[0][0] == 250
    [stored] = harness.messages("alice@example.com")
    assert split_trace(stored)[1] == MSG


def test_pipelined_transaction(harness: Harness) -> None:
    """RFC 2920 / RFC 2033 5: the MTA may send the envelope in one go."""
    harness.add_user("alice@example.com")
    harness.add_user("bob@example.com")
    with socket.create_connection(("127.0.0.1", harness.lmtp_port), timeout=10) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"220 ")
        s.sendall(b"LHLO mta.example\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        s.sendall(
            b"MAIL FROM:<s@remote.example>\r\nRCPT TO:<alice@example.com>\r\n"
            b"RCPT TO:<nobody@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
        )
        replies = [f.readline() for _ in range(5)]
        assert [r[:3] for r in replies] == [b"250", b"250", b"550", b"250", b"354"]
        s.sendall(MSG.replace(b"\r\n.", b"\r\n..") + b".\r\nQUIT\r\n")  # dot-stuffed
        assert f.readline().startswith(b"250 2.0.0 <alice@example.com>")
        assert f.readline().startswith(b"250 2.0.0 <bob@example.com>")
        assert f.readline().startswith(b"221")
    assert split_trace(harness.messages("bob@example.com")[0])[1] == MSG


def test_null_sender_and_duplicate_recipient(harness: Harness) -> None:
    harness.add_user("alice@example.com")
    with lmtp(harness) as c:
        assert c.mail("")[0] == 250  # MAIL FROM:<> (a bounce)
        assert c.rcpt("alice@example.com")[0] == 250
        assert c.rcpt("ALICE@example.com")[0] == 250
        first = c.data(MSG)
        second = c.getreply()
    assert first == second == (250, b"2.0.0 <alice@example.com> Saved")
    [stored] = harness.messages("alice@example.com")
    assert split_trace(stored)[0][0] == b"Return-Path: <>"


def test_unix_socket(harness: Harness) -> None:
    harness.add_user("alice@example.com")
    with smtplib.LMTP(harness.lmtp_socket, local_hostname="mta.example") as c:
        c.ehlo()
        _, data = transaction(c, ["alice@example.com"], MSG)
    assert data == [(250, b"2.0.0 <alice@example.com> Saved")]
    [stored] = harness.messages("alice@example.com")
    fields, body = split_trace(stored)
    assert body == MSG
    assert fields[1].startswith(b"Received: from mta.example (unix socket) by mx.test")


def test_store_failure_is_temporary_and_per_recipient(harness: Harness) -> None:
    from letterbox.store.api import StoreError

    harness.add_user("alice@example.com")
    harness.add_user("broken@example.com")
    harness.break_account("broken@example.com", fail=StoreError("disk on fire"))
    with lmtp(harness) as c:
        _, data = transaction(c, ["broken@example.com", "alice@example.com"], MSG)
    assert data[0][0] == 451 and data[0][1].startswith(b"4.3.0 <broken@example.com>")
    assert data[1] == (250, b"2.0.0 <alice@example.com> Saved")


def test_silent_client_times_out_but_slow_data_does_not(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = make_harness(timeout=0.5)
    h.add_user("alice@example.com")
    with socket.create_connection(("127.0.0.1", h.lmtp_port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        assert f.readline().startswith(b"421 4.4.2")
        assert f.readline() == b""
    with lmtp(h) as c:
        c.mail("s@remote.example")
        c.rcpt("alice@example.com")
        assert c.docmd("DATA")[0] == 354
        # A message trickling in for three times the timeout is not silence.
        for i in range(6):
            c.send(b"X-Line: %d\r\n" % i)
            time.sleep(0.25)
        c.send(b"\r\nbody\r\n.\r\n")
        assert c.getreply() == (250, b"2.0.0 <alice@example.com> Saved")


@pytest.mark.parametrize("service", ["lmtp", "smtp"])
def test_enhanced_status_codes_on_aiosmtpd_replies(harness: Harness, service: str) -> None:
    port = harness.lmtp_port if service == "lmtp" else harness.smtp_port
    cls = smtplib.LMTP if service == "lmtp" else smtplib.SMTP
    with cls("127.0.0.1", port) as c:
        c.ehlo("mta.example")
        assert c.docmd("RCPT TO:<a@example.com>") == (503, b"5.5.1 Error: need MAIL command")
        assert c.rset() == (250, b"2.0.0 OK")
        assert c.noop() == (250, b"2.0.0 OK")


def test_message_refused_as_a_whole_still_gets_one_reply_per_recipient(make_harness) -> None:  # type: ignore[no-untyped-def]
    """RFC 2033 4.2: the client reads one reply per accepted RCPT after the final dot,
    also when the message itself is refused; a single reply would leave it waiting."""
    h = make_harness(max_message_size=2048)
    h.add_user("alice@example.com")
    h.add_user("bob@example.com")
    with lmtp(h) as c:
        too_big = MSG + (b"x" * 70 + b"\r\n") * 50
        one_long_line = MSG + b"y" * 2500 + b"\r\n"
        for body, code in ((too_big, 552), (one_long_line, 552)):
            rcpt, data = transaction(c, ["alice@example.com", "nobody@example.com", "bob@example.com"], body)
            assert [r[0] for r in rcpt] == [250, 550, 250]
            assert [r[0] for r in data] == [code, code]
            assert data[0] == data[1]
        assert c.noop() == (250, b"2.0.0 OK")
    assert h.messages("alice@example.com") == h.messages("bob@example.com") == []


def test_postmaster_is_accepted_and_routed(make_harness) -> None:  # type: ignore[no-untyped-def]
    """RFC 5321 4.5.1: "postmaster", bare or at a local domain, must be accepted."""
    h: Harness = make_harness(postmaster="admin@example.com")
    h.add_user("admin@example.com")
    h.add_user("alice@example.com")
    with lmtp(h) as c:
        _, data = transaction(c, ["postmaster", "Postmaster@example.com"], b"Subject: hi\r\n\r\nx\r\n")
    assert [code for code, _ in data] == [250, 250]
    assert len(h.messages("admin@example.com")) == 1  # one copy: both name one account


def test_long_lines_are_accepted_by_lmtp(harness: Harness) -> None:
    """The MTA accepted the message already; a 500 for a long line would bounce it."""
    harness.add_user("alice@example.com")
    body = b"Subject: long\r\n\r\n" + b"x" * 5000 + b"\r\n"
    with lmtp(harness) as c:
        _, data = transaction(c, ["alice@example.com"], body)
    assert data[0][0] == 250
    assert split_trace(harness.messages("alice@example.com")[0])[1] == body
