//! What the Supabase-compatible surface (`/auth/v1`) needs beyond the app API: API keys,
//! sign-up that starts a session, self-service updates with GoTrue's metadata merge,
//! scoped sign-out, and the admin update with `app_metadata`, `ban_duration` and friends.
//! The same users, sessions, rules and audit trail as every other surface.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use gatehouse_store::{UserChange, UserEffects, UserRecord};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::admin::Actor;
use crate::audit::RequestMeta;
use crate::secrets::InstanceSecrets;
use crate::sessions::{Principal, SessionGrant};
use crate::{validate, Error, Gatehouse, SignUp};

/// The `kid` that marks an API key (never a user token).
pub const API_KEY_KID: &str = "gatehouse-api-key";
const API_KEY_SECRET: &str = "api-keys";
const API_KEY_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const RELOAD_EVERY: Duration = Duration::from_secs(30);

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiRole {
    /// Public routes only (supabase-js's `supabaseKey` in a browser).
    Anon,
    /// The admin API (server-side only).
    ServiceRole,
}

impl ApiRole {
    fn claim(self) -> &'static str {
        match self {
            Self::Anon => "anon",
            Self::ServiceRole => "service_role",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ApiKeyClaims {
    iss: String,
    role: String,
    iat: i64,
    exp: i64,
}

/// API keys: HS256 JWTs (as Supabase's legacy keys are) under a deployment-wide secret of
/// their own, so rotating signing keys never breaks them and rotating them never touches
/// user tokens.
pub(crate) struct ApiKeys {
    secrets: Arc<InstanceSecrets>,
    issuer: String,
    secret: RwLock<Vec<u8>>,
    loaded_at: Mutex<Instant>,
}

impl ApiKeys {
    pub(crate) async fn load(
        secrets: Arc<InstanceSecrets>,
        issuer: String,
        now: OffsetDateTime,
    ) -> Result<Self, Error> {
        let secret = secrets.get(API_KEY_SECRET, now).await?;
        Ok(Self {
            secrets,
            issuer,
            secret: RwLock::new(secret),
            loaded_at: Mutex::new(Instant::now()),
        })
    }

    fn secret(&self) -> Vec<u8> {
        self.secret.read().map(|s| s.clone()).unwrap_or_default()
    }

    async fn refresh_if_stale(&self, now: OffsetDateTime) -> Result<(), Error> {
        let stale = self
            .loaded_at
            .lock()
            .map(|t| t.elapsed() > RELOAD_EVERY)
            .unwrap_or(true);
        if stale {
            self.reload(now).await?;
        }
        Ok(())
    }

    pub(crate) async fn reload(&self, now: OffsetDateTime) -> Result<(), Error> {
        let secret = self.secrets.get(API_KEY_SECRET, now).await?;
        if let Ok(mut current) = self.secret.write() {
            *current = secret;
        }
        if let Ok(mut at) = self.loaded_at.lock() {
            *at = Instant::now();
        }
        Ok(())
    }

    /// Replaces the secret: every key issued so far stops working.
    pub(crate) async fn rotate(&self, now: OffsetDateTime) -> Result<(), Error> {
        self.secrets.replace(API_KEY_SECRET, now).await
    }

    fn issue(&self, role: ApiRole, now: OffsetDateTime) -> Result<String, Error> {
        let iat = now.unix_timestamp();
        let claims = ApiKeyClaims {
            iss: self.issuer.clone(),
            role: role.claim().to_owned(),
            iat,
            exp: iat + i64::try_from(API_KEY_LIFETIME.as_secs()).unwrap_or(i64::MAX / 2),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(API_KEY_KID.to_owned());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&self.secret()))
            .map_err(|e| Error::Internal(Box::new(e)))
    }

    async fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Option<ApiRole>, Error> {
        if token.len() > crate::tokens::MAX_TOKEN_BYTES {
            return Ok(None);
        }
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return Ok(None);
        };
        if header.kid.as_deref() != Some(API_KEY_KID) || header.alg != Algorithm::HS256 {
            return Ok(None);
        }
        self.refresh_if_stale(now).await?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims = std::collections::HashSet::new();
        validation.set_issuer(&[&self.issuer]);
        let Ok(data) = jsonwebtoken::decode::<ApiKeyClaims>(
            token,
            &DecodingKey::from_secret(&self.secret()),
            &validation,
        ) else {
            return Ok(None);
        };
        if data.claims.exp < now.unix_timestamp() {
            return Ok(None);
        }
        Ok(match data.claims.role.as_str() {
            "anon" => Some(ApiRole::Anon),
            "service_role" => Some(ApiRole::ServiceRole),
            _ => None,
        })
    }
}

