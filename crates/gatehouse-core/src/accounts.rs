//! Accounts: sign-up, sign-in, and one's own account — the profile, and the one operation
//! that changes one's password, email or metadata (for the app API and `/auth/v1` alike).

use std::sync::Arc;

use gatehouse_store::{ChangeOutcome, NewUser, ProfileUpdate, Timestamp, UserChange, UserRecord};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::admin::NewAccount;
use crate::audit::RequestMeta;
use crate::protection::Voucher;
use crate::ratelimit::Bucket;
use crate::sessions::{Principal, SessionGrant};
use crate::shared::Shared;
use crate::{new_id, validate, Error};

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

impl Identifier {
    /// What sign-in failures of this identifier are counted under: the same key for every
    /// way of typing it (case, surrounding space), and for the stored form an admin unlock
    /// clears.
    pub(crate) fn failure_key(&self) -> String {
        match self {
            Self::Email(e) => format!("email:{}", e.trim().to_lowercase()),
            Self::Username(u) => format!("username:{}", u.trim().to_lowercase()),
        }
    }

    fn typed(&self) -> &str {
        match self {
            Self::Email(text) | Self::Username(text) => text,
        }
    }

    fn method(&self) -> &'static str {
        match self {
            Self::Email(_) => "email",
            Self::Username(_) => "username",
        }
    }

    /// This identifier as `user` has it stored, when the user has one of this kind.
    fn stored_by(&self, user: &UserRecord) -> Option<Self> {
        match self {
            Self::Email(_) => user.email.clone().map(Self::Email),
            Self::Username(_) => user.username.clone().map(Self::Username),
        }
    }
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

/// A user's change to their own credentials or metadata (`POST /auth/password`,
/// `PUT /auth/v1/user`). `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct OwnChange {
    pub email: Option<String>,
    pub password: Option<SecretString>,
    /// The current password: one proof a password or email change may bring (a sign-in
    /// within the reauthentication window is the other).
    pub current_password: Option<SecretString>,
    /// The new user metadata, whole.
    pub user_metadata: Option<Value>,
}

/// What came of an [`OwnChange`].
#[derive(Debug)]
pub struct OwnChanged {
    pub user: UserRecord,
    /// How many other sessions a new password ended.
    pub sessions_ended: u64,
}

/// Whether an account may be used now: not deleted, active, not banned. The one check
/// sign-in, refresh and every authenticated request make.
pub(crate) fn check_usable(user: &UserRecord, now: OffsetDateTime) -> Result<(), Error> {
    if user.deleted_at.is_some() || !user.is_active {
        return Err(Error::UserInactive);
    }
    if user.banned_until.is_some_and(|b| b.get() > now) {
        return Err(Error::UserBanned);
    }
    Ok(())
}

/// The accounts service.
#[derive(Clone)]
pub struct Accounts {
    shared: Arc<Shared>,
}

impl Shared {
    /// Checks a new password against the policy.
    pub(crate) fn check_password(
        &self,
        password: &SecretString,
        email: Option<&str>,
        username: Option<&str>,
    ) -> Result<(), Error> {
        let reasons =
            self.settings
                .password_policy
                .check(password.expose_secret(), email, username);
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(Error::WeakPassword { reasons })
        }
    }

    /// Validates an account, checks its password against the policy (unless generated)
    /// and hashes it: everything before the write, which is the caller's, in its
    /// transaction. The one way users are made, by sign-up, the admin APIs or the CLI.
    pub(crate) async fn plan_account(
        &self,
        input: NewAccount,
        check_policy: bool,
    ) -> Result<NewUser, Error> {
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
        let password_hash = self.identity.new_password(&password).await?;
        let now = self.now();
        Ok(NewUser {
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
        })
    }
}

fn signup_account(input: SignUp) -> NewAccount {
    NewAccount {
        email: input.email,
        username: input.username,
        password: Some(input.password),
        role: "user".to_owned(),
        display_name: input.display_name,
        user_metadata: input.user_metadata,
        app_metadata: None,
        email_confirmed: true,
    }
}

