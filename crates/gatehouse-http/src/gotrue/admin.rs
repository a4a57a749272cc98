//! The Supabase admin API (`supabase.auth.admin.*`), opened only by the service-role key.

use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use gatehouse_core::admin::{Actor, NewAccount};
use gatehouse_core::UserPatch;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::dto::{Empty, User, UserList};
use super::{GoTrue, GoTrueError, ServiceRole};
use crate::extract::{ClientMeta, Json};
use crate::AppState;

const DEFAULT_PER_PAGE: i64 = 50;
const MAX_PER_PAGE: i64 = 1000;

fn path_id(raw: &str) -> Result<Uuid, GoTrueError> {
    Uuid::parse_str(raw)
        .map_err(|_| GoTrueError::new(StatusCode::NOT_FOUND, "user_not_found", "User not found"))
}

/// `?page=&per_page=` (empty means the default, as the clients send it).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// From 1; default 1.
    pub page: Option<String>,
    /// Default 50, at most 1000.
    pub per_page: Option<String>,
}

fn number(
    name: &'static str,
    raw: Option<&str>,
    default: i64,
    max: i64,
) -> Result<i64, GoTrueError> {
    match raw.map(str::trim).filter(|r| !r.is_empty()) {
        None => Ok(default),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                GoTrueError::new(
                    StatusCode::BAD_REQUEST,
                    "validation_failed",
                    format!("Bad pagination parameter {name}"),
                )
            }),
    }
}

impl PageParams {
    /// `(page, per_page)`.
    fn page(&self) -> Result<(i64, i64), GoTrueError> {
        let page = number("page", self.page.as_deref(), 1, i64::from(u32::MAX))?;
        let per_page = number(
            "per_page",
            self.per_page.as_deref(),
            DEFAULT_PER_PAGE,
            MAX_PER_PAGE,
        )?;
        Ok((page, per_page))
    }
}

/// `X-Total-Count` and GoTrue's `Link`: `page` first, `rel="next"` while there is a next
/// page, `rel="last"` always.
fn page_headers(path: &str, page: i64, per_page: i64, total: i64) -> HeaderMap {
    let last = (total + per_page - 1) / per_page;
    let mut link = String::new();
    if last > page {
        link.push_str(&format!(
            "<{path}?page={}&per_page={per_page}>; rel=\"next\", ",
            page + 1
        ));
    }
    link.push_str(&format!(
        "<{path}?page={last}&per_page={per_page}>; rel=\"last\""
    ));
    let mut headers = HeaderMap::new();
    headers.insert("x-total-count", HeaderValue::from(total));
    if let Ok(value) = HeaderValue::from_str(&link) {
        headers.insert(header::LINK, value);
    }
    headers
}

/// List users, newest first (`admin.listUsers`), with `X-Total-Count` and a `Link`
/// header in GoTrue's form: `page` first, `rel="next"` while there is a next page,
/// `rel="last"` always.
#[utoipa::path(
    operation_id = "supabase_admin_list_users", get, path = "/admin/users", tag = "supabase", security(("bearer" = [])), params(PageParams),
    responses(
        (status = 200, description = "{users, aud}", body = UserList,
            headers(("x-total-count" = i64, description = "All users"), ("link" = String, description = "</auth/v1/admin/users?page=2&per_page=50>; rel=\"next\", </auth/v1/admin/users?page=4&per_page=50>; rel=\"last\""))),
        (status = 401, description = "no_authorization"), (status = 403, description = "not_admin, bad_jwt"),
    )
)]
pub async fn list_users(
    State(state): State<AppState>,
    _key: ServiceRole,
    OriginalUri(uri): OriginalUri,
    query: axum::extract::Query<PageParams>,
) -> Result<(HeaderMap, axum::Json<UserList>), GoTrueError> {
    let (page, per_page) = query.page()?;
    let (users, total) = state
        .gatehouse
        .admin
        .list_users_by_page(page, per_page)
        .await?;
    let headers = page_headers(uri.path(), page, per_page, total);
    Ok((headers, axum::Json(UserList::of(&users))))
}

