//! The app API's mail flows: forgot and reset a password, confirm an address, sign in by
//! a magic link or a code, unlock an account at the hard stop. Each needs a mailer
//! (`GATEHOUSE_SMTP_URL` or `GATEHOUSE_MAILER`), else 404 `mail_not_configured`. The
//! requests that mail a stranger's address answer 202 whatever the address.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gatehouse_core::mail::{CodeOrLink, LinkType, VerifyOutcome};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cookies;
use super::dto::{OkResponse, TokenResponse};
use super::session::token_response;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ClientMeta, Json};
use crate::AppState;

/// An address to mail.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"email": "ada@example.com"}))]
pub struct EmailRequest {
    pub email: String,
    /// Where the mailed link sends the browser once used (an allowed URL, else the site).
    pub redirect_to: Option<String>,
}

/// A magic-link request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"email": "ada@example.com", "createUser": false}))]
pub struct MagicLinkRequest {
    pub email: String,
    /// Make an account for an unknown address (default false on the app API).
    pub create_user: Option<bool>,
    pub redirect_to: Option<String>,
}

/// A mailed code with its address, or a mailed link's token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"email": "ada@example.com", "code": "123456"}))]
pub struct CodeRequest {
    /// The link's token (the `token` of the mailed link), instead of email and code.
    pub token: Option<String>,
    pub email: Option<String>,
    pub code: Option<String>,
}

/// A password reset.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"email": "ada@example.com", "code": "123456", "newPassword": "orbit-Meadow-93!"}))]
pub struct ResetRequest {
    pub token: Option<String>,
    pub email: Option<String>,
    pub code: Option<String>,
    pub new_password: String,
}

/// Accepted: a message is on its way if the address has an account.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"ok": true}))]
pub struct Accepted {
    pub ok: bool,
}

fn accepted() -> (StatusCode, axum::Json<Accepted>) {
    (StatusCode::ACCEPTED, axum::Json(Accepted { ok: true }))
}

fn presented(
    token: Option<String>,
    email: Option<String>,
    code: Option<String>,
) -> Result<CodeOrLink, ApiError> {
    match (token.filter(|t| !t.is_empty()), email, code) {
        (Some(token), None, None) => Ok(CodeOrLink::Link {
            token: SecretString::from(token),
        }),
        (None, Some(email), Some(code)) => Ok(CodeOrLink::Code {
            email,
            code: SecretString::from(code),
        }),
        _ => Err(ApiError::validation(
            StatusCode::UNPROCESSABLE_ENTITY,
            "give either token, or email and code",
        )
        .with_details(serde_json::json!({"field": "token"}))),
    }
}

/// Ask for a password reset: a mail with a code and a link, if the address has an
/// account. 202 for every address, at the same cost.
#[utoipa::path(
    post, path = "/auth/password/forgot", tag = "auth (mail)", request_body = EmailRequest,
    responses(
        (status = 202, description = "Accepted, whether or not the address has an account", body = Accepted),
        (status = 404, description = "No mailer configured", body = ErrorBody,
            example = json!({"code": "mail_not_configured", "message": "this server sends no mail, so this flow is off (set GATEHOUSE_SMTP_URL)", "details": {}})),
        (status = 422, description = "Not an email address", body = ErrorBody),
        (status = 429, description = "Too many requests from here, or mails to this address", body = ErrorBody,
            example = json!({"code": "email_rate_limited", "message": "too many emails to this address; retry later", "details": {"retryAfter": 360}})),
    )
)]
pub async fn forgot_password(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body, _): Json<EmailRequest>,
) -> Result<impl IntoResponse, ApiError> {
    state
        .gatehouse
        .mail
        .request_recovery(&body.email, body.redirect_to.as_deref(), None, &meta)
        .await?;
    Ok(accepted())
}

/// Set a new password with a mailed recovery code (and its address) or link token. Ends
/// every session of the account; sign in again.
#[utoipa::path(
    post, path = "/auth/password/reset", tag = "auth (mail)", request_body = ResetRequest,
    responses(
        (status = 200, description = "The password is changed and every session ended", body = OkResponse, example = json!({"ok": true})),
        (status = 400, description = "The code or token is wrong, used or expired (five wrong codes void it)", body = ErrorBody,
            example = json!({"code": "otp_invalid", "message": "the code or link is invalid or has expired; ask for a new one", "details": {}})),
        (status = 422, description = "Weak password, or neither token nor email and code", body = ErrorBody),
    )
)]
pub async fn reset_password(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body, _): Json<ResetRequest>,
) -> Result<axum::Json<OkResponse>, ApiError> {
    let presented = presented(body.token, body.email, body.code)?;
    let password = SecretString::from(body.new_password);
    state
        .gatehouse
        .mail
        .reset_password(presented, &password, &meta)
        .await?;
    Ok(axum::Json(OkResponse { ok: true }))
}

