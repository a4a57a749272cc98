//! Which algorithms and keys verify which tokens: the allowlist, each key bound to its
//! algorithm, no HS/asymmetric key confusion.

use gatehouse_verify::{Audience, Verifier, VerifyError};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn es256_token_verifies_and_its_claims_come_back() {
    let key = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    let mut claims = claims_at(clock.unix());
    claims["app_metadata"]["role"] = json!("admin");
    claims["email"] = json!("");
    claims["custom"] = json!({"plan": "pro"});

    let got = verifier.verify(&key.sign(&claims)).await.unwrap();
    assert_eq!(got.sub, "9f6f7c1e-52b8-4b51-9b0f-0d5c1a3d2e11");
    assert_eq!(got.iss, ISSUER);
    assert_eq!(got.aud, Audience::One("authenticated".into()));
    assert_eq!(got.exp, clock.unix() as i64 + 3600);
    assert_eq!(got.email.as_deref(), Some(""), "kept as given");
    assert_eq!(got.role.as_deref(), Some("authenticated"));
    assert_eq!(got.app_role(), Some("admin"));
    assert_eq!(got.aal.as_deref(), Some("aal1"));
    assert_eq!(got.is_anonymous, Some(false));
    assert_eq!(
        got.user_id().unwrap().to_string(),
        "9f6f7c1e-52b8-4b51-9b0f-0d5c1a3d2e11"
    );
    assert_eq!(
        got.session_uuid().unwrap().to_string(),
        "3c0b7c8e-2c0c-4f57-9d1c-7f6f3b2a1d00"
    );
    assert_eq!(got.user_metadata["display_name"], "Ada");
    assert_eq!(got.extra["custom"], json!({"plan": "pro"}));
    assert_eq!(server.hits(), 1, "fetched lazily, once");
    assert_eq!(verifier.jwks_fetches(), 1);

    // Cached: more tokens, no more requests.
    for _ in 0..5 {
        verifier.verify(&key.sign(&claims)).await.unwrap();
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn rs256_token_verifies() {
    let key = SigningKey::rs256("rsa-1");
    let server = JwksServer::start(&[&key]).await;
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    let claims = verifier
        .verify(&key.sign(&claims_at(clock.unix())))
        .await
        .unwrap();
    assert_eq!(claims.email.as_deref(), Some("ada@example.com"));
}

#[tokio::test]
async fn eddsa_token_verifies() {
    let key = SigningKey::eddsa("ed-1");
    let server = JwksServer::start(&[&key]).await;
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    let claims = verifier
        .verify(&key.sign(&claims_at(clock.unix())))
        .await
        .unwrap();
    assert_eq!(claims.sub, "9f6f7c1e-52b8-4b51-9b0f-0d5c1a3d2e11");
}

#[tokio::test]
async fn each_of_several_published_keys_verifies_its_own_tokens() {
    let (ec, ed) = (SigningKey::es256("ec"), SigningKey::eddsa("ed"));
    let server = JwksServer::start(&[&ec, &ed]).await;
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    let claims = claims_at(clock.unix());
    verifier.verify(&ec.sign(&claims)).await.unwrap();
    verifier.verify(&ed.sign(&claims)).await.unwrap();
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn hs256_verifies_with_the_configured_secret_without_fetching_keys() {
    let server = JwksServer::start(&[]).await;
    let clock = TestClock::new();
    let verifier = server.builder(&clock).hs256_secret(SECRET).build().unwrap();
    let claims = claims_at(clock.unix());
    verifier
        .verify(&hs256(SECRET.as_bytes(), None, &claims))
        .await
        .unwrap();
    // Legacy tokens may carry a kid the JWKS does not know: the secret still decides.
    verifier
        .verify(&hs256(SECRET.as_bytes(), Some("legacy"), &claims))
        .await
        .unwrap();
    assert_eq!(server.hits(), 0);
    assert_eq!(verifier.jwks_fetches(), 0);

    let other = "another-secret-that-is-also-long-enough!";
    assert_eq!(
        verifier
            .verify(&hs256(other.as_bytes(), None, &claims))
            .await,
        Err(VerifyError::BadSignature)
    );
}

#[tokio::test]
async fn hs256_is_refused_without_a_secret() {
    let server = JwksServer::start(&[]).await;
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    let token = hs256(SECRET.as_bytes(), None, &claims_at(clock.unix()));
    assert_eq!(
        verifier.verify(&token).await,
        Err(VerifyError::UnsupportedAlgorithm)
    );
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn alg_none_and_every_other_algorithm_are_refused() {
    let key = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let clock = TestClock::new();
    let verifier = server.builder(&clock).hs256_secret(SECRET).build().unwrap();
    let claims = claims_at(clock.unix());
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"none","kid":"ec-1"}"#,
        r#"{"alg":"None"}"#,
        r#"{"alg":"ES384","kid":"ec-1"}"#,
        r#"{"alg":"PS256","kid":"ec-1"}"#,
    ] {
        for signature in ["", "c2ln"] {
            assert_eq!(
                verifier.verify(&forge(header, &claims, signature)).await,
                Err(VerifyError::UnsupportedAlgorithm),
                "{header}"
            );
        }
    }
    // HS384/HS512 with the very secret: still not on the list.
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = jsonwebtoken::encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            verifier.verify(&token).await,
            Err(VerifyError::UnsupportedAlgorithm)
        );
    }
}

