//! Accounts: sign-up, sign-in, and one's own account — the profile, and the one operation
//! that changes one's password, email or metadata (for the app API and `/auth/v1` alike).
//! Signing in is [`sign_in`].

mod sign_in;

pub use sign_in::{Identifier, SignIn};

use std::sync::Arc;

use gatehouse_store::{ChangeOutcome, NewUser, ProfileUpdate, Timestamp, UserChange, UserRecord};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

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
    /// A reauthentication code (`GET /reauthenticate`): the third proof.
    pub nonce: Option<SecretString>,
    /// Where the email change's confirmation links lead (an allowed URL, else the site).
    pub redirect_to: Option<String>,
}

/// What a checked own change brings to its transaction besides the row change: the new
/// password (to send upstream), the reauthentication code to redeem with it, and the new
/// address whose confirmations to mail.
struct Proofs<'a> {
    password: Option<&'a SecretString>,
    nonce_token: Option<uuid::Uuid>,
    email_change: Option<&'a str>,
    redirect_to: Option<&'a str>,
}

/// What came of an [`OwnChange`].
#[derive(Debug)]
pub struct OwnChanged {
    pub user: UserRecord,
    /// How many other sessions a new password ended.
    pub sessions_ended: u64,
    /// A new address waiting for its confirmations (a mailer is configured): the email
    /// has not changed yet.
    pub email_change_pending: Option<String>,
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
    /// and registers it with the identity provider (hashes the password; in Supabase mode,
    /// creates the account upstream): everything before the write, which is the caller's,
    /// in its transaction (on failure the caller calls `identity.unregister`). The one way users are made, by sign-up, the admin APIs or the CLI.
    /// With `taken_email_ok` a taken address is not an error (a sign-up under
    /// confirmation, which answers alike either way).
    pub(crate) async fn plan_account(
        &self,
        input: NewAccount,
        check_policy: bool,
        by_admin: bool,
        taken_email_ok: bool,
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
        if !taken_email_ok && self.store.find_user_by_email(&email).await?.is_some() {
            return Err(Error::UserAlreadyExists { field: "email" });
        }
        if let Some(name) = &username {
            if self.store.find_user_by_username(name).await?.is_some() {
                return Err(Error::UserAlreadyExists { field: "username" });
            }
        }
        let now = self.now();
        let planned = NewUser {
            id: new_id(now),
            email,
            username,
            password_hash: None,
            role: input.role,
            app_metadata,
            user_metadata,
            email_confirmed_at: input.email_confirmed.then(|| now.into()),
            banned_until: input.banned_until.map(Into::into),
            display_name,
            created_at: now.into(),
        };
        self.identity.register(planned, &password, by_admin).await
    }
}

pub(crate) fn signup_account(input: SignUp, confirmed: bool) -> NewAccount {
    NewAccount {
        email: input.email,
        username: input.username,
        password: Some(input.password),
        role: "user".to_owned(),
        display_name: input.display_name,
        user_metadata: input.user_metadata,
        app_metadata: None,
        email_confirmed: confirmed,
        banned_until: None,
    }
}

impl Accounts {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Creates a user and its profile, audited, in one transaction.
    pub async fn sign_up(&self, input: SignUp, meta: &RequestMeta) -> Result<UserRecord, Error> {
        let (tx, user) = self.write_sign_up(input, true, meta).await?;
        if let Err(err) = tx.commit().await {
            self.shared.identity.unregister(user.id).await;
            return Err(err.into());
        }
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
        let (mut tx, mut user) = self.write_sign_up(input, true, meta).await?;
        let now: Timestamp = self.shared.now().into();
        tx.record_sign_in(user.id, now).await?;
        user.last_sign_in_at = Some(now);
        let grant = self
            .shared
            .identity
            .start_session(&mut tx, user, "password", meta, None)
            .await?;
        tx.commit().await?;
        Ok(grant)
    }

    /// Whether sign-ups wait for a confirmation mail (a mailer, without autoconfirm).
    pub fn confirms_sign_ups(&self) -> bool {
        !crate::mail::Mail::new(self.shared.clone()).autoconfirm()
    }

    /// A sign-up when addresses are confirmed ([`confirms_sign_ups`](Self::confirms_sign_ups)):
    /// a new account is made unconfirmed and mailed a confirmation; a taken address
    /// answers the same, and its owner is mailed instead (see
    /// [`SignedUp`](crate::mail::SignedUp)). Without confirmation, it signs in at once.
    pub async fn sign_up_confirming(
        &self,
        input: SignUp,
        redirect_to: Option<&str>,
        pkce: Option<crate::mail::pkce::Pkce>,
        meta: &RequestMeta,
    ) -> Result<crate::mail::SignedUp, Error> {
        if !self.confirms_sign_ups() {
            let grant = self.sign_up_and_sign_in(input, meta).await?;
            return Ok(crate::mail::SignedUp::Session(Box::new(grant)));
        }
        crate::mail::Mail::new(self.shared.clone())
            .sign_up_confirming(input, redirect_to, pkce, meta)
            .await
    }

