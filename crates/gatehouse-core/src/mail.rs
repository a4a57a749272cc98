//! Mail: the flows that need a message — confirming an address, resetting a password,
//! signing in by a link or a code, changing the email, reauthenticating, invitations and
//! unlocking a stopped account — over one-time tokens and an outbox.
//!
//! - **One-time tokens.** Every message carries a 6-digit code and a link token (256
//!   random bits), both for one user, one [`Purpose`] and the one address it was mailed to,
//!   single-use, expiring after `otp_ttl`; only digests are stored (the code as an HMAC
//!   under an instance secret). Five wrong codes void a token.
//! - **The outbox.** A message is rendered and sealed into the outbox in the transaction
//!   that stores its token, so a request never waits for SMTP and a crash loses nothing.
//!   The [`Courier`] delivers it (see [`outbox`]).
//! - **Links that scanners cannot consume.** A link opens a page of ours with one button;
//!   only the POST from it redeems the token. The browser is then sent only to an allowed
//!   URL ([`RedirectAllowlist`]).
//!
//! The flows themselves are the [`Mail`] service ([`flows`]).

mod flows;
mod invite;
pub mod outbox;
pub mod pkce;
mod redirect;
mod signup;
mod verify;

pub use flows::{
    CodeOrLink, EmailChangeStarted, GeneratedLink, LinkType, Mail, SignedUp, VerifyOutcome,
};
pub use outbox::Courier;
pub use redirect::RedirectAllowlist;

use std::time::Duration;

use gatehouse_mail::{Context, Kind, Message, Templates};
use gatehouse_store::{NewOneTimeToken, OneTimeTokenRecord, Timestamp, Transaction};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::crypto::{b64url, hmac_sha256, random_bytes, sha256, Sealer};
use crate::{new_id, Error};

/// How mail is sent and what the flows allow.
#[derive(Clone)]
pub struct MailSettings {
    /// The `From` of every message (`gatehouse <no-reply@example.com>`).
    pub from: String,
    /// The app's name, in subjects and bodies.
    pub site_name: String,
    /// The app's URL: where a verified link goes when no allowed `redirect_to` was asked.
    pub site_url: String,
    /// Whether sign-ups are confirmed at once (no confirmation mail).
    pub autoconfirm: bool,
    /// How long a code or link works (ASVS 6.5.5: 10 minutes by default).
    pub otp_ttl: Duration,
    /// Wrong codes a token survives; the next one voids it.
    pub max_wrong_codes: i32,
    /// Where a verified link may redirect to, besides the site URL.
    pub redirect_urls: RedirectAllowlist,
    /// The messages.
    pub templates: Templates,
}

impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("from", &self.from)
            .field("site_url", &self.site_url)
            .field("autoconfirm", &self.autoconfirm)
            .field("otp_ttl", &self.otp_ttl)
            .finish_non_exhaustive()
    }
}

impl MailSettings {
    /// Settings with the defaults, for `from`, the site `site_url` and `templates`.
    pub fn new(from: impl Into<String>, site_url: impl Into<String>, templates: Templates) -> Self {
        Self {
            from: from.into(),
            site_name: "gatehouse".to_owned(),
            site_url: site_url.into(),
            autoconfirm: false,
            otp_ttl: Duration::from_secs(10 * 60),
            max_wrong_codes: 5,
            redirect_urls: RedirectAllowlist::default(),
            templates,
        }
    }
}