/// `admin.createUser` and `admin.updateUserById`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"email": "grace@example.com", "password": "orbit-Meadow-93!", "email_confirm": true, "user_metadata": {"name": "Grace"}, "app_metadata": {"role": "admin"}}))]
pub struct AdminUserBody {
    pub email: Option<String>,
    pub password: Option<String>,
    pub email_confirm: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub user_metadata: Option<Value>,
    /// `role` here is gatehouse's RBAC role (`user` or `admin`).
    #[schema(value_type = Option<Object>)]
    pub app_metadata: Option<Value>,
    /// A Go duration (`24h`) or `none`.
    pub ban_duration: Option<String>,
}

impl AdminUserBody {
    /// The core's patch for an admin body, against the user as it is: metadata merged as
    /// GoTrue merges it, `app_metadata.role` as the RBAC role, `ban_duration` as an instant.
    /// Every field of the body is checked here or by the core before anything is written.
    pub(crate) fn into_patch(
        self,
        before: &gatehouse_core::store::UserRecord,
        now: OffsetDateTime,
    ) -> Result<UserPatch, gatehouse_core::Error> {
        let app_metadata = self.app_metadata.filter(|m| !m.is_null());
        let role = match app_metadata
            .as_ref()
            .and_then(|m| m.get("role"))
            .and_then(Value::as_str)
        {
            Some(role) if !gatehouse_core::admin::ROLES.contains(&role) => {
                return Err(gatehouse_core::Error::invalid(
                    "app_metadata.role",
                    "must be user or admin",
                ))
            }
            role => role.map(str::to_owned),
        };
        let app_metadata = app_metadata.map(|app| {
            let mut app = app;
            if let Some(map) = app.as_object_mut() {
                map.remove("role");
            }
            super::parse::merge_metadata(&before.app_metadata.0, &app)
        });
        let banned_until = match self.ban_duration.as_deref() {
            None => None,
            Some("none") => Some(None),
            Some(duration) => Some(Some(super::parse::ban_end(now, duration)?)),
        };
        Ok(UserPatch {
            role,
            email: self.email.filter(|e| !e.is_empty()),
            email_confirmed: self.email_confirm,
            user_metadata: self
                .user_metadata
                .filter(|m| !m.is_null())
                .map(|data| super::parse::merge_metadata(&before.user_metadata.0, &data)),
            app_metadata,
            banned_until,
            password: self.password.map(SecretString::from),
            ..UserPatch::default()
        })
    }

    /// The core's new account, its ban included, so that the user is written banned or not
    /// at all.
    fn into_new_account(self, now: OffsetDateTime) -> Result<NewAccount, GoTrueError> {
        let Some(email) = self.email.filter(|e| !e.trim().is_empty()) else {
            return Err(GoTrueError::new(
                StatusCode::BAD_REQUEST,
                "validation_failed",
                "An email address is required (phone users are not supported)",
            ));
        };
        let banned_until = match self.ban_duration.as_deref() {
            Some(ban) if ban != "none" => Some(super::parse::ban_end(now, ban)?),
            _ => None,
        };
        let role = self
            .app_metadata
            .as_ref()
            .and_then(|m| m.get("role"))
            .and_then(Value::as_str)
            .unwrap_or("user")
            .to_owned();
        let input = NewAccount {
            email,
            username: None,
            password: self.password.map(SecretString::from),
            role,
            display_name: None,
            user_metadata: self.user_metadata.filter(|m| !m.is_null()),
            app_metadata: self.app_metadata.filter(|m| !m.is_null()),
            email_confirmed: self.email_confirm.unwrap_or(false),
            banned_until,
        };
        Ok(input)
    }
}

