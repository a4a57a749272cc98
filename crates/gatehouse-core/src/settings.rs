//! What the rules of auth are configured by: token lifetimes, session limits, the password
//! policy and hashing cost, rate limits and account protection.

use std::time::Duration;

use secrecy::SecretString;

use crate::password::{HashLimits, PasswordPolicy};
use crate::signing_keys::JwtAlg;
use crate::{protection, ratelimit};

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
    /// Supabase mode: the project whose Auth API holds the credentials and sessions.
    /// `None` is standalone mode.
    pub upstream: Option<UpstreamSettings>,
    /// The mailer's settings: `None` sends no mail (sign-ups confirm at once and the mail
    /// flows are off).
    pub mail: Option<crate::mail::MailSettings>,
}

/// The Supabase project gatehouse fronts in Supabase mode.
#[derive(Clone)]
pub struct UpstreamSettings {
    /// The project's URL; its Auth API is `<url>/auth/v1` and its tokens' issuer too.
    pub url: url::Url,
    /// The anon (publishable) key.
    pub anon_key: SecretString,
    /// The service-role key: sign-up through the admin API and all admin work.
    pub service_role_key: Option<SecretString>,
    /// The legacy HS256 secret, for projects not on asymmetric signing keys.
    pub jwt_secret: Option<SecretString>,
    /// How long one call upstream may take.
    pub timeout: Duration,
}

impl UpstreamSettings {
    /// The issuer of the project's access tokens.
    pub fn issuer(&self) -> String {
        format!("{}/auth/v1", self.url.as_str().trim_end_matches('/'))
    }
}

impl std::fmt::Debug for UpstreamSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSettings")
            .field("url", &self.url.as_str())
            .field("service_role_key", &self.service_role_key.is_some())
            .field("jwt_secret", &self.jwt_secret.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
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
            upstream: None,
            mail: None,
        }
    }
}

impl Settings {
    /// The `iss` of our tokens.
    pub fn issuer(&self) -> String {
        format!("{}/auth/v1", self.public_url.trim_end_matches('/'))
    }
}
