//! `gatehouse config check`: validate and print the effective configuration, secrets
//! redacted, with a note on any setting that is valid but not used yet.

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
                    let mut map: serde_json::Map<String, serde_json::Value> = entries
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
                        .collect();
                    map.insert("mode".to_owned(), config.mode().into());
                    println!("{}", serde_json::to_string_pretty(&map)?);
                    // stdout stays one JSON document for the scripts that read it.
                    for notice in config.notices() {
                        eprintln!("note: {notice}");
                    }
                } else {
                    println!("mode: {}", config.mode());
                    let width = entries.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                    for (name, value) in entries {
                        println!("{name:width$} = {value}");
                    }
                    for notice in config.notices() {
                        println!("note: {notice}");
                    }
                    println!("configuration is valid");
                }
                Ok(())
            }
        }
    }
}
