//! OpenID Connect Back-Channel Logout 1.0 (errata 1) §2.5: "The OP sends an HTTP POST
//! request containing the Logout Token … to the RP's back-channel logout URI", with
//! `Content-Type: application/x-www-form-urlencoded` and the token in `logout_token`.
//!
//! A fresh token (fresh `jti`, fresh `iat`/`exp`) is minted for every attempt: strict
//! receivers reject a `jti` they have seen, and a retried token must not be expired.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use deprov_core::{SigningAlgorithm, SubjectMapping};
use deprov_store::outbox::Claimed;
use deprov_store::targets::RelyingPartyConfig;

use crate::discovery;
use crate::keys::{KeyError, KeyRing};
use crate::logout_token::{self, LogoutTokenRequest, TokenLifetime};
use crate::outbound::TargetUrlError;
use crate::outbound::http::{Exchange, OutboundClient};
use crate::worker::{Channel, Performed};

#[derive(Debug)]
pub struct BackchannelLogout {
    keys: Arc<KeyRing>,
    client: OutboundClient,
    /// deprov's public URL: the default issuer.
    public_url: String,
    lifetime: TokenLifetime,
}

impl BackchannelLogout {
    pub fn new(keys: Arc<KeyRing>, client: OutboundClient, public_url: &str) -> Self {
        Self {
            keys,
            client,
            public_url: public_url.trim_end_matches('/').to_owned(),
            lifetime: TokenLifetime::MAX,
        }
    }

    async fn deliver(&self, claimed: &Claimed) -> Performed {
        let Some(target) = &claimed.target else {
            return Performed::Cancel("the relying party was removed".to_owned());
        };
        let config = match <RelyingPartyConfig as serde::Deserialize>::deserialize(&target.config) {
            Ok(c) => c,
            Err(e) => return Performed::Refused(format!("unreadable relying party settings: {e}")),
        };
        let mapping = match SubjectMapping::parse(&config.subject) {
            Ok(m) => m,
            Err(e) => return Performed::Refused(e.to_string()),
        };
        let alg = match SigningAlgorithm::parse(&config.alg) {
            Ok(a) => a,
            Err(e) => return Performed::Refused(e.to_string()),
        };
        let subject = mapping.resolve(&claimed.event.user_snapshot);
        let issuer = config
            .issuer
            .clone()
            .unwrap_or_else(|| discovery::issuer(&self.public_url));
        let key = match self.keys.signer(alg, config.kid.as_deref()).await {
            Ok(k) => k,
            // The store could not be read: try again later.
            Err(KeyError::Store(e)) => return transient(format!("loading the signing key: {e}")),
            Err(e) => return Performed::Refused(format!("signing key: {e}")),
        };
        let request = LogoutTokenRequest {
            issuer: &issuer,
            audience: &target.client_id,
            subject: subject.as_deref(),
            // deprov learns users from SCIM, not sessions: it has no `sid` to give.
            session_id: None,
            require_sid: config.require_sid,
            lifetime: self.lifetime,
        };
        let token = match logout_token::mint(&key, &request, SystemTime::now()) {
            Ok(t) => t,
            Err(e) => return Performed::Refused(e.to_string()),
        };
        match post_logout_token(&self.client, &config.backchannel_logout_uri, &token.jwt).await {
            Ok(exchange) => Performed::Answered(exchange),
            Err(refused) => Performed::Refused(refused.to_string()),
        }
    }
}

/// POSTs a logout token to a back-channel logout URI as §2.5 asks (the token as the form
/// parameter `logout_token`), marked `Cache-Control: no-store`: it must not be kept on the way.
pub async fn post_logout_token(
    client: &OutboundClient,
    uri: &str,
    jwt: &str,
) -> Result<Exchange, TargetUrlError> {
    let body = form_body(jwt);
    client
        .send(uri, |client, url| {
            client
                .post(url)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .header(reqwest::header::CACHE_CONTROL, "no-store")
                .body(body)
        })
        .await
}

/// `logout_token=<jwt>`, `application/x-www-form-urlencoded` (§2.5). A compact JWS is
/// base64url and dots (RFC 7515 §7.1), none of which the form encoding changes, so it is
/// copied as it is; anything else goes through the encoder. At a mass de-provisioning the
/// encoder, which looks at each byte in turn, cost a tenth of what signing did.
fn form_body(jwt: &str) -> String {
    let plain = jwt.bytes().fold(true, |plain, b| {
        plain & (b.is_ascii_alphanumeric() | (b == b'-') | (b == b'_') | (b == b'.'))
    });
    if plain {
        let mut body = String::with_capacity(jwt.len() + 13);
        body.push_str("logout_token=");
        body.push_str(jwt);
        body
    } else {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("logout_token", jwt)
            .finish()
    }
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

impl Channel for BackchannelLogout {
    fn perform<'a>(
        &'a self,
        claimed: &'a Claimed,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Performed> + Send + 'a>> {
        Box::pin(self.deliver(claimed))
    }
}

#[cfg(test)]
mod tests {
    use super::form_body;

    #[test]
    fn the_form_body_is_what_the_form_encoder_writes() {
        let encoded = |jwt: &str| {
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("logout_token", jwt)
                .finish()
        };
        for jwt in [
            "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln-_",
            "",
            // Not a JWS: the encoder's way.
            "a b+c/d=e&f",
            "é.\n",
        ] {
            assert_eq!(form_body(jwt), encoded(jwt), "{jwt}");
        }
        assert_eq!(form_body("a b"), "logout_token=a+b");
    }
}
