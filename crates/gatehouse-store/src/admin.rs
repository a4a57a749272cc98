//! What the admin API reads and writes: keyset-paginated user lists, guarded changes that
//! never leave the deployment without an active admin, hard deletes, and the audit trail.

use uuid::Uuid;

use crate::query::{bind_args, like_contains, Arg, Sql};
use crate::transaction::with_tx;
use crate::users::SELECT_USER;
use crate::{
    with_pool, AuditRecord, Backend, Store, StoreError, Timestamp, Transaction, UserRecord,
};

/// Which users a list shows. Deleted users are never listed.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub role: Option<String>,
    pub is_active: Option<bool>,
    /// Case-insensitive substring of the email or the username.
    pub q: Option<String>,
    pub created_after: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
}

/// The order of a user list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSort {
    CreatedAt,
    Email,
}

/// Where the previous page ended: its last row's sort key and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    Time(Timestamp),
    Text(String),
}

/// One page of users.
#[derive(Debug, Clone)]
pub struct UserPageQuery {
    pub filter: UserFilter,
    pub sort: UserSort,
    pub descending: bool,
    pub after: Option<(SortKey, Uuid)>,
    pub limit: i64,
}

/// The sort key of a user under `sort`, for the cursor of the page it ends.
pub fn user_sort_key(user: &UserRecord, sort: UserSort) -> SortKey {
    match sort {
        UserSort::CreatedAt => SortKey::Time(user.created_at),
        UserSort::Email => SortKey::Text(
            user.email
                .as_deref()
                .map(str::to_lowercase)
                .unwrap_or_default(),
        ),
    }
}

/// A change an admin makes to a user. `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub role: Option<String>,
    pub password_hash: Option<String>,
    pub user_metadata: Option<serde_json::Value>,
    pub app_metadata: Option<serde_json::Value>,
    pub banned_until: Option<Option<Timestamp>>,
    pub is_active: Option<bool>,
    pub email: Option<String>,
    pub username: Option<Option<String>>,
    pub email_confirmed_at: Option<Option<Timestamp>>,
    pub deleted_at: Option<Timestamp>,
}

impl UserChange {
    /// `user` as it will read once this change is written at `at`: for recording what a
    /// change does in the same transaction that makes it.
    pub fn applied_to(&self, user: &UserRecord, at: Timestamp) -> UserRecord {
        let mut after = user.clone();
        after.updated_at = at;
        if let Some(role) = &self.role {
            after.role.clone_from(role);
        }
        if let Some(hash) = &self.password_hash {
            after.password_hash = Some(hash.clone());
        }
        if let Some(meta) = &self.user_metadata {
            after.user_metadata = sqlx::types::Json(meta.clone());
        }
        if let Some(meta) = &self.app_metadata {
            after.app_metadata = sqlx::types::Json(meta.clone());
        }
        if let Some(banned) = self.banned_until {
            after.banned_until = banned;
        }
        if let Some(active) = self.is_active {
            after.is_active = active;
        }
        if let Some(email) = &self.email {
            after.email = Some(email.clone());
        }
        if let Some(username) = &self.username {
            after.username.clone_from(username);
        }
        if let Some(confirmed) = self.email_confirmed_at {
            after.email_confirmed_at = confirmed;
        }
        if let Some(deleted) = self.deleted_at {
            after.deleted_at = Some(deleted);
        }
        after
    }
}

/// What came of a guarded change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum ChangeOutcome {
    Changed,
    NotFound,
    /// Refused: it would have left no active admin.
    LastAdmin,
}

/// Audit events to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<Uuid>,
    pub target: Option<Uuid>,
    pub action: Option<String>,
    pub after: Option<Timestamp>,
    pub before: Option<Timestamp>,
    pub cursor: Option<(Timestamp, Uuid)>,
    pub limit: i64,
}

/// "Another active admin exists", the guard of every change that could remove the last.
const ANOTHER_ADMIN: &str = "EXISTS (SELECT 1 FROM users o WHERE o.role = 'admin' AND o.is_active \
     AND o.deleted_at IS NULL AND o.id <> $1)";

fn filter_sql(sql: &mut Sql, filter: &UserFilter) {
    sql.push(" WHERE u.deleted_at IS NULL");
    if let Some(role) = &filter.role {
        let p = sql.arg(Arg::Text(role.clone()));
        sql.push(&format!(" AND u.role = {p}"));
    }
    if let Some(active) = filter.is_active {
        let p = sql.arg(Arg::Bool(active));
        sql.push(&format!(" AND u.is_active = {p}"));
    }
    if let Some(q) = &filter.q {
        let p = sql.arg(Arg::Text(like_contains(&q.to_lowercase())));
        sql.push(&format!(
            " AND (lower(u.email) LIKE {p} ESCAPE '\\' OR lower(u.username) LIKE {p} ESCAPE '\\')"
        ));
    }
    if let Some(after) = filter.created_after {
        let p = sql.arg(Arg::Time(after));
        sql.push(&format!(" AND u.created_at >= {p}"));
    }
    if let Some(before) = filter.created_before {
        let p = sql.arg(Arg::Time(before));
        sql.push(&format!(" AND u.created_at < {p}"));
    }
}

