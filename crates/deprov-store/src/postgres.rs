//! PostgreSQL connections for reads outside a transaction and for SCIM write transactions,
//! held here rather than in sqlx's pool.
//!
//! sqlx's pool pings every connection given back to it (`Floating::return_to_pool` in
//! sqlx-core 0.9), from a task spawned on drop: a second round trip and a thread hand-off
//! for a read that is one statement (a SCIM GET). Measured on 2 cores, GET by id went from
//! ~9,500 to ~13,300 requests/s without it. Here a connection goes back as it is when its
//! statement has completed, and is dropped when it has not (a caller cancelled mid-way):
//! a connection is never reused in an unknown protocol state, which is what sqlx's ping is
//! there to catch.
//!
//! A [`WriteTxn`] is a transaction on such a connection: `BEGIN`, its statements, `COMMIT`,
//! and no ping after. Abandoned, it is rolled back before its connection is reused. A write
//! of one statement skips `BEGIN` and `COMMIT` ([`ConnPool::begin_single`]).
//! Read transactions and the delivery worker keep sqlx's pool.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError, PgRow, PgSeverity};
use sea_orm::sqlx::{self, Connection as _};
use sea_orm::{ConnAcquireErr, DbErr, ExecResult, QueryResult, RuntimeErr, Statement};
use sea_query_sqlx::SqlxValues;
use tokio::sync::{Mutex as AsyncMutex, OwnedSemaphorePermit, Semaphore};

/// A connection this old is closed rather than reused, so that the server can free what a
/// session accumulates (sqlx's pool default).
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Connections to one PostgreSQL database, opened on demand up to a bound.
#[derive(Debug)]
pub(crate) struct ConnPool {
    options: PgConnectOptions,
    idle: Mutex<Vec<Idle>>,
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
    ping_when_idle_for: Duration,
}

#[derive(Debug)]
struct Idle {
    conn: PgConnection,
    opened: Instant,
    since: Instant,
}

impl ConnPool {
    /// `size` connections at most; a caller waits up to `acquire_timeout` for one; a
    /// connection idle for `ping_when_idle_for` is pinged before use.
    pub(crate) fn new(
        options: PgConnectOptions,
        size: usize,
        acquire_timeout: Duration,
        ping_when_idle_for: Duration,
    ) -> Self {
        Self {
            options,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Arc::new(Semaphore::new(size.max(1))),
            acquire_timeout,
            ping_when_idle_for,
        }
    }

    pub(crate) async fn query_all(&self, stmt: &Statement) -> Result<Vec<QueryResult>, DbErr> {
        let mut lease = self.acquire().await?;
        let rows: Result<Vec<PgRow>, sqlx::Error> = query(stmt).fetch_all(&mut lease.conn).await;
        self.give_back(lease, rows.as_ref().err());
        Ok(rows
            .map_err(query_err)?
            .into_iter()
            .map(QueryResult::from)
            .collect())
    }

    /// The rows of a query, each read by `row` (a [`crate::decode::Decode`] row, say).
    pub(crate) async fn rows<T>(
        &self,
        stmt: &Statement,
        row: impl FnMut(&PgRow) -> Result<T, DbErr>,
    ) -> Result<Vec<T>, DbErr> {
        let mut lease = self.acquire().await?;
        let rows: Result<Vec<PgRow>, sqlx::Error> = query(stmt).fetch_all(&mut lease.conn).await;
        self.give_back(lease, rows.as_ref().err());
        rows.map_err(query_err)?.iter().map(row).collect()
    }

    pub(crate) async fn query_one(&self, stmt: &Statement) -> Result<Option<QueryResult>, DbErr> {
        let mut lease = self.acquire().await?;
        let row = query(stmt).fetch_optional(&mut lease.conn).await;
        self.give_back(lease, row.as_ref().err());
        Ok(row.map_err(query_err)?.map(QueryResult::from))
    }

