//! The rules of auth: how access tokens are signed (algorithm, HS256 secret, the key that
//! seals signing keys at rest) and how long they, refresh tokens and sessions live; the
//! password policy and how many hashes run at once.

use std::time::Duration;

use clap::Args;
use gatehouse_core::keys::JwtAlg;
use gatehouse_core::password::{HashLimits, PasswordPolicy};
use secrecy::SecretString;

use super::redact::{self, Entry};
use super::values::{boolean, duration, number, secret};
use super::{err, ConfigError};

#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// Access-token signing algorithm: ES256, RS256, EdDSA or HS256.
    #[arg(
        long,
        env = "GATEHOUSE_JWT_ALG",
        global = true,
        default_value = "ES256"
    )]
    jwt_alg: String,
    /// The HS256 secret (at least 32 bytes); required when GATEHOUSE_JWT_ALG=HS256.
    #[arg(
        long,
        env = "GATEHOUSE_JWT_SECRET",
        global = true,
        hide_env_values = true
    )]
    jwt_secret: Option<String>,
    /// Encrypts signing keys at rest (at least 32 bytes).
    #[arg(
        long,
        env = "GATEHOUSE_KEY_ENCRYPTION_KEY",
        global = true,
        hide_env_values = true
    )]
    key_encryption_key: Option<String>,
    /// Tolerance for clock skew when checking a token's exp and nbf.
    #[arg(
        long,
        env = "GATEHOUSE_JWT_LEEWAY",
        global = true,
        default_value = "5s"
    )]
    jwt_leeway: String,
    /// Fewest characters in a password (8..=1024).
    #[arg(
        long,
        env = "GATEHOUSE_PASSWORD_MIN_LENGTH",
        global = true,
        default_value = "8"
    )]
    password_min_length: String,
    /// Require a digit and a symbol in passwords (false for the NIST profile).
    #[arg(
        long,
        env = "GATEHOUSE_PASSWORD_REQUIRE_CLASSES",
        global = true,
        default_value = "true"
    )]
    password_require_classes: String,
    /// Password hashes computed at once (default: the number of cores).
    #[arg(long, env = "GATEHOUSE_HASH_CONCURRENCY", global = true)]
    hash_concurrency: Option<String>,
    /// Sign-ins allowed to wait for a hashing slot; beyond it, 503 at once (default: 32 per core).
    #[arg(long, env = "GATEHOUSE_HASH_QUEUE", global = true)]
    hash_queue: Option<String>,
    /// Access-token lifetime (e.g. 30m, 1h).
    #[arg(
        long,
        env = "GATEHOUSE_ACCESS_TOKEN_TTL",
        global = true,
        default_value = "30m"
    )]
    access_token_ttl: String,
    /// Grace in which a just-rotated refresh token still returns its successor.
    #[arg(
        long,
        env = "GATEHOUSE_REFRESH_REUSE_INTERVAL",
        global = true,
        default_value = "10s"
    )]
    refresh_reuse_interval: String,
    /// A session unused for this long ends.
    #[arg(
        long,
        env = "GATEHOUSE_SESSION_IDLE_TIMEOUT",
        global = true,
        default_value = "7d"
    )]
    session_idle_timeout: String,
    /// A session ends this long after sign-in, used or not.
    #[arg(
        long,
        env = "GATEHOUSE_SESSION_MAX_LIFETIME",
        global = true,
        default_value = "30d"
    )]
    session_max_lifetime: String,
    /// How long after signing in a session may change its password or email without the
    /// current password (0s: always ask for it).
    #[arg(
        long,
        env = "GATEHOUSE_REAUTH_WINDOW",
        global = true,
        default_value = "10m"
    )]
    reauth_window: String,
}

/// The validated auth settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub jwt_alg: JwtAlg,
    pub jwt_secret: Option<SecretString>,
    pub key_encryption_key: Option<SecretString>,
    pub access_token_ttl: Duration,
    pub jwt_leeway: Duration,
    pub password_policy: PasswordPolicy,
    pub hash_limits: HashLimits,
    pub refresh_reuse_interval: Duration,
    pub session_idle_timeout: Duration,
    pub session_max_lifetime: Duration,
    pub reauth_window: Duration,
}

