//! The typed configuration: environment variables (and `.env`), overridden by flags,
//! validated once at start-up. An invalid value stops start-up with a message that
//! names the variable, its flag and what is wrong.
//!
//! Each subsystem owns its settings — their flags and variables, how they are validated
//! and how `config check` shows them: [`http`] (the server), [`storage`], [`auth`],
//! [`logging`], [`limits`] (abuse resistance) and [`supabase`]. [`values`] parses the
//! kinds of value they share; [`redact`] shows them with secrets hidden. This module puts
//! them together and hands each part of the program the settings it needs.

mod auth;
mod http;
mod limits;
mod logging;
mod mail;
mod redact;
mod storage;
mod supabase;
mod values;

use std::fmt;

use clap::Args;

pub use self::auth::AuthSettings;
pub use self::http::HttpSettings;
pub use self::limits::LimitSettings;
pub use self::logging::{LogFormat, LogSettings};
pub use self::mail::MailConfig;
pub use self::storage::StorageSettings;
pub use self::supabase::SupabaseSettings;

/// Loads `.env` from the working directory, if there is one. Variables already set in the
/// environment win.
pub fn load_dotenv() -> Result<(), String> {
    match dotenvy::from_path(".env") {
        Ok(()) => Ok(()),
        Err(dotenvy::Error::Io(err)) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(format!(".env: {err}")),
    }
}

/// Raw settings as clap reads them. Every one is a flag and an environment variable;
/// secrets never show their values in `--help`.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    http: http::HttpArgs,
    #[command(flatten)]
    storage: storage::StorageArgs,
    #[command(flatten)]
    auth: auth::AuthArgs,
    #[command(flatten)]
    logging: logging::LoggingArgs,
    #[command(flatten)]
    limits: limits::LimitsArgs,
    #[command(flatten)]
    supabase: supabase::SupabaseArgs,
    #[command(flatten)]
    mail: mail::MailArgs,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub http: HttpSettings,
    pub storage: StorageSettings,
    pub auth: AuthSettings,
    pub logging: LogSettings,
    pub limits: LimitSettings,
    /// `None` unless a SUPABASE_* variable is set.
    pub supabase: Option<SupabaseSettings>,
    /// `None` without a mailer.
    pub mail: Option<MailConfig>,
}

/// An invalid setting: which variable, which flag, what is wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub flag: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (--{}): {}", self.variable, self.flag, self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn err(variable: &'static str, flag: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        flag,
        problem: problem.into(),
    }
}

impl Config {
    /// Validates every raw setting; the first invalid one is the error.
    pub fn from_args(args: &ConfigArgs) -> Result<Self, ConfigError> {
        let http = HttpSettings::from_args(&args.http)?;
        let supabase = SupabaseSettings::from_args(&args.supabase)?;
        let mail = MailConfig::from_args(&args.mail, &http.public_url)?;
        if let (Some(_), Some(_)) = (&supabase, &mail) {
            return Err(err(
                "GATEHOUSE_SMTP_URL",
                "smtp-url",
                "in Supabase mode the project sends the mail (confirmation, reset, magic links); unset the mailer",
            ));
        }
        Ok(Self {
            storage: StorageSettings::from_args(&args.storage)?,
            auth: AuthSettings::from_args(&args.auth)?,
            logging: LogSettings::from_args(&args.logging)?,
            limits: LimitSettings::from_args(&args.limits)?,
            http,
            supabase,
            mail,
        })
    }

    /// The settings of the rules of auth.
    pub fn settings(&self) -> gatehouse_core::Settings {
        let mut settings = self
            .auth
            .core_settings(self.http.public_url(), self.limits.rate_limits.clone());
        settings.upstream = self.supabase.as_ref().map(SupabaseSettings::core_settings);
        settings.mail = self.mail.as_ref().map(|m| m.core.clone());
        settings
    }

    /// Standalone, or Supabase mode and its project.
    pub fn mode(&self) -> String {
        match &self.supabase {
            Some(supabase) => format!("supabase ({})", supabase.url),
            None => "standalone".to_owned(),
        }
    }

