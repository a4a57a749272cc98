//! GoTrue's JSON objects: the User and the Session, with its field names and quirks
//! (`email`/`phone` are `""` when unset, optional timestamps only when set).

use gatehouse_core::store::UserRecord;
use gatehouse_core::SessionGrant;
use serde_json::{json, Value};

/// The GoTrue user object of `user`.
pub fn user_json(user: &UserRecord) -> Value {
    let email = user.email.clone().unwrap_or_default();
    let confirmed = user.email_confirmed_at.map(|t| t.to_string());
    let identity = json!({
        "identity_id": user.id,
        "id": user.id,
        "user_id": user.id,
        "identity_data": {
            "sub": user.id, "email": email, "email_verified": confirmed.is_some(), "phone_verified": false,
        },
        "provider": "email",
        "last_sign_in_at": user.last_sign_in_at.map(|t| t.to_string()),
        "created_at": user.created_at.to_string(),
        "updated_at": user.updated_at.to_string(),
        "email": email,
    });
    let mut body = json!({
        "id": user.id,
        "aud": "authenticated",
        "role": "authenticated",
        "email": email,
        "phone": user.phone.clone().unwrap_or_default(),
        "app_metadata": gatehouse_core::sessions::app_metadata(user),
        "user_metadata": user.user_metadata.0,
        "identities": [identity],
        "created_at": user.created_at.to_string(),
        "updated_at": user.updated_at.to_string(),
        "is_anonymous": user.is_anonymous,
    });
    if let Some(confirmed) = confirmed {
        body["email_confirmed_at"] = json!(confirmed);
        body["confirmed_at"] = json!(confirmed);
    }
    if let Some(at) = user.last_sign_in_at {
        body["last_sign_in_at"] = json!(at.to_string());
    }
    if let Some(until) = user.banned_until {
        body["banned_until"] = json!(until.to_string());
    }
    body
}

/// The GoTrue session object. Unlike the app API, GoTrue clients keep the refresh token
/// themselves, so it is in the body here (and never in a log).
pub fn session_json(grant: &SessionGrant, password_grant: bool) -> Value {
    use secrecy::ExposeSecret;
    let mut body = json!({
        "access_token": grant.access_token,
        "token_type": "bearer",
        "expires_in": grant.expires_in,
        "expires_at": grant.expires_at,
        "refresh_token": grant.refresh_token.expose_secret(),
        "user": user_json(&grant.user),
    });
    if password_grant {
        // GoTrue always sends it on the password grant (null unless the password is weak).
        body["weak_password"] = Value::Null;
    }
    body
}