    pub(crate) async fn execute(&self, stmt: &Statement) -> Result<ExecResult, DbErr> {
        let mut lease = self.acquire().await?;
        let done = query(stmt).execute(&mut lease.conn).await;
        self.give_back(lease, done.as_ref().err());
        done.map(ExecResult::from)
            .map_err(|e| DbErr::Exec(RuntimeErr::SqlxError(e.into())))
    }

    pub(crate) async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let mut lease = self.acquire().await?;
        let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut lease.conn)
            .await;
        self.give_back(lease, done.as_ref().err());
        done.map(ExecResult::from)
            .map_err(|e| DbErr::Exec(RuntimeErr::SqlxError(e.into())))
    }

    /// Starts a write transaction on a connection of the pool with `begin`: `BEGIN`, or
    /// `BEGIN` followed by `SET LOCAL`s sent with it (one round trip for all of them).
    pub(crate) async fn begin(self: &Arc<Self>, begin: &'static str) -> Result<WriteTxn, DbErr> {
        debug_assert!(begin.starts_with("BEGIN"));
        let mut lease = self.acquire().await?;
        let begun = sqlx::raw_sql(begin).execute(&mut lease.conn).await;
        if let Err(e) = begun {
            self.give_back(lease, Some(&e));
            return Err(DbErr::Exec(RuntimeErr::SqlxError(e.into())));
        }
        Ok(WriteTxn {
            pool: self.clone(),
            conn: AsyncMutex::new(Some(InTxn { lease, busy: false })),
            single: None,
        })
    }

    /// A write of one statement, which PostgreSQL runs as its own transaction: no `BEGIN`
    /// and no `COMMIT`, two round trips fewer. A second statement is refused.
    pub(crate) async fn begin_single(self: &Arc<Self>) -> Result<WriteTxn, DbErr> {
        let lease = self.acquire().await?;
        Ok(WriteTxn {
            pool: self.clone(),
            conn: AsyncMutex::new(Some(InTxn { lease, busy: false })),
            single: Some(AtomicBool::new(false)),
        })
    }

    /// Closes the idle connections and refuses new leases; leased ones close when dropped.
    pub(crate) async fn close(&self) {
        self.permits.close();
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        for idle in idle {
            let _ = idle.conn.close().await;
        }
    }

    async fn acquire(&self) -> Result<Lease, DbErr> {
        let permit =
            tokio::time::timeout(self.acquire_timeout, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))?
                .map_err(|_| DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed))?;
        loop {
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let Some(mut idle) = idle else { break };
            // One used a moment ago is as good as its last answer (HikariCP's
            // `aliveBypassWindowMs`); one idle for longer may have been dropped by a restart.
            if idle.since.elapsed() >= self.ping_when_idle_for && idle.conn.ping().await.is_err() {
                continue;
            }
            return Ok(Lease {
                conn: idle.conn,
                opened: idle.opened,
                _permit: permit,
            });
        }
        let conn = PgConnection::connect_with(&self.options)
            .await
            .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(e.into())))?;
        Ok(Lease {
            conn,
            opened: Instant::now(),
            _permit: permit,
        })
    }

    /// Returns the connection of a statement that completed (also with an error the server
    /// reported: the protocol is then at a known point). After any other error the
    /// connection is closed; a lease dropped unfinished closes its connection too.
    fn give_back(&self, lease: Lease, error: Option<&sqlx::Error>) {
        let Lease { conn, opened, .. } = lease;
        if error.is_none_or(reported_by_a_live_session) && opened.elapsed() < MAX_LIFETIME {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Idle {
                    conn,
                    opened,
                    since: Instant::now(),
                });
        }
    }
}

/// A transaction on a connection of a [`ConnPool`] ([`ConnPool::begin`]). Finish it with
/// [`WriteTxn::commit`]; dropped before, it is rolled back.
pub(crate) struct WriteTxn {
    pool: Arc<ConnPool>,
    /// `None` once committed.
    conn: AsyncMutex<Option<InTxn>>,
    /// A single-statement write ([`ConnPool::begin_single`]): whether its statement ran.
    single: Option<AtomicBool>,
}

