//! The Supabase Auth (GoTrue) wire API under `/auth/v1`, so supabase-js and supabase-py run
//! unchanged against gatehouse: the same users, sessions and rules as the app API, in
//! GoTrue's field names, statuses and error format.
//!
//! Errors: handlers answer a [`GoTrueError`]; [`negotiate`] renders it in the format the
//! request asked for (`X-Supabase-Api-Version: 2024-01-01` → `{code, message}` and the
//! header echoed; without it, the older `{code: <status>, error_code, msg}`).

pub(crate) mod admin;
pub(crate) mod dto;
pub(crate) mod parse;
pub(crate) mod user;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_core::api_keys::ApiRole;
use gatehouse_core::{Error, Principal};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::bearer_token;
use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(user::signup))
        .routes(routes!(user::token))
        .routes(routes!(user::get_user, user::update_user))
        .routes(routes!(user::logout))
        .routes(routes!(user::settings))
        .routes(routes!(user::health))
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(
            admin::get_user,
            admin::update_user,
            admin::delete_user
        ))
}

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

impl IntoResponse for GoTrueError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body(true))).into_response();
        response
            .headers_mut()
            .insert(ERROR_CODE.clone(), header_value(&self.code));
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
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

/// Renders errors in the format the request asked for, and echoes the API version.
pub async fn negotiate(req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/auth/v1/") {
        return next.run(req).await;
    }
    let current = req
        .headers()
        .get(&API_VERSION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() >= "2024-01-01");
    let mut response = next.run(req).await;
    // Errors from outside the handlers (limits, panics) speak GoTrue here too.
    if response.extensions().get::<GoTrueError>().is_none() {
        if let Some(parts) = response.extensions().get::<crate::error::ErrorParts>() {
            response = GoTrueError::from(parts).into_response();
        }
    }
    if current {
        response
            .headers_mut()
            .insert(API_VERSION.clone(), HeaderValue::from_static("2024-01-01"));
        return response;
    }
    match response.extensions().get::<GoTrueError>().cloned() {
        Some(err) => {
            let mut legacy = (err.status, axum::Json(err.body(false))).into_response();
            legacy
                .headers_mut()
                .insert(ERROR_CODE.clone(), header_value(&err.code));
            if let Some(seconds) = err.retry_after {
                legacy
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            legacy
        }
        None => response,
    }
}

/// A JSON body; bad JSON → 400 `bad_json`, too large → 413 `request_entity_too_large`.
#[derive(Debug)]
pub struct GJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for GJson<T> {
    type Rejection = GoTrueError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // A JSON content type is required for a body (every client sends one): it makes a
        // cross-site form post impossible without a CORS preflight.
        let json = crate::extract::has_json_content_type(req.headers());
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    GoTrueError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request_entity_too_large",
                        "Request body too large",
                    )
                } else {
                    GoTrueError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_json",
                        "Could not read the request body",
                    )
                }
            })?;
        let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else if !json {
            return Err(GoTrueError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                "Content-Type must be application/json",
            ));
        } else {
            &bytes[..]
        };
        if crate::extract::json_too_deep(bytes, crate::extract::MAX_JSON_DEPTH) {
            return Err(GoTrueError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                "The JSON body is nested too deeply",
            ));
        }
        serde_json::from_slice(bytes).map(Self).map_err(|e| {
            GoTrueError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!("Could not parse request body as JSON: {e}"),
            )
        })
    }
}

/// A signed-in user, by their access token.
#[derive(Debug)]
pub struct UserJwt(pub Principal);

impl FromRequestParts<AppState> for UserJwt {
    type Rejection = GoTrueError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or_else(|| {
            GoTrueError::new(
                StatusCode::UNAUTHORIZED,
                "no_authorization",
                "This endpoint requires a valid Bearer token",
            )
        })?;
        Ok(Self(state.gatehouse.sessions.authenticate(token).await?))
    }
}

/// The service-role key: the only key of the Supabase admin API.
#[derive(Debug)]
pub struct ServiceRole;

impl FromRequestParts<AppState> for ServiceRole {
    type Rejection = GoTrueError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or_else(|| {
            GoTrueError::new(
                StatusCode::UNAUTHORIZED,
                "no_authorization",
                "This endpoint requires a valid Bearer token",
            )
        })?;
        let not_admin = || GoTrueError::new(StatusCode::FORBIDDEN, "not_admin", "User not allowed");
        let (actor, credential, refusal) = match state.gatehouse.keys.verify_api_key(token).await? {
            Some(ApiRole::ServiceRole) => return Ok(Self),
            Some(ApiRole::Anon) => (None, "anon key", not_admin()),
            None => match state.gatehouse.sessions.authenticate(token).await {
                Ok(principal) => (Some(principal.user.id), "user token", not_admin()),
                Err(err) => (None, "invalid token", GoTrueError::from(err)),
            },
        };
        // Every refusal here is a 403 (GoTrue answers a bad JWT with 403 too) and audited.
        if refusal.status == StatusCode::FORBIDDEN {
            crate::extract::audit_refusal(parts, state, actor, credential).await;
        }
        Err(refusal)
    }
}
