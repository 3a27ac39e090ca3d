//! The worker's path through the outbox on SQLite: claiming and settling deliveries, one
//! cached statement per row on the write connection, bound and read by position.
//!
//! SQLite runs in this process: a prepared statement costs microseconds and no round trip,
//! so the batched forms PostgreSQL needs cost more here than they save. A batch of rows
//! bound as JSON is re-parsed by SQLite for every column it extracts, a list of ids is a
//! new statement for every length, and sea-orm's rows build a map per row. In a drain of
//! 100,000 logouts those made claiming and settling a third of deprov's CPU.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{Connection, Row, params};
use sea_orm::DbErr;

use super::{Claimed, NewDelivery, PENDING, RETRYING, Settle, SettleRequest};
use crate::decode::Row as _;
use crate::entity::{delivery, event, target};
use crate::sqlite::{exec_err, query_err};

/// Writes a new delivery, pending and due at `?6`.
const ENQUEUE: &str = "INSERT INTO deliveries (id, event_id, tenant_id, target_id, target_kind, \
     status, attempt_count, next_attempt_at, lease_owner, lease_expires_at, last_error, \
     created_at, updated_at, completed_at, redriven_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, NULL, NULL, NULL, ?6, ?6, NULL, NULL)";

/// Writes `rows` for tenant `tenant_id` at `now`, one cached statement per row: at a mass
/// de-provisioning, sea-orm's multi-row INSERT (its statement built anew for every PATCH,
/// and its RETURNING, which SQLite collects in a temporary table) cost a third as much as
/// SQLite's own b-tree work for the rows.
pub(super) fn enqueue(
    conn: &Connection,
    tenant_id: &str,
    now: i64,
    rows: &[NewDelivery<'_>],
) -> Result<(), DbErr> {
    let mut insert = conn.prepare_cached(ENQUEUE).map_err(exec_err)?;
    for d in rows {
        insert
            .execute(params![
                d.id,
                d.event_id,
                tenant_id,
                d.target.id,
                d.target.kind,
                now
            ])
            .map_err(exec_err)?;
    }
    Ok(())
}

/// `id, target_id` of the oldest `?2` deliveries claimable at `?1`, through the partial
/// index `ix_deliveries_waiting` (SQLite is told the index: without statistics it would sort
/// every waiting row instead). The statuses are literals: only then does the index's WHERE
/// match.
pub(super) const CANDIDATES: &str = "SELECT id, target_id FROM deliveries INDEXED BY ix_deliveries_waiting \
     WHERE status IN ('pending', 'retrying') AND next_attempt_at <= ?1 \
     AND (lease_expires_at IS NULL OR lease_expires_at < ?1) \
     ORDER BY next_attempt_at, id LIMIT ?2";

/// The columns of `deliveries`, in the order [`delivery_of`] reads them.
const DELIVERY_COLUMNS: &str = "id, event_id, tenant_id, target_id, target_kind, status, \
     attempt_count, next_attempt_at, lease_owner, lease_expires_at, last_error, created_at, \
     updated_at, completed_at, redriven_at";

/// The columns of `events`, in the order [`event_of`] reads them.
const EVENT_COLUMNS: &str = "id, tenant_id, kind, user_id, user_snapshot, group_id, \
     group_display_name, request_id, scim_method, scim_path, occurred_at";

/// The columns of `targets`, in the order [`target_of`] reads them.
const TARGET_COLUMNS: &str =
    "id, tenant_id, kind, client_id, config, enabled, created_at, updated_at";

/// Leases delivery `?4` to `?1` until `?2` (now `?3`), returning it.
pub(super) fn lease_sql() -> String {
    format!(
        "UPDATE deliveries SET lease_owner = ?1, lease_expires_at = ?2, updated_at = ?3 \
         WHERE id = ?4 RETURNING {DELIVERY_COLUMNS}"
    )
}

/// Records an attempt of delivery `?1`, numbered from the delivery's count.
pub(super) const RECORD_ATTEMPT: &str = "INSERT INTO delivery_attempts (delivery_id, attempt_no, \
     started_at, latency_ms, http_status, outcome, error, response_excerpt) \
     SELECT id, attempt_count + 1, ?2, ?3, ?4, ?5, ?6, ?7 FROM deliveries WHERE id = ?1";

/// Settles delivery `?1` if `?7` holds its lease and it still waits.
pub(super) fn settle_sql() -> String {
    format!(
        "UPDATE deliveries SET status = ?2, attempt_count = attempt_count + 1, \
         next_attempt_at = COALESCE(?3, next_attempt_at), lease_owner = NULL, \
         lease_expires_at = NULL, last_error = ?4, updated_at = ?5, completed_at = ?6 \
         WHERE id = ?1 AND lease_owner = ?7 AND status IN ('{PENDING}', '{RETRYING}')"
    )
}

pub(super) fn candidates(
    conn: &Connection,
    now: i64,
    window: i64,
) -> Result<Vec<(String, String)>, DbErr> {
    let mut stmt = conn.prepare_cached(CANDIDATES).map_err(query_err)?;
    let rows = stmt
        .query_map(params![now, window], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(query_err)?;
    rows.collect::<Result<_, _>>().map_err(query_err)
}

/// Leases the deliveries `ids` to `owner` until `until` and reads them with their events
/// and targets, in the order given. Each event and target is read once and shared by its
/// deliveries. A delivery that no longer waits (gone, or settled meanwhile) is left out.
pub(super) fn lease_and_read(
    conn: &Connection,
    owner: &str,
    now: i64,
    until: i64,
    ids: &[String],
) -> Result<Vec<Claimed>, DbErr> {
    let mut lease = conn.prepare_cached(&lease_sql()).map_err(exec_err)?;
    let mut read_event = conn
        .prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1"))
        .map_err(query_err)?;
    let mut read_target = conn
        .prepare_cached(&format!(
            "SELECT {TARGET_COLUMNS} FROM targets WHERE id = ?1"
        ))
        .map_err(query_err)?;
    let mut events: HashMap<String, Arc<event::Model>> = HashMap::new();
    let mut targets: HashMap<String, Option<Arc<target::Model>>> = HashMap::new();
    let mut claimed = Vec::with_capacity(ids.len());
    for id in ids {
        let mut rows = lease
            .query(params![owner, until, now, id])
            .map_err(exec_err)?;
        let Some(row) = rows.next().map_err(exec_err)? else {
            continue;
        };
        let delivery = delivery_of(row)?;
        // Stepped to the end: an UPDATE … RETURNING has written its row only then.
        while rows.next().map_err(exec_err)?.is_some() {}
        drop(rows);
        let event = match events.get(&delivery.event_id) {
            Some(e) => e.clone(),
            None => {
                let mut rows = read_event.query([&delivery.event_id]).map_err(query_err)?;
                let Some(row) = rows.next().map_err(query_err)? else {
                    return Err(DbErr::RecordNotFound(format!(
                        "event {} of delivery {} is missing",
                        delivery.event_id, delivery.id
                    )));
                };
                let e = Arc::new(event_of(row)?);
                events.insert(e.id.clone(), e.clone());
                e
            }
        };
        let target = match targets.get(&delivery.target_id) {
            Some(t) => t.clone(),
            None => {
                let mut rows = read_target
                    .query([&delivery.target_id])
                    .map_err(query_err)?;
                let t = match rows.next().map_err(query_err)? {
                    Some(row) => Some(Arc::new(target_of(row)?)),
                    None => None,
                };
                targets.insert(delivery.target_id.clone(), t.clone());
                t
            }
        };
        claimed.push(Claimed {
            delivery,
            event,
            target,
        });
    }
    Ok(claimed)
}

/// Records each attempt, and settles its delivery if `owner` still holds the lease.
/// Returns, in the order given, whether each delivery was settled. The attempt is numbered
/// from the delivery's count before this settle; an attempt of a delivery that no longer
/// exists is not recorded.
pub(super) fn settle(
    conn: &Connection,
    owner: &str,
    now: i64,
    settles: &[SettleRequest],
) -> Result<Vec<bool>, DbErr> {
    let mut record = conn.prepare_cached(RECORD_ATTEMPT).map_err(exec_err)?;
    let mut update = conn.prepare_cached(&settle_sql()).map_err(exec_err)?;
    settles
        .iter()
        .map(|s| {
            let a = &s.attempt;
            let status = s.outcome.status();
            record
                .execute(params![
                    s.delivery_id,
                    a.started_at,
                    a.latency_ms,
                    a.http_status,
                    status,
                    a.error,
                    a.response_excerpt,
                ])
                .map_err(exec_err)?;
            let (retry_at, completed_at) = match s.outcome {
                Settle::Retry { at } => (Some(at), None),
                Settle::Delivered | Settle::Dead | Settle::Cancelled => (None, Some(now)),
            };
            let changed = update
                .execute(params![
                    s.delivery_id,
                    status,
                    retry_at,
                    s.last_error,
                    now,
                    completed_at,
                    owner,
                ])
                .map_err(exec_err)?;
            Ok(changed == 1)
        })
        .collect()
}

fn delivery_of(r: &Row<'_>) -> Result<delivery::Model, DbErr> {
    Ok(delivery::Model {
        id: col(r, 0)?,
        event_id: col(r, 1)?,
        tenant_id: col(r, 2)?,
        target_id: col(r, 3)?,
        target_kind: col(r, 4)?,
        status: col(r, 5)?,
        attempt_count: col(r, 6)?,
        next_attempt_at: col(r, 7)?,
        lease_owner: col(r, 8)?,
        lease_expires_at: col(r, 9)?,
        last_error: col(r, 10)?,
        created_at: col(r, 11)?,
        updated_at: col(r, 12)?,
        completed_at: col(r, 13)?,
        redriven_at: col(r, 14)?,
    })
}

fn event_of(r: &Row<'_>) -> Result<event::Model, DbErr> {
    Ok(event::Model {
        id: col(r, 0)?,
        tenant_id: col(r, 1)?,
        kind: col(r, 2)?,
        user_id: col(r, 3)?,
        user_snapshot: r.json(4)?,
        group_id: col(r, 5)?,
        group_display_name: col(r, 6)?,
        request_id: col(r, 7)?,
        scim_method: col(r, 8)?,
        scim_path: col(r, 9)?,
        occurred_at: col(r, 10)?,
    })
}

fn target_of(r: &Row<'_>) -> Result<target::Model, DbErr> {
    Ok(target::Model {
        id: col(r, 0)?,
        tenant_id: col(r, 1)?,
        kind: col(r, 2)?,
        client_id: col(r, 3)?,
        config: r.json(4)?,
        enabled: col(r, 5)?,
        created_at: col(r, 6)?,
        updated_at: col(r, 7)?,
    })
}

/// Column `i` of `r`.
fn col<T: rusqlite::types::FromSql>(r: &Row<'_>, i: usize) -> Result<T, DbErr> {
    r.get(i).map_err(query_err)
}

#[cfg(test)]
mod tests {
    use sea_orm::{EntityTrait, IdenStatic, Iterable};

    use super::*;

    fn columns<E: EntityTrait>() -> String {
        E::Column::iter()
            .map(|c| c.as_str().to_owned())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The rows are read by position: the lists must be the entities' columns, in order.
    #[test]
    fn the_column_lists_are_the_entities_columns_in_order() {
        let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(squash(DELIVERY_COLUMNS), columns::<delivery::Entity>());
        assert_eq!(squash(EVENT_COLUMNS), columns::<event::Entity>());
        assert_eq!(squash(TARGET_COLUMNS), columns::<target::Entity>());
    }
}