/// The outcome of a redeemed confirmation on the app API: signed in (the refresh cookie,
/// as at sign-in), or 202 when an email change waits for its other confirmation.
fn signed_in(state: &AppState, outcome: VerifyOutcome) -> Response {
    match outcome {
        VerifyOutcome::Session { grant, .. } => token_response(state, *grant),
        VerifyOutcome::EmailChangePending { .. } => (
            StatusCode::ACCEPTED,
            axum::Json(serde_json::json!({"ok": true, "pending": "confirm the link sent to the other address"})),
        )
            .into_response(),
        VerifyOutcome::Unlocked { .. } | VerifyOutcome::AuthCode { .. } => {
            axum::Json(OkResponse { ok: true }).into_response()
        }
    }
}

/// Confirm an address with the mailed code (and the address) or link token: a sign-up's
/// or either half of an email change. Signs in, like `POST /auth/signin` (cookie routes
/// need the CSRF token).
#[utoipa::path(
    post, path = "/auth/email/verify", tag = "auth (mail)", request_body = CodeRequest, security(("csrf" = [])),
    responses(
        (status = 200, description = "Confirmed and signed in", body = TokenResponse),
        (status = 202, description = "The first of an email change's two confirmations"),
        (status = 400, description = "The code or token is wrong, used or expired", body = ErrorBody),
        (status = 403, description = "CSRF check failed", body = ErrorBody),
    )
)]
pub async fn verify_email(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
    Json(body, _): Json<CodeRequest>,
) -> Result<Response, ApiError> {
    cookies::check_cookie_route(&headers, &state)?;
    let presented = presented(body.token, body.email, body.code)?;
    let outcome = state
        .gatehouse
        .mail
        .verify(LinkType::Confirmation, presented, false, &meta)
        .await?;
    Ok(signed_in(&state, outcome))
}

/// Mail the sign-up confirmation again, if the address has an unconfirmed account. 202
/// for every address.
#[utoipa::path(
    post, path = "/auth/email/resend", tag = "auth (mail)", request_body = EmailRequest,
    responses(
        (status = 202, description = "Accepted", body = Accepted),
        (status = 429, description = "Too many mails to this address", body = ErrorBody),
    )
)]
pub async fn resend_confirmation(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body, _): Json<EmailRequest>,
) -> Result<impl IntoResponse, ApiError> {
    state
        .gatehouse
        .mail
        .resend(
            LinkType::Signup,
            &body.email,
            body.redirect_to.as_deref(),
            &meta,
        )
        .await?;
    Ok(accepted())
}

/// Mail a sign-in link and code to an account's address. 202 for every address.
#[utoipa::path(
    post, path = "/auth/magic-link", tag = "auth (mail)", request_body = MagicLinkRequest,
    responses(
        (status = 202, description = "Accepted", body = Accepted),
        (status = 429, description = "Too many mails to this address", body = ErrorBody),
    )
)]
pub async fn magic_link(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body, _): Json<MagicLinkRequest>,
) -> Result<impl IntoResponse, ApiError> {
    state
        .gatehouse
        .mail
        .request_magic_link(
            &body.email,
            body.create_user.unwrap_or(false),
            None,
            body.redirect_to.as_deref(),
            None,
            &meta,
        )
        .await?;
    Ok(accepted())
}

/// Sign in with a mailed code (and its address) or a magic link's token. Sets the refresh
/// cookie like `POST /auth/signin` (and needs the CSRF token).
#[utoipa::path(
    post, path = "/auth/otp/verify", tag = "auth (mail)", request_body = CodeRequest, security(("csrf" = [])),
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "The code or token is wrong, used or expired (five wrong codes void it)", body = ErrorBody,
            example = json!({"code": "otp_invalid", "message": "the code or link is invalid or has expired; ask for a new one", "details": {}})),
        (status = 403, description = "CSRF check failed", body = ErrorBody),
    )
)]
pub async fn verify_otp(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
    Json(body, _): Json<CodeRequest>,
) -> Result<Response, ApiError> {
    cookies::check_cookie_route(&headers, &state)?;
    let presented = presented(body.token, body.email, body.code)?;
    let outcome = state
        .gatehouse
        .mail
        .verify(LinkType::Email, presented, false, &meta)
        .await?;
    Ok(signed_in(&state, outcome))
}

/// Ask for an unlock link for an account stopped by too many failed sign-ins. 202 for
/// every address.
#[utoipa::path(
    post, path = "/auth/unlock", tag = "auth (mail)", request_body = EmailRequest,
    responses(
        (status = 202, description = "Accepted", body = Accepted),
        (status = 429, description = "Too many mails to this address", body = ErrorBody),
    )
)]
pub async fn request_unlock(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body, _): Json<EmailRequest>,
) -> Result<impl IntoResponse, ApiError> {
    state
        .gatehouse
        .mail
        .request_unlock(&body.email, &meta)
        .await?;
    Ok(accepted())
}