impl AuthSettings {
    pub(super) fn from_args(args: &AuthArgs) -> Result<Self, ConfigError> {
        let jwt_alg: JwtAlg = args.jwt_alg.trim().parse().map_err(|()| {
            err(
                "GATEHOUSE_JWT_ALG",
                "jwt-alg",
                format!(
                    "{:?} is not supported; use ES256, RS256, EdDSA or HS256",
                    args.jwt_alg
                ),
            )
        })?;
        let jwt_secret = secret(
            "GATEHOUSE_JWT_SECRET",
            "jwt-secret",
            args.jwt_secret.as_ref(),
            32,
        )?;
        if jwt_alg == JwtAlg::Hs256 && jwt_secret.is_none() {
            return Err(err(
                "GATEHOUSE_JWT_SECRET",
                "jwt-secret",
                "is required when GATEHOUSE_JWT_ALG=HS256",
            ));
        }
        let key_encryption_key = secret(
            "GATEHOUSE_KEY_ENCRYPTION_KEY",
            "key-encryption-key",
            args.key_encryption_key.as_ref(),
            32,
        )?;

        let minute = Duration::from_secs(60);
        let day = 24 * 60 * minute;
        let access_token_ttl = duration(
            "GATEHOUSE_ACCESS_TOKEN_TTL",
            "access-token-ttl",
            &args.access_token_ttl,
            Duration::from_secs(30),
            day,
        )?;
        let jwt_leeway = duration(
            "GATEHOUSE_JWT_LEEWAY",
            "jwt-leeway",
            &args.jwt_leeway,
            Duration::ZERO,
            5 * minute,
        )?;
        let password_policy = PasswordPolicy {
            min_length: number(
                "GATEHOUSE_PASSWORD_MIN_LENGTH",
                "password-min-length",
                &args.password_min_length,
                8usize,
                1024,
            )?,
            require_digit_and_symbol: boolean(
                "GATEHOUSE_PASSWORD_REQUIRE_CLASSES",
                "password-require-classes",
                &args.password_require_classes,
            )?,
        };
        let defaults = HashLimits::default();
        let hash_limits = HashLimits {
            concurrency: match &args.hash_concurrency {
                Some(raw) => number(
                    "GATEHOUSE_HASH_CONCURRENCY",
                    "hash-concurrency",
                    raw,
                    1usize,
                    256,
                )?,
                None => defaults.concurrency,
            },
            queue: match &args.hash_queue {
                Some(raw) => number("GATEHOUSE_HASH_QUEUE", "hash-queue", raw, 0usize, 100_000)?,
                None => defaults.queue,
            },
        };
        let refresh_reuse_interval = duration(
            "GATEHOUSE_REFRESH_REUSE_INTERVAL",
            "refresh-reuse-interval",
            &args.refresh_reuse_interval,
            Duration::ZERO,
            5 * minute,
        )?;
        let session_idle_timeout = duration(
            "GATEHOUSE_SESSION_IDLE_TIMEOUT",
            "session-idle-timeout",
            &args.session_idle_timeout,
            minute,
            365 * day,
        )?;
        let session_max_lifetime = duration(
            "GATEHOUSE_SESSION_MAX_LIFETIME",
            "session-max-lifetime",
            &args.session_max_lifetime,
            minute,
            365 * day,
        )?;
        if session_max_lifetime < session_idle_timeout {
            return Err(err(
                "GATEHOUSE_SESSION_MAX_LIFETIME",
                "session-max-lifetime",
                "must not be shorter than GATEHOUSE_SESSION_IDLE_TIMEOUT",
            ));
        }
        let reauth_window = duration(
            "GATEHOUSE_REAUTH_WINDOW",
            "reauth-window",
            &args.reauth_window,
            Duration::ZERO,
            day,
        )?;
        Ok(Self {
            jwt_alg,
            jwt_secret,
            key_encryption_key,
            access_token_ttl,
            jwt_leeway,
            password_policy,
            hash_limits,
            refresh_reuse_interval,
            session_idle_timeout,
            session_max_lifetime,
            reauth_window,
        })
    }

    /// The settings of the rules of auth, issuing tokens from `public_url` and limiting
    /// the credential endpoints by `rate_limits`.
    pub(super) fn core_settings(
        &self,
        public_url: String,
        rate_limits: gatehouse_core::ratelimit::RateLimits,
    ) -> gatehouse_core::Settings {
        gatehouse_core::Settings {
            public_url,
            jwt_alg: self.jwt_alg,
            jwt_secret: self.jwt_secret.clone(),
            key_encryption_key: self.key_encryption_key.clone(),
            access_token_ttl: self.access_token_ttl,
            jwt_leeway: self.jwt_leeway,
            key_publish_ahead: Duration::from_secs(10 * 60),
            refresh_reuse_interval: self.refresh_reuse_interval,
            session_idle_timeout: self.session_idle_timeout,
            session_max_lifetime: self.session_max_lifetime,
            reauth_window: self.reauth_window,
            upstream: None,
            mail: None,
            password_policy: self.password_policy.clone(),
            hash_limits: self.hash_limits,
            rate_limits,
            protection: gatehouse_core::Protection::default(),
        }
    }

