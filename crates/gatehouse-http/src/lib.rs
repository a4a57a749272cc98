//! gatehouse's HTTP surfaces. Handlers are thin: read the request, call
//! [`gatehouse_core::Gatehouse`], map the result. No SQL and no hashing here.
//!
//! Every route is registered through `utoipa_axum`'s `OpenApiRouter`, so a route cannot
//! exist undocumented; the rendered document is committed as `docs/openapi.json`.

mod admin;
mod auth;
mod docs;
pub mod error;
pub mod extract;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod gotrue;
mod keys;
pub mod middleware;
mod ops;
pub mod security;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::{Extension, Router};
use gatehouse_core::Gatehouse;
use tokio::net::TcpListener;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, ErrorBody};

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes; more is a 413.
    pub max_body_bytes: usize,
    /// How long `/ready` waits for the database.
    pub ready_timeout: Duration,
    /// Drop `Secure` from cookies (local plain-http development only).
    pub insecure_cookies: bool,
    /// Origins the cookie routes accept in an `Origin` header: the public URL's and the
    /// CORS allowlist.
    pub allowed_origins: Vec<String>,
    /// Origins CORS admits, with credentials; empty means no CORS headers.
    pub cors_origins: Vec<String>,
    /// Send HSTS (the public URL is https).
    pub hsts: bool,
    /// Bounds on URL and header size, time and requests in flight.
    pub limits: security::Limits,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            ready_timeout: Duration::from_secs(2),
            insecure_cookies: false,
            allowed_origins: vec!["http://localhost:8080".to_owned()],
            cors_origins: Vec::new(),
            hsts: false,
            limits: security::Limits::default(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The auth service.
    pub gatehouse: Gatehouse,
    /// HTTP settings.
    pub config: Arc<HttpConfig>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "gatehouse",
        description = "The user and auth backend of a web app. Every error on these routes is \
                       `{code, message, details}` with a stable code.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "operations", description = "Health, readiness and this document"),
        (name = "auth", description = "The app API: accounts and sessions. Cookie routes (signin, refresh, \
            logout) need the X-CSRF-Token header from GET /auth/csrf."),
        (name = "auth (aliases)", description = "The seeds' spellings of the app API routes"),
        (name = "keys", description = "Public keys for verifying access tokens"),
        (name = "admin", description = "User management and the audit trail (role admin)"),
        (name = "supabase", description = "The Supabase Auth (GoTrue) wire API, for supabase-js and supabase-py. \
            Errors are GoTrue's: {code, message} with X-Supabase-Api-Version: 2024-01-01, else {code, error_code, msg}."),
    ),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "refresh_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "sb_refresh_token",
                "The HttpOnly refresh cookie set by sign-in (Path=/auth)",
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The token of GET /auth/csrf, equal to the __Host-csrf_token cookie (csrf_token under GATEHOUSE_INSECURE_COOKIES)",
            ))),
        );
    }
}

/// The routes of every surface but `/auth/v1`, with the document's header.
fn app_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ops::routes())
        .merge(docs::routes())
        .merge(auth::routes())
        .merge(keys::routes())
        .merge(admin::routes())
}

/// The app API's routes, GoTrue's (relative to [`gotrue::PREFIX`]), and the document of
/// both, GoTrue's nested under its prefix.
fn surfaces() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let (app, doc) = app_routes().split_for_parts();
    let (gotrue, gotrue_doc) = gotrue::routes().split_for_parts();
    let mut doc = doc.nest(gotrue::PREFIX, gotrue_doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    (app, gotrue, doc)
}

/// The OpenAPI document of every route [`router`] serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    surfaces().2
}

/// The complete application: every surface, behind the middleware every response goes
/// through.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// [`router`] plus `extra` routes behind the same middleware. Tests use it to reach
/// behaviour no production route triggers on demand (a panic, a slow handler).
///
/// Two surfaces, each with its own fallbacks and error format, behind one
/// [`middleware::Guard`]: the app API at the root, and GoTrue's router nested at
/// `/auth/v1` (everything under it, `/auth/v1` itself included, is GoTrue's) with its
/// error-format negotiation around its guard. Around both: CORS and the request
/// context.
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    let (app, gotrue, doc) = surfaces();
    let guard = middleware::Guard::new(&state.config);
    let cors = security::cors(&state.config.cors_origins);
    let app = app
        .merge(docs::swagger_ui())
        .merge(extra)
        .fallback(middleware::route_not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed);
    // A service rather than nested routes, so that its fallback also answers `/auth/v1/`.
    // In Supabase mode clients talk to the project's Auth API directly: gatehouse's own is
    // off, and says so.
    let gotrue = if state.gatehouse.supabase_mode() {
        Router::new()
            .fallback(middleware::gotrue_off_in_supabase_mode)
            .with_state(state.clone())
    } else {
        gotrue::surface(gotrue, &guard).with_state(state.clone())
    };
    let app = guard
        .wrap(app)
        .nest_service(gotrue::PREFIX, gotrue)
        .layer(Extension(docs::render(&doc)));
    let app = match cors {
        Some(cors) => app.layer(cors),
        None => app,
    };
    app.layer(axum::middleware::from_fn(middleware::request_context))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting, lets
/// in-flight requests finish for at most `grace`, and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        let _ = started_tx.send(());
    };
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal);
    let deadline = async move {
        match started_rx.await {
            Ok(()) => tokio::time::sleep(grace).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!(grace_secs = grace.as_secs_f64(), "requests still in flight after the grace period; closing them");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
    }

    /// `GATEHOUSE_BLESS=1 cargo nextest run -p gatehouse-http` rewrites the committed copy.
    #[test]
    fn the_committed_openapi_document_matches_the_routes() {
        let current = openapi().to_pretty_json().unwrap() + "\n";
        if std::env::var_os("GATEHOUSE_BLESS").is_some() {
            std::fs::write(committed_path(), &current).unwrap();
        }
        let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
        assert!(
            committed == current,
            "docs/openapi.json is stale: run GATEHOUSE_BLESS=1 cargo nextest run -p gatehouse-http"
        );
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let mut seen = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap().to_owned();
                assert!(
                    seen.insert(id.clone()),
                    "{method} {path} reuses operationId {id}"
                );
            }
        }
    }

    #[test]
    fn every_operation_has_a_summary_a_tag_and_responses() {
        let doc = serde_json::to_value(openapi()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                assert!(op["summary"].is_string(), "{method} {path} has no summary");
                assert!(
                    op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                    "{method} {path} has no tag"
                );
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{method} {path}"
                );
            }
        }
    }
}
