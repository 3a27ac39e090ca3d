//! Batched write transactions for SQLite.
//!
//! SQLite has one writer at a time, so concurrent writes queue for the single write
//! connection, and each pays for its own `BEGIN` … `COMMIT` (the commit writes every page
//! it changed to the WAL). Here concurrent writes share one transaction instead: the first
//! write of a batch opens it; each write runs in a savepoint of its own inside it
//! (`SAVEPOINT` … `RELEASE`, or `ROLLBACK TO` when it fails, which undoes that write
//! alone); when the first write of the batch is done, a flush is queued behind the writes
//! already waiting, and commits them all at once. The flush then leaves the connection to
//! the next batch and waits for an fsync of the WAL ([`crate::wal_sync`]) before it tells
//! the batch's writes: nobody is answered before the batch is committed and on disk, so a
//! write reported done is never lost, and a write that failed left nothing behind (a
//! delivery's claim alone is answered before the fsync: [`WriteTxn::commit_unsynced`]).
//! One flush waits for the fsync on behalf of the whole batch, so a batch costs at most one
//! fsync, which runs while the next batch executes.
//!
//! A batch holds the writes that were waiting when its first write finished, so it is never
//! larger than the number of concurrent writers, and an idle service commits each write
//! alone, as before.
//!
//! The statements run on the calling thread through rusqlite (see sqlite.rs): a write holds
//! the connection only for the microseconds its statements take.
//!
//! PostgreSQL has many writers and groups commits itself: there a [`WriteTxn`] is a plain
//! transaction (postgres.rs).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, ExecResult, ProxyExecResult, QueryResult, Statement,
};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use crate::StoreError;
use crate::checkpoint::{CheckpointWatch, Checkpointer};
use crate::postgres;
use crate::sqlite::Conn;
use crate::wal_sync::WalSync;

/// A write transaction from [`crate::Store::begin_write`]: run statements on it as on any
/// sea-orm connection, and finish it with [`crate::Store::commit`]. Dropped without a
/// commit, it rolls back.
pub struct WriteTxn(Inner);

enum Inner {
    /// PostgreSQL: a transaction of its own.
    Plain(postgres::WriteTxn),
    /// SQLite: a savepoint in the current batch.
    Batched(Batched),
}

struct Batched {
    slot: Slot,
    /// The savepoint is open (neither released nor rolled back).
    open: bool,
}

impl Batched {
    fn conn(&self) -> Result<&Conn, DbErr> {
        self.slot
            .guard
            .as_ref()
            .map(|state| &state.conn)
            .ok_or_else(|| DbErr::Custom("the write batch was already left".to_owned()))
    }
}

impl Drop for Batched {
    /// Rolls the savepoint back before the slot (and with it the connection) is left.
    fn drop(&mut self) {
        if self.open
            && let Ok(conn) = self.conn()
            && let Err(e) = conn.batch("ROLLBACK TO write; RELEASE write")
        {
            tracing::error!(error = %e, "rolling back an abandoned SQLite write failed");
        }
    }
}

