"""COPY and MOVE where the store cannot copy within one account: into another account
(a shared mailbox, or one's own from a shared one), or where the user's rights keep some
flags off the copies (RFC 4314 4: only the flags the user may set are stored, the copy
is made all the same).

Each message is read and appended, one at a time (memory holds one message); a failure
part way expunges the copies made, so the destination is left as it was (RFC 9051 6.4.7).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from ..store import acl
from ..store.api import CopyResult, MessageGone, Progress, Quota, StoreError
from .access import Place
from .view import SelectedView


async def copy_messages(
    view: SelectedView, uids: Sequence[int], dest: Place, quota: Quota | None, progress: Progress | None = None
) -> CopyResult:
    src = view.store
    target = dest.account()
    mailbox = await target.get_mailbox(dest.name)
    records = await src.fetch(view.mailbox.id, uids, ["flags", "internaldate"])
    sources: list[int] = []
    copies: list[int] = []
    uidvalidity = mailbox.uidvalidity
    try:
        for rec in records:
            try:
                data = await src.read_message(view.mailbox.id, rec.uid)
            except MessageGone:
                continue  # expunged by another session meanwhile: as the store's COPY skips it
            flags = acl.allowed_flags(dest.rights, rec.flags)
            result = await target.append(mailbox.name, data, flags, rec.internaldate, quota)
            uidvalidity = result.uidvalidity
            sources.append(rec.uid)
            copies.append(result.uid)
            if progress is not None:
                await progress(len(copies))
    except BaseException:
        if copies:
            with contextlib.suppress(StoreError):
                await target.expunge(mailbox.id, copies)
        raise
    return CopyResult(uidvalidity, tuple(sources), tuple(copies))
