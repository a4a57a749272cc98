//! Accounts: sign-up, sign-in, the profile, and changing the password.

use gatehouse_store::{ChangeOutcome, NewUser, ProfileUpdate, UserChange, UserEffects, UserRecord};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::admin::NewAccount;
use crate::audit::RequestMeta;
use crate::protection::Voucher;
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
    /// The device cookie the browser sent (app API), which vouches for the attempt if this
    /// server gave it to this account's browser.
    pub device_cookie: Option<SecretString>,
    /// Whether to hand out a new device cookie on success (surfaces that set cookies).
    pub remember_device: bool,
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
        self.limit(Bucket::SignupIp, meta.source.as_deref()).await?;
        let account = NewAccount {
            email: input.email,
            username: input.username,
            password: Some(input.password),
            role: "user".to_owned(),
            display_name: input.display_name,
            user_metadata: input.user_metadata,
            app_metadata: None,
            email_confirmed: true,
        };
        let user = self.insert_account(account, true).await?;
        self.audit("user.signup", Some(user.id), Some(user.id), meta, json!({}))
            .await?;
        Ok(user)
    }

    /// Validates an account, checks its password against the policy (unless generated)
    /// and writes the user and its profile. The one way users are made, by sign-up, the
    /// admin API or the CLI.
    pub(crate) async fn insert_account(
        &self,
        input: NewAccount,
        check_policy: bool,
    ) -> Result<UserRecord, Error> {
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
        let mut app_metadata = json!({ "provider": "email", "providers": ["email"] });
        if let Some(extra) = &input.app_metadata {
            validate::metadata("app_metadata", extra)?;
            for (key, value) in extra.as_object().into_iter().flatten() {
                // The role is the users.role column, set only through the role rules.
                if key != "role" {
                    app_metadata[key] = value.clone();
                }
            }
        }
        let Some(password) = input.password else {
            return Err(Error::invalid("password", "is required"));
        };
        if check_policy {
            self.check_password(&password, Some(&email), username.as_deref())?;
        }
        // Checked before hashing so a taken address costs no hash; the unique indexes
        // still decide races.
        if self.store.find_user_by_email(&email).await?.is_some() {
            return Err(Error::UserAlreadyExists { field: "email" });
        }
        if let Some(name) = &username {
            if self.store.find_user_by_username(name).await?.is_some() {
                return Err(Error::UserAlreadyExists { field: "username" });
            }
        }
        let password_hash = self.inner.hasher.hash(&password).await?;
        let now = self.now();
        let user = NewUser {
            id: new_id(now),
            email,
            username,
            password_hash,
            role: input.role,
            app_metadata,
            user_metadata,
            email_confirmed_at: input.email_confirmed.then(|| now.into()),
            display_name,
            created_at: now.into(),
        };
        self.store.create_user(&user).await?;
        self.store.get_user(user.id).await?.ok_or(Error::NotFound)
    }

    /// Checks a password and starts a session. A wrong password and an unknown user are
    /// the same error at the same cost; bcrypt or outdated hashes are upgraded. An account
    /// at the hard stop answers `account_locked` — before its password is looked at, alike
    /// for right and wrong passwords — unless a device cookie or a known source vouches for
    /// the attempt (see [`crate::protection`]).
    pub async fn sign_in(&self, input: SignIn, meta: &RequestMeta) -> Result<SessionGrant, Error> {
        self.limit(Bucket::SigninIp, meta.source.as_deref()).await?;
        let who = match &input.identifier {
            Identifier::Email(e) => format!("email:{}", e.trim().to_lowercase()),
            Identifier::Username(u) => format!("username:{}", u.trim().to_lowercase()),
        };
        let source = meta.source.clone().unwrap_or_default();
        let account_source = meta.source.as_deref().map(|ip| format!("{who}|{ip}"));
        self.limit(Bucket::SigninAccountIp, account_source.as_deref())
            .await?;
        let typed = match &input.identifier {
            Identifier::Email(e) | Identifier::Username(e) => e,
        };
        if typed.len() > 320 || typed.chars().any(char::is_control) {
            // No account is called that; answer as for any unknown one, at the same cost,
            // without storing what was typed.
            self.inner.hasher.verify(&input.password, None).await?;
            self.audit(
                "user.signin_failed",
                None,
                None,
                meta,
                json!({ "reason": "malformed identifier", "identifier_digest": self.identifier_digest(&who) }),
            )
            .await?;
            return Err(Error::InvalidCredentials);
        }
        let (user, method) = match &input.identifier {
            Identifier::Email(email) => {
                (self.store.find_user_by_email(email.trim()).await?, "email")
            }
            Identifier::Username(name) => (
                self.store.find_user_by_username(name.trim()).await?,
                "username",
            ),
        };
        // Asked for unknown identifiers too (as the nil id, which nothing vouches for), so
        // that an existing account costs no extra query: no timing tells them apart.
        let voucher = self
            .voucher(
                user.as_ref().map_or(uuid::Uuid::nil(), |u| u.id),
                input.device_cookie.as_ref(),
                meta,
            )
            .await?;
        let counted_as = voucher.failure_source(&source);
        self.check_failures(&who, &counted_as).await?;
        if let Some(locked) = user
            .as_ref()
            .filter(|u| u.locked_at.is_some() && !voucher.vouches())
        {
            // The same work and the same answer whatever the password: a stopped account
            // is no oracle for it.
            self.inner.hasher.verify(&input.password, None).await?;
            self.audit(
                "user.signin_failed",
                None,
                Some(locked.id),
                meta,
                json!({ "by": method, "reason": "locked" }),
            )
            .await?;
            return Err(Error::AccountLocked);
        }
        let verification = self
            .inner
            .hasher
            .verify(
                &input.password,
                user.as_ref().and_then(|u| u.password_hash.as_deref()),
            )
            .await?;
        let known = user.as_ref().map(|u| u.id);
        let Some(user) = user.filter(|_| verification.valid) else {
            self.count_failure(&who, &counted_as, known, meta).await?;
            let details = match known {
                Some(_) => json!({ "by": method, "reason": "wrong password" }),
                None => json!({
                    "by": method,
                    "reason": "unknown identifier",
                    "identifier_digest": self.identifier_digest(&who),
                }),
            };
            self.audit("user.signin_failed", None, known, meta, details)
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
        self.store.clear_sign_in_failures(&who, &counted_as).await?;
        if user.failed_sign_ins != 0 {
            self.store.reset_user_failures(user.id, false).await?;
        }
        if verification.needs_rehash {
            let hash = self.inner.hasher.hash(&input.password).await?;
            self.store
                .update_password_hash(user.id, &hash, now.into())
                .await?;
        }
        self.store.record_sign_in(user.id, now.into()).await?;
        let device_cookie = self
            .remember_sign_in(user.id, &voucher, input.remember_device, meta)
            .await?;
        let mut user = user;
        user.last_sign_in_at = Some(now.into());
        user.failed_sign_ins = 0;
        let vouched_by = match voucher {
            Voucher::Device(_) => "device",
            Voucher::KnownSource => "known_source",
            Voucher::Nothing => "none",
        };
        self.audit(
            "user.signin",
            Some(user.id),
            Some(user.id),
            meta,
            json!({ "by": method, "vouched_by": vouched_by, "while_locked": user.locked_at.is_some() }),
        )
        .await?;
        let mut grant = self.start_session(user, "password", meta).await?;
        grant.device_cookie = device_cookie;
        Ok(grant)
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

    /// Changes one's password. It needs a proof that the caller is the account's owner, not
    /// merely the holder of its access token: the current password, or a session signed in
    /// within the reauthentication window. The new one must pass the policy, and every
    /// other session ends.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: Option<&SecretString>,
        new: &SecretString,
        meta: &RequestMeta,
    ) -> Result<u64, Error> {
        let user = &principal.user;
        self.limit(Bucket::PasswordAccount, Some(&user.id.to_string()))
            .await?;
        self.check_password(new, user.email.as_deref(), user.username.as_deref())?;
        self.require_proof(principal, current, "password", meta)
            .await?;
        let change = UserChange {
            password_hash: Some(self.inner.hasher.hash(new).await?),
            ..UserChange::default()
        };
        self.write_own_change(principal, &change, "app", meta).await
    }

    /// That the caller of a password or email change is the owner: `current` is their
    /// password, or — when none is given — their session was signed in within
    /// `reauth_window`. A stolen access token alone proves neither; a refresh does not
    /// renew the window. A wrong password is audited.
    pub(crate) async fn require_proof(
        &self,
        principal: &Principal,
        current: Option<&SecretString>,
        change: &'static str,
        meta: &RequestMeta,
    ) -> Result<(), Error> {
        let user = &principal.user;
        let (refusal, reason) = match current {
            Some(current) => {
                let verification = self
                    .inner
                    .hasher
                    .verify(current, user.password_hash.as_deref())
                    .await?;
                if verification.valid {
                    return Ok(());
                }
                (Error::CurrentPasswordInvalid, "current password wrong")
            }
            None => {
                let window = self.settings().reauth_window;
                let fresh = principal
                    .session
                    .authenticated_at
                    .is_some_and(|at| self.now() - at.get() <= window);
                if fresh {
                    return Ok(());
                }
                (Error::ReauthenticationNeeded, "reauthentication needed")
            }
        };
        self.audit(
            &format!("user.{change}_change_failed"),
            Some(user.id),
            Some(user.id),
            meta,
            json!({ "reason": reason }),
        )
        .await?;
        Err(refusal)
    }

    /// Writes a user's change to their own account, with what follows it, in one
    /// transaction: a new password ends every other session; each change is audited.
    /// Returns how many sessions ended.
    pub(crate) async fn write_own_change(
        &self,
        principal: &Principal,
        change: &UserChange,
        via: &str,
        meta: &RequestMeta,
    ) -> Result<u64, Error> {
        let user = principal.user.id;
        let mut effects = UserEffects::default();
        if change.password_hash.is_some() {
            effects.end_sessions = Some("password_changed");
            effects.forget_trust = true;
            effects.keep_session = Some(principal.session.id);
            effects.sessions_ended_in = Some(effects.audit.len());
            effects.audit.push(self.audit_record(
                "user.password_changed",
                Some(user),
                Some(user),
                meta,
                json!({ "via": via }),
            ));
        }
        if change.email.is_some() || change.user_metadata.is_some() {
            let details = json!({ "email_changed": change.email.is_some(), "metadata_changed": change.user_metadata.is_some(), "via": via });
            effects.audit.push(self.audit_record(
                "user.updated",
                Some(user),
                Some(user),
                meta,
                details,
            ));
        }
        let (outcome, ended) = self
            .store
            .change_user_with(user, change, false, self.now().into(), &effects)
            .await?;
        if outcome != ChangeOutcome::Changed {
            return Err(Error::NotFound);
        }
        if effects.forget_trust {
            // The owner just proved who they are from here: this source vouches again (a
            // device cookie comes with the next app-API sign-in).
            self.remember_sign_in(user, &Voucher::Nothing, false, meta)
                .await?;
        }
        Ok(ended)
    }
}
