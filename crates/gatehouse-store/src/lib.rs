//! gatehouse's storage: one concrete [`Store`] over SQLite or Postgres.
//!
//! Each query is written once with `$1` placeholders (sqlx's SQLite driver accepts them)
//! and branches per backend only where the SQL really differs. Migrations for both
//! backends live in `migrations/{sqlite,postgres}` with the same versions and names, and
//! are embedded in the binary.

mod admin;
mod audit;
mod database_url;
mod keys;
mod mail;
mod protection;
mod query;
mod sessions;
pub mod supabase;
#[cfg(feature = "testing")]
pub mod testing;
mod timestamp;
mod transaction;
mod users;

pub use admin::{
    user_sort_key, AuditQuery, ChangeOutcome, SortKey, UserChange, UserFilter, UserPageQuery,
    UserSort,
};
pub use audit::AuditRecord;
pub use database_url::{mask_database_url, Backend, DatabaseUrl, DatabaseUrlError};
pub use keys::SigningKeyRecord;
pub use mail::{FlowStateRecord, NewOneTimeToken, OneTimeTokenRecord, OutboxDepth, OutboxRecord};
pub use protection::{FailureRecord, Trust, TrustKind};
pub use sessions::{NewRefreshToken, NewSession, RefreshTokenRecord, SessionRecord};
pub use sqlx;
pub use sqlx::types::Json;
pub use timestamp::Timestamp;
pub use transaction::Transaction;
pub use users::{ExistingUser, NewUser, ProfileUpdate, UserRecord};

/// Runs `$body` with `$pool` bound to whichever pool the store holds: one SQL string,
/// compiled against both drivers.
#[macro_export]
#[doc(hidden)]
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::Store::Sqlite($pool, _) => $body,
            $crate::Store::Postgres($pool) => $body,
        }
    };
}

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// How the pool connects. Defaults suit one instance of a small app.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Upper bound on pooled connections.
    pub max_connections: u32,
    /// How long to wait for a connection (first connect included) before giving up.
    pub connect_timeout: Duration,
    /// How long SQLite waits on a locked database before answering `SQLITE_BUSY`.
    pub sqlite_busy_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            connect_timeout: Duration::from_secs(5),
            sqlite_busy_timeout: Duration::from_secs(5),
        }
    }
}

/// A failure of the storage layer. Constraint violations are named so that callers can
/// map them to domain errors without parsing messages.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or opened.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL with any password masked.
        url: String,
        #[source]
        source: sqlx::Error,
    },
    /// Applying the embedded migrations failed.
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A unique or check constraint rejected a write.
    #[error("constraint {constraint} violated")]
    Constraint {
        /// The constraint (or unique index) name from the migration.
        constraint: String,
    },
    /// Any other database error.
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            if let Some(constraint) = db.constraint().or_else(|| sqlite_constraint(db.message())) {
                return Self::Constraint {
                    constraint: constraint.to_owned(),
                };
            }
        }
        Self::Database(err)
    }
}

/// SQLite names the violated constraint only in its message:
/// `UNIQUE constraint failed: index 'users_email_key'`, `CHECK constraint failed: users_role_check`.
fn sqlite_constraint(message: &str) -> Option<&str> {
    if let Some(rest) = message.split_once("index '").map(|(_, rest)| rest) {
        return rest.split('\'').next();
    }
    message
        .strip_prefix("CHECK constraint failed: ")
        .map(str::trim)
}

/// The one store. Cloning is cheap: both variants are reference-counted pools.
#[derive(Debug, Clone)]
pub enum Store {
    /// An embedded SQLite file, in WAL mode with foreign keys on, and the lock its write
    /// transactions take in this process (see [`Store::write_lock`]).
    Sqlite(SqlitePool, Arc<tokio::sync::Mutex<()>>),
    /// A pooled Postgres connection.
    Postgres(PgPool),
}

