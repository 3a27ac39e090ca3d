//! "Send a test logout": one logout token for a synthetic subject, signed exactly as a
//! delivery's would be (the relying party's algorithm, pinned key, issuer and audience),
//! POSTed once through the guarded outbound client. Not a delivery: nothing is enqueued,
//! retried or recorded in an event trail; the operator sees the answer at once.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use deprov_core::SigningAlgorithm;
use deprov_revocation::channels::backchannel_logout::post_logout_token;
use deprov_revocation::discovery;
use deprov_revocation::keys::KeyRing;
use deprov_revocation::logout_token::{self, LogoutTokenRequest, TokenLifetime};
use deprov_revocation::outbound::http::OutboundClient;
use deprov_store::targets::RelyingParty;

use crate::config::Config;

/// The `sub` (and `sid`, for relying parties that require one) of test tokens: no real
/// user has it, so a receiver that looks it up ends no session.
pub const TEST_SUBJECT: &str = "deprov-console-test";

/// What the test logout got back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub status: Option<u16>,
    pub latency_ms: f64,
    pub body_excerpt: Option<String>,
    /// Why nothing was sent or nothing came back.
    pub error: Option<String>,
}

impl Outcome {
    /// 200 and 204 end a delivery; the same answers pass a test.
    pub fn success(&self) -> bool {
        matches!(self.status, Some(200 | 204))
    }

    fn refused(error: String) -> Self {
        Self {
            error: Some(error),
            ..Self::default()
        }
    }
}

/// Signs and sends one test logout to `rp`.
pub async fn send(config: &Config, keys: Arc<KeyRing>, rp: &RelyingParty) -> Outcome {
    let alg = match SigningAlgorithm::parse(&rp.config.alg) {
        Ok(a) => a,
        Err(e) => return Outcome::refused(e.to_string()),
    };
    let key = match keys.signer(alg, rp.config.kid.as_deref()).await {
        Ok(k) => k,
        Err(e) => return Outcome::refused(format!("signing key: {e}")),
    };
    let issuer = rp
        .config
        .issuer
        .clone()
        .unwrap_or_else(|| discovery::issuer(&config.public_url()));
    let request = LogoutTokenRequest {
        issuer: &issuer,
        audience: &rp.client_id,
        subject: Some(TEST_SUBJECT),
        session_id: rp.config.require_sid.then_some(TEST_SUBJECT),
        require_sid: rp.config.require_sid,
        lifetime: TokenLifetime::MAX,
    };
    let token = match logout_token::mint(&key, &request, SystemTime::now()) {
        Ok(t) => t,
        Err(e) => return Outcome::refused(e.to_string()),
    };
    let client = match OutboundClient::new(
        config.address_policy(),
        Duration::from_secs(config.delivery.timeout_secs),
    ) {
        Ok(c) => c,
        Err(e) => return Outcome::refused(e.to_string()),
    };
    match post_logout_token(&client, &rp.config.backchannel_logout_uri, &token.jwt).await {
        Ok(exchange) => Outcome {
            status: exchange.status,
            latency_ms: exchange.latency.as_secs_f64() * 1000.0,
            body_excerpt: exchange.body_excerpt,
            error: exchange.error,
        },
        Err(refused) => Outcome::refused(refused.to_string()),
    }
}
