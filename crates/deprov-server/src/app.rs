//! Wiring: the HTTP server and the background tasks, started together and stopped in order.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use deprov_store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::{admin, console, delivery, grants, health, metrics, wellknown};

/// A running deprov: its HTTP server and its background tasks.
///
/// Shutdown ([`Running::shutdown`]) is ordered: stop accepting connections and let
/// in-flight requests finish (so that every SCIM request either commits and is answered, or
/// is never started), then cancel the background tasks and wait for them (a worker releases
/// what it holds), then close the database pools. Each stage is bounded by the configured
/// shutdown timeout, so a stuck peer cannot keep the process alive forever.
#[derive(Debug)]
pub struct Running {
    local_addr: SocketAddr,
    server: actix_web::dev::ServerHandle,
    server_task: tokio::task::JoinHandle<std::io::Result<()>>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    store: Store,
    shutdown_timeout: Duration,
}

/// The SCIM endpoint's settings, from the server configuration.
fn scim_config(config: &Config) -> deprov_scim::ScimConfig {
    let l = &config.scim;
    deprov_scim::ScimConfig {
        public_url: config.public_url(),
        limits: deprov_scim::ScimLimits {
            max_results: l.max_results,
            max_payload_bytes: l.max_payload_bytes,
            max_operations: l.max_operations,
            max_filter_length: l.max_filter_length,
            max_filter_depth: l.max_filter_depth,
            max_members_per_request: l.max_members_per_request,
        },
    }
}

/// `GET /metrics`, behind the admin token when the configuration asks for it.
fn metrics_route(cfg: &mut web::ServiceConfig, require_admin_token: bool) {
    let resource = web::resource("/metrics").route(web::get().to(metrics::handler));
    if require_admin_token {
        cfg.service(resource.wrap(from_fn(admin::auth::require_admin)));
    } else {
        cfg.service(resource);
    }
}

/// How often PostgreSQL tables that changed a lot are analyzed (see
/// `deprov_store::planner_statistics`).
const ANALYZE_INTERVAL: Duration = Duration::from_secs(5);

/// Analyzes deprov's PostgreSQL tables soon after a burst of changes, until cancelled.
async fn keep_statistics_fresh(store: Store, cancel: CancellationToken) {
    loop {
        match store.analyze_changed_tables().await {
            Ok(tables) if !tables.is_empty() => {
                tracing::debug!(?tables, "analyzed tables that changed");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot analyze changed tables; trying again later")
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(ANALYZE_INTERVAL) => {}
        }
    }
}

impl Running {
    /// Starts serving on `listener` (bind port 0 in tests), and the delivery worker unless
    /// the configuration turns it off.
    pub async fn start(
        config: Arc<Config>,
        store: Store,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let local_addr = listener.local_addr()?;
        let shutdown_timeout = Duration::from_secs(config.shutdown_timeout_secs);
        let keys = delivery::key_ring(&config, &store).await?;
        delivery::ensure_keys_in_use(&store, &keys).await?;
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let metrics = Metrics::new(Duration::from_secs(config.metrics.cache_secs));
        if config.delivery.worker {
            let worker =
                delivery::worker(&config, &store, keys.clone())?.with_observer(metrics.clone());
            tasks.spawn(Arc::new(worker).run(cancel.clone()));
        }
        tasks.spawn(delivery::purge_expired_grants(
            store.clone(),
            cancel.clone(),
        ));
        if store.backend() == deprov_store::Backend::Postgres {
            tasks.spawn(keep_statistics_fresh(store.clone(), cancel.clone()));
        }
        let metrics_data = web::Data::from(metrics);
        let metrics_protected = config.metrics.require_admin_token;
        let store_data = web::Data::new(store.clone());
        let config_data = web::Data::from(config.clone());
        let keys_data = web::Data::new(keys);
        let scim = scim_config(&config);
        let console_enabled = config.console.enabled;
        // actix's Logger renders its line for every request before it knows whether the
        // line will be written; with `deprov::http` below `info` (DEPROV_LOG_LEVEL=warn, say)
        // that is wasted work on every request, so the middleware is left out.
        let access_log = tracing::enabled!(target: "deprov::http", tracing::Level::INFO);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(store_data.clone())
                .app_data(config_data.clone())
                .app_data(keys_data.clone())
                .app_data(metrics_data.clone())
                .wrap(from_fn(metrics::scim_middleware))
                .wrap(actix_web::middleware::Condition::new(
                    access_log,
                    actix_web::middleware::Logger::new("%r %s %Dms").log_target("deprov::http"),
                ))
                // SCIM first: actix tries services in order, and a SCIM request (nearly all
                // the traffic) paid a pattern match against each service before it.
                .configure(|cfg| deprov_scim::configure(cfg, scim.clone()))
                .configure(health::configure)
                .configure(|cfg| metrics_route(cfg, metrics_protected))
                .configure(wellknown::configure)
                .configure(admin::configure)
                .configure(grants::configure)
                .configure(|cfg| {
                    if console_enabled {
                        console::configure(cfg);
                    }
                })
        })
        // Signals are handled by the caller, which owns the order of shutdown.
        .disable_signals()
        .workers(config.http_workers())
        .shutdown_timeout(config.shutdown_timeout_secs)
        .listen(listener)?
        .run();
        let handle = server.handle();
        let server_task = tokio::spawn(server);
        Ok(Self {
            local_addr,
            server: handle,
            server_task,
            cancel,
            tasks,
            store,
            shutdown_timeout,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stops everything in order; see the type's documentation.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        let stop = self.server.stop(true);
        if tokio::time::timeout(self.shutdown_timeout + Duration::from_secs(1), stop)
            .await
            .is_err()
        {
            tracing::warn!("HTTP server did not stop in time");
        }
        match tokio::time::timeout(Duration::from_secs(1), self.server_task).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server task failed"),
            _ => {}
        }
        tracing::info!("stopping background tasks");
        self.cancel.cancel();
        self.tasks.close();
        if tokio::time::timeout(self.shutdown_timeout, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not stop in time");
        }
        tracing::info!("closing the database");
        self.store.close().await?;
        tracing::info!("stopped");
        Ok(())
    }
}
