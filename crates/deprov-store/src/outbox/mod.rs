//! The outbox: deliveries of de-provisioning events to targets.
//!
//! A delivery is written in the same transaction as the event it carries ([`enqueue`]), so
//! nothing is sent before the change commits and nothing committed is skipped. Workers then
//! claim due deliveries under a *lease* ([`Store::claim_due`]): the lease owner and expiry are
//! written on the row, so a process killed mid-delivery leaves a lease that simply expires,
//! after which any worker claims the delivery again. On PostgreSQL candidates are locked with
//! `FOR UPDATE SKIP LOCKED`, so replicas sharing a database never claim the same row; on
//! SQLite all writes go through one connection, which serialises claims by construction.
//!
//! Every outcome is recorded as an attempt row, and the delivery's status is changed only
//! while its lease is still held by the caller (fencing): a worker that lost its lease still
//! leaves the truth about what it sent, but cannot overwrite a newer claim.
//!
//! Statuses: `pending` (never attempted), `retrying` (failed recoverably, scheduled again),
//! `delivered`, `dead` (permanent failure or too old; an operator may re-drive it), and
//! `cancelled`.

use std::collections::HashMap;
use std::sync::Arc;

use deprov_core::fanout::{self, EventFacts, GroupFacts, TargetScope};
use deprov_core::scim::EventKind;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QueryResult, QuerySelect, Set, Statement,
};
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, AuditRecord};
use crate::entity::{delivery, delivery_attempt, event, group, group_member, target, target_group};
use crate::scim::sql::Sql;
use crate::{Backend, Store, StoreError, now_millis};

pub(crate) mod postgres;
mod sqlite;

use postgres::CLAIM_BEGIN;

pub const PENDING: &str = "pending";
pub const RETRYING: &str = "retrying";
pub const DELIVERED: &str = "delivered";
pub const DEAD: &str = "dead";
pub const CANCELLED: &str = "cancelled";

/// The PostgreSQL channel on which commits that enqueue work are announced, so that every
/// replica's worker wakes at once (`LISTEN deprov_outbox`).
pub const NOTIFY_CHANNEL: &str = "deprov_outbox";

/// What [`enqueue`] needs to know about an event it fans out.
#[derive(Debug, Clone)]
pub struct EnqueueEvent<'a> {
    pub event_id: &'a str,
    pub kind: EventKind,
    pub user_id: &'a str,
    /// The group the user left, for [`EventKind::RemovedFromGroup`].
    pub group: Option<GroupFacts>,
}

/// Rows per multi-row INSERT: 15 columns each stays far below SQLite's bound-parameter limit.
const INSERT_CHUNK: usize = 500;

/// How many of the deliveries due already [`Store::next_due_at`] reads: more than the
/// attempts all workers hold in flight.
const DUE_HEAD_ROWS: i64 = 4096;

/// A target's id and kind: what [`enqueue`] writes into a delivery.
pub(crate) struct EnabledTarget {
    id: String,
    kind: String,
}

/// A delivery [`enqueue_to`] writes: pending, due at once.
struct NewDelivery<'a> {
    id: String,
    event_id: &'a str,
    target: &'a EnabledTarget,
}

/// The statement reading a tenant's enabled targets, its two parameters being the tenant's
/// id and `true`. Every deactivation asks, and most tenants have few or none, so it is a
/// fixed text rather than one built per call.
pub(crate) fn enabled_targets_sql(tenant: &str, enabled: &str) -> String {
    format!("SELECT id, kind FROM targets WHERE tenant_id = {tenant} AND enabled = {enabled}")
}

/// The enabled targets of tenant `{tenant}` that a `Deactivated` or `Deleted` event of user
/// `{user}` reaches, as a condition on `targets` aliased `tg`: [`fanout::reaches`] written in
/// SQL, for PostgreSQL's one-statement de-provisioning (`scim/events.rs`). The user's groups
/// are read from `group_members` in the statement's snapshot, so a deletion in the same
/// statement still finds them. The integration test
/// `one_statement_fanout_reaches_what_the_rule_reaches` holds the two to the same answers.
pub(crate) fn reached_by_user_event_sql(tenant: &str, user: &str, enabled: &str) -> String {
    format!(
        "tg.tenant_id = {tenant} AND tg.enabled = {enabled} AND (\
         NOT EXISTS (SELECT 1 FROM target_groups b WHERE b.target_id = tg.id) \
         OR EXISTS (SELECT 1 FROM group_members m \
         JOIN groups g ON g.id = m.group_id \
         JOIN target_groups b ON b.target_id = tg.id \
         AND b.group_ref_folded IN (lower(g.id), g.display_name_folded) \
         WHERE m.tenant_id = {tenant} AND m.member_id = {user}))"
    )
}

/// The rows of [`enabled_targets_sql`].
pub(crate) fn enabled_targets_of(rows: &[QueryResult]) -> Result<Vec<EnabledTarget>, StoreError> {
    rows.iter()
        .map(|r| {
            Ok(EnabledTarget {
                id: r.try_get("", "id")?,
                kind: r.try_get("", "kind")?,
            })
        })
        .collect()
}

async fn enabled_targets(
    db: &impl ConnectionTrait,
    tenant_id: &str,
) -> Result<Vec<EnabledTarget>, StoreError> {
    static SQL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| enabled_targets_sql("$1", "$2"));
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            SQL.as_str(),
            [tenant_id.into(), true.into()],
        ))
        .await?;
    enabled_targets_of(&rows)
}

