//! Opening the database: the URL decides the backend.
//!
//! SQLite is opened for durability first: WAL journal, foreign keys on, a busy timeout, and
//! every commit made durable before it is answered ([`Store::commit`]: an fsync of the WAL
//! shared by concurrent committers, so that an answered write survives power loss, not only
//! a crash). All writes go through one connection
//! ([`Store::writer`]), so SQLite never has two write transactions racing for the lock;
//! reads use a pool of their own and run beside the writer thanks to WAL.
//! PostgreSQL uses one pool for both: its MVCC and row locks handle concurrent writers.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use sea_orm::sqlx::Connection as _;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sea_orm::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, SqlxPostgresConnector, SqlxSqliteConnector, Statement,
};
use sea_orm_migration::MigratorTrait;

use crate::StoreError;
use crate::auth_cache::AuthCache;
use crate::migration::Migrator;
use crate::wal_sync::WalSync;
use crate::write_batch::{WriteBatcher, WriteTxn};
use sea_orm::TransactionTrait as _;

/// Where the data lives, parsed from a database URL.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// `sqlite://PATH` or `sqlite:PATH` (relative paths are relative to the working directory).
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`, kept whole for the driver.
    Postgres(String),
}

impl std::fmt::Debug for DatabaseLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.redacted())
    }
}

impl DatabaseLocation {
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let invalid = |reason: &str| StoreError::InvalidUrl {
            url: redact_url(url),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = url
            .split_once(':')
            .ok_or_else(|| invalid("expected sqlite://PATH or postgres://USER@HOST/DB"))?;
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                let path = path.split('?').next().unwrap_or_default();
                if path.is_empty() {
                    return Err(invalid("no file path after sqlite://"));
                }
                if path == ":memory:" {
                    return Err(invalid(
                        "an in-memory database would lose every event at exit; give a file path",
                    ));
                }
                Ok(Self::Sqlite(PathBuf::from(path)))
            }
            "postgres" | "postgresql" => {
                let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
                if parsed.host_str().is_none_or(str::is_empty) {
                    return Err(invalid("no host"));
                }
                PgConnectOptions::from_str(url).map_err(|e| invalid(&e.to_string()))?;
                Ok(Self::Postgres(url.to_owned()))
            }
            other => Err(StoreError::UnsupportedScheme(other.to_owned())),
        }
    }

    /// The location with any password removed, fit for logs and error messages.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => redact_url(url),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }
}

fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "[unparseable URL]".to_owned(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Handles to the database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    reader: DatabaseConnection,
    writer: DatabaseConnection,
    location: String,
    outbox_wake: Arc<Notify>,
    /// SQLite only: makes commits durable, sharing fsyncs between concurrent writers.
    wal_sync: Option<Arc<WalSync>>,
    pub(crate) auth_cache: Arc<AuthCache>,
    /// SQLite only: concurrent writes share a transaction (see write_batch.rs).
    write_batch: Option<Arc<WriteBatcher>>,
}

/// How long a connection waits for another's lock before giving up (SQLite `busy_timeout`,
/// PostgreSQL pool acquire).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl Store {
    /// Opens (creating a SQLite file if needed) without migrating.
    pub async fn connect(location: &DatabaseLocation) -> Result<Self, StoreError> {
        let redacted = location.redacted();
        let connect_err = |source| StoreError::Connect {
            location: redacted.clone(),
            source,
        };
        match location {
            DatabaseLocation::Sqlite(path) => {
                let options = sqlite_options(path);
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(BUSY_TIMEOUT * 3)
                    .connect_with(options.clone())
                    .await
                    .map_err(&connect_err)?;
                let reader = SqlitePoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(BUSY_TIMEOUT)
                    .connect_with(options.read_only(true))
                    .await
                    .map_err(&connect_err)?;
                Ok(Self {
                    backend: Backend::Sqlite,
                    reader: SqlxSqliteConnector::from_sqlx_sqlite_pool(reader),
                    writer: SqlxSqliteConnector::from_sqlx_sqlite_pool(writer),
                    location: redacted,
                    outbox_wake: Arc::default(),
                    wal_sync: Some(Arc::new(WalSync::for_database(path))),
                    auth_cache: Arc::default(),
                    write_batch: Some(Arc::new(WriteBatcher::new())),
                })
            }
            DatabaseLocation::Postgres(url) => {
                let options =
                    PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl {
                        url: redacted.clone(),
                        reason: e.to_string(),
                    })?;
                // One direct connection first: a pool would report only "timed out", hiding
                // the cause an operator needs (refused, unknown host, authentication failed).
                PgConnection::connect_with(&options)
                    .await
                    .map_err(&connect_err)?
                    .close()
                    .await
                    .map_err(&connect_err)?;
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(BUSY_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(&connect_err)?;
                let conn = SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
                Ok(Self {
                    backend: Backend::Postgres,
                    reader: conn.clone(),
                    writer: conn,
                    location: redacted,
                    outbox_wake: Arc::default(),
                    wal_sync: None,
                    auth_cache: Arc::default(),
                    write_batch: None,
                })
            }
        }
    }

    /// Opens and brings the schema up to date.
    pub async fn open(location: &DatabaseLocation) -> Result<Self, StoreError> {
        let store = Self::connect(location).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Applies every pending migration, each in its own transaction where the backend
    /// allows transactional DDL.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Migrator::up(&self.writer, None)
            .await
            .map_err(StoreError::Migrate)
    }

    /// Names of the migrations still to apply.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        Ok(Migrator::get_pending_migrations(&self.writer)
            .await
            .map_err(StoreError::Migrate)?
            .iter()
            .map(|m| m.name().to_owned())
            .collect())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection for reads. On SQLite it is read-only: a write through it fails.
    pub fn reader(&self) -> &DatabaseConnection {
        &self.reader
    }

    /// The connection for writes and read-modify-write transactions.
    pub fn writer(&self) -> &DatabaseConnection {
        &self.writer
    }

    /// Notified after a commit that enqueued deliveries, so that this process's worker
    /// wakes at once. A notification is kept until someone waits, so none is lost.
    pub fn outbox_wake(&self) -> Arc<Notify> {
        self.outbox_wake.clone()
    }

    /// Starts a write transaction. On SQLite it joins the batch of concurrent writes (see
    /// write_batch.rs): hold it briefly, and never start another write while holding one.
    pub async fn begin_write(&self) -> Result<WriteTxn, StoreError> {
        Ok(match &self.write_batch {
            Some(batcher) => batcher.begin(&self.writer).await?,
            None => WriteTxn::plain(self.writer.begin().await?),
        })
    }

    /// Commits `txn` durably: on SQLite, returns only once its batch is committed and an
    /// fsync of the WAL that started after that commit has completed (shared with
    /// concurrent committers); on PostgreSQL, its commit already is (and groups commits
    /// itself).
    pub async fn commit(&self, txn: WriteTxn) -> Result<(), StoreError> {
        txn.commit().await?;
        self.durable().await
    }

    /// Waits until every write committed so far is on disk (SQLite); immediate on
    /// PostgreSQL. For writes committed outside [`Store::commit`].
    pub async fn durable(&self) -> Result<(), StoreError> {
        if let Some(sync) = &self.wal_sync {
            sync.barrier().await.map_err(|e| {
                StoreError::Db(sea_orm::DbErr::Custom(format!(
                    "cannot make the commit durable (fsync of the SQLite WAL failed): {e}"
                )))
            })?;
        }
        Ok(())
    }

    /// How many batches of writes have been committed (SQLite; 0 on PostgreSQL), for
    /// tests and metrics.
    pub async fn write_batches(&self) -> u64 {
        match &self.write_batch {
            Some(b) => b.commits().await,
            None => 0,
        }
    }

    /// How many fsyncs group commit has performed (SQLite), for tests and metrics.
    pub fn wal_syncs(&self) -> u64 {
        self.wal_sync.as_ref().map_or(0, |s| s.syncs())
    }

    /// Wakes the worker when a committed transaction enqueued deliveries.
    pub(crate) fn wake_outbox_if(&self, deliveries: usize) {
        if deliveries > 0 {
            self.outbox_wake.notify_one();
        }
    }

    /// The redacted location, for logs.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let backend = self.reader.get_database_backend();
        self.reader
            .execute_raw(Statement::from_string(backend, "SELECT 1"))
            .await?;
        Ok(())
    }

    /// Closes both pools, waiting for connections in use to be returned.
    pub async fn close(self) -> Result<(), StoreError> {
        self.reader.close().await?;
        if self.backend == Backend::Sqlite {
            self.writer.close().await?;
        }
        Ok(())
    }
}

fn sqlite_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // NORMAL + WalSync::barrier after each commit: as durable as FULL, with group
        // commit (see wal_sync.rs).
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_supported_schemes() {
        assert_eq!(
            DatabaseLocation::parse("sqlite://deprov.db").ok(),
            Some(DatabaseLocation::Sqlite(PathBuf::from("deprov.db")))
        );
        assert_eq!(
            DatabaseLocation::parse("sqlite:///var/lib/deprov/d.db").ok(),
            Some(DatabaseLocation::Sqlite(PathBuf::from(
                "/var/lib/deprov/d.db"
            )))
        );
        assert!(matches!(
            DatabaseLocation::parse("postgres://u:p@localhost/db"),
            Ok(DatabaseLocation::Postgres(_))
        ));
    }

    #[test]
    fn refuses_unknown_schemes_and_garbage() {
        assert!(matches!(
            DatabaseLocation::parse("mysql://localhost/db"),
            Err(StoreError::UnsupportedScheme(s)) if s == "mysql"
        ));
        assert!(matches!(
            DatabaseLocation::parse("not a url"),
            Err(StoreError::InvalidUrl { .. })
        ));
        assert!(matches!(
            DatabaseLocation::parse("sqlite://"),
            Err(StoreError::InvalidUrl { .. })
        ));
        assert!(matches!(
            DatabaseLocation::parse("postgres://"),
            Err(StoreError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn passwords_never_appear_in_the_redacted_form() {
        let loc = DatabaseLocation::parse("postgres://app:s3cret@db.internal:5432/deprov");
        let shown = loc.map(|l| format!("{l:?}")).unwrap_or_default();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("db.internal"), "{shown}");
    }
}
