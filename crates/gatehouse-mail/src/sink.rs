//! A real SMTP server on a loopback port that keeps every message it receives, for
//! integration tests (feature `testing`). It speaks enough SMTP for lettre and most clients:
//! EHLO/HELO, AUTH PLAIN/LOGIN (any credentials, recorded), MAIL, RCPT, DATA with
//! dot-unstuffing, RSET, NOOP, QUIT. No STARTTLS, so `smtp://127.0.0.1:PORT` goes plain.
//!
//! Hand-written rather than mailin: once mailin advertises AUTH it requires it, so one sink
//! could not take both a bare URL and a `user:pass@` one; and pause/resume on the same port
//! needs the listener in our hands. Messages are decoded with mail-parser.

use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// One message as the sink received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`), as the client spelt them.
    pub to: Vec<String>,
    /// The decoded `Subject`.
    pub subject: String,
    /// The `Message-ID`, angle brackets included (as [`crate::Message::message_id`]).
    pub message_id: String,
    /// The decoded text body.
    pub text: String,
    /// The decoded HTML body.
    pub html: String,
    /// The message as transmitted, dot-unstuffed.
    pub raw: String,
    /// The user and password the client authenticated with, if it did.
    pub credentials: Option<(String, String)>,
}

impl Received {
    /// The first 6-digit code in the text body: a run of exactly six digits with no letter
    /// or digit on either side.
    pub fn code(&self) -> Option<String> {
        self.text
            .split(|c: char| !c.is_ascii_alphanumeric())
            .find(|word| word.len() == 6 && word.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned)
    }

    /// The first `http://` or `https://` link in the text body, up to a space or a quote.
    pub fn link(&self) -> Option<String> {
        let start = ["https://", "http://"]
            .iter()
            .filter_map(|scheme| self.text.find(scheme))
            .min()?;
        let rest = &self.text[start..];
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\''))
            .unwrap_or(rest.len());
        Some(rest[..end].to_owned())
    }
}

/// The sink: a clonable handle. The server stops when the last handle is dropped.
#[derive(Clone)]
pub struct SmtpSink {
    inner: Arc<Inner>,
}

struct Inner {
    port: u16,
    state: Arc<State>,
    server: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    messages: Mutex<Vec<Received>>,
    fail_next: AtomicUsize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(server) = lock(&self.server).take() {
            server.abort();
        }
    }
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("port", &self.inner.port)
            .finish_non_exhaustive()
    }
}

impl SmtpSink {
    /// Starts a sink on `127.0.0.1` and a free port.
    pub async fn start() -> io::Result<SmtpSink> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(State::default());
        let server = tokio::spawn(serve(listener, Arc::clone(&state)));
        Ok(SmtpSink {
            inner: Arc::new(Inner {
                port,
                state,
                server: Mutex::new(Some(server)),
            }),
        })
    }

    /// `smtp://127.0.0.1:PORT`, for [`crate::Transport::smtp`].
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.inner.port)
    }

    /// The port it listens on, the same across [`SmtpSink::pause`] and
    /// [`SmtpSink::resume`].
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// Every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<Received> {
        lock(&self.inner.state.messages).clone()
    }

    /// Waits until at least `n` messages to `to` (case-insensitive) have arrived, and returns
    /// all of them in arrival order; `None` when `timeout` passes first.
    pub async fn wait_for(&self, to: &str, n: usize, timeout: Duration) -> Option<Vec<Received>> {
        let poll = async {
            loop {
                let found: Vec<Received> = self
                    .messages()
                    .into_iter()
                    .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to)))
                    .collect();
                if found.len() >= n {
                    return found;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(timeout, poll).await.ok()
    }

    /// Stops listening and drops the open connections: connecting is refused until
    /// [`SmtpSink::resume`]. What was received is kept.
    pub async fn pause(&self) {
        let server = lock(&self.inner.server).take();
        if let Some(server) = server {
            server.abort();
            let _ = server.await;
        }
    }

    /// Listens again, on the same port. Does nothing when not paused.
    pub async fn resume(&self) -> io::Result<()> {
        if lock(&self.inner.server).is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, self.inner.port)).await?;
        let server = tokio::spawn(serve(listener, Arc::clone(&self.inner.state)));
        *lock(&self.inner.server) = Some(server);
        Ok(())
    }

    /// Makes the next `n` transactions fail with a transient `451` to `MAIL FROM`.
    pub fn fail_next(&self, n: usize) {
        self.inner.state.fail_next.store(n, Ordering::SeqCst);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Accepts connections until aborted; aborting drops the connections' JoinSet, which
/// aborts them too.
async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(session(stream, Arc::clone(&state)));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The longest line read: keeps a confused client from filling memory.
const MAX_LINE: u64 = 1 << 20;

/// One client's connection.
struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    line: Vec<u8>,
}

