//! The fan-out worker: claims due deliveries, performs them through their channel, and
//! settles each one (delivered, retry later, dead letter), recording every attempt.
//!
//! Concurrency: at most `concurrency` deliveries are in flight in this process, and at most
//! `per_target` for any one target, so a slow or dead application holds a few slots and
//! never delays the others. Claims are leases (see `deprov_store::outbox`): if this process
//! dies, its leases expire and another worker (or this one, restarted) claims the work again.
//!
//! Waking: the worker sleeps until the earliest due time, a poll interval, or a wake-up —
//! from this process (`Store::outbox_wake`, notified after a commit that enqueued work) or,
//! on PostgreSQL, from any replica (`LISTEN deprov_outbox`; the `NOTIFY` is sent right
//! after the enqueuing transaction commits).

pub mod observe;
pub mod retry;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deprov_store::outbox::{AttemptRecord, Claimed, Settle, SettleRequest};
use deprov_store::{Backend, Store, StoreError, now_millis};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::outbound::http::Exchange;
pub use observe::{DeliveryObserver, Settled};
pub use retry::{RetryPolicy, Verdict, classify};

/// What a channel did with one delivery.
#[derive(Debug, Clone)]
pub enum Performed {
    /// A request was made; its answer (or transport failure) decides.
    Answered(Exchange),
    /// Nothing could be sent and retrying cannot help (the target's URL is refused by the
    /// outbound policy, it requires a `sid` deprov does not know…): dead-lettered.
    Refused(String),
    /// The target was removed or disabled after the event: cancelled.
    Cancel(String),
    /// Nothing needed sending (an OP client holding no grant of the user): delivered, with
    /// the note kept on the attempt.
    NothingToDo(String),
}

type PerformFuture<'a> = Pin<Box<dyn Future<Output = Performed> + Send + 'a>>;

/// One way of telling a target (back-channel logout, token revocation, …).
pub trait Channel: Send + Sync + 'static {
    fn perform<'a>(&'a self, claimed: &'a Claimed) -> PerformFuture<'a>;
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Identifies this worker's leases (host, process and a random part).
    pub owner: String,
    pub concurrency: usize,
    pub per_target: usize,
    /// How long a claim is held; longer than the HTTP timeout with margin.
    pub lease: Duration,
    /// The longest sleep when nothing is due (a safety net beside the wake-ups).
    pub idle_poll: Duration,
    pub retry: RetryPolicy,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            owner: default_owner(),
            concurrency: 64,
            per_target: 8,
            lease: Duration::from_secs(60),
            idle_poll: Duration::from_secs(5),
            retry: RetryPolicy::default(),
        }
    }
}

fn settle_failed(reason: &str) -> StoreError {
    StoreError::other(format!("cannot record the attempt: {reason}"))
}

/// `hostname:pid:random`, unique per process start.
pub fn default_owner() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &id[..8])
}

pub struct Worker {
    store: Store,
    channels: HashMap<String, Arc<dyn Channel>>,
    config: WorkerConfig,
    observer: Option<Arc<dyn DeliveryObserver>>,
    /// While [`Worker::run`] runs: the queue of finished attempts to record, in batches.
    settler: Mutex<Option<mpsc::Sender<PendingSettle>>>,
}

/// A finished attempt waiting to be recorded, with what is reported once it is.
#[derive(Debug)]
struct PendingSettle {
    request: SettleRequest,
    about: Attempted,
}

/// Of the delivery an attempt was for: what its report names.
#[derive(Debug)]
struct Attempted {
    event_id: String,
    target_kind: String,
    event_at: i64,
}

/// The most attempts recorded in one transaction.
const MAX_SETTLE_BATCH: usize = 256;

/// Records finished attempts as they come, each time all that are waiting (up to
/// [`MAX_SETTLE_BATCH`]) in one transaction: while one batch is written, the next gathers.
/// Ends when every sender is gone.
///
/// An attempt's slot (the global and the per-target limit) is free once its exchange has
/// ended, before it is recorded here: those limits bound the requests a target sees at
/// once, and a slot held through the disk write of the record would only leave the
/// targets idle. The lease still fences the delivery until it is recorded; an attempt
/// whose record is lost in a crash is made again when the lease expires (at least once).
async fn settle_in_batches(
    store: Store,
    owner: String,
    observer: Option<Arc<dyn DeliveryObserver>>,
    mut queue: mpsc::Receiver<PendingSettle>,
) {
    let mut batch = Vec::with_capacity(MAX_SETTLE_BATCH);
    while queue.recv_many(&mut batch, MAX_SETTLE_BATCH).await > 0 {
        let (requests, about): (Vec<SettleRequest>, Vec<Attempted>) =
            batch.drain(..).map(|p| (p.request, p.about)).unzip();
        match store.settle_many(&owner, &requests).await {
            Ok(held) => {
                for ((request, about), held) in requests.iter().zip(&about).zip(held) {
                    report(observer.as_deref(), request, about, held);
                }
                // The worker timed its sleep before these were recorded: a retry due soon
                // must not wait for the poll interval.
                if requests
                    .iter()
                    .any(|r| matches!(r.outcome, Settle::Retry { .. }))
                {
                    store.outbox_wake().notify_one();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, attempts = requests.len(), "cannot record delivery attempts; their leases will expire and they will be made again");
            }
        }
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("channels", &self.channels.keys().collect::<Vec<_>>())
            .field("config", &self.config)
            .finish()
    }
}