/// Every statement runs in the write's own transaction (or savepoint).
#[async_trait::async_trait]
impl ConnectionTrait for WriteTxn {
    fn get_database_backend(&self) -> DbBackend {
        match &self.0 {
            Inner::Plain(_) => DbBackend::Postgres,
            Inner::Batched(_) => DbBackend::Sqlite,
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match &self.0 {
            Inner::Plain(txn) => txn.execute(&stmt).await,
            Inner::Batched(b) => b.conn()?.execute(&stmt),
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match &self.0 {
            Inner::Plain(txn) => txn.execute_unprepared(sql).await,
            Inner::Batched(b) => {
                b.conn()?.batch(sql)?;
                Ok(ProxyExecResult::default().into())
            }
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match &self.0 {
            Inner::Plain(txn) => txn.query_one(&stmt).await,
            Inner::Batched(b) => Ok(b.conn()?.query(&stmt)?.into_iter().next()),
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match &self.0 {
            Inner::Plain(txn) => txn.query_all(&stmt).await,
            Inner::Batched(b) => b.conn()?.query(&stmt),
        }
    }

    fn support_returning(&self) -> bool {
        match &self.0 {
            Inner::Plain(_) => DbBackend::Postgres.support_returning(),
            Inner::Batched(_) => DbBackend::Sqlite.support_returning(),
        }
    }
}

impl std::fmt::Debug for WriteTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTxn")
            .field("batched", &matches!(self.0, Inner::Batched(_)))
            .finish_non_exhaustive()
    }
}

/// The batches of one SQLite database, and its one write connection.
#[derive(Debug)]
pub(crate) struct WriteBatcher {
    state: Arc<Mutex<State>>,
    counts: Arc<Counts>,
    wal_sync: Arc<WalSync>,
    checkpoints: CheckpointWatch,
}

/// Writes begun and batches committed so far, readable without the write connection.
#[derive(Debug, Default)]
struct Counts {
    writes: AtomicU64,
    batches: AtomicU64,
}

#[derive(Debug)]
struct State {
    conn: Conn,
    /// Told of every commit: checkpoints are its job, not the writer's.
    checkpointer: Checkpointer,
    /// Makes each committed batch durable.
    wal_sync: Arc<WalSync>,
    /// Whether the current batch has opened its transaction.
    open: bool,
    batch: Arc<Batch>,
    counts: Arc<Counts>,
}

/// One batch: whether its flush is queued, and how far its commit got.
#[derive(Debug)]
struct Batch {
    flush_queued: AtomicBool,
    /// A write of the batch was released (is part of its commit): only then is there
    /// anything for an fsync to make durable.
    wrote: AtomicBool,
    stage: watch::Sender<Stage>,
}

/// How far a batch's commit got.
#[derive(Debug, Clone)]
enum Stage {
    Open,
    /// Committed: visible to every reader, not yet on disk.
    Committed,
    /// Committed and on disk.
    Durable,
    Failed(String),
}

impl Batch {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            flush_queued: AtomicBool::new(false),
            wrote: AtomicBool::new(false),
            stage: watch::Sender::new(Stage::Open),
        })
    }
}

/// A write's place in a batch: holding it is holding the write connection.
struct Slot {
    guard: Option<OwnedMutexGuard<State>>,
    batch: Arc<Batch>,
    state: Arc<Mutex<State>>,
}

impl Drop for Slot {
    /// Whoever leaves a batch first (committed or not) queues its flush, behind the
    /// writers already waiting, so that every batch is committed even when its writes
    /// are abandoned.
    fn drop(&mut self) {
        if !self.batch.flush_queued.swap(true, Ordering::AcqRel) {
            let (state, batch) = (self.state.clone(), self.batch.clone());
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(flush(state, batch));
                }
                Err(_) => tracing::error!(
                    "a SQLite write batch was left outside a Tokio runtime; it is not committed"
                ),
            }
        }
        // The guard goes last: the flush queues up behind the writers already waiting.
        drop(self.guard.take());
    }
}

async fn flush(state: Arc<Mutex<State>>, batch: Arc<Batch>) {
    let mut state = state.lock().await;
    // The batch being flushed is always the current one: only a flush replaces it, and a
    // batch has one flush.
    debug_assert!(Arc::ptr_eq(&state.batch, &batch));
    state.batch = Batch::new();
    let result = if std::mem::take(&mut state.open) {
        if state.conn.in_autocommit() {
            // SQLite rolled the transaction back itself (an I/O error, a full disk).
            Err("SQLite rolled the batch's transaction back".to_owned())
        } else {
            state.conn.batch("COMMIT").map_err(|e| {
                if !state.conn.in_autocommit() {
                    let _ = state.conn.batch("ROLLBACK");
                }
                e.to_string()
            })
        }
    } else {
        Ok(())
    };
    state.counts.batches.fetch_add(1, Ordering::Relaxed);
    if result.is_ok() {
        state.checkpointer.committed();
        batch.stage.send_replace(Stage::Committed);
    }
    let wal_sync = state.wal_sync.clone();
    // The next batch runs while this one's fsync does.
    drop(state);
    let result = match result {
        // Every write of the batch failed or was abandoned: nothing was written to sync
        // (and a process exiting on such an error has no fsync to cut off).
        Ok(()) if !batch.wrote.load(Ordering::Acquire) => Ok(()),
        Ok(()) => wal_sync
            .barrier()
            .await
            .map_err(|e| format!("the fsync of the SQLite WAL failed: {e}")),
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        tracing::error!(error = %e, "committing a batch of SQLite writes failed; each is reported failed");
    }
    batch.stage.send_replace(match result {
        Ok(()) => Stage::Durable,
        Err(e) => Stage::Failed(e),
    });
}

