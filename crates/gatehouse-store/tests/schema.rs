//! The first migration's constraints, on both backends: what later features rely on.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_store::testing::TestDatabase;
use gatehouse_store::{
    Backend, ConnectOptions, NewRefreshToken, NewSession, NewUser, Store, StoreError, Timestamp,
};

macro_rules! on_both_backends {
    ($(async fn $name:ident($store:ident: Store) $body:block)*) => {$(
        mod $name {
            use super::*;
            async fn run($store: Store) $body
            #[tokio::test]
            async fn sqlite() { with_store(Backend::Sqlite, run).await }
            #[tokio::test]
            async fn postgres() { with_store(Backend::Postgres, run).await }
        }
    )*};
}

async fn with_store<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let db = TestDatabase::create(backend).await;
    let store = Store::connect(db.url(), &ConnectOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    test(store.clone()).await;
    store.close().await;
}

/// Inserts a user with the columns every test needs, through raw SQL written once.
async fn insert_user(
    store: &Store,
    email: &str,
    username: Option<&str>,
) -> Result<uuid::Uuid, StoreError> {
    const SQL: &str = "INSERT INTO users (id, email, username, created_at, updated_at) \
                       VALUES ($1, $2, $3, $4, $4)";
    let id = uuid::Uuid::new_v4();
    let now = "2026-11-21T00:00:00.000000Z";
    match store {
        Store::Sqlite(pool, _) => {
            sqlx::query(SQL)
                .bind(id)
                .bind(email)
                .bind(username)
                .bind(now)
                .execute(pool)
                .await?;
        }
        Store::Postgres(pool) => {
            let now =
                time::OffsetDateTime::parse(now, &time::format_description::well_known::Rfc3339)
                    .unwrap();
            sqlx::query(SQL)
                .bind(id)
                .bind(email)
                .bind(username)
                .bind(now)
                .execute(pool)
                .await?;
        }
    }
    Ok(id)
}

async fn execute(store: &Store, sql: &str, id: uuid::Uuid) -> Result<u64, StoreError> {
    Ok(match store {
        Store::Sqlite(pool, _) => sqlx::query(sql)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected(),
        Store::Postgres(pool) => sqlx::query(sql)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected(),
    })
}

async fn soft_delete(store: &Store, id: uuid::Uuid) {
    let sql = match store.backend() {
        Backend::Sqlite => {
            "UPDATE users SET deleted_at = '2026-11-21T01:00:00.000000Z' WHERE id = $1"
        }
        Backend::Postgres => "UPDATE users SET deleted_at = now() WHERE id = $1",
    };
    assert_eq!(execute(store, sql, id).await.unwrap(), 1);
}

fn constraint_of(err: StoreError) -> String {
    match err {
        StoreError::Constraint { constraint } => constraint,
        other => panic!("expected a named constraint violation, got {other:?}"),
    }
}

/// A user as an import brings it.
fn new_user(email: &str) -> NewUser {
    NewUser {
        id: uuid::Uuid::now_v7(),
        email: email.to_owned(),
        username: None,
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".to_owned()),
        role: "user".to_owned(),
        app_metadata: serde_json::json!({"provider": "email"}),
        user_metadata: serde_json::json!({}),
        email_confirmed_at: None,
        banned_until: None,
        display_name: Some("imported".to_owned()),
        created_at: time::macros::datetime!(2026-11-21 0:00 UTC).into(),
    }
}

/// SQLite reports foreign-key and check failures by message only; Postgres names them.
fn violation_text(err: &StoreError) -> String {
    match err {
        StoreError::Constraint { constraint } => constraint.clone(),
        other => other.to_string(),
    }
}

