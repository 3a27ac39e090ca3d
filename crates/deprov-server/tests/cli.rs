//! The `deprov` binary as a newcomer and a script meet it: `serve` in an empty directory,
//! `tenant create --json`, errors as one line with a non-zero exit, graceful stop.
//! These run the real binary (`CARGO_BIN_EXE_deprov`) in a temporary directory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// What a child's pipe held, once the child has exited.
fn read_to_end(pipe: Option<impl Read>) -> Result<String, Box<dyn std::error::Error>> {
    let mut text = String::new();
    pipe.ok_or("the pipe was not captured")?
        .read_to_string(&mut text)?;
    Ok(text)
}

fn deprov(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deprov"));
    cmd.current_dir(dir);
    // A hermetic environment: no DEPROV_* from the caller leaks in.
    for (key, _) in std::env::vars() {
        if key.starts_with("DEPROV_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn run(cmd: &mut Command) -> Result<Output, std::io::Error> {
    cmd.stdin(Stdio::null()).output()
}

fn free_port() -> Result<u16, std::io::Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A minimal HTTP/1.1 GET, enough to probe health endpoints without an HTTP client crate.
fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), std::io::Error> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Starts `deprov serve` and waits until `/healthz` answers.
fn start_serve(dir: &Path, port: u16) -> Result<(Child, SocketAddr), Box<dyn std::error::Error>> {
    start_serve_with(dir, port, &[])
}

/// [`start_serve`] with more environment.
fn start_serve_with(
    dir: &Path,
    port: u16,
    env: &[(&str, &str)],
) -> Result<(Child, SocketAddr), Box<dyn std::error::Error>> {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let child = deprov(dir)
        .arg("serve")
        .env("DEPROV_LISTEN", addr.to_string())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok((200, _)) = http_get(addr, "/healthz") {
            return Ok((child, addr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err("deprov serve did not answer /healthz within 30 s".into())
}

fn terminate(child: &Child) -> Result<(), Box<dyn std::error::Error>> {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    if !status.success() {
        return Err("kill -TERM failed".into());
    }
    Ok(())
}

#[test]
fn serve_in_an_empty_directory_creates_the_database_and_default_tenant() -> TestResult {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let (mut child, addr) = start_serve(dir.path(), port)?;
    assert!(dir.path().join("deprov.db").exists());
    assert_eq!(http_get(addr, "/healthz")?.0, 200);
    let (status, body) = http_get(addr, "/readyz")?;
    assert_eq!(status, 200, "{body}");

    terminate(&child)?;
    let exit = child.wait()?;
    let stdout = read_to_end(child.stdout.take())?;
    let stderr = read_to_end(child.stderr.take())?;
    assert!(exit.success(), "exit {exit:?}\n{stderr}");
    assert!(
        stdout.contains(&format!("SCIM base URL: http://{addr}/scim/v2/default")),
        "{stdout}"
    );
    let token_line = stdout
        .lines()
        .find(|l| l.contains("SCIM token:"))
        .ok_or("no token printed")?;
    assert!(token_line.contains("deprov_scim_"), "{token_line}");
    // The token is printed once to the operator, never logged.
    let token = token_line.rsplit(' ').next().unwrap_or_default();
    assert!(!stderr.contains(token), "token leaked into the logs");
    // So is a first admin token, for the admin API.
    let admin_line = stdout
        .lines()
        .find(|l| l.contains("Admin token:"))
        .ok_or("no admin token printed")?;
    let admin = admin_line.rsplit(' ').next().unwrap_or_default();
    assert!(admin.starts_with("deprov_admin_"), "{admin_line}");
    assert!(!stderr.contains(admin), "admin token leaked into the logs");
    assert!(stderr.contains("stopped"), "{stderr}");

    // A second start finds the tenant and prints no new token.
    let (mut again, _) = start_serve(dir.path(), free_port()?)?;
    terminate(&again)?;
    again.wait()?;
    let stdout = read_to_end(again.stdout.take())?;
    assert!(!stdout.contains("SCIM token"), "{stdout}");
    assert!(!stdout.contains("Admin token"), "{stdout}");
    Ok(())
}

#[test]
fn tenant_create_prints_the_documented_json_and_refuses_a_duplicate() -> TestResult {
    let dir = tempfile::tempdir()?;
    let out = run(deprov(dir.path()).args(["tenant", "create", "acme", "--json"]))?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(json["tenant"], "acme");
    assert_eq!(json["scim_base_url"], "http://127.0.0.1:8080/scim/v2/acme");
    assert!(
        json["scim_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("deprov_scim_") && t.len() == 55)
    );

    let dup = run(deprov(dir.path()).args(["tenant", "create", "acme", "--json"]))?;
    assert!(!dup.status.success());
    let stderr = String::from_utf8_lossy(&dup.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("tenant acme already exists"), "{stderr}");

    let list = run(deprov(dir.path()).args(["tenant", "list", "--json"]))?;
    let json: serde_json::Value = serde_json::from_slice(&list.stdout)?;
    assert_eq!(json.as_array().map(Vec::len), Some(1));
    Ok(())
}

#[test]
fn public_url_shapes_the_printed_base_url() -> TestResult {
    let dir = tempfile::tempdir()?;
    let out = run(deprov(dir.path())
        .args(["tenant", "create", "acme", "--json"])
        .env("DEPROV_PUBLIC_URL", "https://deprov.example.com/"))?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        json["scim_base_url"],
        "https://deprov.example.com/scim/v2/acme"
    );
    Ok(())
}

#[test]
fn output_to_a_closed_pipe_ends_quietly() -> TestResult {
    // `deprov check-config --json | head -0`: the reader is gone before deprov writes.
    let dir = tempfile::tempdir()?;
    let (reader, writer) = std::io::pipe()?;
    drop(reader);
    let out = deprov(dir.path())
        .args(["check-config", "--json"])
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "{stderr}");
    Ok(())
}

#[test]
fn bad_input_ends_with_one_line_naming_the_problem() -> TestResult {
    let dir = tempfile::tempdir()?;
    /// Arguments, environment, and what the one error line must contain.
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["check-config"],
            vec![("DEPROV_DATABASE_URL", "mysql://x/y")],
            "database_url",
        ),
        (
            vec!["check-config"],
            vec![("DEPROV_DATABASE_URL", "postgres://")],
            "database_url",
        ),
        (
            vec!["check-config"],
            vec![("DEPROV_PUBLIC_URL", "::nope")],
            "public_url",
        ),
        (
            vec!["check-config"],
            vec![("DEPROV_LISTEN", "everywhere")],
            "listen",
        ),
        (
            vec!["--config", "/nonexistent/deprov.toml", "check-config"],
            vec![],
            "/nonexistent/deprov.toml",
        ),
        (vec!["tenant", "create", "Acme_Corp"], vec![], "no '_'"),
        (
            vec!["tenant", "token", "nosuch"],
            vec![],
            "no tenant named \"nosuch\"",
        ),
        (
            vec![
                "rp",
                "add",
                "--tenant",
                "nosuch",
                "--client-id",
                "c",
                "--backchannel-logout-uri",
                "http://169.254.169.254/",
            ],
            vec![],
            "--backchannel-logout-uri",
        ),
        (
            vec!["serve"],
            vec![("DEPROV_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")],
            "cannot open the database",
        ),
    ];
    for (args, env, expected) in cases {
        let mut cmd = deprov(dir.path());
        cmd.args(&args);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = run(&mut cmd)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} {env:?} succeeded");
        assert!(stderr.contains(expected), "{args:?} {env:?}: {stderr}");
        // Log lines may precede it; the error itself is one line, and the last.
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{args:?} {env:?}: {stderr}");
        assert!(
            stderr
                .trim()
                .lines()
                .last()
                .is_some_and(|l| l.starts_with("error: ")),
            "{args:?} {env:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    Ok(())
}

#[test]
fn rp_add_list_remove_round_trip_as_json() -> TestResult {
    let dir = tempfile::tempdir()?;
    run(deprov(dir.path()).args(["tenant", "create", "acme"]))?;
    let out = run(deprov(dir.path()).args([
        "rp",
        "add",
        "--tenant",
        "acme",
        "--client-id",
        "wiki",
        "--backchannel-logout-uri",
        "https://wiki.example.com/backchannel-logout",
        "--subject",
        "userName",
        "--group",
        "Engineering",
        "--json",
    ]))?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rp: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let id = rp["id"].as_str().ok_or("no id")?.to_owned();
    assert_eq!(rp["client_id"], "wiki");
    assert_eq!(rp["subject"], "userName");
    assert_eq!(rp["alg"], "RS256");
    assert_eq!(rp["groups"], serde_json::json!(["Engineering"]));

    // http and loopback targets need the development switch.
    let insecure = run(deprov(dir.path()).args([
        "rp",
        "add",
        "--tenant",
        "acme",
        "--client-id",
        "dev",
        "--backchannel-logout-uri",
        "http://127.0.0.1:9/bcl",
    ]))?;
    assert!(!insecure.status.success());
    let allowed = run(deprov(dir.path())
        .args([
            "rp",
            "add",
            "--tenant",
            "acme",
            "--client-id",
            "dev",
            "--backchannel-logout-uri",
            "http://127.0.0.1:9/bcl",
        ])
        .env("DEPROV_ALLOW_INSECURE_TARGETS", "true"))?;
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );

    let list = run(deprov(dir.path()).args(["rp", "list", "--tenant", "acme", "--json"]))?;
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout)?;
    assert_eq!(rows.as_array().map(Vec::len), Some(2));
    let shown = run(deprov(dir.path()).args(["rp", "show", "--tenant", "acme", "wiki", "--json"]))?;
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout)?;
    assert_eq!(shown["id"], rp["id"]);
    assert_eq!(
        shown["backchannel_logout_uri"],
        "https://wiki.example.com/backchannel-logout"
    );
    let removed =
        run(deprov(dir.path()).args(["rp", "remove", "--tenant", "acme", &id, "--json"]))?;
    assert!(removed.status.success());
    let list = run(deprov(dir.path()).args(["rp", "list", "--tenant", "acme", "--json"]))?;
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout)?;
    assert_eq!(rows.as_array().map(Vec::len), Some(1));
    Ok(())
}

