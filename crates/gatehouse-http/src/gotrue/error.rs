//! GoTrue's errors: [`GoTrueError`], the mapping of core errors to GoTrue's codes and
//! statuses, and [`negotiate`], which answers every error of the surface in the format the
//! request asked for (`X-Supabase-Api-Version: 2024-01-01` → `{code, message}` and the
//! header echoed; without it, the older `{code: <status>, error_code, msg}`).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_core::Error;
use serde_json::{json, Value};

static API_VERSION: HeaderName = HeaderName::from_static("x-supabase-api-version");
static ERROR_CODE: HeaderName = HeaderName::from_static("x-sb-error-code");

/// An error in GoTrue's terms.
#[derive(Debug, Clone)]
pub struct GoTrueError {
    pub status: StatusCode,
    pub code: std::borrow::Cow<'static, str>,
    pub message: String,
    pub weak_reasons: Option<Vec<&'static str>>,
    /// Also carry OAuth's `error`/`error_description` (the `/token` endpoint).
    pub oauth: bool,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

impl GoTrueError {
    pub fn new(
        status: StatusCode,
        code: impl Into<std::borrow::Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            weak_reasons: None,
            oauth: false,
            retry_after: None,
        }
    }

    fn body(&self, current: bool) -> Value {
        let mut body = if current {
            json!({ "code": self.code, "message": self.message })
        } else {
            json!({ "code": self.status.as_u16(), "error_code": self.code, "msg": self.message })
        };
        if let Some(reasons) = &self.weak_reasons {
            body["weak_password"] = json!({ "reasons": reasons });
        }
        if self.oauth {
            body["error"] = json!(self.code);
            body["error_description"] = json!(self.message);
        }
        body
    }

    /// In the context of `POST /token`, where account problems are 400s.
    pub fn at_token(err: Error) -> Self {
        let mut mapped: Self = match err {
            Error::UserBanned | Error::UserInactive => {
                Self::new(StatusCode::BAD_REQUEST, "user_banned", "User is banned")
            }
            Error::SessionEnded => Self::new(
                StatusCode::BAD_REQUEST,
                "session_not_found",
                "Session not found",
            ),
            other => other.into(),
        };
        mapped.oauth = true;
        mapped
    }

    /// In the context of the admin API, where a taken email is `email_exists`.
    pub fn at_admin(err: Error) -> Self {
        match err {
            Error::UserAlreadyExists { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "email_exists",
                "A user with this email address has already been registered",
            ),
            other => other.into(),
        }
    }
}

impl From<Error> for GoTrueError {
    fn from(err: Error) -> Self {
        use StatusCode as S;
        match err {
            Error::Validation { message, .. } | Error::InvalidQuery { message, .. } => {
                Self::new(S::BAD_REQUEST, "validation_failed", message)
            }
            Error::WeakPassword { reasons } => Self {
                weak_reasons: Some(reasons),
                ..Self::new(
                    S::UNPROCESSABLE_ENTITY,
                    "weak_password",
                    "Password is too weak or too common",
                )
            },
            Error::UserAlreadyExists { .. } => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "user_already_exists",
                "User already registered",
            ),
            Error::InvalidCredentials => Self::new(
                S::BAD_REQUEST,
                "invalid_credentials",
                "Invalid login credentials",
            ),
            Error::CurrentPasswordInvalid => Self::new(
                S::BAD_REQUEST,
                "current_password_mismatch",
                "Current password required when setting new password.",
            ),
            Error::ReauthenticationNeeded => Self::new(
                S::BAD_REQUEST,
                "reauthentication_needed",
                "Password update requires reauthentication",
            ),
            Error::Unauthorized(_) => Self::new(
                S::FORBIDDEN,
                "bad_jwt",
                "invalid JWT: unable to parse or verify signature",
            ),
            Error::SessionEnded => Self::new(
                S::FORBIDDEN,
                "session_not_found",
                "Session from session_id claim in JWT does not exist",
            ),
            Error::UserInactive => Self::new(
                S::FORBIDDEN,
                "user_not_found",
                "User from sub claim in JWT does not exist",
            ),
            Error::UserBanned => Self::new(S::FORBIDDEN, "user_banned", "User is banned"),
            Error::EmailNotConfirmed => {
                Self::new(S::BAD_REQUEST, "email_not_confirmed", "Email not confirmed")
            }
            Error::AccountLocked => Self::new(
                S::BAD_REQUEST,
                "account_locked",
                "Account locked after too many failed sign-ins",
            ),
            Error::RefreshTokenInvalid => Self::new(
                S::BAD_REQUEST,
                "refresh_token_not_found",
                "Invalid Refresh Token: Refresh Token Not Found",
            ),
            Error::RefreshTokenReused => Self::new(
                S::BAD_REQUEST,
                "refresh_token_already_used",
                "Invalid Refresh Token: Already Used",
            ),
            Error::CsrfFailed(message) => Self::new(S::FORBIDDEN, "csrf_failed", message),
            Error::RateLimited { retry_after } => Self {
                retry_after: Some(retry_after),
                ..Self::new(
                    S::TOO_MANY_REQUESTS,
                    "over_request_rate_limit",
                    "Request rate limit reached",
                )
            },
            Error::Overloaded => Self::new(
                S::SERVICE_UNAVAILABLE,
                "overloaded",
                "Too many requests in progress; retry",
            ),
            Error::Forbidden(_) => Self::new(S::FORBIDDEN, "not_admin", "User not allowed"),
            Error::Conflict { code, message } => Self::new(S::CONFLICT, code, message),
            Error::NotFound => Self::new(S::NOT_FOUND, "user_not_found", "User not found"),
            Error::Unavailable(cause) => {
                tracing::warn!(error = %cause, "dependency unavailable");
                Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "unexpected_failure",
                    "Service temporarily unavailable",
                )
            }
            Error::UpstreamUnavailable(reason) => {
                tracing::warn!(reason, "identity provider unavailable");
                Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "upstream_unavailable",
                    "The identity provider is unavailable",
                )
            }
            Error::OtpInvalid => Self::new(
                S::FORBIDDEN,
                "otp_expired",
                "Token has expired or is invalid",
            ),
            Error::EmailRateLimited { retry_after } => Self {
                retry_after: Some(retry_after),
                ..Self::new(
                    S::TOO_MANY_REQUESTS,
                    "over_email_send_rate_limit",
                    "Email rate limit exceeded",
                )
            },
            Error::MailNotConfigured => Self::new(
                S::NOT_FOUND,
                "mail_not_configured",
                "This server sends no mail (GATEHOUSE_SMTP_URL is not set)",
            ),
            Error::EmailExists => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "email_exists",
                "A user with this email address has already been registered",
            ),
            Error::ReauthenticationInvalid => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "reauthentication_not_valid",
                "Nonce has expired or is invalid",
            ),
            Error::FlowStateNotFound => Self::new(
                S::NOT_FOUND,
                "flow_state_not_found",
                "invalid flow state, no valid flow state found",
            ),
            Error::FlowStateExpired => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "flow_state_expired",
                "invalid flow state, flow state has expired",
            ),
            Error::BadCodeVerifier => Self::new(
                S::BAD_REQUEST,
                "bad_code_verifier",
                "code challenge does not match previously saved code verifier",
            ),
            other @ (Error::Config(_) | Error::Internal(_)) => {
                tracing::error!(error = %other, "internal error");
                Self::new(
                    S::INTERNAL_SERVER_ERROR,
                    "unexpected_failure",
                    "Unexpected failure",
                )
            }
        }
    }
}

