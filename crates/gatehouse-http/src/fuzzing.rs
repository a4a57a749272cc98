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

/// Runs every admin request body of both surfaces (`PATCH /users/{id}`, `PUT
/// /auth/v1/admin/users/{id}`) through the checks that turn it into a change, against a
/// fixed user, today and at the end of the calendar: any input must come back as a change
/// or an error, never a panic (a ban of `100000000h` once overflowed the date arithmetic).
pub fn plan_admin_bodies(data: &[u8]) {
    use gatehouse_core::store::{Json, Timestamp, UserRecord};
    use time::macros::datetime;
    let at = |t| Timestamp::new(t);
    let user = UserRecord {
        id: uuid::Uuid::nil(),
        email: Some("ada@example.com".into()),
        username: Some("ada".into()),
        phone: None,
        password_hash: None,
        role: "user".into(),
        is_active: true,
        is_anonymous: false,
        app_metadata: Json(serde_json::json!({"provider": "email"})),
        user_metadata: Json(serde_json::json!({"a": 1})),
        email_confirmed_at: None,
        phone_confirmed_at: None,
        last_sign_in_at: None,
        banned_until: None,
        deleted_at: None,
        created_at: at(datetime!(2026-01-01 0:00 UTC)),
        updated_at: at(datetime!(2026-01-01 0:00 UTC)),
        display_name: None,
        avatar_url: None,
        failed_sign_ins: 0,
        locked_at: None,
    };
    let nows = [
        datetime!(2026-12-01 0:00 UTC),
        datetime!(9999-12-31 23:00 UTC),
    ];
    for now in nows {
        // The body is consumed by the conversion: parse it once per instant.
        let Ok(body) = serde_json::from_slice::<crate::gotrue::admin::AdminUserBody>(data) else {
            break;
        };
        if let Ok(patch) = body.into_patch(&user, now) {
            let _ = gatehouse_core::admin::plan_user_patch(&user, &patch, at(now));
        }
    }
    if let Ok(body) = serde_json::from_slice::<crate::admin::UserPatchRequest>(data) {
        let patch = crate::admin::user_patch_of(body);
        for now in nows {
            let _ = gatehouse_core::admin::plan_user_patch(&user, &patch, at(now));
        }
    }
}
