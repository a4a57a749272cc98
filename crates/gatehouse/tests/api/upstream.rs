//! Supabase mode, end to end: a standalone gatehouse on an ephemeral port plays the
//! Supabase project (its `/auth/v1` is GoTrue's wire API, its keys are the project's), and
//! a second gatehouse runs in Supabase mode against it. Every flow of the app API and the
//! admin API goes through the upstream; no password hash is ever written downstream.

use std::time::Duration;

use gatehouse_core::api_keys::ApiRole;
use gatehouse_core::{Settings, UpstreamSettings};
use serde_json::{json, Value};

use crate::helpers::{assert_error, Signed, TestApp, PASSWORD};

/// The project and gatehouse in front of it, on one backend.
struct Pair {
    upstream: TestApp,
    app: TestApp,
    anon: String,
}

fn supabase_settings(url: &str, anon: &str, service: Option<&str>) -> Settings {
    Settings {
        upstream: Some(UpstreamSettings {
            url: url::Url::parse(url).unwrap(),
            anon_key: secrecy::SecretString::from(anon),
            service_role_key: service.map(secrecy::SecretString::from),
            jwt_secret: None,
            timeout: Duration::from_secs(2),
        }),
        ..Settings::default()
    }
}

impl Pair {
    async fn spawn(backend: gatehouse_core::store::Backend) -> Self {
        Self::spawn_with(backend, Settings::default(), |s| s).await
    }

    async fn spawn_with(
        backend: gatehouse_core::store::Backend,
        upstream_settings: Settings,
        downstream: impl FnOnce(Settings) -> Settings,
    ) -> Self {
        let upstream = TestApp::spawn_with(backend, upstream_settings).await;
        let anon = upstream
            .gatehouse
            .keys
            .issue_api_key(ApiRole::Anon)
            .unwrap();
        let service = upstream
            .gatehouse
            .keys
            .issue_api_key(ApiRole::ServiceRole)
            .unwrap();
        let settings = downstream(supabase_settings(&upstream.base, &anon, Some(&service)));
        let app = TestApp::spawn_with(backend, settings).await;
        Self {
            upstream,
            app,
            anon,
        }
    }

    /// A password grant at the project directly, as a Supabase client makes it.
    async fn upstream_sign_in(&self, email: &str, password: &str) -> reqwest::Response {
        self.upstream
            .client
            .post(self.upstream.url("/auth/v1/token?grant_type=password"))
            .header("apikey", &self.anon)
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    }

    async fn upstream_user(&self, email: &str) -> Option<gatehouse_core::store::UserRecord> {
        self.upstream.gatehouse.admin.find_user(email).await.ok()
    }
}

