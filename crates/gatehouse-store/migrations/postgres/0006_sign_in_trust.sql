-- What vouches for a sign-in attempt when an account has hit the hard stop of failed
-- sign-ins, so that the stop cannot be used to lock its owner out (ASVS 6.1.1): the
-- browsers it signed in from (a signed device cookie, rotated on use; the key is the
-- SHA-256 of the cookie's nonce) and the sources it signed in from (client IPs, IPv6 by
-- prefix) within 30 days. Attempts so vouched for keep their own per-device or per-source
-- limits.
CREATE TABLE sign_in_trust (
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    key          TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, kind, key),
    CONSTRAINT sign_in_trust_kind_check CHECK (kind IN ('device', 'source'))
);
CREATE INDEX sign_in_trust_last_used_idx ON sign_in_trust (user_id, kind, last_used_at);
