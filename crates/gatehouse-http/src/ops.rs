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
    /// With a mailer (on `/ready`): messages waiting in the outbox, and those given up on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail_outbox: Option<OutboxDepth>,
}

/// The mail outbox's depth.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxDepth {
    /// Waiting for a first or another attempt.
    pub pending: i64,
    /// Given up on (a permanent refusal, or the last attempt failed); kept for inspection.
    pub failed: i64,
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
    Json(Status {
        status: "ok",
        mail_outbox: None,
    })
}

/// Readiness: the database answers. Load balancers stop sending traffic on a 503.
#[utoipa::path(
    get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "The database answers (with a mailer, the outbox's depth too)", body = Status, example = json!({"status": "ok", "mail_outbox": {"pending": 0, "failed": 0}})),
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
    let mail_outbox = match state.gatehouse.mail.enabled() {
        true => {
            let depth = state.gatehouse.mail.outbox_depth().await.map_err(|err| {
                tracing::warn!(error = %err, "readiness check failed");
                ApiError::not_ready()
            })?;
            Some(OutboxDepth {
                pending: depth.pending,
                failed: depth.failed,
            })
        }
        false => None,
    };
    Ok(Json(Status {
        status: "ok",
        mail_outbox,
    }))
}
