//! What `/metrics` reads from the database at scrape time: the state of the outbox and the
//! events recorded, for the whole deployment.
//!
//! These numbers are read here rather than counted in a process because several replicas
//! may share one PostgreSQL: any replica's worker may claim, settle or dead-letter any
//! delivery, and any replica's SCIM endpoint may record an event, so only the database
//! knows the queue's depth or how many events there are. Every replica therefore reports
//! the same values; dashboards aggregate them with `max`, not `sum`.
//!
//! Cost: the waiting deliveries are read through the partial index `ix_deliveries_waiting`
//! and the dead letters through `ix_deliveries_due` (`status` first), so both stay cheap
//! however many deliveries have ended. Counting events by kind reads the whole `events`
//! table; the caller caches the snapshot for a few seconds so that a scrape costs at most
//! one such count per cache period.

use sea_orm::{ConnectionTrait, Statement};
use serde::Serialize;

use crate::outbox::{PENDING, RETRYING};
use crate::{Store, StoreError, now_millis};

/// One reading of the outbox and the events, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MetricsSnapshot {
    /// Deliveries never attempted yet.
    pub pending: u64,
    /// Deliveries that failed recoverably and wait for their next attempt.
    pub retrying: u64,
    /// Dead letters: deliveries given up on, waiting for an operator to re-drive them.
    pub dead: u64,
    /// Age in milliseconds of the oldest delivery still waiting (pending or retrying);
    /// `None` when nothing waits.
    pub oldest_waiting_ms: Option<i64>,
    /// Events recorded, by kind (`deactivated`, `deleted`, …), in name order.
    pub events_by_kind: Vec<(String, u64)>,
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Store {
    /// Reads a [`MetricsSnapshot`] (three short read-only queries).
    pub async fn metrics_snapshot(&self) -> Result<MetricsSnapshot, StoreError> {
        let db = self.reader();
        let backend = db.get_database_backend();
        let mut snapshot = MetricsSnapshot::default();
        // The statuses are literals so that the planner can use the partial index.
        let waiting = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT status, COUNT(*) AS n, MIN(created_at) AS oldest FROM deliveries \
                 WHERE status IN ('pending', 'retrying') GROUP BY status",
            ))
            .await?;
        let mut oldest: Option<i64> = None;
        for row in waiting {
            let status: String = row.try_get("", "status")?;
            let n: i64 = row.try_get("", "n")?;
            let first: Option<i64> = row.try_get("", "oldest")?;
            match status.as_str() {
                PENDING => snapshot.pending = count(n),
                RETRYING => snapshot.retrying = count(n),
                _ => {}
            }
            oldest = match (oldest, first) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        snapshot.oldest_waiting_ms = oldest.map(|t| (now_millis() - t).max(0));
        let dead = db
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT COUNT(*) AS n FROM deliveries WHERE status = 'dead'",
            ))
            .await?;
        if let Some(row) = dead {
            snapshot.dead = count(row.try_get("", "n")?);
        }
        let kinds = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT kind, COUNT(*) AS n FROM events GROUP BY kind ORDER BY kind",
            ))
            .await?;
        for row in kinds {
            snapshot
                .events_by_kind
                .push((row.try_get("", "kind")?, count(row.try_get("", "n")?)));
        }
        Ok(snapshot)
    }
}
