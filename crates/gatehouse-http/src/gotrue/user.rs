//! The user side of `/auth/v1`: sign-up, the token grants, the user, sign-out, settings.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatehouse_core::supabase::{SelfUpdate, SignOutScope};
use gatehouse_core::{Identifier, SignIn, SignUp};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::dto::{session_json, user_json};
use super::{GoTrue, GoTrueError, UserJwt};
use crate::extract::{ClientMeta, Json};
use crate::AppState;

/// `POST /signup`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "quartz-Lantern-47", "data": {"name": "Ada"}}))]
pub struct SignupBody {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub password: Option<String>,
    /// Becomes `user_metadata`.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

/// Sign up (supabase-js `signUp`). Without a mailer gatehouse confirms at once, so a
/// session comes back. A registered email → 422 `user_already_exists`.
#[utoipa::path(
    operation_id = "supabase_signup", post, path = "/signup", tag = "supabase", request_body = SignupBody,
    responses(
        (status = 200, description = "A session (auto-confirmed)", content_type = "application/json"),
        (status = 400, description = "validation_failed or bad_json"),
        (status = 422, description = "user_already_exists, weak_password (with weak_password.reasons), anonymous_provider_disabled"),
    )
)]
pub async fn signup(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body, _): Json<SignupBody, GoTrue>,
) -> Result<Response, GoTrueError> {
    let Some(email) = body.email.filter(|e| !e.trim().is_empty()) else {
        return Err(if body.phone.is_some() {
            GoTrueError::new(
                StatusCode::BAD_REQUEST,
                "phone_provider_disabled",
                "Phone signups are disabled",
            )
        } else {
            GoTrueError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "anonymous_provider_disabled",
                "Anonymous sign-ins are disabled",
            )
        });
    };
    let password = body.password.ok_or_else(|| {
        GoTrueError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Signup requires a valid password",
        )
    })?;
    let input = SignUp {
        email,
        password: SecretString::from(password),
        username: None,
        display_name: None,
        user_metadata: body.data.filter(|d| !d.is_null()),
    };
    let grant = state.gatehouse.sign_up_and_sign_in(input, &meta).await?;
    Ok(axum::Json(session_json(&grant, false)).into_response())
}

/// `?grant_type=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GrantParams {
    /// `password` or `refresh_token`.
    pub grant_type: Option<String>,
}

/// The body of every grant.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "quartz-Lantern-47"}))]
pub struct TokenBody {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub password: Option<String>,
    pub refresh_token: Option<String>,
}

/// Sign in with a password, or refresh a session (supabase-js `signInWithPassword`,
/// `refreshSession`). Every refresh rotates the refresh token; a rotated one presented
/// again within the reuse interval returns the same successor, later it revokes the
/// session (400 `refresh_token_already_used`).
#[utoipa::path(
    operation_id = "supabase_token", post, path = "/token", tag = "supabase", params(GrantParams), request_body = TokenBody,
    responses(
        (status = 200, description = "A session", content_type = "application/json"),
        (status = 400, description = "invalid_credentials, refresh_token_not_found, refresh_token_already_used, validation_failed, user_banned"),
    )
)]
pub async fn token(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    query: axum::extract::Query<GrantParams>,
    Json(body, _): Json<TokenBody, GoTrue>,
) -> Result<Response, GoTrueError> {
    match query.grant_type.as_deref() {
        Some("password") => {
            let (Some(email), Some(password)) =
                (body.email.filter(|e| !e.is_empty()), body.password)
            else {
                return Err(GoTrueError::at_token(if body.phone.is_some() {
                    gatehouse_core::Error::InvalidCredentials
                } else {
                    gatehouse_core::Error::invalid("email", "an email and a password are required")
                }));
            };
            let input = SignIn {
                identifier: Identifier::Email(email),
                password: SecretString::from(password),
                // No cookies here: a known source is what can vouch for these clients.
                device_cookie: None,
                remember_device: false,
            };
            let grant = state
                .gatehouse
                .sign_in(input, &meta)
                .await
                .map_err(GoTrueError::at_token)?;
            Ok(axum::Json(session_json(&grant, true)).into_response())
        }
        Some("refresh_token") => {
            let token = body
                .refresh_token
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    GoTrueError::at_token(gatehouse_core::Error::invalid(
                        "refresh_token",
                        "is required",
                    ))
                })?;
            let grant = state
                .gatehouse
                .refresh(&SecretString::from(token), &meta)
                .await
                .map_err(GoTrueError::at_token)?;
            Ok(axum::Json(session_json(&grant, false)).into_response())
        }
        _ => {
            let mut err = GoTrueError::new(
                StatusCode::BAD_REQUEST,
                "invalid_credentials",
                "unsupported_grant_type",
            );
            err.oauth = true;
            Err(err)
        }
    }
}

/// The signed-in user (supabase-js `getUser`), read from the database.
#[utoipa::path(
    operation_id = "supabase_get_user", get, path = "/user", tag = "supabase", security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", content_type = "application/json"),
        (status = 401, description = "no_authorization"),
        (status = 403, description = "bad_jwt, session_not_found, user_not_found, user_banned"),
    )
)]
pub async fn get_user(UserJwt(principal): UserJwt) -> Response {
    axum::Json(user_json(&principal.user)).into_response()
}

