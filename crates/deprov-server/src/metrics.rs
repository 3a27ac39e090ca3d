//! `/metrics` in the Prometheus text format (version 0.0.4).
//!
//! Two kinds of numbers, on purpose:
//!
//! - **Counted in this process** (reset when it restarts; sum them across replicas):
//!   SCIM requests and their latency, recorded by [`scim_middleware`] around every request
//!   whose path is under `/scim/`; deliveries by outcome and the event → delivered latency,
//!   reported by the worker through [`DeliveryObserver`].
//! - **Counted by the SQLite store of this process** (reset when it restarts): writes, the
//!   transactions they were batched into, and the WAL fsyncs that made those durable; writes
//!   per fsync is how much group commit saves (write_batch.rs, wal_sync.rs). Also the WAL
//!   checkpoints and the WAL's size at the last one (checkpoint.rs).
//! - **Read from the database at scrape time** (the same on every replica; aggregate with
//!   `max`): events by kind, queue depth, the age of the oldest waiting delivery and the dead
//!   letters. Several replicas share one PostgreSQL and any of them may record an event or
//!   settle a delivery, so only the database can say how deep the queue is. The reading is
//!   cached for `metrics.cache_secs` so that frequent scrapes cost one set of queries.
//!
//! Labels are bounded: the route *pattern* actix matched (`/scim/v2/{tenant}/Users/{id}`,
//! never the path a client sent, so no tenant name or user id appears), the method (one of
//! the HTTP methods SCIM uses, else `other`), the status code, the target kind, the outcome
//! and the event kind.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use deprov_core::scim::EventKind;
use deprov_revocation::worker::{DeliveryObserver, Settled};
use deprov_scim::RoutePattern;
use deprov_store::outbox::Settle;
use deprov_store::stats::MetricsSnapshot;
use deprov_store::{SqliteWrites, Store};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The label of a SCIM request whose path matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// SCIM request latency buckets, in seconds.
const REQUEST_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Event → delivered buckets, in seconds: milliseconds when all is well, up to a day for
/// deliveries that waited through retries (the maximum age is 72 hours by default).
const DELIVERY_BUCKETS: [f64; 18] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0, 21600.0, 86400.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Cow<'static, str>,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: Cow<'static, str>,
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    target_kind: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target_kind: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

fn delivery_histogram() -> Histogram {
    Histogram::new(DELIVERY_BUCKETS)
}

/// Every metric deprov exports, and the registry they are encoded from. One per
/// [`Running`](crate::app::Running): tests that start several apps in one process each see
/// their own.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    scim_requests: Family<RequestLabels, Counter>,
    scim_duration: HistogramFamily<RouteLabels>,
    deliveries: Family<DeliveryLabels, Counter>,
    delivery_latency: HistogramFamily<TargetLabels>,
    database: Arc<DatabaseReading>,
    sqlite: Arc<SqliteReading>,
    cache_for: Duration,
    /// When the database was last read. Held across the read, so that scrapes arriving
    /// together wait for one reading instead of each querying the database.
    last_read: tokio::sync::Mutex<Option<Instant>>,
}