#[test]
fn op_add_seals_secrets_names_the_flag_at_fault_and_round_trips() -> TestResult {
    let dir = tempfile::tempdir()?;
    run(deprov(dir.path()).args(["tenant", "create", "acme"]))?;
    let secret_file = dir.path().join("client-secret");
    std::fs::write(&secret_file, "op-client-secret-value\n")?;
    let secret_arg = secret_file.to_string_lossy().into_owned();

    // A missing setting is named by its flag.
    let missing = run(deprov(dir.path()).args([
        "op",
        "add",
        "--tenant",
        "acme",
        "--client-id",
        "wiki",
        "--client-secret-file",
        &secret_arg,
    ]))?;
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("--issuer"), "{stderr}");

    let out = run(deprov(dir.path()).args([
        "op",
        "add",
        "--tenant",
        "acme",
        "--kind",
        "oauth_revocation",
        "--client-id",
        "wiki",
        "--issuer",
        "https://sso.example.com/realms/acme",
        "--client-secret-file",
        &secret_arg,
        "--subject",
        "userName",
        "--group",
        "Engineering",
        "--json",
    ]))?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(added["kind"], "oauth_revocation");
    assert_eq!(added["config"]["client_secret"], "[sealed]");
    assert_eq!(added["config"]["auth_method"], "client_secret_basic");
    assert_eq!(added["groups"], serde_json::json!(["Engineering"]));
    assert!(
        added["grants_api_secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("deprov_grants_"))
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("op-client-secret-value"));

    let shown = run(deprov(dir.path()).args(["op", "show", "--tenant", "acme", "wiki", "--json"]))?;
    let text = String::from_utf8_lossy(&shown.stdout).into_owned();
    let shown: serde_json::Value = serde_json::from_str(&text)?;
    assert_eq!(shown["id"], added["id"]);
    assert!(shown.get("grants_api_secret").is_none(), "shown once only");
    assert!(!text.contains("op-client-secret-value"));
    let grants =
        run(deprov(dir.path()).args(["op", "grants", "--tenant", "acme", "wiki", "--json"]))?;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&grants.stdout)?,
        serde_json::json!([])
    );
    let removed =
        run(deprov(dir.path()).args(["op", "remove", "--tenant", "acme", "wiki", "--json"]))?;
    assert!(removed.status.success());
    let list = run(deprov(dir.path()).args(["op", "list", "--tenant", "acme", "--json"]))?;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&list.stdout)?,
        serde_json::json!([])
    );
    Ok(())
}

