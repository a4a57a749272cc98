//! How `config check` shows the configuration: secrets as `<redacted>`, passwords in URLs
//! as `***`, durations as humantime writes them, and every variable in one fixed order.
//! Each subsystem lists its own entries with these helpers.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// A variable and its value as printed.
pub(super) type Entry = (&'static str, String);

/// The order `config check` prints in, which predates the split by subsystem (scripts
/// may diff it). A test keeps it in step with the entries the subsystems list.
const PRINT_ORDER: &[&str] = &[
    "GATEHOUSE_ADDR",
    "DATABASE_URL",
    "GATEHOUSE_DB_MAX_CONNECTIONS",
    "GATEHOUSE_DB_CONNECT_TIMEOUT",
    "GATEHOUSE_PUBLIC_URL",
    "GATEHOUSE_JWT_ALG",
    "GATEHOUSE_JWT_SECRET",
    "GATEHOUSE_KEY_ENCRYPTION_KEY",
    "GATEHOUSE_ACCESS_TOKEN_TTL",
    "GATEHOUSE_REFRESH_REUSE_INTERVAL",
    "GATEHOUSE_SESSION_IDLE_TIMEOUT",
    "GATEHOUSE_SESSION_MAX_LIFETIME",
    "GATEHOUSE_REAUTH_WINDOW",
    "GATEHOUSE_INSECURE_COOKIES",
    "GATEHOUSE_CORS_ORIGINS",
    "GATEHOUSE_LOG_FORMAT",
    "GATEHOUSE_LOG",
    "GATEHOUSE_MAX_BODY_BYTES",
    "GATEHOUSE_SHUTDOWN_TIMEOUT",
    "GATEHOUSE_TRUSTED_PROXIES",
    "GATEHOUSE_RATE_LIMITS",
    "GATEHOUSE_RATE_LIMIT_SIGNIN_IP",
    "GATEHOUSE_RATE_LIMIT_SIGNIN_ACCOUNT_IP",
    "GATEHOUSE_RATE_LIMIT_SIGNUP_IP",
    "GATEHOUSE_RATE_LIMIT_REFRESH_IP",
    "GATEHOUSE_RATE_LIMIT_PASSWORD_ACCOUNT",
    "GATEHOUSE_RATE_LIMIT_ADMIN_WRITE",
    "GATEHOUSE_RATE_LIMIT_MAIL_IP",
    "GATEHOUSE_RATE_LIMIT_MAIL_ADDRESS",
    "GATEHOUSE_RATE_LIMIT_VERIFY_IP",
    "GATEHOUSE_RATE_LIMIT_IPV6_PREFIX",
    "GATEHOUSE_REQUEST_TIMEOUT",
    "GATEHOUSE_MAX_CONCURRENT_REQUESTS",
    "GATEHOUSE_MAX_URL_BYTES",
    "GATEHOUSE_MAX_HEADER_BYTES",
    "REDIS_URL",
    "SUPABASE_URL",
    "SUPABASE_ANON_KEY",
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_JWT_SECRET",
    "GATEHOUSE_UPSTREAM_TIMEOUT",
    "GATEHOUSE_SMTP_URL",
    "GATEHOUSE_MAILER",
    "GATEHOUSE_MAIL_FROM",
    "GATEHOUSE_MAILER_AUTOCONFIRM",
    "GATEHOUSE_OTP_TTL",
    "GATEHOUSE_SITE_URL",
    "GATEHOUSE_REDIRECT_URLS",
    "GATEHOUSE_MAIL_TEMPLATES_DIR",
];

/// The subsystems' entries in [`PRINT_ORDER`] (any missing from it last).
pub(super) fn in_print_order(mut entries: Vec<Entry>) -> Vec<Entry> {
    entries.sort_by_key(|(name, _)| {
        PRINT_ORDER
            .iter()
            .position(|n| n == name)
            .unwrap_or(PRINT_ORDER.len())
    });
    entries
}

/// `<redacted>` when set, `<unset>` when not (or empty).
pub(super) fn secret(secret: Option<&SecretString>) -> String {
    match secret {
        Some(s) if !s.expose_secret().is_empty() => "<redacted>".to_owned(),
        _ => "<unset>".to_owned(),
    }
}

/// A URL secret because of its password: shown with the password as `***`.
pub(super) fn url(url: Option<&SecretString>) -> String {
    url.map_or_else(
        || "<unset>".to_owned(),
        |u| gatehouse_core::store::mask_database_url(u.expose_secret()),
    )
}

pub(super) fn duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::PRINT_ORDER;
    use crate::config::tests::parse;

    #[test]
    fn every_printed_variable_has_its_place_in_the_print_order() {
        let entries = parse(&[]).unwrap().redacted_entries();
        let names: Vec<&str> = entries.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, PRINT_ORDER);
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
