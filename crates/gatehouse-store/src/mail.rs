//! Mail: one-time tokens (stored as digests), the outbox a sender drains, and PKCE flow
//! states.

use uuid::Uuid;

use crate::transaction::with_tx;
use crate::{with_pool, Store, StoreError, Timestamp, Transaction};

/// A one-time token to store: digests only.
#[derive(Debug, Clone)]
pub struct NewOneTimeToken {
    pub id: Uuid,
    pub user_id: Uuid,
    /// `signup`, `magiclink`, `recovery`, `invite`, `email_change_current`,
    /// `email_change_new`, `reauthentication` or `unlock`.
    pub purpose: &'static str,
    /// The address the token is mailed to.
    pub email: String,
    /// For an email change: the address being changed to.
    pub new_email: Option<String>,
    pub code_hash: [u8; 32],
    pub link_hash: [u8; 32],
    pub flow_state_id: Option<Uuid>,
    pub redirect_to: Option<String>,
    /// A sign-up confirmation's password hash, set on the account when redeemed.
    pub password_hash: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A stored one-time token.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OneTimeTokenRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub purpose: String,
    pub email: String,
    pub new_email: Option<String>,
    pub code_hash: Vec<u8>,
    pub attempts: i32,
    pub flow_state_id: Option<Uuid>,
    pub redirect_to: Option<String>,
    pub password_hash: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub consumed_at: Option<Timestamp>,
    /// Set when it was redeemed (not merely voided).
    pub redeemed_at: Option<Timestamp>,
}

const TOKEN_COLUMNS: &str = "id, user_id, purpose, email, new_email, code_hash, attempts, \
    flow_state_id, redirect_to, password_hash, created_at, expires_at, consumed_at, redeemed_at";

/// A message claimed from the outbox.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRecord {
    pub id: Uuid,
    pub kind: String,
    pub sealed: Vec<u8>,
    /// Attempts before this one.
    pub attempts: i32,
    pub created_at: Timestamp,
}

/// How many messages wait in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxDepth {
    /// Waiting for a first or another attempt.
    pub pending: i64,
    /// Given up on after the last attempt.
    pub failed: i64,
}

/// A PKCE flow state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FlowStateRecord {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub code_challenge: String,
    pub code_challenge_method: String,
    pub authentication_method: String,
    pub created_at: Timestamp,
    pub auth_code_issued_at: Option<Timestamp>,
}

const FLOW_COLUMNS: &str = "id, user_id, code_challenge, code_challenge_method, \
    authentication_method, created_at, auth_code_issued_at";

impl Transaction {
    /// Stores a one-time token and voids every unused older one of the same user and
    /// purpose (only the latest message works).
    pub async fn insert_one_time_token(&mut self, t: &NewOneTimeToken) -> Result<(), StoreError> {
        const VOID: &str = "UPDATE one_time_tokens SET consumed_at = $3 \
             WHERE user_id = $1 AND purpose = $2 AND consumed_at IS NULL";
        const INSERT: &str =
            "INSERT INTO one_time_tokens (id, user_id, purpose, email, new_email, \
             code_hash, link_hash, flow_state_id, redirect_to, password_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
        with_tx!(self, conn => {
            sqlx::query(VOID).bind(t.user_id).bind(t.purpose).bind(t.created_at).execute(&mut *conn).await?;
            sqlx::query(INSERT)
                .bind(t.id).bind(t.user_id).bind(t.purpose).bind(&t.email).bind(&t.new_email)
                .bind(&t.code_hash[..]).bind(&t.link_hash[..]).bind(t.flow_state_id)
                .bind(&t.redirect_to).bind(&t.password_hash).bind(t.created_at).bind(t.expires_at)
                .execute(&mut *conn).await?;
        });
        Ok(())
    }

    /// Voids every unused token of `user` for these purposes (a password reset voids the
    /// other recovery links, a deleted address its confirmations).
    pub async fn void_one_time_tokens(
        &mut self,
        user: Uuid,
        purposes: &[&str],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE one_time_tokens SET consumed_at = $3 \
             WHERE user_id = $1 AND purpose = $2 AND consumed_at IS NULL";
        for purpose in purposes {
            with_tx!(self, conn => sqlx::query(SQL).bind(user).bind(*purpose).bind(at).execute(&mut *conn).await?.rows_affected());
        }
        Ok(())
    }

