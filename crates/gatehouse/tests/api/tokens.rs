//! Access tokens and signing keys: forged and malformed tokens are refused, claims are
//! checked against our clock, keys rotate without breaking live tokens, other algorithms
//! work, and private keys are sealed at rest when asked.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gatehouse_core::keys::JwtAlg;
use gatehouse_core::store::Backend;
use gatehouse_core::Settings;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::{assert_error, TestApp};

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn parts(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let header =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    let claims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    (header, claims)
}

/// Signs `claims` with the server's own current ES256 key, read from the database: a
/// token that differs from a real one only in what the test changes.
async fn sign_with_server_key(app: &TestApp, header_extra: Value, claims: &Value) -> String {
    let keys = app.gatehouse.store().list_signing_keys().await.unwrap();
    let key = keys.last().unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    if let Some(jku) = header_extra.get("jku") {
        header.jku = Some(jku.as_str().unwrap().to_owned());
    }
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&key.private_key)).unwrap()
}

async fn signed_in(app: &TestApp) -> (String, Value) {
    app.signup("ada@example.com", None).await;
    let signed = app.signin_ok("ada@example.com").await;
    let (_, claims) = parts(&signed.access);
    (signed.access, claims)
}

on_both_backends! {
    async fn access_tokens_carry_supabase_claims_and_a_kid_from_the_jwks(app: TestApp) {
        let (token, claims) = signed_in(&app).await;
        let (header, _) = parts(&token);
        assert_eq!(header["alg"], "ES256");
        let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
        assert!(jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == header["kid"]));
        assert_eq!(claims["iss"], format!("{}/auth/v1", app.base));
        assert_eq!(claims["aud"], "authenticated");
        assert_eq!(claims["role"], "authenticated");
        assert_eq!(claims["aal"], "aal1");
        assert_eq!(claims["amr"][0]["method"], "password");
        assert_eq!(claims["is_anonymous"], false);
        assert_eq!(claims["email"], "ada@example.com");
        assert_eq!(claims["phone"], "");
        assert_eq!(claims["app_metadata"], json!({"provider": "email", "providers": ["email"], "role": "user"}));
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 1800);
        assert!(claims["session_id"].as_str().is_some() && claims["sub"].as_str().is_some());
    }

    async fn the_jwks_publishes_only_public_parts_and_may_be_cached(app: TestApp) {
        for path in ["/.well-known/jwks.json", "/auth/v1/.well-known/jwks.json"] {
            let response = app.get(path).await;
            assert_eq!(response.headers()["cache-control"], "public, max-age=300");
            let jwks: Value = response.json().await.unwrap();
            let keys = jwks["keys"].as_array().unwrap();
            assert_eq!(keys.len(), 1);
            let key = keys[0].as_object().unwrap();
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(!key.contains_key(private), "{path} publishes {private}");
            }
            assert_eq!(keys[0]["kty"], "EC");
            assert_eq!(keys[0]["crv"], "P-256");
            assert_eq!(keys[0]["use"], "sig");
        }
        let discovery: Value = app.get("/.well-known/openid-configuration").await.json().await.unwrap();
        assert_eq!(discovery["issuer"], format!("{}/auth/v1", app.base));
        assert_eq!(discovery["jwks_uri"], format!("{}/.well-known/jwks.json", app.base));
    }

    async fn forged_and_malformed_tokens_are_refused(app: TestApp) {
        let (token, claims) = signed_in(&app).await;
        assert_eq!(app.me(&token).await.status(), 200, "the control passes");
        let (header, _) = parts(&token);
        let kid = header["kid"].as_str().unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();

        let mut forged: Vec<(&str, String)> = Vec::new();
        forged.push(("alg none", format!("{}.{payload}.", b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})))));
        forged.push(("alg none, no kid", format!("{}.{payload}.", b64(&json!({"alg": "none"})))));
        // HS256 "signed" with the public key, as a confused verifier would check it.
        for secret in [jwks["keys"][0].to_string(), jwks.to_string()] {
            let mut h = Header::new(Algorithm::HS256);
            h.kid = Some(kid.to_owned());
            forged.push(("HS256 with the public key", jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()));
        }
        // An attacker's own key, offered in the header.
        let attacker = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &aws_lc_rs::rand::SystemRandom::new()).unwrap();
        for (label, header_kid, jku) in [
            ("attacker key under our kid", Some(kid), None),
            ("attacker key, unknown kid", Some("attacker"), None),
            ("path-like kid", Some("../../../../etc/passwd"), None),
            ("no kid", None, None),
            ("jku to elsewhere", Some("attacker"), Some("https://evil.example/jwks.json")),
        ] {
            let mut h = Header::new(Algorithm::ES256);
            h.kid = header_kid.map(str::to_owned);
            h.jku = jku.map(str::to_owned);
            h.x5u = jku.map(str::to_owned);
            forged.push((label, jsonwebtoken::encode(&h, &claims, &EncodingKey::from_ec_der(attacker.as_ref())).unwrap()));
        }
        // The attacker's public key embedded as a `jwk` header, under our kid and its own:
        // signed by hand, since the header is what is attacked.
        {
            use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, attacker.as_ref()).unwrap();
            let point = pair.public_key().as_ref();
            let jwk = json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])});
            for header_kid in [kid, "attacker"] {
                let header = json!({"alg": "ES256", "typ": "JWT", "kid": header_kid, "jwk": jwk});
                let input = format!("{}.{}", b64(&header), b64(&claims));
                let signature = pair.sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes()).unwrap();
                forged.push(("jwk header", format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))));
            }
        }
        // Tampered parts of a real token.
        let mut tampered_claims = claims.clone();
        tampered_claims["app_metadata"]["role"] = json!("admin");
        let sig = token.split('.').nth(2).unwrap();
        forged.push(("tampered payload", format!("{}.{}.{sig}", token.split('.').next().unwrap(), b64(&tampered_claims))));
        let mut bad_sig = sig.to_owned();
        bad_sig.replace_range(0..2, if bad_sig.starts_with("AA") { "BB" } else { "AA" });
        forged.push(("tampered signature", format!("{}.{payload}.{bad_sig}", token.split('.').next().unwrap())));
        forged.push(("oversized", format!("{token}{}", "A".repeat(9000))));

        // Properly signed by our key, with bad claims.
        let now = app.gatehouse.now().unix_timestamp();
        let with = |k: &str, v: Value| { let mut c = claims.clone(); c[k] = v; c };
        for (label, bad) in [
            ("expired", with("exp", json!(now - 60))),
            ("not yet valid", with("nbf", json!(now + 600))),
            ("wrong issuer", with("iss", json!("https://evil.example/auth/v1"))),
            ("wrong audience", with("aud", json!("service_role"))),
            ("no exp", { let mut c = claims.clone(); c.as_object_mut().unwrap().remove("exp"); c }),
            ("no sub", { let mut c = claims.clone(); c.as_object_mut().unwrap().remove("sub"); c }),
        ] {
            forged.push((label, sign_with_server_key(&app, json!({}), &bad).await));
        }
        forged.push(("jku on a real key", sign_with_server_key(&app, json!({"jku": "https://evil.example/k"}), &claims).await));

        for (label, token) in &forged {
            let response = app.me(token).await;
            let status = response.status().as_u16();
            if *label == "jku on a real key" {
                assert_eq!(status, 200, "jku is ignored, not followed: the key is ours");
                continue;
            }
            assert_eq!(status, 401, "{label} was accepted");
            assert_error(response, 401, "unauthorized").await;
        }
    }

    async fn a_refresh_token_is_not_an_access_token(app: TestApp) {
        app.signup("ada@example.com", None).await;
        let signed = app.signin_ok("ada@example.com").await;
        assert_error(app.me(&signed.refresh).await, 401, "unauthorized").await;
        assert_error(app.refresh(&signed.access).await, 401, "refresh_token_invalid").await;
    }

    async fn rotation_publishes_first_signs_later_and_keeps_old_tokens_valid_until_they_expire(app: TestApp) {
        let (old_token, _) = signed_in(&app).await;
        let old_kid = parts(&old_token).0["kid"].as_str().unwrap().to_owned();
        let new_key = app.gatehouse.keys.rotate_signing_key(false).await.unwrap();
        let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
        let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert!(kids.contains(&old_kid.as_str()) && kids.contains(&new_key.kid.as_str()), "both published: {kids:?}");
        let still_old = app.signin_ok("ada@example.com").await;
        assert_eq!(parts(&still_old.access).0["kid"], old_kid.as_str(), "the new key does not sign for 10 minutes");

        app.clock.advance(Duration::from_secs(10 * 60 + 1));
        let fresh = app.signin_ok("ada@example.com").await;
        assert_eq!(parts(&fresh.access).0["kid"], new_key.kid.as_str(), "now the new key signs");
        assert_eq!(app.me(&still_old.access).await.status(), 200, "tokens of the retired key still verify");

        // The retired key stays published until its last token (signed just before it
        // retired) has expired: 10 min + 30 min TTL + 5 s leeway after the rotation.
        app.clock.advance(Duration::from_secs(30 * 60));
        let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        app.clock.advance(Duration::from_secs(10));
        let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
        let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert_eq!(kids, vec![new_key.kid.as_str()]);
        assert_error(app.me(&fresh.access).await, 401, "unauthorized").await;
        let renewed = TestApp::signed(app.refresh(&fresh.refresh).await).await;
        assert_eq!(app.me(&renewed.access).await.status(), 200, "refresh yields a token of the new key");
    }

    async fn an_emergency_rotation_invalidates_the_old_key_at_once(app: TestApp) {
        let (old_token, _) = signed_in(&app).await;
        let new_key = app.gatehouse.keys.rotate_signing_key(true).await.unwrap();
        assert_error(app.me(&old_token).await, 401, "unauthorized").await;
        let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
        assert_eq!(jwks["keys"][0]["kid"], new_key.kid.as_str());
        let fresh = app.signin_ok("ada@example.com").await;
        assert_eq!(parts(&fresh.access).0["kid"], new_key.kid.as_str());
        assert_eq!(app.me(&fresh.access).await.status(), 200);
    }
}