impl GoTrueError {
    /// `x-sb-error-code` and `Retry-After`, which both formats carry.
    fn set_headers(&self, headers: &mut HeaderMap) {
        headers.insert(ERROR_CODE.clone(), header_value(&self.code));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
    }

    /// `response` with this error's body in the current or the legacy format. Its other
    /// headers (security headers, `Cache-Control`, `Allow`) stay.
    fn render_into(self, response: Response, current: bool) -> Response {
        let (mut parts, _) = response.into_parts();
        // Serializing a `Value` cannot fail.
        let body = serde_json::to_vec(&self.body(current)).unwrap_or_default();
        parts.status = self.status;
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.set_headers(&mut parts.headers);
        parts.extensions.insert(self);
        Response::from_parts(parts, Body::from(body))
    }
}

impl IntoResponse for GoTrueError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body(true))).into_response();
        self.set_headers(response.headers_mut());
        // `negotiate` re-renders it for a request that asked for the legacy format.
        response.extensions_mut().insert(self);
        response
    }
}

fn header_value(code: &str) -> HeaderValue {
    HeaderValue::from_str(code).unwrap_or_else(|_| HeaderValue::from_static("unexpected_failure"))
}

impl From<&crate::error::ErrorParts> for GoTrueError {
    /// An error the framework or a middleware produced, in GoTrue's words.
    fn from(parts: &crate::error::ErrorParts) -> Self {
        let code = match parts.code.as_ref() {
            "internal_error" => "unexpected_failure".into(),
            "payload_too_large" => "request_entity_too_large".into(),
            "rate_limited" => "over_request_rate_limit".into(),
            _ => parts.code.clone(),
        };
        Self {
            retry_after: parts.retry_after,
            ..Self::new(parts.status, code, parts.message.to_string())
        }
    }
}

/// Answers every error in the format the request asked for, and echoes the API version.
/// The surface's own errors arrive as a [`GoTrueError`]; those of the middleware around
/// the handlers (limits, panics) as the app API's, and are re-worded here.
pub async fn negotiate(req: Request, next: Next) -> Response {
    let current = req
        .headers()
        .get(&API_VERSION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() >= "2024-01-01");
    let mut response = next.run(req).await;
    let error = match response.extensions().get::<GoTrueError>() {
        // Already rendered in the current format.
        Some(_) if current => None,
        Some(err) => Some(err.clone()),
        None => response
            .extensions()
            .get::<crate::error::ErrorParts>()
            .map(GoTrueError::from),
    };
    if let Some(err) = error {
        response = err.render_into(response, current);
    }
    if current {
        response
            .headers_mut()
            .insert(API_VERSION.clone(), HeaderValue::from_static("2024-01-01"));
    }
    response
}
