//! Cross-cutting request handling: the request id, the access log line, panics, and the
//! answers the router itself gives (unknown route, wrong method).

use std::any::Any;
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::error::ApiError;

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

/// Fallback for paths no route serves.
pub async fn route_not_found(method: Method, uri: Uri) -> Response {
    if uri.path().starts_with("/auth/v1/") {
        let message = format!("no route for {method} {}", uri.path());
        return crate::gotrue::GoTrueError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            message,
        )
        .into_response();
    }
    ApiError::route_not_found(&method, uri.path()).into_response()
}

/// Fallback for known paths called with a method they do not take.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(&method, uri.path())
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
