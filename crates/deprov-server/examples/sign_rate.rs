//! Logout-token signing rate for `tests/bench/delivery.sh`: mints tokens with
//! `deprov_revocation::logout_token::mint` (the path the delivery worker uses, minus the key
//! ring lookup) on one thread for a few seconds per algorithm, and prints one JSON line per
//! algorithm: `{"alg": "RS256", "threads": 1, "tokens": N, "secs": S, "per_sec": R}`.
//!
//! ```sh
//! cargo run --release -p deprov-server --example sign_rate -- 3 RS256 ES256 EdDSA
//! ```
//! The first argument is the seconds per algorithm; `THREADS=2` runs that many threads.

use std::time::{Duration, Instant, SystemTime};

use deprov_core::SigningAlgorithm;
use deprov_revocation::keys::SigningKey;
use deprov_revocation::logout_token::{LogoutTokenRequest, TokenLifetime, mint};

fn rate(key: &SigningKey, secs: f64) -> anyhow::Result<(u64, f64)> {
    let request = LogoutTokenRequest {
        issuer: "http://127.0.0.1:18080",
        audience: "bench-rp-0",
        subject: Some("u00001@example.com"),
        session_id: None,
        require_sid: false,
        lifetime: TokenLifetime::MAX,
    };
    // Warm up (caches, lazily computed key material).
    for _ in 0..20 {
        mint(key, &request, SystemTime::now())?;
    }
    let started = Instant::now();
    let until = Duration::from_secs_f64(secs);
    let mut n = 0u64;
    while started.elapsed() < until && n < 10_000_000 {
        let token = mint(key, &request, SystemTime::now())?;
        std::hint::black_box(token);
        n += 1;
    }
    Ok((n, started.elapsed().as_secs_f64()))
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().map_or(Ok(3.0), |s| s.parse())?;
    let mut algs: Vec<String> = args.collect();
    if algs.is_empty() {
        algs = vec!["RS256".into(), "ES256".into()];
    }
    let threads: usize = std::env::var("THREADS").map_or(Ok(1), |s| s.parse())?;
    for name in algs {
        let alg = SigningAlgorithm::parse(&name).map_err(|e| anyhow::anyhow!("{e}"))?;
        let key = SigningKey::generate(alg)?;
        let results: Vec<anyhow::Result<(u64, f64)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(|| rate(&key, secs))).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("thread panicked")))
                })
                .collect()
        });
        let mut tokens = 0u64;
        let mut longest = 0f64;
        for r in results {
            let (n, s) = r?;
            tokens += n;
            longest = longest.max(s);
        }
        println!(
            "{{\"alg\": \"{name}\", \"threads\": {threads}, \"tokens\": {tokens}, \"secs\": {longest:.3}, \"per_sec\": {:.1}}}",
            tokens as f64 / longest
        );
    }
    Ok(())
}
