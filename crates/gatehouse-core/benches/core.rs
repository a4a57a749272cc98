//! Micro-benchmarks of what bounds the endpoints: Argon2id (sign-in, sign-up), token
//! signing and verification per algorithm (every authenticated request), and a refresh
//! rotation against each store (POST /auth/refresh). `cargo bench -p gatehouse-core`;
//! the Postgres group needs the server the test suite uses (scripts/ensure-services.sh).

// Benchmark set-up: a failure is a broken benchmark, and it should stop loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use gatehouse_core::clock::{Clock, SystemClock};
use gatehouse_core::keys::{JwtAlg, KeySet, LoadedKey};
use gatehouse_core::password::{HashLimits, Hasher};
use gatehouse_core::store::testing::TestDatabase;
use gatehouse_core::store::{Backend, ConnectOptions, Store};
use gatehouse_core::tokens::{AccessClaims, Audience, TokenService};
use gatehouse_core::{Gatehouse, Identifier, RequestMeta, SignIn, SignUp};
use secrecy::SecretString;
use uuid::Uuid;

const PASSWORD: &str = "quartz-Lantern-47!";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn argon2id(c: &mut Criterion) {
    let rt = runtime();
    let _guard = rt.enter();
    let hasher = Hasher::new(HashLimits {
        concurrency: 1,
        queue: 1,
    })
    .unwrap();
    let password = SecretString::from(PASSWORD);
    let hash = rt.block_on(hasher.hash(&password)).unwrap();
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(20);
    group.bench_function("hash", |b| {
        b.to_async(&rt).iter(|| hasher.hash(&password));
    });
    group.bench_function("verify", |b| {
        b.to_async(&rt)
            .iter(|| hasher.verify(&password, Some(&hash)));
    });
    group.finish();
}

fn claims() -> AccessClaims {
    let now = SystemClock.now().unix_timestamp();
    AccessClaims {
        iss: "http://bench/auth/v1".into(),
        sub: Uuid::now_v7(),
        aud: Audience::One("authenticated".into()),
        exp: now + 3600,
        iat: now,
        nbf: None,
        email: "ada@example.com".into(),
        phone: String::new(),
        role: "authenticated".into(),
        aal: "aal1".into(),
        amr: Vec::new(),
        session_id: Uuid::now_v7(),
        is_anonymous: false,
        app_metadata: serde_json::json!({"provider": "email", "providers": ["email"]}),
        user_metadata: serde_json::json!({}),
    }
}

fn tokens(c: &mut Criterion) {
    let now = SystemClock.now();
    let mut group = c.benchmark_group("tokens");
    for alg in [JwtAlg::Es256, JwtAlg::EdDsa, JwtAlg::Rs256, JwtAlg::Hs256] {
        let set = KeySet::from_keys(vec![LoadedKey::generate(alg, "bench").unwrap()]);
        let key = set.signing_key(alg, now).unwrap();
        let service = TokenService::new("http://bench/auth/v1".into(), Duration::from_secs(5));
        group.bench_function(format!("{alg}/sign"), |b| {
            let claims = claims();
            b.iter(|| service.sign_with(key, &claims).unwrap());
        });
        // A token never verified before each time (its own sub): the full check.
        group.bench_function(format!("{alg}/verify"), |b| {
            b.iter_batched(
                || service.sign_with(key, &claims()).unwrap(),
                |token| service.verify(&token, &set, now).unwrap(),
                BatchSize::SmallInput,
            );
        });
        // The same token again: the verified-token cache.
        group.bench_function(format!("{alg}/verify_cached"), |b| {
            let token = service.sign_with(key, &claims()).unwrap();
            b.iter(|| service.verify(&token, &set, now).unwrap());
        });
    }
    group.finish();
}

fn refresh(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("refresh_rotation");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (db, gatehouse, first) = rt.block_on(async {
            let db = TestDatabase::create(backend).await;
            let store = Store::connect(db.url(), &ConnectOptions::default())
                .await
                .unwrap();
            store.migrate().await.unwrap();
            let settings = gatehouse_core::Settings {
                rate_limits: gatehouse_core::ratelimit::RateLimits {
                    enabled: false,
                    ..Default::default()
                },
                ..Default::default()
            };
            let gatehouse = Gatehouse::start(store, Arc::new(SystemClock), settings)
                .await
                .unwrap();
            let meta = RequestMeta::default();
            let signup = SignUp {
                email: "ada@example.com".into(),
                password: SecretString::from(PASSWORD),
                username: None,
                display_name: None,
                user_metadata: None,
            };
            gatehouse.accounts.sign_up(signup, &meta).await.unwrap();
            let signin = SignIn {
                identifier: Identifier::Email("ada@example.com".into()),
                password: SecretString::from(PASSWORD),
                device_cookie: None,
                remember_device: false,
            };
            let grant = gatehouse.accounts.sign_in(signin, &meta).await.unwrap();
            (db, gatehouse, grant.refresh_token)
        });
        let current = Mutex::new(first);
        let name = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        // Each iteration rotates the token the previous one returned, as a client does.
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let presented = current.lock().unwrap().clone();
                let grant = gatehouse
                    .sessions
                    .refresh(&presented, &RequestMeta::default())
                    .await
                    .unwrap();
                *current.lock().unwrap() = grant.refresh_token;
            });
        });
        rt.block_on(gatehouse.store().close());
        drop(db);
    }
    group.finish();
}

criterion_group!(benches, argon2id, tokens, refresh);
criterion_main!(benches);
