//! `gatehouse keys list|rotate`: the access-token signing keys.

use clap::Subcommand;

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List every key with its state (next, active, retired, expired). No private part.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a new signing key. It is published at once and signs after 10 minutes (longer
    /// than any JWKS cache); the current key then retires and stays published until its
    /// last token has expired.
    Rotate {
        /// Emergency (a leaked key): sign with the new key at once and drop the old ones
        /// from the JWKS at once, invalidating every token they signed.
        #[arg(long)]
        now: bool,
    },
    /// Print an anon key and a service-role key for Supabase clients (`supabaseKey`).
    /// Keys stay valid until the API-key secret is rotated.
    ApiKeys {
        /// Print `{"anon_key": ..., "service_role_key": ...}`.
        #[arg(long)]
        json: bool,
        /// Replace the API-key secret first: every key issued before stops working (on
        /// every instance within 30 seconds).
        #[arg(long)]
        rotate: bool,
    },
}

impl KeysCommand {
    pub fn run(self, config: &Config) -> anyhow::Result<()> {
        crate::telemetry::init(config, crate::telemetry::Output::Stderr);
        super::runtime()?.block_on(async {
            let gatehouse = super::start_gatehouse(config).await?;
            match self {
                Self::List { json } => {
                    let keys = gatehouse.keys.list_signing_keys().await?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&keys)?);
                    } else {
                        println!(
                            "{:<18} {:<6} {:<8} {:<28} {:<28} PUBLISHED UNTIL",
                            "KID", "ALG", "STATE", "SIGNS FROM", "RETIRED AT"
                        );
                        for key in keys {
                            let state = serde_json::to_value(key.state)?;
                            println!(
                                "{:<18} {:<6} {:<8} {:<28} {:<28} {}",
                                key.kid,
                                key.alg,
                                state.as_str().unwrap_or_default(),
                                key.signs_from.to_string(),
                                key.retired_at
                                    .map(|t| t.to_string())
                                    .unwrap_or_else(|| "-".into()),
                                key.publish_until
                                    .map(|t| t.to_string())
                                    .unwrap_or_else(|| "-".into()),
                            );
                        }
                    }
                }
                Self::ApiKeys { json, rotate } => {
                    use gatehouse_core::api_keys::ApiRole;
                    if rotate {
                        gatehouse.keys.rotate_api_keys().await?;
                        gatehouse.keys.reload_api_keys().await?;
                    }
                    let anon = gatehouse.keys.issue_api_key(ApiRole::Anon)?;
                    let service = gatehouse.keys.issue_api_key(ApiRole::ServiceRole)?;
                    if json {
                        println!("{}", serde_json::json!({ "anon_key": anon, "service_role_key": service }));
                    } else {
                        println!("anon key (public, for browsers):\n{anon}\n");
                        println!("service-role key (secret, server-side only; opens the admin API):\n{service}");
                    }
                }
                Self::Rotate { now: immediate } => {
                    let key = gatehouse.keys.rotate_signing_key(immediate).await?;
                    if immediate {
                        println!(
                            "new key {} ({}) signs now; the previous keys are no longer published",
                            key.kid, key.alg
                        );
                    } else {
                        println!(
                            "new key {} ({}) is published and signs from {}",
                            key.kid, key.alg, key.signs_from
                        );
                    }
                }
            }
            gatehouse.store().close().await;
            Ok(())
        })
    }
}
