//! Where mail goes: an SMTP server, or `.eml` files in a directory for local development.
//! Both send the same RFC 5322 message, built by lettre: multipart/alternative (text, then
//! HTML) with From, To, Subject, Message-ID and Date.
//!
//! SMTP opens one connection per message, with no pool: auth mail is a trickle, and a fresh
//! connection never finds a half-dead pooled one after the server restarts.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use percent_encoding::percent_decode_str;

use crate::{ConfigError, Message, SendError};

/// Where mail goes. Cheap to clone.
#[derive(Clone)]
pub enum Transport {
    /// An SMTP server.
    Smtp(SmtpTransport),
    /// A directory of `.eml` files.
    File(PathBuf),
}

/// An SMTP server to deliver to, made by [`Transport::smtp`].
#[derive(Clone)]
pub struct SmtpTransport {
    client: AsyncSmtpTransport<Tokio1Executor>,
    masked_url: String,
    timeout: Duration,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Transport").field(&self.describe()).finish()
    }
}

impl fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpTransport")
            .field("url", &self.masked_url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Transport {
    /// An SMTP server, as `smtp://[user[:password]@]host[:port]` (port 587 by default) or
    /// `smtps://…` (implicit TLS, port 465 by default). Percent-encoded user and password
    /// are decoded.
    ///
    /// `smtp://` requires STARTTLS, except to a loopback host (`localhost`, `127.0.0.0/8`,
    /// `::1`), where it is used when the server offers it and mail goes in plain text when it
    /// does not (a local relay or a test sink); a loopback server that offers STARTTLS must
    /// still present a certificate valid for the host. Certificates are checked against the
    /// webpki roots.
    ///
    /// `timeout` bounds connecting, and the whole transaction after it: lettre's async
    /// client has no per-command timeout, so a server that stalls at any command is given
    /// up on when the send has lasted `timeout`.
    pub fn smtp(url: &str, timeout: Duration) -> Result<Transport, ConfigError> {
        let invalid = |reason: &str| ConfigError::SmtpUrl {
            url: mask_smtp_url(url),
            reason: reason.to_owned(),
        };
        let parsed = url::Url::parse(url).map_err(|err| invalid(&err.to_string()))?;
        let implicit_tls = match parsed.scheme() {
            "smtp" => false,
            "smtps" => true,
            _ => return Err(invalid("the scheme must be smtp or smtps")),
        };
        if parsed.query().is_some() || parsed.fragment().is_some() || parsed.path().len() > 1 {
            return Err(invalid("expected smtp[s]://[user[:password]@]host[:port]"));
        }
        let host = match parsed.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => return Err(invalid("no host")),
        };
        // smtp: is not a special scheme to the url crate, so an IPv4 host is a "domain".
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        let params = TlsParameters::new(host.clone()).map_err(|err| ConfigError::Tls {
            host: host.clone(),
            reason: err.to_string(),
        })?;
        let (tls, default_port) = match (implicit_tls, loopback) {
            (true, _) => (Tls::Wrapper(params), 465),
            (false, true) => (Tls::Opportunistic(params), 587),
            (false, false) => (Tls::Required(params), 587),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
            .port(parsed.port().unwrap_or(default_port))
            .tls(tls)
            .timeout(Some(timeout));
        if !parsed.username().is_empty() || parsed.password().is_some() {
            let decode = |s: &str| {
                percent_decode_str(s)
                    .decode_utf8()
                    .map(|s| s.into_owned())
                    .map_err(|_| invalid("the user or password is not UTF-8 once decoded"))
            };
            let user = decode(parsed.username())?;
            let password = decode(parsed.password().unwrap_or(""))?;
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Transport::Smtp(SmtpTransport {
            client: builder.build(),
            masked_url: mask_smtp_url(url),
            timeout,
        }))
    }

    /// Writes each message as `<dir>/<UTC timestamp>-<message id, sanitized>.eml`, the same
    /// bytes SMTP would send. Creates `dir`. Each file appears whole (written, then renamed).
    pub fn file(dir: PathBuf) -> Result<Transport, ConfigError> {
        match std::fs::create_dir_all(&dir) {
            Ok(()) => Ok(Transport::File(dir)),
            Err(source) => Err(ConfigError::Dir { dir, source }),
        }
    }

    /// Delivers `message`. [`SendError::Transient`] when a retry may succeed.
    pub async fn send(&self, message: &Message) -> Result<(), SendError> {
        let now = now();
        let email = build(message, now)?;
        match self {
            Transport::Smtp(smtp) => {
                let sent = tokio::time::timeout(smtp.timeout, smtp.client.send(email)).await;
                match sent {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(err)) => Err(classify(&smtp.masked_url, &err)),
                    Err(_) => Err(SendError::Transient(format!(
                        "{}: no answer within {:?}",
                        smtp.masked_url, smtp.timeout
                    ))),
                }
            }
            Transport::File(dir) => {
                let format = time::macros::format_description!(
                    "[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"
                );
                let stamp = time::OffsetDateTime::from(now)
                    .format(format)
                    .map_err(|err| SendError::Transient(err.to_string()))?;
                let id: String = message
                    .message_id
                    .chars()
                    .filter(|c| !matches!(c, '<' | '>'))
                    .map(|c| match c {
                        'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' | '@' => c,
                        _ => '_',
                    })
                    .collect();
                let name = format!("{stamp}-{id}.eml");
                let (tmp, path) = (dir.join(format!(".{name}.tmp")), dir.join(name));
                let io = |err: std::io::Error| {
                    SendError::Transient(format!("writing {}: {err}", path.display()))
                };
                tokio::fs::write(&tmp, email.formatted())
                    .await
                    .map_err(io)?;
                tokio::fs::rename(&tmp, &path).await.map_err(io)
            }
        }
    }

    /// For logs and `config check`: the URL with any password replaced by `***`, or
    /// `file:<dir>`.
    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp(smtp) => smtp.masked_url.clone(),
            Transport::File(dir) => format!("file:{}", dir.display()),
        }
    }
}

