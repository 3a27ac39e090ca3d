//! SQLite called in place, through rusqlite.
//!
//! sqlx gives every SQLite connection a worker thread and sends it each statement over a
//! channel, so every statement costs two thread hand-offs (some 70 µs on a busy 2-core
//! machine, far more than the statement itself). Here a statement runs on the calling
//! thread: a point read or an indexed write takes a few microseconds of CPU, less than a
//! hand-off. Nothing waits on I/O but page-cache misses and the WAL append; the fsync that
//! makes commits durable runs elsewhere ([`crate::wal_sync`]).
//!
//! sea-orm still builds every statement and reads most rows: statements arrive as
//! [`Statement`]s and rows leave as [`QueryResult`]s (sea-orm's proxy rows), typed by the
//! column's declared type in the schema, which is what sea-orm's entities expect. Users
//! and groups, read on every SCIM request, skip the proxy row ([`Conn::rows`] with
//! [`crate::decode`]).
//!
//! - [`ReaderPool`]: read-only connections behind [`Store::reader`](crate::Store::reader),
//!   each keeping its read transaction open while nothing is committed (wal_index.rs).
//! - [`Conn`]: one connection, used by a write batch (write_batch.rs) or a read snapshot.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rusqlite::types::{Value as Sql, ValueRef};
use rusqlite::{Connection, OpenFlags};
use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, ExecResult, ProxyExecResult, ProxyRow, QueryResult,
    RuntimeErr, Statement, Value,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

mod wal_index;
use wal_index::{Header, WalIndex};

/// Prefix of the message of a unique-constraint error, for
/// [`crate::error::is_unique_violation`].
pub(crate) const UNIQUE_VIOLATION: &str = "sqlite unique constraint violated: ";

/// Prepared statements kept per connection: the SQL sea-orm builds repeats, with its values
/// bound as parameters.
const STATEMENT_CACHE: usize = 256;

/// The writer's page cache, in KiB (SQLite's default is 2,000).
const WRITER_CACHE_KIB: u32 = 16 * 1024;

/// Each reader's page cache, in KiB: mostly the first few readers fill theirs (see
/// [`ReaderPool::acquire`]).
const READER_CACHE_KIB: u32 = 8 * 1024;

/// Turns off SQLite's memory statistics, once, before the library is initialised.
///
/// With them on (`SQLITE_DEFAULT_MEMSTATUS=1`, the default of the system library), every
/// `sqlite3_malloc` and `sqlite3_free` takes one process-wide mutex to count bytes nobody
/// reads here (<https://sqlite.org/c3ref/c_config_covering_index_scan.html#sqliteconfigmemstatus>).
/// Two threads reading users at once then queue on it, and a contended mutex is a futex
/// sleep and a context switch: on a 2-core machine that was a third of the futex calls of
/// a GET-by-id load.
fn configure_library() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `sqlite3_config` may only be called while the library is not initialised
        // and no other thread is inside SQLite; it returns SQLITE_MISUSE otherwise, and
        // changes nothing. It runs once, before the first connection this process opens
        // (rusqlite initialises the library on the first open). The variadic argument is
        // the `int` that SQLITE_CONFIG_MEMSTATUS takes.
        #[allow(unsafe_code)]
        let rc = unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                std::ffi::c_int::from(0u8),
            )
        };
        if rc != rusqlite::ffi::SQLITE_OK {
            tracing::debug!(
                rc,
                "SQLite was already initialised; memory statistics stay on"
            );
        }
    });
}

