//! Users and their profiles.

use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use std::sync::LazyLock;

use crate::transaction::with_tx;
use crate::{
    with_pool, Backend, RefreshTokenRecord, SessionRecord, Store, StoreError, Timestamp,
    Transaction,
};

/// A user row joined with its profile.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRecord {
    pub id: Uuid,
    pub email: Option<String>,
    pub username: Option<String>,
    pub phone: Option<String>,
    pub password_hash: Option<String>,
    pub role: String,
    pub is_active: bool,
    pub is_anonymous: bool,
    pub app_metadata: Json<Value>,
    pub user_metadata: Json<Value>,
    pub email_confirmed_at: Option<Timestamp>,
    pub phone_confirmed_at: Option<Timestamp>,
    pub last_sign_in_at: Option<Timestamp>,
    pub banned_until: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    /// Consecutive failed sign-ins, from anywhere.
    pub failed_sign_ins: i32,
    /// Set at the hard stop; only an admin clears it.
    pub locked_at: Option<Timestamp>,
}

/// [`SELECT_USER`] with a session's columns, prefixed `s_`, then `join_and_where`, which
/// joins `sessions s`.
fn select_user_and_session(join_and_where: &str) -> String {
    let session_columns = "s.id AS s_id, s.aal AS s_aal, s.amr AS s_amr, \
        s.user_agent AS s_user_agent, s.ip AS s_ip, s.created_at AS s_created_at, \
        s.refreshed_at AS s_refreshed_at, s.not_after AS s_not_after, \
        s.revoked_at AS s_revoked_at, s.revoked_reason AS s_revoked_reason, \
        s.authenticated_at AS s_authenticated_at, \
        s.authentication_method AS s_authentication_method";
    let select = SELECT_USER.replacen(
        " FROM users u",
        &format!(", {session_columns} FROM users u"),
        1,
    );
    format!("{select} {join_and_where}")
}

/// A user and session row with a refresh token's columns, prefixed `t_`.
#[derive(sqlx::FromRow)]
struct TokenSessionUserRow {
    #[sqlx(flatten)]
    rest: UserAndSessionRow,
    t_id: Uuid,
    t_parent_id: Option<Uuid>,
    t_successor_sealed: Option<Vec<u8>>,
    t_created_at: Timestamp,
    t_rotated_at: Option<Timestamp>,
    t_revoked_at: Option<Timestamp>,
}

/// A user row with the session columns of a join, prefixed `s_`.
#[derive(sqlx::FromRow)]
struct UserAndSessionRow {
    #[sqlx(flatten)]
    user: UserRecord,
    s_id: Option<Uuid>,
    s_aal: Option<String>,
    s_amr: Option<Json<Value>>,
    s_user_agent: Option<String>,
    s_ip: Option<String>,
    s_created_at: Option<Timestamp>,
    s_refreshed_at: Option<Timestamp>,
    s_not_after: Option<Timestamp>,
    s_revoked_at: Option<Timestamp>,
    s_revoked_reason: Option<String>,
    s_authenticated_at: Option<Timestamp>,
    s_authentication_method: Option<String>,
}

impl UserAndSessionRow {
    fn split(self) -> (UserRecord, Option<SessionRecord>) {
        let session = match (
            self.s_id,
            self.s_aal,
            self.s_amr,
            self.s_created_at,
            self.s_refreshed_at,
            self.s_not_after,
        ) {
            (
                Some(id),
                Some(aal),
                Some(amr),
                Some(created_at),
                Some(refreshed_at),
                Some(not_after),
            ) => Some(SessionRecord {
                id,
                user_id: self.user.id,
                aal,
                amr,
                user_agent: self.s_user_agent,
                ip: self.s_ip,
                created_at,
                refreshed_at,
                not_after,
                revoked_at: self.s_revoked_at,
                revoked_reason: self.s_revoked_reason,
                authenticated_at: self.s_authenticated_at,
                authentication_method: self.s_authentication_method,
            }),
            _ => None,
        };
        (self.user, session)
    }
}

