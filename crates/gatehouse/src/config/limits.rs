//! Abuse resistance: which proxies' `X-Forwarded-For` is believed, the rate limits on the
//! credential endpoints (and the Redis, a secret, that shares their counters), and the
//! bounds on each request's size, time and number in flight.

use std::time::Duration;

use clap::Args;
use gatehouse_core::ratelimit::{Rate, RateLimits};
use gatehouse_http::security::Limits;
use secrecy::SecretString;

use super::redact::{self, Entry};
use super::values::{boolean, duration, list, number};
use super::{err, ConfigError};

#[derive(Debug, Clone, Args)]
pub struct LimitsArgs {
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
    /// Requests that mail a code or a link (forgot password, magic link, resend), per
    /// client IP.
    #[arg(
        long,
        env = "GATEHOUSE_RATE_LIMIT_MAIL_IP",
        global = true,
        default_value = "30/5m"
    )]
    rate_limit_mail_ip: String,
    /// Messages to one email address, whoever asks (429 over_email_send_rate_limit).
    #[arg(
        long,
        env = "GATEHOUSE_RATE_LIMIT_MAIL_ADDRESS",
        global = true,
        default_value = "10/1h"
    )]
    rate_limit_mail_address: String,
    /// Attempts to redeem a mailed code or link, per client IP.
    #[arg(
        long,
        env = "GATEHOUSE_RATE_LIMIT_VERIFY_IP",
        global = true,
        default_value = "30/5m"
    )]
    rate_limit_verify_ip: String,
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
}

/// The validated abuse-resistance settings.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Holds the Redis URL, if any, as a secret.
    pub rate_limits: RateLimits,
    pub requests: Limits,
}

impl LimitSettings {
    pub(super) fn from_args(args: &LimitsArgs) -> Result<Self, ConfigError> {
        let redis_url = redis_url(args.redis_url.as_ref())?;
        let trusted_proxies = list(args.trusted_proxies.as_ref(), |cidr| {
            cidr.parse::<ipnet::IpNet>()
                .or_else(|_| cidr.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    err(
                        "GATEHOUSE_TRUSTED_PROXIES",
                        "trusted-proxies",
                        format!("{cidr:?} is not an IP address or CIDR"),
                    )
                })
        })?;
        let rate = |variable: &'static str, flag: &'static str, raw: &str| {
            raw.parse::<Rate>()
                .map_err(|e| err(variable, flag, format!("{raw:?}: {e}")))
        };
        let rate_limits = RateLimits {
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
            mail_ip: rate(
                "GATEHOUSE_RATE_LIMIT_MAIL_IP",
                "rate-limit-mail-ip",
                &args.rate_limit_mail_ip,
            )?,
            mail_address: rate(
                "GATEHOUSE_RATE_LIMIT_MAIL_ADDRESS",
                "rate-limit-mail-address",
                &args.rate_limit_mail_address,
            )?,
            verify_ip: rate(
                "GATEHOUSE_RATE_LIMIT_VERIFY_IP",
                "rate-limit-verify-ip",
                &args.rate_limit_verify_ip,
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
        let requests = Limits {
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
                Duration::from_secs(10 * 60),
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
            trusted_proxies,
            rate_limits,
            requests,
        })
    }

