//! Rate limits on the credential endpoints: GCRA (a token bucket kept as one timestamp per
//! key), in memory by default, in Redis when `REDIS_URL` is set so that every instance
//! shares one limit. Time comes from our [`Clock`](crate::clock::Clock).
//!
//! If Redis stops answering, each instance falls back to its own in-memory limits (and
//! says so in the log) rather than failing open or refusing every sign-in: limits stay
//! enforced, per instance, until Redis is back.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::Error;

/// `limit` requests per `period`, with bursts of up to `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub limit: u32,
    pub period: Duration,
}

impl Rate {
    pub const fn per(limit: u32, period: Duration) -> Self {
        Self { limit, period }
    }

    fn interval_ms(self) -> i64 {
        i64::try_from(self.period.as_millis() / u128::from(self.limit.max(1)))
            .unwrap_or(i64::MAX)
            .max(1)
    }

    fn tolerance_ms(self) -> i64 {
        self.interval_ms()
            .saturating_mul(i64::from(self.limit.max(1)) - 1)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.limit, humantime_like(self.period))
    }
}

fn humantime_like(d: Duration) -> String {
    let s = d.as_secs();
    if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

impl FromStr for Rate {
    type Err = String;

    /// `N/period`, e.g. `30/1m`, `150/5m`, `30/1h`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (limit, period) = s
            .trim()
            .split_once('/')
            .ok_or("write N/period, e.g. 30/1m")?;
        let limit: u32 = limit
            .trim()
            .parse()
            .map_err(|_| "the count must be a whole number".to_owned())?;
        let (digits, unit) = period.trim().split_at(
            period
                .trim()
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(period.trim().len()),
        );
        let n: u64 = if digits.is_empty() {
            1
        } else {
            digits.parse().map_err(|_| "bad period".to_owned())?
        };
        let secs = match unit {
            "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            "d" => n * 86_400,
            _ => return Err("the period unit must be s, m, h or d".into()),
        };
        if limit == 0 || secs == 0 {
            return Err("the count and the period must be positive".into());
        }
        Ok(Self {
            limit,
            period: Duration::from_secs(secs),
        })
    }
}

/// What is limited, and by what key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Sign-in attempts from one IP, whatever the account.
    SigninIp,
    /// Sign-in attempts at one account from one IP: hammering an account is slowed
    /// without locking out its owner, who signs in from elsewhere.
    SigninAccountIp,
    /// Sign-ups from one IP.
    SignupIp,
    /// Refreshes from one IP.
    RefreshIp,
    /// Password changes of one account.
    PasswordAccount,
    /// Admin writes by one admin (or the service-role key).
    AdminWrite,
    /// Requests that send mail (a code or a link) from one IP.
    MailIp,
    /// Mail sent to one address, whoever asked.
    MailAddress,
    /// Attempts to redeem a one-time code or link from one IP.
    VerifyIp,
    /// Audit rows for refused admin requests from one source: every refusal is answered,
    /// but past this rate it is logged instead of written, so that refusals cannot flood
    /// the audit trail.
    DeniedAudit,
}

impl Bucket {
    fn name(self) -> &'static str {
        match self {
            Self::SigninIp => "signin_ip",
            Self::SigninAccountIp => "signin_account_ip",
            Self::SignupIp => "signup_ip",
            Self::RefreshIp => "refresh_ip",
            Self::PasswordAccount => "password_account",
            Self::AdminWrite => "admin_write",
            Self::MailIp => "mail_ip",
            Self::MailAddress => "mail_address",
            Self::VerifyIp => "verify_ip",
            Self::DeniedAudit => "denied_audit",
        }
    }
}

/// The configured rates.
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub enabled: bool,
    pub signin_ip: Rate,
    pub signin_account_ip: Rate,
    pub signup_ip: Rate,
    pub refresh_ip: Rate,
    pub password_account: Rate,
    pub admin_write: Rate,
    /// Requests that mail a code or a link, per IP (GoTrue's `RATE_LIMIT_OTP`: 30 per 5 min).
    pub mail_ip: Rate,
    /// Messages to one address.
    pub mail_address: Rate,
    /// Code and link redemptions per IP (GoTrue's `RATE_LIMIT_VERIFY`: 30 per 5 min).
    pub verify_ip: Rate,
    /// Shared counters; `None` keeps them in this process. A secret: the URL can carry
    /// Redis's password, so it is exposed only where the client is built.
    pub redis_url: Option<SecretString>,
    /// Prefix of every Redis key (separates deployments sharing a Redis).
    pub redis_prefix: String,
    /// IPv6 clients are one source per network of this prefix length (a /64 is what one
    /// customer gets), for rate limits and account protection alike.
    pub ipv6_prefix: u8,
}