/// What sign-up writes: the user row and its profile row.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: Uuid,
    pub email: String,
    pub username: Option<String>,
    /// `None` for a user whose credentials live elsewhere (Supabase mode's mirror).
    pub password_hash: Option<String>,
    pub role: String,
    pub app_metadata: Value,
    pub user_metadata: Value,
    pub email_confirmed_at: Option<Timestamp>,
    /// Banned from the start until then.
    pub banned_until: Option<Timestamp>,
    pub display_name: Option<String>,
    pub created_at: Timestamp,
}

impl NewUser {
    /// The row this writes, as a read would return it.
    pub fn record(&self) -> UserRecord {
        UserRecord {
            id: self.id,
            email: Some(self.email.clone()),
            username: self.username.clone(),
            phone: None,
            password_hash: self.password_hash.clone(),
            role: self.role.clone(),
            is_active: true,
            is_anonymous: false,
            app_metadata: Json(self.app_metadata.clone()),
            user_metadata: Json(self.user_metadata.clone()),
            email_confirmed_at: self.email_confirmed_at,
            phone_confirmed_at: None,
            last_sign_in_at: None,
            banned_until: self.banned_until,
            deleted_at: None,
            created_at: self.created_at,
            updated_at: self.created_at,
            display_name: self.display_name.clone(),
            avatar_url: None,
            failed_sign_ins: 0,
            locked_at: None,
        }
    }
}

/// A profile and metadata update; every field is the new full value.
#[derive(Debug, Clone)]
pub struct ProfileUpdate {
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub user_metadata: Value,
    pub updated_at: Timestamp,
}

/// A user an import would collide with, by id or by email.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ExistingUser {
    pub id: Uuid,
    /// `lower(email)`, as the database folds it.
    pub email: Option<String>,
    pub deleted_at: Option<Timestamp>,
}