/// Opens a connection with the settings every deprov connection needs. The writer sets
/// WAL mode (a property of the file); readers are read-only.
pub(crate) fn open(path: &Path, read_only: bool, busy: Duration) -> Result<Connection, DbErr> {
    configure_library();
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(conn_err)?;
    conn.busy_timeout(busy).map_err(conn_err)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(conn_err)?;
        // Checkpoints are the checkpoint thread's (checkpoint.rs); this is the backstop.
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            crate::checkpoint::WRITER_FALLBACK_PAGES,
        )
        .map_err(conn_err)?;
    }
    // NORMAL + WalSync::barrier after each commit: as durable as FULL, with group commit
    // (see wal_sync.rs).
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
        .map_err(conn_err)?;
    // A batched write transaction runs each write in a savepoint; their journal outgrows
    // SQLite's in-memory 64 KiB and spilled to a new temporary file (open, write, unlink)
    // per transaction. In memory it stays bounded by what one transaction changes.
    conn.execute_batch("PRAGMA temp_store = MEMORY;")
        .map_err(conn_err)?;
    let cache_kib = if read_only {
        READER_CACHE_KIB
    } else {
        WRITER_CACHE_KIB
    };
    conn.execute_batch(&format!("PRAGMA cache_size = -{cache_kib};"))
        .map_err(conn_err)?;
    Ok(conn)
}

/// One connection, usable from async code. The lock is only ever held for one statement
/// (the caller's exclusive use, for a transaction, comes from elsewhere).
#[derive(Debug)]
pub(crate) struct Conn(std::sync::Mutex<Inner>);

#[derive(Debug)]
struct Inner {
    conn: Connection,
    /// The columns of each query's result, by SQL: asking SQLite for the names and declared
    /// types of a result and classifying them cost more than a point read's own step. The
    /// schema is migrated before anything reads, so a SQL text's columns do not change.
    columns: HashMap<String, Columns>,
    /// A reader's kept read transaction; `None` for the writer, and for a reader whose WAL
    /// index could not be found (it then reads in a transaction per statement).
    kept: Option<Kept>,
}

/// A reader's read transaction, kept open between uses while nothing is committed (see
/// wal_index.rs).
#[derive(Debug)]
struct Kept {
    index: WalIndex,
    /// The WAL-index header copied just before the open transaction began, and the
    /// pool's checkpoint count then.
    header: Option<Header>,
    checkpoints: u64,
    /// Transactions begun, for tests.
    begun: u64,
}

type Columns = Arc<[(String, Kind)]>;

impl Conn {
    pub(crate) fn new(conn: Connection) -> Self {
        Self(std::sync::Mutex::new(Inner {
            conn,
            columns: HashMap::new(),
            kept: None,
        }))
    }

    /// A reader that keeps its read transaction between uses (see [`Conn::current`]).
    fn reader(conn: Connection) -> Self {
        let kept = WalIndex::of(&conn).map(|index| Kept {
            index,
            header: None,
            checkpoints: 0,
            begun: 0,
        });
        Self(std::sync::Mutex::new(Inner {
            conn,
            columns: HashMap::new(),
            kept,
        }))
    }

    /// Brings a reader's kept transaction up to date before a use: kept when nothing was
    /// committed and no checkpoint ran since it began, otherwise ended and begun again (its
    /// snapshot is taken at its first read, after the header was copied). A connection
    /// without one is left in autocommit: each statement is then a transaction of its own.
    ///
    /// After a checkpoint that copied the whole WAL, a new transaction reads the database
    /// file alone, and the next write can start the WAL over; one begun before would keep
    /// it from that, and the WAL would only grow.
    fn current(&self, checkpoints: u64) -> Result<(), DbErr> {
        self.with(|inner| {
            let Some(kept) = inner.kept.as_mut() else {
                return Ok(());
            };
            if !inner.conn.is_autocommit() {
                if kept.checkpoints == checkpoints
                    && kept.header.is_some_and(|h| h == kept.index.header())
                {
                    return Ok(());
                }
                end(&inner.conn)?;
            }
            kept.header = Some(kept.index.header());
            kept.checkpoints = checkpoints;
            kept.begun += 1;
            run_cached(&inner.conn, "BEGIN")
        })
    }

    /// Ends a reader's kept transaction, so that it holds back no checkpoint.
    fn release(&self) -> Result<(), DbErr> {
        self.with(|inner| {
            if inner.kept.is_some() && !inner.conn.is_autocommit() {
                end(&inner.conn)?;
            }
            Ok(())
        })
    }

