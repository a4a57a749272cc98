//! Failed sign-ins, for the progressive delay, the per-source lock and the hard stop.

use uuid::Uuid;

use crate::transaction::with_tx;
use crate::{with_pool, Store, StoreError, Timestamp, Transaction};

/// Failures of one identifier from one source.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FailureRecord {
    pub identifier: String,
    pub source: String,
    pub failures: i32,
    pub last_failure_at: Timestamp,
    pub locked_until: Option<Timestamp>,
}

impl Store {
    /// The failures of `identifier` from `source`, if any.
    pub async fn get_sign_in_failures(
        &self,
        identifier: &str,
        source: &str,
    ) -> Result<Option<FailureRecord>, StoreError> {
        const SQL: &str = "SELECT identifier, source, failures, last_failure_at, locked_until FROM sign_in_failures \
             WHERE identifier = $1 AND source = $2";
        Ok(
            with_pool!(self, pool => sqlx::query_as(SQL).bind(identifier).bind(source).fetch_optional(pool).await?),
        )
    }
}

/// What vouches for a sign-in: a browser's device cookie, or a source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustKind {
    Device,
    Source,
}

impl TrustKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Device => "device",
            Self::Source => "source",
        }
    }
}

/// A device or source that vouched for a successful sign-in of `user`.
#[derive(Debug, Clone, Copy)]
pub struct Trust<'a> {
    pub user: Uuid,
    pub kind: TrustKind,
    pub key: &'a str,
    /// The device cookie this one replaces (rotation).
    pub replaces: Option<&'a str>,
}

impl Store {
    /// Whether `key` of `kind` vouched for a sign-in of `user` at or after `since`.
    pub async fn is_trusted(
        &self,
        user: Uuid,
        kind: TrustKind,
        key: &str,
        since: Timestamp,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT count(*) FROM sign_in_trust \
             WHERE user_id = $1 AND kind = $2 AND key = $3 AND last_used_at >= $4";
        let n: i64 = with_pool!(self, pool => sqlx::query_scalar(SQL).bind(user).bind(kind.as_str()).bind(key).bind(since).fetch_one(pool).await?);
        Ok(n > 0)
    }
}

impl Transaction {
    /// Counts one more failure; from the `lock_after`th on, locks the pair until `lock_until`.
    pub async fn record_sign_in_failure(
        &mut self,
        identifier: &str,
        source: &str,
        at: Timestamp,
        lock_after: i32,
        lock_until: Timestamp,
    ) -> Result<FailureRecord, StoreError> {
        const SQL: &str = "INSERT INTO sign_in_failures (identifier, source, failures, last_failure_at, locked_until) \
             VALUES ($1, $2, 1, $3, NULL) \
             ON CONFLICT (identifier, source) DO UPDATE SET failures = sign_in_failures.failures + 1, \
             last_failure_at = excluded.last_failure_at, \
             locked_until = CASE WHEN sign_in_failures.failures + 1 >= $4 THEN $5 ELSE sign_in_failures.locked_until END \
             RETURNING identifier, source, failures, last_failure_at, locked_until";
        Ok(with_tx!(self, conn => {
            sqlx::query_as(SQL).bind(identifier).bind(source).bind(at).bind(lock_after).bind(lock_until).fetch_one(&mut *conn).await?
        }))
    }

    /// Forgets the failures of `identifier` from `source` (after a success).
    pub async fn clear_sign_in_failures(
        &mut self,
        identifier: &str,
        source: &str,
    ) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM sign_in_failures WHERE identifier = $1 AND source = $2";
        with_tx!(self, conn => sqlx::query(SQL).bind(identifier).bind(source).execute(&mut *conn).await?.rows_affected());
        Ok(())
    }

    /// Forgets every failure of these identifiers (an admin unlock).
    pub async fn clear_all_sign_in_failures(
        &mut self,
        identifiers: &[String],
    ) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM sign_in_failures WHERE identifier = $1";
        for identifier in identifiers {
            with_tx!(self, conn => sqlx::query(SQL).bind(identifier).execute(&mut *conn).await?.rows_affected());
        }
        Ok(())
    }

    /// One more consecutive failure of a user; at `cap`, the account locks. Returns the
    /// count and whether this failure locked it.
    pub async fn count_user_failure(
        &mut self,
        id: Uuid,
        at: Timestamp,
        cap: i32,
    ) -> Result<(i32, bool), StoreError> {
        const SQL: &str = "UPDATE users SET failed_sign_ins = failed_sign_ins + 1, \
             locked_at = CASE WHEN failed_sign_ins + 1 >= $3 AND locked_at IS NULL THEN $2 ELSE locked_at END \
             WHERE id = $1 RETURNING failed_sign_ins, locked_at";
        let (count, locked_at): (i32, Option<Timestamp>) = with_tx!(self, conn => sqlx::query_as(SQL).bind(id).bind(at).bind(cap).fetch_one(&mut *conn).await?);
        Ok((count, locked_at == Some(at)))
    }

    /// Resets the consecutive failures of a user (a success) and, with `unlock`, the lock.
    pub async fn reset_user_failures(&mut self, id: Uuid, unlock: bool) -> Result<(), StoreError> {
        let sql = if unlock {
            "UPDATE users SET failed_sign_ins = 0, locked_at = NULL WHERE id = $1"
        } else {
            "UPDATE users SET failed_sign_ins = 0 WHERE id = $1 AND failed_sign_ins <> 0"
        };
        with_tx!(self, conn => sqlx::query(sql).bind(id).execute(&mut *conn).await?.rows_affected());
        Ok(())
    }

    /// Records a successful sign-in of `user` vouched for by `key` (a new device replacing
    /// `replaces`, or a source seen again), and forgets what of that kind is older than
    /// `forget_before` or beyond the `keep` most recent: a bounded list per user.
    pub async fn trust(
        &mut self,
        trust: &Trust<'_>,
        at: Timestamp,
        forget_before: Timestamp,
        keep: i64,
    ) -> Result<(), StoreError> {
        let Trust {
            user,
            kind,
            key,
            replaces,
        } = *trust;
        const DELETE_ONE: &str =
            "DELETE FROM sign_in_trust WHERE user_id = $1 AND kind = $2 AND key = $3";
        const UPSERT: &str =
            "INSERT INTO sign_in_trust (user_id, kind, key, created_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (user_id, kind, key) DO UPDATE SET last_used_at = excluded.last_used_at";
        const PRUNE: &str = "DELETE FROM sign_in_trust WHERE user_id = $1 AND kind = $2 AND \
             (last_used_at < $3 OR key NOT IN (SELECT key FROM sign_in_trust \
              WHERE user_id = $1 AND kind = $2 ORDER BY last_used_at DESC, key LIMIT $4))";
        with_tx!(self, conn => {
            if let Some(old) = replaces {
                sqlx::query(DELETE_ONE).bind(user).bind(kind.as_str()).bind(old).execute(&mut *conn).await?;
            }
            sqlx::query(UPSERT).bind(user).bind(kind.as_str()).bind(key).bind(at).execute(&mut *conn).await?;
            sqlx::query(PRUNE).bind(user).bind(kind.as_str()).bind(forget_before).bind(keep).execute(&mut *conn).await?;
        });
        Ok(())
    }

    /// Forgets every device and source that vouched for `user` (a new password).
    pub async fn forget_trust(&mut self, user: Uuid) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM sign_in_trust WHERE user_id = $1";
        with_tx!(self, conn => sqlx::query(SQL).bind(user).execute(&mut *conn).await?.rows_affected());
        Ok(())
    }
}
