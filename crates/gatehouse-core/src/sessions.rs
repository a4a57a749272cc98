//! Sessions: starting one at sign-in, rotating its refresh token on every refresh (with a
//! grace interval for concurrent tabs and theft detection after it), ending it, and
//! authenticating a bearer access token against it.

use std::time::Duration;

use gatehouse_store::{NewRefreshToken, NewSession, RefreshTokenRecord, SessionRecord, UserRecord};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::RequestMeta;
use crate::crypto::{b64url, b64url_decode, random_bytes, sha256, Sealer};
use crate::tokens::{AccessClaims, Audience, AuthMethod, TokenError, AUDIENCE};
use crate::{new_id, Error, Gatehouse};

/// How many rotations a token presented within its grace interval may follow to reach
/// the session's current token.
const MAX_GRACE_HOPS: usize = 4;

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

fn token_hash(token: &str) -> [u8; 32] {
    sha256(token.as_bytes())
}

fn successor_sealer(token: &str) -> Result<Sealer, Error> {
    // Only a holder of the parent token can open its successor.
    Sealer::new(token.as_bytes(), "gatehouse refresh successor v1")
}

fn std_duration(d: time::Duration) -> Duration {
    Duration::try_from(d).unwrap_or_default()
}

impl Gatehouse {
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

