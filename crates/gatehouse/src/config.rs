//! The typed configuration: environment variables (and `.env`), overridden by flags,
//! validated once at start-up. An invalid value stops start-up with a message that
//! names the variable, its flag and what is wrong.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use gatehouse_core::keys::JwtAlg;
use gatehouse_core::password::{HashLimits, PasswordPolicy};
use gatehouse_core::store::{ConnectOptions, DatabaseUrl};
use secrecy::{ExposeSecret, SecretString};

/// Loads `.env` from the working directory, if there is one. Variables already set in the
/// environment win.
pub fn load_dotenv() -> Result<(), String> {
    match dotenvy::from_path(".env") {
        Ok(()) => Ok(()),
        Err(dotenvy::Error::Io(err)) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(format!(".env: {err}")),
    }
}

/// Raw settings as clap reads them. Every one is a flag and an environment variable;
/// secrets never show their values in `--help`.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Listen address.
    #[arg(
        long,
        env = "GATEHOUSE_ADDR",
        global = true,
        default_value = "127.0.0.1:8080"
    )]
    addr: String,
    /// Port; overrides the port of GATEHOUSE_ADDR (what most platforms set).
    #[arg(long, env = "PORT", global = true)]
    port: Option<String>,
    /// sqlite://<path> (created on first start) or postgres://user:pass@host/db.
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        default_value = "sqlite://gatehouse.db",
        hide_env_values = true
    )]
    database_url: String,
    /// Largest number of pooled database connections.
    #[arg(
        long,
        env = "GATEHOUSE_DB_MAX_CONNECTIONS",
        global = true,
        default_value = "10"
    )]
    db_max_connections: String,
    /// How long to wait for the database (first connection included) before failing.
    #[arg(
        long,
        env = "GATEHOUSE_DB_CONNECT_TIMEOUT",
        global = true,
        default_value = "5s"
    )]
    db_connect_timeout: String,
    /// Base URL the server is reached at; the token issuer is <this>/auth/v1.
    #[arg(
        long,
        env = "GATEHOUSE_PUBLIC_URL",
        global = true,
        default_value = "http://localhost:8080"
    )]
    public_url: String,
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
    /// Drop `Secure` from cookies: for local plain http only.
    #[arg(
        long,
        env = "GATEHOUSE_INSECURE_COOKIES",
        global = true,
        default_value = "false"
    )]
    insecure_cookies: String,
    /// Comma-separated origins allowed by CORS, with credentials.
    #[arg(long, env = "GATEHOUSE_CORS_ORIGINS", global = true)]
    cors_origins: Option<String>,
    /// Log format: pretty or json.
    #[arg(
        long,
        env = "GATEHOUSE_LOG_FORMAT",
        global = true,
        default_value = "pretty"
    )]
    log_format: String,
    /// Log filter, in tracing's EnvFilter syntax (e.g. info, debug, info,gatehouse=debug).
    #[arg(
        long,
        env = "GATEHOUSE_LOG",
        global = true,
        default_value = "info,sqlx=warn"
    )]
    log: String,
    /// Largest accepted request body.
    #[arg(
        long,
        env = "GATEHOUSE_MAX_BODY_BYTES",
        global = true,
        default_value = "65536"
    )]
    max_body_bytes: String,
    /// After SIGTERM, how long requests in flight may take before the server exits.
    #[arg(
        long,
        env = "GATEHOUSE_SHUTDOWN_TIMEOUT",
        global = true,
        default_value = "10s"
    )]
    shutdown_timeout: String,
    /// Proxies (CIDRs, comma-separated) whose X-Forwarded-For is believed.
    #[arg(long, env = "GATEHOUSE_TRUSTED_PROXIES", global = true)]
    trusted_proxies: Option<String>,
    /// Rate limits on the credential endpoints: true or false.
    #[arg(
        long,
        env = "GATEHOUSE_RATE_LIMITS",
        global = true,
        default_value = "true"
    )]
    rate_limits: String,
    /// Sign-in attempts per client IP (N/period).
    #[arg(
        long,
        env = "GATEHOUSE_RATE_LIMIT_SIGNIN_IP",
        global = true,
        default_value = "30/1m"
    )]
    rate_limit_signin_ip: String,
    /// Sign-in attempts at one account from one client IP.
    #[arg(
        long,
        env = "GATEHOUSE_RATE_LIMIT_SIGNIN_ACCOUNT_IP",
        global = true,
        default_value = "10/1m"
    )]
    rate_limit_signin_account_ip: String,
    /// Sign-ups per client IP.
    #[arg(
        long,
        env = "GATEHOUSE_RATE_LIMIT_SIGNUP_IP",
        global = true,
        default_value = "30/1h"
    )]
    rate_limit_signup_ip: String,
    /// Token refreshes per client IP.
    #[arg(
        long,
        env = "GATEHOUSE_RATE_LIMIT_REFRESH_IP",
        global = true,
        default_value = "150/5m"
    )]
    rate_limit_refresh_ip: String,
    /// Password changes per account.
    #[arg(
        long,
        env = "GATEHOUSE_RATE_LIMIT_PASSWORD_ACCOUNT",
        global = true,
        default_value = "5/15m"
    )]
    rate_limit_password_account: String,
    /// Admin writes per admin (and for the service-role key).
    #[arg(
        long,
        env = "GATEHOUSE_RATE_LIMIT_ADMIN_WRITE",
        global = true,
        default_value = "120/1m"
    )]
    rate_limit_admin_write: String,
    /// IPv6 clients are limited and counted per network of this many bits (1-128).
    #[arg(
        long,
        env = "GATEHOUSE_RATE_LIMIT_IPV6_PREFIX",
        global = true,
        default_value = "64"
    )]
    rate_limit_ipv6_prefix: String,
    /// Longest time a request may take.
    #[arg(
        long,
        env = "GATEHOUSE_REQUEST_TIMEOUT",
        global = true,
        default_value = "30s"
    )]
    request_timeout: String,
    /// Requests served at once; more are answered 503 at once.
    #[arg(
        long,
        env = "GATEHOUSE_MAX_CONCURRENT_REQUESTS",
        global = true,
        default_value = "1024"
    )]
    max_concurrent_requests: String,
    /// Longest URL accepted, in bytes.
    #[arg(
        long,
        env = "GATEHOUSE_MAX_URL_BYTES",
        global = true,
        default_value = "8192"
    )]
    max_url_bytes: String,
    /// Largest total of request headers accepted, in bytes.
    #[arg(
        long,
        env = "GATEHOUSE_MAX_HEADER_BYTES",
        global = true,
        default_value = "16384"
    )]
    max_header_bytes: String,
    /// Redis for rate-limit counters shared by several instances.
    #[arg(long, env = "REDIS_URL", global = true, hide_env_values = true)]
    redis_url: Option<String>,
    /// Supabase mode: the project's URL.
    #[arg(long, env = "SUPABASE_URL", global = true)]
    supabase_url: Option<String>,
    /// Supabase mode: the project's anon (publishable) key.
    #[arg(long, env = "SUPABASE_ANON_KEY", global = true, hide_env_values = true)]
    supabase_anon_key: Option<String>,
    /// Supabase mode: the service-role key, used server-side only.
    #[arg(
        long,
        env = "SUPABASE_SERVICE_ROLE_KEY",
        global = true,
        hide_env_values = true
    )]
    supabase_service_role_key: Option<String>,
    /// Supabase mode: the legacy HS256 JWT secret, for projects not on asymmetric keys.
    #[arg(
        long,
        env = "SUPABASE_JWT_SECRET",
        global = true,
        hide_env_values = true
    )]
    supabase_jwt_secret: Option<String>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Supabase mode settings.