/// What a one-time token is for. Stored as [`Purpose::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Confirming the address of a new account.
    Signup,
    /// Signing in by link or code.
    MagicLink,
    /// Resetting a forgotten password.
    Recovery,
    /// Accepting an invitation (an account made by an admin, with no password yet).
    Invite,
    /// Confirming an email change from the current address.
    EmailChangeCurrent,
    /// Confirming an email change from the new address.
    EmailChangeNew,
    /// A code that proves the signed-in user reads their mail, for a sensitive change.
    Reauthentication,
    /// Lifting the hard stop of failed sign-ins.
    Unlock,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::MagicLink => "magiclink",
            Self::Recovery => "recovery",
            Self::Invite => "invite",
            Self::EmailChangeCurrent => "email_change_current",
            Self::EmailChangeNew => "email_change_new",
            Self::Reauthentication => "reauthentication",
            Self::Unlock => "unlock",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "signup" => Self::Signup,
            "magiclink" => Self::MagicLink,
            "recovery" => Self::Recovery,
            "invite" => Self::Invite,
            "email_change_current" => Self::EmailChangeCurrent,
            "email_change_new" => Self::EmailChangeNew,
            "reauthentication" => Self::Reauthentication,
            "unlock" => Self::Unlock,
            _ => return None,
        })
    }

    /// The message that carries it.
    fn kind(self) -> Kind {
        match self {
            Self::Signup => Kind::Confirmation,
            Self::MagicLink => Kind::MagicLink,
            Self::Recovery => Kind::Recovery,
            Self::Invite => Kind::Invite,
            Self::EmailChangeCurrent => Kind::EmailChangeCurrent,
            Self::EmailChangeNew => Kind::EmailChangeNew,
            Self::Reauthentication => Kind::Reauthentication,
            Self::Unlock => Kind::Unlock,
        }
    }

    /// GoTrue's `type` for links of this purpose.
    pub fn verification_type(self) -> &'static str {
        match self {
            Self::EmailChangeCurrent | Self::EmailChangeNew => "email_change",
            other => other.as_str(),
        }
    }
}

/// What a token is mailed for: its purpose, the address, the new address of an email
/// change, the PKCE flow it completes and where its link goes.
#[derive(Debug, Clone)]
pub(crate) struct Mailing<'a> {
    pub purpose: Purpose,
    pub to: &'a str,
    pub new_email: Option<&'a str>,
    pub flow: Option<Uuid>,
    pub redirect_to: Option<String>,
}

/// A token just made: what goes in the message, and what is stored.
pub(crate) struct Issued {
    pub code: SecretString,
    pub link_token: SecretString,
    pub record: NewOneTimeToken,
}

/// What the flows share: the keys of the tokens and of the outbox, and the settings.
pub(crate) struct Postbox {
    pub settings: MailSettings,
    code_key: [u8; 32],
    sealer: Sealer,
    /// Wakes the courier of this process when a message is queued.
    pub wake: std::sync::Arc<tokio::sync::Notify>,
    /// The work done after the answer (see `Mail::in_background`): how many tasks may
    /// touch the database at once, and how many wait.
    pub background: std::sync::Arc<tokio::sync::Semaphore>,
    pub waiting: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    public_url: String,
}

/// Tasks of mail work (after the answer) that run at once: fewer than the pool's
/// connections, so they never wait out its acquire timeout.
pub(crate) const BACKGROUND_AT_ONCE: usize = 4;
/// Tasks that may wait for their turn; beyond, a request that would queue one is refused
/// with 429 before any lookup (so the refusal says nothing about the address).
pub(crate) const BACKGROUND_QUEUE: usize = 10_000;

impl Postbox {
    pub fn new(settings: MailSettings, secret: &[u8], public_url: &str) -> Result<Self, Error> {
        let code_key = hmac_sha256(secret, b"gatehouse one-time code v1");
        Ok(Self {
            settings,
            code_key,
            sealer: outbox::sealer(secret)?,
            wake: std::sync::Arc::default(),
            background: std::sync::Arc::new(tokio::sync::Semaphore::new(BACKGROUND_AT_ONCE)),
            waiting: std::sync::Arc::default(),
            public_url: public_url.trim_end_matches('/').to_owned(),
        })
    }

    /// The digest a code of token `id` is stored as.
    fn code_hash(&self, id: Uuid, code: &str) -> [u8; 32] {
        let mut data = id.as_bytes().to_vec();
        data.extend_from_slice(code.as_bytes());
        hmac_sha256(&self.code_key, &data)
    }

    /// Whether `code` is the code of `token`, in constant time.
    pub fn code_matches(&self, token: &OneTimeTokenRecord, code: &str) -> bool {
        let expected = self.code_hash(token.id, code.trim());
        crate::crypto::constant_time_eq(&expected, &token.code_hash)
    }

