//! Request and response bodies of the app API (camelCase, as the seeds' frontends expect).

use gatehouse_core::store::UserRecord;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// `Some(None)` for an explicit `null`, `None` for an absent field.
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A user's profile.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileBody {
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
}

/// A user as the app API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "id": "0193a0c4-6a5e-7cc0-9d0e-2f1b3c4d5e6f", "email": "ada@example.com", "username": "ada",
    "role": "user", "isActive": true, "createdAt": "2026-11-21T05:28:15.123456Z",
    "updatedAt": "2026-11-21T05:28:15.123456Z", "lastSignInAt": null,
    "profile": {"displayName": "Ada Lovelace", "avatarUrl": null}, "userMetadata": {}
}))]
pub struct UserBody {
    pub id: Uuid,
    pub email: Option<String>,
    pub username: Option<String>,
    /// `user` or `admin`.
    pub role: String,
    pub is_active: bool,
    /// RFC 3339, UTC, microseconds.
    pub created_at: String,
    pub updated_at: String,
    pub last_sign_in_at: Option<String>,
    /// Locked by the hard stop of failed sign-ins (an admin unlocks it).
    pub locked: bool,
    pub profile: ProfileBody,
    #[schema(value_type = Object)]
    pub user_metadata: Value,
}

impl From<UserRecord> for UserBody {
    fn from(user: UserRecord) -> Self {
        Self {
            id: user.id,
            email: user.email,
            username: user.username,
            role: user.role,
            is_active: user.is_active && user.deleted_at.is_none(),
            created_at: user.created_at.to_string(),
            updated_at: user.updated_at.to_string(),
            last_sign_in_at: user.last_sign_in_at.map(|t| t.to_string()),
            locked: user.locked_at.is_some(),
            profile: ProfileBody {
                display_name: user.display_name,
                avatar_url: user.avatar_url,
            },
            user_metadata: user.user_metadata.0,
        }
    }
}

/// `{user}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub user: UserBody,
}

/// The profile given at sign-up.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignupProfile {
    pub display_name: Option<String>,
}

/// Sign-up.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"email": "ada@example.com", "password": "quartz-Lantern-47", "username": "ada", "profile": {"displayName": "Ada Lovelace"}}))]
pub struct SignupRequest {
    pub email: String,
    /// 8 to 1024 bytes, a digit and a symbol (by default), not common, not containing the
    /// email's local part or the username.
    pub password: String,
    /// Optional, `^[A-Za-z0-9_.-]{3,32}$`, unique regardless of case.
    pub username: Option<String>,
    pub profile: Option<SignupProfile>,
}

/// Sign-in, by email or by username.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"email": "ada@example.com", "password": "quartz-Lantern-47"}))]
pub struct SigninRequest {
    pub email: Option<String>,
    pub username: Option<String>,
    pub password: String,
}

/// An access token and its user. The refresh token is only ever in the `sb_refresh_token`
/// cookie.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"accessToken": "eyJhbGciOiJFUzI1NiIsImtpZCI6Ij...", "tokenType": "bearer", "expiresIn": 1800, "user": {"id": "0193a0c4-6a5e-7cc0-9d0e-2f1b3c4d5e6f", "email": "ada@example.com"}}))]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user: UserBody,
}

/// `{ok: true}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OkResponse {
    pub ok: bool,
}

/// A CSRF token, also set as the `__Host-csrf_token` cookie (`csrf_token` under
/// `GATEHOUSE_INSECURE_COOKIES`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"csrfToken": "kq3V...Qe8.fR2c...9Ww"}))]
pub struct CsrfResponse {
    pub csrf_token: String,
}

/// Profile fields to change; `null` clears one, an absent field stays as it is.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfilePatch {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<String>>,
}

/// A change to one's own profile and metadata.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"profile": {"displayName": "Ada King", "avatarUrl": "https://example.com/ada.png"}, "userMetadata": {"theme": "dark"}}))]
pub struct MePatchRequest {
    pub profile: Option<ProfilePatch>,
    /// Replaces the user metadata: a JSON object of at most 16 KiB and 8 levels.
    #[schema(value_type = Option<Object>)]
    pub user_metadata: Option<Value>,
}

/// Change the password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"currentPassword": "quartz-Lantern-47", "newPassword": "orbit-Meadow-93!"}))]
pub struct PasswordRequest {
    /// The current password. It may be left out within `GATEHOUSE_REAUTH_WINDOW` (10
    /// minutes) of signing in; after that it is required (401 `reauthentication_needed`).
    pub current_password: Option<String>,
    pub new_password: String,
}

/// The password changed; every other session has ended.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordResponse {
    pub ok: bool,
    /// How many other sessions ended.
    pub sessions_ended: u64,
}