async fn with_alg(backend: Backend, alg: JwtAlg) -> TestApp {
    let settings = Settings {
        jwt_alg: alg,
        jwt_secret: Some(SecretString::from("an-hs256-secret-of-at-least-32-bytes!!")),
        ..Settings::default()
    };
    TestApp::spawn_with(backend, settings).await
}

async fn each_algorithm_signs_and_verifies(backend: Backend) {
    for (alg, kty) in [
        (JwtAlg::Rs256, Some("RSA")),
        (JwtAlg::EdDsa, Some("OKP")),
        (JwtAlg::Hs256, None),
    ] {
        let app = with_alg(backend, alg).await;
        let (token, _) = signed_in(&app).await;
        let (header, _) = parts(&token);
        assert_eq!(header["alg"], alg.as_str());
        assert!(header["kid"].is_string());
        assert_eq!(app.me(&token).await.status(), 200, "{alg}");
        let jwks: Value = app
            .get("/.well-known/jwks.json")
            .await
            .json()
            .await
            .unwrap();
        match kty {
            Some(kty) => assert_eq!(jwks["keys"][0]["kty"], kty),
            None => assert_eq!(
                jwks["keys"],
                json!([]),
                "an HS256 secret is never published"
            ),
        }
    }
}

mod rs256_eddsa_and_hs256_sign_and_verify {
    #[tokio::test]
    async fn sqlite() {
        super::each_algorithm_signs_and_verifies(gatehouse_core::store::Backend::Sqlite).await;
    }
    #[tokio::test]
    async fn postgres() {
        super::each_algorithm_signs_and_verifies(gatehouse_core::store::Backend::Postgres).await;
    }
}