    /// Whether this reader keeps its transaction between uses.
    fn keeps_transaction(&self) -> bool {
        self.with(|inner| Ok(inner.kept.is_some())).unwrap_or(false)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> Result<T, DbErr>) -> Result<T, DbErr> {
        let mut inner = self
            .0
            .lock()
            .map_err(|_| DbErr::Custom("a SQLite connection was poisoned".to_owned()))?;
        f(&mut inner)
    }

    /// Runs SQL without parameters (transaction control). A single statement is prepared
    /// once and kept: `SAVEPOINT`/`RELEASE`/`COMMIT` run for every write, and parsing them
    /// each time cost more than running them.
    pub(crate) fn batch(&self, sql: &str) -> Result<(), DbErr> {
        self.with(|Inner { conn: c, .. }| {
            if sql.contains(';') {
                return c.execute_batch(sql).map_err(exec_err);
            }
            run_cached(c, sql)
        })
    }

    /// Runs `f` on the connection itself, for statements bound and read by position
    /// (the outbox's hot path, `outbox/sqlite.rs`).
    pub(crate) fn with_connection<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, DbErr>,
    ) -> Result<T, DbErr> {
        self.with(|inner| f(&inner.conn))
    }

    /// Whether no transaction is open (SQLite rolls back by itself after some errors).
    pub(crate) fn in_autocommit(&self) -> bool {
        self.with(|inner| Ok(inner.conn.is_autocommit()))
            .unwrap_or(true)
    }

    pub(crate) fn execute(&self, stmt: &Statement) -> Result<ExecResult, DbErr> {
        self.with(|inner| execute(&inner.conn, stmt))
    }

    pub(crate) fn query(&self, stmt: &Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.with(|inner| {
            Ok(query(inner, stmt)?
                .into_iter()
                .map(QueryResult::from)
                .collect())
        })
    }

    /// The rows of a query, each read by `row` (a [`crate::decode::Decode`] row, say).
    pub(crate) fn rows<T>(
        &self,
        stmt: &Statement,
        mut row: impl FnMut(&rusqlite::Row<'_>) -> Result<T, DbErr>,
    ) -> Result<Vec<T>, DbErr> {
        self.with(|inner| {
            let mut prepared = inner.conn.prepare_cached(&stmt.sql).map_err(query_err)?;
            bind(&mut prepared, stmt).map_err(query_err)?;
            let mut rows = prepared.raw_query();
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(query_err)? {
                out.push(row(r)?);
            }
            Ok(out)
        })
    }
}

/// Runs one statement without parameters, prepared once per connection.
fn run_cached(conn: &Connection, sql: &str) -> Result<(), DbErr> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.raw_execute())
        .map(drop)
        .map_err(exec_err)
}

/// Ends a read transaction (a `COMMIT` of a read only gives its locks back).
fn end(conn: &Connection) -> Result<(), DbErr> {
    if run_cached(conn, "COMMIT").is_err() && !conn.is_autocommit() {
        run_cached(conn, "ROLLBACK")?;
    }
    Ok(())
}

fn execute(conn: &Connection, stmt: &Statement) -> Result<ExecResult, DbErr> {
    let mut prepared = conn.prepare_cached(&stmt.sql).map_err(exec_err)?;
    bind(&mut prepared, stmt).map_err(exec_err)?;
    let rows_affected = if prepared.column_count() == 0 {
        prepared.raw_execute().map_err(exec_err)?
    } else {
        // A statement with rows (RETURNING, or a SELECT sent as a command): step it to
        // the end.
        let mut rows = prepared.raw_query();
        let mut n = 0;
        while rows.next().map_err(exec_err)?.is_some() {
            n += 1;
        }
        n
    };
    Ok(ProxyExecResult {
        last_insert_id: u64::try_from(conn.last_insert_rowid()).unwrap_or(0),
        rows_affected: rows_affected as u64,
    }
    .into())
}

