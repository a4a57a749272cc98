//! Sessions: refreshing one, ending one or many, and authenticating a bearer access token
//! against the session it names. (Starting one is signing in, in [`crate::accounts`].) The
//! tokens and tables themselves are the identity provider's ([`crate::identity`]).

use std::sync::Arc;
use std::time::Duration;

use gatehouse_store::{SessionRecord, UserRecord};
use secrecy::SecretString;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::audit::RequestMeta;
use crate::identity::Refreshed;
use crate::ratelimit::Bucket;
use crate::shared::Shared;
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

/// The app-level role and provider, merged into the stored `app_metadata`.
pub fn app_metadata(user: &UserRecord) -> Value {
    let mut meta = match &user.app_metadata.0 {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    meta.entry("provider").or_insert_with(|| json!("email"));
    meta.entry("providers").or_insert_with(|| json!(["email"]));
    meta.insert("role".to_owned(), json!(user.role));
    Value::Object(meta)
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
        let Some(session) = shared.identity.session_of(presented).await? else {
            return Ok(());
        };
        let event = shared.audit_record(
            "session.logout",
            Some(session.user_id),
            Some(session.user_id),
            meta,
            json!({ "session_id": session.id }),
        );
        let mut tx = shared.store.begin().await?;
        if shared
            .identity
            .end_session(&mut tx, session.id, "logout")
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