#[test]
fn tokens_can_be_issued_listed_and_revoked() -> TestResult {
    let dir = tempfile::tempdir()?;
    run(deprov(dir.path()).args(["tenant", "create", "acme"]))?;
    let issued =
        run(deprov(dir.path()).args(["tenant", "token", "acme", "--label", "okta", "--json"]))?;
    let issued: serde_json::Value = serde_json::from_slice(&issued.stdout)?;
    let id = issued["scim_token_id"].as_str().ok_or("no id")?.to_owned();
    let revoked = run(deprov(dir.path()).args(["tenant", "revoke-token", "acme", &id, "--json"]))?;
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let list = run(deprov(dir.path()).args(["tenant", "token", "acme", "--list", "--json"]))?;
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout)?;
    let rows = rows.as_array().ok_or("not a list")?;
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .any(|r| r["id"] == id.as_str() && !r["revoked_at"].is_null())
    );
    // No listing ever shows a token or its hash.
    let text = serde_json::to_string(rows)?;
    assert!(!text.contains(issued["scim_token"].as_str().unwrap_or("-")));
    assert!(!text.contains("token_hash"));
    Ok(())
}

/// The access log (`deprov::http`) is written at the default level, and its middleware is
/// left out below `info`: a level read before logging was set up would lose it silently.
#[test]
fn the_access_log_follows_the_log_level() -> TestResult {
    for (level, logged) in [(None, true), (Some("warn"), false)] {
        let dir = tempfile::tempdir()?;
        let env: Vec<(&str, &str)> = level.map(|l| ("DEPROV_LOG_LEVEL", l)).into_iter().collect();
        let (mut child, addr) = start_serve_with(dir.path(), free_port()?, &env)?;
        assert_eq!(http_get(addr, "/readyz")?.0, 200);
        terminate(&child)?;
        child.wait()?;
        let stderr = read_to_end(child.stderr.take())?;
        let line = stderr
            .lines()
            .any(|l| l.contains("deprov::http") && l.contains("GET /readyz"));
        assert_eq!(line, logged, "level {level:?}:\n{stderr}");
    }
    Ok(())
}

