//! Account protection: failed sign-ins slow and stop the source they come from, and 100
//! consecutive failures stop the account (NIST SP 800-63B) — but only for attempts nothing
//! vouches for, so that the stop is not a way to lock an owner out (ASVS 6.1.1). Two things
//! vouch: a device cookie this server gave the browser at a successful sign-in (OWASP's
//! device-cookie pattern: signed, bound to the user, rotated on every use, remembered
//! server-side), and a source (client IP, IPv6 by prefix) the account signed in from in the
//! last 30 days. Vouched-for attempts keep limits of their own: per device, or per source.

use std::time::Duration;

use std::sync::Arc;

use gatehouse_store::{Store, Transaction, Trust, TrustKind};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;

use crate::audit::RequestMeta;
use crate::clock::Clock;
use crate::crypto::{b64url, b64url_decode, hmac_sha256, hmac_sha256_verify, random_bytes, sha256};
use crate::Error;
use gatehouse_store::UserRecord;

/// How failed sign-ins are slowed and stopped.
#[derive(Debug, Clone)]
pub struct Protection {
    /// From this many failures of one identifier from one source, each further attempt
    /// waits 1 s, then 2, 4, ... up to `max_delay`.
    pub delay_after: i32,
    pub max_delay: Duration,
    /// At this many, the (identifier, source) pair is locked for `lock_for`.
    pub lock_after: i32,
    pub lock_for: Duration,
    /// Consecutive failures of an account, from anywhere, at which it is stopped for
    /// attempts nothing vouches for, until an admin unlocks it (NIST: at most 100).
    pub hard_cap: i32,
    /// How long a device cookie is valid, and remembered, after its last sign-in.
    pub device_lifetime: Duration,
    /// How long a source the account signed in from vouches for it.
    pub known_source_for: Duration,
    /// Devices remembered per account (the oldest are forgotten first).
    pub devices_per_account: i64,
}

impl Default for Protection {
    fn default() -> Self {
        Self {
            delay_after: 3,
            max_delay: Duration::from_secs(60),
            lock_after: 10,
            lock_for: Duration::from_secs(15 * 60),
            hard_cap: 100,
            device_lifetime: Duration::from_secs(365 * 24 * 3600),
            known_source_for: Duration::from_secs(30 * 24 * 3600),
            devices_per_account: 20,
        }
    }
}

/// Signs and reads device cookies: `<user id>.<nonce>.<tag>`, base64url, the tag an
/// HMAC-SHA256 of the user id and the nonce under a key derived from the deployment's
/// CSRF secret.
pub(crate) struct DeviceCookies {
    key: [u8; 32],
}

impl std::fmt::Debug for DeviceCookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceCookies(..)")
    }
}

/// A device cookie whose signature checked: whose it is, and the key it is remembered by.
#[derive(Debug, Clone)]
pub(crate) struct Device {
    pub user: Uuid,
    /// SHA-256 of the nonce, base64url: what the store keeps (the cookie itself is never
    /// stored).
    pub key: String,
}

impl DeviceCookies {
    pub(crate) fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac_sha256(secret, b"gatehouse device cookies v1"),
        }
    }

    fn signed(&self, user: Uuid, nonce: &[u8]) -> [u8; 32] {
        let mut data = user.as_bytes().to_vec();
        data.extend_from_slice(nonce);
        hmac_sha256(&self.key, &data)
    }

    /// A fresh cookie for `user`, and the key it is remembered by.
    pub(crate) fn issue(&self, user: Uuid) -> Result<(SecretString, String), Error> {
        let nonce = random_bytes::<32>()?;
        let cookie = format!(
            "{}.{}.{}",
            b64url(user.as_bytes()),
            b64url(&nonce),
            b64url(&self.signed(user, &nonce))
        );
        Ok((SecretString::from(cookie), b64url(&sha256(&nonce))))
    }

    /// The device a cookie names, if we signed it; `None` for anything else.
    pub(crate) fn read(&self, cookie: &str) -> Option<Device> {
        if cookie.len() > 200 {
            return None;
        }
        let mut parts = cookie.split('.');
        let (user, nonce, tag) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let user = Uuid::from_slice(&b64url_decode(user)?).ok()?;
        let nonce = b64url_decode(nonce).filter(|n| n.len() == 32)?;
        let mut data = user.as_bytes().to_vec();
        data.extend_from_slice(&nonce);
        hmac_sha256_verify(&self.key, &data, &b64url_decode(tag)?).then(|| Device {
            user,
            key: b64url(&sha256(&nonce)),
        })
    }
}