    /// Redeems a token: true for the one caller that finds it unused and unexpired.
    pub async fn consume_one_time_token(
        &mut self,
        id: Uuid,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE one_time_tokens SET consumed_at = $2, redeemed_at = $2 \
             WHERE id = $1 AND consumed_at IS NULL AND expires_at > $2";
        let n = with_tx!(self, conn => sqlx::query(SQL).bind(id).bind(at).execute(&mut *conn).await?.rows_affected());
        Ok(n == 1)
    }

    /// Counts a wrong code against a token; at `max` wrong codes it is void. Returns the
    /// count.
    pub async fn count_wrong_code(
        &mut self,
        id: Uuid,
        max: i32,
        at: Timestamp,
    ) -> Result<i32, StoreError> {
        const SQL: &str = "UPDATE one_time_tokens SET attempts = attempts + 1, \
             consumed_at = CASE WHEN attempts + 1 >= $2 THEN $3 ELSE consumed_at END \
             WHERE id = $1 RETURNING attempts";
        let n: Option<i32> = with_tx!(self, conn => sqlx::query_scalar(SQL).bind(id).bind(max).bind(at).fetch_optional(&mut *conn).await?);
        Ok(n.unwrap_or(max))
    }

    /// Sets (or, with `None`, removes) a user's password hash: a confirmation redeemed
    /// decides which password an unconfirmed account keeps.
    pub async fn set_password_hash(
        &mut self,
        user: Uuid,
        hash: Option<&str>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE users SET password_hash = $2 WHERE id = $1";
        with_tx!(self, conn => sqlx::query(SQL).bind(user).bind(hash).execute(&mut *conn).await?.rows_affected());
        Ok(())
    }

