//! The flows that mail a code and a link, and redeeming them: the [`Mail`] service.
//!
//! Requests that take an address from a stranger (forgot password, magic link, resend,
//! unlock) are validated and rate-limited, then answered at once; looking the address up
//! and queueing the message happen after the answer, in a task of their own, so a known
//! and an unknown address answer the same, in the same time (ASVS 6.3.8).

use std::sync::Arc;

use gatehouse_mail::Kind;
use gatehouse_store::{
    ChangeOutcome, NewUser, OneTimeTokenRecord, Timestamp, UserChange, UserRecord,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use uuid::Uuid;

use super::pkce::{self, Pkce};
use super::{Mailing, Postbox, Purpose};
use crate::audit::RequestMeta;
use crate::crypto::sha256;
use crate::identity::check_usable;
use crate::ratelimit::Bucket;
use crate::sessions::SessionGrant;
use crate::shared::Shared;
use crate::{new_id, validate, Error};

/// How a token is presented: the code with the address it was mailed to, or the link
/// token (GoTrue's `token_hash`).
#[derive(Debug)]
pub enum CodeOrLink {
    Code { email: String, code: SecretString },
    Link { token: SecretString },
}

/// GoTrue's verification `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    Signup,
    Invite,
    MagicLink,
    Recovery,
    /// `email`: a sign-up confirmation or a magic link, whichever was mailed.
    Email,
    EmailChange,
    /// gatehouse's own: lifting the hard stop.
    Unlock,
    /// gatehouse's own (the app API): an address confirmation of any kind, a sign-up's
    /// or either half of an email change.
    Confirmation,
}

impl LinkType {
    /// GoTrue's names (`sms` and `phone_change` are not served).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "signup" => Self::Signup,
            "invite" => Self::Invite,
            "magiclink" => Self::MagicLink,
            "recovery" => Self::Recovery,
            "email" => Self::Email,
            "email_change" => Self::EmailChange,
            "unlock" => Self::Unlock,
            _ => return None,
        })
    }

    fn purposes(self) -> &'static [Purpose] {
        match self {
            Self::Signup => &[Purpose::Signup],
            Self::Invite => &[Purpose::Invite],
            Self::MagicLink => &[Purpose::MagicLink],
            Self::Recovery => &[Purpose::Recovery],
            Self::Email => &[Purpose::Signup, Purpose::MagicLink],
            Self::EmailChange => &[Purpose::EmailChangeCurrent, Purpose::EmailChangeNew],
            Self::Unlock => &[Purpose::Unlock],
            Self::Confirmation => &[
                Purpose::Signup,
                Purpose::EmailChangeCurrent,
                Purpose::EmailChangeNew,
            ],
        }
    }
}

/// What redeeming a token came to.
#[derive(Debug)]
pub enum VerifyOutcome {
    /// Signed in (a session for the token's user).
    Session {
        grant: Box<SessionGrant>,
        purpose: Purpose,
        redirect_to: String,
    },
    /// A PKCE flow: the browser goes to `redirect_to?code=` and the client exchanges it.
    AuthCode {
        code: SecretString,
        redirect_to: String,
    },
    /// The first of the two confirmations of an email change.
    EmailChangePending { redirect_to: String },
    /// The account's hard stop was lifted; sign in again.
    Unlocked { redirect_to: String },
}

/// What a sign-up came to when addresses are confirmed.
#[derive(Debug)]
pub enum SignedUp {
    /// Confirmed at once (no mailer, or autoconfirm): signed in.
    Session(Box<SessionGrant>),
    /// A confirmation was mailed; no session until it is redeemed.
    Pending(Box<UserRecord>),
    /// The address was taken: the owner was mailed instead, and this stand-in (a fresh id,
    /// nothing confirmed) answers exactly as a new account would.
    Obfuscated(Box<UserRecord>),
}

/// What `admin/generate_link` hands back.
#[derive(Debug)]
pub struct GeneratedLink {
    pub user: UserRecord,
    pub action_link: String,
    pub email_otp: SecretString,
    pub hashed_token: SecretString,
    pub verification_type: &'static str,
    pub redirect_to: String,
}

/// An email change waiting for its confirmations.
#[derive(Debug)]
pub struct EmailChangeStarted {
    pub new_email: String,
}

/// The mail flows. Every method answers [`Error::MailNotConfigured`] without a mailer.
#[derive(Clone)]
pub struct Mail {
    shared: Arc<Shared>,
}

impl Mail {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Whether this server sends mail.
    pub fn enabled(&self) -> bool {
        self.shared.postbox.is_some()
    }

    /// How many messages wait in the outbox.
    pub async fn outbox_depth(&self) -> Result<gatehouse_store::OutboxDepth, Error> {
        Ok(self.shared.store.mail_outbox_depth().await?)
    }

    /// Whether sign-ups are confirmed at once (no mailer, or autoconfirm).
    pub fn autoconfirm(&self) -> bool {
        self.shared
            .postbox
            .as_ref()
            .is_none_or(|p| p.settings.autoconfirm)
    }

    fn postbox(&self) -> Result<&Arc<Postbox>, Error> {
        self.shared.postbox.as_ref().ok_or(Error::MailNotConfigured)
    }