/// How many users rows downstream hold a password hash.
async fn hashes_downstream(app: &TestApp) -> i64 {
    gatehouse_core::store::with_pool!(app.gatehouse.store(), pool => {
        gatehouse_core::store::sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM users WHERE password_hash IS NOT NULL",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    })
}

fn claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

macro_rules! on_both_backends_with_a_project {
    ($(async fn $name:ident($pair:ident: Pair) $body:block)*) => {$(
        mod $name {
            use super::*;
            async fn run(#[allow(unused_mut)] mut $pair: Pair) $body
            #[tokio::test]
            async fn sqlite() {
                run(Pair::spawn(gatehouse_core::store::Backend::Sqlite).await).await
            }
            #[tokio::test]
            async fn postgres() {
                run(Pair::spawn(gatehouse_core::store::Backend::Postgres).await).await
            }
        }
    )*};
}

on_both_backends_with_a_project! {
    async fn sign_up_sign_in_me_refresh_and_logout_go_through_the_project(pair: Pair) {
        let app = &pair.app;
        let email = "ada@example.com";
        let response = app
            .post_json("/auth/signup", json!({"email": email, "password": PASSWORD, "profile": {"displayName": "Ada"}}))
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        let user = response.json::<Value>().await.unwrap()["user"].clone();
        let upstream_user = pair.upstream_user(email).await.expect("created in the project");
        assert_eq!(user["id"], upstream_user.id.to_string(), "one id, the project's");
        assert!(upstream_user.password_hash.is_some(), "the password lives upstream");

        let response = app.signin(email, PASSWORD).await;
        assert_eq!(response.status(), 200);
        let cookie = crate::helpers::set_cookie(&response, "sb_refresh_token").unwrap();
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        let refresh = crate::helpers::cookie_value(&response, "sb_refresh_token").unwrap();
        let body: Value = response.json().await.unwrap();
        assert!(!body.to_string().contains(&refresh), "the project's refresh token only in the cookie");
        let signed = Signed { access: body["accessToken"].as_str().unwrap().to_owned(), refresh };
        let token = claims(&signed.access);
        assert_eq!(token["iss"], format!("{}/auth/v1", pair.upstream.base), "the project's token");
        assert_eq!(token["sub"], user["id"]);

        let me = app.me(&signed.access).await;
        assert_eq!(me.status(), 200);
        let me: Value = me.json().await.unwrap();
        assert_eq!(me["user"]["email"], email);
        assert_eq!(me["user"]["profile"]["displayName"], "Ada", "the profile lives here: {me}");

        let refreshed = app.refresh(&signed.refresh).await;
        assert_eq!(refreshed.status(), 200, "{}", refreshed.text().await.unwrap());
        let refreshed = TestApp::signed(refreshed).await;
        assert_ne!(refreshed.refresh, signed.refresh, "rotated upstream");
        assert_eq!(app.me(&refreshed.access).await.status(), 200);

        // Replayed after the project's reuse interval: the project revokes the session.
        pair.upstream.clock.advance(Duration::from_secs(11));
        app.clock.advance(Duration::from_secs(11));
        assert_error(app.refresh(&signed.refresh).await, 401, "refresh_token_reused").await;
        assert_eq!(app.me(&refreshed.access).await.status(), 401, "the reused session ended here too");

        let fresh = app.signin(email, PASSWORD).await;
        assert_eq!(fresh.status(), 200, "{}", fresh.text().await.unwrap());
        let fresh = TestApp::signed(fresh).await;
        assert_eq!(app.me(&fresh.access).await.status(), 200, "verified, and its claims kept");
        let out = app.cookie_post("/auth/logout", Some(&fresh.refresh), None).await;
        assert_eq!(out.status(), 200);
        assert_eq!(app.me(&fresh.access).await.status(), 401, "ended here at once");
        let upstream_me = pair.upstream.client.get(pair.upstream.url("/auth/v1/user"))
            .header("apikey", &pair.anon).bearer_auth(&fresh.access).send().await.unwrap();
        assert_eq!(upstream_me.status(), 403, "and ended in the project");

        assert_eq!(hashes_downstream(app).await, 0, "no password hash is ever written here");
        let actions = app.audit_actions().await;
        for action in ["user.signup", "user.signin", "session.logout"] {
            assert!(actions.iter().any(|a| a == action), "{action} audited here: {actions:?}");
        }
    }

    async fn a_user_of_the_project_signs_in_through_gatehouse_and_with_a_token_of_its_own(pair: Pair) {
        pair.upstream.create_account("grace@example.com", "user").await;
        pair.upstream.create_account("lin@example.com", "user").await;
        assert!(pair.app.gatehouse.admin.find_user("grace@example.com").await.is_err(), "not mirrored yet");

        let response = pair.app.signin("grace@example.com", PASSWORD).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        let mirrored = pair.app.gatehouse.admin.find_user("grace@example.com").await.unwrap();
        assert!(mirrored.password_hash.is_none());

        // Signed in at the project directly: gatehouse takes its token as it is.
        let direct = pair.upstream_sign_in("lin@example.com", PASSWORD).await;
        assert_eq!(direct.status(), 200);
        let access = direct.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
        let me = pair.app.me(&access).await;
        assert_eq!(me.status(), 200, "{}", me.text().await.unwrap());
        assert!(pair.app.gatehouse.admin.find_user("lin@example.com").await.is_ok(), "mirrored on first sight");

        // Wrong passwords, unknown users: the app API's answer, not the project's.
        let wrong = pair.app.signin("grace@example.com", "not-the-Password-1").await;
        let body = assert_error(wrong, 401, "auth_invalid_credentials").await;
        assert!(!body.to_string().contains("Invalid login credentials"), "no upstream message: {body}");
        assert_error(pair.app.signin("nobody@example.com", PASSWORD).await, 401, "auth_invalid_credentials").await;
        assert_eq!(hashes_downstream(&pair.app).await, 0);
    }

    async fn the_admin_api_changes_the_user_in_the_project(pair: Pair) {
        let app = &pair.app;
        let (_, admin) = app.admin("root@example.com").await;
        let upstream_admin = pair.upstream_user("root@example.com").await.unwrap();
        assert_eq!(upstream_admin.role, "admin", "made upstream with app_metadata.role");
        let user = app.signup("bea@example.com", None).await;
        let id = user["id"].as_str().unwrap().to_owned();
        let bea = TestApp::signed(app.signin("bea@example.com", PASSWORD).await).await;

        let promoted = app.authed(reqwest::Method::PUT, &format!("/users/{id}/role"), &admin.access)
            .json(&json!({"role": "admin"})).send().await.unwrap();
        assert_eq!(promoted.status(), 200, "{}", promoted.text().await.unwrap());
        assert_eq!(pair.upstream_user("bea@example.com").await.unwrap().role, "admin", "app_metadata.role upstream");

        let listed = app.authed(reqwest::Method::GET, "/users?role=admin", &admin.access).send().await.unwrap();
        assert_eq!(listed.status(), 200);
        assert_eq!(listed.json::<Value>().await.unwrap()["users"].as_array().unwrap().len(), 2);

        assert_eq!(app.me(&bea.access).await.status(), 200);
        let off = app.authed(reqwest::Method::PATCH, &format!("/users/{id}"), &admin.access)
            .json(&json!({"isActive": false})).send().await.unwrap();
        assert_eq!(off.status(), 200, "{}", off.text().await.unwrap());
        assert_eq!(app.me(&bea.access).await.status(), 401, "refused here at once");
        let direct = pair.upstream_sign_in("bea@example.com", PASSWORD).await;
        let refusal: Value = direct.json().await.unwrap();
        assert_eq!(refusal["error_code"], "user_banned", "and banned in the project: {refusal}");
        let back = app.authed(reqwest::Method::PATCH, &format!("/users/{id}"), &admin.access)
            .json(&json!({"isActive": true})).send().await.unwrap();
        assert_eq!(back.status(), 200);
        assert_eq!(pair.upstream_sign_in("bea@example.com", PASSWORD).await.status(), 200, "reactivated: the ban lifted");

        let deleted = app.authed(reqwest::Method::DELETE, &format!("/users/{id}"), &admin.access).send().await.unwrap();
        assert_eq!(deleted.status(), 204, "{}", deleted.text().await.unwrap());
        assert!(pair.upstream_user("bea@example.com").await.is_none(), "deleted in the project");

        let audit = app.authed(reqwest::Method::GET, "/audit", &admin.access).send().await.unwrap();
        assert_eq!(audit.status(), 200);
        assert_eq!(hashes_downstream(app).await, 0);
    }

    async fn a_password_change_is_made_in_the_project(pair: Pair) {
        let app = &pair.app;
        app.signup("kim@example.com", None).await;
        let signed = TestApp::signed(app.signin("kim@example.com", PASSWORD).await).await;
        let other = TestApp::signed(app.signin("kim@example.com", PASSWORD).await).await;
        let wrong = app.authed(reqwest::Method::POST, "/auth/password", &signed.access)
            .json(&json!({"currentPassword": "not-it-Really-9", "newPassword": "violet-Harbor-62"}))
            .send().await.unwrap();
        assert_error(wrong, 400, "current_password_invalid").await;
        let changed = app.authed(reqwest::Method::POST, "/auth/password", &signed.access)
            .json(&json!({"currentPassword": PASSWORD, "newPassword": "violet-Harbor-62"}))
            .send().await.unwrap();
        assert_eq!(changed.status(), 200, "{}", changed.text().await.unwrap());
        assert_eq!(pair.upstream_sign_in("kim@example.com", "violet-Harbor-62").await.status(), 200);
        assert_eq!(pair.upstream_sign_in("kim@example.com", PASSWORD).await.status(), 400);
        assert_eq!(app.me(&signed.access).await.status(), 200, "this session stays");
        assert_eq!(app.me(&other.access).await.status(), 401, "the others end");
        assert_eq!(hashes_downstream(app).await, 0);
    }

    async fn gatehouse_own_auth_v1_is_off(pair: Pair) {
        let response = pair.app.client.post(pair.app.url("/auth/v1/token?grant_type=password"))
            .json(&json!({"email": "a@example.com", "password": PASSWORD})).send().await.unwrap();
        let body = assert_error(response, 404, "supabase_mode").await;
        assert!(body["message"].as_str().unwrap().contains("Supabase mode"));
    }

    async fn a_token_signed_by_another_key_with_the_projects_kid_is_refused(pair: Pair) {
        pair.app.signup("eve@example.com", None).await;
        let signed: Signed = TestApp::signed(pair.app.signin("eve@example.com", PASSWORD).await).await;
        let header = jsonwebtoken::decode_header(&signed.access).unwrap();
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
        let mut forged_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        forged_header.kid = header.kid.clone();
        let forged = jsonwebtoken::encode(&forged_header, &claims(&signed.access), &key).unwrap();
        assert_eq!(pair.app.me(&forged).await.status(), 401);
        assert_eq!(pair.app.me(&signed.access).await.status(), 200);
    }
}

on_both_backends! {
    async fn the_projects_key_rotation_is_followed_and_forged_kids_cost_at_most_one_fetch(app: TestApp) {
        let pair = Pair::spawn_with(app.gatehouse.store().backend(), Settings::default(), |s| s).await;
        drop(app);
        pair.upstream.create_account("rot@example.com", "user").await;
        let first = TestApp::signed(pair.app.signin("rot@example.com", PASSWORD).await).await;
        assert_eq!(pair.app.me(&first.access).await.status(), 200);
        let fetched = pair.app.gatehouse.upstream_jwks_fetches();
        assert!(fetched >= 1);

        // Forged kids: refused, and at most one refetch for all of them.
        let token = &first.access;
        let header = jsonwebtoken::decode_header(token).unwrap();
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
        for n in 0..40 {
            let mut forged_header = jsonwebtoken::Header::new(header.alg);
            forged_header.kid = Some(format!("forged-{n}"));
            let forged = jsonwebtoken::encode(&forged_header, &claims(token), &key).unwrap();
            assert_eq!(pair.app.me(&forged).await.status(), 401);
        }
        let after_flood = pair.app.gatehouse.upstream_jwks_fetches();
        assert!(after_flood <= fetched + 1, "{fetched} then {after_flood} fetches");

        // The project rotates: its tokens with the new kid pass after one refetch.
        pair.upstream.gatehouse.keys.rotate_signing_key(true).await.unwrap();
        // Past the interval that bounds refetches on unknown kids.
        pair.app.clock.advance(Duration::from_secs(31));
        let direct = pair.upstream_sign_in("rot@example.com", PASSWORD).await;
        assert_eq!(direct.status(), 200);
        let access = direct.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
        let new_kid = jsonwebtoken::decode_header(&access).unwrap().kid;
        assert_ne!(new_kid, header.kid, "signed with the new key");
        assert_eq!(pair.app.me(&access).await.status(), 200);
        assert!(pair.app.gatehouse.upstream_jwks_fetches() <= after_flood + 1);
    }

    async fn the_legacy_hs256_secret_verifies_the_projects_tokens(app: TestApp) {
        let secret = "a-supabase-jwt-secret-of-32-bytes-or-more!";
        let hs256 = Settings {
            jwt_alg: gatehouse_core::signing_keys::JwtAlg::Hs256,
            jwt_secret: Some(secrecy::SecretString::from(secret)),
            ..Settings::default()
        };
        let pair = Pair::spawn_with(app.gatehouse.store().backend(), hs256, |mut s| {
            if let Some(upstream) = s.upstream.as_mut() {
                upstream.jwt_secret = Some(secrecy::SecretString::from(secret));
            }
            s
        })
        .await;
        drop(app);
        pair.app.signup("hs@example.com", None).await;
        let signed = TestApp::signed(pair.app.signin("hs@example.com", PASSWORD).await).await;
        assert_eq!(jsonwebtoken::decode_header(&signed.access).unwrap().alg, jsonwebtoken::Algorithm::HS256);
        assert_eq!(pair.app.me(&signed.access).await.status(), 200);
        let other = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims(&signed.access),
            &jsonwebtoken::EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!"),
        ).unwrap();
        assert_eq!(pair.app.me(&other).await.status(), 401);
    }

    async fn a_project_that_is_down_slow_or_talking_nonsense_is_a_clear_503(app: TestApp) {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        let backend = app.gatehouse.store().backend();
        drop(app);
        // Down: nothing listens.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let down_url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let down = TestApp::spawn_with(backend, supabase_settings(&down_url, "anon", Some("service"))).await;
        let body = assert_error(down.signin("a@example.com", PASSWORD).await, 503, "upstream_unavailable").await;
        assert!(!body.to_string().contains(&down_url[7..]), "no upstream detail: {body}");
        assert_error(down.post_json("/auth/signup", json!({"email": "a@example.com", "password": PASSWORD})).await, 503, "upstream_unavailable").await;

        // Garbage: a server that answers 200 with HTML, counting what reaches it.
        let hits = Arc::new(AtomicU64::new(0));
        let counter = hits.clone();
        let garbage = axum::Router::new().fallback(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                "<html>surprise</html>"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let garbage_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, garbage).await });
        let confused = TestApp::spawn_with(backend, supabase_settings(&garbage_url, "anon", Some("service"))).await;
        for _ in 0..8 {
            let response = confused.signin("a@example.com", PASSWORD).await;
            let body = assert_error(response, 503, "upstream_unavailable").await;
            assert!(!body.to_string().contains("surprise"), "{body}");
        }
        assert_eq!(hits.load(Ordering::SeqCst), gatehouse_supabase::CIRCUIT_FAILURES as u64, "the circuit opened and stopped calling");

        // Slow: answers after the timeout.
        let slow = axum::Router::new().fallback(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let slow_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, slow).await });
        let mut settings = supabase_settings(&slow_url, "anon", Some("service"));
        if let Some(upstream) = settings.upstream.as_mut() {
            upstream.timeout = Duration::from_millis(300);
        }
        let waiting = TestApp::spawn_with(backend, settings).await;
        let started = std::time::Instant::now();
        assert_error(waiting.signin("a@example.com", PASSWORD).await, 503, "upstream_unavailable").await;
        assert!(started.elapsed() < Duration::from_secs(4), "bounded by the timeout");
    }
}