#[tokio::test]
async fn an_es256_token_is_refused_by_an_hs256_server_and_the_reverse() {
    let es = TestApp::spawn(Backend::Sqlite).await;
    let hs = with_alg(Backend::Sqlite, JwtAlg::Hs256).await;
    let (es_token, _) = signed_in(&es).await;
    let (hs_token, _) = signed_in(&hs).await;
    assert_error(hs.me(&es_token).await, 401, "unauthorized").await;
    assert_error(es.me(&hs_token).await, 401, "unauthorized").await;
}

#[tokio::test]
async fn private_keys_are_sealed_at_rest_with_a_key_encryption_key() {
    use gatehouse_core::clock::SystemClock;
    use gatehouse_core::store::testing::TestDatabase;
    use gatehouse_core::store::{ConnectOptions, Store};
    use gatehouse_core::{Error, Gatehouse};

    let db = TestDatabase::create(Backend::Sqlite).await;
    let store = Store::connect(db.url(), &ConnectOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let kek = |k: &str| Settings {
        key_encryption_key: Some(SecretString::from(k.to_owned())),
        ..Settings::default()
    };
    let clock = std::sync::Arc::new(SystemClock);
    Gatehouse::start(
        store.clone(),
        clock.clone(),
        kek("a-key-encryption-key-of-32-bytes-or-more"),
    )
    .await
    .unwrap();
    let stored = store.list_signing_keys().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].private_key_sealed);
    assert!(
        aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &stored[0].private_key
        )
        .is_err(),
        "the stored bytes are not a usable key"
    );
    Gatehouse::start(
        store.clone(),
        clock.clone(),
        kek("a-key-encryption-key-of-32-bytes-or-more"),
    )
    .await
    .expect("the same key opens it");
    let wrong = Gatehouse::start(
        store.clone(),
        clock.clone(),
        kek("another-key-encryption-key-32-bytes!!"),
    )
    .await;
    assert!(
        matches!(&wrong, Err(Error::Config(m)) if m.contains("GATEHOUSE_KEY_ENCRYPTION_KEY")),
        "{:?}",
        wrong.err()
    );
    let none = Gatehouse::start(store.clone(), clock, Settings::default()).await;
    assert!(
        matches!(&none, Err(Error::Config(m)) if m.contains("GATEHOUSE_KEY_ENCRYPTION_KEY")),
        "{:?}",
        none.err()
    );
}
