//! Reading a Supabase project's users out of its own database: `auth.users`, with the
//! providers of each user's `auth.identities`. Read-only: one `READ ONLY` transaction,
//! one snapshot, nothing written. What is imported, and why not, is decided in
//! gatehouse-core; this module only reads the rows as they are.

use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::types::Json;
use sqlx::{ConnectOptions, Connection, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Backend, DatabaseUrl};

/// One row of `auth.users`, with the providers of its identities. Its `Debug` leaves out
/// the password hash and the email.
#[derive(Clone, Default)]
pub struct SupabaseUserRow {
    pub id: Uuid,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// bcrypt (`$2a$…`) when the user has a password; NULL or empty when not.
    pub encrypted_password: Option<String>,
    pub raw_app_meta_data: Option<Value>,
    pub raw_user_meta_data: Option<Value>,
    pub email_confirmed_at: Option<OffsetDateTime>,
    pub banned_until: Option<OffsetDateTime>,
    pub created_at: Option<OffsetDateTime>,
    pub deleted_at: Option<OffsetDateTime>,
    pub is_anonymous: Option<bool>,
    /// The distinct `auth.identities.provider` values of this user, sorted.
    pub providers: Vec<String>,
}

impl std::fmt::Debug for SupabaseUserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupabaseUserRow")
            .field("id", &self.id)
            .field("has_email", &self.email.is_some())
            .field("has_password", &self.encrypted_password.is_some())
            .field("deleted", &self.deleted_at.is_some())
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

/// Why the users could not be read. Never shows the URL's password.
#[derive(Debug, thiserror::Error)]
pub enum SupabaseReadError {
    #[error("{0}")]
    Url(String),
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL with its password masked.
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot connect to {url}: no answer within {} s", .timeout.as_secs())]
    ConnectTimeout { url: String, timeout: Duration },
    /// The database is not shaped like a Supabase project's.
    #[error("{0}")]
    Schema(String),
    #[error("reading auth.users failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// The columns of `auth.users` the import cannot do without.
const REQUIRED: [&str; 7] = [
    "id",
    "email",
    "encrypted_password",
    "raw_app_meta_data",
    "raw_user_meta_data",
    "email_confirmed_at",
    "created_at",
];

/// Every row of `auth.users` of the Supabase database at `url` (soft-deleted ones too:
/// the import counts them), oldest first, each with its identities' providers. Columns
/// that older versions of Supabase Auth lack (`deleted_at`, `is_anonymous`,
/// `banned_until`, `phone`) read as NULL.
pub async fn read_auth_users(url: &str) -> Result<Vec<SupabaseUserRow>, SupabaseReadError> {
    const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
    let url = DatabaseUrl::parse(url).map_err(|err| {
        SupabaseReadError::Url(format!("--from-postgres: {err} (a postgres:// URL)"))
    })?;
    if url.backend() != Backend::Postgres {
        return Err(SupabaseReadError::Url(
            "--from-postgres needs a postgres:// URL of the Supabase database".to_owned(),
        ));
    }
    let connect_err = |source| SupabaseReadError::Connect {
        url: url.masked(),
        source,
    };
    // Reading a whole auth.users takes seconds: no "slow statement" warning for it.
    let options = PgConnectOptions::from_str(url.expose())
        .map_err(connect_err)?
        .application_name("gatehouse-import")
        .disable_statement_logging();
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
        .await
        .map_err(|_| SupabaseReadError::ConnectTimeout {
            url: url.masked(),
            timeout: CONNECT_TIMEOUT,
        })?
        .map_err(connect_err)?;
    let rows = read_in_snapshot(&mut conn).await;
    let _ = conn.close().await;
    rows
}

async fn read_in_snapshot(
    conn: &mut PgConnection,
) -> Result<Vec<SupabaseUserRow>, SupabaseReadError> {
    let mut tx = conn.begin().await?;
    // The first statement of the transaction: it cannot write, and every query sees one
    // snapshot.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = 'auth' AND table_name IN ('users', 'identities')",
    )
    .fetch_all(&mut *tx)
    .await?;
    let has = |table: &str, column: &str| {
        columns
            .iter()
            .any(|(t, c)| t.as_str() == table && c.as_str() == column)
    };
    if !columns.iter().any(|(t, _)| t.as_str() == "users") {
        return Err(SupabaseReadError::Schema(
            "no auth.users table in that database (or no access to it): is it a Supabase \
             project's database, and the URL's user one that may read the auth schema?"
                .to_owned(),
        ));
    }
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|c| !has("users", c))
        .collect();
    if !missing.is_empty() {
        return Err(SupabaseReadError::Schema(format!(
            "auth.users has no column {}: not a Supabase Auth schema this import knows",
            missing.join(", ")
        )));
    }
    let optional = |column: &str, ty: &str| {
        if has("users", column) {
            format!("u.{column}::{ty}")
        } else {
            format!("NULL::{ty}")
        }
    };
    // A ban "forever" may be stored as infinity, which has no OffsetDateTime.
    let banned_until = if has("users", "banned_until") {
        "CASE WHEN u.banned_until = 'infinity' THEN '9999-12-31T00:00:00Z'::timestamptz \
         ELSE u.banned_until END"
            .to_owned()
    } else {
        "NULL::timestamptz".to_owned()
    };
    let providers = if has("identities", "user_id") && has("identities", "provider") {
        "ARRAY(SELECT DISTINCT i.provider::text FROM auth.identities i \
         WHERE i.user_id = u.id ORDER BY 1)"
    } else {
        "ARRAY[]::text[]"
    };
    let sql = format!(
        "SELECT u.id, u.email::text AS email, {phone} AS phone, \
         u.encrypted_password::text AS encrypted_password, \
         u.raw_app_meta_data::jsonb AS raw_app_meta_data, \
         u.raw_user_meta_data::jsonb AS raw_user_meta_data, \
         u.email_confirmed_at::timestamptz AS email_confirmed_at, \
         {banned_until} AS banned_until, u.created_at::timestamptz AS created_at, \
         {deleted_at} AS deleted_at, {is_anonymous} AS is_anonymous, \
         {providers} AS providers \
         FROM auth.users u ORDER BY u.created_at NULLS FIRST, u.id",
        phone = optional("phone", "text"),
        deleted_at = optional("deleted_at", "timestamptz"),
        is_anonymous = optional("is_anonymous", "boolean"),
    );
    let rows = sqlx::query(&sql).fetch_all(&mut *tx).await?;
    let users = rows
        .iter()
        .map(|row| {
            Ok(SupabaseUserRow {
                id: row.try_get("id")?,
                email: row.try_get("email")?,
                phone: row.try_get("phone")?,
                encrypted_password: row.try_get("encrypted_password")?,
                raw_app_meta_data: row
                    .try_get::<Option<Json<Value>>, _>("raw_app_meta_data")?
                    .map(|j| j.0),
                raw_user_meta_data: row
                    .try_get::<Option<Json<Value>>, _>("raw_user_meta_data")?
                    .map(|j| j.0),
                email_confirmed_at: row.try_get("email_confirmed_at")?,
                banned_until: row.try_get("banned_until")?,
                created_at: row.try_get("created_at")?,
                deleted_at: row.try_get("deleted_at")?,
                is_anonymous: row.try_get("is_anonymous")?,
                providers: row.try_get("providers")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    tx.rollback().await?;
    Ok(users)
}
