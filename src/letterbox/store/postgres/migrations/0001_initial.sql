-- The mail store on PostgreSQL: accounts, mailboxes, messages and their bodies.
-- Message bodies are content-addressed blobs (sha256 of the exact bytes), stored once
-- for every copy and every recipient of one delivery, with the parse FETCH and SEARCH
-- read (a function of the bytes, so it is kept with them). A blob lives while messages
-- refer to it: `refs` counts them, kept by the triggers on messages; the transaction
-- that lowers it to 0 deletes it. A writer holds a lock that keeps the blob alive
-- until its message row is in (the blob row, taken by the upsert of an append; the
-- source message row, FOR SHARE, for a copy), so a concurrent last expunge either
-- comes first (and the blob is made anew) or sees the new reference.

CREATE TABLE counters (
    name  text PRIMARY KEY,
    value bigint NOT NULL
);
INSERT INTO counters VALUES ('uidvalidity', 0);

CREATE TABLE accounts (
    id          bigserial PRIMARY KEY,
    address     text NOT NULL,
    incarnation text,
    live        boolean NOT NULL DEFAULT true,
    created     double precision NOT NULL DEFAULT extract(epoch FROM now())
);
CREATE UNIQUE INDEX accounts_live_address ON accounts (address) WHERE live;

CREATE TABLE mailboxes (
    id            bigserial PRIMARY KEY,
    account_id    bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name          text COLLATE "C" NOT NULL,
    uidvalidity   bigint NOT NULL,
    uidnext       bigint NOT NULL DEFAULT 1,
    highestmodseq bigint NOT NULL DEFAULT 1,
    recent_uid    bigint NOT NULL DEFAULT 1,
    special_use   text,
    keywords      text NOT NULL DEFAULT '',
    -- kept by the triggers on messages
    messages      bigint NOT NULL DEFAULT 0,
    bytes         bigint NOT NULL DEFAULT 0,
    unseen        bigint NOT NULL DEFAULT 0,
    deleted       bigint NOT NULL DEFAULT 0,
    UNIQUE (account_id, name)
);

CREATE TABLE blobs (
    sha           bytea PRIMARY KEY,
    refs          bigint NOT NULL DEFAULT 0,
    size          bigint NOT NULL,
    chunks        integer NOT NULL,
    header_size   integer NOT NULL,
    envelope      bytea NOT NULL,
    body          bytea NOT NULL,
    bodystructure bytea NOT NULL,
    parts         text NOT NULL,
    emailid       text,
    preview       text,
    sent_date     double precision,
    subject       text NOT NULL,
    from_         text NOT NULL,
    to_           text NOT NULL,
    cc            text NOT NULL,
    bcc           text NOT NULL,
    message_id    text NOT NULL,
    refs_ids      text
);

-- Each piece (api.CHUNK bytes of the message) compressed on its own, so a range or a
-- stream reads only the pieces it needs. EXTERNAL: already compressed, no pglz again.
CREATE TABLE blob_chunks (
    sha  bytea NOT NULL REFERENCES blobs (sha) ON DELETE CASCADE,
    seq  integer NOT NULL,
    zstd boolean NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (sha, seq)
);
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE messages (
    mailbox_id     bigint NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    uid            bigint NOT NULL,
    modseq         bigint NOT NULL,
    flags          text NOT NULL DEFAULT '',
    size           bigint NOT NULL,
    internaldate   double precision NOT NULL,
    savedate       double precision NOT NULL,
    blob           bytea NOT NULL REFERENCES blobs (sha),
    pop3_hidden    boolean NOT NULL DEFAULT false,
    pop3_retrieved double precision,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);
CREATE INDEX messages_blob ON messages (blob);

-- QRESYNC (RFC 7162 3.2.10): which UIDs went, at which MODSEQ.
CREATE TABLE expunged (
    mailbox_id bigint NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    uid        bigint NOT NULL,
    modseq     bigint NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);

-- Subscriptions are names, not mailboxes (RFC 9051 6.3.7).
CREATE TABLE subscriptions (
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       text COLLATE "C" NOT NULL,
    PRIMARY KEY (account_id, name)
);