/// Two index lookups in one round trip, binding the ids then the emails: by primary key,
/// and by the live-email index (`lower(email) ... WHERE deleted_at IS NULL`). An `OR` of
/// the two would leave SQLite a choice of one index or a scan. SQLite gets `?`
/// placeholders: it looks each `$N` up among those before it, which made a lookup of
/// 10,000 users take over a second.
fn existing_users_sql(ids: usize, emails: usize, backend: Backend) -> String {
    const SELECT: &str = "SELECT id, lower(email) AS email, deleted_at FROM users WHERE ";
    let list = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| match backend {
                Backend::Sqlite => "?".to_owned(),
                Backend::Postgres => format!("${i}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if ids > 0 {
        parts.push(format!("{SELECT}id IN ({})", list(1, ids)));
    }
    if emails > 0 {
        parts.push(format!(
            "{SELECT}deleted_at IS NULL AND lower(email) IN ({})",
            list(ids + 1, emails)
        ));
    }
    parts.join(" UNION ALL ")
}

/// Runs [`existing_users_sql`] on `$conn` (a pool or a connection).
macro_rules! fetch_existing {
    ($conn:expr, $backend:expr, $ids:expr, $emails:expr) => {{
        let sql = existing_users_sql($ids.len(), $emails.len(), $backend);
        let mut query = sqlx::query_as::<_, ExistingUser>(&sql);
        for id in $ids {
            query = query.bind(*id);
        }
        for email in $emails {
            query = query.bind(email);
        }
        query.fetch_all($conn).await?
    }};
}

pub(crate) const SELECT_USER: &str =
    "SELECT u.id, u.email, u.username, u.phone, u.password_hash, u.role, \
     u.is_active, u.is_anonymous, u.app_metadata, u.user_metadata, u.email_confirmed_at, \
     u.phone_confirmed_at, u.last_sign_in_at, u.banned_until, u.deleted_at, u.created_at, \
     u.updated_at, p.display_name, p.avatar_url, u.failed_sign_ins, u.locked_at \
     FROM users u LEFT JOIN profiles p ON p.user_id = u.id";

impl Store {
    /// The refresh token with this hash, its session and the session's user, in one round
    /// trip: everything a refresh reads before it rotates.
    pub async fn find_refresh_token_with_session(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<(RefreshTokenRecord, SessionRecord, UserRecord)>, StoreError> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            let select = select_user_and_session(
                "JOIN sessions s ON s.user_id = u.id \
                 JOIN refresh_tokens t ON t.session_id = s.id WHERE t.token_hash = $1",
            );
            select.replacen(
                " FROM users u",
                ", t.id AS t_id, t.parent_id AS t_parent_id, \
                 t.successor_sealed AS t_successor_sealed, t.created_at AS t_created_at, \
                 t.rotated_at AS t_rotated_at, t.revoked_at AS t_revoked_at FROM users u",
                1,
            )
        });
        let row: Option<TokenSessionUserRow> = with_pool!(self, pool => {
            sqlx::query_as(&SQL).bind(&token_hash[..]).fetch_optional(pool).await?
        });
        Ok(row.and_then(|row| {
            let (user, session) = row.rest.split();
            let session = session?;
            let token = RefreshTokenRecord {
                id: row.t_id,
                session_id: session.id,
                parent_id: row.t_parent_id,
                successor_sealed: row.t_successor_sealed,
                created_at: row.t_created_at,
                rotated_at: row.t_rotated_at,
                revoked_at: row.t_revoked_at,
            };
            Some((token, session, user))
        }))
    }

    /// Writes many users and their profiles in one transaction, a few hundred rows per
    /// statement: for imports and for seeding benchmarks, where one transaction per user
    /// would dominate. Fails as a whole on the first constraint violation.
    pub async fn import_users(&self, users: &[NewUser]) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.insert_users(users).await?;
        tx.commit().await
    }

    /// [`Transaction::existing_users`] outside a transaction, for a dry run: reads only.
    pub async fn existing_users(
        &self,
        ids: &[Uuid],
        emails: &[String],
    ) -> Result<Vec<ExistingUser>, StoreError> {
        if ids.is_empty() && emails.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.backend();
        Ok(with_pool!(self, pool => fetch_existing!(pool, backend, ids, emails)))
    }

    /// Brings Postgres's planner statistics of `users` and `profiles` up to date (SQLite
    /// plans these lookups by their indexes without statistics). A bulk import calls it
    /// as the tables grow: planned for the empty table it found, the per-batch lookup of
    /// existing users filtered every row against its IN list, and 100,000 users took over
    /// two minutes instead of seconds.
    pub async fn analyze_users(&self) -> Result<(), StoreError> {
        if let Self::Postgres(pool) = self {
            sqlx::query("ANALYZE users, profiles").execute(pool).await?;
        }
        Ok(())
    }

    /// The user with this id, deleted or not.
    pub async fn get_user(&self, id: Uuid) -> Result<Option<UserRecord>, StoreError> {
        static SQL: LazyLock<String> = LazyLock::new(|| format!("{SELECT_USER} WHERE u.id = $1"));
        Ok(with_pool!(self, pool => sqlx::query_as(&SQL).bind(id).fetch_optional(pool).await?))
    }

    /// The user with this id and, if it is theirs, the session with that id: what every
    /// authenticated request checks, in one round trip. `None` when there is no such user.
    pub async fn get_user_and_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
    ) -> Result<Option<(UserRecord, Option<SessionRecord>)>, StoreError> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            select_user_and_session(
                "LEFT JOIN sessions s ON s.id = $2 AND s.user_id = u.id WHERE u.id = $1",
            )
        });
        let row: Option<UserAndSessionRow> = with_pool!(self, pool => {
            sqlx::query_as(&SQL).bind(user_id).bind(session_id).fetch_optional(pool).await?
        });
        Ok(row.map(UserAndSessionRow::split))
    }

    /// The live (not deleted) user with this email, compared case-insensitively.
    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        let sql =
            format!("{SELECT_USER} WHERE lower(u.email) = lower($1) AND u.deleted_at IS NULL");
        Ok(with_pool!(self, pool => sqlx::query_as(&sql).bind(email).fetch_optional(pool).await?))
    }

    /// The live user with this username, compared case-insensitively.
    pub async fn find_user_by_username(
        &self,
        username: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let sql =
            format!("{SELECT_USER} WHERE lower(u.username) = lower($1) AND u.deleted_at IS NULL");
        Ok(
            with_pool!(self, pool => sqlx::query_as(&sql).bind(username).fetch_optional(pool).await?),
        )
    }
}

