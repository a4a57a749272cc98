//! The upstream identity provider (Supabase mode): a Supabase project's Auth API holds the
//! credentials and the sessions; gatehouse verifies the project's access tokens against its
//! signing keys and keeps, in its own database, a mirror of each user it has seen (no
//! password hash, ever), its profile, the audit trail and a record of each session, so
//! that a session ended here is refused at once.
//!
//! Calls upstream are made before a local transaction opens wherever the order allows
//! (sign-in, refresh, sign-up); an admin change is written locally first, so that the local
//! guards (the last admin) decide, then sent upstream inside the same transaction, which
//! rolls back if the upstream refuses.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use gatehouse_store::{
    NewRefreshToken, NewSession, NewUser, Store, Transaction, UserChange, UserRecord,
};
use gatehouse_supabase::{
    AdminUserAttributes, AuthClient, ClientConfig, SignOutScope, UpstreamError, UpstreamSession,
    UpstreamUser,
};
use gatehouse_verify::{Verifier, VerifyError};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Principal, Refreshed, SessionGrant};
use crate::audit::RequestMeta;
use crate::clock::Clock;
use crate::crypto::sha256;
use crate::password::Verification;
use crate::settings::UpstreamSettings;
use crate::tokens::AccessClaims;
use crate::{Error, Settings};

/// A ban long enough to mean "deactivated" upstream (GoTrue has no deactivation).
const DEACTIVATED_BAN: &str = "876000h";

/// How long a verified token's claims are reused without verifying its signature again.
/// Short, so that a key the project withdraws stops working soon even for tokens seen
/// before; the expiry is checked on every use.
const VERIFIED_FOR_SECS: i64 = 60;
/// Verified tokens kept at most; when full, the cache starts over.
const VERIFIED_MAX: usize = 10_000;

/// The upstream project and what verifies its tokens.
pub struct Upstream {
    store: Store,
    clock: Arc<dyn Clock>,
    settings: Settings,
    client: AuthClient,
    verifier: Verifier,
    /// Claims of recently verified tokens, by the token's SHA-256, with the Unix time
    /// until which they may be reused. Failures are never cached.
    verified: std::sync::Mutex<Verified>,
}

/// Claims by token digest, with the Unix time until which they may be reused.
type Verified = HashMap<[u8; 32], (Arc<AccessClaims>, i64)>;

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// What the upstream's refusal means here. Only its code is read; its message never
/// travels further.
pub(crate) fn upstream_error(err: UpstreamError) -> Error {
    let (status, code, reasons) = match err {
        UpstreamError::Unavailable(why) => {
            return Error::UpstreamUnavailable(why);
        }
        UpstreamError::NoServiceKey => {
            return Error::Forbidden(
                "in Supabase mode this needs the project's service-role key \
                 (SUPABASE_SERVICE_ROLE_KEY), which is not set",
            );
        }
        UpstreamError::Refused {
            status,
            code,
            reasons,
        } => (status, code, reasons),
    };
    match code.as_str() {
        "invalid_credentials" | "invalid_grant" => Error::InvalidCredentials,
        "email_not_confirmed" => Error::EmailNotConfirmed,
        "user_already_exists" | "email_exists" => Error::UserAlreadyExists { field: "email" },
        "weak_password" => Error::WeakPassword {
            reasons: weak_reasons(&reasons),
        },
        "same_password" => Error::invalid("password", "must differ from the current password"),
        "email_address_invalid" | "email_address_not_authorized" | "validation_failed" => {
            Error::invalid("email", "is not accepted by the identity provider")
        }
        "over_request_rate_limit" | "over_email_send_rate_limit" => {
            Error::RateLimited { retry_after: 60 }
        }
        "user_banned" => Error::UserBanned,
        "user_not_found" => Error::NotFound,
        "signup_disabled" => Error::Forbidden("sign-ups are disabled by the identity provider"),
        "refresh_token_already_used" => Error::RefreshTokenReused,
        "refresh_token_not_found" | "session_not_found" | "session_expired" => {
            Error::RefreshTokenInvalid
        }
        _ if status == 429 => Error::RateLimited { retry_after: 60 },
        _ => {
            // A key the upstream does not take, or an answer this version does not know:
            // the operator's problem, not the caller's.
            tracing::warn!(
                status,
                code = code.as_str(),
                "the upstream Auth API refused a request in a way gatehouse does not map"
            );
            Error::UpstreamUnavailable("refused")
        }
    }
}

