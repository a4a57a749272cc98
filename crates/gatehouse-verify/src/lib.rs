//! Verify Supabase and gatehouse access tokens in any Rust backend.
//!
//! A [`Verifier`] checks a token's signature against the issuer's published keys (the
//! JWKS at `<issuer>/.well-known/jwks.json`, fetched on first use and cached) or, for
//! legacy Supabase projects, a shared HS256 secret; then `iss`, `aud`, `exp` and `nbf`
//! against its own clock. What passes comes back as [`Claims`].
//!
//! ```no_run
//! # async fn run(token: &str) -> Result<(), gatehouse_verify::VerifyError> {
//! use gatehouse_verify::Verifier;
//!
//! let verifier = Verifier::builder("https://abcdefgh.supabase.co/auth/v1").build()?;
//! verifier.prefetch().await?; // optional: fail at start-up rather than on the first request
//! let claims = verifier.verify(token).await?;
//! println!("user {} with app role {:?}", claims.sub, claims.app_role());
//! # Ok(()) }
//! ```
//!
//! What is accepted:
//! - **Algorithms**: ES256 (EC P-256), RS256 (RSA ≥ 2048 bits) and EdDSA (Ed25519) with
//!   keys from the JWKS, and HS256 only when a secret was configured. `none` and every
//!   other algorithm is refused. Each JWK verifies only the algorithm of its key type (and
//!   its own `alg`, if it names one); `oct` keys and keys whose `use` is not `sig` are
//!   ignored; an HS256 token is checked against the configured secret only, never against
//!   anything from the JWKS.
//! - **Claims**: `iss` equal to the configured issuer, `aud` (a string or an array) naming
//!   one of the configured audiences (default `authenticated`), `exp` required and in the
//!   future, `nbf` and `iat` not in the future, all with a leeway (default 30 s).
//!
//! The JWKS cache: keys stay fresh for the TTL (default 10 min, less if the response's
//! `Cache-Control: max-age` says so). A stale set is refetched by the next token that needs
//! it, one request for all concurrent callers; if that fails, the stale keys go on
//! serving. A token naming an unknown `kid` (a key rotated in) triggers at most one refetch
//! per [`VerifierBuilder::min_refetch_interval`], however many such tokens arrive, so
//! forged kids cannot turn the verifier into a flood of requests to the issuer. Only when
//! keys were never loaded does [`Verifier::verify`] fail with
//! [`VerifyError::KeysUnavailable`] (answer 503, not 401: see
//! [`VerifyError::is_unavailable`]).
//!
//! With the `axum` feature (on by default), [`VerifiedClaims`] is an extractor for
//! handlers of any state from which a [`Verifier`] can be taken (`FromRef`).

mod claims;
#[cfg(feature = "axum")]
mod extract;
mod jwks;
mod token;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey};
use secrecy::{ExposeSecret, SecretSlice};

pub use claims::{Audience, Claims};
#[cfg(feature = "axum")]
pub use extract::{AuthRejection, VerifiedClaims};
pub use token::MAX_TOKEN_BYTES;

/// The audience of Supabase and gatehouse access tokens, accepted by default.
pub const DEFAULT_AUDIENCE: &str = "authenticated";
/// Default clock-skew tolerance for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default upper bound of how long fetched keys are fresh.
pub const DEFAULT_JWKS_TTL: Duration = Duration::from_secs(10 * 60);
/// Default shortest interval between two JWKS requests on unknown kids or failures.
pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Default time limit of one JWKS request.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Shortest HS256 secret accepted, in bytes.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// What the verifier takes the time from.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Why a token was refused, or the verifier could not decide. No message ever contains
/// the token, a secret or anything read from the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// `none`, an algorithm not on the allowlist, HS256 without a configured secret, or an
    /// algorithm other than the one of the key its `kid` names.
    #[error("the token's algorithm is not accepted")]
    UnsupportedAlgorithm,
    /// The `kid` names no published key (also after a refetch), or a token without `kid`
    /// has no key of its algorithm to be checked against.
    #[error("the token's signing key is not known")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    /// `nbf` or `iat` is in the future, beyond the leeway.
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is not meant for this audience")]
    WrongAudience,
    /// The JWKS was never loaded: the fetch failed, timed out or returned something that is
    /// not a JWKS. The text says why (it names the JWKS URL, never a token).
    #[error("the signing keys are unavailable: {0}")]
    KeysUnavailable(String),
    #[error("invalid verifier configuration: {0}")]
    Config(String),
}

