"""An index found damaged while the server runs: the account closes, is rebuilt from its
folders, and opens again with its mail; other accounts never notice."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from letterbox.store.api import Unavailable
from letterbox.store.maildir import MaildirStore

MSG = b"Subject: s\r\n\r\nbody\r\n"


class _Corrupt(sqlite3.DatabaseError):
    sqlite_errorcode = 11  # SQLITE_CORRUPT


def test_damage_found_while_serving_closes_rebuilds_and_reopens(tmp_path: Path) -> None:
    async def go() -> None:
        store = MaildirStore(tmp_path, exclusive=True)
        bad = await store.account("bad@example.com", "inc-bad")
        good = await store.account("good@example.com", "inc-good")
        for _ in range(3):
            await bad.append("INBOX", MSG, ["\\Seen"])
        await good.append("INBOX", MSG)
        inbox = await bad.get_mailbox("INBOX")

        class Broken:
            def __init__(self, real: sqlite3.Connection) -> None:
                self.real = real

            def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
                if sql.startswith("SELECT") and "m.filename" in sql:  # a message file's lookup
                    raise _Corrupt("database disk image is malformed")
                return self.real.execute(sql, *args)

            def close(self) -> None:
                self.real.close()

        bad.db = Broken(bad.db)  # type: ignore[assignment]
        with pytest.raises(Unavailable):
            await bad.read_message(inbox.id, 1)
        assert "bad@example.com" in store.unavailable and bad.closed
        with pytest.raises(Unavailable):
            await store.account("bad@example.com", "inc-bad")
        with pytest.raises(Unavailable):
            await bad.read_message(inbox.id, 2)  # the old handle says so too
        assert (await good.usage()).messages == 1

        assert await asyncio.to_thread(store.rebuild_unavailable) == 1
        assert store.unavailable == {}
        again = await store.account("bad@example.com", "inc-bad")
        inbox2 = await again.get_mailbox("INBOX")
        assert inbox2.uidvalidity == inbox.uidvalidity
        _, metas = await again.snapshot("INBOX")
        assert [(m.uid, set(m.flags)) for m in metas] == [(u, {"\\Seen"}) for u in (1, 2, 3)]
        assert await again.read_message(inbox2.id, 3) == MSG
        await store.close()

    asyncio.run(go())