impl Worker {
    pub fn new(store: Store, config: WorkerConfig) -> Self {
        Self {
            store,
            channels: HashMap::new(),
            config,
            observer: None,
            settler: Mutex::new(None),
        }
    }

    /// Tells `observer` about every settled attempt (metrics).
    pub fn with_observer(mut self, observer: Arc<dyn DeliveryObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Registers the channel that performs deliveries to targets of `kind`.
    pub fn with_channel(mut self, kind: &str, channel: Arc<dyn Channel>) -> Self {
        self.channels.insert(kind.to_owned(), channel);
        self
    }

    pub fn owner(&self) -> &str {
        &self.config.owner
    }

    /// Claims one batch of due deliveries, performs them concurrently and settles them.
    /// Returns how many were settled. Tests call this to drain the queue deterministically.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let claimed = self
            .store
            .claim_due(
                &self.config.owner,
                millis(self.config.lease),
                self.config.concurrency,
                self.config.per_target,
                &HashMap::new(),
            )
            .await?;
        let n = claimed.len();
        let results =
            futures_util::future::join_all(claimed.into_iter().map(|c| self.perform_and_settle(c)))
                .await;
        for r in results {
            r?;
        }
        Ok(n)
    }

    /// Runs until `cancel` fires, then lets attempts in flight finish (bounded by the HTTP
    /// timeout) and releases every lease it still holds.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let wake = self.store.outbox_wake();
        if self.store.backend() == Backend::Postgres {
            tokio::spawn(listen_for_notifications(
                self.store.clone(),
                wake.clone(),
                cancel.clone(),
            ));
        }
        // Bounded: when records fall behind, finished attempts wait to be queued and keep
        // their slots, so claims slow down with the disk.
        let (settle_tx, settle_rx) = mpsc::channel(self.config.concurrency.max(1) * 4);
        let settler = tokio::spawn(settle_in_batches(
            self.store.clone(),
            self.config.owner.clone(),
            self.observer.clone(),
            settle_rx,
        ));
        if let Ok(mut s) = self.settler.lock() {
            *s = Some(settle_tx);
        }
        let in_flight: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let mut tasks: JoinSet<()> = JoinSet::new();
        // Whether due work may be waiting that the last claim left: it filled every slot,
        // or some target was at its per-target limit. Only then is the end of an attempt
        // (which frees one slot) worth a claim; otherwise new work comes with a wake-up and
        // retries with the timer, and a claim would find nothing (one empty write
        // transaction per attempt of a fan-out).
        let mut more_may_wait = true;
        // A claim is due: at start, on a wake-up, or when an attempt ended while more may wait.
        let mut claim_asked = true;
        // When the queue said the next delivery falls due. It is read once per claim and
        // kept: attempts ending in between neither read it again nor push it back.
        let mut due_at = tokio::time::Instant::now();
        // Attempts that ended since the last claim, and how many make a claim worth it
        // when the slots are held by per-target limits rather than all taken: a quarter of
        // what is in flight, so that claims come in batches there too.
        let (mut ended, mut refill) = (0usize, 1usize);
        tracing::info!(owner = %self.config.owner, "delivery worker started");
        loop {
            if cancel.is_cancelled() {
                break;
            }
            // Ended attempts free their slots here, not one per turn of the loop.
            while tasks.try_join_next().is_some() {
                ended += 1;
            }
            claim_asked |= more_may_wait && (ended >= refill || tasks.is_empty());
            let capacity = self.config.concurrency.saturating_sub(tasks.len());
            // Claim in batches: one claim per finished attempt would cost a write
            // transaction per delivery.
            let batch = (self.config.concurrency / 4).max(1);
            let room = capacity >= batch || (capacity > 0 && tasks.is_empty());
            if room && (claim_asked || tokio::time::Instant::now() >= due_at) {
                claim_asked = false;
                ended = 0;
                let began = now_millis();
                let snapshot = in_flight.lock().map(|m| m.clone()).unwrap_or_default();
                let mut saturated = false;
                let mut claimed_none = true;
                // What each target holds once this claim's attempts start: a target at its
                // limit may have had more left behind (not the live counts, which fall as
                // attempts end while the claim runs).
                let mut held = snapshot.clone();
                match self
                    .store
                    .claim_due(
                        &self.config.owner,
                        millis(self.config.lease),
                        capacity,
                        self.config.per_target,
                        &snapshot,
                    )
                    .await
                {
                    Ok(claimed) => {
                        saturated = claimed.len() == capacity;
                        claimed_none = claimed.is_empty();
                        more_may_wait = saturated;
                        for c in claimed {
                            let target = c.delivery.target_id.clone();
                            *held.entry(target.clone()).or_default() += 1;
                            if let Ok(mut m) = in_flight.lock() {
                                *m.entry(target.clone()).or_default() += 1;
                            }
                            let worker = self.clone();
                            let in_flight = in_flight.clone();
                            tasks.spawn(async move {
                                if let Err(e) = worker.perform_and_settle(c).await {
                                    tracing::error!(error = %e, "cannot record a delivery attempt; its lease will expire and it will be retried");
                                }
                                if let Ok(mut m) = in_flight.lock()
                                    && let Some(n) = m.get_mut(&target)
                                {
                                    *n = n.saturating_sub(1);
                                    if *n == 0 {
                                        m.remove(&target);
                                    }
                                }
                            });
                        }
                    }
                    Err(e) => {
                        more_may_wait = true;
                        tracing::warn!(error = %e, "cannot claim deliveries; retrying shortly");
                    }
                }
                let per_target = self.config.per_target;
                more_may_wait |= held.values().any(|&n| n >= per_target);
                refill = (tasks.len() / 4).clamp(1, batch);
                let wait = if saturated {
                    Duration::ZERO
                } else {
                    // What is due already but waits for a target at its limit is claimed
                    // when one of our attempts ends; the timer is for what falls due after
                    // this claim began (retries), or, with nothing held back, for the
                    // earliest of everything waiting (leases of other workers included).
                    let next = if more_may_wait && !tasks.is_empty() {
                        self.store.next_due_after(began).await
                    } else {
                        self.store.next_due_at().await
                    };
                    match next {
                        Ok(Some(at)) => Duration::from_millis(
                            u64::try_from((at - now_millis()).max(0)).unwrap_or(0),
                        )
                        // Due now after a claim that found nothing: something this worker
                        // cannot take yet; look again shortly rather than spin.
                        .clamp(
                            Duration::from_millis(if claimed_none { 10 } else { 1 }),
                            self.config.idle_poll,
                        ),
                        _ => self.config.idle_poll,
                    }
                };
                due_at = tokio::time::Instant::now() + wait;
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = wake.notified() => claim_asked = true,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => ended += 1,
                _ = tokio::time::sleep_until(due_at), if room => {}
            }
        }
        tracing::info!(in_flight = tasks.len(), "delivery worker stopping");
        // Attempts in flight end within the HTTP timeout; their results are recorded.
        let grace = self.config.lease / 2;
        if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tasks.abort_all();
        }
        // Every attempt handed to the settler is recorded before the leases are released.
        if let Ok(mut s) = self.settler.lock() {
            s.take();
        }
        if let Err(e) = settler.await {
            tracing::warn!(error = %e, "the settler task failed");
        }
        match self.store.release_leases(&self.config.owner).await {
            Ok(n) if n > 0 => tracing::info!(released = n, "released delivery leases"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot release leases; they will expire"),
        }
        tracing::info!("delivery worker stopped");
    }

    async fn perform_and_settle(&self, claimed: Claimed) -> Result<(), StoreError> {
        let started_at = now_millis();
        let performed = match self.channels.get(&claimed.delivery.target_kind) {
            _ if claimed.target.as_ref().is_none_or(|t| !t.enabled) => {
                Performed::Cancel("the target was removed or disabled".to_owned())
            }
            Some(channel) => channel.perform(&claimed).await,
            None => Performed::Refused(format!(
                "no channel for target kind {:?}",
                claimed.delivery.target_kind
            )),
        };
        let (outcome, attempt, last_error) = self.decide(&claimed, started_at, performed);
        let pending = PendingSettle {
            request: SettleRequest {
                delivery_id: claimed.delivery.id.clone(),
                attempt,
                outcome,
                last_error,
            },
            about: Attempted {
                event_id: claimed.event.id.clone(),
                target_kind: claimed.delivery.target_kind.clone(),
                event_at: claimed.event.occurred_at,
            },
        };
        let settler = self.settler.lock().ok().and_then(|s| s.clone());
        match settler {
            // Under `run`: recorded in a batch with the attempts finishing meanwhile, and
            // reported then (`settle_in_batches`).
            Some(settler) => settler
                .send(pending)
                .await
                .map_err(|_| settle_failed("the settler has stopped")),
            None => {
                let held = self
                    .store
                    .settle_many(&self.config.owner, std::slice::from_ref(&pending.request))
                    .await?
                    .first()
                    .copied()
                    .unwrap_or(false);
                report(
                    self.observer.as_deref(),
                    &pending.request,
                    &pending.about,
                    held,
                );
                Ok(())
            }
        }
    }

    fn decide(
        &self,
        claimed: &Claimed,
        started_at: i64,
        performed: Performed,
    ) -> (Settle, AttemptRecord, Option<String>) {
        let mut attempt = AttemptRecord {
            started_at,
            latency_ms: 0,
            http_status: None,
            error: None,
            response_excerpt: None,
        };
        match performed {
            Performed::Cancel(reason) => {
                attempt.error = Some(reason.clone());
                (Settle::Cancelled, attempt, Some(reason))
            }
            Performed::Refused(reason) => {
                attempt.error = Some(reason.clone());
                (Settle::Dead, attempt, Some(reason))
            }
            Performed::NothingToDo(note) => {
                attempt.response_excerpt = Some(note);
                (Settle::Delivered, attempt, None)
            }
            Performed::Answered(ex) => {
                attempt.latency_ms = i32::try_from(ex.latency.as_millis()).unwrap_or(i32::MAX);
                attempt.http_status = ex.status.map(i32::from);
                attempt.error = ex.error.clone();
                attempt.response_excerpt = ex.body_excerpt.clone();
                // What the operator sees first (lists, dead letters): the status and the
                // start of what the target said; the whole excerpt stays on the attempt.
                let what = match (ex.status, &ex.error) {
                    (Some(s), _) => match ex.body_excerpt.as_deref().map(str::trim) {
                        Some(body) if !body.is_empty() => {
                            let short: String = body.chars().take(LAST_ERROR_BODY_CHARS).collect();
                            format!("HTTP {s}: {short}")
                        }
                        _ => format!("HTTP {s}"),
                    },
                    (None, Some(e)) => e.clone(),
                    (None, None) => "no answer".to_owned(),
                };
                match classify(ex.status) {
                    Verdict::Delivered => (Settle::Delivered, attempt, None),
                    Verdict::Permanent => (Settle::Dead, attempt, Some(what)),
                    Verdict::Retryable => {
                        let d = &claimed.delivery;
                        let failures = u32::try_from(d.attempt_count).unwrap_or(0);
                        let wait = self.config.retry.backoff(failures, ex.retry_after);
                        let since = d.redriven_at.unwrap_or(d.created_at);
                        let next = now_millis() + millis(wait);
                        if next - since > millis(self.config.retry.max_age) {
                            let reason = format!(
                                "{what}; gave up after {} attempts (maximum age {} h)",
                                failures + 1,
                                self.config.retry.max_age.as_secs() / 3600
                            );
                            (Settle::Dead, attempt, Some(reason))
                        } else {
                            (Settle::Retry { at: next }, attempt, Some(what))
                        }
                    }
                }
            }
        }
    }
}

