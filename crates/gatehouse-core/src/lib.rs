//! The rules of auth: passwords, tokens, sessions, users. No HTTP, no SQL.
//!
//! [`Gatehouse`] is the service the HTTP layer and the CLI call; it owns the
//! [`Store`](gatehouse_store::Store), the [`Clock`](clock::Clock), the signing keys and the
//! password hasher.

mod accounts;
pub mod admin;
pub mod audit;
pub mod clock;
pub mod crypto;
pub mod csrf;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod keys;
pub mod password;
mod protection;
pub mod ratelimit;
mod secrets;
mod sessions;
pub mod supabase;
pub mod tokens;
pub mod validate;

pub use accounts::{Identifier, ProfileChange, SignIn, SignUp};
pub use audit::RequestMeta;
pub use error::Error;
pub use gatehouse_store as store;
pub use protection::Protection;
pub use sessions::{Principal, SessionGrant};

use std::sync::Arc;
use std::time::Duration;

use clock::Clock;
use gatehouse_store::Store;
use secrecy::SecretString;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::csrf::Csrf;
use crate::keys::{JwtAlg, KeyConfig, KeyRing};
use crate::password::{HashLimits, Hasher, PasswordPolicy};
use crate::tokens::TokenService;

/// Everything the rules of auth are configured by.
#[derive(Clone)]
pub struct Settings {
    /// Base URL of the server; the token issuer is `<this>/auth/v1`.
    pub public_url: String,
    pub jwt_alg: JwtAlg,
    pub jwt_secret: Option<SecretString>,
    pub key_encryption_key: Option<SecretString>,
    pub access_token_ttl: Duration,
    /// Tolerance for clock skew when checking `exp` and `nbf`.
    pub jwt_leeway: Duration,
    /// How long a rotated-in key is published before it signs.
    pub key_publish_ahead: Duration,
    pub refresh_reuse_interval: Duration,
    pub session_idle_timeout: Duration,
    pub session_max_lifetime: Duration,
    /// How long after signing in a session may change its password or email without the
    /// current password.
    pub reauth_window: Duration,
    pub password_policy: PasswordPolicy,
    pub hash_limits: HashLimits,
    pub rate_limits: ratelimit::RateLimits,
    pub protection: protection::Protection,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("public_url", &self.public_url)
            .field("jwt_alg", &self.jwt_alg)
            .field("access_token_ttl", &self.access_token_ttl)
            .finish_non_exhaustive()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            public_url: "http://localhost:8080".to_owned(),
            jwt_alg: JwtAlg::Es256,
            jwt_secret: None,
            key_encryption_key: None,
            access_token_ttl: Duration::from_secs(30 * 60),
            jwt_leeway: Duration::from_secs(5),
            key_publish_ahead: Duration::from_secs(10 * 60),
            refresh_reuse_interval: Duration::from_secs(10),
            session_idle_timeout: Duration::from_secs(7 * 24 * 3600),
            session_max_lifetime: Duration::from_secs(30 * 24 * 3600),
            reauth_window: Duration::from_secs(10 * 60),
            password_policy: PasswordPolicy::default(),
            hash_limits: HashLimits::default(),
            rate_limits: ratelimit::RateLimits::default(),
            protection: protection::Protection::default(),
        }
    }
}

impl Settings {
    /// The `iss` of our tokens.
    pub fn issuer(&self) -> String {
        format!("{}/auth/v1", self.public_url.trim_end_matches('/'))
    }
}

struct Inner {
    settings: Settings,
    keys: KeyRing,
    tokens: TokenService,
    hasher: Hasher,
    csrf: Csrf,
    devices: protection::DeviceCookies,
    /// Keys the digests of typed identifiers in the audit trail.
    identifier_key: [u8; 32],
    api_keys: supabase::ApiKeys,
    limiter: ratelimit::Limiter,
}

/// The auth service: everything gatehouse decides, over one store and one clock.
#[derive(Clone)]
pub struct Gatehouse {
    store: Store,
    clock: Arc<dyn Clock>,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gatehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatehouse")
            .field("backend", &self.store.backend())
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
    /// generates) the signing keys, the CSRF key and the dummy password hash.
    pub async fn start(
        store: Store,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Result<Self, Error> {
        let now = clock.now();
        let keys = KeyRing::start(
            store.clone(),
            KeyConfig {
                alg: settings.jwt_alg,
                hs256_secret: settings.jwt_secret.clone(),
                key_encryption_key: settings.key_encryption_key.clone(),
                retire_grace: settings.access_token_ttl + settings.jwt_leeway,
                publish_ahead: settings.key_publish_ahead,
            },
            now,
        )
        .await?;
        let secrets = Arc::new(secrets::InstanceSecrets::new(
            store.clone(),
            settings.key_encryption_key.as_ref(),
        )?);
        let csrf_key = secrets.get("csrf", now).await?;
        let tokens = TokenService::new(settings.issuer(), settings.jwt_leeway);
        let hasher = Hasher::new(settings.hash_limits)?;
        let api_keys = supabase::ApiKeys::load(secrets, settings.issuer(), now).await?;
        let limiter = ratelimit::Limiter::new(settings.rate_limits.clone()).await?;
        Ok(Self {
            store,
            clock,
            inner: Arc::new(Inner {
                settings,
                keys,
                tokens,
                hasher,
                devices: protection::DeviceCookies::new(&csrf_key),
                identifier_key: crypto::hmac_sha256(&csrf_key, b"gatehouse audit identifiers v1"),
                csrf: Csrf::new(csrf_key),
                api_keys,
                limiter,
            }),
        })
    }

    /// The store, for operations outside the rules of auth (migrate, close).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The settings this service runs with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The signing keys.
    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    /// The current time by our clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Whether the database answers within `timeout`.
    pub async fn check_ready(&self, timeout: Duration) -> Result<(), Error> {
        match tokio::time::timeout(timeout, self.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(Error::Unavailable(Box::new(err))),
            Err(_) => Err(Error::Unavailable("database did not answer in time".into())),
        }
    }

    /// The public keys, as a JWKS document.
    pub async fn jwks(&self) -> Result<serde_json::Value, Error> {
        Ok(self.inner.keys.keys().await?.jwks(self.now()))
    }

    /// Takes one request from a rate-limit bucket; nothing to limit without a key (an
    /// operator at the CLI has no IP).
    pub(crate) async fn limit(
        &self,
        bucket: ratelimit::Bucket,
        key: Option<&str>,
    ) -> Result<(), Error> {
        match key {
            Some(key) => {
                let now_ms = i64::try_from(self.now().unix_timestamp_nanos() / 1_000_000)
                    .unwrap_or(i64::MAX);
                self.inner.limiter.check(bucket, key, now_ms).await
            }
            None => Ok(()),
        }
    }

    /// How many password verifications have run in this process (real and dummy alike):
    /// each sign-in attempt that reaches the password costs exactly one.
    pub fn password_verifications(&self) -> u64 {
        self.inner.hasher.verifications()
    }

    /// A fresh CSRF token.
    pub fn issue_csrf_token(&self) -> Result<String, Error> {
        self.inner.csrf.issue()
    }

    /// Checks a CSRF header against its cookie.
    pub fn check_csrf(&self, header: Option<&str>, cookie: Option<&str>) -> Result<(), Error> {
        self.inner.csrf.check(header, cookie)
    }
}
