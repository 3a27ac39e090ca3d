//! RFC 7009 revocation of the grants applications registered with deprov.
//!
//! A target of kind `oauth_revocation` is **one client registered at one OpenID Provider**
//! (`targets.client_id` is its client_id there): RFC 7009 §2.1 lets a client revoke only
//! tokens issued to it, so deprov must authenticate as the very client each token was
//! issued to. An application that uses several clients, or several OPs, registers several
//! targets. The same target carries the credentials that application uses to register
//! grants with deprov (`api_secret_hash`, `api_public_key`), distinct from the credentials
//! deprov uses at the OP.
//!
//! # One delivery per (event, client), grant by grant
//!
//! The fan-out writes one delivery per de-provisioning event and target, as for relying
//! parties. Each attempt revokes **every grant of the user held for that client at the
//! time of the attempt**, one RFC 7009 request per grant:
//!
//! - 200 (RFC 7009 §2.2: also for a token the OP no longer knows) → the grant is deleted
//!   at once. A retry therefore only re-sends what is still outstanding: progress
//!   survives partial failure, and a crash mid-attempt repeats at most idempotent
//!   revocations.
//! - 4xx other than 408/429 (`unsupported_token_type` §2.2.1, `invalid_client`…) →
//!   permanent for that grant: its error is kept on the grant and in the attempt.
//! - 408, 429, 5xx (§2.2.1: 503 means the token was *not* revoked) and transport errors →
//!   the grant stays outstanding.
//!
//! The delivery then settles on the worst outcome: any outstanding grant → retry (with the
//! largest `Retry-After` any response asked for); else any permanent failure → dead letter,
//! visible and re-drivable; else delivered. The attempt records the deciding HTTP status
//! and one line per grant (grant id, status, start of the OP's answer — never the token).
//!
//! One attempt stops at the first retryable failure (the OP is down or overloaded: the
//! remaining grants would fail alike), after 25 grants, or after 20 s, so that it ends well
//! inside the worker's lease; the rest is retried by the next attempt.
//!
//! Why not one delivery per grant: grants are registered by applications at any time,
//! including between the SCIM event and the attempt (an application that logged the user
//! in a second before the deactivation). Reading them at attempt time catches those, and
//! the operator sees one delivery per OP client in the event's trail, as for an RP.
//!
//! Grants registered after the delivery is delivered are not revoked by it; the grants API
//! refuses grants for inactive users for that reason.

use std::sync::Arc;
use std::time::Duration;

use deprov_store::Store;
use deprov_store::outbox::Claimed;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::client_auth::{self, ClientAuthMethod, ClientAuthSpec};
use super::op_metadata::{MetadataCache, MetadataError};
use crate::keys::{KeyEncryptionKey, open_grant};
use crate::outbound::http::{Exchange, OutboundClient};
use crate::worker::{Channel, Performed, Verdict, classify};

/// The settings of an `oauth_revocation` target, stored as `targets.config`. Secrets are
/// sealed (`crate::keys::sealed`); `Debug` shows none of them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthRevocationConfig {
    /// The OP's issuer identifier.
    pub issuer: String,
    /// The metadata document to read instead of discovering from the issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
    /// The revocation endpoint, when the OP publishes no metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// How deprov authenticates as the client at the OP.
    pub auth_method: ClientAuthMethod,
    /// Sealed client secret (`client_secret_basic` / `client_secret_post`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Sealed PKCS#8 PEM private key (`private_key_jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Textual `SubjectMapping`: how the application names users when it registers grants.
    pub subject: String,
    /// SHA-256 (hex) of the secret the application authenticates with to the grants API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_secret_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_secret_hint: Option<String>,
    /// PEM public key (SPKI) verifying the application's `private_key_jwt` assertions to
    /// the grants API (RFC 7523).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_public_key_alg: Option<String>,
}

