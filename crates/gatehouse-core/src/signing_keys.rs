//! Signing keys: generated on first start and kept in the database (private parts sealed
//! when a key-encryption key is configured), published as a JWKS, rotated with a
//! publish-before-sign delay, and reloaded by every instance so that a key any instance
//! (or the CLI) adds is known everywhere within [`RELOAD_EVERY`].

mod set;

use set::{generate, hs256_key, key_pair};
pub use set::{JwtAlg, KeySet, LoadedKey};

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use gatehouse_store::{Json, SigningKeyRecord, Store, Timestamp};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::crypto::{b64url, random_bytes, Sealer};
use crate::Error;

/// How often an instance re-reads the key table.
pub const RELOAD_EVERY: Duration = Duration::from_secs(30);
/// The least time between two reloads caused by an unknown `kid`.
const MIN_RELOAD_GAP: Duration = Duration::from_secs(1);

/// How a key stands at a moment, for `gatehouse keys list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published, not signing yet.
    Next,
    /// Signing.
    Active,
    /// No longer signing; still published until its tokens have expired.
    Retired,
    /// Gone from the JWKS.
    Expired,
}

/// A key as `gatehouse keys list` shows it. No private part.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    pub state: KeyState,
    pub sealed: bool,
    pub created_at: Timestamp,
    pub signs_from: Timestamp,
    pub retired_at: Option<Timestamp>,
    pub publish_until: Option<Timestamp>,
}

/// The key configuration the ring needs.
#[derive(Clone)]
pub struct KeyConfig {
    pub alg: JwtAlg,
    pub hs256_secret: Option<secrecy::SecretString>,
    pub key_encryption_key: Option<secrecy::SecretString>,
    /// How long a retired key stays published: the access-token lifetime plus leeway.
    pub retire_grace: Duration,
    /// How long a rotated-in key is published before it signs.
    pub publish_ahead: Duration,
}

impl fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyConfig")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Every instance's view of the key table, refreshed as it ages.
pub struct KeyRing {
    store: Store,
    config: KeyConfig,
    sealer: Option<Sealer>,
    hs256: Option<Arc<LoadedKey>>,
    set: RwLock<Arc<KeySet>>,
    loaded_at: Mutex<Instant>,
    reloading: tokio::sync::Mutex<()>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("alg", &self.config.alg)
            .finish_non_exhaustive()
    }
}

fn lock_err<T>(_: T) -> Error {
    Error::Internal("key ring lock poisoned".into())
}

impl KeyRing {
    /// Loads the key table, generating a signing key for the configured algorithm when
    /// there is none (first start, or the algorithm changed; keys of the old algorithm
    /// then retire and stay published until their tokens expire).
    pub async fn start(
        store: Store,
        config: KeyConfig,
        now: OffsetDateTime,
    ) -> Result<Self, Error> {
        use secrecy::ExposeSecret;
        let sealer = match &config.key_encryption_key {
            Some(kek) => Some(Sealer::new(
                kek.expose_secret().as_bytes(),
                "gatehouse signing keys v1",
            )?),
            None => None,
        };
        let hs256 = match (&config.alg, &config.hs256_secret) {
            (JwtAlg::Hs256, Some(secret)) => {
                Some(Arc::new(hs256_key(secret.expose_secret().as_bytes())))
            }
            (JwtAlg::Hs256, None) => {
                return Err(Error::Config(
                    "GATEHOUSE_JWT_SECRET is required for HS256".into(),
                ))
            }
            _ => None,
        };
        let ring = Self {
            store,
            config,
            sealer,
            hs256,
            set: RwLock::new(Arc::new(KeySet::default())),
            loaded_at: Mutex::new(Instant::now()),
            reloading: tokio::sync::Mutex::new(()),
        };
        ring.seal_plain_keys().await?;
        ring.reload().await?;
        if ring.config.alg != JwtAlg::Hs256
            && ring
                .current_set()?
                .signing_key(ring.config.alg, now)
                .is_none()
        {
            let record = ring.new_record(ring.config.alg, now, now)?;
            ring.retire_signing_keys(now, now + ring.config.retire_grace, now)
                .await?;
            ring.store.insert_signing_key(&record).await?;
            tracing::info!(kid = %record.kid, alg = %record.alg, "generated a signing key");
            ring.reload().await?;
        }
        Ok(ring)
    }