    /// The allowed redirect for `requested`, or the site URL.
    pub fn redirect(&self, requested: Option<&str>) -> String {
        match &self.shared.postbox {
            Some(p) => p
                .settings
                .redirect_urls
                .resolve(requested, &p.settings.site_url),
            None => self.shared.settings.public_url.clone(),
        }
    }

    /// Where a link token's page may send the browser: the allowed redirect stored with
    /// it, while it is unused and unexpired (`None` otherwise). A read: nothing is
    /// consumed.
    pub async fn link_redirect(&self, token: &str) -> Result<Option<String>, Error> {
        if !self.enabled() || token.len() != 43 {
            return Ok(None);
        }
        let now = self.shared.now();
        let found = self
            .shared
            .store
            .find_one_time_token_by_link(&sha256(token.as_bytes()))
            .await?;
        Ok(found
            .filter(|t| t.expires_at.get() > now)
            .map(|t| self.redirect(t.redirect_to.as_deref())))
    }

    /// Limits a request that mails `email` (validated): per IP, then per address and
    /// source — counted whether or not the address has an account, so the limit tells
    /// nothing, and per source, so a stranger using up an address's budget does not stop
    /// its owner's own requests (ASVS 6.1.1). `scope` keeps unlock mail apart.
    async fn limit_mail(&self, scope: &str, email: &str, meta: &RequestMeta) -> Result<(), Error> {
        self.shared
            .limit(Bucket::MailIp, meta.source.as_deref())
            .await?;
        let key = format!(
            "{scope}|{}|{}",
            email.to_lowercase(),
            meta.source.as_deref().unwrap_or_default()
        );
        self.shared
            .limit(Bucket::MailAddress, Some(&key))
            .await
            .map_err(|err| match err {
                Error::RateLimited { retry_after } => Error::EmailRateLimited { retry_after },
                other => other,
            })
    }