async fn session(stream: TcpStream, state: Arc<State>) -> io::Result<()> {
    let (read, writer) = stream.into_split();
    let mut conn = Conn {
        reader: BufReader::new(read),
        writer,
        line: Vec::new(),
    };
    let (mut from, mut to) = (None::<String>, Vec::<String>::new());
    let mut credentials = None;
    conn.say("220 gatehouse-mail-sink ESMTP").await?;
    while conn.read_line().await? > 0 {
        let command = String::from_utf8_lossy(&conn.line).trim_end().to_owned();
        let (verb, arg) = command.split_once(' ').unwrap_or((&command, ""));
        let reply = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                "250-gatehouse-mail-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 AUTH PLAIN LOGIN"
            }
            "HELO" => "250 gatehouse-mail-sink",
            "AUTH" => match conn.auth(arg).await? {
                Some(pair) => {
                    credentials = Some(pair);
                    "235 2.7.0 Authentication succeeded"
                }
                None => "501 5.5.2 Cannot decode the credentials",
            },
            "MAIL" => {
                let failing = state
                    .fail_next
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                match address(arg, "FROM:") {
                    _ if failing => "451 4.3.0 Try again later (fail_next)",
                    Some(address) => {
                        (from, to) = (Some(address), Vec::new());
                        "250 2.1.0 OK"
                    }
                    None => "501 5.5.4 Syntax: MAIL FROM:<address>",
                }
            }
            "RCPT" => match address(arg, "TO:") {
                _ if from.is_none() => "503 5.5.1 MAIL first",
                Some(address) => {
                    to.push(address);
                    "250 2.1.5 OK"
                }
                None => "501 5.5.4 Syntax: RCPT TO:<address>",
            },
            "DATA" if to.is_empty() => "503 5.5.1 RCPT first",
            "DATA" => {
                conn.say("354 End data with <CR><LF>.<CR><LF>").await?;
                let raw = conn.read_data().await?;
                let envelope = (from.take().unwrap_or_default(), std::mem::take(&mut to));
                let received = decode(envelope, raw, credentials.clone());
                lock(&state.messages).push(received);
                "250 2.0.0 OK: queued"
            }
            "RSET" => {
                (from, to) = (None, Vec::new());
                "250 2.0.0 OK"
            }
            "NOOP" => "250 2.0.0 OK",
            "QUIT" => return conn.say("221 2.0.0 Bye").await,
            _ => "502 5.5.2 Command not implemented",
        };
        conn.say(reply).await?;
    }
    Ok(())
}

impl Conn {
    async fn read_line(&mut self) -> io::Result<usize> {
        self.line.clear();
        let mut reader = (&mut self.reader).take(MAX_LINE);
        reader.read_until(b'\n', &mut self.line).await
    }

    async fn say(&mut self, reply: &str) -> io::Result<()> {
        self.writer
            .write_all(format!("{reply}\r\n").as_bytes())
            .await
    }

    /// AUTH PLAIN or LOGIN, with or without an initial response; any credentials will do.
    async fn auth(&mut self, arg: &str) -> io::Result<Option<(String, String)>> {
        let (mechanism, initial) = arg.split_once(' ').unwrap_or((arg, ""));
        Ok(match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" => self.answer("334 ", initial).await?.and_then(|plain| {
                let mut parts = plain.split('\0').skip(1);
                Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
            }),
            "LOGIN" => {
                let user = self.answer("334 VXNlcm5hbWU6", initial).await?;
                user.zip(self.answer("334 UGFzc3dvcmQ6", "").await?)
            }
            _ => None,
        })
    }

    /// The client's base64 answer to `challenge`, or its initial response; decoded.
    async fn answer(&mut self, challenge: &str, initial: &str) -> io::Result<Option<String>> {
        let encoded = if initial.is_empty() {
            self.say(challenge).await?;
            self.read_line().await?;
            String::from_utf8_lossy(&self.line).trim().to_owned()
        } else {
            initial.to_owned()
        };
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded);
        Ok(decoded.ok().and_then(|bytes| String::from_utf8(bytes).ok()))
    }

    /// The lines up to `.`, dot-unstuffed.
    async fn read_data(&mut self) -> io::Result<Vec<u8>> {
        let mut raw = Vec::new();
        loop {
            if self.read_line().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            match self.line.as_slice() {
                b".\r\n" | b".\n" => return Ok(raw),
                [b'.', rest @ ..] => raw.extend_from_slice(rest),
                whole => raw.extend_from_slice(whole),
            }
        }
    }
}