#[tokio::test]
async fn a_header_alg_other_than_the_keys_is_refused() {
    let ec = SigningKey::es256("ec-1");
    let rsa = SigningKey::rs256("rsa-1");
    let ed = SigningKey::eddsa("ed-1");
    let server = JwksServer::start(&[&ec, &rsa, &ed]).await;
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    let claims = claims_at(clock.unix());

    // Genuine RS256 and EdDSA signatures, but under the EC key's kid.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("ec-1".into());
    assert_eq!(
        verifier.verify(&rsa.sign_with(header, &claims)).await,
        Err(VerifyError::UnsupportedAlgorithm)
    );
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("rsa-1".into());
    assert_eq!(
        verifier.verify(&ed.sign_with(header, &claims)).await,
        Err(VerifyError::UnsupportedAlgorithm)
    );
    // An ES256 signature claiming to be EdDSA under the EC kid.
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("ec-1".into());
    let token = sign_raw(&header, &claims, &ec.encoding, Algorithm::ES256);
    assert_eq!(
        verifier.verify(&token).await,
        Err(VerifyError::UnsupportedAlgorithm)
    );
    // The right ones pass.
    verifier.verify(&rsa.sign(&claims)).await.unwrap();
    assert_eq!(
        server.hits(),
        1,
        "a known kid with the wrong alg is no reason to refetch"
    );
}

#[tokio::test]
async fn an_hs256_token_keyed_with_public_key_material_is_refused() {
    let ec = SigningKey::es256("ec-1");
    let rsa = SigningKey::rs256("rsa-1");
    let server = JwksServer::start(&[&ec, &rsa]).await;
    let clock = TestClock::new();
    let claims = claims_at(clock.unix());
    let forged: Vec<String> = [
        (ec.public.clone(), "ec-1"),
        (serde_json::to_vec(&ec.jwk).unwrap(), "ec-1"),
        (rsa.public.clone(), "rsa-1"),
        (serde_json::to_vec(&rsa.jwk).unwrap(), "rsa-1"),
    ]
    .into_iter()
    .map(|(bytes, kid)| hs256(&bytes, Some(kid), &claims))
    .collect();

    let without_secret = server.verifier(&clock);
    without_secret.prefetch().await.unwrap();
    let with_secret = server.builder(&clock).hs256_secret(SECRET).build().unwrap();
    with_secret.prefetch().await.unwrap();
    for token in &forged {
        assert_eq!(
            without_secret.verify(token).await,
            Err(VerifyError::UnsupportedAlgorithm)
        );
        assert_eq!(
            with_secret.verify(token).await,
            Err(VerifyError::BadSignature)
        );
    }
}

#[tokio::test]
async fn oct_keys_enc_keys_and_keys_whose_alg_does_not_fit_are_never_used() {
    let ec = SigningKey::es256("ec-1");
    let mut mislabelled = SigningKey::es256("ec-2");
    mislabelled.jwk["alg"] = json!("RS256");
    let mut enc = SigningKey::es256("ec-enc");
    enc.jwk["use"] = json!("enc");
    let oct_secret = [7u8; 32];
    let oct = json!({"kty": "oct", "kid": "oct-1", "alg": "HS256", "k": b64(&oct_secret)});
    let server = JwksServer::start(&[]).await;
    server.publish_raw(json!({"keys": [ec.jwk, mislabelled.jwk, enc.jwk, oct]}));
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    let claims = claims_at(clock.unix());

    verifier.verify(&ec.sign(&claims)).await.unwrap();
    assert_eq!(
        verifier.verify(&mislabelled.sign(&claims)).await,
        Err(VerifyError::UnknownKey)
    );
    assert_eq!(
        verifier.verify(&enc.sign(&claims)).await,
        Err(VerifyError::UnknownKey)
    );
    assert_eq!(
        verifier
            .verify(&hs256(&oct_secret, Some("oct-1"), &claims))
            .await,
        Err(VerifyError::UnsupportedAlgorithm)
    );
}

#[tokio::test]
async fn a_token_signed_by_another_key_under_a_known_kid_is_a_bad_signature() {
    let real = SigningKey::es256("ec-1");
    let impostor = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[&real]).await;
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    let claims = claims_at(clock.unix());
    assert_eq!(
        verifier.verify(&impostor.sign(&claims)).await,
        Err(VerifyError::BadSignature)
    );
    // A valid token whose payload was swapped after signing.
    let token = real.sign(&claims);
    let mut other = claims.clone();
    other["app_metadata"]["role"] = json!("admin");
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&serde_json::to_vec(&other).unwrap()),
        parts[2]
    );
    assert_eq!(
        verifier.verify(&tampered).await,
        Err(VerifyError::BadSignature)
    );
    // A signature cut short.
    let truncated = &token[..token.len() - 4];
    assert_eq!(
        verifier.verify(truncated).await,
        Err(VerifyError::BadSignature)
    );
    verifier.verify(&token).await.unwrap();
}

