"""A store with many accounts keeps a bounded number open: the handles in use, and the
`open_accounts` most recently used beside them. Each holds descriptors and a page cache,
and a host's thousands of accounts are all visited at start-up and by the daily chores."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from letterbox.store.api import Unavailable
from letterbox.store.maildir import MaildirStore

MSG = b"From: a@example.com\r\nSubject: hello\r\n\r\nbody\r\n"


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def no_cycle_collector() -> Iterator[None]:
    """Handles must go when their last user lets go, not at some later collection."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_unused_handles_beyond_the_bound_are_closed(tmp_path: Path, no_cycle_collector: None) -> None:
    async def go() -> None:
        store = MaildirStore(tmp_path / "mail", exclusive=True, open_accounts=3)
        before = fds()
        for i in range(12):
            acc = await store.account(f"u{i}@example.com")
            await acc.append("INBOX", MSG)
            mid = (await acc.get_mailbox("INBOX")).id
            await acc.store_flags(mid, [1], "add", ["\\Seen", "$Label"])
            await acc.set_metadata("INBOX", [("/private/comment", b"x")])
            await acc.set_acl("INBOX", "ann@example.com", "lrs")
            reader = acc.reader("ann@example.com")
            await reader.store_flags(mid, [1], "add", ["\\Seen"])
            del acc, reader
        await store.sync_names()  # the name sync holds a handle until it is done
        assert store.open_count() == 3
        assert fds() - before <= 3 * 4 + 3  # and the store's register of grants (grants.py)
        # An account closed this way opens again with everything it had.
        acc = await store.account("u0@example.com")
        mid = (await acc.get_mailbox("INBOX")).id
        assert await acc.uids_with_flag(mid, "$Label") == [1]
        assert await acc.reader("ann@example.com").uids_with_flag(mid, "\\Seen") == [1]
        await store.close()

    run(go())


def test_a_handle_in_use_stays_open_whatever_the_bound(tmp_path: Path, no_cycle_collector: None) -> None:
    async def go() -> None:
        store = MaildirStore(tmp_path / "mail", exclusive=True, open_accounts=1)
        held = await store.account("held@example.com")
        owner = await store.account("owner@example.com")
        await owner.append("INBOX", MSG)
        await owner.set_acl("INBOX", "held@example.com", "lrs")
        reader = owner.reader("held@example.com")
        del owner
        for i in range(5):
            await store.account(f"u{i}@example.com")
        # Both are still the handles the store gives out, and both work.
        assert await store.account("held@example.com") is held
        await held.append("INBOX", MSG)
        assert len((await held.snapshot("INBOX"))[1]) == 1
        mid = (await reader.get_mailbox("INBOX")).id
        await reader.store_flags(mid, [1], "add", ["\\Seen"])
        assert (await store.account("owner@example.com")).reader("held@example.com") is reader
        await store.close()

    run(go())


def test_start_up_checks_leave_a_bounded_number_open(tmp_path: Path) -> None:
    async def go() -> None:
        store = MaildirStore(tmp_path / "mail", exclusive=True)
        for i in range(20):
            acc = await store.account(f"u{i}@example.com")
            await acc.append("INBOX", MSG)
            await acc.store_flags((await acc.get_mailbox("INBOX")).id, [1], "add", ["\\Flagged"])
        del acc
        await store.close()  # without the name sync: as after a crash, names lag the flags

        store = MaildirStore(tmp_path / "mail", exclusive=True, open_accounts=4)
        await asyncio.to_thread(store.reconcile_all)
        gc.collect()
        assert store.open_count() <= 4
        store.mark_names_stale()
        await store.sync_names()
        gc.collect()
        assert store.open_count() <= 4
        await store.close()
        # Every file name now says \Flagged (F), those of accounts closed since start-up too.
        names = [p.name for p in (tmp_path / "mail").glob("example.com/*/cur/*")]
        assert len(names) == 20 and all(n.endswith(":2,F") for n in names), names

    run(go())


def test_out_of_descriptors_is_a_temporary_failure_and_idle_handles_give_theirs_back(tmp_path: Path) -> None:
    """In a process of its own, with a low descriptor limit."""
    script = textwrap.dedent(f"""
        import asyncio, resource, sys
        from pathlib import Path
        from letterbox.store.api import Unavailable
        from letterbox.store.maildir import MaildirStore

        async def main():
            store = MaildirStore(Path({str(tmp_path / "mail")!r}), exclusive=True, open_accounts=1000)
            resource.setrlimit(resource.RLIMIT_NOFILE, (80, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
            held = []
            try:
                for i in range(100):
                    held.append(await store.account(f"h{{i}}@example.com"))
            except Unavailable as e:
                print("held", len(held), "then:", e)
            else:
                sys.exit("never ran out")
            held.clear()  # now idle, but kept warm: the bound is far away
            acc = await store.account("late@example.com")
            await acc.append("INBOX", b"Subject: x\\r\\n\\r\\nhi\\r\\n")
            print("opened after letting idle handles go:", store.open_count())
            await store.close()

        asyncio.run(main())
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "out of file descriptors" in out.stdout
    assert "opened after letting idle handles go" in out.stdout


def test_the_out_of_descriptors_error_is_unavailable() -> None:
    from letterbox.store.maildir.store import OutOfDescriptors

    assert issubclass(OutOfDescriptors, Unavailable)