/// Create a user (`admin.createUser`): 200 with the user. No password → a random one.
/// The password policy applies; a taken email → 422 `email_exists`.
#[utoipa::path(
    operation_id = "supabase_admin_create_user", post, path = "/admin/users", tag = "supabase", security(("bearer" = [])), request_body = AdminUserBody,
    responses(
        (status = 200, description = "The user", body = User),
        (status = 400, description = "validation_failed"), (status = 401, description = "no_authorization"),
        (status = 403, description = "not_admin"), (status = 422, description = "email_exists, weak_password"),
    )
)]
pub async fn create_user(
    State(state): State<AppState>,
    _key: ServiceRole,
    ClientMeta(meta): ClientMeta,
    Json(body, _): Json<AdminUserBody, GoTrue>,
) -> Result<axum::Json<User>, GoTrueError> {
    let input = body.into_new_account(state.gatehouse.now())?;
    let (user, _) = state
        .gatehouse
        .admin
        .create_account(Actor::ServiceKey, input, &meta)
        .await
        .map_err(GoTrueError::at_admin)?;
    Ok(axum::Json(User::from(&user)))
}

/// One user (`admin.getUserById`); unknown → 404 `user_not_found`.
#[utoipa::path(
    operation_id = "supabase_admin_get_user", get, path = "/admin/users/{id}", tag = "supabase", security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id")),
    responses((status = 200, description = "The user", body = User), (status = 404, description = "user_not_found"))
)]
pub async fn get_user(
    State(state): State<AppState>,
    _key: ServiceRole,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<axum::Json<User>, GoTrueError> {
    let user = state.gatehouse.admin.get_user(path_id(&id)?).await?;
    Ok(axum::Json(User::from(&user)))
}

/// Update a user (`admin.updateUserById`): email, password (ends every session),
/// `email_confirm`, metadata (merged; `app_metadata.role` sets the RBAC role under the same
/// rules as the admin API), `ban_duration`.
#[utoipa::path(
    operation_id = "supabase_admin_update_user", put, path = "/admin/users/{id}", tag = "supabase", security(("bearer" = [])), request_body = AdminUserBody,
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 404, description = "user_not_found"), (status = 409, description = "last_admin"),
        (status = 422, description = "email_exists, weak_password"),
    )
)]
pub async fn update_user(
    State(state): State<AppState>,
    _key: ServiceRole,
    ClientMeta(meta): ClientMeta,
    axum::extract::Path(id): axum::extract::Path<String>,
    Json(body, _): Json<AdminUserBody, GoTrue>,
) -> Result<axum::Json<User>, GoTrueError> {
    let admin = &state.gatehouse.admin;
    let id = path_id(&id)?;
    let patch = body.into_patch(&admin.get_user(id).await?, state.gatehouse.now())?;
    let user = admin
        .update_user(Actor::ServiceKey, id, patch, &meta)
        .await
        .map_err(GoTrueError::at_admin)?;
    Ok(axum::Json(User::from(&user)))
}

/// `admin.deleteUser(id, shouldSoftDelete)`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DeleteBody {
    pub should_soft_delete: Option<bool>,
}

/// Delete a user (`admin.deleteUser`): hard by default, as in GoTrue; soft with
/// `should_soft_delete` (sessions end, the email is freed). 200 `{}`.
#[utoipa::path(
    operation_id = "supabase_admin_delete_user", delete, path = "/admin/users/{id}", tag = "supabase", security(("bearer" = [])), request_body = DeleteBody,
    params(("id" = String, Path, description = "The user's id")),
    responses((status = 200, description = "{}", body = Empty), (status = 404, description = "user_not_found"), (status = 409, description = "last_admin"))
)]
pub async fn delete_user(
    State(state): State<AppState>,
    _key: ServiceRole,
    ClientMeta(meta): ClientMeta,
    axum::extract::Path(id): axum::extract::Path<String>,
    Json(body, _): Json<DeleteBody, GoTrue>,
) -> Result<axum::Json<Empty>, GoTrueError> {
    let hard = !body.should_soft_delete.unwrap_or(false);
    state
        .gatehouse
        .admin
        .delete_user(Actor::ServiceKey, path_id(&id)?, hard, &meta)
        .await?;
    Ok(axum::Json(Empty {}))
}