impl Transaction {
    /// Writes many users and their profiles, a few hundred rows per statement, in this
    /// transaction: the bulk write of an import, committed with its audit row. Fails on the
    /// first constraint violation (the caller's transaction then rolls back as a whole).
    pub async fn insert_users(&mut self, users: &[NewUser]) -> Result<(), StoreError> {
        // 11 binds per user row stays far below both drivers' limits on parameters.
        const ROWS_PER_STATEMENT: usize = 500;
        with_tx!(self, conn => {
            for chunk in users.chunks(ROWS_PER_STATEMENT) {
                sqlx::QueryBuilder::new(
                    "INSERT INTO users (id, email, username, password_hash, role, app_metadata, \
                     user_metadata, email_confirmed_at, created_at, updated_at, banned_until) ",
                )
                .push_values(chunk, |mut row, user| {
                    row.push_bind(user.id)
                        .push_bind(&user.email)
                        .push_bind(&user.username)
                        .push_bind(&user.password_hash)
                        .push_bind(&user.role)
                        .push_bind(Json(&user.app_metadata))
                        .push_bind(Json(&user.user_metadata))
                        .push_bind(user.email_confirmed_at)
                        .push_bind(user.created_at)
                        .push_bind(user.created_at)
                        .push_bind(user.banned_until);
                })
                .build()
                .execute(&mut *conn)
                .await?;
                sqlx::QueryBuilder::new(
                    "INSERT INTO profiles (user_id, display_name, created_at, updated_at) ",
                )
                .push_values(chunk, |mut row, user| {
                    row.push_bind(user.id)
                        .push_bind(&user.display_name)
                        .push_bind(user.created_at)
                        .push_bind(user.created_at);
                })
                .build()
                .execute(&mut *conn)
                .await?;
            }
        });
        Ok(())
    }

    /// The users, deleted or not, that have one of `ids`, and the live users whose email
    /// is one of `emails` (lower-cased by the caller; compared with `lower(email)`, as the
    /// unique index does): what an import checks once per batch instead of once per user.
    pub async fn existing_users(
        &mut self,
        ids: &[Uuid],
        emails: &[String],
    ) -> Result<Vec<ExistingUser>, StoreError> {
        if ids.is_empty() && emails.is_empty() {
            return Ok(Vec::new());
        }
        let backend = if self.is_postgres() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        Ok(with_tx!(self, conn => fetch_existing!(&mut *conn, backend, ids, emails)))
    }

    /// Writes a user and its profile, and returns the user as written. A taken email or
    /// username is a [`StoreError::Constraint`] naming `users_email_key` or
    /// `users_username_key`.
    pub async fn create_user(&mut self, user: &NewUser) -> Result<UserRecord, StoreError> {
        const INSERT_USER: &str = "INSERT INTO users (id, email, username, password_hash, role, \
             app_metadata, user_metadata, email_confirmed_at, created_at, updated_at, \
             banned_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)";
        const INSERT_PROFILE: &str =
            "INSERT INTO profiles (user_id, display_name, created_at, updated_at) \
             VALUES ($1, $2, $3, $3)";
        with_tx!(self, conn => {
            sqlx::query(INSERT_USER)
                .bind(user.id)
                .bind(&user.email)
                .bind(&user.username)
                .bind(&user.password_hash)
                .bind(&user.role)
                .bind(Json(&user.app_metadata))
                .bind(Json(&user.user_metadata))
                .bind(user.email_confirmed_at)
                .bind(user.created_at)
                .bind(user.banned_until)
                .execute(&mut *conn)
                .await?;
            sqlx::query(INSERT_PROFILE)
                .bind(user.id)
                .bind(&user.display_name)
                .bind(user.created_at)
                .execute(&mut *conn)
                .await?;
        });
        Ok(user.record())
    }

