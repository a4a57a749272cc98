//! Where credentials live: the one boundary between the rules of auth and the password
//! hashes, sessions and refresh tokens.
//!
//! The services ([`Accounts`](crate::Accounts), [`Sessions`](crate::Sessions),
//! [`Admin`](crate::Admin)) validate, rate-limit, protect accounts and write the audit
//! trail; everything that touches a password hash or the session tables goes through
//! [`IdentityProvider`]. There are two: [`Local`], this server's own database and
//! hasher, and [`Upstream`] (Supabase mode), which forwards the same operations to a
//! Supabase project's Auth API and keeps a mirror of its users here.

mod local;
mod upstream;

pub use local::Local;
pub use upstream::Upstream;

use std::time::Duration;

use time::OffsetDateTime;

use gatehouse_store::{ChangeOutcome, NewUser, SessionRecord, Transaction, UserChange, UserRecord};
use gatehouse_supabase::UpstreamSession;
use secrecy::SecretString;
use serde_json::Value;
use uuid::Uuid;

use crate::audit::RequestMeta;
use crate::password::Verification;
use crate::tokens::AccessClaims;
use crate::Error;

/// What a sign-in or refresh hands out.
pub struct SessionGrant {
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// When the access token expires (Unix seconds, equal to its `exp`).
    pub expires_at: i64,
    /// The new refresh token: for the cookie only, never a body or a log.
    pub refresh_token: SecretString,
    /// How long the refresh token may be kept (for the cookie's Max-Age).
    pub refresh_ttl: Duration,
    pub session_id: Uuid,
    pub user: UserRecord,
    /// A new device cookie for the browser (app API sign-ins only): for the cookie only.
    pub device_cookie: Option<SecretString>,
}

impl std::fmt::Debug for SessionGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionGrant")
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

/// The caller behind a verified access token, with its user and session as the database
/// has them now.
#[derive(Debug, Clone)]
pub struct Principal {
    pub claims: AccessClaims,
    pub user: UserRecord,
    pub session: SessionRecord,
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

/// What a refresh came to.
pub(crate) enum Refreshed {
    /// A new access token and the session's current refresh token.
    Granted(Box<SessionGrant>),
    /// The token was rotated beyond its grace interval: presumed stolen. Nothing is
    /// written yet; the caller ends the session and audits it in one transaction.
    Reused { session: Uuid, user: Uuid },
}

/// What checking a sign-in's password came to.
pub(crate) struct PasswordCheck {
    pub verification: Verification,
    /// The account signing in when the password is right: the local one, or (Supabase
    /// mode) its mirror as the upstream has it, perhaps seen here for the first time.
    pub user: Option<UserRecord>,
    /// The session the upstream already started (Supabase mode).
    upstream: Option<Box<UpstreamSession>>,
}

impl PasswordCheck {
    /// The user, when the password is right.
    pub fn signed_in(&self) -> Option<&UserRecord> {
        self.user.as_ref().filter(|_| self.verification.valid)
    }
}

/// Where credentials live (see the module docs).
pub enum IdentityProvider {
    /// This server's database and password hasher.
    Local(Local),
    /// A Supabase project's Auth API (Supabase mode).
    Upstream(Upstream),
}

impl IdentityProvider {
    /// How many password verifications have run in this process.
    pub(crate) fn password_verifications(&self) -> u64 {
        match self {
            Self::Local(local) => local.hasher.verifications(),
            Self::Upstream(_) => 0,
        }
    }

    /// Whether credentials live upstream (Supabase mode).
    pub fn is_upstream(&self) -> bool {
        matches!(self, Self::Upstream(_))
    }

    fn now(&self) -> OffsetDateTime {
        match self {
            Self::Local(local) => local.now(),
            Self::Upstream(upstream) => upstream.now(),
        }
    }

