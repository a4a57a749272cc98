//! The axum extractor: `Authorization: Bearer <token>` in, [`Claims`] or a JSON error out.

use std::fmt;
use std::ops::Deref;

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::{Claims, Verifier, VerifyError};

/// The claims of the request's verified bearer token.
///
/// ```no_run
/// use axum::{routing::get, Json, Router};
/// use gatehouse_verify::{AuthRejection, VerifiedClaims, Verifier};
///
/// async fn me(VerifiedClaims(claims): VerifiedClaims) -> Json<serde_json::Value> {
///     Json(serde_json::json!({ "sub": claims.sub, "email": claims.email }))
/// }
///
/// async fn reports(claims: VerifiedClaims) -> Result<&'static str, AuthRejection> {
///     claims.require_app_role("admin")?;
///     Ok("the reports")
/// }
///
/// # fn app(verifier: Verifier) -> Router {
/// Router::new()
///     .route("/me", get(me))
///     .route("/reports", get(reports))
///     .with_state(verifier) // or any state with `impl FromRef<State> for Verifier`
/// # }
/// ```
///
/// As `Option<VerifiedClaims>` it is `None` when the request carries no bearer token and
/// still a rejection when it carries a bad one.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedClaims(pub Claims);

impl Deref for VerifiedClaims {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.0
    }
}

impl VerifiedClaims {
    /// `Ok` when `app_metadata.role` is `role`; else a 403 `forbidden`.
    pub fn require_app_role(&self, role: &str) -> Result<(), AuthRejection> {
        if self.0.app_role() == Some(role) {
            Ok(())
        } else {
            Err(AuthRejection::forbidden(format!(
                "this needs the app role {role:?}"
            )))
        }
    }
}

/// Why a request was refused: a JSON `{"code", "message"}` response. 401 `missing_token`
/// or `invalid_token` (with `WWW-Authenticate: Bearer`), 403 `forbidden`, 503
/// `keys_unavailable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRejection {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl AuthRejection {
    /// 401 `missing_token`: no `Authorization: Bearer` header.
    pub fn missing_token() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "missing_token",
            message: "this needs an Authorization: Bearer <access token> header".into(),
        }
    }

    /// 401 `invalid_token`.
    pub fn invalid_token(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_token",
            message: message.into(),
        }
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: message.into(),
        }
    }

    /// 503 `keys_unavailable`: the token could not be checked (the reason is logged, not
    /// sent).
    pub fn keys_unavailable() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "keys_unavailable",
            message: "the token signing keys cannot be loaded right now; try again later".into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for AuthRejection {}

impl From<VerifyError> for AuthRejection {
    fn from(err: VerifyError) -> Self {
        match err {
            VerifyError::KeysUnavailable(reason) => {
                tracing::warn!("cannot verify a bearer token: {reason}");
                Self::keys_unavailable()
            }
            VerifyError::Config(reason) => {
                tracing::error!("cannot verify a bearer token: {reason}");
                Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "internal_error",
                    message: "the token verifier is misconfigured".into(),
                }
            }
            other => {
                tracing::debug!("bearer token refused: {other}");
                Self::invalid_token(other.to_string())
            }
        }
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"code": self.code, "message": self.message}).to_string();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: no error code when no credentials were sent.
            let challenge = if self.code == "missing_token" {
                "Bearer"
            } else {
                "Bearer error=\"invalid_token\""
            };
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

/// The bearer token of the request; `None` without an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AuthRejection> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthRejection::invalid_token(
            "the request has several Authorization headers",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| AuthRejection::invalid_token("the Authorization header is not text"))?
        .trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthRejection::invalid_token("the bearer token is empty"));
    }
    Ok(Some(token))
}

impl<S> FromRequestParts<S> for VerifiedClaims
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers)?.ok_or_else(AuthRejection::missing_token)?;
        let verifier = Verifier::from_ref(state);
        Ok(Self(verifier.verify(token).await?))
    }
}

impl<S> OptionalFromRequestParts<S> for VerifiedClaims
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let Some(token) = bearer(&parts.headers)? else {
            return Ok(None);
        };
        let verifier = Verifier::from_ref(state);
        Ok(Some(Self(verifier.verify(token).await?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_other_schemes_are_no_token() {
        assert_eq!(bearer(&headers(&[])).unwrap(), None);
        assert_eq!(bearer(&headers(&["Bearer a.b.c"])).unwrap(), Some("a.b.c"));
        assert_eq!(
            bearer(&headers(&["bearer   a.b.c "])).unwrap(),
            Some("a.b.c")
        );
        assert_eq!(bearer(&headers(&["BEARER a.b.c"])).unwrap(), Some("a.b.c"));
        assert_eq!(bearer(&headers(&["Basic dXNlcjpwdw=="])).unwrap(), None);
        assert_eq!(bearer(&headers(&["Bearerx a.b.c"])).unwrap(), None);
        assert_eq!(
            bearer(&headers(&["Bearer"])).unwrap_err().code(),
            "invalid_token"
        );
        assert_eq!(
            bearer(&headers(&["Bearer  "])).unwrap_err().code(),
            "invalid_token"
        );
        assert_eq!(
            bearer(&headers(&["Bearer a.b.c", "Bearer d.e.f"]))
                .unwrap_err()
                .code(),
            "invalid_token"
        );
    }
}