impl Accounts {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Creates a user and its profile, audited, in one transaction.
    pub async fn sign_up(&self, input: SignUp, meta: &RequestMeta) -> Result<UserRecord, Error> {
        let shared = &self.shared;
        shared
            .limit(Bucket::SignupIp, meta.source.as_deref())
            .await?;
        let new = shared.plan_account(signup_account(input), true).await?;
        let event = shared.audit_record("user.signup", Some(new.id), Some(new.id), meta, json!({}));
        let mut tx = shared.store.begin().await?;
        let user = shared.identity.create_user(&mut tx, &new).await?;
        tx.insert_audit_event(&event).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Sign-up that confirms at once and starts a session (GoTrue with autoconfirm, which
    /// is what a server without a mailer does): the user, its profile, the audit row and
    /// the session in one transaction.
    pub async fn sign_up_and_sign_in(
        &self,
        input: SignUp,
        meta: &RequestMeta,
    ) -> Result<SessionGrant, Error> {
        let shared = &self.shared;
        shared
            .limit(Bucket::SignupIp, meta.source.as_deref())
            .await?;
        let new = shared.plan_account(signup_account(input), true).await?;
        let event = shared.audit_record("user.signup", Some(new.id), Some(new.id), meta, json!({}));
        let now: Timestamp = shared.now().into();
        let mut tx = shared.store.begin().await?;
        let mut user = shared.identity.create_user(&mut tx, &new).await?;
        tx.insert_audit_event(&event).await?;
        tx.record_sign_in(user.id, now).await?;
        user.last_sign_in_at = Some(now);
        let grant = shared
            .identity
            .start_session(&mut tx, user, "password", meta)
            .await?;
        tx.commit().await?;
        Ok(grant)
    }

    /// Checks a password and starts a session. A wrong password and an unknown user are
    /// the same error at the same cost; bcrypt or outdated hashes are upgraded. An account
    /// at the hard stop answers `account_locked` — before its password is looked at, alike
    /// for right and wrong passwords — unless a device cookie or a known source vouches for
    /// the attempt (see [`crate::protection`]). What a success writes (the session, the
    /// reset failure counts, the remembered device, the audit row) is one transaction.
    pub async fn sign_in(&self, input: SignIn, meta: &RequestMeta) -> Result<SessionGrant, Error> {
        let shared = &self.shared;
        shared
            .limit(Bucket::SigninIp, meta.source.as_deref())
            .await?;
        let typed_key = input.identifier.failure_key();
        let source = meta.source.clone().unwrap_or_default();
        let account_source = meta.source.as_deref().map(|ip| format!("{typed_key}|{ip}"));
        shared
            .limit(Bucket::SigninAccountIp, account_source.as_deref())
            .await?;
        let typed = input.identifier.typed();
        if typed.len() > 320 || typed.chars().any(char::is_control) {
            // No account is called that; answer as for any unknown one, at the same cost,
            // without storing what was typed.
            shared
                .identity
                .verify_password(None, &input.password)
                .await?;
            let details = json!({ "reason": "malformed identifier", "identifier_digest": shared.identifier_digest(&typed_key) });
            shared
                .audit("user.signin_failed", None, None, meta, details)
                .await?;
            return Err(Error::InvalidCredentials);
        }
        let method = input.identifier.method();
        let user = match &input.identifier {
            Identifier::Email(email) => shared.store.find_user_by_email(email.trim()).await?,
            Identifier::Username(name) => shared.store.find_user_by_username(name.trim()).await?,
        };
        // A known account's failures count under its stored identifier, however it was
        // typed, so an unlock (which knows only the stored form) always clears them.
        let who = user
            .as_ref()
            .and_then(|u| input.identifier.stored_by(u))
            .map_or(typed_key, |stored| stored.failure_key());
        // Asked for unknown identifiers too (as the nil id, which nothing vouches for), so
        // that an existing account costs no extra query: no timing tells them apart.
        let voucher = shared
            .voucher(
                user.as_ref().map_or(uuid::Uuid::nil(), |u| u.id),
                input.device_cookie.as_ref(),
                meta,
            )
            .await?;
        let counted_as = voucher.failure_source(&source);
        shared.check_failures(&who, &counted_as).await?;
        if let Some(locked) = user
            .as_ref()
            .filter(|u| u.locked_at.is_some() && !voucher.vouches())
        {
            // The same work and the same answer whatever the password: a stopped account
            // is no oracle for it.
            shared
                .identity
                .verify_password(None, &input.password)
                .await?;
            let details = json!({ "by": method, "reason": "locked" });
            shared
                .audit("user.signin_failed", None, Some(locked.id), meta, details)
                .await?;
            return Err(Error::AccountLocked);
        }
        let verification = shared
            .identity
            .verify_password(user.as_ref(), &input.password)
            .await?;
        let known = user.as_ref().map(|u| u.id);
        let Some(mut user) = user.filter(|_| verification.valid) else {
            let details = match known {
                Some(_) => json!({ "by": method, "reason": "wrong password" }),
                None => json!({
                    "by": method,
                    "reason": "unknown identifier",
                    "identifier_digest": shared.identifier_digest(&who),
                }),
            };
            let event = shared.audit_record("user.signin_failed", None, known, meta, details);
            let mut tx = shared.store.begin().await?;
            shared
                .count_failure(&mut tx, &who, &counted_as, known, meta)
                .await?;
            tx.insert_audit_event(&event).await?;
            tx.commit().await?;
            return Err(Error::InvalidCredentials);
        };
        let now = shared.now();
        if let Err(refusal) = check_usable(&user, now) {
            let reason = match refusal {
                Error::UserBanned => "banned",
                _ => "inactive",
            };
            let details = json!({ "by": method, "reason": reason });
            shared
                .audit(
                    "user.signin_failed",
                    Some(user.id),
                    Some(user.id),
                    meta,
                    details,
                )
                .await?;
            return Err(refusal);
        }
        let rehash = match verification.needs_rehash {
            true => Some(shared.identity.new_password(&input.password).await?),
            false => None,
        };
        let vouched_by = match voucher {
            Voucher::Device(_) => "device",
            Voucher::KnownSource => "known_source",
            Voucher::Nothing => "none",
        };
        let details = json!({ "by": method, "vouched_by": vouched_by, "while_locked": user.locked_at.is_some() });
        let event = shared.audit_record("user.signin", Some(user.id), Some(user.id), meta, details);
        let mut tx = shared.store.begin().await?;
        tx.clear_sign_in_failures(&who, &counted_as).await?;
        if user.failed_sign_ins != 0 {
            tx.reset_user_failures(user.id, false).await?;
        }
        if let Some(hash) = rehash {
            let change = UserChange {
                password_hash: Some(hash),
                ..UserChange::default()
            };
            let _ = shared
                .identity
                .change_user(&mut tx, user.id, &change, false, now.into())
                .await?;
        }
        tx.record_sign_in(user.id, now.into()).await?;
        let device_cookie = shared
            .remember_sign_in(&mut tx, user.id, &voucher, input.remember_device, meta)
            .await?;
        tx.insert_audit_event(&event).await?;
        user.last_sign_in_at = Some(now.into());
        user.failed_sign_ins = 0;
        let mut grant = shared
            .identity
            .start_session(&mut tx, user, "password", meta)
            .await?;
        tx.commit().await?;
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
            updated_at: self.shared.now().into(),
        };
        let mut tx = self.shared.store.begin().await?;
        tx.update_profile(user.id, &update).await?;
        tx.commit().await?;
        let mut after = user.clone();
        after.display_name = update.display_name;
        after.avatar_url = update.avatar_url;
        after.user_metadata = gatehouse_store::Json(update.user_metadata);
        after.updated_at = update.updated_at;
        Ok(after)
    }

    /// Changes one's own email, password or metadata: the one operation behind
    /// `POST /auth/password` and `PUT /auth/v1/user`. A new password or email needs a proof
    /// that the caller is the account's owner, not merely the holder of its access token:
    /// the current password, or a session signed in within the reauthentication window.
    /// The new password must pass the policy. Everything is checked before the one
    /// transaction, which writes the change, ends every other session on a new password
    /// (and forgets the devices the old one vouched for), and audits it. `via` names the
    /// surface, for the audit trail.
    pub async fn update_own(
        &self,
        principal: &Principal,
        own: OwnChange,
        via: &'static str,
        meta: &RequestMeta,
    ) -> Result<OwnChanged, Error> {
        let shared = &self.shared;
        let user = &principal.user;
        let mut change = UserChange::default();
        if let Some(email) = &own.email {
            let email = validate::email(email)?;
            if user
                .email
                .as_deref()
                .is_none_or(|e| !e.eq_ignore_ascii_case(&email))
            {
                change.email = Some(email);
            }
        }
        if let Some(metadata) = own.user_metadata {
            validate::user_metadata(&metadata)?;
            change.user_metadata = Some(metadata);
        }
        if let Some(password) = &own.password {
            let email = change.email.as_deref().or(user.email.as_deref());
            shared.check_password(password, email, user.username.as_deref())?;
        }
        if own.password.is_some() || change.email.is_some() {
            // The limit first, so that current passwords cannot be guessed here faster
            // than anywhere else.
            shared
                .limit(Bucket::PasswordAccount, Some(&user.id.to_string()))
                .await?;
            let what = if own.password.is_some() {
                "password"
            } else {
                "email"
            };
            self.require_proof(principal, own.current_password.as_ref(), what, meta)
                .await?;
        }
        if let Some(password) = &own.password {
            change.password_hash = Some(shared.identity.new_password(password).await?);
        }
        self.write_own_change(principal, &change, via, meta).await
    }

    /// That the caller of a password or email change is the owner: `current` is their
    /// password, or — when none is given — their session was signed in within
    /// `reauth_window`. A stolen access token alone proves neither; a refresh does not
    /// renew the window. A wrong password is audited.
    async fn require_proof(
        &self,
        principal: &Principal,
        current: Option<&SecretString>,
        change: &'static str,
        meta: &RequestMeta,
    ) -> Result<(), Error> {
        let shared = &self.shared;
        let user = &principal.user;
        let (refusal, reason) = match current {
            Some(current) => {
                let verification = shared.identity.verify_password(Some(user), current).await?;
                if verification.valid {
                    return Ok(());
                }
                (Error::CurrentPasswordInvalid, "current password wrong")
            }
            None => {
                let window = shared.settings.reauth_window;
                let fresh = principal
                    .session
                    .authenticated_at
                    .is_some_and(|at| shared.now() - at.get() <= window);
                if fresh {
                    return Ok(());
                }
                (Error::ReauthenticationNeeded, "reauthentication needed")
            }
        };
        let details = json!({ "reason": reason });
        let action = format!("user.{change}_change_failed");
        shared
            .audit(&action, Some(user.id), Some(user.id), meta, details)
            .await?;
        Err(refusal)
    }

    async fn write_own_change(
        &self,
        principal: &Principal,
        change: &UserChange,
        via: &str,
        meta: &RequestMeta,
    ) -> Result<OwnChanged, Error> {
        let shared = &self.shared;
        let user = principal.user.id;
        let at: Timestamp = shared.now().into();
        let mut tx = shared.store.begin().await?;
        if shared
            .identity
            .change_user(&mut tx, user, change, false, at)
            .await?
            != ChangeOutcome::Changed
        {
            return Err(Error::NotFound);
        }
        let mut sessions_ended = 0;
        if change.password_hash.is_some() {
            sessions_ended = shared
                .identity
                .end_sessions(
                    &mut tx,
                    user,
                    Some(principal.session.id),
                    "password_changed",
                )
                .await?;
            tx.forget_trust(user).await?;
            let details = json!({ "via": via, "sessions_ended": sessions_ended });
            let event = shared.audit_record(
                "user.password_changed",
                Some(user),
                Some(user),
                meta,
                details,
            );
            tx.insert_audit_event(&event).await?;
            // The owner just proved who they are from here: this source vouches again (a
            // device cookie comes with the next app-API sign-in).
            shared
                .remember_sign_in(&mut tx, user, &Voucher::Nothing, false, meta)
                .await?;
        }
        if change.email.is_some() || change.user_metadata.is_some() {
            let details = json!({ "email_changed": change.email.is_some(), "metadata_changed": change.user_metadata.is_some(), "via": via });
            let event = shared.audit_record("user.updated", Some(user), Some(user), meta, details);
            tx.insert_audit_event(&event).await?;
        }
        tx.commit().await?;
        Ok(OwnChanged {
            user: change.applied_to(&principal.user, at),
            sessions_ended,
        })
    }
}
