//! Planner statistics on PostgreSQL, kept up with deprov's own bursts.
//!
//! A table that just filled (an identity provider's first import of 10,000 users, a mass
//! de-provisioning's 100,000 deliveries) has no statistics until autovacuum analyzes it,
//! which takes up to a minute after it notices, and until then PostgreSQL takes it for a
//! handful of rows. Where several indexes could answer a lookup their costs then tie: the
//! Okta re-POST lookup by `externalId` was seen filtering every user of the tenant through
//! `ix_users_tenant_created` (20–25 ms per POST) instead of using
//! `ix_users_tenant_external_id` (0.04 ms). [`Store::analyze_changed_tables`] analyzes
//! deprov's tables that changed by a tenth since their last analysis (and by at least
//! [`MIN_CHANGES`] rows), as autovacuum would, but within seconds when the planner's
//! picture is off by half or more (never analyzed, or the table doubled or halved since).
//!
//! A table that changes steadily without growing (a storm of deactivations rewriting
//! `users`) is analyzed at most once per [`ROUTINE_INTERVAL_SECS`], as autovacuum would:
//! an earlier version analyzed it every few seconds during a sustained write benchmark,
//! 68–602 ms of PostgreSQL's time each, while the row count the plans rest on held.
//!
//! SQLite's planner does not use collected statistics here (deprov never runs `ANALYZE` on
//! it, and writes its hot statements so that they need none): nothing to do there.

use sea_orm::{ConnectionTrait, Statement, TransactionTrait};

use crate::{Backend, Store, StoreError};

/// Fewer changed rows than this never trigger an analysis.
pub const MIN_CHANGES: i64 = 1_000;

/// A table whose row count the planner has about right is analyzed at most this often
/// (autovacuum's own `autovacuum_naptime` default).
pub const ROUTINE_INTERVAL_SECS: i64 = 60;

impl Store {
    /// Analyzes deprov's PostgreSQL tables that changed by more than a tenth of their rows
    /// (and at least [`MIN_CHANGES`]) since their last analysis, and that were never
    /// analyzed, doubled or halved since, or were last analyzed more than
    /// [`ROUTINE_INTERVAL_SECS`] ago; returns their names. A table another session holds a
    /// conflicting lock on (autovacuum, say) is skipped until the next call. Nothing on
    /// SQLite.
    pub async fn analyze_changed_tables(&self) -> Result<Vec<String>, StoreError> {
        if self.backend() != Backend::Postgres {
            return Ok(Vec::new());
        }
        let conn = self.writer();
        let rows = conn
            .query_all_raw(Statement::from_sql_and_values(
                conn.get_database_backend(),
                // `reltuples` is the row count the planner works with (-1: never analyzed).
                "SELECT s.relname::text AS name FROM pg_stat_user_tables s \
                 JOIN pg_class c ON c.oid = s.relid \
                 WHERE s.schemaname = current_schema() \
                 AND s.n_mod_since_analyze >= GREATEST($1, s.n_live_tup / 10) \
                 AND (c.reltuples < 0 \
                   OR s.n_live_tup >= 2 * c.reltuples OR 2 * s.n_live_tup <= c.reltuples \
                   OR COALESCE(GREATEST(s.last_analyze, s.last_autoanalyze), '-infinity') \
                      < now() - make_interval(secs => $2::double precision)) \
                 ORDER BY s.relname",
                [MIN_CHANGES.into(), ROUTINE_INTERVAL_SECS.into()],
            ))
            .await?;
        let mut analyzed = Vec::new();
        for row in rows {
            let name: String = row.try_get("", "name")?;
            let txn = conn.begin().await?;
            // Never wait behind autovacuum or a migration: try again at the next call.
            let done = txn
                .execute_unprepared(&format!(
                    "SET LOCAL lock_timeout = '200ms'; ANALYZE \"{}\"",
                    name.replace('"', "\"\"")
                ))
                .await;
            match done {
                Ok(_) => {
                    txn.commit().await?;
                    analyzed.push(name);
                }
                Err(e) => {
                    tracing::debug!(table = %name, error = %e, "ANALYZE skipped");
                    txn.rollback().await?;
                }
            }
        }
        Ok(analyzed)
    }
}
