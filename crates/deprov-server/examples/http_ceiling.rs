//! The HTTP ceiling for `tests/bench/scim.sh`: an actix-web 4 server under a tokio runtime
//! whose only handler answers `GET /scim/v2/{tenant}/Users/{id}` with a fixed SCIM user body
//! held in memory. Whatever deprov does beyond this (authentication, the database,
//! rendering) is the cost the benchmark compares against it. It runs one worker per core,
//! its fastest on 2 cores (178–183k req/s, against 163–173k with one worker), although
//! `deprov serve` runs one fewer by default.
//!
//! ```sh
//! cargo run --release -p deprov-server --example http_ceiling -- 127.0.0.1:18099 body.json [WORKERS]
//! ```

use std::net::TcpListener;

use actix_web::{App, HttpResponse, HttpServer, web};

async fn user(path: web::Path<(String, String)>, body: web::Data<web::Bytes>) -> HttpResponse {
    let (_tenant, _id) = path.into_inner();
    HttpResponse::Ok()
        .content_type("application/scim+json")
        .insert_header(("etag", "W/\"1\""))
        .body(body.get_ref().clone())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: http_ceiling LISTEN_ADDR BODY_FILE [WORKERS]"))?;
    let body_file = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: http_ceiling LISTEN_ADDR BODY_FILE [WORKERS]"))?;
    let body = web::Data::new(web::Bytes::from(std::fs::read(&body_file)?));
    let listener = TcpListener::bind(&listen)?;
    let workers = match args.next() {
        Some(n) => n.parse()?,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    eprintln!(
        "http_ceiling on {listen}: {} body bytes, {workers} actix workers",
        body.len()
    );
    HttpServer::new(move || {
        App::new()
            .app_data(body.clone())
            .route("/scim/v2/{tenant}/Users/{id}", web::get().to(user))
    })
    .workers(workers)
    .listen(listener)?
    .run()
    .await?;
    Ok(())
}
