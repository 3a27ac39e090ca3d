//! Batched write transactions for SQLite.
//!
//! SQLite has one writer at a time, so concurrent writes queue for the single write
//! connection, and each pays for its own `BEGIN` … `COMMIT` (the commit writes every page
//! it changed to the WAL). Here concurrent writes share one transaction instead: the first
//! write of a batch opens it; each write runs in a savepoint of its own inside it
//! (`SAVEPOINT` … `RELEASE`, or `ROLLBACK TO` when it fails, which undoes that write
//! alone); when the first write of the batch is done, a flush is queued behind the writes
//! already waiting, and commits them all at once. Nobody is answered before the batch is
//! committed and (through [`crate::wal_sync`]) on disk, so a write reported done is never
//! lost, and a write that failed left nothing behind.
//!
//! A batch holds the writes that were waiting when its first write finished, so it is never
//! larger than the number of concurrent writers, and an idle service commits each write
//! alone, as before.
//!
//! PostgreSQL has many writers and groups commits itself: there a [`WriteTxn`] is a plain
//! transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, Statement, TransactionTrait,
};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use crate::StoreError;

/// A write transaction from [`crate::Store::begin_write`]; use it as a
/// [`DatabaseTransaction`] (it dereferences to one) and finish it with
/// [`crate::Store::commit`]. Dropped without a commit, it rolls back.
pub struct WriteTxn {
    // Field order is drop order: the savepoint's rollback is queued on the connection
    // before the batch is released to the next writer.
    txn: DatabaseTransaction,
    slot: Option<Slot>,
}

impl std::ops::Deref for WriteTxn {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

/// Every statement runs in the write's own transaction (or savepoint).
#[async_trait::async_trait]
impl ConnectionTrait for WriteTxn {
    fn get_database_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.txn.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.txn.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.txn.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.txn.query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.txn.support_returning()
    }
}

impl std::fmt::Debug for WriteTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTxn")
            .field("batched", &self.slot.is_some())
            .finish_non_exhaustive()
    }
}

/// The batches of one SQLite database.
#[derive(Debug)]
pub(crate) struct WriteBatcher {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    /// The open transaction of the current batch, if a write has started it.
    outer: Option<DatabaseTransaction>,
    batch: Arc<Batch>,
    /// Batches committed so far.
    commits: u64,
}

/// One batch: whether its flush is queued, and the result of its commit.
#[derive(Debug)]
struct Batch {
    flush_queued: AtomicBool,
    committed: watch::Sender<Option<Result<(), String>>>,
}

impl Batch {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            flush_queued: AtomicBool::new(false),
            committed: watch::Sender::new(None),
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
    let result = match state.outer.take() {
        Some(outer) => outer.commit().await.map_err(|e| e.to_string()),
        None => Ok(()),
    };
    state.commits += 1;
    if let Err(e) = &result {
        tracing::error!(error = %e, "committing a batch of SQLite writes failed; each is reported failed");
    }
    batch.committed.send_replace(Some(result));
}

impl WriteBatcher {
    pub(crate) fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                outer: None,
                batch: Batch::new(),
                commits: 0,
            })),
        }
    }

    /// How many batches have been committed.
    pub(crate) async fn commits(&self) -> u64 {
        self.state.lock().await.commits
    }

    /// Joins the current batch (opening its transaction on `writer` if it is the first)
    /// with a savepoint of its own.
    pub(crate) async fn begin(&self, writer: &DatabaseConnection) -> Result<WriteTxn, DbErr> {
        let mut guard = self.state.clone().lock_owned().await;
        let outer = match guard.outer.take() {
            Some(outer) => outer,
            None => writer.begin().await?,
        };
        let nested = outer.begin().await;
        guard.outer = Some(outer);
        let slot = Slot {
            batch: guard.batch.clone(),
            guard: Some(guard),
            state: self.state.clone(),
        };
        // On an error the slot is dropped here, which queues the batch's flush.
        Ok(WriteTxn {
            txn: nested?,
            slot: Some(slot),
        })
    }
}

impl WriteTxn {
    /// A transaction of its own (PostgreSQL).
    pub(crate) fn plain(txn: DatabaseTransaction) -> Self {
        Self { txn, slot: None }
    }

    /// Commits: releases the savepoint and waits for the batch's commit (SQLite), or
    /// commits the transaction (PostgreSQL). Not yet durable on SQLite: see
    /// [`crate::Store::commit`].
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        let Self { txn, slot } = self;
        txn.commit().await?;
        let Some(slot) = slot else {
            return Ok(());
        };
        let mut committed = slot.batch.committed.subscribe();
        drop(slot);
        let result = committed
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| Err("the batch was dropped before it committed".to_owned()));
        result
            .map_err(|e| StoreError::Db(DbErr::Custom(format!("committing the write failed: {e}"))))
    }
}