/// `url` with the password replaced by `***`. Works on any string, URL or not: whatever
/// stands between the scheme's `://` (or the start) and the last `@`, after its first `:`,
/// is the password; an unencoded `/`, `?` or `@` in it does not leak the rest.
pub fn mask_smtp_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let Some(at) = rest.rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!("{}{}:***{}", &url[..start], &rest[..colon], &rest[at..]),
        None => url.to_owned(),
    }
}

/// Whether `from` is a usable `From` (`Name <addr@host>` or `addr@host`), for checking the
/// configuration at start-up instead of failing every send.
pub fn check_from(from: &str) -> Result<(), String> {
    from.parse::<Mailbox>()
        .map(|_| ())
        .map_err(|err| format!("{from:?} is not a mailbox: {err}"))
}

/// The wall clock, read only here: the Date header and the file name are the moment of
/// sending, and this crate stands below gatehouse-core's Clock.
#[allow(clippy::disallowed_methods)]
fn now() -> SystemTime {
    SystemTime::now()
}

fn build(message: &Message, date: SystemTime) -> Result<lettre::Message, SendError> {
    let mailbox = |which: &str, value: &str| {
        value.parse::<Mailbox>().map_err(|err| {
            SendError::Permanent(format!("the {which} address {value:?} is unusable: {err}"))
        })
    };
    lettre::Message::builder()
        .from(mailbox("From", &message.from)?)
        .to(mailbox("To", &message.to)?)
        .subject(message.subject.clone())
        .message_id(Some(message.message_id.clone()))
        .date(date)
        .multipart(MultiPart::alternative_plain_html(
            message.text.clone(),
            message.html.clone(),
        ))
        .map_err(|err| SendError::Permanent(format!("the message cannot be built: {err}")))
}

