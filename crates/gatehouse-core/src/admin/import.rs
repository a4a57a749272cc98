//! Moving users out of a Supabase project: which rows of `auth.users` become gatehouse
//! users, as what, and which are skipped and why; then the write, a batch per
//! transaction with its audit row.
//!
//! A user keeps their id (so the `sub` of tokens and the app's foreign keys stay valid),
//! their bcrypt hash (verified as is and re-hashed to Argon2id at the next sign-in), their
//! metadata, confirmation, ban and creation time. The role is `admin` when Supabase's
//! `raw_app_meta_data.role` says so, `user` otherwise. Importing twice is harmless: a user
//! whose id is already here is skipped as "already imported", and a batch with nothing
//! new writes nothing, not even an audit row.

use std::collections::{BTreeMap, HashMap, HashSet};

use gatehouse_store::{ExistingUser, NewUser, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

pub use gatehouse_store::supabase::SupabaseUserRow;

use super::{Actor, Admin};
use crate::audit::RequestMeta;
use crate::{validate, Error};

/// Users per transaction when none is asked for.
pub const DEFAULT_BATCH_SIZE: usize = 1_000;
/// The most users per transaction: 11 binds a row, and the batch's id and email lookup,
/// stay within both drivers' limits on parameters.
pub const MAX_BATCH_SIZE: usize = 10_000;
/// The highest bcrypt cost imported. Supabase hashes at 10; each step doubles the time a
/// sign-in spends verifying, and a cost of 31 would hold a hashing thread for days.
pub const MAX_BCRYPT_COST: u32 = 14;

/// Why a row of `auth.users` is not imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Its id is a gatehouse user already: imported by an earlier run.
    AlreadyImported,
    /// A different gatehouse user (another id) has this email.
    EmailTaken,
    /// `deleted_at` is set in Supabase.
    SoftDeleted,
    /// An anonymous user (`is_anonymous`): nothing to sign in with.
    Anonymous,
    /// No email (a phone-only user): gatehouse signs in by email.
    NoEmail,
    /// The email fails gatehouse's rules.
    InvalidEmail,
    /// No password (OAuth, SSO, magic-link users); the detail names the providers.
    NoPassword,
    /// The hash is not bcrypt, is malformed, or costs more than [`MAX_BCRYPT_COST`].
    UnsupportedHash,
    /// User or app metadata over 16 KiB or 8 levels deep.
    MetadataTooLarge,
    /// Metadata that is not a JSON object, or holds a NUL character.
    InvalidMetadata,
    /// The same id or email as an earlier row of the source (the earlier one is imported).
    DuplicateInSource,
}

impl SkipReason {
    /// Every reason, in report order.
    pub const ALL: [Self; 11] = [
        Self::AlreadyImported,
        Self::EmailTaken,
        Self::SoftDeleted,
        Self::Anonymous,
        Self::NoEmail,
        Self::InvalidEmail,
        Self::NoPassword,
        Self::UnsupportedHash,
        Self::MetadataTooLarge,
        Self::InvalidMetadata,
        Self::DuplicateInSource,
    ];

    /// The stable code, as in the JSON report.
    pub fn code(self) -> &'static str {
        match self {
            Self::AlreadyImported => "already_imported",
            Self::EmailTaken => "email_taken",
            Self::SoftDeleted => "soft_deleted",
            Self::Anonymous => "anonymous",
            Self::NoEmail => "no_email",
            Self::InvalidEmail => "invalid_email",
            Self::NoPassword => "no_password",
            Self::UnsupportedHash => "unsupported_hash",
            Self::MetadataTooLarge => "metadata_too_large",
            Self::InvalidMetadata => "invalid_metadata",
            Self::DuplicateInSource => "duplicate_in_source",
        }
    }

    /// Words for the text report.
    pub fn label(self) -> &'static str {
        match self {
            Self::AlreadyImported => "already imported",
            Self::EmailTaken => "email taken",
            Self::SoftDeleted => "soft-deleted",
            Self::Anonymous => "anonymous",
            Self::NoEmail => "no email",
            Self::InvalidEmail => "invalid email",
            Self::NoPassword => "no password",
            Self::UnsupportedHash => "unsupported password hash",
            Self::MetadataTooLarge => "metadata too large",
            Self::InvalidMetadata => "invalid metadata",
            Self::DuplicateInSource => "duplicate in source",
        }
    }
}

/// A row not imported. The detail never holds an email, a hash or metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub id: Uuid,
    pub reason: SkipReason,
    /// Why, more precisely: the failed rule, or for [`SkipReason::NoPassword`] the user's
    /// providers joined by `+` (`github`, `google+github`, `none`).
    pub detail: Option<String>,
}

