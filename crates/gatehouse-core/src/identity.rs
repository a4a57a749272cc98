//! Where credentials live: the one boundary between the rules of auth and the password
//! hashes, sessions and refresh tokens.
//!
//! The services ([`Accounts`](crate::Accounts), [`Sessions`](crate::Sessions),
//! [`Admin`](crate::Admin)) validate, rate-limit, protect accounts and write the audit
//! trail; everything that touches a password hash or the session tables goes through
//! [`IdentityProvider`]. Today there is one provider, [`Local`]: this server's own
//! database and hasher. Supabase mode adds a second variant that forwards the same
//! operations to an upstream project's Auth API; nothing outside this module changes.

mod local;

pub use local::Local;

use std::time::Duration;

use time::OffsetDateTime;

use gatehouse_store::{ChangeOutcome, NewUser, SessionRecord, Transaction, UserChange, UserRecord};
use secrecy::SecretString;
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

/// Where credentials live (see the module docs).
pub enum IdentityProvider {
    /// This server's database and password hasher.
    Local(Local),
}

impl IdentityProvider {
    /// How many password verifications have run in this process.
    pub(crate) fn password_verifications(&self) -> u64 {
        match self {
            Self::Local(local) => local.hasher.verifications(),
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
        }
    }

    /// What a new password is stored as. Slow by design: call it before opening a
    /// transaction, never inside one.
    pub(crate) async fn new_password(&self, password: &SecretString) -> Result<String, Error> {
        match self {
            Self::Local(local) => local.hasher.hash(password).await,
        }
    }

    /// Writes a new account with its credentials.
    pub(crate) async fn create_user(
        &self,
        tx: &mut Transaction,
        user: &NewUser,
    ) -> Result<UserRecord, Error> {
        match self {
            Self::Local(_) => Ok(tx.create_user(user).await?),
        }
    }

    /// Writes a change of an account (its credentials included), guarded: with
    /// `keep_an_admin` it happens only if another active admin remains.
    pub(crate) async fn change_user(
        &self,
        tx: &mut Transaction,
        id: Uuid,
        change: &UserChange,
        keep_an_admin: bool,
        at: gatehouse_store::Timestamp,
    ) -> Result<ChangeOutcome, Error> {
        match self {
            Self::Local(_) => Ok(tx.change_user(id, change, keep_an_admin, at).await?),
        }
    }

    /// Removes an account with its sessions.
    pub(crate) async fn delete_user(
        &self,
        tx: &mut Transaction,
        id: Uuid,
        keep_an_admin: bool,
    ) -> Result<ChangeOutcome, Error> {
        match self {
            Self::Local(_) => Ok(tx.delete_user(id, keep_an_admin).await?),
        }
    }

    /// Starts a session for `user`, authenticated by `method`.
    pub(crate) async fn start_session(
        &self,
        tx: &mut Transaction,
        user: UserRecord,
        method: &str,
        meta: &RequestMeta,
    ) -> Result<SessionGrant, Error> {
        match self {
            Self::Local(local) => local.start_session(tx, user, method, meta).await,
        }
    }

    /// Exchanges a refresh token for a new access token and refresh token.
    pub(crate) async fn refresh(&self, presented: &SecretString) -> Result<Refreshed, Error> {
        match self {
            Self::Local(local) => local.refresh(presented).await,
        }
    }

    /// The session a refresh token belongs to, if any.
    pub(crate) async fn session_of(
        &self,
        refresh: &SecretString,
    ) -> Result<Option<SessionRecord>, Error> {
        match self {
            Self::Local(local) => local.session_of(refresh).await,
        }
    }

    /// Ends one session. Returns whether it was live.
    pub(crate) async fn end_session(
        &self,
        tx: &mut Transaction,
        session: Uuid,
        reason: &str,
    ) -> Result<bool, Error> {
        match self {
            Self::Local(local) => Ok(tx
                .revoke_session(session, local.now().into(), reason)
                .await?),
        }
    }

    /// Ends every live session of `user` but `keep`. Returns how many ended.
    pub(crate) async fn end_sessions(
        &self,
        tx: &mut Transaction,
        user: Uuid,
        keep: Option<Uuid>,
        reason: &str,
    ) -> Result<u64, Error> {
        match self {
            Self::Local(local) => Ok(tx
                .revoke_user_sessions(user, keep, local.now().into(), reason)
                .await?),
        }
    }

    /// Verifies a bearer access token and loads its user and session as they are now.
    pub(crate) async fn authenticate(&self, bearer: &str) -> Result<Principal, Error> {
        match self {
            Self::Local(local) => local.authenticate(bearer).await,
        }
    }
}
