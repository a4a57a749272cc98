//! `gatehouse user import`: a Supabase project's `auth.users`, built in a throwaway
//! Postgres database in Supabase's shape, imported through the real binary into gatehouse
//! (SQLite and Postgres), whose users then sign in with their old passwords.

// The binary is a child process, with no clock of ours.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use base64::Engine;
use gatehouse_core::store::sqlx::{self, Connection, PgConnection};
use gatehouse_core::store::testing::TestDatabase;
use gatehouse_core::store::{
    with_pool, Backend, ConnectOptions, DatabaseUrl, NewUser, Store, Timestamp,
};
use serde_json::{json, Value};
use time::macros::datetime;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::helpers::{assert_error, TestApp};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// The password of the source URL: trust authentication ignores it, so it can be any, and
/// it must never be printed.
const SOURCE_PASSWORD: &str = "s3cret-Source-pw";

/// Supabase's auth schema, as far as the import reads it: the real column names and types
/// of `auth.users` and `auth.identities` (Supabase Auth's migrations up to 2024).
const AUTH_SCHEMA: &str = "
CREATE SCHEMA auth;
CREATE TABLE auth.users (
    instance_id uuid NULL,
    id uuid NOT NULL PRIMARY KEY,
    aud varchar(255) NULL,
    role varchar(255) NULL,
    email varchar(255) NULL,
    encrypted_password varchar(255) NULL,
    email_confirmed_at timestamptz NULL,
    invited_at timestamptz NULL,
    confirmation_token varchar(255) NULL,
    confirmation_sent_at timestamptz NULL,
    recovery_token varchar(255) NULL,
    recovery_sent_at timestamptz NULL,
    email_change_token_new varchar(255) NULL,
    email_change varchar(255) NULL,
    email_change_sent_at timestamptz NULL,
    last_sign_in_at timestamptz NULL,
    raw_app_meta_data jsonb NULL,
    raw_user_meta_data jsonb NULL,
    is_super_admin bool NULL,
    created_at timestamptz NULL,
    updated_at timestamptz NULL,
    phone text NULL UNIQUE DEFAULT NULL,
    phone_confirmed_at timestamptz NULL,
    phone_change text NULL DEFAULT '',
    phone_change_token varchar(255) NULL DEFAULT '',
    phone_change_sent_at timestamptz NULL,
    confirmed_at timestamptz GENERATED ALWAYS AS (LEAST(email_confirmed_at, phone_confirmed_at)) STORED,
    email_change_token_current varchar(255) NULL DEFAULT '',
    email_change_confirm_status smallint NULL DEFAULT 0,
    banned_until timestamptz NULL,
    reauthentication_token varchar(255) NULL DEFAULT '',
    reauthentication_sent_at timestamptz NULL,
    is_sso_user bool NOT NULL DEFAULT false,
    deleted_at timestamptz NULL,
    is_anonymous bool NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX users_email_partial_key ON auth.users (email) WHERE is_sso_user = false;
CREATE TABLE auth.identities (
    provider_id text NOT NULL,
    user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    identity_data jsonb NOT NULL,
    provider text NOT NULL,
    last_sign_in_at timestamptz NULL,
    created_at timestamptz NULL,
    updated_at timestamptz NULL,
    email text GENERATED ALWAYS AS (lower(identity_data ->> 'email')) STORED,
    id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    CONSTRAINT identities_provider_id_provider_unique UNIQUE (provider_id, provider)
);
CREATE INDEX identities_user_id_idx ON auth.identities (user_id);
";

/// A row of `auth.users` to write.
#[derive(Clone)]
struct SourceUser {
    id: Uuid,
    email: Option<&'static str>,
    phone: Option<&'static str>,
    /// What `encrypted_password` holds (Supabase writes '' for none, older rows NULL).
    hash: Option<String>,
    app: Value,
    meta: Value,
    confirmed_at: Option<OffsetDateTime>,
    banned_until: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    deleted: bool,
    anonymous: bool,
    providers: Vec<&'static str>,
}

impl SourceUser {
    fn new(email: &'static str) -> Self {
        Self {
            id: Uuid::new_v4(),
            email: Some(email),
            phone: None,
            hash: None,
            app: json!({"provider": "email", "providers": ["email"]}),
            meta: json!({}),
            confirmed_at: Some(datetime!(2023-03-05 06:07:08.654321 UTC)),
            banned_until: None,
            created_at: datetime!(2023-03-04 05:06:07.123456 UTC),
            deleted: false,
            anonymous: false,
            providers: vec!["email"],
        }
    }

    /// With a password hashed as Supabase's Go bcrypt does (`$2a$`), at cost 4 for speed.
    fn password(mut self, password: &str, version: bcrypt::Version) -> Self {
        self.hash = Some(
            bcrypt::hash_with_result(password, 4)
                .unwrap()
                .format_for_version(version),
        );
        self
    }
}

/// A Supabase project's database with one user for every outcome of an import.
struct Supabase {
    db: TestDatabase,
    ada: SourceUser,
    bob: SourceUser,
    carol: SourceUser,
    /// The id and the reason of every row the import skips (`judy` only where gatehouse
    /// already has her email).
    skipped: BTreeMap<Uuid, &'static str>,
    judy: SourceUser,
}

const ADA_PASSWORD: &str = "ada-Lovelace-1815!";
const BOB_PASSWORD: &str = "bob-Builder-2024?";
const CAROL_PASSWORD: &str = "carol-Banned-77#";

impl Supabase {
    async fn create() -> Self {
        let db = TestDatabase::create(Backend::Postgres).await;
        let mut conn = PgConnection::connect(db.url().expose()).await.unwrap();
        sqlx::raw_sql(AUTH_SCHEMA).execute(&mut conn).await.unwrap();

        let mut ada =
            SourceUser::new("ada@example.com").password(ADA_PASSWORD, bcrypt::Version::TwoA);
        ada.app =
            json!({"provider": "email", "providers": ["email"], "role": "admin", "plan": "pro"});
        ada.meta = json!({"display_name": "Ada Lovelace", "theme": "dark"});
        let mut bob = SourceUser::new("Bob.Builder@Example.com")
            .password(BOB_PASSWORD, bcrypt::Version::TwoB);
        bob.app = json!({"provider": "email", "providers": ["email", "github"]});
        bob.meta =
            json!({"full_name": "Bob Builder", "avatar_url": "https://img.example.com/bob.png"});
        bob.confirmed_at = None;
        bob.providers = vec!["email", "github"];
        let mut carol =
            SourceUser::new("carol@example.com").password(CAROL_PASSWORD, bcrypt::Version::TwoY);
        carol.banned_until = Some(datetime!(2999-01-01 0:00 UTC));
        carol.meta = json!({"name": "Carol"});

        let with_password =
            |email| SourceUser::new(email).password("some-Password-1", bcrypt::Version::TwoA);
        let mut deleted = with_password("erin@example.com");
        deleted.deleted = true;
        let mut phone_only = with_password("unused");
        phone_only.email = None;
        phone_only.phone = Some("15550100");
        phone_only.providers = vec!["phone"];
        let invalid = with_password("not-an-email");
        let mut anonymous = SourceUser::new("unused");
        anonymous.email = None;
        anonymous.anonymous = true;
        anonymous.app = json!({});
        anonymous.providers = vec![];
        let mut github = SourceUser::new("frank@example.com");
        github.hash = Some(String::new());
        github.app = json!({"provider": "github", "providers": ["github"]});
        github.providers = vec!["github"];
        let mut google = SourceUser::new("grace@example.com");
        google.app = json!({"provider": "google", "providers": ["google"]});
        google.providers = vec!["google"];
        let mut argon = SourceUser::new("heidi@example.com");
        argon.hash = Some(
            "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG".into(),
        );
        let mut large = with_password("ivan@example.com");
        large.meta = json!({"bio": "x".repeat(20 * 1024)});
        let judy = with_password("judy@example.com");

        let skipped = BTreeMap::from([
            (deleted.id, "soft_deleted"),
            (phone_only.id, "no_email"),
            (invalid.id, "invalid_email"),
            (anonymous.id, "anonymous"),
            (github.id, "no_password"),
            (google.id, "no_password"),
            (argon.id, "unsupported_hash"),
            (large.id, "metadata_too_large"),
            (judy.id, "email_taken"),
        ]);
        for user in [
            &ada,
            &bob,
            &carol,
            &deleted,
            &phone_only,
            &invalid,
            &anonymous,
            &github,
            &google,
            &argon,
            &large,
            &judy,
        ] {
            insert(&mut conn, user).await;
        }
        conn.close().await.unwrap();
        Self {
            db,
            ada,
            bob,
            carol,
            skipped,
            judy,
        }
    }

    /// The URL with a password in it, as an operator would give it.
    fn url(&self) -> String {
        let mut url = url::Url::parse(self.db.url().expose()).unwrap();
        url.set_password(Some(SOURCE_PASSWORD)).unwrap();
        url.to_string()
    }

    /// Rows of `query` (one text value each), for exports.
    async fn texts(&self, query: &str) -> Vec<String> {
        let mut conn = PgConnection::connect(self.db.url().expose()).await.unwrap();
        let rows: Vec<String> = sqlx::query_scalar(query)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        rows
    }
}

async fn insert(conn: &mut PgConnection, user: &SourceUser) {
    sqlx::query(
        "INSERT INTO auth.users (instance_id, id, aud, role, email, encrypted_password, \
         email_confirmed_at, confirmation_token, recovery_token, raw_app_meta_data, \
         raw_user_meta_data, is_super_admin, created_at, updated_at, phone, banned_until, \
         deleted_at, is_anonymous) \
         VALUES ('00000000-0000-0000-0000-000000000000', $1, 'authenticated', 'authenticated', \
         $2, $3, $4, '', '', $5, $6, false, $7, $7, $8, $9, CASE WHEN $10 THEN now() END, $11)",
    )
    .bind(user.id)
    .bind(user.email)
    .bind(&user.hash)
    .bind(user.confirmed_at)
    .bind(&user.app)
    .bind(&user.meta)
    .bind(user.created_at)
    .bind(user.phone)
    .bind(user.banned_until)
    .bind(user.deleted)
    .bind(user.anonymous)
    .execute(&mut *conn)
    .await
    .unwrap();
    for provider in &user.providers {
        let provider_id = if *provider == "email" {
            user.id.to_string()
        } else {
            format!("{provider}-{}", user.id.simple())
        };
        sqlx::query(
            "INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, now(), now())",
        )
        .bind(provider_id)
        .bind(user.id)
        .bind(json!({"sub": user.id.to_string(), "email": user.email}))
        .bind(provider)
        .execute(&mut *conn)
        .await
        .unwrap();
    }
}

/// What the binary printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The `--json` report.
    fn report(&self) -> Value {
        assert_eq!(
            self.code,
            Some(0),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }

    /// Nothing printed holds a password, a hash or the source's password.
    fn assert_no_secrets(&self) {
        let all = format!("{}{}", self.stdout, self.stderr);
        // A scheme's name may be said ("not a bcrypt hash ($argon2id$)"); no hash is.
        for secret in [
            SOURCE_PASSWORD,
            "$2a$04$",
            "$2b$04$",
            "$2y$04$",
            "c29tZXNhbHQ",
            "$v=19$",
            ADA_PASSWORD,
            "x".repeat(100).as_str(),
        ] {
            assert!(!all.contains(secret), "{secret} printed: {all}");
        }
    }
}

/// `gatehouse user import ARGS` against `database_url`, with a clean environment.
async fn import(dir: &Path, database_url: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .current_dir(dir)
        .env("DATABASE_URL", database_url)
        .env("GATEHOUSE_LOG", "warn")
        .args(["user", "import"])
        .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    run.assert_no_secrets();
    run
}

/// A migrated gatehouse database on `backend` where `judy@example.com` is already someone
/// else.
async fn gatehouse_db(backend: Backend) -> (TestDatabase, Uuid) {
    let db = TestDatabase::create(backend).await;
    let store = Store::connect(db.url(), &ConnectOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let now: Timestamp = datetime!(2026-01-01 0:00 UTC).into();
    let other = NewUser {
        id: Uuid::new_v4(),
        email: "judy@example.com".into(),
        username: None,
        password_hash: Some(bcrypt::hash("judy-Own-Password-1", 4).unwrap()),
        role: "user".into(),
        app_metadata: json!({}),
        user_metadata: json!({}),
        email_confirmed_at: Some(now),
        banned_until: None,
        display_name: Some("The other Judy".into()),
        created_at: now,
    };
    store
        .import_users(std::slice::from_ref(&other))
        .await
        .unwrap();
    store.close().await;
    (db, other.id)
}

type UserRow = (
    Uuid,
    Option<String>,
    Option<String>,
    String,
    Timestamp,
    Option<Timestamp>,
);

/// Every user and profile row and the size of the audit trail.
#[derive(Debug, PartialEq)]
struct Snapshot {
    users: Vec<UserRow>,
    profiles: Vec<(Uuid, Option<String>)>,
    audit_rows: i64,
}

async fn snapshot(url: &DatabaseUrl) -> Snapshot {
    let store = Store::connect(url, &ConnectOptions::default())
        .await
        .unwrap();
    let snapshot = with_pool!(&store, pool => Snapshot {
        users: sqlx::query_as("SELECT id, email, password_hash, role, updated_at, last_sign_in_at FROM users ORDER BY email")
            .fetch_all(pool).await.unwrap(),
        profiles: sqlx::query_as("SELECT user_id, display_name FROM profiles ORDER BY display_name")
            .fetch_all(pool).await.unwrap(),
        audit_rows: sqlx::query_scalar("SELECT count(*) FROM audit_log").fetch_one(pool).await.unwrap(),
    });
    store.close().await;
    snapshot
}

/// The skipped ids of a `--json --verbose` report, with their reasons.
fn skipped_users(report: &Value) -> BTreeMap<Uuid, String> {
    report["skippedUsers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().parse().unwrap(),
                s["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The `sub` of an access token.
fn sub(access_token: &str) -> String {
    let payload = access_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["sub"].as_str().unwrap().to_owned()
}

/// The report of the first import of [`Supabase`]'s users, whatever the source.
fn assert_first_report(report: &Value, source: &str) {
    assert_eq!(report["source"], source);
    assert_eq!(report["dryRun"], false);
    assert_eq!(
        (
            report["read"].as_u64(),
            report["imported"].as_u64(),
            report["admins"].as_u64()
        ),
        (Some(12), Some(3), Some(1)),
        "{report}"
    );
    assert_eq!(report["batches"], 1);
    assert_eq!(report["skipped"], 9);
    assert_eq!(
        report["skippedByReason"],
        json!({"soft_deleted": 1, "no_email": 1, "invalid_email": 1, "anonymous": 1, "no_password": 2,
               "unsupported_hash": 1, "metadata_too_large": 1, "email_taken": 1}),
    );
    assert_eq!(
        report["noPasswordProviders"],
        json!({"github": 1, "google": 1})
    );
}

async fn imports_from_a_supabase_database(backend: Backend) {
    let source = Supabase::create().await;
    let (db, judy_here) = gatehouse_db(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let url = source.url();
    let target = db.url().expose().to_owned();
    let before = snapshot(db.url()).await;

    // A dry run reports what a run would do and writes nothing.
    let dry = import(dir.path(), &target, &["--from-postgres", &url, "--dry-run"]).await;
    assert_eq!(dry.code, Some(0), "{}", dry.stderr);
    assert_eq!(
        dry.stdout.trim(),
        "dry run: would import 3 users (1 admin) in 1 batch; would skip 9: 2 no password (github: 1, google: 1), \
         1 email taken, 1 soft-deleted, 1 anonymous, 1 no email, 1 invalid email, 1 unsupported password hash, 1 metadata too large"
    );
    assert_eq!(snapshot(db.url()).await, before, "a dry run writes nothing");

    let first = import(
        dir.path(),
        &target,
        &["--from-postgres", &url, "--json", "--verbose"],
    )
    .await;
    let report = first.report();
    assert_first_report(&report, "postgres");
    let skipped = skipped_users(&report);
    let expected: BTreeMap<Uuid, String> = source
        .skipped
        .iter()
        .map(|(id, r)| (*id, (*r).to_owned()))
        .collect();
    assert_eq!(skipped, expected, "every skipped row, with its reason");

    // One audit row for the one batch, in the transaction of its users.
    let store = Store::connect(db.url(), &ConnectOptions::default())
        .await
        .unwrap();
    let events = store.recent_audit_events(10).await.unwrap();
    let imported: Vec<_> = events
        .iter()
        .filter(|e| e.action == "user.imported")
        .collect();
    assert_eq!(imported.len(), 1);
    assert_eq!((imported[0].actor_id, imported[0].target_id), (None, None));
    let details = &imported[0].details.0;
    assert_eq!(
        (
            details["via"].as_str(),
            details["source"].as_str(),
            details["imported"].as_u64(),
            details["admins"].as_u64()
        ),
        (Some("cli"), Some("postgres"), Some(3), Some(1)),
        "{details}"
    );
    assert_eq!(details["skipped"], json!({"email_taken": 1}), "{details}");
    assert!(
        !details.to_string().contains('@'),
        "no emails in the audit row: {details}"
    );

    // Kept as they were: ids, hashes, metadata without the role, times.
    let ada = store.get_user(source.ada.id).await.unwrap().unwrap();
    assert_eq!(
        (ada.email.as_deref(), ada.role.as_str()),
        (Some("ada@example.com"), "admin")
    );
    assert_eq!(ada.password_hash.as_deref(), source.ada.hash.as_deref());
    assert_eq!(
        ada.app_metadata.0,
        json!({"provider": "email", "providers": ["email"], "plan": "pro"})
    );
    assert_eq!(ada.user_metadata.0, source.ada.meta);
    assert_eq!(ada.display_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(
        ada.email_confirmed_at,
        source.ada.confirmed_at.map(Timestamp::from)
    );
    assert_eq!(ada.created_at, Timestamp::from(source.ada.created_at));
    let bob = store.get_user(source.bob.id).await.unwrap().unwrap();
    assert_eq!(
        (bob.email.as_deref(), bob.role.as_str()),
        (Some("bob.builder@example.com"), "user"),
        "emails are lower-cased"
    );
    assert!(bob.password_hash.as_deref().unwrap().starts_with("$2b$04$"));
    assert_eq!(
        bob.email_confirmed_at, None,
        "unconfirmed stays unconfirmed"
    );
    assert_eq!(
        bob.display_name.as_deref(),
        Some("Bob Builder"),
        "full_name when there is no display_name"
    );
    assert_eq!(bob.app_metadata.0["providers"], json!(["email", "github"]));
    let carol = store.get_user(source.carol.id).await.unwrap().unwrap();
    assert_eq!(
        carol.banned_until,
        source.carol.banned_until.map(Timestamp::from)
    );
    assert_eq!(carol.display_name.as_deref(), Some("Carol"));
    // Skipped rows are absent; the Judy already here keeps her account.
    for id in source.skipped.keys() {
        assert!(
            store.get_user(*id).await.unwrap().is_none(),
            "{id} was skipped"
        );
    }
    let judy = store
        .find_user_by_email("judy@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (judy.id, judy.display_name.as_deref()),
        (judy_here, Some("The other Judy"))
    );
    assert_ne!(judy.id, source.judy.id);
    store.close().await;

    // Again: nothing new, nothing written, not even an audit row.
    let after_first = snapshot(db.url()).await;
    let second = import(dir.path(), &target, &["--from-postgres", &url]).await;
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert!(
        second.stdout.trim().starts_with("imported 0 users (0 admins) in 0 batches; skipped 12: 3 already imported, 2 no password (github: 1, google: 1), 1 email taken"),
        "{}",
        second.stdout
    );
    assert_eq!(
        snapshot(db.url()).await,
        after_first,
        "a second run changes nothing"
    );

    // gatehouse serves them: old passwords, same ids, roles and bans.
    let app = TestApp::spawn_over(db).await;
    let response = app.signin("ada@example.com", ADA_PASSWORD).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let ada_token = body["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(
        sub(&ada_token),
        source.ada.id.to_string(),
        "the token's sub is the Supabase id"
    );
    assert_eq!(body["user"]["role"], "admin");
    assert_eq!(body["user"]["profile"]["displayName"], "Ada Lovelace");
    assert_eq!(
        body["user"]["userMetadata"],
        json!({"display_name": "Ada Lovelace", "theme": "dark"})
    );
    let users = app
        .authed(reqwest::Method::GET, "/users", &ada_token)
        .send()
        .await
        .unwrap();
    assert_eq!(users.status(), 200, "an imported admin is an admin");

    assert_error(
        app.signin("bob.builder@example.com", "bob-builder-2024?")
            .await,
        401,
        "auth_invalid_credentials",
    )
    .await;
    let response = app.signin("Bob.Builder@example.com", BOB_PASSWORD).await;
    assert_eq!(response.status(), 200);
    let bob_token = TestApp::signed(response).await.access;
    assert_eq!(sub(&bob_token), source.bob.id.to_string());
    assert_eq!(
        app.authed(reqwest::Method::GET, "/users", &bob_token)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_error(
        app.signin("carol@example.com", CAROL_PASSWORD).await,
        401,
        "user_banned",
    )
    .await;
    for (id, old) in [(source.ada.id, "$2a$04$"), (source.bob.id, "$2b$04$")] {
        let hash = app
            .gatehouse
            .store()
            .get_user(id)
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .unwrap();
        assert!(
            hash.starts_with("$argon2id$") && !hash.starts_with(old),
            "re-hashed at sign-in"
        );
    }
    assert_error(
        app.signin("erin@example.com", "some-Password-1").await,
        401,
        "auth_invalid_credentials",
    )
    .await;

    // A run after the sign-ins leaves the new hashes alone.
    let third = import(dir.path(), &target, &["--from-postgres", &url, "--json"]).await;
    assert_eq!(third.report()["imported"], 0);
    let hash = app
        .gatehouse
        .store()
        .get_user(source.ada.id)
        .await
        .unwrap()
        .unwrap()
        .password_hash
        .unwrap();
    assert!(hash.starts_with("$argon2id$"));
    assert_eq!(
        app.signin("ada@example.com", ADA_PASSWORD).await.status(),
        200
    );
}

mod a_supabase_database_is_imported_through_the_cli_and_its_users_sign_in {
    use super::*;

    #[tokio::test]
    async fn sqlite() {
        imports_from_a_supabase_database(Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn postgres() {
        imports_from_a_supabase_database(Backend::Postgres).await;
    }
}

#[tokio::test]
async fn an_export_as_a_json_array_or_json_lines_imports_the_same_users() {
    let source = Supabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    // What an operator would run against the project: json_agg of the rows, or one row a
    // line with its identities.
    let array = source
        .texts("SELECT json_agg(u)::text FROM auth.users u")
        .await
        .remove(0);
    std::fs::write(dir.path().join("users.json"), &array).unwrap();
    let lines = source
        .texts(
            "SELECT (to_jsonb(u) || jsonb_build_object('identities', \
             (SELECT coalesce(jsonb_agg(i), '[]'::jsonb) FROM auth.identities i WHERE i.user_id = u.id)))::text \
             FROM auth.users u ORDER BY u.created_at, u.id",
        )
        .await
        .join("\n");
    std::fs::write(dir.path().join("users.jsonl"), lines).unwrap();

    for file in ["users.json", "users.jsonl"] {
        let (db, _) = gatehouse_db(Backend::Sqlite).await;
        let target = db.url().expose().to_owned();
        let run = import(
            dir.path(),
            &target,
            &["--from-json", file, "--json", "--verbose"],
        )
        .await;
        let report = run.report();
        assert_first_report(&report, "json");
        let expected: BTreeMap<Uuid, String> = source
            .skipped
            .iter()
            .map(|(id, r)| (*id, (*r).to_owned()))
            .collect();
        assert_eq!(skipped_users(&report), expected, "{file}");

        let app = TestApp::spawn_over(db).await;
        let ada = app
            .gatehouse
            .store()
            .get_user(source.ada.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (ada.role.as_str(), ada.display_name.as_deref()),
            ("admin", Some("Ada Lovelace")),
            "{file}"
        );
        assert_eq!(
            ada.email_confirmed_at,
            source.ada.confirmed_at.map(Timestamp::from),
            "{file}: Postgres's JSON timestamps"
        );
        assert_eq!(
            ada.created_at,
            Timestamp::from(source.ada.created_at),
            "{file}"
        );
        let carol = app
            .gatehouse
            .store()
            .get_user(source.carol.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            carol.banned_until,
            source.carol.banned_until.map(Timestamp::from),
            "{file}"
        );
        let response = app.signin("bob.builder@example.com", BOB_PASSWORD).await;
        assert_eq!(response.status(), 200, "{file}");
        assert_eq!(
            sub(&TestApp::signed(response).await.access),
            source.bob.id.to_string()
        );

        let again = import(dir.path(), &target, &["--from-json", file, "--json"])
            .await
            .report();
        assert_eq!(
            (
                again["imported"].as_u64(),
                again["skippedByReason"]["already_imported"].as_u64()
            ),
            (Some(0), Some(3)),
            "{file}"
        );
    }
}

#[tokio::test]
async fn a_malformed_export_is_a_clear_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = gatehouse_db(Backend::Sqlite).await;
    let target = db.url().expose().to_owned();
    let before = snapshot(db.url()).await;
    let hash = bcrypt::hash("some-Password-1", 4).unwrap();
    let good =
        |email: &str| json!({"id": Uuid::new_v4(), "email": email, "encrypted_password": hash});
    let cases = [
        (
            "truncated.json",
            format!("[{},\n{}", good("a@example.com"), good("b@example.com")),
            "not a JSON array of auth.users rows",
        ),
        (
            "no-id.json",
            json!([good("a@example.com"), {"email": "b@example.com"}]).to_string(),
            "missing field `id`",
        ),
        (
            "bad-line.jsonl",
            format!(
                "{}\n{{\"id\": \"{}\", \"created_at\": \"last week\"}}\n",
                good("a@example.com"),
                Uuid::new_v4()
            ),
            "line 2",
        ),
        ("empty.json", String::new(), "is empty"),
    ];
    for (file, text, says) in cases {
        std::fs::write(dir.path().join(file), text).unwrap();
        let run = import(dir.path(), &target, &["--from-json", file]).await;
        assert_eq!(run.code, Some(1), "{file}: {}", run.stdout);
        assert!(
            run.stderr.contains(&format!("--from-json {file}: ")) && run.stderr.contains(says),
            "{file}: {}",
            run.stderr
        );
        assert_eq!(run.stdout, "", "{file}: no report");
    }
    assert_eq!(snapshot(db.url()).await, before, "nothing written");

    // The source is read before gatehouse's database is opened: a bad file does not even
    // create a fresh one.
    let fresh = dir.path().join("fresh.db");
    let run = import(
        dir.path(),
        &format!("sqlite://{}", fresh.display()),
        &["--from-json", "truncated.json"],
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(!fresh.exists(), "no database created");
    let run = import(dir.path(), &target, &["--from-json", "missing.json"]).await;
    assert!(
        run.code == Some(1)
            && run
                .stderr
                .contains("--from-json missing.json: No such file"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn supabase_mode_refuses_to_import_password_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = gatehouse_db(Backend::Sqlite).await;
    let before = snapshot(db.url()).await;
    let hash = bcrypt::hash("some-Password-1", 4).unwrap();
    let rows =
        json!([{"id": Uuid::new_v4(), "email": "a@example.com", "encrypted_password": hash}]);
    std::fs::write(dir.path().join("users.json"), rows.to_string()).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .current_dir(dir.path())
        .env("DATABASE_URL", db.url().expose())
        .env("GATEHOUSE_LOG", "warn")
        .env("SUPABASE_URL", "http://127.0.0.1:9")
        .env("SUPABASE_ANON_KEY", "anon")
        .args(["user", "import", "--from-json", "users.json"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Supabase mode"), "{stderr}");
    assert_eq!(snapshot(db.url()).await, before, "nothing written");
}

#[tokio::test]
async fn a_source_database_that_cannot_be_read_is_an_error_that_masks_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.db");
    let target = format!("sqlite://{}", fresh.display());
    let run = import(
        dir.path(),
        &target,
        &[
            "--from-postgres",
            &format!("postgres://postgres:{SOURCE_PASSWORD}@127.0.0.1:1/postgres"),
        ],
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("cannot connect to postgres://postgres:***@127.0.0.1:1/postgres"),
        "{}",
        run.stderr
    );
    // A database that is not a Supabase project's.
    let plain = TestDatabase::create(Backend::Postgres).await;
    let run = import(
        dir.path(),
        &target,
        &["--from-postgres", plain.db_url_with_password().as_str()],
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("no auth.users table"), "{}", run.stderr);
    assert!(!fresh.exists(), "nothing written");
}

trait WithPassword {
    fn db_url_with_password(&self) -> String;
}

impl WithPassword for TestDatabase {
    fn db_url_with_password(&self) -> String {
        let mut url = url::Url::parse(self.url().expose()).unwrap();
        url.set_password(Some(SOURCE_PASSWORD)).unwrap();
        url.to_string()
    }
}

/// A trigger that refuses one user's profile, so that the batch holding that user fails
/// after its users were inserted.
async fn refuse_profile_of(db: &TestDatabase, display_name: &str) {
    let store = Store::connect(db.url(), &ConnectOptions::default())
        .await
        .unwrap();
    let sql = match store.backend() {
        Backend::Sqlite => format!(
            "CREATE TRIGGER refuse_import BEFORE INSERT ON profiles WHEN NEW.display_name = '{display_name}' \
             BEGIN SELECT RAISE(ABORT, 'forced batch failure'); END"
        ),
        Backend::Postgres => format!(
            "CREATE FUNCTION refuse_import() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.display_name = '{display_name}' THEN RAISE EXCEPTION 'forced batch failure'; END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER refuse_import BEFORE INSERT ON profiles FOR EACH ROW EXECUTE FUNCTION refuse_import()"
        ),
    };
    with_pool!(&store, pool => {
        sqlx::raw_sql(&sql).execute(pool).await.unwrap();
    });
    store.close().await;
}

async fn drop_refusal(db: &TestDatabase) {
    let store = Store::connect(db.url(), &ConnectOptions::default())
        .await
        .unwrap();
    let sql = match store.backend() {
        Backend::Sqlite => "DROP TRIGGER refuse_import",
        Backend::Postgres => "DROP TRIGGER refuse_import ON profiles",
    };
    with_pool!(&store, pool => {
        sqlx::raw_sql(sql).execute(pool).await.unwrap();
    });
    store.close().await;
}

async fn a_failing_batch_rolls_back_alone(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = gatehouse_db(backend).await;
    let target = db.url().expose().to_owned();
    let hash = bcrypt::hash_with_result("some-Password-1", 4)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoA);
    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let rows: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({"id": id, "email": format!("user{i}@example.com"), "encrypted_password": hash,
                   "raw_user_meta_data": {"display_name": if i == 2 { "Fail Me".to_owned() } else { format!("User {i}") }},
                   "created_at": "2024-01-01T00:00:00+00:00"})
        })
        .collect();
    std::fs::write(
        dir.path().join("users.json"),
        Value::Array(rows).to_string(),
    )
    .unwrap();
    refuse_profile_of(&db, "Fail Me").await;
    let before = snapshot(db.url()).await;

    // Batches of two: [0, 1] commits, [2, 3] fails on 2's profile, [4] is not tried.
    let run = import(
        dir.path(),
        &target,
        &["--from-json", "users.json", "--batch-size", "2"],
    )
    .await;
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(run.stderr.contains("batch 2 of 3 failed and was rolled back (2 users in the batches before it are imported"), "{}", run.stderr);
    assert!(
        run.stderr.contains("forced batch failure"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stdout.trim(),
        "imported 2 users (0 admins) in 1 batch before batch 2 failed; skipped 0"
    );
    let store = Store::connect(db.url(), &ConnectOptions::default())
        .await
        .unwrap();
    let present = |i: usize| {
        let store = store.clone();
        let id = ids[i];
        async move { store.get_user(id).await.unwrap().is_some() }
    };
    assert!(
        present(0).await && present(1).await,
        "the batch before is committed"
    );
    assert!(
        !present(2).await && !present(3).await,
        "the failing batch is rolled back, its users' rows too"
    );
    assert!(!present(4).await, "the import stopped at the failing batch");
    let audit = snapshot(db.url()).await.audit_rows;
    assert_eq!(
        audit,
        before.audit_rows + 1,
        "one audit row: the committed batch's"
    );

    // The cause gone, the same import continues where it stopped.
    drop_refusal(&db).await;
    let report = import(
        dir.path(),
        &target,
        &["--from-json", "users.json", "--batch-size", "2", "--json"],
    )
    .await
    .report();
    assert_eq!(
        (report["imported"].as_u64(), report["batches"].as_u64()),
        (Some(3), Some(2)),
        "{report}"
    );
    assert_eq!(report["skippedByReason"], json!({"already_imported": 2}));
    for i in 0..5 {
        assert!(present(i).await);
    }
    assert_eq!(snapshot(db.url()).await.audit_rows, before.audit_rows + 3);
    store.close().await;
}

mod a_failing_batch_is_rolled_back_alone_and_named {
    use super::*;

    #[tokio::test]
    async fn sqlite() {
        a_failing_batch_rolls_back_alone(Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn postgres() {
        a_failing_batch_rolls_back_alone(Backend::Postgres).await;
    }
}