on_both_backends_with_a_project! {
    async fn the_aliases_the_profile_and_the_rest_of_the_admin_api_work_as_standalone(pair: Pair) {
        let app = &pair.app;
        let registered = app.post_json("/auth/register", json!({"email": "zoe@example.com", "password": PASSWORD})).await;
        assert_eq!(registered.status(), 201, "{}", registered.text().await.unwrap());
        let id = registered.json::<Value>().await.unwrap()["user"]["id"].as_str().unwrap().to_owned();
        let login = app.cookie_post("/auth/login", None, Some(json!({"email": "zoe@example.com", "password": PASSWORD}))).await;
        assert_eq!(login.status(), 200);
        let zoe = TestApp::signed(login).await;
        assert_eq!(app.authed(reqwest::Method::GET, "/me", &zoe.access).send().await.unwrap().status(), 200);

        let patched = app.authed(reqwest::Method::PATCH, "/auth/me", &zoe.access)
            .json(&json!({"profile": {"displayName": "Zoe"}, "userMetadata": {"theme": "dark"}}))
            .send().await.unwrap();
        assert_eq!(patched.status(), 200, "{}", patched.text().await.unwrap());
        let upstream = pair.upstream_user("zoe@example.com").await.unwrap();
        assert_eq!(upstream.user_metadata.0["theme"], "dark", "the project's metadata changed");
        assert_eq!(upstream.display_name, None, "the profile stays here");
        // A sign-in mirrors the project's user again: the profile and metadata survive it.
        let again = TestApp::signed(app.signin("zoe@example.com", PASSWORD).await).await;
        let me: Value = app.me(&again.access).await.json().await.unwrap();
        assert_eq!(me["user"]["profile"]["displayName"], "Zoe");
        assert_eq!(me["user"]["userMetadata"]["theme"], "dark");

        let (_, admin) = app.admin("boss@example.com").await;
        let one = app.authed(reqwest::Method::GET, &format!("/users/{id}"), &admin.access).send().await.unwrap();
        assert_eq!(one.status(), 200);
        let moved = app.authed(reqwest::Method::PATCH, &format!("/users/{id}"), &admin.access)
            .json(&json!({"email": "zoe.new@example.com"})).send().await.unwrap();
        assert_eq!(moved.status(), 200, "{}", moved.text().await.unwrap());
        assert!(pair.upstream_user("zoe.new@example.com").await.is_some(), "the email changed in the project");

        let ended = app.authed(reqwest::Method::DELETE, &format!("/users/{id}/sessions"), &admin.access).send().await.unwrap();
        assert_eq!(ended.status(), 200, "{}", ended.text().await.unwrap());
        assert_eq!(app.me(&zoe.access).await.status(), 401, "ended here at once");
        assert_eq!(app.refresh(&again.refresh).await.status(), 401, "and no refresh brings it back");
        assert_eq!(hashes_downstream(app).await, 0);
    }

    async fn a_local_account_with_the_same_email_is_never_merged_with_the_projects(pair: Pair) {
        pair.upstream.create_account("dup@example.com", "user").await;
        let stranger = gatehouse_core::store::NewUser {
            id: uuid::Uuid::new_v4(),
            email: "dup@example.com".to_owned(),
            username: None,
            password_hash: None,
            role: "admin".to_owned(),
            app_metadata: json!({}),
            user_metadata: json!({}),
            email_confirmed_at: None,
            banned_until: None,
            display_name: None,
            created_at: pair.app.gatehouse.now().into(),
        };
        pair.app.gatehouse.store().import_users(std::slice::from_ref(&stranger)).await.unwrap();
        assert_error(pair.app.signin("dup@example.com", PASSWORD).await, 409, "user_conflict").await;
        let still = pair.app.gatehouse.admin.get_user(stranger.id).await.unwrap();
        assert_eq!(still.role, "admin", "the local account is untouched");
    }

    async fn the_projects_refusals_map_to_the_app_apis_codes(pair: Pair) {
        let app = &pair.app;
        app.signup("taken@example.com", None).await;
        let again = app.post_json("/auth/signup", json!({"email": "taken@example.com", "password": PASSWORD})).await;
        assert_error(again, 409, "user_already_exists").await;
        let weak = app.post_json("/auth/signup", json!({"email": "weak@example.com", "password": "short"})).await;
        assert_error(weak, 422, "weak_password").await;
        assert!(pair.upstream_user("weak@example.com").await.is_none(), "refused before the project was asked");
        assert_error(app.refresh("not-a-token-the-project-knows").await, 401, "refresh_token_invalid").await;
    }
}
