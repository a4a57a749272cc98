//! Signing keys: generated on first start and kept in the database (private parts sealed
//! when a key-encryption key is configured), published as a JWKS, rotated with a
//! publish-before-sign delay, and reloaded by every instance so that a key any instance
//! (or the CLI) adds is known everywhere within [`RELOAD_EVERY`].

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::Engine;
use gatehouse_store::{Json, SigningKeyRecord, Store, Timestamp};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::Serialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::crypto::{b64url, random_bytes, sha256, Sealer};
use crate::Error;

/// How often an instance re-reads the key table.
pub const RELOAD_EVERY: Duration = Duration::from_secs(30);
/// The least time between two reloads caused by an unknown `kid`.
const MIN_RELOAD_GAP: Duration = Duration::from_secs(1);

/// The access-token signing algorithms gatehouse supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlg {
    /// ECDSA P-256 with SHA-256: the default, and what supabase-js verifies locally.
    Es256,
    /// RSA PKCS#1 v1.5 with SHA-256, 2048-bit keys.
    Rs256,
    /// Ed25519.
    EdDsa,
    /// HMAC-SHA256 with a shared secret (Supabase's legacy scheme).
    Hs256,
}

impl JwtAlg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
            Self::EdDsa => "EdDSA",
            Self::Hs256 => "HS256",
        }
    }
}

impl fmt::Display for JwtAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JwtAlg {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "ES256" => Ok(Self::Es256),
            "RS256" => Ok(Self::Rs256),
            "EdDSA" => Ok(Self::EdDsa),
            "HS256" => Ok(Self::Hs256),
            _ => Err(()),
        }
    }
}

/// A key ready to sign and verify.
pub struct LoadedKey {
    pub kid: String,
    pub alg: JwtAlg,
    /// The public JWK; `None` for the HS256 secret, which is never published.
    pub public_jwk: Option<Value>,
    pub(crate) encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
    pub signs_from: OffsetDateTime,
    pub retired_at: Option<OffsetDateTime>,
    pub publish_until: Option<OffsetDateTime>,
}

impl fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl LoadedKey {
    /// A fresh key pair in memory, signing from the epoch on, never retired: for tools,
    /// benchmarks and fuzzing. The service's own keys come from the database.
    pub fn generate(alg: JwtAlg, kid: &str) -> Result<Self, Error> {
        if alg == JwtAlg::Hs256 {
            let mut key = hs256_key(&random_bytes::<32>()?);
            kid.clone_into(&mut key.kid);
            return Ok(key);
        }
        let (der, jwk) = generate(alg)?;
        let (encoding, decoding) = key_pair(kid, alg, &der, &jwk)?;
        Ok(Self {
            kid: kid.to_owned(),
            alg,
            public_jwk: Some(jwk),
            encoding,
            decoding,
            signs_from: OffsetDateTime::UNIX_EPOCH,
            retired_at: None,
            publish_until: None,
        })
    }

    fn signs_at(&self, now: OffsetDateTime) -> bool {
        self.signs_from <= now && self.retired_at.is_none_or(|r| r > now)
    }

    fn published_at(&self, now: OffsetDateTime) -> bool {
        self.publish_until.is_none_or(|u| u > now)
    }
}

/// The keys known at one moment.
#[derive(Debug, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<LoadedKey>>,
    ordered: Vec<Arc<LoadedKey>>,
}

impl KeySet {
    /// A set of the given keys (for tools, benchmarks and fuzzing).
    pub fn from_keys(keys: Vec<LoadedKey>) -> Self {
        Self::new(keys)
    }

    fn new(keys: Vec<LoadedKey>) -> Self {
        let ordered: Vec<Arc<LoadedKey>> = keys.into_iter().map(Arc::new).collect();
        let by_kid = ordered.iter().map(|k| (k.kid.clone(), k.clone())).collect();
        Self { by_kid, ordered }
    }

    /// The key that signs `alg` tokens at `now`: the newest whose time has come.
    pub fn signing_key(&self, alg: JwtAlg, now: OffsetDateTime) -> Option<&Arc<LoadedKey>> {
        self.ordered
            .iter()
            .filter(|k| k.alg == alg && k.signs_at(now))
            .max_by_key(|k| k.signs_from)
    }

