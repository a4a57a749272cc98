//! `gatehouse migrate`: apply the embedded migrations and exit.

use crate::config::Config;

pub fn run(config: Config) -> anyhow::Result<()> {
    crate::telemetry::init(&config, crate::telemetry::Output::Stderr);
    super::runtime()?.block_on(async {
        let store = super::open_store(&config).await?;
        store
            .migrate()
            .await
            .map_err(|err| anyhow::anyhow!("DATABASE_URL: {err}"))?;
        let applied = store.applied_migrations().await?;
        println!(
            "{} database at {} is at migration {} ({} applied)",
            store.backend(),
            config.storage.database_url,
            applied.last().copied().unwrap_or_default(),
            applied.len()
        );
        store.close().await;
        Ok(())
    })
}