impl VerifyError {
    /// True only for [`VerifyError::KeysUnavailable`]: the token may well be valid, so a
    /// server should answer 503 (try again) rather than 401.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::KeysUnavailable(_))
    }
}

/// Verifies access tokens of one issuer. Cheap to clone (an `Arc` inside); clones share
/// the JWKS cache.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    jwks_url: String,
    audiences: Vec<String>,
    hs256: Option<DecodingKey>,
    leeway_secs: i64,
    jwks_ttl: Duration,
    min_refetch_interval: Duration,
    http_timeout: Duration,
    client: reqwest::Client,
    clock: Clock,
    cache: RwLock<Cache>,
    /// Held by the one caller fetching the JWKS; the others wait on it, then use its result.
    refresh: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

struct Cache {
    /// `None` until a fetch first succeeds.
    keys: Option<Arc<jwks::KeySet>>,
    fresh_until: SystemTime,
    last_attempt: Option<SystemTime>,
    /// Counts fetch attempts, so a caller that waited for the lock knows one happened.
    attempts: u64,
    last_error: Option<String>,
}

enum Plan {
    Use(Arc<jwks::KeySet>),
    Unavailable(String),
    Fetch { seen: u64 },
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        let keys = inner.read_cache().keys.as_ref().map(|k| k.len());
        f.debug_struct("Verifier")
            .field("issuer", &inner.issuer)
            .field("jwks_url", &inner.jwks_url)
            .field("audiences", &inner.audiences)
            .field("hs256", &inner.hs256.as_ref().map(|_| "[configured]"))
            .field("leeway_secs", &inner.leeway_secs)
            .field("jwks_ttl", &inner.jwks_ttl)
            .field("min_refetch_interval", &inner.min_refetch_interval)
            .field("http_timeout", &inner.http_timeout)
            .field("keys_loaded", &keys)
            .field("jwks_fetches", &inner.fetches.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A builder for a verifier of tokens issued by `issuer`, e.g.
    /// `https://<ref>.supabase.co/auth/v1` or `<gatehouse public URL>/auth/v1`. A token's
    /// `iss` must equal it exactly.
    pub fn builder(issuer: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            jwks_url: None,
            audiences: None,
            hs256_secret: None,
            leeway: DEFAULT_LEEWAY,
            jwks_ttl: DEFAULT_JWKS_TTL,
            min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            client: None,
            clock: None,
        }
    }

