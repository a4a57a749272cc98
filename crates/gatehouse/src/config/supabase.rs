//! Supabase mode: the project's URL and keys. With `SUPABASE_URL` and
//! `SUPABASE_ANON_KEY` set, gatehouse fronts that project: credentials and sessions live
//! in its Auth API, and gatehouse keeps profiles, a mirror of the users and the audit
//! trail in `DATABASE_URL`.

use std::time::Duration;

use clap::Args;
use secrecy::{ExposeSecret, SecretString};

use super::redact::{self, Entry};
use super::values::{duration, http_url, secret};
use super::{err, ConfigError};

#[derive(Debug, Clone, Args)]
pub struct SupabaseArgs {
    /// Supabase mode: the project's URL.
    #[arg(long, env = "SUPABASE_URL", global = true)]
    supabase_url: Option<String>,
    /// Supabase mode: the project's anon (publishable) key.
    #[arg(long, env = "SUPABASE_ANON_KEY", global = true, hide_env_values = true)]
    supabase_anon_key: Option<String>,
    /// Supabase mode: the service-role key, used server-side only.
    #[arg(
        long,
        env = "SUPABASE_SERVICE_ROLE_KEY",
        global = true,
        hide_env_values = true
    )]
    supabase_service_role_key: Option<String>,
    /// The same as SUPABASE_SERVICE_ROLE_KEY, under the name some guides use.
    #[arg(
        long,
        env = "SUPABASE_SERVICE_KEY",
        global = true,
        hide_env_values = true
    )]
    supabase_service_key: Option<String>,
    /// Supabase mode: how long one call to the project's Auth API may take.
    #[arg(long, env = "GATEHOUSE_UPSTREAM_TIMEOUT", global = true)]
    upstream_timeout: Option<String>,
    /// Supabase mode: the legacy HS256 JWT secret, for projects not on asymmetric keys.
    #[arg(
        long,
        env = "SUPABASE_JWT_SECRET",
        global = true,
        hide_env_values = true
    )]
    supabase_jwt_secret: Option<String>,
}

/// Supabase mode settings.
#[derive(Debug, Clone)]
pub struct SupabaseSettings {
    pub url: url::Url,
    pub anon_key: SecretString,
    pub service_role_key: Option<SecretString>,
    pub jwt_secret: Option<SecretString>,
    pub timeout: Duration,
}

impl SupabaseSettings {
    /// `None` when no SUPABASE_* variable is set; then Supabase mode is off.
    pub(super) fn from_args(args: &SupabaseArgs) -> Result<Option<Self>, ConfigError> {
        let any = args.supabase_url.is_some()
            || args.supabase_anon_key.is_some()
            || args.supabase_service_role_key.is_some()
            || args.supabase_service_key.is_some()
            || args.supabase_jwt_secret.is_some();
        if !any {
            return Ok(None);
        }
        let Some(raw_url) = &args.supabase_url else {
            return Err(err(
                "SUPABASE_URL",
                "supabase-url",
                "is required when any SUPABASE_* variable is set",
            ));
        };
        let url = http_url("SUPABASE_URL", "supabase-url", raw_url)?;
        let Some(anon_key) = args
            .supabase_anon_key
            .clone()
            .filter(|k| !k.trim().is_empty())
        else {
            return Err(err(
                "SUPABASE_ANON_KEY",
                "supabase-anon-key",
                "is required in Supabase mode (SUPABASE_URL is set)",
            ));
        };
        let service_role_key =
            match (&args.supabase_service_role_key, &args.supabase_service_key) {
                (Some(a), Some(b)) if a != b => {
                    return Err(err(
                        "SUPABASE_SERVICE_KEY",
                        "supabase-service-key",
                        "differs from SUPABASE_SERVICE_ROLE_KEY; set one of them",
                    ))
                }
                (Some(key), _) | (None, Some(key)) => Some(SecretString::from(key.clone())),
                (None, None) => None,
            }
            .filter(|key| !key.expose_secret().trim().is_empty());
        let timeout = match &args.upstream_timeout {
            Some(raw) => duration(
                "GATEHOUSE_UPSTREAM_TIMEOUT",
                "upstream-timeout",
                raw,
                Duration::from_millis(100),
                Duration::from_secs(60),
            )?,
            None => Duration::from_secs(5),
        };
        Ok(Some(Self {
            url,
            anon_key: SecretString::from(anon_key),
            service_role_key,
            timeout,
            jwt_secret: secret(
                "SUPABASE_JWT_SECRET",
                "supabase-jwt-secret",
                args.supabase_jwt_secret.as_ref(),
                32,
            )?,
        }))
    }

    /// What core needs to run in Supabase mode.
    pub fn core_settings(&self) -> gatehouse_core::UpstreamSettings {
        gatehouse_core::UpstreamSettings {
            url: self.url.clone(),
            anon_key: self.anon_key.clone(),
            service_role_key: self.service_role_key.clone(),
            jwt_secret: self.jwt_secret.clone(),
            timeout: self.timeout,
        }
    }

    /// What `config check` says of the mode.
    pub(super) fn notices(&self) -> Vec<String> {
        let mut notices = vec![format!(
            "Supabase mode: credentials and sessions live in the Auth API of {}; gatehouse \
             keeps profiles, a mirror of the users (never a password hash) and the audit \
             trail in DATABASE_URL; its own /auth/v1 is off",
            self.url
        )];
        if self.service_role_key.is_none() {
            notices.push(
                "SUPABASE_SERVICE_ROLE_KEY is not set: admin changes, accounts created by \
                 admins and password changes are refused (self sign-up goes through the \
                 project's public sign-up either way)"
                    .to_owned(),
            );
        }
        notices
    }

