//! The admin API: users and the audit trail, for callers whose role is `admin` in the
//! database now (a demoted or deactivated admin loses access at once).

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use gatehouse_core::admin::{Actor, UserListQuery, UserPatch};
use gatehouse_core::store::{AuditQuery, AuditRecord, UserFilter, UserSort};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::dto::{UserBody, UserResponse};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Authenticated, ClientMeta, Json, Path, Query};
use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(set_role))
        .routes(routes!(delete_user_sessions))
        .routes(routes!(unlock_user))
        .routes(routes!(list_audit))
}

/// An RFC 3339 time of a query parameter.
fn parse_query_time(
    param: &'static str,
    raw: &str,
) -> Result<gatehouse_core::store::Timestamp, gatehouse_core::Error> {
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map(gatehouse_core::store::Timestamp::new)
        .map_err(|_| {
            gatehouse_core::Error::invalid_query(
                param,
                "must be an RFC 3339 time, e.g. 2026-11-21T00:00:00Z",
            )
        })
}

/// A caller with the admin role: no token → 401, not an admin → 403 `forbidden`.
#[derive(Debug)]
pub struct Admin(pub Actor);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        match state.gatehouse.admin.require_admin(&principal) {
            Ok(actor) => Ok(Self(actor)),
            Err(err) => {
                crate::extract::audit_refusal(parts, state, Some(principal.user.id), "user token")
                    .await;
                Err(err.into())
            }
        }
    }
}

/// Filters, order and position of a user list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListUsersParams {
    /// 1 to 100, default 20.
    pub limit: Option<i64>,
    /// The `nextCursor` of the previous page (opaque).
    pub cursor: Option<String>,
    /// `user` or `admin`.
    pub role: Option<String>,
    pub is_active: Option<bool>,
    /// Case-insensitive substring of the email or the username.
    pub q: Option<String>,
    /// RFC 3339; created at or after.
    pub created_after: Option<String>,
    /// RFC 3339; created before.
    pub created_before: Option<String>,
    /// `createdAt` (default) or `email`.
    pub sort: Option<String>,
    /// `asc` (default) or `desc`.
    pub order: Option<String>,
    /// `true` adds `total`.
    pub count: Option<bool>,
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"users": [{"id": "0193a0c4-6a5e-7cc0-9d0e-2f1b3c4d5e6f", "email": "ada@example.com", "role": "admin"}], "nextCursor": "eyJzIjoiY3JlYXRlZEF0Ii...", "total": 2}))]
pub struct UsersResponse {
    pub users: Vec<UserBody>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
    /// With `count=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

/// List users: keyset pagination, filters, two sort orders.
#[utoipa::path(
    get, path = "/users", tag = "admin", security(("bearer" = [])), params(ListUsersParams),
    responses(
        (status = 200, body = UsersResponse),
        (status = 400, description = "Malformed cursor or filter", body = ErrorBody,
            example = json!({"code": "validation_failed", "message": "cursor: is not a cursor this list issued", "details": {"param": "cursor", "reason": "is not a cursor this list issued"}})),
        (status = 401, description = "No or invalid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody,
            example = json!({"code": "forbidden", "message": "this needs the admin role", "details": {}})),
    )
)]
pub async fn list_users(
    State(state): State<AppState>,
    _admin: Admin,
    Query(params): Query<ListUsersParams>,
) -> Result<axum::Json<UsersResponse>, ApiError> {
    let sort = match params.sort.as_deref() {
        None | Some("createdAt") => UserSort::CreatedAt,
        Some("email") => UserSort::Email,
        Some(_) => {
            return Err(
                gatehouse_core::Error::invalid_query("sort", "must be createdAt or email").into(),
            )
        }
    };
    let descending = match params.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => {
            return Err(gatehouse_core::Error::invalid_query("order", "must be asc or desc").into())
        }
    };
    let time = |param, raw: Option<String>| raw.map(|r| parse_query_time(param, &r)).transpose();
    let query = UserListQuery {
        limit: params.limit,
        cursor: params.cursor,
        filter: UserFilter {
            role: params.role,
            is_active: params.is_active,
            q: params.q,
            created_after: time("createdAfter", params.created_after)?,
            created_before: time("createdBefore", params.created_before)?,
        },
        sort: Some(sort),
        descending,
        count: params.count.unwrap_or(false),
    };
    let page = state.gatehouse.admin.list_users(query).await?;
    Ok(axum::Json(UsersResponse {
        users: page.users.into_iter().map(UserBody::from).collect(),
        next_cursor: page.next_cursor,
        total: page.total,
    }))
}