struct InTxn {
    lease: Lease,
    /// A statement was sent and its answer not yet read: set while one runs, so that a
    /// transaction dropped half-way through a statement (its caller cancelled) closes the
    /// connection instead of rolling back on a protocol in an unknown state. Also left set
    /// after a failure the server did not report (the connection broke).
    busy: bool,
}

impl std::fmt::Debug for WriteTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTxn").finish_non_exhaustive()
    }
}

impl WriteTxn {
    /// Runs `run` on the transaction's connection, marked busy while it runs.
    async fn with_conn<T>(
        &self,
        run: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, DbErr> {
        let mut guard = self.conn.lock().await;
        let Some(txn) = guard.as_mut() else {
            return Err(DbErr::Custom(
                "the transaction was already committed".to_owned(),
            ));
        };
        if let Some(ran) = &self.single
            && ran.swap(true, Ordering::AcqRel)
        {
            return Err(DbErr::Custom(
                "a single-statement write was given a second statement".to_owned(),
            ));
        }
        txn.busy = true;
        let result = run(&mut txn.lease.conn).await;
        // A failure the server did not report leaves the session in an unknown state:
        // still "busy", so that it is closed rather than reused.
        txn.busy = result
            .as_ref()
            .is_err_and(|e| !reported_by_a_live_session(e));
        result.map_err(|e| DbErr::Query(RuntimeErr::SqlxError(e.into())))
    }

    pub(crate) async fn query_all(&self, stmt: &Statement) -> Result<Vec<QueryResult>, DbErr> {
        let rows = self
            .with_conn(async |conn| query(stmt).fetch_all(conn).await)
            .await?;
        Ok(rows.into_iter().map(QueryResult::from).collect())
    }

    pub(crate) async fn query_one(&self, stmt: &Statement) -> Result<Option<QueryResult>, DbErr> {
        let row = self
            .with_conn(async |conn| query(stmt).fetch_optional(conn).await)
            .await?;
        Ok(row.map(QueryResult::from))
    }

    pub(crate) async fn execute(&self, stmt: &Statement) -> Result<ExecResult, DbErr> {
        let done = self
            .with_conn(async |conn| query(stmt).execute(conn).await)
            .await
            .map_err(query_to_exec_err)?;
        Ok(ExecResult::from(done))
    }

    pub(crate) async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let done = self
            .with_conn(async |conn| {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(conn)
                    .await
            })
            .await
            .map_err(query_to_exec_err)?;
        Ok(ExecResult::from(done))
    }

    /// Commits, and gives the connection back to its pool.
    pub(crate) async fn commit(self) -> Result<(), DbErr> {
        let Some(mut txn) = self.conn.lock().await.take() else {
            return Err(DbErr::Custom(
                "the transaction was already committed".to_owned(),
            ));
        };
        if self.single.is_some() {
            // Its statement committed when it ran.
            if !txn.busy {
                self.pool.give_back(txn.lease, None);
            }
            return Ok(());
        }
        // Not marked busy: `txn` is owned here, so a cancelled commit drops the connection.
        let done = sqlx::raw_sql("COMMIT").execute(&mut txn.lease.conn).await;
        self.pool.give_back(txn.lease, done.as_ref().err());
        done.map(|_| ())
            .map_err(|e| DbErr::Exec(RuntimeErr::SqlxError(e.into())))
    }
}

impl Drop for WriteTxn {
    /// Rolls an unfinished transaction back, then gives its connection back; closes the
    /// connection instead when a statement was cut off or no runtime is left to roll back.
    fn drop(&mut self) {
        let Some(mut txn) = self.conn.get_mut().take() else {
            return;
        };
        if txn.busy {
            return;
        }
        if self.single.is_some() {
            // Nothing to roll back: a statement that ran committed; none may have run.
            self.pool.give_back(txn.lease, None);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = self.pool.clone();
        runtime.spawn(async move {
            let done = sqlx::raw_sql("ROLLBACK").execute(&mut txn.lease.conn).await;
            if done.is_ok() {
                pool.give_back(txn.lease, None);
            }
        });
    }
}

fn query_to_exec_err(e: DbErr) -> DbErr {
    match e {
        DbErr::Query(e) => DbErr::Exec(e),
        other => other,
    }
}

/// A connection taken from the pool, with the permit that counts it.
struct Lease {
    conn: PgConnection,
    opened: Instant,
    _permit: OwnedSemaphorePermit,
}

fn query(stmt: &Statement) -> sqlx::query::Query<'_, sqlx::Postgres, SqlxValues> {
    let values = stmt.values.clone().unwrap_or(sea_orm::Values(Vec::new()));
    sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql.as_str()), SqlxValues(values))
}