    /// The published key called `kid`.
    pub fn verification_key(&self, kid: &str, now: OffsetDateTime) -> Option<&Arc<LoadedKey>> {
        self.by_kid.get(kid).filter(|k| k.published_at(now))
    }

    /// `{"keys": [...]}`: the public half of every published asymmetric key.
    pub fn jwks(&self, now: OffsetDateTime) -> Value {
        let keys: Vec<&Value> = self
            .ordered
            .iter()
            .filter(|k| k.published_at(now))
            .filter_map(|k| k.public_jwk.as_ref())
            .collect();
        json!({ "keys": keys })
    }
}

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

/// The signing and verifying halves of an asymmetric key from its PKCS#8 DER private key and
/// its public JWK.
fn key_pair(
    kid: &str,
    alg: JwtAlg,
    der: &[u8],
    jwk: &Value,
) -> Result<(EncodingKey, DecodingKey), Error> {
    let field = |name: &str| jwk[name].as_str().unwrap_or_default().to_owned();
    let bad = |e: jsonwebtoken::errors::Error| {
        Error::Config(format!("signing key {kid} is unusable: {e}"))
    };
    Ok(match alg {
        JwtAlg::Es256 => (
            EncodingKey::from_ec_der(der),
            DecodingKey::from_ec_components(&field("x"), &field("y")).map_err(bad)?,
        ),
        JwtAlg::EdDsa => (
            EncodingKey::from_ed_der(der),
            DecodingKey::from_ed_components(&field("x")).map_err(bad)?,
        ),
        JwtAlg::Rs256 => (
            EncodingKey::from_rsa_pem(pkcs8_pem(der).as_bytes()).map_err(bad)?,
            DecodingKey::from_rsa_components(&field("n"), &field("e")).map_err(bad)?,
        ),
        JwtAlg::Hs256 => {
            return Err(Error::Config(format!("signing key {kid} claims HS256")));
        }
    })
}

fn hs256_key(secret: &[u8]) -> LoadedKey {
    // A kid that names the secret without revealing anything of it.
    let kid = format!("hs256-{}", &b64url(&sha256(secret))[..12]);
    LoadedKey {
        kid,
        alg: JwtAlg::Hs256,
        public_jwk: None,
        encoding: EncodingKey::from_secret(secret),
        decoding: DecodingKey::from_secret(secret),
        signs_from: OffsetDateTime::UNIX_EPOCH,
        retired_at: None,
        publish_until: None,
    }
}

fn pkcs8_pem(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// A fresh key pair: the PKCS#8 DER private key and the public JWK (without kid).
fn generate(alg: JwtAlg) -> Result<(Vec<u8>, Value), Error> {
    let failed = |what: &str| Error::Internal(format!("generating an {what} key failed").into());
    let rng = SystemRandom::new();
    match alg {
        JwtAlg::Es256 => {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| failed("ES256"))?;
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                .map_err(|_| failed("ES256"))?;
            let point = pair.public_key().as_ref();
            // Uncompressed point: 0x04 ‖ x ‖ y.
            let (x, y) = point.get(1..).ok_or_else(|| failed("ES256"))?.split_at(32);
            Ok((
                pkcs8.as_ref().to_vec(),
                json!({"kty": "EC", "crv": "P-256", "x": b64url(x), "y": b64url(y)}),
            ))
        }
        JwtAlg::EdDsa => {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| failed("EdDSA"))?;
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| failed("EdDSA"))?;
            let x = pair.public_key().as_ref();
            Ok((
                pkcs8.as_ref().to_vec(),
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(x)}),
            ))
        }
        JwtAlg::Rs256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| failed("RS256"))?;
            let pkcs8: Pkcs8V1Der<'static> = pair.as_der().map_err(|_| failed("RS256"))?;
            let public = pair.public_key();
            let n = public.modulus().big_endian_without_leading_zero().to_vec();
            let e = public.exponent().big_endian_without_leading_zero().to_vec();
            Ok((
                pkcs8.as_ref().to_vec(),
                json!({"kty": "RSA", "n": b64url(&n), "e": b64url(&e)}),
            ))
        }
        JwtAlg::Hs256 => Err(Error::Internal("HS256 keys are not generated".into())),
    }
}
