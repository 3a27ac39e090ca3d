//! PostgreSQL: concurrent replacements of users (PATCH and PUT, through
//! [`crate::Store::replace_seen_user`]) written together, one statement per batch.
//!
//! A replacement alone is one statement: the `UPDATE`, and on a change of `active` its
//! event and deliveries ([`super::events::change_with_event`]). What bounds their rate on
//! PostgreSQL is its CPU per statement, not its commits (which it already groups): under
//! pgbench on 2 cores, deprov's deactivation statement took 307–428 µs of PostgreSQL CPU
//! each, the same statement for eight users at once 78–80 µs per user.
//!
//! So a replacement that arrives while a batch runs waits, and goes with every other one
//! that waited in the next batch: one statement, one commit. Within it each user keeps its
//! own version check, its own event (with its own request id) and its own deliveries; a
//! user that changed since it was read is not written and its caller reads again. A batch
//! holds only what waited, so an idle service writes each replacement alone, at once.
//!
//! A batch's statement is atomic. When it fails (a userName already taken, a deadlock),
//! nothing of it was written, and each of its replacements is written again alone, so that
//! each gets its own answer.
//!
//! One batch runs at a time, on a task of its own: a caller that goes away (its client
//! hung up) never cancels a statement that other callers wait for.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use deprov_core::scim::EventKind;
use sea_orm::sqlx::Row as _;
use sea_orm::{DbErr, RuntimeErr};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::RequestContext;
use super::events::{bounded, delivery_rows_sql, snapshot_sql};
use super::sql::Sql;
use super::users::replace_alone;
use crate::entity::user;
use crate::postgres::ConnPool;
use crate::{Backend, StoreError, WriteTxn, now_millis};

/// Replacements per statement at most: a bound on one message's size.
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

/// The deliveries written for a replacement, or `None` when the user changed (or went)
/// since it was read and nothing was written.
pub(crate) type Written = Result<Option<usize>, StoreError>;

struct Job {
    replacement: Replacement,
    answer: oneshot::Sender<Written>,
}

/// The queue of replacements and the one task that writes them.
pub(crate) struct UserBatcher {
    writers: Arc<ConnPool>,
    queue: Mutex<VecDeque<Job>>,
    /// One permit: held by the task writing batches.
    running: Arc<Semaphore>,
}

impl std::fmt::Debug for UserBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserBatcher").finish_non_exhaustive()
    }
}

impl UserBatcher {
    pub(crate) fn new(writers: Arc<ConnPool>) -> Self {
        Self {
            writers,
            queue: Mutex::new(VecDeque::new()),
            running: Arc::new(Semaphore::new(1)),
        }
    }

    /// Writes `replacement` in the next batch and returns once that batch is committed.
    pub(crate) async fn write(self: &Arc<Self>, replacement: Replacement) -> Written {
        let (answer, answered) = oneshot::channel();
        self.queue().push_back(Job {
            replacement,
            answer,
        });
        if let Ok(permit) = self.running.clone().try_acquire_owned() {
            tokio::spawn(self.clone().run(permit));
        }
        answered.await.map_err(|_| {
            StoreError::Db(DbErr::Custom(
                "the batch of user writes ended without an answer".to_owned(),
            ))
        })?
    }

