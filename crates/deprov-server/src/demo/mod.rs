//! `deprov demo`: the whole path, for a newcomer, in a few seconds.
//!
//! In a temporary directory it starts deprov on the embedded database (127.0.0.1, a free
//! port) and a sample application that receives and verifies back-channel logouts
//! ([`sample_app`]); creates a tenant and registers the application through the same
//! functions as `deprov tenant create` and `deprov rp add`; then, over real HTTP, creates
//! a user with SCIM and deactivates it the way Microsoft Entra ID does. It prints what the
//! application received and the event's trail, stops everything in order and removes the
//! directory. Any failure, or no logout within [`WAIT`], ends it with an error.

pub mod sample_app;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use deprov_core::{Secret, TenantName};
use deprov_store::{DatabaseLocation, Store};
use serde_json::{Value, json};

use crate::admin::views::RelyingPartyRequest;
use crate::app::Running;
use crate::cli::{print_trail, register_rp, scim_base_url};
use crate::config::Config;
use sample_app::{Received, SampleApp};

/// How long each wait (a logout to arrive, its delivery to be recorded) may take.
const WAIT: Duration = Duration::from_secs(20);

const TENANT: &str = "demo";
const CLIENT_ID: &str = "sample-app";
const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Runs the demo; `Ok` only when the logout was received, verified and recorded.
pub async fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("deprov-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    println!(
        "deprov demo: a throwaway deprov and a sample application, in {}\n",
        dir.path().display()
    );
    let result = with_services(dir.path()).await;
    let shown = dir.path().display().to_string();
    dir.close()
        .with_context(|| format!("cannot remove {shown}"))?;
    result?;
    println!(
        "\nDone in {:.1} s. Everything is stopped and {shown} is removed.",
        started.elapsed().as_secs_f64()
    );
    println!(
        "Next: `deprov serve` (README, \"Quick start\"), then connect your identity provider \
         (docs/okta.md, docs/entra.md) and your applications (docs/receiving-logouts.md)."
    );
    Ok(())
}

/// Starts deprov and the sample application, runs the story, and stops both in order
/// whatever the story's outcome.
async fn with_services(dir: &std::path::Path) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let config = Arc::new(demo_config(dir, listener.local_addr()?)?);
    let public = config.public_url();
    let store = Store::open(&DatabaseLocation::Sqlite(dir.join("deprov.db")))
        .await
        .context("cannot open the demo database")?;
    let tenant = store
        .create_tenant(&TenantName::parse(TENANT)?, "demo")
        .await?;
    let (app, received) = SampleApp::start(
        &public,
        &format!("{public}/.well-known/jwks.json"),
        CLIENT_ID,
        http.clone(),
    )?;
    let registered = register_rp(
        &store,
        &config,
        TENANT,
        RelyingPartyRequest {
            client_id: CLIENT_ID.to_owned(),
            backchannel_logout_uri: app.logout_url.clone(),
            subject: "externalId|id".to_owned(),
            groups: vec![],
            alg: "RS256".to_owned(),
            require_sid: false,
            issuer: None,
            kid: None,
            enabled: true,
        },
    )
    .await;
    let running = match registered {
        Ok(_) => Running::start(config.clone(), store.clone(), listener).await,
        Err(e) => Err(e),
    };
    let running = match running {
        Ok(running) => running,
        Err(e) => {
            app.stop().await;
            let _ = store.close().await;
            return Err(e);
        }
    };
    println!("1. Started deprov at {public} (SQLite in the temporary directory)");
    println!(
        "   and a sample application whose back-channel logout endpoint is {}",
        app.logout_url
    );
    println!(
        "2. Created tenant {TENANT:?} and registered the application as relying party \
         {CLIENT_ID:?}\n   (like `deprov tenant create` and `deprov rp add`)"
    );
    let story = Story {
        http: &http,
        base: scim_base_url(&config, TENANT),
        token: tenant.token.token.expose().to_owned(),
        public: &public,
        store: &store,
    };
    let result = story.tell(received).await;
    // Stop in order: deprov (requests, worker, database), then the application.
    let stopped = running.shutdown().await;
    app.stop().await;
    result?;
    stopped
}

fn demo_config(dir: &std::path::Path, listen: std::net::SocketAddr) -> anyhow::Result<Config> {
    let mut kek = [0u8; 32];
    getrandom::fill(&mut kek).map_err(|e| anyhow!("no randomness for the demo's key: {e}"))?;
    Ok(Config {
        listen,
        public_url: None,
        database_url: Secret::new(format!("sqlite://{}", dir.join("deprov.db").display())),
        // The sample application listens on http://127.0.0.1.
        allow_insecure_targets: true,
        key_encryption_key: Some(Secret::new(
            base64::engine::general_purpose::STANDARD.encode(kek),
        )),
        shutdown_timeout_secs: 5,
        ..Config::default()
    })
}

