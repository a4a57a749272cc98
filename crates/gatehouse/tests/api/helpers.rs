//! `TestApp`: the real router on an ephemeral port over a fresh database, plus a few
//! test-only routes behind the same middleware (a panic, a slow handler, a JSON echo).

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use gatehouse_core::clock::ManualClock;
use gatehouse_core::store::testing::TestDatabase;
use gatehouse_core::store::{Backend, ConnectOptions, Store};
use gatehouse_core::{Gatehouse, Settings};
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
    /// The server's clock: tests move it instead of sleeping.
    pub clock: Arc<ManualClock>,
    /// The service behind the router, for tests that arrange state directly.
    #[allow(dead_code)]
    pub gatehouse: Gatehouse,
    shutdown: Option<oneshot::Sender<()>>,
    pub server: Option<JoinHandle<std::io::Result<()>>>,
    /// The SMTP server the courier delivers to, when the app has a mailer.
    #[allow(dead_code)]
    pub sink: Option<gatehouse_mail::SmtpSink>,
    /// Stops the outbox's courier.
    courier: Option<(tokio::sync::watch::Sender<bool>, JoinHandle<()>)>,
}

/// Mail settings for a test server: confirmation on, mail from `gatehouse@example.com`;
/// the site URL is filled with the server's when left empty.
#[allow(dead_code)]
pub fn mail_settings() -> gatehouse_core::mail::MailSettings {
    gatehouse_core::mail::MailSettings::new(
        "gatehouse <gatehouse@example.com>",
        "",
        gatehouse_mail::Templates::builtin(),
    )
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
            post(|Json(body, _): Json<Echo>| async move { axum::Json(body) }),
        )
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, Settings::default()).await
    }

    /// A server with these settings (the public URL is always the test server's).
    pub async fn spawn_with(backend: Backend, settings: Settings) -> Self {
        Self::spawn_configured(backend, settings, |_| {}).await
    }

    /// A server with these settings and HTTP configuration.
    pub async fn spawn_configured(
        backend: Backend,
        settings: Settings,
        http: impl FnOnce(&mut HttpConfig),
    ) -> Self {
        let db = TestDatabase::create(backend).await;
        Self::try_spawn_over(db, "127.0.0.1:0", settings, http)
            .await
            .map_err(|(err, _)| err)
            .unwrap()
    }

    /// A server with a mailer ([`mail_settings`], changed by `configure`) whose courier
    /// delivers to a real SMTP server on loopback ([`TestApp::sink`]).
    #[allow(dead_code)]
    pub async fn spawn_mail(backend: Backend, configure: impl FnOnce(&mut Settings)) -> Self {
        let sink = gatehouse_mail::SmtpSink::start().await.unwrap();
        let mut settings = Settings {
            mail: Some(mail_settings()),
            ..Settings::default()
        };
        configure(&mut settings);
        let db = TestDatabase::create(backend).await;
        let mut app = Self::try_spawn_over(db, "127.0.0.1:0", settings, |_| {})
            .await
            .map_err(|(err, _)| err)
            .unwrap();
        app.start_courier(sink);
        app
    }

    /// Runs the outbox's courier against `sink`.
    #[allow(dead_code)]
    pub fn start_courier(&mut self, sink: gatehouse_mail::SmtpSink) {
        let transport =
            gatehouse_mail::Transport::smtp(&sink.url(), Duration::from_secs(2)).unwrap();
        let courier = self
            .gatehouse
            .courier(transport)
            .expect("a mailer is configured");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        self.courier = Some((stop, tokio::spawn(courier.run(stopped))));
        self.sink = Some(sink);
    }

    /// Stops the courier (as a shutdown does), keeping the sink.
    #[allow(dead_code)]
    pub async fn stop_courier(&mut self) {
        if let Some((stop, task)) = self.courier.take() {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }

    /// The sink.
    #[allow(dead_code)]
    pub fn sink(&self) -> &gatehouse_mail::SmtpSink {
        self.sink.as_ref().expect("spawned with a mailer")
    }

    /// The `n`th message to `to` (1-based), waiting up to 10 s for it.
    #[allow(dead_code)]
    pub async fn mail(&self, to: &str, n: usize) -> gatehouse_mail::Received {
        let mut all = self
            .sink()
            .wait_for(to, n, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "no mail #{n} to {to}; got {:?}",
                    self.sink()
                        .messages()
                        .iter()
                        .map(|m| (&m.to, &m.subject))
                        .collect::<Vec<_>>()
                )
            });
        all.swap_remove(n - 1)
    }

    /// A server with default settings over a database that already holds data (one the
    /// CLI wrote, say), migrating it first if it needs it.
    pub async fn spawn_over(db: TestDatabase) -> Self {
        Self::try_spawn_over(db, "127.0.0.1:0", Settings::default(), |_| {})
            .await
            .map_err(|(err, _)| err)
            .unwrap()
    }

    /// Stops this server and starts another over the same database with `settings`, as a
    /// restart with a new configuration does; the error, and the database back, when the
    /// new one refuses to start.
    pub async fn restart(
        mut self,
        settings: Settings,
    ) -> Result<Self, (gatehouse_core::Error, TestDatabase)> {
        self.begin_shutdown();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.stop_courier().await;
        self.gatehouse.store().close().await;
        // The same address, so the issuer (and every token's `iss`) stays the same.
        let addr = self.base.trim_start_matches("http://").to_owned();
        Self::try_spawn_over(self.db, &addr, settings, |_| {}).await
    }

    async fn try_spawn_over(
        db: TestDatabase,
        addr: &str,
        mut settings: Settings,
        http: impl FnOnce(&mut HttpConfig),
    ) -> Result<Self, (gatehouse_core::Error, TestDatabase)> {
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
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        settings.public_url = base.clone();
        if let Some(mail) = settings.mail.as_mut().filter(|m| m.site_url.is_empty()) {
            mail.site_url = base.clone();
        }
        #[allow(clippy::disallowed_methods)]
        let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
        let gatehouse = match Gatehouse::start(store.clone(), clock.clone(), settings).await {
            Ok(gatehouse) => gatehouse,
            Err(err) => {
                store.close().await;
                return Err((err, db));
            }
        };
        let state = AppState {
            gatehouse: gatehouse.clone(),
            config: Arc::new({
                let mut config = HttpConfig {
                    max_body_bytes: TEST_BODY_LIMIT,
                    ready_timeout: Duration::from_secs(2),
                    insecure_cookies: false,
                    allowed_origins: vec![base.clone(), "https://app.example.com".to_owned()],
                    ..HttpConfig::default()
                };
                http(&mut config);
                config
            }),
        };
        let app = gatehouse_http::router_with(state, test_routes());
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(gatehouse_http::serve(
            listener,
            app,
            async move {
                let _ = rx.await;
            },
            Duration::from_secs(5),
        ));
        Ok(Self {
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            db,
            clock,
            gatehouse,
            shutdown: Some(tx),
            server: Some(server),
            sink: None,
            courier: None,
        })
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

/// The CSRF cookie's name on a server with secure cookies (every test server).
pub const CSRF_COOKIE: &str = "__Host-csrf_token";

/// A password that passes the default policy.
pub const PASSWORD: &str = "quartz-Lantern-47";

/// The tokens of a signed-in session.
#[derive(Debug, Clone)]
pub struct Signed {
    pub access: String,
    pub refresh: String,
}

/// The `Set-Cookie` header that sets `name`, whole.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The value `Set-Cookie` gives `name`.
pub fn cookie_value(response: &reqwest::Response, name: &str) -> Option<String> {
    set_cookie(response, name)
        .and_then(|c| c.split(';').next().map(str::to_owned))
        .and_then(|pair| pair.split_once('=').map(|(_, v)| v.to_owned()))
}

impl TestApp {
    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Signs up `email` with [`PASSWORD`]; asserts the 201 and returns the user.
    pub async fn signup(&self, email: &str, username: Option<&str>) -> serde_json::Value {
        let mut body = serde_json::json!({"email": email, "password": PASSWORD});
        if let Some(name) = username {
            body["username"] = serde_json::json!(name);
        }
        let response = self.post_json("/auth/signup", body).await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        response.json::<serde_json::Value>().await.unwrap()["user"].clone()
    }

    /// A CSRF token from `GET /auth/csrf` (the cookie carries the same value).
    pub async fn csrf(&self) -> String {
        let response = self.get("/auth/csrf").await;
        let cookie = cookie_value(&response, CSRF_COOKIE).expect("csrf cookie");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["csrfToken"], cookie.as_str());
        cookie
    }

    /// A POST to a cookie route with a valid CSRF token, and `refresh` as the refresh cookie.
    pub async fn cookie_post(
        &self,
        path: &str,
        refresh: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let csrf = self.csrf().await;
        let mut cookies = format!("{CSRF_COOKIE}={csrf}");
        if let Some(refresh) = refresh {
            cookies.push_str(&format!("; sb_refresh_token={refresh}"));
        }
        let mut request = self
            .client
            .post(self.url(path))
            .header("x-csrf-token", &csrf)
            .header("cookie", cookies);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// `POST /auth/signin` by email, with CSRF.
    pub async fn signin(&self, email: &str, password: &str) -> reqwest::Response {
        self.cookie_post(
            "/auth/signin",
            None,
            Some(serde_json::json!({"email": email, "password": password})),
        )
        .await
    }

    /// `POST /auth/signin` by email from `ip`, as a trusted proxy would forward it (the
    /// server must trust the loopback peer's `X-Forwarded-For`), with CSRF.
    pub async fn signin_from(&self, ip: &str, email: &str, password: &str) -> reqwest::Response {
        let csrf = self.csrf().await;
        self.client
            .post(self.url("/auth/signin"))
            .header("x-forwarded-for", ip)
            .header("x-csrf-token", &csrf)
            .header("cookie", format!("{CSRF_COOKIE}={csrf}"))
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// Signs in and returns the tokens; asserts the 200.
    pub async fn signin_ok(&self, email: &str) -> Signed {
        let response = self.signin(email, PASSWORD).await;
        assert_eq!(response.status(), 200);
        Self::signed(response).await
    }

    /// The tokens of a 200 from sign-in or refresh.
    pub async fn signed(response: reqwest::Response) -> Signed {
        let refresh = cookie_value(&response, "sb_refresh_token").expect("refresh cookie");
        let body: serde_json::Value = response.json().await.unwrap();
        Signed {
            access: body["accessToken"].as_str().unwrap().to_owned(),
            refresh,
        }
    }

    /// `POST /auth/refresh` with `refresh` as the cookie.
    pub async fn refresh(&self, refresh: &str) -> reqwest::Response {
        self.cookie_post("/auth/refresh", Some(refresh), None).await
    }

    /// `GET /auth/me` with `access` as the bearer token.
    pub async fn me(&self, access: &str) -> reqwest::Response {
        self.client
            .get(self.url("/auth/me"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
    }

    /// Runs one statement against the test database (for arranging state no API offers yet).
    pub async fn sql(&self, sql: &str, id: &str) {
        let id = uuid::Uuid::parse_str(id).unwrap();
        gatehouse_core::store::with_pool!(self.gatehouse.store(), pool => {
            gatehouse_core::store::sqlx::query(sql).bind(id).execute(pool).await.unwrap();
        });
    }

    /// The audit actions recorded so far, oldest first.
    pub async fn audit_actions(&self) -> Vec<String> {
        let mut events = self
            .gatehouse
            .store()
            .recent_audit_events(1000)
            .await
            .unwrap();
        events.reverse();
        events.into_iter().map(|e| e.action).collect()
    }
}

impl TestApp {
    /// Creates an account with `role` as an operator would (CLI), with [`PASSWORD`].
    pub async fn create_account(&self, email: &str, role: &str) -> uuid::Uuid {
        let input = gatehouse_core::admin::NewAccount {
            email: email.to_owned(),
            username: None,
            password: Some(secrecy::SecretString::from(PASSWORD)),
            role: role.to_owned(),
            display_name: None,
            user_metadata: None,
            app_metadata: None,
            email_confirmed: true,
            banned_until: None,
        };
        let meta = gatehouse_core::RequestMeta::default();
        let (user, _) = self
            .gatehouse
            .admin
            .create_account(gatehouse_core::admin::Actor::Operator, input, &meta)
            .await
            .unwrap();
        user.id
    }

    /// An admin account, signed in.
    pub async fn admin(&self, email: &str) -> (uuid::Uuid, Signed) {
        let id = self.create_account(email, "admin").await;
        (id, self.signin_ok(email).await)
    }

    /// A request with `token` as the bearer.
    pub fn authed(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }
}
