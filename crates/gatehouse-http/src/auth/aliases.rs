//! The seeds' spellings of the app API, served as documented aliases so a client written
//! from any seed works: `/auth/register`, `/auth/login`, `/signup`, `/login`, `/me`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::dto::{SigninRequest, SignupRequest, TokenResponse, UserResponse};
use super::{account, session};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Authenticated, ClientMeta, Json};
use crate::AppState;

/// Alias of `POST /auth/signup`.
#[utoipa::path(post, path = "/auth/register", tag = "auth (aliases)", request_body = SignupRequest,
    responses((status = 201, body = UserResponse), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn register(
    state: State<AppState>,
    meta: ClientMeta,
    body: Json<SignupRequest>,
) -> Result<(StatusCode, axum::Json<UserResponse>), ApiError> {
    account::signup(state, meta, body).await
}

/// Alias of `POST /auth/signup`.
#[utoipa::path(post, path = "/signup", tag = "auth (aliases)", request_body = SignupRequest,
    responses((status = 201, body = UserResponse), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn signup_root(
    state: State<AppState>,
    meta: ClientMeta,
    body: Json<SignupRequest>,
) -> Result<(StatusCode, axum::Json<UserResponse>), ApiError> {
    account::signup(state, meta, body).await
}

/// Alias of `POST /auth/signin` (same CSRF requirement, same cookie).
#[utoipa::path(post, path = "/auth/login", tag = "auth (aliases)", request_body = SigninRequest, security(("csrf" = [])),
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn login(
    state: State<AppState>,
    headers: HeaderMap,
    meta: ClientMeta,
    body: Json<SigninRequest>,
) -> Result<Response, ApiError> {
    session::signin(state, headers, meta, body).await
}

/// Alias of `POST /auth/signin` (same CSRF requirement, same cookie).
#[utoipa::path(post, path = "/login", tag = "auth (aliases)", request_body = SigninRequest, security(("csrf" = [])),
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn login_root(
    state: State<AppState>,
    headers: HeaderMap,
    meta: ClientMeta,
    body: Json<SigninRequest>,
) -> Result<Response, ApiError> {
    session::signin(state, headers, meta, body).await
}

/// Alias of `GET /auth/me`.
#[utoipa::path(get, path = "/me", tag = "auth (aliases)", security(("bearer" = [])),
    responses((status = 200, body = UserResponse), (status = 401, body = ErrorBody)))]
pub async fn me_root(principal: Authenticated) -> axum::Json<UserResponse> {
    account::me(principal).await
}
