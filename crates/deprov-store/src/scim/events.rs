//! De-provisioning events, written in the transaction of the change that causes them.
//!
//! [`record_events`] writes events and, through the outbox, their deliveries (one per
//! subscribed target) in the transaction of the change. On PostgreSQL a change of one user
//! that causes an event is instead one statement ([`change_with_event`]): the change, the
//! event, its deliveries and the outbox notification, which PostgreSQL runs as its own
//! transaction, one round trip where the transaction took five.

use deprov_core::scim::EventKind;
use sea_orm::{ConnectionTrait, FromQueryResult};
use serde_json::{Value as JsonValue, json};

use deprov_core::fanout::GroupFacts;

use super::RequestContext;
use super::sql::Sql;
use crate::WriteTxn;
use crate::entity::{event, user};
use crate::outbox::{self, EnqueueEvent};
use crate::{Backend, Store, StoreError, now_millis};

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub id: String,
    pub kind: EventKind,
    pub user_id: String,
    /// `{id, userName, externalId, displayName, emails, active}` when the event happened,
    /// so that the event can be delivered after the user is gone.
    pub user_snapshot: JsonValue,
    pub group_id: Option<String>,
    pub group_display_name: Option<String>,
    pub request_id: String,
    pub scim_method: String,
    pub scim_path: String,
    pub occurred_at: i64,
}

/// An event about to be written.
#[derive(Debug)]
pub(crate) struct NewEvent<'a> {
    pub kind: EventKind,
    pub user_id: String,
    pub user_snapshot: JsonValue,
    /// The group left, for `RemovedFromGroup`: id and display name.
    pub group: Option<(&'a str, &'a str)>,
}

/// The user as it was, for targets that need any attribute of it (a relying party's
/// subject mapping may name an extension attribute) once the user is gone: the stored
/// resource with the server-owned identifiers laid over it.
pub(crate) fn snapshot(user: &user::Model) -> JsonValue {
    let mut value = match &user.resource {
        JsonValue::Object(map) => JsonValue::Object(map.clone()),
        _ => json!({}),
    };
    if let Some(obj) = value.as_object_mut() {
        obj.insert("id".into(), json!(user.id));
        obj.insert("userName".into(), json!(user.user_name));
        obj.insert("externalId".into(), json!(user.external_id));
        obj.insert("displayName".into(), json!(user.display_name));
        obj.insert("active".into(), json!(user.active));
    }
    value
}

/// Cuts `s` to at most `max` bytes on a character boundary (the request id column is
/// bounded; a client-chosen request id must not make the write fail).
pub(crate) fn bounded(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_owned()
}

/// Events per `INSERT`: six values each, well inside SQLite's 32,766 bound parameters.
const EVENTS_PER_INSERT: usize = 1000;