    /// A new token for `user`, for what `mailing` says.
    pub fn issue(
        &self,
        user: Uuid,
        mailing: &Mailing<'_>,
        now: OffsetDateTime,
    ) -> Result<Issued, Error> {
        let Mailing {
            purpose,
            to: email,
            new_email,
            flow: flow_state_id,
            ..
        } = *mailing;
        let redirect_to = mailing.redirect_to.clone();
        let id = new_id(now);
        let code = six_digits()?;
        let link_token = b64url(&random_bytes::<32>()?);
        let ttl =
            time::Duration::try_from(self.settings.otp_ttl).unwrap_or(time::Duration::MINUTE * 10);
        let record = NewOneTimeToken {
            id,
            user_id: user,
            purpose: purpose.as_str(),
            email: email.to_owned(),
            new_email: new_email.map(str::to_owned),
            code_hash: self.code_hash(id, &code),
            link_hash: sha256(link_token.as_bytes()),
            flow_state_id,
            redirect_to,
            password_hash: None,
            created_at: now.into(),
            expires_at: (now + ttl).into(),
        };
        Ok(Issued {
            code: SecretString::from(code),
            link_token: SecretString::from(link_token),
            record,
        })
    }

    /// The link of a token: our verification page, which redeems it only on a POST.
    pub fn link(&self, issued: &Issued, purpose: Purpose) -> String {
        let mut url = format!(
            "{}/auth/v1/verify?token={}&type={}",
            self.public_url,
            issued.link_token.expose_secret(),
            purpose.verification_type(),
        );
        // For the reader (GoTrue's links carry it too); where the link leads is what is
        // stored with the token.
        if let Some(redirect) = &issued.record.redirect_to {
            url.push_str("&redirect_to=");
            url.extend(url::form_urlencoded::byte_serialize(redirect.as_bytes()));
        }
        url
    }

    /// Stores `issued` and queues its message, in `tx`.
    pub async fn send_token(
        &self,
        tx: &mut Transaction,
        issued: &Issued,
        purpose: Purpose,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        tx.insert_one_time_token(&issued.record).await?;
        let context = self.context(
            &issued.record.email,
            issued.record.new_email.clone(),
            issued.code.expose_secret(),
            &self.link(issued, purpose),
        );
        self.enqueue(tx, purpose.kind(), &issued.record.email, &context, now)
            .await
    }

    /// What a template is rendered with.
    pub fn context(
        &self,
        email: &str,
        new_email: Option<String>,
        code: &str,
        link: &str,
    ) -> Context {
        Context {
            site_name: self.settings.site_name.clone(),
            site_url: self.settings.site_url.clone(),
            email: email.to_owned(),
            new_email,
            code: code.to_owned(),
            link: link.to_owned(),
            expires_minutes: self.settings.otp_ttl.as_secs().div_ceil(60),
        }
    }

    /// Renders, seals and queues a message, in `tx`.
    pub async fn enqueue(
        &self,
        tx: &mut Transaction,
        kind: Kind,
        to: &str,
        context: &Context,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let rendered = self
            .settings
            .templates
            .render(kind, context)
            .map_err(|e| Error::Internal(format!("mail template: {e}").into()))?;
        let id = new_id(now);
        let message = Message::new(&id.to_string(), &self.settings.from, to, rendered);
        let json = serde_json::to_vec(&message)
            .map_err(|e| Error::Internal(format!("mail message: {e}").into()))?;
        let sealed = self.sealer.seal(&json, id.as_bytes())?;
        tx.enqueue_mail(id, kind.name(), &sealed, Timestamp::from(now))
            .await?;
        Ok(())
    }

    /// Opens a sealed outbox message.
    pub fn open(&self, id: Uuid, sealed: &[u8]) -> Option<Message> {
        let json = self.sealer.open(sealed, id.as_bytes())?;
        serde_json::from_slice(&json).ok()
    }
}

/// A uniformly random 6-digit code.
fn six_digits() -> Result<String, Error> {
    loop {
        let n = u32::from_le_bytes(random_bytes::<4>()?);
        // Reject the top of the range so every code is equally likely.
        if n < 4_294_000_000 {
            return Ok(format!("{:06}", n % 1_000_000));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..1000 {
            let code = six_digits().unwrap();
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn purposes_round_trip() {
        for p in [
            Purpose::Signup,
            Purpose::MagicLink,
            Purpose::Recovery,
            Purpose::Invite,
            Purpose::EmailChangeCurrent,
            Purpose::EmailChangeNew,
            Purpose::Reauthentication,
            Purpose::Unlock,
        ] {
            assert_eq!(Purpose::parse(p.as_str()), Some(p));
        }
    }
}