/// What the source's rows come to before gatehouse's database is asked: the users to
/// write (in source order) and the rows skipped for what they are. No `Debug`: its users
/// hold password hashes.
pub struct ImportPlan {
    /// Rows read from the source.
    pub read: usize,
    pub users: Vec<NewUser>,
    pub skipped: Vec<Skipped>,
}

type Skip = (SkipReason, Option<String>);

/// Sorts the source's rows into users to import and rows to skip, by the rules in the
/// module docs. Pure: the checks against gatehouse's own users (already imported, email
/// taken) come per batch, at the write. `now` stands in for a missing `created_at`.
pub fn plan_import(rows: Vec<SupabaseUserRow>, now: OffsetDateTime) -> ImportPlan {
    let read = rows.len();
    let mut users = Vec::with_capacity(read);
    let mut skipped = Vec::new();
    let mut ids = HashSet::with_capacity(read);
    let mut emails = HashSet::with_capacity(read);
    for row in rows {
        let id = row.id;
        let user = plan_row(row, now).and_then(|user| {
            if !ids.insert(user.id) {
                return Err((
                    SkipReason::DuplicateInSource,
                    Some("the same id as an earlier row".to_owned()),
                ));
            }
            if !emails.insert(user.email.clone()) {
                return Err((
                    SkipReason::DuplicateInSource,
                    Some("the same email as an earlier row".to_owned()),
                ));
            }
            Ok(user)
        });
        match user {
            Ok(user) => users.push(user),
            Err((reason, detail)) => skipped.push(Skipped { id, reason, detail }),
        }
    }
    ImportPlan {
        read,
        users,
        skipped,
    }
}

fn plan_row(row: SupabaseUserRow, now: OffsetDateTime) -> Result<NewUser, Skip> {
    if row.deleted_at.is_some() {
        return Err((SkipReason::SoftDeleted, None));
    }
    if row.is_anonymous == Some(true) {
        return Err((SkipReason::Anonymous, None));
    }
    let Some(raw_email) = row.email.as_deref().filter(|e| !e.trim().is_empty()) else {
        let detail = row
            .phone
            .as_deref()
            .is_some_and(|p| !p.trim().is_empty())
            .then(|| "a phone-only user".to_owned());
        return Err((SkipReason::NoEmail, detail));
    };
    // Lower-cased first, then checked: folding can change the length.
    let email = validate::email(&raw_email.trim().to_lowercase())
        .map_err(|err| (SkipReason::InvalidEmail, Some(err.to_string())))?;
    let Some(hash) = row
        .encrypted_password
        .as_deref()
        .filter(|h| !h.trim().is_empty())
    else {
        return Err((SkipReason::NoPassword, Some(providers(&row))));
    };
    check_bcrypt(hash).map_err(|why| (SkipReason::UnsupportedHash, Some(why)))?;
    let user_metadata = metadata("user_metadata", row.raw_user_meta_data)?;
    let mut app_metadata = metadata("app_metadata", row.raw_app_meta_data)?;
    // The role is the users.role column, not a key of app_metadata.
    let role = match app_metadata.as_object_mut().and_then(|m| m.remove("role")) {
        Some(Value::String(role)) if role == "admin" => "admin",
        _ => "user",
    };
    if let Some(map) = app_metadata.as_object_mut() {
        map.entry("provider").or_insert_with(|| json!("email"));
        map.entry("providers").or_insert_with(|| json!(["email"]));
    }
    let display_name = ["display_name", "full_name", "name"]
        .iter()
        .find_map(|key| {
            user_metadata
                .get(key)
                .and_then(Value::as_str)
                .and_then(|name| validate::display_name(name).ok().flatten())
        });
    Ok(NewUser {
        id: row.id,
        email,
        username: None,
        password_hash: Some(hash.to_owned()),
        role: role.to_owned(),
        app_metadata,
        user_metadata,
        email_confirmed_at: row.email_confirmed_at.map(Timestamp::from),
        banned_until: row.banned_until.map(Timestamp::from),
        display_name,
        created_at: row.created_at.unwrap_or(now).into(),
    })
}

