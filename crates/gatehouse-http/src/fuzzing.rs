//! Entry points for `cargo fuzz` (feature `fuzzing`): every JSON request type of every
//! surface, and the nesting check that runs before them.

/// Parses arbitrary bytes as each request body.
pub fn parse_bodies(data: &[u8]) {
    let _ = crate::extract::json_too_deep(data, crate::extract::MAX_JSON_DEPTH);
    let _ = serde_json::from_slice::<crate::auth::dto::SignupRequest>(data);
    let _ = serde_json::from_slice::<crate::auth::dto::SigninRequest>(data);
    let _ = serde_json::from_slice::<crate::auth::dto::MePatchRequest>(data);
    let _ = serde_json::from_slice::<crate::auth::dto::PasswordRequest>(data);
    let _ = serde_json::from_slice::<crate::admin::RoleRequest>(data);
    let _ = serde_json::from_slice::<crate::admin::UserPatchRequest>(data);
    let _ = serde_json::from_slice::<crate::gotrue::user::SignupBody>(data);
    let _ = serde_json::from_slice::<crate::gotrue::user::TokenBody>(data);
    let _ = serde_json::from_slice::<crate::gotrue::user::UpdateUserBody>(data);
    let _ = serde_json::from_slice::<crate::gotrue::admin::AdminUserBody>(data);
    let _ = serde_json::from_slice::<crate::gotrue::admin::DeleteBody>(data);
}
