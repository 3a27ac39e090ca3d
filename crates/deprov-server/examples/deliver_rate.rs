//! The delivery rate without an outbox, for `tests/bench/delivery.sh`: what the delivery
//! worker does for one logout minus the database (no claim, no lease, no record of the
//! attempt). Each of `concurrency` tasks mints a logout token with
//! `deprov_revocation::logout_token::mint` and POSTs it with the back-channel logout
//! channel's `post_logout_token`, through deprov's `OutboundClient`, to one of the
//! receivers (task *i* to receiver *i mod n*, so no receiver sees more than
//! `ceil(concurrency / n)` at once, like the worker's per-target limit). It runs in a Tokio
//! runtime like `deprov serve`'s.
//!
//! This is an upper bound for a drain on this machine: the signatures, the HTTP exchanges
//! and the receiver's share of the CPU, with nothing made durable. Prints one JSON line:
//! `{"alg": "ES256", "concurrency": 64, "logouts": N, "secs": S, "per_sec": R, "failed": F}`.
//!
//! ```sh
//! cargo run --release -p deprov-server --example deliver_rate -- ES256 5 http://127.0.0.1:28100/bcl/0 …
//! ```
//! Arguments: the algorithm, the seconds, then one URL per receiver. `CONCURRENCY` (64).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use deprov_core::SigningAlgorithm;
use deprov_revocation::channels::backchannel_logout::post_logout_token;
use deprov_revocation::keys::SigningKey;
use deprov_revocation::logout_token::{LogoutTokenRequest, TokenLifetime, mint};
use deprov_revocation::outbound::AddressPolicy;
use deprov_revocation::outbound::http::OutboundClient;

struct Counts {
    done: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
}

async fn deliver(
    key: Arc<SigningKey>,
    client: OutboundClient,
    url: String,
    audience: String,
    counts: Arc<Counts>,
) -> anyhow::Result<()> {
    let subject = format!("{audience}-user@example.com");
    while !counts.stop.load(Ordering::Relaxed) {
        let request = LogoutTokenRequest {
            issuer: "http://127.0.0.1:18080",
            audience: &audience,
            subject: Some(&subject),
            session_id: None,
            require_sid: false,
            lifetime: TokenLifetime::MAX,
        };
        let token = mint(&key, &request, SystemTime::now())?;
        let exchange = post_logout_token(&client, &url, &token.jwt).await?;
        if exchange.status == Some(200) {
            counts.done.fetch_add(1, Ordering::Relaxed);
        } else {
            counts.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let alg_name = args.next().unwrap_or_else(|| "ES256".to_owned());
    let secs: f64 = args.next().map_or(Ok(5.0), |s| s.parse())?;
    let urls: Vec<String> = args.collect();
    anyhow::ensure!(!urls.is_empty(), "give at least one receiver URL");
    let concurrency: usize = std::env::var("CONCURRENCY").map_or(Ok(64), |s| s.parse())?;
    let alg = SigningAlgorithm::parse(&alg_name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = Arc::new(SigningKey::generate(alg)?);
    let client = OutboundClient::new(AddressPolicy::AllowInsecure, Duration::from_secs(10))?;
    let counts = Arc::new(Counts {
        done: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let n = i % urls.len();
            tokio::spawn(deliver(
                key.clone(),
                client.clone(),
                urls[n].clone(),
                format!("bench-rp-{n}"),
                counts.clone(),
            ))
        })
        .collect();
    // The first second opens the connections and warms up; the rest is measured.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (started, before) = (Instant::now(), counts.done.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let (elapsed, logouts) = (
        started.elapsed().as_secs_f64(),
        counts.done.load(Ordering::Relaxed) - before,
    );
    counts.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    println!(
        "{{\"alg\": \"{alg_name}\", \"concurrency\": {concurrency}, \"logouts\": {logouts}, \"secs\": {elapsed:.3}, \"per_sec\": {:.1}, \"failed\": {}}}",
        logouts as f64 / elapsed,
        counts.failed.load(Ordering::Relaxed)
    );
    Ok(())
}
