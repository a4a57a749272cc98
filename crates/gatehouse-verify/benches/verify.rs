//! The hot path: verifying a token once the keys are cached, per algorithm.
//! `cargo bench -p gatehouse-verify --bench verify`.
//!
//! Each iteration is a whole `Verifier::verify`: split and parse the header, look up the
//! cached key, check the signature, parse the claims, check iss/aud/exp/nbf/iat. The JWKS
//! comes from a local axum server, fetched once before measuring.

// Benchmark set-up: a failure is a broken benchmark, and it should stop loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/verify/support.rs"]
mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use gatehouse_verify::Verifier;
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
}

criterion_group!(benches, verify);
criterion_main!(benches);
