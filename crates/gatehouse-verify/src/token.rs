//! The compact JWS form: three base64url parts, a header whose `alg` is on the allowlist,
//! a signature checked with `jsonwebtoken`'s crypto, claims parsed only once it verified.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use crate::{Claims, VerifyError};

/// Longest token accepted; anything longer is refused before it is parsed.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A token split into its parts; nothing in it is trusted yet.
pub(crate) struct Jwt<'a> {
    header: &'a str,
    payload: &'a str,
    /// `header.payload`, what the signature covers.
    message: &'a str,
    signature: &'a str,
}

/// The header members read. `jku`, `x5u`, `jwk` and the like are never looked at: keys
/// come from the configured JWKS and secret only.
#[derive(Deserialize)]
pub(crate) struct Header {
    pub(crate) alg: String,
    #[serde(default)]
    pub(crate) kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

fn is_b64url(part: &str) -> bool {
    part.len() % 4 != 1
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl<'a> Jwt<'a> {
    pub(crate) fn split(token: &'a str) -> Result<Self, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed);
        };
        if header.is_empty() || payload.is_empty() || !is_b64url(signature) {
            return Err(VerifyError::Malformed);
        }
        let message = token
            .get(..header.len() + 1 + payload.len())
            .ok_or(VerifyError::Malformed)?;
        Ok(Self {
            header,
            payload,
            message,
            signature,
        })
    }

    pub(crate) fn header(&self) -> Result<Header, VerifyError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(self.header)
            .map_err(|_| VerifyError::Malformed)?;
        let header: Header = serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)?;
        // No extension is understood, so one marked critical cannot be honoured (RFC 7515 §4.1.11).
        if header.crit.is_some() {
            return Err(VerifyError::Malformed);
        }
        Ok(header)
    }

    pub(crate) fn check_signature(
        &self,
        key: &DecodingKey,
        alg: Algorithm,
    ) -> Result<(), VerifyError> {
        match jsonwebtoken::crypto::verify(self.signature, self.message.as_bytes(), key, alg) {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(VerifyError::BadSignature),
        }
    }

    /// The claims; call only once the signature has verified.
    pub(crate) fn claims(&self) -> Result<Claims, VerifyError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(self.payload)
            .map_err(|_| VerifyError::Malformed)?;
        serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)
    }
}

/// The algorithms ever accepted; everything else, `none` first, is refused.
pub(crate) fn accepted_alg(alg: &str) -> Result<Algorithm, VerifyError> {
    match alg {
        "ES256" => Ok(Algorithm::ES256),
        "RS256" => Ok(Algorithm::RS256),
        "EdDSA" => Ok(Algorithm::EdDSA),
        "HS256" => Ok(Algorithm::HS256),
        _ => Err(VerifyError::UnsupportedAlgorithm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn a_token_is_exactly_three_parts() {
        for token in [
            "", "abc", "a.b", "a.b.c.d", ".b.c", "a..c", "a.b.c+", "a.b.c=", "a.b.c/",
        ] {
            assert!(
                matches!(Jwt::split(token), Err(VerifyError::Malformed)),
                "{token:?}"
            );
        }
        let jwt = Jwt::split("aGVh.cGF5.c2ln").unwrap();
        assert_eq!(jwt.message, "aGVh.cGF5");
        assert!(
            Jwt::split("aGVh.cGF5.").is_ok(),
            "an empty signature is a bad signature, later"
        );
        let long = format!("{}.cGF5.c2ln", "a".repeat(MAX_TOKEN_BYTES));
        assert!(matches!(Jwt::split(&long), Err(VerifyError::Malformed)));
    }

    #[test]
    fn the_header_must_be_json_with_an_alg_and_no_crit() {
        let header = |h: &str| {
            Jwt::split(&format!("{}.cGF5.c2ln", b64(h)))
                .unwrap()
                .header()
        };
        assert_eq!(
            header(r#"{"alg":"ES256","kid":"k"}"#)
                .unwrap()
                .kid
                .as_deref(),
            Some("k")
        );
        assert!(matches!(
            header(r#"{"kid":"k"}"#),
            Err(VerifyError::Malformed)
        ));
        assert!(matches!(header("not json"), Err(VerifyError::Malformed)));
        assert!(matches!(
            header(r#"{"alg":"ES256","crit":["b64"],"b64":false}"#),
            Err(VerifyError::Malformed)
        ));
        assert!(matches!(
            Jwt::split("!!!.cGF5.c2ln").unwrap().header(),
            Err(VerifyError::Malformed)
        ));
    }

    #[test]
    fn only_four_algorithms_are_accepted() {
        for alg in ["ES256", "RS256", "EdDSA", "HS256"] {
            assert!(accepted_alg(alg).is_ok(), "{alg}");
        }
        for alg in [
            "none", "None", "NONE", "", "HS384", "HS512", "ES384", "RS512", "PS256", "es256",
            "Ed25519",
        ] {
            assert!(
                matches!(accepted_alg(alg), Err(VerifyError::UnsupportedAlgorithm)),
                "{alg}"
            );
        }
    }
}
