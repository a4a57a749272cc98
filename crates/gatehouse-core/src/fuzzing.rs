//! Entry points for `cargo fuzz` (feature `fuzzing`): the parsers of untrusted bytes, run
//! against real keys made in memory.

use std::sync::OnceLock;
use std::time::Duration;

use jsonwebtoken::{DecodingKey, EncodingKey};
use time::OffsetDateTime;

use crate::signing_keys::{JwtAlg, KeySet, LoadedKey};
use crate::tokens::TokenService;

struct Fixture {
    keys: KeySet,
    tokens: TokenService,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let [es, hs] = [(JwtAlg::Es256, "fuzz-es256"), (JwtAlg::Hs256, "fuzz-hs256")]
            .map(|(alg, kid)| LoadedKey::generate(alg, kid).unwrap_or_else(|_| unusable(kid)));
        Fixture {
            keys: KeySet::from_keys(vec![es, hs]),
            tokens: TokenService::new("http://fuzz/auth/v1".into(), Duration::from_secs(5)),
        }
    })
}

/// A key that verifies nothing, should generating one fail (it does not).
fn unusable(kid: &str) -> LoadedKey {
    LoadedKey {
        kid: kid.to_owned(),
        alg: JwtAlg::Hs256,
        public_jwk: None,
        encoding: EncodingKey::from_secret(b"unusable"),
        decoding: DecodingKey::from_secret(b"unusable"),
        signs_from: OffsetDateTime::UNIX_EPOCH,
        retired_at: None,
        publish_until: None,
    }
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
