//! The user side of `/auth/v1`: sign-up, the token grants, the user, sign-out, settings.

use axum::extract::State;
use axum::http::StatusCode;
use gatehouse_core::mail::SignedUp;
use gatehouse_core::{Error, Identifier, SignIn, SignUp};
use gatehouse_core::{OwnChange, SignOutScope};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::dto::{Health, Session, Settings, User};
use super::{GoTrue, GoTrueError, UserJwt};
use crate::extract::{ClientMeta, Json};
use crate::AppState;

/// `POST /signup`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "quartz-Lantern-47", "data": {"name": "Ada"}}))]
pub struct SignupBody {
    pub email: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub phone: Option<String>,
    pub password: Option<String>,
    /// Becomes `user_metadata`.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

impl SignupBody {
    /// The core's sign-up: an email and a password (no phone, no anonymous users).
    fn into_sign_up(self) -> Result<SignUp, GoTrueError> {
        let Some(email) = self.email.filter(|e| !e.trim().is_empty()) else {
            return Err(if self.phone.is_some() {
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
        let password = self.password.ok_or_else(|| {
            GoTrueError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "Signup requires a valid password",
            )
        })?;
        Ok(SignUp {
            email,
            password: SecretString::from(password),
            username: None,
            display_name: None,
            user_metadata: self.data.filter(|d| !d.is_null()),
        })
    }
}

/// Sign up (supabase-js `signUp`). Without a mailer (or with autoconfirm) gatehouse
/// confirms at once, so a session comes back, and a registered email is 422
/// `user_already_exists`. With a mailer, the user comes back with no session and a
/// confirmation is mailed; a registered email answers the same (a stand-in user with
/// `identities: []`) and its owner is mailed instead.
#[utoipa::path(
    operation_id = "supabase_signup", post, path = "/signup", tag = "supabase", params(super::mail::RedirectParams), request_body = SignupBody,
    responses(
        (status = 200, description = "A session (auto-confirmed), or the user (confirmation mailed)", body = SignupAnswer),
        (status = 400, description = "validation_failed or bad_json"),
        (status = 422, description = "user_already_exists, weak_password (with weak_password.reasons), anonymous_provider_disabled"),
    )
)]
pub async fn signup(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    query: axum::extract::Query<super::mail::RedirectParams>,
    Json(body, _): Json<SignupBody, GoTrue>,
) -> Result<axum::response::Response, GoTrueError> {
    use axum::response::IntoResponse;
    let pkce = gatehouse_core::mail::pkce::Pkce::from_request(
        body.code_challenge.as_deref(),
        body.code_challenge_method.as_deref(),
    )?;
    let input = body.into_sign_up()?;
    let signed_up = state
        .gatehouse
        .accounts
        .sign_up_confirming(input, query.redirect_to.as_deref(), pkce, &meta)
        .await?;
    Ok(axum::Json(match signed_up {
        SignedUp::Session(grant) => SignupAnswer::Session(Session::of(&grant)),
        SignedUp::Pending(user) => SignupAnswer::User(User::from(&*user)),
        SignedUp::Obfuscated(user) => SignupAnswer::User(User::obfuscated(&user)),
    })
    .into_response())
}

/// What a sign-up answers: a session when confirmed at once, else the user.
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(untagged)]
pub enum SignupAnswer {
    Session(Session),
    User(User),
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
    /// The PKCE grant's auth code (the `?code=` of the verified link).
    pub auth_code: Option<String>,
    /// The PKCE grant's verifier.
    pub code_verifier: Option<String>,
}

/// A grant of `POST /token`, ready for the core.
enum Grant {
    Password(SignIn),
    RefreshToken(SecretString),
    Pkce { auth_code: String, verifier: String },
}

impl TokenBody {
    /// The grant `grant_type` names, from this body.
    fn into_grant(self, grant_type: Option<&str>) -> Result<Grant, GoTrueError> {
        match grant_type {
            Some("password") => {
                let (Some(email), Some(password)) =
                    (self.email.filter(|e| !e.is_empty()), self.password)
                else {
                    return Err(GoTrueError::at_token(if self.phone.is_some() {
                        Error::InvalidCredentials
                    } else {
                        Error::invalid("email", "an email and a password are required")
                    }));
                };
                Ok(Grant::Password(SignIn {
                    identifier: Identifier::Email(email),
                    password: SecretString::from(password),
                    // No cookies here: a known source is what can vouch for these clients.
                    device_cookie: None,
                    remember_device: false,
                }))
            }
            Some("refresh_token") => self
                .refresh_token
                .filter(|t| !t.is_empty())
                .map(|t| Grant::RefreshToken(SecretString::from(t)))
                .ok_or_else(|| {
                    GoTrueError::at_token(Error::invalid("refresh_token", "is required"))
                }),
            Some("pkce") => match (self.auth_code, self.code_verifier) {
                (Some(auth_code), Some(verifier))
                    if !auth_code.is_empty() && !verifier.is_empty() =>
                {
                    Ok(Grant::Pkce {
                        auth_code,
                        verifier,
                    })
                }
                _ => Err(GoTrueError::at_token(Error::invalid(
                    "auth_code",
                    "invalid request: both auth code and code verifier should be non-empty",
                ))),
            },
            _ => Err(GoTrueError {
                oauth: true,
                ..GoTrueError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_credentials",
                    "unsupported_grant_type",
                )
            }),
        }
    }
}

