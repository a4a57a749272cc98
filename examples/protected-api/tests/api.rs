//! protected-api against a real gatehouse as the token issuer: gatehouse (SQLite, its real
//! router) and protected-api each serve on 127.0.0.1:0; users sign up and in through
//! gatehouse's HTTP APIs, and their access tokens go to protected-api.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gatehouse_core::clock::ManualClock;
use gatehouse_core::store::testing::TestDatabase;
use gatehouse_core::store::{Backend, ConnectOptions, Store};
use gatehouse_core::{Gatehouse, Settings};
use gatehouse_http::{AppState, HttpConfig};
use gatehouse_verify::Verifier;
use serde_json::{json, Value};

const PASSWORD: &str = "quartz-Lantern-47";
const CSRF_COOKIE: &str = "__Host-csrf_token";

/// A gatehouse on 127.0.0.1:0 over a fresh SQLite database.
struct Issuer {
    base: String,
    gatehouse: Gatehouse,
    client: reqwest::Client,
    _db: TestDatabase,
}

impl Issuer {
    async fn spawn() -> Self {
        let db = TestDatabase::create(Backend::Sqlite).await;
        let store = Store::connect(
            db.url(),
            &ConnectOptions {
                max_connections: 4,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        store.migrate().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let settings = Settings {
            public_url: base.clone(),
            ..Settings::default()
        };
        #[allow(clippy::disallowed_methods)]
        let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
        let gatehouse = Gatehouse::start(store, clock, settings).await.unwrap();
        let state = AppState {
            gatehouse: gatehouse.clone(),
            config: Arc::new(HttpConfig {
                allowed_origins: vec![base.clone()],
                ..HttpConfig::default()
            }),
        };
        let app = gatehouse_http::router(state);
        tokio::spawn(gatehouse_http::serve(
            listener,
            app,
            std::future::pending(),
            Duration::from_secs(1),
        ));
        Self {
            base,
            gatehouse,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            _db: db,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Signs up through the app API, then signs in (with the CSRF token the cookie routes
    /// need); the user's id and access token.
    async fn app_api_user(&self, email: &str) -> (String, String) {
        let signup = self
            .client
            .post(self.url("/auth/signup"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(signup.status(), 201);
        let id = signup.json::<Value>().await.unwrap()["user"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        (id, self.app_api_signin(email).await)
    }

    async fn app_api_signin(&self, email: &str) -> String {
        let csrf = self
            .client
            .get(self.url("/auth/csrf"))
            .send()
            .await
            .unwrap();
        let token = csrf.json::<Value>().await.unwrap()["csrfToken"]
            .as_str()
            .unwrap()
            .to_owned();
        let signin = self
            .client
            .post(self.url("/auth/signin"))
            .header("x-csrf-token", &token)
            .header("cookie", format!("{CSRF_COOKIE}={token}"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(signin.status(), 200);
        signin.json::<Value>().await.unwrap()["accessToken"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Signs up through the Supabase (GoTrue) API, which answers with a session.
    async fn gotrue_user(&self, email: &str) -> (String, String) {
        let signup = self
            .client
            .post(self.url("/auth/v1/signup"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(signup.status(), 200);
        let session: Value = signup.json().await.unwrap();
        (
            session["user"]["id"].as_str().unwrap().to_owned(),
            session["access_token"].as_str().unwrap().to_owned(),
        )
    }

    /// An admin created as an operator would (`gatehouse user create --role admin`), then
    /// signed in with the Supabase password grant.
    async fn admin(&self, email: &str) -> (String, String) {
        let input = gatehouse_core::admin::NewAccount {
            email: email.to_owned(),
            username: None,
            password: Some(secrecy::SecretString::from(PASSWORD)),
            role: "admin".to_owned(),
            display_name: None,
            user_metadata: None,
            app_metadata: None,
            email_confirmed: true,
            banned_until: None,
        };
        let (user, _) = self
            .gatehouse
            .admin
            .create_account(
                gatehouse_core::admin::Actor::Operator,
                input,
                &gatehouse_core::RequestMeta::default(),
            )
            .await
            .unwrap();
        let token = self
            .client
            .post(self.url("/auth/v1/token?grant_type=password"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(token.status(), 200);
        let token = token.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        (user.id.to_string(), token)
    }
}

/// protected-api on 127.0.0.1:0, verifying gatehouse's tokens as `main` would configure it.
struct Api {
    base: String,
    client: reqwest::Client,
    verifier: Verifier,
}

impl Api {
    async fn spawn(issuer: &Issuer) -> Self {
        let config = protected_api::Config::from_lookup(|name| {
            (name == "SUPABASE_URL").then(|| issuer.base.clone())
        })
        .unwrap();
        let verifier = config.verifier().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = protected_api::router(verifier.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base,
            client: reqwest::Client::new(),
            verifier,
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }
}

async fn error_code(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().await.unwrap();
    body["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn health_is_public() {
    let issuer = Issuer::spawn().await;
    let api = Api::spawn(&issuer).await;
    let response = api.get("/health", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    assert_eq!(api.verifier.jwks_fetches(), 0, "no token, no keys needed");
}

#[tokio::test]
async fn me_answers_with_the_claims_of_a_gatehouse_token() {
    let issuer = Issuer::spawn().await;
    let api = Api::spawn(&issuer).await;
    assert_eq!(api.verifier.issuer(), format!("{}/auth/v1", issuer.base));

    let (id, token) = issuer.app_api_user("ada@example.com").await;
    let response = api.get("/api/me", Some(&token)).await;
    assert_eq!(response.status(), 200);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["sub"], id.as_str());
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["role"], "authenticated");
    assert_eq!(me["app_role"], "user");
    assert_eq!(me["aal"], "aal1");
    assert!(
        uuid::Uuid::parse_str(me["session_id"].as_str().unwrap()).is_ok(),
        "{me}"
    );

    // A GoTrue-API user's token works the same.
    let (id, token) = issuer.gotrue_user("grace@example.com").await;
    let me: Value = api.get("/api/me", Some(&token)).await.json().await.unwrap();
    assert_eq!(me["sub"], id.as_str());
    assert_eq!(me["email"], "grace@example.com");
    assert_eq!(
        api.verifier.jwks_fetches(),
        1,
        "gatehouse's JWKS, fetched once"
    );
}

#[tokio::test]
async fn no_token_or_a_tampered_one_is_401() {
    let issuer = Issuer::spawn().await;
    let api = Api::spawn(&issuer).await;
    assert_eq!(
        error_code(api.get("/api/me", None).await, 401).await,
        "missing_token"
    );

    let (_, token) = issuer.app_api_user("ada@example.com").await;
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["app_metadata"]["role"] = json!("admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    for bad in [tampered.as_str(), "not-a-token", &token[..token.len() - 2]] {
        assert_eq!(
            error_code(api.get("/api/admin/reports", Some(bad)).await, 401).await,
            "invalid_token"
        );
        assert_eq!(
            error_code(api.get("/api/me", Some(bad)).await, 401).await,
            "invalid_token"
        );
    }
    // The genuine token still passes.
    assert_eq!(api.get("/api/me", Some(&token)).await.status(), 200);
}

#[tokio::test]
async fn the_admin_route_is_403_for_a_user_and_200_for_an_admin() {
    let issuer = Issuer::spawn().await;
    let api = Api::spawn(&issuer).await;
    let (_, user) = issuer.gotrue_user("ada@example.com").await;
    assert_eq!(
        error_code(api.get("/api/admin/reports", Some(&user)).await, 403).await,
        "forbidden"
    );

    let (admin_id, admin) = issuer.admin("root@example.com").await;
    let response = api.get("/api/admin/reports", Some(&admin)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["generated_for"], admin_id.as_str());
    assert!(body["reports"].as_array().is_some_and(|r| !r.is_empty()));
    let me: Value = api.get("/api/me", Some(&admin)).await.json().await.unwrap();
    assert_eq!(me["app_role"], "admin");
}

#[tokio::test]
async fn a_token_of_another_gatehouse_is_refused() {
    let issuer = Issuer::spawn().await;
    let other = Issuer::spawn().await;
    let api = Api::spawn(&issuer).await;
    let (_, token) = other.gotrue_user("mallory@example.com").await;
    assert_eq!(
        error_code(api.get("/api/me", Some(&token)).await, 401).await,
        "invalid_token"
    );
}

#[tokio::test]
async fn unknown_routes_are_json_404s() {
    let issuer = Issuer::spawn().await;
    let api = Api::spawn(&issuer).await;
    assert_eq!(
        error_code(api.get("/api/nope", None).await, 404).await,
        "not_found"
    );
}