/// `PUT /user`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"data": {"theme": "dark"}}))]
pub struct UpdateUserBody {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub password: Option<String>,
    pub current_password: Option<String>,
    /// Shallow-merged into `user_metadata`; a `null` value removes the key.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

/// Update the signed-in user (supabase-js `updateUser`): email (changed at once, as with
/// no mailer there is nothing to confirm by), password (ends every other session),
/// metadata. A new password or email needs `current_password`, or a sign-in within
/// `GATEHOUSE_REAUTH_WINDOW` (GoTrue's secure password change, stricter: the email too).
#[utoipa::path(
    operation_id = "supabase_update_user", put, path = "/user", tag = "supabase", security(("bearer" = [])), request_body = UpdateUserBody,
    responses(
        (status = 200, description = "The updated user", content_type = "application/json"),
        (status = 400, description = "reauthentication_needed (no current_password and an old sign-in), current_password_mismatch, validation_failed", content_type = "application/json",
            example = json!({"code": "reauthentication_needed", "message": "Password update requires reauthentication"})),
        (status = 401, description = "no_authorization"), (status = 403, description = "bad_jwt"),
        (status = 422, description = "weak_password, email_exists"),
    )
)]
pub async fn update_user(
    State(state): State<AppState>,
    UserJwt(principal): UserJwt,
    ClientMeta(meta): ClientMeta,
    Json(body, _): Json<UpdateUserBody, GoTrue>,
) -> Result<Response, GoTrueError> {
    if body.phone.as_deref().is_some_and(|p| !p.is_empty()) {
        return Err(GoTrueError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "phone_provider_disabled",
            "Phone logins are disabled",
        ));
    }
    let update = SelfUpdate {
        email: body.email.filter(|e| !e.is_empty()),
        password: body.password.map(SecretString::from),
        current_password: body.current_password.map(SecretString::from),
        data: body.data.filter(|d| !d.is_null()),
    };
    let user = state
        .gatehouse
        .update_self(&principal, update, &meta)
        .await
        .map_err(GoTrueError::at_admin)?;
    Ok(axum::Json(user_json(&user)).into_response())
}

/// `?scope=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogoutParams {
    /// `global` (default), `local` or `others`.
    pub scope: Option<String>,
}

/// Sign out (supabase-js `signOut`): `global` ends every session of the user, `local` this
/// one, `others` all but this one. 204.
#[utoipa::path(
    operation_id = "supabase_logout", post, path = "/logout", tag = "supabase", security(("bearer" = [])), params(LogoutParams),
    responses(
        (status = 204, description = "Signed out"),
        (status = 400, description = "validation_failed: unknown scope"),
        (status = 401, description = "no_authorization"), (status = 403, description = "bad_jwt, session_not_found"),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    UserJwt(principal): UserJwt,
    ClientMeta(meta): ClientMeta,
    query: axum::extract::Query<LogoutParams>,
) -> Result<StatusCode, GoTrueError> {
    let scope = match query.scope.as_deref() {
        None | Some("") | Some("global") => SignOutScope::Global,
        Some("local") => SignOutScope::Local,
        Some("others") => SignOutScope::Others,
        Some(other) => {
            return Err(GoTrueError::new(
                StatusCode::BAD_REQUEST,
                "validation_failed",
                format!("Unsupported logout scope {other:?}"),
            ))
        }
    };
    state.gatehouse.sign_out(&principal, scope, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What this server supports (supabase-js reads it for the UI).
#[utoipa::path(
    operation_id = "supabase_settings", get, path = "/settings", tag = "supabase",
    responses((status = 200, description = "Settings", content_type = "application/json",
        example = json!({"external": {"email": true, "phone": false, "anonymous_users": false}, "disable_signup": false, "mailer_autoconfirm": true, "phone_autoconfirm": false, "sms_provider": "", "saml_enabled": false})))
)]
pub async fn settings() -> axum::Json<Value> {
    let providers = [
        "anonymous_users",
        "apple",
        "azure",
        "bitbucket",
        "discord",
        "facebook",
        "figma",
        "fly",
        "github",
        "gitlab",
        "google",
        "keycloak",
        "kakao",
        "linkedin_oidc",
        "notion",
        "phone",
        "slack_oidc",
        "spotify",
        "twitch",
        "twitter",
        "workos",
        "zoom",
    ];
    let mut external: serde_json::Map<String, Value> = providers
        .iter()
        .map(|p| ((*p).to_owned(), json!(false)))
        .collect();
    external.insert("email".to_owned(), json!(true));
    axum::Json(json!({
        "external": external,
        "disable_signup": false,
        "mailer_autoconfirm": true,
        "phone_autoconfirm": false,
        "sms_provider": "",
        "saml_enabled": false,
        "passkeys_enabled": false,
    }))
}

/// GoTrue's health document.
#[utoipa::path(
    operation_id = "supabase_health", get, path = "/health", tag = "supabase",
    responses((status = 200, description = "Up", content_type = "application/json",
        example = json!({"version": "gatehouse-0.1.0", "name": "GoTrue", "description": "GoTrue is a user registration and authentication API"})))
)]
pub async fn health() -> axum::Json<Value> {
    axum::Json(json!({
        "version": concat!("gatehouse-", env!("CARGO_PKG_VERSION")),
        "name": "GoTrue",
        "description": "GoTrue is a user registration and authentication API",
    }))
}
