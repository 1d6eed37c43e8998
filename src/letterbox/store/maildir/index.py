"""The per-account SQLite index: mailboxes, messages and what FETCH/SEARCH need.

Rows are split by how they are read: `messages` is narrow (flags, MODSEQ, size) so that
SELECT and FETCH FLAGS on 100,000 messages scan little; `headers` holds the decoded text
for SEARCH; `parsed` holds the serialized ENVELOPE/BODYSTRUCTURE and the MIME offsets.
Usage totals and the unseen and deleted counts are kept by triggers, so quota checks,
`letterbox usage` and STATUS never count rows.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

SCHEMA_VERSION = 2

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS mailboxes (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    dirname       TEXT NOT NULL UNIQUE,
    uidvalidity   INTEGER NOT NULL,
    uidnext       INTEGER NOT NULL DEFAULT 1,
    highestmodseq INTEGER NOT NULL DEFAULT 1,
    recent_uid    INTEGER NOT NULL DEFAULT 1,
    special_use   TEXT,
    subscribed    INTEGER NOT NULL DEFAULT 0,
    keywords      TEXT NOT NULL DEFAULT '',
    messages      INTEGER NOT NULL DEFAULT 0,
    bytes         INTEGER NOT NULL DEFAULT 0,
    unseen        INTEGER NOT NULL DEFAULT 0,
    deleted       INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS messages (
    mailbox_id     INTEGER NOT NULL,
    uid            INTEGER NOT NULL,
    flags          TEXT NOT NULL DEFAULT '',
    modseq         INTEGER NOT NULL,
    size           INTEGER NOT NULL,
    internaldate   REAL NOT NULL,
    filename       TEXT NOT NULL,
    pop3_hidden    INTEGER NOT NULL DEFAULT 0,
    pop3_retrieved REAL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_modseq ON messages (mailbox_id, modseq);

CREATE TABLE IF NOT EXISTS headers (
    mailbox_id INTEGER NOT NULL,
    uid        INTEGER NOT NULL,
    sent_date  REAL,
    subject    TEXT NOT NULL,
    from_      TEXT NOT NULL,
    to_        TEXT NOT NULL,
    cc         TEXT NOT NULL,
    bcc        TEXT NOT NULL,
    message_id TEXT NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);

CREATE TABLE IF NOT EXISTS parsed (
    mailbox_id    INTEGER NOT NULL,
    uid           INTEGER NOT NULL,
    header_size   INTEGER NOT NULL,
    envelope      BLOB NOT NULL,
    body          BLOB NOT NULL,
    bodystructure BLOB NOT NULL,
    parts         TEXT NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);

CREATE TABLE IF NOT EXISTS expunged (
    mailbox_id INTEGER NOT NULL,
    uid        INTEGER NOT NULL,
    modseq     INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;

"""

# Flags are stored sorted and space-separated; keywords cannot hold a backslash, so
# instr() finds exactly the system flag.
TRIGGERS = (
    r"""
CREATE TRIGGER IF NOT EXISTS messages_added AFTER INSERT ON messages BEGIN
    UPDATE mailboxes SET messages = messages + 1, bytes = bytes + NEW.size,
           unseen = unseen + (instr(NEW.flags, '\Seen') = 0),
           deleted = deleted + (instr(NEW.flags, '\Deleted') > 0)
     WHERE id = NEW.mailbox_id;
END
""",
    r"""
CREATE TRIGGER IF NOT EXISTS messages_removed AFTER DELETE ON messages BEGIN
    UPDATE mailboxes SET messages = messages - 1, bytes = bytes - OLD.size,
           unseen = unseen - (instr(OLD.flags, '\Seen') = 0),
           deleted = deleted - (instr(OLD.flags, '\Deleted') > 0)
     WHERE id = OLD.mailbox_id;
    DELETE FROM headers WHERE mailbox_id = OLD.mailbox_id AND uid = OLD.uid;
    DELETE FROM parsed WHERE mailbox_id = OLD.mailbox_id AND uid = OLD.uid;
END
""",
    r"""
CREATE TRIGGER IF NOT EXISTS messages_flagged AFTER UPDATE OF flags ON messages
WHEN NEW.flags != OLD.flags BEGIN
    UPDATE mailboxes SET
           unseen = unseen + (instr(NEW.flags, '\Seen') = 0) - (instr(OLD.flags, '\Seen') = 0),
           deleted = deleted + (instr(NEW.flags, '\Deleted') > 0) - (instr(OLD.flags, '\Deleted') > 0)
     WHERE id = NEW.mailbox_id;
END
""",
    r"""
CREATE TRIGGER IF NOT EXISTS mailbox_removed AFTER DELETE ON mailboxes BEGIN
    DELETE FROM messages WHERE mailbox_id = OLD.id;
    DELETE FROM expunged WHERE mailbox_id = OLD.id;
END
""",
)

SCHEMA = _TABLES + "".join(t + ";\n" for t in TRIGGERS)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) an index. Autocommit mode: transactions are explicit."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL: a commit survives a process crash; after a power loss the fsynced message
    # files are re-indexed at start-up (their names carry the UID), so nothing is lost.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=OFF")
    db.execute("PRAGMA cache_size=-8000")
    _upgrade(db)
    db.executescript(SCHEMA)
    db.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
    )
    return db


def _upgrade(db: sqlite3.Connection) -> None:
    """Bring an index made by an earlier version up to SCHEMA_VERSION, in place."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
        return  # a new index: SCHEMA makes it whole
    db.execute("BEGIN IMMEDIATE")  # another process may be opening it too
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is not None and int(row[0]) < 2:
            # 2: unseen and deleted counts per mailbox, kept by triggers.
            db.execute("ALTER TABLE mailboxes ADD COLUMN unseen INTEGER NOT NULL DEFAULT 0")
            db.execute("ALTER TABLE mailboxes ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0")
            db.execute(
                "UPDATE mailboxes SET"
                " unseen = (SELECT count(*) FROM messages m WHERE m.mailbox_id = mailboxes.id"
                "           AND instr(m.flags, '\\Seen') = 0),"
                " deleted = (SELECT count(*) FROM messages m WHERE m.mailbox_id = mailboxes.id"
                "            AND instr(m.flags, '\\Deleted') > 0)"
            )
            db.execute("DROP TRIGGER IF EXISTS messages_added")
            db.execute("DROP TRIGGER IF EXISTS messages_removed")
            for trigger in TRIGGERS:
                db.execute(trigger)
            db.execute("UPDATE meta SET value = 2 WHERE key = 'schema'")
    except BaseException:
        with contextlib.suppress(sqlite3.OperationalError):  # SQLite may have rolled back
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
