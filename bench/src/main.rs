//! The load benchmark's helper (`bench/run.py` drives it):
//!
//! - `seed` fills a database with users fast: one Argon2id hash shared by all of them
//!   (sign-in still verifies at full cost), a few hundred rows per statement, and an admin;
//!   it prints what the load scenarios need as JSON.
//! - `limits` measures what bounds each endpoint on this machine: one Argon2id hash and
//!   verify, the password policy, one token signature and verification per algorithm, and
//!   one indexed read of a user. Also JSON.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use gatehouse_core::admin::user_cursor;
use gatehouse_core::clock::{Clock, SystemClock};
use gatehouse_core::keys::{JwtAlg, KeySet, LoadedKey};
use gatehouse_core::password::{HashLimits, Hasher, PasswordPolicy};
use gatehouse_core::store::{sqlx, Backend, ConnectOptions, DatabaseUrl, NewUser, Store, UserSort};
use gatehouse_core::tokens::{AccessClaims, Audience, TokenService};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

#[derive(Parser)]
#[command(about = "Seeds and measures for the gatehouse load benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrates the database and inserts `--users` users and one admin.
    Seed {
        #[arg(long)]
        database_url: String,
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        /// Every seeded user's password (the admin's too).
        #[arg(long)]
        password: String,
    },
    /// Measures the per-operation costs the budget is relative to.
    Limits {
        /// A seeded database, for the indexed read.
        #[arg(long)]
        database_url: String,
        /// A password that passes the policy, as sign-up sends it.
        #[arg(long)]
        password: String,
    },
}

/// Users are inserted and committed this many at a time.
const SEED_CHUNK: usize = 10_000;

/// The seeded users' emails; the load scenarios rebuild them from the index.
fn email(i: usize) -> String {
    format!("user{i}@bench.example.com")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Seed {
            database_url,
            users,
            password,
        } => seed(&database_url, users, password).await,
        Command::Limits {
            database_url,
            password,
        } => limits(&database_url, password).await,
    }
}

async fn open(database_url: &str) -> anyhow::Result<Store> {
    let url = DatabaseUrl::parse(database_url).context("DATABASE_URL")?;
    let store = Store::connect(&url, &ConnectOptions::default()).await?;
    store.migrate().await?;
    Ok(store)
}

async fn seed(database_url: &str, count: usize, password: String) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = open(database_url).await?;
    let hasher = Hasher::new(HashLimits::default())?;
    let hash = hasher.hash(&SecretString::from(password)).await?;
    // A day ago, one microsecond apart: created_at order is index order.
    let base = SystemClock.now() - Duration::from_secs(24 * 3600);
    let user = |i: usize, email: String, role: &str| NewUser {
        id: Uuid::now_v7(),
        email,
        username: None,
        password_hash: Some(hash.clone()),
        role: role.to_owned(),
        app_metadata: json!({"provider": "email", "providers": ["email"]}),
        user_metadata: json!({}),
        email_confirmed_at: Some(base.into()),
        banned_until: None,
        display_name: None,
        created_at: (base + Duration::from_micros(u64::try_from(i).unwrap_or(0))).into(),
    };
    let admin = user(0, "admin@bench.example.com".to_owned(), "admin");
    store.import_users(std::slice::from_ref(&admin)).await?;
    // The page after this user is 99 % of the way down the list.
    let deep_index = count.saturating_mul(99) / 100;
    let mut deep_id = admin.id;
    let mut batch = Vec::with_capacity(SEED_CHUNK);
    for i in 0..count {
        let new = user(i + 1, email(i), "user");
        if i == deep_index {
            deep_id = new.id;
        }
        batch.push(new);
        if batch.len() == SEED_CHUNK || i + 1 == count {
            store.import_users(&batch).await?;
            batch.clear();
        }
    }
    if let Store::Postgres(pool) = &store {
        // What autovacuum does within a minute of a bulk load.
        sqlx::query("ANALYZE").execute(pool).await?;
    }
    let deep = store
        .get_user(deep_id)
        .await?
        .context("the deep-page user is missing")?;
    let out = json!({
        "users": count,
        "admin_email": admin.email,
        "email_pattern": email(0).replace('0', "{i}"),
        "deep_cursor": user_cursor(&deep, UserSort::CreatedAt, false),
        "deep_position": deep_index + 2,
        "seconds": started.elapsed().as_secs_f64(),
    });
    println!("{out}");
    store.close().await;
    Ok(())
}

/// The median of these timings, in microseconds.
fn median_us(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples
        .get(samples.len() / 2)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
}