    /// Locks a user's row until the end of the transaction (Postgres; SQLite's
    /// transactions already write one at a time), for read-then-write decisions.
    pub async fn lock_user(&mut self, user: Uuid) -> Result<(), StoreError> {
        if let crate::transaction::Inner::Postgres(tx) = &mut self.inner {
            sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
                .bind(user)
                .fetch_optional(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Queues a sealed message for delivery from `at`.
    pub async fn enqueue_mail(
        &mut self,
        id: Uuid,
        kind: &str,
        sealed: &[u8],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        const SQL: &str =
            "INSERT INTO mail_outbox (id, kind, sealed, created_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $4)";
        with_tx!(self, conn => sqlx::query(SQL).bind(id).bind(kind).bind(sealed).bind(at).execute(&mut *conn).await?.rows_affected());
        Ok(())
    }

    /// Starts a PKCE flow.
    pub async fn insert_flow_state(&mut self, f: &FlowStateRecord) -> Result<(), StoreError> {
        const SQL: &str =
            "INSERT INTO flow_states (id, user_id, code_challenge, code_challenge_method, \
             authentication_method, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
        with_tx!(self, conn => sqlx::query(SQL).bind(f.id).bind(f.user_id).bind(&f.code_challenge)
            .bind(&f.code_challenge_method).bind(&f.authentication_method).bind(f.created_at)
            .execute(&mut *conn).await?.rows_affected());
        Ok(())
    }

    /// Records the auth code a verified link hands back for flow `id` (of `user`).
    pub async fn issue_flow_auth_code(
        &mut self,
        id: Uuid,
        user: Uuid,
        code_hash: &[u8; 32],
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        const SQL: &str =
            "UPDATE flow_states SET user_id = $2, auth_code_hash = $3, auth_code_issued_at = $4 \
             WHERE id = $1 AND auth_code_hash IS NULL";
        let n = with_tx!(self, conn => sqlx::query(SQL).bind(id).bind(user).bind(&code_hash[..]).bind(at).execute(&mut *conn).await?.rows_affected());
        Ok(n == 1)
    }

    /// Takes (deletes and returns) the flow whose auth code has this digest.
    pub async fn take_flow_state(
        &mut self,
        code_hash: &[u8; 32],
    ) -> Result<Option<FlowStateRecord>, StoreError> {
        let sql =
            format!("DELETE FROM flow_states WHERE auth_code_hash = $1 RETURNING {FLOW_COLUMNS}");
        Ok(
            with_tx!(self, conn => sqlx::query_as(&sql).bind(&code_hash[..]).fetch_optional(&mut *conn).await?),
        )
    }
}

impl Transaction {
    /// The latest token of `user` for `purpose` created at or after `since`, used or not
    /// (the other half of an email change).
    pub async fn latest_one_time_token(
        &mut self,
        user: Uuid,
        purpose: &str,
        since: Timestamp,
    ) -> Result<Option<OneTimeTokenRecord>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM one_time_tokens WHERE user_id = $1 AND purpose = $2 \
             AND created_at >= $3 ORDER BY created_at DESC LIMIT 1"
        );
        Ok(
            with_tx!(self, conn => sqlx::query_as(&sql).bind(user).bind(purpose).bind(since).fetch_optional(&mut *conn).await?),
        )
    }
}

impl Store {
    /// The unused token whose link token has this digest.
    pub async fn find_one_time_token_by_link(
        &self,
        link_hash: &[u8; 32],
    ) -> Result<Option<OneTimeTokenRecord>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM one_time_tokens WHERE link_hash = $1 AND consumed_at IS NULL"
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as(&sql).bind(&link_hash[..]).fetch_optional(pool).await?),
        )
    }

    /// The latest unused token mailed to `email` for each of `purposes`, newest first.
    pub async fn find_one_time_tokens_by_email(
        &self,
        email: &str,
        purposes: &[&str],
    ) -> Result<Vec<OneTimeTokenRecord>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM one_time_tokens WHERE lower(email) = lower($1) \
             AND purpose = $2 AND consumed_at IS NULL ORDER BY created_at DESC LIMIT 1"
        );
        let mut found = Vec::new();
        for purpose in purposes {
            let token: Option<OneTimeTokenRecord> = with_pool!(self, pool => sqlx::query_as(&sql).bind(email).bind(*purpose).fetch_optional(pool).await?);
            found.extend(token);
        }
        found.sort_by_key(|t| std::cmp::Reverse(t.created_at));
        Ok(found)
    }

    /// The latest unused token mailed to `email` for one of `purposes`.
    pub async fn find_one_time_token_by_email(
        &self,
        email: &str,
        purposes: &[&str],
    ) -> Result<Option<OneTimeTokenRecord>, StoreError> {
        let mut best: Option<OneTimeTokenRecord> = None;
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM one_time_tokens WHERE lower(email) = lower($1) \
             AND purpose = $2 AND consumed_at IS NULL ORDER BY created_at DESC LIMIT 1"
        );
        for purpose in purposes {
            let found: Option<OneTimeTokenRecord> = with_pool!(self, pool => sqlx::query_as(&sql).bind(email).bind(*purpose).fetch_optional(pool).await?);
            if let Some(found) = found {
                if best
                    .as_ref()
                    .is_none_or(|b| found.created_at > b.created_at)
                {
                    best = Some(found);
                }
            }
        }
        Ok(best)
    }

    /// Wrong codes counted against `email`'s tokens of these purposes made since `since`:
    /// the guessing budget across tokens (a new mail gives five more tries, not forever).
    pub async fn wrong_codes_since(
        &self,
        email: &str,
        purposes: &[&str],
        since: Timestamp,
    ) -> Result<i64, StoreError> {
        const SQL: &str = "SELECT coalesce(sum(attempts), 0) FROM one_time_tokens \
             WHERE lower(email) = lower($1) AND purpose = $2 AND created_at >= $3";
        let mut total = 0;
        for purpose in purposes {
            let n: i64 = with_pool!(self, pool => sqlx::query_scalar(SQL).bind(email).bind(*purpose).bind(since).fetch_one(pool).await?);
            total += n;
        }
        Ok(total)
    }

    /// Forgets what mail left behind before `before`: used, voided or expired tokens,
    /// unfinished PKCE flows, and messages given up on. Returns the rows removed.
    pub async fn sweep_mail(&self, before: Timestamp) -> Result<u64, StoreError> {
        const SQL: [&str; 3] = [
            "DELETE FROM one_time_tokens WHERE (consumed_at IS NOT NULL OR expires_at < $1) AND created_at < $1",
            "DELETE FROM flow_states WHERE created_at < $1",
            "DELETE FROM mail_outbox WHERE failed_at IS NOT NULL AND failed_at < $1",
        ];
        let mut removed = 0;
        for sql in SQL {
            removed += with_pool!(self, pool => sqlx::query(sql).bind(before).execute(pool).await?.rows_affected());
        }
        Ok(removed)
    }

    /// Claims up to `limit` messages due at `now` for `lease`: a claimed message is not
    /// handed to another sender until `lease_until`, so a sender that dies mid-send has
    /// its messages picked up again after the lease.
    pub async fn claim_due_mail(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let mut tx = self.begin().await?;
        let skip_locked = match tx.inner {
            crate::transaction::Inner::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            crate::transaction::Inner::Sqlite(..) => "",
        };
        let sql = format!(
            "UPDATE mail_outbox SET claimed_until = $2 WHERE id IN (SELECT id FROM mail_outbox \
             WHERE failed_at IS NULL AND next_attempt_at <= $1 \
             AND (claimed_until IS NULL OR claimed_until <= $1) \
             ORDER BY next_attempt_at LIMIT $3{skip_locked}) \
             RETURNING id, kind, sealed, attempts, created_at"
        );
        let mut rows: Vec<OutboxRecord> = with_tx!(tx, conn => sqlx::query_as(&sql).bind(now).bind(lease_until).bind(limit).fetch_all(&mut *conn).await?);
        tx.commit().await?;
        rows.sort_by_key(|r| r.created_at);
        Ok(rows)
    }

    /// A message was accepted by the mail server: it leaves the outbox (and with it the
    /// code and link it carried).
    pub async fn mail_sent(&self, id: Uuid) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM mail_outbox WHERE id = $1";
        with_pool!(self, pool => sqlx::query(SQL).bind(id).execute(pool).await?.rows_affected());
        Ok(())
    }

    /// An attempt failed: retry at `retry_at`, or, with `None`, give up (`failed_at`).
    pub async fn mail_attempt_failed(
        &self,
        id: Uuid,
        error: &str,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        const RETRY: &str = "UPDATE mail_outbox SET attempts = attempts + 1, last_error = $2, \
             next_attempt_at = $3, claimed_until = NULL WHERE id = $1";
        const GIVE_UP: &str = "UPDATE mail_outbox SET attempts = attempts + 1, last_error = $2, \
             failed_at = $3, claimed_until = NULL WHERE id = $1";
        let error: String = error.chars().take(500).collect();
        match retry_at {
            Some(at) => {
                with_pool!(self, pool => sqlx::query(RETRY).bind(id).bind(&error).bind(at).execute(pool).await?.rows_affected())
            }
            None => {
                with_pool!(self, pool => sqlx::query(GIVE_UP).bind(id).bind(&error).bind(now).execute(pool).await?.rows_affected())
            }
        };
        Ok(())
    }

    /// The outbox's depth.
    pub async fn mail_outbox_depth(&self) -> Result<OutboxDepth, StoreError> {
        const SQL: &str = "SELECT \
             coalesce(sum(CASE WHEN failed_at IS NULL THEN 1 ELSE 0 END), 0), \
             coalesce(sum(CASE WHEN failed_at IS NULL THEN 0 ELSE 1 END), 0) FROM mail_outbox";
        let (pending, failed): (i64, i64) =
            with_pool!(self, pool => sqlx::query_as(SQL).fetch_one(pool).await?);
        Ok(OutboxDepth { pending, failed })
    }

    /// The flow state with this id.
    pub async fn get_flow_state(&self, id: Uuid) -> Result<Option<FlowStateRecord>, StoreError> {
        let sql = format!("SELECT {FLOW_COLUMNS} FROM flow_states WHERE id = $1");
        Ok(with_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }
}
