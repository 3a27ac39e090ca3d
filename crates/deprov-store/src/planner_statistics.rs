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
//! [`MIN_CHANGES`] rows), as autovacuum would, but within seconds.
//!
//! SQLite's planner does not use collected statistics here (deprov never runs `ANALYZE` on
//! it, and writes its hot statements so that they need none): nothing to do there.

use sea_orm::{ConnectionTrait, Statement, TransactionTrait};

use crate::{Backend, Store, StoreError};

/// Fewer changed rows than this never trigger an analysis.
pub const MIN_CHANGES: i64 = 1_000;

impl Store {
    /// Analyzes deprov's PostgreSQL tables that changed by more than a tenth of their rows
    /// (and at least [`MIN_CHANGES`]) since their last analysis; returns their names. A table
    /// another session holds a conflicting lock on (autovacuum, say) is skipped until the
    /// next call. Nothing on SQLite.
    pub async fn analyze_changed_tables(&self) -> Result<Vec<String>, StoreError> {
        if self.backend() != Backend::Postgres {
            return Ok(Vec::new());
        }
        let conn = self.writer();
        let rows = conn
            .query_all_raw(Statement::from_sql_and_values(
                conn.get_database_backend(),
                "SELECT relname::text AS name FROM pg_stat_user_tables \
                 WHERE schemaname = current_schema() \
                 AND n_mod_since_analyze >= GREATEST($1, n_live_tup / 10) \
                 ORDER BY relname",
                [MIN_CHANGES.into()],
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
