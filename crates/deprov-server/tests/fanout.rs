//! The fan-out survives the process: `kill -9` of `deprov serve` in the middle of 1,000
//! deliveries, then a restart, and every delivery still ends delivered; two `deprov serve`
//! processes on one PostgreSQL split a fan-out without sending any delivery twice, and when
//! one is killed the other finishes its leased work.
//!
//! Real processes (`CARGO_BIN_EXE_deprov`), real SCIM requests, real HTTP receivers.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine as _;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type Received = Arc<Mutex<Vec<(String, String)>>>;

const RECEIVERS: usize = 10;
const USERS: usize = 100;

/// (aud, sub) of a logout token, read without verifying (verification is tested elsewhere).
fn aud_sub(form: &str) -> Option<(String, String)> {
    let token = form.strip_prefix("logout_token=")?;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some((
        claims["aud"].as_str()?.to_owned(),
        claims["sub"].as_str()?.to_owned(),
    ))
}

/// Receivers answering 200 after a short think, recording (aud, sub).
/// Receivers that record each logout after `delay`.
fn start_receivers(
    received: Received,
    delay: Duration,
) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let mut urls = Vec::new();
    for _ in 0..RECEIVERS {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        urls.push(format!("http://{}/bcl", listener.local_addr()?));
        let received = received.clone();
        let server = HttpServer::new(move || {
            let received = received.clone();
            App::new().route(
                "/bcl",
                web::post().to(move |body: String| {
                    let received = received.clone();
                    async move {
                        tokio::time::sleep(delay).await;
                        if let Some(pair) = aud_sub(&body)
                            && let Ok(mut r) = received.lock()
                        {
                            r.push(pair);
                        }
                        HttpResponse::Ok().finish()
                    }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        tokio::spawn(server);
    }
    Ok(urls)
}

struct Deprov {
    child: Child,
    base: String,
}

/// A failed assertion must not leave a `deprov serve` running.
impl Drop for Deprov {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn command(dir: &Path, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deprov"));
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("DEPROV_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("DEPROV_ALLOW_INSECURE_TARGETS", "true");
    // Short attempts mean short leases (6 × the timeout), so a killed process's work is
    // claimed again within seconds.
    cmd.env("DEPROV_DELIVERY__TIMEOUT_SECS", "2");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn serve(
    dir: &Path,
    env: &[(&str, String)],
) -> Result<Deprov, Box<dyn std::error::Error + Send + Sync>> {
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let child = command(dir, env)
        .arg("serve")
        .env("DEPROV_LISTEN", format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let client = http();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(Deprov { child, base });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("deprov serve did not become ready".into())
}

fn cli(
    dir: &Path,
    env: &[(&str, String)],
    args: &[&str],
) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
    let out = command(dir, env).args(args).stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(format!("deprov {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Creates the tenant, the relying parties and the users; returns the SCIM base and token.
async fn setup(
    dir: &Path,
    env: &[(&str, String)],
    base: &str,
    urls: &[String],
) -> Result<(String, String, Vec<String>), Box<dyn std::error::Error + Send + Sync>> {
    let tenant = cli(dir, env, &["tenant", "create", "acme", "--json"])?;
    let token = tenant["scim_token"].as_str().ok_or("no token")?.to_owned();
    for (i, url) in urls.iter().enumerate() {
        cli(
            dir,
            env,
            &[
                "rp",
                "add",
                "--tenant",
                "acme",
                "--client-id",
                &format!("app{i}"),
                "--backchannel-logout-uri",
                url,
                "--subject",
                "userName",
                "--alg",
                "ES256",
                "--json",
            ],
        )?;
    }
    let scim = format!("{base}/scim/v2/acme");
    let client = http();
    let mut ids = Vec::new();
    for i in 0..USERS {
        let r = client
            .post(format!("{scim}/Users"))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": format!("user{i}@example.com"),
                "active": true
            }))
            .send()
            .await?;
        if r.status().as_u16() != 201 {
            return Err(format!("POST /Users: {}", r.status()).into());
        }
        let body: serde_json::Value = r.json().await?;
        ids.push(body["id"].as_str().ok_or("no id")?.to_owned());
    }
    Ok((scim, token, ids))
}

async fn deactivate_all(scim: &str, token: &str, ids: &[String]) -> TestResult {
    let client = http();
    for id in ids {
        let r = client
            .patch(format!("{scim}/Users/{id}"))
            .bearer_auth(token)
            .json(&serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Replace", "path": "active", "value": "False"}]
            }))
            .send()
            .await?;
        if !r.status().is_success() {
            return Err(format!("PATCH /Users/{id}: {}", r.status()).into());
        }
    }
    Ok(())
}

fn distinct(received: &Received) -> usize {
    received
        .lock()
        .map(|r| r.iter().collect::<HashSet<_>>().len())
        .unwrap_or(0)
}

async fn wait_until(deadline: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

fn delivered_total(
    dir: &Path,
    env: &[(&str, String)],
) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    let list = cli(
        dir,
        env,
        &[
            "deliveries",
            "list",
            "--status",
            "delivered",
            "--limit",
            "1",
            "--json",
        ],
    )?;
    Ok(list["total"].as_u64().unwrap_or(0))
}

/// The delivered count once it reaches `expected` (a receiver sees a logout a moment
/// before its delivery is recorded), or the last count seen at the deadline.
async fn delivered_eventually(
    dir: &Path,
    env: &[(&str, String)],
    expected: u64,
) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let total = delivered_total(dir, env)?;
        if total >= expected || Instant::now() > end {
            return Ok(total);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A fresh PostgreSQL schema for processes to share, and its environment; `None` when
/// `DEPROV_TEST_DATABASE_URL` is unset.
struct PgSchema {
    admin: String,
    schema: String,
    env: Vec<(&'static str, String)>,
}

impl PgSchema {
    fn create() -> Result<Option<Self>, Box<dyn std::error::Error + Send + Sync>> {
        let Ok(admin) = std::env::var("DEPROV_TEST_DATABASE_URL") else {
            eprintln!("skipped: DEPROV_TEST_DATABASE_URL is not set");
            return Ok(None);
        };
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        psql(&admin, &format!("CREATE SCHEMA {schema}"))?;
        let sep = if admin.contains('?') { '&' } else { '?' };
        let url = format!("{admin}{sep}options=-c%20search_path%3D{schema}");
        let kek = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let env = vec![
            ("DEPROV_DATABASE_URL", url),
            ("DEPROV_KEY_ENCRYPTION_KEY", kek),
        ];
        Ok(Some(Self { admin, schema, env }))
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = psql(&self.admin, &format!("DROP SCHEMA {} CASCADE", self.schema));
    }
}

fn psql(url: &str, sql: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let status = Command::new("psql")
        .args([url, "-q", "-c", sql])
        .env("PGOPTIONS", "--client-min-messages=warning")
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("psql: {sql} failed").into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_in_the_middle_of_a_fan_out_loses_no_delivery_sqlite() -> TestResult {
    kill_9_in_the_middle_of_a_fan_out_loses_no_delivery(vec![]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_in_the_middle_of_a_fan_out_loses_no_delivery_postgres() -> TestResult {
    let Some(pg) = PgSchema::create()? else {
        return Ok(());
    };
    kill_9_in_the_middle_of_a_fan_out_loses_no_delivery(pg.env.clone()).await
}

async fn kill_9_in_the_middle_of_a_fan_out_loses_no_delivery(
    mut env: Vec<(&'static str, String)>,
) -> TestResult {
    // One logout at a time per receiver, 20 ms each: the fan-out takes about two seconds,
    // so the kill lands in its middle however fast the deactivations and the worker are.
    env.push(("DEPROV_DELIVERY__PER_TARGET", "1".to_owned()));
    let dir = tempfile::tempdir()?;
    let received: Received = Arc::default();
    let urls = start_receivers(received.clone(), Duration::from_millis(20))?;
    let mut first = serve(dir.path(), &env).await?;
    let (scim, token, ids) = setup(dir.path(), &env, &first.base, &urls).await?;
    deactivate_all(&scim, &token, &ids).await?;
    let expected = RECEIVERS * USERS;
    // Kill it while the fan-out is under way.
    wait_until(Duration::from_secs(60), || {
        distinct(&received) >= expected / 5
    })
    .await;
    first.child.kill()?;
    first.child.wait()?;
    let at_kill = distinct(&received);
    eprintln!("killed with {at_kill} of {expected} delivered");

    let mut second = serve(dir.path(), &env).await?;
    let all = wait_until(Duration::from_secs(120), || distinct(&received) == expected).await;
    let total = delivered_eventually(dir.path(), &env, expected as u64).await?;
    second.child.kill()?;
    second.child.wait()?;
    assert!(
        all,
        "only {} of {expected} distinct logouts arrived",
        distinct(&received)
    );
    assert!(
        at_kill < expected,
        "the kill came too late to test anything"
    );
    assert_eq!(total, expected as u64, "deliveries recorded as delivered");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_one_postgres_split_the_work_without_duplicates() -> TestResult {
    let Some(pg) = PgSchema::create()? else {
        return Ok(());
    };
    let env = pg.env.clone();
    let dir_a = tempfile::tempdir()?;
    let dir_b = tempfile::tempdir()?;
    let received: Received = Arc::default();
    let urls = start_receivers(received.clone(), Duration::from_millis(5))?;
    let a = serve(dir_a.path(), &env).await?;
    let mut b = serve(dir_b.path(), &env).await?;
    let (scim, token, ids) = setup(dir_a.path(), &env, &a.base, &urls).await?;
    let mut a = a;
    let expected = RECEIVERS * USERS;
    // Half the users through each process, so both enqueue and both deliver.
    let (left, right) = ids.split_at(USERS / 2);
    let scim_b = scim.replace(&a.base, &b.base);
    let (ra, rb) = tokio::join!(
        deactivate_all(&scim, &token, left),
        deactivate_all(&scim_b, &token, right)
    );
    ra?;
    rb?;
    wait_until(Duration::from_secs(60), || {
        distinct(&received) >= expected / 2
    })
    .await;
    // While both were up, nothing was sent twice.
    let (sent, unique) = received
        .lock()
        .map(|r| (r.len(), r.iter().collect::<HashSet<_>>().len()))
        .unwrap_or((0, 0));
    assert_eq!(
        sent, unique,
        "a delivery was sent twice while both processes were up"
    );
    // Kill one; the other finishes, including what the dead one had leased.
    b.child.kill()?;
    b.child.wait()?;
    let all = wait_until(Duration::from_secs(180), || distinct(&received) == expected).await;
    let total = delivered_eventually(dir_a.path(), &env, expected as u64).await?;
    a.child.kill()?;
    a.child.wait()?;
    let counts: HashMap<String, usize> = received
        .lock()
        .map(|r| {
            r.iter().fold(HashMap::new(), |mut m, (aud, _)| {
                *m.entry(aud.clone()).or_default() += 1;
                m
            })
        })
        .unwrap_or_default();
    assert!(
        all,
        "only {} of {expected} distinct logouts arrived: {counts:?}",
        distinct(&received)
    );
    assert_eq!(total, expected as u64);
    Ok(())
}