/// Logs a recorded attempt and tells the observer.
fn report(
    observer: Option<&dyn DeliveryObserver>,
    request: &SettleRequest,
    about: &Attempted,
    held: bool,
) {
    let delivery_id = &request.delivery_id;
    let event_id = &about.event_id;
    let error = request.last_error.as_deref().unwrap_or("");
    if !held {
        tracing::warn!(delivery = %delivery_id, "lease lost before the result was recorded; the attempt is in the trail");
    }
    let outcome = &request.outcome;
    if let Some(observer) = observer {
        observer.settled(&Settled {
            target_kind: &about.target_kind,
            outcome,
            event_at: about.event_at,
            settled_at: now_millis(),
        });
    }
    match outcome {
        Settle::Delivered => {
            tracing::info!(delivery = %delivery_id, event = %event_id, "delivered")
        }
        Settle::Retry { at } => {
            tracing::info!(delivery = %delivery_id, retry_in_ms = at - now_millis(), error, "will retry")
        }
        Settle::Dead => {
            tracing::warn!(delivery = %delivery_id, event = %event_id, error, "dead letter")
        }
        Settle::Cancelled => tracing::info!(delivery = %delivery_id, "cancelled"),
    }
}

/// How much of a response body goes into a delivery's `last_error`.
const LAST_ERROR_BODY_CHARS: usize = 200;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Wakes the worker when any replica commits work (`NOTIFY deprov_outbox`).
async fn listen_for_notifications(
    store: Store,
    wake: Arc<tokio::sync::Notify>,
    cancel: CancellationToken,
) {
    while !cancel.is_cancelled() {
        match store.listen_outbox().await {
            Ok(Some(mut listener)) => loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    n = listener.recv() => match n {
                        Ok(()) => wake.notify_one(),
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the LISTEN connection; reconnecting");
                            break;
                        }
                    }
                }
            },
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "cannot LISTEN for new deliveries"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
