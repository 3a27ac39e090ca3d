//! The worker's claim on PostgreSQL: the due deliveries are chosen, locked, leased and read
//! with their events and targets by one prepared statement, one round trip.
//!
//! An idle service's claim of a deactivation's deliveries took four round trips (`BEGIN`
//! with its settings, the candidates, the lease, `COMMIT`): 1.1–2.1 ms before the first
//! logout token was signed, a third of the 5 ms in which the logouts should reach their
//! relying parties. The settings a claim needs are those of the session instead: claims
//! have connections of their own ([`CLAIM_SETTINGS`]), and a claim is one statement, its
//! own transaction. Sent as a script with its values written in, the same claim cost
//! PostgreSQL twice the time, planning it anew every time.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use sea_orm::{DbErr, FromQueryResult, Iterable, QueryResult, Statement};

use super::Claimed;
use crate::StoreError;
use crate::entity::{delivery, event, target};
use crate::postgres::ConnPool;

/// How a claim runs: it need not wait for the disk (lost in a crash, a lease is as if
/// expired), and the candidates must come in index order, a few rows read and no sort.
/// While autovacuum has not yet analyzed an outbox that just filled, PostgreSQL takes the
/// waiting deliveries for a handful and sorts all of them (20 ms per claim with 15,000
/// waiting) unless sorts, bitmap scans and scans are ruled out. Ruled out, the sorts the
/// choice per target cannot do without are priced so high that PostgreSQL would compile the
/// statement to machine code first (JIT: 300 ms for a claim of one delivery), so JIT is off
/// too. The plan is made once per connection and kept (the generic plan): planned at every
/// claim, it took a fifth of the claim's time in PostgreSQL. The settings of the claims'
/// connections (`Store::connect`).
pub(crate) const CLAIM_SETTINGS: [(&str, &str); 6] = [
    ("synchronous_commit", "off"),
    ("enable_sort", "off"),
    ("enable_bitmapscan", "off"),
    ("enable_seqscan", "off"),
    ("jit", "off"),
    ("plan_cache_mode", "force_generic_plan"),
];

/// The stepwise claim's transaction ([`super::Store::claim_due`]), on a connection of the
/// writes: `BEGIN` and [`CLAIM_SETTINGS`] for the transaction.
pub(super) static CLAIM_BEGIN: LazyLock<String> = LazyLock::new(|| {
    let mut begin = "BEGIN".to_owned();
    for (name, value) in CLAIM_SETTINGS {
        begin.push_str(&format!("; SET LOCAL {name} TO {value}"));
    }
    begin
});

/// What a claim asks for: of the oldest `window` waiting deliveries due at `now` that no
/// other worker has locked, in due order, those whose target stays within `per_target`
/// counting `in_flight`, up to `limit`, leased to `owner` until `until`.
pub(super) struct Claim<'a> {
    pub owner: &'a str,
    pub now: i64,
    pub until: i64,
    pub window: i64,
    pub limit: usize,
    pub per_target: usize,
    pub in_flight: &'a HashMap<String, usize>,
}

/// Claims, in one round trip, what [`super::Store::claim_due`] would, returned with their
/// events and targets.
///
/// The work of other targets past a window full of targets at their limit is not reached
/// here: when this finds nothing while a target is at its limit, the caller claims
/// stepwise.
pub(super) async fn claim_in_one_trip(
    claims: &ConnPool,
    claim: &Claim<'_>,
) -> Result<Vec<Claimed>, StoreError> {
    let rows = claims.query_all(&claim_statement(claim)?).await?;
    claimed_of(&rows)
}