/// Writes events in `txn`, [`EVENTS_PER_INSERT`] per statement, and returns their ids.
pub(crate) async fn record_events(
    txn: &WriteTxn,
    backend: Backend,
    ctx: &RequestContext,
    mut events: Vec<NewEvent<'_>>,
) -> Result<Recorded, StoreError> {
    let now = now_millis();
    let mut ids = Vec::with_capacity(events.len());
    // On PostgreSQL the fan-out's targets come back with the last INSERT: a round trip
    // fewer for every de-provisioning.
    let read_targets = backend == Backend::Postgres && events.iter().any(|e| e.kind.revokes());
    let mut targets = None;
    let chunks = events.len().div_ceil(EVENTS_PER_INSERT);
    for (n, chunk) in events.chunks_mut(EVENTS_PER_INSERT).enumerate() {
        let mut sql = Sql::new(backend);
        let tenant = sql.bind(ctx.tenant_id.clone());
        let request = sql.bind(bounded(&ctx.request_id, 128));
        let method = sql.bind(bounded(&ctx.method, 8));
        let path = sql.bind(ctx.path.clone());
        let at = sql.bind(now);
        let mut rows = Vec::with_capacity(chunk.len());
        for e in chunk {
            let id = uuid::Uuid::now_v7().to_string();
            ids.push(id.clone());
            let (group_id, group_name) = e.group.map(|(i, n)| (i.to_owned(), n.to_owned())).unzip();
            rows.push(format!(
                "({}, {tenant}, {}, {}, {}, {}, {}, {request}, {method}, {path}, {at})",
                sql.bind(id),
                sql.bind(e.kind.as_str()),
                sql.bind(e.user_id.clone()),
                // Written once, so taken rather than copied; the fan-out below needs no snapshot.
                sql.bind(std::mem::take(&mut e.user_snapshot)),
                sql.bind(group_id),
                sql.bind(group_name),
            ));
        }
        let insert = format!(
            "INSERT INTO events (id, tenant_id, kind, user_id, user_snapshot, group_id, \
             group_display_name, request_id, scim_method, scim_path, occurred_at) VALUES {}",
            rows.join(", ")
        );
        if read_targets && n + 1 == chunks {
            let enabled = sql.bind(true);
            sql.push(&format!(
                "WITH written AS ({insert}) {}",
                outbox::enabled_targets_sql(&tenant, &enabled)
            ));
            let rows = txn.query_all_raw(sql.build()).await?;
            targets = Some(outbox::enabled_targets_of(&rows)?);
        } else {
            sql.push(&insert);
            txn.execute_raw(sql.build()).await?;
        }
    }
    // The outbox: one delivery per target each event reaches, in this same transaction.
    let fanout: Vec<EnqueueEvent<'_>> = events
        .iter()
        .zip(&ids)
        .map(|(e, id)| EnqueueEvent {
            event_id: id,
            kind: e.kind,
            user_id: &e.user_id,
            group: e.group.map(|(gid, name)| GroupFacts {
                id_folded: gid.to_lowercase(),
                display_name_folded: name.to_lowercase(),
            }),
        })
        .collect();
    let sqlite = txn.sqlite().transpose()?;
    let deliveries = outbox::enqueue_to(txn, sqlite, &ctx.tenant_id, &fanout, targets).await?;
    Ok(Recorded { deliveries })
}

/// What [`record_events`] wrote.
#[derive(Debug, Default)]
pub(crate) struct Recorded {
    /// Deliveries enqueued for them: when non-zero, wake the worker after the commit.
    pub deliveries: usize,
}

/// Writes one event in `txn` and returns its id.
pub(crate) async fn record_event(
    txn: &WriteTxn,
    backend: Backend,
    ctx: &RequestContext,
    event: NewEvent<'_>,
) -> Result<Recorded, StoreError> {
    record_events(txn, backend, ctx, vec![event]).await
}

/// The columns of a user a change's `RETURNING` gives [`change_with_event`].
pub(crate) const CHANGED_USER: &str = "id, user_name, external_id, display_name, active, resource";

/// PostgreSQL: the user snapshot of a changed row `c` (columns [`CHANGED_USER`]) in SQL:
/// [`snapshot`], the stored resource with the server-owned identifiers laid over.
pub(crate) fn snapshot_sql(c: &str) -> String {
    format!(
        "(CASE WHEN jsonb_typeof({c}.resource) = 'object' THEN {c}.resource ELSE '{{}}'::jsonb END) \
         || jsonb_build_object('id', {c}.id, 'userName', {c}.user_name, 'externalId', \
         {c}.external_id, 'displayName', {c}.display_name, 'active', {c}.active)"
    )
}

/// PostgreSQL: `INSERT INTO deliveries` of one pending delivery, due at `at`, per target
/// each event reaches ([`outbox::reached_by_user_event_sql`]). `from` yields the events as
/// `w` (its `id` and `user_id`) of tenant `tenant`. Returns each delivery's `event_id`.
pub(crate) fn delivery_rows_sql(from: &str, tenant: &str, at: &str, enabled: &str) -> String {
    let reached = outbox::reached_by_user_event_sql(tenant, "w.user_id", enabled);
    // A delivery's id is a UUIDv7 of the event's millisecond: the event id's first 15
    // characters (time and version) and a random UUID's remaining 21.
    format!(
        "INSERT INTO deliveries (id, event_id, tenant_id, target_id, target_kind, status, \
         attempt_count, next_attempt_at, created_at, updated_at) \
         SELECT left(w.id, 15) || substr(gen_random_uuid()::text, 16), w.id, {tenant}, \
         tg.id, tg.kind, '{}', 0, {at}, {at}, {at} FROM {from} JOIN targets tg ON {reached} \
         RETURNING event_id",
        outbox::PENDING
    )
}