fn weak_reasons(reasons: &[String]) -> Vec<&'static str> {
    let mut mapped: Vec<&'static str> = reasons
        .iter()
        .filter_map(|r| match r.as_str() {
            "length" => Some("length"),
            "characters" => Some("characters"),
            "pwned" => Some("pwned"),
            _ => None,
        })
        .collect();
    if mapped.is_empty() {
        mapped.push("length");
    }
    mapped
}

/// GoTrue's RFC 3339 times.
fn parse_time(value: Option<&str>) -> Option<gatehouse_store::Timestamp> {
    let value = value?;
    OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(Into::into)
}

/// The local role of an upstream user: `app_metadata.role`, where gatehouse writes it.
fn role_of(app_role: Option<&str>) -> &'static str {
    match app_role {
        Some("admin") => "admin",
        _ => "user",
    }
}

fn claims_error(err: VerifyError) -> Error {
    if err.is_unavailable() {
        tracing::warn!("the upstream signing keys cannot be loaded");
        Error::UpstreamUnavailable("signing keys unavailable")
    } else {
        tracing::debug!(reason = %err, "access token refused");
        Error::Unauthorized("the access token is invalid or expired")
    }
}

impl Upstream {
    pub(crate) fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        settings: Settings,
        upstream: &UpstreamSettings,
    ) -> Result<Self, Error> {
        let client = AuthClient::new(ClientConfig {
            url: upstream.url.clone(),
            anon_key: upstream.anon_key.clone(),
            service_role_key: upstream.service_role_key.clone(),
            timeout: upstream.timeout,
        })
        .map_err(Error::Config)?;
        let now = clock.clone();
        let mut builder = Verifier::builder(upstream.issuer())
            .leeway(settings.jwt_leeway)
            .http_timeout(upstream.timeout)
            .clock(Arc::new(move || SystemTime::from(now.now())));
        if let Some(secret) = &upstream.jwt_secret {
            builder = builder.hs256_secret(secret.expose_secret().as_bytes().to_vec());
        }
        let verifier = builder
            .build()
            .map_err(|err| Error::Config(format!("Supabase mode: {err}")))?;
        Ok(Self {
            store,
            clock,
            settings,
            client,
            verifier,
            verified: std::sync::Mutex::default(),
        })
    }

    pub(super) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Ends the upstream session of a sign-in refused here.
    pub(super) async fn discard(&self, session: UpstreamSession) {
        self.sign_out_quietly(&session.access_token).await;
    }

    /// How many times the upstream's JWKS has been fetched.
    pub fn jwks_fetches(&self) -> u64 {
        self.verifier.jwks_fetches()
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, Verified> {
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Verifies an access token of the project and reads its claims as gatehouse's; a
    /// token verified in the last minute is not verified again until it expires.
    async fn claims(&self, token: &str) -> Result<AccessClaims, Error> {
        let digest = sha256(token.as_bytes());
        let now = self.now().unix_timestamp();
        if let Some((claims, until)) = self.verified().get(&digest) {
            if now < *until {
                return Ok(AccessClaims::clone(claims));
            }
        }
        let claims = self.verify(token).await?;
        let until = claims.exp.min(now + VERIFIED_FOR_SECS);
        let mut cache = self.verified();
        if cache.len() >= VERIFIED_MAX {
            cache.clear();
        }
        cache.insert(digest, (Arc::new(claims.clone()), until));
        Ok(claims)
    }

    async fn verify(&self, token: &str) -> Result<AccessClaims, Error> {
        let claims = self.verifier.verify(token).await.map_err(claims_error)?;
        let value = serde_json::to_value(&claims).map_err(|e| Error::Internal(Box::new(e)))?;
        serde_json::from_value(value).map_err(|_| {
            tracing::debug!("access token refused: claims not of Supabase's shape");
            Error::Unauthorized("the access token is invalid or expired")
        })
    }

    /// A password grant upstream. `None`: wrong credentials.
    pub(super) async fn sign_in(
        &self,
        email: &str,
        password: &SecretString,
    ) -> Result<Option<UpstreamSession>, Error> {
        match self.client.sign_in_with_password(email, password).await {
            Ok(session) => Ok(Some(session)),
            Err(err) => match upstream_error(err) {
                Error::InvalidCredentials => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The current-password proof of a password or email change: a password grant whose
    /// session is ended at once.
    pub(super) async fn verify_password(
        &self,
        user: Option<&UserRecord>,
        password: &SecretString,
    ) -> Result<Verification, Error> {
        let invalid = Verification {
            valid: false,
            needs_rehash: false,
        };
        let Some(email) = user.and_then(|u| u.email.as_deref()) else {
            return Ok(invalid);
        };
        let Some(session) = self.sign_in(email, password).await? else {
            return Ok(invalid);
        };
        self.sign_out_quietly(&session.access_token).await;
        Ok(Verification {
            valid: true,
            needs_rehash: false,
        })
    }

    /// Ends an upstream session with its access token, best effort (the local record is
    /// what this server's requests are refused by).
    async fn sign_out_quietly(&self, access_token: &SecretString) {
        if let Err(err) = self
            .client
            .sign_out(access_token, SignOutScope::Local)
            .await
        {
            tracing::warn!(error = %err, "could not end an upstream session");
        }
    }

    /// The mirror row of an upstream user; `local` keeps what only gatehouse has.
    pub(super) fn mirror(&self, upstream: &UpstreamUser, local: Option<&UserRecord>) -> NewUser {
        let now = self.now();
        let mut app_metadata = Value::Object(upstream.app_metadata.clone());
        if let Some(map) = app_metadata.as_object_mut() {
            map.remove("role");
        }
        NewUser {
            id: upstream.id,
            email: upstream
                .email
                .clone()
                .filter(|e| !e.is_empty())
                .or_else(|| local.and_then(|l| l.email.clone()))
                .unwrap_or_default()
                .to_lowercase(),
            username: local.and_then(|l| l.username.clone()),
            password_hash: None,
            role: role_of(upstream.app_role()).to_owned(),
            app_metadata,
            user_metadata: Value::Object(upstream.user_metadata.clone()),
            email_confirmed_at: parse_time(upstream.email_confirmed_at.as_deref()),
            // Bans are set through gatehouse (deactivation is one upstream): a known user
            // keeps the ban recorded here, a new one comes with the project's.
            banned_until: match local {
                Some(local) => local.banned_until,
                None => parse_time(upstream.banned_until.as_deref()),
            },
            display_name: local.and_then(|l| l.display_name.clone()),
            created_at: local.map_or_else(
                || parse_time(upstream.created_at.as_deref()).unwrap_or_else(|| now.into()),
                |l| l.created_at,
            ),
        }
    }

    /// The mirror row of a user known only from an access token (signed in upstream
    /// directly).
    fn mirror_from_claims(&self, claims: &AccessClaims) -> NewUser {
        let mut app_metadata = claims.app_metadata.clone();
        let role = role_of(app_metadata.get("role").and_then(Value::as_str)).to_owned();
        if let Some(map) = app_metadata.as_object_mut() {
            map.remove("role");
        }
        NewUser {
            id: claims.sub,
            email: claims.email.to_lowercase(),
            username: None,
            password_hash: None,
            role,
            app_metadata,
            user_metadata: claims.user_metadata.clone(),
            email_confirmed_at: None,
            banned_until: None,
            display_name: None,
            created_at: self.now().into(),
        }
    }

    fn session_row(&self, claims: &AccessClaims, method: &str, meta: &RequestMeta) -> NewSession {
        let now = self.now();
        let started = claims
            .amr
            .iter()
            .map(|m| m.timestamp)
            .min()
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .unwrap_or(now);
        NewSession {
            id: claims.session_id,
            user_id: claims.sub,
            amr: serde_json::to_value(&claims.amr).unwrap_or_else(|_| json!([])),
            authentication_method: method.to_owned(),
            user_agent: meta.user_agent.clone(),
            ip: meta.ip.clone(),
            created_at: started.into(),
            not_after: (started + self.settings.session_max_lifetime).into(),
        }
    }

    /// The digest of an upstream refresh token, for tracing its reuse to its session.
    fn token_row(&self, token: &SecretString, session: Uuid) -> NewRefreshToken {
        let now = self.now();
        NewRefreshToken {
            id: crate::new_id(now),
            session_id: session,
            token_hash: sha256(token.expose_secret().as_bytes()),
            parent_id: None,
            created_at: now.into(),
        }
    }

    fn grant(
        &self,
        session: UpstreamSession,
        claims: &AccessClaims,
        user: UserRecord,
    ) -> SessionGrant {
        let now = self.now().unix_timestamp();
        let expires_at = session
            .expires_at
            .unwrap_or(now + i64::try_from(session.expires_in).unwrap_or_default());
        SessionGrant {
            access_token: session.access_token.expose_secret().to_owned(),
            expires_in: session.expires_in,
            expires_at,
            refresh_token: session.refresh_token,
            refresh_ttl: self.settings.session_idle_timeout,
            session_id: claims.session_id,
            user,
            device_cookie: None,
        }
    }

    /// Starts the local side of a session the upstream began: its record, in the caller's
    /// transaction.
    pub(super) async fn start_session(
        &self,
        tx: &mut Transaction,
        user: UserRecord,
        method: &str,
        meta: &RequestMeta,
        session: UpstreamSession,
    ) -> Result<SessionGrant, Error> {
        let claims = self.claims(session.access_token.expose_secret()).await?;
        if claims.sub != user.id {
            return Err(Error::Internal("upstream session of another user".into()));
        }
        // The mirror was written when the sign-in was admitted.
        tx.record_session(&self.session_row(&claims, method, meta))
            .await?;
        tx.record_refresh_token(&self.token_row(&session.refresh_token, claims.session_id))
            .await?;
        Ok(self.grant(session, &claims, user))
    }

    /// A refresh upstream (which rotates the token and detects its reuse), refused here
    /// when the session was ended here or the user is no longer usable here.
    pub(super) async fn refresh(&self, presented: &SecretString) -> Result<Refreshed, Error> {
        if presented.expose_secret().len() > 4096 {
            return Err(Error::RefreshTokenInvalid);
        }
        let session = match self.client.refresh(presented).await {
            Ok(session) => session,
            Err(err) => {
                return match upstream_error(err) {
                    // The project saw it rotated already and revoked the session: end it
                    // here too, if it is one gatehouse handed out.
                    Error::RefreshTokenReused => {
                        let digest = sha256(presented.expose_secret().as_bytes());
                        match self.store.find_refresh_token(&digest).await? {
                            Some(token) => {
                                let user = self
                                    .store
                                    .get_session(token.session_id)
                                    .await?
                                    .map(|s| s.user_id)
                                    .ok_or(Error::RefreshTokenInvalid)?;
                                Ok(Refreshed::Reused {
                                    session: token.session_id,
                                    user,
                                })
                            }
                            None => Err(Error::RefreshTokenReused),
                        }
                    }
                    Error::InvalidCredentials | Error::NotFound => Err(Error::RefreshTokenInvalid),
                    other => Err(other),
                };
            }
        };
        let claims = self.claims(session.access_token.expose_secret()).await?;
        let now = self.now();
        let found = self
            .store
            .get_user_and_session(claims.sub, claims.session_id)
            .await?;
        let refusal = match &found {
            Some((_, Some(s))) if s.revoked_at.is_some() || now >= s.not_after.get() => {
                Some(Error::RefreshTokenInvalid)
            }
            Some((user, _)) => super::check_usable(user, now).err(),
            None => None,
        };
        if let Some(refusal) = refusal {
            // Ended here: end it upstream too, with the token just handed to us.
            self.sign_out_quietly(&session.access_token).await;
            return Err(refusal);
        }
        let local = found.as_ref().map(|(user, _)| user);
        let mirror = self.mirror(&session.user, local);
        let mut tx = self.store.begin().await?;
        tx.upsert_mirror_user(&mirror).await?;
        if !matches!(found, Some((_, Some(_)))) {
            let meta = RequestMeta::new(None, None);
            tx.record_session(&self.session_row(&claims, "password", &meta))
                .await?;
        }
        tx.record_refresh_token(&self.token_row(&session.refresh_token, claims.session_id))
            .await?;
        tx.commit().await?;
        let user = match found {
            Some((mut user, _)) => {
                apply_mirror(&mut user, &mirror);
                user
            }
            None => self
                .store
                .get_user(claims.sub)
                .await?
                .ok_or(Error::NotFound)?,
        };
        Ok(Refreshed::Granted(Box::new(
            self.grant(session, &claims, user),
        )))
    }

    /// Ends the upstream session of a refresh token (which takes a refresh: the logout
    /// endpoint wants an access token) and names it, for the local record.
    pub(super) async fn sign_out_refresh(
        &self,
        presented: &SecretString,
    ) -> Result<Option<(Uuid, Uuid)>, Error> {
        let session = match self.client.refresh(presented).await {
            Ok(session) => session,
            Err(UpstreamError::Unavailable(why)) => return Err(Error::UpstreamUnavailable(why)),
            // Unknown, used or ended: nothing to sign out.
            Err(_) => return Ok(None),
        };
        let claims = self.claims(session.access_token.expose_secret()).await?;
        self.client
            .sign_out(&session.access_token, SignOutScope::Local)
            .await
            .map_err(upstream_error)?;
        Ok(Some((claims.session_id, claims.sub)))
    }

    /// Verifies a bearer token of the project; loads (or, on first sight, writes) the
    /// user's mirror and the session's record, and refuses what was ended here.
    pub(super) async fn authenticate(&self, bearer: &str) -> Result<Principal, Error> {
        let claims = self.claims(bearer).await?;
        let now = self.now();
        let found = self
            .store
            .get_user_and_session(claims.sub, claims.session_id)
            .await?;
        let (user, session) = match found {
            Some((user, Some(session))) => (user, session),
            seen => {
                // First sight of this user or this session (signed in upstream directly).
                let mut tx = self.store.begin().await?;
                if seen.is_none() {
                    tx.upsert_mirror_user(&self.mirror_from_claims(&claims))
                        .await?;
                }
                let meta = RequestMeta::new(None, None);
                tx.record_session(&self.session_row(&claims, "password", &meta))
                    .await?;
                tx.commit().await?;
                match self
                    .store
                    .get_user_and_session(claims.sub, claims.session_id)
                    .await?
                {
                    Some((user, Some(session))) => (user, session),
                    _ => return Err(Error::SessionEnded),
                }
            }
        };
        super::check_usable(&user, now)?;
        if session.revoked_at.is_some()
            || session.user_id != user.id
            || now >= session.not_after.get()
        {
            return Err(Error::SessionEnded);
        }
        Ok(Principal {
            claims,
            user,
            session,
        })
    }

    /// Creates the account upstream before anything is written here. One an admin or an
    /// operator vouches for goes through the admin API (confirmed as asked, with its role);
    /// a self sign-up through the project's public sign-up, so that the project's
    /// confirmation rules and mailer apply: confirming an address nobody proved to own
    /// would let its real owner's later OAuth sign-in land in someone else's account.
    /// Returns the mirror row to write, with the project's id.
    pub(super) async fn register(
        &self,
        new: NewUser,
        password: &SecretString,
        by_admin: bool,
    ) -> Result<NewUser, Error> {
        let user = if by_admin {
            let mut app_metadata = new.app_metadata.clone();
            app_metadata["role"] = json!(new.role);
            let attributes = AdminUserAttributes {
                id: Some(new.id),
                email: Some(new.email.clone()),
                password: Some(password.clone()),
                email_confirm: Some(new.email_confirmed_at.is_some()),
                user_metadata: Some(new.user_metadata.clone()),
                app_metadata: Some(app_metadata),
                ban_duration: new.banned_until.map(|until| self.ban_for(until.get())),
            };
            self.client
                .admin_create_user(&attributes)
                .await
                .map_err(upstream_error)?
        } else {
            let (user, session) = self
                .client
                .sign_up(&new.email, password, &new.user_metadata)
                .await
                .map_err(upstream_error)?;
            if let Some(access_token) = session {
                // A project that confirms at once starts a session; the app API's sign-up
                // does not sign in.
                self.sign_out_quietly(&access_token).await;
            }
            if user.identities.as_ref().is_some_and(Vec::is_empty) {
                // GoTrue's answer for an address it already has (a stand-in user).
                return Err(Error::UserAlreadyExists { field: "email" });
            }
            user
        };
        let mut mirror = self.mirror(&user, None);
        mirror.username = new.username;
        mirror.display_name = new.display_name;
        if by_admin {
            mirror.role = new.role;
        }
        Ok(mirror)
    }

    /// A Go duration for a ban until `until`, rounded up to the second.
    fn ban_for(&self, until: OffsetDateTime) -> String {
        let seconds = (until - self.now()).as_seconds_f64().ceil().max(1.0);
        format!("{seconds:.0}s")
    }

    /// Undoes [`register`](Self::register) when the local write failed, best effort.
    pub(super) async fn unregister(&self, id: Uuid) {
        if !self.client.has_service_key() {
            tracing::warn!(user_id = %id, "a user was created upstream but not here; it will be mirrored on its first sign-in");
            return;
        }
        if let Err(err) = self.client.admin_delete_user(id, false).await {
            tracing::warn!(user_id = %id, error = %err, "could not undo an upstream sign-up");
        }
    }

    /// Sends what of a change the upstream holds (email, password, metadata, the role in
    /// `app_metadata.role`, confirmation, and the ban) through the admin API. `after` is
    /// the user as the change leaves it here: the ban sent is its state (deactivated means
    /// banned upstream), whichever field the change touched.
    pub(super) async fn apply_change(
        &self,
        id: Uuid,
        change: &UserChange,
        password: Option<&SecretString>,
        after: &UserRecord,
    ) -> Result<(), Error> {
        let mut app_metadata = change.app_metadata.clone();
        if let Some(role) = &change.role {
            let metadata = app_metadata.get_or_insert_with(|| json!({}));
            metadata["role"] = json!(role);
        }
        let now = self.now();
        let ban_duration =
            (change.is_active.is_some() || change.banned_until.is_some()).then(|| {
                let banned = after.banned_until.map(|b| b.get()).filter(|b| *b > now);
                match banned {
                    _ if !after.is_active => DEACTIVATED_BAN.to_owned(),
                    Some(until) => self.ban_for(until),
                    None => "none".to_owned(),
                }
            });
        let attributes = AdminUserAttributes {
            id: None,
            email: change.email.clone(),
            password: password.cloned(),
            email_confirm: change.email_confirmed_at.map(|at| at.is_some()),
            user_metadata: change.user_metadata.clone(),
            app_metadata,
            ban_duration,
        };
        self.admin_update(id, attributes).await
    }

    /// Sends new user metadata.
    pub(super) async fn apply_metadata(&self, id: Uuid, change: &UserChange) -> Result<(), Error> {
        let attributes = AdminUserAttributes {
            user_metadata: change.user_metadata.clone(),
            ..AdminUserAttributes::default()
        };
        self.admin_update(id, attributes).await
    }

    async fn admin_update(&self, id: Uuid, attributes: AdminUserAttributes) -> Result<(), Error> {
        if attributes.email.is_none()
            && attributes.password.is_none()
            && attributes.email_confirm.is_none()
            && attributes.user_metadata.is_none()
            && attributes.app_metadata.is_none()
            && attributes.ban_duration.is_none()
        {
            return Ok(());
        }
        self.client
            .admin_update_user(id, &attributes)
            .await
            .map_err(upstream_error)?;
        Ok(())
    }

    /// Deletes the user upstream: softly (GoTrue keeps the row) or not.
    pub(super) async fn delete(&self, id: Uuid, soft: bool) -> Result<(), Error> {
        match self.client.admin_delete_user(id, soft).await {
            Ok(()) => Ok(()),
            Err(err) => match upstream_error(err) {
                // Gone upstream already: what was asked for.
                Error::NotFound => Ok(()),
                other => Err(other),
            },
        }
    }
}

/// `user` as the mirror row makes it.
pub(super) fn apply_mirror(user: &mut UserRecord, mirror: &NewUser) {
    user.email = Some(mirror.email.clone());
    user.role.clone_from(&mirror.role);
    user.app_metadata = gatehouse_store::Json(mirror.app_metadata.clone());
    user.user_metadata = gatehouse_store::Json(mirror.user_metadata.clone());
    user.email_confirmed_at = mirror.email_confirmed_at;
    user.banned_until = mirror.banned_until;
}
