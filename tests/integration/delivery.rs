//! The outbox and its worker against real HTTP receivers on 127.0.0.1: delivered, retried
//! (503, connection refused), dead-lettered (400, with the body kept) and re-driven; leases
//! that expire are claimed again and a lost lease cannot overwrite a newer claim; two
//! workers on one database never claim the same delivery.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use deprov_core::scim::EventKind;
use deprov_core::{SigningAlgorithm, SubjectMapping, TenantName};
use deprov_revocation::channels::backchannel_logout::BackchannelLogout;
use deprov_revocation::keys::{KeyEncryptionKey, KeyRing};
use deprov_revocation::outbound::AddressPolicy;
use deprov_revocation::outbound::http::OutboundClient;
use deprov_revocation::worker::{RetryPolicy, Worker, WorkerConfig};
use deprov_store::entity::event;
use deprov_store::outbox::{self, EnqueueEvent, EventTrail};
use deprov_store::targets::{KIND_BACKCHANNEL_LOGOUT, NewRelyingParty};
use deprov_store::{Store, db_test, now_millis};
use sea_orm::{ActiveModelTrait, Set};

/// What a receiver has received, and the statuses it answers with.
type Script = (Arc<Mutex<Vec<String>>>, Arc<Vec<(u16, &'static str)>>);

/// A receiver answering from a script of statuses (the last one repeats), recording bodies.
pub(crate) struct Receiver {
    pub(crate) url: String,
    pub(crate) received: Arc<Mutex<Vec<String>>>,
    server: actix_web::dev::ServerHandle,
}

impl Receiver {
    pub(crate) fn start(script: Vec<(u16, &'static str)>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/backchannel-logout", listener.local_addr()?);
        let received: Arc<Mutex<Vec<String>>> = Arc::default();
        let state = web::Data::new((received.clone(), Arc::new(script)));
        let server = HttpServer::new(move || {
            App::new().app_data(state.clone()).route(
                "/backchannel-logout",
                web::post().to(|body: String, state: web::Data<Script>| async move {
                    let n = {
                        let mut r = state.0.lock().unwrap_or_else(|e| e.into_inner());
                        r.push(body);
                        r.len()
                    };
                    let (status, text) = state.1[(n - 1).min(state.1.len() - 1)];
                    HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(status)
                            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
                    )
                    .body(text)
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self {
            url,
            received,
            server: handle,
        })
    }

    fn count(&self) -> usize {
        self.received.lock().map(|r| r.len()).unwrap_or(0)
    }

    pub(crate) async fn stop(self) {
        self.server.stop(false).await;
    }
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        max_retry_after: Duration::from_millis(5),
        max_age: Duration::from_secs(3600),
    }
}

async fn worker(store: &Store, owner: &str) -> anyhow::Result<Worker> {
    worker_with(
        store,
        WorkerConfig {
            owner: owner.to_owned(),
            retry: fast_retries(),
            ..WorkerConfig::default()
        },
    )
    .await
}

async fn worker_with(store: &Store, config: WorkerConfig) -> anyhow::Result<Worker> {
    let keys = Arc::new(KeyRing::load(store.clone(), KeyEncryptionKey::generate()?).await?);
    let client = OutboundClient::new(AddressPolicy::AllowInsecure, Duration::from_secs(2))?;
    Ok(Worker::new(store.clone(), config).with_channel(
        KIND_BACKCHANNEL_LOGOUT,
        Arc::new(BackchannelLogout::new(
            keys,
            client,
            "http://127.0.0.1:8080",
        )),
    ))
}

/// A back-channel logout endpoint that answers 200 after `delay`; its URL and handle.
fn slow_receiver(delay: Duration) -> anyhow::Result<(String, actix_web::dev::ServerHandle)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/backchannel-logout", listener.local_addr()?);
    let server = HttpServer::new(move || {
        App::new().route(
            "/backchannel-logout",
            web::post().to(move || async move {
                tokio::time::sleep(delay).await;
                HttpResponse::Ok().finish()
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok((url, handle))
}

async fn tenant_with_rp(store: &Store, uri: &str) -> anyhow::Result<String> {
    let created = store
        .create_tenant(&TenantName::parse("acme")?, "test")
        .await?;
    add_rp(store, "app", uri).await?;
    Ok(created.tenant.id)
}

/// A tenant-wide ES256 relying party of tenant `acme`, logging out at `uri`.
async fn add_rp(store: &Store, client_id: &str, uri: &str) -> anyhow::Result<()> {
    store
        .add_relying_party(
            "acme",
            NewRelyingParty {
                client_id: client_id.into(),
                backchannel_logout_uri: url::Url::parse(uri)?,
                subject: SubjectMapping::UserName,
                alg: SigningAlgorithm::ES256,
                require_sid: false,
                issuer: None,
                kid: None,
                groups: vec![],
                enabled: true,
            },
            "test",
        )
        .await?;
    Ok(())
}

/// Writes an event and its deliveries the way a SCIM change does: one transaction.
async fn deactivation(
    store: &Store,
    tenant_id: &str,
    user: &str,
) -> anyhow::Result<(String, usize)> {
    let txn = store.begin_write().await?;
    let id = uuid::Uuid::now_v7().to_string();
    event::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(tenant_id.to_owned()),
        kind: Set(EventKind::Deactivated.as_str().to_owned()),
        user_id: Set(format!("id-{user}")),
        user_snapshot: Set(serde_json::json!({ "id": format!("id-{user}"), "userName": user })),
        group_id: Set(None),
        group_display_name: Set(None),
        request_id: Set("req-1".into()),
        scim_method: Set("PATCH".into()),
        scim_path: Set("/scim/v2/acme/Users/x".into()),
        occurred_at: Set(now_millis()),
    }
    .insert(&txn)
    .await?;
    let n = outbox::enqueue(
        &txn,
        tenant_id,
        &[EnqueueEvent {
            event_id: &id,
            kind: EventKind::Deactivated,
            user_id: &format!("id-{user}"),
            group: None,
        }],
    )
    .await?;
    store.commit(txn).await?;
    Ok((id, n))
}

/// The whole trail of an event: its deliveries and their attempts.
async fn event_trail(store: &Store, event_id: &str) -> anyhow::Result<EventTrail> {
    store
        .event_trail(event_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no trail of event {event_id}"))
}

/// Runs the worker step until nothing is due or `rounds` pass.
async fn drain(worker: &Worker, rounds: usize) -> anyhow::Result<()> {
    for _ in 0..rounds {
        if worker.run_once().await? == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if worker.run_once().await? == 0 {
                return Ok(());
            }
        }
    }
    Ok(())
}

db_test!(
    a_200_delivers_with_one_attempt_recorded,
    |store: Store, _url| async move {
        let rx = Receiver::start(vec![(200, "")])?;
        let tenant = tenant_with_rp(&store, &rx.url).await?;
        let (event_id, n) = deactivation(&store, &tenant, "ada@example.com").await?;
        assert_eq!(n, 1);
        let w = worker(&store, "w1").await?;
        drain(&w, 5).await?;
        let trail = event_trail(&store, &event_id).await?;
        assert_eq!(trail.deliveries.len(), 1);
        let d = &trail.deliveries[0];
        assert_eq!(d.delivery.status, "delivered");
        assert_eq!(d.attempts.len(), 1);
        assert_eq!(d.attempts[0].http_status, Some(200));
        assert_eq!(rx.count(), 1);
        let body = rx.received.lock().map(|r| r[0].clone()).unwrap_or_default();
        assert!(body.starts_with("logout_token=ey"), "{body}");
        rx.stop().await;
        Ok(())
    }
);

db_test!(
    a_delivery_whose_target_was_removed_is_cancelled_and_the_others_delivered,
    |store: Store, _url| async move {
        let rx = Receiver::start(vec![(200, "")])?;
        let tenant = tenant_with_rp(&store, &rx.url).await?;
        add_rp(&store, "gone", &rx.url).await?;
        let (event_id, n) = deactivation(&store, &tenant, "ada").await?;
        assert_eq!(n, 2);
        store.remove_relying_party("acme", "gone", "test").await?;
        let w = worker(&store, "w1").await?;
        drain(&w, 5).await?;
        let trail = event_trail(&store, &event_id).await?;
        let mut statuses: Vec<(Option<String>, String)> = trail
            .deliveries
            .iter()
            .map(|d| (d.client_id.clone(), d.delivery.status.clone()))
            .collect();
        statuses.sort();
        assert_eq!(
            statuses,
            vec![
                (None, "cancelled".to_owned()),
                (Some("app".to_owned()), "delivered".to_owned())
            ]
        );
        // Only the remaining target was called.
        assert_eq!(rx.count(), 1);
        rx.stop().await;
        Ok(())
    }
);
db_test!(
    two_503s_then_200_is_delivered_after_three_attempts,
    |store: Store, _url| async move {
        let rx = Receiver::start(vec![(503, "busy"), (503, "busy"), (200, "")])?;
        let tenant = tenant_with_rp(&store, &rx.url).await?;
        let (event_id, _) = deactivation(&store, &tenant, "ada").await?;
        let w = worker(&store, "w1").await?;
        drain(&w, 20).await?;
        let trail = event_trail(&store, &event_id).await?;
        let d = &trail.deliveries[0];
        assert_eq!(d.delivery.status, "delivered");
        let statuses: Vec<Option<i64>> = d.attempts.iter().map(|a| a.http_status).collect();
        assert_eq!(statuses, vec![Some(503), Some(503), Some(200)]);
        assert_eq!(d.attempts[0].outcome, "retrying");
        // Every attempt carried a freshly minted token.
        let bodies = rx.received.lock().map(|r| r.clone()).unwrap_or_default();
        assert_eq!(bodies.iter().collect::<HashSet<_>>().len(), 3);
        rx.stop().await;
        Ok(())
    }
);

db_test!(
    a_400_is_a_dead_letter_with_its_body_and_can_be_redriven,
    |store: Store, _url| async move {
        let rx = Receiver::start(vec![(400, "{\"error\":\"invalid_request\"}"), (200, "")])?;
        let tenant = tenant_with_rp(&store, &rx.url).await?;
        let (event_id, _) = deactivation(&store, &tenant, "ada").await?;
        let w = worker(&store, "w1").await?;
        drain(&w, 5).await?;
        let trail = event_trail(&store, &event_id).await?;
        let d = &trail.deliveries[0];
        assert_eq!(d.delivery.status, "dead");
        assert_eq!(d.attempts.len(), 1);
        assert_eq!(
            d.attempts[0].response_excerpt.as_deref(),
            Some("{\"error\":\"invalid_request\"}")
        );
        assert_eq!(
            d.delivery.last_error.as_deref(),
            Some("HTTP 400: {\"error\":\"invalid_request\"}")
        );
        assert_eq!(store.queue_stats().await?.dead, 1);
        // A re-drive wakes this process's worker and, on PostgreSQL, the other replicas'.
        let wake = store.outbox_wake();
        // The deactivation's wake-up, which nobody waited for, is taken first.
        let _ = tokio::time::timeout(Duration::from_millis(10), wake.notified()).await;
        let mut replicas = store.listen_outbox().await?;
        assert_eq!(store.redrive(None, Some(&d.delivery.id), "test").await?, 1);
        tokio::time::timeout(Duration::from_secs(5), wake.notified()).await?;
        if let Some(listener) = &mut replicas {
            tokio::time::timeout(Duration::from_secs(5), listener.recv()).await??;
        }
        drain(&w, 5).await?;
        let trail = event_trail(&store, &event_id).await?;
        assert_eq!(trail.deliveries[0].delivery.status, "delivered");
        assert_eq!(trail.deliveries[0].attempts.len(), 2);
        rx.stop().await;
        Ok(())
    }
);

db_test!(
    a_refused_connection_is_retried_with_the_error_recorded,
    |store: Store, _url| async move {
        // A port nobody listens on.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let tenant = tenant_with_rp(&store, &format!("http://127.0.0.1:{port}/bcl")).await?;
        let (event_id, _) = deactivation(&store, &tenant, "ada").await?;
        let w = worker(&store, "w1").await?;
        w.run_once().await?;
        let trail = event_trail(&store, &event_id).await?;
        let d = &trail.deliveries[0];
        assert_eq!(d.delivery.status, "retrying");
        assert_eq!(d.attempts[0].http_status, None);
        let error = d.attempts[0].error.clone().unwrap_or_default();
        assert!(error.to_lowercase().contains("connect"), "{error}");
        Ok(())
    }
);

db_test!(
    a_batch_of_settles_settles_each_on_its_own,
    |store: Store, _url| async move {
        let tenant = tenant_with_rp(&store, "http://127.0.0.1:9/unused").await?;
        let mut events = Vec::new();
        for user in ["ada", "bob", "cy", "dee"] {
            events.push(deactivation(&store, &tenant, user).await?.0);
        }
        let none = HashMap::new();
        let mut mine = store.claim_due("A", 60_000, 3, 10, &none).await?;
        let theirs = store.claim_due("B", 60_000, 10, 10, &none).await?;
        assert_eq!((mine.len(), theirs.len()), (3, 1));
        mine.push(theirs[0].clone());
        let retry_at = now_millis() + 60_000;
        let outcomes = [
            outbox::Settle::Delivered,
            outbox::Settle::Retry { at: retry_at },
            outbox::Settle::Dead,
            // Held by B: A's result is recorded as an attempt, and changes nothing.
            outbox::Settle::Delivered,
        ];
        let requests: Vec<outbox::SettleRequest> = mine
            .iter()
            .zip(outcomes)
            .enumerate()
            .map(|(i, (c, outcome))| outbox::SettleRequest {
                delivery_id: c.delivery.id.clone(),
                attempt: outbox::AttemptRecord {
                    started_at: now_millis(),
                    latency_ms: i32::try_from(i).unwrap_or(0),
                    http_status: Some(if i == 2 { 400 } else { 200 }),
                    error: None,
                    response_excerpt: (i == 2).then(|| "no such user".to_owned()),
                },
                outcome,
                last_error: (i == 2).then(|| "HTTP 400: no such user".to_owned()),
            })
            .collect();
        let held = store.settle_many("A", &requests).await?;
        assert_eq!(held, vec![true, true, true, false]);

        let trail_of = |c: &outbox::Claimed| c.event.id.clone();
        let mut seen = Vec::new();
        for c in &mine {
            let trail = event_trail(&store, &trail_of(c)).await?;
            let d = &trail.deliveries[0];
            assert_eq!(
                d.attempts.len(),
                1,
                "one attempt recorded for {}",
                d.delivery.id
            );
            assert_eq!(d.attempts[0].attempt_no, 1);
            seen.push((
                d.delivery.status.clone(),
                d.delivery.attempt_count,
                d.delivery.lease_owner.clone(),
                d.delivery.completed_at.is_some(),
                d.delivery.last_error.clone(),
            ));
            if d.delivery.status == "retrying" {
                assert_eq!(d.delivery.next_attempt_at, retry_at);
            }
        }
        assert_eq!(
            seen,
            vec![
                ("delivered".into(), 1, None, true, None),
                ("retrying".into(), 1, None, false, None),
                (
                    "dead".into(),
                    1,
                    None,
                    true,
                    Some("HTTP 400: no such user".into())
                ),
                ("pending".into(), 0, Some("B".into()), false, None),
            ]
        );
        // Nothing to settle is nothing to do.
        assert!(store.settle_many("A", &[]).await?.is_empty());
        Ok(())
    }
);

db_test!(
    an_expired_lease_is_claimed_again_and_the_old_owner_is_fenced,
    |store: Store, _url| async move {
        let tenant = tenant_with_rp(&store, "http://127.0.0.1:9/unused").await?;
        deactivation(&store, &tenant, "ada").await?;
        let none = HashMap::new();
        // Owner A claims with a lease that is already over (a process that died).
        let a = store.claim_due("A", -1, 10, 10, &none).await?;
        assert_eq!(a.len(), 1);
        let b = store.claim_due("B", 60_000, 10, 10, &none).await?;
        assert_eq!(b.len(), 1, "an expired lease must be claimable");
        // A live lease is not, and the worker's next wake-up is when it ends, not now.
        assert!(
            store
                .claim_due("C", 60_000, 10, 10, &none)
                .await?
                .is_empty()
        );
        let next = store.next_due_at().await?.unwrap_or(0);
        assert!(
            next >= now_millis() + 50_000,
            "next due in {} ms",
            next - now_millis()
        );
        let attempt = || outbox::AttemptRecord {
            started_at: now_millis(),
            latency_ms: 1,
            http_status: Some(200),
            error: None,
            response_excerpt: None,
        };
        let id = &a[0].delivery.id;
        assert!(
            !store
                .settle(id, "A", attempt(), outbox::Settle::Delivered, None)
                .await?
        );
        assert!(
            store
                .settle(id, "B", attempt(), outbox::Settle::Delivered, None)
                .await?
        );
        let trail = event_trail(&store, &a[0].event.id).await?;
        assert_eq!(
            trail.deliveries[0].attempts.len(),
            2,
            "both attempts are in the trail"
        );
        Ok(())
    }
);

db_test!(
    the_next_due_time_is_what_can_be_claimed_now_a_retry_or_a_lease_end,
    |store: Store, _url| async move {
        let tenant = tenant_with_rp(&store, "http://127.0.0.1:9/unused").await?;
        assert_eq!(store.next_due_at().await?, None, "nothing waits");
        for user in ["ada", "bob", "cy"] {
            deactivation(&store, &tenant, user).await?;
        }
        let now = now_millis();
        assert!(
            store
                .next_due_at()
                .await?
                .is_some_and(|at| at <= now_millis())
        );
        assert_eq!(store.next_due_after(now).await?, None, "all due already");
        // All three in flight: the next one claimable is at the end of their leases.
        let claimed = store
            .claim_due("A", 60_000, 10, 10, &HashMap::new())
            .await?;
        assert_eq!(claimed.len(), 3);
        let next = store.next_due_at().await?.unwrap_or(0);
        assert!(
            next >= now_millis() + 50_000,
            "next due in {} ms",
            next - now_millis()
        );
        // One is to be tried again in 30 s: that is sooner, and it is what falls due later.
        let retry_at = now_millis() + 30_000;
        let attempt = outbox::AttemptRecord {
            started_at: now_millis(),
            latency_ms: 1,
            http_status: Some(503),
            error: None,
            response_excerpt: None,
        };
        assert!(
            store
                .settle(
                    &claimed[0].delivery.id,
                    "A",
                    attempt,
                    outbox::Settle::Retry { at: retry_at },
                    Some("HTTP 503".into()),
                )
                .await?
        );
        assert_eq!(store.next_due_at().await?, Some(retry_at));
        assert_eq!(store.next_due_after(now_millis()).await?, Some(retry_at));
        assert_eq!(store.next_due_after(retry_at).await?, None);
        Ok(())
    }
);

db_test!(
    concurrent_claimers_never_share_a_delivery,
    |store: Store, _url| async move {
        let tenant = tenant_with_rp(&store, "http://127.0.0.1:9/unused").await?;
        for i in 0..200 {
            deactivation(&store, &tenant, &format!("u{i}")).await?;
        }
        let claim = |owner: &'static str| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = store
                        .claim_due(owner, 60_000, 7, 1000, &HashMap::new())
                        .await?;
                    if batch.is_empty() {
                        return anyhow::Ok(mine);
                    }
                    mine.extend(batch.into_iter().map(|c| c.delivery.id));
                }
            })
        };
        let (x, y) = (claim("X"), claim("Y"));
        let (x, y) = (x.await??, y.await??);
        let all: HashSet<&String> = x.iter().chain(y.iter()).collect();
        assert_eq!(x.len() + y.len(), 200);
        assert_eq!(all.len(), 200, "a delivery was claimed twice");
        Ok(())
    }
);

db_test!(
    the_per_target_limit_holds_within_a_claim,
    |store: Store, _url| async move {
        let tenant = tenant_with_rp(&store, "http://127.0.0.1:9/unused").await?;
        for i in 0..10 {
            deactivation(&store, &tenant, &format!("u{i}")).await?;
        }
        let claimed = store
            .claim_due("W", 60_000, 100, 3, &HashMap::new())
            .await?;
        assert_eq!(claimed.len(), 3);
        let mut busy = HashMap::new();
        busy.insert(claimed[0].delivery.target_id.clone(), 3);
        assert!(
            store
                .claim_due("W", 60_000, 100, 3, &busy)
                .await?
                .is_empty()
        );
        Ok(())
    }
);

db_test!(
    a_claim_fills_each_target_up_to_its_limit_in_due_order,
    |store: Store, _url| async move {
        let tenant = tenant_with_rp(&store, "http://127.0.0.1:9/a").await?;
        add_rp(&store, "b", "http://127.0.0.1:9/b").await?;
        add_rp(&store, "c", "http://127.0.0.1:9/c").await?;
        for i in 0..5 {
            deactivation(&store, &tenant, &format!("u{i}")).await?;
        }
        let targets: Vec<String> = store
            .list_deliveries(None, None, 100, 0)
            .await?
            .1
            .into_iter()
            .map(|d| d.target_id)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let [a, b, c] = targets.as_slice() else {
            panic!("three targets: {targets:?}");
        };
        // `a` holds 3 of its 4 slots, `b` all 4, `c` none.
        let busy = HashMap::from([(a.clone(), 3), (b.clone(), 4)]);
        let claimed = store.claim_due("W", 60_000, 100, 4, &busy).await?;
        let of = |t: &String| {
            claimed
                .iter()
                .filter(|c| &c.delivery.target_id == t)
                .count()
        };
        assert_eq!((of(a), of(b), of(c)), (1, 0, 4));
        let due: Vec<_> = claimed
            .iter()
            .map(|c| (c.delivery.next_attempt_at, c.delivery.id.clone()))
            .collect();
        let mut sorted = due.clone();
        sorted.sort();
        assert_eq!(due, sorted, "claimed in due order");
        // A total limit below what the targets allow takes the oldest.
        let more = store.claim_due("W", 60_000, 2, 4, &HashMap::new()).await?;
        assert_eq!(more.len(), 2);
        assert!(more.iter().all(|m| m.delivery.next_attempt_at >= due[0].0));
        Ok(())
    }
);

db_test!(
    a_lease_is_held_by_the_owner_named_exactly,
    |store: Store, _url| async move {
        let tenant = tenant_with_rp(&store, "http://127.0.0.1:9/unused").await?;
        deactivation(&store, &tenant, "ada").await?;
        // Whatever the owner's name holds, it is stored and matched as given.
        let owner = r"host'); DROP TABLE deliveries; --\n:1";
        let claimed = store
            .claim_due(owner, 60_000, 10, 10, &HashMap::new())
            .await?;
        assert_eq!(claimed.len(), 1);
        let delivery = &claimed[0].delivery;
        assert_eq!(delivery.lease_owner.as_deref(), Some(owner));
        let attempt = outbox::AttemptRecord {
            started_at: now_millis(),
            latency_ms: 1,
            http_status: Some(200),
            error: None,
            response_excerpt: None,
        };
        // Settling is fenced by the lease's owner: it holds only for the same text.
        assert!(
            !store
                .settle(
                    &delivery.id,
                    "host'",
                    attempt.clone(),
                    outbox::Settle::Delivered,
                    None
                )
                .await?
        );
        assert!(
            store
                .settle(
                    &delivery.id,
                    owner,
                    attempt,
                    outbox::Settle::Delivered,
                    None
                )
                .await?
        );
        Ok(())
    }
);

db_test!(
    a_receiver_refusing_connections_for_30_s_is_delivered_once_it_is_back,
    |store: Store, _url| async move {
        // Reserve a port, then leave it closed: connections are refused until the receiver
        // starts there 30 s later.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let tenant = tenant_with_rp(
            &store,
            &format!("http://127.0.0.1:{port}/backchannel-logout"),
        )
        .await?;
        let (event_id, _) = deactivation(&store, &tenant, "ada").await?;
        let worker = Arc::new({
            let keys = Arc::new(KeyRing::load(store.clone(), KeyEncryptionKey::generate()?).await?);
            let client = OutboundClient::new(AddressPolicy::AllowInsecure, Duration::from_secs(2))?;
            let config = WorkerConfig {
                owner: "w1".to_owned(),
                // The production policy: 1 s, doubling, with jitter.
                retry: RetryPolicy::default(),
                idle_poll: Duration::from_millis(200),
                ..WorkerConfig::default()
            };
            Worker::new(store.clone(), config).with_channel(
                KIND_BACKCHANNEL_LOGOUT,
                Arc::new(BackchannelLogout::new(
                    keys,
                    client,
                    "http://127.0.0.1:8080",
                )),
            )
        });
        let cancel = tokio_util::sync::CancellationToken::new();
        let running = tokio::spawn(worker.clone().run(cancel.clone()));
        tokio::time::sleep(Duration::from_secs(30)).await;
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let received: Arc<Mutex<Vec<String>>> = Arc::default();
        let state = web::Data::new((received.clone(), Arc::new(vec![(200u16, "")])));
        let server = HttpServer::new(move || {
            App::new().app_data(state.clone()).route(
                "/backchannel-logout",
                web::post().to(|body: String, state: web::Data<Script>| async move {
                    state.0.lock().map(|mut r| r.push(body)).ok();
                    HttpResponse::Ok().finish()
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut status = String::new();
        while std::time::Instant::now() < deadline {
            let trail = event_trail(&store, &event_id).await?;
            status = trail.deliveries[0].delivery.status.clone();
            if status == "delivered" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        cancel.cancel();
        running.await?;
        handle.stop(false).await;
        assert_eq!(status, "delivered");
        let trail = event_trail(&store, &event_id).await?;
        let attempts = &trail.deliveries[0].attempts;
        // Refused attempts first (no HTTP status, the error kept), then the 200.
        assert!(attempts.len() >= 3, "{} attempts", attempts.len());
        let (last, refused) = attempts
            .split_last()
            .ok_or_else(|| anyhow::anyhow!("no attempts"))?;
        assert_eq!(last.http_status, Some(200));
        assert!(
            refused
                .iter()
                .all(|a| a.http_status.is_none() && a.error.is_some())
        );
        assert_eq!(received.lock().map(|r| r.len()).unwrap_or(0), 1);
        Ok(())
    }
);

db_test!(
    a_backlog_of_a_slow_target_does_not_hold_up_another_target,
    |store: Store, _url| async move {
        // `slow` takes 6 s to answer (the client gives up after 2 s) and has 40 logouts
        // due before `quick` has its first. One attempt at a time per target: the 40 fill
        // every claim's window of candidates (4 per free slot), and `quick`'s logout,
        // behind them in due order, must still go out at once.
        let (slow_url, slow_handle) = slow_receiver(Duration::from_secs(6))?;
        let tenant = tenant_with_rp(&store, &slow_url).await?;
        for i in 0..40 {
            deactivation(&store, &tenant, &format!("u{i}")).await?;
        }
        let quick = Receiver::start(vec![(200, "")])?;
        add_rp(&store, "quick", &quick.url).await?;
        let w = Arc::new(
            worker_with(
                &store,
                WorkerConfig {
                    owner: "w1".into(),
                    concurrency: 4,
                    per_target: 1,
                    retry: fast_retries(),
                    ..WorkerConfig::default()
                },
            )
            .await?,
        );
        let cancel = tokio_util::sync::CancellationToken::new();
        let running = tokio::spawn(w.clone().run(cancel.clone()));
        // The slow target's first attempt is under way.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        let (_, n) = deactivation(&store, &tenant, "zed").await?;
        assert_eq!(n, 2);
        store.outbox_wake().notify_one();
        while quick.count() < 1 && started.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = started.elapsed();
        cancel.cancel();
        running.await?;
        let sent = quick.count();
        quick.stop().await;
        slow_handle.stop(false).await;
        assert_eq!(sent, 1, "quick's logout never went out");
        assert!(
            took < Duration::from_secs(3),
            "quick's logout went out after {took:?}, behind the slow target's backlog"
        );
        Ok(())
    }
);

db_test!(
    a_retry_is_not_held_up_by_a_slow_attempt_of_another_target,
    |store: Store, _url| async move {
        // `app` answers 503 once, then 200; `slow` takes 6 s to answer. The retry of `app`
        // is due a few milliseconds after its first attempt and must go out then, not when
        // the worker next has nothing in flight or its 5 s poll comes round.
        let quick = Receiver::start(vec![(503, "busy"), (200, "")])?;
        let tenant = tenant_with_rp(&store, &quick.url).await?;
        let (slow_url, slow_handle) = slow_receiver(Duration::from_secs(6))?;
        add_rp(&store, "slow", &slow_url).await?;
        let w = Arc::new(worker(&store, "w1").await?);
        let cancel = tokio_util::sync::CancellationToken::new();
        let running = tokio::spawn(w.clone().run(cancel.clone()));
        let started = std::time::Instant::now();
        let (_, n) = deactivation(&store, &tenant, "ada").await?;
        assert_eq!(n, 2);
        // What the SCIM store does after a commit that enqueued work (PostgreSQL's NOTIFY
        // would wake the worker anyway).
        store.outbox_wake().notify_one();
        while quick.count() < 2 && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = started.elapsed();
        cancel.cancel();
        running.await?;
        let sent = quick.count();
        quick.stop().await;
        slow_handle.stop(false).await;
        assert_eq!(sent, 2, "the retry never went out");
        assert!(
            took < Duration::from_secs(2),
            "the retry went out after {took:?}, held up by the slow target"
        );
        Ok(())
    }
);
