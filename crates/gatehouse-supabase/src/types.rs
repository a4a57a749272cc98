//! The bodies of the Auth API, as much of them as gatehouse reads or sends.

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// A session the upstream started or refreshed. Its tokens are secrets: the access token
/// goes to the client in a body, the refresh token only into an HttpOnly cookie.
#[derive(Deserialize)]
pub struct UpstreamSession {
    #[serde(deserialize_with = "secret")]
    pub access_token: SecretString,
    #[serde(deserialize_with = "secret")]
    pub refresh_token: SecretString,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// When it expires (Unix seconds); older servers omit it.
    #[serde(default)]
    pub expires_at: Option<i64>,
    pub user: UpstreamUser,
}

impl std::fmt::Debug for UpstreamSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSession")
            .field("user", &self.user.id)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

fn secret<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
    String::deserialize(deserializer).map(SecretString::from)
}

/// A user as the Auth API shapes it. Times are kept as GoTrue's RFC 3339 strings.
#[derive(Debug, Clone, Deserialize)]
pub struct UpstreamUser {
    pub id: Uuid,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub app_metadata: Map<String, Value>,
    #[serde(default)]
    pub user_metadata: Map<String, Value>,
    #[serde(default)]
    pub email_confirmed_at: Option<String>,
    #[serde(default)]
    pub banned_until: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub last_sign_in_at: Option<String>,
    #[serde(default)]
    pub is_anonymous: bool,
    /// The user's identities. GoTrue answers a sign-up for an address it already has with
    /// a stand-in user whose list is empty.
    #[serde(default)]
    pub identities: Option<Vec<Value>>,
}

impl UpstreamUser {
    /// `app_metadata.role`, where gatehouse keeps a user's role upstream.
    pub fn app_role(&self) -> Option<&str> {
        self.app_metadata.get("role").and_then(Value::as_str)
    }
}

/// Which sessions `POST /logout` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOutScope {
    Local,
    Others,
    Global,
}

impl SignOutScope {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Others => "others",
            Self::Global => "global",
        }
    }
}

/// A user's change to their own account (`PUT /user`). `None` leaves a field alone.
#[derive(Debug, Default)]
pub struct UserUpdate {
    pub email: Option<String>,
    pub password: Option<SecretString>,
    /// Merged into `user_metadata` upstream (a `null` value removes a key).
    pub data: Option<Value>,
}

impl UserUpdate {
    pub(crate) fn to_json(&self) -> Value {
        use secrecy::ExposeSecret;
        let mut body = json!({});
        if let Some(email) = &self.email {
            body["email"] = json!(email);
        }
        if let Some(password) = &self.password {
            body["password"] = json!(password.expose_secret());
        }
        if let Some(data) = &self.data {
            body["data"] = data.clone();
        }
        body
    }
}

/// What an admin call sets on a user (`POST`/`PUT /admin/users`). `None` leaves a field
/// alone.
#[derive(Debug, Default)]
pub struct AdminUserAttributes {
    /// The id to create the user with (create only).
    pub id: Option<Uuid>,
    pub email: Option<String>,
    pub password: Option<SecretString>,
    /// Confirm the email (create), or confirm it now (update).
    pub email_confirm: Option<bool>,
    pub user_metadata: Option<Value>,
    /// Merged into `app_metadata` upstream.
    pub app_metadata: Option<Value>,
    /// A Go duration (`"876000h"`), or `"none"` to lift a ban.
    pub ban_duration: Option<String>,
}

impl AdminUserAttributes {
    pub(crate) fn to_json(&self) -> Value {
        use secrecy::ExposeSecret;
        let mut body = json!({});
        if let Some(id) = self.id {
            body["id"] = json!(id);
        }
        if let Some(email) = &self.email {
            body["email"] = json!(email);
        }
        if let Some(password) = &self.password {
            body["password"] = json!(password.expose_secret());
        }
        if let Some(confirm) = self.email_confirm {
            body["email_confirm"] = json!(confirm);
        }
        if let Some(data) = &self.user_metadata {
            body["user_metadata"] = data.clone();
        }
        if let Some(data) = &self.app_metadata {
            body["app_metadata"] = data.clone();
        }
        if let Some(ban) = &self.ban_duration {
            body["ban_duration"] = json!(ban);
        }
        body
    }
}