on_both_backends! {
    async fn migrations_apply_once_and_rerunning_them_changes_nothing(store: Store) {
        let expected: Vec<i64> = Store::embedded_migrations(store.backend()).into_iter().map(|(v, _)| v).collect();
        assert_eq!(store.applied_migrations().await.unwrap(), expected);
        store.migrate().await.unwrap();
        assert_eq!(store.applied_migrations().await.unwrap(), expected);
    }

    async fn emails_are_unique_regardless_of_case(store: Store) {
        insert_user(&store, "Ada@Example.com", None).await.unwrap();
        let err = insert_user(&store, "ada@example.COM", None).await.unwrap_err();
        assert_eq!(constraint_of(err), "users_email_key");
    }

    async fn usernames_are_unique_regardless_of_case(store: Store) {
        insert_user(&store, "a@example.com", Some("Ada")).await.unwrap();
        let err = insert_user(&store, "b@example.com", Some("aDA")).await.unwrap_err();
        assert_eq!(constraint_of(err), "users_username_key");
    }

    async fn a_soft_deleted_user_frees_its_email_and_username(store: Store) {
        let id = insert_user(&store, "ada@example.com", Some("ada")).await.unwrap();
        soft_delete(&store, id).await;
        insert_user(&store, "ADA@example.com", Some("ADA")).await.unwrap();
    }

    async fn deleting_a_user_removes_its_profile_and_sessions(store: Store) {
        let id = insert_user(&store, "ada@example.com", None).await.unwrap();
        let t = match store.backend() { Backend::Sqlite => "'2026-11-21T00:00:00.000000Z'", Backend::Postgres => "now()" };
        execute(&store, &format!("INSERT INTO profiles (user_id, created_at, updated_at) VALUES ($1, {t}, {t})"), id).await.unwrap();
        execute(&store, &format!("INSERT INTO sessions (id, user_id, created_at, refreshed_at, not_after) VALUES ($1, $1, {t}, {t}, {t})"), id).await.unwrap();
        assert_eq!(execute(&store, "DELETE FROM users WHERE id = $1", id).await.unwrap(), 1);
        assert_eq!(execute(&store, "DELETE FROM profiles WHERE user_id = $1", id).await.unwrap(), 0);
        assert_eq!(execute(&store, "DELETE FROM sessions WHERE user_id = $1", id).await.unwrap(), 0);
    }

    async fn a_profile_for_a_missing_user_is_refused(store: Store) {
        let t = match store.backend() { Backend::Sqlite => "'2026-11-21T00:00:00.000000Z'", Backend::Postgres => "now()" };
        let err = execute(&store, &format!("INSERT INTO profiles (user_id, created_at, updated_at) VALUES ($1, {t}, {t})"), uuid::Uuid::new_v4()).await.unwrap_err();
        let text = violation_text(&err);
        assert!(text == "profiles_user_id_fkey" || text.contains("FOREIGN KEY constraint failed"), "{err:?}");
    }

    async fn an_import_writes_every_user_and_profile_or_none(store: Store) {
        let users: Vec<NewUser> = (0..1_203).map(|i| new_user(&format!("user{i}@example.com"))).collect();
        store.import_users(&users).await.unwrap();
        for user in [&users[0], &users[600], &users[1_202]] {
            let found = store.find_user_by_email(&user.email).await.unwrap().unwrap();
            assert_eq!((found.id, found.display_name.as_deref()), (user.id, Some("imported")));
        }
        // A taken email in the last chunk rolls back the chunks before it.
        let mut again: Vec<NewUser> = (0..600).map(|i| new_user(&format!("other{i}@example.com"))).collect();
        again.push(new_user("USER7@example.com"));
        let err = store.import_users(&again).await.unwrap_err();
        assert_eq!(constraint_of(err), "users_email_key");
        assert!(store.find_user_by_email("other0@example.com").await.unwrap().is_none());
    }

    async fn a_user_is_read_with_their_own_session_only(store: Store) {
        let (ada, bob) = (new_user("ada@example.com"), new_user("bob@example.com"));
        store.import_users(&[ada.clone(), bob.clone()]).await.unwrap();
        let session = |user: &NewUser| {
            let now: Timestamp = time::macros::datetime!(2026-11-21 0:00 UTC).into();
            let id = uuid::Uuid::now_v7();
            (NewSession { id, user_id: user.id, amr: serde_json::json!([{"method": "password"}]), authentication_method: "password".into(), user_agent: Some("ua".into()), ip: None, created_at: now, not_after: now },
             NewRefreshToken { id: uuid::Uuid::now_v7(), session_id: id, token_hash: *id.as_bytes().repeat(2).first_chunk::<32>().unwrap(), parent_id: None, created_at: now })
        };
        let (ada_session, token) = session(&ada);
        let (bob_session, bob_token) = session(&bob);
        let mut tx = store.begin().await.unwrap();
        let written = tx.create_session(&ada_session, &token).await.unwrap();
        tx.create_session(&bob_session, &bob_token).await.unwrap();
        tx.commit().await.unwrap();
        // What create_session returns is what a read finds: no re-read needed.
        assert_eq!(written, store.get_session(ada_session.id).await.unwrap().unwrap());

        let (user, found) = store.get_user_and_session(ada.id, ada_session.id).await.unwrap().unwrap();
        assert_eq!(user.email.as_deref(), Some("ada@example.com"));
        let found = found.unwrap();
        assert_eq!((found.id, found.user_id, found.user_agent.as_deref()), (ada_session.id, ada.id, Some("ua")));
        assert_eq!(found.amr.0, serde_json::json!([{"method": "password"}]));
        assert_eq!(found, store.get_session(ada_session.id).await.unwrap().unwrap());
        // Bob's session is not Ada's; an unknown user is no one.
        let (user, found) = store.get_user_and_session(ada.id, bob_session.id).await.unwrap().unwrap();
        assert_eq!((user.id, found), (ada.id, None));
        assert!(store.get_user_and_session(uuid::Uuid::now_v7(), ada_session.id).await.unwrap().is_none());
        // From a refresh token's side: its session and that session's user.
        let (token, found, user) = store.find_refresh_token_with_session(&bob_token.token_hash).await.unwrap().unwrap();
        assert_eq!((token.id, token.session_id, token.rotated_at), (bob_token.id, bob_session.id, None));
        assert_eq!((found.id, user.id, user.email.as_deref()), (bob_session.id, bob.id, Some("bob@example.com")));
        assert!(store.find_refresh_token_with_session(&[7; 32]).await.unwrap().is_none());
    }

    async fn two_rotations_of_one_refresh_token_claim_it_once(store: Store) {
        let ada = new_user("ada@example.com");
        store.import_users(std::slice::from_ref(&ada)).await.unwrap();
        let t0: Timestamp = time::macros::datetime!(2026-11-21 0:00 UTC).into();
        let t1: Timestamp = time::macros::datetime!(2026-11-21 0:05 UTC).into();
        let session = NewSession { id: uuid::Uuid::now_v7(), user_id: ada.id, amr: serde_json::json!([]), authentication_method: "password".into(), user_agent: None, ip: None, created_at: t0, not_after: t1 };
        let first = NewRefreshToken { id: uuid::Uuid::now_v7(), session_id: session.id, token_hash: [1; 32], parent_id: None, created_at: t0 };
        let mut tx = store.begin().await.unwrap();
        tx.create_session(&session, &first).await.unwrap();
        tx.commit().await.unwrap();
        let successor = |byte: u8| NewRefreshToken { id: uuid::Uuid::now_v7(), session_id: session.id, token_hash: [byte; 32], parent_id: Some(first.id), created_at: t1 };
        let (a, b) = (successor(2), successor(3));
        let (won_a, won_b) = tokio::join!(
            store.rotate_refresh_token(first.id, &a, b"sealed-a", t1),
            store.rotate_refresh_token(first.id, &b, b"sealed-b", t1),
        );
        let (won_a, won_b) = (won_a.unwrap(), won_b.unwrap());
        assert!(won_a ^ won_b, "exactly one rotation claims the token: {won_a} {won_b}");
        let (winner, loser, sealed) = if won_a { (&a, &b, b"sealed-a") } else { (&b, &a, b"sealed-b") };
        let (token, found, _) = store.find_refresh_token_with_session(&winner.token_hash).await.unwrap().unwrap();
        assert_eq!((token.id, token.parent_id), (winner.id, Some(first.id)));
        assert_eq!(found.refreshed_at, t1, "the session notes the refresh");
        assert!(store.find_refresh_token_with_session(&loser.token_hash).await.unwrap().is_none(), "the loser inserted nothing");
        let (old, _, _) = store.find_refresh_token_with_session(&first.token_hash).await.unwrap().unwrap();
        assert_eq!((old.rotated_at, old.successor_sealed.as_deref()), (Some(t1), Some(&sealed[..])));
        // Rotated already: a third attempt claims nothing.
        assert!(!store.rotate_refresh_token(first.id, &successor(4), b"x", t1).await.unwrap());
        // A refresh soon after the last note rotates, and leaves the note as it is.
        let t2: Timestamp = time::macros::datetime!(2026-11-21 0:05:30 UTC).into();
        let next = NewRefreshToken { id: uuid::Uuid::now_v7(), session_id: session.id, token_hash: [5; 32], parent_id: Some(winner.id), created_at: t2 };
        assert!(store.rotate_refresh_token(winner.id, &next, b"y", t1).await.unwrap(), "claimed without a touch");
        let (token, found, _) = store.find_refresh_token_with_session(&next.token_hash).await.unwrap().unwrap();
        assert_eq!((token.id, found.refreshed_at), (next.id, t1), "the note stays at t1");
    }

    async fn roles_other_than_user_and_admin_are_refused(store: Store) {
        let id = insert_user(&store, "ada@example.com", None).await.unwrap();
        let err = execute(&store, "UPDATE users SET role = 'root' WHERE id = $1", id).await.unwrap_err();
        assert!(violation_text(&err).contains("users_role_check"), "{err:?}");
    }
}

