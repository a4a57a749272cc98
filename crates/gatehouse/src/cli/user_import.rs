//! `gatehouse user import`: users out of a Supabase project, from its database or from a
//! JSON export of `auth.users`. The rules are gatehouse-core's (`gatehouse_core::import`);
//! this reads the source, runs the import and prints its report.

use std::path::PathBuf;

use clap::Args;
use gatehouse_core::admin::Actor;
use gatehouse_core::import::{
    ImportError, ImportOptions, ImportReport, SkipReason, SupabaseUserRow, MAX_BATCH_SIZE,
};

use crate::config::Config;

/// A source database URL: a secret (it holds a password), so its `Debug` masks it and it
/// is never printed.
#[derive(Clone)]
pub struct SecretUrl(String);

impl From<String> for SecretUrl {
    fn from(raw: String) -> Self {
        Self(raw)
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&gatehouse_core::store::mask_database_url(&self.0))
    }
}

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("source").required(true).args(["from_postgres", "from_json"])
))]
pub struct ImportArgs {
    /// Read auth.users and auth.identities from the Supabase project's database
    /// (postgres://user:password@host:5432/postgres; the password may come from
    /// PGPASSWORD or ~/.pgpass instead, out of the process list). Never printed.
    #[arg(long, value_name = "URL")]
    from_postgres: Option<SecretUrl>,
    /// Read an export of auth.users: a JSON array of row objects (`select json_agg(u)
    /// from auth.users u`) or JSON Lines, each row optionally with an `identities` array.
    #[arg(long, value_name = "FILE")]
    from_json: Option<PathBuf>,
    /// Report what would be imported and skipped; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// List every skipped user's id and reason.
    #[arg(long)]
    verbose: bool,
    /// Users per transaction.
    #[arg(long, default_value_t = 1_000, value_parser = batch_size)]
    batch_size: usize,
}

fn batch_size(raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(n) if (1..=MAX_BATCH_SIZE).contains(&n) => Ok(n),
        _ => Err(format!("must be a whole number from 1 to {MAX_BATCH_SIZE}")),
    }
}

impl ImportArgs {
    pub fn run(self, config: &Config) -> anyhow::Result<()> {
        crate::telemetry::init(config, crate::telemetry::Output::Stderr);
        super::runtime()?.block_on(self.execute(config))
    }

    async fn execute(self, config: &Config) -> anyhow::Result<()> {
        // The source first: a source that cannot be read leaves gatehouse's database as
        // it was, not even migrated.
        let (rows, source) = self.read_source().await?;
        let gatehouse = super::start_gatehouse(config).await?;
        let options = ImportOptions {
            dry_run: self.dry_run,
            batch_size: self.batch_size,
            source,
        };
        let result = gatehouse
            .admin
            .import_supabase_users(Actor::Operator, rows, &options, &super::operator_meta())
            .await;
        gatehouse.store().close().await;
        match result {
            Ok(report) => self.print(&report),
            Err(err) => {
                if let ImportError::Batch { report, .. } = &err {
                    self.print(report)?;
                }
                Err(err.into())
            }
        }
    }

    async fn read_source(&self) -> anyhow::Result<(Vec<SupabaseUserRow>, &'static str)> {
        if let Some(url) = &self.from_postgres {
            let rows = gatehouse_core::import::read_from_postgres(&url.0).await?;
            return Ok((rows, "postgres"));
        }
        let Some(path) = &self.from_json else {
            anyhow::bail!("give --from-postgres URL or --from-json FILE");
        };
        let text = std::fs::read_to_string(path)
            .map_err(|err| anyhow::anyhow!("--from-json {}: {err}", path.display()))?;
        let rows = gatehouse_core::import::parse_json_export(&text)
            .map_err(|err| anyhow::anyhow!("--from-json {}: {err}", path.display()))?;
        Ok((rows, "json"))
    }

