"""QRESYNC (RFC 7162 3.2): ENABLE, SELECT (QRESYNC ...), VANISHED instead of EXPUNGE."""

from __future__ import annotations

import re

import letterbox.imap.session  # noqa: F401  (first: it builds the command table)

from .test_fetch_helpers import Env, run

SIMPLE = b"Subject: s\r\n\r\nbody\r\n"



def status(out: bytes, code: str) -> int:
    m = re.search(rb"\[" + code.encode() + rb" (\d+)\]", out)
    assert m, out
    return int(m.group(1))


def test_needs_enable_and_is_advertised(env: Env) -> None:
    async def go() -> None:
        s = await env.session(select=None)
        assert b" QRESYNC" in await s.cmd("a CAPABILITY")
        out = await s.cmd("a SELECT INBOX (QRESYNC (1 1))")
        assert out == b"a BAD QRESYNC must be enabled first (ENABLE QRESYNC)\r\n"
        assert await s.cmd("b ENABLE QRESYNC CONDSTORE") == (
            b"* ENABLED QRESYNC CONDSTORE\r\nb OK ENABLE completed\r\n"
        )
        assert b"c OK [READ-WRITE]" in await s.cmd("c SELECT INBOX (QRESYNC (1 1))")

    run(go())


def test_select_reports_what_changed_since_the_clients_modseq(env: Env) -> None:
    async def go() -> None:
        await env.append(*[SIMPLE] * 8)
        s = await env.session(select=None)
        await s.cmd("e ENABLE QRESYNC")
        out = await s.cmd("s SELECT INBOX")
        uidvalidity, modseq = status(out, "UIDVALIDITY"), status(out, "HIGHESTMODSEQ")
        await s.cmd("u UNSELECT")
        # Another session changes flags, expunges, and a message arrives.
        other = await env.session(rev2=True)
        await other.cmd("x STORE 2,7 +FLAGS.SILENT (\\Flagged)")
        await other.cmd("x STORE 3:5 +FLAGS.SILENT (\\Deleted)")
        await other.cmd("x EXPUNGE")
        await env.append(SIMPLE)

        out = await s.cmd(f"a SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
        lines = out.split(b"\r\n")
        vanished = lines.index(b"* VANISHED (EARLIER) 3:5")
        fetches = [ln for ln in lines if b" FETCH " in ln]
        assert [re.sub(rb"MODSEQ \(\d+\)", b"MODSEQ (n)", f) for f in fetches] == [
            b"* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ (n))",
            b"* 4 FETCH (UID 7 FLAGS (\\Flagged) MODSEQ (n))",
            b"* 6 FETCH (UID 9 FLAGS (\\Recent) MODSEQ (n))",  # IMAP4rev1: new here
        ]
        assert vanished < lines.index(fetches[0])
        assert b"* 6 EXISTS" in lines and lines[-2].startswith(b"a OK [READ-WRITE]")
        assert b"* OK [CLOSED]" not in out  # nothing was selected

        # Known UIDs limit the answer; matching (number, UID) pairs show which expunges
        # the client has already seen.
        out = await s.cmd(f"b SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:4,9))")
        assert b"* OK [CLOSED]" in out
        assert b"* VANISHED (EARLIER) 3:4\r\n" in out
        assert re.findall(rb"\* \d+ FETCH \(UID (\d+)", out) == [b"2", b"9"]
        out = await s.cmd(f"c SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:9 (1,2 1,2)))")
        assert b"* VANISHED (EARLIER) 3:5\r\n" in out
        out = await s.cmd(f"c SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:9 (1,2,3 1,2,6)))")
        assert b"* VANISHED (EARLIER)" not in out  # 3rd message is UID 6: all before known
        # A different UIDVALIDITY: nothing but the plain SELECT answer.
        out = await s.cmd(f"d SELECT INBOX (QRESYNC ({uidvalidity + 1} {modseq}))")
        assert b"VANISHED" not in out and b" FETCH " not in out and b"d OK [READ-WRITE]" in out

    run(go())


def test_expunges_are_vanished_responses(env: Env) -> None:
    async def go() -> None:
        await env.append(*[SIMPLE] * 5)
        s = await env.session(select=None, rev2=True)
        await s.cmd("e ENABLE QRESYNC")
        await s.cmd("s SELECT INBOX")
        other = await env.session(rev2=True)
        await other.cmd("x STORE 1,2,4 +FLAGS.SILENT (\\Deleted)")
        await other.cmd("x EXPUNGE")
        out = await s.cmd("a NOOP")
        assert out == b"* VANISHED 1:2,4\r\na OK NOOP completed\r\n"
        await s.cmd("b STORE 1 +FLAGS.SILENT (\\Deleted)")
        # RFC 7162 3.2.9 (and 3.2.7, RFC 6851 4.4): the tagged OK tells the new HIGHESTMODSEQ.
        out = await s.cmd("c UID EXPUNGE 3")
        assert re.fullmatch(rb"\* VANISHED 3\r\nc OK \[HIGHESTMODSEQ \d+\] UID EXPUNGE completed\r\n", out)
        out = await s.cmd("d UID MOVE 5 Archive")
        assert b"* VANISHED 5\r\n" in out and b"EXPUNGE\r\n" not in out
        assert re.search(rb"d OK \[HIGHESTMODSEQ \d+\] UID MOVE completed", out)
        assert b"HIGHESTMODSEQ" not in await s.cmd("d2 UID EXPUNGE 1:*")  # nothing expunged
        assert await s.cmd("f UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)") == (
            b"* VANISHED (EARLIER) 1:5\r\nf OK UID FETCH completed\r\n"
        )
        # A session without QRESYNC still gets EXPUNGE.
        await env.append(SIMPLE)
        plain = await env.session(rev2=True)
        await s.cmd("g NOOP")
        await s.cmd("g STORE 1 +FLAGS.SILENT (\\Deleted)")
        await s.cmd("g EXPUNGE")
        assert await plain.cmd("h NOOP") == b"* 1 EXPUNGE\r\nh OK NOOP completed\r\n"

    run(go())


def test_modseqs_sent_while_expunges_wait_come_with_a_lower_highestmodseq(env: Env) -> None:
    async def go() -> None:
        await env.append(*[SIMPLE] * 3)
        s = await env.session(select=None)
        await s.cmd("e ENABLE QRESYNC")
        out = await s.cmd("s SELECT INBOX")
        before = status(out, "HIGHESTMODSEQ")
        other = await env.session(rev2=True)
        await other.cmd("x STORE 3 +FLAGS.SILENT (\\Deleted)")
        await other.cmd("x EXPUNGE")
        await other.cmd("x STORE 1 +FLAGS.SILENT (\\Flagged)")
        # FETCH may not report the expunge (RFC 9051 7.5.1), but shows the flag change
        # with its MODSEQ; the HIGHESTMODSEQ that follows stays below the expunge's.
        out = await s.cmd("a FETCH 2 (FLAGS)")
        assert b"VANISHED" not in out
        assert re.search(rb"\* 1 FETCH \(FLAGS \(\\Flagged \\Recent\) UID 1 MODSEQ \(\d+\)\)", out), out
        # All three changes were learned at once: the floor is what the session had.
        assert status(out, "HIGHESTMODSEQ") == before
        out = await s.cmd("b NOOP")
        assert b"* VANISHED 3\r\n" in out and b"HIGHESTMODSEQ" not in out

    run(go())


def test_condstore_enabled_while_selected(env: Env) -> None:
    async def go() -> None:
        await env.append(SIMPLE, SIMPLE)
        s = await env.session(rev2=True)
        # RFC 7162 3.1: the first CONDSTORE enabling command with a mailbox selected
        # returns HIGHESTMODSEQ; later ones do not.
        out = await s.cmd("a ENABLE CONDSTORE")
        assert re.fullmatch(rb"\* ENABLED CONDSTORE\r\n\* OK \[HIGHESTMODSEQ \d+\] Highest\r\na OK ENABLE completed\r\n", out)
        assert b"HIGHESTMODSEQ" not in await s.cmd("b FETCH 1 (MODSEQ)")
        # 3.2.4: from now on an untagged FETCH caused by another session has UID and MODSEQ.
        other = await env.session(rev2=True)
        await other.cmd("x STORE 2 +FLAGS.SILENT (\\Flagged)")
        out = await s.cmd("c NOOP")
        assert re.search(rb"\* 2 FETCH \(FLAGS \(\\Flagged\) UID 2 MODSEQ \(\d+\)\)", out), out

    run(go())


def test_status_highestmodseq_enables_condstore(env: Env) -> None:
    async def go() -> None:
        await env.append(SIMPLE)
        s = await env.session(rev2=True)
        out = await s.cmd("a STATUS Archive (HIGHESTMODSEQ)")
        assert b"* OK [HIGHESTMODSEQ" in out
        other = await env.session(rev2=True)
        await other.cmd("x STORE 1 +FLAGS.SILENT (\\Seen)")
        assert re.search(rb"\* 1 FETCH \(FLAGS \(\\Seen\) UID 1 MODSEQ", await s.cmd("b NOOP"))

    run(go())
