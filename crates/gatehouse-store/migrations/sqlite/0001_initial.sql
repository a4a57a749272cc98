-- gatehouse schema, version 1 (SQLite). Keep in step with ../postgres/0001_initial.sql:
-- same tables, columns, constraints and index names; only the types differ.
-- STRICT tables, so a value of the wrong type is an error instead of a silent conversion.
-- UUIDs are 16-byte BLOBs, booleans 0/1, JSON is TEXT checked with json_valid, and
-- timestamps are fixed-width UTC RFC 3339 TEXT (microseconds), so they sort as text.
-- lower() folds ASCII only in SQLite; Postgres folds per collation.

CREATE TABLE users (
    id                 BLOB PRIMARY KEY,
    email              TEXT,
    username           TEXT,
    phone              TEXT,
    password_hash      TEXT,
    role               TEXT NOT NULL DEFAULT 'user',
    is_active          INTEGER NOT NULL DEFAULT 1,
    is_anonymous       INTEGER NOT NULL DEFAULT 0,
    app_metadata       TEXT NOT NULL DEFAULT '{}',
    user_metadata      TEXT NOT NULL DEFAULT '{}',
    email_confirmed_at TEXT,
    phone_confirmed_at TEXT,
    last_sign_in_at    TEXT,
    banned_until       TEXT,
    deleted_at         TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    CONSTRAINT users_id_length CHECK (length(id) = 16),
    CONSTRAINT users_role_check CHECK (role IN ('user', 'admin')),
    CONSTRAINT users_email_length CHECK (email IS NULL OR length(email) BETWEEN 3 AND 320),
    CONSTRAINT users_username_length CHECK (username IS NULL OR length(username) BETWEEN 3 AND 32),
    CONSTRAINT users_is_active_bool CHECK (is_active IN (0, 1)),
    CONSTRAINT users_is_anonymous_bool CHECK (is_anonymous IN (0, 1)),
    CONSTRAINT users_app_metadata_json CHECK (json_valid(app_metadata)),
    CONSTRAINT users_user_metadata_json CHECK (json_valid(user_metadata))
) STRICT;
CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX users_username_key ON users (lower(username)) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX users_phone_key ON users (phone) WHERE deleted_at IS NULL;
CREATE INDEX users_created_at_id_idx ON users (created_at, id);
CREATE INDEX users_email_id_idx ON users (coalesce(lower(email), ''), id);
CREATE INDEX users_role_created_at_idx ON users (role, created_at, id);

CREATE TABLE profiles (
    user_id      BLOB PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    display_name TEXT,
    avatar_url   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    CONSTRAINT profiles_display_name_length CHECK (display_name IS NULL OR length(display_name) <= 100)
) STRICT;

CREATE TABLE sessions (
    id             BLOB PRIMARY KEY,
    user_id        BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    aal            TEXT NOT NULL DEFAULT 'aal1',
    amr            TEXT NOT NULL DEFAULT '[]',
    user_agent     TEXT,
    ip             TEXT,
    created_at     TEXT NOT NULL,
    refreshed_at   TEXT NOT NULL,
    not_after      TEXT NOT NULL,
    revoked_at     TEXT,
    revoked_reason TEXT,
    CONSTRAINT sessions_amr_json CHECK (json_valid(amr))
) STRICT;
CREATE INDEX sessions_user_id_idx ON sessions (user_id, created_at);

CREATE TABLE refresh_tokens (
    id               BLOB PRIMARY KEY,
    session_id       BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    token_hash       BLOB NOT NULL,
    parent_id        BLOB,
    successor_sealed BLOB,
    created_at       TEXT NOT NULL,
    rotated_at       TEXT,
    revoked_at       TEXT,
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash),
    CONSTRAINT refresh_tokens_token_hash_length CHECK (length(token_hash) = 32)
) STRICT;
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    kid                TEXT PRIMARY KEY,
    alg                TEXT NOT NULL,
    public_jwk         TEXT NOT NULL,
    private_key        BLOB NOT NULL,
    private_key_sealed INTEGER NOT NULL DEFAULT 0,
    created_at         TEXT NOT NULL,
    signs_from         TEXT NOT NULL,
    retired_at         TEXT,
    publish_until      TEXT,
    CONSTRAINT signing_keys_alg_check CHECK (alg IN ('ES256', 'RS256', 'EdDSA')),
    CONSTRAINT signing_keys_public_jwk_json CHECK (json_valid(public_jwk)),
    CONSTRAINT signing_keys_private_key_sealed_bool CHECK (private_key_sealed IN (0, 1))
) STRICT;
CREATE INDEX signing_keys_signs_from_idx ON signing_keys (signs_from);

CREATE TABLE audit_log (
    id         BLOB PRIMARY KEY,
    created_at TEXT NOT NULL,
    action     TEXT NOT NULL,
    actor_id   BLOB,
    target_id  BLOB,
    ip         TEXT,
    user_agent TEXT,
    details    TEXT NOT NULL DEFAULT '{}',
    CONSTRAINT audit_log_details_json CHECK (json_valid(details))
) STRICT;
CREATE INDEX audit_log_created_at_id_idx ON audit_log (created_at, id);
CREATE INDEX audit_log_target_id_idx ON audit_log (target_id, created_at, id);
CREATE INDEX audit_log_actor_id_idx ON audit_log (actor_id, created_at, id);
CREATE INDEX audit_log_action_idx ON audit_log (action, created_at, id);
