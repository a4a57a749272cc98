//! What every response and request goes through for safety: security headers, CORS for
//! the allowlisted origins only, and bounds on URL and header size, time, and requests in
//! flight, each answered fast in our error shape.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::ApiError;

/// Bounds on requests.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_url_bytes: usize,
    pub max_header_bytes: usize,
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_url_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 1024,
        }
    }
}

/// The state of [`enforce_limits`].
#[derive(Debug, Clone)]
pub struct LimitState {
    limits: Limits,
    in_flight: Arc<Semaphore>,
}

impl LimitState {
    pub fn new(limits: Limits) -> Self {
        let in_flight = Arc::new(Semaphore::new(limits.max_concurrent_requests.max(1)));
        Self { limits, in_flight }
    }
}

/// URL length, header size, requests in flight, then the time a request may take.
pub async fn enforce_limits(State(state): State<LimitState>, req: Request, next: Next) -> Response {
    let limits = &state.limits;
    // The URL as sent: a nested surface sees its path without the prefix.
    let url_len = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| req.uri().to_string(), |original| original.0.to_string())
        .len();
    if url_len > limits.max_url_bytes {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            "the URL is too long",
        )
        .with_details(serde_json::json!({ "limit": limits.max_url_bytes }))
        .into_response();
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > limits.max_header_bytes {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            "the request headers are too large",
        )
        .with_details(serde_json::json!({ "limit": limits.max_header_bytes }))
        .into_response();
    }
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        let mut response = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in progress; retry shortly",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    match tokio::time::timeout(limits.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                timeout_secs = limits.request_timeout.as_secs_f64(),
                "request timed out"
            );
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "the request took too long",
            )
            .into_response()
        }
    }
}

/// Security headers on every response; HSTS when served over https.
pub async fn security_headers(State(hsts): State<bool>, req: Request, next: Next) -> Response {
    let docs = req.uri().path().starts_with("/docs");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    let csp = if docs {
        // Swagger UI: its own scripts and styles only, nothing from elsewhere.
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
         font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    } else {
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    };
    // A page of ours that sets its own (the emailed link's page) keeps it.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        );
    }
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    response
}

/// CORS for the allowlisted origins, with credentials and the headers supabase-js sends
/// and reads; `None` (no CORS headers at all) when the list is empty.
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    let allow = [
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        HeaderName::from_static("apikey"),
        HeaderName::from_static("x-client-info"),
        HeaderName::from_static("x-supabase-api-version"),
        HeaderName::from_static("x-csrf-token"),
        HeaderName::from_static("x-request-id"),
    ];
    let expose = [
        HeaderName::from_static("x-total-count"),
        header::LINK,
        HeaderName::from_static("x-supabase-api-version"),
        HeaderName::from_static("x-sb-error-code"),
        HeaderName::from_static("x-request-id"),
        header::RETRY_AFTER,
    ];
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_credentials(true)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers(allow)
            .expose_headers(expose)
            .max_age(Duration::from_secs(600)),
    )
}