    fn print(&self, report: &ImportReport) -> anyhow::Result<()> {
        if self.json {
            let mut value = serde_json::to_value(report)?;
            if !self.verbose {
                if let Some(map) = value.as_object_mut() {
                    map.remove("skippedUsers");
                }
            }
            println!("{value}");
            return Ok(());
        }
        if self.verbose {
            for skipped in &report.skipped_users {
                match &skipped.detail {
                    Some(detail) => {
                        println!(
                            "skipped {} {}: {detail}",
                            skipped.id,
                            skipped.reason.label()
                        )
                    }
                    None => println!("skipped {} {}", skipped.id, skipped.reason.label()),
                }
            }
        }
        println!("{}", summary(report));
        Ok(())
    }
}

/// `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn count(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// The report in one line: `imported 98,312 users (3 admins) in 99 batches; skipped
/// 1,688: 1,500 already imported, 120 soft-deleted, 60 no password (github: 58, google:
/// 2), 8 invalid email`. Reasons by count, most first.
pub fn summary(report: &ImportReport) -> String {
    let (prefix, import, skip) = if report.dry_run {
        ("dry run: ", "would import", "would skip")
    } else {
        ("", "imported", "skipped")
    };
    let mut line = format!(
        "{prefix}{import} {} ({}) in {}",
        count(report.imported, "user", "users"),
        count(report.admins, "admin", "admins"),
        count(report.batches, "batch", "batches"),
    );
    if let Some(failed) = report.failed_batch {
        line.push_str(&format!(" before batch {failed} failed"));
    }
    line.push_str(&format!("; {skip} {}", thousands(report.skipped)));
    let mut reasons: Vec<(SkipReason, u64)> = SkipReason::ALL
        .iter()
        .map(|&r| (r, report.skipped_for(r)))
        .filter(|&(_, n)| n > 0)
        .collect();
    reasons.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
    let parts: Vec<String> = reasons
        .into_iter()
        .map(|(reason, n)| {
            let mut part = format!("{} {}", thousands(n), reason.label());
            if reason == SkipReason::NoPassword && !report.no_password_providers.is_empty() {
                let mut providers: Vec<(&String, &u64)> =
                    report.no_password_providers.iter().collect();
                providers.sort_by_key(|&(_, n)| std::cmp::Reverse(*n));
                let providers: Vec<String> = providers
                    .into_iter()
                    .map(|(p, n)| format!("{p}: {}", thousands(*n)))
                    .collect();
                part.push_str(&format!(" ({})", providers.join(", ")));
            }
            part
        })
        .collect();
    if !parts.is_empty() {
        line.push_str(": ");
        line.push_str(&parts.join(", "));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (98_312, "98,312"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), s);
        }
    }

    #[test]
    fn the_summary_counts_reasons_most_first_with_providers() {
        let mut report = ImportReport {
            dry_run: false,
            source: "postgres",
            read: 100_000,
            imported: 98_312,
            admins: 3,
            batches: 99,
            skipped: 1_688,
            skipped_by_reason: [
                (SkipReason::InvalidEmail, 8),
                (SkipReason::NoPassword, 60),
                (SkipReason::AlreadyImported, 1_500),
                (SkipReason::SoftDeleted, 120),
            ]
            .into(),
            no_password_providers: [("google".to_owned(), 2), ("github".to_owned(), 58)].into(),
            skipped_users: Vec::new(),
            failed_batch: None,
        };
        assert_eq!(
            summary(&report),
            "imported 98,312 users (3 admins) in 99 batches; skipped 1,688: 1,500 already imported, \
             120 soft-deleted, 60 no password (github: 58, google: 2), 8 invalid email"
        );
        report.dry_run = true;
        assert!(summary(&report).starts_with(
            "dry run: would import 98,312 users (3 admins) in 99 batches; would skip 1,688: "
        ));
        let one = ImportReport {
            dry_run: false,
            imported: 1,
            admins: 1,
            batches: 1,
            skipped: 0,
            skipped_by_reason: Default::default(),
            no_password_providers: Default::default(),
            failed_batch: Some(2),
            ..report
        };
        assert_eq!(
            summary(&one),
            "imported 1 user (1 admin) in 1 batch before batch 2 failed; skipped 0"
        );
    }

    #[test]
    fn a_source_url_never_shows_its_password_in_debug_output() {
        let url = SecretUrl::from(
            "postgres://postgres:hunter2@db.example.supabase.co:5432/postgres".to_owned(),
        );
        let shown = format!("{url:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("db.example.supabase.co"),
            "{shown}"
        );
    }
}
