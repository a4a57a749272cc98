//! The one error shape of every surface but `/auth/v1`: `{code, message, details}` with a
//! stable `code` and the right status. Internal causes are logged here and never sent.

use std::borrow::Cow;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"code": "not_found", "message": "no route for GET /nope", "details": {}}))]
pub struct ErrorBody {
    /// Stable, documented machine-readable code (`not_found`, `validation_failed`, ...).
    pub code: Cow<'static, str>,
    /// Human-readable explanation. Never contains internal details.
    pub message: Cow<'static, str>,
    /// Structured context: which field, which limit. `{}` when there is none.
    #[schema(value_type = Object)]
    pub details: Value,
}

/// What an error response was, kept in its extensions so `/auth/v1` can re-render it in
/// GoTrue's format.
#[derive(Debug, Clone)]
pub struct ErrorParts {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub message: Cow<'static, str>,
    pub retry_after: Option<u64>,
}

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    /// `WWW-Authenticate` to send with a 401.
    www_authenticate: Option<&'static str>,
    /// `Retry-After` seconds.
    retry_after: Option<u32>,
}

impl ApiError {
    /// An error with no details.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            body: ErrorBody {
                code: code.into(),
                message: message.into(),
                details: json!({}),
            },
            www_authenticate: None,
            retry_after: None,
        }
    }

    /// Adds structured details.
    #[must_use]
    pub fn with_details(mut self, details: Value) -> Self {
        self.body.details = details;
        self
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.body.code
    }

    /// 404 for a path no route serves.
    pub fn route_not_found(method: &axum::http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {method} {path}"),
        )
    }

    /// 405 for a known path with the wrong method.
    pub fn method_not_allowed(method: &axum::http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {path}"),
        )
    }

    /// 400/422 for input that does not pass validation.
    pub fn validation(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(status, "validation_failed", message)
    }

    /// 401 for a missing or unusable bearer token, with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        let mut err = Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
        err.www_authenticate = Some("Bearer error=\"invalid_token\"");
        err
    }

    /// 401 when no bearer token was sent at all.
    pub fn missing_bearer() -> Self {
        let mut err = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a bearer access token is required",
        );
        err.www_authenticate = Some("Bearer");
        err
    }

    /// 413 for a body over the configured limit.
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is too large",
        )
    }

    /// 503 from `/ready`.
    pub fn not_ready() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the database is not answering",
        )
        .with_details(json!({"database": "unavailable"}))
    }

    /// 500 that says nothing about the inside. Log the cause before building it.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal server error",
        )
    }
}

