-- Mail: the one-time tokens a message carries, the outbox that delivers it, and the PKCE
-- flow states an emailed link completes. Keep in step with ../postgres/0007_email.sql.

-- A one-time token: a 6-digit code and a long link token, for one user, one purpose and
-- the one address it was mailed to. Only digests are kept: the code as an HMAC under an
-- instance secret (a 6-digit code alone would fall to a dictionary of a million), the link
-- token as its SHA-256 (256 random bits need no key). Single use: consumed_at is set by
-- the one UPDATE that redeems it (and redeemed_at with it: a voided token has consumed_at
-- alone); a wrong code counts in attempts, and at the limit the token is void. A new token
-- of the same user and purpose voids the older ones. A sign-up's confirmation carries the
-- password hash of the sign-up that asked for it, set on the account when it is redeemed,
-- so that whoever pre-registered an address cannot keep a password in its account.
CREATE TABLE one_time_tokens (
    id            BLOB PRIMARY KEY,
    user_id       BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose       TEXT NOT NULL,
    email         TEXT NOT NULL,
    new_email     TEXT,
    code_hash     BLOB NOT NULL,
    link_hash     BLOB NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    flow_state_id BLOB,
    redirect_to   TEXT,
    password_hash TEXT,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    consumed_at   TEXT,
    redeemed_at   TEXT,
    CONSTRAINT one_time_tokens_link_hash_key UNIQUE (link_hash),
    CONSTRAINT one_time_tokens_hash_length CHECK (length(code_hash) = 32 AND length(link_hash) = 32),
    CONSTRAINT one_time_tokens_purpose_check CHECK (purpose IN ('signup', 'magiclink', 'recovery', 'invite',
        'email_change_current', 'email_change_new', 'reauthentication', 'unlock'))
) STRICT;
CREATE INDEX one_time_tokens_email_idx ON one_time_tokens (lower(email), purpose, created_at);
CREATE INDEX one_time_tokens_user_idx ON one_time_tokens (user_id, purpose, created_at);

-- Mail waiting to be delivered, written in the transaction of the token it carries. The
-- message (addresses, subject, bodies: the code and the link are in them) is sealed under
-- an instance key, and the row is deleted once the SMTP server has accepted it. A sender
-- claims a row for a lease (claimed_until) so that two instances never send it at once;
-- a failure sets next_attempt_at by backoff, and after the last attempt failed_at.
CREATE TABLE mail_outbox (
    id              BLOB PRIMARY KEY,
    kind            TEXT NOT NULL,
    sealed          BLOB NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    claimed_until   TEXT,
    last_error      TEXT,
    failed_at       TEXT
) STRICT;
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at) WHERE failed_at IS NULL;

-- A PKCE flow (supabase-js `flowType: 'pkce'`): the challenge a client sent with a request
-- that mails a link, and, once the link is verified, the digest of the one-time auth code
-- it is redirected with; `POST /token?grant_type=pkce` trades that code and the verifier
-- for a session, once (the row is deleted).
CREATE TABLE flow_states (
    id                    BLOB PRIMARY KEY,
    user_id               BLOB REFERENCES users (id) ON DELETE CASCADE,
    code_challenge        TEXT NOT NULL,
    code_challenge_method TEXT NOT NULL,
    authentication_method TEXT NOT NULL,
    auth_code_hash        BLOB,
    created_at            TEXT NOT NULL,
    auth_code_issued_at   TEXT,
    CONSTRAINT flow_states_auth_code_hash_key UNIQUE (auth_code_hash),
    CONSTRAINT flow_states_method_check CHECK (code_challenge_method IN ('s256', 'plain'))
) STRICT;
CREATE INDEX flow_states_created_at_idx ON flow_states (created_at);
