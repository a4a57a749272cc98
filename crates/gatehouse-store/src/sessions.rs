//! Sessions and the refresh tokens that rotate underneath them. Tokens are stored only as
//! SHA-256 hashes; rotation is a compare-and-set so two concurrent refreshes with the same
//! token produce one successor.

use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::transaction::with_tx;
use crate::{with_pool, Store, StoreError, Timestamp, Transaction};

/// A session row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SessionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub aal: String,
    pub amr: Json<Value>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: Timestamp,
    pub refreshed_at: Timestamp,
    pub not_after: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub revoked_reason: Option<String>,
    /// When the user last proved who they are in this session (sign-in; later a one-time
    /// code or a reauthentication), not moved by refreshes.
    pub authenticated_at: Option<Timestamp>,
    /// How: `password`, ...
    pub authentication_method: Option<String>,
}

/// A refresh token row with the state of its session.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshTokenRecord {
    pub id: Uuid,
    pub session_id: Uuid,
    pub parent_id: Option<Uuid>,
    pub successor_sealed: Option<Vec<u8>>,
    pub created_at: Timestamp,
    pub rotated_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// A new session and its first refresh token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub amr: Value,
    /// How the user authenticated to start it (`password`); the time is `created_at`.
    pub authentication_method: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: Timestamp,
    pub not_after: Timestamp,
}

/// A refresh token to store.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub id: Uuid,
    pub session_id: Uuid,
    pub token_hash: [u8; 32],
    pub parent_id: Option<Uuid>,
    pub created_at: Timestamp,
}

/// Revokes the refresh tokens of every live session of user `$1` but session `$2`, at `$3`.
pub(crate) const REVOKE_USER_TOKENS: &str =
    "UPDATE refresh_tokens SET revoked_at = $3 WHERE revoked_at IS NULL AND session_id IN \
     (SELECT id FROM sessions WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL)";
/// Ends every live session of user `$1` but session `$2`, at `$3`, for reason `$4`.
pub(crate) const REVOKE_USER_SESSIONS: &str =
    "UPDATE sessions SET revoked_at = $3, revoked_reason = $4 \
     WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL";

const INSERT_TOKEN: &str =
    "INSERT INTO refresh_tokens (id, session_id, token_hash, parent_id, created_at) \
     VALUES ($1, $2, $3, $4, $5)";
const SELECT_SESSION: &str =
    "SELECT id, user_id, aal, amr, user_agent, ip, created_at, refreshed_at, \
     not_after, revoked_at, revoked_reason, authenticated_at, authentication_method FROM sessions";
const SELECT_TOKEN: &str =
    "SELECT id, session_id, parent_id, successor_sealed, created_at, rotated_at, \
     revoked_at FROM refresh_tokens";