fn list_users_sql(query: &UserPageQuery) -> Sql {
    let mut sql = Sql::new(SELECT_USER);
    filter_sql(&mut sql, &query.filter);
    // The key expressions match the indexes users_created_at_id_idx and users_email_id_idx.
    let key = match query.sort {
        UserSort::CreatedAt => "u.created_at",
        UserSort::Email => "coalesce(lower(u.email), '')",
    };
    let (cmp, dir) = if query.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some((value, id)) = &query.after {
        let k = sql.arg(match value {
            SortKey::Time(t) => Arg::Time(*t),
            SortKey::Text(s) => Arg::Text(s.clone()),
        });
        let i = sql.arg(Arg::Id(*id));
        sql.push(&format!(" AND ({key}, u.id) {cmp} ({k}, {i})"));
    }
    let limit = sql.arg(Arg::Int(query.limit));
    sql.push(&format!(" ORDER BY {key} {dir}, u.id {dir} LIMIT {limit}"));
    sql
}

impl Store {
    /// One page of live users, in keyset order: pages never repeat or skip a row, however
    /// many are inserted meanwhile, and a deep page costs what the first does.
    pub async fn list_users(&self, query: &UserPageQuery) -> Result<Vec<UserRecord>, StoreError> {
        let sql = list_users_sql(query);
        Ok(
            with_pool!(self, pool => bind_args!(sqlx::query_as(&sql.text), &sql.args).fetch_all(pool).await?),
        )
    }

    /// The query plan of [`Store::list_users`], as the database explains it.
    pub async fn explain_list_users(&self, query: &UserPageQuery) -> Result<String, StoreError> {
        let sql = list_users_sql(query);
        Ok(match self {
            Store::Sqlite(pool, _) => {
                let text = format!("EXPLAIN QUERY PLAN {}", sql.text);
                let rows: Vec<(i64, i64, i64, String)> =
                    bind_args!(sqlx::query_as(&text), &sql.args)
                        .fetch_all(pool)
                        .await?;
                rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
            }
            Store::Postgres(pool) => {
                let text = format!("EXPLAIN {}", sql.text);
                let rows: Vec<(String,)> = bind_args!(sqlx::query_as(&text), &sql.args)
                    .fetch_all(pool)
                    .await?;
                rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n")
            }
        })
    }

    /// Live users, newest first, by page number (GoTrue's `page`/`per_page`).
    pub async fn list_users_by_offset(
        &self,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let sql = format!("{SELECT_USER} WHERE u.deleted_at IS NULL ORDER BY u.created_at DESC, u.id DESC LIMIT $1 OFFSET $2");
        Ok(
            with_pool!(self, pool => sqlx::query_as(&sql).bind(limit).bind(offset).fetch_all(pool).await?),
        )
    }

    /// How many live users match `filter`.
    pub async fn count_users(&self, filter: &UserFilter) -> Result<i64, StoreError> {
        let mut sql = Sql::new("SELECT count(*) FROM users u");
        filter_sql(&mut sql, filter);
        Ok(
            with_pool!(self, pool => bind_args!(sqlx::query_scalar(&sql.text), &sql.args).fetch_one(pool).await?),
        )
    }

    /// How many active admins there are.
    pub async fn count_active_admins(&self) -> Result<i64, StoreError> {
        const SQL: &str =
            "SELECT count(*) FROM users WHERE role = 'admin' AND is_active AND deleted_at IS NULL";
        Ok(with_pool!(self, pool => sqlx::query_scalar(SQL).fetch_one(pool).await?))
    }

    /// Audit events matching `query`, newest first.
    pub async fn list_audit_events(
        &self,
        query: &AuditQuery,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut sql = Sql::new(
            "SELECT id, created_at, action, actor_id, target_id, ip, user_agent, details FROM audit_log WHERE 1 = 1",
        );
        if let Some(actor) = query.actor {
            let p = sql.arg(Arg::Id(actor));
            sql.push(&format!(" AND actor_id = {p}"));
        }
        if let Some(target) = query.target {
            let p = sql.arg(Arg::Id(target));
            sql.push(&format!(" AND target_id = {p}"));
        }
        if let Some(action) = &query.action {
            let p = sql.arg(Arg::Text(action.clone()));
            sql.push(&format!(" AND action = {p}"));
        }
        if let Some(after) = query.after {
            let p = sql.arg(Arg::Time(after));
            sql.push(&format!(" AND created_at >= {p}"));
        }
        if let Some(before) = query.before {
            let p = sql.arg(Arg::Time(before));
            sql.push(&format!(" AND created_at < {p}"));
        }
        if let Some((at, id)) = query.cursor {
            let (t, i) = (sql.arg(Arg::Time(at)), sql.arg(Arg::Id(id)));
            sql.push(&format!(" AND (created_at, id) < ({t}, {i})"));
        }
        let limit = sql.arg(Arg::Int(query.limit));
        sql.push(&format!(" ORDER BY created_at DESC, id DESC LIMIT {limit}"));
        Ok(
            with_pool!(self, pool => bind_args!(sqlx::query_as(&sql.text), &sql.args).fetch_all(pool).await?),
        )
    }

