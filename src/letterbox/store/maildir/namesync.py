"""Flag letters in file names, brought up to date with the index in the background.

A STORE changes the index only, so it costs the same for one message or 100,000. Within a
few seconds (and before a clean shutdown) the files of the changed messages get names
whose Maildir info says the same flags, so an index rebuilt from the folders alone keeps
them. A keyword gets a letter (a-z, in its folder file) the first time a file needs it;
keywords beyond the 26th keep no letter and are lost by a rebuild, as in Dovecot. The
readers' \\Seen marks of a shared mailbox go into its side file at the same time.

A rename is done as link, commit, unlink: the index always names a file that exists, and
a crash between the steps leaves a second name of the same file, which start-up removes.
Readers that lose the race with the unlink look the name up again (account._read).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .. import faults
from . import files, sidefiles
from .accountdir import join

if TYPE_CHECKING:
    from .account import MaildirAccount

log = logging.getLogger("letterbox.store")

# Files renamed per round; a mailbox with more changes takes several rounds.
ROUND = 2000


async def sync_mailbox(acc: MaildirAccount, mailbox_id: int) -> int:
    """Bring one mailbox's file names up to date; returns how many were renamed."""
    row = acc.db.execute(
        "SELECT names_modseq, highestmodseq, dirname FROM mailboxes WHERE id = ?", (mailbox_id,)
    ).fetchone()
    if row is None or row[0] >= row[1]:
        return 0
    since, upto, folder = int(row[0]), int(row[1]), row[2]
    cursor = (since, 0)
    total = 0
    while not acc.closed:
        rows = acc.db.execute(
            "SELECT uid, flags, filename, modseq FROM messages WHERE mailbox_id = ?"
            " AND (modseq, uid) > (?, ?) AND modseq <= ? ORDER BY modseq, uid LIMIT ?",
            (mailbox_id, *cursor, upto, ROUND),
        ).fetchall()
        if not rows:
            break
        total += await _rename(acc, mailbox_id, folder, rows)
        cursor = (int(rows[-1][3]), int(rows[-1][0]))
    if not acc.closed:
        await save_seen(acc, mailbox_id, folder)
        async with acc.write() as db:
            db.execute(
                "UPDATE mailboxes SET names_modseq = max(names_modseq, ?) WHERE id = ?", (upto, mailbox_id)
            )
    return total


async def save_seen(acc: MaildirAccount, mailbox_id: int, folder: str) -> None:
    """The readers' \\Seen marks of the mailbox into its file (sidefiles.py), with the
    file names: a change of a mark gives its message a new MODSEQ, so it is due here."""
    seen = sidefiles.read_seen(acc.db, mailbox_id)
    await files.disk_threads.run(sidefiles.sync_seen_file, acc.adir, folder, seen)


async def _rename(acc: MaildirAccount, mailbox_id: int, folder: str, rows: list[tuple]) -> int:
    await acc.ensure_letters(mailbox_id, {f for r in rows for f in r[1].split()})
    letters = acc.letters(mailbox_id)
    cur = join(folder, "cur")
    wanted = []
    for uid, flags, filename, _ in rows:
        name = files.with_info(filename, files.info_for(flags.split(), letters))
        if name != filename:
            wanted.append((uid, join(cur, filename), join(cur, name)))
    if not wanted:
        return 0
    linked = await files.disk_threads.run(_link_all, acc, wanted)
    faults.point("names.linked")
    updated: set[int] = set()
    async with acc.write() as db:
        for uid, old, new in linked:
            cur_row = db.execute(
                "UPDATE messages SET filename = ? WHERE mailbox_id = ? AND uid = ? AND filename = ?",
                (new.rpartition("/")[2], mailbox_id, uid, old.rpartition("/")[2]),
            )
            if cur_row.rowcount:
                updated.add(uid)
    faults.point("names.committed")
    # Old names of renamed files go; so do new names whose message changed meanwhile.
    doomed = [old if uid in updated else new for uid, old, new in linked]
    await files.disk_threads.run(acc.adir.unlink_many, doomed)
    return len(updated)


def _link_all(acc: MaildirAccount, wanted: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    out = []
    for uid, old, new in wanted:
        try:
            if acc.adir.link(old, new):
                out.append((uid, old, new))
        except FileExistsError:
            out.append((uid, old, new))  # left by an earlier round that did not finish
    if out:
        acc.adir.fsync_dir(out[0][2].rpartition("/")[0])
    return out


