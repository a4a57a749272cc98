//! The two account changes that wait for mail: a sign-up under confirmation, and a
//! secure email change (both addresses confirm).

use gatehouse_mail::Kind;
use gatehouse_store::{NewUser, UserRecord};
use secrecy::ExposeSecret;
use serde_json::json;

use super::flows::{EmailChangeStarted, Mail, SignedUp};
use super::pkce::Pkce;
use super::{Mailing, Purpose};
use crate::audit::RequestMeta;
use crate::ratelimit::Bucket;
use crate::shared::Shared;
use crate::{validate, Error};

impl Mail {
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
        // Made whoever has the address, so every branch costs the same.
        let flow = self.start_flow(pkce.as_ref(), Purpose::Signup).await?;
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
                        flow,
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
        redirect_to: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<EmailChangeStarted, Error> {
        let current = user.email.clone().unwrap_or_default();
        Self::send_email_change(
            &self.shared,
            tx,
            user,
            &current,
            new_email,
            Some(self.redirect(redirect_to)),
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

    pub(super) async fn send_email_change(
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