    /// Verifies signature, alg, iss, aud, exp, nbf (with leeway). Fetches the JWKS lazily
    /// on the first asymmetric token.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let inner = &*self.inner;
        let jwt = token::Jwt::split(token)?;
        let header = jwt.header()?;
        let alg = token::accepted_alg(&header.alg)?;
        if alg == Algorithm::HS256 {
            // The configured secret only: never JWKS material, whatever the kid says.
            let secret = inner
                .hs256
                .as_ref()
                .ok_or(VerifyError::UnsupportedAlgorithm)?;
            jwt.check_signature(secret, alg)?;
        } else {
            let kid = header.kid.as_deref();
            let keys = inner.keys_for(kid, alg).await?;
            keys.check(&jwt, kid, alg)?;
        }
        let claims = jwt.claims()?;
        inner.check_claims(&claims)?;
        Ok(claims)
    }

    /// Loads the JWKS now (e.g. at start-up); Err if it cannot be fetched or parsed. If
    /// another caller is fetching at this moment, waits for that fetch and reports its
    /// outcome instead of making a second request.
    pub async fn prefetch(&self) -> Result<(), VerifyError> {
        let seen = self.inner.read_cache().attempts;
        self.inner
            .refresh(seen)
            .await
            .map_err(VerifyError::KeysUnavailable)
    }

    /// How many JWKS HTTP requests this verifier has made (for tests and metrics).
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// The issuer tokens must name.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Where the keys are fetched from.
    pub fn jwks_url(&self) -> &str {
        &self.inner.jwks_url
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Inner {
    fn now(&self) -> SystemTime {
        (self.clock)()
    }

    fn read_cache(&self) -> RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_cache(&self) -> RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn may_fetch(&self, cache: &Cache, now: SystemTime) -> bool {
        match cache.last_attempt {
            None => true,
            // A clock set back does not freeze refetching until it catches up.
            Some(last) if now < last => true,
            Some(last) => last
                .checked_add(self.min_refetch_interval)
                .is_none_or(|next| now >= next),
        }
    }

    fn plan(&self, kid: Option<&str>, alg: Algorithm) -> Plan {
        let now = self.now();
        let cache = self.read_cache();
        let wanted = match &cache.keys {
            Some(keys) if now < cache.fresh_until && keys.has_candidate(kid, alg) => {
                return Plan::Use(keys.clone());
            }
            // Stale, or fresh without the key this token names.
            Some(_) | None => self.may_fetch(&cache, now),
        };
        if wanted {
            return Plan::Fetch {
                seen: cache.attempts,
            };
        }
        match &cache.keys {
            Some(keys) => Plan::Use(keys.clone()),
            None => Plan::Unavailable(cache.last_error.clone().unwrap_or_default()),
        }
    }

    /// The key set to check a token with this `kid` and `alg` against, fetching first if
    /// the cache is empty, stale, or lacks that kid and the interval allows.
    async fn keys_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<jwks::KeySet>, VerifyError> {
        match self.plan(kid, alg) {
            Plan::Use(keys) => return Ok(keys),
            Plan::Unavailable(reason) => return Err(VerifyError::KeysUnavailable(reason)),
            Plan::Fetch { seen } => {
                // A failure is recorded in the cache; stale keys, if any, still serve.
                let _ = self.refresh(seen).await;
            }
        }
        let cache = self.read_cache();
        match &cache.keys {
            Some(keys) => Ok(keys.clone()),
            None => Err(VerifyError::KeysUnavailable(
                cache.last_error.clone().unwrap_or_default(),
            )),
        }
    }

    /// Fetches the JWKS unless another attempt was made since the caller looked
    /// (`seen`); the outcome of whichever attempt that was.
    async fn refresh(&self, seen: u64) -> Result<(), String> {
        let _flight = self.refresh.lock().await;
        {
            let cache = self.read_cache();
            if cache.attempts != seen {
                return cache.last_error.clone().map_or(Ok(()), Err);
            }
        }
        let result = self.fetch().await;
        let now = self.now();
        let mut cache = self.write_cache();
        cache.attempts += 1;
        cache.last_attempt = Some(now);
        match result {
            Ok((keys, fresh_for)) => {
                tracing::debug!(url = %self.jwks_url, keys = keys.len(), fresh_secs = fresh_for.as_secs(), "JWKS loaded");
                cache.keys = Some(Arc::new(keys));
                cache.fresh_until = now.checked_add(fresh_for).unwrap_or(now);
                cache.last_error = None;
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(
                    stale_keys_kept = cache.keys.is_some(),
                    "JWKS fetch failed: {reason}"
                );
                cache.last_error = Some(reason.clone());
                Err(reason)
            }
        }
    }

    fn timed_out(&self) -> String {
        format!(
            "GET {}: no complete answer within {:?}",
            self.jwks_url, self.http_timeout
        )
    }

    fn request_error(&self, err: reqwest::Error) -> String {
        if err.is_timeout() {
            self.timed_out()
        } else {
            // The URL leads the message already.
            format!("GET {}: {}", self.jwks_url, error_chain(&err.without_url()))
        }
    }

    async fn fetch(&self) -> Result<(jwks::KeySet, Duration), String> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(self.http_timeout, self.fetch_once()).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out()),
        }
    }

    async fn fetch_once(&self) -> Result<(jwks::KeySet, Duration), String> {
        let url = &self.jwks_url;
        let mut response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.http_timeout)
            .send()
            .await
            .map_err(|e| self.request_error(e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {url}: HTTP {status}"));
        }
        let fresh_for =
            jwks::freshness(response.headers(), self.jwks_ttl, self.min_refetch_interval);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.request_error(e))? {
            if body.len() + chunk.len() > jwks::MAX_JWKS_BYTES {
                return Err(format!(
                    "GET {url}: the JWKS is larger than {} bytes",
                    jwks::MAX_JWKS_BYTES
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let keys = jwks::parse(&body).map_err(|e| format!("GET {url}: {e}"))?;
        Ok((keys, fresh_for))
    }

    fn check_claims(&self, claims: &Claims) -> Result<(), VerifyError> {
        if claims.iss != self.issuer {
            return Err(VerifyError::WrongIssuer);
        }
        if !claims
            .aud
            .iter()
            .any(|aud| self.audiences.iter().any(|a| a == aud))
        {
            return Err(VerifyError::WrongAudience);
        }
        let now = unix_seconds(self.now());
        let leeway = self.leeway_secs;
        if now >= claims.exp.saturating_add(leeway) {
            return Err(VerifyError::Expired);
        }
        let early = |t: Option<i64>| t.is_some_and(|t| now.saturating_add(leeway) < t);
        if early(claims.nbf) || early(claims.iat) {
            return Err(VerifyError::NotYetValid);
        }
        Ok(())
    }
}

/// Configures a [`Verifier`]; [`VerifierBuilder::build`] checks the configuration.
pub struct VerifierBuilder {
    issuer: String,
    jwks_url: Option<String>,
    audiences: Option<Vec<String>>,
    hs256_secret: Option<SecretSlice<u8>>,
    leeway: Duration,
    jwks_ttl: Duration,
    min_refetch_interval: Duration,
    http_timeout: Duration,
    client: Option<reqwest::Client>,
    clock: Option<Clock>,
}

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("issuer", &self.issuer)
            .field("jwks_url", &self.jwks_url)
            .field("audiences", &self.audiences)
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("leeway", &self.leeway)
            .field("jwks_ttl", &self.jwks_ttl)
            .field("min_refetch_interval", &self.min_refetch_interval)
            .field("http_timeout", &self.http_timeout)
            .field("custom_client", &self.client.is_some())
            .field("custom_clock", &self.clock.is_some())
            .finish()
    }
}