    /// Writes or refreshes the local mirror of a user whose credentials live upstream
    /// (Supabase mode): the upstream's view of the email, role, metadata, confirmation and
    /// ban. What only gatehouse keeps (activity, the profile, locks, soft deletion) stays.
    /// Writes nothing when the row already reads like this. Never a password hash: one
    /// left from standalone days is cleared, so it cannot sign in again after a switch back.
    pub async fn upsert_mirror_user(&mut self, user: &NewUser) -> Result<(), StoreError> {
        const UPSERT_USER: &str = "INSERT INTO users (id, email, role, app_metadata, \
             user_metadata, email_confirmed_at, created_at, updated_at, banned_until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET email = excluded.email, role = excluded.role, \
             app_metadata = excluded.app_metadata, user_metadata = excluded.user_metadata, \
             email_confirmed_at = excluded.email_confirmed_at, \
             banned_until = excluded.banned_until, updated_at = excluded.updated_at, \
             password_hash = NULL \
             WHERE users.password_hash IS NOT NULL \
             OR users.email IS DISTINCT FROM excluded.email \
             OR users.role IS DISTINCT FROM excluded.role \
             OR users.app_metadata IS DISTINCT FROM excluded.app_metadata \
             OR users.user_metadata IS DISTINCT FROM excluded.user_metadata \
             OR users.email_confirmed_at IS DISTINCT FROM excluded.email_confirmed_at \
             OR users.banned_until IS DISTINCT FROM excluded.banned_until";
        const INSERT_PROFILE: &str =
            "INSERT INTO profiles (user_id, display_name, created_at, updated_at) \
             VALUES ($1, $2, $3, $3) ON CONFLICT (user_id) DO NOTHING";
        with_tx!(self, conn => {
            sqlx::query(UPSERT_USER)
                .bind(user.id)
                .bind(&user.email)
                .bind(&user.role)
                .bind(Json(&user.app_metadata))
                .bind(Json(&user.user_metadata))
                .bind(user.email_confirmed_at)
                .bind(user.created_at)
                .bind(user.banned_until)
                .execute(&mut *conn)
                .await?;
            sqlx::query(INSERT_PROFILE)
                .bind(user.id)
                .bind(&user.display_name)
                .bind(user.created_at)
                .execute(&mut *conn)
                .await?;
        });
        Ok(())
    }

    /// Replaces the password hash (a new password, or a re-hash to current parameters).
    pub async fn update_password_hash(
        &mut self,
        id: Uuid,
        hash: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1";
        with_tx!(self, conn => sqlx::query(SQL).bind(id).bind(hash).bind(at).execute(&mut *conn).await?.rows_affected());
        Ok(())
    }

    /// Notes a successful sign-in.
    pub async fn record_sign_in(&mut self, id: Uuid, at: Timestamp) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE users SET last_sign_in_at = $2 WHERE id = $1";
        with_tx!(self, conn => sqlx::query(SQL).bind(id).bind(at).execute(&mut *conn).await?.rows_affected());
        Ok(())
    }

    /// Writes a user's profile and metadata.
    pub async fn update_profile(
        &mut self,
        id: Uuid,
        update: &ProfileUpdate,
    ) -> Result<(), StoreError> {
        const PROFILE: &str =
            "UPDATE profiles SET display_name = $2, avatar_url = $3, updated_at = $4 \
             WHERE user_id = $1";
        const METADATA: &str = "UPDATE users SET user_metadata = $2, updated_at = $3 WHERE id = $1";
        with_tx!(self, conn => {
            sqlx::query(PROFILE)
                .bind(id)
                .bind(&update.display_name)
                .bind(&update.avatar_url)
                .bind(update.updated_at)
                .execute(&mut *conn)
                .await?;
            sqlx::query(METADATA)
                .bind(id)
                .bind(Json(&update.user_metadata))
                .bind(update.updated_at)
                .execute(&mut *conn)
                .await?;
        });
        Ok(())
    }

    /// The user with this id, as this transaction sees it.
    pub async fn get_user(&mut self, id: Uuid) -> Result<Option<UserRecord>, StoreError> {
        static SQL: LazyLock<String> = LazyLock::new(|| format!("{SELECT_USER} WHERE u.id = $1"));
        Ok(with_tx!(self, conn => sqlx::query_as(&SQL).bind(id).fetch_optional(&mut *conn).await?))
    }
}