/// Metadata as gatehouse keeps it: NULL is `{}`; otherwise the bounds of
/// [`validate::metadata`], reported as too large or as invalid.
fn metadata(field: &'static str, value: Option<Value>) -> Result<Value, Skip> {
    let value = match value {
        None | Some(Value::Null) => return Ok(Value::Object(Map::new())),
        Some(value) => value,
    };
    if value.is_object() && validate::metadata_too_large(&value) {
        let err = validate::metadata(field, &value).err();
        return Err((
            SkipReason::MetadataTooLarge,
            err.map(|e| e.to_string()).or(Some(field.to_owned())),
        ));
    }
    validate::metadata(field, &value)
        .map_err(|err| (SkipReason::InvalidMetadata, Some(err.to_string())))?;
    Ok(value)
}

/// The providers a password-less user signs in with: their identities', else those their
/// app metadata names; joined by `+`, or `none`.
fn providers(row: &SupabaseUserRow) -> String {
    let mut providers = row.providers.clone();
    if providers.is_empty() {
        if let Some(app) = row.raw_app_meta_data.as_ref() {
            match app.get("providers").and_then(Value::as_array) {
                Some(list) => {
                    providers.extend(list.iter().filter_map(Value::as_str).map(str::to_owned))
                }
                None => providers.extend(
                    app.get("provider")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                ),
            }
        }
    }
    providers.retain(|p| !p.is_empty());
    providers.sort();
    providers.dedup();
    if providers.is_empty() {
        "none".to_owned()
    } else {
        providers.join("+")
    }
}

/// Accepts a well-formed bcrypt hash (`$2a$`, `$2b$` or `$2y$`, a two-digit cost, 53
/// characters of bcrypt's base64) of cost at most [`MAX_BCRYPT_COST`]; otherwise says why
/// not, naming at most the scheme of another format, never the hash.
pub fn check_bcrypt(hash: &str) -> Result<(), String> {
    let bcrypt = ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p));
    if !bcrypt {
        let scheme = hash
            .strip_prefix('$')
            .and_then(|rest| rest.split('$').next())
            .filter(|s| {
                !s.is_empty()
                    && s.len() <= 16
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        return Err(match scheme {
            Some(scheme) => format!("not a bcrypt hash (${scheme}$)"),
            None => "not a bcrypt hash".to_owned(),
        });
    }
    let bytes = hash.as_bytes();
    let base64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'/';
    let cost = hash
        .get(4..6)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse::<u32>().ok());
    match cost {
        Some(cost) if bytes.len() == 60 && bytes[6] == b'$' && bytes[7..].iter().all(base64) => {
            if cost < 4 {
                Err(format!("bcrypt cost {cost} is below 4"))
            } else if cost > MAX_BCRYPT_COST {
                Err(format!(
                    "bcrypt cost {cost} is above {MAX_BCRYPT_COST}: each sign-in would take too long"
                ))
            } else {
                Ok(())
            }
        }
        _ => Err("a malformed bcrypt hash".to_owned()),
    }
}

/// How to run an import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Check and count only: write nothing.
    pub dry_run: bool,
    /// Users per transaction, 1 to [`MAX_BATCH_SIZE`].
    pub batch_size: usize,
    /// Where the rows came from (`postgres`, `json`), for the report and the audit trail.
    pub source: &'static str,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            batch_size: DEFAULT_BATCH_SIZE,
            source: "postgres",
        }
    }
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub dry_run: bool,
    pub source: &'static str,
    /// Rows read from the source.
    pub read: u64,
    /// Users written (a dry run: that would be).
    pub imported: u64,
    /// Of those, admins.
    pub admins: u64,
    /// Transactions that wrote users (a dry run: that would).
    pub batches: u64,
    /// Rows not imported: `read = imported + skipped` once the import has finished.
    pub skipped: u64,
    /// `skipped`, by [`SkipReason::code`].
    pub skipped_by_reason: BTreeMap<SkipReason, u64>,
    /// The users skipped for [`SkipReason::NoPassword`], by their providers.
    pub no_password_providers: BTreeMap<String, u64>,
    /// Every skipped row, in source order within each stage.
    pub skipped_users: Vec<Skipped>,
    /// The batch that failed, when one did (the report then covers the batches before it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_batch: Option<u64>,
}

impl ImportReport {
    fn new(options: &ImportOptions, read: usize) -> Self {
        Self {
            dry_run: options.dry_run,
            source: options.source,
            read: read as u64,
            imported: 0,
            admins: 0,
            batches: 0,
            skipped: 0,
            skipped_by_reason: BTreeMap::new(),
            no_password_providers: BTreeMap::new(),
            skipped_users: Vec::new(),
            failed_batch: None,
        }
    }

