//! The command line: one module per subcommand, each owning its arguments and `run`.

mod config_cmd;
mod keys;
mod migrate;
mod serve;
mod user;
mod user_import;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigArgs};

/// gatehouse: the user and auth backend of a web app, in one binary.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations and serve HTTP until SIGTERM or Ctrl-C.
    Serve,
    /// Apply the embedded database migrations, then exit.
    Migrate,
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Manage users (this is how the first admin is made).
    #[command(subcommand)]
    User(user::UserCommand),
    /// List and rotate the access-token signing keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

impl Command {
    pub fn run(self, config: Config) -> anyhow::Result<()> {
        match self {
            Self::Serve => serve::run(config),
            Self::Migrate => migrate::run(config),
            Self::Config(cmd) => cmd.run(&config),
            Self::Keys(cmd) => cmd.run(&config),
            Self::User(cmd) => cmd.run(&config),
        }
    }
}

/// Builds the runtime the async subcommands share.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Opens the configured database, naming `DATABASE_URL` (password masked) on failure.
async fn open_store(config: &Config) -> anyhow::Result<gatehouse_core::store::Store> {
    gatehouse_core::store::Store::connect(
        &config.storage.database_url,
        &config.storage.connect_options(),
    )
    .await
    .map_err(|err| anyhow::anyhow!("DATABASE_URL: {err}"))
}

/// What the audit trail records of an operator's command: no address, the CLI as agent.
fn operator_meta() -> gatehouse_core::RequestMeta {
    gatehouse_core::RequestMeta::new(None, Some("gatehouse-cli"))
}

/// Opens and migrates the database, then starts the auth service over it (loading, or on
/// first start generating, the signing keys).
async fn start_gatehouse(config: &Config) -> anyhow::Result<gatehouse_core::Gatehouse> {
    let store = open_store(config).await?;
    store
        .migrate()
        .await
        .map_err(|err| anyhow::anyhow!("DATABASE_URL: {err}"))?;
    let clock = std::sync::Arc::new(gatehouse_core::clock::SystemClock);
    Ok(gatehouse_core::Gatehouse::start(store, clock, config.settings()).await?)
}

/// A password given on standard input, without its line ending.
pub(crate) fn password_from(raw: &str) -> secrecy::SecretString {
    secrecy::SecretString::from(raw.trim_end_matches(['\r', '\n']).to_owned())
}

/// The exposed value of a generated password, for printing it once.
pub(crate) fn reveal(password: &secrecy::SecretString) -> &str {
    use secrecy::ExposeSecret;
    password.expose_secret()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
