//! The [`Mail`] service and the requests that mail a code and a link (recovery, magic
//! link, resend, unlock, reauthentication). Redeeming them is [`super::verify`]; the
//! sign-up and email change that wait for mail are [`super::signup`]; invitations and
//! `generate_link` are [`super::invite`].
//!
//! Requests that take an address from a stranger (forgot password, magic link, resend,
//! unlock) are validated and rate-limited, then answered at once; looking the address up
//! and queueing the message happen after the answer, in a task of their own, so a known
//! and an unknown address answer the same, in the same time (ASVS 6.3.8).

use std::sync::Arc;

use gatehouse_store::UserRecord;
use secrecy::SecretString;
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
use crate::{validate, Error};

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

    pub(super) fn purposes(self) -> &'static [Purpose] {
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
    pub(super) shared: Arc<Shared>,
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

    pub(super) fn postbox(&self) -> Result<&Arc<Postbox>, Error> {
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
    pub(super) async fn limit_mail(
        &self,
        scope: &str,
        email: &str,
        meta: &RequestMeta,
    ) -> Result<(), Error> {
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
    /// caller may not own, so they are not theirs to see). At most
    /// [`BACKGROUND_AT_ONCE`](super::BACKGROUND_AT_ONCE) run at once, so a burst waits
    /// its turn here instead of timing out on the pool (which lost mail on Postgres);
    /// past [`BACKGROUND_QUEUE`](super::BACKGROUND_QUEUE) waiting, the request is refused.
    pub(super) fn in_background<F>(&self, what: &'static str, work: F) -> Result<(), Error>
    where
        F: std::future::Future<Output = Result<(), Error>> + Send + 'static,
    {
        use std::sync::atomic::Ordering;
        let postbox = self.postbox()?;
        let waiting = postbox.waiting.clone();
        if waiting.fetch_add(1, Ordering::SeqCst) >= super::BACKGROUND_QUEUE {
            waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::EmailRateLimited { retry_after: 1 });
        }
        let turns = postbox.background.clone();
        tokio::spawn(async move {
            let turn = turns.acquire_owned().await;
            waiting.fetch_sub(1, Ordering::SeqCst);
            if turn.is_err() {
                return;
            }
            if let Err(err) = work.await {
                tracing::warn!(flow = what, error = %err, "mail flow failed");
            }
        });
        Ok(())
    }

    /// Starts a PKCE flow for a mailed link, when the client sent a challenge.
    pub(super) async fn start_flow(
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
    pub(super) async fn send(
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
        })?;
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
        })?;
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
        })?;
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
        })?;
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

    /// Wakes this process's courier: a message was queued and committed.
    pub(crate) fn wake(&self) {
        if let Some(postbox) = &self.shared.postbox {
            postbox.wake.notify_one();
        }
    }
}
