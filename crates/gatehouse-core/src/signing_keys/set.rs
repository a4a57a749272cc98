//! The keys themselves: the algorithms gatehouse signs with, a key loaded for signing
//! and verifying (from its stored form or freshly generated), and the set of keys known at
//! one moment, published as a JWKS.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::Engine;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::crypto::{b64url, random_bytes, sha256};
use crate::Error;

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

    pub(super) fn new(keys: Vec<LoadedKey>) -> Self {
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

/// The signing and verifying halves of an asymmetric key from its PKCS#8 DER private key and
/// its public JWK.
pub(super) fn key_pair(
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

pub(super) fn hs256_key(secret: &[u8]) -> LoadedKey {
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

pub(super) fn pkcs8_pem(der: &[u8]) -> String {
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
pub(super) fn generate(alg: JwtAlg) -> Result<(Vec<u8>, Value), Error> {
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
