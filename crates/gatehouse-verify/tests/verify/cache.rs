//! The JWKS cache against a real server that counts requests: lazy load, TTL and
//! Cache-Control, rotation, bounded refetches on unknown kids, single flight, stale keys
//! on failure, KeysUnavailable only when keys were never loaded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_verify::{Verifier, VerifyError};
use tokio::task::JoinSet;

use crate::support::*;

const MIN_REFETCH: Duration = Duration::from_secs(30);

/// Verifies `tokens` concurrently, each on its own task.
async fn verify_all(verifier: &Verifier, tokens: Vec<String>) -> Vec<Result<(), VerifyError>> {
    let mut set = JoinSet::new();
    for token in tokens {
        let verifier = verifier.clone();
        set.spawn(async move { verifier.verify(&token).await.map(|_| ()) });
    }
    let mut results = Vec::new();
    while let Some(result) = set.join_next().await {
        results.push(result.unwrap());
    }
    results
}

#[tokio::test]
async fn prefetch_loads_the_keys_and_counts_the_request() {
    let key = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    assert_eq!(
        verifier.jwks_fetches(),
        0,
        "nothing is fetched before it is needed"
    );
    verifier.prefetch().await.unwrap();
    assert_eq!((server.hits(), verifier.jwks_fetches()), (1, 1));
    verifier
        .verify(&key.sign(&claims_at(clock.unix())))
        .await
        .unwrap();
    assert_eq!(server.hits(), 1);
    // Clones share the cache.
    let clone = verifier.clone();
    clone
        .verify(&key.sign(&claims_at(clock.unix())))
        .await
        .unwrap();
    assert_eq!((server.hits(), clone.jwks_fetches()), (1, 1));
}

