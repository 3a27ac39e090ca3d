//! PostgreSQL: concurrent writes of users (POST, PUT and PATCH, DELETE) that wait together
//! are written together, one statement per batch.
//!
//! A write of a user alone is one statement: an `INSERT`; an `UPDATE` or `DELETE` and, when
//! it records an event, the event and its deliveries
//! ([`super::events::change_with_event`]). What bounds their rate on PostgreSQL is its CPU
//! per statement, not its commits (which it already groups): under pgbench on 2 cores,
//! deprov's deactivation statement took 307–428 µs of PostgreSQL CPU each, the same
//! statement for eight users at once 78–80 µs per user.
//!
//! So a write that arrives while a batch of its kind runs waits, and goes with every other
//! one that waited in the next batch: one statement, one commit. Within it each write keeps
//! its own checks (the version read, the userName free), its own event (with its own
//! request id) and its own deliveries; a write whose check fails is not written and its
//! caller goes on as it would alone. A batch holds only what waited, so an idle service
//! writes each alone, at once.
//!
//! A batch's statement is atomic. When it fails (a userName already taken, a deadlock),
//! nothing of it was written, and each of its writes is written again alone, so that each
//! gets its own answer.
//!
//! One batch of a kind runs at a time, on a task of its own (batching.rs): a caller that
//! goes away (its client hung up) never cancels a statement that other callers wait for.

use std::sync::Arc;

use deprov_core::scim::EventKind;
use sea_orm::DbErr;
use serde_json::json;
use tokio::sync::oneshot;

use super::RequestContext;
use super::batching::{self, Batching, JobQueue, enqueue};
use super::events::{bounded, delivery_rows_sql, snapshot_sql};
use super::sql::Sql;
use super::users::{create_alone, delete_alone, replace_alone};
use crate::decode::Row as _;
use crate::entity::user;
use crate::postgres::ConnPool;
use crate::{Backend, StoreError, WriteTxn, now_millis};

/// Writes per statement at most: a bound on one message's size.
const MAX_BATCH: usize = 64;

/// A user's replacement as its caller read the user: the row as seen, the row it becomes,
/// and the event the change of `active` records, if any.
#[derive(Debug)]
pub(crate) struct Replacement {
    pub ctx: RequestContext,
    pub old: user::Model,
    pub new: user::Model,
    pub kind: Option<EventKind>,
}

/// A user's deletion (DELETE), at `version` if given (an `If-Match`).
#[derive(Debug)]
pub(crate) struct Deletion {
    pub ctx: RequestContext,
    pub id: String,
    pub version: Option<i64>,
}

/// A new user (POST), written unless a user of the tenant has its userName
/// (case-insensitively) or its externalId.
#[derive(Debug)]
pub(crate) struct Creation {
    pub new: user::Model,
}

/// What a write did: the deliveries written for it, or `None` when its check failed and
/// nothing was written (the user changed or went since it was read; the user to create
/// matches another).
pub(crate) type Written = Result<Option<usize>, StoreError>;

/// A kind of write that goes in batches.
pub(crate) trait BatchedWrite: std::fmt::Debug + Send + Sync + Sized + 'static {
    /// The statement of a batch: `$1` is the JSON array of the writes'
    /// [`BatchedWrite::row`]s; it answers `(ord, deliveries)` for each write done.
    fn statement() -> &'static str;

    /// This write's row of `$1`, `ord` its place in the batch and `at` the batch's time.
    fn row(&self, ord: usize, at: i64) -> serde_json::Value;

    /// Writes it alone in `txn`, a single-statement write.
    fn alone<'a>(&'a self, txn: &'a WriteTxn) -> impl Future<Output = Written> + Send + 'a;
}

pub(crate) struct Job<W> {
    write: W,
    answer: oneshot::Sender<Written>,
}

/// The queue of one kind of write.
pub(crate) struct Batcher<W> {
    writers: Arc<ConnPool>,
    queue: JobQueue<Job<W>>,
}

