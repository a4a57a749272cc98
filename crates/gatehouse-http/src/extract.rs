//! Wrappers over axum's extractors whose rejections answer in a surface's error format:
//! the app API's by default, GoTrue's under `/auth/v1` (see [`ErrorFormat`]).

use std::marker::PhantomData;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Deepest nesting of arrays and objects accepted in a JSON body. serde_json alone stops
/// at 128; no request of ours needs more than a few levels.
pub const MAX_JSON_DEPTH: usize = 32;

/// Whether `bytes` nest arrays and objects deeper than `max` (strings are skipped, so
/// brackets inside them do not count). Cheap: one pass, no allocation.
pub fn json_too_deep(bytes: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// `Content-Type: application/json` or `application/<something>+json`, any parameters.
pub(crate) fn has_json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// What can be wrong with a JSON body before it is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyProblem {
    /// The content type is not JSON.
    NotJson,
    /// Over the configured limit.
    TooLarge,
    /// The body could not be read.
    Unreadable,
    /// Nested deeper than [`MAX_JSON_DEPTH`].
    TooDeep,
}

/// How a surface words the rejections of its extractors. The checks are the same on
/// every surface; the status, code and message are the surface's own.
pub trait ErrorFormat: Send + Sync + 'static {
    /// What a rejected request is answered with.
    type Rejection: axum::response::IntoResponse;
    /// Whether an empty (or all-whitespace) body reads as `{}`, whatever its content
    /// type. GoTrue's clients send no body on some calls.
    const EMPTY_BODY_IS_EMPTY_OBJECT: bool = false;
    /// The answer to a body that fails a check.
    fn body_rejection(problem: BodyProblem) -> Self::Rejection;
    /// Parses checked bytes; the error's wording is the surface's.
    fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Self::Rejection>;
    /// The answer to a request that needs a bearer token and has none.
    fn missing_bearer() -> Self::Rejection;
}

/// The app API's format: `{code, message, details}` ([`ApiError`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct AppFormat;

impl ErrorFormat for AppFormat {
    type Rejection = ApiError;

    fn body_rejection(problem: BodyProblem) -> ApiError {
        use axum::http::StatusCode as S;
        match problem {
            BodyProblem::NotJson => ApiError::validation(
                S::UNSUPPORTED_MEDIA_TYPE,
                "expected a body with Content-Type: application/json",
            ),
            BodyProblem::TooLarge => ApiError::payload_too_large(),
            BodyProblem::Unreadable => {
                ApiError::validation(S::BAD_REQUEST, "the body could not be read")
            }
            BodyProblem::TooDeep => {
                ApiError::validation(S::BAD_REQUEST, "the JSON body is nested too deeply")
                    .with_details(serde_json::json!({ "maxDepth": MAX_JSON_DEPTH }))
            }
        }
    }

    fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
        // axum's parser names the field at fault (`count: invalid type ...`).
        let axum::Json(value) = axum::Json::<T>::from_bytes(bytes)?;
        Ok(value)
    }

    fn missing_bearer() -> ApiError {
        ApiError::missing_bearer()
    }
}

/// A JSON body, answered in the error format `F` when it is not acceptable: not JSON, over
/// the limit, unreadable, nested too deeply, or not parseable as `T`. The second field
/// only carries the format (as axum-extra's `WithRejection` does): `Json(body, _)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T, F = AppFormat>(pub T, pub PhantomData<F>);

impl<T, F, S> FromRequest<S> for Json<T, F>
where
    T: DeserializeOwned,
    F: ErrorFormat,
    S: Send + Sync,
{
    type Rejection = F::Rejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // A JSON content type is required for a body: it makes a cross-site form post
        // impossible without a CORS preflight.
        let json = has_json_content_type(req.headers());
        if !json && !F::EMPTY_BODY_IS_EMPTY_OBJECT {
            return Err(F::body_rejection(BodyProblem::NotJson));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                F::body_rejection(
                    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                        BodyProblem::TooLarge
                    } else {
                        BodyProblem::Unreadable
                    },
                )
            })?;
        let bytes = if F::EMPTY_BODY_IS_EMPTY_OBJECT && bytes.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else if !json {
            return Err(F::body_rejection(BodyProblem::NotJson));
        } else {
            &bytes[..]
        };
        if json_too_deep(bytes, MAX_JSON_DEPTH) {
            return Err(F::body_rejection(BodyProblem::TooDeep));
        }
        F::parse(bytes).map(|value| Self(value, PhantomData))
    }
}

