"""The per-account SQLite index: mailboxes, messages and what FETCH/SEARCH need.

Rows are split by how they are read: `messages` is narrow (flags, MODSEQ, size) so that
SELECT and FETCH FLAGS on 100,000 messages scan little (the RFC 8514 save date is there
too, for SEARCH SAVEDBEFORE); `headers` holds the decoded text for SEARCH; `parsed` holds
the serialized ENVELOPE/BODYSTRUCTURE, the MIME offsets, the EMAILID and the PREVIEW text.
Usage totals and the unseen and deleted counts are kept by triggers, so quota checks,
`letterbox usage` and STATUS never count rows.

`acl` holds each mailbox's access control list (RFC 4314) and `private_seen` the \\Seen
marks of the users, other than the owner, who read a shared mailbox.

Mailbox ids come from a counter in `meta` and are never reused, so a session that
selected a mailbox can tell it from one created later under the same name. Tombstones
name the expunged file's base, so start-up removes exactly that file and nothing else.
`metadata` holds RFC 5464 entries by mailbox id (0 for the server's), so they follow a
RENAME, and go in the same commit as the row a DELETE removes (a trigger): a mailbox made
later under the same name has another id and starts without any. `private_metadata` holds
the /private entries of the other users of a shared mailbox, by user, the same way.
`folder_moves` journals folder changes until the index agrees with the folders: renames
(RENAME, and DELETE's move to the trash) and, with no old_dir, folders being made (CREATE);
start-up undoes what it finds there.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

from . import files

SCHEMA_VERSION = 6
# A read waits this long for a lock (only WAL recovery takes one); writers never wait on
# the event loop: they try BEGIN IMMEDIATE without waiting and retry asynchronously.
READ_BUSY_MS = 200
SQLITE_BUSY = 5
_CORRUPT_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
_FULL_CODES = (13,)  # SQLITE_FULL

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
    deleted       INTEGER NOT NULL DEFAULT 0,
    names_modseq  INTEGER NOT NULL DEFAULT 0,
    vanished_floor INTEGER NOT NULL DEFAULT 0
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
    savedate       REAL,
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
    refs       TEXT,
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
    emailid       TEXT,
    preview       TEXT,
    PRIMARY KEY (mailbox_id, uid)
);

CREATE TABLE IF NOT EXISTS expunged (
    mailbox_id INTEGER NOT NULL,
    uid        INTEGER NOT NULL,
    modseq     INTEGER NOT NULL,
    base       TEXT,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
-- What was expunged since a MODSEQ (QRESYNC, every session's catch-up), without walking
-- all of a mailbox's tombstones; an index made before this has it added when opened.
CREATE INDEX IF NOT EXISTS expunged_modseq ON expunged (mailbox_id, modseq);

CREATE TABLE IF NOT EXISTS folder_moves (
    seq     INTEGER PRIMARY KEY,
    old_dir TEXT,
    new_dir TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS acl (
    mailbox_id INTEGER NOT NULL,
    identifier TEXT NOT NULL,
    rights     TEXT NOT NULL,
    PRIMARY KEY (mailbox_id, identifier)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS acl_identifier ON acl (identifier);

CREATE TABLE IF NOT EXISTS private_seen (
    mailbox_id INTEGER NOT NULL,
    user       TEXT NOT NULL,
    uid        INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, user, uid)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS metadata (
    mailbox_id INTEGER NOT NULL,
    entry      TEXT NOT NULL,
    value      BLOB NOT NULL,
    PRIMARY KEY (mailbox_id, entry)
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS mailbox_metadata_removed AFTER DELETE ON mailboxes BEGIN
    DELETE FROM metadata WHERE mailbox_id = OLD.id;
END;

CREATE TABLE IF NOT EXISTS private_metadata (
    mailbox_id INTEGER NOT NULL,
    user       TEXT NOT NULL,
    entry      TEXT NOT NULL,
    value      BLOB NOT NULL,
    PRIMARY KEY (mailbox_id, user, entry)
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS mailbox_private_metadata_removed AFTER DELETE ON mailboxes BEGIN
    DELETE FROM private_metadata WHERE mailbox_id = OLD.id;
END;

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
    # Shared mailboxes (tables made without a schema version: older code ignores them).
    # A deleted mailbox's ACL goes with it (RFC 4314 4), an expunged message's marks too.
    r"""
CREATE TRIGGER IF NOT EXISTS mailbox_acl_removed AFTER DELETE ON mailboxes BEGIN
    DELETE FROM acl WHERE mailbox_id = OLD.id;
    DELETE FROM private_seen WHERE mailbox_id = OLD.id;
END
""",
    r"""
