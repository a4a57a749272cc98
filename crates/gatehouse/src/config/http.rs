//! The server's own settings: where it listens, the URL it is reached at, what browsers
//! may send it (cookies, CORS origins, body size) and how long it waits at shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use super::redact::{self, Entry};
use super::values::{boolean, duration, http_url, list, number};
use super::{err, ConfigError};

#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Listen address.
    #[arg(
        long,
        env = "GATEHOUSE_ADDR",
        global = true,
        default_value = "127.0.0.1:8080"
    )]
    addr: String,
    /// Port; overrides the port of GATEHOUSE_ADDR (what most platforms set).
    #[arg(long, env = "PORT", global = true)]
    port: Option<String>,
    /// Base URL the server is reached at; the token issuer is <this>/auth/v1.
    #[arg(
        long,
        env = "GATEHOUSE_PUBLIC_URL",
        global = true,
        default_value = "http://localhost:8080"
    )]
    public_url: String,
    /// Drop `Secure` from cookies: for local plain http only.
    #[arg(
        long,
        env = "GATEHOUSE_INSECURE_COOKIES",
        global = true,
        default_value = "false"
    )]
    insecure_cookies: String,
    /// Comma-separated origins allowed by CORS, with credentials.
    #[arg(long, env = "GATEHOUSE_CORS_ORIGINS", global = true)]
    cors_origins: Option<String>,
    /// Largest accepted request body.
    #[arg(
        long,
        env = "GATEHOUSE_MAX_BODY_BYTES",
        global = true,
        default_value = "65536"
    )]
    max_body_bytes: String,
    /// After SIGTERM, how long requests in flight may take before the server exits.
    #[arg(
        long,
        env = "GATEHOUSE_SHUTDOWN_TIMEOUT",
        global = true,
        default_value = "10s"
    )]
    shutdown_timeout: String,
}

/// The validated server settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub addr: SocketAddr,
    /// With no trailing slash in its path.
    pub public_url: url::Url,
    pub insecure_cookies: bool,
    /// Normalised origins (`scheme://host[:port]`).
    pub cors_origins: Vec<String>,
    pub max_body_bytes: usize,
    pub shutdown_timeout: Duration,
}

impl HttpSettings {
    pub(super) fn from_args(args: &HttpArgs) -> Result<Self, ConfigError> {
        let mut addr: SocketAddr = args.addr.trim().parse().map_err(|_| {
            err(
                "GATEHOUSE_ADDR",
                "addr",
                format!(
                    "{:?} is not a socket address; write e.g. 127.0.0.1:8080 or 0.0.0.0:8080",
                    args.addr
                ),
            )
        })?;
        if let Some(port) = &args.port {
            addr.set_port(number("PORT", "port", port, 0u16, u16::MAX)?);
        }
        let mut public_url = http_url("GATEHOUSE_PUBLIC_URL", "public-url", &args.public_url)?;
        let trimmed = public_url.path().trim_end_matches('/').to_owned();
        public_url.set_path(&trimmed);
        let insecure_cookies = boolean(
            "GATEHOUSE_INSECURE_COOKIES",
            "insecure-cookies",
            &args.insecure_cookies,
        )?;
        let cors_origins = list(args.cors_origins.as_ref(), origin)?;
        let max_body_bytes = number(
            "GATEHOUSE_MAX_BODY_BYTES",
            "max-body-bytes",
            &args.max_body_bytes,
            1024usize,
            16 * 1024 * 1024,
        )?;
        let shutdown_timeout = duration(
            "GATEHOUSE_SHUTDOWN_TIMEOUT",
            "shutdown-timeout",
            &args.shutdown_timeout,
            Duration::ZERO,
            Duration::from_secs(10 * 60),
        )?;
        Ok(Self {
            addr,
            public_url,
            insecure_cookies,
            cors_origins,
            max_body_bytes,
            shutdown_timeout,
        })
    }

    /// The public URL as the issuer and `config check` spell it: no trailing slash.
    pub fn public_url(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_owned()
    }

    /// Origins the cookie routes accept: the public URL's, then the CORS allowlist.
    pub fn allowed_origins(&self) -> Vec<String> {
        let mut allowed = vec![self.public_url.origin().ascii_serialization()];
        allowed.extend(self.cors_origins.iter().cloned());
        allowed
    }

    pub(super) fn redacted_entries(&self) -> Vec<Entry> {
        vec![
            ("GATEHOUSE_ADDR", self.addr.to_string()),
            ("GATEHOUSE_PUBLIC_URL", self.public_url()),
            (
                "GATEHOUSE_INSECURE_COOKIES",
                self.insecure_cookies.to_string(),
            ),
            ("GATEHOUSE_CORS_ORIGINS", self.cors_origins.join(",")),
            ("GATEHOUSE_MAX_BODY_BYTES", self.max_body_bytes.to_string()),
            (
                "GATEHOUSE_SHUTDOWN_TIMEOUT",
                redact::duration(self.shutdown_timeout),
            ),
        ]
    }
}

fn origin(raw: &str) -> Result<String, ConfigError> {
    const VAR: &str = "GATEHOUSE_CORS_ORIGINS";
    const FLAG: &str = "cors-origins";
    if raw == "*" {
        return Err(err(VAR, FLAG, "\"*\" cannot be combined with credentials; list each origin, e.g. https://app.example.com"));
    }
    let url = http_url(VAR, FLAG, raw)?;
    if url.path() != "/" || !url.username().is_empty() || url.password().is_some() {
        return Err(err(
            VAR,
            FLAG,
            format!("{raw:?} is not an origin; write scheme://host[:port] with no path"),
        ));
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{assert_each_refused, parse};

    #[test]
    fn the_defaults_are_those_of_the_product_spec() {
        let http = parse(&[]).unwrap().http;
        assert_eq!(http.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(http.public_url(), "http://localhost:8080");
        assert!(!http.insecure_cookies);
    }

    #[test]
    fn port_overrides_the_port_of_the_address() {
        let config = parse(&["--addr", "0.0.0.0:8080", "--port", "9999"]).unwrap();
        assert_eq!(config.http.addr, "0.0.0.0:9999".parse().unwrap());
    }

    #[test]
    fn cors_origins_are_normalised_origins() {
        let config = parse(&[
            "--cors-origins",
            "https://App.Example.com, http://localhost:5173",
        ])
        .unwrap();
        assert_eq!(
            config.http.cors_origins,
            vec!["https://app.example.com", "http://localhost:5173"]
        );
        assert_eq!(
            config.http.allowed_origins(),
            vec![
                "http://localhost:8080",
                "https://app.example.com",
                "http://localhost:5173"
            ]
        );
    }

    #[test]
    fn each_invalid_value_names_its_variable() {
        assert_each_refused(&[
            (&["--addr", "localhost"], "GATEHOUSE_ADDR"),
            (&["--port", "70000"], "PORT"),
            (&["--public-url", "ftp://x"], "GATEHOUSE_PUBLIC_URL"),
            (
                &["--insecure-cookies", "maybe"],
                "GATEHOUSE_INSECURE_COOKIES",
            ),
            (&["--cors-origins", "*"], "GATEHOUSE_CORS_ORIGINS"),
            (
                &["--cors-origins", "https://app.example.com/path"],
                "GATEHOUSE_CORS_ORIGINS",
            ),
            (&["--max-body-bytes", "10"], "GATEHOUSE_MAX_BODY_BYTES"),
        ]);
    }
}