    /// The settings of the HTTP layer.
    pub fn http_config(&self) -> gatehouse_http::HttpConfig {
        gatehouse_http::HttpConfig {
            max_body_bytes: self.http.max_body_bytes,
            insecure_cookies: self.http.insecure_cookies,
            allowed_origins: self.http.allowed_origins(),
            cors_origins: self.http.cors_origins.clone(),
            hsts: self.http.public_url.scheme() == "https",
            limits: self.limits.requests.clone(),
            trusted_proxies: self.limits.trusted_proxies.clone(),
            ..gatehouse_http::HttpConfig::default()
        }
    }

    /// Every setting as `(VARIABLE, value)`, secrets shown as `<redacted>` and passwords in
    /// URLs masked.
    pub fn redacted_entries(&self) -> Vec<(&'static str, String)> {
        let mut entries = self.http.redacted_entries();
        entries.extend(self.storage.redacted_entries());
        entries.extend(self.auth.redacted_entries());
        entries.extend(self.logging.redacted_entries());
        entries.extend(self.limits.redacted_entries());
        entries.extend(SupabaseSettings::redacted_entries(self.supabase.as_ref()));
        entries.extend(MailConfig::redacted_entries(self.mail.as_ref()));
        redact::in_print_order(entries)
    }

    /// What an operator should know about the settings beyond their values (today: what
    /// Supabase mode means and what it cannot do without the service-role key).
    pub fn notices(&self) -> Vec<String> {
        let mut notices = self
            .supabase
            .as_ref()
            .map(SupabaseSettings::notices)
            .unwrap_or_default();
        if self.mail.is_none() && self.supabase.is_none() {
            notices.push(
                "no mailer (GATEHOUSE_SMTP_URL or GATEHOUSE_MAILER): sign-ups are confirmed at                  once, and password reset, magic links and email confirmation are off"
                    .to_owned(),
            );
        }
        notices
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Config, ConfigArgs, ConfigError};

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        config: ConfigArgs,
    }

    /// The configuration these flags give, with nothing from the environment but defaults.
    pub(super) fn parse(flags: &[&str]) -> Result<Config, ConfigError> {
        let args = Probe::try_parse_from(std::iter::once("gatehouse").chain(flags.iter().copied()))
            .unwrap();
        Config::from_args(&args.config)
    }

    /// Each set of flags is refused, naming the variable it is paired with.
    pub(super) fn assert_each_refused(cases: &[(&[&str], &str)]) {
        for (flags, variable) in cases {
            let error = parse(flags).expect_err(&format!("{flags:?} should be refused"));
            assert_eq!(error.variable, *variable, "{flags:?}: {error}");
            assert!(error.to_string().starts_with(variable), "{error}");
        }
    }

    #[test]
    fn an_error_names_the_variable_its_flag_and_the_problem() {
        let error = parse(&["--access-token-ttl", "forever"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "GATEHOUSE_ACCESS_TOKEN_TTL (--access-token-ttl): \"forever\" is not a duration; \
             write e.g. 30s, 15m, 1h or 7d"
        );
    }

    #[test]
    fn the_parts_of_the_program_get_the_settings_of_their_subsystems() {
        let config = parse(&[
            "--public-url",
            "https://auth.example.com/",
            "--cors-origins",
            "https://app.example.com",
            "--rate-limits",
            "false",
        ])
        .unwrap();
        let settings = config.settings();
        assert_eq!(settings.public_url, "https://auth.example.com");
        assert!(!settings.rate_limits.enabled);
        let http = config.http_config();
        assert!(http.hsts);
        assert_eq!(
            http.allowed_origins,
            vec!["https://auth.example.com", "https://app.example.com"]
        );
        assert_eq!(http.cors_origins, vec!["https://app.example.com"]);
    }

    #[test]
    fn every_variable_is_documented_in_env_example() {
        use clap::CommandFactory;
        let example =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.env.example"))
                .unwrap();
        let command = crate::cli::Cli::command();
        let variables: Vec<String> = command
            .get_arguments()
            .filter_map(|arg| arg.get_env().map(|v| v.to_string_lossy().into_owned()))
            .collect();
        assert!(variables.len() >= 20, "{variables:?}");
        for variable in variables {
            assert!(
                example.lines().any(|l| l
                    .trim_start_matches("# ")
                    .starts_with(&format!("{variable}="))),
                "{variable} is not documented in .env.example"
            );
        }
    }
}
