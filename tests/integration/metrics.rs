//! `/metrics` after real SCIM traffic and real deliveries: the counters move, the queue
//! gauges read the database, and no label carries a tenant name, user id or raw path.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::{App as ActixApp, HttpResponse, HttpServer, web};
use deprov_core::{SigningAlgorithm, SubjectMapping};
use deprov_store::targets::NewRelyingParty;
use deprov_store::{Store, db_test};
use serde_json::json;

use crate::scim_harness::{App, USER_URN, patch_ops};

/// A key-encryption key for these tests, so that no key file is written.
const KEK: &str = "q2Vn0CqJk1x6w8mXb0Zp3u9YtR5sLa7dEe4fGh2iJk0=";
const CONFIGURED: &str = "configured-admin-token-0123456789abcdef";

/// A receiver answering every logout with `status`.
fn receiver(status: u16) -> anyhow::Result<(String, actix_web::dev::ServerHandle)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/backchannel-logout", listener.local_addr()?);
    let server = HttpServer::new(move || {
        ActixApp::new().route(
            "/backchannel-logout",
            web::post().to(move || async move {
                HttpResponse::build(
                    actix_web::http::StatusCode::from_u16(status)
                        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
                )
                .finish()
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

/// The app with its worker running, metrics read from the database on every scrape, and
/// one relying party on `uri`.
async fn start(store: Store, uri: &str, protect: bool) -> anyhow::Result<App> {
    let app = App::start_with(store, |c| {
        c.delivery.worker = true;
        c.allow_insecure_targets = true;
        c.key_encryption_key = Some(deprov_core::Secret::new(KEK));
        c.admin_token = Some(deprov_core::Secret::new(CONFIGURED));
        c.metrics.cache_secs = 0;
        c.metrics.require_admin_token = protect;
    })
    .await?;
    app.store
        .add_relying_party(
            "acme",
            NewRelyingParty {
                client_id: "wiki".into(),
                backchannel_logout_uri: url::Url::parse(uri)?,
                subject: SubjectMapping::UserName,
                // Its key exists from the start (Running::start creates the RS256 key).
                alg: SigningAlgorithm::RS256,
                require_sid: false,
                issuer: None,
                kid: None,
                groups: vec![],
                enabled: true,
            },
            "test",
        )
        .await?;
    Ok(app)
}

async fn scrape(app: &App, token: Option<&str>) -> anyhow::Result<(u16, String)> {
    let mut req = app.client.get(format!("{}/metrics", app.root));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await?;
    Ok((res.status().as_u16(), res.text().await?))
}

/// The value of the sample whose name and labels are exactly `series`, if it is there.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Creates `ada` and deactivates her the way Entra does; returns her id.
async fn provision_and_deactivate(app: &App) -> anyhow::Result<String> {
    let id = app
        .post(
            "/Users",
            &json!({"schemas": [USER_URN], "userName": "ada@example.com", "externalId": "00u-ada", "active": true}),
        )
        .await?
        .expect(201)
        .id();
    let answer = app
        .patch(
            &format!("/Users/{id}"),
            &patch_ops(json!([{"op": "Replace", "path": "active", "value": "False"}])),
        )
        .await?;
    assert!(matches!(answer.status, 200 | 204), "{}", answer.text);
    Ok(id)
}

/// Scrapes until `series` reaches `value` (the worker delivers in the background).
async fn wait_for(app: &App, series: &str, value: f64) -> anyhow::Result<String> {
    wait_until(app, series, |v| v == value, &format!("{value}")).await
}

/// Scrapes until the value of `series` satisfies `ok` (described as `what`).
async fn wait_until(
    app: &App,
    series: &str,
    ok: impl Fn(f64) -> bool,
    what: &str,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, text) = scrape(app, None).await?;
        assert_eq!(status, 200, "{text}");
        if sample(&text, series).is_some_and(&ok) {
            return Ok(text);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{series} never reached {what}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

db_test!(
    a_deactivation_moves_the_counters_and_labels_carry_no_ids,
    |store: Store, _url| async move {
        let (uri, rx) = receiver(200)?;
        let backend = store.backend();
        let app = start(store, &uri, false).await?;
        let (status, before) = scrape(&app, None).await?;
        assert_eq!(status, 200);
        assert_eq!(
            sample(&before, "deprov_events_total{kind=\"deactivated\"}"),
            Some(0.0),
            "{before}"
        );

        let id = provision_and_deactivate(&app).await?;
        wait_for(
            &app,
            "deprov_deliveries_total{target_kind=\"backchannel_logout\",outcome=\"delivered\"}",
            1.0,
        )
        .await?;
        // A scrape reads the database before it encodes the counters, so the one that saw
        // the delivery counted may have read the queue just before the delivery settled.
        let text = wait_for(&app, "deprov_queue_depth{status=\"pending\"}", 0.0).await?;

        let users_id = "route=\"/scim/v2/{tenant}/Users/{id}\"";
        for (series, value) in [
            (
                "deprov_scim_requests_total{route=\"/scim/v2/{tenant}/Users\",method=\"POST\",status=\"201\"}"
                    .to_owned(),
                1.0,
            ),
            (
                format!("deprov_scim_requests_total{{{users_id},method=\"PATCH\",status=\"200\"}}"),
                1.0,
            ),
            (
                format!("deprov_scim_request_duration_seconds_count{{{users_id},method=\"PATCH\"}}"),
                1.0,
            ),
            ("deprov_events_total{kind=\"deactivated\"}".to_owned(), 1.0),
            ("deprov_events_total{kind=\"deleted\"}".to_owned(), 0.0),
            (
                "deprov_delivery_latency_seconds_count{target_kind=\"backchannel_logout\"}"
                    .to_owned(),
                1.0,
            ),
            ("deprov_queue_depth{status=\"pending\"}".to_owned(), 0.0),
            ("deprov_queue_depth{status=\"retrying\"}".to_owned(), 0.0),
            ("deprov_queue_oldest_age_seconds".to_owned(), 0.0),
            ("deprov_dead_letters".to_owned(), 0.0),
            ("deprov_database_up".to_owned(), 1.0),
        ] {
            assert_eq!(sample(&text, &series), Some(value), "{series}:\n{text}");
        }
        // SQLite's group commit: every write in a batch, every batch made durable.
        let writes = sample(&text, "deprov_sqlite_writes_total");
        let batches = sample(&text, "deprov_sqlite_write_batches_total");
        let fsyncs = sample(&text, "deprov_sqlite_wal_fsyncs_total");
        if backend == deprov_store::Backend::Sqlite {
            let (Some(writes), Some(batches), Some(fsyncs)) = (writes, batches, fsyncs) else {
                panic!("SQLite write counters missing:\n{text}");
            };
            // At least the POST, the PATCH and the delivery's settle.
            assert!(writes >= 3.0, "{text}");
            assert!((1.0..=writes).contains(&batches), "{text}");
            assert!((1.0..=batches).contains(&fsyncs), "{text}");
        } else {
            assert_eq!((writes, batches, fsyncs), (None, None, None), "{text}");
        }
        // The checkpoint thread's work, on SQLite only (when it last ran is its own business).
        for series in [
            "deprov_sqlite_wal_checkpoints_total",
            "deprov_sqlite_wal_pages",
            "deprov_sqlite_wal_pages_left",
        ] {
            let value = sample(&text, series);
            if backend == deprov_store::Backend::Sqlite {
                assert!(value.is_some_and(|v| v >= 0.0), "{series}:\n{text}");
            } else {
                assert_eq!(value, None, "{series}:\n{text}");
            }
        }
        // Event → delivered on 127.0.0.1 takes milliseconds, not seconds.
        let latency = sample(
            &text,
            "deprov_delivery_latency_seconds_sum{target_kind=\"backchannel_logout\"}",
        )
        .unwrap_or(f64::MAX);
        assert!(latency < 10.0, "{latency}");

        // A path no route matches is counted under a fixed label, not as sent.
        app.get("/NoSuchThing/00u-secret").await?.expect(404);
        let (_, text) = scrape(&app, None).await?;
        assert_eq!(
            sample(
                &text,
                "deprov_scim_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}"
            ),
            Some(1.0),
            "{text}"
        );
        for secret in [
            id.as_str(),
            "acme",
            "ada@example.com",
            "00u-ada",
            "00u-secret",
            "NoSuchThing",
        ] {
            assert!(!text.contains(secret), "{secret} in the metrics:\n{text}");
        }
        rx.stop(false).await;
        app.stop().await
    }
);

db_test!(
    a_dead_letter_shows_in_the_outcomes_and_the_dead_letter_gauge,
    |store: Store, _url| async move {
        let (uri, rx) = receiver(400)?;
        let app = start(store, &uri, false).await?;
        provision_and_deactivate(&app).await?;
        // The counter moves just after the database does: wait for one, then the other.
        wait_for(
            &app,
            "deprov_deliveries_total{target_kind=\"backchannel_logout\",outcome=\"dead\"}",
            1.0,
        )
        .await?;
        let text = wait_for(&app, "deprov_dead_letters", 1.0).await?;
        // Only successes are timed.
        assert_eq!(
            sample(
                &text,
                "deprov_delivery_latency_seconds_count{target_kind=\"backchannel_logout\"}"
            ),
            None,
            "{text}"
        );
        rx.stop(false).await;
        app.stop().await
    }
);

db_test!(
    a_waiting_delivery_shows_in_the_queue_depth_and_its_age,
    |store: Store, _url| async move {
        // A port nobody listens on: the delivery is retried, so it waits in the queue.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let app = start(store, &format!("http://127.0.0.1:{port}/bcl"), false).await?;
        provision_and_deactivate(&app).await?;
        // The counter moves just after the database does: wait for one, then the other. A
        // second attempt may follow its backoff (jittered) before a scrape sees the first.
        wait_until(
            &app,
            "deprov_deliveries_total{target_kind=\"backchannel_logout\",outcome=\"retry\"}",
            |n| n >= 1.0,
            "at least 1",
        )
        .await?;
        let text = wait_for(&app, "deprov_queue_depth{status=\"retrying\"}", 1.0).await?;
        let age = sample(&text, "deprov_queue_oldest_age_seconds").unwrap_or(-1.0);
        assert!(age > 0.0 && age < 60.0, "{text}");
        app.stop().await
    }
);

db_test!(
    metrics_can_require_the_admin_token,
    |store: Store, _url| async move {
        let app = start(store, "http://127.0.0.1:9/bcl", true).await?;
        let (status, _) = scrape(&app, None).await?;
        assert_eq!(status, 401);
        let (status, _) = scrape(&app, Some("wrong-token-0123456789-0123456789")).await?;
        assert_eq!(status, 401);
        let (status, text) = scrape(&app, Some(CONFIGURED)).await?;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("deprov_queue_depth"), "{text}");
        app.stop().await
    }
);