/// One user.
#[utoipa::path(
    get, path = "/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, body = UserResponse),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody,
            example = json!({"code": "not_found", "message": "not found", "details": {}})),
    )
)]
pub async fn get_user(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<UserResponse>, ApiError> {
    Ok(axum::Json(UserResponse {
        user: state.gatehouse.admin.get_user(id).await?.into(),
    }))
}

/// `{role}`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"role": "admin"}))]
pub struct RoleRequest {
    /// `user` or `admin`.
    pub role: String,
}

/// Set a user's role. Admins cannot demote themselves; the last active admin cannot be
/// demoted (409).
#[utoipa::path(
    put, path = "/users/{id}/role", tag = "admin", security(("bearer" = [])), request_body = RoleRequest,
    params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, body = UserResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Self-demotion, or the last active admin", body = ErrorBody,
            example = json!({"code": "cannot_modify_self", "message": "admins cannot demote themselves", "details": {}})),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn set_role(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<Uuid>,
    Json(body, _): Json<RoleRequest>,
) -> Result<axum::Json<UserResponse>, ApiError> {
    let user = state
        .gatehouse
        .admin
        .set_role(actor, id, &body.role, &meta)
        .await?;
    Ok(axum::Json(UserResponse { user: user.into() }))
}

/// `null` for `username` clears it; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"isActive": false}))]
pub struct UserPatchRequest {
    pub is_active: Option<bool>,
    pub email: Option<String>,
    #[serde(default, deserialize_with = "crate::auth::dto::nullable")]
    #[schema(value_type = Option<String>)]
    pub username: Option<Option<String>>,
    pub email_confirmed: Option<bool>,
}

/// Change a user's account. Deactivating ends the user's sessions at once; admins cannot
/// deactivate themselves; the last active admin cannot be deactivated (409).
#[utoipa::path(
    patch, path = "/users/{id}", tag = "admin", security(("bearer" = [])), request_body = UserPatchRequest,
    params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, body = UserResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Self-deactivation, the last admin, or a taken email/username", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn update_user(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<Uuid>,
    Json(body, _): Json<UserPatchRequest>,
) -> Result<axum::Json<UserResponse>, ApiError> {
    let patch = user_patch_of(body);
    let user = state
        .gatehouse
        .admin
        .update_user(actor, id, patch, &meta)
        .await?;
    Ok(axum::Json(UserResponse { user: user.into() }))
}

/// The core's view of a patch body.
pub(crate) fn user_patch_of(body: UserPatchRequest) -> UserPatch {
    UserPatch {
        is_active: body.is_active,
        email: body.email,
        username: body.username,
        email_confirmed: body.email_confirmed,
        ..UserPatch::default()
    }
}

/// `?hard=true` removes the rows.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Remove the rows instead of marking the user deleted.
    pub hard: Option<bool>,
}

/// Delete a user: soft by default (marked deleted, sessions ended, email and username free
/// for re-use); `?hard=true` removes the rows. Admins cannot delete themselves; the last
/// active admin cannot be deleted (409).
#[utoipa::path(
    delete, path = "/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id"), DeleteParams),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    )
)]
pub async fn delete_user(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<Uuid>,
    Query(params): Query<DeleteParams>,
) -> Result<StatusCode, ApiError> {
    state
        .gatehouse
        .admin
        .delete_user(actor, id, params.hard.unwrap_or(false), &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many sessions ended.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"sessionsEnded": 2}))]
