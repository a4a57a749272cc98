//! The rules of auth: passwords, tokens, sessions, users. No HTTP, no SQL.
//!
//! [`Gatehouse`] is the service the HTTP layer and the CLI call; it owns the
//! [`Store`](gatehouse_store::Store) and the [`Clock`](clock::Clock).

pub mod clock;
mod error;

pub use error::Error;
pub use gatehouse_store as store;

use std::sync::Arc;
use std::time::Duration;

use clock::Clock;
use gatehouse_store::Store;

/// The auth service: everything gatehouse decides, over one store and one clock.
#[derive(Clone)]
pub struct Gatehouse {
    store: Store,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Gatehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatehouse")
            .field("backend", &self.store.backend())
            .finish_non_exhaustive()
    }
}

impl Gatehouse {
    /// Builds the service over an open, migrated store.
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// The store, for operations outside the rules of auth (migrate, close).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The clock every decision reads.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// Whether the database answers within `timeout`.
    pub async fn check_ready(&self, timeout: Duration) -> Result<(), Error> {
        match tokio::time::timeout(timeout, self.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(Error::Unavailable(Box::new(err))),
            Err(_) => Err(Error::Unavailable("database did not answer in time".into())),
        }
    }
}
