-- Instance secrets (the CSRF key, the API-key secret) are sealed under the key-encryption
-- key when one is configured, as signing keys are; rows written before stay plain until a
-- start-up with a KEK seals them.
ALTER TABLE instance_secrets ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0
    CONSTRAINT instance_secrets_sealed_bool CHECK (sealed IN (0, 1));
