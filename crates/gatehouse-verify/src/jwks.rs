//! The JWKS: which published keys are usable, each bound to its one algorithm, parsed
//! once into `DecodingKey`s; and how long a fetched set stays fresh.

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::header::{HeaderMap, AGE, CACHE_CONTROL};
use serde::Deserialize;

use crate::token::Jwt;
use crate::VerifyError;

/// The largest JWKS document read; a bigger one is refused whole.
pub(crate) const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// How many keys a token without `kid` is tried against.
pub(crate) const MAX_KIDLESS_CANDIDATES: usize = 4;

/// Freshness never goes below this, whatever the server says.
const MIN_FRESHNESS: Duration = Duration::from_secs(1);

/// One usable public key, bound to the only algorithm it verifies.
pub(crate) struct Key {
    pub(crate) kid: Option<String>,
    pub(crate) alg: Algorithm,
    pub(crate) decoding: DecodingKey,
}

/// The usable keys of one fetched JWKS.
#[derive(Default)]
pub(crate) struct KeySet {
    keys: Vec<Key>,
    by_kid: HashMap<String, Vec<usize>>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<(Option<&str>, Algorithm)> = self
            .keys
            .iter()
            .map(|k| (k.kid.as_deref(), k.alg))
            .collect();
        f.debug_struct("KeySet").field("keys", &keys).finish()
    }
}

impl KeySet {
    pub(crate) fn from_keys(keys: Vec<Key>) -> Self {
        let mut by_kid: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            if let Some(kid) = &key.kid {
                by_kid.entry(kid.clone()).or_default().push(i);
            }
        }
        Self { keys, by_kid }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether this set has a key a token with this `kid` and `alg` could be checked
    /// against. A known kid counts even when its algorithm differs: that token is refused,
    /// and fetching again would not change it.
    pub(crate) fn has_candidate(&self, kid: Option<&str>, alg: Algorithm) -> bool {
        match kid {
            Some(kid) => self.by_kid.contains_key(kid),
            None => self.keys.iter().any(|k| k.alg == alg),
        }
    }

    /// Checks the signature of `jwt` (whose header says `kid` and `alg`) against the key
    /// it names, or without a kid against the first few keys of its algorithm.
    pub(crate) fn check(
        &self,
        jwt: &Jwt<'_>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<(), VerifyError> {
        match kid {
            Some(kid) => {
                let indices = self.by_kid.get(kid).ok_or(VerifyError::UnknownKey)?;
                let key = indices
                    .iter()
                    .filter_map(|&i| self.keys.get(i))
                    .find(|k| k.alg == alg)
                    .ok_or(VerifyError::UnsupportedAlgorithm)?;
                jwt.check_signature(&key.decoding, alg)
            }
            None => {
                let mut tried = false;
                for key in self
                    .keys
                    .iter()
                    .filter(|k| k.alg == alg)
                    .take(MAX_KIDLESS_CANDIDATES)
                {
                    tried = true;
                    if jwt.check_signature(&key.decoding, alg).is_ok() {
                        return Ok(());
                    }
                }
                Err(if tried {
                    VerifyError::BadSignature
                } else {
                    VerifyError::UnknownKey
                })
            }
        }
    }
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

/// The members of a JWK this crate reads.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

/// Parses a JWKS document. A document that is not a JWKS is an error; a key this crate
/// cannot or must not use (`oct`, `use` other than `sig`, an algorithm that does not fit
/// its type, a malformed one) is skipped, so one odd key does not hide the others.
pub(crate) fn parse(body: &[u8]) -> Result<KeySet, String> {
    let set: RawSet =
        serde_json::from_slice(body).map_err(|e| format!("the body is not a JWKS: {e}"))?;
    let total = set.keys.len();
    let keys: Vec<Key> = set
        .keys
        .into_iter()
        .filter_map(|value| {
            let raw: RawJwk = serde_json::from_value(value).ok()?;
            let kid = raw.kid.clone();
            let key = usable(raw);
            if key.is_none() {
                tracing::debug!(
                    kid = kid.as_deref(),
                    "skipping a JWK that cannot verify tokens"
                );
            }
            key
        })
        .collect();
    if keys.len() < total {
        tracing::debug!(
            usable = keys.len(),
            total,
            "some keys of the JWKS are not usable"
        );
    }
    Ok(KeySet::from_keys(keys))
}

fn b64(value: Option<&String>) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(value?).ok()
}