impl Default for RateLimits {
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        Self {
            enabled: true,
            signin_ip: Rate::per(30, minute),
            signin_account_ip: Rate::per(10, minute),
            signup_ip: Rate::per(30, 60 * minute),
            refresh_ip: Rate::per(150, 5 * minute),
            password_account: Rate::per(5, 15 * minute),
            admin_write: Rate::per(120, minute),
            mail_ip: Rate::per(30, 5 * minute),
            mail_address: Rate::per(10, 60 * minute),
            verify_ip: Rate::per(30, 5 * minute),
            redis_url: None,
            redis_prefix: "gatehouse".to_owned(),
            ipv6_prefix: 64,
        }
    }
}

/// The key a client address is limited and counted by: an IPv4 address as it is (an
/// IPv4-mapped IPv6 address as its IPv4 address); an IPv6 address as its network of
/// `ipv6_prefix` bits, so one subscriber's /64 is one source however many addresses it
/// takes from it.
pub fn source_key(ip: std::net::IpAddr, ipv6_prefix: u8) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = u32::from(ipv6_prefix.clamp(1, 128));
                let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
                let network = std::net::Ipv6Addr::from(u128::from(v6) & mask);
                format!("{network}/{prefix}")
            }
        },
    }
}

impl RateLimits {
    fn rate(&self, bucket: Bucket) -> Rate {
        match bucket {
            Bucket::SigninIp => self.signin_ip,
            Bucket::SigninAccountIp => self.signin_account_ip,
            Bucket::SignupIp => self.signup_ip,
            Bucket::RefreshIp => self.refresh_ip,
            Bucket::PasswordAccount => self.password_account,
            Bucket::AdminWrite => self.admin_write,
            Bucket::MailIp => self.mail_ip,
            Bucket::MailAddress => self.mail_address,
            Bucket::VerifyIp => self.verify_ip,
            Bucket::DeniedAudit => Rate::per(60, Duration::from_secs(60)),
        }
    }
}

/// GCRA over a theoretical arrival time per key: `Ok` with the new time, or `Err` with
/// how long until a request would be allowed.
fn gcra(tat: Option<i64>, now: i64, rate: Rate) -> Result<i64, i64> {
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat + rate.interval_ms();
    let allow_at = new_tat - rate.interval_ms() - rate.tolerance_ms();
    if now < allow_at {
        Err(allow_at - now)
    } else {
        Ok(new_tat)
    }
}

const GCRA_LUA: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval - tolerance
if now < allow_at then return allow_at - now end
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, new_tat - now))
return 0
";

struct Shared {
    manager: redis::aio::ConnectionManager,
    script: redis::Script,
}

/// The limiter.
pub struct Limiter {
    limits: RateLimits,
    memory: Mutex<HashMap<String, i64>>,
    redis: Option<Shared>,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("enabled", &self.limits.enabled)
            .field("redis", &self.redis.is_some())
            .finish()
    }
}

