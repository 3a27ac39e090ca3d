//! Test support (feature `testing`): a fresh database per test, a SQLite file in a
//! temporary directory or a PostgreSQL schema of its own when `DEPROV_TEST_DATABASE_URL` is
//! set, so that the same test runs on both backends ([`db_test!`](crate::db_test)).
#![allow(clippy::print_stderr)]

use crate::{DatabaseLocation, Store};

/// A database that exists for one test and is removed afterwards.
#[derive(Debug)]
pub struct TestDb {
    pub location: DatabaseLocation,
    pub url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, schema: String },
}

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL the tests use, or `None` when `DEPROV_TEST_DATABASE_URL` is unset.
pub fn postgres_url() -> Option<String> {
    std::env::var("DEPROV_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

impl TestDb {
    /// A fresh, migrated-on-open database of the given backend. `None` when PostgreSQL was
    /// asked for but `DEPROV_TEST_DATABASE_URL` is unset (the test then says it skipped).
    pub async fn new(backend: Backend) -> anyhow::Result<Option<Self>> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("deprov.db");
                let url = format!("sqlite://{}", path.display());
                Ok(Some(Self {
                    location: DatabaseLocation::parse(&url)?,
                    url,
                    cleanup: Cleanup::Sqlite(dir),
                }))
            }
            Backend::Postgres => {
                let Some(admin_url) = postgres_url() else {
                    eprintln!("skipped: DEPROV_TEST_DATABASE_URL is not set");
                    return Ok(None);
                };
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                let admin = Store::connect(&DatabaseLocation::parse(&admin_url)?).await?;
                exec(&admin, &format!("CREATE SCHEMA {schema}")).await?;
                admin.close().await?;
                let sep = if admin_url.contains('?') { '&' } else { '?' };
                let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}");
                Ok(Some(Self {
                    location: DatabaseLocation::parse(&url)?,
                    url,
                    cleanup: Cleanup::Postgres { admin_url, schema },
                }))
            }
        }
    }

    /// Opens (and migrates) the database.
    pub async fn open(&self) -> anyhow::Result<Store> {
        Ok(Store::open(&self.location).await?)
    }

    /// Drops a PostgreSQL schema; SQLite files go with their temporary directory.
    pub async fn drop_async(self) -> anyhow::Result<()> {
        if let Cleanup::Postgres { admin_url, schema } = &self.cleanup {
            let admin = Store::connect(&DatabaseLocation::parse(admin_url)?).await?;
            exec(&admin, &format!("DROP SCHEMA {schema} CASCADE")).await?;
            admin.close().await?;
        }
        Ok(())
    }
}

async fn exec(store: &Store, sql: &str) -> anyhow::Result<()> {
    use sea_orm::ConnectionTrait;
    let conn = store.writer();
    conn.execute_unprepared(sql).await?;
    Ok(())
}

/// Runs a test body against a fresh database of `backend`, dropping it afterwards.
pub async fn with_db<F, Fut>(backend: Backend, body: F) -> anyhow::Result<()>
where
    F: FnOnce(Store, String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let Some(db) = TestDb::new(backend).await? else {
        return Ok(());
    };
    let store = db.open().await?;
    let result = body(store.clone(), db.url.clone()).await;
    store.close().await?;
    db.drop_async().await?;
    result
}

/// Declares one test per backend: `db_test!(name, |store, url| async move { … })`
/// expands to `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! db_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() -> anyhow::Result<()> {
                $crate::testing::with_db($crate::testing::Backend::Sqlite, $body).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() -> anyhow::Result<()> {
                $crate::testing::with_db($crate::testing::Backend::Postgres, $body).await
            }
        }
    };
}
