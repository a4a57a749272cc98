-- When and how a session's user last proved who they are (a password today; later a
-- one-time code, a recovery link or a reauthentication nonce), so that a password or email
-- change can ask for a recent proof. Sessions from before are taken as authenticated by
-- password when they were created.
ALTER TABLE sessions ADD COLUMN authenticated_at TEXT;
ALTER TABLE sessions ADD COLUMN authentication_method TEXT;
UPDATE sessions SET authenticated_at = created_at, authentication_method = 'password';