    fn skip(&mut self, skipped: Skipped) {
        self.skipped += 1;
        *self.skipped_by_reason.entry(skipped.reason).or_default() += 1;
        if skipped.reason == SkipReason::NoPassword {
            let providers = skipped.detail.clone().unwrap_or_else(|| "none".to_owned());
            *self.no_password_providers.entry(providers).or_default() += 1;
        }
        self.skipped_users.push(skipped);
    }

    /// How many rows were skipped for `reason`.
    pub fn skipped_for(&self, reason: SkipReason) -> u64 {
        self.skipped_by_reason.get(&reason).copied().unwrap_or(0)
    }
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The source could not be read or parsed: nothing was written.
    #[error("{0}")]
    Source(String),
    /// A batch failed and was rolled back, alone: the batches before it are committed, and
    /// running the same import again continues after them. Later batches were not tried.
    #[error(
        "batch {batch} of {batches} failed and was rolled back ({} users in the batches \
         before it are imported; the same import run again continues from there): {cause}",
        report.imported
    )]
    Batch {
        batch: u64,
        batches: u64,
        /// What the batches before it did.
        report: Box<ImportReport>,
        cause: Error,
    },
    #[error(transparent)]
    Gatehouse(#[from] Error),
}

/// Every row of `auth.users` (with its identities' providers) of the Supabase database at
/// `url`, read in one read-only transaction. Errors never show the URL's password.
pub async fn read_from_postgres(url: &str) -> Result<Vec<SupabaseUserRow>, ImportError> {
    gatehouse_store::supabase::read_auth_users(url)
        .await
        .map_err(|err| ImportError::Source(err.to_string()))
}

/// One row of an export of `auth.users`: the columns the import reads (others are
/// ignored), and optionally the row's `identities`.
#[derive(Deserialize)]
struct JsonRow {
    id: Uuid,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    encrypted_password: Option<String>,
    #[serde(default)]
    raw_app_meta_data: Option<Value>,
    #[serde(default)]
    raw_user_meta_data: Option<Value>,
    #[serde(default, deserialize_with = "timestamp")]
    email_confirmed_at: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "timestamp")]
    banned_until: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "timestamp")]
    created_at: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "timestamp")]
    deleted_at: Option<OffsetDateTime>,
    #[serde(default)]
    is_anonymous: Option<bool>,
    #[serde(default)]
    identities: Option<Vec<JsonIdentity>>,
}

#[derive(Deserialize)]
struct JsonIdentity {
    #[serde(default)]
    provider: Option<String>,
}

impl From<JsonRow> for SupabaseUserRow {
    fn from(row: JsonRow) -> Self {
        let mut providers: Vec<String> = row
            .identities
            .into_iter()
            .flatten()
            .filter_map(|i| i.provider)
            .collect();
        providers.sort();
        providers.dedup();
        Self {
            id: row.id,
            email: row.email,
            phone: row.phone,
            encrypted_password: row.encrypted_password,
            raw_app_meta_data: row.raw_app_meta_data,
            raw_user_meta_data: row.raw_user_meta_data,
            email_confirmed_at: row.email_confirmed_at,
            banned_until: row.banned_until,
            created_at: row.created_at,
            deleted_at: row.deleted_at,
            is_anonymous: row.is_anonymous,
            providers,
        }
    }
}

/// A timestamp as Postgres writes one: in JSON `2024-05-01T12:34:56.789012+00:00`, in text
/// `2024-05-01 12:34:56.789012+00`; `infinity` (a ban forever) is 9999-12-31.
fn timestamp<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<OffsetDateTime>, D::Error> {
    let Some(raw) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    parse_timestamp(&raw)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("not a timestamp: {raw:?}")))
}

fn parse_timestamp(raw: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    let raw = raw.trim();
    if raw == "infinity" {
        return Some(time::macros::datetime!(9999-12-31 0:00 UTC));
    }
    let mut text = raw.to_owned();
    if text.len() > 10 && text.as_bytes()[10] == b' ' {
        text.replace_range(10..11, "T");
    }
    // `+00` → `+00:00`.
    let bytes = text.as_bytes();
    if bytes.len() > 3 {
        let sign = bytes[bytes.len() - 3];
        if (sign == b'+' || sign == b'-')
            && text[text.len() - 2..].bytes().all(|b| b.is_ascii_digit())
        {
            text.push_str(":00");
        }
    }
    OffsetDateTime::parse(&text, &Rfc3339).ok()
}

