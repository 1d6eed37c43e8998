"""Sessions on one mailbox share the store's array of its UIDs until each first changes
its own view: one session learning of new or expunged messages changes neither another
session's view (it has not been told yet) nor the store's table (the next SELECT)."""

from __future__ import annotations

import letterbox.imap.session  # noqa: F401  (first: it builds the command table)

from .test_fetch_helpers import Env, run, tagged

MESSAGE = b"From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n"


def test_one_session_changing_its_view_leaves_the_others_alone(env: Env) -> None:
    async def go() -> None:
        await env.append(MESSAGE, MESSAGE, MESSAGE)
        a = await env.session(rev2=True)
        b = await env.session(rev2=True)
        assert a.s.view is not None and b.s.view is not None
        assert a.s.view.uids is b.s.view.uids  # SELECT copied nothing

        await env.append(MESSAGE)
        assert b"* 4 EXISTS" in await a.cmd("a1 NOOP")
        b.miss_changes()  # b not told yet: its view still has three messages
        out = await b.cmd("b1 FETCH 1:* (UID)")
        assert out.count(b" FETCH (UID ") == 3 and b"UID 4" not in out
        out += await b.cmd("b2 NOOP")
        assert b"* 4 EXISTS" in out and list(b.s.view.uids) == [1, 2, 3, 4]

        c = await env.session(rev2=True)
        assert c.s.view is not None and list(c.s.view.uids) == [1, 2, 3, 4]
        out = await a.cmd("a2 STORE 1 +FLAGS.SILENT (\\Deleted)")
        out = await a.cmd("a3 EXPUNGE")
        assert b"* 1 EXPUNGE" in out and tagged(out, "a3").startswith(b"a3 OK")
        assert list(a.s.view.uids) == [2, 3, 4]
        assert list(c.s.view.uids) == [1, 2, 3, 4]  # c has not been told
        assert b"* 1 EXPUNGE" in await c.cmd("c1 NOOP")
        d = await env.session(rev2=True)
        assert d.s.view is not None and list(d.s.view.uids) == [2, 3, 4]

    run(go())
