"""The per-account SQLite index: mailboxes, messages and what FETCH/SEARCH need.

Rows are split by how they are read: `messages` is narrow (flags, MODSEQ, size) so that
SELECT and FETCH FLAGS on 100,000 messages scan little; `headers` holds the decoded text
for SEARCH; `parsed` holds the serialized ENVELOPE/BODYSTRUCTURE and the MIME offsets.
Usage totals are kept by triggers, so quota checks and `letterbox usage` never sum rows.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = 1

SCHEMA = """
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
    bytes         INTEGER NOT NULL DEFAULT 0
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

CREATE TRIGGER IF NOT EXISTS messages_added AFTER INSERT ON messages BEGIN
    UPDATE mailboxes SET messages = messages + 1, bytes = bytes + NEW.size
     WHERE id = NEW.mailbox_id;
END;
CREATE TRIGGER IF NOT EXISTS messages_removed AFTER DELETE ON messages BEGIN
    UPDATE mailboxes SET messages = messages - 1, bytes = bytes - OLD.size
     WHERE id = OLD.mailbox_id;
    DELETE FROM headers WHERE mailbox_id = OLD.mailbox_id AND uid = OLD.uid;
    DELETE FROM parsed WHERE mailbox_id = OLD.mailbox_id AND uid = OLD.uid;
END;
CREATE TRIGGER IF NOT EXISTS mailbox_removed AFTER DELETE ON mailboxes BEGIN
    DELETE FROM messages WHERE mailbox_id = OLD.id;
    DELETE FROM expunged WHERE mailbox_id = OLD.id;
END;
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) an index. Autocommit mode: transactions are explicit."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL: a commit survives a process crash; after a power loss the fsynced message
    # files are re-indexed at start-up (their names carry the UID), so nothing is lost.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=OFF")
    db.execute("PRAGMA cache_size=-8000")
    db.executescript(SCHEMA)
    db.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
    )
    return db