    async fn access_token(
        &self,
        user: &UserRecord,
        session: &SessionRecord,
        now: OffsetDateTime,
    ) -> Result<(String, i64), Error> {
        let settings = self.settings();
        let exp = now.unix_timestamp()
            + i64::try_from(settings.access_token_ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let amr: Vec<AuthMethod> =
            serde_json::from_value(session.amr.0.clone()).unwrap_or_default();
        let claims = AccessClaims {
            iss: settings.issuer(),
            sub: user.id,
            aud: Audience::One(AUDIENCE.to_owned()),
            exp,
            iat: now.unix_timestamp(),
            nbf: None,
            email: user.email.clone().unwrap_or_default(),
            phone: user.phone.clone().unwrap_or_default(),
            role: "authenticated".to_owned(),
            aal: session.aal.clone(),
            amr,
            session_id: session.id,
            is_anonymous: user.is_anonymous,
            app_metadata: Self::app_metadata(user),
            user_metadata: user.user_metadata.0.clone(),
        };
        let keys = self.inner.keys.keys().await?;
        Ok((
            self.inner
                .tokens
                .sign(&keys, &self.inner.keys, &claims, now)?,
            exp,
        ))
    }

    fn grant(
        &self,
        access: (String, i64),
        refresh: String,
        session: &SessionRecord,
        user: UserRecord,
        now: OffsetDateTime,
    ) -> SessionGrant {
        let settings = self.settings();
        let idle_end = now + settings.session_idle_timeout;
        let ends = idle_end.min(session.not_after.get());
        SessionGrant {
            expires_in: u64::try_from(access.1 - now.unix_timestamp()).unwrap_or_default(),
            expires_at: access.1,
            access_token: access.0,
            refresh_token: SecretString::from(refresh),
            refresh_ttl: std_duration(ends - now),
            session_id: session.id,
            user,
            device_cookie: None,
        }
    }

    /// Starts a session for `user`, authenticated by `method`.
    pub(crate) async fn start_session(
        &self,
        user: UserRecord,
        method: &str,
        meta: &RequestMeta,
    ) -> Result<SessionGrant, Error> {
        let now = self.now();
        let session = NewSession {
            id: new_id(now),
            user_id: user.id,
            amr: json!([{ "method": method, "timestamp": now.unix_timestamp() }]),
            authentication_method: method.to_owned(),
            user_agent: meta.user_agent.clone(),
            ip: meta.ip.clone(),
            created_at: now.into(),
            not_after: (now + self.settings().session_max_lifetime).into(),
        };
        let refresh = b64url(&random_bytes::<32>()?);
        let token = NewRefreshToken {
            id: new_id(now),
            session_id: session.id,
            token_hash: token_hash(&refresh),
            parent_id: None,
            created_at: now.into(),
        };
        self.store.create_session(&session, &token).await?;
        let record = self
            .store
            .get_session(session.id)
            .await?
            .ok_or(Error::RefreshTokenInvalid)?;
        let access = self.access_token(&user, &record, now).await?;
        Ok(self.grant(access, refresh, &record, user, now))
    }

    /// Exchanges a refresh token for a new access token and a new refresh token.
    ///
    /// The presented token is rotated. Presented again within the reuse interval of its
    /// rotation (two tabs refreshing at once), it yields the same successor. Presented
    /// later, it is treated as stolen: the whole session is revoked and audited.
    pub async fn refresh(
        &self,
        presented: &SecretString,
        meta: &RequestMeta,
    ) -> Result<SessionGrant, Error> {
        self.limit(crate::ratelimit::Bucket::RefreshIp, meta.source.as_deref())
            .await?;
        let presented = presented.expose_secret();
        if presented.len() != 43 || b64url_decode(presented).is_none() {
            return Err(Error::RefreshTokenInvalid);
        }
        let now = self.now();
        let (record, session, user) = self
            .store
            .find_refresh_token_with_session(&token_hash(presented))
            .await?
            .ok_or(Error::RefreshTokenInvalid)?;
        self.check_live_session(&session, &user, now).await?;
        if record.revoked_at.is_some() {
            return Err(Error::RefreshTokenInvalid);
        }
        if record.rotated_at.is_none() {
            let successor = b64url(&random_bytes::<32>()?);
            let new = NewRefreshToken {
                id: new_id(now),
                session_id: session.id,
                token_hash: token_hash(&successor),
                parent_id: Some(record.id),
                created_at: now.into(),
            };
            let sealed =
                successor_sealer(presented)?.seal(successor.as_bytes(), record.id.as_bytes())?;
            if self
                .store
                .rotate_refresh_token(record.id, &new, &sealed)
                .await?
            {
                let access = self.access_token(&user, &session, now).await?;
                return Ok(self.grant(access, successor, &session, user, now));
            }
            // Another request rotated it first: ours is now a within-grace reuse.
        }
        let record = self
            .store
            .get_refresh_token(record.id)
            .await?
            .ok_or(Error::RefreshTokenInvalid)?;
        match self.current_descendant(presented, record, now).await? {
            Some(current) => {
                let access = self.access_token(&user, &session, now).await?;
                Ok(self.grant(access, current, &session, user, now))
            }
            None => {
                self.store
                    .revoke_session(session.id, now.into(), "refresh_token_reuse")
                    .await?;
                self.audit(
                    "session.refresh_token_reused",
                    None,
                    Some(session.user_id),
                    meta,
                    json!({ "session_id": session.id }),
                )
                .await?;
                tracing::warn!(session_id = %session.id, user_id = %session.user_id, "refresh token reused after its grace interval; session revoked");
                Err(Error::RefreshTokenReused)
            }
        }
    }

    /// Follows a rotated token to the session's current token, if every hop happened
    /// within the reuse interval; `None` means reuse beyond the grace.
    async fn current_descendant(
        &self,
        presented: &str,
        mut record: RefreshTokenRecord,
        now: OffsetDateTime,
    ) -> Result<Option<String>, Error> {
        let grace = self.settings().refresh_reuse_interval;
        let mut token = presented.to_owned();
        for _ in 0..MAX_GRACE_HOPS {
            let (Some(rotated_at), Some(sealed)) =
                (record.rotated_at, record.successor_sealed.as_ref())
            else {
                return Ok(None);
            };
            if record.revoked_at.is_some() || now - rotated_at.get() > grace {
                return Ok(None);
            }
            let Some(successor) = successor_sealer(&token)?
                .open(sealed, record.id.as_bytes())
                .and_then(|bytes| String::from_utf8(bytes).ok())
            else {
                return Ok(None);
            };
            let Some(next) = self
                .store
                .find_refresh_token(&token_hash(&successor))
                .await?
            else {
                return Ok(None);
            };
            if next.revoked_at.is_some() {
                return Ok(None);
            }
            if next.rotated_at.is_none() {
                return Ok(Some(successor));
            }
            token = successor;
            record = next;
        }
        Ok(None)
    }

    /// A live session: not revoked, within its idle timeout and absolute lifetime, and its
    /// user active and not deleted.
    async fn check_live_session(
        &self,
        session: &SessionRecord,
        user: &UserRecord,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        if session.revoked_at.is_some() {
            return Err(Error::RefreshTokenInvalid);
        }
        let idle = now - session.refreshed_at.get() > self.settings().session_idle_timeout;
        if idle || now >= session.not_after.get() {
            self.store
                .revoke_session(session.id, now.into(), "expired")
                .await?;
            return Err(Error::RefreshTokenInvalid);
        }
        if user.deleted_at.is_some() || !user.is_active {
            return Err(Error::UserInactive);
        }
        if user.banned_until.is_some_and(|b| b.get() > now) {
            return Err(Error::UserBanned);
        }
        Ok(())
    }

    /// Ends the session a refresh token belongs to. Unknown or already-ended tokens are
    /// fine: logging out is idempotent.
    pub async fn logout(
        &self,
        refresh: Option<&SecretString>,
        meta: &RequestMeta,
    ) -> Result<(), Error> {
        let Some(presented) = refresh else {
            return Ok(());
        };
        let Some(record) = self
            .store
            .find_refresh_token(&token_hash(presented.expose_secret()))
            .await?
        else {
            return Ok(());
        };
        let Some(session) = self.store.get_session(record.session_id).await? else {
            return Ok(());
        };
        if self
            .store
            .revoke_session(session.id, self.now().into(), "logout")
            .await?
        {
            self.audit(
                "session.logout",
                Some(session.user_id),
                Some(session.user_id),
                meta,
                json!({ "session_id": session.id }),
            )
            .await?;
        }
        Ok(())
    }

    /// Verifies a bearer access token and loads its user and session as they are now: a
    /// deactivated or deleted user, or an ended session, is refused even while the token
    /// has not expired.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, Error> {
        let now = self.now();
        let keys = self.inner.keys.keys().await?;
        let claims = match self.inner.tokens.verify(bearer, &keys, now) {
            Err(TokenError::UnknownKey) => {
                let keys = self.inner.keys.reload_for_unknown_kid().await?;
                self.inner.tokens.verify(bearer, &keys, now)
            }
            other => other,
        }
        .map_err(|err| {
            tracing::debug!(reason = %err, "access token refused");
            Error::Unauthorized("the access token is invalid or expired")
        })?;
        let (user, session) = self
            .store
            .get_user_and_session(claims.sub, claims.session_id)
            .await?
            .ok_or(Error::UserInactive)?;
        if user.deleted_at.is_some() || !user.is_active {
            return Err(Error::UserInactive);
        }
        if user.banned_until.is_some_and(|b| b.get() > now) {
            return Err(Error::UserBanned);
        }
        let session = session
            .filter(|s| s.user_id == user.id && s.revoked_at.is_none() && now < s.not_after.get())
            .ok_or(Error::SessionEnded)?;
        Ok(Principal {
            claims,
            user,
            session,
        })
    }
}
