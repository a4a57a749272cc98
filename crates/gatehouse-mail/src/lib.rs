//! Mail for gatehouse: the messages' templates, and the transports that deliver them.
//!
//! - [`Templates`] renders a [`Kind`] of message for a [`Context`] into a subject, a text
//!   and an HTML body. The built-ins are embedded in the binary; a directory may override
//!   any of them. Everything is compiled and test-rendered at load, so a broken template
//!   stops start-up instead of a send.
//! - [`Message`] is a rendered message with its envelope and a stable Message-ID: what the
//!   outbox stores (as JSON) and redelivers.
//! - [`Transport`] delivers a [`Message`] over SMTP, or writes it as an `.eml` file for local
//!   development. Its errors say whether a retry is worth it ([`SendError`]).
//!
//! No database, no HTTP, no other gatehouse crate: the outbox and the wall clock's owner live
//! in core. With the `testing` feature, [`SmtpSink`] is a real SMTP server on a loopback port
//! for integration tests.

mod templates;
mod transport;

#[cfg(feature = "testing")]
mod sink;

#[cfg(feature = "testing")]
pub use sink::{Received, SmtpSink};
pub use templates::{Rendered, Templates};
pub use transport::{check_from, mask_smtp_url, SmtpTransport, Transport};

use serde::{Deserialize, Serialize};

/// Which message. [`Kind::name`] is the template file stem and the config key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Confirms the address given at sign-up.
    Confirmation,
    /// Signs in without a password (magic link or one-time code).
    MagicLink,
    /// Resets a forgotten password.
    Recovery,
    /// Tells the current address that the account's email is being changed, and confirms it.
    EmailChangeCurrent,
    /// Confirms the new address of an email change.
    EmailChangeNew,
    /// A code that confirms it's the user before a sensitive change.
    Reauthentication,
    /// Invites someone to create an account.
    Invite,
    /// Unlocks an account locked after failed sign-ins.
    Unlock,
    /// Tells an address's owner that someone tried to sign up with it again.
    ExistingAccount,
}

impl Kind {
    /// Every kind, in declaration order.
    pub const ALL: [Kind; 9] = [
        Kind::Confirmation,
        Kind::MagicLink,
        Kind::Recovery,
        Kind::EmailChangeCurrent,
        Kind::EmailChangeNew,
        Kind::Reauthentication,
        Kind::Invite,
        Kind::Unlock,
        Kind::ExistingAccount,
    ];

    /// The template file stem and config key, e.g. `magic_link`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Confirmation => "confirmation",
            Kind::MagicLink => "magic_link",
            Kind::Recovery => "recovery",
            Kind::EmailChangeCurrent => "email_change_current",
            Kind::EmailChangeNew => "email_change_new",
            Kind::Reauthentication => "reauthentication",
            Kind::Invite => "invite",
            Kind::Unlock => "unlock",
            Kind::ExistingAccount => "existing_account",
        }
    }

    /// The kind whose [`Kind::name`] is `s`.
    pub fn from_name(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.name() == s)
    }
}

/// What a template may use. Every message shows the code and the link. Templates also get
/// `expires_in`, the expiry in words ("10 minutes", "1 hour", "2 days").
#[derive(Debug, Clone, Serialize)]
pub struct Context {
    /// The product's name as users know it, e.g. "gatehouse" or the app's name.
    pub site_name: String,
    /// The app's URL.
    pub site_url: String,
    /// The recipient's address.
    pub email: String,
    /// The new address of an email change.
    pub new_email: Option<String>,
    /// The 6-digit one-time code.
    pub code: String,
    /// The link to open (a gatehouse page).
    pub link: String,
    /// How long the code and the link are valid.
    pub expires_minutes: u64,
}

impl Context {
    /// A context with example values: what [`Templates::load`] test-renders with, and what a
    /// preview may show.
    pub fn example() -> Context {
        Context {
            site_name: "gatehouse".to_owned(),
            site_url: "https://app.example.com".to_owned(),
            email: "someone@example.com".to_owned(),
            new_email: Some("someone.new@example.com".to_owned()),
            code: "123456".to_owned(),
            link: "https://auth.example.com/verify?token=abc&type=signup".to_owned(),
            expires_minutes: 60,
        }
    }
}

