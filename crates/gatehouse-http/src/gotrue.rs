//! The Supabase Auth (GoTrue) wire API under `/auth/v1`, so supabase-js and supabase-py run
//! unchanged against gatehouse: the same users, sessions and rules as the app API, in
//! GoTrue's field names, statuses and error format.
//!
//! The surface owns its middleware: it is its own router, nested at [`PREFIX`], with its
//! own answers to an unknown path or a wrong method, and [`negotiate`] around it, so every
//! error under `/auth/v1` is GoTrue's (see [`error`]). Its extractors reject in GoTrue's
//! words through the [`GoTrue`] error format.

pub(crate) mod admin;
pub(crate) mod dto;
pub(crate) mod error;
pub(crate) mod mail;
pub(crate) mod parse;
pub(crate) mod user;

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::Router;
use gatehouse_core::api_keys::ApiRole;
use gatehouse_core::Principal;
use serde::de::DeserializeOwned;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{negotiate, GoTrueError};

use crate::extract::{required_bearer, BodyProblem, ErrorFormat};
use crate::middleware::Guard;
use crate::AppState;

/// Where the surface is mounted; its routes are documented relative to it.
pub(crate) const PREFIX: &str = "/auth/v1";

/// The routes of the surface, relative to [`PREFIX`].
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(user::signup))
        .routes(routes!(user::token))
        .routes(routes!(user::get_user, user::update_user))
        .routes(routes!(user::logout))
        .routes(routes!(user::settings))
        .routes(routes!(user::health))
        .routes(routes!(mail::recover))
        .routes(routes!(mail::otp))
        .routes(routes!(mail::verify_page, mail::verify))
        .routes(routes!(mail::verify_link))
        .routes(routes!(mail::resend))
        .routes(routes!(mail::reauthenticate))
        .routes(routes!(mail::invite))
        .routes(routes!(mail::generate_link))
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(
            admin::get_user,
            admin::update_user,
            admin::delete_user
        ))
        .merge(crate::keys::gotrue_routes())
}

/// The surface as served: `routes` with GoTrue's fallbacks, inside the `guard` every
/// surface has, inside [`negotiate`], so what the guard refuses is GoTrue's too.
pub(crate) fn surface(routes: Router<AppState>, guard: &Guard) -> Router<AppState> {
    let routes = routes
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed);
    guard
        .wrap(routes)
        .layer(axum::middleware::from_fn(negotiate))
}

/// A path under `/auth/v1` that no route serves.
async fn route_not_found(method: Method, OriginalUri(uri): OriginalUri) -> GoTrueError {
    let message = format!("no route for {method} {}", uri.path());
    GoTrueError::new(StatusCode::NOT_FOUND, "not_found", message)
}

/// A route of `/auth/v1` called with a method it does not take.
async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> GoTrueError {
    let message = format!("{method} is not allowed on {}", uri.path());
    GoTrueError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        message,
    )
}

/// GoTrue's error format for the shared extractors: a bad body is 400 `bad_json` (413
/// `request_entity_too_large`), an empty body reads as `{}`, no token is 401
/// `no_authorization`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GoTrue;

impl ErrorFormat for GoTrue {
    type Rejection = GoTrueError;
    const EMPTY_BODY_IS_EMPTY_OBJECT: bool = true;

    fn body_rejection(problem: BodyProblem) -> GoTrueError {
        let (status, code, message) = match problem {
            BodyProblem::NotJson => (
                StatusCode::BAD_REQUEST,
                "bad_json",
                "Content-Type must be application/json",
            ),
            BodyProblem::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_entity_too_large",
                "Request body too large",
            ),
            BodyProblem::Unreadable => (
                StatusCode::BAD_REQUEST,
                "bad_json",
                "Could not read the request body",
            ),
            BodyProblem::TooDeep => (
                StatusCode::BAD_REQUEST,
                "bad_json",
                "The JSON body is nested too deeply",
            ),
        };
        GoTrueError::new(status, code, message)
    }

    fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, GoTrueError> {
        serde_json::from_slice(bytes).map_err(|e| {
            GoTrueError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!("Could not parse request body as JSON: {e}"),
            )
        })
    }

    fn missing_bearer() -> GoTrueError {
        GoTrueError::new(
            StatusCode::UNAUTHORIZED,
            "no_authorization",
            "This endpoint requires a valid Bearer token",
        )
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
        let token = required_bearer::<GoTrue>(parts)?;
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
        let token = required_bearer::<GoTrue>(parts)?;
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