    /// With a key-encryption key, seals private keys stored before it was configured, so
    /// that none stays readable in the database.
    async fn seal_plain_keys(&self) -> Result<(), Error> {
        let Some(sealer) = &self.sealer else {
            return Ok(());
        };
        for record in self.store.list_signing_keys().await? {
            if !record.private_key_sealed {
                let sealed = sealer.seal(&record.private_key, record.kid.as_bytes())?;
                if self
                    .store
                    .seal_signing_key(&record.kid, &record.private_key, &sealed)
                    .await?
                {
                    tracing::info!(kid = %record.kid, "sealed a plain signing key under the key-encryption key");
                }
            }
        }
        Ok(())
    }

    fn current_set(&self) -> Result<Arc<KeySet>, Error> {
        Ok(self.set.read().map_err(lock_err)?.clone())
    }

    /// The configured signing algorithm.
    pub fn alg(&self) -> JwtAlg {
        self.config.alg
    }

    /// The current keys, re-read from the database when older than [`RELOAD_EVERY`].
    pub async fn keys(&self) -> Result<Arc<KeySet>, Error> {
        let stale = self.loaded_at.lock().map_err(lock_err)?.elapsed() > RELOAD_EVERY;
        if stale {
            // One request reloads; the others go on with what they have.
            if let Ok(_guard) = self.reloading.try_lock() {
                self.reload().await?;
            }
        }
        self.current_set()
    }

    /// Re-reads the key table because a token named a `kid` this instance does not know
    /// (another instance or the CLI may have added it). At most once per second.
    pub async fn reload_for_unknown_kid(&self) -> Result<Arc<KeySet>, Error> {
        let recent = self.loaded_at.lock().map_err(lock_err)?.elapsed() < MIN_RELOAD_GAP;
        if !recent {
            let _guard = self.reloading.lock().await;
            if self.loaded_at.lock().map_err(lock_err)?.elapsed() >= MIN_RELOAD_GAP {
                self.reload().await?;
            }
        }
        self.current_set()
    }

    /// Re-reads the key table now.
    pub async fn reload(&self) -> Result<(), Error> {
        let records = self.store.list_signing_keys().await?;
        let mut keys = Vec::with_capacity(records.len() + 1);
        for record in records {
            keys.push(self.load(&record)?);
        }
        if let Some(hs) = &self.hs256 {
            keys.push(LoadedKey {
                kid: hs.kid.clone(),
                alg: JwtAlg::Hs256,
                public_jwk: None,
                encoding: hs.encoding.clone(),
                decoding: hs.decoding.clone(),
                signs_from: OffsetDateTime::UNIX_EPOCH,
                retired_at: None,
                publish_until: None,
            });
        }
        *self.set.write().map_err(lock_err)? = Arc::new(KeySet::new(keys));
        *self.loaded_at.lock().map_err(lock_err)? = Instant::now();
        Ok(())
    }

    fn load(&self, record: &SigningKeyRecord) -> Result<LoadedKey, Error> {
        let alg = JwtAlg::from_str(&record.alg).map_err(|()| {
            Error::Config(format!(
                "signing key {} has unknown alg {}",
                record.kid, record.alg
            ))
        })?;
        let der = match (record.private_key_sealed, &self.sealer) {
            (false, _) => record.private_key.clone(),
            (true, Some(sealer)) => sealer.open(&record.private_key, record.kid.as_bytes()).ok_or_else(|| {
                Error::Config(format!("GATEHOUSE_KEY_ENCRYPTION_KEY does not open signing key {}", record.kid))
            })?,
            (true, None) => {
                return Err(Error::Config(
                    "the signing keys are encrypted: set GATEHOUSE_KEY_ENCRYPTION_KEY to the key they were sealed with"
                        .into(),
                ))
            }
        };
        let jwk = &record.public_jwk.0;
        let (encoding, decoding) = key_pair(&record.kid, alg, &der, jwk)?;
        Ok(LoadedKey {
            kid: record.kid.clone(),
            alg,
            public_jwk: Some(jwk.clone()),
            encoding,
            decoding,
            signs_from: record.signs_from.get(),
            retired_at: record.retired_at.map(Timestamp::get),
            publish_until: record.publish_until.map(Timestamp::get),
        })
    }

