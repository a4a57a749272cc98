//! The axum extractor over real HTTP: 401 missing or invalid, 200 with the claims, 403 for
//! the wrong app role, 503 when the keys cannot be loaded.

use axum::extract::FromRef;
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_verify::{AuthRejection, VerifiedClaims, Verifier};
use serde_json::{json, Value};

use crate::support::*;

/// An app whose state holds a verifier among other things, as a real one would.
#[derive(Clone)]
struct AppState {
    verifier: Verifier,
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

async fn me(VerifiedClaims(claims): VerifiedClaims) -> Json<Value> {
    Json(json!({"sub": claims.sub, "email": claims.email, "app_role": claims.app_role()}))
}

async fn admin(claims: VerifiedClaims) -> Result<&'static str, AuthRejection> {
    claims.require_app_role("admin")?;
    Ok("reports")
}

async fn maybe(claims: Option<VerifiedClaims>) -> String {
    claims.map_or_else(|| "anonymous".to_owned(), |c| c.sub.clone())
}

struct App {
    base: String,
    client: reqwest::Client,
}

impl App {
    async fn spawn(verifier: Verifier) -> Self {
        let app = Router::new()
            .route("/me", get(me))
            .route("/admin", get(admin))
            .route("/maybe", get(maybe))
            .with_state(AppState { verifier });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base,
            client: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str, authorization: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send().await.unwrap()
    }
}

/// Asserts status and `{code, message}`, and the challenge on 401s.
async fn assert_rejected(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    if status == 401 {
        let challenge = headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
    } else {
        assert!(!headers.contains_key("www-authenticate"));
    }
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    body
}

async fn setup() -> (SigningKey, JwksServer, TestClock, App) {
    let key = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let clock = TestClock::new();
    let app = App::spawn(server.verifier(&clock)).await;
    (key, server, clock, app)
}

#[tokio::test]
async fn no_token_is_401_missing_token() {
    let (_key, _server, _clock, app) = setup().await;
    let response = app.get("/me", None).await;
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_rejected(response, 401, "missing_token").await;
    assert_rejected(
        app.get("/me", Some("Basic dXNlcjpwdw==")).await,
        401,
        "missing_token",
    )
    .await;
}

#[tokio::test]
async fn a_bad_token_is_401_invalid_token() {
    let (key, _server, clock, app) = setup().await;
    let mut expired = claims_at(clock.unix());
    expired["exp"] = json!(0);
    for auth in [
        "Bearer not-a-jwt".to_owned(),
        "Bearer ".to_owned(),
        format!("Bearer {}", key.sign(&expired)),
        format!(
            "Bearer {}",
            SigningKey::es256("ec-1").sign(&claims_at(clock.unix()))
        ),
    ] {
        let response = app.get("/me", Some(&auth)).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\""
        );
        let body = assert_rejected(response, 401, "invalid_token").await;
        if let Some(token) = auth.strip_prefix("Bearer ").filter(|t| t.len() > 10) {
            assert!(!body.to_string().contains(token));
        }
    }
    let body = assert_rejected(
        app.get("/me", Some(&format!("Bearer {}", key.sign(&expired))))
            .await,
        401,
        "invalid_token",
    )
    .await;
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
}

#[tokio::test]
async fn a_valid_token_reaches_the_handler_with_its_claims() {
    let (key, _server, clock, app) = setup().await;
    let token = key.sign(&claims_at(clock.unix()));
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = app.get("/me", Some(&format!("{scheme} {token}"))).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"sub": "9f6f7c1e-52b8-4b51-9b0f-0d5c1a3d2e11", "email": "ada@example.com", "app_role": "member"})
        );
    }
}

#[tokio::test]
async fn require_app_role_is_403_for_others_and_200_for_the_role() {
    let (key, _server, clock, app) = setup().await;
    let member = key.sign(&claims_at(clock.unix()));
    assert_rejected(
        app.get("/admin", Some(&format!("Bearer {member}"))).await,
        403,
        "forbidden",
    )
    .await;
    // A role in user_metadata (which users set themselves) does not count.
    let mut sneaky = claims_at(clock.unix());
    sneaky["user_metadata"]["role"] = json!("admin");
    assert_rejected(
        app.get("/admin", Some(&format!("Bearer {}", key.sign(&sneaky))))
            .await,
        403,
        "forbidden",
    )
    .await;
    let mut admin = claims_at(clock.unix());
    admin["app_metadata"]["role"] = json!("admin");
    let response = app
        .get("/admin", Some(&format!("Bearer {}", key.sign(&admin))))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "reports");
    // Without a token, the admin route is a 401 (not a 403).
    assert_rejected(app.get("/admin", None).await, 401, "missing_token").await;
}

#[tokio::test]
async fn unavailable_keys_are_503_keys_unavailable() {
    let clock = TestClock::new();
    let dead = dead_url();
    let verifier = Verifier::builder(ISSUER)
        .jwks_url(dead.clone())
        .clock(clock.clock())
        .build()
        .unwrap();
    let app = App::spawn(verifier).await;
    let token = SigningKey::es256("ec-1").sign(&claims_at(clock.unix()));
    let body = assert_rejected(
        app.get("/me", Some(&format!("Bearer {token}"))).await,
        503,
        "keys_unavailable",
    )
    .await;
    assert!(
        !body.to_string().contains(&dead),
        "the JWKS URL stays in the logs: {body}"
    );
}

#[tokio::test]
async fn the_optional_extractor_is_none_without_a_token_and_refuses_a_bad_one() {
    let (key, _server, clock, app) = setup().await;
    let response = app.get("/maybe", None).await;
    assert_eq!(response.text().await.unwrap(), "anonymous");
    let token = key.sign(&claims_at(clock.unix()));
    let response = app.get("/maybe", Some(&format!("Bearer {token}"))).await;
    assert_eq!(
        response.text().await.unwrap(),
        "9f6f7c1e-52b8-4b51-9b0f-0d5c1a3d2e11"
    );
    assert_rejected(
        app.get("/maybe", Some("Bearer junk")).await,
        401,
        "invalid_token",
    )
    .await;
}