impl Metrics {
    /// Builds the registry; the database reading is cached for `cache_for`.
    pub fn new(cache_for: Duration) -> Arc<Self> {
        let mut registry = Registry::default();
        let scim_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "deprov_scim_requests",
            "SCIM requests handled, by route pattern, method and status",
            scim_requests.clone(),
        );
        let scim_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(request_histogram);
        registry.register(
            "deprov_scim_request_duration_seconds",
            "Time to answer a SCIM request, by route pattern and method",
            scim_duration.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "deprov_deliveries",
            "Delivery attempts settled by this process, by target kind and outcome (delivered, retry, dead, cancelled)",
            deliveries.clone(),
        );
        let delivery_latency: HistogramFamily<TargetLabels> =
            Family::new_with_constructor(delivery_histogram);
        registry.register(
            "deprov_delivery_latency_seconds",
            "Time from an event's commit to its successful delivery, by target kind",
            delivery_latency.clone(),
        );
        let database = Arc::new(DatabaseReading::default());
        registry.register_collector(Box::new(database.clone()));
        let sqlite = Arc::new(SqliteReading::default());
        registry.register_collector(Box::new(sqlite.clone()));
        Arc::new(Self {
            registry,
            scim_requests,
            scim_duration,
            deliveries,
            delivery_latency,
            database,
            sqlite,
            cache_for,
            last_read: tokio::sync::Mutex::new(None),
        })
    }

    fn record_request(
        &self,
        route: Cow<'static, str>,
        method: &'static str,
        status: u16,
        took: Duration,
    ) {
        self.scim_duration
            .get_or_create(&RouteLabels {
                route: route.clone(),
                method,
            })
            .observe(took.as_secs_f64());
        self.scim_requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
    }

    /// Reads the database unless the last reading is fresh enough.
    async fn refresh(&self, store: &Store) {
        let mut last = self.last_read.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.cache_for) {
            return;
        }
        let reading = store.metrics_snapshot().await;
        if let Err(e) = &reading {
            tracing::warn!(error = %e, "metrics: cannot read the queue from the database");
        }
        self.database.set(reading.ok());
        *last = Some(Instant::now());
    }

    /// The exposition text.
    pub async fn render(&self, store: &Store) -> Result<String, std::fmt::Error> {
        self.refresh(store).await;
        self.sqlite.set(store.sqlite_writes());
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl DeliveryObserver for Metrics {
    fn settled(&self, settled: &Settled<'_>) {
        let outcome = match settled.outcome {
            Settle::Delivered => "delivered",
            Settle::Retry { .. } => "retry",
            Settle::Dead => "dead",
            Settle::Cancelled => "cancelled",
        };
        self.deliveries
            .get_or_create(&DeliveryLabels {
                target_kind: settled.target_kind.to_owned(),
                outcome,
            })
            .inc();
        if *settled.outcome == Settle::Delivered {
            let ms = (settled.settled_at - settled.event_at).max(0);
            self.delivery_latency
                .get_or_create(&TargetLabels {
                    target_kind: settled.target_kind.to_owned(),
                })
                .observe(ms as f64 / 1000.0);
        }
    }
}

/// The last reading of something a collector encodes on every scrape.
#[derive(Debug)]
struct Reading<T>(Mutex<Option<T>>);

impl<T> Default for Reading<T> {
    fn default() -> Self {
        Self(Mutex::new(None))
    }
}

impl<T: Clone> Reading<T> {
    fn set(&self, reading: Option<T>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = reading;
        }
    }

    fn get(&self) -> Option<T> {
        self.0.lock().ok().and_then(|r| r.clone())
    }
}

/// The SQLite store's write counts, read at every scrape; nothing on PostgreSQL.
type SqliteReading = Reading<SqliteWrites>;

/// The last database reading.
type DatabaseReading = Reading<MetricsSnapshot>;

impl Collector for SqliteReading {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(w) = self.get() else {
            return Ok(());
        };
        for (name, help, n) in [
            (
                "deprov_sqlite_writes",
                "SQLite write transactions begun by this process",
                w.writes,
            ),
            (
                "deprov_sqlite_write_batches",
                "SQLite transactions committed by this process, each holding one or more writes",
                w.batches,
            ),
            (
                "deprov_sqlite_wal_fsyncs",
                "fsyncs of the SQLite WAL by this process, each making one or more batches durable",
                w.fsyncs,
            ),
            (
                "deprov_sqlite_wal_checkpoints",
                "SQLite WAL checkpoints run by this process's checkpoint thread",
                w.checkpoints,
            ),
        ] {
            let counter = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(n).encode(counter)?;
        }
        for (name, help, n) in [
            (
                "deprov_sqlite_wal_pages",
                "Size of the SQLite WAL in pages at the last checkpoint (the writer checkpoints inside a commit at 20000)",
                w.wal_pages,
            ),
            (
                "deprov_sqlite_wal_pages_left",
                "WAL pages the last checkpoint could not copy because a reader still needed them",
                w.wal_pages_left,
            ),
        ] {
            let g = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(gauge(n)).encode(g)?;
        }
        Ok(())
    }
}

