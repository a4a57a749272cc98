//! Operations: liveness and readiness, for load balancers and operators.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// `{"status":"ok"}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Status {
    /// Always `ok` when the answer is a 200.
    pub status: &'static str,
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
}

/// Liveness: the process is up and serving. Touches nothing else.
#[utoipa::path(
    get, path = "/health", tag = "operations",
    responses((status = 200, description = "The server is up", body = Status, example = json!({"status": "ok"})))
)]
pub async fn health() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: the database answers. Load balancers stop sending traffic on a 503.
#[utoipa::path(
    get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "The database answers", body = Status, example = json!({"status": "ok"})),
        (status = 503, description = "The database does not answer", body = ErrorBody,
            example = json!({"code": "not_ready", "message": "the database is not answering", "details": {"database": "unavailable"}})),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    state
        .gatehouse
        .check_ready(state.config.ready_timeout)
        .await
        .map_err(|err| {
            tracing::warn!(error = %err, "readiness check failed");
            ApiError::not_ready()
        })?;
    Ok(Json(Status { status: "ok" }))
}