async fn limits(database_url: &str, password: String) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let password = SecretString::from(password);
    let hasher = Hasher::new(HashLimits::default())?;

    // Argon2id, one at a time, then every core at once.
    let mut hash = String::new();
    let mut samples = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        hash = hasher.hash(&password).await?;
        samples.push(t.elapsed());
    }
    let hash_us = median_us(samples);
    let mut samples = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        let verified = hasher.verify(&password, Some(&hash)).await?;
        anyhow::ensure!(verified.valid, "the hash does not verify");
        samples.push(t.elapsed());
    }
    let verify_us = median_us(samples);
    // Every core verifying for three seconds: what the hardware gives when all hash at once
    // (two vCPUs that are siblings of one core, or share memory bandwidth, give less than
    // twice one).
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..cores {
        let (hasher, password, hash) = (hasher.clone(), password.clone(), hash.clone());
        tasks.spawn(async move {
            let mut done = 0u32;
            while t.elapsed() < Duration::from_secs(3) {
                hasher.verify(&password, Some(&hash)).await?;
                done += 1;
            }
            Ok::<_, gatehouse_core::Error>(done)
        });
    }
    let mut verified = 0u32;
    while let Some(done) = tasks.join_next().await {
        verified += done??;
    }
    let parallel_verifies_per_s = f64::from(verified) / t.elapsed().as_secs_f64();

    // The password policy, as sign-up runs it (zxcvbn included).
    let policy = PasswordPolicy::default();
    let secret = secrecy::ExposeSecret::expose_secret(&password).to_owned();
    anyhow::ensure!(
        policy
            .check(&secret, Some("someone@bench.example.com"), None)
            .is_empty(),
        "the sign-up password fails the policy"
    );
    let samples = (0..200)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(policy.check(&secret, Some("someone@bench.example.com"), None));
            t.elapsed()
        })
        .collect();
    let policy_us = median_us(samples);

    // One signature and one verification per algorithm.
    let service = TokenService::new("http://bench/auth/v1".into(), Duration::from_secs(5));
    let now = SystemClock.now();
    let mut claims = AccessClaims {
        iss: "http://bench/auth/v1".into(),
        sub: Uuid::now_v7(),
        aud: Audience::One("authenticated".into()),
        exp: now.unix_timestamp() + 3600,
        iat: now.unix_timestamp(),
        nbf: None,
        email: email(1),
        phone: String::new(),
        role: "authenticated".into(),
        aal: "aal1".into(),
        amr: Vec::new(),
        session_id: Uuid::now_v7(),
        is_anonymous: false,
        app_metadata: json!({"provider": "email", "providers": ["email"]}),
        user_metadata: json!({}),
    };
    let mut tokens = serde_json::Map::new();
    for alg in [JwtAlg::Es256, JwtAlg::EdDsa, JwtAlg::Rs256, JwtAlg::Hs256] {
        let set = KeySet::from_keys(vec![LoadedKey::generate(alg, "bench")?]);
        let key = set
            .signing_key(alg, now)
            .context("the generated key does not sign")?;
        let (mut sign, mut verify, mut cached) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..500 {
            // A token never seen before (its own sub), so the first verification is a
            // real one; the second is answered by the verified-token cache.
            claims.sub = Uuid::now_v7();
            let t = Instant::now();
            let token = service.sign_with(key, &claims)?;
            sign.push(t.elapsed());
            let t = Instant::now();
            let verified = service.verify(&token, &set, now);
            verify.push(t.elapsed());
            anyhow::ensure!(verified.is_ok(), "{alg} token does not verify");
            let t = Instant::now();
            let verified = service.verify(&token, &set, now);
            cached.push(t.elapsed());
            anyhow::ensure!(verified.is_ok(), "{alg} token does not verify twice");
        }
        tokens.insert(
            alg.to_string(),
            json!({"sign_us": median_us(sign), "verify_us": median_us(verify),
                   "cached_verify_us": median_us(cached)}),
        );
    }

    // One indexed read of a user (the read /auth/me makes), sequentially.
    let store = open(database_url).await?;
    let mut ids = Vec::new();
    for i in (0..5_000).step_by(50) {
        if let Some(user) = store.find_user_by_email(&email(i)).await? {
            ids.push(user.id);
        }
    }
    anyhow::ensure!(!ids.is_empty(), "the database holds no seeded users");
    let mut samples = Vec::new();
    for round in 0..20 {
        for id in &ids {
            let t = Instant::now();
            let found = store.get_user(*id).await?;
            if round > 0 {
                samples.push(t.elapsed());
            }
            anyhow::ensure!(found.is_some(), "a seeded user is missing");
        }
    }
    let read_us = median_us(samples);
    store.close().await;

    let es256_verify_us = tokens["ES256"]["verify_us"].as_f64().unwrap_or(f64::NAN);
    let es256_cached_us = tokens["ES256"]["cached_verify_us"]
        .as_f64()
        .unwrap_or(f64::NAN);
    let out = json!({
        "cores": cores,
        "backend": match DatabaseUrl::parse(database_url)?.backend() {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        },
        "argon2id_hash_us": hash_us,
        "argon2id_verify_us": verify_us,
        "argon2id_parallel_verifies_per_s": parallel_verifies_per_s,
        "password_policy_us": policy_us,
        "tokens": tokens,
        "user_read_us": read_us,
        // cores ÷ cost: what the budget's percentages are of.
        "signin_bound_per_s": cores as f64 * 1e6 / verify_us,
        "signup_bound_per_s": cores as f64 * 1e6 / hash_us,
        "me_bound_per_s": cores as f64 * 1e6 / (es256_verify_us + read_us),
        "me_cached_bound_per_s": cores as f64 * 1e6 / (es256_cached_us + read_us),
    });
    println!("{out}");
    Ok(())
}