    /// Runs `work` after the answer; failures are logged (they concern an address the
    /// caller may not own, so they are not theirs to see).
    fn in_background<F>(&self, what: &'static str, work: F)
    where
        F: std::future::Future<Output = Result<(), Error>> + Send + 'static,
    {
        tokio::spawn(async move {
            if let Err(err) = work.await {
                tracing::warn!(flow = what, error = %err, "mail flow failed");
            }
        });
    }

    /// Starts a PKCE flow for a mailed link, when the client sent a challenge.
    async fn start_flow(
        &self,
        pkce: Option<&Pkce>,
        purpose: Purpose,
    ) -> Result<Option<Uuid>, Error> {
        let Some(pkce) = pkce else { return Ok(None) };
        Ok(Some(
            pkce::start(&self.shared, pkce, purpose.as_str()).await?,
        ))
    }

    /// Mails `user` a fresh token for `purpose`, in a transaction of its own.
    async fn send(
        shared: &Shared,
        user: &UserRecord,
        mailing: Mailing<'_>,
        meta: &RequestMeta,
    ) -> Result<(), Error> {
        let postbox = shared.postbox.as_ref().ok_or(Error::MailNotConfigured)?;
        let now = shared.now();
        let purpose = mailing.purpose;
        // To the address as stored, never as typed: a lookup that folds case or Unicode
        // (Postgres's lower()) must not send an account's mail to a look-alike domain.
        let stored = user.email.clone();
        let mailing = match (purpose, stored.as_deref()) {
            (Purpose::EmailChangeNew, _) | (_, None) => mailing,
            (_, Some(stored)) => Mailing {
                to: stored,
                ..mailing
            },
        };
        let issued = postbox.issue(user.id, &mailing, now)?;
        let event = shared.audit_record(
            "user.mail_requested",
            Some(user.id),
            Some(user.id),
            meta,
            json!({ "purpose": purpose.as_str() }),
        );
        let mut tx = shared.store.begin().await?;
        postbox.send_token(&mut tx, &issued, purpose, now).await?;
        tx.insert_audit_event(&event).await?;
        tx.commit().await?;
        postbox.wake.notify_one();
        Ok(())
    }

    /// `POST /recover`, `POST /auth/password/forgot`: mails a reset link and code to the
    /// account with this address, if there is one. The answer is the same either way.
    pub async fn request_recovery(
        &self,
        email: &str,
        redirect_to: Option<&str>,
        pkce: Option<Pkce>,
        meta: &RequestMeta,
    ) -> Result<(), Error> {
        self.postbox()?;
        let email = validate::email(email)?;
        self.limit_mail("mail", &email, meta).await?;
        let redirect = self.redirect(redirect_to);
        let (shared, meta, this) = (self.shared.clone(), meta.clone(), self.clone());
        self.in_background("recovery", async move {
            let Some(user) = shared.store.find_user_by_email(&email).await? else {
                return Ok(());
            };
            if check_usable(&user, shared.now()).is_err() {
                return Ok(());
            }
            let flow = this.start_flow(pkce.as_ref(), Purpose::Recovery).await?;
            Self::send(
                &shared,
                &user,
                Mailing {
                    purpose: Purpose::Recovery,
                    to: &email,
                    new_email: None,
                    flow,
                    redirect_to: Some(redirect),
                },
                &meta,
            )
            .await
        });
        Ok(())
    }

    /// `POST /otp`, `POST /auth/magic-link`: mails a sign-in link and code; with
    /// `create_user`, an unknown address gets an account (no password) and a confirmation
    /// that signs it in. The answer is the same whatever the address.
    pub async fn request_magic_link(
        &self,
        email: &str,
        create_user: bool,
        data: Option<Value>,
        redirect_to: Option<&str>,
        pkce: Option<Pkce>,
        meta: &RequestMeta,
    ) -> Result<(), Error> {
        self.postbox()?;
        let email = validate::email(email)?;
        let data = data.filter(|d| !d.is_null()).unwrap_or_else(|| json!({}));
        validate::user_metadata(&data)?;
        self.limit_mail("mail", &email, meta).await?;
        let redirect = self.redirect(redirect_to);
        let (shared, meta, this) = (self.shared.clone(), meta.clone(), self.clone());
        self.in_background("magic_link", async move {
            let existing = shared.store.find_user_by_email(&email).await?;
            let (user, purpose) = match existing {
                Some(user) if check_usable(&user, shared.now()).is_ok() => {
                    (user, Purpose::MagicLink)
                }
                Some(_) => return Ok(()),
                None if create_user => (
                    this.create_passwordless(&email, data, false, &meta).await?,
                    Purpose::Signup,
                ),
                None => return Ok(()),
            };
            let flow = this.start_flow(pkce.as_ref(), purpose).await?;
            Self::send(
                &shared,
                &user,
                Mailing {
                    purpose,
                    to: &email,
                    new_email: None,
                    flow,
                    redirect_to: Some(redirect),
                },
                &meta,
            )
            .await
        });
        Ok(())
    }

    /// `POST /resend`, `POST /auth/email/resend`: mails the sign-up confirmation (or the
    /// email-change confirmations) again, if one is pending for this address.
    pub async fn resend(
        &self,
        kind: LinkType,
        email: &str,
        redirect_to: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<(), Error> {
        self.postbox()?;
        if !matches!(kind, LinkType::Signup | LinkType::EmailChange) {
            return Err(Error::invalid("type", "must be signup or email_change"));
        }
        let email = validate::email(email)?;
        self.limit_mail("mail", &email, meta).await?;
        let redirect = self.redirect(redirect_to);
        let (shared, meta) = (self.shared.clone(), meta.clone());
        self.in_background("resend", async move {
            let Some(user) = shared.store.find_user_by_email(&email).await? else {
                return Ok(());
            };
            match kind {
                LinkType::Signup if user.email_confirmed_at.is_none() => {
                    Self::send(
                        &shared,
                        &user,
                        Mailing {
                            purpose: Purpose::Signup,
                            to: &email,
                            new_email: None,
                            flow: None,
                            redirect_to: Some(redirect),
                        },
                        &meta,
                    )
                    .await
                }
                LinkType::EmailChange => {
                    let pending = shared
                        .store
                        .find_one_time_token_by_email(
                            &email,
                            &[Purpose::EmailChangeCurrent.as_str()],
                        )
                        .await?;
                    // Only this account's own pending change.
                    match pending
                        .filter(|t| t.user_id == user.id)
                        .and_then(|t| t.new_email)
                    {
                        Some(new_email) => {
                            let current = user.email.clone().unwrap_or_default();
                            let mut tx = shared.store.begin().await?;
                            Self::send_email_change(
                                &shared,
                                &mut tx,
                                &user,
                                &current,
                                &new_email,
                                Some(redirect),
                                &meta,
                            )
                            .await?;
                            tx.commit().await?;
                            if let Some(postbox) = &shared.postbox {
                                postbox.wake.notify_one();
                            }
                            Ok(())
                        }
                        None => Ok(()),
                    }
                }
                _ => Ok(()),
            }
        });
        Ok(())
    }

    /// `POST /auth/unlock`: mails the owner of an account at the hard stop a link that
    /// lifts it. The same answer for every address.
    pub async fn request_unlock(&self, email: &str, meta: &RequestMeta) -> Result<(), Error> {
        self.postbox()?;
        let email = validate::email(email)?;
        self.limit_mail("unlock", &email, meta).await?;
        let redirect = self.redirect(None);
        let (shared, meta) = (self.shared.clone(), meta.clone());
        self.in_background("unlock", async move {
            match shared.store.find_user_by_email(&email).await? {
                Some(user) if user.locked_at.is_some() => {
                    Self::send(
                        &shared,
                        &user,
                        Mailing {
                            purpose: Purpose::Unlock,
                            to: &email,
                            new_email: None,
                            flow: None,
                            redirect_to: Some(redirect),
                        },
                        &meta,
                    )
                    .await
                }
                _ => Ok(()),
            }
        });
        Ok(())
    }

    /// `GET /reauthenticate`: mails the signed-in user a code that, as the `nonce` of a
    /// password change, proves they read their mail.
    pub async fn reauthenticate(
        &self,
        principal: &crate::Principal,
        meta: &RequestMeta,
    ) -> Result<(), Error> {
        self.postbox()?;
        let user = &principal.user;
        let Some(email) = user.email.clone() else {
            return Err(Error::invalid("email", "the account has no email address"));
        };
        if user.email_confirmed_at.is_none() {
            return Err(Error::EmailNotConfirmed);
        }
        self.limit_mail("reauthenticate", &user.id.to_string(), meta)
            .await?;
        Self::send(
            &self.shared,
            user,
            Mailing {
                purpose: Purpose::Reauthentication,
                to: &email,
                new_email: None,
                flow: None,
                redirect_to: None,
            },
            meta,
        )
        .await
    }

    /// Redeems a code or a link. `want_auth_code`: the browser follows the link (our
    /// page's POST), so a PKCE flow answers with its auth code instead of a session.
    pub async fn verify(
        &self,
        kind: LinkType,
        presented: CodeOrLink,
        want_auth_code: bool,
        meta: &RequestMeta,
    ) -> Result<VerifyOutcome, Error> {
        let postbox = self.postbox()?.clone();
        let shared = &self.shared;
        shared
            .limit(Bucket::VerifyIp, meta.source.as_deref())
            .await?;
        let token = self.find_token(&postbox, kind, &presented).await?;
        let now = shared.now();
        let user = shared
            .store
            .get_user(token.user_id)
            .await?
            .ok_or(Error::OtpInvalid)?;
        let bound = match Purpose::parse(&token.purpose) {
            Some(Purpose::EmailChangeNew) => token.new_email.as_deref(),
            _ => user.email.as_deref(),
        };
        if !bound.is_some_and(|e| e.eq_ignore_ascii_case(&token.email)) {
            // The address changed since the token was mailed: it is no longer theirs to prove.
            return Err(Error::OtpInvalid);
        }
        check_usable(&user, now)?;
        let purpose = Purpose::parse(&token.purpose).ok_or(Error::OtpInvalid)?;
        let redirect_to = self.redirect(token.redirect_to.as_deref());
        let mut tx = shared.store.begin().await?;
        if !tx.consume_one_time_token(token.id, now.into()).await? {
            return Err(Error::OtpInvalid);
        }
        let at: Timestamp = now.into();
        let mut user = user;
        let details = json!({ "purpose": purpose.as_str(), "by": match presented { CodeOrLink::Code { .. } => "code", CodeOrLink::Link { .. } => "link" } });
        let event =
            shared.audit_record("user.verified", Some(user.id), Some(user.id), meta, details);
        tx.insert_audit_event(&event).await?;
        match purpose {
            Purpose::Unlock => {
                tx.reset_user_failures(user.id, true).await?;
                let mut identifiers = Vec::new();
                if let Some(email) = &user.email {
                    identifiers.push(crate::Identifier::Email(email.clone()).failure_key());
                }
                if let Some(name) = &user.username {
                    identifiers.push(crate::Identifier::Username(name.clone()).failure_key());
                }
                tx.clear_all_sign_in_failures(&identifiers).await?;
                tx.commit().await?;
                return Ok(VerifyOutcome::Unlocked { redirect_to });
            }
            Purpose::EmailChangeCurrent | Purpose::EmailChangeNew => {
                let other = match purpose {
                    Purpose::EmailChangeCurrent => Purpose::EmailChangeNew,
                    _ => Purpose::EmailChangeCurrent,
                };
                tx.lock_user(user.id).await?;
                let sibling = tx
                    .latest_one_time_token(user.id, other.as_str(), token.created_at)
                    .await?;
                let confirmed = sibling
                    .as_ref()
                    .is_none_or(|s| s.redeemed_at.is_some() && s.new_email == token.new_email);
                if !confirmed {
                    tx.commit().await?;
                    return Ok(VerifyOutcome::EmailChangePending { redirect_to });
                }
                let new_email = token.new_email.clone().ok_or(Error::OtpInvalid)?;
                let change = UserChange {
                    email: Some(new_email.clone()),
                    email_confirmed_at: Some(Some(at)),
                    ..UserChange::default()
                };
                if shared
                    .identity
                    .change_user(&mut tx, user.id, &change, None, false, at)
                    .await?
                    != ChangeOutcome::Changed
                {
                    return Err(Error::OtpInvalid);
                }
                tx.void_one_time_tokens(
                    user.id,
                    &[Purpose::Recovery.as_str(), Purpose::MagicLink.as_str()],
                    at,
                )
                .await?;
                let event = shared.audit_record(
                    "user.email_changed",
                    Some(user.id),
                    Some(user.id),
                    meta,
                    json!({}),
                );
                tx.insert_audit_event(&event).await?;
                user = change.applied_to(&user, at);
            }
            Purpose::Reauthentication => return Err(Error::OtpInvalid),
            Purpose::Signup | Purpose::MagicLink | Purpose::Recovery | Purpose::Invite => {
                // Redeeming a mailed token proves the address.
                if user.email_confirmed_at.is_none() {
                    let change = UserChange {
                        email_confirmed_at: Some(Some(at)),
                        ..UserChange::default()
                    };
                    let _ = shared
                        .identity
                        .change_user(&mut tx, user.id, &change, None, false, at)
                        .await?;
                    user.email_confirmed_at = Some(at);
                    // An unconfirmed account's password was never proven: whoever signed
                    // the address up may not be its owner. A confirmation keeps the
                    // password of the sign-up it was mailed for; any other first proof
                    // of the address (a magic link, an invitation, a recovery) leaves none.
                    let password = match purpose {
                        Purpose::Signup => token
                            .password_hash
                            .as_deref()
                            .or(user.password_hash.as_deref()),
                        _ => None,
                    };
                    tx.set_password_hash(user.id, password).await?;
                    user.password_hash = password.map(str::to_owned);
                }
            }
        }
        if let (true, Some(flow)) = (want_auth_code, token.flow_state_id) {
            let code =
                SecretString::from(crate::crypto::b64url(&crate::crypto::random_bytes::<32>()?));
            if !tx
                .issue_flow_auth_code(flow, user.id, &sha256(code.expose_secret().as_bytes()), at)
                .await?
            {
                // The flow is gone (or was already completed): no silent fallback to a
                // session in the URL.
                return Err(Error::FlowStateNotFound);
            }
            tx.commit().await?;
            return Ok(VerifyOutcome::AuthCode { code, redirect_to });
        }
        tx.record_sign_in(user.id, at).await?;
        user.last_sign_in_at = Some(at);
        let grant = shared
            .identity
            .start_session(&mut tx, user, amr_method(purpose, &presented), meta, None)
            .await?;
        tx.commit().await?;
        Ok(VerifyOutcome::Session {
            grant: Box::new(grant),
            purpose,
            redirect_to,
        })
    }

    /// The unused token presented, checked: right type, not expired, the right code (a
    /// wrong one counts, and the fifth voids the token). Every failure is the same
    /// `otp_expired`.
    async fn find_token(
        &self,
        postbox: &Postbox,
        kind: LinkType,
        presented: &CodeOrLink,
    ) -> Result<OneTimeTokenRecord, Error> {
        let shared = &self.shared;
        let purposes: Vec<&str> = kind.purposes().iter().map(|p| p.as_str()).collect();
        let now = shared.now();
        let token = match presented {
            CodeOrLink::Link { token } => {
                let text = token.expose_secret();
                if text.len() != 43 {
                    return Err(Error::OtpInvalid);
                }
                let found = shared
                    .store
                    .find_one_time_token_by_link(&sha256(text.as_bytes()))
                    .await?;
                found
                    .filter(|t| purposes.contains(&t.purpose.as_str()))
                    .ok_or(Error::OtpInvalid)?
            }
            CodeOrLink::Code { email, code } => {
                let email = email.trim();
                let code = code.expose_secret().trim();
                if email.is_empty()
                    || email.len() > 320
                    || code.len() != 6
                    || !code.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(Error::OtpInvalid);
                }
                // Every live token of these purposes (a sign-up's confirmation and a magic
                // link may both be out): the code matches one, or counts against each.
                let mut live: Vec<_> = shared
                    .store
                    .find_one_time_tokens_by_email(email, &purposes)
                    .await?
                    .into_iter()
                    .filter(|t| t.expires_at.get() > now)
                    .collect();
                let Some(matched) = live.iter().position(|t| postbox.code_matches(t, code)) else {
                    let mut tx = shared.store.begin().await?;
                    for token in &live {
                        let attempts = tx
                            .count_wrong_code(
                                token.id,
                                postbox.settings.max_wrong_codes,
                                now.into(),
                            )
                            .await?;
                        if attempts >= postbox.settings.max_wrong_codes {
                            tracing::info!(token = %token.id, "one-time token voided after too many wrong codes");
                        }
                    }
                    tx.commit().await?;
                    return Err(Error::OtpInvalid);
                };
                live.swap_remove(matched)
            }
        };
        if token.expires_at.get() <= now {
            return Err(Error::OtpInvalid);
        }
        Ok(token)
    }

    /// `POST /token?grant_type=pkce`: trades a flow's auth code and its verifier for a
    /// session, once.
    pub async fn exchange_code(
        &self,
        auth_code: &str,
        verifier: &str,
        meta: &RequestMeta,
    ) -> Result<SessionGrant, Error> {
        pkce::exchange(&self.shared, auth_code, verifier, meta).await
    }

    /// A sign-up when addresses are confirmed: see [`SignedUp`]. Every sign-up is
    /// checked the same way (limits, every field, the password policy) and costs the same
    /// (one hash, one transaction) before its address decides what is written, so the
    /// answer tells nothing about who has an account.
    pub(crate) async fn sign_up_confirming(
        &self,
        input: crate::SignUp,
        redirect_to: Option<&str>,
        pkce: Option<Pkce>,
        meta: &RequestMeta,
    ) -> Result<SignedUp, Error> {
        let shared = &self.shared;
        shared
            .limit(Bucket::SignupIp, meta.source.as_deref())
            .await?;
        let email = validate::email(&input.email)?;
        self.limit_mail("mail", &email, meta).await?;
        let planned = shared
            .plan_account(
                crate::accounts::signup_account(input, false),
                true,
                false,
                true,
            )
            .await?;
        let redirect = self.redirect(redirect_to);
        let postbox = self.postbox()?.clone();
        let now = shared.now();
        // What answers: the planned account, whether or not it is written.
        let answer = planned_record(&planned);
        let existing = shared.store.find_user_by_email(&email).await?;
        let flow = match &existing {
            None => self.start_flow(pkce.as_ref(), Purpose::Signup).await?,
            Some(_) => None,
        };
        let mut tx = shared.store.begin().await?;
        let signed_up = match existing {
            None => {
                let user = tx.create_user(&planned).await?;
                let event = shared.audit_record(
                    "user.signup",
                    Some(user.id),
                    Some(user.id),
                    meta,
                    json!({ "confirmation": "mailed" }),
                );
                tx.insert_audit_event(&event).await?;
                let to = user.email.clone().unwrap_or_default();
                let issued = postbox.issue(
                    user.id,
                    &Mailing {
                        purpose: Purpose::Signup,
                        to: &to,
                        new_email: None,
                        flow,
                        redirect_to: Some(redirect),
                    },
                    now,
                )?;
                postbox
                    .send_token(&mut tx, &issued, Purpose::Signup, now)
                    .await?;
                SignedUp::Pending(Box::new(user))
            }
            Some(pending) if pending.email_confirmed_at.is_none() => {
                // Confirmed by whoever reads the mail, with the password of the sign-up
                // that asked for it: whoever pre-registered the address keeps nothing.
                let to = pending.email.clone().unwrap_or_default();
                let mut issued = postbox.issue(
                    pending.id,
                    &Mailing {
                        purpose: Purpose::Signup,
                        to: &to,
                        new_email: None,
                        flow: None,
                        redirect_to: Some(redirect),
                    },
                    now,
                )?;
                issued
                    .record
                    .password_hash
                    .clone_from(&planned.password_hash);
                postbox
                    .send_token(&mut tx, &issued, Purpose::Signup, now)
                    .await?;
                let event = shared.audit_record(
                    "user.signup_again",
                    None,
                    Some(pending.id),
                    meta,
                    json!({}),
                );
                tx.insert_audit_event(&event).await?;
                SignedUp::Pending(Box::new(answer))
            }
            Some(existing) => {
                // Tell the owner, with a way back in (a recovery code and link).
                let to = existing.email.clone().unwrap_or_default();
                let issued = postbox.issue(
                    existing.id,
                    &Mailing {
                        purpose: Purpose::Recovery,
                        to: &to,
                        new_email: None,
                        flow: None,
                        redirect_to: Some(redirect),
                    },
                    now,
                )?;
                tx.insert_one_time_token(&issued.record).await?;
                let link = postbox.link(&issued, Purpose::Recovery);
                let context = postbox.context(&to, None, issued.code.expose_secret(), &link);
                postbox
                    .enqueue(&mut tx, Kind::ExistingAccount, &to, &context, now)
                    .await?;
                let event = shared.audit_record(
                    "user.signup_attempt_existing",
                    None,
                    Some(existing.id),
                    meta,
                    json!({}),
                );
                tx.insert_audit_event(&event).await?;
                SignedUp::Obfuscated(Box::new(answer))
            }
        };
        tx.commit().await?;
        postbox.wake.notify_one();
        Ok(signed_up)
    }

    /// A secure email change, in the caller's transaction: a confirmation to the
    /// current address and one to the new; the address changes when both are redeemed.
    /// The caller wakes the courier ([`Mail::wake`]) after its commit.
    pub(crate) async fn write_email_change(
        &self,
        tx: &mut gatehouse_store::Transaction,
        user: &UserRecord,
        new_email: &str,
        meta: &RequestMeta,
    ) -> Result<EmailChangeStarted, Error> {
        let current = user.email.clone().unwrap_or_default();
        Self::send_email_change(
            &self.shared,
            tx,
            user,
            &current,
            new_email,
            Some(self.redirect(None)),
            meta,
        )
        .await?;
        Ok(EmailChangeStarted {
            new_email: new_email.to_owned(),
        })
    }

    /// The limit on email changes to `new_email`, checked before the change's transaction.
    pub(crate) async fn limit_email_change(
        &self,
        new_email: &str,
        meta: &RequestMeta,
    ) -> Result<(), Error> {
        self.postbox()?;
        self.limit_mail("mail", new_email, meta).await
    }

    /// Wakes this process's courier: a message was queued and committed.
    pub(crate) fn wake(&self) {
        if let Some(postbox) = &self.shared.postbox {
            postbox.wake.notify_one();
        }
    }

    async fn send_email_change(
        shared: &Shared,
        tx: &mut gatehouse_store::Transaction,
        user: &UserRecord,
        current: &str,
        new_email: &str,
        redirect_to: Option<String>,
        meta: &RequestMeta,
    ) -> Result<(), Error> {
        let postbox = shared.postbox.as_ref().ok_or(Error::MailNotConfigured)?;
        let now = shared.now();
        let event = shared.audit_record(
            "user.email_change_requested",
            Some(user.id),
            Some(user.id),
            meta,
            json!({}),
        );
        if !current.is_empty() {
            let to_current = postbox.issue(
                user.id,
                &Mailing {
                    purpose: Purpose::EmailChangeCurrent,
                    to: current,
                    new_email: Some(new_email),
                    flow: None,
                    redirect_to: redirect_to.clone(),
                },
                now,
            )?;
            postbox
                .send_token(tx, &to_current, Purpose::EmailChangeCurrent, now)
                .await?;
        }
        let to_new = postbox.issue(
            user.id,
            &Mailing {
                purpose: Purpose::EmailChangeNew,
                to: new_email,
                new_email: Some(new_email),
                flow: None,
                redirect_to,
            },
            now,
        )?;
        postbox
            .send_token(tx, &to_new, Purpose::EmailChangeNew, now)
            .await?;
        tx.insert_audit_event(&event).await?;
        Ok(())
    }

    /// Checks a reauthentication code of `user` (the `nonce` of `PUT /user`) and returns
    /// the token to redeem with the change. A wrong code counts against it.
    pub(crate) async fn check_nonce(&self, user: &UserRecord, nonce: &str) -> Result<Uuid, Error> {
        let postbox = self.postbox()?.clone();
        let email = user.email.clone().ok_or(Error::ReauthenticationInvalid)?;
        let token = self
            .find_token_for(&postbox, &email, Purpose::Reauthentication, nonce)
            .await
            .map_err(|_| Error::ReauthenticationInvalid)?;
        if token.user_id != user.id {
            return Err(Error::ReauthenticationInvalid);
        }
        Ok(token.id)
    }

    async fn find_token_for(
        &self,
        postbox: &Postbox,
        email: &str,
        purpose: Purpose,
        code: &str,
    ) -> Result<OneTimeTokenRecord, Error> {
        let shared = &self.shared;
        let now = shared.now();
        let token = shared
            .store
            .find_one_time_token_by_email(email, &[purpose.as_str()])
            .await?
            .filter(|t| t.expires_at.get() > now)
            .ok_or(Error::OtpInvalid)?;
        if !postbox.code_matches(&token, code) {
            let mut tx = shared.store.begin().await?;
            tx.count_wrong_code(token.id, postbox.settings.max_wrong_codes, now.into())
                .await?;
            tx.commit().await?;
            return Err(Error::OtpInvalid);
        }
        Ok(token)
    }

    /// `POST /invite`: an account with no password for `email`, and an invitation that
    /// signs it in (to set a password). A confirmed address is 422 `email_exists`.
    pub async fn invite(
        &self,
        email: &str,
        data: Option<Value>,
        redirect_to: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<UserRecord, Error> {
        self.postbox()?;
        let email = validate::email(email)?;
        let data = data.filter(|d| !d.is_null()).unwrap_or_else(|| json!({}));
        validate::user_metadata(&data)?;
        let redirect = self.redirect(redirect_to);
        let user = match self.shared.store.find_user_by_email(&email).await? {
            Some(user) if user.email_confirmed_at.is_some() => return Err(Error::EmailExists),
            Some(user) => user,
            None => self.create_passwordless(&email, data, true, meta).await?,
        };
        Self::send(
            &self.shared,
            &user,
            Mailing {
                purpose: Purpose::Invite,
                to: &email,
                new_email: None,
                flow: None,
                redirect_to: Some(redirect),
            },
            meta,
        )
        .await?;
        Ok(user)
    }

    /// `POST /admin/generate_link`: a token as a message would carry it, handed to the
    /// caller (the service role) instead of mailed. `signup` makes the account (with
    /// `password`) when there is none; the other types need an existing account.
    #[allow(clippy::too_many_arguments)]
    pub async fn generate_link(
        &self,
        accounts: &crate::Accounts,
        kind: &str,
        email: &str,
        password: Option<SecretString>,
        new_email: Option<&str>,
        data: Option<Value>,
        redirect_to: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<GeneratedLink, Error> {
        let postbox = self.postbox()?.clone();
        let shared = &self.shared;
        let email = validate::email(email)?;
        let mut purpose = match kind {
            "signup" => Purpose::Signup,
            "invite" => Purpose::Invite,
            "magiclink" => Purpose::MagicLink,
            "recovery" => Purpose::Recovery,
            "email_change_current" => Purpose::EmailChangeCurrent,
            "email_change_new" => Purpose::EmailChangeNew,
            _ => {
                return Err(Error::invalid(
                    "type",
                    "must be signup, invite, magiclink, recovery, email_change_current or email_change_new",
                ))
            }
        };
        let new_email = match purpose {
            Purpose::EmailChangeCurrent | Purpose::EmailChangeNew => {
                Some(validate::email(new_email.ok_or_else(|| {
                    Error::invalid("new_email", "is required for an email change")
                })?)?)
            }
            _ => None,
        };
        let redirect = self.redirect(redirect_to);
        let existing = shared.store.find_user_by_email(&email).await?;
        let user = match (existing, purpose) {
            (Some(user), Purpose::Signup | Purpose::Invite)
                if user.email_confirmed_at.is_some() =>
            {
                return Err(Error::EmailExists)
            }
            (Some(user), _) => user,
            (None, Purpose::Signup) => {
                let password = password
                    .ok_or_else(|| Error::invalid("password", "is required for a signup link"))?;
                let input = crate::SignUp {
                    email: email.clone(),
                    password,
                    username: None,
                    display_name: None,
                    user_metadata: data,
                };
                accounts.sign_up_unconfirmed(input, meta).await?
            }
            (None, Purpose::MagicLink) => {
                // GoTrue makes the account and answers a sign-up link.
                purpose = Purpose::Signup;
                self.create_passwordless(&email, data.unwrap_or_else(|| json!({})), false, meta)
                    .await?
            }
            (None, Purpose::Invite) => {
                self.create_passwordless(&email, data.unwrap_or_else(|| json!({})), true, meta)
                    .await?
            }
            (None, _) => return Err(Error::NotFound),
        };
        let to = match purpose {
            Purpose::EmailChangeNew => new_email.clone().unwrap_or_default(),
            _ => email.clone(),
        };
        let now = shared.now();
        let issued = postbox.issue(
            user.id,
            &Mailing {
                purpose,
                to: &to,
                new_email: new_email.as_deref(),
                flow: None,
                redirect_to: Some(redirect.clone()),
            },
            now,
        )?;
        let event = shared.audit_record(
            "admin.link_generated",
            None,
            Some(user.id),
            meta,
            json!({ "purpose": purpose.as_str() }),
        );
        let mut tx = shared.store.begin().await?;
        tx.insert_one_time_token(&issued.record).await?;
        tx.insert_audit_event(&event).await?;
        tx.commit().await?;
        Ok(GeneratedLink {
            action_link: postbox.link(&issued, purpose),
            email_otp: issued.code,
            hashed_token: issued.link_token,
            verification_type: purpose.verification_type(),
            redirect_to: redirect,
            user,
        })
    }

    /// An account with no password (magic-link sign-up, invitation): unconfirmed until
    /// its token is redeemed.
    async fn create_passwordless(
        &self,
        email: &str,
        data: Value,
        invited: bool,
        meta: &RequestMeta,
    ) -> Result<UserRecord, Error> {
        let shared = &self.shared;
        let now = shared.now();
        let app_metadata = json!({ "provider": "email", "providers": ["email"] });
        let new = NewUser {
            id: new_id(now),
            email: email.to_owned(),
            username: None,
            password_hash: None,
            role: "user".to_owned(),
            app_metadata,
            user_metadata: data,
            email_confirmed_at: None,
            banned_until: None,
            display_name: None,
            created_at: now.into(),
        };
        let action = if invited {
            "user.invited"
        } else {
            "user.signup"
        };
        let event = shared.audit_record(
            action,
            None,
            Some(new.id),
            meta,
            json!({ "passwordless": true }),
        );
        let mut tx = shared.store.begin().await?;
        let user = tx.create_user(&new).await?;
        tx.insert_audit_event(&event).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// `POST /auth/password/reset`: redeems a recovery token and sets a new password, in
    /// one transaction that also ends every session of the account.
    pub async fn reset_password(
        &self,
        presented: CodeOrLink,
        new_password: &SecretString,
        meta: &RequestMeta,
    ) -> Result<UserRecord, Error> {
        let postbox = self.postbox()?.clone();
        let shared = &self.shared;
        shared
            .limit(Bucket::VerifyIp, meta.source.as_deref())
            .await?;
        let token = self
            .find_token(&postbox, LinkType::Recovery, &presented)
            .await?;
        let user = shared
            .store
            .get_user(token.user_id)
            .await?
            .ok_or(Error::OtpInvalid)?;
        if !user
            .email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(&token.email))
        {
            return Err(Error::OtpInvalid);
        }
        check_usable(&user, shared.now())?;
        shared.check_password(
            new_password,
            user.email.as_deref(),
            user.username.as_deref(),
        )?;
        let hash = shared.identity.new_password(new_password).await?;
        let now = shared.now();
        let at: Timestamp = now.into();
        let mut tx = shared.store.begin().await?;
        if !tx.consume_one_time_token(token.id, at).await? {
            return Err(Error::OtpInvalid);
        }
        let change = UserChange {
            password_hash: hash,
            email_confirmed_at: user.email_confirmed_at.is_none().then_some(Some(at)),
            ..UserChange::default()
        };
        if shared
            .identity
            .change_user(&mut tx, user.id, &change, Some(new_password), false, at)
            .await?
            != ChangeOutcome::Changed
        {
            return Err(Error::OtpInvalid);
        }
        let ended = shared
            .identity
            .end_sessions(&mut tx, user.id, None, "password_reset")
            .await?;
        tx.forget_trust(user.id).await?;
        tx.void_one_time_tokens(
            user.id,
            &[Purpose::Recovery.as_str(), Purpose::MagicLink.as_str()],
            at,
        )
        .await?;
        let event = shared.audit_record(
            "user.password_reset",
            Some(user.id),
            Some(user.id),
            meta,
            json!({ "sessions_ended": ended }),
        );
        tx.insert_audit_event(&event).await?;
        tx.commit().await?;
        Ok(change.applied_to(&user, at))
    }
}

/// How a session started by a redeemed token is recorded (GoTrue's `amr` methods).
fn amr_method(purpose: Purpose, presented: &CodeOrLink) -> &'static str {
    match (purpose, presented) {
        (_, CodeOrLink::Code { .. }) if purpose != Purpose::Recovery => "otp",
        (Purpose::Signup, _) => "email/signup",
        (Purpose::MagicLink, _) => "magiclink",
        (Purpose::Recovery, _) => "recovery",
        (Purpose::Invite, _) => "invite",
        (Purpose::EmailChangeCurrent | Purpose::EmailChangeNew, _) => "email_change",
        _ => "otp",
    }
}

/// The account a sign-up planned, as a record: what answers it whether or not it was
/// written (a taken address answers exactly like a new one).
fn planned_record(new: &NewUser) -> UserRecord {
    UserRecord {
        id: new.id,
        email: Some(new.email.clone()),
        username: new.username.clone(),
        phone: None,
        password_hash: None,
        role: new.role.clone(),
        is_active: true,
        is_anonymous: false,
        app_metadata: gatehouse_store::Json(new.app_metadata.clone()),
        user_metadata: gatehouse_store::Json(new.user_metadata.clone()),
        email_confirmed_at: None,
        phone_confirmed_at: None,
        last_sign_in_at: None,
        banned_until: None,
        deleted_at: None,
        created_at: new.created_at,
        updated_at: new.created_at,
        display_name: new.display_name.clone(),
        avatar_url: None,
        failed_sign_ins: 0,
        locked_at: None,
    }
}