/// Writes one delivery per enabled target each event reaches, in the caller's transaction.
///
/// Call it *before* a deleted user's memberships are removed: group-bound targets are reached
/// through the groups the user belonged to. Targets are read once for the whole batch (a
/// group PATCH removing hundreds of members is one call). Returns the number of deliveries
/// written. The caller wakes the workers after committing ([`Store::wake_outbox_if`]: this
/// process's at once, other replicas' by a `NOTIFY`).
pub async fn enqueue(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    events: &[EnqueueEvent<'_>],
) -> Result<usize, StoreError> {
    enqueue_to(db, None, tenant_id, events, None).await
}

/// [`enqueue`], given the tenant's enabled targets when the caller has read them already
/// (in this transaction, with [`enabled_targets_sql`]), and on SQLite the write connection
/// inside `db`'s savepoint, on which the deliveries are written with a cached statement.
pub(crate) async fn enqueue_to(
    db: &impl ConnectionTrait,
    sqlite: Option<&crate::sqlite::Conn>,
    tenant_id: &str,
    events: &[EnqueueEvent<'_>],
    targets: Option<Vec<EnabledTarget>>,
) -> Result<usize, StoreError> {
    if !events.iter().any(|e| e.kind.revokes()) {
        return Ok(0);
    }
    let targets = match targets {
        Some(t) => t,
        None => enabled_targets(db, tenant_id).await?,
    };
    if targets.is_empty() {
        return Ok(0);
    }
    let bindings = target_group::Entity::find()
        .filter(target_group::Column::TargetId.is_in(targets.iter().map(|t| t.id.clone())))
        .all(db)
        .await?;
    let mut scopes: HashMap<&str, TargetScope> = HashMap::new();
    for b in &bindings {
        scopes
            .entry(b.target_id.as_str())
            .or_default()
            .groups
            .push(b.group_ref_folded.clone());
    }
    let tenant_wide = TargetScope::default();
    let mut rows: Vec<NewDelivery<'_>> = Vec::new();
    for ev in events.iter().filter(|e| e.kind.revokes()) {
        let member_of = if !bindings.is_empty()
            && matches!(ev.kind, EventKind::Deactivated | EventKind::Deleted)
        {
            groups_of(db, tenant_id, ev.user_id).await?
        } else {
            Vec::new()
        };
        let facts = EventFacts {
            kind: ev.kind,
            group: ev.group.as_ref(),
            member_of: &member_of,
        };
        for t in targets
            .iter()
            .filter(|t| fanout::reaches(scopes.get(t.id.as_str()).unwrap_or(&tenant_wide), &facts))
        {
            rows.push(NewDelivery {
                id: uuid::Uuid::now_v7().to_string(),
                event_id: ev.event_id,
                target: t,
            });
        }
    }
    let (count, now) = (rows.len(), now_millis());
    if let Some(conn) = sqlite {
        conn.with_connection(|c| sqlite::enqueue(c, tenant_id, now, &rows))?;
        return Ok(count);
    }
    for chunk in rows.chunks(INSERT_CHUNK) {
        delivery::Entity::insert_many(chunk.iter().map(|d| delivery::ActiveModel {
            id: Set(d.id.clone()),
            event_id: Set(d.event_id.to_owned()),
            tenant_id: Set(tenant_id.to_owned()),
            target_id: Set(d.target.id.clone()),
            target_kind: Set(d.target.kind.clone()),
            status: Set(PENDING.to_owned()),
            attempt_count: Set(0),
            next_attempt_at: Set(now),
            lease_owner: Set(None),
            lease_expires_at: Set(None),
            last_error: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            completed_at: Set(None),
            redriven_at: Set(None),
        }))
        .exec_without_returning(db)
        .await?;
    }
    Ok(count)
}

/// The groups a user belongs to, folded for matching against bindings.
async fn groups_of(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    user_id: &str,
) -> Result<Vec<GroupFacts>, StoreError> {
    let group_ids: Vec<String> = group_member::Entity::find()
        .filter(group_member::Column::TenantId.eq(tenant_id))
        .filter(group_member::Column::MemberId.eq(user_id))
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.group_id)
        .collect();
    if group_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(group::Entity::find()
        .filter(group::Column::Id.is_in(group_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|g| GroupFacts {
            id_folded: g.id.to_lowercase(),
            display_name_folded: g.display_name_folded,
        })
        .collect())
}

/// A delivery claimed by a worker, with what it needs to perform it. The event and the
/// target are shared by the claim's other deliveries to them (a fan-out claims one event
/// for many targets, and one target for many users' events).
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery: delivery::Model,
    pub event: Arc<event::Model>,
    /// `None` when the target was removed after the event: the worker cancels the delivery.
    pub target: Option<Arc<target::Model>>,
}

/// One attempt's outcome, as recorded in `delivery_attempts`.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub started_at: i64,
    pub latency_ms: i32,
    pub http_status: Option<i32>,
    pub error: Option<String>,
    /// A bounded excerpt of the response body.
    pub response_excerpt: Option<String>,
}

/// What to do with a delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    Delivered,
    /// Try again at this time (ms since the epoch).
    Retry {
        at: i64,
    },
    /// Give up: permanent failure or too old.
    Dead,
    /// The target no longer exists or was disabled.
    Cancelled,
}

impl Settle {
    fn status(&self) -> &'static str {
        match self {
            Settle::Delivered => DELIVERED,
            Settle::Retry { .. } => RETRYING,
            Settle::Dead => DEAD,
            Settle::Cancelled => CANCELLED,
        }
    }
}

/// One finished attempt for [`Store::settle_many`].
#[derive(Debug, Clone)]
pub struct SettleRequest {
    pub delivery_id: String,
    pub attempt: AttemptRecord,
    pub outcome: Settle,
    pub last_error: Option<String>,
}

/// Counts of deliveries by status, and the age of the oldest one still waiting.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct QueueStats {
    pub pending: u64,
    pub retrying: u64,
    pub delivered: u64,
    pub dead: u64,
    pub cancelled: u64,
    /// Milliseconds since the oldest pending or retrying delivery was created.
    pub oldest_waiting_ms: Option<i64>,
}

/// How a settle's transaction begins on PostgreSQL: its batch is joined to the deliveries it
/// names by hash, each found through the primary key (see [`settle_statements`]). A plan
/// that had to keep what these settings rule out would be priced high enough for JIT
/// compilation, hundreds of milliseconds for a few rows: JIT is off.
const SETTLE_BEGIN: &str = "BEGIN; SET LOCAL enable_nestloop TO OFF; \
     SET LOCAL enable_seqscan TO OFF; SET LOCAL jit TO OFF";

/// Sorts claimed deliveries oldest due first (the stepwise claim's fallback chooses target
/// by target).
fn in_due_order(claimed: &mut [Claimed]) {
    claimed.sort_by(|a, b| {
        (a.delivery.next_attempt_at, &a.delivery.id)
            .cmp(&(b.delivery.next_attempt_at, &b.delivery.id))
    });
}