impl Store {
    /// The session with this id.
    pub async fn get_session(&self, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
        let sql = format!("{SELECT_SESSION} WHERE id = $1");
        Ok(with_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    /// A user's sessions, newest first.
    pub async fn list_user_sessions(
        &self,
        user_id: Uuid,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = format!("{SELECT_SESSION} WHERE user_id = $1 ORDER BY created_at DESC");
        Ok(with_pool!(self, pool => sqlx::query_as(&sql).bind(user_id).fetch_all(pool).await?))
    }

    /// The refresh token with this hash.
    pub async fn find_refresh_token(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        let sql = format!("{SELECT_TOKEN} WHERE token_hash = $1");
        Ok(
            with_pool!(self, pool => sqlx::query_as(&sql).bind(&token_hash[..]).fetch_optional(pool).await?),
        )
    }

    /// The refresh token with this id.
    pub async fn get_refresh_token(
        &self,
        id: Uuid,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        let sql = format!("{SELECT_TOKEN} WHERE id = $1");
        Ok(with_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    /// Replaces `old` by `new` if `old` is still current: inserts `new`, marks `old` rotated
    /// with the sealed successor, and notes activity on the session when its last note is
    /// older than `touch_before`, all at once (one statement on Postgres, one transaction on
    /// SQLite). Returns `false`, changing nothing, when another request rotated or revoked
    /// `old` first. Noting activity at most once per interval keeps a refreshing session's
    /// row from being rewritten on every refresh: under a refresh load those dead row
    /// versions piled up in the small, hot sessions table faster than Postgres pruned them,
    /// and every read of a session paid for walking them.
    pub async fn rotate_refresh_token(
        &self,
        old_id: Uuid,
        new: &NewRefreshToken,
        successor_sealed: &[u8],
        touch_before: Timestamp,
    ) -> Result<bool, StoreError> {
        // Postgres: the same three writes as one statement, so one round trip instead of
        // five (BEGIN, three writes, COMMIT). The UPDATE's row lock is the compare-and-set:
        // a concurrent rotation of the same token waits, re-reads `rotated_at` and claims
        // nothing, so nothing is inserted and the session is not touched.
        const ROTATE_IN_ONE: &str = "WITH claimed AS ( \
                 UPDATE refresh_tokens SET rotated_at = $5, successor_sealed = $6 \
                 WHERE id = $7 AND rotated_at IS NULL AND revoked_at IS NULL \
                 RETURNING session_id), \
             inserted AS ( \
                 INSERT INTO refresh_tokens (id, session_id, token_hash, parent_id, created_at) \
                 SELECT $1, $2, $3, $4, $5 FROM claimed RETURNING id), \
             touched AS ( \
                 UPDATE sessions SET refreshed_at = $5 \
                 WHERE id IN (SELECT session_id FROM claimed) AND refreshed_at < $8) \
             SELECT count(*) FROM inserted";
        if let Store::Postgres(pool) = self {
            let inserted: i64 = sqlx::query_scalar(ROTATE_IN_ONE)
                .bind(new.id)
                .bind(new.session_id)
                .bind(&new.token_hash[..])
                .bind(new.parent_id)
                .bind(new.created_at)
                .bind(successor_sealed)
                .bind(old_id)
                .bind(touch_before)
                .fetch_one(pool)
                .await?;
            return Ok(inserted == 1);
        }
        // SQLite: the same three writes as one multi-statement query, one hand-off to the
        // connection's worker thread instead of three. `changes()` is the row count of the
        // statement before, so nothing is inserted or touched unless the claim succeeded.
        const ROTATE_SQLITE: &str =
            "UPDATE refresh_tokens SET rotated_at = $5, successor_sealed = $6 \
                 WHERE id = $7 AND rotated_at IS NULL AND revoked_at IS NULL; \
             INSERT INTO refresh_tokens (id, session_id, token_hash, parent_id, created_at) \
                 SELECT $1, $2, $3, $4, $5 WHERE changes() = 1; \
             UPDATE sessions SET refreshed_at = $5 WHERE id = $2 AND changes() = 1 \
                 AND refreshed_at < $8";
        let mut tx = self.begin().await?;
        let written = with_tx!(tx, conn => {
            sqlx::query(ROTATE_SQLITE)
                .bind(new.id)
                .bind(new.session_id)
                .bind(&new.token_hash[..])
                .bind(new.parent_id)
                .bind(new.created_at)
                .bind(successor_sealed)
                .bind(old_id)
                .bind(touch_before)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        tx.commit().await?;
        // The claim and the insert, with or without the touch.
        Ok(written >= 2)
    }
}

/// A new session row; the refresh tokens are written apart.
macro_rules! insert_session_sql {
    ($tail:literal) => {
        concat!(
            "INSERT INTO sessions (id, user_id, amr, user_agent, ip, created_at, \
             refreshed_at, not_after, authenticated_at, authentication_method) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $6, $8)",
            $tail
        )
    };
}

impl Transaction {
    async fn insert_session(&mut self, sql: &str, session: &NewSession) -> Result<(), StoreError> {
        with_tx!(self, conn => {
            sqlx::query(sql)
                .bind(session.id)
                .bind(session.user_id)
                .bind(Json(&session.amr))
                .bind(&session.user_agent)
                .bind(&session.ip)
                .bind(session.created_at)
                .bind(session.not_after)
                .bind(&session.authentication_method)
                .execute(&mut *conn)
                .await?;
        });
        Ok(())
    }

    /// Records a session whose refresh tokens live elsewhere (Supabase mode: the upstream's
    /// session, by its id), so that ending it here is seen by every request. Nothing
    /// happens if it is recorded already.
    pub async fn record_session(&mut self, session: &NewSession) -> Result<(), StoreError> {
        const SQL: &str = insert_session_sql!(" ON CONFLICT (id) DO NOTHING");
        self.insert_session(SQL, session).await
    }

    /// Records a refresh token: the first of a session, or (Supabase mode) the digest of
    /// one issued elsewhere, so that its reuse can be traced to its session and end it.
    pub async fn record_refresh_token(
        &mut self,
        token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        with_tx!(self, conn => {
            sqlx::query(INSERT_TOKEN)
                .bind(token.id)
                .bind(token.session_id)
                .bind(&token.token_hash[..])
                .bind(token.parent_id)
                .bind(token.created_at)
                .execute(&mut *conn)
                .await?;
        });
        Ok(())
    }

    /// Writes a session and its first refresh token, and returns the session as written.
    pub async fn create_session(
        &mut self,
        session: &NewSession,
        token: &NewRefreshToken,
    ) -> Result<SessionRecord, StoreError> {
        const SQL: &str = insert_session_sql!("");
        self.insert_session(SQL, session).await?;
        self.record_refresh_token(token).await?;
        Ok(SessionRecord {
            id: session.id,
            user_id: session.user_id,
            aal: "aal1".to_owned(),
            amr: Json(session.amr.clone()),
            user_agent: session.user_agent.clone(),
            ip: session.ip.clone(),
            created_at: session.created_at,
            refreshed_at: session.created_at,
            not_after: session.not_after,
            revoked_at: None,
            revoked_reason: None,
            authenticated_at: Some(session.created_at),
            authentication_method: Some(session.authentication_method.clone()),
        })
    }

    /// Ends a session and every refresh token of it. Returns whether it was live.
    pub async fn revoke_session(
        &mut self,
        id: Uuid,
        at: Timestamp,
        reason: &str,
    ) -> Result<bool, StoreError> {
        const SESSION: &str = "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 \
             WHERE id = $1 AND revoked_at IS NULL";
        const TOKENS: &str = "UPDATE refresh_tokens SET revoked_at = $2 WHERE session_id = $1 AND revoked_at IS NULL";
        Ok(with_tx!(self, conn => {
            let live = sqlx::query(SESSION).bind(id).bind(at).bind(reason).execute(&mut *conn).await?.rows_affected() == 1;
            sqlx::query(TOKENS).bind(id).bind(at).execute(&mut *conn).await?;
            live
        }))
    }

    /// Ends every live session of a user except `keep`. Returns how many ended.
    pub async fn revoke_user_sessions(
        &mut self,
        user_id: Uuid,
        keep: Option<Uuid>,
        at: Timestamp,
        reason: &str,
    ) -> Result<u64, StoreError> {
        // A nil UUID never names a session, so "keep nothing" needs no second query.
        let keep = keep.unwrap_or(Uuid::nil());
        const TOKENS: &str = REVOKE_USER_TOKENS;
        const SESSIONS: &str = REVOKE_USER_SESSIONS;
        Ok(with_tx!(self, conn => {
            sqlx::query(TOKENS).bind(user_id).bind(keep).bind(at).execute(&mut *conn).await?;
            let ended = sqlx::query(SESSIONS).bind(user_id).bind(keep).bind(at).bind(reason).execute(&mut *conn).await?.rows_affected();
            ended
        }))
    }
}