fn query(inner: &mut Inner, stmt: &Statement) -> Result<Vec<ProxyRow>, DbErr> {
    let mut prepared = inner.conn.prepare_cached(&stmt.sql).map_err(query_err)?;
    let columns = match inner.columns.get(&stmt.sql) {
        Some(columns) => columns.clone(),
        None => {
            let columns: Columns = prepared
                .columns()
                .iter()
                .map(|c| (c.name().to_owned(), Kind::of(c.decl_type())))
                .collect();
            // Bounded like the statement cache; the SQL deprov sends repeats.
            if inner.columns.len() >= STATEMENT_CACHE {
                inner.columns.clear();
            }
            inner.columns.insert(stmt.sql.clone(), columns.clone());
            columns
        }
    };
    bind(&mut prepared, stmt).map_err(query_err)?;
    let mut rows = prepared.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(query_err)? {
        let mut values = BTreeMap::new();
        for (i, (name, kind)) in columns.iter().enumerate() {
            let value = row.get_ref(i).map_err(query_err)?;
            values.insert(name.clone(), kind.value(value)?);
        }
        out.push(ProxyRow::new(values));
    }
    Ok(out)
}

/// Binds the statement's values: parameter `?` takes the next value, `$N` or `?N` the
/// Nth (deprov writes some SQL once for both backends, with PostgreSQL's `$N`).
fn bind(prepared: &mut rusqlite::CachedStatement<'_>, stmt: &Statement) -> rusqlite::Result<()> {
    let values = match &stmt.values {
        Some(values) => values.0.as_slice(),
        None => &[],
    };
    for i in 1..=prepared.parameter_count() {
        let n = prepared
            .parameter_name(i)
            .and_then(|name| name.get(1..))
            .and_then(|digits| digits.parse::<usize>().ok())
            .unwrap_or(i);
        let value = values
            .get(n.wrapping_sub(1))
            .ok_or(rusqlite::Error::InvalidParameterCount(n, values.len()))?;
        let value = param(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
        prepared.raw_bind_parameter(i, value)?;
    }
    Ok(())
}

/// What sea-orm expects to read from a column, from the type the schema declares for it.
/// SQLite declares every integer column `integer`, so each is an `i64` in deprov's entities
/// (migration m20261202_000300). Computed columns have no declared type; they are read as
/// what they hold.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    BigInt,
    Double,
    Text,
    Json,
    Bytes,
    Dynamic,
}

impl Kind {
    fn of(declared: Option<&str>) -> Self {
        let Some(declared) = declared else {
            return Self::Dynamic;
        };
        let declared = declared.to_ascii_lowercase();
        if declared.contains("bool") {
            Self::Bool
        } else if declared.contains("json") {
            Self::Json
        } else if declared.contains("int") {
            Self::BigInt
        } else if declared.contains("char") || declared.contains("text") || declared == "clob" {
            Self::Text
        } else if declared.contains("blob") || declared.contains("binary") {
            Self::Bytes
        } else if declared.contains("real")
            || declared.contains("floa")
            || declared.contains("doub")
        {
            Self::Double
        } else {
            Self::Dynamic
        }
    }

