//! Opening the database: the URL decides the backend.
//!
//! SQLite is opened for durability first: WAL journal, foreign keys on, a busy timeout, and
//! every commit made durable before it is answered ([`Store::commit`]: an fsync of the WAL
//! shared by concurrent committers, so that an answered write survives power loss, not only
//! a crash). All writes go through one connection, in batches ([`Store::begin_write`],
//! write_batch.rs), so SQLite never has two write transactions racing for the lock; reads
//! use read-only connections of their own and run beside the writer thanks to WAL. Both
//! call SQLite in place through rusqlite (sqlite.rs), behind sea-orm.
//! PostgreSQL's MVCC and row locks handle concurrent writers: SCIM writes and reads run on
//! connections of deprov's own (postgres.rs), everything else on one sqlx pool.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use sea_orm::sqlx::Connection as _;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    ExecResult, FromQueryResult, ProxyDatabaseTrait, ProxyExecResult, ProxyRow, QueryResult,
    SqlxPostgresConnector, Statement,
};
use sea_orm_migration::MigratorTrait;

use crate::StoreError;
use crate::auth_cache::AuthCache;
use crate::checkpoint::Checkpointer;
use crate::decode::{Decode, Row as _};
use crate::migration::Migrator;
use crate::scim::read_batch::UserReads;
use crate::scim::user_batch::UserBatches;
use crate::wal_sync::WalSync;
use crate::write_batch::{WriteBatcher, WriteTxn};
use crate::{postgres, sqlite};
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

/// Counts of [`Store::sqlite_writes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteWrites {
    /// Write transactions begun (each a savepoint in a batch).
    pub writes: u64,
    /// Batches committed: SQLite transactions, each holding one or more writes.
    pub batches: u64,
    /// fsyncs of the WAL, each making one or more batches durable.
    pub fsyncs: u64,
    /// WAL checkpoints run by the checkpoint thread (checkpoint.rs).
    pub checkpoints: u64,
    /// The WAL's size in pages at the last checkpoint. A WAL that grows towards 20,000
    /// pages means the thread falls behind, and the writer then checkpoints inside a commit.
    pub wal_pages: u64,
    /// The pages the last checkpoint could not copy because a reader still needed them.
    pub wal_pages_left: u64,
}

/// Handles to the database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    reader: Reader,
    writer: DatabaseConnection,
    location: String,
    outbox_wake: Arc<Notify>,
    /// PostgreSQL: asks [`notify_replicas`] for a `NOTIFY` after a commit that enqueued
    /// work. Holds at most one request: requests made while one waits are the same wake-up.
    replicas_wake: Option<tokio::sync::mpsc::Sender<()>>,
    pub(crate) auth_cache: Arc<AuthCache>,
    /// Where [`Store::begin_write`]'s transactions run.
    writes: Writes,
    /// PostgreSQL: where the delivery worker claims (`Store::claim_due`).
    claims: Option<Arc<postgres::ConnPool>>,
    /// PostgreSQL: where writes of users go, written in batches (scim/user_batch.rs).
    user_batches: Option<Arc<UserBatches>>,
    /// PostgreSQL: where reads of one user go, read in batches (scim/read_batch.rs).
    user_reads: Option<Arc<UserReads>>,
}

#[derive(Debug, Clone)]
enum Writes {
    /// Concurrent writes share a transaction (see write_batch.rs).
    Sqlite(Arc<WriteBatcher>),
    /// Each write is a transaction on a connection of deprov's own (postgres.rs).
    Postgres(Arc<postgres::ConnPool>),
}

/// Read-only connections a SQLite store reads through, one per statement or snapshot.
/// More than the cores: a statement holds one only while it runs, but a snapshot holds
/// one across awaits.
const SQLITE_READERS: usize = 8;

/// PostgreSQL connections for reads outside transactions (opened as needed). Each read is a
/// round trip: 16 kept 2 cores busy under 32 concurrent GETs where 8 left 15 % idle (GET
/// 11,050 and 11,233 → 13,112 and 12,329 req/s).
const POSTGRES_READERS: usize = 16;
/// PostgreSQL connections for write transactions: more than the readers, since a
/// transaction holds its connection across round trips and commit waits for the disk.
const POSTGRES_WRITERS: usize = 16;
/// PostgreSQL connections for claims: a worker claims one batch at a time.
const POSTGRES_CLAIMERS: usize = 2;