/// A message ready to send: what the outbox stores, serialized as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    /// The `Message-ID` header's value, angle brackets included.
    pub message_id: String,
    /// The sender, `addr@example.com` or `Name <addr@example.com>`.
    pub from: String,
    /// The recipient, in the same forms.
    pub to: String,
    /// The subject, on one line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

impl Message {
    /// A message with the Message-ID `<{id}@{domain of from}>`: stable for a given id, so a
    /// redelivery carries the same Message-ID and the recipient's mail system can drop the
    /// duplicate. Characters a Message-ID cannot hold become `-`.
    pub fn new(id: &str, from: &str, to: &str, rendered: Rendered) -> Message {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| match c {
                    'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
                    _ => '-',
                })
                .collect()
        };
        let domain = from
            .rsplit_once('@')
            .map(|(_, domain)| domain.trim().trim_end_matches('>').trim())
            .filter(|domain| !domain.is_empty())
            .unwrap_or("localhost");
        Message {
            message_id: format!("<{}@{}>", clean(id), clean(domain)),
            from: from.to_owned(),
            to: to.to_owned(),
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
        }
    }
}

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: the server is unreachable or timed out, answered 4xx, refused the
    /// credentials or TLS (configuration, which an operator fixes without touching the
    /// message), or the file could not be written.
    #[error("mail not delivered, will retry: {0}")]
    Transient(String),
    /// Not worth retrying: the server rejected this message for good (5xx), or an address
    /// cannot be used.
    #[error("mail not deliverable: {0}")]
    Permanent(String),
}

impl SendError {
    /// Whether a retry may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient(_))
    }
}

/// A transport that cannot be set up. Never contains a password.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The SMTP URL is not one this crate understands. `url` is masked.
    #[error("invalid SMTP URL {url}: {reason}")]
    SmtpUrl {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS settings for the host cannot be built.
    #[error("TLS for {host}: {reason}")]
    Tls {
        /// The SMTP host.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// The `.eml` directory cannot be created.
    #[error("mail directory {}: {source}", dir.display())]
    Dir {
        /// The directory.
        dir: std::path::PathBuf,
        /// Why it cannot be created.
        #[source]
        source: std::io::Error,
    },
}

/// A template that cannot be read, compiled or rendered. Names the template.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A syntax error, or an error while rendering (such as an undefined variable).
    /// `template` is the file's path for an override, `built-in <name>` otherwise.
    #[error("mail template {template}: {message}")]
    Invalid {
        /// Which template.
        template: String,
        /// What is wrong, with the line.
        message: String,
    },
    /// A `.txt` or `.html` file in the template directory whose stem is no [`Kind::name`].
    #[error(
        "mail template {}: unknown name, expected <kind>.txt or .html, <kind> one of {}",
        path.display(),
        kind_names()
    )]
    UnknownFile {
        /// The file.
        path: std::path::PathBuf,
    },
    /// The template directory or a file in it cannot be read.
    #[error("mail template {}: {source}", path.display())]
    Io {
        /// The directory or file.
        path: std::path::PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
}

fn kind_names() -> String {
    Kind::ALL.map(Kind::name).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_name_and_serde() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(serde_json::from_str::<Kind>(&json).unwrap(), kind);
        }
        assert_eq!(Kind::from_name("Confirmation"), None);
    }

    #[test]
    fn a_message_id_is_stable_and_uses_the_senders_domain() {
        let rendered = || Rendered {
            subject: "s".into(),
            text: "t".into(),
            html: "h".into(),
        };
        let a = Message::new(
            "0190-ab",
            "Gatehouse <noreply@mail.example.com>",
            "u@x",
            rendered(),
        );
        let b = Message::new(
            "0190-ab",
            "Gatehouse <noreply@mail.example.com>",
            "u@x",
            rendered(),
        );
        assert_eq!(a.message_id, "<0190-ab@mail.example.com>");
        assert_eq!(a, b);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), a);
        let odd = Message::new("a b<c>@d", "no-domain", "u@x", rendered());
        assert_eq!(odd.message_id, "<a-b-c--d@localhost>");
    }
}
