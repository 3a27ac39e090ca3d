//! Authorization server metadata, fetched and cached: where an OpenID Provider's
//! `revocation_endpoint` is.
//!
//! Tried in order (unless the target names its metadata URL):
//! 1. OpenID Connect Discovery 1.0 §4: `{issuer}/.well-known/openid-configuration`;
//! 2. RFC 8414 §3: `/.well-known/oauth-authorization-server` inserted between the host and
//!    the issuer's path.
//!
//! The document's `issuer` must equal the configured issuer (RFC 8414 §3.3; OIDC Discovery
//! §4.3), or it is refused: a document that claims another issuer could redirect
//! revocations (and the client credentials sent with them) elsewhere.
//!
//! Successful documents are cached for `ttl` per metadata URL; failures are not cached, so
//! an OP that was down is asked again on the next attempt. Fetches go through the guarded
//! outbound client like every other call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::outbound::http::{Exchange, OutboundClient};
use crate::worker::{Verdict, classify};

/// The largest metadata document read.
const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Why metadata is unavailable.
#[derive(Debug, Clone)]
pub enum MetadataError {
    /// Try again later (transport failure, 5xx, 429): the exchange that failed.
    Transient(Exchange),
    /// Will not get better by waiting (no such document, wrong issuer, not JSON).
    Permanent(String),
}

#[derive(Debug)]
pub struct MetadataCache {
    client: OutboundClient,
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Arc<Value>)>>,
}

/// The metadata URLs to try for an issuer, per OIDC Discovery §4 and RFC 8414 §3.1.
pub fn metadata_urls(issuer: &str) -> Vec<String> {
    let issuer = issuer.trim_end_matches('/');
    let mut urls = vec![format!("{issuer}/.well-known/openid-configuration")];
    if let Ok(url) = url::Url::parse(issuer) {
        let path = url.path().trim_end_matches('/');
        let origin = url.origin().ascii_serialization();
        urls.push(format!(
            "{origin}/.well-known/oauth-authorization-server{path}"
        ));
    }
    urls
}

impl MetadataCache {
    pub fn new(client: OutboundClient, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The metadata of `issuer`, from `metadata_url` when given, else discovered.
    pub async fn get(
        &self,
        issuer: &str,
        metadata_url: Option<&str>,
    ) -> Result<Arc<Value>, MetadataError> {
        let key = format!("{issuer}\n{}", metadata_url.unwrap_or(""));
        if let Ok(entries) = self.entries.lock()
            && let Some((at, doc)) = entries.get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(doc.clone());
        }
        let urls = match metadata_url {
            Some(u) => vec![u.to_owned()],
            None => metadata_urls(issuer),
        };
        let mut last = MetadataError::Permanent("no metadata URL".to_owned());
        for url in urls {
            match self.fetch(issuer, &url).await {
                Ok(doc) => {
                    let doc = Arc::new(doc);
                    if let Ok(mut entries) = self.entries.lock() {
                        entries.insert(key, (Instant::now(), doc.clone()));
                    }
                    return Ok(doc);
                }
                // The OP is unreachable or failing: asking the other URL will not help.
                Err(e @ MetadataError::Transient(_)) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Forgets cached metadata (an operator changed the target, or a test restarts an OP).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }

    async fn fetch(&self, issuer: &str, url: &str) -> Result<Value, MetadataError> {
        let exchange = self
            .client
            .send_reading(url, MAX_METADATA_BYTES, |client, url| {
                client
                    .get(url)
                    .header(reqwest::header::ACCEPT, "application/json")
            })
            .await
            .map_err(|e| MetadataError::Permanent(format!("metadata URL refused: {e}")))?;
        match classify(exchange.status) {
            Verdict::Retryable => return Err(MetadataError::Transient(exchange)),
            Verdict::Permanent => {
                return Err(MetadataError::Permanent(format!(
                    "{url} answered HTTP {}",
                    exchange.status.unwrap_or_default()
                )));
            }
            Verdict::Delivered => {}
        }
        let doc: Value = serde_json::from_str(exchange.body_excerpt.as_deref().unwrap_or(""))
            .map_err(|e| MetadataError::Permanent(format!("{url} is not a JSON document: {e}")))?;
        let claimed = doc.get("issuer").and_then(Value::as_str).unwrap_or("");
        if claimed.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(MetadataError::Permanent(format!(
                "{url} names issuer {claimed:?}, not the configured {issuer:?} (RFC 8414 §3.3)"
            )));
        }
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8414_inserts_the_well_known_before_the_issuer_path() {
        assert_eq!(
            metadata_urls("https://op.example/tenant1/"),
            vec![
                "https://op.example/tenant1/.well-known/openid-configuration".to_owned(),
                "https://op.example/.well-known/oauth-authorization-server/tenant1".to_owned(),
            ]
        );
        assert_eq!(
            metadata_urls("http://127.0.0.1:3000")[1],
            "http://127.0.0.1:3000/.well-known/oauth-authorization-server"
        );
    }
}
