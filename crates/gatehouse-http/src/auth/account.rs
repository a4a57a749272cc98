//! Sign-up and the signed-in user's own account.

use axum::extract::State;
use axum::http::StatusCode;
use gatehouse_core::mail::SignedUp;
use gatehouse_core::{OwnChange, ProfileChange, SignUp};
use secrecy::SecretString;

use super::dto::{MePatchRequest, PasswordRequest, PasswordResponse, SignupRequest, UserResponse};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Authenticated, ClientMeta, Json};
use crate::AppState;

/// Create an account: the user and its profile, in one transaction. Does not sign in.
/// With a mailer (and no autoconfirm), the address must be confirmed before the first
/// sign-in (a code and a link are mailed), and a taken address answers 201 like a new
/// one while its owner is mailed instead.
#[utoipa::path(
    post, path = "/auth/signup", tag = "auth", request_body = SignupRequest,
    responses(
        (status = 201, description = "Created", body = UserResponse),
        (status = 409, description = "The email or username is taken", body = ErrorBody,
            example = json!({"code": "user_already_exists", "message": "a user with this email already exists", "details": {"field": "email"}})),
        (status = 422, description = "Invalid field or weak password", body = ErrorBody,
            example = json!({"code": "weak_password", "message": "the password does not meet the password policy", "details": {"reasons": ["length", "characters"]}})),
        (status = 503, description = "Too many sign-ups in progress", body = ErrorBody),
    )
)]
pub async fn signup(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body, _): Json<SignupRequest>,
) -> Result<(StatusCode, axum::Json<UserResponse>), ApiError> {
    let input = SignUp {
        email: body.email,
        password: SecretString::from(body.password),
        username: body.username,
        display_name: body.profile.and_then(|p| p.display_name),
        user_metadata: None,
    };
    let accounts = &state.gatehouse.accounts;
    let user = if accounts.confirms_sign_ups() {
        // With confirmation on, a taken address answers like a new one (no enumeration).
        match accounts
            .sign_up_confirming(input, None, None, &meta)
            .await?
        {
            SignedUp::Pending(user) | SignedUp::Obfuscated(user) => *user,
            SignedUp::Session(grant) => grant.user,
        }
    } else {
        accounts.sign_up(input, &meta).await?
    };
    Ok((
        StatusCode::CREATED,
        axum::Json(UserResponse { user: user.into() }),
    ))
}

/// The signed-in user, read from the database: a deactivated or deleted user gets 401
/// `user_inactive` even with an unexpired token.
#[utoipa::path(
    get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = UserResponse),
        (status = 401, description = "No or invalid token, ended session, or inactive user", body = ErrorBody,
            example = json!({"code": "unauthorized", "message": "a bearer access token is required", "details": {}})),
    )
)]
pub async fn me(Authenticated(principal): Authenticated) -> axum::Json<UserResponse> {
    axum::Json(UserResponse {
        user: principal.user.into(),
    })
}

/// Update the signed-in user's profile (display name, avatar URL) and user metadata.
#[utoipa::path(
    patch, path = "/auth/me", tag = "auth", security(("bearer" = [])), request_body = MePatchRequest,
    responses(
        (status = 200, description = "The updated user", body = UserResponse),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody,
            example = json!({"code": "validation_failed", "message": "displayName: must be at most 100 characters", "details": {"field": "displayName", "reason": "must be at most 100 characters"}})),
    )
)]
pub async fn update_me(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Json(body, _): Json<MePatchRequest>,
) -> Result<axum::Json<UserResponse>, ApiError> {
    let profile = body.profile.unwrap_or_default();
    let change = ProfileChange {
        display_name: profile.display_name,
        avatar_url: profile.avatar_url,
        user_metadata: body.user_metadata,
    };
    let user = state
        .gatehouse
        .accounts
        .update_profile(&principal, change)
        .await?;
    Ok(axum::Json(UserResponse { user: user.into() }))
}

/// Change the password; every other session ends. It needs a proof that the caller is the
/// owner and not just the holder of a stolen access token: the current password, or a
/// sign-in within `GATEHOUSE_REAUTH_WINDOW` (refreshes do not count).
#[utoipa::path(
    post, path = "/auth/password", tag = "auth", security(("bearer" = [])), request_body = PasswordRequest,
    responses(
        (status = 200, description = "Changed", body = PasswordResponse, example = json!({"ok": true, "sessionsEnded": 2})),
        (status = 400, description = "The current password is wrong", body = ErrorBody,
            example = json!({"code": "current_password_invalid", "message": "the current password is not correct", "details": {}})),
        (status = 401, description = "No or invalid token; or no current password and the sign-in is older than the reauthentication window", body = ErrorBody,
            example = json!({"code": "reauthentication_needed", "message": "this change needs the current password, or a sign-in within the reauthentication window", "details": {}})),
        (status = 422, description = "The new password is weak", body = ErrorBody),
    )
)]
pub async fn change_password(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ClientMeta(meta): ClientMeta,
    Json(body, _): Json<PasswordRequest>,
) -> Result<axum::Json<PasswordResponse>, ApiError> {
    let own = OwnChange {
        password: Some(SecretString::from(body.new_password)),
        current_password: body.current_password.map(SecretString::from),
        ..OwnChange::default()
    };
    let changed = state
        .gatehouse
        .accounts
        .update_own(&principal, own, "app", &meta)
        .await?;
    Ok(axum::Json(PasswordResponse {
        ok: true,
        sessions_ended: changed.sessions_ended,
    }))
}
