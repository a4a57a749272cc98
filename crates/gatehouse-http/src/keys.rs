//! Keys for resource servers: the JWKS (also under `/auth/v1/`, where Supabase clients look)
//! and the OpenID discovery document that points at it.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::AppState;

/// Shorter than the 10 minutes a new key is published before it signs, so every cache
/// has it before any token does.
const JWKS_CACHE: &str = "public, max-age=300";

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(jwks))
        .routes(routes!(openid_configuration))
}

/// The JWKS on the GoTrue surface (nested at `/auth/v1`).
pub(crate) fn gotrue_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(jwks_v1))
}

async fn jwks_response(state: &AppState) -> Result<Response, ApiError> {
    let jwks = state.gatehouse.keys.jwks().await?;
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static(JWKS_CACHE))],
        axum::Json(jwks),
    )
        .into_response())
}

/// The public signing keys (JWKS). Only public parts; a key appears before it signs and
/// stays until the last token it signed has expired.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "keys",
    responses((status = 200, description = "JSON Web Key Set", content_type = "application/json",
        example = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "kid": "Qm9vdGVkS2V5MQ", "alg": "ES256", "use": "sig", "key_ops": ["verify"]}]})))
)]
pub async fn jwks(State(state): State<AppState>) -> Result<Response, ApiError> {
    jwks_response(&state).await
}

/// The same JWKS, where Supabase clients (`getClaims`) look for it.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "keys",
    responses((status = 200, description = "JSON Web Key Set", content_type = "application/json"))
)]
pub async fn jwks_v1(State(state): State<AppState>) -> Result<Response, ApiError> {
    jwks_response(&state).await
}

/// Minimal OpenID discovery: the issuer and where its keys are.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenIdConfiguration {
    pub issuer: String,
    pub jwks_uri: String,
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
}

/// OpenID discovery document.
#[utoipa::path(
    get, path = "/.well-known/openid-configuration", tag = "keys",
    responses((status = 200, body = OpenIdConfiguration,
        example = json!({"issuer": "http://localhost:8080/auth/v1", "jwks_uri": "http://localhost:8080/.well-known/jwks.json", "id_token_signing_alg_values_supported": ["ES256"]})))
)]
pub async fn openid_configuration(State(state): State<AppState>) -> Response {
    let settings = state.gatehouse.settings();
    let doc = OpenIdConfiguration {
        issuer: settings.issuer(),
        jwks_uri: format!(
            "{}/.well-known/jwks.json",
            settings.public_url.trim_end_matches('/')
        ),
        id_token_signing_alg_values_supported: vec![settings.jwt_alg.as_str()],
    };
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static(JWKS_CACHE))],
        axum::Json(doc),
    )
        .into_response()
}
