//! The hostile-input suite: every documented route of every surface, with malformed,
//! oversized, deeply nested, mis-typed and injected input and forged tokens. Every answer
//! is below 500, every error is in the surface's documented shape, and nothing is
//! written (the security trail — audit log, failed sign-ins — excepted).

use gatehouse_core::api_keys::ApiRole;
use gatehouse_core::ratelimit::RateLimits;
use gatehouse_core::Settings;
use serde_json::{json, Value};

use crate::helpers::TestApp;

const TABLES: [&str; 7] = [
    "users",
    "profiles",
    "sessions",
    "refresh_tokens",
    "signing_keys",
    "instance_secrets",
    "sign_in_trust",
];

async fn counts(app: &TestApp) -> Vec<i64> {
    let mut out = Vec::new();
    for table in TABLES {
        let sql = format!("SELECT count(*) FROM {table}");
        let n: i64 = gatehouse_core::store::with_pool!(app.gatehouse.store(), pool => {
            gatehouse_core::store::sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap()
        });
        out.push(n);
    }
    out
}

/// Bodies no route should accept: (label, content type, bytes).
fn hostile_bodies() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let injected = |s: &str| {
        json!({
            "email": s, "password": s, "username": s, "role": s, "isActive": s, "refresh_token": s,
            "currentPassword": s, "newPassword": s, "data": {"k": s}, "profile": {"displayName": s, "avatarUrl": s},
            "userMetadata": s, "app_metadata": {"role": s}, "user_metadata": s, "ban_duration": s, "email_confirm": s,
        })
        .to_string()
        .into_bytes()
    };
    vec![
        ("malformed", "application/json", b"{\"email\": \"a@example.com\", \"password\": ".to_vec()),
        ("truncated", "application/json", b"{\"email\": \"a@exa".to_vec()),
        ("not json", "application/json", b"email=a@example.com&password=x".to_vec()),
        ("wrong content type", "text/plain", br#"{"email": "a@example.com", "password": "quartz-Lantern-47"}"#.to_vec()),
        ("form", "application/x-www-form-urlencoded", b"email=a%40example.com&password=x".to_vec()),
        ("1 MiB", "application/json", format!("{{\"email\": \"{}\"}}", "a".repeat(1024 * 1024 + 10)).into_bytes()),
        ("deep nesting", "application/json", format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes()),
        ("deep object", "application/json", format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200)).into_bytes()),
        ("invalid utf-8", "application/json", b"{\"email\": \"\xff\xfe\xfd@example.com\", \"password\": \"\xc3\x28\"}".to_vec()),
        ("nul bytes", "application/json", b"{\"email\": \"ada\\u0000@example.com\", \"password\": \"x\\u0000y\"}".to_vec()),
        ("wrong types", "application/json", br#"{"email": 5, "password": [], "username": {}, "role": 7, "isActive": "yes", "refresh_token": 1}"#.to_vec()),
        ("array", "application/json", b"[1, 2, 3]".to_vec()),
        ("null", "application/json", b"null".to_vec()),
        ("sql injection", "application/json", injected("' OR '1'='1'; DROP TABLE users; --")),
        ("header injection", "application/json", injected("ada@example.com\r\nSet-Cookie: sb_refresh_token=evil")),
        ("confusable email", "application/json", injected("аda@еxample.com")),
        ("long email", "application/json", injected(&format!("{}@{}.com", "a".repeat(300), "b".repeat(300)))),
        ("control characters", "application/json", injected("\u{1b}[31m\u{7}\u{0}")),
    ]
}