/// The rows of an export of `auth.users`: a JSON array of row objects (what
/// `select json_agg(u) from auth.users u` gives; `null`, its answer for no rows, is no
/// rows), or JSON Lines, one row object a line. Each row may carry an `identities` array
/// (objects with a `provider`). Any malformed row fails the whole file.
pub fn parse_json_export(text: &str) -> Result<Vec<SupabaseUserRow>, ImportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ImportError::Source(
            "is empty: expected a JSON array of auth.users rows, or JSON Lines".to_owned(),
        ));
    }
    if trimmed == "null" {
        return Ok(Vec::new());
    }
    if trimmed.starts_with('[') {
        let rows: Vec<JsonRow> = serde_json::from_str(text).map_err(|err| {
            ImportError::Source(format!("not a JSON array of auth.users rows: {err}"))
        })?;
        return Ok(rows.into_iter().map(SupabaseUserRow::from).collect());
    }
    let mut rows = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: JsonRow = serde_json::from_str(line).map_err(|err| {
            ImportError::Source(format!(
                "line {}: not an auth.users row object: {err}",
                number + 1
            ))
        })?;
        rows.push(row.into());
    }
    Ok(rows)
}

/// A batch's users, sorted out against the gatehouse users it collides with.
fn against_existing(
    batch: Vec<NewUser>,
    existing: &[ExistingUser],
) -> (Vec<NewUser>, Vec<Skipped>) {
    let ids: HashSet<Uuid> = existing.iter().map(|e| e.id).collect();
    let emails: HashMap<&str, Uuid> = existing
        .iter()
        .filter(|e| e.deleted_at.is_none())
        .filter_map(|e| e.email.as_deref().map(|email| (email, e.id)))
        .collect();
    let mut new = Vec::with_capacity(batch.len());
    let mut skipped = Vec::new();
    for user in batch {
        if ids.contains(&user.id) {
            skipped.push(Skipped {
                id: user.id,
                reason: SkipReason::AlreadyImported,
                detail: None,
            });
        } else if let Some(holder) = emails.get(user.email.as_str()) {
            skipped.push(Skipped {
                id: user.id,
                reason: SkipReason::EmailTaken,
                detail: Some(format!("gatehouse user {holder} has it")),
            });
        } else {
            new.push(user);
        }
    }
    (new, skipped)
}

/// What one batch came to.
struct BatchOutcome {
    imported: u64,
    admins: u64,
    skipped: Vec<Skipped>,
}

impl Admin {
    /// Imports users from a Supabase project's `auth.users` rows (see the module docs):
    /// plans every row, then per batch of `options.batch_size` checks the ids and emails
    /// against gatehouse's users with one query and writes the new users, their profiles
    /// and one `user.imported` audit row in one transaction. A failing batch rolls back
    /// alone and stops the import ([`ImportError::Batch`]). A dry run writes nothing.
    pub async fn import_supabase_users(
        &self,
        actor: Actor,
        rows: Vec<SupabaseUserRow>,
        options: &ImportOptions,
        meta: &RequestMeta,
    ) -> Result<ImportReport, ImportError> {
        if self.shared.identity.is_upstream() {
            // In Supabase mode no password hash is written here; the import is for
            // leaving Supabase.
            return Err(ImportError::Gatehouse(Error::Config(
                "gatehouse runs in Supabase mode (SUPABASE_URL is set), where passwords stay \
                 in the project: unset the SUPABASE_* variables to import its users and run \
                 standalone"
                    .to_owned(),
            )));
        }
        self.limit(actor).await?;
        let batch_size = options.batch_size.clamp(1, MAX_BATCH_SIZE);
        let plan = plan_import(rows, self.shared.now());
        let mut report = ImportReport::new(options, plan.read);
        for skipped in plan.skipped {
            report.skip(skipped);
        }
        let batches = plan.users.len().div_ceil(batch_size) as u64;
        let mut users = plan.users.into_iter();
        for number in 1..=batches {
            let batch: Vec<NewUser> = users.by_ref().take(batch_size).collect();
            let outcome = if options.dry_run {
                self.check_batch(batch).await
            } else {
                self.write_batch(actor, batch, (number, batches), options, meta)
                    .await
            };
            match outcome {
                Ok(outcome) => {
                    if outcome.imported > 0 {
                        report.batches += 1;
                    }
                    report.imported += outcome.imported;
                    report.admins += outcome.admins;
                    for skipped in outcome.skipped {
                        report.skip(skipped);
                    }
                    tracing::debug!(
                        batch = number,
                        of = batches,
                        imported = outcome.imported,
                        "import batch done"
                    );
                }
                Err(cause) => {
                    report.failed_batch = Some(number);
                    return Err(ImportError::Batch {
                        batch: number,
                        batches,
                        report: Box::new(report),
                        cause,
                    });
                }
            }
        }
        Ok(report)
    }