#[tokio::test]
async fn a_token_without_kid_is_tried_against_the_keys_of_its_algorithm() {
    let ec = SigningKey::es256("ec-1");
    let ec2 = SigningKey::es256("ec-2");
    let ed = SigningKey::eddsa("ed-1");
    let server = JwksServer::start(&[&ec, &ec2, &ed]).await;
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    let claims = claims_at(clock.unix());
    let kidless = |key: &SigningKey| key.sign_with(Header::new(key.alg), &claims);

    verifier.verify(&kidless(&ec)).await.unwrap();
    verifier.verify(&kidless(&ec2)).await.unwrap();
    verifier.verify(&kidless(&ed)).await.unwrap();
    assert_eq!(
        verifier.verify(&kidless(&SigningKey::es256("x"))).await,
        Err(VerifyError::BadSignature)
    );
    // No RS256 key is published: nothing to try.
    assert_eq!(
        verifier.verify(&kidless(&SigningKey::rs256("x"))).await,
        Err(VerifyError::UnknownKey)
    );
}

#[tokio::test]
async fn malformed_tokens_are_malformed() {
    let key = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let clock = TestClock::new();
    let verifier = server.verifier(&clock);
    let claims = claims_at(clock.unix());
    let good = key.sign(&claims);
    let (_, rest) = good.split_once('.').unwrap();
    let huge = format!("{}.{}.c2ln", b64(br#"{"alg":"ES256"}"#), "a".repeat(20_000));
    for token in [
        String::new(),
        "abc".into(),
        "a.b".into(),
        format!("{good}.extra"),
        format!("!!!.{rest}"),
        format!("{}.{rest}", b64(b"not json")),
        format!("{}.{rest}", b64(br#"{"kid":"ec-1"}"#)),
        format!(
            "{}.{rest}",
            b64(br#"{"alg":"ES256","kid":"ec-1","crit":["exp"]}"#)
        ),
        format!("{good}=="),
        huge,
    ] {
        assert_eq!(
            verifier.verify(&token).await,
            Err(VerifyError::Malformed),
            "{token:.40}"
        );
    }
    // A genuine signature over a payload that is not claims (no exp).
    let mut no_exp = claims.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        verifier.verify(&key.sign(&no_exp)).await,
        Err(VerifyError::Malformed)
    );
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ec-1".into());
    let message = format!(
        "{}.{}",
        b64(&serde_json::to_vec(&header).unwrap()),
        b64(b"[1,2]")
    );
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key.encoding, Algorithm::ES256).unwrap();
    assert_eq!(
        verifier.verify(&format!("{message}.{signature}")).await,
        Err(VerifyError::Malformed)
    );
}

#[tokio::test]
async fn the_builder_checks_urls_secret_and_timeout() {
    let config = |r: Result<Verifier, VerifyError>| matches!(r, Err(VerifyError::Config(_)));
    assert!(config(Verifier::builder("not a url").build()));
    assert!(config(
        Verifier::builder("ftp://example.com/auth/v1").build()
    ));
    assert!(config(
        Verifier::builder(ISSUER)
            .jwks_url("file:///etc/jwks.json")
            .build()
    ));
    assert!(config(
        Verifier::builder(ISSUER).hs256_secret("short").build()
    ));
    assert!(config(
        Verifier::builder(ISSUER)
            .hs256_secret(vec![b'x'; 31])
            .build()
    ));
    assert!(config(
        Verifier::builder(ISSUER)
            .http_timeout(std::time::Duration::ZERO)
            .build()
    ));
    let ok = Verifier::builder(ISSUER)
        .hs256_secret(vec![b'x'; 32])
        .build()
        .unwrap();
    assert_eq!(ok.issuer(), ISSUER);
    assert_eq!(
        ok.jwks_url(),
        "https://abcdefgh.supabase.co/auth/v1/.well-known/jwks.json"
    );
    let slash = Verifier::builder("https://abcdefgh.supabase.co/auth/v1/")
        .build()
        .unwrap();
    assert_eq!(
        slash.jwks_url(),
        "https://abcdefgh.supabase.co/auth/v1/.well-known/jwks.json"
    );
}

#[tokio::test]
async fn the_default_jwks_url_is_under_the_issuer() {
    // A gatehouse-like server: issuer `<base>/auth/v1`, keys at `<issuer>/.well-known/jwks.json`.
    let key = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let clock = TestClock::new();
    let issuer = format!("{}/auth/v1", server.base);
    let verifier = Verifier::builder(issuer.clone())
        .clock(clock.clock())
        .build()
        .unwrap();
    let mut claims = claims_at(clock.unix());
    claims["iss"] = json!(issuer);
    verifier.verify(&key.sign(&claims)).await.unwrap();
    assert_eq!(server.hits(), 1);
}