impl std::fmt::Debug for OAuthRevocationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OAuthRevocationConfig({})", self.redacted())
    }
}

impl OAuthRevocationConfig {
    pub fn from_value(value: &Value) -> Result<Self, String> {
        serde_json::from_value(value.clone())
            .map_err(|e| format!("unreadable oauth_revocation settings: {e}"))
    }

    /// What operators and the audit log see: secrets replaced by whether they are set.
    pub fn redacted(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "metadata_url": self.metadata_url,
            "revocation_endpoint": self.revocation_endpoint,
            "auth_method": self.auth_method.as_str(),
            "client_secret": self.client_secret.as_ref().map(|_| "[sealed]"),
            "private_key": self.private_key.as_ref().map(|_| "[sealed]"),
            "private_key_alg": self.private_key_alg,
            "kid": self.kid,
            "subject": self.subject,
            "api_secret": self.api_secret_hint,
            "api_public_key_alg": self.api_public_key_alg,
            "grants_api_auth": self.grants_api_auth(),
        })
    }

    /// The ways the application may authenticate to the grants API.
    pub fn grants_api_auth(&self) -> Vec<&'static str> {
        let mut ways = Vec::new();
        if self.api_secret_hash.is_some() {
            ways.push("client_secret_basic");
            ways.push("client_secret_post");
        }
        if self.api_public_key.is_some() {
            ways.push("private_key_jwt");
        }
        ways
    }

    fn auth_spec<'a>(&'a self, client_id: &'a str, tenant_id: &'a str) -> ClientAuthSpec<'a> {
        ClientAuthSpec {
            method: self.auth_method,
            client_id,
            tenant_id,
            sealed_secret: self.client_secret.as_deref(),
            sealed_private_key: self.private_key.as_deref(),
            alg: self.private_key_alg.as_deref(),
            kid: self.kid.as_deref(),
        }
    }
}

/// RFC 7009 revocation channel.
#[derive(Debug)]
pub struct OAuthRevocation {
    store: Store,
    kek: KeyEncryptionKey,
    client: OutboundClient,
    metadata: Arc<MetadataCache>,
}

/// The most grants one attempt revokes; the rest wait for the next attempt.
const MAX_GRANTS_PER_ATTEMPT: usize = 25;
/// No new revocation request is started after this much of an attempt (the worker's lease is
/// six HTTP timeouts; one request in flight may still take one timeout).
const ATTEMPT_BUDGET: Duration = Duration::from_secs(20);

/// How one grant's revocation ended.
enum GrantOutcome {
    Revoked,
    Permanent(String, Option<u16>),
    Transient(String, Option<u16>, Option<Duration>),
}

impl OAuthRevocation {
    pub fn new(
        store: Store,
        kek: KeyEncryptionKey,
        client: OutboundClient,
        metadata: Arc<MetadataCache>,
    ) -> Self {
        Self {
            store,
            kek,
            client,
            metadata,
        }
    }