    /// A dry run's batch: the same check, outside a transaction, writing nothing.
    async fn check_batch(&self, batch: Vec<NewUser>) -> Result<BatchOutcome, Error> {
        let (ids, emails) = keys(&batch);
        let existing = self.shared.store.existing_users(&ids, &emails).await?;
        let (new, skipped) = against_existing(batch, &existing);
        Ok(BatchOutcome {
            imported: new.len() as u64,
            admins: count_admins(&new),
            skipped,
        })
    }

    /// One transaction: the check, the users and their profiles, the audit row. Nothing
    /// new: nothing written.
    async fn write_batch(
        &self,
        actor: Actor,
        batch: Vec<NewUser>,
        (number, batches): (u64, u64),
        options: &ImportOptions,
        meta: &RequestMeta,
    ) -> Result<BatchOutcome, Error> {
        let (ids, emails) = keys(&batch);
        let mut tx = self.shared.store.begin().await?;
        let existing = tx.existing_users(&ids, &emails).await?;
        let (new, skipped) = against_existing(batch, &existing);
        let admins = count_admins(&new);
        if new.is_empty() {
            tx.rollback().await?;
        } else {
            tx.insert_users(&new).await?;
            let mut skipped_here: BTreeMap<SkipReason, u64> = BTreeMap::new();
            for s in &skipped {
                *skipped_here.entry(s.reason).or_default() += 1;
            }
            let details = json!({
                "via": actor.via(), "source": options.source,
                "batch": number, "batches": batches,
                "imported": new.len(), "admins": admins, "skipped": skipped_here,
            });
            let event = self
                .shared
                .audit_record("user.imported", actor.id(), None, meta, details);
            tx.insert_audit_event(&event).await?;
            tx.commit().await?;
            // After batches 1, 2, 4, 8 …, the planner learns the tables' new size, so it
            // never believes them less than half what they are and the next batches'
            // lookups stay index lookups (Store::analyze_users says what happened without).
            if number.is_power_of_two() {
                if let Err(err) = self.shared.store.analyze_users().await {
                    tracing::warn!(error = %err, "could not refresh the planner's statistics of users");
                }
            }
        }
        Ok(BatchOutcome {
            imported: new.len() as u64,
            admins,
            skipped,
        })
    }
}

fn keys(batch: &[NewUser]) -> (Vec<Uuid>, Vec<String>) {
    (
        batch.iter().map(|u| u.id).collect(),
        batch.iter().map(|u| u.email.clone()).collect(),
    )
}