impl Collector for DatabaseReading {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let reading = self.get();
        let up = encoder.encode_descriptor(
            "deprov_database_up",
            "1 when the last metrics reading of the database succeeded, else 0 (the database metrics are then left out).",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::from(reading.is_some())).encode(up)?;
        let Some(r) = reading else {
            return Ok(());
        };
        {
            let mut events = encoder.encode_descriptor(
                "deprov_events",
                "De-provisioning events recorded, by kind (whole deployment, read from the database).",
                None,
                MetricType::Counter,
            )?;
            // Every kind is shown from the start, so that rate() and alerts see a zero.
            for kind in [
                EventKind::Deactivated,
                EventKind::Deleted,
                EventKind::RemovedFromGroup,
                EventKind::Reactivated,
            ] {
                let n = r
                    .events_by_kind
                    .iter()
                    .find(|(k, _)| k == kind.as_str())
                    .map_or(0, |(_, n)| *n);
                ConstCounter::new(n).encode(events.encode_family(&[("kind", kind.as_str())])?)?;
            }
        }
        {
            let mut depth = encoder.encode_descriptor(
                "deprov_queue_depth",
                "Deliveries waiting, by status: pending (never attempted) or retrying (whole deployment).",
                None,
                MetricType::Gauge,
            )?;
            for (status, n) in [("pending", r.pending), ("retrying", r.retrying)] {
                ConstGauge::new(gauge(n)).encode(depth.encode_family(&[("status", status)])?)?;
            }
        }
        let oldest = encoder.encode_descriptor(
            "deprov_queue_oldest_age_seconds",
            "Age of the oldest delivery still waiting (pending or retrying), 0 when none waits.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(r.oldest_waiting_ms.unwrap_or(0) as f64 / 1000.0).encode(oldest)?;
        let dead = encoder.encode_descriptor(
            "deprov_dead_letters",
            "Dead deliveries waiting for an operator to re-drive them (whole deployment).",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(gauge(r.dead)).encode(dead)?;
        Ok(())
    }
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The method as a bounded label.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts and times every request under `/scim/`, labelled by the route pattern actix
/// matched: the SCIM resource's [`RoutePattern`] (static), else what actix rebuilds for a
/// route without one. Wrapped around the whole app (so that it sees the pattern after
/// routing) and ignoring everything else.
pub async fn scim_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let Some(metrics) = metrics.filter(|_| req.path().starts_with("/scim/")) else {
        return next.call(req).await;
    };
    let method = method_label(req.method());
    let started = Instant::now();
    let result = next.call(req).await;
    let (route, status) = match &result {
        Ok(res) => (route_label(res.request()), res.status().as_u16()),
        Err(e) => (
            Cow::Borrowed(UNMATCHED_ROUTE),
            e.as_response_error().status_code().as_u16(),
        ),
    };
    metrics.record_request(route, method, status, started.elapsed());
    result
}

/// The route label of a request that was answered.
fn route_label(req: &HttpRequest) -> Cow<'static, str> {
    let Some(RoutePattern(pattern)) = req.app_data::<RoutePattern>() else {
        return req
            .match_pattern()
            .map_or(Cow::Borrowed(UNMATCHED_ROUTE), Cow::Owned);
    };
    debug_assert_eq!(req.match_pattern().as_deref(), Some(*pattern));
    Cow::Borrowed(pattern)
}

/// `GET /metrics`.
pub async fn handler(metrics: web::Data<Metrics>, store: web::Data<Store>) -> HttpResponse {
    match metrics.render(&store).await {
        Ok(text) => HttpResponse::Ok()
            .content_type(prometheus_client::encoding::prometheus_text::CONTENT_TYPE)
            .body(text),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}
