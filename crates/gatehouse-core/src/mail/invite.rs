//! Accounts made from a mail: invitations, `generate_link` for the service role, and the
//! passwordless accounts a magic link or an invitation starts.

use gatehouse_store::{NewUser, UserRecord};
use secrecy::SecretString;
use serde_json::{json, Value};

use super::flows::{GeneratedLink, Mail};
use super::{Mailing, Purpose};
use crate::audit::RequestMeta;
use crate::{new_id, validate, Error};

impl Mail {
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
    pub(super) async fn create_passwordless(
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
}