    fn value(self, v: ValueRef<'_>) -> Result<Value, DbErr> {
        let mismatch = || {
            DbErr::Type(format!(
                "a SQLite column declared as {self:?} holds {:?}",
                v.data_type()
            ))
        };
        Ok(match (self, v) {
            (Self::Bool, ValueRef::Null) => Value::Bool(None),
            (Self::Bool, ValueRef::Integer(i)) => Value::Bool(Some(i != 0)),
            (Self::BigInt, ValueRef::Null) => Value::BigInt(None),
            (Self::BigInt, ValueRef::Integer(i)) => Value::BigInt(Some(i)),
            (Self::Double, ValueRef::Null) => Value::Double(None),
            (Self::Double, ValueRef::Real(f)) => Value::Double(Some(f)),
            (Self::Double, ValueRef::Integer(i)) => Value::Double(Some(i as f64)),
            (Self::Text, ValueRef::Null) => Value::String(None),
            (Self::Json, ValueRef::Null) => Value::Json(None),
            (Self::Json, ValueRef::Text(t) | ValueRef::Blob(t)) => Value::Json(Some(Box::new(
                serde_json::from_slice(t).map_err(|e| DbErr::Json(e.to_string()))?,
            ))),
            (Self::Bytes, ValueRef::Null) => Value::Bytes(None),
            (Self::Bytes, ValueRef::Blob(b) | ValueRef::Text(b)) => Value::Bytes(Some(b.to_vec())),
            (Self::Text | Self::Dynamic, ValueRef::Text(t)) => {
                Value::String(Some(String::from_utf8(t.to_vec()).map_err(|_| mismatch())?))
            }
            (Self::Dynamic, ValueRef::Null) => Value::BigInt(None),
            (Self::Dynamic, ValueRef::Integer(i)) => Value::BigInt(Some(i)),
            (Self::Dynamic, ValueRef::Real(f)) => Value::Double(Some(f)),
            (Self::Dynamic, ValueRef::Blob(b)) => Value::Bytes(Some(b.to_vec())),
            _ => return Err(mismatch()),
        })
    }
}

/// sea-orm's values as SQLite stores them (booleans as 0/1, JSON as text), as sqlx did.
fn param(v: &Value) -> Result<Sql, DbErr> {
    fn or_null<T>(v: &Option<T>, f: impl FnOnce(&T) -> Sql) -> Sql {
        v.as_ref().map_or(Sql::Null, f)
    }
    Ok(match v {
        Value::Bool(b) => or_null(b, |b| Sql::Integer(i64::from(*b))),
        Value::TinyInt(i) => or_null(i, |i| Sql::Integer(i64::from(*i))),
        Value::SmallInt(i) => or_null(i, |i| Sql::Integer(i64::from(*i))),
        Value::Int(i) => or_null(i, |i| Sql::Integer(i64::from(*i))),
        Value::BigInt(i) => or_null(i, |i| Sql::Integer(*i)),
        Value::TinyUnsigned(i) => or_null(i, |i| Sql::Integer(i64::from(*i))),
        Value::SmallUnsigned(i) => or_null(i, |i| Sql::Integer(i64::from(*i))),
        Value::Unsigned(i) => or_null(i, |i| Sql::Integer(i64::from(*i))),
        Value::BigUnsigned(Some(i)) => Sql::Integer(
            i64::try_from(*i)
                .map_err(|_| DbErr::Type(format!("{i} does not fit a SQLite integer")))?,
        ),
        Value::BigUnsigned(None) => Sql::Null,
        Value::Float(f) => or_null(f, |f| Sql::Real(f64::from(*f))),
        Value::Double(f) => or_null(f, |f| Sql::Real(*f)),
        Value::String(s) => or_null(s, |s| Sql::Text(s.clone())),
        Value::Char(c) => or_null(c, |c| Sql::Text(c.to_string())),
        Value::Bytes(b) => or_null(b, |b| Sql::Blob(b.clone())),
        // serde_json's writer, not `Display`, which goes through `fmt` and costs twice as much.
        Value::Json(Some(j)) => Sql::Text(
            serde_json::to_string(j).map_err(|e| DbErr::Type(format!("unwritable JSON: {e}")))?,
        ),
        Value::Json(None) => Sql::Null,
        other => {
            return Err(DbErr::Type(format!(
                "deprov's SQLite layer does not bind {other:?}"
            )));
        }
    })
}

fn conn_err(e: rusqlite::Error) -> DbErr {
    DbErr::Conn(RuntimeErr::Internal(e.to_string()))
}

pub(crate) fn exec_err(e: rusqlite::Error) -> DbErr {
    DbErr::Exec(runtime_err(e))
}

pub(crate) fn query_err(e: rusqlite::Error) -> DbErr {
    DbErr::Query(runtime_err(e))
}

