//! The local identity provider: password hashes in this server's database, checked by its
//! hasher; sessions and rotating refresh tokens in its session tables; access tokens signed
//! with its key ring.
//!
//! Refresh tokens are stored only as SHA-256 hashes. Each refresh rotates the presented
//! token; presented again within the reuse interval of its rotation (two tabs refreshing
//! at once), it yields the same successor (sealed under the parent, so only its holder can
//! open it); presented later, it is reported as reused.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_store::{
    NewRefreshToken, NewSession, RefreshTokenRecord, SessionRecord, Store, Transaction, UserRecord,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use time::OffsetDateTime;

use super::Refreshed;
use super::{Principal, SessionGrant};
use crate::audit::RequestMeta;
use crate::clock::Clock;
use crate::crypto::{b64url, b64url_decode, random_bytes, sha256, Sealer};
use crate::password::{Hasher, Verification};
use crate::signing_keys::KeyRing;
use crate::tokens::{
    app_metadata, AccessClaims, Audience, AuthMethod, TokenError, TokenService, AUDIENCE,
};
use crate::{new_id, Error, Settings};

/// How many rotations a token presented within its grace interval may follow to reach
/// the session's current token.
const MAX_GRACE_HOPS: usize = 4;

/// This server's own credentials and sessions.
pub struct Local {
    store: Store,
    clock: Arc<dyn Clock>,
    settings: Settings,
    keys: Arc<KeyRing>,
    tokens: TokenService,
    pub(super) hasher: Hasher,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local").finish_non_exhaustive()
    }
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

impl Local {
    pub(crate) fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        settings: Settings,
        keys: Arc<KeyRing>,
        tokens: TokenService,
        hasher: Hasher,
    ) -> Self {
        Self {
            store,
            clock,
            settings,
            keys,
            tokens,
            hasher,
        }
    }

    pub(super) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub(super) async fn verify_password(
        &self,
        user: Option<&UserRecord>,
        password: &SecretString,
    ) -> Result<Verification, Error> {
        let stored = user.and_then(|u| u.password_hash.as_deref());
        self.hasher.verify(password, stored).await
    }

    async fn access_token(
        &self,
        user: &UserRecord,
        session: &SessionRecord,
        now: OffsetDateTime,
    ) -> Result<(String, i64), Error> {
        let exp = now.unix_timestamp()
            + i64::try_from(self.settings.access_token_ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let amr: Vec<AuthMethod> =
            serde_json::from_value(session.amr.0.clone()).unwrap_or_default();
        let claims = AccessClaims {
            iss: self.settings.issuer(),
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
            app_metadata: app_metadata(user),
            user_metadata: user.user_metadata.0.clone(),
        };
        let keys = self.keys.keys().await?;
        Ok((self.tokens.sign(&keys, &self.keys, &claims, now)?, exp))
    }

    fn grant(
        &self,
        access: (String, i64),
        refresh: String,
        session: &SessionRecord,
        user: UserRecord,
        now: OffsetDateTime,
    ) -> SessionGrant {
        let idle_end = now + self.settings.session_idle_timeout;
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

    pub(super) async fn start_session(
        &self,
        tx: &mut Transaction,
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
            not_after: (now + self.settings.session_max_lifetime).into(),
        };
        let refresh = b64url(&random_bytes::<32>()?);
        let token = NewRefreshToken {
            id: new_id(now),
            session_id: session.id,
            token_hash: token_hash(&refresh),
            parent_id: None,
            created_at: now.into(),
        };
        let record = tx.create_session(&session, &token).await?;
        let access = self.access_token(&user, &record, now).await?;
        Ok(self.grant(access, refresh, &record, user, now))
    }

    pub(super) async fn refresh(&self, presented: &SecretString) -> Result<Refreshed, Error> {
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
            // One statement on Postgres, one transaction on SQLite: a compare-and-set, so
            // two concurrent refreshes with the same token produce one successor.
            // Activity is noted at most every minute (or 1 % of the idle timeout, if less):
            // precise enough for an idle timeout, and no row rewrite per refresh.
            let every = (self.settings.session_idle_timeout / 100).min(Duration::from_secs(60));
            let touch_before = (now - every).into();
            if self
                .store
                .rotate_refresh_token(record.id, &new, &sealed, touch_before)
                .await?
            {
                let access = self.access_token(&user, &session, now).await?;
                return Ok(Refreshed::Granted(Box::new(
                    self.grant(access, successor, &session, user, now),
                )));
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
                Ok(Refreshed::Granted(Box::new(
                    self.grant(access, current, &session, user, now),
                )))
            }
            None => Ok(Refreshed::Reused {
                session: session.id,
                user: session.user_id,
            }),
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
        let grace = self.settings.refresh_reuse_interval;
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
    /// user usable. An expired session is ended on the spot.
    async fn check_live_session(
        &self,
        session: &SessionRecord,
        user: &UserRecord,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        if session.revoked_at.is_some() {
            return Err(Error::RefreshTokenInvalid);
        }
        let idle = now - session.refreshed_at.get() > self.settings.session_idle_timeout;
        if idle || now >= session.not_after.get() {
            let mut tx = self.store.begin().await?;
            let _ = tx.revoke_session(session.id, now.into(), "expired").await?;
            tx.commit().await?;
            return Err(Error::RefreshTokenInvalid);
        }
        super::check_usable(user, now)
    }

    pub(super) async fn session_of(
        &self,
        refresh: &SecretString,
    ) -> Result<Option<SessionRecord>, Error> {
        let Some(record) = self
            .store
            .find_refresh_token(&token_hash(refresh.expose_secret()))
            .await?
        else {
            return Ok(None);
        };
        Ok(self.store.get_session(record.session_id).await?)
    }

    pub(super) async fn authenticate(&self, bearer: &str) -> Result<Principal, Error> {
        let now = self.now();
        let keys = self.keys.keys().await?;
        let claims = match self.tokens.verify(bearer, &keys, now) {
            Err(TokenError::UnknownKey) => {
                let keys = self.keys.reload_for_unknown_kid().await?;
                self.tokens.verify(bearer, &keys, now)
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
        super::check_usable(&user, now)?;
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
