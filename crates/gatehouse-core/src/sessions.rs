//! Sessions: refreshing one, ending one or many, and authenticating a bearer access token
//! against the session it names. (Starting one is signing in, in [`crate::accounts`].) The
//! tokens and tables themselves are the identity provider's ([`crate::identity`]).

use std::sync::Arc;

use secrecy::SecretString;
use serde_json::json;

use crate::audit::RequestMeta;
use crate::identity::Refreshed;
pub use crate::identity::{Principal, SessionGrant};
use crate::ratelimit::Bucket;
use crate::shared::Shared;
use crate::Error;

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

/// The sessions service.
#[derive(Clone)]
pub struct Sessions {
    shared: Arc<Shared>,
}

impl Sessions {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Exchanges a refresh token for a new access token and a new refresh token.
    ///
    /// The presented token is rotated. Presented again within the reuse interval of its
    /// rotation (two tabs refreshing at once), it yields the same successor. Presented
    /// later, it is treated as stolen: the whole session is revoked and audited, at once.
    pub async fn refresh(
        &self,
        presented: &SecretString,
        meta: &RequestMeta,
    ) -> Result<SessionGrant, Error> {
        let shared = &self.shared;
        shared
            .limit(Bucket::RefreshIp, meta.source.as_deref())
            .await?;
        match shared.identity.refresh(presented).await? {
            Refreshed::Granted(grant) => Ok(*grant),
            Refreshed::Reused { session, user } => {
                let event = shared.audit_record(
                    "session.refresh_token_reused",
                    None,
                    Some(user),
                    meta,
                    json!({ "session_id": session }),
                );
                let mut tx = shared.store.begin().await?;
                shared
                    .identity
                    .end_session(&mut tx, session, "refresh_token_reuse")
                    .await?;
                tx.insert_audit_event(&event).await?;
                tx.commit().await?;
                tracing::warn!(session_id = %session, user_id = %user, "refresh token reused after its grace interval; session revoked");
                Err(Error::RefreshTokenReused)
            }
        }
    }

    /// Ends the session a refresh token belongs to. Unknown or already-ended tokens are
    /// fine: logging out is idempotent.
    pub async fn logout(
        &self,
        refresh: Option<&SecretString>,
        meta: &RequestMeta,
    ) -> Result<(), Error> {
        let shared = &self.shared;
        let Some(presented) = refresh else {
            return Ok(());
        };
        let Some((session, user)) = shared.identity.session_of(presented).await? else {
            return Ok(());
        };
        let event = shared.audit_record(
            "session.logout",
            Some(user),
            Some(user),
            meta,
            json!({ "session_id": session }),
        );
        let mut tx = shared.store.begin().await?;
        if shared
            .identity
            .end_session(&mut tx, session, "logout")
            .await?
        {
            tx.insert_audit_event(&event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Ends sessions of the caller's user: this one, the others, or all.
    pub async fn sign_out(
        &self,
        principal: &Principal,
        scope: SignOutScope,
        meta: &RequestMeta,
    ) -> Result<u64, Error> {
        let shared = &self.shared;
        let user = principal.user.id;
        let this = principal.session.id;
        let mut tx = shared.store.begin().await?;
        let identity = &shared.identity;
        let ended = match scope {
            SignOutScope::Local => u64::from(identity.end_session(&mut tx, this, "logout").await?),
            SignOutScope::Others => {
                identity
                    .end_sessions(&mut tx, user, Some(this), "logout")
                    .await?
            }
            SignOutScope::Global => identity.end_sessions(&mut tx, user, None, "logout").await?,
        };
        let details =
            json!({ "scope": format!("{scope:?}").to_lowercase(), "sessions_ended": ended });
        let event = shared.audit_record("session.logout", Some(user), Some(user), meta, details);
        tx.insert_audit_event(&event).await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// Verifies a bearer access token and loads its user and session as they are now: a
    /// deactivated or deleted user, or an ended session, is refused even while the token
    /// has not expired.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, Error> {
        self.shared.identity.authenticate(bearer).await
    }
}