#[tokio::test]
async fn a_rotated_in_key_is_fetched_once_and_verifies() {
    let old = SigningKey::es256("old");
    let new = SigningKey::es256("new");
    let server = JwksServer::start(&[&old]).await;
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    verifier.prefetch().await.unwrap();

    server.publish(&[&old, &new]);
    clock.advance(MIN_REFETCH + Duration::from_secs(1));
    let claims = claims_at(clock.unix());
    verifier.verify(&new.sign(&claims)).await.unwrap();
    assert_eq!(server.hits(), 2, "exactly one refetch");
    verifier.verify(&new.sign(&claims)).await.unwrap();
    verifier.verify(&old.sign(&claims)).await.unwrap();
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn a_new_kid_right_after_a_fetch_waits_for_the_interval() {
    let old = SigningKey::es256("old");
    let new = SigningKey::es256("new");
    let server = JwksServer::start(&[&old]).await;
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    verifier.prefetch().await.unwrap();
    server.publish(&[&old, &new]);
    let claims = claims_at(clock.unix());
    assert_eq!(
        verifier.verify(&new.sign(&claims)).await,
        Err(VerifyError::UnknownKey)
    );
    assert_eq!(
        server.hits(),
        1,
        "within min_refetch_interval of the last fetch"
    );
    clock.advance(MIN_REFETCH);
    verifier.verify(&new.sign(&claims)).await.unwrap();
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn a_flood_of_forged_kids_makes_at_most_one_request_per_interval() {
    let key = SigningKey::es256("real");
    let server = JwksServer::start(&[&key]).await;
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    verifier.prefetch().await.unwrap();
    clock.advance(MIN_REFETCH + Duration::from_secs(1));
    let claims = claims_at(clock.unix());
    let forged: Vec<String> = (0..1000)
        .map(|i| {
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
            header.kid = Some(format!("forged-{i}"));
            key.sign_with(header, &claims)
        })
        .collect();

    let results = verify_all(&verifier, forged.clone()).await;
    assert_eq!(results.len(), 1000);
    assert!(results.iter().all(|r| *r == Err(VerifyError::UnknownKey)));
    assert_eq!(server.hits(), 2, "one refetch for the whole flood");

    let results = verify_all(&verifier, forged.clone()).await;
    assert!(results.iter().all(|r| *r == Err(VerifyError::UnknownKey)));
    assert_eq!(server.hits(), 2, "none more within the interval");

    clock.advance(MIN_REFETCH);
    verify_all(&verifier, forged).await;
    assert_eq!(server.hits(), 3, "one more in the next interval");
    // The real key went on verifying throughout.
    verifier.verify(&key.sign(&claims)).await.unwrap();
    assert_eq!(verifier.jwks_fetches(), 3);
}

#[tokio::test]
async fn concurrent_first_uses_and_stale_refreshes_share_one_request() {
    let key = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    // Slow enough that every caller arrives while the one request is in flight.
    server.set_mode(Mode::Slow(Duration::from_millis(300)));
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    let tokens = || {
        (0..100)
            .map(|_| key.sign(&claims_at(clock.unix())))
            .collect()
    };
    let results = verify_all(&verifier, tokens()).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(server.hits(), 1);

    clock.advance(Duration::from_secs(11 * 60));
    let results = verify_all(&verifier, tokens()).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn keys_are_fresh_for_the_ttl_then_refetched() {
    let key = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    verifier.prefetch().await.unwrap();
    clock.advance(Duration::from_secs(9 * 60 + 59));
    verifier
        .verify(&key.sign(&claims_at(clock.unix())))
        .await
        .unwrap();
    assert_eq!(server.hits(), 1, "default TTL 10 min");
    clock.advance(Duration::from_secs(1));
    verifier
        .verify(&key.sign(&claims_at(clock.unix())))
        .await
        .unwrap();
    assert_eq!(server.hits(), 2);

    let short = server
        .builder(&clock)
        .jwks_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    short.prefetch().await.unwrap();
    clock.advance(Duration::from_secs(61));
    short
        .verify(&key.sign(&claims_at(clock.unix())))
        .await
        .unwrap();
    assert_eq!(short.jwks_fetches(), 2);
}

#[tokio::test]
async fn a_shorter_cache_control_max_age_wins() {
    let key = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    server.set_cache_control(Some("public, max-age=120"));
    let clock = TestClock::new();
    // Short refetch interval, so only freshness decides here.
    let verifier = server
        .builder(&clock)
        .min_refetch_interval(Duration::from_secs(1))
        .build()
        .unwrap();
    verifier.prefetch().await.unwrap();
    clock.advance(Duration::from_secs(119));
    verifier
        .verify(&key.sign(&claims_at(clock.unix())))
        .await
        .unwrap();
    assert_eq!(server.hits(), 1);
    clock.advance(Duration::from_secs(1));
    verifier
        .verify(&key.sign(&claims_at(clock.unix())))
        .await
        .unwrap();
    assert_eq!(server.hits(), 2);

    // A cache in between already held it for 100 of the 120 s.
    server.set_age(Some("100"));
    clock.advance(Duration::from_secs(120));
    verifier
        .verify(&key.sign(&claims_at(clock.unix())))
        .await
        .unwrap();
    assert_eq!(server.hits(), 3);
    clock.advance(Duration::from_secs(20));
    verifier
        .verify(&key.sign(&claims_at(clock.unix())))
        .await
        .unwrap();
    assert_eq!(server.hits(), 4);

    // Longer than the TTL: the TTL wins.
    server.set_age(None);
    server.set_cache_control(Some("max-age=86400"));
    clock.advance(Duration::from_secs(120));
    verifier
        .verify(&key.sign(&claims_at(clock.unix())))
        .await
        .unwrap();
    assert_eq!(server.hits(), 5);
    clock.advance(Duration::from_secs(600));
    verifier
        .verify(&key.sign(&claims_at(clock.unix())))
        .await
        .unwrap();
    assert_eq!(server.hits(), 6);
}

#[tokio::test]
async fn no_store_keeps_keys_for_the_min_refetch_interval() {
    let key = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    server.set_cache_control(Some("no-store"));
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    verifier.prefetch().await.unwrap();
    clock.advance(MIN_REFETCH - Duration::from_secs(1));
    verifier
        .verify(&key.sign(&claims_at(clock.unix())))
        .await
        .unwrap();
    assert_eq!(server.hits(), 1);
    clock.advance(Duration::from_secs(1));
    verifier
        .verify(&key.sign(&claims_at(clock.unix())))
        .await
        .unwrap();
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn a_jwks_server_down_at_first_use_means_keys_unavailable() {
    let clock = TestClock::new();
    let verifier = Verifier::builder(ISSUER)
        .jwks_url(dead_url())
        .hs256_secret(SECRET)
        .clock(clock.clock())
        .build()
        .unwrap();
    let key = SigningKey::es256("ec-1");
    let claims = claims_at(clock.unix());
    let err = verifier.verify(&key.sign(&claims)).await.unwrap_err();
    assert!(matches!(err, VerifyError::KeysUnavailable(_)), "{err:?}");
    assert!(err.is_unavailable());
    assert!(!VerifyError::BadSignature.is_unavailable());
    let err = verifier.prefetch().await.unwrap_err();
    assert!(err.is_unavailable());
    // HS256 needs no keys.
    verifier
        .verify(&hs256(SECRET.as_bytes(), None, &claims))
        .await
        .unwrap();
}

#[tokio::test]
async fn keys_never_loaded_are_retried_only_after_the_interval() {
    let key = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    server.set_mode(Mode::Status(500));
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    let token = key.sign(&claims_at(clock.unix()));
    for _ in 0..5 {
        let err = verifier.verify(&token).await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        assert!(err.to_string().contains("500"), "{err}");
    }
    assert_eq!(server.hits(), 1, "no retry before min_refetch_interval");
    server.set_mode(Mode::Serve);
    clock.advance(MIN_REFETCH);
    verifier.verify(&token).await.unwrap();
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn stale_keys_keep_verifying_while_the_server_is_down() {
    let key = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let clock = TestClock::new();
    let verifier = server
        .builder(&clock)
        .http_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    verifier.prefetch().await.unwrap();

    for mode in [
        Mode::Status(503),
        Mode::Garbage,
        Mode::Slow(Duration::from_secs(10)),
    ] {
        server.set_mode(mode.clone());
        clock.advance(Duration::from_secs(11 * 60));
        let before = server.hits();
        verifier
            .verify(&key.sign(&claims_at(clock.unix())))
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e:?}"));
        assert_eq!(server.hits(), before + 1, "{mode:?}: one attempt");
        // Stale, but no retry within the interval.
        verifier
            .verify(&key.sign(&claims_at(clock.unix())))
            .await
            .unwrap();
        assert_eq!(server.hits(), before + 1, "{mode:?}: no retry yet");
        // An explicit prefetch does try, and says it failed.
        assert!(
            verifier.prefetch().await.unwrap_err().is_unavailable(),
            "{mode:?}"
        );
        verifier
            .verify(&key.sign(&claims_at(clock.unix())))
            .await
            .unwrap();
    }
    // Back up: the next attempt after the interval refreshes.
    server.set_mode(Mode::Serve);
    let new = SigningKey::es256("ec-2");
    server.publish(&[&key, &new]);
    clock.advance(MIN_REFETCH);
    verifier
        .verify(&new.sign(&claims_at(clock.unix())))
        .await
        .unwrap();
}

#[tokio::test]
async fn garbage_errors_and_slowness_at_first_use_are_keys_unavailable_quickly() {
    let key = SigningKey::es256("ec-1");
    for (mode, hint) in [
        (Mode::Garbage, "not a JWKS"),
        (Mode::Status(500), "500"),
        (Mode::Status(404), "404"),
        (Mode::Slow(Duration::from_secs(30)), "within"),
    ] {
        let server = JwksServer::start(&[&key]).await;
        server.set_mode(mode.clone());
        let clock = TestClock::new();
        let verifier = server
            .builder(&clock)
            .http_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let started = Instant::now();
        let err = verifier
            .verify(&key.sign(&claims_at(clock.unix())))
            .await
            .unwrap_err();
        // A functional bound (the timeout works), far above the 300 ms configured.
        assert!(started.elapsed() < Duration::from_secs(5), "{mode:?}");
        match &err {
            VerifyError::KeysUnavailable(reason) => assert!(reason.contains(hint), "{reason}"),
            other => panic!("{mode:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_jwks_that_is_not_json_keys_is_refused_but_an_empty_one_is_loaded() {
    let key = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[]).await;
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    server.publish_raw(serde_json::json!({"keys": "none"}));
    assert!(verifier.prefetch().await.unwrap_err().is_unavailable());
    server.publish_raw(serde_json::json!({"keys": []}));
    verifier.prefetch().await.unwrap();
    assert_eq!(
        verifier.verify(&key.sign(&claims_at(clock.unix()))).await,
        Err(VerifyError::UnknownKey)
    );
}

#[tokio::test]
async fn prefetch_during_a_fetch_waits_for_it_rather_than_fetching_again() {
    let key = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    server.set_mode(Mode::Slow(Duration::from_millis(300)));
    let clock = TestClock::new();
    let verifier = Arc::new(server.verifier(&clock));
    let first = {
        let verifier = verifier.clone();
        tokio::spawn(async move { verifier.prefetch().await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    verifier.prefetch().await.unwrap();
    first.await.unwrap().unwrap();
    assert_eq!(server.hits(), 1);
}