impl Store {
    /// Claims up to `limit` due deliveries for `owner`, for `lease_ms`.
    ///
    /// `in_flight` counts what the caller is already performing per target, and no target
    /// gets more than `per_target` in flight in total, so a slow target cannot take every
    /// worker slot (no head-of-line blocking). Candidates are read oldest-due first.
    ///
    /// On PostgreSQL a claim is one round trip (`postgres.rs`); it is made step by step, as
    /// on SQLite, only to reach past a window of due work whose targets are all at their
    /// limit.
    pub async fn claim_due(
        &self,
        owner: &str,
        lease_ms: i64,
        limit: usize,
        per_target: usize,
        in_flight: &HashMap<String, usize>,
    ) -> Result<Vec<Claimed>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = now_millis();
        let until = now + lease_ms;
        // Candidates are read from a window of the oldest due deliveries, four per slot, so
        // that targets at their limit leave room for the others.
        let window = i64::try_from(limit.saturating_mul(4)).unwrap_or(i64::MAX);
        if let Some(claims) = self.postgres_claims() {
            let claim = postgres::Claim {
                owner,
                now,
                until,
                window,
                limit,
                per_target,
                in_flight,
            };
            let mut claimed = postgres::claim_in_one_trip(claims, &claim).await?;
            // Nothing chosen while some target is at its limit: the window may hold only
            // that target's work, with the others' past it, which the stepwise claim reaches.
            if !claimed.is_empty() || !in_flight.values().any(|&n| n >= per_target) {
                in_due_order(&mut claimed);
                return Ok(claimed);
            }
        }
        let txn = self.begin_write_with(&CLAIM_BEGIN).await?;
        // A claim need not be durable: if it is lost in a crash, the deliveries are simply
        // due again, as if their leases had expired (at least once either way). Not waiting
        // for the disk here (`commit_unsynced`; on PostgreSQL `synchronous_commit` off)
        // takes one fsync out of every delivery's path; the settle that follows is durable,
        // and with it everything written before it.
        //
        // Oldest due first, read from the partial index ix_deliveries_waiting so that a claim
        // reads a few index rows and stops, however many deliveries wait (on PostgreSQL in
        // that order only with the settings of CLAIM_BEGIN). The statuses are literals: only
        // then can a planner match the index's WHERE. PostgreSQL skips rows another replica
        // has locked; SQLite's form is `sqlite::CANDIDATES`.
        let candidates: Vec<(String, String)> = match txn.sqlite() {
            Some(conn) => conn?.with_connection(|c| sqlite::candidates(c, now, window))?,
            None => {
                let rows = txn
                    .query_all_raw(Statement::from_sql_and_values(
                        txn.get_database_backend(),
                        "SELECT id, target_id FROM deliveries \
                         WHERE status IN ('pending', 'retrying') AND next_attempt_at <= $1 \
                         AND (lease_expires_at IS NULL OR lease_expires_at < $1) \
                         ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
                        [now.into(), window.into()],
                    ))
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.try_get::<String>("", "id")?,
                            r.try_get::<String>("", "target_id")?,
                        ))
                    })
                    .collect::<Result<_, sea_orm::DbErr>>()?
            }
        };
        let window_full = i64::try_from(candidates.len()).is_ok_and(|n| n == window);
        let mut taken: HashMap<String, usize> = in_flight.clone();
        let mut chosen = Vec::new();
        for (id, target_id) in candidates {
            if chosen.len() >= limit {
                break;
            }
            let n = taken.entry(target_id).or_default();
            if *n < per_target {
                *n += 1;
                chosen.push(id);
            }
        }
        if chosen.is_empty() && window_full {
            // The oldest due deliveries all belong to targets at their limit (a slow target
            // with a backlog): the work of the others waits behind them, past the window.
            chosen = due_past_full_targets(&txn, now, limit, per_target, &mut taken).await?;
        }
        if chosen.is_empty() {
            // Nothing was written: no fsync to wait for.
            txn.commit_unsynced().await?;
            return Ok(Vec::new());
        }
        let mut claimed = match txn.sqlite() {
            Some(conn) => {
                conn?.with_connection(|c| sqlite::lease_and_read(c, owner, now, until, &chosen))?
            }
            None => postgres::claimed_of(
                &txn.query_all_raw(postgres::lease_statement(owner, now, until, chosen))
                    .await?,
            )?,
        };
        txn.commit_unsynced().await?;
        in_due_order(&mut claimed);
        Ok(claimed)
    }

    /// Records an attempt and settles the delivery, if `owner` still holds its lease.
    /// Returns whether the delivery's status was changed (false: the lease was lost, the
    /// attempt is recorded all the same).
    pub async fn settle(
        &self,
        delivery_id: &str,
        owner: &str,
        attempt: AttemptRecord,
        outcome: Settle,
        last_error: Option<String>,
    ) -> Result<bool, StoreError> {
        let held = self
            .settle_many(
                owner,
                &[SettleRequest {
                    delivery_id: delivery_id.to_owned(),
                    attempt,
                    outcome,
                    last_error,
                }],
            )
            .await?;
        Ok(held.first().copied().unwrap_or(false))
    }

    /// [`Store::settle`] for many deliveries in one transaction of two statements, however
    /// many there are: a worker finishing hundreds of attempts a second records them in
    /// batches. Returns, in the order given, whether each delivery was settled (false: the
    /// lease was lost, or the delivery no longer exists; an existing delivery's attempt is
    /// recorded all the same).
    pub async fn settle_many(
        &self,
        owner: &str,
        settles: &[SettleRequest],
    ) -> Result<Vec<bool>, StoreError> {
        if settles.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_millis();
        let txn = self.begin_write_with(SETTLE_BEGIN).await?;
        if let Some(conn) = txn.sqlite() {
            let held = conn?.with_connection(|c| sqlite::settle(c, owner, now, settles))?;
            self.commit(txn).await?;
            return Ok(held);
        }
        let (insert, update) = settle_statements(owner, now, settles);
        txn.execute_raw(insert).await?;
        let settled = txn.query_all_raw(update).await?;
        self.commit(txn).await?;
        let settled: std::collections::HashSet<String> = settled
            .iter()
            .map(|row| row.try_get::<String>("", "id"))
            .collect::<Result<_, _>>()?;
        Ok(settles
            .iter()
            .map(|s| settled.contains(&s.delivery_id))
            .collect())
    }

    /// Gives back every lease `owner` holds (on shutdown), so other workers need not wait
    /// for them to expire.
    pub async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let result = delivery::Entity::update_many()
            .col_expr(
                delivery::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                delivery::Column::LeaseExpiresAt,
                Expr::value(Option::<i64>::None),
            )
            .filter(delivery::Column::LeaseOwner.eq(owner))
            .filter(delivery::Column::Status.is_in([PENDING, RETRYING]))
            .exec(self.writer())
            .await?;
        Ok(result.rows_affected)
    }

    /// The earliest time a waiting delivery becomes claimable (to sleep until then): its
    /// next attempt time, or the end of the lease another worker holds on it. A time in the
    /// past means something is claimable now.
    ///
    /// Bounded, however many deliveries wait: what falls due later is one seek in
    /// `ix_deliveries_waiting`, and of what is due already only the oldest
    /// [`DUE_HEAD_ROWS`] are read (those in flight, whose leases count, are the oldest;
    /// past them, a row is claimable now whatever its lease). Reading every waiting row
    /// instead cost a full scan of the outbox per wake-up: with 100,000 logouts queued for
    /// one relying party, whose per-target limit kept the worker from filling its slots,
    /// the drain fell to a few hundred a second.
    pub async fn next_due_at(&self) -> Result<Option<i64>, StoreError> {
        let now = now_millis();
        let head = self
            .min_time(due_head_sql(self.backend()), [now, DUE_HEAD_ROWS])
            .await?;
        let later = self.next_due_after(now).await?;
        Ok(match (later, head) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// The earliest next attempt time after `now` of a waiting delivery (a retry, mostly):
    /// one index seek. For a worker whose own attempts hold back what is due already (its
    /// per-target limit): the end of one of them wakes it for that, a timer only for this.
    pub async fn next_due_after(&self, now: i64) -> Result<Option<i64>, StoreError> {
        self.min_time(due_after_sql(self.backend()), [now]).await
    }

    /// The time in column `next` of the one row `sql` returns.
    async fn min_time<const N: usize>(
        &self,
        sql: String,
        values: [i64; N],
    ) -> Result<Option<i64>, StoreError> {
        let row = self
            .reader()
            .query_one_raw(Statement::from_sql_and_values(
                self.reader().get_database_backend(),
                sql,
                values.map(sea_orm::Value::from),
            ))
            .await?;
        Ok(match row {
            Some(row) => row.try_get::<Option<i64>>("", "next")?,
            None => None,
        })
    }

    /// Puts dead deliveries back in the queue: one by id, or every dead one of a tenant
    /// (`None`). Their maximum age counts again from now. Returns how many were re-driven.
    pub async fn redrive(
        &self,
        tenant_id: Option<&str>,
        delivery_id: Option<&str>,
        actor: &str,
    ) -> Result<u64, StoreError> {
        let now = now_millis();
        let txn = self.begin_write().await?;
        let mut update = delivery::Entity::update_many()
            .col_expr(delivery::Column::Status, Expr::value(RETRYING))
            .col_expr(delivery::Column::NextAttemptAt, Expr::value(now))
            .col_expr(delivery::Column::RedrivenAt, Expr::value(now))
            .col_expr(
                delivery::Column::CompletedAt,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
            .filter(delivery::Column::Status.eq(DEAD));
        if let Some(t) = tenant_id {
            update = update.filter(delivery::Column::TenantId.eq(t));
        }
        if let Some(id) = delivery_id {
            update = update.filter(delivery::Column::Id.eq(id));
        }
        let result = update.exec(&txn).await?;
        audit::record(
            &txn,
            AuditRecord {
                actor,
                tenant_id,
                action: "delivery.redrive",
                subject_type: "delivery",
                subject_id: delivery_id,
                request_id: None,
                detail: json!({ "count": result.rows_affected }),
            },
        )
        .await?;
        self.commit(txn).await?;
        self.wake_outbox_if(usize::try_from(result.rows_affected).unwrap_or(usize::MAX));
        Ok(result.rows_affected)
    }

    pub async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        // Rows are read by column name: SQLite's rows (sqlite.rs) have no column order.
        #[derive(sea_orm::FromQueryResult)]
        struct StatusCount {
            status: String,
            n: i64,
        }
        let counts = delivery::Entity::find()
            .select_only()
            .column(delivery::Column::Status)
            .column_as(delivery::Column::Id.count(), "n")
            .group_by(delivery::Column::Status)
            .into_model::<StatusCount>()
            .all(self.reader())
            .await?;
        let mut stats = QueueStats::default();
        for StatusCount { status, n } in counts {
            let n = u64::try_from(n).unwrap_or(0);
            match status.as_str() {
                PENDING => stats.pending = n,
                RETRYING => stats.retrying = n,
                DELIVERED => stats.delivered = n,
                DEAD => stats.dead = n,
                CANCELLED => stats.cancelled = n,
                _ => {}
            }
        }
        #[derive(sea_orm::FromQueryResult)]
        struct Oldest {
            oldest: Option<i64>,
        }
        let oldest = delivery::Entity::find()
            .select_only()
            .column_as(delivery::Column::CreatedAt.min(), "oldest")
            .filter(delivery::Column::Status.is_in([PENDING, RETRYING]))
            .into_model::<Oldest>()
            .one(self.reader())
            .await?;
        stats.oldest_waiting_ms = oldest.and_then(|o| o.oldest).map(|t| now_millis() - t);
        Ok(stats)
    }

    /// Deliveries, newest first, optionally of one status and one tenant.
    pub async fn list_deliveries(
        &self,
        tenant_id: Option<&str>,
        status: Option<&str>,
        limit: u64,
        offset: u64,
    ) -> Result<(u64, Vec<delivery::Model>), StoreError> {
        let mut query = delivery::Entity::find();
        if let Some(t) = tenant_id {
            query = query.filter(delivery::Column::TenantId.eq(t));
        }
        if let Some(s) = status {
            query = query.filter(delivery::Column::Status.eq(s));
        }
        let total = query.clone().count(self.reader()).await?;
        let rows = query
            .order_by_desc(delivery::Column::CreatedAt)
            .order_by_desc(delivery::Column::Id)
            .limit(limit)
            .offset(offset)
            .all(self.reader())
            .await?;
        Ok((total, rows))
    }

    /// An event with every delivery and every attempt: the proof that access was taken away.
    pub async fn event_trail(&self, event_id: &str) -> Result<Option<EventTrail>, StoreError> {
        let Some(event) = event::Entity::find_by_id(event_id.to_owned())
            .one(self.reader())
            .await?
        else {
            return Ok(None);
        };
        let deliveries = delivery::Entity::find()
            .filter(delivery::Column::EventId.eq(event_id))
            .order_by_asc(delivery::Column::CreatedAt)
            .all(self.reader())
            .await?;
        let attempts = delivery_attempt::Entity::find()
            .filter(
                delivery_attempt::Column::DeliveryId.is_in(deliveries.iter().map(|d| d.id.clone())),
            )
            .order_by_asc(delivery_attempt::Column::Id)
            .all(self.reader())
            .await?;
        let targets: HashMap<String, target::Model> = target::Entity::find()
            .filter(target::Column::Id.is_in(deliveries.iter().map(|d| d.target_id.clone())))
            .all(self.reader())
            .await?
            .into_iter()
            .map(|t| (t.id.clone(), t))
            .collect();
        Ok(Some(EventTrail {
            deliveries: deliveries
                .into_iter()
                .map(|d| DeliveryTrail {
                    client_id: targets.get(&d.target_id).map(|t| t.client_id.clone()),
                    attempts: attempts
                        .iter()
                        .filter(|a| a.delivery_id == d.id)
                        .cloned()
                        .collect(),
                    delivery: d,
                })
                .collect(),
            event,
        }))
    }
}

/// An event with the state of its deliveries, for lists.
#[derive(Debug, Clone, Serialize)]
pub struct EventSummary {
    pub id: String,
    pub tenant_id: String,
    pub kind: String,
    pub user_id: String,
    pub user_name: Option<String>,
    pub group_display_name: Option<String>,
    pub request_id: String,
    pub occurred_at: i64,
    pub deliveries: u64,
    pub delivered: u64,
    pub dead: u64,
}

/// An event and everything done about it.
#[derive(Debug, Clone)]
pub struct EventTrail {
    pub event: event::Model,
    pub deliveries: Vec<DeliveryTrail>,
}

#[derive(Debug, Clone)]
pub struct DeliveryTrail {
    pub delivery: delivery::Model,
    /// The target's client_id, when the target still exists.
    pub client_id: Option<String>,
    pub attempts: Vec<delivery_attempt::Model>,
}

/// A PostgreSQL connection listening on [`NOTIFY_CHANNEL`].
#[derive(Debug)]
pub struct OutboxListener(sea_orm::sqlx::postgres::PgListener);

impl OutboxListener {
    /// Waits for the next notification.
    pub async fn recv(&mut self) -> Result<(), StoreError> {
        self.0
            .recv()
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Db(sea_orm::DbErr::Custom(e.to_string())))
    }
}

