//! Access tokens: JWTs with Supabase's claims, signed by the key ring's current key and
//! verified against an allowlist of algorithms, our own keys only, and our clock.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::crypto::sha256;
use crate::signing_keys::{KeyRing, KeySet, LoadedKey};
use crate::Error;

/// Longest token accepted; anything longer is refused before it is parsed.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The `aud` of every token gatehouse issues.
pub const AUDIENCE: &str = "authenticated";

/// One authentication method of `amr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthMethod {
    pub method: String,
    pub timestamp: i64,
}

/// `aud` as a string (what we issue) or an array (what other issuers may send).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims of an access token, as Supabase issues them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: Uuid,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub phone: String,
    pub role: String,
    #[serde(default)]
    pub aal: String,
    #[serde(default)]
    pub amr: Vec<AuthMethod>,
    pub session_id: Uuid,
    #[serde(default)]
    pub is_anonymous: bool,
    #[serde(default)]
    pub app_metadata: Value,
    #[serde(default)]
    pub user_metadata: Value,
}

/// Why a token was refused. Logged, never shown beyond "invalid token".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token too large")]
    Oversized,
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("token names no kid or an unknown one")]
    UnknownKey,
    #[error("token alg does not match its key")]
    AlgorithmMismatch,
    #[error("bad signature or claims")]
    Invalid,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
}

/// Signs and verifies access tokens.
#[derive(Debug)]
pub struct TokenService {
    pub(crate) issuer: String,
    pub(crate) leeway: Duration,
    verified: VerifiedCache,
}

/// Tokens whose signature and claims have verified, by the SHA-256 of their text. A client
/// presents the same access token on every request until it expires; checking its ECDSA
/// signature again each time was a third of the CPU time of `GET /auth/me` (bench/RESULTS.md).
/// What a hit skips is only that deterministic work on the very same bytes: the key must
/// still be one we publish (a key unpublished at once revokes its cached tokens too) and
/// `exp`/`nbf` are checked against the clock on every use. Failures are never cached.
#[derive(Debug, Default)]
struct VerifiedCache(Mutex<HashMap<[u8; 32], Arc<Verified>>>);

#[derive(Debug)]
struct Verified {
    kid: String,
    alg: jsonwebtoken::Algorithm,
    claims: AccessClaims,
}

/// Entries kept at most (about 2 MB); when full, the cache starts over.
pub const VERIFIED_CACHE_ENTRIES: usize = 4096;

impl VerifiedCache {
    fn get(&self, digest: &[u8; 32]) -> Option<Arc<Verified>> {
        self.0.lock().ok()?.get(digest).cloned()
    }

    fn insert(&self, digest: [u8; 32], verified: Verified) {
        if let Ok(mut entries) = self.0.lock() {
            if entries.len() >= VERIFIED_CACHE_ENTRIES {
                entries.clear();
            }
            entries.insert(digest, Arc::new(verified));
        }
    }

    fn remove(&self, digest: &[u8; 32]) {
        if let Ok(mut entries) = self.0.lock() {
            entries.remove(digest);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().map_or(0, |entries| entries.len())
    }
}

impl TokenService {
    /// Signs `claims` with the key that signs now.
    pub(crate) fn sign(
        &self,
        keys: &KeySet,
        ring: &KeyRing,
        claims: &AccessClaims,
        now: OffsetDateTime,
    ) -> Result<String, Error> {
        let key = keys
            .signing_key(ring.alg(), now)
            .ok_or_else(|| Error::Internal("no signing key is active".into()))?;
        self.sign_with(key, claims)
    }

    /// A service issuing tokens as `issuer`, tolerating `leeway` of clock skew.
    pub fn new(issuer: String, leeway: Duration) -> Self {
        Self {
            issuer,
            leeway,
            verified: VerifiedCache::default(),
        }
    }

    /// Signs `claims` with this very key (the service picks the key with
    /// [`KeySet::signing_key`]; tools and benchmarks hold their own).
    pub fn sign_with(&self, key: &LoadedKey, claims: &AccessClaims) -> Result<String, Error> {
        let mut header = Header::new(jsonwebtoken::Algorithm::from(key.alg));
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| Error::Internal(Box::new(e)))
    }

    /// Verifies `token` against `keys` at `now`: the header's `kid` must name a published
    /// key of ours and its `alg` must be that key's (so `none` and HS/RS confusion fail);
    /// `jku`, `x5u` and `jwk` headers are never read. Then the signature, `iss`, `aud`,
    /// and `exp`/`nbf` with the configured leeway.
    pub fn verify(
        &self,
        token: &str,
        keys: &KeySet,
        now: OffsetDateTime,
    ) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Oversized);
        }
        let digest = sha256(token.as_bytes());
        if let Some(hit) = self.verified.get(&digest) {
            let key_still_ours = keys
                .verification_key(&hit.kid, now)
                .is_some_and(|key| jsonwebtoken::Algorithm::from(key.alg) == hit.alg);
            if key_still_ours {
                self.check_times(&hit.claims, now)?;
                return Ok(hit.claims.clone());
            }
            // Its key is gone: verify from scratch, which refuses it.
            self.verified.remove(&digest);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        let key = keys
            .verification_key(kid, now)
            .ok_or(TokenError::UnknownKey)?;
        let expected = jsonwebtoken::Algorithm::from(key.alg);
        if header.alg != expected {
            return Err(TokenError::AlgorithmMismatch);
        }
        let mut validation = Validation::new(expected);
        // Time is checked below against our clock, not the library's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = HashSet::new();
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[AUDIENCE]);
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        self.check_times(&claims, now)?;
        self.verified.insert(
            digest,
            Verified {
                kid: kid.to_owned(),
                alg: expected,
                claims: claims.clone(),
            },
        );
        Ok(claims)
    }

    /// `exp` and `nbf` against `now`, with the leeway.
    fn check_times(&self, claims: &AccessClaims, now: OffsetDateTime) -> Result<(), TokenError> {
        let now = now.unix_timestamp();
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        if now > claims.exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| now.saturating_add(leeway) < nbf)
        {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}