    /// The backend, for callers that explain plans.
    pub fn is_postgres(&self) -> bool {
        self.backend() == Backend::Postgres
    }
}

impl Transaction {
    /// Applies `change` to the live user `id`. With `keep_an_admin`, the change happens only
    /// if another active admin remains, checked in the same statement; on Postgres,
    /// changes that could remove an admin are also serialized by an advisory lock (held
    /// until this transaction ends), so two admins demoting each other at once cannot both
    /// succeed. A refused change writes nothing.
    pub async fn change_user(
        &mut self,
        id: Uuid,
        change: &UserChange,
        keep_an_admin: bool,
        at: Timestamp,
    ) -> Result<ChangeOutcome, StoreError> {
        let mut sql = Sql::new("UPDATE users SET ");
        let _ = sql.arg(Arg::Id(id));
        let mut sets = vec![format!("updated_at = {}", sql.arg(Arg::Time(at)))];
        if let Some(role) = &change.role {
            sets.push(format!("role = {}", sql.arg(Arg::Text(role.clone()))));
        }
        if let Some(active) = change.is_active {
            sets.push(format!("is_active = {}", sql.arg(Arg::Bool(active))));
        }
        if let Some(hash) = &change.password_hash {
            sets.push(format!(
                "password_hash = {}",
                sql.arg(Arg::Text(hash.clone()))
            ));
        }
        if let Some(meta) = &change.user_metadata {
            sets.push(format!(
                "user_metadata = {}",
                sql.arg(Arg::Json(meta.clone()))
            ));
        }
        if let Some(meta) = &change.app_metadata {
            sets.push(format!(
                "app_metadata = {}",
                sql.arg(Arg::Json(meta.clone()))
            ));
        }
        if let Some(banned) = change.banned_until {
            sets.push(format!(
                "banned_until = {}",
                sql.arg(banned.map_or(Arg::NoTime, Arg::Time))
            ));
        }
        if let Some(email) = &change.email {
            sets.push(format!("email = {}", sql.arg(Arg::Text(email.clone()))));
        }
        if let Some(username) = &change.username {
            let arg = username.clone().map_or(Arg::NoText, Arg::Text);
            sets.push(format!("username = {}", sql.arg(arg)));
        }
        if let Some(confirmed) = change.email_confirmed_at {
            sets.push(format!(
                "email_confirmed_at = {}",
                sql.arg(confirmed.map_or(Arg::NoTime, Arg::Time))
            ));
        }
        if let Some(deleted) = change.deleted_at {
            sets.push(format!("deleted_at = {}", sql.arg(Arg::Time(deleted))));
        }
        sql.push(&sets.join(", "));
        sql.push(" WHERE id = $1 AND deleted_at IS NULL");
        if keep_an_admin {
            sql.push(&format!(" AND {ANOTHER_ADMIN}"));
        }
        self.guarded(&sql, id, keep_an_admin).await
    }

    /// Removes the user `id` and, by cascade, its profile, sessions and refresh tokens.
    pub async fn delete_user(
        &mut self,
        id: Uuid,
        keep_an_admin: bool,
    ) -> Result<ChangeOutcome, StoreError> {
        let mut sql = Sql::new("DELETE FROM users WHERE id = $1");
        let _ = sql.arg(Arg::Id(id));
        if keep_an_admin {
            sql.push(&format!(" AND {ANOTHER_ADMIN}"));
        }
        self.guarded(&sql, id, keep_an_admin).await
    }

    async fn guarded(
        &mut self,
        sql: &Sql,
        id: Uuid,
        keep_an_admin: bool,
    ) -> Result<ChangeOutcome, StoreError> {
        let postgres = self.is_postgres();
        let changed = with_tx!(self, conn => {
            if postgres && keep_an_admin {
                sqlx::query("SELECT pg_advisory_xact_lock(7261001)")
                    .execute(&mut *conn)
                    .await?;
            }
            bind_args!(sqlx::query(&sql.text), &sql.args)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if changed == 1 {
            return Ok(ChangeOutcome::Changed);
        }
        let live = self
            .get_user(id)
            .await?
            .is_some_and(|u| u.deleted_at.is_none());
        Ok(if live && keep_an_admin {
            ChangeOutcome::LastAdmin
        } else {
            ChangeOutcome::NotFound
        })
    }
}