#[test]
fn json_logs_on_request() -> TestResult {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut child = deprov(dir.path())
        .arg("serve")
        .env("DEPROV_LISTEN", addr.to_string())
        .env("DEPROV_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().ok_or("no log line")??;
    let parsed: serde_json::Value = serde_json::from_str(&first)?;
    assert!(parsed.get("level").is_some(), "{first}");
    child.kill()?;
    child.wait()?;
    Ok(())
}

#[test]
fn demo_shows_a_verified_logout_and_the_trail_and_leaves_nothing_behind() -> TestResult {
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let out = run(deprov(dir.path()).arg("demo"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    for expected in [
        "\"op\":\"Replace\",\"path\":\"active\",\"value\":\"False\"",
        "received a back-channel logout",
        "\"typ\":\"logout+jwt\"",
        "\"http://schemas.openid.net/event/backchannel-logout\": {}",
        "\"aud\": \"sample-app\"",
        "\"sub\": \"00u1demoada\"",
        "(deactivated)",
        "to sample-app [backchannel_logout] delivered",
        " 200 ",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
    assert!(!stdout.contains("\"nonce\""), "{stdout}");
    // The temporary directory it names is gone, and nothing was written where it ran.
    let temp = stdout
        .lines()
        .next()
        .and_then(|l| l.rsplit(" in ").next())
        .ok_or("no directory named")?;
    assert!(!Path::new(temp).exists(), "{temp} is left behind");
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 0);
    // No secret of the demo tenant reaches the output.
    assert!(!stdout.contains("deprov_scim_"), "{stdout}");
    assert!(!stderr.contains("deprov_scim_"), "{stderr}");
    Ok(())
}

#[test]
fn healthcheck_succeeds_against_a_ready_deprov_and_fails_with_one_line_otherwise() -> TestResult {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let (mut child, addr) = start_serve(dir.path(), port)?;
    // The default probes /readyz on the listen address; 0.0.0.0 is probed on loopback.
    let ok = run(deprov(dir.path())
        .arg("healthcheck")
        .env("DEPROV_LISTEN", format!("0.0.0.0:{port}")))?;
    let ok_out = String::from_utf8_lossy(&ok.stdout).into_owned();
    let explicit =
        run(deprov(dir.path()).args(["healthcheck", "--url", &format!("http://{addr}/healthz")]))?;
    terminate(&child)?;
    child.wait()?;
    assert!(
        ok.status.success(),
        "{ok_out}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(ok_out.contains("/readyz answered 200"), "{ok_out}");
    assert!(explicit.status.success());

    // Nothing listens there any more.
    let down = run(deprov(dir.path())
        .arg("healthcheck")
        .env("DEPROV_LISTEN", addr.to_string()))?;
    assert!(!down.status.success());
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    Ok(())
}