impl Store {
    /// Opens the database `url` names (creating a SQLite file on first use) and checks
    /// that it answers. Fails within about `connect_timeout` when it does not.
    pub async fn connect(url: &DatabaseUrl, opts: &ConnectOptions) -> Result<Self, StoreError> {
        let connect_err = |source| StoreError::Connect {
            url: url.masked(),
            source,
        };
        match url.backend() {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(url.expose())
                    .map_err(connect_err)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(opts.sqlite_busy_timeout)
                    .foreign_keys(true);
                // A file in this process does not go stale: skip sqlx's ping before every
                // acquire, a round trip to the connection's worker thread that doubled the
                // cost of each query.
                let pool = SqlitePoolOptions::new()
                    .test_before_acquire(false)
                    .max_connections(opts.max_connections)
                    .acquire_timeout(opts.connect_timeout)
                    .connect_with(options)
                    .await
                    .map_err(connect_err)?;
                Ok(Self::Sqlite(pool, Arc::default()))
            }
            Backend::Postgres => {
                let mut options = PgConnectOptions::from_str(url.expose())
                    .map_err(connect_err)?
                    .application_name("gatehouse");
                // Plan for data in memory, not on a spinning disk. Every query of ours is a
                // point lookup or a keyset range over an index made for it, but with the
                // default random_page_cost (4.0) a table of a few pages reads cheaper
                // sequentially — and Postgres caches that plan as the generic plan of each
                // connection's prepared statement, keeping it while the table grows (refresh
                // tokens: a row per refresh) until an autoanalyze, a minute or more later.
                // Measured: refresh at 0.9-1.8k/s with two sequential scans of
                // refresh_tokens per request, 3.7-4.4k/s at 1.1 (bench/RESULTS.md). A
                // `random_page_cost` in the URL's `options` is left as the operator set it.
                if !url.expose().contains("random_page_cost") {
                    options = options.options([("random_page_cost", "1.1")]);
                }
                // No ping before every acquire either: it is a round trip to the server per
                // query. A connection the server dropped fails its next query instead; the
                // pool then discards it, and idle connections are closed after 10 minutes
                // (sqlx's default idle timeout) before servers and proxies drop them.
                let pool = PgPoolOptions::new()
                    .test_before_acquire(false)
                    .max_connections(opts.max_connections)
                    .acquire_timeout(opts.connect_timeout)
                    .connect_with(options)
                    .await
                    .map_err(connect_err)?;
                Ok(Self::Postgres(pool))
            }
        }
    }

    /// On SQLite, waits for this process's turn to write and holds it until dropped; `None`
    /// on Postgres, whose rows lock on their own. SQLite has one writer at a time: without
    /// this queue, concurrent write transactions met `SQLITE_BUSY` and slept in SQLite's
    /// busy handler (1, 2, 5 … 100 ms), which left the CPU a third idle under a refresh
    /// load and put 130 ms on its p99. Queued here, they run back to back.
    pub async fn write_lock(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self {
            Self::Sqlite(_, writer) => Some(writer.lock().await),
            Self::Postgres(_) => None,
        }
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(..) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies every embedded migration not yet applied. Idempotent.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(pool, _) => SQLITE_MIGRATIONS.run(pool).await?,
            Self::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Versions and descriptions of the migrations embedded for this backend.
    pub fn embedded_migrations(backend: Backend) -> Vec<(i64, String)> {
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect()
    }

    /// Versions of the migrations applied to this database, in order.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        const SQL: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
        let versions = match self {
            Self::Sqlite(pool, _) => sqlx::query_scalar(SQL).fetch_all(pool).await?,
            Self::Postgres(pool) => sqlx::query_scalar(SQL).fetch_all(pool).await?,
        };
        Ok(versions)
    }

    /// One round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(pool, _) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Self::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Closes every pooled connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool, _) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_messages_yield_the_constraint_name() {
        assert_eq!(
            sqlite_constraint("UNIQUE constraint failed: index 'users_email_key'"),
            Some("users_email_key")
        );
        assert_eq!(
            sqlite_constraint("CHECK constraint failed: users_role_check"),
            Some("users_role_check")
        );
        assert_eq!(sqlite_constraint("FOREIGN KEY constraint failed"), None);
    }

    #[test]
    fn the_sqlite_and_postgres_migrations_stay_in_step() {
        let sqlite = Store::embedded_migrations(Backend::Sqlite);
        let postgres = Store::embedded_migrations(Backend::Postgres);
        assert!(!sqlite.is_empty());
        assert_eq!(
            sqlite, postgres,
            "migrations/sqlite and migrations/postgres differ"
        );
    }

    #[test]
    fn both_migration_folders_hold_the_same_file_names() {
        let names = |dir: &str| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dir);
            let mut names: Vec<String> = std::fs::read_dir(path)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names("sqlite"), names("postgres"));
    }
}
