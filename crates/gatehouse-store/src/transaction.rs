//! The unit of work: one database transaction per action, so that an action's writes and
//! its audit row commit together or not at all.
//!
//! [`Store::begin`] opens a [`Transaction`]; the store's write methods are methods of it,
//! and it ends by [`Transaction::commit`] (dropping it rolls back). On SQLite it holds this
//! process's write lock from `begin` to the end, and starts with `BEGIN IMMEDIATE`, so the
//! database's write lock is taken once, up front, and reads inside see a stable state.

use sqlx::postgres::Postgres;
use sqlx::sqlite::Sqlite;

use crate::{Store, StoreError};

/// An open transaction on either database. Dropping it without [`Transaction::commit`]
/// rolls it back (and on SQLite releases the write lock after the rollback is queued).
pub struct Transaction {
    pub(crate) inner: Inner,
}

// Field order matters: the transaction drops (queueing its rollback) before the lock does.
pub(crate) enum Inner {
    Sqlite(
        sqlx::Transaction<'static, Sqlite>,
        tokio::sync::OwnedMutexGuard<()>,
    ),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.inner {
            Inner::Sqlite(..) => "sqlite",
            Inner::Postgres(_) => "postgres",
        };
        f.debug_struct("Transaction")
            .field("backend", &backend)
            .finish()
    }
}

/// Runs `$body` with `$conn` bound to the transaction's connection (a `&mut
/// SqliteConnection` or `&mut PgConnection`): one SQL string, compiled against both drivers.
macro_rules! with_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match &mut $tx.inner {
            $crate::transaction::Inner::Sqlite(tx, _) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::transaction::Inner::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}

pub(crate) use with_tx;

impl Store {
    /// Opens a transaction. On SQLite this waits for this process's turn to write (see
    /// [`Store::write_lock`]) and takes the database's write lock at once.
    pub async fn begin(&self) -> Result<Transaction, StoreError> {
        let inner = match self {
            Store::Sqlite(pool, writer) => {
                let writing = writer.clone().lock_owned().await;
                let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                Inner::Sqlite(tx, writing)
            }
            Store::Postgres(pool) => Inner::Postgres(pool.begin().await?),
        };
        Ok(Transaction { inner })
    }
}

impl Transaction {
    /// Makes every write of this transaction durable, at once.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self.inner {
            Inner::Sqlite(tx, writing) => {
                tx.commit().await?;
                drop(writing);
            }
            Inner::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Discards every write of this transaction.
    pub async fn rollback(self) -> Result<(), StoreError> {
        match self.inner {
            Inner::Sqlite(tx, writing) => {
                tx.rollback().await?;
                drop(writing);
            }
            Inner::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }

    /// Whether this transaction runs on Postgres.
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self.inner, Inner::Postgres(_))
    }
}
