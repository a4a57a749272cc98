//! Mail: where it goes (`GATEHOUSE_SMTP_URL`, or `GATEHOUSE_MAILER=file:DIR` for local
//! development), who it is from, its templates, and the rules of the flows that send it
//! (confirmation, code lifetime, allowed redirects). With neither set there is no
//! mailer: sign-ups confirm at once and the mail flows answer 404.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use gatehouse_core::mail::{MailSettings as CoreMailSettings, RedirectAllowlist};
use gatehouse_mail::{Kind, Templates, Transport};
use secrecy::{ExposeSecret, SecretString};

use super::redact::Entry;
use super::values::{boolean, duration, list};
use super::{err, ConfigError};

#[derive(Debug, Clone, Args)]
pub struct MailArgs {
    /// Send mail through this SMTP server: smtp://user:pass@host:587 (STARTTLS) or
    /// smtps://user:pass@host:465 (implicit TLS).
    #[arg(
        long,
        env = "GATEHOUSE_SMTP_URL",
        global = true,
        hide_env_values = true
    )]
    smtp_url: Option<String>,
    /// How long one SMTP exchange may take.
    #[arg(long, env = "GATEHOUSE_SMTP_TIMEOUT", global = true)]
    smtp_timeout: Option<String>,
    /// `file:DIR`: write each message as an .eml file in DIR instead (local development;
    /// refused when the public URL is https).
    #[arg(long, env = "GATEHOUSE_MAILER", global = true)]
    mailer: Option<String>,
    /// The From of every message.
    #[arg(long, env = "GATEHOUSE_MAIL_FROM", global = true)]
    mail_from: Option<String>,
    /// Confirm sign-ups at once even with a mailer (default false: a mailer confirms).
    #[arg(long, env = "GATEHOUSE_MAILER_AUTOCONFIRM", global = true)]
    mailer_autoconfirm: Option<String>,
    /// A folder of templates (<kind>.txt, <kind>.html) replacing the built-in ones.
    #[arg(long, env = "GATEHOUSE_MAIL_TEMPLATES_DIR", global = true)]
    mail_templates_dir: Option<PathBuf>,
    /// Subjects per message, as JSON: {"recovery": "Reset your {{ site_name }} password"}.
    #[arg(long, env = "GATEHOUSE_MAIL_SUBJECTS", global = true)]
    mail_subjects: Option<String>,
    /// How long a mailed code or link works.
    #[arg(long, env = "GATEHOUSE_OTP_TTL", global = true)]
    otp_ttl: Option<String>,
    /// The app's URL: where a verified link goes unless an allowed redirect_to was asked.
    #[arg(long, env = "GATEHOUSE_SITE_URL", global = true)]
    site_url: Option<String>,
    /// The app's name, in the messages.
    #[arg(long, env = "GATEHOUSE_SITE_NAME", global = true)]
    site_name: Option<String>,
    /// Where else a verified link may redirect: comma-separated URLs, `*` within a host
    /// label or a path segment, `**` across them.
    #[arg(long, env = "GATEHOUSE_REDIRECT_URLS", global = true)]
    redirect_urls: Option<String>,
}

/// Where mail goes.
#[derive(Clone)]
pub enum MailerKind {
    Smtp {
        url: SecretString,
        timeout: Duration,
    },
    File(PathBuf),
}

impl std::fmt::Debug for MailerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl MailerKind {
    fn describe(&self) -> String {
        match self {
            Self::Smtp { url, .. } => gatehouse_mail::mask_smtp_url(url.expose_secret()),
            Self::File(dir) => format!("file:{}", dir.display()),
        }
    }
}

/// The validated mail settings.
#[derive(Debug, Clone)]
pub struct MailConfig {
    pub mailer: MailerKind,
    pub core: CoreMailSettings,
    templates_dir: Option<PathBuf>,
}