CREATE TRIGGER IF NOT EXISTS message_seen_removed AFTER DELETE ON messages BEGIN
    DELETE FROM private_seen WHERE mailbox_id = OLD.mailbox_id AND uid = OLD.uid;
END
""",
)

SCHEMA = _TABLES + "".join(t + ";\n" for t in TRIGGERS)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) an index. Autocommit mode: transactions are explicit."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=READ_BUSY_MS / 1000)
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL: a commit survives a process crash. A power loss may roll back the last
    # commits; message files are fsynced and carry their UID, the folder files hold UID
    # and MODSEQ reservations, and expunges and folder changes fsync the WAL before they
    # are acknowledged (see the README's Durability section).
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=OFF")
    db.execute("PRAGMA cache_size=-8000")
    begin_blocking(db)
    try:
        _upgrade(db)
        for statement in _statements(SCHEMA):
            db.execute(statement)
        db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        db.close()
        raise
    db.execute("COMMIT")
    return db


def _statements(script: str) -> list[str]:
    """Split the schema into statements (triggers hold semicolons of their own)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    return out


def try_begin(db: sqlite3.Connection) -> bool:
    """BEGIN IMMEDIATE without waiting: False if another connection holds the write lock."""
    db.execute("PRAGMA busy_timeout = 0")
    try:
        db.execute("BEGIN IMMEDIATE")
        return True
    except sqlite3.OperationalError as e:
        if (e.sqlite_errorcode & 0xFF) == SQLITE_BUSY:
            return False
        raise
    finally:
        db.execute(f"PRAGMA busy_timeout = {READ_BUSY_MS}")


def begin_blocking(db: sqlite3.Connection, timeout: float = 30.0) -> None:
    """BEGIN IMMEDIATE for code off the event loop (start-up, the CLI, worker threads)."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while not try_begin(db):
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError("database is locked")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def is_corrupt(e: BaseException) -> bool:
    return isinstance(e, sqlite3.DatabaseError) and (getattr(e, "sqlite_errorcode", 0) & 0xFF) in _CORRUPT_CODES


def is_full(e: BaseException) -> bool:
    return isinstance(e, sqlite3.DatabaseError) and (getattr(e, "sqlite_errorcode", 0) & 0xFF) in _FULL_CODES


def _upgrade(db: sqlite3.Connection) -> None:
    """Bring an index made by an earlier version up to SCHEMA_VERSION, in place (inside
    the caller's transaction)."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
        return  # a new index: SCHEMA makes it whole
    row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    version = int(row[0]) if row is not None else SCHEMA_VERSION
    if version < 2:
        # 2: unseen and deleted counts per mailbox, kept by triggers.
        _add_column(db, "mailboxes", "unseen", "INTEGER NOT NULL DEFAULT 0")
        _add_column(db, "mailboxes", "deleted", "INTEGER NOT NULL DEFAULT 0")
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
    if version < 3:
        # 3: mailbox ids never reused, file names in tombstones, the folder journal,
        # flag letters in file names, and the limit below which tombstones are complete.
        _add_column(db, "mailboxes", "names_modseq", "INTEGER NOT NULL DEFAULT 0")
        _add_column(db, "mailboxes", "vanished_floor", "INTEGER NOT NULL DEFAULT 0")
        _add_column(db, "expunged", "base", "TEXT")
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value)"
            " SELECT 'mailbox_id', coalesce(max(id), 0) FROM mailboxes"
        )
        # The default mailboxes were made when the account was (see ensure_default_mailboxes).
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value)"
            " SELECT 'defaults', 1 WHERE EXISTS (SELECT 1 FROM mailboxes WHERE name = 'INBOX')"
        )
    if version < 4:
        # 4: the IDs a message refers to, for THREAD=REFERENCES; NULL for the messages
        # indexed before (read from their header when needed).
        _add_column(db, "headers", "refs", "TEXT")
    if version < 5:
        # 5: the RFC 8474 EMAILID, a digest of the message file; NULL for the messages
        # indexed before (computed from their file when asked, see MaildirAccount.fetch).
        _add_column(db, "parsed", "emailid", "TEXT")
    if version < 6:
        # 6: the RFC 8970 PREVIEW text, NULL for the messages indexed before (made from
        # their file when asked, see MaildirAccount.make_previews); and the RFC 8514 save
        # date, which for those is the time their file name records (files.save_date):
        # every save has always written a name made at that moment.
        _add_column(db, "parsed", "preview", "TEXT")
        _add_column(db, "messages", "savedate", "REAL")
        db.create_function("letterbox_save_date", 2, files.save_date, deterministic=True)
        db.execute("UPDATE messages SET savedate = letterbox_save_date(filename, internaldate)")
    if version < SCHEMA_VERSION:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))


def _add_column(db: sqlite3.Connection, table: str, column: str, decl: str) -> None:
    if column not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