pub struct SessionsEndedResponse {
    pub sessions_ended: u64,
}

/// End every session of a user.
#[utoipa::path(
    delete, path = "/users/{id}/sessions", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, body = SessionsEndedResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn delete_user_sessions(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<SessionsEndedResponse>, ApiError> {
    let ended = state
        .gatehouse
        .admin
        .end_user_sessions(actor, id, &meta)
        .await?;
    Ok(axum::Json(SessionsEndedResponse {
        sessions_ended: ended,
    }))
}

/// Unlock an account locked by the hard stop of failed sign-ins, and forget its failures.
#[utoipa::path(
    delete, path = "/users/{id}/lock", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, body = UserResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn unlock_user(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<UserResponse>, ApiError> {
    let user = state.gatehouse.admin.unlock_user(actor, id, &meta).await?;
    Ok(axum::Json(UserResponse { user: user.into() }))
}

/// Filters and position of the audit trail.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// 1 to 100, default 20.
    pub limit: Option<i64>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Events about this user (the target).
    pub user: Option<Uuid>,
    /// Events by this user (the actor).
    pub actor: Option<Uuid>,
    /// e.g. `admin.user_role_changed`, `user.signin_failed`.
    pub action: Option<String>,
    /// RFC 3339; at or after.
    pub after: Option<String>,
    /// RFC 3339; before.
    pub before: Option<String>,
}

/// An audit event.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventBody {
    pub id: Uuid,
    pub created_at: String,
    pub action: String,
    pub actor_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// What changed: `{before, after}` for changes, context otherwise.
    #[schema(value_type = Object)]
    pub details: Value,
}

impl From<AuditRecord> for AuditEventBody {
    fn from(e: AuditRecord) -> Self {
        Self {
            id: e.id,
            created_at: e.created_at.to_string(),
            action: e.action,
            actor_id: e.actor_id,
            target_id: e.target_id,
            ip: e.ip,
            user_agent: e.user_agent,
            details: e.details.0,
        }
    }
}

/// A page of audit events, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"events": [{"id": "0193a0c4-6a5e-7cc0-9d0e-2f1b3c4d5e70", "createdAt": "2026-11-21T06:00:00.000000Z", "action": "admin.user_role_changed", "actorId": "0193a0c4-6a5e-7cc0-9d0e-2f1b3c4d5e6f", "targetId": "0193a0c4-6a5e-7cc0-9d0e-2f1b3c4d5e71", "ip": "127.0.0.1", "userAgent": "curl/8.0", "details": {"before": {"role": "user"}, "after": {"role": "admin"}, "via": "api"}}], "nextCursor": null}))]
pub struct AuditResponse {
    pub events: Vec<AuditEventBody>,
    pub next_cursor: Option<String>,
}

/// The audit trail, newest first, keyset-paginated.
#[utoipa::path(
    get, path = "/audit", tag = "admin", security(("bearer" = [])), params(AuditParams),
    responses(
        (status = 200, body = AuditResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn list_audit(
    State(state): State<AppState>,
    _admin: Admin,
    Query(params): Query<AuditParams>,
) -> Result<axum::Json<AuditResponse>, ApiError> {
    let time = |param, raw: Option<String>| raw.map(|r| parse_query_time(param, &r)).transpose();
    let query = AuditQuery {
        actor: params.actor,
        target: params.user,
        action: params.action,
        after: time("after", params.after)?,
        before: time("before", params.before)?,
        cursor: None,
        limit: 0,
    };
    let page = state
        .gatehouse
        .admin
        .list_audit(query, params.limit, params.cursor.as_deref())
        .await?;
    Ok(axum::Json(AuditResponse {
        events: page.events.into_iter().map(AuditEventBody::from).collect(),
        next_cursor: page.next_cursor,
    }))
}
