//! GoTrue's JSON objects as Rust types: the User, its Identity, the Session, the user list,
//! the settings and health documents. GoTrue's quirks are kept: `email`/`phone` are `""`
//! when unset, optional timestamps appear only when set, `weak_password: null` is on the
//! password grant only.

use std::collections::BTreeMap;

use gatehouse_core::store::UserRecord;
use gatehouse_core::SessionGrant;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// The audience and the role of every user token.
const AUTHENTICATED: &str = "authenticated";

/// A user as GoTrue shows it. Timestamps are RFC 3339, UTC, with microseconds.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = GoTrueUser, example = json!({
    "id": "0193a0c4-6a5e-7cc0-9d0e-2f1b3c4d5e6f", "aud": "authenticated", "role": "authenticated",
    "email": "ada@example.com", "phone": "",
    "app_metadata": {"provider": "email", "providers": ["email"], "role": "user"},
    "user_metadata": {"name": "Ada"},
    "identities": [{"identity_id": "0193a0c4-6a5e-7cc0-9d0e-2f1b3c4d5e6f", "id": "0193a0c4-6a5e-7cc0-9d0e-2f1b3c4d5e6f",
        "user_id": "0193a0c4-6a5e-7cc0-9d0e-2f1b3c4d5e6f",
        "identity_data": {"sub": "0193a0c4-6a5e-7cc0-9d0e-2f1b3c4d5e6f", "email": "ada@example.com", "email_verified": true, "phone_verified": false},
        "provider": "email", "last_sign_in_at": "2026-11-21T05:28:15.123456Z",
        "created_at": "2026-11-21T05:28:15.123456Z", "updated_at": "2026-11-21T05:28:15.123456Z", "email": "ada@example.com"}],
    "created_at": "2026-11-21T05:28:15.123456Z", "updated_at": "2026-11-21T05:28:15.123456Z", "is_anonymous": false,
    "email_confirmed_at": "2026-11-21T05:28:15.123456Z", "confirmed_at": "2026-11-21T05:28:15.123456Z",
    "last_sign_in_at": "2026-11-21T05:28:15.123456Z"
}))]
pub struct User {
    pub id: Uuid,
    /// Always `authenticated`.
    pub aud: &'static str,
    /// Always `authenticated` (gatehouse's RBAC role is `app_metadata.role`).
    pub role: &'static str,
    /// `""` when the user has none.
    pub email: String,
    /// `""`: gatehouse has no phone users.
    pub phone: String,
    /// `provider`, `providers` and gatehouse's `role`, over what an admin set.
    #[schema(value_type = Object)]
    pub app_metadata: Value,
    #[schema(value_type = Object)]
    pub user_metadata: Value,
    pub identities: Vec<Identity>,
    pub created_at: String,
    pub updated_at: String,
    pub is_anonymous: bool,
    /// Absent until the email is confirmed (GoTrue omits unset timestamps; never `null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    pub email_confirmed_at: Option<String>,
    /// The earliest confirmation (the email's: there are no phones); absent until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    pub confirmed_at: Option<String>,
    /// Absent before the first sign-in.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    pub last_sign_in_at: Option<String>,
    /// Absent unless banned.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    pub banned_until: Option<String>,
    /// An address waiting for the confirmations of an email change (only in the answer
    /// to the `PUT /user` that asked for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    pub new_email: Option<String>,
}

/// The email identity of a user. GoTrue swaps the names: `identity_id` is the row,
/// `id` the provider's id (the user's id for email).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = GoTrueIdentity)]
pub struct Identity {
    pub identity_id: Uuid,
    pub id: Uuid,
    pub user_id: Uuid,
    pub identity_data: IdentityData,
    /// Always `email`.
    pub provider: &'static str,
    /// `null` before the first sign-in.
    pub last_sign_in_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub email: String,
}

/// What the provider says about the user.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = GoTrueIdentityData)]
pub struct IdentityData {
    pub sub: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub phone_verified: bool,
}

impl From<&UserRecord> for User {
    fn from(user: &UserRecord) -> Self {
        let email = user.email.clone().unwrap_or_default();
        let confirmed = user.email_confirmed_at.map(|t| t.to_string());
        let identity = Identity {
            identity_id: user.id,
            id: user.id,
            user_id: user.id,
            identity_data: IdentityData {
                sub: user.id,
                email: email.clone(),
                email_verified: confirmed.is_some(),
                phone_verified: false,
            },
            provider: "email",
            last_sign_in_at: user.last_sign_in_at.map(|t| t.to_string()),
            created_at: user.created_at.to_string(),
            updated_at: user.updated_at.to_string(),
            email: email.clone(),
        };
        Self {
            id: user.id,
            aud: AUTHENTICATED,
            role: AUTHENTICATED,
            email,
            phone: user.phone.clone().unwrap_or_default(),
            app_metadata: gatehouse_core::tokens::app_metadata(user),
            user_metadata: user.user_metadata.0.clone(),
            identities: vec![identity],
            created_at: user.created_at.to_string(),
            updated_at: user.updated_at.to_string(),
            is_anonymous: user.is_anonymous,
            email_confirmed_at: confirmed.clone(),
            confirmed_at: confirmed,
            last_sign_in_at: user.last_sign_in_at.map(|t| t.to_string()),
            banned_until: user.banned_until.map(|t| t.to_string()),
            new_email: None,
        }
    }
}