    /// Checks the password of a sign-in. `email` is the address to try upstream when
    /// no local account matched (Supabase mode: a user not mirrored yet).
    pub(crate) async fn check_sign_in(
        &self,
        user: Option<UserRecord>,
        email: Option<&str>,
        password: &SecretString,
    ) -> Result<PasswordCheck, Error> {
        match self {
            Self::Local(local) => Ok(PasswordCheck {
                verification: local.verify_password(user.as_ref(), password).await?,
                user,
                upstream: None,
            }),
            Self::Upstream(upstream) => {
                let email = user.as_ref().and_then(|u| u.email.as_deref()).or(email);
                let session = match email {
                    Some(email) => upstream.sign_in(email, password).await?,
                    None => None,
                };
                let Some(session) = session else {
                    return Ok(PasswordCheck {
                        verification: Verification::default(),
                        user,
                        upstream: None,
                    });
                };
                let user = match user {
                    Some(local) if local.id != session.user.id => {
                        // Another account here has this address: never merge the two.
                        tracing::warn!(local = %local.id, upstream = %session.user.id, "Supabase mode: the project's user and a different local user share an email");
                        upstream.discard(session).await;
                        return Err(Error::Conflict {
                            code: "user_conflict",
                            message:
                                "another account here has this email; an admin must resolve it",
                        });
                    }
                    Some(mut local) => {
                        let mirror = upstream.mirror(&session.user, Some(&local));
                        upstream::apply_mirror(&mut local, &mirror);
                        local
                    }
                    None => upstream.mirror(&session.user, None).record(),
                };
                Ok(PasswordCheck {
                    verification: Verification {
                        valid: true,
                        needs_rehash: false,
                    },
                    user: Some(user),
                    upstream: Some(Box::new(session)),
                })
            }
        }
    }

    /// The first write of a sign-in that passed, before anything that refers to its user:
    /// in Supabase mode, the user's mirror as the upstream has it now.
    pub(crate) async fn admit(
        &self,
        tx: &mut Transaction,
        check: &PasswordCheck,
    ) -> Result<(), Error> {
        if let (Self::Upstream(upstream), Some(session)) = (self, &check.upstream) {
            tx.upsert_mirror_user(&upstream.mirror(&session.user, check.user.as_ref()))
                .await?;
        }
        Ok(())
    }

    /// Lets go of a sign-in that was right but is refused here (an inactive account):
    /// the session the upstream started for it is ended.
    pub(crate) async fn discard(&self, check: PasswordCheck) {
        if let (Self::Upstream(upstream), Some(session)) = (self, check.upstream) {
            upstream.discard(*session).await;
        }
    }

    /// Checks `password` against a user's credentials; without a user, against a dummy at
    /// the same cost, so that unknown accounts cannot be told apart by timing.
    pub(crate) async fn verify_password(
        &self,
        user: Option<&UserRecord>,
        password: &SecretString,
    ) -> Result<Verification, Error> {
        match self {
            Self::Local(local) => local.verify_password(user, password).await,
            Self::Upstream(upstream) => upstream.verify_password(user, password).await,
        }
    }

    /// What a new password is stored as here: a hash, or nothing when credentials live
    /// upstream (the password then goes to [`change_user`](Self::change_user)). Slow by
    /// design: call it before opening a transaction, never inside one.
    pub(crate) async fn new_password(
        &self,
        password: &SecretString,
    ) -> Result<Option<String>, Error> {
        match self {
            Self::Local(local) => Ok(Some(local.hasher.hash(password).await?)),
            Self::Upstream(_) => Ok(None),
        }
    }

    /// Gives a planned account its credentials, before anything is written here: a hash
    /// of its password, or (Supabase mode) the account itself, created upstream. Returns
    /// the row to write, which in Supabase mode may carry the upstream's id.
    /// `by_admin`: an admin or an operator vouches for the account (in Supabase mode it is
    /// made through the admin API as asked; a self sign-up goes through the project's
    /// public sign-up, under its confirmation rules).
    pub(crate) async fn register(
        &self,
        mut user: NewUser,
        password: &SecretString,
        by_admin: bool,
    ) -> Result<NewUser, Error> {
        match self {
            Self::Local(local) => {
                user.password_hash = Some(local.hasher.hash(password).await?);
                Ok(user)
            }
            Self::Upstream(upstream) => upstream.register(user, password, by_admin).await,
        }
    }

    /// Undoes a [`register`](Self::register) whose local write failed (Supabase mode).
    pub(crate) async fn unregister(&self, id: Uuid) {
        if let Self::Upstream(upstream) = self {
            upstream.unregister(id).await;
        }
    }