    pub(super) fn redacted_entries(&self) -> Vec<Entry> {
        let rates = &self.rate_limits;
        vec![
            (
                "GATEHOUSE_TRUSTED_PROXIES",
                self.trusted_proxies
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("GATEHOUSE_RATE_LIMITS", rates.enabled.to_string()),
            (
                "GATEHOUSE_RATE_LIMIT_SIGNIN_IP",
                rates.signin_ip.to_string(),
            ),
            (
                "GATEHOUSE_RATE_LIMIT_SIGNIN_ACCOUNT_IP",
                rates.signin_account_ip.to_string(),
            ),
            (
                "GATEHOUSE_RATE_LIMIT_SIGNUP_IP",
                rates.signup_ip.to_string(),
            ),
            (
                "GATEHOUSE_RATE_LIMIT_REFRESH_IP",
                rates.refresh_ip.to_string(),
            ),
            (
                "GATEHOUSE_RATE_LIMIT_PASSWORD_ACCOUNT",
                rates.password_account.to_string(),
            ),
            ("GATEHOUSE_RATE_LIMIT_MAIL_IP", rates.mail_ip.to_string()),
            (
                "GATEHOUSE_RATE_LIMIT_MAIL_ADDRESS",
                rates.mail_address.to_string(),
            ),
            (
                "GATEHOUSE_RATE_LIMIT_VERIFY_IP",
                rates.verify_ip.to_string(),
            ),
            (
                "GATEHOUSE_RATE_LIMIT_ADMIN_WRITE",
                rates.admin_write.to_string(),
            ),
            (
                "GATEHOUSE_RATE_LIMIT_IPV6_PREFIX",
                rates.ipv6_prefix.to_string(),
            ),
            (
                "GATEHOUSE_REQUEST_TIMEOUT",
                redact::duration(self.requests.request_timeout),
            ),
            (
                "GATEHOUSE_MAX_CONCURRENT_REQUESTS",
                self.requests.max_concurrent_requests.to_string(),
            ),
            (
                "GATEHOUSE_MAX_URL_BYTES",
                self.requests.max_url_bytes.to_string(),
            ),
            (
                "GATEHOUSE_MAX_HEADER_BYTES",
                self.requests.max_header_bytes.to_string(),
            ),
            ("REDIS_URL", redact::url(rates.redis_url.as_ref())),
        ]
    }
}

/// A Redis URL, held as a secret from here on: it can carry Redis's password.
fn redis_url(raw: Option<&String>) -> Result<Option<SecretString>, ConfigError> {
    match raw {
        None => Ok(None),
        Some(raw)
            if raw.starts_with("redis://")
                || raw.starts_with("rediss://")
                || raw.starts_with("unix://") =>
        {
            url::Url::parse(raw)
                .map_err(|e| err("REDIS_URL", "redis-url", format!("not a URL: {e}")))?;
            Ok(Some(SecretString::from(raw.clone())))
        }
        Some(_) => Err(err(
            "REDIS_URL",
            "redis-url",
            "must start with redis://, rediss:// or unix://",
        )),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use crate::config::tests::{assert_each_refused, parse};

    #[test]
    fn the_redis_url_is_a_secret_shown_with_its_password_masked() {
        let config = parse(&["--redis-url", "redis://:redis-password@cache:6379"]).unwrap();
        let redis_url = config.limits.rate_limits.redis_url.as_ref().unwrap();
        assert_eq!(
            redis_url.expose_secret(),
            "redis://:redis-password@cache:6379"
        );
        let printed = format!("{:?}", config.limits.redacted_entries());
        assert!(!printed.contains("redis-password"), "{printed}");
        assert!(printed.contains("redis://:***@cache:6379"), "{printed}");
        for debug in [format!("{config:?}"), format!("{:?}", config.settings())] {
            assert!(!debug.contains("redis-password"), "Debug leaks it: {debug}");
        }
    }

    #[test]
    fn each_invalid_value_names_its_variable() {
        assert_each_refused(&[
            (&["--redis-url", "http://cache"], "REDIS_URL"),
            (
                &["--trusted-proxies", "10.0.0.0/33"],
                "GATEHOUSE_TRUSTED_PROXIES",
            ),
            (
                &["--rate-limit-signin-ip", "lots"],
                "GATEHOUSE_RATE_LIMIT_SIGNIN_IP",
            ),
            (&["--rate-limits", "sometimes"], "GATEHOUSE_RATE_LIMITS"),
            (
                &["--rate-limit-ipv6-prefix", "129"],
                "GATEHOUSE_RATE_LIMIT_IPV6_PREFIX",
            ),
            (&["--request-timeout", "0s"], "GATEHOUSE_REQUEST_TIMEOUT"),
            (&["--max-url-bytes", "1"], "GATEHOUSE_MAX_URL_BYTES"),
        ]);
    }
}