fn runtime_err(e: rusqlite::Error) -> RuntimeErr {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            RuntimeErr::Internal(format!("{UNIQUE_VIOLATION}{e}"))
        }
        _ => RuntimeErr::Internal(e.to_string()),
    }
}

/// The read-only connections behind [`crate::Store::reader`]. Each statement takes a free
/// connection (or waits for one) and runs on the calling thread.
#[derive(Debug)]
pub(crate) struct ReaderPool {
    conns: Vec<Arc<Mutex<Conn>>>,
    next: AtomicUsize,
    /// Checkpoints run since the pool opened ([`ReaderPool::checkpointed`]).
    checkpoints: AtomicU64,
}

impl ReaderPool {
    pub(crate) fn open(path: &Path, size: usize, busy: Duration) -> Result<Self, DbErr> {
        let conns = (0..size.max(1))
            .map(|_| open(path, true, busy).map(|c| Arc::new(Mutex::new(Conn::reader(c)))))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            conns,
            next: AtomicUsize::new(0),
            checkpoints: AtomicU64::new(0),
        })
    }

    /// A connection for the caller alone, its read transaction current: the first free
    /// one, so that the few connections in use at once keep their page caches warm (each
    /// would otherwise read every page again from the file); when none is free, the next
    /// in turn.
    pub(crate) async fn acquire(&self) -> Result<OwnedMutexGuard<Conn>, DbErr> {
        let conn = self.free().await;
        conn.current(self.checkpoints.load(Ordering::Acquire))?;
        Ok(conn)
    }

    async fn free(&self) -> OwnedMutexGuard<Conn> {
        for conn in &self.conns {
            if let Ok(guard) = conn.clone().try_lock_owned() {
                return guard;
            }
        }
        let next = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[next].clone().lock_owned().await
    }

    /// Ends the kept transactions of the connections nobody is using: an idle reader's
    /// snapshot would keep a checkpoint from copying what was committed after it, and the
    /// WAL from starting over. Called before each checkpoint (checkpoint.rs).
    pub(crate) fn release_idle(&self) {
        for conn in &self.conns {
            if let Ok(guard) = conn.clone().try_lock_owned()
                && let Err(e) = guard.release()
            {
                tracing::warn!(error = %e, "ending an idle SQLite read transaction failed");
            }
        }
    }

    /// Called after each checkpoint: connections in use begin a new transaction at their
    /// next use, and idle ones end theirs now (see [`Conn::current`]).
    pub(crate) fn checkpointed(&self) {
        self.checkpoints.fetch_add(1, Ordering::AcqRel);
        self.release_idle();
    }

    /// Read transactions begun by each connection so far, for tests.
    #[cfg(test)]
    fn begun(&self) -> Vec<u64> {
        self.conns
            .iter()
            .map(|c| {
                c.try_lock()
                    .ok()
                    .and_then(|g| g.with(|i| Ok(i.kept.as_ref().map_or(0, |k| k.begun))).ok())
                    .unwrap_or(0)
            })
            .collect()
    }
}

/// A read transaction on one reader connection: every statement sees the same snapshot
/// (SQLite pins a WAL snapshot at the first read of a transaction). A reader that keeps its
/// transaction (wal_index.rs) lends it here, current as of [`ReaderPool::acquire`], and keeps
/// it afterwards; any other begins and ends one, at [`ReadSnapshot::finish`] or drop.
pub struct ReadSnapshot {
    conn: OwnedMutexGuard<Conn>,
    open: bool,
}

impl ReadSnapshot {
    pub(crate) fn begin(conn: OwnedMutexGuard<Conn>) -> Result<Self, DbErr> {
        let own = !conn.keeps_transaction();
        if own {
            conn.batch("BEGIN")?;
        }
        Ok(Self { conn, open: own })
    }