impl User {
    /// The stand-in GoTrue answers a sign-up with a taken address with (its
    /// `sanitizeUser`): no identities, an empty role. Apps tell it by `identities: []`.
    pub fn obfuscated(user: &UserRecord) -> Self {
        Self {
            role: "",
            identities: Vec::new(),
            ..Self::from(user)
        }
    }
}

/// A session. Unlike the app API, GoTrue clients keep the refresh token themselves, so it
/// is in the body here (and never in a log).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = GoTrueSession, example = json!({
    "access_token": "eyJhbGciOiJFUzI1NiIsImtpZCI6Ij...", "token_type": "bearer", "expires_in": 3600,
    "expires_at": 1795238895, "refresh_token": "Qm9vdGVkS2V5MQ...",
    "user": {"id": "0193a0c4-6a5e-7cc0-9d0e-2f1b3c4d5e6f", "aud": "authenticated", "role": "authenticated",
        "email": "ada@example.com", "phone": "", "app_metadata": {"provider": "email", "providers": ["email"], "role": "user"},
        "user_metadata": {}, "identities": [], "created_at": "2026-11-21T05:28:15.123456Z",
        "updated_at": "2026-11-21T05:28:15.123456Z", "is_anonymous": false},
    "weak_password": null
}))]
pub struct Session {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// When the access token expires: Unix seconds, its `exp`.
    pub expires_at: i64,
    pub refresh_token: String,
    pub user: User,
    /// `null` on the password grant (GoTrue always sends it there; gatehouse refuses weak
    /// passwords when they are set, so it is never filled); absent on the other grants.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, required = false)]
    pub weak_password: Option<Value>,
}

impl Session {
    /// The session of a sign-up or a refresh.
    pub fn of(grant: &SessionGrant) -> Self {
        use secrecy::ExposeSecret;
        Self {
            access_token: grant.access_token.clone(),
            token_type: "bearer",
            expires_in: grant.expires_in,
            expires_at: grant.expires_at,
            refresh_token: grant.refresh_token.expose_secret().to_owned(),
            user: User::from(&grant.user),
            weak_password: None,
        }
    }

    /// The session of the password grant, with GoTrue's `weak_password: null`.
    pub fn of_password_grant(grant: &SessionGrant) -> Self {
        Self {
            weak_password: Some(Value::Null),
            ..Self::of(grant)
        }
    }
}

/// A page of `GET /admin/users`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = GoTrueUserList)]
pub struct UserList {
    pub users: Vec<User>,
    /// Always `authenticated`.
    pub aud: &'static str,
}

impl UserList {
    pub fn of(users: &[UserRecord]) -> Self {
        Self {
            users: users.iter().map(User::from).collect(),
            aud: AUTHENTICATED,
        }
    }
}

/// `{}`: what GoTrue answers when there is nothing to say.
#[derive(Debug, Default, Serialize, ToSchema)]
#[schema(as = GoTrueEmpty)]
pub struct Empty {}

/// The providers GoTrue lists in `/settings`; gatehouse has only email.
const PROVIDERS: [&str; 22] = [
    "anonymous_users",
    "apple",
    "azure",
    "bitbucket",
    "discord",
    "facebook",
    "figma",
    "fly",
    "github",
    "gitlab",
    "google",
    "keycloak",
    "kakao",
    "linkedin_oidc",
    "notion",
    "phone",
    "slack_oidc",
    "spotify",
    "twitch",
    "twitter",
    "workos",
    "zoom",
];

/// What this server supports.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = GoTrueSettings, example = json!({
    "external": {"anonymous_users": false, "apple": false, "email": true, "google": false, "phone": false},
    "disable_signup": false, "mailer_autoconfirm": true, "phone_autoconfirm": false,
    "sms_provider": "", "saml_enabled": false, "passkeys_enabled": false
}))]
pub struct Settings {
    /// Each provider GoTrue knows, and whether it is on: `email` only.
    pub external: BTreeMap<&'static str, bool>,
    pub disable_signup: bool,
    pub mailer_autoconfirm: bool,
    pub phone_autoconfirm: bool,
    pub sms_provider: &'static str,
    pub saml_enabled: bool,
    pub passkeys_enabled: bool,
}

impl Settings {
    /// gatehouse's: email sign-up, confirmed at once unless a mailer confirms addresses,
    /// nothing else.
    pub fn current(mailer_autoconfirm: bool) -> Self {
        let mut external: BTreeMap<&'static str, bool> =
            PROVIDERS.iter().map(|p| (*p, false)).collect();
        external.insert("email", true);
        Self {
            external,
            disable_signup: false,
            mailer_autoconfirm,
            phone_autoconfirm: false,
            sms_provider: "",
            saml_enabled: false,
            passkeys_enabled: false,
        }
    }
}

/// GoTrue's health document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = GoTrueHealth, example = json!({"version": "gatehouse-0.1.0", "name": "GoTrue", "description": "GoTrue is a user registration and authentication API"}))]
pub struct Health {
    pub version: &'static str,
    /// Always `GoTrue`: clients check it.
    pub name: &'static str,
    pub description: &'static str,
}

impl Health {
    pub fn current() -> Self {
        Self {
            version: concat!("gatehouse-", env!("CARGO_PKG_VERSION")),
            name: "GoTrue",
            description: "GoTrue is a user registration and authentication API",
        }
    }
}