impl WriteBatcher {
    pub(crate) fn new(conn: Conn, checkpointer: Checkpointer, wal_sync: Arc<WalSync>) -> Self {
        let counts = Arc::new(Counts::default());
        let checkpoints = checkpointer.watch();
        Self {
            state: Arc::new(Mutex::new(State {
                conn,
                checkpointer,
                wal_sync: wal_sync.clone(),
                open: false,
                batch: Batch::new(),
                counts: counts.clone(),
            })),
            counts,
            wal_sync,
            checkpoints,
        }
    }

    /// WAL checkpoints run so far and the last one's `(busy, wal pages, pages copied)`.
    pub(crate) fn checkpoints(&self) -> (u64, Option<(i64, i64, i64)>) {
        self.checkpoints.progress()
    }

    /// How many writes have begun.
    pub(crate) fn writes(&self) -> u64 {
        self.counts.writes.load(Ordering::Relaxed)
    }

    /// How many batches have been committed (or failed to).
    pub(crate) fn commits(&self) -> u64 {
        self.counts.batches.load(Ordering::Relaxed)
    }

    /// How many fsyncs of the WAL have made batches durable.
    pub(crate) fn fsyncs(&self) -> u64 {
        self.wal_sync.syncs()
    }

    /// Joins the current batch (opening its transaction if it is the first) with a
    /// savepoint of its own.
    pub(crate) async fn begin(&self) -> Result<WriteTxn, DbErr> {
        let mut guard = self.state.clone().lock_owned().await;
        self.counts.writes.fetch_add(1, Ordering::Relaxed);
        if !guard.open {
            guard.conn.batch("BEGIN IMMEDIATE")?;
            guard.open = true;
        }
        let savepoint = guard.conn.batch("SAVEPOINT write");
        let slot = Slot {
            batch: guard.batch.clone(),
            guard: Some(guard),
            state: self.state.clone(),
        };
        // On an error the slot is dropped here, which queues the batch's flush.
        savepoint?;
        Ok(WriteTxn(Inner::Batched(Batched { slot, open: true })))
    }
}

impl WriteTxn {
    /// A transaction of its own (PostgreSQL).
    pub(crate) fn plain(txn: postgres::WriteTxn) -> Self {
        Self(Inner::Plain(txn))
    }

    /// SQLite: the write connection, inside this write's savepoint. `None` on PostgreSQL.
    pub(crate) fn sqlite(&self) -> Option<Result<&Conn, DbErr>> {
        match &self.0 {
            Inner::Plain(_) => None,
            Inner::Batched(b) => Some(b.conn()),
        }
    }