    pub(super) fn redacted_entries(&self) -> Vec<Entry> {
        vec![
            ("GATEHOUSE_JWT_ALG", self.jwt_alg.to_string()),
            (
                "GATEHOUSE_JWT_SECRET",
                redact::secret(self.jwt_secret.as_ref()),
            ),
            (
                "GATEHOUSE_KEY_ENCRYPTION_KEY",
                redact::secret(self.key_encryption_key.as_ref()),
            ),
            (
                "GATEHOUSE_ACCESS_TOKEN_TTL",
                redact::duration(self.access_token_ttl),
            ),
            (
                "GATEHOUSE_REFRESH_REUSE_INTERVAL",
                redact::duration(self.refresh_reuse_interval),
            ),
            (
                "GATEHOUSE_SESSION_IDLE_TIMEOUT",
                redact::duration(self.session_idle_timeout),
            ),
            (
                "GATEHOUSE_SESSION_MAX_LIFETIME",
                redact::duration(self.session_max_lifetime),
            ),
            (
                "GATEHOUSE_REAUTH_WINDOW",
                redact::duration(self.reauth_window),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use gatehouse_core::keys::JwtAlg;

    use crate::config::tests::{assert_each_refused, parse};

    #[test]
    fn the_defaults_are_those_of_the_product_spec() {
        let auth = parse(&[]).unwrap().auth;
        assert_eq!(auth.jwt_alg, JwtAlg::Es256);
        assert_eq!(auth.access_token_ttl, Duration::from_secs(30 * 60));
        assert_eq!(auth.refresh_reuse_interval, Duration::from_secs(10));
    }

    #[test]
    fn the_jwt_secret_is_redacted_in_the_printed_configuration() {
        let config = parse(&[
            "--jwt-alg",
            "HS256",
            "--jwt-secret",
            "an-hs256-secret-that-is-long-enough-0123",
            "--key-encryption-key",
            "a-key-encryption-key-that-is-long-enough",
        ])
        .unwrap();
        let printed = format!("{:?}", config.auth.redacted_entries());
        assert!(!printed.contains("an-hs256-secret"), "{printed}");
        assert!(!printed.contains("a-key-encryption-key"), "{printed}");
        assert!(
            printed.contains("(\"GATEHOUSE_JWT_SECRET\", \"<redacted>\")"),
            "{printed}"
        );
        assert!(
            !format!("{config:?}").contains("an-hs256-secret"),
            "Debug leaks the secret"
        );
    }

    #[test]
    fn each_invalid_value_names_its_variable() {
        assert_each_refused(&[
            (&["--jwt-alg", "none"], "GATEHOUSE_JWT_ALG"),
            (&["--jwt-alg", "HS256"], "GATEHOUSE_JWT_SECRET"),
            (
                &["--jwt-alg", "HS256", "--jwt-secret", "short"],
                "GATEHOUSE_JWT_SECRET",
            ),
            (
                &["--access-token-ttl", "forever"],
                "GATEHOUSE_ACCESS_TOKEN_TTL",
            ),
            (&["--access-token-ttl", "0s"], "GATEHOUSE_ACCESS_TOKEN_TTL"),
            (
                &["--refresh-reuse-interval", "1h"],
                "GATEHOUSE_REFRESH_REUSE_INTERVAL",
            ),
            (
                &["--session-idle-timeout", "60d"],
                "GATEHOUSE_SESSION_MAX_LIFETIME",
            ),
            (&["--reauth-window", "2d"], "GATEHOUSE_REAUTH_WINDOW"),
            (
                &["--key-encryption-key", "too-short"],
                "GATEHOUSE_KEY_ENCRYPTION_KEY",
            ),
            (
                &["--password-min-length", "6"],
                "GATEHOUSE_PASSWORD_MIN_LENGTH",
            ),
            (
                &["--password-require-classes", "sometimes"],
                "GATEHOUSE_PASSWORD_REQUIRE_CLASSES",
            ),
            (&["--hash-concurrency", "0"], "GATEHOUSE_HASH_CONCURRENCY"),
            (&["--hash-queue", "lots"], "GATEHOUSE_HASH_QUEUE"),
            (&["--jwt-leeway", "1h"], "GATEHOUSE_JWT_LEEWAY"),
        ]);
    }
}
