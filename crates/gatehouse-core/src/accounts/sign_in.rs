//! Signing in: a password checked at the same cost for known and unknown accounts, the
//! progressive delay and locks of [`crate::protection`] around it, and on success one
//! transaction that starts the session and writes everything that goes with it.

use gatehouse_store::{UserChange, UserRecord};
use secrecy::SecretString;
use serde_json::json;

use super::Accounts;
use crate::audit::RequestMeta;
use crate::identity::check_usable;
use crate::protection::Voucher;
use crate::ratelimit::Bucket;
use crate::sessions::SessionGrant;
use crate::Error;

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

impl Accounts {
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
            let details = json!({ "reason": "malformed identifier", "identifier_digest": shared.guard.identifier_digest(&typed_key) });
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
            .guard
            .voucher(
                user.as_ref().map_or(uuid::Uuid::nil(), |u| u.id),
                input.device_cookie.as_ref(),
                meta,
            )
            .await?;
        let counted_as = voucher.failure_source(&source);
        shared.guard.check_failures(&who, &counted_as).await?;
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
        let known = user.as_ref().map(|u| u.id);
        let typed_email = match &input.identifier {
            Identifier::Email(email) => Some(email.trim()),
            Identifier::Username(_) => None,
        };
        let check = shared
            .identity
            .check_sign_in(user, typed_email, &input.password)
            .await?;
        let Some(mut user) = check.signed_in().cloned() else {
            let details = match known {
                Some(_) => json!({ "by": method, "reason": "wrong password" }),
                None => json!({
                    "by": method,
                    "reason": "unknown identifier",
                    "identifier_digest": shared.guard.identifier_digest(&who),
                }),
            };
            let event = shared.audit_record("user.signin_failed", None, known, meta, details);
            let mut tx = shared.store.begin().await?;
            shared
                .guard
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
            shared.identity.discard(check).await;
            return Err(refusal);
        }
        if user.email_confirmed_at.is_none() && self.confirms_sign_ups() {
            // Said only to a caller who gave the right password (GoTrue does the same).
            let details = json!({ "by": method, "reason": "email not confirmed" });
            shared
                .audit(
                    "user.signin_failed",
                    Some(user.id),
                    Some(user.id),
                    meta,
                    details,
                )
                .await?;
            shared.identity.discard(check).await;
            return Err(Error::EmailNotConfirmed);
        }
        let rehash = match check.verification.needs_rehash {
            true => shared.identity.new_password(&input.password).await?,
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
        shared.identity.admit(&mut tx, &check).await?;
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
                .change_user(&mut tx, user.id, &change, None, false, now.into())
                .await?;
        }
        tx.record_sign_in(user.id, now.into()).await?;
        let device_cookie = shared
            .guard
            .remember_sign_in(&mut tx, user.id, &voucher, input.remember_device, meta)
            .await?;
        tx.insert_audit_event(&event).await?;
        user.last_sign_in_at = Some(now.into());
        user.failed_sign_ins = 0;
        let mut grant = shared
            .identity
            .start_session(&mut tx, user, "password", meta, Some(check))
            .await?;
        tx.commit().await?;
        grant.device_cookie = device_cookie;
        Ok(grant)
    }
}
