//! Global Token Revocation (draft-parecki-oauth-global-token-revocation-06, the mechanism
//! behind Okta Universal Logout): deprov asks an authorization server to revoke every
//! token and session of a user.
//!
//! §3 request: `POST` to the `global_token_revocation_endpoint`, `Content-Type:
//! application/json`, body `{"sub_id": <RFC 9493 subject identifier>}`, e.g.
//! `{"format":"email","email":"…"}` or `{"format":"iss_sub","iss":"…","sub":"…"}`.
//! §3.1 authentication is up to the server: deprov sends either a configured bearer token
//! or a JWT it signs for each attempt (RFC 7523-style: `iss` = `sub` = the target's
//! client_id, `aud` = the endpoint or a configured audience, `jti`, `iat`, `exp` 60 s on),
//! as `Authorization: Bearer …`.
//! §3.2 response: 204 → done (any 2xx is accepted); 400/401/403/404/422 → permanent;
//! 429/5xx/transport → retried per the worker's policy.

use deprov_core::SubjectMapping;
use deprov_store::outbox::Claimed;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::client_auth::{FIELD_PRIVATE_KEY, sign_jwt, unix_now};
use crate::keys::{KeyEncryptionKey, open_target_secret_str};
use crate::outbound::http::OutboundClient;
use crate::worker::{Channel, Performed};

/// The config member holding the sealed bearer token.
pub const FIELD_BEARER_TOKEN: &str = "bearer_token";

/// RFC 9493 formats deprov can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubIdFormat {
    Email,
    IssSub,
}

/// How deprov authenticates to the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GtrAuth {
    Bearer,
    PrivateKeyJwt,
}

/// The settings of a `global_token_revocation` target (`targets.config`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalTokenRevocationConfig {
    pub endpoint: String,
    pub subject_format: SubIdFormat,
    /// Textual `SubjectMapping` giving the e-mail (`email`) or the `sub` (`iss_sub`).
    pub subject: String,
    /// The `iss` of an `iss_sub` subject: the issuer that knows the user by that `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_issuer: Option<String>,
    pub auth: GtrAuth,
    /// Sealed bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    /// Sealed PKCS#8 PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// `aud` of the signed JWT; the endpoint URL when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

impl std::fmt::Debug for GlobalTokenRevocationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GlobalTokenRevocationConfig({})", self.redacted())
    }
}

impl GlobalTokenRevocationConfig {
    pub fn from_value(value: &Value) -> Result<Self, String> {
        serde_json::from_value(value.clone())
            .map_err(|e| format!("unreadable global_token_revocation settings: {e}"))
    }

    pub fn redacted(&self) -> Value {
        json!({
            "endpoint": self.endpoint,
            "subject_format": self.subject_format,
            "subject": self.subject,
            "subject_issuer": self.subject_issuer,
            "auth": self.auth,
            "bearer_token": self.bearer_token.as_ref().map(|_| "[sealed]"),
            "private_key": self.private_key.as_ref().map(|_| "[sealed]"),
            "private_key_alg": self.private_key_alg,
            "kid": self.kid,
            "audience": self.audience,
        })
    }

    /// The RFC 9493 subject identifier of a user (the event's snapshot), or why none.
    pub fn sub_id(&self, user: &Value) -> Result<Value, String> {
        let mapping = SubjectMapping::parse(&self.subject).map_err(|e| e.to_string())?;
        let value = mapping
            .resolve(user)
            .ok_or_else(|| format!("the user has no value for the subject mapping {mapping}"))?;
        Ok(match self.subject_format {
            SubIdFormat::Email => json!({"format": "email", "email": value}),
            SubIdFormat::IssSub => json!({
                "format": "iss_sub",
                "iss": self.subject_issuer.clone().unwrap_or_default(),
                "sub": value,
            }),
        })
    }
}

#[derive(Debug)]
pub struct GlobalTokenRevocation {
    kek: KeyEncryptionKey,
    client: OutboundClient,
}

impl GlobalTokenRevocation {
    pub fn new(kek: KeyEncryptionKey, client: OutboundClient) -> Self {
        Self { kek, client }
    }

    async fn deliver(&self, claimed: &Claimed) -> Performed {
        let Some(target) = &claimed.target else {
            return Performed::Cancel("the endpoint was removed".to_owned());
        };
        let config = match GlobalTokenRevocationConfig::from_value(&target.config) {
            Ok(c) => c,
            Err(e) => return Performed::Refused(e),
        };
        let sub_id = match config.sub_id(&claimed.event.user_snapshot) {
            Ok(s) => s,
            Err(e) => return Performed::Refused(e),
        };
        let open = |field: &str, sealed: Option<&str>| {
            let sealed = sealed.ok_or_else(|| format!("no {field} is configured"))?;
            open_target_secret_str(&self.kek, &target.tenant_id, field, sealed)
                .map_err(|_| format!("cannot open the sealed {field}"))
        };
        let bearer: Zeroizing<String> = match config.auth {
            GtrAuth::Bearer => match open(FIELD_BEARER_TOKEN, config.bearer_token.as_deref()) {
                Ok(t) => t,
                Err(e) => return Performed::Refused(e),
            },
            GtrAuth::PrivateKeyJwt => {
                let pem = match open(FIELD_PRIVATE_KEY, config.private_key.as_deref()) {
                    Ok(p) => p,
                    Err(e) => return Performed::Refused(e),
                };
                let now = unix_now();
                let claims = json!({
                    "iss": target.client_id,
                    "sub": target.client_id,
                    "aud": config.audience.clone().unwrap_or_else(|| config.endpoint.clone()),
                    "jti": uuid::Uuid::new_v4().to_string(),
                    "iat": now,
                    "exp": now + 60,
                });
                match sign_jwt(
                    config.private_key_alg.as_deref().unwrap_or("RS256"),
                    config.kid.as_deref(),
                    &pem,
                    &claims,
                ) {
                    Ok(jwt) => Zeroizing::new(jwt),
                    Err(e) => return Performed::Refused(e),
                }
            }
        };
        let body = json!({ "sub_id": sub_id }).to_string();
        let authorization = format!("Bearer {}", bearer.as_str());
        match self
            .client
            .send(&config.endpoint, |client, url| {
                client
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(reqwest::header::AUTHORIZATION, authorization)
                    .body(body)
            })
            .await
        {
            Ok(exchange) => Performed::Answered(exchange),
            Err(refused) => Performed::Refused(refused.to_string()),
        }
    }
}

impl Channel for GlobalTokenRevocation {
    fn perform<'a>(
        &'a self,
        claimed: &'a Claimed,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Performed> + Send + 'a>> {
        Box::pin(self.deliver(claimed))
    }
}
