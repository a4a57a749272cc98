//! Entry points for `cargo fuzz` (feature `fuzzing`): the parsers of untrusted bytes, run
//! against real keys made in memory.

use std::sync::OnceLock;
use std::time::Duration;

use jsonwebtoken::{DecodingKey, EncodingKey};
use time::OffsetDateTime;

use crate::keys::{JwtAlg, KeySet, LoadedKey};
use crate::tokens::TokenService;

struct Fixture {
    keys: KeySet,
    tokens: TokenService,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let alg = &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng)
            .map(|d| d.as_ref().to_vec())
            .unwrap_or_default();
        let public = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(alg, &pkcs8)
            .map(|p| {
                aws_lc_rs::signature::KeyPair::public_key(&p)
                    .as_ref()
                    .to_vec()
            })
            .unwrap_or_default();
        let (x, y) = public.get(1..).unwrap_or(&[0; 64]).split_at(32);
        let es = LoadedKey {
            kid: "fuzz-es256".into(),
            alg: JwtAlg::Es256,
            public_jwk: None,
            encoding: EncodingKey::from_ec_der(&pkcs8),
            decoding: DecodingKey::from_ec_components(
                &crate::crypto::b64url(x),
                &crate::crypto::b64url(y),
            )
            .unwrap_or_else(|_| DecodingKey::from_secret(b"unusable")),
            signs_from: OffsetDateTime::UNIX_EPOCH,
            retired_at: None,
            publish_until: None,
        };
        let hs = LoadedKey {
            kid: "fuzz-hs256".into(),
            alg: JwtAlg::Hs256,
            public_jwk: None,
            encoding: EncodingKey::from_secret(b"a fuzzing secret of 32 bytes!!!!"),
            decoding: DecodingKey::from_secret(b"a fuzzing secret of 32 bytes!!!!"),
            signs_from: OffsetDateTime::UNIX_EPOCH,
            retired_at: None,
            publish_until: None,
        };
        Fixture {
            keys: KeySet::from_keys(vec![es, hs]),
            tokens: TokenService {
                issuer: "http://fuzz/auth/v1".into(),
                leeway: Duration::from_secs(5),
            },
        }
    })
}

/// Verifies arbitrary text as an access token.
pub fn verify_token(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let fixture = fixture();
        let _ = fixture.tokens.verify(
            text,
            &fixture.keys,
            OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        );
    }
}

/// Parses arbitrary text as a pagination cursor of each sort.
pub fn parse_cursor(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        for (sort, descending) in [("createdAt", false), ("email", true), ("audit", true)] {
            let _ = crate::admin::decode_cursor(text, sort, descending);
        }
    }
}

/// Checks arbitrary text as a CSRF token against itself and a cookie.
pub fn check_csrf(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let csrf = crate::csrf::Csrf::new(vec![7; 32]);
        let _ = csrf.check(Some(text), Some(text));
    }
}
