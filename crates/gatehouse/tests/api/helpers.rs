//! `TestApp`: the real router on an ephemeral port over a fresh database, plus a few
//! test-only routes behind the same middleware (a panic, a slow handler, a JSON echo).

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use gatehouse_core::clock::SystemClock;
use gatehouse_core::store::testing::TestDatabase;
use gatehouse_core::store::{Backend, ConnectOptions, Store};
use gatehouse_core::Gatehouse;
use gatehouse_http::extract::Json;
use gatehouse_http::{AppState, HttpConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Emits a `sqlite` and a `postgres` test for each body, each with its own `TestApp`.
macro_rules! on_both_backends {
    ($(async fn $name:ident($app:ident: $ty:ty) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run(#[allow(unused_mut)] mut $app: $ty) $body
            #[tokio::test]
            async fn sqlite() {
                run($crate::helpers::TestApp::spawn(gatehouse_core::store::Backend::Sqlite).await).await
            }
            #[tokio::test]
            async fn postgres() {
                run($crate::helpers::TestApp::spawn(gatehouse_core::store::Backend::Postgres).await).await
            }
        }
    )*};
}

/// The largest body the test server accepts.
pub const TEST_BODY_LIMIT: usize = 16 * 1024;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    /// The service behind the router, for tests that arrange state directly.
    #[allow(dead_code)]
    pub gatehouse: Gatehouse,
    shutdown: Option<oneshot::Sender<()>>,
    pub server: Option<JoinHandle<std::io::Result<()>>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Echo {
    pub name: String,
    pub count: u32,
}

#[derive(Debug, Deserialize)]
struct SlowParams {
    ms: u64,
}

#[allow(clippy::panic)]
async fn panicking() -> &'static str {
    panic!("secret-internal-detail")
}

fn test_routes() -> Router<AppState> {
    Router::new()
        .route("/__test/panic", get(panicking))
        .route(
            "/__test/slow",
            get(
                |axum::extract::Query(p): axum::extract::Query<SlowParams>| async move {
                    tokio::time::sleep(Duration::from_millis(p.ms)).await;
                    "done"
                },
            ),
        )
        .route(
            "/__test/echo",
            post(|Json(body): Json<Echo>| async move { axum::Json(body) }),
        )
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        let db = TestDatabase::create(backend).await;
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
        let gatehouse = Gatehouse::new(store, Arc::new(SystemClock));
        let state = AppState {
            gatehouse: gatehouse.clone(),
            config: Arc::new(HttpConfig {
                max_body_bytes: TEST_BODY_LIMIT,
                ready_timeout: Duration::from_secs(2),
            }),
        };
        let app = gatehouse_http::router_with(state, test_routes());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(gatehouse_http::serve(
            listener,
            app,
            async move {
                let _ = rx.await;
            },
            Duration::from_secs(5),
        ));
        Self {
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            db,
            gatehouse,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// Starts a graceful shutdown, as SIGTERM does in the binary.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Asserts the `{code, message, details}` shape and returns the body.
pub async fn assert_error(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "content-type {content_type}"
    );
    assert!(
        response.headers().contains_key("x-request-id"),
        "error responses carry x-request-id"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["details"].is_object(), "{body}");
    assert_eq!(
        body.as_object().unwrap().len(),
        3,
        "exactly code, message, details: {body}"
    );
    body
}
