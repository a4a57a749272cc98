//! The hot path: verifying a token once the keys are cached, per algorithm.
//! `cargo bench -p gatehouse-verify --bench verify`.
//!
//! Each iteration is a whole `Verifier::verify`: split and parse the header, look up the
//! cached key, check the signature, parse the claims, check iss/aud/exp/nbf/iat. The JWKS
//! comes from a local axum server, fetched once before measuring. `signature_only` is
//! the bare `jsonwebtoken` signature check on the same tokens, for comparison: the
//! difference is what this crate adds.

// Benchmark set-up: a failure is a broken benchmark, and it should stop loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/verify/support.rs"]
mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use gatehouse_verify::Verifier;
use jsonwebtoken::{Algorithm, DecodingKey};
use support::{claims_at, hs256, JwksServer, SigningKey, TestClock, SECRET};

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys = [
        ("ES256", SigningKey::es256("ec")),
        ("RS256", SigningKey::rs256("rsa")),
        ("EdDSA", SigningKey::eddsa("ed")),
    ];
    let clock = TestClock::new();
    let (server, verifier): (JwksServer, Verifier) = rt.block_on(async {
        let server = JwksServer::start(&keys.iter().map(|(_, k)| k).collect::<Vec<_>>()).await;
        let verifier = server.builder(&clock).hs256_secret(SECRET).build().unwrap();
        verifier.prefetch().await.unwrap();
        (server, verifier)
    });
    let claims = claims_at(clock.unix());

    let mut group = c.benchmark_group("verify_cached");
    for (name, key) in &keys {
        let token = key.sign(&claims);
        rt.block_on(verifier.verify(&token)).unwrap();
        group.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| verifier.verify(&token));
        });
    }
    let token = hs256(SECRET.as_bytes(), None, &claims);
    rt.block_on(verifier.verify(&token)).unwrap();
    group.bench_function("HS256", |b| {
        b.to_async(&rt).iter(|| verifier.verify(&token));
    });
    group.finish();
    assert_eq!(server.hits(), 1, "the benchmark measured cached keys only");

    // For comparison: the bare signature check, which bounds what `verify` can cost.
    let mut group = c.benchmark_group("signature_only");
    for (name, key) in &keys {
        let token = key.sign(&claims);
        let (message, signature) = token.rsplit_once('.').unwrap();
        let decoding = match key.alg {
            Algorithm::RS256 => {
                let n = key.jwk["n"].as_str().unwrap();
                let e = key.jwk["e"].as_str().unwrap();
                DecodingKey::from_rsa_components(n, e).unwrap()
            }
            Algorithm::ES256 => DecodingKey::from_ec_der(&key.public),
            _ => DecodingKey::from_ed_der(&key.public),
        };
        assert!(
            jsonwebtoken::crypto::verify(signature, message.as_bytes(), &decoding, key.alg)
                .unwrap()
        );
        group.bench_function(*name, |b| {
            b.iter(|| {
                jsonwebtoken::crypto::verify(signature, message.as_bytes(), &decoding, key.alg)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