/// `<addr>` after `FROM:` or `TO:`, ignoring parameters such as `BODY=8BITMIME`.
fn address(arg: &str, prefix: &str) -> Option<String> {
    let head = arg.get(..prefix.len())?;
    let rest = arg[prefix.len()..].trim_start().strip_prefix('<')?;
    let (address, _) = rest
        .split_once('>')
        .filter(|_| head.eq_ignore_ascii_case(prefix))?;
    Some(address.to_owned())
}

fn decode(
    (from, to): (String, Vec<String>),
    raw: Vec<u8>,
    credentials: Option<(String, String)>,
) -> Received {
    let parsed = mail_parser::MessageParser::default().parse(&raw);
    let field = |get: fn(&mail_parser::Message<'_>) -> Option<String>| {
        parsed.as_ref().and_then(get).unwrap_or_default()
    };
    Received {
        from,
        to,
        subject: field(|m| m.subject().map(str::to_owned)),
        message_id: field(|m| m.message_id().map(|id| format!("<{id}>"))),
        text: field(|m| m.body_text(0).map(|text| text.into_owned())),
        html: field(|m| m.body_html(0).map(|html| html.into_owned())),
        raw: String::from_utf8_lossy(&raw).into_owned(),
        credentials,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, Kind, Templates};

    #[test]
    fn code_and_link_find_what_every_template_puts_in_the_text() {
        let templates = Templates::builtin();
        let ctx = Context {
            email: "user123456@example.com".to_owned(),
            link: "http://127.0.0.1:54321/auth/v1/verify?token=a-654321-b&type=invite".to_owned(),
            ..Context::example()
        };
        for kind in Kind::ALL {
            let text = templates.render(kind, &ctx).unwrap().text;
            let received = decode(Default::default(), Vec::new(), None);
            let received = Received { text, ..received };
            assert_eq!(received.code().as_deref(), Some("123456"), "{kind:?}");
            assert_eq!(
                received.link().as_deref(),
                Some(ctx.link.as_str()),
                "{kind:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_sink_speaks_smtp_with_dot_unstuffing_and_rset() {
        let sink = SmtpSink::start().await.unwrap();
        let stream = TcpStream::connect(("127.0.0.1", sink.port()))
            .await
            .unwrap();
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        let mut script = String::new();
        for line in [
            "HELO me",
            "MAIL FROM:<x@y>",
            "RSET",
            "RCPT TO:<a@b>",
            "MAIL FROM:<s@y> BODY=8BITMIME",
            "RCPT TO:<r@y>",
            "DATA",
            "Subject: hi",
            "",
            "..dot",
            ".",
            "NOOP",
            "QUIT",
        ] {
            script.push_str(line);
            script.push_str("\r\n");
        }
        write.write_all(script.as_bytes()).await.unwrap();
        let mut replies = String::new();
        reader.read_to_string(&mut replies).await.unwrap();
        let codes: Vec<&str> = replies.lines().map(|l| &l[..3]).collect();
        assert_eq!(
            codes,
            ["220", "250", "250", "250", "503", "250", "250", "354", "250", "250", "221"]
        );
        let got = &sink.messages()[0];
        assert_eq!(
            (got.from.as_str(), got.to.as_slice()),
            ("s@y", &["r@y".to_owned()][..])
        );
        assert_eq!(got.subject, "hi");
        assert!(got.raw.ends_with("\r\n.dot\r\n"), "{:?}", got.raw);
    }

    #[tokio::test]
    async fn wait_for_gives_up_after_the_timeout() {
        let sink = SmtpSink::start().await.unwrap();
        let none = sink.wait_for("a@b", 1, Duration::from_millis(50)).await;
        assert!(none.is_none());
        assert!(sink
            .wait_for("a@b", 0, Duration::from_millis(50))
            .await
            .is_some());
    }
}