/// The batches of each kind of user write (PostgreSQL).
#[derive(Debug)]
pub(crate) struct UserBatches {
    pub replace: Arc<Batcher<Replacement>>,
    pub delete: Arc<Batcher<Deletion>>,
    pub create: Arc<Batcher<Creation>>,
}

impl UserBatches {
    pub(crate) fn new(writers: &Arc<ConnPool>) -> Self {
        Self {
            replace: Arc::new(Batcher::new(writers.clone())),
            delete: Arc::new(Batcher::new(writers.clone())),
            create: Arc::new(Batcher::new(writers.clone())),
        }
    }
}

impl<W: BatchedWrite> Batching for Batcher<W> {
    type Job = Job<W>;

    fn queue(&self) -> &JobQueue<Job<W>> {
        &self.queue
    }

    fn run_batch(&self, jobs: Vec<Job<W>>) -> impl Future<Output = ()> + Send {
        self.write_batch(jobs)
    }
}

impl<W> std::fmt::Debug for Batcher<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl<W: BatchedWrite> Batcher<W> {
    fn new(writers: Arc<ConnPool>) -> Self {
        Self {
            writers,
            queue: JobQueue::new(MAX_BATCH, 1),
        }
    }

    /// Writes `write` in the next batch and returns once that batch is committed.
    pub(crate) async fn write(self: &Arc<Self>, write: W) -> Written {
        let (answer, answered) = oneshot::channel();
        enqueue(self, Job { write, answer });
        batching::answer(answered).await
    }

    /// Writes `writes` as one batch, whatever else is queued (tests).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) async fn write_together(&self, writes: Vec<W>) -> Vec<Written> {
        let (jobs, answers): (Vec<Job<W>>, Vec<_>) = writes
            .into_iter()
            .map(|write| {
                let (answer, answered) = oneshot::channel();
                (Job { write, answer }, answered)
            })
            .unzip();
        self.write_batch(jobs).await;
        batching::answers(answers).await
    }

    async fn write_batch(&self, mut jobs: Vec<Job<W>>) {
        // Alone, a write's own statement is the cheaper one (no input to unpack).
        if jobs.len() == 1
            && let Some(job) = jobs.pop()
        {
            let written = self.write_alone(&job.write).await;
            let _ = job.answer.send(written);
            return;
        }
        match self.write_at_once(&jobs).await {
            Ok(written) => {
                for (job, written) in jobs.into_iter().zip(written) {
                    let _ = job.answer.send(Ok(written));
                }
            }
            Err(e) => {
                if jobs.len() > 1 {
                    tracing::debug!(error = %e, writes = jobs.len(), "a batch of writes failed; writing each alone");
                }
                for job in jobs {
                    let written = self.write_alone(&job.write).await;
                    let _ = job.answer.send(written);
                }
            }
        }
    }

    async fn write_alone(&self, write: &W) -> Written {
        let txn = WriteTxn::plain(self.writers.begin_single().await?);
        let written = write.alone(&txn).await?;
        txn.commit().await?;
        Ok(written)
    }

    /// The batch's statement: for each write (in order) its deliveries, or `None`.
    async fn write_at_once(&self, jobs: &[Job<W>]) -> Result<Vec<Option<usize>>, DbErr> {
        let at = now_millis();
        let rows = jobs
            .iter()
            .enumerate()
            .map(|(ord, job)| job.write.row(ord, at))
            .collect();
        let mut sql = Sql::new(Backend::Postgres);
        let input = sql.bind(serde_json::Value::Array(rows));
        debug_assert_eq!(input, "$1");
        sql.push(W::statement());
        let done = self
            .writers
            .rows(&sql.build(), |row| Ok((row.int(0)?, row.int(1)?)))
            .await?;
        let sent = done
            .into_iter()
            .map(|(ord, sent)| (ord, usize::try_from(sent).unwrap_or(0)));
        batching::by_place(jobs.len(), sent)
    }
}

