//! Supabase mode: the upstream project's URL and keys. Supabase mode is not built yet, so
//! these are parsed and validated (a deployment's configuration is checked from day one)
//! but nothing reads them; `config check` says so.

use clap::Args;
use secrecy::SecretString;

use super::redact::{self, Entry};
use super::values::{http_url, secret};
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
}

impl SupabaseSettings {
    /// `None` when no SUPABASE_* variable is set; then Supabase mode is off.
    pub(super) fn from_args(args: &SupabaseArgs) -> Result<Option<Self>, ConfigError> {
        let any = args.supabase_url.is_some()
            || args.supabase_anon_key.is_some()
            || args.supabase_service_role_key.is_some()
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
        Ok(Some(Self {
            url,
            anon_key: SecretString::from(anon_key),
            service_role_key: args
                .supabase_service_role_key
                .clone()
                .map(SecretString::from),
            jwt_secret: secret(
                "SUPABASE_JWT_SECRET",
                "supabase-jwt-secret",
                args.supabase_jwt_secret.as_ref(),
                32,
            )?,
        }))
    }

    /// The line `config check` prints while Supabase mode is not built: an operator who
    /// set these expects gatehouse to front their project, and it does not yet.
    pub(super) fn not_used_yet(&self) -> String {
        let mut set = vec!["SUPABASE_URL", "SUPABASE_ANON_KEY"];
        if self.service_role_key.is_some() {
            set.push("SUPABASE_SERVICE_ROLE_KEY");
        }
        if self.jwt_secret.is_some() {
            set.push("SUPABASE_JWT_SECRET");
        }
        format!(
            "{} are set but not used yet: Supabase mode is not built, so gatehouse keeps its \
             own users and sessions in DATABASE_URL",
            set.join(", ")
        )
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
        assert!(config.notices().is_empty(), "{:?}", config.notices());
    }

    #[test]
    fn supabase_settings_are_said_to_be_set_but_not_used_yet() {
        let config = parse(&[
            "--supabase-url",
            "https://abc.supabase.co",
            "--supabase-anon-key",
            "anon-key-value",
            "--supabase-jwt-secret",
            "a-supabase-jwt-secret-that-is-long-enough",
        ])
        .unwrap();
        assert_eq!(
            config.notices(),
            vec![
                "SUPABASE_URL, SUPABASE_ANON_KEY, SUPABASE_JWT_SECRET are set but not used yet: \
                 Supabase mode is not built, so gatehouse keeps its own users and sessions in \
                 DATABASE_URL"
            ]
        );
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
        ]);
    }
}