    fn new_record(
        &self,
        alg: JwtAlg,
        now: OffsetDateTime,
        signs_from: OffsetDateTime,
    ) -> Result<SigningKeyRecord, Error> {
        let kid = b64url(&random_bytes::<12>()?);
        let (pkcs8, mut jwk) = generate(alg)?;
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(alg.as_str());
        jwk["use"] = json!("sig");
        jwk["key_ops"] = json!(["verify"]);
        let (private_key, sealed) = match &self.sealer {
            Some(sealer) => (sealer.seal(&pkcs8, kid.as_bytes())?, true),
            None => (pkcs8, false),
        };
        Ok(SigningKeyRecord {
            kid,
            alg: alg.as_str().to_owned(),
            public_jwk: Json(jwk),
            private_key,
            private_key_sealed: sealed,
            created_at: now.into(),
            signs_from: signs_from.into(),
            retired_at: None,
            publish_until: None,
        })
    }

    async fn retire_signing_keys(
        &self,
        retired_at: OffsetDateTime,
        publish_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        for key in self.store.list_signing_keys().await? {
            let still_signing = key.retired_at.is_none_or(|r| r.get() > retired_at);
            let published = key.publish_until.is_none_or(|u| u.get() > now);
            if still_signing && published {
                self.store
                    .retire_signing_key(&key.kid, retired_at.into(), publish_until.into())
                    .await?;
            }
        }
        Ok(())
    }

    /// Adds a key that signs after [`KeyConfig::publish_ahead`] (so that every JWKS cache
    /// has seen it first); the keys signing now retire then and stay published until their
    /// last token has expired. With `immediate`, the new key signs at once and the old
    /// ones leave the JWKS at once, invalidating their tokens: for a leaked key.
    pub async fn rotate(&self, now: OffsetDateTime, immediate: bool) -> Result<KeyInfo, Error> {
        if self.config.alg == JwtAlg::Hs256 {
            return Err(Error::Config(
                "with GATEHOUSE_JWT_ALG=HS256 the key is GATEHOUSE_JWT_SECRET: rotate it there"
                    .into(),
            ));
        }
        let signs_from = if immediate {
            now
        } else {
            now + self.config.publish_ahead
        };
        let publish_until = if immediate {
            now
        } else {
            signs_from + self.config.retire_grace
        };
        let record = self.new_record(self.config.alg, now, signs_from)?;
        self.retire_signing_keys(signs_from, publish_until, now)
            .await?;
        self.store.insert_signing_key(&record).await?;
        self.reload().await?;
        Ok(key_info(&record, now))
    }

    /// Every key in the table with its state at `now`.
    pub async fn list(&self, now: OffsetDateTime) -> Result<Vec<KeyInfo>, Error> {
        Ok(self
            .store
            .list_signing_keys()
            .await?
            .iter()
            .map(|r| key_info(r, now))
            .collect())
    }
}

fn key_info(record: &SigningKeyRecord, now: OffsetDateTime) -> KeyInfo {
    let state = if record.publish_until.is_some_and(|u| u.get() <= now) {
        KeyState::Expired
    } else if record.retired_at.is_some_and(|r| r.get() <= now) {
        KeyState::Retired
    } else if record.signs_from.get() > now {
        KeyState::Next
    } else {
        KeyState::Active
    };
    KeyInfo {
        kid: record.kid.clone(),
        alg: record.alg.clone(),
        state,
        sealed: record.private_key_sealed,
        created_at: record.created_at,
        signs_from: record.signs_from,
        retired_at: record.retired_at,
        publish_until: record.publish_until,
    }
}
