-- Per-deployment secrets that every instance must share (the CSRF signing key), generated
-- once by whichever instance needs one first.
CREATE TABLE instance_secrets (
    name       TEXT PRIMARY KEY,
    secret     BLOB NOT NULL,
    created_at TEXT NOT NULL,
    CONSTRAINT instance_secrets_secret_length CHECK (length(secret) >= 32)
) STRICT;
