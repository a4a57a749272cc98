//! Fresh databases for tests (feature `testing`): a temporary SQLite file, or a uniquely
//! named Postgres database on the server `GATEHOUSE_TEST_POSTGRES_URL` points at
//! (default `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the value is.

use sqlx::{Connection, PgConnection};

use crate::{Backend, DatabaseUrl};

/// The Postgres server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("GATEHOUSE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    url: DatabaseUrl,
    postgres_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// Creates an empty database on `backend`. Panics when that is impossible: a test
    /// without its database has nothing to say.
    #[allow(clippy::expect_used, clippy::panic)]
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("gatehouse.db");
                let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display()))
                    .expect("sqlite url");
                Self {
                    url,
                    postgres_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let name = format!("gatehouse_test_{}", uuid::Uuid::new_v4().simple());
                let admin = postgres_admin_url();
                let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                    panic!("tests need Postgres at {admin} (GATEHOUSE_TEST_POSTGRES_URL): {e}")
                });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let mut url = url::Url::parse(&admin).expect("admin url");
                url.set_path(&name);
                let url = DatabaseUrl::parse(url.as_str()).expect("postgres url");
                Self {
                    url,
                    postgres_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    /// Where the database is.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Drops a Postgres database now, closing any connection to it, as an outage would.
    pub async fn drop_now(&mut self) {
        if let Some(name) = self.postgres_name.take() {
            drop_postgres(&name).await;
        }
    }
}

async fn drop_postgres(name: &str) {
    if let Ok(mut conn) = PgConnection::connect(&postgres_admin_url()).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot block on itself: use a thread
        // with a runtime of its own.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_postgres(&name));
            }
        })
        .join();
    }
}