#[derive(Debug, Clone)]
pub struct SupabaseConfig {
    pub url: url::Url,
    pub anon_key: SecretString,
    pub service_role_key: Option<SecretString>,
    pub jwt_secret: Option<SecretString>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub database_url: DatabaseUrl,
    pub db_max_connections: u32,
    pub db_connect_timeout: Duration,
    pub public_url: url::Url,
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
    pub insecure_cookies: bool,
    pub cors_origins: Vec<String>,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub max_body_bytes: usize,
    pub shutdown_timeout: Duration,
    pub supabase: Option<SupabaseConfig>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub rate_limits: gatehouse_core::ratelimit::RateLimits,
    pub limits: gatehouse_http::security::Limits,
}

/// An invalid setting: which variable, which flag, what is wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub flag: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (--{}): {}", self.variable, self.flag, self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn err(variable: &'static str, flag: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        flag,
        problem: problem.into(),
    }
}

fn duration(
    variable: &'static str,
    flag: &'static str,
    raw: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let value = humantime::parse_duration(raw.trim()).map_err(|_| {
        err(
            variable,
            flag,
            format!("{raw:?} is not a duration; write e.g. 30s, 15m, 1h or 7d"),
        )
    })?;
    if value < min || value > max {
        return Err(err(
            variable,
            flag,
            format!(
                "{raw:?} is out of range; it must be between {} and {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(value)
}

fn boolean(variable: &'static str, flag: &'static str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(err(
            variable,
            flag,
            format!("{raw:?} is not a boolean; write true or false"),
        )),
    }
}

fn number<T: std::str::FromStr + PartialOrd + fmt::Display>(
    variable: &'static str,
    flag: &'static str,
    raw: &str,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    let value: T = raw
        .trim()
        .parse()
        .map_err(|_| err(variable, flag, format!("{raw:?} is not a whole number")))?;
    if value < min || value > max {
        return Err(err(
            variable,
            flag,
            format!("{raw:?} is out of range; it must be between {min} and {max}"),
        ));
    }
    Ok(value)
}

fn secret(
    variable: &'static str,
    flag: &'static str,
    raw: Option<&String>,
    min_bytes: usize,
) -> Result<Option<SecretString>, ConfigError> {
    match raw {
        None => Ok(None),
        Some(value) if value.len() < min_bytes => Err(err(
            variable,
            flag,
            format!("must be at least {min_bytes} bytes (it has {}); generate one with `openssl rand -base64 48`", value.len()),
        )),
        Some(value) => Ok(Some(SecretString::from(value.clone()))),
    }
}

fn http_url(
    variable: &'static str,
    flag: &'static str,
    raw: &str,
) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(raw.trim())
        .map_err(|e| err(variable, flag, format!("{raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(err(
            variable,
            flag,
            format!("{raw:?} must be an http:// or https:// URL with a host"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err(
            variable,
            flag,
            format!("{raw:?} must not have a query or fragment"),
        ));
    }
    Ok(url)
}

fn origin(raw: &str) -> Result<String, ConfigError> {
    const VAR: &str = "GATEHOUSE_CORS_ORIGINS";
    const FLAG: &str = "cors-origins";
    if raw == "*" {
        return Err(err(VAR, FLAG, "\"*\" cannot be combined with credentials; list each origin, e.g. https://app.example.com"));
    }
    let url = http_url(VAR, FLAG, raw)?;
    if url.path() != "/" || !url.username().is_empty() || url.password().is_some() {
        return Err(err(
            VAR,
            FLAG,
            format!("{raw:?} is not an origin; write scheme://host[:port] with no path"),
        ));
    }
    Ok(url.origin().ascii_serialization())
}

impl Config {
    /// Validates every raw setting; the first invalid one is the error.
    pub fn from_args(args: &ConfigArgs) -> Result<Self, ConfigError> {
        let mut addr: SocketAddr = args.addr.trim().parse().map_err(|_| {
            err(
                "GATEHOUSE_ADDR",
                "addr",
                format!(
                    "{:?} is not a socket address; write e.g. 127.0.0.1:8080 or 0.0.0.0:8080",
                    args.addr
                ),
            )
        })?;
        if let Some(port) = &args.port {
            addr.set_port(number("PORT", "port", port, 0u16, u16::MAX)?);
        }
        let database_url = DatabaseUrl::parse(&args.database_url).map_err(|e| {
            err(
                "DATABASE_URL",
                "database-url",
                format!(
                    "{:?}: {e}",
                    gatehouse_core::store::mask_database_url(&args.database_url)
                ),
            )
        })?;
        let db_max_connections = number(
            "GATEHOUSE_DB_MAX_CONNECTIONS",
            "db-max-connections",
            &args.db_max_connections,
            1u32,
            1000,
        )?;
        let db_connect_timeout = duration(
            "GATEHOUSE_DB_CONNECT_TIMEOUT",
            "db-connect-timeout",
            &args.db_connect_timeout,
            Duration::from_millis(100),
            Duration::from_secs(300),
        )?;
        let mut public_url = http_url("GATEHOUSE_PUBLIC_URL", "public-url", &args.public_url)?;
        let trimmed = public_url.path().trim_end_matches('/').to_owned();
        public_url.set_path(&trimmed);

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
        let insecure_cookies = boolean(
            "GATEHOUSE_INSECURE_COOKIES",
            "insecure-cookies",
            &args.insecure_cookies,
        )?;
        let cors_origins = match &args.cors_origins {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(origin)
                .collect::<Result<_, _>>()?,
        };
        let log_format = match args.log_format.trim().to_ascii_lowercase().as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(err(
                    "GATEHOUSE_LOG_FORMAT",
                    "log-format",
                    format!("{other:?} is not a log format; use pretty or json"),
                ))
            }
        };
        tracing_subscriber::EnvFilter::try_new(&args.log).map_err(|e| {
            err(
                "GATEHOUSE_LOG",
                "log",
                format!("{:?} is not a log filter: {e}", args.log),
            )
        })?;
        let max_body_bytes = number(
            "GATEHOUSE_MAX_BODY_BYTES",
            "max-body-bytes",
            &args.max_body_bytes,
            1024usize,
            16 * 1024 * 1024,
        )?;
        let shutdown_timeout = duration(
            "GATEHOUSE_SHUTDOWN_TIMEOUT",
            "shutdown-timeout",
            &args.shutdown_timeout,
            Duration::ZERO,
            10 * minute,
        )?;
        let redis_url = match &args.redis_url {
            None => None,
            Some(raw)
                if raw.starts_with("redis://")
                    || raw.starts_with("rediss://")
                    || raw.starts_with("unix://") =>
            {
                url::Url::parse(raw)
                    .map_err(|e| err("REDIS_URL", "redis-url", format!("not a URL: {e}")))?;
                Some(SecretString::from(raw.clone()))
            }
            Some(_) => {
                return Err(err(
                    "REDIS_URL",
                    "redis-url",
                    "must start with redis://, rediss:// or unix://",
                ))
            }
        };
        let supabase = Self::supabase(args)?;
        let trusted_proxies = match &args.trusted_proxies {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|cidr| {
                    cidr.parse::<ipnet::IpNet>()
                        .or_else(|_| cidr.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| {
                            err(
                                "GATEHOUSE_TRUSTED_PROXIES",
                                "trusted-proxies",
                                format!("{cidr:?} is not an IP address or CIDR"),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        let rate = |variable: &'static str, flag: &'static str, raw: &str| {
            raw.parse::<gatehouse_core::ratelimit::Rate>()
                .map_err(|e| err(variable, flag, format!("{raw:?}: {e}")))
        };
        let rate_limits = gatehouse_core::ratelimit::RateLimits {
            enabled: boolean("GATEHOUSE_RATE_LIMITS", "rate-limits", &args.rate_limits)?,
            signin_ip: rate(
                "GATEHOUSE_RATE_LIMIT_SIGNIN_IP",
                "rate-limit-signin-ip",
                &args.rate_limit_signin_ip,
            )?,
            signin_account_ip: rate(
                "GATEHOUSE_RATE_LIMIT_SIGNIN_ACCOUNT_IP",
                "rate-limit-signin-account-ip",
                &args.rate_limit_signin_account_ip,
            )?,
            signup_ip: rate(
                "GATEHOUSE_RATE_LIMIT_SIGNUP_IP",
                "rate-limit-signup-ip",
                &args.rate_limit_signup_ip,
            )?,
            refresh_ip: rate(
                "GATEHOUSE_RATE_LIMIT_REFRESH_IP",
                "rate-limit-refresh-ip",
                &args.rate_limit_refresh_ip,
            )?,
            password_account: rate(
                "GATEHOUSE_RATE_LIMIT_PASSWORD_ACCOUNT",
                "rate-limit-password-account",
                &args.rate_limit_password_account,
            )?,
            admin_write: rate(
                "GATEHOUSE_RATE_LIMIT_ADMIN_WRITE",
                "rate-limit-admin-write",
                &args.rate_limit_admin_write,
            )?,
            redis_url,
            redis_prefix: "gatehouse".to_owned(),
            ipv6_prefix: number(
                "GATEHOUSE_RATE_LIMIT_IPV6_PREFIX",
                "rate-limit-ipv6-prefix",
                &args.rate_limit_ipv6_prefix,
                1u8,
                128,
            )?,
        };
        let limits = gatehouse_http::security::Limits {
            max_url_bytes: number(
                "GATEHOUSE_MAX_URL_BYTES",
                "max-url-bytes",
                &args.max_url_bytes,
                256usize,
                1024 * 1024,
            )?,
            max_header_bytes: number(
                "GATEHOUSE_MAX_HEADER_BYTES",
                "max-header-bytes",
                &args.max_header_bytes,
                1024usize,
                256 * 1024,
            )?,
            request_timeout: duration(
                "GATEHOUSE_REQUEST_TIMEOUT",
                "request-timeout",
                &args.request_timeout,
                Duration::from_secs(1),
                10 * minute,
            )?,
            max_concurrent_requests: number(
                "GATEHOUSE_MAX_CONCURRENT_REQUESTS",
                "max-concurrent-requests",
                &args.max_concurrent_requests,
                1usize,
                1_000_000,
            )?,
        };
        Ok(Self {
            addr,
            database_url,
            db_max_connections,
            db_connect_timeout,
            public_url,
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
            insecure_cookies,
            cors_origins,
            log_format,
            log_filter: args.log.clone(),
            max_body_bytes,
            shutdown_timeout,
            supabase,
            trusted_proxies,
            rate_limits,
            limits,
        })
    }

    fn supabase(args: &ConfigArgs) -> Result<Option<SupabaseConfig>, ConfigError> {
        let any = args.supabase_url.is_some()
            || args.supabase_anon_key.is_some()
            || args.supabase_service_role_key.is_some()
            || args.supabase_jwt_secret.is_some();
        if !any {
            return Ok(None);
        }
        let Some(raw_url) = &args.supabase_url else {
            return Err(err(
                "SUPABASE_URL",
                "supabase-url",
                "is required when any SUPABASE_* variable is set",
            ));
        };
        let url = http_url("SUPABASE_URL", "supabase-url", raw_url)?;
        let Some(anon_key) = args
            .supabase_anon_key
            .clone()
            .filter(|k| !k.trim().is_empty())
        else {
            return Err(err(
                "SUPABASE_ANON_KEY",
                "supabase-anon-key",
                "is required in Supabase mode (SUPABASE_URL is set)",
            ));
        };
        Ok(Some(SupabaseConfig {
            url,
            anon_key: SecretString::from(anon_key),
            service_role_key: args
                .supabase_service_role_key
                .clone()
                .map(SecretString::from),
            jwt_secret: secret(
                "SUPABASE_JWT_SECRET",
                "supabase-jwt-secret",
                args.supabase_jwt_secret.as_ref(),
                32,
            )?,
        }))
    }

    /// The settings of the rules of auth.
    pub fn settings(&self) -> gatehouse_core::Settings {
        gatehouse_core::Settings {
            public_url: self.public_url.as_str().trim_end_matches('/').to_owned(),
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
            password_policy: self.password_policy.clone(),
            hash_limits: self.hash_limits,
            rate_limits: self.rate_limits.clone(),
            protection: gatehouse_core::Protection::default(),
        }
    }

    /// The settings of the HTTP layer.
    pub fn http_config(&self) -> gatehouse_http::HttpConfig {
        let mut allowed_origins = vec![self.public_url.origin().ascii_serialization()];
        allowed_origins.extend(self.cors_origins.iter().cloned());
        gatehouse_http::HttpConfig {
            max_body_bytes: self.max_body_bytes,
            insecure_cookies: self.insecure_cookies,
            allowed_origins,
            cors_origins: self.cors_origins.clone(),
            hsts: self.public_url.scheme() == "https",
            limits: self.limits.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            ..gatehouse_http::HttpConfig::default()
        }
    }

    /// How the store connects.
    pub fn db_connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            max_connections: self.db_max_connections,
            connect_timeout: self.db_connect_timeout,
            ..ConnectOptions::default()
        }
    }

    /// Every setting as `(VARIABLE, value)`, secrets shown as `<redacted>` and passwords in
    /// URLs masked.
    pub fn redacted_entries(&self) -> Vec<(&'static str, String)> {
        fn shown(secret: Option<&SecretString>) -> String {
            match secret {
                Some(s) if !s.expose_secret().is_empty() => "<redacted>".to_owned(),
                _ => "<unset>".to_owned(),
            }
        }
        let human = |d: Duration| humantime::format_duration(d).to_string();
        let supabase = self.supabase.as_ref();
        vec![
            ("GATEHOUSE_ADDR", self.addr.to_string()),
            ("DATABASE_URL", self.database_url.masked()),
            (
                "GATEHOUSE_DB_MAX_CONNECTIONS",
                self.db_max_connections.to_string(),
            ),
            (
                "GATEHOUSE_DB_CONNECT_TIMEOUT",
                human(self.db_connect_timeout),
            ),
            (
                "GATEHOUSE_PUBLIC_URL",
                self.public_url.as_str().trim_end_matches('/').to_owned(),
            ),
            ("GATEHOUSE_JWT_ALG", self.jwt_alg.to_string()),
            ("GATEHOUSE_JWT_SECRET", shown(self.jwt_secret.as_ref())),
            (
                "GATEHOUSE_KEY_ENCRYPTION_KEY",
                shown(self.key_encryption_key.as_ref()),
            ),
            ("GATEHOUSE_ACCESS_TOKEN_TTL", human(self.access_token_ttl)),
            (
                "GATEHOUSE_REFRESH_REUSE_INTERVAL",
                human(self.refresh_reuse_interval),
            ),
            (
                "GATEHOUSE_SESSION_IDLE_TIMEOUT",
                human(self.session_idle_timeout),
            ),
            (
                "GATEHOUSE_SESSION_MAX_LIFETIME",
                human(self.session_max_lifetime),
            ),
            ("GATEHOUSE_REAUTH_WINDOW", human(self.reauth_window)),
            (
                "GATEHOUSE_INSECURE_COOKIES",
                self.insecure_cookies.to_string(),
            ),
            ("GATEHOUSE_CORS_ORIGINS", self.cors_origins.join(",")),
            (
                "GATEHOUSE_LOG_FORMAT",
                match self.log_format {
                    LogFormat::Pretty => "pretty",
                    LogFormat::Json => "json",
                }
                .to_owned(),
            ),
            ("GATEHOUSE_LOG", self.log_filter.clone()),
            ("GATEHOUSE_MAX_BODY_BYTES", self.max_body_bytes.to_string()),
            ("GATEHOUSE_SHUTDOWN_TIMEOUT", human(self.shutdown_timeout)),
            (
                "GATEHOUSE_TRUSTED_PROXIES",
                self.trusted_proxies
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "GATEHOUSE_RATE_LIMITS",
                self.rate_limits.enabled.to_string(),
            ),
            (
                "GATEHOUSE_RATE_LIMIT_SIGNIN_IP",
                self.rate_limits.signin_ip.to_string(),
            ),
            (
                "GATEHOUSE_RATE_LIMIT_SIGNIN_ACCOUNT_IP",
                self.rate_limits.signin_account_ip.to_string(),
            ),
            (
                "GATEHOUSE_RATE_LIMIT_SIGNUP_IP",
                self.rate_limits.signup_ip.to_string(),
            ),
            (
                "GATEHOUSE_RATE_LIMIT_REFRESH_IP",
                self.rate_limits.refresh_ip.to_string(),
            ),
            (
                "GATEHOUSE_RATE_LIMIT_PASSWORD_ACCOUNT",
                self.rate_limits.password_account.to_string(),
            ),
            (
                "GATEHOUSE_RATE_LIMIT_ADMIN_WRITE",
                self.rate_limits.admin_write.to_string(),
            ),
            (
                "GATEHOUSE_RATE_LIMIT_IPV6_PREFIX",
                self.rate_limits.ipv6_prefix.to_string(),
            ),
            (
                "GATEHOUSE_REQUEST_TIMEOUT",
                human(self.limits.request_timeout),
            ),
            (
                "GATEHOUSE_MAX_CONCURRENT_REQUESTS",
                self.limits.max_concurrent_requests.to_string(),
            ),
            (
                "GATEHOUSE_MAX_URL_BYTES",
                self.limits.max_url_bytes.to_string(),
            ),
            (
                "GATEHOUSE_MAX_HEADER_BYTES",
                self.limits.max_header_bytes.to_string(),
            ),
            (
                "REDIS_URL",
                self.rate_limits.redis_url.as_ref().map_or_else(
                    || "<unset>".to_owned(),
                    |u| gatehouse_core::store::mask_database_url(u.expose_secret()),
                ),
            ),
            (
                "SUPABASE_URL",
                supabase.map_or_else(|| "<unset>".to_owned(), |s| s.url.to_string()),
            ),
            ("SUPABASE_ANON_KEY", shown(supabase.map(|s| &s.anon_key))),
            (
                "SUPABASE_SERVICE_ROLE_KEY",
                shown(supabase.and_then(|s| s.service_role_key.as_ref())),
            ),
            (
                "SUPABASE_JWT_SECRET",
                shown(supabase.and_then(|s| s.jwt_secret.as_ref())),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        config: ConfigArgs,
    }

    fn parse(flags: &[&str]) -> Result<Config, ConfigError> {
        let args = Probe::try_parse_from(std::iter::once("gatehouse").chain(flags.iter().copied()))
            .unwrap();
        Config::from_args(&args.config)
    }

    #[test]
    fn the_defaults_are_those_of_the_product_spec() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.database_url.expose(), "sqlite://gatehouse.db");
        assert_eq!(config.jwt_alg, JwtAlg::Es256);
        assert_eq!(config.access_token_ttl, Duration::from_secs(30 * 60));
        assert_eq!(config.refresh_reuse_interval, Duration::from_secs(10));
        assert!(!config.insecure_cookies);
        assert_eq!(config.log_format, LogFormat::Pretty);
    }

    #[test]
    fn port_overrides_the_port_of_the_address() {
        let config = parse(&["--addr", "0.0.0.0:8080", "--port", "9999"]).unwrap();
        assert_eq!(config.addr, "0.0.0.0:9999".parse().unwrap());
    }

    #[test]
    fn each_invalid_value_names_its_variable() {
        let cases: &[(&[&str], &str)] = &[
            (&["--addr", "localhost"], "GATEHOUSE_ADDR"),
            (&["--port", "70000"], "PORT"),
            (&["--database-url", "mysql://x/y"], "DATABASE_URL"),
            (&["--public-url", "ftp://x"], "GATEHOUSE_PUBLIC_URL"),
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
                &["--insecure-cookies", "maybe"],
                "GATEHOUSE_INSECURE_COOKIES",
            ),
            (&["--cors-origins", "*"], "GATEHOUSE_CORS_ORIGINS"),
            (
                &["--cors-origins", "https://app.example.com/path"],
                "GATEHOUSE_CORS_ORIGINS",
            ),
            (&["--log-format", "xml"], "GATEHOUSE_LOG_FORMAT"),
            (&["--max-body-bytes", "10"], "GATEHOUSE_MAX_BODY_BYTES"),
            (&["--redis-url", "http://cache"], "REDIS_URL"),
            (&["--supabase-anon-key", "k"], "SUPABASE_URL"),
            (
                &["--supabase-url", "https://x.supabase.co"],
                "SUPABASE_ANON_KEY",
            ),
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
            (&["--jwt-leeway", "1h"], "GATEHOUSE_JWT_LEEWAY"),
            (
                &["--trusted-proxies", "10.0.0.0/33"],
                "GATEHOUSE_TRUSTED_PROXIES",
            ),
            (
                &["--rate-limit-signin-ip", "lots"],
                "GATEHOUSE_RATE_LIMIT_SIGNIN_IP",
            ),
            (&["--rate-limits", "sometimes"], "GATEHOUSE_RATE_LIMITS"),
            (&["--request-timeout", "0s"], "GATEHOUSE_REQUEST_TIMEOUT"),
        ];
        for (flags, variable) in cases {
            let error = parse(flags).expect_err(&format!("{flags:?} should be refused"));
            assert_eq!(error.variable, *variable, "{flags:?}: {error}");
            assert!(error.to_string().starts_with(variable), "{error}");
        }
    }

    #[test]
    fn every_variable_is_documented_in_env_example() {
        use clap::CommandFactory;
        let example =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.env.example"))
                .unwrap();
        let command = crate::cli::Cli::command();
        let variables: Vec<String> = command
            .get_arguments()
            .filter_map(|arg| arg.get_env().map(|v| v.to_string_lossy().into_owned()))
            .collect();
        assert!(variables.len() >= 20, "{variables:?}");
        for variable in variables {
            assert!(
                example.lines().any(|l| l
                    .trim_start_matches("# ")
                    .starts_with(&format!("{variable}="))),
                "{variable} is not documented in .env.example"
            );
        }
    }

    #[test]
    fn cors_origins_are_normalised_origins() {
        let config = parse(&[
            "--cors-origins",
            "https://App.Example.com, http://localhost:5173",
        ])
        .unwrap();
        assert_eq!(
            config.cors_origins,
            vec!["https://app.example.com", "http://localhost:5173"]
        );
    }

    #[test]
    fn secrets_are_redacted_in_the_printed_configuration() {
        let config = parse(&[
            "--jwt-alg",
            "HS256",
            "--jwt-secret",
            "an-hs256-secret-that-is-long-enough-0123",
            "--database-url",
            "postgres://app:pg-password@db/auth",
            "--redis-url",
            "redis://:redis-password@cache:6379",
        ])
        .unwrap();
        let printed = format!("{:?}", config.redacted_entries());
        for secret in ["an-hs256-secret", "pg-password", "redis-password"] {
            assert!(!printed.contains(secret), "{secret} leaked: {printed}");
        }
        assert!(
            printed.contains("\"GATEHOUSE_JWT_SECRET\", \"<redacted>\""),
            "{printed}"
        );
        assert!(
            !format!("{config:?}").contains("an-hs256-secret"),
            "Debug leaks the secret"
        );
    }
}
