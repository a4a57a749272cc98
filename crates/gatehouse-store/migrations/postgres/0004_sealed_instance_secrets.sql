-- Instance secrets (the CSRF key, the API-key secret) are sealed under the key-encryption
-- key when one is configured, as signing keys are; rows written before stay plain until a
-- start-up with a KEK seals them.
ALTER TABLE instance_secrets ADD COLUMN sealed BOOLEAN NOT NULL DEFAULT false;