    /// Writes `replacements` as one batch, whatever else is queued (tests).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) async fn write_together(&self, replacements: Vec<Replacement>) -> Vec<Written> {
        let (jobs, answers): (Vec<Job>, Vec<_>) = replacements
            .into_iter()
            .map(|replacement| {
                let (answer, answered) = oneshot::channel();
                (
                    Job {
                        replacement,
                        answer,
                    },
                    answered,
                )
            })
            .unzip();
        self.write_batch(jobs).await;
        let mut written = Vec::with_capacity(answers.len());
        for answered in answers {
            written.push(
                answered
                    .await
                    .unwrap_or_else(|_| Err(StoreError::Db(DbErr::Custom("no answer".to_owned())))),
            );
        }
        written
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes batches while replacements wait. A replacement queued just as the permit is
    /// given back is seen by the check after it, or its own caller takes the permit.
    async fn run(self: Arc<Self>, mut permit: OwnedSemaphorePermit) {
        loop {
            let jobs: Vec<Job> = {
                let mut queue = self.queue();
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            if jobs.is_empty() {
                drop(permit);
                if self.queue().is_empty() {
                    return;
                }
                match self.running.clone().try_acquire_owned() {
                    Ok(again) => permit = again,
                    Err(_) => return,
                }
                continue;
            }
            self.write_batch(jobs).await;
        }
    }

    async fn write_batch(&self, jobs: Vec<Job>) {
        match self.write_at_once(&jobs).await {
            Ok(written) => {
                for (job, written) in jobs.into_iter().zip(written) {
                    let _ = job.answer.send(Ok(written));
                }
            }
            Err(e) => {
                if jobs.len() > 1 {
                    tracing::debug!(error = %e, writes = jobs.len(), "a batch of user writes failed; writing each alone");
                }
                for job in jobs {
                    let written = self.write_alone(&job.replacement).await;
                    let _ = job.answer.send(written);
                }
            }
        }
    }

    async fn write_alone(&self, replacement: &Replacement) -> Written {
        let txn = WriteTxn::plain(self.writers.begin_single().await?);
        let written = replace_alone(&txn, replacement).await?;
        txn.commit().await?;
        Ok(written)
    }

    /// The batch's statement: for each replacement (in order) its deliveries, or `None`.
    async fn write_at_once(&self, jobs: &[Job]) -> Result<Vec<Option<usize>>, DbErr> {
        let at = now_millis();
        let rows: Vec<serde_json::Value> = jobs
            .iter()
            .enumerate()
            .map(|(ord, job)| {
                let Replacement {
                    ctx,
                    old,
                    new,
                    kind,
                } = &job.replacement;
                json!({
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
                    "event_id": kind.map(|_| uuid::Uuid::now_v7().to_string()),
                    "kind": kind.map(EventKind::as_str),
                    "revokes": kind.is_some_and(EventKind::revokes),
                    "request_id": bounded(&ctx.request_id, 128),
                    "method": bounded(&ctx.method, 8),
                    "path": ctx.path,
                    "at": at,
                })
            })
            .collect();
        let mut sql = Sql::new(Backend::Postgres);
        let input = sql.bind(serde_json::Value::Array(rows));
        debug_assert_eq!(input, "$1");
        sql.push(&BATCH_SQL);
        let changed = self
            .writers
            .rows(&sql.build(), |row| {
                let ord: i32 = row.try_get(0).map_err(decode_err)?;
                let sent: i64 = row.try_get(1).map_err(decode_err)?;
                Ok((ord, sent))
            })
            .await?;
        let mut written = vec![None; jobs.len()];
        for (ord, sent) in changed {
            let slot = usize::try_from(ord)
                .ok()
                .and_then(|ord| written.get_mut(ord))
                .ok_or_else(|| DbErr::Custom(format!("the batch answered for write {ord}")))?;
            *slot = Some(usize::try_from(sent).unwrap_or(0));
        }
        Ok(written)
    }
}

fn decode_err(e: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(e.into()))
}

/// The statement of a batch, `$1` its rows (see [`UserBatcher::write_at_once`]). Each user
/// is updated if still at the version read; an updated user with an event kind gets that
/// event ([`snapshot_sql`]), and a revoking event its deliveries ([`delivery_rows_sql`]).
/// Answers `(ord, deliveries)` for each user updated.
static BATCH_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let deliveries = delivery_rows_sql(
        "written w JOIN changed c ON c.event_id = w.id AND c.revokes",
        "w.tenant_id",
        "w.occurred_at",
        "TRUE",
    );
    format!(
        "WITH input AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(ord int, \
         id varchar, tenant_id varchar, version bigint, user_name varchar, \
         user_name_folded varchar, external_id varchar, display_name varchar, \
         active boolean, resource jsonb, updated_at bigint, event_id varchar, kind varchar, \
         revokes boolean, request_id varchar, method varchar, path varchar, at bigint)), \
         changed AS (UPDATE users u SET user_name = i.user_name, \
         user_name_folded = i.user_name_folded, external_id = i.external_id, \
         display_name = i.display_name, active = i.active, resource = i.resource, \
         version = i.version + 1, updated_at = i.updated_at FROM input i \
         WHERE u.id = i.id AND u.tenant_id = i.tenant_id AND u.version = i.version \
         RETURNING i.ord, u.id, u.tenant_id, u.user_name, u.external_id, u.display_name, \
         u.active, u.resource, i.event_id, i.kind, i.revokes, i.request_id, i.method, \
         i.path, i.at), \
         written AS (INSERT INTO events (id, tenant_id, kind, user_id, user_snapshot, \
         group_id, group_display_name, request_id, scim_method, scim_path, occurred_at) \
         SELECT c.event_id, c.tenant_id, c.kind, c.id, {}, NULL, NULL, c.request_id, \
         c.method, c.path, c.at FROM changed c WHERE c.kind IS NOT NULL \
         RETURNING id, tenant_id, user_id, occurred_at), \
         sent AS ({deliveries}) \
         SELECT c.ord, (SELECT count(*) FROM sent s WHERE s.event_id = c.event_id) AS sent \
         FROM changed c",
        snapshot_sql("c"),
    )
});