/// A query string; a malformed one → 400 `validation_failed`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// Path parameters; a malformed one (say, an id that is not a UUID) → 400 `validation_failed`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// The caller behind a verified bearer access token (see
/// [`Sessions::authenticate`](gatehouse_core::Sessions::authenticate)). No token → 401
/// `unauthorized` with `WWW-Authenticate: Bearer`.
#[derive(Debug, Clone)]
pub struct Authenticated(pub gatehouse_core::Principal);

impl FromRequestParts<crate::AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = required_bearer::<AppFormat>(parts)?;
        Ok(Self(state.gatehouse.sessions.authenticate(token).await?))
    }
}

/// The token of `Authorization: Bearer <token>`, if there is one.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The bearer token, or the format's answer to a request without one.
pub fn required_bearer<F: ErrorFormat>(parts: &Parts) -> Result<&str, F::Rejection> {
    bearer_token(parts).ok_or_else(F::missing_bearer)
}

/// Audits a refused admin request (a 403): the actor, the credential it came with, the
/// method and the path. A failure to write it is logged; the refusal stands either way.
pub(crate) async fn audit_refusal(
    parts: &mut Parts,
    state: &crate::AppState,
    actor: Option<uuid::Uuid>,
    credential: &'static str,
) {
    let Ok(ClientMeta(meta)) = ClientMeta::from_request_parts(parts, state).await;
    let details = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "credential": credential,
    });
    if let Err(err) = state
        .gatehouse
        .admin
        .audit_denied(actor, &meta, details)
        .await
    {
        tracing::error!(error = %err, "could not audit a refused admin request");
    }
}

/// Where the request came from: the client's IP and the user agent.
#[derive(Debug, Clone)]
pub struct ClientMeta(pub gatehouse_core::RequestMeta);

impl FromRequestParts<crate::AppState> for ClientMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip());
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        let ipv6_prefix = state.gatehouse.settings().rate_limits.ipv6_prefix;
        Ok(Self(match peer {
            Some(peer) => gatehouse_core::RequestMeta::from_client(
                client_ip(peer, &parts.headers, &state.config.trusted_proxies),
                ipv6_prefix,
                user_agent,
            ),
            None => gatehouse_core::RequestMeta::new(None, user_agent),
        }))
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then
/// `X-Forwarded-For` read from the right, skipping trusted proxies, up to the first address
/// that is not one (the left of it is whatever the client wrote, so never trusted).
pub fn client_ip(
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<std::net::IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::json_too_deep;

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        assert!(!json_too_deep(br#"{"a": [1, {"b": 2}]}"#, 3));
        assert!(json_too_deep(br#"{"a": [1, {"b": [2]}]}"#, 3));
        assert!(!json_too_deep(br#"{"a": "[[[[[[[[[[{{{{{{"}"#, 1));
        assert!(
            !json_too_deep(br#"{"a": "\"[[[[[["}"#, 1),
            "escaped quotes do not end strings"
        );
        assert!(json_too_deep(&b"[".repeat(10_000), 32));
    }

    #[test]
    fn the_client_ip_is_the_first_untrusted_hop_from_the_right() {
        use super::client_ip;
        let trusted: Vec<ipnet::IpNet> = vec![
            "10.0.0.0/8".parse().unwrap(),
            "192.168.1.1/32".parse().unwrap(),
        ];
        let headers = |xff: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert("x-forwarded-for", xff.parse().unwrap());
            h
        };
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        // Not from a proxy: the header is ignored.
        assert_eq!(
            client_ip(ip("203.0.113.9"), &headers("1.1.1.1"), &trusted),
            ip("203.0.113.9")
        );
        // From a proxy: the rightmost untrusted hop; a spoofed left part is ignored.
        assert_eq!(
            client_ip(
                ip("10.0.0.5"),
                &headers("6.6.6.6, 198.51.100.7, 10.1.1.1"),
                &trusted
            ),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(ip("192.168.1.1"), &headers("198.51.100.7"), &trusted),
            ip("198.51.100.7")
        );
        // A proxy with no header, or garbage: the proxy itself.
        assert_eq!(
            client_ip(ip("10.0.0.5"), &axum::http::HeaderMap::new(), &trusted),
            ip("10.0.0.5")
        );
        assert_eq!(
            client_ip(ip("10.0.0.5"), &headers("nonsense"), &trusted),
            ip("10.0.0.5")
        );
        // Nobody trusted: never read.
        assert_eq!(
            client_ip(ip("10.0.0.5"), &headers("1.1.1.1"), &[]),
            ip("10.0.0.5")
        );
    }
}
