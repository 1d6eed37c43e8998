"""A new message in one statement: the UID and MODSEQ taken under the mailbox's row
lock, the blob made (its pieces written only by the first to store that content),
the message row, and the NOTIFY that PostgreSQL sends at commit.

Alone it is a whole transaction (an APPEND or a delivery without quota check: one
round trip); inside one (quota checked first, keywords or a reader's \\Seen after) it
is the same work. Lock order as in account.py: the mailbox row, then the blob row (the
upsert holds it until commit, so a concurrent last expunge of that content cannot
delete the blob before this message refers to it).
"""

from __future__ import annotations

import time
from typing import Any

from ...mime import ParsedMessage
from . import notify
from .blobs import Prepared

_SQL = (
    "WITH mb AS (UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1"
    "  WHERE id = $1 AND account_id = $2 RETURNING id, uidnext - 1 AS uid, highestmodseq, uidvalidity, keywords, name),"
    " bl AS (INSERT INTO blobs (sha, size, chunks, header_size, envelope, body, bodystructure, parts,"
    "  emailid, preview, sent_date, subject, from_, to_, cc, bcc, message_id, refs_ids)"
    "  SELECT $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20 FROM mb"
    "  ON CONFLICT (sha) DO UPDATE SET refs = blobs.refs RETURNING xmax = 0 AS inserted),"
    " ch AS (INSERT INTO blob_chunks (sha, seq, zstd, data)"
    "  SELECT $3, p.seq - 1, p.zstd, p.data FROM unnest($21::boolean[], $22::bytea[]) WITH ORDINALITY AS p(zstd, data, seq)"
    "  WHERE (SELECT inserted FROM bl)),"
    " msg AS (INSERT INTO messages (mailbox_id, uid, modseq, flags, size, internaldate, savedate, blob)"
    "  SELECT id, uid, highestmodseq, $23, $4, $24, $25, $3 FROM mb)"
    " SELECT uid, highestmodseq, uidvalidity, keywords, name,"
    "  pg_notify($26, $27 || highestmodseq::text || $28 || json_build_array(name, '', '[]'::json, '')::text)"
    " FROM mb"
)


async def insert(
    conn: Any, channel: str, sender: str, account: str, account_id: int, mailbox_id: int,
    blob: Prepared, p: ParsedMessage, flags: str, internaldate: float,
) -> Any:
    """Store the message; returns the row (uid, modseq, uidvalidity, keywords, name) or
    None when the mailbox is not the account's any more (nothing is written then)."""
    head, tail = notify.around_modseq(sender, account, mailbox_id, "append")
    return await conn.fetchrow(
        _SQL, mailbox_id, account_id,
        blob.sha, blob.size, len(blob.pieces), p.header_size, p.envelope, p.body, p.bodystructure,
        p.parts, blob.emailid, p.preview, p.sent_date, p.subject, p.from_, p.to, p.cc, p.bcc,
        p.message_id, p.references,
        [z for z, _ in blob.pieces], [d for _, d in blob.pieces],
        flags, internaldate, time.time(), channel, head, tail,
    )
