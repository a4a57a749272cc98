//! iss, aud, exp, nbf, iat against the configured clock and leeway; no token or secret in
//! any Debug output or error message.

use std::time::Duration;

use gatehouse_verify::{Verifier, VerifyError};
use serde_json::{json, Value};

use crate::support::*;

async fn setup() -> (SigningKey, JwksServer, TestClock, Verifier) {
    let key = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    (key, server, clock, verifier)
}

#[tokio::test]
async fn a_token_of_another_issuer_is_refused() {
    let (key, _server, clock, verifier) = setup().await;
    for iss in [
        json!("https://other.supabase.co/auth/v1"),
        json!(format!("{ISSUER}/")),
        json!("https://abcdefgh.supabase.co"),
        json!(null),
    ] {
        let mut claims = claims_at(clock.unix());
        claims["iss"] = iss.clone();
        let expected = if iss.is_null() {
            VerifyError::Malformed
        } else {
            VerifyError::WrongIssuer
        };
        assert_eq!(
            verifier.verify(&key.sign(&claims)).await,
            Err(expected),
            "{iss}"
        );
    }
}

#[tokio::test]
async fn the_audience_must_be_one_of_the_accepted() {
    let (key, server, clock, verifier) = setup().await;
    let with_aud = |aud: Value| {
        let mut claims = claims_at(clock.unix());
        claims["aud"] = aud;
        key.sign(&claims)
    };
    verifier
        .verify(&with_aud(json!(["other", "authenticated"])))
        .await
        .unwrap();
    for aud in [json!("anon"), json!([]), json!(["a", "b"])] {
        assert_eq!(
            verifier.verify(&with_aud(aud.clone())).await,
            Err(VerifyError::WrongAudience),
            "{aud}"
        );
    }

    // audience() replaces the default, and adds on further calls.
    let custom = server
        .builder(&clock)
        .audience("api")
        .audience("admin-api")
        .build()
        .unwrap();
    custom.verify(&with_aud(json!("api"))).await.unwrap();
    custom.verify(&with_aud(json!("admin-api"))).await.unwrap();
    custom.verify(&with_aud(json!(["x", "api"]))).await.unwrap();
    assert_eq!(
        custom.verify(&with_aud(json!("authenticated"))).await,
        Err(VerifyError::WrongAudience)
    );
}

#[tokio::test]
async fn exp_with_leeway() {
    let (key, _server, clock, verifier) = setup().await;
    let now = clock.unix() as i64;
    let with_exp = |exp: i64| {
        let mut claims = claims_at(clock.unix());
        claims["iat"] = json!(now - 7200);
        claims["exp"] = json!(exp);
        key.sign(&claims)
    };
    // Default leeway 30 s.
    verifier.verify(&with_exp(now + 1)).await.unwrap();
    verifier.verify(&with_exp(now - 29)).await.unwrap();
    assert_eq!(
        verifier.verify(&with_exp(now - 30)).await,
        Err(VerifyError::Expired)
    );
    assert_eq!(
        verifier.verify(&with_exp(now - 3600)).await,
        Err(VerifyError::Expired)
    );

    // The clock moves, the token expires.
    let token = with_exp(now + 60);
    verifier.verify(&token).await.unwrap();
    clock.advance(Duration::from_secs(60 + 29));
    verifier.verify(&token).await.unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::Expired));
}

#[tokio::test]
async fn a_leeway_of_zero_is_exact() {
    let (key, server, clock, _) = setup().await;
    let strict = server
        .builder(&clock)
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    let now = clock.unix() as i64;
    let mut claims = claims_at(clock.unix());
    claims["exp"] = json!(now + 1);
    strict.verify(&key.sign(&claims)).await.unwrap();
    claims["exp"] = json!(now);
    assert_eq!(
        strict.verify(&key.sign(&claims)).await,
        Err(VerifyError::Expired)
    );
    claims["exp"] = json!(now + 60);
    claims["nbf"] = json!(now + 1);
    assert_eq!(
        strict.verify(&key.sign(&claims)).await,
        Err(VerifyError::NotYetValid)
    );
}

#[tokio::test]
async fn nbf_and_iat_in_the_future_beyond_the_leeway_are_not_yet_valid() {
    let (key, _server, clock, verifier) = setup().await;
    let now = clock.unix() as i64;
    let with = |name: &str, t: i64| {
        let mut claims = claims_at(clock.unix());
        claims[name] = json!(t);
        key.sign(&claims)
    };
    verifier.verify(&with("nbf", now)).await.unwrap();
    verifier.verify(&with("nbf", now + 30)).await.unwrap();
    assert_eq!(
        verifier.verify(&with("nbf", now + 31)).await,
        Err(VerifyError::NotYetValid)
    );
    verifier.verify(&with("iat", now + 30)).await.unwrap();
    assert_eq!(
        verifier.verify(&with("iat", now + 600)).await,
        Err(VerifyError::NotYetValid)
    );
    // Later, the same token is valid.
    let token = with("nbf", now + 300);
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::NotYetValid));
    clock.advance(Duration::from_secs(300));
    verifier.verify(&token).await.unwrap();
}

#[tokio::test]
async fn tokens_and_secrets_appear_in_no_debug_output_or_error_message() {
    let key = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let clock = TestClock::new();
    let builder = server.builder(&clock).hs256_secret(SECRET);
    let builder_debug = format!("{builder:?}");
    assert!(!builder_debug.contains(SECRET), "{builder_debug}");
    let verifier = builder.build().unwrap();
    let claims = claims_at(clock.unix());
    let token = key.sign(&claims);
    verifier.verify(&token).await.unwrap();
    let verifier_debug = format!("{verifier:?}");
    assert!(!verifier_debug.contains(SECRET), "{verifier_debug}");
    assert!(verifier_debug.contains("[configured]"), "{verifier_debug}");
    // Not even the bytes of the secret, as Debug of a Vec<u8> would print them.
    let as_bytes = format!("{:?}", SECRET.as_bytes());
    let inner = &as_bytes[1..as_bytes.len() - 1];
    assert!(!verifier_debug.contains(inner) && !builder_debug.contains(inner));

    let short = format!(
        "{:?}",
        Verifier::builder(ISSUER)
            .hs256_secret("s3cr3t-but-short")
            .build()
    );
    assert!(!short.contains("s3cr3t-but-short"), "{short}");

    // Every way a token can fail: the message and the Debug name none of its parts.
    let mut expired = claims.clone();
    expired["exp"] = json!(0);
    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!("https://evil.example.com/auth/v1");
    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("evil");
    let tokens = [
        key.sign(&expired),
        key.sign(&wrong_iss),
        key.sign(&wrong_aud),
        SigningKey::es256("ec-1").sign(&claims),
        SigningKey::es256("unknown-kid").sign(&claims),
        hs256(b"another-secret-that-is-also-long-enough!", None, &claims),
        format!("{token}.x"),
    ];
    for bad in &tokens {
        let err = verifier.verify(bad).await.unwrap_err();
        let text = format!("{err} {err:?}");
        for part in bad.split('.').filter(|p| p.len() > 3) {
            assert!(!text.contains(part), "{text}");
        }
        assert!(!text.contains("evil") && !text.contains(SECRET), "{text}");
    }
    // Nor does the reason keys are unavailable.
    let down = Verifier::builder(ISSUER)
        .jwks_url(dead_url())
        .hs256_secret(SECRET)
        .build()
        .unwrap();
    let err = down.verify(&token).await.unwrap_err();
    assert!(err.is_unavailable());
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains(SECRET) && !text.contains(&token[..20]),
        "{text}"
    );
}