fn http_url(what: &str, value: &str) -> Result<url::Url, VerifyError> {
    let url = url::Url::parse(value)
        .map_err(|e| VerifyError::Config(format!("the {what} {value:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(VerifyError::Config(format!(
            "the {what} {value:?} is not an http(s) URL"
        )));
    }
    Ok(url)
}

impl VerifierBuilder {
    /// Where the keys are; default `<issuer>/.well-known/jwks.json` (the issuer without a
    /// trailing `/`).
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// An accepted audience. The first call replaces the default (`authenticated`); each
    /// further call adds one. A token is accepted when its `aud` names any of them.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.get_or_insert_with(Vec::new).push(aud.into());
        self
    }

    /// Enables HS256 with this secret (a legacy Supabase project's JWT secret, as the
    /// bytes of the string shown in the dashboard); without it HS256 tokens are refused.
    /// At least 32 bytes.
    pub fn hs256_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.hs256_secret = Some(SecretSlice::from(secret.into()));
        self
    }

    /// Clock-skew tolerance for `exp`, `nbf` and `iat` (whole seconds); default 30 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Upper bound of how long fetched keys are fresh; default 10 min. A shorter
    /// `Cache-Control: max-age` wins (never below 1 s); `no-store` or `no-cache` means
    /// [`VerifierBuilder::min_refetch_interval`].
    pub fn jwks_ttl(mut self, ttl: Duration) -> Self {
        self.jwks_ttl = ttl;
        self
    }

    /// Shortest time between two JWKS requests caused by unknown kids or by failures;
    /// default 30 s.
    pub fn min_refetch_interval(mut self, d: Duration) -> Self {
        self.min_refetch_interval = d;
        self
    }

    /// Time limit of one JWKS request, body included; default 5 s.
    pub fn http_timeout(mut self, d: Duration) -> Self {
        self.http_timeout = d;
        self
    }

    /// The HTTP client for JWKS requests (proxies, TLS roots, …). The request timeout is
    /// still [`VerifierBuilder::http_timeout`].
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Where the time comes from; default `SystemTime::now`. Every time decision (token
    /// validity and cache freshness) uses it.
    pub fn clock(mut self, now: Arc<dyn Fn() -> SystemTime + Send + Sync>) -> Self {
        self.clock = Some(now);
        self
    }

    /// Checks the configuration: the issuer and JWKS URL must be http(s) URLs, the secret
    /// (if any) at least 32 bytes, the HTTP timeout above zero.
    pub fn build(self) -> Result<Verifier, VerifyError> {
        http_url("issuer", &self.issuer)?;
        let jwks_url = match self.jwks_url {
            Some(url) => url,
            None => format!(
                "{}/.well-known/jwks.json",
                self.issuer.trim_end_matches('/')
            ),
        };
        let jwks_url = http_url("JWKS URL", &jwks_url)?.to_string();
        let hs256 = match &self.hs256_secret {
            Some(secret) if secret.expose_secret().len() < MIN_HS256_SECRET_BYTES => {
                return Err(VerifyError::Config(format!(
                    "the HS256 secret must be at least {MIN_HS256_SECRET_BYTES} bytes, it has {}",
                    secret.expose_secret().len()
                )));
            }
            Some(secret) => Some(DecodingKey::from_secret(secret.expose_secret())),
            None => None,
        };
        if self.http_timeout.is_zero() {
            return Err(VerifyError::Config(
                "the HTTP timeout must be above zero".into(),
            ));
        }
        let client = match self.client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .user_agent(concat!("gatehouse-verify/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| VerifyError::Config(format!("HTTP client: {}", error_chain(&e))))?,
        };
        let clock = self.clock.unwrap_or_else(|| Arc::new(system_now));
        Ok(Verifier {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                jwks_url,
                audiences: self
                    .audiences
                    .unwrap_or_else(|| vec![DEFAULT_AUDIENCE.to_owned()]),
                hs256,
                leeway_secs: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
                jwks_ttl: self.jwks_ttl,
                min_refetch_interval: self.min_refetch_interval,
                http_timeout: self.http_timeout,
                client,
                clock,
                cache: RwLock::new(Cache {
                    keys: None,
                    fresh_until: UNIX_EPOCH,
                    last_attempt: None,
                    attempts: 0,
                    last_error: None,
                }),
                refresh: tokio::sync::Mutex::new(()),
                fetches: AtomicU64::new(0),
            }),
        })
    }
}

/// The README's examples compile (`cargo test --doc -p gatehouse-verify`).
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The default clock: the one place this crate reads the wall clock.
#[allow(clippy::disallowed_methods)]
fn system_now() -> SystemTime {
    SystemTime::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_can_be_shared_across_tasks() {
        fn shareable<T: Clone + Send + Sync + fmt::Debug + 'static>() {}
        shareable::<Verifier>();
        fn sendable<T: Send + 'static>(_: &T) {}
        let verifier = Verifier::builder("https://abc.supabase.co/auth/v1")
            .build()
            .unwrap();
        let fut = async move { verifier.verify("a.b.c").await };
        sendable(&fut);
    }

    #[test]
    fn unix_seconds_handles_times_before_the_epoch() {
        assert_eq!(unix_seconds(UNIX_EPOCH + Duration::from_secs(5)), 5);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(5)), -5);
    }
}
