//! Back-channel logout receivers for `tests/bench/delivery.sh`: one actix-web server
//! listening on several ports of 127.0.0.1 (one port per relying party). Every
//! `POST /bcl/{n}` is answered 200 at once, after recording the wall-clock time (Unix
//! microseconds, the clock the benchmark's SCIM client also reads), the port, and the
//! `sub`/`aud` read from the logout token's payload. The token's signature is *not*
//! verified here: the interop tests and `deprov demo`'s sample application
//! (`deprov_revocation::receiver`) do that; this receiver is meant to be cheap, so that it
//! is not what limits the delivery rate.
//!
//! Control routes on any of the ports: `GET /stats` (`{"count": N, "first_us": …,
//! "last_us": …}`), `GET /records` (CSV `port,t_us,sub,aud`), `POST /reset`.
//!
//! ```sh
//! cargo run --release -p deprov-server --example bcl_receiver -- 18100 10
//! ```
//! Arguments: the first port and the number of ports; `WORKERS` (default 1) sets the actix
//! workers.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Debug)]
struct Record {
    port: u16,
    t_us: u64,
    sub: String,
    aud: String,
}

#[derive(Debug, Default)]
struct Log {
    records: Mutex<Vec<Record>>,
}

impl Log {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// `sub` and `aud` of the logout token in a form body, without verifying it.
fn claims(body: &[u8]) -> Option<(String, String)> {
    let token = deprov_revocation::receiver::logout_token_from_form(body)?;
    let payload = token.split('.').nth(1)?;
    let json: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some((text(&json["sub"]), text(&json["aud"])))
}

async fn logout(req: HttpRequest, body: web::Bytes, log: web::Data<Log>) -> HttpResponse {
    let t_us = now_us();
    let Some((sub, aud)) = claims(&body) else {
        return HttpResponse::BadRequest().body("no readable logout_token");
    };
    let port = req.app_config().local_addr().port();
    log.lock().push(Record {
        port,
        t_us,
        sub,
        aud,
    });
    HttpResponse::Ok().finish()
}

async fn stats(log: web::Data<Log>) -> HttpResponse {
    let records = log.lock();
    let first = records.iter().map(|r| r.t_us).min().unwrap_or(0);
    let last = records.iter().map(|r| r.t_us).max().unwrap_or(0);
    HttpResponse::Ok().json(serde_json::json!({
        "count": records.len(), "first_us": first, "last_us": last,
    }))
}

async fn dump(log: web::Data<Log>) -> HttpResponse {
    let records = log.lock();
    let mut out = String::with_capacity(records.len() * 64);
    for r in records.iter() {
        let _ = writeln!(out, "{},{},{},{}", r.port, r.t_us, r.sub, r.aud);
    }
    HttpResponse::Ok().content_type("text/csv").body(out)
}

async fn reset(log: web::Data<Log>) -> HttpResponse {
    log.lock().clear();
    HttpResponse::NoContent().finish()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let first: u16 = args.next().map_or(Ok(18100), |s| s.parse())?;
    let count: u16 = args.next().map_or(Ok(10), |s| s.parse())?;
    let workers: usize = std::env::var("WORKERS").map_or(Ok(1), |s| s.parse())?;
    let log = web::Data::new(Log::default());
    let app_log = log.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(app_log.clone())
            .route("/bcl/{n}", web::post().to(logout))
            .route("/stats", web::get().to(stats))
            .route("/records", web::get().to(dump))
            .route("/reset", web::post().to(reset))
    })
    .workers(workers);
    for port in first..first.saturating_add(count) {
        server = server.listen(TcpListener::bind(("127.0.0.1", port))?)?;
    }
    eprintln!(
        "bcl_receiver: ports {first}..{} with {workers} worker(s)",
        first.saturating_add(count) - 1
    );
    server.run().await?;
    Ok(())
}
