"""A session's own flag change, the next MODSEQ after what its view knows, needs no catch-up
read of the store; anything else in between still does, and is reported."""

from __future__ import annotations

import letterbox.imap.session  # noqa: F401  (first: it builds the command table)

from .test_fetch_helpers import Env, run, tagged

MESSAGE = b"From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n"


def test_own_store_is_not_read_back_but_others_changes_are(env: Env) -> None:
    async def go() -> None:
        await env.append(MESSAGE, MESSAGE, MESSAGE)
        a = await env.session(rev2=True)
        b = await env.session(rev2=True)
        acc = await env.account()
        reads: list[int] = []
        changes_since = acc.changes_since

        async def counted(mailbox_id: int, modseq: int, **kwargs: object) -> object:
            reads.append(modseq)
            return await changes_since(mailbox_id, modseq, **kwargs)  # type: ignore[arg-type]

        acc.changes_since = counted  # type: ignore[method-assign]

        out = await a.cmd("t1 STORE 1 +FLAGS (\\Flagged)")
        assert b"* 1 FETCH (FLAGS (\\Flagged))" in out and tagged(out, "t1").startswith(b"t1 OK")
        assert reads == []
        out = await a.cmd("t2 NOOP")  # NOOP always asks the store (its purpose)
        assert b"FETCH" not in out and len(reads) == 1

        # Another session's change in between: read, and told.
        assert tagged(await b.cmd("u1 STORE 2 +FLAGS (\\Seen)"), "u1").startswith(b"u1 OK")
        reads.clear()  # b read a's change back: not its own
        out = await a.cmd("t3 STORE 1 -FLAGS (\\Flagged)")
        assert b"* 1 FETCH (FLAGS ())" in out
        assert b"* 2 FETCH (FLAGS (\\Seen))" in out
        assert len(reads) == 1
        out = await a.cmd("t4 NOOP")
        assert b"FETCH" not in out and len(reads) == 2

        # CONDSTORE: the tagged answers after the own change know its MODSEQ.
        assert tagged(await a.cmd("t5 ENABLE CONDSTORE"), "t5").startswith(b"t5 OK")
        out = await a.cmd("t6 STORE 3 +FLAGS (\\Answered)")
        modseq = int(out.split(b"MODSEQ (")[1].split(b")")[0])
        assert a.s.view is not None and a.s.view.modseq == modseq
        assert len(reads) == 2

    run(go())