    async fn deliver(&self, claimed: &Claimed) -> Performed {
        let Some(target) = &claimed.target else {
            return Performed::Cancel("the OP client was removed".to_owned());
        };
        let config = match OAuthRevocationConfig::from_value(&target.config) {
            Ok(c) => c,
            Err(e) => return Performed::Refused(e),
        };
        let grants = match self
            .store
            .user_grants(&target.id, &claimed.event.user_id)
            .await
        {
            Ok(g) => g,
            Err(e) => return transient(format!("reading the grants: {e}")),
        };
        if grants.is_empty() {
            return Performed::NothingToDo(format!(
                "no grant of this user is held for client {}",
                target.client_id
            ));
        }
        let endpoint = match &config.revocation_endpoint {
            Some(e) => e.clone(),
            None => match self
                .metadata
                .get(&config.issuer, config.metadata_url.as_deref())
                .await
            {
                Ok(doc) => match doc.get("revocation_endpoint").and_then(Value::as_str) {
                    Some(e) => e.to_owned(),
                    None => {
                        return Performed::Refused(format!(
                            "the metadata of {} has no revocation_endpoint (RFC 8414 §2): \
                             the OP does not support RFC 7009",
                            config.issuer
                        ));
                    }
                },
                Err(MetadataError::Transient(ex)) => {
                    let mut ex = ex;
                    ex.error = Some(format!(
                        "fetching the OP metadata: {}",
                        ex.error
                            .clone()
                            .unwrap_or_else(|| format!("HTTP {}", ex.status.unwrap_or_default()))
                    ));
                    ex.status = None;
                    return Performed::Answered(ex);
                }
                Err(MetadataError::Permanent(e)) => return Performed::Refused(e),
            },
        };
        let total = grants.len();
        let mut revoked = 0usize;
        let mut lines: Vec<String> = Vec::new();
        let mut permanent: Option<u16> = None;
        let mut transient_status: Option<Option<u16>> = None;
        let mut retry_after: Option<Duration> = None;
        let mut latency = Duration::ZERO;
        let attempt_started = std::time::Instant::now();
        let mut left = 0usize;
        for (i, grant) in grants.iter().enumerate() {
            // Bound one attempt well inside the worker's lease: a user with many grants, or
            // an OP that has started failing, is continued by the next attempt.
            if i >= MAX_GRANTS_PER_ATTEMPT
                || attempt_started.elapsed() >= ATTEMPT_BUDGET
                || transient_status.is_some()
            {
                left = grants.len() - i;
                break;
            }
            let started = std::time::Instant::now();
            let outcome = self
                .revoke_one(
                    &config,
                    &target.client_id,
                    &target.tenant_id,
                    &endpoint,
                    grant,
                )
                .await;
            latency += started.elapsed();
            match outcome {
                GrantOutcome::Revoked => {
                    revoked += 1;
                    lines.push(format!("grant {}: revoked", grant.id));
                    if let Err(e) = self.store.delete_grant(&target.id, &grant.id).await {
                        // Revoked at the OP; deleting it again next time is harmless.
                        tracing::warn!(grant = %grant.id, error = %e, "cannot delete a revoked grant");
                    }
                }
                GrantOutcome::Permanent(what, status) => {
                    lines.push(format!("grant {}{}: {what}", grant.id, hint_of(grant)));
                    let _ = self.store.note_grant_attempt(&grant.id, Some(&what)).await;
                    permanent = permanent.or(status).or(Some(400));
                }
                GrantOutcome::Transient(what, status, after) => {
                    lines.push(format!("grant {}{}: {what}", grant.id, hint_of(grant)));
                    let _ = self.store.note_grant_attempt(&grant.id, Some(&what)).await;
                    if transient_status.is_none() {
                        transient_status = Some(status);
                    }
                    retry_after = retry_after.max(after);
                }
            }
        }
        if left > 0 {
            lines.push(format!("{left} grant(s) left for the next attempt"));
            if transient_status.is_none() {
                transient_status = Some(None);
            }
        }
        // Failures first: the worker's `last_error` (what lists show) is the start of this.
        let (revoked_lines, failed_lines): (Vec<&String>, Vec<&String>) =
            lines.iter().partition(|l| l.ends_with(": revoked"));
        let summary = failed_lines
            .iter()
            .map(|l| l.as_str())
            .chain(std::iter::once(
                format!("revoked {revoked} of {total} grant(s) at {endpoint}").as_str(),
            ))
            .chain(revoked_lines.iter().map(|l| l.as_str()))
            .collect::<Vec<_>>()
            .join("\n");
        let excerpt: String = summary
            .chars()
            .take(crate::outbound::http::EXCERPT_BYTES)
            .collect();
        let exchange = match (transient_status, permanent) {
            (Some(status), _) => Exchange {
                status,
                retry_after,
                error: status.is_none().then(|| {
                    lines
                        .iter()
                        .find(|l| !l.ends_with(": revoked"))
                        .cloned()
                        .unwrap_or_default()
                }),
                body_excerpt: Some(excerpt),
                latency,
            },
            (None, Some(status)) => Exchange {
                status: Some(status),
                retry_after: None,
                error: None,
                body_excerpt: Some(excerpt),
                latency,
            },
            (None, None) => Exchange {
                status: Some(200),
                retry_after: None,
                error: None,
                body_excerpt: Some(excerpt),
                latency,
            },
        };
        Performed::Answered(exchange)
    }