/// The claim of [`claim_in_one_trip`], one statement of fixed text (prepared once per
/// connection): `$1` owner, `$2` now, `$3` until, `$4` window, `$5` per target, `$6` limit,
/// `$7` what each target has in flight (a JSON object). `nth` is the place a candidate
/// would take among its target's attempts in flight.
pub(super) fn claim_statement(claim: &Claim<'_>) -> Result<Statement, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH candidates AS (SELECT id, target_id, next_attempt_at FROM deliveries \
             WHERE status IN ('pending', 'retrying') AND next_attempt_at <= $2 \
             AND (lease_expires_at IS NULL OR lease_expires_at < $2) \
             ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED), \
             chosen AS (SELECT id FROM (SELECT id, next_attempt_at, \
             row_number() OVER (PARTITION BY target_id ORDER BY next_attempt_at, id) \
             + COALESCE(($7::jsonb ->> target_id)::bigint, 0) AS nth FROM candidates) ranked \
             WHERE nth <= $5 ORDER BY next_attempt_at, id LIMIT $6), \
             leased AS (UPDATE deliveries SET lease_owner = $1, lease_expires_at = $3, \
             updated_at = $2 WHERE id IN (SELECT id FROM chosen) RETURNING *) {}",
            read_leased()
        )
    });
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let held = serde_json::to_value(claim.in_flight).map_err(|e| DbErr::Custom(e.to_string()))?;
    Ok(Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        SQL.as_str(),
        [
            claim.owner.into(),
            claim.now.into(),
            claim.until.into(),
            claim.window.into(),
            count(claim.per_target).into(),
            count(claim.limit).into(),
            held.into(),
        ],
    ))
}

/// The lease of the deliveries `ids` to `owner` until `until` (for the stepwise claim),
/// returning them with their events and targets for [`claimed_of`].
pub(super) fn lease_statement(owner: &str, now: i64, until: i64, ids: Vec<String>) -> Statement {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH leased AS (UPDATE deliveries SET lease_owner = $1, lease_expires_at = $2, \
             updated_at = $3 WHERE id IN (SELECT jsonb_array_elements_text($4::jsonb)) \
             RETURNING *) {}",
            read_leased()
        )
    });
    let ids = serde_json::Value::Array(ids.into_iter().map(serde_json::Value::String).collect());
    Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        SQL.as_str(),
        [owner.into(), until.into(), now.into(), ids.into()],
    )
}

/// Reads the rows of `leased` with their events and targets. Each event and target is
/// looked up by its primary key, one row per delivery (`LATERAL … LIMIT 1`, which the
/// planner cannot turn into a join): joined plainly, PostgreSQL read every event into a
/// hash for each claim while its statistics still described a small table, however few
/// deliveries the claim leased.
fn read_leased() -> String {
    fn aliased<C: sea_orm::IdenStatic>(table: &str, columns: impl Iterator<Item = C>) -> String {
        columns
            .map(|c| format!("{table}.{0} AS {table}_{0}", c.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
    format!(
        "SELECT leased.*, {}, {} FROM leased \
         LEFT JOIN LATERAL (SELECT * FROM events WHERE events.id = leased.event_id LIMIT 1) e \
         ON true \
         LEFT JOIN LATERAL (SELECT * FROM targets WHERE targets.id = leased.target_id LIMIT 1) t \
         ON true",
        aliased("e", event::Column::iter()),
        aliased("t", target::Column::iter()),
    )
}

/// The claimed deliveries of rows read by [`read_leased`]. Each event and target is decoded
/// once, and shared by its deliveries.
pub(super) fn claimed_of(rows: &[QueryResult]) -> Result<Vec<Claimed>, StoreError> {
    let mut events: HashMap<String, Arc<event::Model>> = HashMap::new();
    let mut targets: HashMap<String, Arc<target::Model>> = HashMap::new();
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let delivery = delivery::Model::from_query_result(row, "")?;
        let event = match events.get(&delivery.event_id) {
            Some(e) => e.clone(),
            None if row.try_get::<Option<String>>("e_", "id")?.is_none() => {
                return Err(StoreError::NotFound(format!(
                    "event {} of delivery {} is missing",
                    delivery.event_id, delivery.id
                )));
            }
            None => {
                let e = Arc::new(event::Model::from_query_result(row, "e_")?);
                events.insert(e.id.clone(), e.clone());
                e
            }
        };
        let target = match row.try_get::<Option<String>>("t_", "id")? {
            None => None,
            Some(id) => Some(match targets.get(&id) {
                Some(t) => t.clone(),
                None => {
                    let t = Arc::new(target::Model::from_query_result(row, "t_")?);
                    targets.insert(id, t.clone());
                    t
                }
            }),
        };
        claimed.push(Claimed {
            delivery,
            event,
            target,
        });
    }
    Ok(claimed)
}
