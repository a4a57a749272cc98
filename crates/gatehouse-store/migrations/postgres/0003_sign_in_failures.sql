-- Account protection. Failed sign-ins are counted per (identifier, source): the identifier
-- as typed (so an unknown account behaves exactly like a known one) and the client IP, for
-- the progressive delay and the per-source lock. users.failed_sign_ins counts consecutive
-- failures from anywhere, for the hard stop at 100 (NIST SP 800-63B); locked_at is set
-- then, and only an admin clears it.
CREATE TABLE sign_in_failures (
    identifier      TEXT NOT NULL,
    source          TEXT NOT NULL,
    failures        INTEGER NOT NULL,
    last_failure_at TIMESTAMPTZ NOT NULL,
    locked_until    TIMESTAMPTZ,
    PRIMARY KEY (identifier, source)
);
CREATE INDEX sign_in_failures_last_failure_idx ON sign_in_failures (last_failure_at);

ALTER TABLE users ADD COLUMN failed_sign_ins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_at TIMESTAMPTZ;