    pub(crate) fn rows<T>(
        &self,
        stmt: &Statement,
        row: impl FnMut(&rusqlite::Row<'_>) -> Result<T, DbErr>,
    ) -> Result<Vec<T>, DbErr> {
        self.conn.rows(stmt, row)
    }

    pub(crate) fn finish(mut self) -> Result<(), DbErr> {
        if !std::mem::take(&mut self.open) {
            return Ok(());
        }
        self.conn.batch("COMMIT")
    }
}

impl Drop for ReadSnapshot {
    fn drop(&mut self) {
        if self.open && !self.conn.in_autocommit() {
            let _ = self.conn.batch("ROLLBACK");
        }
    }
}

impl std::fmt::Debug for ReadSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadSnapshot").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for ReadSnapshot {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Sqlite
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.conn.execute(&stmt)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.conn.batch(sql)?;
        Ok(ProxyExecResult::default().into())
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        Ok(self.conn.query(&stmt)?.into_iter().next())
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.conn.query(&stmt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_choose_what_sea_orm_reads() {
        assert!(matches!(Kind::of(Some("bigint")), Kind::BigInt));
        assert!(matches!(Kind::of(Some("integer")), Kind::BigInt));
        assert!(matches!(Kind::of(Some("boolean")), Kind::Bool));
        assert!(matches!(Kind::of(Some("json_text")), Kind::Json));
        assert!(matches!(Kind::of(Some("varchar(255)")), Kind::Text));
        assert!(matches!(Kind::of(Some("blob")), Kind::Bytes));
        assert!(matches!(Kind::of(None), Kind::Dynamic));
    }

    #[test]
    fn statements_round_trip_typed_values() -> Result<(), DbErr> {
        let dir = tempfile_dir();
        let conn = Conn::new(open(&dir.join("t.db"), false, Duration::from_secs(1))?);
        conn.batch(
            "CREATE TABLE t (id varchar NOT NULL PRIMARY KEY, n integer, big bigint, \
             ok boolean, doc json_text, raw blob)",
        )?;
        let insert = Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)",
            [
                Value::from("a"),
                Value::Int(Some(7)),
                Value::BigInt(Some(1 << 40)),
                Value::Bool(Some(true)),
                Value::Json(Some(Box::new(serde_json::json!({"k": [1]})))),
                Value::Bytes(Some(vec![0, 1])),
            ],
        );
        assert_eq!(conn.execute(&insert)?.rows_affected(), 1);
        let again = conn.execute(&insert);
        assert!(
            matches!(&again, Err(DbErr::Exec(RuntimeErr::Internal(m))) if m.starts_with(UNIQUE_VIOLATION)),
            "{again:?}"
        );
        let rows = conn.query(&Statement::from_string(
            DbBackend::Sqlite,
            "SELECT id, n, big, ok, doc, raw, COUNT(*) OVER () AS total, NULL AS missing FROM t",
        ))?;
        let row = rows.first().ok_or_else(|| DbErr::Custom("no row".into()))?;
        assert_eq!(row.try_get::<String>("", "id")?, "a");
        assert_eq!(row.try_get::<i64>("", "n")?, 7);
        assert_eq!(row.try_get::<i64>("", "big")?, 1 << 40);
        assert!(row.try_get::<bool>("", "ok")?);
        assert_eq!(
            row.try_get::<serde_json::Value>("", "doc")?,
            serde_json::json!({"k": [1]})
        );
        assert_eq!(row.try_get::<Vec<u8>>("", "raw")?, vec![0, 1]);
        assert_eq!(row.try_get::<i64>("", "total")?, 1);
        assert_eq!(row.try_get::<Option<i64>>("", "missing")?, None);
        Ok(())
    }

    fn count(conn: &Conn) -> Result<i64, DbErr> {
        let stmt = Statement::from_string(DbBackend::Sqlite, "SELECT count(*) FROM t");
        let rows = conn.rows(&stmt, |r| r.get::<_, i64>(0).map_err(query_err))?;
        Ok(rows[0])
    }

    /// A new database holding table `t`, and a connection that writes to it.
    fn table_t() -> Result<(std::path::PathBuf, Connection), DbErr> {
        let path = tempfile_dir().join("db.sqlite");
        let writer = open(&path, false, Duration::from_secs(5))?;
        writer
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
            .map_err(exec_err)?;
        Ok((path, writer))
    }

    fn write_rows(conn: &Connection, n: usize) -> rusqlite::Result<()> {
        for _ in 0..n {
            conn.execute("INSERT INTO t (body) VALUES (?1)", ["x".repeat(3000)])?;
        }
        Ok(())
    }

    /// wal_index.rs: a reader sees every commit, of this connection or any other (another
    /// process's, say), and begins no transaction while nothing was committed.
    #[tokio::test]
    async fn a_reader_keeps_its_transaction_until_anything_is_committed() -> Result<(), DbErr> {
        let (path, writer) = table_t()?;
        let busy = Duration::from_secs(5);
        let other = open(&path, false, busy)?;
        let readers = ReaderPool::open(&path, 1, busy)?;
        assert!(readers.conns[0].lock().await.keeps_transaction());

        let mut expected = 0;
        for round in 0..50 {
            let by = if round % 2 == 0 { &writer } else { &other };
            write_rows(by, round % 3).map_err(exec_err)?;
            expected += i64::try_from(round % 3).unwrap_or(0);
            let before = readers.begun()[0];
            assert_eq!(
                count(&*readers.acquire().await?)?,
                expected,
                "round {round}"
            );
            let begun = readers.begun()[0] - before;
            assert_eq!(
                begun,
                u64::from(round % 3 != 0 || round == 0),
                "round {round}"
            );
            // Unchanged since: the same transaction, read again (also as a snapshot).
            let snapshot = ReadSnapshot::begin(readers.acquire().await?)?;
            assert_eq!(count(&snapshot.conn)?, expected);
            snapshot.finish()?;
            assert_eq!(count(&*readers.acquire().await?)?, expected);
            assert_eq!(readers.begun()[0] - before, begun, "round {round}");
        }

        // A checkpoint while the reader is in use: it begins anew at its next use (so that it
        // holds no read mark that keeps the WAL from starting over).
        let in_use = readers.acquire().await?;
        assert_eq!(count(&in_use)?, expected);
        readers.checkpointed();
        drop(in_use);
        let before = readers.begun()[0];
        assert_eq!(count(&*readers.acquire().await?)?, expected);
        assert_eq!(readers.begun()[0], before + 1);
        Ok(())
    }

    /// wal_index.rs: a kept transaction holds back checkpoints until it is released, which
    /// the checkpoint thread does for idle readers before each checkpoint.
    #[tokio::test]
    async fn an_idle_reader_releases_what_a_checkpoint_needs() -> Result<(), DbErr> {
        let (path, writer) = table_t()?;
        let busy = Duration::from_secs(5);
        let readers = Arc::new(ReaderPool::open(&path, 2, busy)?);
        let checkpoint = || {
            writer
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                })
                .map_err(query_err)
        };
        assert_eq!(count(&*readers.acquire().await?)?, 0);
        write_rows(&writer, 200).map_err(exec_err)?;
        let (pages, copied) = checkpoint()?;
        assert!(
            copied < pages,
            "the idle reader's snapshot held nothing back: {copied}/{pages}"
        );

        readers.release_idle();
        let (pages, copied) = checkpoint()?;
        assert_eq!(copied, pages);

        // The checkpoint thread releases them by itself.
        assert_eq!(count(&*readers.acquire().await?)?, 200);
        write_rows(&writer, 200).map_err(exec_err)?;
        let checkpointer =
            crate::checkpoint::Checkpointer::start(&path, busy, Some(readers.clone()))?;
        checkpointer.committed();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !checkpointer
            .progress()
            .1
            .is_some_and(|(busy, pages, copied)| busy == 0 && pages > 0 && pages == copied)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                checkpointer.progress()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "deprov-sqlite-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        let _ = std::fs::create_dir_all(&dir);
        dir
    }
}
