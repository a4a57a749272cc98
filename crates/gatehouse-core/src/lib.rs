//! The rules of auth: passwords, tokens, sessions, users. No HTTP, no SQL.
//!
//! [`Gatehouse`] holds the services the HTTP layer and the CLI call, one per domain, each
//! with its whole API in one module:
//!
//! - [`Accounts`](accounts::Accounts): sign-up, sign-in, one's own profile, password and email;
//! - [`Sessions`](sessions::Sessions): refresh, sign-out, authenticating an access token;
//! - [`Admin`](admin::Admin): user management, roles, locks and the audit trail;
//!   [`import`] moves users out of a Supabase project (`gatehouse user import`);
//! - [`Keys`](keys::Keys): signing keys, the JWKS and the API keys;
//! - [`Mail`](mail::Mail): the flows that mail a code and a link (confirmation, reset,
//!   magic link, email change, reauthentication, invitations, unlock) and redeeming them;
//!   its [`Courier`](mail::Courier) delivers the outbox.
//!
//! Where credentials live (the password hashes, the sessions and refresh tokens) is behind
//! one boundary, [`identity::IdentityProvider`]; the services reach them only through it.
//! Every action that writes opens one [`Transaction`](gatehouse_store::Transaction) and
//! commits its audit row with it.

pub mod accounts;
pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod clock;
pub mod crypto;
pub mod csrf;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
pub mod keys;
pub mod mail;
pub mod password;
mod protection;
pub mod ratelimit;
mod secrets;
pub mod sessions;
mod settings;
mod shared;
pub mod signing_keys;
pub mod tokens;
pub mod validate;

pub use accounts::{Accounts, Identifier, OwnChange, ProfileChange, SignIn, SignUp};
pub use admin::{import, Actor, Admin, NewAccount, UserPatch};
pub use audit::RequestMeta;
pub use error::Error;
pub use gatehouse_store as store;
pub use keys::Keys;
pub use protection::Protection;
pub use sessions::{Principal, SessionGrant, Sessions, SignOutScope};
pub use settings::{Settings, UpstreamSettings};

use std::sync::Arc;
use std::time::Duration;

use clock::Clock;
use gatehouse_store::Store;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::shared::Shared;

/// The auth service: everything gatehouse decides, over one store and one clock. Cloning
/// is cheap (every part is shared).
#[derive(Clone)]
pub struct Gatehouse {
    /// Sign-up, sign-in, one's own account.
    pub accounts: Accounts,
    /// Refresh, sign-out, authentication of access tokens.
    pub sessions: Sessions,
    /// User management and the audit trail.
    pub admin: Admin,
    /// Signing keys, the JWKS and the API keys.
    pub keys: Keys,
    /// The mail flows.
    pub mail: mail::Mail,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Gatehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatehouse")
            .field("backend", &self.shared.store.backend())
            .finish_non_exhaustive()
    }
}

/// A time-ordered id (UUIDv7) from our clock, so ids sort like creation times, and
/// strictly increasing within this process (a counter breaks ties within a millisecond),
/// so rows written in one instant keep the order they were written in.
pub(crate) fn new_id(now: OffsetDateTime) -> Uuid {
    static CONTEXT: std::sync::Mutex<uuid::ContextV7> =
        std::sync::Mutex::new(uuid::ContextV7::new());
    let nanos = now.unix_timestamp_nanos();
    let secs = u64::try_from(nanos.div_euclid(1_000_000_000)).unwrap_or_default();
    let subsec = u32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or_default();
    let context = CONTEXT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Uuid::new_v7(uuid::Timestamp::from_unix(&*context, secs, subsec))
}

impl Gatehouse {
    /// Starts the service over an open, migrated store: loads (or, on first start,
    /// generates) the signing keys, the CSRF key and the API-key secret.
    pub async fn start(
        store: Store,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Result<Self, Error> {
        let shared = Arc::new(Shared::start(store, clock, settings).await?);
        Ok(Self {
            accounts: Accounts::new(shared.clone()),
            sessions: Sessions::new(shared.clone()),
            admin: Admin::new(shared.clone()),
            keys: Keys::new(shared.clone()),
            mail: mail::Mail::new(shared.clone()),
            shared,
        })
    }

    /// The store, for operations outside the rules of auth (migrate, close).
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Whether credentials and sessions live in a Supabase project (Supabase mode).
    pub fn supabase_mode(&self) -> bool {
        self.shared.identity.is_upstream()
    }

    /// How many times the Supabase project's signing keys were fetched (Supabase mode).
    pub fn upstream_jwks_fetches(&self) -> u64 {
        match &self.shared.identity {
            identity::IdentityProvider::Upstream(upstream) => upstream.jwks_fetches(),
            identity::IdentityProvider::Local(_) => 0,
        }
    }

    /// The sender of the outbox over `transport`, or `None` when no mailer is configured.
    /// Run it ([`Courier::run`](mail::Courier::run)) beside the server.
    pub fn courier(&self, transport: gatehouse_mail::Transport) -> Option<mail::Courier> {
        let postbox = self.shared.postbox.clone()?;
        Some(mail::Courier::new(
            self.shared.store.clone(),
            self.shared.clock.clone(),
            postbox,
            transport,
        ))
    }

    /// The settings this service runs with.
    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    /// The current time by our clock.
    pub fn now(&self) -> OffsetDateTime {
        self.shared.now()
    }

    /// Whether the database answers within `timeout`.
    pub async fn check_ready(&self, timeout: Duration) -> Result<(), Error> {
        match tokio::time::timeout(timeout, self.shared.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(Error::Unavailable(Box::new(err))),
            Err(_) => Err(Error::Unavailable("database did not answer in time".into())),
        }
    }

    /// How many password verifications have run in this process (real and dummy alike):
    /// each sign-in attempt that reaches the password costs exactly one.
    pub fn password_verifications(&self) -> u64 {
        self.shared.identity.password_verifications()
    }

    /// A fresh CSRF token.
    pub fn issue_csrf_token(&self) -> Result<String, Error> {
        self.shared.csrf.issue()
    }

    /// Checks a CSRF header against its cookie.
    pub fn check_csrf(&self, header: Option<&str>, cookie: Option<&str>) -> Result<(), Error> {
        self.shared.csrf.check(header, cookie)
    }
}