/// How long a connection waits for another's lock before giving up (SQLite `busy_timeout`,
/// PostgreSQL pool acquire).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// A pooled PostgreSQL connection idle this long is pinged before use (a restarted server
/// or a dropped connection is found then, not by the statement it was taken for).
pub(crate) const PING_WHEN_IDLE_FOR: Duration = Duration::from_millis(500);

impl Store {
    /// Opens (creating a SQLite file if needed) without migrating.
    pub async fn connect(location: &DatabaseLocation) -> Result<Self, StoreError> {
        let redacted = location.redacted();
        let connect_err = |source: sea_orm::sqlx::Error| StoreError::Connect {
            location: redacted.clone(),
            source: Box::new(source),
        };
        let sqlite_err = |source: DbErr| StoreError::Connect {
            location: redacted.clone(),
            source: Box::new(source),
        };
        match location {
            DatabaseLocation::Sqlite(path) => {
                // The file and its WAL mode are created first (the writer), then the readers.
                let writer = sqlite::open(path, false, BUSY_TIMEOUT).map_err(&sqlite_err)?;
                let readers = sqlite::ReaderPool::open(path, SQLITE_READERS, BUSY_TIMEOUT)
                    .map_err(&sqlite_err)?;
                let readers = Arc::new(readers);
                let reader = Reader(ReaderKind::Sqlite(readers.clone()));
                let checkpointer =
                    Checkpointer::start(path, BUSY_TIMEOUT, Some(readers)).map_err(&sqlite_err)?;
                let batcher = Arc::new(WriteBatcher::new(
                    sqlite::Conn::new(writer),
                    checkpointer,
                    Arc::new(WalSync::for_database(path)),
                ));
                let writer = Database::connect_proxy(
                    DbBackend::Sqlite,
                    Arc::new(Box::new(WriterProxy {
                        batcher: batcher.clone(),
                    })),
                )
                .await
                .map_err(&sqlite_err)?;
                Ok(Self {
                    backend: Backend::Sqlite,
                    reader,
                    writer,
                    location: redacted,
                    outbox_wake: Arc::default(),
                    replicas_wake: None,
                    auth_cache: Arc::default(),
                    writes: Writes::Sqlite(batcher),
                    claims: None,
                    user_batches: None,
                    user_reads: None,
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
                let read_only = options.clone();
                let writers = Arc::new(postgres::ConnPool::new(
                    options.clone(),
                    POSTGRES_WRITERS,
                    BUSY_TIMEOUT,
                    PING_WHEN_IDLE_FOR,
                ));
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(BUSY_TIMEOUT)
                    // sqlx pings every connection it hands out: a round trip per statement
                    // outside a transaction (a GET is one statement). Ping only connections
                    // idle for a while, the way HikariCP's `aliveBypassWindowMs` does; one
                    // used a moment ago is as good as its last answer.
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for >= PING_WHEN_IDLE_FOR {
                                conn.ping().await?;
                            }
                            Ok(true)
                        })
                    })
                    .connect_with(options)
                    .await
                    .map_err(&connect_err)?;
                let conn = SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
                let claims = postgres::ConnPool::new(
                    read_only
                        .clone()
                        .options(crate::outbox::postgres::CLAIM_SETTINGS),
                    POSTGRES_CLAIMERS,
                    BUSY_TIMEOUT,
                    PING_WHEN_IDLE_FOR,
                );
                let readers = postgres::ConnPool::new(
                    read_only.options([("default_transaction_read_only", "on")]),
                    POSTGRES_READERS,
                    BUSY_TIMEOUT,
                    PING_WHEN_IDLE_FOR,
                );
                // Ends when the last clone of this store is dropped (the channel closes).
                let (replicas_wake, requests) = tokio::sync::mpsc::channel(1);
                tokio::spawn(notify_replicas(conn.clone(), requests));
                let readers = Arc::new(readers);
                Ok(Self {
                    backend: Backend::Postgres,
                    user_reads: Some(Arc::new(UserReads::new(readers.clone()))),
                    reader: Reader(ReaderKind::Postgres(readers)),
                    writer: conn,
                    location: redacted,
                    outbox_wake: Arc::default(),
                    replicas_wake: Some(replicas_wake),
                    auth_cache: Arc::default(),
                    user_batches: Some(Arc::new(UserBatches::new(&writers))),
                    writes: Writes::Postgres(writers),
                    claims: Some(Arc::new(claims)),
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
        // On SQLite each statement commits alone: sea-orm-migration runs SQLite migrations
        // outside transactions.
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
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// The connection for single writes; a transaction is [`Store::begin_write`]. On SQLite
    /// each statement is a write of its own in the current batch, durable before it
    /// answers, and `begin()` on it is no transaction.
    pub fn writer(&self) -> &DatabaseConnection {
        &self.writer
    }

    /// A read transaction: every statement sees one snapshot. Finish it with
    /// [`ReadTxn::finish`].
    pub async fn begin_read(&self) -> Result<ReadTxn, StoreError> {
        Ok(match &self.reader.0 {
            ReaderKind::Sqlite(readers) => {
                ReadTxn::Sqlite(sqlite::ReadSnapshot::begin(readers.acquire().await?)?)
            }
            ReaderKind::Postgres(_) => ReadTxn::Postgres(
                self.writer
                    .begin_with_config(
                        Some(sea_orm::IsolationLevel::RepeatableRead),
                        Some(sea_orm::AccessMode::ReadOnly),
                    )
                    .await?,
            ),
        })
    }

    /// Notified after a commit that enqueued deliveries, so that this process's worker
    /// wakes at once. A notification is kept until someone waits, so none is lost.
    pub fn outbox_wake(&self) -> Arc<Notify> {
        self.outbox_wake.clone()
    }

    /// Starts a write of exactly one statement (a second one fails). On PostgreSQL it runs
    /// without `BEGIN` and `COMMIT` (the statement is its own transaction: two round trips
    /// fewer); on SQLite it is [`Store::begin_write`]. Finish it with [`Store::commit`].
    pub async fn begin_single_write(&self) -> Result<WriteTxn, StoreError> {
        Ok(match &self.writes {
            Writes::Sqlite(batcher) => batcher.begin().await?,
            Writes::Postgres(writers) => WriteTxn::plain(writers.begin_single().await?),
        })
    }

    /// Starts a write transaction. On SQLite it joins the batch of concurrent writes (see
    /// write_batch.rs): hold it briefly, and never start another write while holding one.
    pub async fn begin_write(&self) -> Result<WriteTxn, StoreError> {
        self.begin_write_with("BEGIN").await
    }

    /// [`Store::begin_write`], begun on PostgreSQL with `postgres_begin`: `BEGIN` and the
    /// `SET LOCAL`s of the transaction, in one round trip.
    pub(crate) async fn begin_write_with(
        &self,
        postgres_begin: &'static str,
    ) -> Result<WriteTxn, StoreError> {
        Ok(match &self.writes {
            Writes::Sqlite(batcher) => batcher.begin().await?,
            Writes::Postgres(writers) => WriteTxn::plain(writers.begin(postgres_begin).await?),
        })
    }

    /// PostgreSQL: the batches writes of users go in; `None` on SQLite, whose writes are
    /// batched by [`Store::begin_write`] already.
    pub(crate) fn user_batches(&self) -> Option<&UserBatches> {
        self.user_batches.as_deref()
    }

    /// PostgreSQL: the batches reads of one user go in; `None` on SQLite, whose reads are
    /// calls in place.
    pub(crate) fn user_reads(&self) -> Option<&Arc<UserReads>> {
        self.user_reads.as_ref()
    }

    /// PostgreSQL: the connections the delivery worker claims on, with the settings of
    /// `outbox::postgres::CLAIM_SETTINGS`; `None` on SQLite.
    pub(crate) fn postgres_claims(&self) -> Option<&postgres::ConnPool> {
        self.claims.as_deref()
    }

    /// Commits `txn` durably: on SQLite, returns only once its batch is committed and an
    /// fsync of the WAL that started after that commit has completed (shared with the
    /// batch, and with batches committed while the previous fsync ran; write_batch.rs); on
    /// PostgreSQL, its commit already is (and groups commits itself).
    pub async fn commit(&self, txn: WriteTxn) -> Result<(), StoreError> {
        txn.commit().await
    }

    /// How many batches of writes have been committed (SQLite; 0 on PostgreSQL), for
    /// tests and metrics.
    pub fn write_batches(&self) -> u64 {
        self.sqlite_writes().map_or(0, |w| w.batches)
    }

    /// How many fsyncs group commit has performed (SQLite), for tests and metrics.
    pub fn wal_syncs(&self) -> u64 {
        self.sqlite_writes().map_or(0, |w| w.fsyncs)
    }

    /// How well SQLite's writes share transactions and fsyncs, counted since this store
    /// was opened; `None` on PostgreSQL.
    pub fn sqlite_writes(&self) -> Option<SqliteWrites> {
        match &self.writes {
            Writes::Sqlite(b) => {
                let (checkpoints, last) = b.checkpoints();
                let (_, pages, copied) = last.unwrap_or_default();
                let count = |n: i64| u64::try_from(n).unwrap_or(0);
                Some(SqliteWrites {
                    writes: b.writes(),
                    batches: b.commits(),
                    fsyncs: b.fsyncs(),
                    checkpoints,
                    wal_pages: count(pages),
                    wal_pages_left: count(pages - copied),
                })
            }
            Writes::Postgres(_) => None,
        }
    }

    /// Wakes the workers after a committed transaction enqueued deliveries: this process's
    /// at once, and on PostgreSQL every replica's, by a `NOTIFY` sent after the commit.
    ///
    /// Not `pg_notify` inside the enqueuing transaction: PostgreSQL serialises the commits of
    /// notifying transactions on one lock, held through the commit's WAL flush, so every
    /// de-provisioning waited for its own fsync in turn (seen as `Lock:object` waits in
    /// `pg_stat_activity` under concurrent PATCHes), where commits without it share fsyncs.
    pub(crate) fn wake_outbox_if(&self, deliveries: usize) {
        if deliveries > 0 {
            self.outbox_wake.notify_one();
            if let Some(replicas) = &self.replicas_wake {
                // Full: a NOTIFY is already due, and it wakes for this work too.
                let _ = replicas.try_send(());
            }
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

    /// Closes the connections, waiting for those in use to be returned (PostgreSQL; the
    /// SQLite connections close when the last handle is dropped).
    pub async fn close(self) -> Result<(), StoreError> {
        if let ReaderKind::Postgres(readers) = &self.reader.0 {
            readers.close().await;
        }
        if let Writes::Postgres(writers) = &self.writes {
            writers.close().await;
        }
        if let Some(claims) = &self.claims {
            claims.close().await;
        }
        if self.backend == Backend::Postgres {
            self.writer.close().await?;
        }
        Ok(())
    }
}

/// Sends `NOTIFY deprov_outbox` for each request until every sender is gone: one statement,
/// its own transaction, committed without waiting for the WAL flush (`set_config(…, true)`
/// holds for that transaction only). It writes nothing but a wake-up, which a crash may lose:
/// the workers also poll.
async fn notify_replicas(conn: DatabaseConnection, mut requests: tokio::sync::mpsc::Receiver<()>) {
    while requests.recv().await.is_some() {
        let sent = conn
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, '')",
                [crate::outbox::NOTIFY_CHANNEL.into()],
            ))
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "cannot notify other replicas of new deliveries; they find them at their next poll");
        }
    }
}

