//! Cross-cutting request handling: the request id, the access log line, the guard every
//! surface sits behind, panics, and the app API's answers to an unknown route or a wrong
//! method.

use std::any::Any;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderName, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::Instrument;

use crate::error::ApiError;
use crate::{security, AppState, HttpConfig};

/// The header that carries the request id, in and out.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A caller's id is kept when it is short and plain, so it can be logged and echoed
/// safely; anything else (control characters, spaces, 200 bytes) is replaced.
fn is_sane_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Assigns the request id, runs the request inside a span that carries it, writes one log
/// line per request (method, path, status, latency, id — never headers, query or body),
/// and echoes the id in `x-request-id`.
pub async fn request_context(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane_request_id(v))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));

    let method = req.method().clone();
    // The path only: query strings can carry tokens (verification links).
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %id);
    let started = Instant::now();
    let mut response = next.run(req).instrument(span).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = response.status().as_u16();
    if response.status().is_server_error() {
        tracing::warn!(target: "gatehouse::access", %method, %path, status, latency_ms, request_id = %id, "request");
    } else {
        tracing::info!(target: "gatehouse::access", %method, %path, status, latency_ms, request_id = %id, "request");
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    response
}

/// Answers a panicking handler with an opaque 500; the panic is logged with its message.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    tracing::error!(panic = %message, "request handler panicked");
    ApiError::internal().into_response()
}

/// Fallback for paths no route serves (`/auth/v1` has its own).
pub async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::route_not_found(&method, uri.path())
}

/// Everything under `/auth/v1` in Supabase mode: the project's Auth API serves it, not
/// gatehouse.
pub async fn gotrue_off_in_supabase_mode() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "supabase_mode",
        "gatehouse runs in Supabase mode: Supabase clients talk to the project's Auth API \
         directly, not to /auth/v1 here",
    )
}

/// Fallback for known paths called with a method they do not take.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(&method, uri.path())
}

/// The middleware every surface sits behind, from the outside in: security headers, the
/// bounds on requests, panics, `Cache-Control: no-store` unless a response says otherwise,
/// the body limit. Each surface wraps its own router in it, inside its own error handling,
/// so what the guard refuses (a long URL, a panic) answers in that surface's format. The
/// bound on requests in flight is one for the whole server.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    max_body: usize,
    limits: security::LimitState,
    hsts: bool,
}

impl Guard {
    pub(crate) fn new(config: &HttpConfig) -> Self {
        Self {
            max_body: config.max_body_bytes,
            limits: security::LimitState::new(config.limits.clone()),
            hsts: config.hsts,
        }
    }

    /// `router` behind the guard.
    pub(crate) fn wrap(&self, router: Router<AppState>) -> Router<AppState> {
        router
            .layer(DefaultBodyLimit::max(self.max_body))
            // Responses that carry tokens or user data must not be cached; the few that
            // may (the JWKS, the docs) say so themselves.
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(axum::middleware::from_fn_with_state(
                self.limits.clone(),
                security::enforce_limits,
            ))
            .layer(axum::middleware::from_fn_with_state(
                self.hsts,
                security::security_headers,
            ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_request_ids_are_kept_and_odd_ones_replaced() {
        assert!(is_sane_request_id("3f2c9a7e-1b4d-4c1a-9f0e-123456789abc"));
        assert!(is_sane_request_id("lb:req_42.a"));
        assert!(!is_sane_request_id(""));
        assert!(!is_sane_request_id("has space"));
        assert!(!is_sane_request_id("new\nline"));
        assert!(!is_sane_request_id("é"));
        assert!(!is_sane_request_id(&"a".repeat(129)));
    }
}