impl MailConfig {
    /// `None` when no mailer is set. `public_url` is the server's; `https` refuses the file
    /// mailer, and it is the default site URL.
    pub(super) fn from_args(
        args: &MailArgs,
        public_url: &url::Url,
    ) -> Result<Option<Self>, ConfigError> {
        let timeout = match &args.smtp_timeout {
            Some(raw) => duration(
                "GATEHOUSE_SMTP_TIMEOUT",
                "smtp-timeout",
                raw,
                Duration::from_millis(100),
                Duration::from_secs(300),
            )?,
            None => Duration::from_secs(10),
        };
        let smtp = args
            .smtp_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty());
        let file = args
            .mailer
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty());
        let mailer = match (smtp, file) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(err(
                    "GATEHOUSE_MAILER",
                    "mailer",
                    "set GATEHOUSE_SMTP_URL or GATEHOUSE_MAILER, not both",
                ))
            }
            (Some(url), None) => {
                // Checked here, so a bad URL stops start-up (the message hides the password).
                Transport::smtp(url, timeout)
                    .map_err(|e| err("GATEHOUSE_SMTP_URL", "smtp-url", e.to_string()))?;
                MailerKind::Smtp {
                    url: SecretString::from(url.to_owned()),
                    timeout,
                }
            }
            (None, Some(spec)) => {
                let Some(dir) = spec.strip_prefix("file:").filter(|d| !d.is_empty()) else {
                    return Err(err(
                        "GATEHOUSE_MAILER",
                        "mailer",
                        format!("{spec:?}: write file:DIR"),
                    ));
                };
                if public_url.scheme() == "https" {
                    return Err(err(
                        "GATEHOUSE_MAILER",
                        "mailer",
                        "the file mailer is for local development; with an https public URL set GATEHOUSE_SMTP_URL",
                    ));
                }
                MailerKind::File(PathBuf::from(dir))
            }
        };
        let from = match args
            .mail_from
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            Some(from) => {
                gatehouse_mail::check_from(from)
                    .map_err(|problem| err("GATEHOUSE_MAIL_FROM", "mail-from", problem))?;
                from.to_owned()
            }
            None => format!("no-reply@{}", public_url.host_str().unwrap_or("localhost")),
        };
        let subjects = subjects(args.mail_subjects.as_deref())?;
        let templates =
            Templates::load(args.mail_templates_dir.as_deref(), &subjects).map_err(|e| {
                err(
                    "GATEHOUSE_MAIL_TEMPLATES_DIR",
                    "mail-templates-dir",
                    e.to_string(),
                )
            })?;
        let site_url = match args.site_url.as_deref() {
            Some(raw) => super::values::http_url("GATEHOUSE_SITE_URL", "site-url", raw)?
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
            None => public_url.as_str().trim_end_matches('/').to_owned(),
        };
        let redirect_urls = list(args.redirect_urls.as_ref(), |pattern| {
            RedirectAllowlist::check_pattern(pattern)
                .map(|()| pattern.to_owned())
                .map_err(|problem| {
                    err(
                        "GATEHOUSE_REDIRECT_URLS",
                        "redirect-urls",
                        format!("{pattern:?} {problem}"),
                    )
                })
        })?;
        let mut core = CoreMailSettings::new(from, site_url, templates);
        core.redirect_urls = RedirectAllowlist::new(redirect_urls);
        if let Some(name) = args
            .site_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            core.site_name = name.to_owned();
        }
        if let Some(raw) = &args.mailer_autoconfirm {
            core.autoconfirm = boolean("GATEHOUSE_MAILER_AUTOCONFIRM", "mailer-autoconfirm", raw)?;
        }
        if let Some(raw) = &args.otp_ttl {
            core.otp_ttl = duration(
                "GATEHOUSE_OTP_TTL",
                "otp-ttl",
                raw,
                Duration::from_secs(60),
                Duration::from_secs(24 * 3600),
            )?;
        }
        Ok(Some(Self {
            mailer,
            core,
            templates_dir: args.mail_templates_dir.clone(),
        }))
    }

    /// The transport to hand the outbox's courier.
    pub fn transport(&self) -> Result<Transport, String> {
        match &self.mailer {
            MailerKind::Smtp { url, timeout } => {
                Transport::smtp(url.expose_secret(), *timeout).map_err(|e| e.to_string())
            }
            MailerKind::File(dir) => Transport::file(dir.clone()).map_err(|e| e.to_string()),
        }
    }

    /// Where mail goes, for the log.
    pub fn describe(&self) -> String {
        self.mailer.describe()
    }

    pub(super) fn redacted_entries(config: Option<&Self>) -> Vec<Entry> {
        let unset = || "<unset>".to_owned();
        let Some(c) = config else {
            return [
                "GATEHOUSE_SMTP_URL",
                "GATEHOUSE_MAILER",
                "GATEHOUSE_MAIL_FROM",
                "GATEHOUSE_MAILER_AUTOCONFIRM",
                "GATEHOUSE_OTP_TTL",
                "GATEHOUSE_SITE_URL",
                "GATEHOUSE_REDIRECT_URLS",
                "GATEHOUSE_MAIL_TEMPLATES_DIR",
            ]
            .into_iter()
            .map(|v| (v, unset()))
            .collect();
        };
        let (smtp, file) = match &c.mailer {
            MailerKind::Smtp { .. } => (c.describe(), unset()),
            MailerKind::File(_) => (unset(), c.describe()),
        };
        vec![
            ("GATEHOUSE_SMTP_URL", smtp),
            ("GATEHOUSE_MAILER", file),
            ("GATEHOUSE_MAIL_FROM", c.core.from.clone()),
            (
                "GATEHOUSE_MAILER_AUTOCONFIRM",
                c.core.autoconfirm.to_string(),
            ),
            (
                "GATEHOUSE_OTP_TTL",
                humantime::format_duration(c.core.otp_ttl).to_string(),
            ),
            ("GATEHOUSE_SITE_URL", c.core.site_url.clone()),
            (
                "GATEHOUSE_REDIRECT_URLS",
                c.core.redirect_urls.patterns().join(","),
            ),
            (
                "GATEHOUSE_MAIL_TEMPLATES_DIR",
                c.templates_dir
                    .as_ref()
                    .map_or_else(unset, |d| d.display().to_string()),
            ),
        ]
    }
}