/// [`Store::reader`]: on SQLite a statement takes a free read-only connection and runs on
/// the calling thread; on PostgreSQL it takes a read-only connection of its own pool
/// (postgres.rs says why not sqlx's).
///
/// Not a sea-orm `DatabaseConnection` for SQLite: that type's futures hold every driver's
/// state inline (some 15 KiB, copied twice per statement when boxed), which cost a point
/// read more instructions than SQLite's own work on it.
#[derive(Debug, Clone)]
pub struct Reader(ReaderKind);

#[derive(Debug, Clone)]
enum ReaderKind {
    Sqlite(Arc<sqlite::ReaderPool>),
    Postgres(Arc<postgres::ConnPool>),
}

#[async_trait::async_trait]
impl ConnectionTrait for Reader {
    fn get_database_backend(&self) -> DbBackend {
        match &self.0 {
            ReaderKind::Sqlite(_) => DbBackend::Sqlite,
            ReaderKind::Postgres(_) => DbBackend::Postgres,
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match &self.0 {
            ReaderKind::Sqlite(pool) => pool.acquire().await?.execute(&stmt),
            ReaderKind::Postgres(pool) => pool.execute(&stmt).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match &self.0 {
            ReaderKind::Sqlite(pool) => {
                pool.acquire().await?.batch(sql)?;
                Ok(ProxyExecResult::new(0, 0).into())
            }
            ReaderKind::Postgres(pool) => pool.execute_unprepared(sql).await,
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match &self.0 {
            ReaderKind::Sqlite(pool) => Ok(pool.acquire().await?.query(&stmt)?.into_iter().next()),
            ReaderKind::Postgres(pool) => pool.query_one(&stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match &self.0 {
            ReaderKind::Sqlite(pool) => pool.acquire().await?.query(&stmt),
            ReaderKind::Postgres(pool) => pool.query_all(&stmt).await,
        }
    }
}

impl Reader {
    /// The rows of `M` a query returns, decoded by position; its SELECT lists
    /// [`Decode::COLUMNS`] first.
    pub(crate) async fn rows<M: Decode>(&self, stmt: Statement) -> Result<Vec<M>, DbErr> {
        match &self.0 {
            ReaderKind::Sqlite(pool) => pool.acquire().await?.rows(&stmt, |row| M::decode(row)),
            ReaderKind::Postgres(pool) => pool.rows(&stmt, |row| M::decode(row)).await,
        }
    }

    /// As [`Reader::rows`], each with the integer column that follows `M`'s columns (a
    /// window's count).
    pub(crate) async fn rows_with<M: Decode>(
        &self,
        stmt: Statement,
    ) -> Result<Vec<(M, i64)>, DbErr> {
        let extra = M::COLUMNS.len();
        match &self.0 {
            ReaderKind::Sqlite(pool) => pool
                .acquire()
                .await?
                .rows(&stmt, |row| Ok((M::decode(row)?, row.int(extra)?))),
            ReaderKind::Postgres(pool) => {
                pool.rows(&stmt, |row| Ok((M::decode(row)?, row.int(extra)?)))
                    .await
            }
        }
    }
}

/// A read transaction from [`Store::begin_read`].
#[derive(Debug)]
pub enum ReadTxn {
    Sqlite(sqlite::ReadSnapshot),
    Postgres(DatabaseTransaction),
}

impl ReadTxn {
    /// As [`Reader::rows`], in this transaction.
    pub(crate) async fn rows<M: Decode + FromQueryResult>(
        &self,
        stmt: Statement,
    ) -> Result<Vec<M>, DbErr> {
        match self {
            Self::Sqlite(snapshot) => snapshot.rows(&stmt, |row| M::decode(row)),
            Self::Postgres(txn) => M::find_by_statement(stmt).all(txn).await,
        }
    }

    pub async fn finish(self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(snapshot) => snapshot.finish()?,
            Self::Postgres(txn) => txn.commit().await?,
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for ReadTxn {
    fn get_database_backend(&self) -> DbBackend {
        match self {
            Self::Sqlite(s) => s.get_database_backend(),
            Self::Postgres(t) => t.get_database_backend(),
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match self {
            Self::Sqlite(s) => s.execute_raw(stmt).await,
            Self::Postgres(t) => t.execute_raw(stmt).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self {
            Self::Sqlite(s) => s.execute_unprepared(sql).await,
            Self::Postgres(t) => t.execute_unprepared(sql).await,
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self {
            Self::Sqlite(s) => s.query_one_raw(stmt).await,
            Self::Postgres(t) => t.query_one_raw(stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self {
            Self::Sqlite(s) => s.query_all_raw(stmt).await,
            Self::Postgres(t) => t.query_all_raw(stmt).await,
        }
    }
}

/// [`Store::writer`] on SQLite: each statement is a write of its own, committed with the
/// current batch and on disk before it answers.
#[derive(Debug)]
struct WriterProxy {
    batcher: Arc<WriteBatcher>,
}

impl WriterProxy {
    async fn finish(&self, txn: WriteTxn) -> Result<(), DbErr> {
        txn.commit().await.map_err(|e| DbErr::Custom(e.to_string()))
    }
}

#[async_trait::async_trait]
impl ProxyDatabaseTrait for WriterProxy {
    async fn query(&self, statement: Statement) -> Result<Vec<ProxyRow>, DbErr> {
        let txn = self.batcher.begin().await?;
        let rows = txn.query_all_raw(statement).await?;
        self.finish(txn).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| r.try_as_proxy_row().cloned())
            .collect())
    }

    async fn execute(&self, statement: Statement) -> Result<ProxyExecResult, DbErr> {
        let txn = self.batcher.begin().await?;
        let result = txn.execute_raw(statement).await?;
        self.finish(txn).await?;
        Ok(ProxyExecResult::new(
            result.last_insert_id(),
            result.rows_affected(),
        ))
    }

    async fn begin(&self) {
        tracing::error!(
            "a transaction on Store::writer is none on SQLite (each statement commits alone); \
             use Store::begin_write"
        );
    }
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

    // Reads cannot write, on either backend: a bug that wrote through the reader would
    // otherwise bypass the write batch (SQLite) and its durability.
    crate::db_test!(
        a_write_through_the_reader_fails,
        |store: Store, _| async move {
            let wrote = store
                .reader()
                .execute_unprepared("CREATE TABLE written_by_a_reader (x integer)")
                .await;
            assert!(wrote.is_err(), "{wrote:?}");
            Ok(())
        }
    );

    // Users and groups are read by position (`Decode`); what they decode to must be what
    // sea-orm's entity reads by name, for every column and for NULLs.
    crate::db_test!(
        rows_read_by_position_match_rows_read_by_name,
        |store: Store, _| async move {
            use crate::entity::{group, user};
            use crate::scim::{Document, GroupWrite, RequestContext, UserRecord, UserWrite};
            let tenant = store
                .create_tenant(&deprov_core::tenant::TenantName::parse("t")?, "test")
                .await?
                .tenant;
            let ctx = RequestContext {
                tenant_id: tenant.id.clone(),
                request_id: "r".to_owned(),
                method: "POST".to_owned(),
                path: "/Users".to_owned(),
                actor: "test".to_owned(),
            };
            for (name, external, display, active) in [
                ("Ann@Example.com", Some("e-1"), Some("Ann É"), true),
                ("bob", None, None, false),
            ] {
                let write = UserWrite {
                    user_name: name.to_owned(),
                    external_id: external.map(str::to_owned),
                    display_name: display.map(str::to_owned),
                    active,
                    resource: serde_json::json!({"userName": name, "name": {"givenName": "G"}}),
                };
                let (created, _) = store.create_user(&ctx, write.clone()).await?;
                // A second version, at a later time: every column differs from its neighbour.
                tokio::time::sleep(Duration::from_millis(5)).await;
                store.replace_user(&ctx, &created.id, None, write).await?;
            }
            let group = GroupWrite {
                display_name: "Admins".to_owned(),
                external_id: None,
                resource: serde_json::json!({"displayName": "Admins"}),
            };
            store.create_group(&ctx, group, Vec::new()).await?;

            let select = |table: &str, list: String| {
                Statement::from_string(
                    store.reader().get_database_backend(),
                    format!("SELECT {list} FROM {table} x ORDER BY x.id"),
                )
            };
            // Users decode straight into their record, the document kept as text: compared
            // parsed, since PostgreSQL gives jsonb's text where the entity's JSON is re-written.
            let by_position = store
                .reader()
                .rows::<UserRecord>(select("users", UserRecord::select("x")))
                .await?;
            let by_name: Vec<UserRecord> =
                user::Model::find_by_statement(select("users", "*".to_owned()))
                    .all(store.reader())
                    .await?
                    .into_iter()
                    .map(UserRecord::from)
                    .collect();
            let counted = store
                .reader()
                .rows_with::<UserRecord>(select(
                    "users",
                    format!("{}, COUNT(*) OVER () AS n", UserRecord::select("x")),
                ))
                .await?;
            let txn = store.begin_read().await?;
            let in_txn = txn
                .rows::<UserRecord>(select("users", UserRecord::select("x")))
                .await?;
            txn.finish().await?;
            let same = |read: &[UserRecord]| -> anyhow::Result<()> {
                assert_eq!(read.len(), by_name.len());
                let without_document = |r: &UserRecord| UserRecord {
                    resource: Document::from_value(&serde_json::Value::Null),
                    ..r.clone()
                };
                for (a, b) in read.iter().zip(&by_name) {
                    assert_eq!(a.resource.to_value()?, b.resource.to_value()?);
                    assert_eq!(without_document(a), without_document(b));
                }
                Ok(())
            };
            assert_eq!(by_name.len(), 2);
            same(&by_position)?;
            same(&in_txn)?;
            assert!(counted.iter().all(|(_, n)| *n == 2));
            same(&counted.into_iter().map(|(r, _)| r).collect::<Vec<_>>())?;

            let by_position = store
                .reader()
                .rows::<group::Model>(select("groups", group::Model::select("x")))
                .await?;
            let by_name = group::Model::find_by_statement(select("groups", "*".to_owned()))
                .all(store.reader())
                .await?;
            assert_eq!(by_position.len(), 1);
            assert_eq!(by_position, by_name);
            let txn = store.begin_read().await?;
            let in_txn = txn
                .rows::<group::Model>(select("groups", group::Model::select("x")))
                .await?;
            txn.finish().await?;
            assert_eq!(in_txn, by_name);
            Ok(())
        }
    );

    #[test]
    fn passwords_never_appear_in_the_redacted_form() {
        let loc = DatabaseLocation::parse("postgres://app:s3cret@db.internal:5432/deprov");
        let shown = loc.map(|l| format!("{l:?}")).unwrap_or_default();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("db.internal"), "{shown}");
    }
}
