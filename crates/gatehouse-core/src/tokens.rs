//! Access tokens: JWTs with Supabase's claims, signed by the key ring's current key and
//! verified against an allowlist of algorithms, our own keys only, and our clock.

use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::keys::{KeyRing, KeySet};
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
        Ok(claims)
    }
}

impl From<crate::keys::JwtAlg> for jsonwebtoken::Algorithm {
    fn from(alg: crate::keys::JwtAlg) -> Self {
        match alg {
            crate::keys::JwtAlg::Es256 => Self::ES256,
            crate::keys::JwtAlg::Rs256 => Self::RS256,
            crate::keys::JwtAlg::EdDsa => Self::EdDSA,
            crate::keys::JwtAlg::Hs256 => Self::HS256,
        }
    }
}
