//! PostgreSQL connections for reads outside a transaction, held here rather than in sqlx's
//! pool.
//!
//! sqlx's pool pings every connection given back to it (`Floating::return_to_pool` in
//! sqlx-core 0.9), from a task spawned on drop: a second round trip and a thread hand-off
//! for a read that is one statement (a SCIM GET). Measured on 2 cores, GET by id went from
//! ~9,500 to ~13,300 requests/s without it. Here a connection goes back as it is when its
//! statement has completed, and is dropped when it has not (a caller cancelled mid-way):
//! a connection is never reused in an unknown protocol state, which is what sqlx's ping is
//! there to catch.
//!
//! Writes and read transactions keep sqlx's pool (sea-orm transactions need it); a
//! transaction is many round trips, so its one ping matters less.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError, PgRow, PgSeverity};
use sea_orm::sqlx::{self, Connection as _};
use sea_orm::{ConnAcquireErr, DbErr, ExecResult, QueryResult, RuntimeErr, Statement};
use sea_query_sqlx::SqlxValues;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A connection this old is closed rather than reused, so that the server can free what a
/// session accumulates (sqlx's pool default).
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Read connections to one PostgreSQL database, opened on demand up to a bound.
#[derive(Debug)]
pub(crate) struct ReaderPool {
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

impl ReaderPool {
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

    async fn reader_pid(store: &crate::Store) -> anyhow::Result<i32> {
        let row = store
            .reader()
            .query_one_raw(sql("SELECT pg_backend_pid() AS pid"))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no row"))?;
        Ok(row.try_get("", "pid")?)
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