impl Store {
    /// Listens for commits that enqueued deliveries, on any replica. `None` on SQLite,
    /// where only this process writes and [`Store::outbox_wake`] suffices.
    pub async fn listen_outbox(&self) -> Result<Option<OutboxListener>, StoreError> {
        if self.backend() != Backend::Postgres {
            return Ok(None);
        }
        let pool = self.writer().get_postgres_connection_pool();
        let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(pool)
            .await
            .map_err(|e| StoreError::Db(sea_orm::DbErr::Custom(e.to_string())))?;
        listener
            .listen(NOTIFY_CHANNEL)
            .await
            .map_err(|e| StoreError::Db(sea_orm::DbErr::Custom(e.to_string())))?;
        Ok(Some(OutboxListener(listener)))
    }
}

/// For [`Store::claim_due`] when the oldest due deliveries all belong to targets at their
/// per-target limit: the oldest due deliveries of each other target, target by target through
/// `ix_deliveries_waiting_target`, up to `limit` in all. Reading past the backlog in due
/// order instead would cost a read of all of it per claim.
async fn due_past_full_targets(
    txn: &crate::WriteTxn,
    now: i64,
    limit: usize,
    per_target: usize,
    taken: &mut HashMap<String, usize>,
) -> Result<Vec<String>, StoreError> {
    let backend = txn.get_database_backend();
    let sql = due_of_target_sql(match backend {
        sea_orm::DbBackend::Postgres => Backend::Postgres,
        _ => Backend::Sqlite,
    });
    let targets = txn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT id FROM targets ORDER BY id",
        ))
        .await?;
    let mut chosen = Vec::new();
    for row in &targets {
        let target: String = row.try_get("", "id")?;
        let room = per_target
            .saturating_sub(taken.get(&target).copied().unwrap_or(0))
            .min(limit.saturating_sub(chosen.len()));
        if room == 0 {
            continue;
        }
        let due = txn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                &sql,
                [
                    target.clone().into(),
                    now.into(),
                    i64::try_from(room).unwrap_or(i64::MAX).into(),
                ],
            ))
            .await?;
        *taken.entry(target).or_default() += due.len();
        for d in &due {
            chosen.push(d.try_get::<String>("", "id")?);
        }
        if chosen.len() >= limit {
            break;
        }
    }
    Ok(chosen)
}