impl From<crate::signing_keys::JwtAlg> for jsonwebtoken::Algorithm {
    fn from(alg: crate::signing_keys::JwtAlg) -> Self {
        match alg {
            crate::signing_keys::JwtAlg::Es256 => Self::ES256,
            crate::signing_keys::JwtAlg::Rs256 => Self::RS256,
            crate::signing_keys::JwtAlg::EdDsa => Self::EdDSA,
            crate::signing_keys::JwtAlg::Hs256 => Self::HS256,
        }
    }
}

/// The app-level role and provider, merged into the stored `app_metadata`.
pub fn app_metadata(user: &gatehouse_store::UserRecord) -> serde_json::Value {
    let mut meta = match &user.app_metadata.0 {
        serde_json::Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    meta.entry("provider")
        .or_insert_with(|| serde_json::json!("email"));
    meta.entry("providers")
        .or_insert_with(|| serde_json::json!(["email"]));
    meta.insert("role".to_owned(), serde_json::json!(user.role));
    serde_json::Value::Object(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: OffsetDateTime, ttl: i64) -> AccessClaims {
        AccessClaims {
            iss: "http://test/auth/v1".into(),
            sub: Uuid::now_v7(),
            aud: Audience::One(AUDIENCE.into()),
            exp: now.unix_timestamp() + ttl,
            iat: now.unix_timestamp(),
            nbf: None,
            email: "ada@example.com".into(),
            phone: String::new(),
            role: "authenticated".into(),
            aal: "aal1".into(),
            amr: Vec::new(),
            session_id: Uuid::now_v7(),
            is_anonymous: false,
            app_metadata: Value::Null,
            user_metadata: Value::Null,
        }
    }

    fn service() -> TokenService {
        TokenService::new("http://test/auth/v1".into(), Duration::from_secs(5))
    }

    /// A service, the time, an ES256 key "k1" and a token it signed, valid for 60 s.
    fn es256_token() -> (TokenService, OffsetDateTime, KeySet, String) {
        let service = service();
        let now = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let keys = KeySet::from_keys(vec![LoadedKey::generate(
            crate::signing_keys::JwtAlg::Es256,
            "k1",
        )
        .unwrap()]);
        let key = keys
            .signing_key(crate::signing_keys::JwtAlg::Es256, now)
            .unwrap();
        let token = service.sign_with(key, &claims(now, 60)).unwrap();
        (service, now, keys, token)
    }

    #[test]
    fn a_cached_token_still_expires_and_still_needs_its_key() {
        let (service, now, keys, token) = es256_token();
        assert!(service.verify(&token, &keys, now).is_ok());
        assert_eq!(service.verified.len(), 1, "a verified token is cached");
        assert!(
            service.verify(&token, &keys, now).is_ok(),
            "and verifies from the cache"
        );
        // Past exp + leeway, the cached entry does not help.
        let later = now + Duration::from_secs(66);
        assert_eq!(
            service.verify(&token, &keys, later),
            Err(TokenError::Expired)
        );
        // Its key unpublished (another set without it): refused, and forgotten.
        let other = KeySet::from_keys(vec![LoadedKey::generate(
            crate::signing_keys::JwtAlg::Es256,
            "k2",
        )
        .unwrap()]);
        assert_eq!(
            service.verify(&token, &other, now),
            Err(TokenError::UnknownKey)
        );
        assert_eq!(service.verified.len(), 0);
        // A key with the same kid but another algorithm is not the key that verified it.
        let swapped = KeySet::from_keys(vec![LoadedKey::generate(
            crate::signing_keys::JwtAlg::Hs256,
            "k1",
        )
        .unwrap()]);
        assert!(service.verify(&token, &keys, now).is_ok());
        assert_eq!(
            service.verify(&token, &swapped, now),
            Err(TokenError::AlgorithmMismatch)
        );
    }

    #[test]
    fn a_forgery_of_a_cached_token_is_verified_and_refused() {
        let (service, now, keys, token) = es256_token();
        assert!(service.verify(&token, &keys, now).is_ok());
        // The same header and signature with other claims (admin), and the same token
        // with its signature's last character changed.
        let mut parts: Vec<&str> = token.split('.').collect();
        let mut forged_claims = claims(now, 60);
        forged_claims.role = "service_role".into();
        let payload =
            crate::crypto::b64url(serde_json::to_string(&forged_claims).unwrap().as_bytes());
        parts[1] = &payload;
        assert_eq!(
            service.verify(&parts.join("."), &keys, now),
            Err(TokenError::Invalid)
        );
        let mut tampered = token.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(
            service.verify(&tampered, &keys, now),
            Err(TokenError::Invalid)
        );
        assert_eq!(service.verified.len(), 1, "failures are not cached");
    }

    #[test]
    fn the_cache_is_bounded() {
        let service = service();
        let now = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let keys = KeySet::from_keys(vec![LoadedKey::generate(
            crate::signing_keys::JwtAlg::Hs256,
            "k1",
        )
        .unwrap()]);
        let key = keys
            .signing_key(crate::signing_keys::JwtAlg::Hs256, now)
            .unwrap();
        for _ in 0..=VERIFIED_CACHE_ENTRIES {
            let token = service.sign_with(key, &claims(now, 60)).unwrap();
            assert!(service.verify(&token, &keys, now).is_ok());
            assert!(service.verified.len() <= VERIFIED_CACHE_ENTRIES);
        }
    }
}