/// `GATEHOUSE_MAIL_SUBJECTS`: a JSON object of message kind → subject template.
fn subjects(raw: Option<&str>) -> Result<HashMap<Kind, String>, ConfigError> {
    let bad = |problem: String| err("GATEHOUSE_MAIL_SUBJECTS", "mail-subjects", problem);
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(HashMap::new());
    };
    let object: HashMap<String, String> = serde_json::from_str(raw)
        .map_err(|e| bad(format!("must be a JSON object of strings: {e}")))?;
    object
        .into_iter()
        .map(|(name, subject)| {
            let kind = Kind::from_name(&name).ok_or_else(|| {
                bad(format!(
                    "{name:?} is not a message; the messages are {}",
                    Kind::ALL.map(Kind::name).join(", ")
                ))
            })?;
            Ok((kind, subject))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{assert_each_refused, parse};

    #[test]
    fn without_a_mailer_there_is_no_mail() {
        let config = parse(&[]).unwrap();
        assert!(config.mail.is_none());
        assert!(config.settings().mail.is_none());
    }

    #[test]
    fn a_mailer_turns_confirmation_on_with_the_defaults() {
        let config = parse(&["--smtp-url", "smtp://ada:s3cret-pass@127.0.0.1:2525"]).unwrap();
        let mail = config.settings().mail.unwrap();
        assert!(!mail.autoconfirm);
        assert_eq!(mail.otp_ttl, std::time::Duration::from_secs(600));
        assert_eq!(mail.from, "no-reply@localhost");
        let shown = format!("{:?}", config.redacted_entries());
        assert!(!shown.contains("s3cret-pass"), "{shown}");
        assert!(shown.contains("smtp://ada:***@127.0.0.1:2525"), "{shown}");
    }

    #[test]
    fn contradictions_and_nonsense_are_refused() {
        assert_each_refused(&[
            (
                &["--smtp-url", "smtp://h:25", "--mailer", "file:/tmp/m"],
                "GATEHOUSE_MAILER",
            ),
            (&["--mailer", "carrier-pigeon"], "GATEHOUSE_MAILER"),
            (
                &[
                    "--mailer",
                    "file:/tmp/m",
                    "--public-url",
                    "https://auth.example.com",
                ],
                "GATEHOUSE_MAILER",
            ),
            (&["--smtp-url", "http://h:25"], "GATEHOUSE_SMTP_URL"),
            (
                &["--mailer", "file:/tmp/m", "--mail-from", "nobody"],
                "GATEHOUSE_MAIL_FROM",
            ),
            (
                &["--mailer", "file:/tmp/m", "--otp-ttl", "2d"],
                "GATEHOUSE_OTP_TTL",
            ),
            (
                &[
                    "--mailer",
                    "file:/tmp/m",
                    "--mail-subjects",
                    "{\"nope\": \"x\"}",
                ],
                "GATEHOUSE_MAIL_SUBJECTS",
            ),
            (
                &[
                    "--mailer",
                    "file:/tmp/m",
                    "--redirect-urls",
                    "javascript:alert(1)",
                ],
                "GATEHOUSE_REDIRECT_URLS",
            ),
            (
                &["--mailer", "file:/tmp/m", "--mailer-autoconfirm", "maybe"],
                "GATEHOUSE_MAILER_AUTOCONFIRM",
            ),
        ]);
    }
}