    /// Writes a change of an account (its credentials included), guarded: with
    /// `keep_an_admin` it happens only if another active admin remains. In Supabase mode
    /// the change is then sent upstream, `password` with it; a refusal there is an error,
    /// and the caller's transaction does not commit.
    pub(crate) async fn change_user(
        &self,
        tx: &mut Transaction,
        id: Uuid,
        change: &UserChange,
        password: Option<&SecretString>,
        keep_an_admin: bool,
        at: gatehouse_store::Timestamp,
    ) -> Result<ChangeOutcome, Error> {
        let outcome = tx.change_user(id, change, keep_an_admin, at).await?;
        if let (Self::Upstream(upstream), ChangeOutcome::Changed) = (self, outcome) {
            if change.deleted_at.is_some() {
                upstream.delete(id, true).await?;
            } else {
                // The ban to send is the state after the change (deactivated, banned until,
                // or neither), not the field the change touched.
                let after = tx.get_user(id).await?.ok_or(Error::NotFound)?;
                upstream.apply_change(id, change, password, &after).await?;
            }
        }
        Ok(outcome)
    }

    /// Sends a user's new metadata where it lives, before it is written here (Supabase
    /// mode; nothing to do otherwise).
    pub(crate) async fn push_user_metadata(&self, id: Uuid, metadata: &Value) -> Result<(), Error> {
        if let Self::Upstream(upstream) = self {
            let change = UserChange {
                user_metadata: Some(metadata.clone()),
                ..UserChange::default()
            };
            upstream.apply_metadata(id, &change).await?;
        }
        Ok(())
    }

    /// Removes an account with its sessions (upstream too, in Supabase mode).
    pub(crate) async fn delete_user(
        &self,
        tx: &mut Transaction,
        id: Uuid,
        keep_an_admin: bool,
    ) -> Result<ChangeOutcome, Error> {
        let outcome = tx.delete_user(id, keep_an_admin).await?;
        if let (Self::Upstream(upstream), ChangeOutcome::Changed) = (self, outcome) {
            upstream.delete(id, false).await?;
        }
        Ok(outcome)
    }

    /// Starts a session for `user`, authenticated by `method`: here, or (Supabase mode)
    /// the local side of the session the upstream started when `check` passed.
    pub(crate) async fn start_session(
        &self,
        tx: &mut Transaction,
        user: UserRecord,
        method: &str,
        meta: &RequestMeta,
        check: Option<PasswordCheck>,
    ) -> Result<SessionGrant, Error> {
        match self {
            Self::Local(local) => local.start_session(tx, user, method, meta).await,
            Self::Upstream(upstream) => {
                let Some(session) = check.and_then(|c| c.upstream) else {
                    return Err(Error::Internal(
                        "Supabase mode: sessions start upstream, with a password".into(),
                    ));
                };
                upstream
                    .start_session(tx, user, method, meta, *session)
                    .await
            }
        }
    }

    /// Exchanges a refresh token for a new access token and refresh token.
    pub(crate) async fn refresh(&self, presented: &SecretString) -> Result<Refreshed, Error> {
        match self {
            Self::Local(local) => local.refresh(presented).await,
            Self::Upstream(upstream) => upstream.refresh(presented).await,
        }
    }

    /// The session a refresh token belongs to, as (session, user), if any. In Supabase
    /// mode the session is ended upstream on the way (the caller ends it here).
    pub(crate) async fn session_of(
        &self,
        refresh: &SecretString,
    ) -> Result<Option<(Uuid, Uuid)>, Error> {
        match self {
            Self::Local(local) => Ok(local
                .session_of(refresh)
                .await?
                .map(|s: SessionRecord| (s.id, s.user_id))),
            Self::Upstream(upstream) => upstream.sign_out_refresh(refresh).await,
        }
    }

    /// Ends one session. Returns whether it was live.
    pub(crate) async fn end_session(
        &self,
        tx: &mut Transaction,
        session: Uuid,
        reason: &str,
    ) -> Result<bool, Error> {
        Ok(tx
            .revoke_session(session, self.now().into(), reason)
            .await?)
    }

    /// Ends every live session of `user` but `keep`. Returns how many ended.
    pub(crate) async fn end_sessions(
        &self,
        tx: &mut Transaction,
        user: Uuid,
        keep: Option<Uuid>,
        reason: &str,
    ) -> Result<u64, Error> {
        Ok(tx
            .revoke_user_sessions(user, keep, self.now().into(), reason)
            .await?)
    }

    /// Verifies a bearer access token and loads its user and session as they are now.
    pub(crate) async fn authenticate(&self, bearer: &str) -> Result<Principal, Error> {
        match self {
            Self::Local(local) => local.authenticate(bearer).await,
            Self::Upstream(upstream) => upstream.authenticate(bearer).await,
        }
    }
}
