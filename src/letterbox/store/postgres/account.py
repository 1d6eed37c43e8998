"""One account of the PostgreSQL store: its messages and the order of their writes.

Every write is one transaction that first locks the row of the mailbox it changes
(`UPDATE mailboxes ... RETURNING` or `SELECT ... FOR UPDATE`): UIDs and MODSEQs are
allocated under that lock, in the transaction that inserts or changes the messages, so
front ends writing at once get distinct UIDs, visible in ascending order. A write
checked against a quota locks the account row first, so two cannot both take the last
room. Lock order: account, mailboxes (by id), messages, blobs; deadlocks are retried
(db.py). Nothing is acknowledged or published before its commit.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar

from ...mime import ParsedMessage
from ...mime.preview import make_preview
from ...mime.sections import load_parts
from .. import names
from ..api import (
    CHUNK,
    AccountGone,
    AccountStore,
    AppendResult,
    Change,
    ChangeKind,
    ChangeSet,
    CopyResult,
    FetchField,
    FlagTable,
    FolderUsage,
    ImportedMessage,
    Mailbox,
    MailboxNotFound,
    MailboxStatus,
    MessageGone,
    MessageMeta,
    MessageRecord,
    Progress,
    Quota,
    SearchField,
    StoreError,
    Usage,
    current_origin,
)
from ..rules import flags as flagrules
from ..rules import keywords as keywords_rule
from ..rules import messages, quotas, recent
from ..rules.flags import SEEN, flag_text, flagset
from ..rules.mailboxes import mailbox_objectid
from ..rules.seen import overlay, overlay_text, reader_store
from . import acls, blobs, mailboxes, metadata, newmessage
from .db import Tx
from .flagtable import build

if TYPE_CHECKING:
    from .store import PostgresStore

_COPY_BATCH = 500
STREAM_IN_MEMORY = 4 * CHUNK
"""read_chunks reads ranges up to this size at once, holding no connection after."""
_EXPUNGE_BATCH = 1000

_FIELD_SQL: dict[str, tuple[str, ...]] = {
    "flags": ("m.flags",),
    "modseq": ("m.modseq",),
    "size": ("m.size",),
    "internaldate": ("m.internaldate",),
    "envelope": ("b.envelope",),
    "bodystructure": ("b.bodystructure",),
    "body": ("b.body",),
    "parts": ("b.parts",),
    "header_size": ("b.header_size",),
    "sent_date": ("b.sent_date",),
    "search": ("b.subject", "b.from_", "b.to_", "b.cc", "b.bcc"),
    "subject": ("b.subject",),
    "message_id": ("b.message_id",),
    "references": ("b.refs_ids",),
    "emailid": ("b.emailid",),
    "savedate": ("m.savedate",),
    "preview": ("b.preview",),
    "pop3": ("m.pop3_hidden", "m.pop3_retrieved"),
}

_SEARCH_COLUMNS: dict[str, str] = {
    "subject": "b.subject", "from": "b.from_", "to": "b.to_", "cc": "b.cc", "bcc": "b.bcc",
    # Stored as written; Message-IDs are ASCII, so lower() is their casefold.
    "message-id": "lower(b.message_id)",
}

MBOX_COLS = (
    "m.id, m.name, m.uidvalidity, m.uidnext, m.highestmodseq, m.special_use, m.keywords,"
    " EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = m.account_id AND s.name = m.name)"
)

_CHANGES_SQL = (
    "SELECT mb.highestmodseq, mb.name, mb.uidvalidity, ch.uids, ch.flags, ch.modseqs, ch.seen,"
    " CASE WHEN mb.highestmodseq > $3 THEN ARRAY(SELECT e.uid FROM expunged e"
    "  WHERE e.mailbox_id = mb.id AND e.modseq > $3 ORDER BY e.uid) END"
    " FROM mailboxes mb LEFT JOIN LATERAL ("
    "  SELECT array_agg(m.uid ORDER BY m.uid) AS uids, array_agg(m.flags ORDER BY m.uid) AS flags,"
    "  array_agg(m.modseq ORDER BY m.uid) AS modseqs,"
    "  array_agg($4::text IS NOT NULL AND EXISTS (SELECT 1 FROM private_seen ps WHERE ps.mailbox_id = m.mailbox_id"
    '   AND ps.uid = m.uid AND ps."user" = $4) ORDER BY m.uid) AS seen'
    "  FROM messages m WHERE m.mailbox_id = mb.id AND m.modseq > $3) ch ON mb.highestmodseq > $3"
    " WHERE mb.id = $1 AND mb.account_id = $2"
)
"""What changed in a mailbox since a MODSEQ, in one statement: the mailbox, the changed
messages as arrays (with the reader's \\Seen when $4 names one) and the expunged UIDs."""

_STORE_READ_SQL = (
    "SELECT mb.highestmodseq, mb.keywords, mb.name, ch.uids, ch.flags, ch.modseqs FROM mailboxes mb"
    " LEFT JOIN LATERAL (SELECT array_agg(m.uid ORDER BY m.uid) AS uids, array_agg(m.flags ORDER BY m.uid) AS flags,"
    "  array_agg(m.modseq ORDER BY m.uid) AS modseqs FROM messages m"
    "  WHERE m.mailbox_id = mb.id AND m.uid = ANY($3::bigint[])) ch ON true"
    " WHERE mb.id = $1 AND mb.account_id = $2"
)
"""A mailbox's MODSEQ, keywords and name with the flags of some of its messages: what a
STORE reads, in one snapshot."""

_EXPUNGE_READ_SQL = (
    "SELECT highestmodseq, name, ARRAY(SELECT uid FROM messages WHERE mailbox_id = $1"
    " AND uid = ANY($3::bigint[]) ORDER BY uid) FROM mailboxes WHERE id = $1 AND account_id = $2"
)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def _op(fn: F) -> F:
    """Refuse a handle on an account deleted here (elsewhere: found at the lookup)."""

    @functools.wraps(fn)
    async def run(self: PgAccount, *args: Any, **kwargs: Any) -> Any:
        if self.closed:
            raise AccountGone("this account has been deleted")
        await self._store.start()
        return await fn(self, *args, **kwargs)

    return run  # type: ignore[return-value]


def mailbox_from_row(row: Any) -> Mailbox:
    mid, name, uidvalidity, uidnext, hms, special_use, keywords, subscribed = tuple(row)[:8]
    return Mailbox(
        id=int(mid), name=name, uidvalidity=int(uidvalidity), uidnext=int(uidnext), highestmodseq=int(hms),
        special_use=special_use, subscribed=bool(subscribed), keywords=tuple(keywords.split()),
        mailboxid=mailbox_objectid(int(uidvalidity)),
    )


_SEEN_BY = 'EXISTS (SELECT 1 FROM private_seen ps WHERE ps.mailbox_id = m.mailbox_id AND ps.uid = m.uid AND ps."user" = $3)'
"""A column: has the reader ($3) marked the message \\Seen."""


def _select_sql(cols: list[str], seen_by: bool = False) -> str:
    """One statement (one snapshot) for the *cols* of messages; with *seen_by*, a last
    column says whether the reader ($3) has seen each."""
    join = " JOIN blobs b ON b.sha = m.blob" if any(c.startswith("b.") for c in cols) else ""
    cols = [*cols, _SEEN_BY] if seen_by else cols
    return f"SELECT {', '.join(cols)} FROM messages m{join} WHERE m.mailbox_id = $1 AND m.uid = ANY($2::bigint[])" \
           " ORDER BY m.uid"


class PgAccount(AccountStore):
    def __init__(self, store: PostgresStore, address: str, account_id: int, incarnation: str | None) -> None:
        self.address = address
        self.account_id = account_id
        self.incarnation = incarnation
        self._store = store
        self.db = store.db
        self.limits = store.limits
        self.closed = False
        self._known: dict[int, int] = {}
        self._readers: dict[str, AccountStore] = {}
        self._inbox: Mailbox | None = None

    def close(self) -> None:
        self.closed = True

    # --- lookups ---------------------------------------------------------------------------
    async def mailbox_in(self, conn: Any, name: str) -> Mailbox:
        name = names.normalize(name)
        row = await conn.fetchrow(
            f"SELECT {MBOX_COLS}, a.live FROM accounts a LEFT JOIN mailboxes m"
            " ON m.account_id = a.id AND m.name = $2 WHERE a.id = $1",
            self.account_id, name,
        )
        if row is None or not row["live"]:
            self.closed = True
            raise AccountGone("this account has been deleted")
        if row["id"] is None:
            raise MailboxNotFound(f"mailbox {name!r} does not exist")
        return mailbox_from_row(row)

    async def lock_account(self, conn: Any) -> None:
        """Inside a transaction: one tree change or quota-checked write at a time."""
        if await conn.fetchval(
            "SELECT 1 FROM accounts WHERE id = $1 AND live FOR NO KEY UPDATE", self.account_id
        ) is None:
            self.closed = True
            raise AccountGone("this account has been deleted")

    async def usage_in(self, conn: Any, count_trash: bool = True) -> Usage:
        row = await conn.fetchrow(
            "SELECT coalesce(sum(messages), 0), coalesce(sum(bytes), 0) FROM mailboxes"
            " WHERE account_id = $1 AND ($2 OR special_use IS DISTINCT FROM $3)",
            self.account_id, count_trash, quotas.TRASH,
        )
        return Usage(int(row[0]), int(row[1]))

    async def check_quota(self, conn: Any, quota: Quota | None, size: int, count: int) -> None:
        if quota is None or not quotas.applies(quota):
            return
        usage = await self.usage_in(conn, quota.count_trash)
        quotas.check(quota, lambda _trash: usage, size, count)

    def change(self, mailbox_id: int, modseq: int, kind: ChangeKind, name: str, old_name: str = "",
               entries: tuple[str, ...] = (), user: str = "") -> Change:
        if kind not in ("subscription", "metadata", "acl"):
            self.note(mailbox_id, modseq)
        return Change(self.address, mailbox_id, modseq, kind, name, old_name, current_origin(), entries, user)

    def note(self, mailbox_id: int, modseq: int) -> None:
        """This handle made the mailbox's *modseq* (check_external need not tell it)."""
        self._known[mailbox_id] = max(self._known.get(mailbox_id, 0), modseq)

    async def remember_modseqs(self) -> None:
        for r in await self.db.fetch("SELECT id, highestmodseq FROM mailboxes WHERE account_id = $1", self.account_id):
            self._known[int(r[0])] = int(r[1])

    async def check_external(self) -> None:
        """Publish what changed since this handle last looked (after the LISTEN
        connection was lost, changes from other front ends may have been missed)."""
        for mid, name, hms in await self.db.fetch(
            "SELECT id, name, highestmodseq FROM mailboxes WHERE account_id = $1", self.account_id
        ):
            if hms != self._known.get(mid):
                kind: ChangeKind = "append" if mid in self._known else "mailbox"
                self._known[mid] = hms
                self._store.feed.publish(Change(self.address, mid, hms, kind, name))

    # --- mailboxes -------------------------------------------------------------------------
    @_op
    async def list_mailboxes(self) -> list[Mailbox]:
        rows = await self.db.fetch(
            f"SELECT {MBOX_COLS} FROM mailboxes m WHERE m.account_id = $1 ORDER BY m.name", self.account_id
        )
        return [mailbox_from_row(r) for r in rows]

    @_op
    async def get_mailbox(self, name: str) -> Mailbox:
        async with self.db.conn() as conn:
            return await self.mailbox_in(conn, name)

    @_op
    async def create_mailbox(self, name: str, special_use: str | None = None) -> Mailbox:
        return await mailboxes.create(self, name, special_use)

    @_op
    async def delete_mailbox(self, name: str) -> None:
        await mailboxes.delete(self, name)

    @_op
    async def rename_mailbox(self, old: str, new: str) -> None:
        await mailboxes.rename(self, old, new)

    @_op
    async def set_subscribed(self, name: str, subscribed: bool) -> None:
        await mailboxes.set_subscribed(self, name, subscribed)

    @_op
    async def subscriptions(self) -> list[str]:
        rows = await self.db.fetch("SELECT name FROM subscriptions WHERE account_id = $1", self.account_id)
        return sorted(r[0] for r in rows)

    @_op
    async def status(self, mailbox: str, *, reader: str | None = None) -> MailboxStatus:
        async with self.db.snapshot() as conn:
            mbox = await self.mailbox_in(conn, mailbox)
            row = await conn.fetchrow(
                "SELECT messages, bytes, unseen, deleted,"
                " (SELECT count(*) FROM messages WHERE mailbox_id = mailboxes.id AND uid >= recent_uid),"
                " CASE WHEN deleted > 0 THEN (SELECT coalesce(sum(size), 0) FROM messages"
                "  WHERE mailbox_id = mailboxes.id AND letterbox_has_flag(flags, '\\Deleted')) ELSE 0 END"
                " FROM mailboxes WHERE id = $1", mbox.id,
            )
            count, size, unseen, deleted, recent_count, deleted_size = (int(v) for v in row)
            if reader is not None:
                unseen = count - int(await conn.fetchval(
                    'SELECT count(*) FROM private_seen WHERE mailbox_id = $1 AND "user" = $2', mbox.id, reader
                ))
        return MailboxStatus(mbox, count, unseen, deleted, size, recent_count, deleted_size)

    @_op
    async def take_recent(self, mailbox_id: int, claim: bool = True) -> tuple[int, int]:
        if not claim:
            row = await self.db.fetchrow("SELECT recent_uid, uidnext FROM mailboxes WHERE id = $1", mailbox_id)
            if row is None:
                raise MailboxNotFound("mailbox no longer exists")
            return recent.recent_range(int(row[0]), int(row[1]))

        async def body(tx: Tx) -> tuple[int, int]:
            # One statement: the mark moves to UIDNEXT (what recent.claim does) under
            # the row lock, taken only when there is something to claim (a lock alone
            # makes the statement a write, with its WAL flush at commit).
            row = await tx.conn.fetchrow(
                "WITH cur AS (SELECT recent_uid, uidnext FROM mailboxes WHERE id = $1),"
                " old AS (SELECT m.recent_uid, m.uidnext FROM mailboxes m, cur"
                "  WHERE m.id = $1 AND cur.recent_uid <> cur.uidnext FOR UPDATE OF m),"
                " moved AS (UPDATE mailboxes m SET recent_uid = old.uidnext FROM old"
                "  WHERE m.id = $1 AND old.recent_uid <> old.uidnext)"
                " SELECT coalesce(old.recent_uid, cur.recent_uid), coalesce(old.uidnext, cur.uidnext)"
                " FROM cur LEFT JOIN old ON true", mailbox_id,
            )
            if row is None:
                raise MailboxNotFound("mailbox no longer exists")
            taken, mark = recent.claim(int(row[0]), int(row[1]))
            if mark != int(row[1]):
                raise AssertionError("recent.claim moves the mark to UIDNEXT, as the statement does")
            return taken

        return await self.db.run(body, autocommit=True)

    # --- messages: reading -----------------------------------------------------------------
    async def _seen(self, conn: Any, mailbox_id: int, reader: str, uids: Sequence[int] | None = None) -> set[int]:
        if uids is None:
            rows = await conn.fetch('SELECT uid FROM private_seen WHERE mailbox_id = $1 AND "user" = $2',
                                    mailbox_id, reader)
        else:
            rows = await conn.fetch(
                'SELECT uid FROM private_seen WHERE mailbox_id = $1 AND "user" = $2 AND uid = ANY($3::bigint[])',
                mailbox_id, reader, list(uids),
            )
        return {int(r[0]) for r in rows}

    @_op
    async def snapshot(self, mailbox: str, *, reader: str | None = None) -> tuple[Mailbox, list[MessageMeta]]:
        async with self.db.snapshot() as conn:
            mbox = await self.mailbox_in(conn, mailbox)
            rows = await conn.fetch(
                "SELECT uid, flags, modseq FROM messages WHERE mailbox_id = $1 ORDER BY uid", mbox.id
            )
            seen = await self._seen(conn, mbox.id, reader) if reader is not None else set()
        if reader is not None:
            return mbox, [MessageMeta(uid, overlay(flagset(fl), uid in seen), ms) for uid, fl, ms in rows]
        return mbox, [MessageMeta(uid, flagset(fl), ms) for uid, fl, ms in rows]

    @_op
    async def select_info(
        self, mailbox: str, *, reader: str | None = None
    ) -> tuple[Mailbox, Sequence[int], int | None]:
        table: FlagTable | None = None
        if reader is None:
            # Two statements and no transaction: they agree when the table's MODSEQ is
            # the mailbox's (a change in between moves it: read again in a snapshot).
            async with self.db.conn() as conn:
                mbox = await self.mailbox_in(conn, mailbox)
                table = await self._store.flag_tables.get(conn, mbox.id)
            if (table.modseq, table.uidvalidity) != (mbox.highestmodseq, mbox.uidvalidity):
                table = None
        if table is None:
            async with self.db.snapshot() as conn:
                mbox = await self.mailbox_in(conn, mailbox)
                table = await self._flag_table(conn, mbox.id, reader)
        first = len(table.uids)
        for fid in table.counts:
            if SEEN not in table.texts[fid].split():
                first = min(first, list(table.flag_ids).index(fid))
        return mbox, table.uids, table.uids[first] if first < len(table.uids) else None

    @_op
    async def fetch(
        self, mailbox_id: int, uids: Sequence[int], fields: Iterable[FetchField], *, reader: str | None = None
    ) -> list[MessageRecord]:
        wanted = list(dict.fromkeys(fields))
        cols = ["m.uid"]
        for f in wanted:
            cols.extend(_FIELD_SQL[f])
        out: list[MessageRecord] = []
        seen_by = reader is not None and "flags" in wanted
        args = (mailbox_id, sorted(set(uids)), *((reader,) if seen_by else ()))
        rows = await self.db.fetch(_select_sql(cols, seen_by), *args) if uids else []
        for row in rows:
            rec = MessageRecord(uid=row[0])
            i = 1
            for f in wanted:
                if f == "flags":
                    rec.flags = overlay(flagset(row[i]), row[-1]) if seen_by else flagset(row[i])
                elif f == "search":
                    rec.search = "\x00".join(row[i : i + 5])
                    i += 4
                elif f == "pop3":
                    rec.pop3_hidden = bool(row[i])
                    rec.pop3_retrieved = row[i + 1]
                    i += 1
                else:
                    setattr(rec, f, row[i])
                i += 1
            out.append(rec)
        return out

    @_op
    async def fetch_values(
        self, mailbox_id: int, uids: Sequence[int], fields: Sequence[FetchField], *, reader: str | None = None
    ) -> list[tuple[Any, ...]]:
        cols = ["m.uid"]
        for f in fields:
            if len(_FIELD_SQL[f]) != 1:
                raise ValueError(f"{f} is more than one value")
            cols.extend(_FIELD_SQL[f])
        if not uids:
            return []
        seen_by = reader is not None and "flags" in fields
        args = (mailbox_id, sorted(set(uids)), *((reader,) if seen_by else ()))
        rows = [tuple(r) for r in await self.db.fetch(_select_sql(cols, seen_by), *args)]
        if seen_by:
            at = 1 + list(fields).index("flags")
            rows = [(*r[:at], overlay_text(r[at], r[-1]), *r[at + 1 : -1]) for r in rows]
        return rows

    @_op
    async def make_previews(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, str]:
        made: dict[int, str] = {}
        async with self.db.conn() as conn:
            rows = await conn.fetch(
                "SELECT m.uid, b.sha, b.size, b.parts, b.preview FROM messages m JOIN blobs b ON b.sha = m.blob"
                " WHERE m.mailbox_id = $1 AND m.uid = ANY($2::bigint[]) ORDER BY m.uid",
                mailbox_id, sorted(set(uids)),
            )
            for uid, sha, size, parts, kept in rows:
                if kept is None:
                    data = await blobs.read(conn, sha, size)
                    kept = make_preview(load_parts(parts), functools.partial(_slice, data))
                    # Kept with the content, so every copy of it has it from now on.
                    await conn.execute("UPDATE blobs SET preview = $2 WHERE sha = $1 AND preview IS NULL", sha, kept)
                made[int(uid)] = kept
        return made

    async def _flag_table(self, conn: Any, mailbox_id: int, reader: str | None) -> FlagTable:
        table = await self._store.flag_tables.get(conn, mailbox_id)
        if reader is None:
            return table
        seen = await self._seen(conn, mailbox_id, reader)
        rows = {uid: overlay_text(table.texts[fid], uid in seen)
                for uid, fid in zip(table.uids, table.flag_ids, strict=True)}
        return build(table.modseq, table.uidvalidity, rows, [])

    @_op
    async def flag_table(self, mailbox_id: int, *, reader: str | None = None) -> FlagTable:
        if reader is None:  # one statement: no transaction needed
            async with self.db.conn() as conn:
                return await self._store.flag_tables.get(conn, mailbox_id)
        async with self.db.snapshot() as conn:
            return await self._flag_table(conn, mailbox_id, reader)

    async def _bytes(self, mailbox_id: int, uid: int, start: int = 0, length: int | None = None) -> bytes:
        """Bytes of a message in one statement (one snapshot, no transaction)."""
        async with self.db.conn() as conn:
            found = await blobs.read_message(conn, mailbox_id, uid, start, length)
        if found is None:
            raise MessageGone(f"message UID {uid} has been expunged")
        return found

    async def _blob_of(self, conn: Any, mailbox_id: int, uid: int) -> tuple[bytes, int]:
        row = await conn.fetchrow(
            "SELECT m.blob, m.size FROM messages m WHERE m.mailbox_id = $1 AND m.uid = $2", mailbox_id, uid
        )
        if row is None:
            raise MessageGone(f"message UID {uid} has been expunged")
        return bytes(row[0]), int(row[1])

    @_op
    async def read_message(self, mailbox_id: int, uid: int) -> bytes:
        return await self._bytes(mailbox_id, uid)

    @_op
    async def read_range(self, mailbox_id: int, uid: int, start: int, length: int) -> bytes:
        return await self._bytes(mailbox_id, uid, start, length)

    @contextlib.asynccontextmanager
    async def read_chunks(
        self, mailbox_id: int, uid: int, start: int, length: int
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """A range of up to STREAM_IN_MEMORY bytes is read at once and the connection
        given back. A longer one is read piece by piece in one REPEATABLE READ snapshot,
        held while the pieces are sent: an expunge meanwhile cannot take them away (MVCC
        keeps what the snapshot saw). Such streams hold a connection each, so at most
        half the pool's are open at once (slow clients cannot take every connection)."""
        if self.closed:
            raise AccountGone("this account has been deleted")
        await self._store.start()
        if length <= STREAM_IN_MEMORY:
            yield _split(await self._bytes(mailbox_id, uid, start, length))
            return
        async with self._store.streams, self.db.snapshot() as conn:
            sha, size = await self._blob_of(conn, mailbox_id, uid)
            yield self._pieces(conn, sha, size, start, length)

    async def _pieces(self, conn: Any, sha: bytes, size: int, start: int, length: int) -> AsyncIterator[bytes]:
        pos, end = start, min(start + length, size)
        while pos < end:
            n = min(CHUNK, end - pos)
            data = await blobs.read(conn, sha, size, pos, n)
            if not data:
                raise StoreError("message content is shorter than its index entry")
            pos += len(data)
            yield data

    @_op
    async def uids_with_flag(self, mailbox_id: int, flag: str, *, reader: str | None = None) -> list[int]:
        if reader is not None and flag == SEEN:
            rows = await self.db.fetch(
                'SELECT uid FROM private_seen WHERE mailbox_id = $1 AND "user" = $2 ORDER BY uid', mailbox_id, reader
            )
        else:
            rows = await self.db.fetch(
                "SELECT uid FROM messages WHERE mailbox_id = $1 AND letterbox_has_flag(flags, $2) ORDER BY uid",
                mailbox_id, flag,
            )
        return [int(r[0]) for r in rows]

    @_op
    async def changes_since(self, mailbox_id: int, modseq: int, *, reader: str | None = None) -> ChangeSet:
        # One statement (one snapshot, no transaction): every session syncs with it
        # after each change to its mailbox.
        row = await self.db.fetchrow(_CHANGES_SQL, mailbox_id, self.account_id, modseq, reader)
        if row is None:
            return ChangeSet(highestmodseq=modseq, uidvalidity_changed=True)
        hms, name, uidvalidity, uids, flags, modseqs, seen, gone = tuple(row)
        cs = ChangeSet(highestmodseq=int(hms), name=name, uidvalidity=int(uidvalidity))
        if cs.highestmodseq <= modseq:
            return cs
        if uids:
            if reader is not None:
                cs.updated = [MessageMeta(int(u), overlay(flagset(f), bool(s)), int(ms))
                              for u, f, ms, s in zip(uids, flags, modseqs, seen, strict=True)]
            else:
                cs.updated = [MessageMeta(int(u), flagset(f), int(ms)) for u, f, ms in zip(uids, flags, modseqs, strict=True)]
        cs.expunged = [int(u) for u in gone or ()]
        return cs

    @_op
    async def search_headers(self, mailbox_id: int, field: SearchField, needle: str) -> list[int]:
        column = _SEARCH_COLUMNS[field]
        rows = await self.db.fetch(
            f"SELECT m.uid FROM messages m JOIN blobs b ON b.sha = m.blob WHERE m.mailbox_id = $1"
            f" AND strpos({column}, $2) > 0 ORDER BY m.uid", mailbox_id, needle,
        )
        return [int(r[0]) for r in rows]

    # --- messages: writing -----------------------------------------------------------------
    @_op
    async def append(
        self,
        mailbox: str,
        data: bytes,
        flags: Iterable[str] = (),
        internaldate: float | None = None,
        quota: Quota | None = None,
        parsed: ParsedMessage | None = None,
        *,
        reader: str | None = None,
    ) -> AppendResult:
        """*reader*: a user other than the owner appends, whose \\Seen is their own."""
        if mailbox == "INBOX" and self._inbox is not None:
            mbox = self._inbox  # never deleted nor renamed away (RENAME INBOX leaves it)
        else:
            mbox = await self.get_mailbox(mailbox)
            if mbox.name == "INBOX":
                self._inbox = mbox
        given = flagrules.normalize_flags(flags)
        flagrules.check_keywords(given, self.limits)
        seen_by_reader = reader is not None and SEEN in given
        if reader is not None:
            given.discard(SEEN)
        if quota is not None and quotas.applies(quota):  # early, before the work
            async with self.db.conn() as conn:
                await self.check_quota(conn, quota, len(data), 1)
        when = time.time() if internaldate is None else internaldate
        return await self._put(mbox.id, mbox.name, data, given, when, quota, parsed,
                               seen_by=reader if seen_by_reader else None)

    @_op
    async def import_message(self, mailbox_id: int, message: ImportedMessage) -> None:
        given = flagrules.normalize_flags(message.flags)
        await self._put(mailbox_id, "", message.data, given, message.internaldate, None, None, imported=message)

    async def _put(
        self, mailbox_id: int, name: str, data: bytes, given: set[str], when: float, quota: Quota | None,
        parsed: ParsedMessage | None, *, seen_by: str | None = None, imported: ImportedMessage | None = None,
    ) -> AppendResult:
        """Store and publish one message: an APPEND or delivery, or (*imported*) a
        message from another store under its own UID and POP3 state."""
        parsed = await messages.parse(data, parsed)
        blob = await self._store.prepared(data, parsed)
        text = flag_text(given)
        checked = quota is not None and quotas.applies(quota)
        keywords = bool(keywords_rule.keywords_of(given))

        async def gone(conn: Any) -> NoReturn:
            if name:
                await self.mailbox_in(conn, name)  # AccountGone, or MailboxNotFound
            if imported is not None and await conn.fetchval(
                "SELECT 1 FROM mailboxes WHERE id = $1 AND account_id = $2", mailbox_id, self.account_id
            ):
                raise StoreError(f"UID {imported.uid} is below the mailbox's UIDNEXT: UIDs are never reused")
            raise MailboxNotFound(f"mailbox {name!r} no longer exists" if name else "mailbox no longer exists")

        async def body(tx: Tx) -> AppendResult:
            conn = tx.conn
            if checked:
                await self.lock_account(conn)
                await self.check_quota(conn, quota, len(data), 1)
            if imported is None:
                # UID, MODSEQ, blob, message and NOTIFY in one statement (newmessage.py).
                row = await newmessage.insert(conn, tx.channel, tx.sender, self.address, self.account_id,
                                              mailbox_id, blob, parsed, text, when)
                if row is None:
                    await gone(conn)
            else:
                row = await conn.fetchrow(
                    "UPDATE mailboxes SET uidnext = $3 + 1, highestmodseq = highestmodseq + 1"
                    " WHERE id = $1 AND account_id = $2 AND uidnext <= $3"
                    " RETURNING uidnext - 1, highestmodseq, uidvalidity, keywords, name",
                    mailbox_id, self.account_id, imported.uid,
                )
                if row is None:
                    await gone(conn)
                await blobs.put(conn, blob, parsed)
                await conn.execute(
                    "INSERT INTO messages (mailbox_id, uid, modseq, flags, size, internaldate, savedate, blob,"
                    " pop3_hidden, pop3_retrieved) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    mailbox_id, int(row[0]), int(row[1]), text, len(data), when, time.time(), blob.sha,
                    imported.pop3_hidden, imported.pop3_retrieved,
                )
            uid, modseq, uidvalidity = int(row[0]), int(row[1]), int(row[2])
            if keywords:
                grown = keywords_rule.accumulate(row[3].split(), given, self.limits, limit=imported is None)
                if grown is not None:
                    await conn.execute("UPDATE mailboxes SET keywords = $2 WHERE id = $1", mailbox_id, " ".join(grown))
            if seen_by is not None:
                await conn.execute('INSERT INTO private_seen (mailbox_id, uid, "user") VALUES ($1, $2, $3)',
                                   mailbox_id, uid, seen_by)
            tx.publish(self.change(mailbox_id, modseq, "append", row[4]), notified=imported is None)
            return AppendResult(uidvalidity, uid)

        # Without a quota to check, keywords to record or a reader's \Seen, the statement
        # is the whole transaction: no BEGIN and COMMIT around it.
        alone = imported is None and not (checked or keywords or seen_by is not None)
        return await self.db.run(body, autocommit=alone)

    @_op
    async def set_uidvalidity(self, mailbox_id: int, uidvalidity: int) -> Mailbox:
        async def body(tx: Tx) -> Mailbox:
            conn = tx.conn
            row = await conn.fetchrow(
                f"SELECT {MBOX_COLS} FROM mailboxes m WHERE m.id = $1 AND m.account_id = $2 FOR UPDATE",
                mailbox_id, self.account_id,
            )
            if row is None:
                raise MailboxNotFound("mailbox no longer exists")
            mbox = mailbox_from_row(row)
            if mbox.uidvalidity == uidvalidity:
                return mbox
            if mbox.uidnext != 1:
                raise StoreError(f"mailbox {mbox.name!r} has held mail under UIDVALIDITY {mbox.uidvalidity}")
            await conn.execute(
                "UPDATE counters SET value = greatest(value, $1) WHERE name = 'uidvalidity'", uidvalidity
            )
            await conn.execute("UPDATE mailboxes SET uidvalidity = $2 WHERE id = $1", mailbox_id, uidvalidity)
            row = await conn.fetchrow(f"SELECT {MBOX_COLS} FROM mailboxes m WHERE m.id = $1", mailbox_id)
            return mailbox_from_row(row)

        return await self.db.run(body)

    @_op
    async def raise_marks(self, mailbox_id: int, uidnext: int, highestmodseq: int) -> Mailbox:
        async def body(tx: Tx) -> Mailbox:
            conn = tx.conn
            await conn.execute(
                "UPDATE mailboxes SET uidnext = greatest(uidnext, $3), highestmodseq = greatest(highestmodseq, $4),"
                " recent_uid = greatest(uidnext, $3) WHERE id = $1 AND account_id = $2",
                mailbox_id, self.account_id, uidnext, highestmodseq,
            )
            row = await conn.fetchrow(f"SELECT {MBOX_COLS} FROM mailboxes m WHERE m.id = $1", mailbox_id)
            if row is None:
                raise MailboxNotFound("mailbox no longer exists")
            return mailbox_from_row(row)

        return await self.db.run(body)

    @_op
    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: Literal["add", "remove", "replace"],
        flags: Iterable[str],
        unchangedsince: int | None = None,
        only: Callable[[str], bool] | None = None,
        *,
        reader: str | None = None,
    ) -> list[MessageMeta]:
        """*reader*: a user other than the owner, whose \\Seen is their own."""
        given = flagrules.flags_to_store(flags, mode, self.limits, only)
        wanted = sorted(set(uids))

        def updates_of(rows: Iterable[tuple[int, str, int]], seen: set[int]) -> list[tuple[int, str, bool | None, frozenset[str]]]:
            updates: list[tuple[int, str, bool | None, frozenset[str]]] = []
            for uid, text, ms in rows:
                if unchangedsince is not None and ms > unchangedsince:
                    continue
                stored = flagset(text)
                old = overlay(stored, uid in seen) if reader else stored
                new = flagrules.apply_store(old, mode, given, only)
                if new == old:
                    continue
                if reader:
                    new_stored, mark = reader_store(stored, old, new)  # the owner's \Seen stays the owner's
                else:
                    new_stored, mark = new, None
                updates.append((int(uid), flag_text(new_stored), mark, new))
            return updates

        async def unlocked(tx: Tx) -> list[MessageMeta] | None:
            """Read without a lock, then write only if the mailbox's MODSEQ is still the
            one read (every change to its messages moves it): two statements, no
            transaction. None: it moved meanwhile, or keywords grow (the locked way)."""
            row = await tx.conn.fetchrow(_STORE_READ_SQL, mailbox_id, self.account_id, wanted)
            if row is None:
                return []
            hms, known, name, uids_, texts, modseqs = tuple(row)
            updates = updates_of(zip(uids_ or (), texts or (), modseqs or (), strict=True), set())
            if not updates:
                return []
            if keywords_rule.accumulate(known.split(), given if mode != "remove" else (), self.limits, True):
                return None
            modseq = int(hms) + 1
            change = Change(self.address, mailbox_id, modseq, "flags", name, "", current_origin())
            if await tx.conn.fetchrow(
                "WITH mb AS (UPDATE mailboxes SET highestmodseq = $2 WHERE id = $1 AND highestmodseq = $3 RETURNING id),"
                " up AS (UPDATE messages m SET flags = u.flags, modseq = $2 FROM unnest($4::bigint[], $5::text[])"
                "  AS u(uid, flags), mb WHERE m.mailbox_id = mb.id AND m.uid = u.uid)"
                " SELECT mb.id, pg_notify($6, $7) FROM mb",
                mailbox_id, modseq, int(hms), [u[0] for u in updates], [u[1] for u in updates],
                tx.channel, tx.payload(change),
            ) is None:
                return None
            self.note(mailbox_id, modseq)
            tx.publish(change, notified=True)
            return [MessageMeta(uid, flagset(flag_text(shown)), modseq) for uid, _, _, shown in updates]

        async def body(tx: Tx) -> list[MessageMeta]:
            conn = tx.conn
            mrow = await conn.fetchrow(
                "SELECT highestmodseq, keywords, name FROM mailboxes WHERE id = $1 AND account_id = $2 FOR UPDATE",
                mailbox_id, self.account_id,
            )
            if mrow is None:
                return []
            rows = await conn.fetch(
                "SELECT uid, flags, modseq FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[])"
                " ORDER BY uid", mailbox_id, wanted,
            )
            seen = await self._seen(conn, mailbox_id, reader, [r[0] for r in rows]) if reader else set()
            updates = updates_of(rows, seen)
            if not updates:
                return []
            modseq = int(mrow[0]) + 1
            grown = keywords_rule.accumulate(mrow[1].split(), given if mode != "remove" else (), self.limits, True)
            change = self.change(mailbox_id, modseq, "flags", mrow[2])
            # The mailbox, the messages and the NOTIFY (sent at commit) in one statement.
            await conn.execute(
                "WITH mb AS (UPDATE mailboxes SET highestmodseq = $2, keywords = coalesce($3, keywords) WHERE id = $1),"
                " up AS (UPDATE messages m SET flags = u.flags, modseq = $2 FROM unnest($4::bigint[], $5::text[])"
                "  AS u(uid, flags) WHERE m.mailbox_id = $1 AND m.uid = u.uid)"
                " SELECT pg_notify($6, $7)",
                mailbox_id, modseq, " ".join(grown) if grown is not None else None,
                [u[0] for u in updates], [u[1] for u in updates], tx.channel, tx.payload(change),
            )
            if reader:
                marked = [u[0] for u in updates if u[2] is True]
                unmarked = [u[0] for u in updates if u[2] is False]
                if marked:
                    await conn.execute(
                        'INSERT INTO private_seen (mailbox_id, uid, "user") SELECT $1, u, $2'
                        " FROM unnest($3::bigint[]) u ON CONFLICT DO NOTHING", mailbox_id, reader, marked,
                    )
                if unmarked:
                    await conn.execute(
                        'DELETE FROM private_seen WHERE mailbox_id = $1 AND "user" = $2 AND uid = ANY($3::bigint[])',
                        mailbox_id, reader, unmarked,
                    )
            tx.publish(change, notified=True)
            return [MessageMeta(uid, flagset(flag_text(shown)), modseq) for uid, _, _, shown in updates]

        if reader is None:
            done = await self.db.run(unlocked, autocommit=True)
            if done is not None:
                return done
        return await self.db.run(body)

    @_op
    async def expunge(self, mailbox_id: int, uids: Sequence[int], progress: Progress | None = None) -> list[int]:
        wanted = sorted(set(uids))
        gone: list[int] = []
        for i in range(0, len(wanted), _EXPUNGE_BATCH):
            if i and progress is not None:
                await progress(i)
            batch = wanted[i : i + _EXPUNGE_BATCH]
            done = await self.db.run(functools.partial(self._expunge_unlocked, mailbox_id, batch), autocommit=True)
            if done is None:
                done = await self.db.run(functools.partial(self._expunge_batch, mailbox_id, batch))
            gone.extend(done)
        return gone

    async def _expunge_unlocked(self, mailbox_id: int, uids: list[int], tx: Tx) -> list[int] | None:
        """As STORE does: read without a lock, then delete only if the mailbox's MODSEQ
        is still the one read; None when it moved (the locked way then)."""
        conn = tx.conn
        row = await conn.fetchrow(_EXPUNGE_READ_SQL, mailbox_id, self.account_id, uids)
        if row is None or not row[2]:
            return []
        hms, name, there = int(row[0]), row[1], [int(u) for u in row[2]]
        change = Change(self.address, mailbox_id, hms + 1, "expunge", name, "", current_origin())
        done = await conn.fetchrow(
            "WITH mb AS (UPDATE mailboxes SET highestmodseq = $3 WHERE id = $1 AND highestmodseq = $4 RETURNING id),"
            " gone AS (DELETE FROM messages m USING mb WHERE m.mailbox_id = mb.id AND m.uid = ANY($2::bigint[])"
            "  RETURNING m.uid),"
            " ts AS (INSERT INTO expunged (mailbox_id, uid, modseq) SELECT $1, uid, $3 FROM gone"
            "  ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = EXCLUDED.modseq)"
            " SELECT (SELECT array_agg(uid ORDER BY uid) FROM gone), pg_notify($5, $6) FROM mb",
            mailbox_id, there, hms + 1, hms, tx.channel, tx.payload(change),
        )
        if done is None:
            return None
        self.note(mailbox_id, hms + 1)
        tx.publish(change, notified=True)
        return [int(u) for u in done[0] or ()]

    async def _expunge_batch(self, mailbox_id: int, uids: list[int], tx: Tx) -> list[int]:
        conn = tx.conn
        mrow = await conn.fetchrow(
            "SELECT highestmodseq, name FROM mailboxes WHERE id = $1 AND account_id = $2 FOR UPDATE",
            mailbox_id, self.account_id,
        )
        if mrow is None:
            return []
        modseq = int(mrow[0]) + 1
        change = Change(self.address, mailbox_id, modseq, "expunge", mrow[1], "", current_origin())
        # The messages, their tombstones, the mailbox's MODSEQ and the NOTIFY (sent at
        # commit) in one statement; the MODSEQ moves and the NOTIFY goes only when a
        # message went.
        row = await conn.fetchrow(
            "WITH gone AS (DELETE FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) RETURNING uid),"
            " mb AS (UPDATE mailboxes SET highestmodseq = $3 WHERE id = $1 AND EXISTS (SELECT 1 FROM gone)),"
            " ts AS (INSERT INTO expunged (mailbox_id, uid, modseq) SELECT $1, uid, $3 FROM gone"
            "  ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = EXCLUDED.modseq)"
            " SELECT array_agg(uid ORDER BY uid), CASE WHEN count(*) > 0 THEN pg_notify($4, $5) END FROM gone",
            mailbox_id, uids, modseq, tx.channel, tx.payload(change),
        )
        gone = [int(u) for u in row[0] or ()]
        if not gone:
            return []
        self.note(mailbox_id, modseq)
        tx.publish(change, notified=True)
        return gone

    @_op
    async def copy(
        self, mailbox_id: int, uids: Sequence[int], dest: str, quota: Quota | None = None,
        progress: Progress | None = None,
    ) -> CopyResult:
        dst = await self.get_mailbox(dest)
        rows = await self.db.fetch(
            "SELECT uid, size FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) ORDER BY uid",
            mailbox_id, sorted(set(uids)),
        )
        if not rows:
            return CopyResult(dst.uidvalidity, (), ())
        if quota is not None and quotas.applies(quota):  # early, before the work
            async with self.db.conn() as conn:
                await self.check_quota(conn, quota, sum(int(r[1]) for r in rows), len(rows))
        done: list[tuple[int, int]] = []
        uidvalidity = dst.uidvalidity
        wanted = [int(r[0]) for r in rows]
        try:
            # In batches, each one transaction, so a COPY of 100,000 messages holds no
            # lock for long.
            for i in range(0, len(wanted), _COPY_BATCH):
                if i and progress is not None:
                    await progress(i)
                batch = wanted[i : i + _COPY_BATCH]
                pairs, uidvalidity = await self.db.run(
                    functools.partial(self._copy_batch, mailbox_id, dst.id, batch, quota)
                )
                done.extend(pairs)
        except BaseException:
            if done:
                # RFC 9051 6.4.7: a COPY that fails leaves the destination as it was.
                with contextlib.suppress(StoreError):
                    await self.expunge(dst.id, [d[1] for d in done])
            raise
        return CopyResult(uidvalidity, tuple(d[0] for d in done), tuple(d[1] for d in done))

    async def _copy_batch(
        self, mailbox_id: int, dst_id: int, uids: list[int], quota: Quota | None, tx: Tx
    ) -> tuple[list[tuple[int, int]], int]:
        conn = tx.conn
        if quota is not None and quotas.applies(quota):
            await self.lock_account(conn)
        drow = await self._lock_mailbox(conn, dst_id)
        # FOR SHARE: an expunge of a source waits for this commit (so the blob it
        # refers to stays), or went first and the message is skipped.
        src = await conn.fetch(
            "SELECT uid, flags, size, internaldate, blob FROM messages WHERE mailbox_id = $1"
            " AND uid = ANY($2::bigint[]) ORDER BY uid FOR SHARE", mailbox_id, uids,
        )
        if not src:
            return [], int(drow["uidvalidity"])
        await self.check_quota(conn, quota, sum(int(r[2]) for r in src), len(src))
        pairs, modseq = await insert_copies(conn, self.limits, mailbox_id, drow, src)
        tx.publish(self.change(dst_id, modseq, "append", drow["name"]))
        return pairs, int(drow["uidvalidity"])

    async def _lock_mailbox(self, conn: Any, mailbox_id: int) -> Any:
        row = await conn.fetchrow(
            "SELECT id, uidnext, highestmodseq, uidvalidity, keywords, name FROM mailboxes"
            " WHERE id = $1 AND account_id = $2 FOR UPDATE", mailbox_id, self.account_id,
        )
        if row is None:
            raise MailboxNotFound("mailbox no longer exists")
        return row

    @_op
    async def move(
        self, mailbox_id: int, uids: Sequence[int], dest: str, progress: Progress | None = None
    ) -> CopyResult:
        """RFC 6851: each batch moves whole in one transaction. No quota check: moving
        does not grow the account (clients delete by moving to Trash)."""
        dst = await self.get_mailbox(dest)
        if dst.id == mailbox_id:
            result = await self.copy(mailbox_id, uids, dest, progress=progress)
            await self.expunge(mailbox_id, result.source_uids)
            return result
        rows = await self.db.fetch(
            "SELECT uid FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) ORDER BY uid",
            mailbox_id, sorted(set(uids)),
        )
        wanted = [int(r[0]) for r in rows]
        source: list[int] = []
        targets: list[int] = []
        uidvalidity = dst.uidvalidity
        for i in range(0, len(wanted), _COPY_BATCH):
            if i and progress is not None:
                await progress(i)
            batch = wanted[i : i + _COPY_BATCH]
            pairs, uidvalidity = await self.db.run(functools.partial(self._move_batch, mailbox_id, dst.id, batch))
            source.extend(p[0] for p in pairs)
            targets.extend(p[1] for p in pairs)
        return CopyResult(uidvalidity, tuple(source), tuple(targets))

    async def _move_batch(self, mailbox_id: int, dst_id: int, uids: list[int], tx: Tx) -> tuple[list[tuple[int, int]], int]:
        conn = tx.conn
        locked = {r["id"]: r for r in await conn.fetch(
            "SELECT id, uidnext, highestmodseq, uidvalidity, keywords, name FROM mailboxes"
            " WHERE id = ANY($1::bigint[]) AND account_id = $2 ORDER BY id FOR UPDATE",
            [mailbox_id, dst_id], self.account_id,
        )}
        if dst_id not in locked:
            raise MailboxNotFound("mailbox no longer exists")
        if mailbox_id not in locked:
            return [], int(locked[dst_id]["uidvalidity"])
        pairs, modseq, src_modseq = await move_rows(conn, self.limits, locked[mailbox_id], locked[dst_id], uids)
        if pairs:
            tx.publish(self.change(dst_id, modseq, "append", locked[dst_id]["name"]))
            tx.publish(self.change(mailbox_id, src_modseq, "expunge", locked[mailbox_id]["name"]))
        return pairs, int(locked[dst_id]["uidvalidity"])

    # --- access control ----------------------------------------------------------------------
    @_op
    async def get_acl(self, mailbox: str) -> dict[str, str]:
        return await acls.get(self, mailbox)

    @_op
    async def set_acl(self, mailbox: str, identifier: str, rights: str) -> None:
        await acls.set_entry(self, mailbox, identifier, rights)

    @_op
    async def granted(self, identifiers: Sequence[str], mailbox: str | None = None) -> dict[str, str]:
        return await acls.granted(self, identifiers, names.normalize(mailbox) if mailbox is not None else None)

    @_op
    async def forget_identifier(self, identifier: str) -> None:
        await acls.forget(self, identifier)

    def reader(self, user: str) -> AccountStore:
        if user == self.address:
            return self
        view = self._readers.get(user)
        if view is None:
            from ..reader import ReaderAccount

            view = self._readers[user] = ReaderAccount(self, user)
        return view

    # --- metadata (RFC 5464) -------------------------------------------------------------------
    @_op
    async def get_metadata(
        self, mailbox: str | None, entries: Sequence[str], depth: int = 0, *, reader: str | None = None
    ) -> list[tuple[str, bytes]]:
        return await metadata.get(self, mailbox, entries, depth, reader)

    @_op
    async def set_metadata(
        self, mailbox: str | None, changes: Sequence[tuple[str, bytes | None]], *, reader: str | None = None
    ) -> None:
        await metadata.set_entries(self, mailbox, changes, reader)

    # --- POP3 ------------------------------------------------------------------------------
    def pop3_lock(self, wait: float = 0.0) -> contextlib.AbstractAsyncContextManager[None]:
        return self._store.pop3.hold(self.account_id, wait, self.closed)

    @_op
    async def pop3_maildrop(self) -> tuple[Mailbox, list[tuple[int, int]]]:
        async with self.db.snapshot() as conn:
            inbox = await self.mailbox_in(conn, "INBOX")
            rows = await conn.fetch(
                "SELECT uid, size FROM messages WHERE mailbox_id = $1 AND NOT pop3_hidden ORDER BY uid", inbox.id
            )
        return inbox, [(int(u), int(s)) for u, s in rows]

    @_op
    async def pop3_hide(self, mailbox_id: int, uids: Sequence[int]) -> None:
        if not uids:
            return

        async def body(tx: Tx) -> None:
            await tx.conn.execute(
                "UPDATE messages SET pop3_hidden = true WHERE mailbox_id = $1 AND uid = ANY($2::bigint[])",
                mailbox_id, list(uids),
            )

        await self.db.run(body)

    @_op
    async def pop3_mark_retrieved(self, mailbox_id: int, uids: Sequence[int]) -> None:
        if not uids:
            return

        async def body(tx: Tx) -> None:
            await tx.conn.execute(
                "UPDATE messages SET pop3_retrieved = $3 WHERE mailbox_id = $1 AND uid = ANY($2::bigint[])"
                " AND pop3_retrieved IS NULL", mailbox_id, list(uids), time.time(),
            )

        await self.db.run(body)

    @_op
    async def pop3_expire(self, older_than: float) -> int:
        inbox = await self.get_mailbox("INBOX")
        rows = await self.db.fetch(
            "SELECT uid FROM messages WHERE mailbox_id = $1 AND pop3_retrieved < $2", inbox.id, older_than
        )
        return len(await self.expunge(inbox.id, [int(r[0]) for r in rows])) if rows else 0

    # --- accounting ------------------------------------------------------------------------
    @_op
    async def usage(self, count_trash: bool = True) -> Usage:
        async with self.db.conn() as conn:
            return await self.usage_in(conn, count_trash)

    @_op
    async def folder_usage(self) -> list[FolderUsage]:
        rows = await self.db.fetch(
            "SELECT m.name, m.special_use, m.messages, m.bytes, m.unseen,"
            " (SELECT min(internaldate) FROM messages WHERE mailbox_id = m.id)"
            " FROM mailboxes m WHERE m.account_id = $1 ORDER BY m.name <> 'INBOX', m.name", self.account_id,
        )
        return [FolderUsage(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), r[5]) for r in rows]

    @_op
    async def select_messages(
        self,
        mailbox_id: int,
        received_before: float | None = None,
        larger_than: int | None = None,
        seen: bool = False,
        limit: int | None = None,
    ) -> list[tuple[int, int]]:
        if await self.db.fetchval(
            "SELECT 1 FROM mailboxes WHERE id = $1 AND account_id = $2", mailbox_id, self.account_id
        ) is None:
            raise MailboxNotFound("mailbox no longer exists")
        rows = await self.db.fetch(
            "SELECT uid, size FROM messages WHERE mailbox_id = $1"
            " AND ($2::float8 IS NULL OR internaldate < $2) AND ($3::bigint IS NULL OR size > $3)"
            " AND (NOT $4 OR letterbox_has_flag(flags, '\\Seen')) ORDER BY uid LIMIT $5",
            mailbox_id, received_before, larger_than, seen, limit,
        )
        return [(int(u), int(z)) for u, z in rows]


