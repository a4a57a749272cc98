//! What every service shares: the store, the clock, the settings, the identity provider,
//! the keys, the rate limiter, and how an audit event is made.

use std::sync::Arc;

use gatehouse_store::{AuditRecord, Store};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::api_keys::ApiKeys;
use crate::audit::RequestMeta;
use crate::clock::Clock;
use crate::csrf::Csrf;
use crate::identity::{IdentityProvider, Local, Upstream};
use crate::mail::Postbox;
use crate::password::Hasher;
use crate::protection::AccountGuard;
use crate::ratelimit::{Bucket, Limiter};
use crate::secrets::InstanceSecrets;
use crate::signing_keys::{KeyConfig, KeyRing};
use crate::tokens::TokenService;
use crate::{Error, Settings};

pub(crate) struct Shared {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
    /// Where credentials and sessions live.
    pub identity: IdentityProvider,
    pub keys: Arc<KeyRing>,
    pub csrf: Csrf,
    /// Account protection: vouchers, failure counts, remembered trust.
    pub guard: AccountGuard,
    pub api_keys: ApiKeys,
    pub limiter: Limiter,
    /// The mail flows' keys and settings, when a mailer is configured.
    pub postbox: Option<Arc<Postbox>>,
}

impl Shared {
    pub async fn start(
        store: Store,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Result<Self, Error> {
        let now = clock.now();
        let keys = Arc::new(
            KeyRing::start(
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
            .await?,
        );
        let secrets = Arc::new(InstanceSecrets::new(
            store.clone(),
            settings.key_encryption_key.as_ref(),
        )?);
        let csrf_key = secrets.get("csrf", now).await?;
        let postbox = match &settings.mail {
            Some(mail) => {
                let secret = secrets.get("mail", now).await?;
                Some(Arc::new(Postbox::new(
                    mail.clone(),
                    &secret,
                    &settings.public_url,
                )?))
            }
            None => None,
        };
        let identity = match &settings.upstream {
            Some(upstream) => IdentityProvider::Upstream(Upstream::new(
                store.clone(),
                clock.clone(),
                settings.clone(),
                upstream,
            )?),
            None => IdentityProvider::Local(Local::new(
                store.clone(),
                clock.clone(),
                settings.clone(),
                keys.clone(),
                TokenService::new(settings.issuer(), settings.jwt_leeway),
                Hasher::new(settings.hash_limits)?,
            )),
        };
        let api_keys = ApiKeys::load(secrets, settings.issuer(), now).await?;
        let limiter = Limiter::new(settings.rate_limits.clone()).await?;
        let guard = AccountGuard::new(
            store.clone(),
            clock.clone(),
            settings.protection.clone(),
            &csrf_key,
        );
        Ok(Self {
            store,
            clock,
            identity,
            keys,
            guard,
            csrf: Csrf::new(csrf_key),
            api_keys,
            limiter,
            postbox,
            settings,
        })
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Takes one request from a rate-limit bucket; nothing to limit without a key (an
    /// operator at the CLI has no IP).
    pub async fn limit(&self, bucket: Bucket, key: Option<&str>) -> Result<(), Error> {
        match key {
            Some(key) => {
                let now_ms = i64::try_from(self.now().unix_timestamp_nanos() / 1_000_000)
                    .unwrap_or(i64::MAX);
                self.limiter.check(bucket, key, now_ms).await
            }
            None => Ok(()),
        }
    }

    /// An audit event, to write in the transaction of the change it records.
    pub fn audit_record(
        &self,
        action: &str,
        actor: Option<Uuid>,
        target: Option<Uuid>,
        meta: &RequestMeta,
        details: Value,
    ) -> AuditRecord {
        crate::audit::record(self.now(), action, actor, target, meta, details)
    }

    /// Appends an audit event that records no change of its own (a refusal), in a
    /// transaction of its own.
    pub async fn audit(
        &self,
        action: &str,
        actor: Option<Uuid>,
        target: Option<Uuid>,
        meta: &RequestMeta,
        details: Value,
    ) -> Result<(), Error> {
        let event = self.audit_record(action, actor, target, meta, details);
        self.store.insert_audit_event(&event).await?;
        Ok(())
    }
}
