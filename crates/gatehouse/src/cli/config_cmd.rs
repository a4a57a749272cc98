//! `gatehouse config check`: validate and print the effective configuration, secrets
//! redacted.

use clap::Subcommand;

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print it with secrets redacted. Exits 2 when a value
    /// is invalid, naming the variable.
    Check {
        /// Print JSON instead of `NAME = value` lines.
        #[arg(long)]
        json: bool,
    },
}

impl ConfigCommand {
    pub fn run(self, config: &Config) -> anyhow::Result<()> {
        match self {
            Self::Check { json } => {
                let entries = config.redacted_entries();
                if json {
                    let map: serde_json::Map<String, serde_json::Value> = entries
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&map)?);
                } else {
                    let width = entries.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                    for (name, value) in entries {
                        println!("{name:width$} = {value}");
                    }
                    println!("configuration is valid");
                }
                Ok(())
            }
        }
    }
}