    /// The entries of `settings`, which is `None` when Supabase mode is off.
    pub(super) fn redacted_entries(settings: Option<&Self>) -> Vec<Entry> {
        vec![
            (
                "SUPABASE_URL",
                settings.map_or_else(|| "<unset>".to_owned(), |s| s.url.to_string()),
            ),
            (
                "SUPABASE_ANON_KEY",
                redact::secret(settings.map(|s| &s.anon_key)),
            ),
            (
                "SUPABASE_SERVICE_ROLE_KEY",
                redact::secret(settings.and_then(|s| s.service_role_key.as_ref())),
            ),
            (
                "SUPABASE_JWT_SECRET",
                redact::secret(settings.and_then(|s| s.jwt_secret.as_ref())),
            ),
            (
                "GATEHOUSE_UPSTREAM_TIMEOUT",
                settings.map_or_else(
                    || "<unset>".to_owned(),
                    |s| humantime::format_duration(s.timeout).to_string(),
                ),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{assert_each_refused, parse};

    #[test]
    fn supabase_mode_is_off_unless_a_supabase_variable_is_set() {
        let config = parse(&[]).unwrap();
        assert!(config.supabase.is_none());
        assert_eq!(config.mode(), "standalone");
        assert!(config.settings().upstream.is_none());
        assert!(
            config.notices().iter().all(|n| !n.contains("Supabase")),
            "{:?}",
            config.notices()
        );
    }

    #[test]
    fn supabase_mode_is_on_with_a_url_and_an_anon_key_and_says_what_lives_where() {
        let config = parse(&[
            "--supabase-url",
            "https://abc.supabase.co",
            "--supabase-anon-key",
            "anon-key-value",
            "--supabase-jwt-secret",
            "a-supabase-jwt-secret-that-is-long-enough",
        ])
        .unwrap();
        assert_eq!(config.mode(), "supabase (https://abc.supabase.co/)");
        let notices = config.notices();
        assert!(notices[0].starts_with("Supabase mode: credentials and sessions live in the Auth API of https://abc.supabase.co/"), "{notices:?}");
        assert!(
            notices[1].contains("SUPABASE_SERVICE_ROLE_KEY is not set"),
            "{notices:?}"
        );
        let settings = config.settings();
        let upstream = settings.upstream.expect("Supabase mode reaches core");
        assert_eq!(upstream.issuer(), "https://abc.supabase.co/auth/v1");
        assert_eq!(upstream.timeout, std::time::Duration::from_secs(5));
    }

    #[test]
    fn the_service_key_has_two_names_that_must_agree() {
        let base = [
            "--supabase-url",
            "https://abc.supabase.co",
            "--supabase-anon-key",
            "anon",
        ];
        let alias =
            parse(&[&base[..], &["--supabase-service-key", "service-value"]].concat()).unwrap();
        let service = alias
            .supabase
            .as_ref()
            .and_then(|s| s.service_role_key.as_ref());
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(service.unwrap()),
            "service-value"
        );
        assert_eq!(alias.notices().len(), 1, "{:?}", alias.notices());
        let same = parse(
            &[
                &base[..],
                &[
                    "--supabase-service-key",
                    "v",
                    "--supabase-service-role-key",
                    "v",
                ],
            ]
            .concat(),
        );
        assert!(same.is_ok());
    }

    #[test]
    fn supabase_keys_are_redacted_in_the_printed_configuration() {
        let config = parse(&[
            "--supabase-url",
            "https://abc.supabase.co",
            "--supabase-anon-key",
            "anon-key-value",
            "--supabase-service-role-key",
            "service-role-key-value",
        ])
        .unwrap();
        let printed = format!("{:?}", config.redacted_entries());
        assert!(!printed.contains("anon-key-value"), "{printed}");
        assert!(!printed.contains("service-role-key-value"), "{printed}");
        assert!(
            printed.contains("(\"SUPABASE_URL\", \"https://abc.supabase.co/\")"),
            "{printed}"
        );
        assert!(
            printed.contains("(\"SUPABASE_SERVICE_ROLE_KEY\", \"<redacted>\")"),
            "{printed}"
        );
    }

    #[test]
    fn each_invalid_value_names_its_variable() {
        assert_each_refused(&[
            (&["--supabase-anon-key", "k"], "SUPABASE_URL"),
            (
                &["--supabase-url", "https://x.supabase.co"],
                "SUPABASE_ANON_KEY",
            ),
            (
                &[
                    "--supabase-url",
                    "https://x.supabase.co",
                    "--supabase-anon-key",
                    "k",
                    "--supabase-jwt-secret",
                    "short",
                ],
                "SUPABASE_JWT_SECRET",
            ),
            (
                &[
                    "--supabase-url",
                    "https://x.supabase.co",
                    "--supabase-anon-key",
                    "k",
                    "--supabase-service-key",
                    "a",
                    "--supabase-service-role-key",
                    "b",
                ],
                "SUPABASE_SERVICE_KEY",
            ),
            (
                &[
                    "--supabase-url",
                    "https://x.supabase.co",
                    "--supabase-anon-key",
                    "k",
                    "--upstream-timeout",
                    "2h",
                ],
                "GATEHOUSE_UPSTREAM_TIMEOUT",
            ),
        ]);
    }
}
