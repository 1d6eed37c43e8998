-- The accounts directory, shared by every front end on this database (auth.pgdirectory):
-- what the SQLite directory keeps in each data_dir's accounts.sqlite, with the same
-- columns. Every write to what an operator changes (accounts, switches, policies,
-- administrators and their tokens) bumps `directory_version` in its own transaction
-- and sends the new version on the channel 'letterbox_directory.<schema>' (delivered at
-- commit), so every front end drops its cached lookups and applies the change at once.
-- Usage, last logins and quota warnings are notes the servers write every few seconds:
-- shared (every console sees them), but no change notice.

CREATE TABLE directory_accounts (
    address          text PRIMARY KEY,
    password         text NOT NULL,
    enabled          boolean NOT NULL DEFAULT true,
    protocols        text NOT NULL DEFAULT 'imap pop3',
    quota_bytes      bigint NOT NULL DEFAULT 0,
    quota_messages   bigint NOT NULL DEFAULT 0,
    created          double precision NOT NULL,
    incarnation      text NOT NULL,
    deleting         integer NOT NULL DEFAULT 0,
    scram_sha256     text NOT NULL DEFAULT '',
    disabled_message text NOT NULL DEFAULT ''
);

CREATE TABLE directory_switches (
    service text PRIMARY KEY,
    enabled boolean NOT NULL
);

CREATE TABLE directory_policies (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE directory_keys (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);

CREATE TABLE directory_admins (
    name     text PRIMARY KEY,
    password text NOT NULL,
    created  double precision NOT NULL
);

CREATE TABLE directory_api_tokens (
    digest    text PRIMARY KEY,
    admin     text NOT NULL,
    label     text NOT NULL,
    created   double precision NOT NULL,
    last_used double precision
);

CREATE TABLE directory_audit (
    id     bigserial PRIMARY KEY,
    at     double precision NOT NULL,
    who    text NOT NULL,
    client text NOT NULL,
    what   text NOT NULL
);

CREATE TABLE directory_usage (
    address          text PRIMARY KEY,
    messages         bigint NOT NULL,
    bytes            bigint NOT NULL,
    counted_messages bigint NOT NULL,
    counted_bytes    bigint NOT NULL,
    updated          double precision NOT NULL
);
CREATE INDEX directory_usage_bytes ON directory_usage (bytes);

CREATE TABLE directory_last_login (
    address  text NOT NULL,
    protocol text NOT NULL,
    at       double precision NOT NULL,
    ip       text NOT NULL,
    PRIMARY KEY (address, protocol)
);

CREATE TABLE directory_quota_warned (
    address text PRIMARY KEY,
    level   integer NOT NULL
);

CREATE TABLE directory_version (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    version bigint NOT NULL
);
INSERT INTO directory_version VALUES (true, 0);

CREATE FUNCTION directory_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v bigint;
BEGIN
    UPDATE directory_version SET version = version + 1 RETURNING version INTO v;
    PERFORM pg_notify('letterbox_directory.' || current_schema(), v::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER directory_accounts_changed AFTER INSERT OR UPDATE OR DELETE ON directory_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION directory_changed();
CREATE TRIGGER directory_switches_changed AFTER INSERT OR UPDATE OR DELETE ON directory_switches
    FOR EACH STATEMENT EXECUTE FUNCTION directory_changed();
CREATE TRIGGER directory_policies_changed AFTER INSERT OR UPDATE OR DELETE ON directory_policies
    FOR EACH STATEMENT EXECUTE FUNCTION directory_changed();
CREATE TRIGGER directory_admins_changed AFTER INSERT OR UPDATE OR DELETE ON directory_admins
    FOR EACH STATEMENT EXECUTE FUNCTION directory_changed();
CREATE TRIGGER directory_api_tokens_changed AFTER INSERT OR DELETE ON directory_api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION directory_changed();