/// The oldest `$3` deliveries of target `$1` claimable at `$2`.
fn due_of_target_sql(backend: Backend) -> String {
    let (from, lock) = match backend {
        Backend::Sqlite => ("deliveries INDEXED BY ix_deliveries_waiting_target", ""),
        Backend::Postgres => ("deliveries", " FOR UPDATE SKIP LOCKED"),
    };
    let p = |n: usize| match backend {
        Backend::Sqlite => format!("?{n}"),
        Backend::Postgres => format!("${n}"),
    };
    format!(
        "SELECT id FROM {from} WHERE target_id = {t} AND status IN ('pending', 'retrying') \
         AND next_attempt_at <= {now} AND (lease_expires_at IS NULL OR lease_expires_at < {now}) \
         ORDER BY next_attempt_at, id LIMIT {n}{lock}",
        t = p(1),
        now = p(2),
        n = p(3),
    )
}

/// The waiting deliveries, read through `ix_deliveries_waiting` (SQLite is told the index:
/// without statistics it would scan the table), and the placeholder style.
fn waiting(backend: Backend) -> (&'static str, [&'static str; 2]) {
    match backend {
        Backend::Sqlite => ("deliveries INDEXED BY ix_deliveries_waiting", ["?1", "?2"]),
        Backend::Postgres => ("deliveries", ["$1", "$2"]),
    }
}

/// Of the deliveries due at `$1`, the oldest `$2`: when the first of them can be claimed
/// (now, or when the lease on it ends).
fn due_head_sql(backend: Backend) -> String {
    let (from, [now, rows]) = waiting(backend);
    format!(
        "SELECT MIN(CASE WHEN lease_expires_at > next_attempt_at THEN lease_expires_at \
         ELSE next_attempt_at END) AS next FROM (SELECT next_attempt_at, lease_expires_at \
         FROM {from} WHERE status IN ('pending', 'retrying') AND next_attempt_at <= {now} \
         ORDER BY next_attempt_at, id LIMIT {rows}) AS due"
    )
}

/// The earliest next attempt time after `$1`.
fn due_after_sql(backend: Backend) -> String {
    let (from, [now, _]) = waiting(backend);
    format!(
        "SELECT MIN(next_attempt_at) AS next FROM {from} \
         WHERE status IN ('pending', 'retrying') AND next_attempt_at > {now}"
    )
}