    /// Commits: releases the savepoint and waits until the batch is committed and on disk
    /// (SQLite), or commits the transaction (PostgreSQL).
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        self.finish(true).await
    }

    /// Commits without waiting for the disk (SQLite): returns once the batch is committed
    /// and visible, before its fsync. For writes whose loss in a crash costs nothing but
    /// a repetition (a delivery's lease); on PostgreSQL the same as [`WriteTxn::commit`].
    pub(crate) async fn commit_unsynced(self) -> Result<(), StoreError> {
        self.finish(false).await
    }

    async fn finish(self, durable: bool) -> Result<(), StoreError> {
        let mut batched = match self.0 {
            Inner::Plain(txn) => return Ok(txn.commit().await?),
            Inner::Batched(b) => b,
        };
        batched.open = false;
        let released = batched.conn()?.batch("RELEASE write");
        if released.is_err() && !batched.conn()?.in_autocommit() {
            let _ = batched.conn()?.batch("ROLLBACK TO write; RELEASE write");
        }
        released?;
        batched.slot.batch.wrote.store(true, Ordering::Release);
        let mut stage = batched.slot.batch.stage.subscribe();
        drop(batched);
        let reached = stage
            .wait_for(|s| match s {
                Stage::Open => false,
                Stage::Committed => !durable,
                Stage::Durable | Stage::Failed(_) => true,
            })
            .await
            .map(|s| s.clone());
        match reached {
            Ok(Stage::Failed(e)) => Err(e),
            Ok(_) => Ok(()),
            Err(_) => Err("the batch was dropped before it committed".to_owned()),
        }
        .map_err(|e| StoreError::Db(DbErr::Custom(format!("committing the write failed: {e}"))))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Mutex as StdMutex, mpsc};
    use std::time::Duration;

    use super::*;

    /// A batcher over a new database holding table `t`, syncing with `sync`.
    fn batcher(sync: crate::wal_sync::SyncFn) -> anyhow::Result<(WriteBatcher, tempfile::TempDir)> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("batch.db");
        let conn = Conn::new(crate::sqlite::open(&path, false, Duration::from_secs(5))?);
        conn.batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER)")?;
        let checkpointer = Checkpointer::start(&path, Duration::from_secs(5), None)?;
        let wal_sync = Arc::new(WalSync::with_sync(sync));
        Ok((WriteBatcher::new(conn, checkpointer, wal_sync), dir))
    }

    /// A claim's commit returns once its batch is committed, while the fsync is still held
    /// back; a durable commit waits for the fsync.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unsynced_commit_does_not_wait_for_the_fsync() -> anyhow::Result<()> {
        // Every fsync waits for a release.
        let (release, held) = mpsc::channel::<()>();
        let held = Arc::new(StdMutex::new(held));
        let (batcher, _dir) = batcher(Arc::new(move || {
            let _ = held.lock().map(|rx| rx.recv());
            Ok(())
        }))?;

        let claim = batcher.begin().await?;
        claim.execute_unprepared("INSERT INTO t VALUES (1)").await?;
        tokio::time::timeout(Duration::from_secs(5), claim.commit_unsynced())
            .await
            .map_err(|_| anyhow::anyhow!("the unsynced commit waited for the fsync"))??;

        let write = batcher.begin().await?;
        write.execute_unprepared("INSERT INTO t VALUES (2)").await?;
        let durable = tokio::spawn(write.commit());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !durable.is_finished(),
            "a durable commit returned before its fsync"
        );
        // The first batch's fsync, then the second's.
        release.send(())?;
        release.send(())?;
        tokio::time::timeout(Duration::from_secs(5), durable).await???;
        Ok(())
    }

    /// A batch whose writes all failed or were abandoned commits nothing to sync, and takes
    /// no fsync: a process that exits on such an error has none to cut off.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_that_wrote_nothing_takes_no_fsync() -> anyhow::Result<()> {
        let (batcher, _dir) = batcher(Arc::new(|| Ok(())))?;
        let abandoned = batcher.begin().await?;
        abandoned
            .execute_unprepared("INSERT INTO t VALUES (1)")
            .await?;
        drop(abandoned);
        for _ in 0..100 {
            if batcher.commits() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            batcher.commits(),
            1,
            "the abandoned write's batch was not flushed"
        );
        assert_eq!(batcher.fsyncs(), 0);

        let kept = batcher.begin().await?;
        kept.execute_unprepared("INSERT INTO t VALUES (2)").await?;
        kept.commit().await?;
        assert_eq!((batcher.commits(), batcher.fsyncs()), (2, 1));
        Ok(())
    }
}