/// PostgreSQL: runs `change` (an `UPDATE` or `DELETE` of one user of the tenant, bound in
/// `sql`, `RETURNING` [`CHANGED_USER`]) and, if it changed a row, records the `kind` event
/// with the user's [`snapshot`] as the change left it (or found it, for a deletion), a
/// delivery per target the event reaches ([`outbox::reached_by_user_event_sql`]) and the
/// outbox notification, all in one statement. `then` is run too, as more CTEs that may
/// read the change as `changed` (the deleted user's memberships, say). Returns the number
/// of deliveries written, or `None` when `change` matched no row and nothing was written.
pub(crate) async fn change_with_event(
    txn: &WriteTxn,
    mut sql: Sql,
    change: &str,
    then: Option<&str>,
    ctx: &RequestContext,
    kind: EventKind,
) -> Result<Option<usize>, sea_orm::DbErr> {
    debug_assert!(sql.is_postgres());
    let now = now_millis();
    let tenant = sql.bind(ctx.tenant_id.clone());
    let event = sql.bind(uuid::Uuid::now_v7().to_string());
    let kind_p = sql.bind(kind.as_str());
    let request = sql.bind(bounded(&ctx.request_id, 128));
    let method = sql.bind(bounded(&ctx.method, 8));
    let path = sql.bind(ctx.path.clone());
    let at = sql.bind(now);
    let mut text = format!("WITH changed AS ({change} RETURNING {CHANGED_USER})");
    if let Some(then) = then {
        text.push_str(", ");
        text.push_str(then);
    }
    text.push_str(&format!(
        ", written AS (INSERT INTO events (id, tenant_id, kind, user_id, user_snapshot, \
         group_id, group_display_name, request_id, scim_method, scim_path, occurred_at) \
         SELECT {event}, {tenant}, {kind_p}, c.id, {}, NULL, NULL, {request}, {method}, \
         {path}, {at} FROM changed c RETURNING id, user_id)",
        snapshot_sql("c")
    ));
    let sent = if kind.revokes() {
        let enabled = sql.bind(true);
        text.push_str(&format!(
            ", sent AS ({})",
            delivery_rows_sql("written w", &tenant, &at, &enabled)
        ));
        "(SELECT count(*) FROM sent) AS sent"
    } else {
        "0::bigint AS sent"
    };
    text.push_str(&format!(
        " SELECT (SELECT count(*) FROM written) AS written, {sent}"
    ));
    sql.push(&text);
    let row = txn.query_one_raw(sql.build()).await?;
    let count = |column: &str| -> Result<i64, sea_orm::DbErr> {
        Ok(row
            .as_ref()
            .map(|r| r.try_get::<i64>("", column))
            .transpose()?
            .unwrap_or(0))
    };
    if count("written")? == 0 {
        return Ok(None);
    }
    Ok(Some(usize::try_from(count("sent")?).unwrap_or(0)))
}

impl Store {
    /// The tenant's events, oldest first, optionally of one user only.
    pub async fn list_events(
        &self,
        tenant_id: &str,
        user_id: Option<&str>,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let mut sql = Sql::new(self.backend());
        let tenant = sql.bind(tenant_id.to_owned());
        sql.push(&format!("SELECT * FROM events WHERE tenant_id = {tenant}"));
        if let Some(u) = user_id {
            let u = sql.bind(u.to_owned());
            sql.push(&format!(" AND user_id = {u}"));
        }
        sql.push(" ORDER BY occurred_at, id");
        let rows = event::Model::find_by_statement(sql.build())
            .all(self.reader())
            .await?;
        rows.into_iter()
            .map(|m| {
                let kind = EventKind::parse(&m.kind).ok_or_else(|| {
                    StoreError::Db(sea_orm::DbErr::Custom(format!(
                        "event {} has unknown kind {:?}",
                        m.id, m.kind
                    )))
                })?;
                Ok(EventRecord {
                    id: m.id,
                    kind,
                    user_id: m.user_id,
                    user_snapshot: m.user_snapshot,
                    group_id: m.group_id,
                    group_display_name: m.group_display_name,
                    request_id: m.request_id,
                    scim_method: m.scim_method,
                    scim_path: m.scim_path,
                    occurred_at: m.occurred_at,
                })
            })
            .collect()
    }
}