/// What vouches for one sign-in attempt at a known account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Voucher {
    /// A device cookie of this account that we remember.
    Device(String),
    /// A source this account signed in from recently.
    KnownSource,
    Nothing,
}

impl Voucher {
    pub(crate) fn vouches(&self) -> bool {
        !matches!(self, Self::Nothing)
    }

    /// What the attempt's failures are counted by: its device, or its source.
    pub(crate) fn failure_source(&self, source: &str) -> String {
        match self {
            Self::Device(key) => format!("device:{key}"),
            _ => source.to_owned(),
        }
    }
}

/// Account protection at work: what vouches for an attempt, the failures counted, the
/// trust remembered. One per service, held by the shared context.
pub(crate) struct AccountGuard {
    store: Store,
    clock: Arc<dyn Clock>,
    settings: Protection,
    devices: DeviceCookies,
    /// Keys the digests of typed identifiers in the audit trail.
    identifier_key: [u8; 32],
}

impl AccountGuard {
    /// The guard, keyed by the deployment's secret (device cookies and identifier digests
    /// are derived from it).
    pub(crate) fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        settings: Protection,
        secret: &[u8],
    ) -> Self {
        Self {
            store,
            clock,
            settings,
            devices: DeviceCookies::new(secret),
            identifier_key: hmac_sha256(secret, b"gatehouse audit identifiers v1"),
        }
    }

    fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    /// What vouches for an attempt at `user` from `meta` with `device_cookie`.
    pub(crate) async fn voucher(
        &self,
        user: Uuid,
        device_cookie: Option<&SecretString>,
        meta: &RequestMeta,
    ) -> Result<Voucher, Error> {
        let now = self.now();
        let protection = &self.settings;
        if let Some(device) = device_cookie
            .and_then(|c| self.devices.read(c.expose_secret()))
            .filter(|d| d.user == user)
        {
            let since = (now - protection.device_lifetime).into();
            if self
                .store
                .is_trusted(user, TrustKind::Device, &device.key, since)
                .await?
            {
                return Ok(Voucher::Device(device.key));
            }
        }
        if let Some(source) = &meta.source {
            let since = (now - protection.known_source_for).into();
            if self
                .store
                .is_trusted(user, TrustKind::Source, source, since)
                .await?
            {
                return Ok(Voucher::KnownSource);
            }
        }
        Ok(Voucher::Nothing)
    }

    /// After a successful sign-in: the source becomes known, and a browser gets a new
    /// device cookie that replaces the one it came with. Returns the cookie to set.
    pub(crate) async fn remember_sign_in(
        &self,
        tx: &mut Transaction,
        user: Uuid,
        voucher: &Voucher,
        wants_device: bool,
        meta: &RequestMeta,
    ) -> Result<Option<SecretString>, Error> {
        let now = self.now();
        let protection = &self.settings;
        if let Some(source) = &meta.source {
            let forget = (now - protection.known_source_for).into();
            let trust = Trust {
                user,
                kind: TrustKind::Source,
                key: source,
                replaces: None,
            };
            tx.trust(&trust, now.into(), forget, 100).await?;
        }
        if !wants_device {
            return Ok(None);
        }
        let (cookie, key) = self.devices.issue(user)?;
        let replaces = match voucher {
            Voucher::Device(old) => Some(old.as_str()),
            _ => None,
        };
        let forget = (now - protection.device_lifetime).into();
        let trust = Trust {
            user,
            kind: TrustKind::Device,
            key: &key,
            replaces,
        };
        tx.trust(&trust, now.into(), forget, protection.devices_per_account)
            .await?;
        Ok(Some(cookie))
    }

    /// A keyed hash of what was typed as an identifier, for the audit trail: equal inputs
    /// can be correlated, but nothing typed (a password in the email field) is stored.
    pub(crate) fn identifier_digest(&self, who: &str) -> String {
        b64url(&hmac_sha256(&self.identifier_key, who.as_bytes()))
    }

    /// Refuses an attempt that comes too soon after failures from the same source: a
    /// delay that doubles with each failure past the third, and a lock of the pair past the
    /// tenth. The same for unknown identifiers, so the answer says nothing of existence.
    pub(crate) async fn check_failures(&self, who: &str, source: &str) -> Result<(), Error> {
        let Some(failures) = self.store.get_sign_in_failures(who, source).await? else {
            return Ok(());
        };
        let now = self.now();
        let protection = &self.settings;
        // Rounded up: a client that waits what it is told is never refused again.
        let wait = |until: time::OffsetDateTime| Error::RateLimited {
            retry_after: u64::try_from(((until - now).whole_milliseconds() + 999) / 1000)
                .unwrap_or(0)
                .max(1),
        };
        if let Some(until) = failures
            .locked_until
            .map(gatehouse_store::Timestamp::get)
            .filter(|u| *u > now)
        {
            return Err(wait(until));
        }
        if failures.failures >= protection.delay_after {
            let doublings = u32::try_from(failures.failures - protection.delay_after)
                .unwrap_or(0)
                .min(16);
            let delay = Duration::from_secs(1u64 << doublings).min(protection.max_delay);
            let ready = failures.last_failure_at.get() + delay;
            if now < ready {
                return Err(wait(ready));
            }
        }
        Ok(())
    }

    /// Counts a failure against the (identifier, source) pair and, for a real account,
    /// against the account; audits the locks this reaches.
    pub(crate) async fn count_failure(
        &self,
        tx: &mut Transaction,
        who: &str,
        source: &str,
        user: Option<Uuid>,
        meta: &RequestMeta,
    ) -> Result<(), Error> {
        let now = self.now();
        let protection = &self.settings;
        let record = tx
            .record_sign_in_failure(
                who,
                source,
                now.into(),
                protection.lock_after,
                (now + protection.lock_for).into(),
            )
            .await?;
        if record.failures == protection.lock_after {
            let details = json!({
                "source": source,
                "until": (now + protection.lock_for).to_string(),
                "identifier_digest": self.identifier_digest(who),
            });
            let event = crate::audit::record(
                now,
                "user.signin_locked_from_source",
                None,
                user,
                meta,
                details,
            );
            tx.insert_audit_event(&event).await?;
        }
        if let Some(id) = user {
            let (count, locked) = tx
                .count_user_failure(id, now.into(), protection.hard_cap)
                .await?;
            if locked {
                let details = json!({ "consecutive_failures": count });
                let event = crate::audit::record(now, "user.locked", None, Some(id), meta, details);
                tx.insert_audit_event(&event).await?;
                tracing::warn!(user_id = %id, "account locked after {count} consecutive failed sign-ins");
            }
        }
        Ok(())
    }
}