/// The key with its algorithm, when this JWK may verify signatures.
fn usable(raw: RawJwk) -> Option<Key> {
    if raw.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    if raw
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
        return None;
    }
    // The algorithm follows from the key type; a JWK's own `alg`, if any, must agree.
    let (alg, name) = match (raw.kty.as_str(), raw.crv.as_deref()) {
        ("EC", Some("P-256")) => (Algorithm::ES256, "ES256"),
        ("RSA", _) => (Algorithm::RS256, "RS256"),
        ("OKP", Some("Ed25519")) => (Algorithm::EdDSA, "EdDSA"),
        _ => return None,
    };
    if raw.alg.as_deref().is_some_and(|a| a != name) {
        return None;
    }
    let decoding = match alg {
        Algorithm::ES256 => {
            let x = b64(raw.x.as_ref())?;
            let y = b64(raw.y.as_ref())?;
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            DecodingKey::from_ec_der(&point)
        }
        Algorithm::RS256 => {
            let n = b64(raw.n.as_ref())?;
            let e = b64(raw.e.as_ref())?;
            let bits = n.iter().skip_while(|&&b| b == 0).count() * 8;
            // RS256 below 2048 bits is refused by the crypto backend anyway.
            if !(2048..=8192).contains(&bits) || e.is_empty() || e.len() > 8 {
                return None;
            }
            DecodingKey::from_rsa_raw_components(&n, &e)
        }
        _ => {
            let x = b64(raw.x.as_ref())?;
            if x.len() != 32 {
                return None;
            }
            DecodingKey::from_ed_der(&x)
        }
    };
    Some(Key {
        kid: raw.kid,
        alg,
        decoding,
    })
}