    /// A new account whose address is not confirmed yet.
    pub(crate) async fn sign_up_unconfirmed(
        &self,
        input: SignUp,
        meta: &RequestMeta,
    ) -> Result<UserRecord, Error> {
        let (tx, user) = self.write_sign_up(input, false, meta).await?;
        if let Err(err) = tx.commit().await {
            self.shared.identity.unregister(user.id).await;
            return Err(err.into());
        }
        Ok(user)
    }

    /// What every sign-up does: the limit, the checks and the hash, then, in a transaction
    /// the caller commits, the user, its profile and the audit row.
    async fn write_sign_up(
        &self,
        input: SignUp,
        confirmed: bool,
        meta: &RequestMeta,
    ) -> Result<(gatehouse_store::Transaction, UserRecord), Error> {
        let shared = &self.shared;
        shared
            .limit(Bucket::SignupIp, meta.source.as_deref())
            .await?;
        let new = shared
            .plan_account(signup_account(input, confirmed), true, false, false)
            .await?;
        let event = shared.audit_record("user.signup", Some(new.id), Some(new.id), meta, json!({}));
        let written = async {
            let mut tx = shared.store.begin().await?;
            let user = tx.create_user(&new).await?;
            tx.insert_audit_event(&event).await?;
            Ok::<_, Error>((tx, user))
        }
        .await;
        if written.is_err() {
            shared.identity.unregister(new.id).await;
        }
        written
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
        if update.user_metadata != user.user_metadata.0 {
            // In Supabase mode the metadata is the project's: it changes there first.
            self.shared
                .identity
                .push_user_metadata(user.id, &update.user_metadata)
                .await?;
        }
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
            if shared.identity.is_upstream() {
                // The project confirms a new address before it counts; writing it here
                // would skip that (and let anyone claim an address they do not own).
                return Err(Error::Forbidden(
                    "in Supabase mode an email address is changed through the project, which \
                     confirms it",
                ));
            }
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
        let mail = crate::mail::Mail::new(shared.clone());
        let mut email_change_pending = None;
        if mail.enabled() {
            // With a mailer, a new address counts once both addresses confirm it.
            email_change_pending = change.email.take();
        }
        let mut nonce_token = None;
        if own.password.is_some() || change.email.is_some() || email_change_pending.is_some() {
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
            nonce_token = match &own.nonce {
                Some(nonce) => match mail.check_nonce(user, nonce.expose_secret()).await {
                    Ok(token) => Some(token),
                    Err(err) => {
                        let details = json!({ "reason": "reauthentication code wrong" });
                        let action = format!("user.{what}_change_failed");
                        shared
                            .audit(&action, Some(user.id), Some(user.id), meta, details)
                            .await?;
                        return Err(err);
                    }
                },
                None => {
                    self.require_proof(principal, own.current_password.as_ref(), what, meta)
                        .await?;
                    None
                }
            };
        }
        if let Some(new_email) = &email_change_pending {
            // Only after the limit and the proof: a signed-in caller cannot test addresses.
            if shared.store.find_user_by_email(new_email).await?.is_some() {
                return Err(Error::EmailExists);
            }
            mail.limit_email_change(new_email, meta).await?;
        }
        if let Some(password) = &own.password {
            change.password_hash = shared.identity.new_password(password).await?;
        }
        let mut changed = self
            .write_own_change(
                principal,
                &change,
                Proofs {
                    password: own.password.as_ref(),
                    nonce_token,
                    email_change: email_change_pending.as_deref(),
                    redirect_to: own.redirect_to.as_deref(),
                },
                via,
                meta,
            )
            .await?;
        changed.email_change_pending = email_change_pending;
        Ok(changed)
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
        proofs: Proofs<'_>,
        via: &str,
        meta: &RequestMeta,
    ) -> Result<OwnChanged, Error> {
        let Proofs {
            password,
            nonce_token,
            email_change,
            redirect_to,
        } = proofs;
        let shared = &self.shared;
        let user = principal.user.id;
        let at: Timestamp = shared.now().into();
        let mut tx = shared.store.begin().await?;
        if let Some(token) = nonce_token {
            // The code proves the change once: redeemed with it, or not at all.
            if !tx.consume_one_time_token(token, at).await? {
                return Err(Error::ReauthenticationInvalid);
            }
        }
        let mail = crate::mail::Mail::new(shared.clone());
        if let Some(new_email) = email_change {
            mail.write_email_change(&mut tx, &principal.user, new_email, redirect_to, meta)
                .await?;
        }
        if shared
            .identity
            .change_user(&mut tx, user, change, password, false, at)
            .await?
            != ChangeOutcome::Changed
        {
            return Err(Error::NotFound);
        }
        let mut sessions_ended = 0;
        if password.is_some() {
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
                .guard
                .remember_sign_in(&mut tx, user, &Voucher::Nothing, false, meta)
                .await?;
        }
        if change.email.is_some() || change.user_metadata.is_some() {
            let details = json!({ "email_changed": change.email.is_some(), "metadata_changed": change.user_metadata.is_some(), "via": via });
            let event = shared.audit_record("user.updated", Some(user), Some(user), meta, details);
            tx.insert_audit_event(&event).await?;
        }
        tx.commit().await?;
        if email_change.is_some() {
            mail.wake();
        }
        Ok(OwnChanged {
            user: change.applied_to(&principal.user, at),
            sessions_ended,
            email_change_pending: None,
        })
    }
}