-- RFC 5464: mailbox_id 0 holds the server's entries (the account's own).
CREATE TABLE metadata (
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    mailbox_id bigint NOT NULL,
    entry      text COLLATE "C" NOT NULL,
    value      bytea NOT NULL,
    PRIMARY KEY (account_id, mailbox_id, entry)
);
CREATE TABLE private_metadata (
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    mailbox_id bigint NOT NULL,
    "user"     text NOT NULL,
    entry      text COLLATE "C" NOT NULL,
    value      bytea NOT NULL,
    PRIMARY KEY (account_id, mailbox_id, "user", entry)
);

CREATE TABLE acl (
    mailbox_id bigint NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    identifier text NOT NULL,
    rights     text NOT NULL,
    PRIMARY KEY (mailbox_id, identifier)
);
CREATE INDEX acl_identifier ON acl (identifier);

-- \Seen of readers other than the owner (see store.rules.seen).
CREATE TABLE private_seen (
    mailbox_id bigint NOT NULL,
    uid        bigint NOT NULL,
    "user"     text NOT NULL,
    PRIMARY KEY (mailbox_id, "user", uid),
    FOREIGN KEY (mailbox_id, uid) REFERENCES messages (mailbox_id, uid) ON DELETE CASCADE
);
CREATE INDEX private_seen_message ON private_seen (mailbox_id, uid);

CREATE FUNCTION letterbox_has_flag(flags text, flag text) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $$ SELECT flag = ANY (string_to_array(flags, ' ')) $$;

CREATE FUNCTION letterbox_message_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mailboxes SET messages = messages + 1, bytes = bytes + NEW.size,
        unseen = unseen + (NOT letterbox_has_flag(NEW.flags, '\Seen'))::int,
        deleted = deleted + letterbox_has_flag(NEW.flags, '\Deleted')::int
        WHERE id = NEW.mailbox_id;
    UPDATE blobs SET refs = refs + 1 WHERE sha = NEW.blob;
    RETURN NULL;
END $$;

CREATE FUNCTION letterbox_message_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mailboxes SET messages = messages - 1, bytes = bytes - OLD.size,
        unseen = unseen - (NOT letterbox_has_flag(OLD.flags, '\Seen'))::int,
        deleted = deleted - letterbox_has_flag(OLD.flags, '\Deleted')::int
        WHERE id = OLD.mailbox_id;
    UPDATE blobs SET refs = refs - 1 WHERE sha = OLD.blob;
    DELETE FROM blobs WHERE sha = OLD.blob AND refs <= 0;
    RETURN NULL;
END $$;

CREATE FUNCTION letterbox_flags_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mailboxes SET
        unseen = unseen + (NOT letterbox_has_flag(NEW.flags, '\Seen'))::int
                        - (NOT letterbox_has_flag(OLD.flags, '\Seen'))::int,
        deleted = deleted + letterbox_has_flag(NEW.flags, '\Deleted')::int
                          - letterbox_has_flag(OLD.flags, '\Deleted')::int
        WHERE id = NEW.mailbox_id;
    RETURN NULL;
END $$;

CREATE TRIGGER message_added AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION letterbox_message_added();
CREATE TRIGGER message_removed AFTER DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION letterbox_message_removed();
CREATE TRIGGER message_flags_changed AFTER UPDATE OF flags ON messages
    FOR EACH ROW WHEN (OLD.flags IS DISTINCT FROM NEW.flags)
    EXECUTE FUNCTION letterbox_flags_changed();

-- A mailbox's metadata goes with it (its id is never reused).
CREATE FUNCTION letterbox_mailbox_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM metadata WHERE account_id = OLD.account_id AND mailbox_id = OLD.id;
    DELETE FROM private_metadata WHERE account_id = OLD.account_id AND mailbox_id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER mailbox_removed AFTER DELETE ON mailboxes
    FOR EACH ROW EXECUTE FUNCTION letterbox_mailbox_removed();