impl From<gatehouse_core::Error> for ApiError {
    fn from(err: gatehouse_core::Error) -> Self {
        use gatehouse_core::Error as E;
        match err {
            E::Validation { message, details } => {
                Self::validation(StatusCode::UNPROCESSABLE_ENTITY, message).with_details(details)
            }
            E::WeakPassword { reasons } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "weak_password",
                "the password does not meet the password policy",
            )
            .with_details(json!({ "reasons": reasons })),
            E::UserAlreadyExists { field } => Self::new(
                StatusCode::CONFLICT,
                "user_already_exists",
                format!("a user with this {field} already exists"),
            )
            .with_details(json!({ "field": field })),
            E::InvalidCredentials => Self::new(
                StatusCode::UNAUTHORIZED,
                "auth_invalid_credentials",
                "invalid email, username or password",
            ),
            E::CurrentPasswordInvalid => Self::new(
                StatusCode::BAD_REQUEST,
                "current_password_invalid",
                "the current password is not correct",
            ),
            E::ReauthenticationNeeded => Self::new(
                StatusCode::UNAUTHORIZED,
                "reauthentication_needed",
                "this change needs the current password, or a sign-in within the reauthentication window",
            ),
            E::Unauthorized(message) => Self::unauthorized(message),
            E::SessionEnded => Self::unauthorized("the session has ended"),
            E::AccountLocked => Self::new(
                StatusCode::FORBIDDEN,
                "account_locked",
                "the account is locked after too many failed sign-ins; an admin can unlock it",
            ),
            E::UserBanned => Self::new(
                StatusCode::UNAUTHORIZED,
                "user_banned",
                "the account is banned",
            ),
            E::EmailNotConfirmed => Self::new(
                StatusCode::FORBIDDEN,
                "email_not_confirmed",
                "confirm the email address first",
            ),
            E::UserInactive => Self::new(
                StatusCode::UNAUTHORIZED,
                "user_inactive",
                "the account is deactivated or deleted",
            ),
            E::RefreshTokenInvalid => Self::new(
                StatusCode::UNAUTHORIZED,
                "refresh_token_invalid",
                "the refresh token is missing, invalid or expired; sign in again",
            ),
            E::RefreshTokenReused => Self::new(
                StatusCode::UNAUTHORIZED,
                "refresh_token_reused",
                "the refresh token was already used; the session has been ended; sign in again",
            ),
            E::CsrfFailed(message) => Self::new(StatusCode::FORBIDDEN, "csrf_failed", message),
            E::RateLimited { retry_after } => {
                let mut err = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many requests; retry later",
                )
                .with_details(json!({ "retryAfter": retry_after }));
                err.retry_after = Some(u32::try_from(retry_after).unwrap_or(u32::MAX));
                err
            }
            E::Overloaded => {
                let mut err = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    "too many sign-ins in progress; retry shortly",
                );
                err.retry_after = Some(1);
                err
            }
            E::InvalidQuery { message, details } => {
                Self::validation(StatusCode::BAD_REQUEST, message).with_details(details)
            }
            E::Forbidden(message) => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
            E::Conflict { code, message } => Self::new(StatusCode::CONFLICT, code, message),
            E::NotFound => Self::new(StatusCode::NOT_FOUND, "not_found", "not found"),
            E::Config(message) => {
                tracing::error!(error = %message, "configuration error");
                Self::internal()
            }
            E::Unavailable(cause) => {
                tracing::warn!(error = %cause, "dependency unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "service temporarily unavailable",
                )
            }
            E::UpstreamUnavailable(reason) => {
                tracing::warn!(reason, "identity provider unavailable");
                let mut err = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "upstream_unavailable",
                    "the identity provider is unavailable; retry shortly",
                );
                err.retry_after = Some(5);
                err
            }
            E::OtpInvalid => Self::new(
                StatusCode::BAD_REQUEST,
                "otp_invalid",
                "the code or link is invalid or has expired; ask for a new one",
            ),
            E::EmailRateLimited { retry_after } => {
                let mut err = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "email_rate_limited",
                    "too many emails to this address; retry later",
                )
                .with_details(json!({ "retryAfter": retry_after }));
                err.retry_after = Some(u32::try_from(retry_after).unwrap_or(u32::MAX));
                err
            }
            E::MailNotConfigured => Self::new(
                StatusCode::NOT_FOUND,
                "mail_not_configured",
                "this server sends no mail, so this flow is off (set GATEHOUSE_SMTP_URL)",
            ),
            E::EmailExists => Self::new(
                StatusCode::CONFLICT,
                "email_exists",
                "an account with this email address exists",
            ),
            E::ReauthenticationInvalid => Self::new(
                StatusCode::BAD_REQUEST,
                "reauthentication_invalid",
                "the reauthentication code is invalid or has expired",
            ),
            E::FlowStateNotFound => Self::new(
                StatusCode::NOT_FOUND,
                "flow_state_not_found",
                "no flow for this code",
            ),
            E::FlowStateExpired => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "flow_state_expired",
                "the flow has expired; start again",
            ),
            E::BadCodeVerifier => Self::new(
                StatusCode::BAD_REQUEST,
                "bad_code_verifier",
                "the code verifier does not match the challenge",
            ),
            E::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                Self::internal()
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::validation(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a body with Content-Type: application/json",
            ),
            JsonRejection::JsonSyntaxError(err) => {
                Self::validation(StatusCode::BAD_REQUEST, "the body is not valid JSON")
                    .with_details(json!({"reason": err.body_text()}))
            }
            JsonRejection::JsonDataError(err) => Self::validation(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the body does not match the expected shape",
            )
            .with_details(json!({"reason": err.body_text()})),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::payload_too_large(),
            other => Self::validation(StatusCode::BAD_REQUEST, "the body could not be read")
                .with_details(json!({"reason": other.body_text()})),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::validation(StatusCode::BAD_REQUEST, "invalid query string")
            .with_details(json!({"reason": rejection.body_text()}))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::validation(StatusCode::BAD_REQUEST, "invalid path parameter")
            .with_details(json!({"reason": rejection.body_text()}))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let parts = ErrorParts {
            status: self.status,
            code: self.body.code.clone(),
            message: self.body.message.clone(),
            retry_after: self.retry_after.map(u64::from),
        };
        let mut response = (self.status, axum::Json(self.body)).into_response();
        response.extensions_mut().insert(parts);
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(value) = self.www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(err: ApiError) -> (StatusCode, Value) {
        let response = err.into_response();
        let status = response.status();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn errors_answer_with_code_message_and_details() {
        let (status, body) = body_of(ApiError::payload_too_large()).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            body,
            json!({"code": "payload_too_large", "message": "request body is too large", "details": {}})
        );
    }

    #[tokio::test]
    async fn internal_errors_reveal_nothing_of_their_cause() {
        let err = gatehouse_core::Error::Internal("password column is corrupt at row 42".into());
        let (status, body) = body_of(ApiError::from(err)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["code"], "internal_error");
        assert!(!body.to_string().contains("row 42"));
    }

    #[tokio::test]
    async fn each_core_error_has_its_status_and_code() {
        use gatehouse_core::Error as E;
        let cases: Vec<(E, u16, &str)> = vec![
            (E::invalid("email", "is required"), 422, "validation_failed"),
            (
                E::WeakPassword {
                    reasons: vec!["length"],
                },
                422,
                "weak_password",
            ),
            (
                E::UserAlreadyExists { field: "email" },
                409,
                "user_already_exists",
            ),
            (E::InvalidCredentials, 401, "auth_invalid_credentials"),
            (E::CurrentPasswordInvalid, 400, "current_password_invalid"),
            (E::Unauthorized("x"), 401, "unauthorized"),
            (E::ReauthenticationNeeded, 401, "reauthentication_needed"),
            (E::UserInactive, 401, "user_inactive"),
            (E::SessionEnded, 401, "unauthorized"),
            (E::AccountLocked, 403, "account_locked"),
            (E::UserBanned, 401, "user_banned"),
            (E::RefreshTokenInvalid, 401, "refresh_token_invalid"),
            (E::RefreshTokenReused, 401, "refresh_token_reused"),
            (E::CsrfFailed("x"), 403, "csrf_failed"),
            (E::Overloaded, 503, "overloaded"),
            (E::RateLimited { retry_after: 7 }, 429, "rate_limited"),
            (E::NotFound, 404, "not_found"),
            (
                E::Config("secret-config-detail".into()),
                500,
                "internal_error",
            ),
        ];
        for (err, status, code) in cases {
            let api = ApiError::from(err);
            let response = api.into_response();
            assert_eq!(response.status().as_u16(), status, "{code}");
            if status == 401 && code == "unauthorized" {
                assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
            }
            if code == "overloaded" {
                assert_eq!(response.headers()[header::RETRY_AFTER], "1");
            }
            let bytes = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(body["code"], code);
            assert!(!body.to_string().contains("secret-config-detail"));
        }
    }

    #[tokio::test]
    async fn weak_passwords_list_their_reasons() {
        let (_, body) = body_of(ApiError::from(gatehouse_core::Error::WeakPassword {
            reasons: vec!["length", "pwned"],
        }))
        .await;
        assert_eq!(body["details"]["reasons"], json!(["length", "pwned"]));
    }

    #[tokio::test]
    async fn an_unavailable_dependency_is_a_503() {
        let err = gatehouse_core::Error::Unavailable("connection refused to db.internal".into());
        let (status, body) = body_of(ApiError::from(err)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["code"], "unavailable");
        assert!(!body.to_string().contains("db.internal"));
    }
}