/// Sign in with a password, or refresh a session (supabase-js `signInWithPassword`,
/// `refreshSession`). Every refresh rotates the refresh token; a rotated one presented
/// again within the reuse interval returns the same successor, later it revokes the
/// session (400 `refresh_token_already_used`).
#[utoipa::path(
    operation_id = "supabase_token", post, path = "/token", tag = "supabase", params(GrantParams), request_body = TokenBody,
    responses(
        (status = 200, description = "A session; `weak_password: null` on the password grant", body = Session),
        (status = 400, description = "invalid_credentials, refresh_token_not_found, refresh_token_already_used, validation_failed, user_banned"),
    )
)]
pub async fn token(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    query: axum::extract::Query<GrantParams>,
    Json(body, _): Json<TokenBody, GoTrue>,
) -> Result<axum::Json<Session>, GoTrueError> {
    let (granted, password_grant) = match body.into_grant(query.grant_type.as_deref())? {
        Grant::Password(input) => (state.gatehouse.accounts.sign_in(input, &meta).await, true),
        Grant::RefreshToken(token) => {
            (state.gatehouse.sessions.refresh(&token, &meta).await, false)
        }
        Grant::Pkce {
            auth_code,
            verifier,
        } => (
            state
                .gatehouse
                .mail
                .exchange_code(&auth_code, &verifier, &meta)
                .await,
            false,
        ),
    };
    let grant = granted.map_err(GoTrueError::at_token)?;
    Ok(axum::Json(match password_grant {
        true => Session::of_password_grant(&grant),
        false => Session::of(&grant),
    }))
}

/// The signed-in user (supabase-js `getUser`), read from the database.
#[utoipa::path(
    operation_id = "supabase_get_user", get, path = "/user", tag = "supabase", security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 401, description = "no_authorization"),
        (status = 403, description = "bad_jwt, session_not_found, user_not_found, user_banned"),
    )
)]
pub async fn get_user(UserJwt(principal): UserJwt) -> axum::Json<User> {
    axum::Json(User::from(&principal.user))
}

/// `PUT /user`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"data": {"theme": "dark"}}))]
pub struct UpdateUserBody {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub password: Option<String>,
    pub current_password: Option<String>,
    /// The code `GET /reauthenticate` mailed: proves the owner for a password change.
    pub nonce: Option<String>,
    /// Shallow-merged into `user_metadata`; a `null` value removes the key.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

impl UpdateUserBody {
    /// The core's own-account change, `data` merged into `current` as GoTrue merges it; a
    /// phone is refused (gatehouse has no phone logins).
    fn into_own_change(
        self,
        current: &Value,
        redirect_to: Option<String>,
    ) -> Result<OwnChange, GoTrueError> {
        if self.phone.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(GoTrueError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "phone_provider_disabled",
                "Phone logins are disabled",
            ));
        }
        Ok(OwnChange {
            email: self.email.filter(|e| !e.is_empty()),
            password: self.password.map(SecretString::from),
            current_password: self.current_password.map(SecretString::from),
            nonce: self.nonce.filter(|n| !n.is_empty()).map(SecretString::from),
            redirect_to,
            user_metadata: self
                .data
                .filter(|d| !d.is_null())
                .map(|data| super::parse::merge_metadata(current, &data)),
        })
    }
}

/// Update the signed-in user (supabase-js `updateUser`): email, password (ends every
/// other session), metadata. A new email changes at once without a mailer; with one, it
/// waits in `new_email` until both the current and the new address confirm it (GoTrue's
/// secure email change). A new password or email needs `current_password`, the `nonce`
/// `GET /reauthenticate` mailed, or a sign-in (or redeemed code or link) within
/// `GATEHOUSE_REAUTH_WINDOW` (GoTrue's secure password change, stricter: the email too).
#[utoipa::path(
    operation_id = "supabase_update_user", put, path = "/user", tag = "supabase", security(("bearer" = [])), params(super::mail::RedirectParams), request_body = UpdateUserBody,
    responses(
        (status = 200, description = "The updated user", body = User),
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
    query: axum::extract::Query<super::mail::RedirectParams>,
    Json(body, _): Json<UpdateUserBody, GoTrue>,
) -> Result<axum::Json<User>, GoTrueError> {
    let own = body.into_own_change(&principal.user.user_metadata.0, query.0.redirect_to)?;
    let changed = state
        .gatehouse
        .accounts
        .update_own(&principal, own, "supabase", &meta)
        .await
        .map_err(GoTrueError::at_admin)?;
    let mut user = User::from(&changed.user);
    user.new_email = changed.email_change_pending;
    Ok(axum::Json(user))
}

/// `?scope=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogoutParams {
    /// `global` (default), `local` or `others`.
    pub scope: Option<String>,
}

impl LogoutParams {
    fn scope(&self) -> Result<SignOutScope, GoTrueError> {
        match self.scope.as_deref() {
            None | Some("") | Some("global") => Ok(SignOutScope::Global),
            Some("local") => Ok(SignOutScope::Local),
            Some("others") => Ok(SignOutScope::Others),
            Some(other) => Err(GoTrueError::new(
                StatusCode::BAD_REQUEST,
                "validation_failed",
                format!("Unsupported logout scope {other:?}"),
            )),
        }
    }
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
    let scope = query.scope()?;
    state
        .gatehouse
        .sessions
        .sign_out(&principal, scope, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What this server supports (supabase-js reads it for the UI).
#[utoipa::path(
    operation_id = "supabase_settings", get, path = "/settings", tag = "supabase",
    responses((status = 200, description = "Settings", body = Settings))
)]
pub async fn settings(State(state): State<AppState>) -> axum::Json<Settings> {
    axum::Json(Settings::current(
        !state.gatehouse.accounts.confirms_sign_ups(),
    ))
}

/// GoTrue's health document.
#[utoipa::path(
    operation_id = "supabase_health", get, path = "/health", tag = "supabase",
    responses((status = 200, description = "Up", body = Health))
)]
pub async fn health() -> axum::Json<Health> {
    axum::Json(Health::current())
}