fn assert_shape(path: &str, status: u16, body: &[u8], label: &str) {
    assert!(
        status < 500,
        "{label}: {path} answered {status}: {}",
        String::from_utf8_lossy(body)
    );
    if status < 400 {
        return;
    }
    let value: Value = serde_json::from_slice(body).unwrap_or_else(|_| {
        panic!(
            "{label}: {path} {status} is not JSON: {}",
            String::from_utf8_lossy(body)
        )
    });
    if path.starts_with("/auth/v1/") {
        assert!(
            value["error_code"].is_string() && value["msg"].is_string(),
            "{label}: {path}: not GoTrue's shape: {value}"
        );
    } else {
        assert!(
            value["code"].is_string()
                && value["message"].is_string()
                && value["details"].is_object(),
            "{label}: {path}: not our shape: {value}"
        );
    }
}

async fn hostile_suite(backend: gatehouse_core::store::Backend) {
    let app = TestApp::spawn_with(
        backend,
        Settings {
            rate_limits: RateLimits {
                enabled: false,
                ..RateLimits::default()
            },
            ..Settings::default()
        },
    )
    .await;
    let (_, admin) = app.admin("admin@example.com").await;
    let service = app
        .gatehouse
        .keys
        .issue_api_key(ApiRole::ServiceRole)
        .unwrap();
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    let before = counts(&app).await;

    let forged = [
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIiwicm9sZSI6InNlcnZpY2Vfcm9sZSJ9."
            .to_owned(),
        "eyJhbGciOiJIUzI1NiIsImtpZCI6Ii4uLy4uLy4uL2V0Yy9wYXNzd2QifQ.e30.c2ln".to_owned(),
        format!(
            "{}.{}.{}",
            "A".repeat(50_000),
            "B".repeat(50_000),
            "C".repeat(100)
        ),
    ];
    let ids = [
        uuid::Uuid::new_v4().to_string(),
        "..%2F..%2Fetc%2Fpasswd".to_owned(),
        "1%20OR%201%3D1".to_owned(),
        "x".repeat(300),
    ];
    let mut checked = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            for id in &ids {
                let path = template.replace("{id}", id);
                let url = if path.contains('?') {
                    app.url(&path)
                } else {
                    app.url(&format!("{path}?grant_type=password"))
                };
                let mut auths: Vec<Option<String>> = vec![None, Some(admin.access.clone())];
                if path.starts_with("/auth/v1/admin") {
                    auths.push(Some(service.clone()));
                }
                auths.extend(forged.iter().cloned().map(Some));
                for auth in &auths {
                    for (label, content_type, body) in hostile_bodies() {
                        let mut request = app
                            .client
                            .request(method.clone(), &url)
                            .header("content-type", content_type)
                            .body(body);
                        if let Some(token) = auth {
                            request = request.bearer_auth(token);
                        }
                        let Ok(response) = request.send().await else {
                            panic!("{label}: {method} {path}: the connection failed");
                        };
                        let status = response.status().as_u16();
                        let bytes = response.bytes().await.unwrap();
                        assert_shape(&path, status, &bytes, label);
                        let reads_body =
                            !matches!(method, reqwest::Method::GET | reqwest::Method::DELETE)
                                || path.starts_with("/auth/v1/admin/users/");
                        if reads_body
                            && auth
                                .as_deref()
                                .is_none_or(|a| forged.iter().any(|f| f == a))
                        {
                            assert!(status >= 400, "{label}: {method} {path} without a real token accepted a hostile body: {status}");
                        }
                        checked += 1;
                    }
                }
                if !template.contains("{id}") {
                    break;
                }
            }
        }
    }
    assert!(checked > 3000, "{checked} cases");
    assert_eq!(
        counts(&app).await,
        before,
        "hostile input changed the database ({TABLES:?})"
    );
    assert_eq!(
        app.get("/health").await.status(),
        200,
        "and the server still serves"
    );
}

mod every_route_turns_hostile_input_into_a_clean_4xx_and_writes_nothing {
    #[tokio::test]
    async fn sqlite() {
        super::hostile_suite(gatehouse_core::store::Backend::Sqlite).await;
    }
    #[tokio::test]
    async fn postgres() {
        super::hostile_suite(gatehouse_core::store::Backend::Postgres).await;
    }
}