/// The two statements of [`Store::settle_many`] on PostgreSQL: the attempts, then the
/// statuses, each one statement for the whole batch (one round trip each). SQLite's are
/// per row (`sqlite::settle`).
fn settle_statements(owner: &str, now: i64, settles: &[SettleRequest]) -> (Statement, Statement) {
    let rows: Vec<serde_json::Value> = settles
        .iter()
        .map(|s| {
            let finished = matches!(
                s.outcome,
                Settle::Delivered | Settle::Dead | Settle::Cancelled
            );
            json!({
                "id": s.delivery_id,
                "started_at": s.attempt.started_at,
                "latency_ms": s.attempt.latency_ms,
                "http_status": s.attempt.http_status,
                "outcome": s.outcome.status(),
                "error": s.attempt.error,
                "excerpt": s.attempt.response_excerpt,
                "retry_at": match s.outcome {
                    Settle::Retry { at } => Some(at),
                    _ => None,
                },
                "last_error": s.last_error,
                "completed_at": finished.then_some(now),
            })
        })
        .collect();
    let columns = [
        ("id", "text"),
        ("started_at", "bigint"),
        ("latency_ms", "integer"),
        ("http_status", "integer"),
        ("outcome", "text"),
        ("error", "text"),
        ("excerpt", "text"),
        ("retry_at", "bigint"),
        ("last_error", "text"),
        ("completed_at", "bigint"),
    ];

    // The attempts first, numbered from the deliveries' counts before this settle.
    let mut insert = Sql::new(Backend::Postgres);
    let (from, c) = insert.bind_rows(rows.clone(), &columns);
    let by_id = id_list(&mut insert, "d", settles);
    insert.push(&format!(
        "INSERT INTO delivery_attempts (delivery_id, attempt_no, started_at, latency_ms, \
             http_status, outcome, error, response_excerpt) \
             SELECT d.id, d.attempt_count + 1, {}, {}, {}, {}, {}, {} \
             {from} JOIN deliveries d ON d.id = {} {by_id}",
        c[1], c[2], c[3], c[4], c[5], c[6], c[0]
    ));

    // Then the statuses, fenced by the lease. Left to itself, PostgreSQL answers this, while
    // autovacuum has not yet analyzed an outbox that just filled, by walking every waiting
    // delivery through `ix_deliveries_due` and matching the batch against each: with
    // 100,000 logouts queued that is millions of rows per settle. `status || ''` is not a
    // column any index answers, and the ids are listed (`id_list`). Nor may the batch be
    // joined by a nested loop, nor the outbox scanned (SETTLE_BEGIN): for a worker's batch
    // of 256, PostgreSQL chose a nested loop that re-read the whole batch from its JSON for
    // every delivery (65,000 rows, 45 ms, where a hash join takes 1; the drain stalled near
    // 5,000/s), or, with stale statistics, a scan of every delivery.
    let mut update = Sql::new(Backend::Postgres);
    let (from, c) = update.bind_rows(rows, &columns);
    let owner_p = update.bind(owner.to_owned());
    let now_p = update.bind(now);
    let by_id = id_list(&mut update, "deliveries", settles);
    update.push(&format!(
        "UPDATE deliveries SET status = {outcome}, attempt_count = deliveries.attempt_count + 1, \
             next_attempt_at = COALESCE({retry_at}, deliveries.next_attempt_at), \
             lease_owner = NULL, lease_expires_at = NULL, last_error = {last_error}, \
             updated_at = {now_p}, completed_at = {completed_at} \
             {from} WHERE deliveries.id = {id} {by_id} \
             AND deliveries.lease_owner = {owner_p} \
             AND (deliveries.status || '') IN ('{PENDING}', '{RETRYING}') RETURNING deliveries.id",
        outcome = c[4],
        retry_at = c[7],
        last_error = c[8],
        completed_at = c[9],
        id = c[0],
    ));

    (insert.build(), update.build())
}