/// The SCIM story and what the application saw.
struct Story<'a> {
    http: &'a reqwest::Client,
    base: String,
    token: String,
    public: &'a str,
    store: &'a Store,
}

impl Story<'_> {
    async fn scim(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<(u16, Value)> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await
            .with_context(|| format!("SCIM {path}: no answer"))?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn tell(
        &self,
        mut received: tokio::sync::mpsc::UnboundedReceiver<Received>,
    ) -> anyhow::Result<()> {
        let user = json!({
            "schemas": [USER_URN],
            "userName": "ada.lovelace@example.com",
            "externalId": "00u1demoada",
            "name": { "givenName": "Ada", "familyName": "Lovelace" },
            "emails": [{ "value": "ada.lovelace@example.com", "type": "work", "primary": true }],
            "active": true,
        });
        let (status, created) = self.scim(reqwest::Method::POST, "/Users", user).await?;
        if status != 201 {
            bail!("SCIM POST /Users answered {status}: {created}");
        }
        let id = created["id"]
            .as_str()
            .ok_or_else(|| anyhow!("SCIM POST /Users answered without an id: {created}"))?
            .to_owned();
        println!(
            "3. SCIM POST {}/Users (userName ada.lovelace@example.com, externalId 00u1demoada)\n   -> {status}, id {id}",
            self.base
        );
        let patch = json!({
            "schemas": [PATCH_URN],
            "Operations": [{ "op": "Replace", "path": "active", "value": "False" }],
        });
        let sent = Instant::now();
        let (status, answer) = self
            .scim(reqwest::Method::PATCH, &format!("/Users/{id}"), patch)
            .await?;
        if !matches!(status, 200 | 204) {
            bail!("SCIM PATCH /Users/{id} answered {status}: {answer}");
        }
        println!(
            "4. SCIM PATCH /Users/{id}, as Microsoft Entra ID deactivates:\n   \
             {{\"op\":\"Replace\",\"path\":\"active\",\"value\":\"False\"}} -> {status}"
        );
        let verified = match tokio::time::timeout(WAIT, received.recv()).await {
            Err(_) => bail!(
                "the sample application received no logout within {} s",
                WAIT.as_secs()
            ),
            Ok(None) => bail!("the sample application stopped"),
            Ok(Some(Received::Refused(why))) => {
                bail!("the sample application refused the logout token: {why}")
            }
            Ok(Some(Received::Accepted(v))) => v,
        };
        let after = sent.elapsed();
        println!(
            "5. The application received a back-channel logout {} ms after the PATCH was sent, and verified it:",
            after.as_millis()
        );
        println!(
            "   signature ({} with kid {}) against {}/.well-known/jwks.json;",
            verified
                .header
                .get("alg")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            verified
                .header
                .get("kid")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            self.public
        );
        println!(
            "   typ logout+jwt, iss, aud {CLIENT_ID:?}, iat/exp, the events claim, no nonce, a jti not seen before."
        );
        println!("   header: {}", Value::Object(verified.header.clone()));
        let claims = serde_json::to_string_pretty(&Value::Object(verified.claims.clone()))?;
        println!("   claims: {}", claims.replace('\n', "\n   "));
        println!(
            "   It ends the sessions of sub {:?} and answers 200.",
            verified
                .sub
                .as_deref()
                .or(verified.sid.as_deref())
                .unwrap_or("")
        );
        let trail = self.delivered_trail().await?;
        println!(
            "6. The event's trail (`deprov events show {}`):",
            trail.event.id
        );
        print_trail(&trail, "   ");
        Ok(())
    }

    /// The newest event's trail once every delivery of it is recorded as delivered.
    async fn delivered_trail(&self) -> anyhow::Result<deprov_store::outbox::EventTrail> {
        let deadline = Instant::now() + WAIT;
        loop {
            let (_, events) = self.store.events_page(None, 1, 0).await?;
            let event = events
                .first()
                .ok_or_else(|| anyhow!("the deactivation recorded no event"))?;
            let trail = self
                .store
                .event_trail(&event.id)
                .await?
                .ok_or_else(|| anyhow!("event {} has no trail", event.id))?;
            let done = !trail.deliveries.is_empty()
                && trail
                    .deliveries
                    .iter()
                    .all(|d| d.delivery.status == deprov_store::outbox::DELIVERED);
            if done {
                return Ok(trail);
            }
            if Instant::now() > deadline {
                bail!(
                    "the delivery of event {} was not recorded as delivered within {} s",
                    event.id,
                    WAIT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
