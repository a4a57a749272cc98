-- gatehouse schema, version 1 (Postgres). Keep in step with ../sqlite/0001_initial.sql:
-- same tables, columns, constraints and index names; only the types differ.
-- Timestamps are always written by gatehouse from its clock, so there are no time defaults.

CREATE TABLE users (
    id                 UUID PRIMARY KEY,
    email              TEXT,
    username           TEXT,
    phone              TEXT,
    password_hash      TEXT,
    role               TEXT NOT NULL DEFAULT 'user',
    is_active          BOOLEAN NOT NULL DEFAULT TRUE,
    is_anonymous       BOOLEAN NOT NULL DEFAULT FALSE,
    app_metadata       JSONB NOT NULL DEFAULT '{}',
    user_metadata      JSONB NOT NULL DEFAULT '{}',
    email_confirmed_at TIMESTAMPTZ,
    phone_confirmed_at TIMESTAMPTZ,
    last_sign_in_at    TIMESTAMPTZ,
    banned_until       TIMESTAMPTZ,
    deleted_at         TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    CONSTRAINT users_role_check CHECK (role IN ('user', 'admin')),
    CONSTRAINT users_email_length CHECK (email IS NULL OR length(email) BETWEEN 3 AND 320),
    CONSTRAINT users_username_length CHECK (username IS NULL OR length(username) BETWEEN 3 AND 32)
);
-- Case-insensitive uniqueness among live users: a soft-deleted user frees its email and
-- username for re-use. lower() also serves lookups (WHERE lower(email) = lower($1)).
CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX users_username_key ON users (lower(username)) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX users_phone_key ON users (phone) WHERE deleted_at IS NULL;
-- Keyset pagination of the admin list: (created_at, id) and (lower(email), id).
CREATE INDEX users_created_at_id_idx ON users (created_at, id);
CREATE INDEX users_email_id_idx ON users (coalesce(lower(email), ''), id);
CREATE INDEX users_role_created_at_idx ON users (role, created_at, id);

CREATE TABLE profiles (
    user_id      UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    display_name TEXT,
    avatar_url   TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT profiles_display_name_length CHECK (display_name IS NULL OR length(display_name) <= 100)
);

-- A session is one sign-in; its refresh tokens rotate underneath it.
CREATE TABLE sessions (
    id             UUID PRIMARY KEY,
    user_id        UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    aal            TEXT NOT NULL DEFAULT 'aal1',
    amr            JSONB NOT NULL DEFAULT '[]',
    user_agent     TEXT,
    ip             TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    refreshed_at   TIMESTAMPTZ NOT NULL,   -- last activity, for the idle timeout
    not_after      TIMESTAMPTZ NOT NULL,   -- absolute lifetime
    revoked_at     TIMESTAMPTZ,
    revoked_reason TEXT
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id, created_at);

-- Refresh tokens are stored only as SHA-256 hashes.
CREATE TABLE refresh_tokens (
    id               UUID PRIMARY KEY,
    session_id       UUID NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    token_hash       BYTEA NOT NULL,
    parent_id        UUID,                 -- the token this one replaced
    successor_sealed BYTEA,                -- the successor, sealed under a key only this token's holder can derive
    created_at       TIMESTAMPTZ NOT NULL,
    rotated_at       TIMESTAMPTZ,          -- when a successor replaced it
    revoked_at       TIMESTAMPTZ,
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash),
    CONSTRAINT refresh_tokens_token_hash_length CHECK (length(token_hash) = 32)
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

-- Asymmetric signing keys. A key is published in the JWKS from created_at, signs from
-- signs_from, stops signing at retired_at and leaves the JWKS at publish_until.
CREATE TABLE signing_keys (
    kid                TEXT PRIMARY KEY,
    alg                TEXT NOT NULL,
    public_jwk         JSONB NOT NULL,
    private_key        BYTEA NOT NULL,    -- PKCS#8 DER, sealed when a key-encryption key is configured
    private_key_sealed BOOLEAN NOT NULL DEFAULT FALSE,
    created_at         TIMESTAMPTZ NOT NULL,
    signs_from         TIMESTAMPTZ NOT NULL,
    retired_at         TIMESTAMPTZ,
    publish_until      TIMESTAMPTZ,
    CONSTRAINT signing_keys_alg_check CHECK (alg IN ('ES256', 'RS256', 'EdDSA'))
);
CREATE INDEX signing_keys_signs_from_idx ON signing_keys (signs_from);

-- Append-only trail. No foreign keys: it outlives hard-deleted users.
CREATE TABLE audit_log (
    id         UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    action     TEXT NOT NULL,
    actor_id   UUID,
    target_id  UUID,
    ip         TEXT,
    user_agent TEXT,
    details    JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_created_at_id_idx ON audit_log (created_at, id);
CREATE INDEX audit_log_target_id_idx ON audit_log (target_id, created_at, id);
CREATE INDEX audit_log_actor_id_idx ON audit_log (actor_id, created_at, id);
CREATE INDEX audit_log_action_idx ON audit_log (action, created_at, id);