/// `AND {table}.id = ANY(…)` with the batch's ids: an index condition PostgreSQL answers
/// from the primary key, whatever its statistics say. Without it, an outbox not yet analyzed
/// looks small enough to scan whole and hash against the batch, for every settle. The ids
/// are one parameter (a JSON array made an array once, by an InitPlan), so that a batch of
/// any size is the same statement, parsed once per connection: listed one parameter each,
/// most settles were a new statement, parsed and planned anew.
fn id_list(sql: &mut Sql, table: &str, settles: &[SettleRequest]) -> String {
    let ids = serde_json::Value::Array(
        settles
            .iter()
            .map(|s| serde_json::Value::String(s.delivery_id.clone()))
            .collect(),
    );
    let p = sql.bind(ids);
    format!("AND {table}.id = ANY(ARRAY(SELECT jsonb_array_elements_text({p}::jsonb)))")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DatabaseLocation;

    /// A settle of one delivery; a batch of several goes through the JSON path of
    /// `Sql::bind_rows`, a single one binds its values.
    fn settle(id: &str) -> SettleRequest {
        SettleRequest {
            delivery_id: id.to_owned(),
            attempt: AttemptRecord {
                started_at: 1,
                latency_ms: 1,
                http_status: Some(200),
                error: None,
                response_excerpt: None,
            },
            outcome: Settle::Delivered,
            last_error: None,
        }
    }

    /// PostgreSQL's plan of `statement` in `txn`, a line per step.
    async fn postgres_plan(
        txn: &crate::WriteTxn,
        statement: Statement,
    ) -> Result<Vec<String>, StoreError> {
        Ok(txn
            .query_all_raw(Statement::from_sql_and_values(
                statement.db_backend,
                format!("EXPLAIN {}", statement.sql),
                statement.values.map(|v| v.0).unwrap_or_default(),
            ))
            .await?
            .iter()
            .map(|row| row.try_get::<String>("", "QUERY PLAN"))
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// SQLite's plan of `sql` with `values`, a line per step.
    async fn sqlite_plan(
        store: &Store,
        sql: &str,
        values: impl IntoIterator<Item = sea_orm::Value>,
    ) -> Result<Vec<String>, StoreError> {
        Ok(store
            .reader()
            .query_all_raw(Statement::from_sql_and_values(
                sea_orm::DbBackend::Sqlite,
                format!("EXPLAIN QUERY PLAN {sql}"),
                values,
            ))
            .await?
            .iter()
            .map(|row| row.try_get::<String>("", "detail"))
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// The ids of a claim's worth of deliveries of [`fill_after_analyze`], spread over the
    /// outbox's pages as due work is.
    fn spread_ids() -> Vec<String> {
        (1..=64).map(|i| format!("d-{}", i * 300)).collect()
    }

    /// PostgreSQL, before autovacuum has analyzed an outbox that just filled, planned the
    /// settle `UPDATE … FROM jsonb_to_recordset(…)` as a scan of every waiting delivery
    /// through `ix_deliveries_due`, matched against the whole batch: with 100,000 logouts
    /// queued, PostgreSQL spent a core on settles and the drain fell under 1,000/s. Later it
    /// joined a worker's batch of 256 by a nested loop, re-reading the batch per delivery.
    #[tokio::test]
    async fn settling_looks_each_delivery_up_by_id_on_postgres() -> anyhow::Result<()> {
        let Some(plans) = on_filled_outbox(SETTLE_BEGIN, async |_, txn| {
            let mut plans = Vec::new();
            // A worker's full batch: the shape in which PostgreSQL chose a nested loop.
            let batch: Vec<_> = (1..=256).map(|i| settle(&format!("d-{i}"))).collect();
            let (insert, update) = settle_statements("w", 2, &batch);
            for statement in [insert, update] {
                plans.push(postgres_plan(txn, statement).await?);
            }
            Ok(plans)
        })
        .await?
        else {
            return Ok(());
        };
        for plan in plans {
            assert!(
                !plan.iter().any(|step| step.contains("ix_deliveries")
                    || step.contains("Seq Scan")
                    || step.contains("Nested Loop")),
                "{plan:#?}"
            );
            assert!(
                plan.iter().any(|step| step.contains("deliveries_pkey")),
                "{plan:#?}"
            );
        }
        Ok(())
    }

    /// The worker asks when the next delivery falls due after every claim. Reading every
    /// waiting delivery for that (a scan of the outbox) capped a drain of 100,000 logouts
    /// for relying parties at their per-target limit at a few hundred a second: each
    /// question reads a bounded head of `ix_deliveries_waiting`, or seeks in it. So does a
    /// claim reaching past a slow target's backlog, in `ix_deliveries_waiting_target`.
    #[tokio::test]
    async fn the_worker_reads_bounded_parts_of_the_waiting_indexes() -> Result<(), StoreError> {
        let dir = std::env::temp_dir().join(format!("deprov-due-plan-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::other(e.to_string()))?;
        let store = Store::open(&DatabaseLocation::Sqlite(dir.join("d.db"))).await?;
        for (sql, values, index) in [
            (
                due_head_sql(Backend::Sqlite),
                vec![sea_orm::Value::from(1_i64), DUE_HEAD_ROWS.into()],
                "ix_deliveries_waiting (next_attempt_at",
            ),
            (
                due_after_sql(Backend::Sqlite),
                vec![1_i64.into()],
                "ix_deliveries_waiting (next_attempt_at",
            ),
            (
                due_of_target_sql(Backend::Sqlite),
                vec!["t".into(), 1_i64.into(), 8_i64.into()],
                "ix_deliveries_waiting_target (target_id=? AND next_attempt_at",
            ),
        ] {
            let plan = sqlite_plan(&store, &sql, values).await?;
            let reads: Vec<_> = plan.iter().filter(|s| s.contains("deliveries")).collect();
            assert!(
                !reads.is_empty()
                    && reads
                        .iter()
                        .all(|s| s.starts_with(&format!("SEARCH deliveries USING INDEX {index}"))),
                "{plan:?}"
            );
            assert!(!plan.iter().any(|s| s.contains("TEMP B-TREE")), "{plan:?}");
        }
        assert!(due_head_sql(Backend::Sqlite).contains("LIMIT ?2"));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    /// Runs `check` on a PostgreSQL test database, in a transaction begun with `begin` on the
    /// outbox of [`fill_after_analyze`], rolled back afterwards; `None` without PostgreSQL.
    async fn on_filled_outbox<T>(
        begin: &'static str,
        check: impl AsyncFnOnce(&Store, &crate::WriteTxn) -> Result<T, StoreError>,
    ) -> anyhow::Result<Option<T>> {
        let Some(db) = crate::testing::TestDb::new(crate::testing::Backend::Postgres).await? else {
            return Ok(None);
        };
        let store = db.open().await?;
        let result = async {
            let txn = store.begin_write_with(begin).await?;
            fill_after_analyze(&txn).await?;
            check(&store, &txn).await
        }
        .await;
        store.close().await?;
        db.drop_async().await?;
        Ok(Some(result?))
    }

    /// An outbox analyzed when it held 100 deliveries and events, then filled to 20,000 of
    /// each (in `txn`, which the caller rolls back): statistics describing small tables.
    async fn fill_after_analyze(txn: &crate::WriteTxn) -> Result<(), StoreError> {
        let fill = |from: u32, to: u32| {
            format!(
                "INSERT INTO events (id, tenant_id, kind, user_id, user_snapshot, request_id, \
                 scim_method, scim_path, occurred_at) \
                 SELECT 'e-' || i, 't', 'deactivated', 'u', '{{}}', 'r', 'PATCH', '/Users/u', 0 \
                 FROM generate_series({from}, {to}) AS i; \
                 INSERT INTO deliveries (id, event_id, tenant_id, target_id, target_kind, \
                 status, attempt_count, next_attempt_at, lease_owner, created_at, updated_at) \
                 SELECT 'd-' || i, 'e-' || i, 't', 'x', 'rp', 'pending', 0, i, 'w', 0, 0 \
                 FROM generate_series({from}, {to}) AS i"
            )
        };
        txn.execute_unprepared(&format!(
            "INSERT INTO tenants (id, name, created_at) VALUES ('t', 't', 0); \
             {}; ANALYZE deliveries; ANALYZE events; {}",
            fill(1, 100),
            fill(101, 20_000)
        ))
        .await?;
        Ok(())
    }

    /// Asserts that `plan` reads each of `tables` only by its primary key.
    fn assert_read_by_primary_key(plan: &[String], tables: &[&str]) {
        for table in tables {
            let reads: Vec<_> = plan
                .iter()
                .filter(|step| step.contains("Scan") && step.contains(&format!(" on {table} ")))
                .collect();
            assert!(
                !reads.is_empty()
                    && reads
                        .iter()
                        .all(|s| s.contains(&format!("Index Scan using {table}_pkey on {table}"))),
                "{plan:#?}"
            );
        }
    }

    /// A claim leases a few deliveries and reads their events and targets: by primary key,
    /// not by reading every event into a hash, as PostgreSQL did for each claim while its
    /// statistics described a small table.
    #[tokio::test]
    async fn a_claim_reads_only_the_events_it_leased_on_postgres() -> anyhow::Result<()> {
        let Some(plan) = on_filled_outbox(&CLAIM_BEGIN, async |_, txn| {
            postgres_plan(txn, postgres::lease_statement("w", 1, 2, spread_ids())).await
        })
        .await?
        else {
            return Ok(());
        };
        assert_read_by_primary_key(&plan, &["events", "targets", "deliveries"]);
        assert!(
            !plan
                .iter()
                .any(|step| step.contains("Hash") && step.contains("Join")),
            "{plan:#?}"
        );
        Ok(())
    }

    /// The one-trip claim (`postgres.rs`) reads its candidates in due order from
    /// `ix_deliveries_waiting`, and leases and reads each delivery, event and target by
    /// primary key, in the plan made for its first runs and in the one PostgreSQL keeps
    /// for the prepared statement after them. Its per-target choice needs sorts, which the
    /// claim's settings price out of every other plan: priced so, the statement was once
    /// compiled to machine code first, 300 ms for a claim of one delivery. The settings
    /// must keep that off.
    #[tokio::test]
    async fn a_claim_in_one_trip_reads_by_index_without_compiling_on_postgres() -> anyhow::Result<()>
    {
        let Some((plans, settings)) = on_filled_outbox(&CLAIM_BEGIN, async |store, txn| {
            let held = HashMap::from([("x".to_owned(), 2)]);
            let claim = postgres::claim_statement(&postgres::Claim {
                owner: "w",
                now: 20_000,
                until: 80_000,
                window: 256,
                limit: 64,
                per_target: 8,
                in_flight: &held,
            })?;
            let mut plans = Vec::new();
            for mode in ["force_custom_plan", "force_generic_plan"] {
                txn.execute_unprepared(&format!("SET LOCAL plan_cache_mode TO {mode}"))
                    .await?;
                plans.push(postgres_plan(txn, claim.clone()).await?);
            }
            // The plans above were made under the settings of CLAIM_BEGIN; the claims run
            // on connections of their own, which must have the same.
            let claims = store
                .postgres_claims()
                .ok_or_else(|| StoreError::other("no claim connections on PostgreSQL"))?;
            let mut settings = Vec::new();
            for (name, value) in postgres::CLAIM_SETTINGS {
                let row = claims
                    .query_all(&Statement::from_sql_and_values(
                        sea_orm::DbBackend::Postgres,
                        "SELECT current_setting($1) AS v",
                        [name.into()],
                    ))
                    .await?;
                let set = row
                    .first()
                    .map(|r| r.try_get::<String>("", "v"))
                    .transpose()?;
                settings.push((name, value, set));
            }
            Ok((plans, settings))
        })
        .await?
        else {
            return Ok(());
        };
        for (name, value, set) in settings {
            assert_eq!(set.as_deref(), Some(value), "{name}");
        }
        for plan in plans {
            assert!(
                plan.iter()
                    .any(|step| step
                        .contains("Index Scan using ix_deliveries_waiting on deliveries")),
                "{plan:#?}"
            );
            assert_read_by_primary_key(&plan, &["events", "targets"]);
            assert!(
                !plan.iter().any(|step| step.contains("Seq Scan")
                    || step.contains("JIT")
                    || (step.contains("Hash") && step.contains("Join"))),
                "{plan:#?}"
            );
        }
        Ok(())
    }

    /// A lease touches no indexed column, and the pages of `deliveries` keep room for it
    /// (migration m20261206_000002): PostgreSQL writes the leased row into its own page as a
    /// heap-only tuple instead of a new tuple elsewhere with an entry in each of six indexes.
    #[tokio::test]
    async fn a_lease_stays_in_its_page_on_postgres() -> anyhow::Result<()> {
        let Some((before, after)) = on_filled_outbox(&CLAIM_BEGIN, async |_, txn| {
            let ids = spread_ids();
            let pages = |ids: &[String]| {
                let list = ids
                    .iter()
                    .map(|id| format!("'{id}'"))
                    .collect::<Vec<_>>()
                    .join(", ");
                Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    format!(
                        "SELECT id, (ctid::text::point)[0]::bigint AS page FROM deliveries \
                         WHERE id IN ({list}) ORDER BY id"
                    ),
                )
            };
            let read = |rows: Vec<QueryResult>| {
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.try_get::<String>("", "id")?,
                            r.try_get::<i64>("", "page")?,
                        ))
                    })
                    .collect::<Result<Vec<_>, sea_orm::DbErr>>()
            };
            let before = read(txn.query_all_raw(pages(&ids)).await?)?;
            txn.query_all_raw(postgres::lease_statement("w", 1, 2, ids.clone()))
                .await?;
            let after = read(txn.query_all_raw(pages(&ids)).await?)?;
            Ok((before, after))
        })
        .await?
        else {
            return Ok(());
        };
        assert_eq!(before.len(), 64);
        assert_eq!(before, after, "leased rows moved to other pages");
        Ok(())
    }

    /// The worker's statements on SQLite (`sqlite.rs`) each find their rows through an index:
    /// the claim's candidates in due order through `ix_deliveries_waiting`, every other one
    /// a delivery by id. Once, SQLite's planner answered a settle by walking every waiting
    /// delivery for each row of the batch (a drain near 1,000/s with 100,000 queued).
    #[tokio::test]
    async fn the_worker_finds_each_delivery_through_an_index_on_sqlite() -> Result<(), StoreError> {
        let dir = std::env::temp_dir().join(format!("deprov-settle-plan-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::other(e.to_string()))?;
        let store = Store::open(&DatabaseLocation::Sqlite(dir.join("d.db"))).await?;
        let by_id = "deliveries USING INDEX sqlite_autoindex_deliveries_1 (id=?)";
        for (sql, index) in [
            (
                sqlite::CANDIDATES.to_owned(),
                "deliveries USING INDEX ix_deliveries_waiting (next_attempt_at<?)",
            ),
            (sqlite::lease_sql(), by_id),
            (sqlite::RECORD_ATTEMPT.to_owned(), by_id),
            (sqlite::settle_sql(), by_id),
        ] {
            // Seven parameters at most; their values do not change the plan.
            let values = (1..=7).map(|n: i64| sea_orm::Value::from(n));
            let plan = sqlite_plan(&store, &sql, values).await?;
            assert!(
                plan.iter().any(|step| step == &format!("SEARCH {index}")),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan
                    .iter()
                    .any(|step| step.starts_with("SCAN") || step.contains("TEMP B-TREE")),
                "{sql}: {plan:?}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
