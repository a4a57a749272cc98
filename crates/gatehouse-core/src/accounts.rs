//! Accounts: sign-up, sign-in, the profile, and changing the password.

use gatehouse_store::{NewUser, ProfileUpdate, UserRecord};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::audit::RequestMeta;
use crate::ratelimit::Bucket;
use crate::sessions::{Principal, SessionGrant};
use crate::{new_id, validate, Error, Gatehouse};

/// A sign-up request.
#[derive(Debug)]
pub struct SignUp {
    pub email: String,
    pub password: SecretString,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub user_metadata: Option<Value>,
}

/// Who is signing in.
#[derive(Debug, Clone)]
pub enum Identifier {
    Email(String),
    Username(String),
}

/// A sign-in request.
#[derive(Debug)]
pub struct SignIn {
    pub identifier: Identifier,
    pub password: SecretString,
}

/// A change to one's own profile. `None` leaves a field as it is; `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct ProfileChange {
    pub display_name: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub user_metadata: Option<Value>,
}

impl Gatehouse {
    pub(crate) fn check_password(
        &self,
        password: &SecretString,
        email: Option<&str>,
        username: Option<&str>,
    ) -> Result<(), Error> {
        let reasons =
            self.settings()
                .password_policy
                .check(password.expose_secret(), email, username);
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(Error::WeakPassword { reasons })
        }
    }

    /// Creates a user and its profile in one transaction.
    pub async fn sign_up(&self, input: SignUp, meta: &RequestMeta) -> Result<UserRecord, Error> {
        self.limit(Bucket::SignupIp, meta.ip.as_deref()).await?;
        let email = validate::email(&input.email)?;
        let username = input
            .username
            .as_deref()
            .map(validate::username)
            .transpose()?;
        let display_name = match input.display_name.as_deref() {
            Some(name) => validate::display_name(name)?,
            None => None,
        };
        let user_metadata = input.user_metadata.unwrap_or_else(|| json!({}));
        validate::user_metadata(&user_metadata)?;
        self.check_password(&input.password, Some(&email), username.as_deref())?;
        // Checked before hashing so a taken address costs no hash; the unique index
        // still decides races.
        if self.store.find_user_by_email(&email).await?.is_some() {
            return Err(Error::UserAlreadyExists { field: "email" });
        }
        if let Some(name) = &username {
            if self.store.find_user_by_username(name).await?.is_some() {
                return Err(Error::UserAlreadyExists { field: "username" });
            }
        }
        let password_hash = self.inner.hasher.hash(&input.password).await?;
        let now = self.now();
        let user = NewUser {
            id: new_id(now),
            email,
            username,
            password_hash,
            role: "user".to_owned(),
            app_metadata: json!({ "provider": "email", "providers": ["email"] }),
            user_metadata,
            email_confirmed_at: Some(now.into()),
            display_name,
            created_at: now.into(),
        };
        self.store.create_user(&user).await?;
        self.audit("user.signup", Some(user.id), Some(user.id), meta, json!({}))
            .await?;
        self.store.get_user(user.id).await?.ok_or(Error::NotFound)
    }

    /// Checks a password and starts a session. A wrong password and an unknown user are
    /// the same error at the same cost; bcrypt or outdated hashes are upgraded.
    pub async fn sign_in(&self, input: SignIn, meta: &RequestMeta) -> Result<SessionGrant, Error> {
        self.limit(Bucket::SigninIp, meta.ip.as_deref()).await?;
        let who = match &input.identifier {
            Identifier::Email(e) => format!("email:{}", e.trim().to_lowercase()),
            Identifier::Username(u) => format!("username:{}", u.trim().to_lowercase()),
        };
        let account_source = meta.ip.as_deref().map(|ip| format!("{who}|{ip}"));
        self.limit(Bucket::SigninAccountIp, account_source.as_deref())
            .await?;
        let (user, method) = match &input.identifier {
            Identifier::Email(email) => {
                (self.store.find_user_by_email(email.trim()).await?, "email")
            }
            Identifier::Username(name) => (
                self.store.find_user_by_username(name.trim()).await?,
                "username",
            ),
        };
        let verification = self
            .inner
            .hasher
            .verify(
                &input.password,
                user.as_ref().and_then(|u| u.password_hash.as_deref()),
            )
            .await?;
        let Some(user) = user.filter(|_| verification.valid) else {
            self.audit(
                "user.signin_failed",
                None,
                None,
                meta,
                json!({ "by": method }),
            )
            .await?;
            return Err(Error::InvalidCredentials);
        };
        if !user.is_active {
            self.audit(
                "user.signin_failed",
                Some(user.id),
                Some(user.id),
                meta,
                json!({ "by": method, "reason": "inactive" }),
            )
            .await?;
            return Err(Error::UserInactive);
        }
        let now = self.now();
        if user.banned_until.is_some_and(|b| b.get() > now) {
            self.audit(
                "user.signin_failed",
                Some(user.id),
                Some(user.id),
                meta,
                json!({ "by": method, "reason": "banned" }),
            )
            .await?;
            return Err(Error::UserBanned);
        }
        if verification.needs_rehash {
            let hash = self.inner.hasher.hash(&input.password).await?;
            self.store
                .update_password_hash(user.id, &hash, now.into())
                .await?;
        }
        self.store.record_sign_in(user.id, now.into()).await?;
        let mut user = user;
        user.last_sign_in_at = Some(now.into());
        self.audit(
            "user.signin",
            Some(user.id),
            Some(user.id),
            meta,
            json!({ "by": method }),
        )
        .await?;
        self.start_session(user, "password", meta).await
    }

    /// Updates one's own profile and user metadata.
    pub async fn update_profile(
        &self,
        principal: &Principal,
        change: ProfileChange,
    ) -> Result<UserRecord, Error> {
        let user = &principal.user;
        let display_name = match change.display_name {
            None => user.display_name.clone(),
            Some(None) => None,
            Some(Some(name)) => validate::display_name(&name)?,
        };
        let avatar_url = match change.avatar_url {
            None => user.avatar_url.clone(),
            Some(None) => None,
            Some(Some(url)) => validate::avatar_url(&url)?,
        };
        let user_metadata = match change.user_metadata {
            None => user.user_metadata.0.clone(),
            Some(metadata) => {
                validate::user_metadata(&metadata)?;
                metadata
            }
        };
        let update = ProfileUpdate {
            display_name,
            avatar_url,
            user_metadata,
            updated_at: self.now().into(),
        };
        self.store.update_profile(user.id, &update).await?;
        self.store.get_user(user.id).await?.ok_or(Error::NotFound)
    }

    /// Changes one's password: the current one is required, the new one must pass the
    /// policy, and every other session ends.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: &SecretString,
        new: &SecretString,
        meta: &RequestMeta,
    ) -> Result<u64, Error> {
        let user = &principal.user;
        self.limit(Bucket::PasswordAccount, Some(&user.id.to_string()))
            .await?;
        let verification = self
            .inner
            .hasher
            .verify(current, user.password_hash.as_deref())
            .await?;
        if !verification.valid {
            self.audit(
                "user.password_change_failed",
                Some(user.id),
                Some(user.id),
                meta,
                json!({}),
            )
            .await?;
            return Err(Error::CurrentPasswordInvalid);
        }
        self.check_password(new, user.email.as_deref(), user.username.as_deref())?;
        let hash = self.inner.hasher.hash(new).await?;
        let now = self.now();
        self.store
            .update_password_hash(user.id, &hash, now.into())
            .await?;
        let ended = self
            .store
            .revoke_user_sessions(
                user.id,
                Some(principal.session.id),
                now.into(),
                "password_changed",
            )
            .await?;
        self.audit(
            "user.password_changed",
            Some(user.id),
            Some(user.id),
            meta,
            json!({ "sessions_ended": ended }),
        )
        .await?;
        Ok(ended)
    }
}
