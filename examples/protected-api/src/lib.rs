//! An example backend in the "the backend only verifies the JWT" pattern: the auth
//! server (Supabase or gatehouse) signs users in and issues access tokens; this service
//! never sees a password, only checks each request's bearer token with
//! [`gatehouse_verify`] and runs its business logic for the user the token names.

use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_verify::{AuthRejection, VerifiedClaims, Verifier, VerifyError};
use serde_json::{json, Value};

/// Where `PROTECTED_API_ADDR` is unset.
pub const DEFAULT_ADDR: &str = "127.0.0.1:3001";

/// The service's configuration, from the environment.
#[derive(Clone)]
pub struct Config {
    /// The `iss` tokens must carry: `<SUPABASE_URL>/auth/v1`, or `JWT_ISSUER`.
    pub issuer: String,
    /// `SUPABASE_JWT_SECRET`: a legacy project's HS256 secret.
    pub jwt_secret: Option<String>,
    pub addr: SocketAddr,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("issuer", &self.issuer)
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("addr", &self.addr)
            .finish()
    }
}

impl Config {
    /// Reads `SUPABASE_URL`, `JWT_ISSUER`, `SUPABASE_JWT_SECRET`, `PROTECTED_API_ADDR`.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`Config::from_env`], with the variables from `var`.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let issuer = match (set("JWT_ISSUER"), set("SUPABASE_URL")) {
            (Some(issuer), _) => issuer,
            (None, Some(base)) => format!("{}/auth/v1", base.trim().trim_end_matches('/')),
            (None, None) => {
                return Err(
                    "set SUPABASE_URL (the project's or gatehouse's base URL, e.g. \
                            https://abcdefgh.supabase.co or http://localhost:8080) or JWT_ISSUER"
                        .into(),
                )
            }
        };
        let addr = set("PROTECTED_API_ADDR").unwrap_or_else(|| DEFAULT_ADDR.to_owned());
        let addr = addr
            .parse()
            .map_err(|e| format!("PROTECTED_API_ADDR {addr:?} is not an address: {e}"))?;
        Ok(Self {
            issuer,
            jwt_secret: set("SUPABASE_JWT_SECRET"),
            addr,
        })
    }

    /// The verifier for this configuration (keys from `<issuer>/.well-known/jwks.json`).
    pub fn verifier(&self) -> Result<Verifier, VerifyError> {
        let mut builder = Verifier::builder(self.issuer.clone());
        if let Some(secret) = &self.jwt_secret {
            builder = builder.hs256_secret(secret.as_bytes());
        }
        builder.build()
    }
}

/// The routes: `GET /health` (public), `GET /api/me` (any signed-in user) and
/// `GET /api/admin/reports` (app role `admin`).
pub fn router(verifier: Verifier) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/me", get(me))
        .route("/api/admin/reports", get(admin_reports))
        .fallback(not_found)
        .with_state(verifier)
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Who the token says the caller is.
async fn me(VerifiedClaims(claims): VerifiedClaims) -> Json<Value> {
    Json(json!({
        "sub": claims.sub,
        "email": claims.email,
        "role": claims.role,
        "app_role": claims.app_role(),
        "session_id": claims.session_id,
        "aal": claims.aal,
    }))
}

/// Business logic only an admin may run.
async fn admin_reports(claims: VerifiedClaims) -> Result<Json<Value>, AuthRejection> {
    claims.require_app_role("admin")?;
    Ok(Json(json!({
        "generated_for": claims.sub,
        "reports": [
            {"name": "signups-by-week", "rows": 0},
            {"name": "active-sessions", "rows": 0},
        ],
    })))
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"code": "not_found", "message": "no such route"})),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn the_issuer_is_the_base_url_with_auth_v1_unless_overridden() {
        let c = config(&[("SUPABASE_URL", "https://abc.supabase.co/")]).unwrap();
        assert_eq!(c.issuer, "https://abc.supabase.co/auth/v1");
        assert_eq!(c.addr.to_string(), DEFAULT_ADDR);
        assert!(c.jwt_secret.is_none());
        let c = config(&[
            ("SUPABASE_URL", "https://abc.supabase.co"),
            ("JWT_ISSUER", "https://auth.example.com/auth/v1"),
            ("PROTECTED_API_ADDR", "0.0.0.0:9000"),
        ])
        .unwrap();
        assert_eq!(c.issuer, "https://auth.example.com/auth/v1");
        assert_eq!(c.addr.to_string(), "0.0.0.0:9000");
        assert!(config(&[]).is_err());
        assert!(config(&[("SUPABASE_URL", "x"), ("PROTECTED_API_ADDR", "nope")]).is_err());
    }

    #[test]
    fn the_secret_enables_hs256_and_stays_out_of_debug_output() {
        let secret = "a-legacy-jwt-secret-of-at-least-32-bytes";
        let c = config(&[
            ("SUPABASE_URL", "https://abc.supabase.co"),
            ("SUPABASE_JWT_SECRET", secret),
        ])
        .unwrap();
        assert!(!format!("{c:?}").contains(secret));
        let verifier = c.verifier().unwrap();
        assert!(!format!("{verifier:?}").contains(secret));
        assert_eq!(
            verifier.jwks_url(),
            "https://abc.supabase.co/auth/v1/.well-known/jwks.json"
        );
    }
}
