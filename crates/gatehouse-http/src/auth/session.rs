//! The cookie routes: CSRF token, sign-in, refresh, logout.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gatehouse_core::{Identifier, SessionGrant, SignIn};
use secrecy::SecretString;

use super::cookies;
use super::dto::{CsrfResponse, OkResponse, SigninRequest, TokenResponse};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ClientMeta, Json};
use crate::AppState;

/// The JSON body and the refresh cookie of a new or refreshed session.
pub(crate) fn token_response(state: &AppState, grant: SessionGrant) -> Response {
    let mut headers = HeaderMap::new();
    cookies::set_refresh(&mut headers, state, &grant.refresh_token, grant.refresh_ttl);
    if let Some(device) = &grant.device_cookie {
        let lifetime = state.gatehouse.settings().protection.device_lifetime;
        cookies::set_device(&mut headers, state, device, lifetime);
    }
    let body = TokenResponse {
        access_token: grant.access_token,
        token_type: "bearer",
        expires_in: grant.expires_in,
        user: grant.user.into(),
    };
    (headers, axum::Json(body)).into_response()
}

/// Issue a CSRF token: the body and the `__Host-csrf_token` cookie (`csrf_token` under
/// `GATEHOUSE_INSECURE_COOKIES`) carry the same value, which the cookie routes require back
/// in `X-CSRF-Token`.
#[utoipa::path(
    get, path = "/auth/csrf", tag = "auth",
    responses((status = 200, description = "A token; also set as the __Host-csrf_token cookie (SameSite=Strict, not HttpOnly; csrf_token without Secure under GATEHOUSE_INSECURE_COOKIES)",
        body = CsrfResponse, headers(("set-cookie" = String, description = "__Host-csrf_token=<token>; Path=/; SameSite=Strict; Secure"))))
)]
pub async fn csrf(State(state): State<AppState>) -> Result<Response, ApiError> {
    let token = state.gatehouse.issue_csrf_token()?;
    let mut headers = HeaderMap::new();
    cookies::set_csrf(&mut headers, &state, &token);
    Ok((headers, axum::Json(CsrfResponse { csrf_token: token })).into_response())
}

/// Sign in with an email or a username and a password. Sets the `sb_refresh_token` cookie
/// (HttpOnly, SameSite=Lax, Path=/auth, Secure) and returns a short-lived access token.
/// A wrong password and an unknown user get the same answer. Also sets (rotates) the
/// `__Host-gatehouse_device` cookie: sign-ins that bring it back are not stopped when
/// the account has hit the hard stop of failed sign-ins.
#[utoipa::path(
    post, path = "/auth/signin", tag = "auth", request_body = SigninRequest,
    params(("X-CSRF-Token" = String, Header, description = "The token from GET /auth/csrf, equal to the __Host-csrf_token cookie")),
    security(("csrf" = [])),
    responses(
        (status = 200, description = "Signed in", body = TokenResponse,
            headers(("set-cookie" = String, description = "sb_refresh_token=<opaque>; Path=/auth; HttpOnly; SameSite=Lax; Secure; Max-Age=604800, and __Host-gatehouse_device=<opaque>; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age=31536000"))),
        (status = 401, description = "Wrong credentials, or the account is inactive", body = ErrorBody,
            example = json!({"code": "auth_invalid_credentials", "message": "invalid email, username or password", "details": {}})),
        (status = 403, description = "CSRF token missing or wrong, or a foreign Origin (csrf_failed); the account hit the hard stop and nothing vouches for this attempt (account_locked, alike for right and wrong passwords)", body = ErrorBody,
            example = json!({"code": "csrf_failed", "message": "the X-CSRF-Token header and the CSRF cookie are both required", "details": {}})),
        (status = 422, description = "Malformed body", body = ErrorBody),
        (status = 503, description = "Too many sign-ins in progress", body = ErrorBody),
    )
)]
pub async fn signin(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
    Json(body, _): Json<SigninRequest>,
) -> Result<Response, ApiError> {
    cookies::check_cookie_route(&headers, &state)?;
    let identifier = match (body.email, body.username) {
        (Some(email), None) => Identifier::Email(email),
        (None, Some(username)) => Identifier::Username(username),
        _ => {
            return Err(ApiError::validation(
                StatusCode::UNPROCESSABLE_ENTITY,
                "give either email or username",
            )
            .with_details(serde_json::json!({"field": "email"})))
        }
    };
    let input = SignIn {
        identifier,
        password: SecretString::from(body.password),
        device_cookie: cookies::read(&headers, cookies::device_cookie(&state))
            .map(SecretString::from),
        remember_device: true,
    };
    let grant = state.gatehouse.accounts.sign_in(input, &meta).await?;
    Ok(token_response(&state, grant))
}

/// Exchange the `sb_refresh_token` cookie for a new access token. The cookie rotates on
/// every call; a rotated token presented again within the reuse interval returns the same
/// successor, later it ends the session.
#[utoipa::path(
    post, path = "/auth/refresh", tag = "auth",
    params(("X-CSRF-Token" = String, Header, description = "The token from GET /auth/csrf")),
    security(("refresh_cookie" = [], "csrf" = [])),
    responses(
        (status = 200, description = "A new access token; the cookie is rotated", body = TokenResponse),
        (status = 401, description = "No, unknown, expired or reused refresh token; the cookie is cleared", body = ErrorBody,
            example = json!({"code": "refresh_token_invalid", "message": "the refresh token is missing, invalid or expired; sign in again", "details": {}})),
        (status = 403, description = "CSRF check failed", body = ErrorBody),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
) -> Result<Response, ApiError> {
    cookies::check_cookie_route(&headers, &state)?;
    let Some(token) = cookies::read(&headers, cookies::REFRESH_COOKIE).filter(|t| !t.is_empty())
    else {
        return Err(gatehouse_core::Error::RefreshTokenInvalid.into());
    };
    match state
        .gatehouse
        .sessions
        .refresh(&SecretString::from(token), &meta)
        .await
    {
        Ok(grant) => Ok(token_response(&state, grant)),
        Err(err) => {
            let mut response = ApiError::from(err).into_response();
            cookies::clear_refresh(response.headers_mut(), &state);
            Ok(response)
        }
    }
}

/// End the session of the `sb_refresh_token` cookie and clear the cookie. Idempotent.
#[utoipa::path(
    post, path = "/auth/logout", tag = "auth",
    params(("X-CSRF-Token" = String, Header, description = "The token from GET /auth/csrf")),
    security(("refresh_cookie" = [], "csrf" = [])),
    responses(
        (status = 200, description = "Signed out; the cookie is cleared", body = OkResponse, example = json!({"ok": true})),
        (status = 403, description = "CSRF check failed", body = ErrorBody),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientMeta(meta): ClientMeta,
) -> Result<Response, ApiError> {
    cookies::check_cookie_route(&headers, &state)?;
    let token = cookies::read(&headers, cookies::REFRESH_COOKIE)
        .filter(|t| !t.is_empty())
        .map(SecretString::from);
    state
        .gatehouse
        .sessions
        .logout(token.as_ref(), &meta)
        .await?;
    let mut headers = HeaderMap::new();
    cookies::clear_refresh(&mut headers, &state);
    Ok((headers, axum::Json(OkResponse { ok: true })).into_response())
}
