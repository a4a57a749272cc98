//! Signed double-submit CSRF tokens: `random.hmac(random)` under a deployment-wide key,
//! sent both as a cookie and in `X-CSRF-Token`. A request passes when the two are equal
//! and the server's signature checks, so a token planted by a sibling subdomain (which
//! cannot sign) is refused.

use crate::crypto::{
    b64url, b64url_decode, constant_time_eq, hmac_sha256, hmac_sha256_verify, random_bytes,
};
use crate::Error;

/// Issues and checks CSRF tokens.
pub struct Csrf {
    key: Vec<u8>,
}

impl std::fmt::Debug for Csrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Csrf(..)")
    }
}

impl Csrf {
    /// A checker keyed by the deployment's CSRF secret.
    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    /// A fresh token.
    pub fn issue(&self) -> Result<String, Error> {
        let nonce = random_bytes::<32>()?;
        Ok(format!(
            "{}.{}",
            b64url(&nonce),
            b64url(&hmac_sha256(&self.key, &nonce))
        ))
    }

    /// Checks the header against the cookie and the signature.
    pub fn check(&self, header: Option<&str>, cookie: Option<&str>) -> Result<(), Error> {
        let (Some(header), Some(cookie)) = (header, cookie) else {
            return Err(Error::CsrfFailed(
                "the X-CSRF-Token header and the CSRF cookie are both required",
            ));
        };
        if !constant_time_eq(header.as_bytes(), cookie.as_bytes()) {
            return Err(Error::CsrfFailed(
                "the X-CSRF-Token header does not match the CSRF cookie",
            ));
        }
        let signed = header
            .split_once('.')
            .and_then(|(nonce, tag)| Some((b64url_decode(nonce)?, b64url_decode(tag)?)))
            .is_some_and(|(nonce, tag)| {
                nonce.len() == 32 && hmac_sha256_verify(&self.key, &nonce, &tag)
            });
        if signed {
            Ok(())
        } else {
            Err(Error::CsrfFailed(
                "the CSRF token was not issued by this server",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_token_passes_only_when_header_and_cookie_match() {
        let csrf = Csrf::new(vec![7; 32]);
        let token = csrf.issue().unwrap();
        assert!(csrf.check(Some(&token), Some(&token)).is_ok());
        assert!(csrf.check(Some(&token), None).is_err());
        assert!(csrf.check(None, Some(&token)).is_err());
        let other = csrf.issue().unwrap();
        assert!(csrf.check(Some(&token), Some(&other)).is_err());
    }

    #[test]
    fn a_token_signed_by_another_key_or_unsigned_is_refused() {
        let csrf = Csrf::new(vec![7; 32]);
        let forged = Csrf::new(vec![8; 32]).issue().unwrap();
        assert!(csrf.check(Some(&forged), Some(&forged)).is_err());
        assert!(csrf.check(Some("abc"), Some("abc")).is_err());
        assert!(csrf.check(Some("abc.def"), Some("abc.def")).is_err());
    }
}