    /// RFC 7009 §2.1: `POST` `application/x-www-form-urlencoded` with `token`, the
    /// optional `token_type_hint`, and the client's authentication.
    async fn revoke_one(
        &self,
        config: &OAuthRevocationConfig,
        client_id: &str,
        tenant_id: &str,
        endpoint: &str,
        grant: &deprov_store::entity::grant::Model,
    ) -> GrantOutcome {
        let token = match open_grant(&self.kek, tenant_id, &grant.id, &grant.token_sealed) {
            Ok(t) => t,
            Err(_) => {
                return GrantOutcome::Permanent(
                    "cannot open the sealed token (key-encryption key changed?)".to_owned(),
                    None,
                );
            }
        };
        let creds = match client_auth::credentials(
            &self.kek,
            config.auth_spec(client_id, tenant_id),
            &config.issuer,
        ) {
            Ok(c) => c,
            Err(e) => return GrantOutcome::Permanent(e, None),
        };
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", &token);
            if let Some(hint) = &grant.token_type_hint {
                form.append_pair("token_type_hint", hint);
            }
            for (name, value) in &creds.form {
                form.append_pair(name, value);
            }
            zeroize::Zeroizing::new(form.finish())
        };
        let authorization = creds.authorization.as_ref().map(|a| a.to_string());
        let sent = self
            .client
            .send(endpoint, |client, url| {
                let mut req = client
                    .post(url)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .header(reqwest::header::ACCEPT, "application/json")
                    .body(body.to_string());
                if let Some(a) = authorization {
                    req = req.header(reqwest::header::AUTHORIZATION, a);
                }
                req
            })
            .await;
        let ex = match sent {
            Ok(ex) => ex,
            Err(refused) => return GrantOutcome::Permanent(refused.to_string(), None),
        };
        let answer = || match (ex.status, &ex.error) {
            (Some(s), _) => {
                let body: String = ex
                    .body_excerpt
                    .as_deref()
                    .unwrap_or("")
                    .trim()
                    .chars()
                    .take(300)
                    .collect();
                if body.is_empty() {
                    format!("HTTP {s}")
                } else {
                    format!("HTTP {s}: {body}")
                }
            }
            (None, Some(e)) => e.clone(),
            (None, None) => "no answer".to_owned(),
        };
        match classify(ex.status) {
            Verdict::Delivered => GrantOutcome::Revoked,
            Verdict::Permanent => GrantOutcome::Permanent(answer(), ex.status),
            Verdict::Retryable => GrantOutcome::Transient(answer(), ex.status, ex.retry_after),
        }
    }
}

/// ` (refresh_token)`: which kind of token a trail line is about.
fn hint_of(grant: &deprov_store::entity::grant::Model) -> String {
    grant
        .token_type_hint
        .as_deref()
        .map(|h| format!(" ({h})"))
        .unwrap_or_default()
}

fn transient(error: String) -> Performed {
    Performed::Answered(Exchange {
        status: None,
        retry_after: None,
        body_excerpt: None,
        error: Some(error),
        latency: Duration::ZERO,
    })
}

impl Channel for OAuthRevocation {
    fn perform<'a>(
        &'a self,
        claimed: &'a Claimed,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Performed> + Send + 'a>> {
        Box::pin(self.deliver(claimed))
    }
}