/// How long a JWKS fetched with these response headers stays fresh: `ttl`, or less if
/// `Cache-Control: max-age` (less the `Age` a cache in between reports) says so; with
/// `no-store` or `no-cache`, `min_refetch`. Never below one second.
pub(crate) fn freshness(headers: &HeaderMap, ttl: Duration, min_refetch: Duration) -> Duration {
    let mut max_age: Option<u64> = None;
    let mut no_cache = false;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let (name, arg) = match directive.split_once('=') {
                Some((name, arg)) => (name.trim(), Some(arg.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                no_cache = true;
            } else if name.eq_ignore_ascii_case("max-age") {
                if let Some(secs) = arg.and_then(|a| a.parse::<u64>().ok()) {
                    max_age = Some(max_age.map_or(secs, |m| m.min(secs)));
                }
            }
        }
    }
    if no_cache {
        return min_refetch.max(MIN_FRESHNESS);
    }
    let fresh = match max_age {
        Some(max_age) => {
            let age = headers
                .get(AGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
            ttl.min(Duration::from_secs(max_age.saturating_sub(age)))
        }
        None => ttl,
    };
    fresh.max(MIN_FRESHNESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    const TTL: Duration = Duration::from_secs(600);
    const MIN: Duration = Duration::from_secs(30);

    fn fresh_for(pairs: &[(&'static str, &'static str)]) -> Duration {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        freshness(&headers, TTL, MIN)
    }

    #[test]
    fn cache_control_bounds_the_ttl() {
        assert_eq!(fresh_for(&[]), TTL);
        assert_eq!(
            fresh_for(&[("cache-control", "public, max-age=300")]),
            Duration::from_secs(300)
        );
        assert_eq!(
            fresh_for(&[("cache-control", "max-age=\"60\"")]),
            Duration::from_secs(60)
        );
        assert_eq!(
            fresh_for(&[("cache-control", "max-age=86400")]),
            TTL,
            "longer than the TTL: the TTL wins"
        );
        assert_eq!(
            fresh_for(&[("cache-control", "max-age=0")]),
            Duration::from_secs(1),
            "never below 1 s"
        );
        assert_eq!(fresh_for(&[("cache-control", "no-store")]), MIN);
        assert_eq!(
            fresh_for(&[("cache-control", "max-age=300, No-Cache")]),
            MIN
        );
        assert_eq!(
            fresh_for(&[
                ("cache-control", "max-age=300"),
                ("cache-control", "max-age=100")
            ]),
            Duration::from_secs(100)
        );
        assert_eq!(
            fresh_for(&[("cache-control", "max-age=300"), ("age", "290")]),
            Duration::from_secs(10)
        );
        assert_eq!(
            fresh_for(&[("cache-control", "max-age=300"), ("age", "900")]),
            Duration::from_secs(1)
        );
        assert_eq!(
            fresh_for(&[("cache-control", "max-age=soon")]),
            TTL,
            "unparsable: ignored"
        );
    }

    fn ec_jwk() -> serde_json::Value {
        json!({"kty": "EC", "crv": "P-256", "kid": "e", "alg": "ES256", "use": "sig",
               "x": URL_SAFE_NO_PAD.encode([1u8; 32]), "y": URL_SAFE_NO_PAD.encode([2u8; 32])})
    }

    fn parsed(keys: serde_json::Value) -> KeySet {
        parse(
            serde_json::to_vec(&json!({ "keys": keys }))
                .unwrap()
                .as_slice(),
        )
        .unwrap()
    }

    #[test]
    fn only_signing_keys_of_a_supported_type_and_matching_alg_are_kept() {
        let mut wrong_alg = ec_jwk();
        wrong_alg["alg"] = json!("RS256");
        let mut enc = ec_jwk();
        enc["use"] = json!("enc");
        let mut p384 = ec_jwk();
        p384["crv"] = json!("P-384");
        let mut short = ec_jwk();
        short["x"] = json!(URL_SAFE_NO_PAD.encode([1u8; 31]));
        let mut no_verify = ec_jwk();
        no_verify["key_ops"] = json!(["encrypt"]);
        let oct = json!({"kty": "oct", "kid": "o", "k": URL_SAFE_NO_PAD.encode([7u8; 32])});
        let small_rsa = json!({"kty": "RSA", "kid": "r", "n": URL_SAFE_NO_PAD.encode([0xffu8; 128]), "e": "AQAB"});
        let rsa = json!({"kty": "RSA", "kid": "r2", "n": URL_SAFE_NO_PAD.encode([0xffu8; 256]), "e": "AQAB"});
        let ed = json!({"kty": "OKP", "crv": "Ed25519", "kid": "d", "x": URL_SAFE_NO_PAD.encode([3u8; 32])});
        let x25519 = json!({"kty": "OKP", "crv": "X25519", "kid": "x", "x": URL_SAFE_NO_PAD.encode([3u8; 32])});
        let set = parsed(json!([
            wrong_alg,
            enc,
            p384,
            short,
            no_verify,
            oct,
            small_rsa,
            x25519,
            "junk",
            ec_jwk(),
            rsa,
            ed
        ]));
        let kept: Vec<(Option<&str>, Algorithm)> =
            set.keys.iter().map(|k| (k.kid.as_deref(), k.alg)).collect();
        assert_eq!(
            kept,
            [
                (Some("e"), Algorithm::ES256),
                (Some("r2"), Algorithm::RS256),
                (Some("d"), Algorithm::EdDSA)
            ]
        );
        assert!(
            set.has_candidate(Some("e"), Algorithm::RS256),
            "a known kid is no reason to refetch"
        );
        assert!(!set.has_candidate(Some("o"), Algorithm::HS256));
        assert!(set.has_candidate(None, Algorithm::EdDSA));
    }

    #[test]
    fn a_document_that_is_not_a_jwks_is_an_error() {
        assert!(parse(b"<html>").is_err());
        assert!(parse(b"{\"keys\": 1}").is_err());
        assert!(parse(b"[]").is_err());
        assert_eq!(parse(b"{\"keys\": []}").unwrap().len(), 0);
    }
}
