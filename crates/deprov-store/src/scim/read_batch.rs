//! PostgreSQL: concurrent reads of one user, by id (a GET, and the read a PATCH or PUT
//! starts from) or by userName (the `userName eq "…"` list an identity provider sends before
//! every create), that wait together go in one statement per kind.
//!
//! A read alone is one round trip, and on two cores what it costs is mostly the round trip:
//! the sends and wake-ups on both sides, and PostgreSQL starting a statement. A read that
//! arrives while another is running waits, and goes with every other one that waited in the
//! next statement. The statement is sent after each of its reads arrived, so each sees every
//! write committed before it was asked: nothing is served from memory.

use std::sync::Arc;

use sea_orm::DbErr;
use serde_json::json;
use tokio::sync::oneshot;

use super::UserRecord;
use super::batching::{self, Batching, JobQueue, enqueue};
use super::sql::Sql;
use crate::decode::{Decode, Row as _};
use crate::postgres::ConnPool;
use crate::{Backend, StoreError};

/// Reads per statement at most.
const MAX_BATCH: usize = 128;

/// Batches of reads at a time.
const RUNNERS: usize = 2;

type Answer = Result<Option<UserRecord>, StoreError>;

/// What a read looks a user up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    /// `users.id`.
    Id,
    /// `users.user_name_folded`: the value folded ([`super::fold`]).
    FoldedName,
}

impl Key {
    fn column(self) -> &'static str {
        match self {
            Key::Id => "id",
            Key::FoldedName => "user_name_folded",
        }
    }

    /// The statement for one user (`$1` the key, `$2` the tenant), on either backend.
    pub(crate) fn one(self) -> &'static str {
        static BY: std::sync::LazyLock<[String; 2]> =
            std::sync::LazyLock::new(|| [Key::Id, Key::FoldedName].map(one_sql));
        &BY[self as usize]
    }

    /// The statement for a batch (`$1` its rows): each user with its place in the batch
    /// after the user's columns.
    fn many(self) -> &'static str {
        static BY: std::sync::LazyLock<[String; 2]> =
            std::sync::LazyLock::new(|| [Key::Id, Key::FoldedName].map(many_sql));
        &BY[self as usize]
    }
}

fn one_sql(key: Key) -> String {
    format!(
        "SELECT {} FROM users u WHERE u.{} = $1 AND u.tenant_id = $2",
        UserRecord::select("u"),
        key.column()
    )
}

fn many_sql(key: Key) -> String {
    format!(
        "SELECT {}, i.ord::bigint FROM jsonb_to_recordset($1::jsonb) AS i(ord int, \
         key varchar, tenant_id varchar) JOIN users u ON u.{} = i.key \
         AND u.tenant_id = i.tenant_id",
        UserRecord::select("u"),
        key.column()
    )
}

pub(crate) struct Job {
    tenant_id: String,
    by: Key,
    key: String,
    answer: oneshot::Sender<Answer>,
}

/// The queue of reads.
pub(crate) struct UserReads {
    readers: Arc<ConnPool>,
    queue: JobQueue<Job>,
}

impl Batching for UserReads {
    type Job = Job;

    fn queue(&self) -> &JobQueue<Job> {
        &self.queue
    }

    fn run_batch(&self, jobs: Vec<Job>) -> impl Future<Output = ()> + Send {
        self.read_batch(jobs)
    }
}

impl std::fmt::Debug for UserReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserReads").finish_non_exhaustive()
    }
}

impl UserReads {
    pub(crate) fn new(readers: Arc<ConnPool>) -> Self {
        Self {
            readers,
            queue: JobQueue::new(MAX_BATCH, RUNNERS),
        }
    }

    /// The user of the tenant whose `by` is `key`, read in the next batch.
    pub(crate) async fn read(self: &Arc<Self>, tenant_id: &str, by: Key, key: &str) -> Answer {
        let (answer, answered) = oneshot::channel();
        let job = Job {
            tenant_id: tenant_id.to_owned(),
            by,
            key: key.to_owned(),
            answer,
        };
        enqueue(self, job);
        batching::answer(answered).await
    }

    /// Reads `wanted` (tenant, what to look up by, and the key of each) as one batch,
    /// whatever else is queued (tests).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) async fn read_together(&self, wanted: Vec<(String, Key, String)>) -> Vec<Answer> {
        let (jobs, answers): (Vec<Job>, Vec<_>) = wanted
            .into_iter()
            .map(|(tenant_id, by, key)| {
                let (answer, answered) = oneshot::channel();
                let job = Job {
                    tenant_id,
                    by,
                    key,
                    answer,
                };
                (job, answered)
            })
            .unzip();
        self.read_batch(jobs).await;
        batching::answers(answers).await
    }

    async fn read_batch(&self, jobs: Vec<Job>) {
        let (by_id, by_name): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|job| job.by == Key::Id);
        for (by, jobs) in [(Key::Id, by_id), (Key::FoldedName, by_name)] {
            if !jobs.is_empty() {
                self.read_by(by, jobs).await;
            }
        }
    }

    async fn read_by(&self, by: Key, jobs: Vec<Job>) {
        if jobs.len() > 1 {
            match self.read_many(by, &jobs).await {
                Ok(mut found) => {
                    for (job, user) in jobs.into_iter().zip(found.iter_mut()) {
                        let _ = job.answer.send(Ok(user.take()));
                    }
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, reads = jobs.len(), "a batch of user reads failed; reading each alone");
                }
            }
        }
        for job in jobs {
            let user = self.read_one(by, &job.tenant_id, &job.key).await;
            let _ = job.answer.send(user);
        }
    }

    async fn read_one(&self, by: Key, tenant_id: &str, key: &str) -> Answer {
        let mut sql = Sql::new(Backend::Postgres);
        let (k, t) = (sql.bind(key.to_owned()), sql.bind(tenant_id.to_owned()));
        debug_assert_eq!((k.as_str(), t.as_str()), ("$1", "$2"));
        sql.push(by.one());
        let rows = self.readers.rows(&sql.build(), UserRecord::decode).await?;
        Ok(rows.into_iter().next())
    }

    async fn read_many(&self, by: Key, jobs: &[Job]) -> Result<Vec<Option<UserRecord>>, DbErr> {
        let input = jobs
            .iter()
            .enumerate()
            .map(|(ord, job)| json!({"ord": ord, "key": job.key, "tenant_id": job.tenant_id}))
            .collect();
        let mut sql = Sql::new(Backend::Postgres);
        let p = sql.bind(serde_json::Value::Array(input));
        debug_assert_eq!(p, "$1");
        sql.push(by.many());
        let ord_column = UserRecord::COLUMNS.len();
        let rows = self
            .readers
            .rows(&sql.build(), |row| {
                Ok((UserRecord::decode(row)?, row.int(ord_column)?))
            })
            .await?;
        batching::by_place(jobs.len(), rows.into_iter().map(|(user, ord)| (ord, user)))
    }
}