async def _split(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]


def _slice(data: bytes, start: int, end: int) -> bytes:
    return data[start:end]


async def tombstones(conn: Any, mailbox_id: int, uids: list[int], modseq: int) -> None:
    """QRESYNC's memory of expunged UIDs (RFC 7162 3.2.10), inside the caller's transaction."""
    await conn.execute(
        "INSERT INTO expunged (mailbox_id, uid, modseq) SELECT $1, u, $3 FROM unnest($2::bigint[]) u"
        " ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = EXCLUDED.modseq", mailbox_id, uids, modseq,
    )


async def insert_copies(conn: Any, limits: Any, src_id: int, drow: Any, src: list[Any]) -> tuple[list[tuple[int, int]], int]:
    """Inside the caller's transaction, the destination row (*drow*) locked: rows for
    copies of *src* messages, with new UIDs, one new MODSEQ and a save date of now (RFC
    8514: never copied); readers' \\Seen marks go along. Returns (old, new) UID pairs and
    the MODSEQ."""
    dst_id = int(drow["id"])
    first, modseq = int(drow["uidnext"]), int(drow["highestmodseq"]) + 1
    # Copies carry their keywords in whatever the limit (see rules.keywords).
    grown = keywords_rule.accumulate(drow["keywords"].split(), {f for r in src for f in r[1].split()}, limits)
    await conn.execute(
        "UPDATE mailboxes SET uidnext = $2, highestmodseq = $3, keywords = coalesce($4, keywords) WHERE id = $1",
        dst_id, first + len(src), modseq, " ".join(grown) if grown is not None else None,
    )
    new_uids = list(range(first, first + len(src)))
    await conn.execute(
        "INSERT INTO messages (mailbox_id, uid, modseq, flags, size, internaldate, savedate, blob)"
        " SELECT $1, u.uid, $2, u.flags, u.size, u.idate, $3, u.blob FROM unnest($4::bigint[], $5::text[],"
        " $6::bigint[], $7::float8[], $8::bytea[]) AS u(uid, flags, size, idate, blob)",
        dst_id, modseq, time.time(), new_uids, [r[1] for r in src], [r[2] for r in src],
        [r[3] for r in src], [r[4] for r in src],
    )
    old_uids = [int(r[0]) for r in src]
    await conn.execute(
        'INSERT INTO private_seen (mailbox_id, uid, "user") SELECT $1, map.new, ps."user" FROM private_seen ps'
        " JOIN unnest($3::bigint[], $4::bigint[]) AS map(old, new) ON ps.uid = map.old WHERE ps.mailbox_id = $2"
        " ON CONFLICT DO NOTHING", dst_id, src_id, old_uids, new_uids,
    )
    return list(zip(old_uids, new_uids, strict=True)), modseq


async def move_rows(conn: Any, limits: Any, srow: Any, drow: Any, uids: list[int]) -> tuple[list[tuple[int, int]], int, int]:
    """Inside the caller's transaction, both mailbox rows locked: move *uids* (those
    still there) from *srow* to *drow*. Returns the (old, new) UID pairs and both new
    MODSEQs (0 when nothing moved)."""
    src_id = int(srow["id"])
    src = await conn.fetch(
        "SELECT uid, flags, size, internaldate, blob FROM messages WHERE mailbox_id = $1"
        " AND uid = ANY($2::bigint[]) ORDER BY uid FOR UPDATE", src_id, uids,
    )
    if not src:
        return [], 0, 0
    # The copies go in before the originals go, so a blob never loses its last reference.
    pairs, modseq = await insert_copies(conn, limits, src_id, drow, src)
    src_modseq = int(srow["highestmodseq"]) + 1
    moved = [p[0] for p in pairs]
    await conn.execute("DELETE FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[])", src_id, moved)
    await conn.execute("UPDATE mailboxes SET highestmodseq = $2 WHERE id = $1", src_id, src_modseq)
    await tombstones(conn, src_id, moved, src_modseq)
    return pairs, modseq, src_modseq