/// The columns of an input row that describe the event a write records (`kind` null for
/// none), read by [`EVENTS_AND_ANSWER`] from `changed`.
const EVENT_COLUMNS: &str = "event_id varchar, kind varchar, revokes boolean, \
     request_id varchar, method varchar, path varchar, at bigint";

/// The end of a batch's statement after `changed` (the users written, with `ord`, the
/// columns of [`super::events::CHANGED_USER`], `tenant_id` and [`EVENT_COLUMNS`]): an event
/// for each with a kind ([`snapshot_sql`]), the deliveries of each revoking one
/// ([`delivery_rows_sql`]), and the answer `(ord, deliveries)` for each.
static EVENTS_AND_ANSWER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let deliveries = delivery_rows_sql(
        "written w JOIN changed c ON c.event_id = w.id AND c.revokes",
        "w.tenant_id",
        "w.occurred_at",
        "TRUE",
    );
    format!(
        "written AS (INSERT INTO events (id, tenant_id, kind, user_id, user_snapshot, \
         group_id, group_display_name, request_id, scim_method, scim_path, occurred_at) \
         SELECT c.event_id, c.tenant_id, c.kind, c.id, {}, NULL, NULL, c.request_id, \
         c.method, c.path, c.at FROM changed c WHERE c.kind IS NOT NULL \
         RETURNING id, tenant_id, user_id, occurred_at), \
         sent AS ({deliveries}) \
         SELECT c.ord::bigint, (SELECT count(*) FROM sent s WHERE s.event_id = c.event_id) AS sent \
         FROM changed c",
        snapshot_sql("c"),
    )
});

/// What `changed` returns of each user written, for [`EVENTS_AND_ANSWER`].
const RETURNING: &str = "RETURNING i.ord, u.id, u.tenant_id, u.user_name, u.external_id, \
     u.display_name, u.active, u.resource, i.event_id, i.kind, i.revokes, i.request_id, \
     i.method, i.path, i.at";

/// The event columns of a write's row: `kind` with `ctx`, or nulls.
fn event_row(
    row: &mut serde_json::Map<String, serde_json::Value>,
    kind: Option<EventKind>,
    ctx: &RequestContext,
    at: i64,
) {
    let fields = [
        (
            "event_id",
            json!(kind.map(|_| uuid::Uuid::now_v7().to_string())),
        ),
        ("kind", json!(kind.map(EventKind::as_str))),
        ("revokes", json!(kind.is_some_and(EventKind::revokes))),
        ("request_id", json!(bounded(&ctx.request_id, 128))),
        ("method", json!(bounded(&ctx.method, 8))),
        ("path", json!(ctx.path)),
        ("at", json!(at)),
    ];
    row.extend(fields.map(|(k, v)| (k.to_owned(), v)));
}

fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

impl BatchedWrite for Replacement {
    /// Each user is updated if still at the version read.
    fn statement() -> &'static str {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "WITH input AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(ord int, \
                 id varchar, tenant_id varchar, version bigint, user_name varchar, \
                 user_name_folded varchar, external_id varchar, display_name varchar, \
                 active boolean, resource jsonb, updated_at bigint, {EVENT_COLUMNS})), \
                 changed AS (UPDATE users u SET user_name = i.user_name, \
                 user_name_folded = i.user_name_folded, external_id = i.external_id, \
                 display_name = i.display_name, active = i.active, resource = i.resource, \
                 version = i.version + 1, updated_at = i.updated_at FROM input i \
                 WHERE u.id = i.id AND u.tenant_id = i.tenant_id AND u.version = i.version \
                 {RETURNING}), {}",
                *EVENTS_AND_ANSWER
            )
        });
        &SQL
    }

    fn row(&self, ord: usize, at: i64) -> serde_json::Value {
        let Self {
            ctx,
            old,
            new,
            kind,
        } = self;
        let mut row = object(json!({
            "ord": ord,
            "id": old.id,
            "tenant_id": old.tenant_id,
            "version": old.version,
            "user_name": new.user_name,
            "user_name_folded": new.user_name_folded,
            "external_id": new.external_id,
            "display_name": new.display_name,
            "active": new.active,
            "resource": new.resource,
            "updated_at": new.updated_at,
        }));
        event_row(&mut row, *kind, ctx, at);
        serde_json::Value::Object(row)
    }

    fn alone<'a>(&'a self, txn: &'a WriteTxn) -> impl Future<Output = Written> + Send + 'a {
        replace_alone(txn, self)
    }
}

