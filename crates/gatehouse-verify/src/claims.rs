//! The claims of a Supabase (or gatehouse) access token.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// `aud`: one string (what Supabase and gatehouse issue) or an array (what other issuers
/// may send).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// Every audience named, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many): (Option<&str>, &[String]) = match self {
            Self::One(aud) => (Some(aud), &[]),
            Self::Many(auds) => (None, auds),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }

    /// Whether `aud` is one of the audiences named.
    pub fn contains(&self, aud: &str) -> bool {
        self.iter().any(|a| a == aud)
    }
}

/// The claims of a verified access token.
///
/// Fields are as the issuer sent them: Supabase sends `""` for a user without an email or
/// phone, and that stays `Some("")`. Claims this struct does not name are kept in
/// [`Claims::extra`].
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Claims {
    /// The user's id (a UUID for Supabase and gatehouse).
    pub sub: String,
    pub iss: String,
    pub aud: Audience,
    /// Expiry, seconds since the Unix epoch. Required.
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The Postgres role: `authenticated`, `anon` or `service_role`. The app-level role
    /// is [`Claims::app_role`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Authenticator assurance level: `aal1`, or `aal2` after MFA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aal: Option<String>,
    /// Authentication methods, as sent (Supabase: `[{"method": "password", "timestamp": …}]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_anonymous: Option<bool>,
    /// Set by the server only (`role`, `provider`, `providers`, …); `null` reads as empty.
    #[serde(default, deserialize_with = "map_or_null")]
    pub app_metadata: Map<String, Value>,
    /// Set by the user; never base authorisation on it. `null` reads as empty.
    #[serde(default, deserialize_with = "map_or_null")]
    pub user_metadata: Map<String, Value>,
    /// Every other claim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn map_or_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Map<String, Value>, D::Error> {
    Ok(Option::<Map<String, Value>>::deserialize(deserializer)?.unwrap_or_default())
}

impl Claims {
    /// The app-level role, `app_metadata.role`, when it is a string (gatehouse puts the
    /// account's role there; in Supabase a server-side hook or the admin API does).
    pub fn app_role(&self) -> Option<&str> {
        self.app_metadata.get("role").and_then(Value::as_str)
    }

    /// `sub` as a UUID; `None` when it is not one.
    pub fn user_id(&self) -> Option<uuid::Uuid> {
        uuid::Uuid::parse_str(&self.sub).ok()
    }

    /// `session_id` as a UUID; `None` when absent or not one.
    pub fn session_uuid(&self) -> Option<uuid::Uuid> {
        self.session_id
            .as_deref()
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn supabase() -> Value {
        json!({
            "iss": "https://abc.supabase.co/auth/v1",
            "sub": "9f6f7c1e-52b8-4b51-9b0f-0d5c1a3d2e11",
            "aud": "authenticated",
            "exp": 1_700_003_600,
            "iat": 1_700_000_000,
            "email": "",
            "phone": "",
            "app_metadata": {"provider": "email", "providers": ["email"], "role": "admin"},
            "user_metadata": {"name": "Ada"},
            "role": "authenticated",
            "aal": "aal1",
            "amr": [{"method": "password", "timestamp": 1_700_000_000}],
            "session_id": "3c0b7c8e-2c0c-4f57-9d1c-7f6f3b2a1d00",
            "is_anonymous": false,
            "ref": "abc"
        })
    }

    #[test]
    fn supabase_claims_parse_and_keep_what_they_do_not_name() {
        let claims: Claims = serde_json::from_value(supabase()).unwrap();
        assert_eq!(claims.email.as_deref(), Some(""));
        assert_eq!(claims.app_role(), Some("admin"));
        assert_eq!(
            claims.user_id().map(|u| u.to_string()).as_deref(),
            Some("9f6f7c1e-52b8-4b51-9b0f-0d5c1a3d2e11")
        );
        assert!(claims.session_uuid().is_some());
        assert_eq!(claims.extra.get("ref"), Some(&json!("abc")));
        assert_eq!(claims.extra.len(), 1, "{:?}", claims.extra);
        let again: Claims = serde_json::from_value(serde_json::to_value(&claims).unwrap()).unwrap();
        assert_eq!(again, claims);
    }

    #[test]
    fn null_metadata_reads_as_empty_and_a_non_string_role_is_no_role() {
        let mut value = supabase();
        value["app_metadata"] = Value::Null;
        value["user_metadata"] = Value::Null;
        let claims: Claims = serde_json::from_value(value).unwrap();
        assert!(claims.app_metadata.is_empty() && claims.user_metadata.is_empty());
        assert_eq!(claims.app_role(), None);

        let mut value = supabase();
        value["app_metadata"] = json!({"role": ["admin"]});
        let claims: Claims = serde_json::from_value(value).unwrap();
        assert_eq!(claims.app_role(), None);
    }

    #[test]
    fn audience_is_a_string_or_an_array() {
        let one: Audience = serde_json::from_value(json!("authenticated")).unwrap();
        let many: Audience = serde_json::from_value(json!(["a", "authenticated"])).unwrap();
        assert!(one.contains("authenticated") && many.contains("authenticated"));
        assert!(!many.contains("b"));
        assert_eq!(many.iter().collect::<Vec<_>>(), ["a", "authenticated"]);
    }

    #[test]
    fn exp_is_required() {
        let mut value = supabase();
        value.as_object_mut().unwrap().remove("exp");
        assert!(serde_json::from_value::<Claims>(value).is_err());
    }
}