/// Lifts the hard stop on `user` and forgets the failures counted under its identifiers,
/// in `tx`: what an admin's unlock and an owner's mailed unlock link both do.
pub(crate) async fn lift_hard_stop(tx: &mut Transaction, user: &UserRecord) -> Result<(), Error> {
    tx.reset_user_failures(user.id, true).await?;
    let mut identifiers = Vec::new();
    if let Some(email) = &user.email {
        identifiers.push(crate::Identifier::Email(email.clone()).failure_key());
    }
    if let Some(username) = &user.username {
        identifiers.push(crate::Identifier::Username(username.clone()).failure_key());
    }
    tx.clear_all_sign_in_failures(&identifiers).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_cookies_read_only_when_we_signed_them_for_that_user() {
        let cookies = DeviceCookies::new(b"a deployment secret of some length");
        let user = Uuid::now_v7();
        let (cookie, key) = cookies.issue(user).unwrap();
        let device = cookies.read(cookie.expose_secret()).unwrap();
        assert_eq!((device.user, device.key.as_str()), (user, key.as_str()));
        let other = DeviceCookies::new(b"another deployment's secret");
        assert!(other.read(cookie.expose_secret()).is_none());
        // The same nonce and tag under another user id: refused.
        let text = cookie.expose_secret().to_owned();
        let (_, rest) = text.split_once('.').unwrap();
        let moved = format!("{}.{rest}", b64url(Uuid::now_v7().as_bytes()));
        assert!(cookies.read(&moved).is_none());
        for junk in ["", "a.b.c", "...", &format!("{text}.x"), &"A".repeat(500)] {
            assert!(cookies.read(junk).is_none(), "{junk}");
        }
        let (again, _) = cookies.issue(user).unwrap();
        assert_ne!(
            again.expose_secret(),
            cookie.expose_secret(),
            "every cookie is new"
        );
    }
}
