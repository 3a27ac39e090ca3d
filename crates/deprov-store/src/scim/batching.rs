//! The queue behind PostgreSQL's batched reads and writes of users (read_batch.rs,
//! user_batch.rs): callers queue their work; one task at a time takes everything queued
//! (up to a bound) as one batch, runs it, and answers each caller.
//!
//! The batch runs on a task of its own, so a caller that goes away (its client hung up)
//! never cancels work other callers wait for. When nothing waits the task ends; the next
//! caller starts another.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sea_orm::DbErr;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::StoreError;

/// Work that is run in batches, each answering its callers.
pub(crate) trait Batching: Send + Sync + Sized + 'static {
    type Job: Send + 'static;

    fn queue(&self) -> &JobQueue<Self::Job>;

    /// Runs `jobs` (at least one) and answers each.
    fn run_batch(&self, jobs: Vec<Self::Job>) -> impl Future<Output = ()> + Send;
}

/// The jobs waiting for the next batch.
pub(crate) struct JobQueue<J> {
    jobs: Mutex<VecDeque<J>>,
    /// A permit per task running batches.
    running: Arc<Semaphore>,
    /// Jobs per batch at most.
    max: usize,
}

impl<J> JobQueue<J> {
    /// At most `max` jobs per batch, and `runners` batches at a time.
    pub(crate) fn new(max: usize, runners: usize) -> Self {
        Self {
            jobs: Mutex::new(VecDeque::new()),
            running: Arc::new(Semaphore::new(runners.max(1))),
            max: max.max(1),
        }
    }

    fn jobs(&self) -> MutexGuard<'_, VecDeque<J>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Queues `job` for `owner`'s next batch, and starts the task that runs batches when none
/// runs. The caller waits for its answer on a channel of its own.
pub(crate) fn enqueue<B: Batching>(owner: &Arc<B>, job: B::Job) {
    let queue = owner.queue();
    queue.jobs().push_back(job);
    if let Ok(permit) = queue.running.clone().try_acquire_owned() {
        tokio::spawn(run(owner.clone(), permit));
    }
}

/// The answer a caller waits for: an error when its batch ended without one (its task
/// panicked).
pub(crate) async fn answer<T>(
    answered: oneshot::Receiver<Result<T, StoreError>>,
) -> Result<T, StoreError> {
    answered.await.map_err(|_| {
        StoreError::Db(DbErr::Custom(
            "the batch ended without an answer".to_owned(),
        ))
    })?
}

/// The answers of several callers, in order (tests).
#[cfg(any(test, feature = "testing"))]
pub(crate) async fn answers<T>(
    answered: Vec<oneshot::Receiver<Result<T, StoreError>>>,
) -> Vec<Result<T, StoreError>> {
    let mut all = Vec::with_capacity(answered.len());
    for one in answered {
        all.push(answer(one).await);
    }
    all
}

/// What a batch's statement answered, `(place in the batch, answer)` rows, as one slot per
/// job: `None` for a job it did not answer for.
pub(crate) fn by_place<T>(
    jobs: usize,
    rows: impl IntoIterator<Item = (i64, T)>,
) -> Result<Vec<Option<T>>, DbErr> {
    let mut slots: Vec<Option<T>> = (0..jobs).map(|_| None).collect();
    for (place, answer) in rows {
        let slot = usize::try_from(place)
            .ok()
            .and_then(|place| slots.get_mut(place))
            .ok_or_else(|| DbErr::Custom(format!("the batch answered for job {place}")))?;
        *slot = Some(answer);
    }
    Ok(slots)
}

/// Runs batches while jobs wait. A job queued just as the permit is given back is seen by
/// the check after it, or its own caller takes the permit.
async fn run<B: Batching>(owner: Arc<B>, mut permit: OwnedSemaphorePermit) {
    loop {
        let queue = owner.queue();
        let jobs: Vec<B::Job> = {
            let mut waiting = queue.jobs();
            let n = waiting.len().min(queue.max);
            waiting.drain(..n).collect()
        };
        if jobs.is_empty() {
            drop(permit);
            if queue.jobs().is_empty() {
                return;
            }
            match queue.running.clone().try_acquire_owned() {
                Ok(again) => permit = again,
                Err(_) => return,
            }
            continue;
        }
        owner.run_batch(jobs).await;
    }
}