#[tokio::test]
async fn an_unreachable_postgres_fails_fast_with_the_masked_url() {
    let url =
        gatehouse_store::DatabaseUrl::parse("postgres://app:hunter2@127.0.0.1:1/auth").unwrap();
    let opts = ConnectOptions {
        connect_timeout: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    let err = Store::connect(&url, &opts).await.unwrap_err().to_string();
    assert!(err.contains("postgres://app:***@127.0.0.1:1/auth"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

/// SQLite has one writer at a time; the store queues its write transactions in-process,
/// so that even with no busy timeout at all, concurrent writers all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sqlite_writers_queue_instead_of_failing_busy() {
    let db = TestDatabase::create(Backend::Sqlite).await;
    let options = ConnectOptions {
        max_connections: 8,
        sqlite_busy_timeout: std::time::Duration::ZERO,
        ..ConnectOptions::default()
    };
    let store = Store::connect(db.url(), &options).await.unwrap();
    store.migrate().await.unwrap();
    let writers: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let users: Vec<NewUser> = (0..20)
                    .map(|j| new_user(&format!("w{i}-{j}@example.com")))
                    .collect();
                store.import_users(&users).await
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    assert!(store
        .find_user_by_email("w39-19@example.com")
        .await
        .unwrap()
        .is_some());
    store.close().await;
}

/// gatehouse's Postgres connections plan for indexes (random_page_cost 1.1), so that a
/// statement first planned while its table was tiny keeps an index scan as the table grows;
/// an operator's own setting in the URL wins.
#[tokio::test]
async fn postgres_connections_plan_for_data_in_memory_unless_the_url_says_otherwise() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let show = |url: gatehouse_store::DatabaseUrl| async move {
        let store = Store::connect(&url, &ConnectOptions::default())
            .await
            .unwrap();
        let Store::Postgres(pool) = &store else {
            unreachable!()
        };
        let value: String = sqlx::query_scalar("SHOW random_page_cost")
            .fetch_one(pool)
            .await
            .unwrap();
        store.close().await;
        value
    };
    assert_eq!(show(db.url().clone()).await, "1.1");
    let separator = if db.url().expose().contains('?') {
        '&'
    } else {
        '?'
    };
    let own = format!(
        "{}{separator}options=-c%20random_page_cost%3D3",
        db.url().expose()
    );
    let own = gatehouse_store::DatabaseUrl::parse(&own).unwrap();
    assert_eq!(show(own).await, "3");
}
