//! The demo's sample application: a relying party's back-channel logout endpoint, as the
//! application owner's guide (`docs/receiving-logouts.md`) describes it.
//!
//! `POST /backchannel-logout` takes `application/x-www-form-urlencoded` with a
//! `logout_token`, fetches the issuer's JWKS, validates the token strictly
//! ([`verify_logout_token`]), refuses a `jti` it has seen, and answers 200 with
//! `Cache-Control: no-store` — or 400 with an OAuth-style error body (Back-Channel Logout
//! 1.0 §2.8). Every outcome is also sent to the demo over a channel.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use deprov_revocation::keys::Jwks;
use deprov_revocation::receiver::{
    Expectations, Rejected, VerifiedLogout, logout_token_from_form, verify_logout_token,
};
use serde_json::json;
use tokio::sync::mpsc;

/// The path the application receives logouts on.
pub const LOGOUT_PATH: &str = "/backchannel-logout";

/// What the application saw.
#[derive(Debug)]
pub enum Received {
    Accepted(Box<VerifiedLogout>),
    Refused(String),
}

/// What the application trusts, and where it reports.
#[derive(Debug)]
struct State {
    issuer: String,
    jwks_uri: String,
    client_id: String,
    http: reqwest::Client,
    seen_jtis: Mutex<HashSet<String>>,
    report: mpsc::UnboundedSender<Received>,
}

/// The running application.
#[derive(Debug)]
pub struct SampleApp {
    pub logout_url: String,
    server: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl SampleApp {
    /// Starts on 127.0.0.1:0; it trusts `issuer` and reads keys from `jwks_uri`.
    pub fn start(
        issuer: &str,
        jwks_uri: &str,
        client_id: &str,
        http: reqwest::Client,
    ) -> anyhow::Result<(Self, mpsc::UnboundedReceiver<Received>)> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let logout_url = format!("http://{}{LOGOUT_PATH}", listener.local_addr()?);
        let (report, received) = mpsc::unbounded_channel();
        let state = web::Data::new(State {
            issuer: issuer.to_owned(),
            jwks_uri: jwks_uri.to_owned(),
            client_id: client_id.to_owned(),
            http,
            seen_jtis: Mutex::default(),
            report,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(64 * 1024))
                .route(LOGOUT_PATH, web::post().to(backchannel_logout))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(2)
        .listen(listener)?
        .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        Ok((
            Self {
                logout_url,
                server: handle,
                task,
            },
            received,
        ))
    }

    pub async fn stop(self) {
        self.server.stop(true).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

/// §2.8: "If the logout request was successful, the RP MUST respond with HTTP 200 OK …
/// If the request failed validation or the logout failed, the RP MUST respond with 400."
async fn backchannel_logout(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    match accept(&req, &body, &state).await {
        Ok(verified) => {
            // A real application ends the sessions of `sub` (and/or `sid`) here.
            let _ = state.report.send(Received::Accepted(Box::new(verified)));
            HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish()
        }
        Err(Rejected(why)) => {
            let _ = state.report.send(Received::Refused(why.clone()));
            HttpResponse::BadRequest()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(json!({ "error": "invalid_request", "error_description": why }))
        }
    }
}

async fn accept(req: &HttpRequest, body: &[u8], state: &State) -> Result<VerifiedLogout, Rejected> {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(Rejected(
            "the body must be application/x-www-form-urlencoded".to_owned(),
        ));
    }
    let token = logout_token_from_form(body)
        .ok_or_else(|| Rejected("no logout_token in the form".to_owned()))?;
    // A real application caches the JWKS and fetches it again for an unknown kid.
    let jwks: Jwks = async {
        state
            .http
            .get(&state.jwks_uri)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }
    .await
    .map_err(|e: reqwest::Error| Rejected(format!("cannot fetch the issuer's JWKS: {e}")))?;
    let verified = verify_logout_token(
        &token,
        &jwks,
        &Expectations {
            issuer: &state.issuer,
            client_id: &state.client_id,
            leeway: Duration::from_secs(30),
        },
        SystemTime::now(),
    )?;
    // A replayed token is refused (§2.6 step 7 lets an RP reject a jti it has seen). A real
    // application forgets a jti after its exp.
    let fresh = state
        .seen_jtis
        .lock()
        .map(|mut seen| seen.insert(verified.jti.clone()))
        .unwrap_or(false);
    if !fresh {
        return Err(Rejected(format!("jti {} was already used", verified.jti)));
    }
    Ok(verified)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    /// Refusals answer 400 with an OAuth error body and are reported to the demo, which
    /// then fails with the reason.
    #[tokio::test]
    async fn a_bad_request_is_refused_with_400_and_reported() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        // Nothing listens on port 9: no key can be fetched, and none is needed to refuse these.
        let (app, mut received) = SampleApp::start(
            "http://127.0.0.1:9",
            "http://127.0.0.1:9/.well-known/jwks.json",
            "sample-app",
            http.clone(),
        )
        .unwrap();
        for (content_type, body, why) in [
            ("application/json", "{}", "x-www-form-urlencoded"),
            (
                "application/x-www-form-urlencoded",
                "other=1",
                "no logout_token",
            ),
        ] {
            let res = http
                .post(&app.logout_url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 400);
            assert_eq!(
                res.headers()
                    .get("cache-control")
                    .unwrap()
                    .to_str()
                    .unwrap(),
                "no-store"
            );
            let answer: serde_json::Value = res.json().await.unwrap();
            assert_eq!(answer["error"], "invalid_request");
            match received.recv().await {
                Some(Received::Refused(reason)) => assert!(reason.contains(why), "{reason}"),
                other => panic!("{other:?}"),
            }
        }
        app.stop().await;
    }
}