impl Limiter {
    /// A limiter; connects to Redis when configured (and fails start-up if it cannot).
    pub async fn new(limits: RateLimits) -> Result<Self, Error> {
        let redis = match &limits.redis_url {
            Some(url) => {
                let client = redis::Client::open(url.expose_secret())
                    .map_err(|e| Error::Config(format!("REDIS_URL: {e}")))?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Duration::from_secs(2))
                    .set_response_timeout(Duration::from_millis(500))
                    .set_number_of_retries(1);
                let manager = redis::aio::ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(|e| Error::Config(format!("REDIS_URL: cannot connect: {e}")))?;
                Some(Shared {
                    manager,
                    script: redis::Script::new(GCRA_LUA),
                })
            }
            None => None,
        };
        Ok(Self {
            limits,
            memory: Mutex::new(HashMap::new()),
            redis,
        })
    }

    /// Takes one request from the bucket of `key` at `now_ms`; `RateLimited` when empty.
    pub async fn check(&self, bucket: Bucket, key: &str, now_ms: i64) -> Result<(), Error> {
        if !self.limits.enabled {
            return Ok(());
        }
        let rate = self.limits.rate(bucket);
        let key = format!("{}:rl:{}:{key}", self.limits.redis_prefix, bucket.name());
        let wait_ms = match &self.redis {
            Some(shared) => match self.check_redis(shared, &key, now_ms, rate).await {
                Ok(wait) => wait,
                Err(err) => {
                    tracing::warn!(error = %err, "Redis rate limiting failed; using this instance's own limits");
                    self.check_memory(&key, now_ms, rate)
                }
            },
            None => self.check_memory(&key, now_ms, rate),
        };
        if wait_ms > 0 {
            let retry_after = u64::try_from((wait_ms + 999) / 1000).unwrap_or(1).max(1);
            return Err(Error::RateLimited { retry_after });
        }
        Ok(())
    }

    async fn check_redis(
        &self,
        shared: &Shared,
        key: &str,
        now_ms: i64,
        rate: Rate,
    ) -> redis::RedisResult<i64> {
        let mut conn = shared.manager.clone();
        shared
            .script
            .key(key)
            .arg(now_ms)
            .arg(rate.interval_ms())
            .arg(rate.tolerance_ms())
            .invoke_async(&mut conn)
            .await
    }

    fn check_memory(&self, key: &str, now_ms: i64, rate: Rate) -> i64 {
        let Ok(mut memory) = self.memory.lock() else {
            return 0;
        };
        if memory.len() > 100_000 {
            // Forget keys whose bucket is full again: they hold no information.
            memory.retain(|_, tat| *tat > now_ms);
        }
        match gcra(memory.get(key).copied(), now_ms, rate) {
            Ok(new_tat) => {
                memory.insert(key.to_owned(), new_tat);
                0
            }
            Err(wait) => wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_keyed_by_their_network_and_ipv4_by_address() {
        let key = |ip: &str, prefix| source_key(ip.parse().unwrap(), prefix);
        assert_eq!(key("203.0.113.7", 64), "203.0.113.7");
        assert_eq!(key("::ffff:203.0.113.7", 64), "203.0.113.7");
        assert_eq!(key("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::/64");
        assert_eq!(
            key("2001:db8:1:2:ffff:ffff:ffff:ffff", 64),
            key("2001:db8:1:2::", 64),
            "every address of one /64 is one source"
        );
        assert_ne!(key("2001:db8:1:3::1", 64), key("2001:db8:1:2::1", 64));
        assert_eq!(key("2001:db8:1:2:aaaa::1", 48), "2001:db8:1::/48");
        assert_eq!(key("2001:db8::1", 128), "2001:db8::1/128");
    }

    #[test]
    fn rates_parse_from_count_and_period() {
        assert_eq!(
            "30/1m".parse::<Rate>(),
            Ok(Rate::per(30, Duration::from_secs(60)))
        );
        assert_eq!(
            "150/5m".parse::<Rate>(),
            Ok(Rate::per(150, Duration::from_secs(300)))
        );
        assert_eq!(
            "10/h".parse::<Rate>(),
            Ok(Rate::per(10, Duration::from_secs(3600)))
        );
        for bad in ["", "30", "0/1m", "30/0m", "x/1m", "30/1w"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn gcra_allows_a_burst_then_one_per_interval() {
        let rate = Rate::per(3, Duration::from_secs(3));
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(gcra(tat, 0, rate).unwrap());
        }
        assert_eq!(
            gcra(tat, 0, rate),
            Err(1000),
            "the fourth waits one interval"
        );
        assert!(gcra(tat, 1000, rate).is_ok());
    }

    #[tokio::test]
    async fn the_memory_limiter_keeps_keys_apart() {
        let limiter = Limiter::new(RateLimits {
            signin_ip: Rate::per(2, Duration::from_secs(60)),
            ..RateLimits::default()
        })
        .await
        .unwrap();
        assert!(limiter.check(Bucket::SigninIp, "1.2.3.4", 0).await.is_ok());
        assert!(limiter.check(Bucket::SigninIp, "1.2.3.4", 0).await.is_ok());
        assert!(matches!(
            limiter.check(Bucket::SigninIp, "1.2.3.4", 0).await,
            Err(Error::RateLimited { retry_after: 30 })
        ));
        assert!(limiter.check(Bucket::SigninIp, "5.6.7.8", 0).await.is_ok());
        assert!(limiter.check(Bucket::SignupIp, "1.2.3.4", 0).await.is_ok());
        assert!(limiter
            .check(Bucket::SigninIp, "1.2.3.4", 30_000)
            .await
            .is_ok());
    }
}