/// 5xx is permanent, but not an authentication failure: the credentials are the
/// operator's to fix, and the message is still good once they are.
fn classify(url: &str, err: &lettre::transport::smtp::Error) -> SendError {
    let auth = err
        .status()
        .is_some_and(|code| matches!(code.to_string().as_str(), "530" | "534" | "535" | "538"));
    if err.is_permanent() && !auth {
        SendError::Permanent(format!("{url}: {err}"))
    } else {
        SendError::Transient(format!("{url}: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, Kind, SmtpSink, Templates};

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn message(to: &str) -> Message {
        let ctx = Context {
            email: to.to_owned(),
            ..Context::example()
        };
        let rendered = Templates::builtin().render(Kind::MagicLink, &ctx).unwrap();
        Message::new(
            "01900000-aaaa-7bbb",
            "Gatehouse <noreply@example.com>",
            to,
            rendered,
        )
    }

    #[test]
    fn masking_hides_passwords_whatever_the_input() {
        let cases = [
            ("smtp://user:secret@host:587", "smtp://user:***@host:587"),
            ("smtps://u%40x:p%3Ass%2F@h", "smtps://u%40x:***@h"),
            ("smtp://u:pa/ss?@h", "smtp://u:***@h"),
            ("smtp://u:a@b@h", "smtp://u:***@h"),
            ("smtp://user@host", "smtp://user@host"),
            ("smtp://host:25", "smtp://host:25"),
            ("user:secret@host", "user:***@host"),
            ("", ""),
            ("://:@", "://:***@"),
            ("é:ü@ß", "é:***@ß"),
        ];
        for (url, masked) in cases {
            assert_eq!(mask_smtp_url(url), masked, "{url}");
        }
    }

    #[test]
    fn a_transport_never_shows_its_password() {
        let transport = Transport::smtp("smtp://me:hunter2@mail.example.com", TIMEOUT).unwrap();
        assert_eq!(transport.describe(), "smtp://me:***@mail.example.com");
        assert!(!format!("{transport:?}").contains("hunter2"));
        for url in [
            "smtp://me:hunter2@",
            "ftp://me:hunter2@h",
            "smtp://me:hunter2@h/x",
        ] {
            let err = Transport::smtp(url, TIMEOUT).unwrap_err();
            assert!(!err.to_string().contains("hunter2"), "{err}");
            assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
        }
    }

    #[tokio::test]
    async fn the_file_transport_writes_a_whole_parseable_message() {
        let dir = tempfile::tempdir().unwrap();
        let transport = Transport::file(dir.path().join("mail")).unwrap();
        assert!(transport.describe().starts_with("file:"));
        let sent = message("someone@example.com");
        transport.send(&sent).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("mail"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1);
        let name = files[0].file_name().unwrap().to_str().unwrap();
        assert!(
            name.ends_with("-01900000-aaaa-7bbb@example.com.eml"),
            "{name}"
        );
        let raw = std::fs::read(&files[0]).unwrap();
        let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
        assert_eq!(parsed.subject(), Some(sent.subject.as_str()));
        assert_eq!(parsed.message_id(), Some("01900000-aaaa-7bbb@example.com"));
        assert!(parsed.date().is_some());
        assert_eq!(
            parsed.body_text(0).unwrap().replace("\r\n", "\n"),
            sent.text
        );
        assert_eq!(
            parsed.body_html(0).unwrap().replace("\r\n", "\n"),
            sent.html
        );
    }

    #[tokio::test]
    async fn smtp_delivers_both_bodies_with_the_headers() {
        let sink = SmtpSink::start().await.unwrap();
        let transport = Transport::smtp(&sink.url(), TIMEOUT).unwrap();
        let ctx = Context {
            email: "Someone@Example.com".to_owned(),
            ..Context::example()
        };
        let rendered = Templates::builtin()
            .render(Kind::Confirmation, &ctx)
            .unwrap();
        let sent = Message::new(
            "id-1",
            "Gatehouse <noreply@example.com>",
            &ctx.email,
            rendered,
        );
        transport.send(&sent).await.unwrap();

        let got = sink
            .wait_for("someone@example.com", 1, TIMEOUT)
            .await
            .unwrap();
        let got = &got[0];
        assert_eq!(got.from, "noreply@example.com");
        assert_eq!(got.to, ["Someone@Example.com"]);
        assert_eq!(got.subject, "Confirm your email for gatehouse");
        assert_eq!(got.message_id, sent.message_id);
        assert_eq!(got.text.replace("\r\n", "\n"), sent.text);
        assert_eq!(got.html.replace("\r\n", "\n"), sent.html);
        assert!(got.raw.contains("From: Gatehouse <noreply@example.com>"));
        assert_eq!(got.code().as_deref(), Some(ctx.code.as_str()));
        assert_eq!(got.link().as_deref(), Some(ctx.link.as_str()));
        assert_eq!(got.credentials, None);
    }

    #[tokio::test]
    async fn smtp_authenticates_with_the_decoded_user_and_password() {
        let sink = SmtpSink::start().await.unwrap();
        let url = format!("smtp://me%40x:p%3Ass%20w@localhost:{}", sink.port());
        let transport = Transport::smtp(&url, TIMEOUT).unwrap();
        transport.send(&message("a@example.com")).await.unwrap();
        let got = sink.wait_for("a@example.com", 1, TIMEOUT).await.unwrap();
        let expected = ("me@x".to_owned(), "p:ss w".to_owned());
        assert_eq!(got[0].credentials, Some(expected));
    }

    #[tokio::test]
    async fn smtp_to_a_paused_sink_is_transient_and_works_again_on_resume() {
        let sink = SmtpSink::start().await.unwrap();
        let transport = Transport::smtp(&sink.url(), Duration::from_secs(2)).unwrap();
        sink.pause().await;
        let started = tokio::time::Instant::now();
        let err = transport.send(&message("b@example.com")).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));

        sink.resume().await.unwrap();
        transport.send(&message("b@example.com")).await.unwrap();
        let got = sink.wait_for("B@example.com", 1, TIMEOUT).await.unwrap();
        assert_eq!(got.len(), 1);
    }

    #[tokio::test]
    async fn a_451_from_the_server_is_transient_and_the_next_send_goes_through() {
        let sink = SmtpSink::start().await.unwrap();
        let transport = Transport::smtp(&sink.url(), TIMEOUT).unwrap();
        sink.fail_next(1);
        let err = transport.send(&message("c@example.com")).await.unwrap_err();
        assert!(
            err.is_transient() && err.to_string().contains("451"),
            "{err}"
        );
        transport.send(&message("c@example.com")).await.unwrap();
        assert_eq!(sink.messages().len(), 1);
    }

    #[tokio::test]
    async fn a_silent_server_is_given_up_on_after_the_timeout() {
        // Accepts connections and never greets.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let transport = Transport::smtp(&url, Duration::from_millis(300)).unwrap();
        let err = transport.send(&message("d@example.com")).await.unwrap_err();
        assert!(
            err.is_transient() && err.to_string().contains("no answer"),
            "{err}"
        );
        drop(listener);
    }

    #[tokio::test]
    async fn an_unusable_address_is_permanent() {
        let sink = SmtpSink::start().await.unwrap();
        let transport = Transport::smtp(&sink.url(), TIMEOUT).unwrap();
        let err = transport
            .send(&message("not an address"))
            .await
            .unwrap_err();
        assert!(!err.is_transient(), "{err}");
    }

    #[test]
    fn urls_other_than_smtp_and_smtps_are_refused() {
        assert!(Transport::smtp("smtps://h", TIMEOUT).is_ok());
        assert!(Transport::smtp("smtp://[::1]:2525", TIMEOUT).is_ok());
        for url in ["http://h", "smtp://h?tls=none", "smtp://", "garbage"] {
            assert!(Transport::smtp(url, TIMEOUT).is_err(), "{url}");
        }
    }
}