impl BatchedWrite for Deletion {
    /// Each user is deleted (at the version given, if any), with its memberships.
    fn statement() -> &'static str {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "WITH input AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(ord int, \
                 id varchar, tenant_id varchar, version bigint, {EVENT_COLUMNS})), \
                 changed AS (DELETE FROM users u USING input i \
                 WHERE u.id = i.id AND u.tenant_id = i.tenant_id \
                 AND (i.version IS NULL OR u.version = i.version) {RETURNING}), \
                 memberships AS (DELETE FROM group_members m USING changed c \
                 WHERE m.tenant_id = c.tenant_id AND m.member_id = c.id), {}",
                *EVENTS_AND_ANSWER
            )
        });
        &SQL
    }

    fn row(&self, ord: usize, at: i64) -> serde_json::Value {
        let mut row = object(json!({
            "ord": ord,
            "id": self.id,
            "tenant_id": self.ctx.tenant_id,
            "version": self.version,
        }));
        event_row(&mut row, Some(EventKind::Deleted), &self.ctx, at);
        serde_json::Value::Object(row)
    }

    fn alone<'a>(&'a self, txn: &'a WriteTxn) -> impl Future<Output = Written> + Send + 'a {
        delete_alone(txn, self)
    }
}

impl BatchedWrite for Creation {
    /// Each user is inserted unless a user of its tenant, or an earlier one of the batch,
    /// has its userName or its externalId (those go on as after a failed insert alone).
    fn statement() -> &'static str {
        "WITH input AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(ord int, \
         id varchar, tenant_id varchar, user_name varchar, user_name_folded varchar, \
         external_id varchar, display_name varchar, active boolean, resource jsonb, \
         version bigint, created_at bigint, updated_at bigint)), \
         inserted AS (INSERT INTO users (id, tenant_id, user_name, user_name_folded, \
         external_id, display_name, active, resource, version, created_at, updated_at) \
         SELECT i.id, i.tenant_id, i.user_name, i.user_name_folded, i.external_id, \
         i.display_name, i.active, i.resource, i.version, i.created_at, i.updated_at \
         FROM input i WHERE NOT EXISTS (SELECT 1 FROM users u \
         WHERE u.tenant_id = i.tenant_id AND u.user_name_folded = i.user_name_folded) \
         AND (i.external_id IS NULL OR NOT EXISTS (SELECT 1 FROM users u \
         WHERE u.tenant_id = i.tenant_id AND u.external_id = i.external_id)) \
         AND NOT EXISTS (SELECT 1 FROM input e WHERE e.ord < i.ord \
         AND e.tenant_id = i.tenant_id AND (e.user_name_folded = i.user_name_folded \
         OR e.external_id = i.external_id)) \
         ON CONFLICT DO NOTHING RETURNING id) \
         SELECT i.ord::bigint, 0::bigint FROM inserted n JOIN input i ON i.id = n.id"
    }

    fn row(&self, ord: usize, _at: i64) -> serde_json::Value {
        let u = &self.new;
        json!({
            "ord": ord,
            "id": u.id,
            "tenant_id": u.tenant_id,
            "user_name": u.user_name,
            "user_name_folded": u.user_name_folded,
            "external_id": u.external_id,
            "display_name": u.display_name,
            "active": u.active,
            "resource": u.resource,
            "version": u.version,
            "created_at": u.created_at,
            "updated_at": u.updated_at,
        })
    }

    fn alone<'a>(&'a self, txn: &'a WriteTxn) -> impl Future<Output = Written> + Send + 'a {
        create_alone(txn, self)
    }
}
