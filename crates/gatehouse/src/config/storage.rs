//! Where the data lives: the database URL (a secret when it carries a password) and how
//! the pool connects to it.

use std::time::Duration;

use clap::Args;
use gatehouse_core::store::{ConnectOptions, DatabaseUrl};

use super::redact::{self, Entry};
use super::values::{duration, number};
use super::{err, ConfigError};

#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// sqlite://<path> (created on first start) or postgres://user:pass@host/db.
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        default_value = "sqlite://gatehouse.db",
        hide_env_values = true
    )]
    database_url: String,
    /// Largest number of pooled database connections.
    #[arg(
        long,
        env = "GATEHOUSE_DB_MAX_CONNECTIONS",
        global = true,
        default_value = "10"
    )]
    db_max_connections: String,
    /// How long to wait for the database (first connection included) before failing.
    #[arg(
        long,
        env = "GATEHOUSE_DB_CONNECT_TIMEOUT",
        global = true,
        default_value = "5s"
    )]
    db_connect_timeout: String,
}

/// The validated storage settings.
#[derive(Debug, Clone)]
pub struct StorageSettings {
    pub database_url: DatabaseUrl,
    pub db_max_connections: u32,
    pub db_connect_timeout: Duration,
}

impl StorageSettings {
    pub(super) fn from_args(args: &StorageArgs) -> Result<Self, ConfigError> {
        let database_url = DatabaseUrl::parse(&args.database_url).map_err(|e| {
            err(
                "DATABASE_URL",
                "database-url",
                format!(
                    "{:?}: {e}",
                    gatehouse_core::store::mask_database_url(&args.database_url)
                ),
            )
        })?;
        let db_max_connections = number(
            "GATEHOUSE_DB_MAX_CONNECTIONS",
            "db-max-connections",
            &args.db_max_connections,
            1u32,
            1000,
        )?;
        let db_connect_timeout = duration(
            "GATEHOUSE_DB_CONNECT_TIMEOUT",
            "db-connect-timeout",
            &args.db_connect_timeout,
            Duration::from_millis(100),
            Duration::from_secs(300),
        )?;
        Ok(Self {
            database_url,
            db_max_connections,
            db_connect_timeout,
        })
    }

    /// How the store connects.
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            max_connections: self.db_max_connections,
            connect_timeout: self.db_connect_timeout,
            ..ConnectOptions::default()
        }
    }

    pub(super) fn redacted_entries(&self) -> Vec<Entry> {
        vec![
            ("DATABASE_URL", self.database_url.masked()),
            (
                "GATEHOUSE_DB_MAX_CONNECTIONS",
                self.db_max_connections.to_string(),
            ),
            (
                "GATEHOUSE_DB_CONNECT_TIMEOUT",
                redact::duration(self.db_connect_timeout),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::tests::{assert_each_refused, parse};

    #[test]
    fn the_defaults_are_those_of_the_product_spec() {
        let storage = parse(&[]).unwrap().storage;
        assert_eq!(storage.database_url.expose(), "sqlite://gatehouse.db");
        let options = storage.connect_options();
        assert_eq!(options.max_connections, 10);
        assert_eq!(options.connect_timeout, Duration::from_secs(5));
    }

    #[test]
    fn the_database_password_is_masked_in_the_printed_configuration() {
        let config = parse(&["--database-url", "postgres://app:pg-password@db/auth"]).unwrap();
        let printed = format!("{:?}", config.storage.redacted_entries());
        assert!(!printed.contains("pg-password"), "{printed}");
        assert!(printed.contains("postgres://app:***@db/auth"), "{printed}");
    }

    #[test]
    fn each_invalid_value_names_its_variable() {
        assert_each_refused(&[
            (&["--database-url", "mysql://x/y"], "DATABASE_URL"),
            (
                &["--db-max-connections", "0"],
                "GATEHOUSE_DB_MAX_CONNECTIONS",
            ),
            (
                &["--db-connect-timeout", "1ms"],
                "GATEHOUSE_DB_CONNECT_TIMEOUT",
            ),
        ]);
    }
}
