//! Redeeming a mailed code or link: [`Mail::verify`] (a session, an email change's half,
//! an unlock, or a PKCE auth code), the reauthentication nonce, and a password reset.

use gatehouse_store::{ChangeOutcome, OneTimeTokenRecord, Timestamp, UserChange, UserRecord};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;

use super::flows::{CodeOrLink, LinkType, Mail, VerifyOutcome};
use super::{Postbox, Purpose};
use crate::audit::RequestMeta;
use crate::crypto::sha256;
use crate::identity::check_usable;
use crate::ratelimit::Bucket;
use crate::Error;

/// Wrong codes an address's tokens of one kind take in a day, across every mail (five per
/// token): beyond, codes are refused and only the links work.
pub const MAX_WRONG_CODES_A_DAY: i32 = 20;

impl Mail {
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
                crate::protection::lift_hard_stop(&mut tx, &user).await?;
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
                // The guessing budget across tokens: past it, only links work for a day.
                let day_ago = now - time::Duration::DAY;
                if shared
                    .store
                    .wrong_codes_since(email, &purposes, day_ago.into())
                    .await?
                    >= i64::from(MAX_WRONG_CODES_A_DAY)
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