fn count_admins(users: &[NewUser]) -> u64 {
    users.iter().filter(|u| u.role == "admin").count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";

    fn row(email: &str) -> SupabaseUserRow {
        SupabaseUserRow {
            id: Uuid::new_v4(),
            email: Some(email.to_owned()),
            encrypted_password: Some(HASH.to_owned()),
            raw_app_meta_data: Some(json!({"provider": "email", "providers": ["email"]})),
            raw_user_meta_data: Some(json!({})),
            created_at: Some(time::macros::datetime!(2024-01-02 3:04:05 UTC)),
            ..SupabaseUserRow::default()
        }
    }

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-12-01 0:00 UTC)
    }

    fn only(row: SupabaseUserRow) -> Result<NewUser, (SkipReason, Option<String>)> {
        let mut plan = plan_import(vec![row], now());
        match (plan.users.pop(), plan.skipped.pop()) {
            (Some(user), None) => Ok(user),
            (None, Some(skipped)) => Err((skipped.reason, skipped.detail)),
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_user_keeps_id_hash_metadata_and_times_and_loses_the_role_key() {
        let mut ada = row("  Ada.Lovelace@Example.COM ");
        ada.raw_app_meta_data = Some(
            json!({"provider": "email", "providers": ["email", "github"], "role": "admin", "plan": "pro"}),
        );
        ada.raw_user_meta_data =
            Some(json!({"full_name": "Ada Lovelace", "name": "ada", "theme": "dark"}));
        ada.email_confirmed_at = Some(time::macros::datetime!(2024-01-03 0:00 UTC));
        ada.banned_until = Some(time::macros::datetime!(2100-01-01 0:00 UTC));
        let id = ada.id;
        let user = only(ada).unwrap();
        assert_eq!(user.id, id);
        assert_eq!(user.email, "ada.lovelace@example.com");
        assert_eq!(user.password_hash.as_deref(), Some(HASH));
        assert_eq!(user.role, "admin");
        assert_eq!(
            user.app_metadata,
            json!({"provider": "email", "providers": ["email", "github"], "plan": "pro"})
        );
        assert_eq!(user.display_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(user.user_metadata["theme"], "dark");
        assert_eq!(
            user.created_at,
            Timestamp::from(time::macros::datetime!(2024-01-02 3:04:05 UTC))
        );
        assert!(user.email_confirmed_at.is_some() && user.banned_until.is_some());
    }

    #[test]
    fn only_an_admin_role_makes_an_admin_and_a_missing_provider_is_email() {
        for app in [
            json!({"role": "authenticated"}),
            json!({"role": ["admin"]}),
            json!(null),
        ] {
            let mut r = row("bob@example.com");
            r.raw_app_meta_data = Some(app.clone());
            let user = only(r).unwrap();
            assert_eq!(user.role, "user", "{app}");
            assert_eq!(
                user.app_metadata,
                json!({"provider": "email", "providers": ["email"]})
            );
        }
        let mut r = row("bob@example.com");
        r.created_at = None;
        r.raw_user_meta_data = None;
        let user = only(r).unwrap();
        assert_eq!(
            user.created_at,
            Timestamp::from(now()),
            "a missing created_at is now"
        );
        assert_eq!(user.user_metadata, json!({}));
        assert_eq!(
            user.email_confirmed_at, None,
            "unconfirmed stays unconfirmed"
        );
    }

    #[test]
    fn the_display_name_is_the_first_valid_of_display_name_full_name_name() {
        let name = |meta: Value| {
            let mut r = row("c@example.com");
            r.raw_user_meta_data = Some(meta);
            only(r).unwrap().display_name
        };
        assert_eq!(
            name(json!({"display_name": "D", "full_name": "F", "name": "N"})).as_deref(),
            Some("D")
        );
        assert_eq!(
            name(json!({"display_name": "x".repeat(101), "full_name": " F "})).as_deref(),
            Some("F")
        );
        assert_eq!(
            name(json!({"display_name": 7, "full_name": "", "name": "N"})).as_deref(),
            Some("N")
        );
        assert_eq!(name(json!({"avatar_url": "https://x"})), None);
    }

    #[test]
    fn every_skip_reason_is_found_in_order() {
        type Change = Box<dyn Fn(&mut SupabaseUserRow)>;
        let cases: Vec<(Change, SkipReason)> = vec![
            (
                Box::new(|r| r.deleted_at = Some(now())),
                SkipReason::SoftDeleted,
            ),
            (
                Box::new(|r| {
                    r.deleted_at = None;
                    r.is_anonymous = Some(true);
                    r.email = None;
                }),
                SkipReason::Anonymous,
            ),
            (
                Box::new(|r| {
                    r.email = None;
                    r.phone = Some("+15550100".into());
                }),
                SkipReason::NoEmail,
            ),
            (
                Box::new(|r| r.email = Some("   ".into())),
                SkipReason::NoEmail,
            ),
            (
                Box::new(|r| r.email = Some("not-an-email".into())),
                SkipReason::InvalidEmail,
            ),
            (
                Box::new(|r| r.encrypted_password = None),
                SkipReason::NoPassword,
            ),
            (
                Box::new(|r| r.encrypted_password = Some(String::new())),
                SkipReason::NoPassword,
            ),
            (
                Box::new(|r| {
                    r.encrypted_password =
                        Some("$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA".into())
                }),
                SkipReason::UnsupportedHash,
            ),
            (
                Box::new(|r| r.raw_user_meta_data = Some(json!({"bio": "x".repeat(17 * 1024)}))),
                SkipReason::MetadataTooLarge,
            ),
            (
                Box::new(|r| r.raw_app_meta_data = Some(json!({"x": "a\u{0}b"}))),
                SkipReason::InvalidMetadata,
            ),
            (
                Box::new(|r| r.raw_user_meta_data = Some(json!([1, 2]))),
                SkipReason::InvalidMetadata,
            ),
        ];
        for (change, reason) in cases {
            let mut r = row("d@example.com");
            change(&mut r);
            assert_eq!(only(r).unwrap_err().0, reason);
        }
    }

    #[test]
    fn a_password_less_user_is_reported_with_their_providers() {
        let mut r = row("e@example.com");
        r.encrypted_password = None;
        r.providers = vec!["github".into(), "google".into()];
        assert_eq!(
            only(r).unwrap_err(),
            (SkipReason::NoPassword, Some("github+google".into()))
        );
        let mut r = row("e@example.com");
        r.encrypted_password = Some(String::new());
        r.raw_app_meta_data = Some(json!({"provider": "github", "providers": ["github"]}));
        assert_eq!(
            only(r).unwrap_err().1.as_deref(),
            Some("github"),
            "from app metadata without identities"
        );
        let mut r = row("e@example.com");
        r.encrypted_password = None;
        r.raw_app_meta_data = None;
        assert_eq!(only(r).unwrap_err().1.as_deref(), Some("none"));
    }

    #[test]
    fn bcrypt_hashes_are_checked_for_shape_and_cost_and_never_echoed() {
        assert!(check_bcrypt(HASH).is_ok());
        assert!(check_bcrypt(&HASH.replacen("$2a$", "$2b$", 1)).is_ok());
        assert!(check_bcrypt(&HASH.replacen("$2a$", "$2y$", 1)).is_ok());
        for (bad, why) in [
            (HASH.replacen("$2a$", "$2x$", 1), "not a bcrypt hash"),
            (HASH.replacen("$10$", "$15$", 1), "cost 15 is above 14"),
            (HASH.replacen("$10$", "$03$", 1), "below 4"),
            (HASH[..59].to_owned(), "malformed"),
            (format!("{}!", &HASH[..59]), "malformed"),
            ("plaintext-password".to_owned(), "not a bcrypt hash"),
            (
                "$argon2id$v=19$m=19456,t=2,p=1$abc$def".to_owned(),
                "($argon2id$)",
            ),
            ("$2a$1".to_owned(), "malformed"),
        ] {
            let err = check_bcrypt(&bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(
                !err.contains("N9qo8u") && !err.contains("plaintext"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_repeated_id_or_email_keeps_the_first_row() {
        let first = row("f@example.com");
        let mut same_id = row("g@example.com");
        same_id.id = first.id;
        let same_email = row("F@Example.com");
        let plan = plan_import(vec![first.clone(), same_id, same_email], now());
        assert_eq!(plan.read, 3);
        assert_eq!(plan.users.len(), 1);
        assert_eq!(plan.users[0].id, first.id);
        assert!(plan
            .skipped
            .iter()
            .all(|s| s.reason == SkipReason::DuplicateInSource));
        assert_eq!(plan.skipped.len(), 2);
    }

    #[test]
    fn exports_parse_as_an_array_or_json_lines_with_postgres_timestamps() {
        let id = Uuid::new_v4();
        let array = format!(
            r#"[{{"id": "{id}", "email": "a@example.com", "encrypted_password": "{HASH}",
                "created_at": "2024-05-01T12:34:56.789012+00:00", "email_confirmed_at": "2024-05-01 12:34:56.5+02",
                "banned_until": "infinity", "aud": "authenticated", "raw_app_meta_data": {{"provider": "email"}},
                "identities": [{{"provider": "github", "identity_data": {{}}}}, {{"provider": "email"}}]}}]"#
        );
        let rows = parse_json_export(&array).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].id, id);
        assert_eq!(
            rows[0].created_at,
            Some(time::macros::datetime!(2024-05-01 12:34:56.789012 UTC))
        );
        assert_eq!(
            rows[0].email_confirmed_at,
            Some(time::macros::datetime!(2024-05-01 10:34:56.5 UTC))
        );
        assert_eq!(rows[0].banned_until.map(|b| b.year()), Some(9999));
        assert_eq!(rows[0].providers, ["email", "github"]);
        let lines = format!(
            "{{\"id\": \"{id}\"}}\n\n{{\"id\": \"{}\", \"deleted_at\": null}}\n",
            Uuid::new_v4()
        );
        assert_eq!(parse_json_export(&lines).unwrap().len(), 2);
        assert!(parse_json_export("null").unwrap().is_empty());
    }

    #[test]
    fn a_malformed_export_is_a_clear_error() {
        let id = Uuid::new_v4();
        for (text, says) in [
            (String::new(), "is empty"),
            (format!("[{{\"id\": \"{id}\"}},"), "not a JSON array"),
            (
                "[{\"email\": \"a@example.com\"}]".to_owned(),
                "missing field `id`",
            ),
            ("[{\"id\": \"not-a-uuid\"}]".to_owned(), "not a JSON array"),
            (
                format!(
                    "{{\"id\": \"{id}\"}}\n{{\"id\": \"{id}\", \"created_at\": \"yesterday\"}}"
                ),
                "line 2",
            ),
            (
                format!("{{\"id\": \"{id}\", \"is_anonymous\": \"no\"}}"),
                "line 1",
            ),
        ] {
            let err = parse_json_export(&text).unwrap_err().to_string();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }
}