/// Which sessions a sign-out ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOutScope {
    /// Every session of the user.
    Global,
    /// This session.
    Local,
    /// Every other session.
    Others,
}

/// A user's change to their own account (`PUT /user`).
#[derive(Debug, Default)]
pub struct SelfUpdate {
    pub email: Option<String>,
    pub password: Option<SecretString>,
    /// The current password: one proof a password or email change may bring (a recent
    /// sign-in is the other).
    pub current_password: Option<SecretString>,
    /// Shallow-merged into `user_metadata`; a `null` value removes the key.
    pub data: Option<Value>,
}

/// An admin's change through `PUT /admin/users/{id}`.
#[derive(Debug, Default)]
pub struct AdminUpdate {
    pub email: Option<String>,
    pub password: Option<SecretString>,
    pub email_confirm: Option<bool>,
    pub user_metadata: Option<Value>,
    /// Merged like `user_metadata`; its `role` key sets the RBAC role, under the same rules
    /// as `PUT /users/{id}/role`.
    pub app_metadata: Option<Value>,
    /// A Go duration (`24h`, `1h30m`) or `none`.
    pub ban_duration: Option<String>,
}

/// GoTrue's metadata update: keys of `patch` replace those of `base`; `null` removes.
pub fn merge_metadata(base: &Value, patch: &Value) -> Value {
    let mut merged = base.as_object().cloned().unwrap_or_default();
    if let Some(patch) = patch.as_object() {
        for (key, value) in patch {
            if value.is_null() {
                merged.remove(key);
            } else {
                merged.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(merged)
}

/// Parses a Go duration (`300ms`, `1.5h`, `2h45m`); `None` when it is not one.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() || rest.len() > 64 {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest.get(..number_end)?.parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * seconds;
    }
    (total.is_finite() && total < 1e12).then(|| Duration::from_secs_f64(total))
}

/// The longest ban a duration may set: past it, "for ever" is what is meant, and date
/// arithmetic would leave the calendar (year 9999) soon after.
pub const MAX_BAN: Duration = Duration::from_secs(100 * 365 * 24 * 3600 + 25 * 24 * 3600);

/// When a ban of `duration` (a Go duration) from `now` ends: at most [`MAX_BAN`] away.
pub fn ban_end(now: OffsetDateTime, duration: &str) -> Result<OffsetDateTime, Error> {
    let duration = parse_go_duration(duration)
        .ok_or_else(|| Error::invalid("ban_duration", "must be a duration like 24h or none"))?;
    if duration > MAX_BAN {
        return Err(Error::invalid(
            "ban_duration",
            "must be at most 100 years (876600h)",
        ));
    }
    now.checked_add(time::Duration::try_from(duration).unwrap_or(time::Duration::MAX))
        .ok_or_else(|| Error::invalid("ban_duration", "ends past the year 9999"))
}

impl Gatehouse {
    /// A fresh anon or service-role API key.
    pub fn issue_api_key(&self, role: ApiRole) -> Result<String, Error> {
        self.inner.api_keys.issue(role, self.now())
    }

    /// The role of an API key, if `token` is one of ours.
    pub async fn verify_api_key(&self, token: &str) -> Result<Option<ApiRole>, Error> {
        self.inner.api_keys.verify(token, self.now()).await
    }

    /// Replaces the API-key secret: every anon and service-role key issued so far stops
    /// working (on every instance within 30 seconds).
    pub async fn rotate_api_keys(&self) -> Result<(), Error> {
        self.inner.api_keys.rotate(self.now()).await
    }

    /// Re-reads the API-key secret now (after a rotation by this process).
    pub async fn reload_api_keys(&self) -> Result<(), Error> {
        self.inner.api_keys.reload(self.now()).await
    }

    /// Sign-up that confirms at once and starts a session (GoTrue with autoconfirm, which
    /// is what a server without a mailer does).
    pub async fn sign_up_and_sign_in(
        &self,
        input: SignUp,
        meta: &RequestMeta,
    ) -> Result<SessionGrant, Error> {
        let user = self.sign_up(input, meta).await?;
        self.store
            .record_sign_in(user.id, self.now().into())
            .await?;
        self.start_session(user, "password", meta).await
    }

    /// Ends sessions of the caller's user.
    pub async fn sign_out(
        &self,
        principal: &Principal,
        scope: SignOutScope,
        meta: &RequestMeta,
    ) -> Result<u64, Error> {
        let now = self.now().into();
        let user = principal.user.id;
        let ended = match scope {
            SignOutScope::Local => u64::from(
                self.store
                    .revoke_session(principal.session.id, now, "logout")
                    .await?,
            ),
            SignOutScope::Others => {
                self.store
                    .revoke_user_sessions(user, Some(principal.session.id), now, "logout")
                    .await?
            }
            SignOutScope::Global => {
                self.store
                    .revoke_user_sessions(user, None, now, "logout")
                    .await?
            }
        };
        self.audit(
            "session.logout",
            Some(user),
            Some(user),
            meta,
            json!({ "scope": format!("{scope:?}").to_lowercase(), "sessions_ended": ended }),
        )
        .await?;
        Ok(ended)
    }

    /// A user's change to their own email, password or metadata. A new password or email
    /// needs a proof of ownership (see [`Gatehouse::require_proof`]); a new password ends
    /// every other session. Everything is checked before the one write.
    pub async fn update_self(
        &self,
        principal: &Principal,
        update: SelfUpdate,
        meta: &RequestMeta,
    ) -> Result<UserRecord, Error> {
        let user = &principal.user;
        let mut change = UserChange::default();
        if let Some(email) = &update.email {
            let email = validate::email(email)?;
            if user
                .email
                .as_deref()
                .is_none_or(|e| !e.eq_ignore_ascii_case(&email))
            {
                change.email = Some(email);
            }
        }
        if let Some(data) = &update.data {
            let merged = merge_metadata(&user.user_metadata.0, data);
            validate::user_metadata(&merged)?;
            change.user_metadata = Some(merged);
        }
        if let Some(password) = &update.password {
            let email = change.email.as_deref().or(user.email.as_deref());
            self.check_password(password, email, user.username.as_deref())?;
        }
        if update.password.is_some() || change.email.is_some() {
            // The limit first, so that current passwords cannot be guessed here faster
            // than anywhere else.
            self.limit(
                crate::ratelimit::Bucket::PasswordAccount,
                Some(&user.id.to_string()),
            )
            .await?;
            let what = if update.password.is_some() {
                "password"
            } else {
                "email"
            };
            self.require_proof(principal, update.current_password.as_ref(), what, meta)
                .await?;
        }
        if let Some(password) = &update.password {
            change.password_hash = Some(self.inner.hasher.hash(password).await?);
        }
        self.write_own_change(principal, &change, "supabase", meta)
            .await?;
        self.get_user(user.id).await
    }

    /// Live users, newest first, by page; and how many there are.
    pub async fn list_users_by_page(
        &self,
        page: i64,
        per_page: i64,
    ) -> Result<(Vec<UserRecord>, i64), Error> {
        let offset = (page - 1).saturating_mul(per_page);
        let users = self.store.list_users_by_offset(offset, per_page).await?;
        let total = self.store.count_users(&Default::default()).await?;
        Ok((users, total))
    }

    /// An admin's update through the Supabase admin API. The whole request is checked
    /// before anything is written; then the change (a role in `app_metadata` included,
    /// under the rules of [`Gatehouse::set_role`]), the end of every session when the
    /// password is set, and the audit events are one transaction.
    pub async fn admin_update(
        &self,
        actor: Actor,
        id: Uuid,
        update: AdminUpdate,
        meta: &RequestMeta,
    ) -> Result<UserRecord, Error> {
        self.limit_admin(actor).await?;
        let before = self.get_user(id).await?;
        let now = self.now();
        let mut change = plan_admin_update(&before, &update, now)?;
        if let Some(password) = &update.password {
            let email = change.email.as_deref().or(before.email.as_deref());
            self.check_password(password, email, before.username.as_deref())?;
        }
        let role_change = change.role.clone().filter(|role| *role != before.role);
        if role_change.as_deref().is_some_and(|role| role != "admin") {
            Self::refuse_self(actor, id, "admins cannot demote themselves")?;
        }
        if let Some(password) = &update.password {
            change.password_hash = Some(self.inner.hasher.hash(password).await?);
        }
        let at = now.into();
        let after = change.applied_to(&before, at);
        let mut audit = Vec::new();
        if role_change.is_some() {
            let role_only = UserChange {
                role: change.role.clone(),
                ..UserChange::default()
            };
            let mut details = crate::admin::changes(&before, &role_only.applied_to(&before, at));
            details["via"] = json!(actor.via());
            audit.push(self.audit_record(
                "admin.user_role_changed",
                actor.id(),
                Some(id),
                meta,
                details,
            ));
        }
        let mut details = crate::admin::changes(&before, &after);
        details["via"] = json!("supabase");
        details["password_changed"] = json!(change.password_hash.is_some());
        details["metadata_changed"] =
            json!(change.user_metadata.is_some() || change.app_metadata.is_some());
        if let Some(ban) = change.banned_until {
            details["banned_until"] = json!(ban.map(|b| b.to_string()));
        }
        audit.push(self.audit_record("admin.user_updated", actor.id(), Some(id), meta, details));
        let effects = UserEffects {
            end_sessions: change
                .password_hash
                .is_some()
                .then_some("password_set_by_admin"),
            // A password an admin sets is a recovery: nothing the old one vouched for stays.
            forget_trust: change.password_hash.is_some(),
            audit,
            ..UserEffects::default()
        };
        let removes_admin = role_change.as_deref().is_some_and(|role| role != "admin");
        self.apply(&before, &change, removes_admin, at, &effects)
            .await?;
        self.get_user(id).await
    }
}

/// Checks a whole admin update against the user as it is and turns it into one change,
/// writing nothing: every field's error comes before the first write. The password is only
/// carried through (the policy and the hash are the caller's, as they need the hasher).
pub fn plan_admin_update(
    before: &UserRecord,
    update: &AdminUpdate,
    now: OffsetDateTime,
) -> Result<UserChange, Error> {
    let mut change = UserChange::default();
    if let Some(role) = update
        .app_metadata
        .as_ref()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str)
    {
        if !crate::admin::ROLES.contains(&role) {
            return Err(Error::invalid("app_metadata.role", "must be user or admin"));
        }
        if role != before.role {
            change.role = Some(role.to_owned());
        }
    }
    if let Some(email) = &update.email {
        change.email = Some(validate::email(email)?);
    }
    if let Some(confirm) = update.email_confirm {
        change.email_confirmed_at = Some(confirm.then(|| now.into()));
    }
    if let Some(data) = &update.user_metadata {
        let merged = merge_metadata(&before.user_metadata.0, data);
        validate::user_metadata(&merged)?;
        change.user_metadata = Some(merged);
    }
    if let Some(app) = &update.app_metadata {
        validate::metadata("app_metadata", app)?;
        let mut app = app.clone();
        if let Some(map) = app.as_object_mut() {
            map.remove("role");
        }
        change.app_metadata = Some(merge_metadata(&before.app_metadata.0, &app));
    }
    if let Some(ban) = update.ban_duration.as_deref() {
        change.banned_until = Some(match ban {
            "none" => None,
            other => Some(ban_end(now, other)?.into()),
        });
    }
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_like_go() {
        assert_eq!(parse_go_duration("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5_400)));
        assert_eq!(
            parse_go_duration("1.5s"),
            Some(Duration::from_millis(1_500))
        );
        assert_eq!(parse_go_duration("300ms"), Some(Duration::from_millis(300)));
        for bad in ["", "24", "h", "1d", "-1h", "1h-", "forever", "none"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn ban_durations_are_bounded_instead_of_overflowing() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(
            ban_end(now, "24h").unwrap(),
            now + Duration::from_secs(86_400)
        );
        assert!(ban_end(now, "876600h").is_ok(), "100 years is allowed");
        for huge in ["100000000h", "876700h", "999999999999h", "1e300h"] {
            let err = ban_end(now, huge).unwrap_err();
            assert!(
                matches!(err, Error::Validation { .. }),
                "{huge}: a validation error, not a panic: {err:?}"
            );
        }
        // Near the end of the calendar a bounded ban still cannot overflow.
        let late = time::macros::datetime!(9990-01-01 0:00 UTC);
        assert!(matches!(
            ban_end(late, "876000h"),
            Err(Error::Validation { .. })
        ));
    }

    #[test]
    fn metadata_merges_shallowly_and_null_removes() {
        let base = json!({"a": 1, "b": {"x": 1}, "c": 3});
        let merged = merge_metadata(&base, &json!({"b": {"y": 2}, "c": null, "d": 4}));
        assert_eq!(merged, json!({"a": 1, "b": {"y": 2}, "d": 4}));
    }
}