/// Whether the session survives `error`: an error the server reported for the statement
/// (a syntax error, a constraint) leaves it usable; a FATAL one (the server shutting down,
/// an administrator terminating it) and any other failure do not.
fn reported_by_a_live_session(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(e) = error else {
        return false;
    };
    e.try_downcast_ref::<PgDatabaseError>()
        .is_some_and(|e| !matches!(e.severity(), PgSeverity::Fatal | PgSeverity::Panic))
}

fn query_err(e: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(e.into()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    use crate::testing::{Backend, with_db};

    fn sql(sql: &str) -> Statement {
        Statement::from_string(DbBackend::Postgres, sql)
    }

    /// The server process behind the connection `db` runs its next statement on.
    async fn backend_pid(db: &impl ConnectionTrait) -> anyhow::Result<i32> {
        let row = db
            .query_one_raw(sql("SELECT pg_backend_pid() AS pid"))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no row"))?;
        Ok(row.try_get("", "pid")?)
    }

    async fn reader_pid(store: &crate::Store) -> anyhow::Result<i32> {
        backend_pid(store.reader()).await
    }

    /// A server restart (here: its sessions terminated) while the readers sit idle costs
    /// no failed read: an idle connection is pinged, found dead and replaced.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_after_the_sessions_were_terminated_succeeds() -> anyhow::Result<()> {
        with_db(Backend::Postgres, |store, _| async move {
            let before = reader_pid(&store).await?;
            store
                .writer()
                .execute_unprepared(&format!("SELECT pg_terminate_backend({before})"))
                .await?;
            tokio::time::sleep(
                super::super::connect::PING_WHEN_IDLE_FOR + Duration::from_millis(100),
            )
            .await;
            let after = reader_pid(&store).await?;
            assert_ne!(before, after, "the terminated session was reused");
            Ok(())
        })
        .await
    }

    /// A read dropped half-way (a client that went away) leaves no connection in an unknown
    /// protocol state: the next read on the pool gets its own answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_read_does_not_leak_into_the_next() -> anyhow::Result<()> {
        with_db(Backend::Postgres, |store, _| async move {
            let slow = store
                .reader()
                .query_one_raw(sql("SELECT 'late' AS v FROM pg_sleep(1)"));
            assert!(
                tokio::time::timeout(Duration::from_millis(100), slow)
                    .await
                    .is_err()
            );
            for i in 0..20 {
                let row = store
                    .reader()
                    .query_one_raw(sql(&format!("SELECT '{i}' AS v")))
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no row"))?;
                assert_eq!(row.try_get::<String>("", "v")?, i.to_string());
            }
            Ok(())
        })
        .await
    }

    async fn tenants_named(store: &crate::Store, name: &str) -> anyhow::Result<i64> {
        let row = store
            .reader()
            .query_one_raw(sql(&format!(
                "SELECT count(*) AS n FROM tenants WHERE name = '{name}'"
            )))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no row"))?;
        Ok(row.try_get("", "n")?)
    }

    fn insert_tenant(name: &str) -> Statement {
        sql(&format!(
            "INSERT INTO tenants (id, name, created_at) VALUES ('{name}', '{name}', 0)"
        ))
    }

    /// A write transaction dropped without a commit (a handler that returned an error) is
    /// rolled back, and its connection serves the next write outside any transaction.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_write_is_rolled_back_and_its_connection_reused() -> anyhow::Result<()> {
        with_db(Backend::Postgres, |store, _| async move {
            let txn = store.begin_write().await?;
            txn.execute_raw(insert_tenant("abandoned")).await?;
            let pid = backend_pid(&txn).await?;
            drop(txn);
            // The rollback runs on a task of its own; the connection is back after it. Writes
            // begun meanwhile are held, so that each takes another connection.
            let mut held = Vec::new();
            let mut reused = false;
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let txn = store.begin_write().await?;
                let now = backend_pid(&txn).await?;
                held.push(txn);
                if now == pid {
                    reused = true;
                    break;
                }
            }
            drop(held);
            assert!(reused, "the rolled-back connection never came back");
            assert_eq!(tenants_named(&store, "abandoned").await?, 0);
            let txn = store.begin_write().await?;
            txn.execute_raw(insert_tenant("kept")).await?;
            store.commit(txn).await?;
            assert_eq!(tenants_named(&store, "kept").await?, 1);
            assert_eq!(tenants_named(&store, "abandoned").await?, 0);
            Ok(())
        })
        .await
    }

    /// A write cancelled while a statement runs (its client went away) commits nothing,
    /// and no later write inherits its connection's unread answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_cancelled_mid_statement_commits_nothing() -> anyhow::Result<()> {
        with_db(Backend::Postgres, |store, _| async move {
            let txn = store.begin_write().await?;
            txn.execute_raw(insert_tenant("cancelled")).await?;
            let slow = txn.query_one_raw(sql("SELECT 'late' AS v FROM pg_sleep(1)"));
            assert!(
                tokio::time::timeout(Duration::from_millis(100), slow)
                    .await
                    .is_err()
            );
            drop(txn);
            for i in 0..20 {
                let txn = store.begin_write().await?;
                let row = txn
                    .query_one_raw(sql(&format!("SELECT '{i}' AS v")))
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no row"))?;
                assert_eq!(row.try_get::<String>("", "v")?, i.to_string());
                store.commit(txn).await?;
            }
            assert_eq!(tenants_named(&store, "cancelled").await?, 0);
            Ok(())
        })
        .await
    }

    /// A single-statement write commits its statement without `BEGIN`/`COMMIT`, refuses a
    /// second one (which would run outside any transaction), and leaves its connection
    /// outside a transaction for the next write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_single_statement_write_commits_its_statement_and_refuses_a_second()
    -> anyhow::Result<()> {
        with_db(Backend::Postgres, |store, _| async move {
            let txn = store.begin_single_write().await?;
            txn.execute_raw(insert_tenant("single")).await?;
            // Committed already, as its own transaction.
            assert_eq!(tenants_named(&store, "single").await?, 1);
            let second = txn.execute_raw(insert_tenant("second")).await;
            assert!(
                format!("{second:?}").contains("second statement"),
                "{second:?}"
            );
            store.commit(txn).await?;
            assert_eq!(tenants_named(&store, "second").await?, 0);

            // Dropped without a commit after its statement: the statement stays.
            let txn = store.begin_single_write().await?;
            txn.execute_raw(insert_tenant("dropped")).await?;
            drop(txn);
            assert_eq!(tenants_named(&store, "dropped").await?, 1);

            // The connections went back outside a transaction: a write that fails rolls
            // back what it wrote.
            for _ in 0..4 {
                let txn = store.begin_write().await?;
                txn.execute_raw(insert_tenant("rolled-back")).await?;
                drop(txn);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(tenants_named(&store, "rolled-back").await?, 0);
            Ok(())
        })
        .await
    }

    /// A statement error the server reports leaves the connection usable, and the error
    /// reaches the caller as sea-orm reports it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_statement_keeps_its_connection() -> anyhow::Result<()> {
        with_db(Backend::Postgres, |store, _| async move {
            let pid = reader_pid(&store).await?;
            let err = store.reader().query_one_raw(sql("SELECT 1/0 AS v")).await;
            assert!(format!("{err:?}").contains("division by zero"), "{err:?}");
            assert_eq!(reader_pid(&store).await?, pid);
            Ok(())
        })
        .await
    }
}
