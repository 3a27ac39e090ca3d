//! Okta: end every session and OAuth token of a user with the Management API.
//!
//! - `DELETE {org_url}/api/v1/users/{userId}/sessions?oauthTokens=true` → 204: "Revokes all
//!   active identity provider sessions of the user … `oauthTokens`: revokes issued OpenID
//!   Connect and OAuth refresh and access tokens" (UserSessions, `revokeUserSessions`,
//!   <https://developer.okta.com/docs/api/openapi/okta-management/management/tag/UserSessions/>).
//!   Unknown user: 404 with `errorCode` `E0000007`. Rate limit: 429 `E0000047`.
//! - Find by login: `GET {org_url}/api/v1/users/{login}` (the path takes an id or a login)
//!   → the user object, whose `id` is used.
//! - Authentication, either
//!   - OAuth 2.0 for Okta with a service app (Okta's recommended way): `POST
//!     {org_url}/oauth2/v1/token` with `grant_type=client_credentials`, `scope=okta.users.manage`
//!     (the scope Okta documents for user lifecycle and session operations; it includes
//!     reading users), and `private_key_jwt` client authentication — the only method Okta
//!     accepts for service apps asking for Okta scopes — as `client_assertion_type=
//!     urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and a `client_assertion` JWT
//!     with `iss` = `sub` = client id, `aud` = the token URL, `exp` within the hour, a fresh
//!     `jti` (RFC 7523 §3; <https://developer.okta.com/docs/guides/implement-oauth-for-okta-serviceapp/main/>);
//!     the access token is sent as `Authorization: Bearer …`;
//!   - or an API token: `Authorization: SSWS {token}`
//!     (<https://developer.okta.com/docs/guides/create-an-api-token/main/>).
//!
//! Okta's SCIM client sends the Okta user id as `externalId` (INTEROP.md), so the default
//! maps `externalId` straight to the id.
//!
//! Okta signals rate limits with `X-Rate-Limit-Reset` rather than `Retry-After`; the
//! outbound client reads only `Retry-After`, so an Okta 429 without it is retried on the
//! worker's backoff.
//!
//! Config (`kind = "okta"`):
//! ```json
//! {"org_url": "https://acme.okta.com", "auth_method": "private_key_jwt",
//!  "client_id": "0oa…", "private_key": "<sealed PEM>", "key_id": null,
//!  "scopes": ["okta.users.manage"],
//!  "find_user_by": "id", "scim_attribute": "externalId", "on_missing_user": "skip"}
//! ```
//! or `"auth_method": "api_token", "api_token": "<sealed>"`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use deprov_core::SigningAlgorithm;
use deprov_store::outbox::Claimed;
use jsonwebtoken::{Algorithm, Header};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{
    Auth, Call, Conversation, Loaded, OnMissingUser, PerformFuture, ProviderConfig, Sealed, Shared,
    TokenRequest, check_attribute, check_base_url, check_nonempty, join, missing_user, scim_value,
    segment,
};
use crate::keys::SigningKey;
use crate::worker::{Channel, Performed};

/// Okta's error code for an unknown resource (`E0000007`, "Not found: Resource not found").
const NO_SUCH_USER: &str = "E0000007";
const PROVIDER: &str = "okta";

/// The client assertion's lifetime (Okta accepts at most one hour).
const ASSERTION_LIFETIME_SECS: u64 = 300;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OktaAuth {
    /// OAuth 2.0 service app, client credentials with `private_key_jwt`.
    #[default]
    PrivateKeyJwt,
    /// `Authorization: SSWS {api_token}`.
    ApiToken,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OktaLookup {
    /// The SCIM attribute's value is the Okta user id.
    #[default]
    Id,
    /// The SCIM attribute's value is the Okta login; the id is read from `GET /api/v1/users/{login}`.
    Login,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OktaConfig {
    /// `https://{yourOktaDomain}`.
    pub org_url: String,
    #[serde(default)]
    pub auth_method: OktaAuth,
    /// The service app's client id (`private_key_jwt`).
    #[serde(default)]
    pub client_id: Option<String>,
    /// The service app's private key in PEM (RSA or P-256), sealed for field `private_key`.
    #[serde(default)]
    pub private_key: Option<Sealed>,
    /// The `kid` of that key as registered with the app, when it has several.
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// An API token, sealed for field `api_token` (`api_token` method).
    #[serde(default)]
    pub api_token: Option<Sealed>,
    #[serde(default)]
    pub find_user_by: OktaLookup,
    /// The SCIM attribute holding the id or login (default `externalId`).
    #[serde(default = "default_scim_attribute")]
    pub scim_attribute: String,
    #[serde(default)]
    pub on_missing_user: OnMissingUser,
}

fn default_scopes() -> Vec<String> {
    vec!["okta.users.manage".to_owned()]
}

fn default_scim_attribute() -> String {
    "externalId".to_owned()
}

impl OktaConfig {
    fn token_url(&self) -> String {
        join(&self.org_url, "oauth2/v1/token")
    }
}

impl ProviderConfig for OktaConfig {
    fn validate(&self) -> Result<(), String> {
        check_base_url("org_url", &self.org_url)?;
        check_attribute(&self.scim_attribute)?;
        match self.auth_method {
            OktaAuth::PrivateKeyJwt => {
                check_nonempty("client_id", self.client_id.as_deref().unwrap_or_default())?;
                self.private_key
                    .as_ref()
                    .ok_or("private_key is required with auth_method \"private_key_jwt\"")?
                    .check("private_key")?;
                if self.scopes.is_empty()
                    || self
                        .scopes
                        .iter()
                        .any(|s| s.trim().is_empty() || s.contains(' '))
                {
                    return Err("scopes must list Okta scopes such as okta.users.manage".to_owned());
                }
                if self.api_token.is_some() {
                    return Err("api_token is used only with auth_method \"api_token\"".to_owned());
                }
            }
            OktaAuth::ApiToken => {
                self.api_token
                    .as_ref()
                    .ok_or("api_token is required with auth_method \"api_token\"")?
                    .check("api_token")?;
                if self.private_key.is_some() || self.client_id.is_some() {
                    return Err("client_id and private_key are used only with auth_method \"private_key_jwt\"".to_owned());
                }
            }
        }
        Ok(())
    }

    fn endpoints(&self) -> Vec<String> {
        vec![self.token_url(), join(&self.org_url, "api/v1/users")]
    }
}

/// The client assertion of RFC 7523 §3 / OpenID Connect Core §9 `private_key_jwt`.
#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}

fn client_assertion(
    key: &SigningKey,
    key_id: Option<&str>,
    client_id: &str,
    token_url: &str,
) -> Result<String, String> {
    let alg = match key.alg() {
        SigningAlgorithm::RS256 => Algorithm::RS256,
        SigningAlgorithm::ES256 => Algorithm::ES256,
        SigningAlgorithm::EdDSA => {
            return Err("Okta does not accept Ed25519 client keys; use an RSA or P-256 key".into());
        }
    };
    let mut header = Header::new(alg);
    header.kid = key_id.map(str::to_owned);
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = Assertion {
        iss: client_id,
        sub: client_id,
        aud: token_url,
        iat,
        exp: iat + ASSERTION_LIFETIME_SECS,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    jsonwebtoken::encode(&header, &claims, key.encoding_key())
        .map_err(|e| format!("cannot sign the client assertion: {e}"))
}

#[derive(Deserialize)]
struct OktaUser {
    id: String,
}

/// The `okta` channel.
#[derive(Debug)]
pub struct Okta(pub(crate) Arc<Shared>);

impl Okta {
    async fn deliver(&self, claimed: &Claimed) -> Performed {
        match self.run(claimed).await {
            Ok(p) | Err(p) => p,
        }
    }

    fn auth(&self, loaded: &Loaded<'_, OktaConfig>) -> Result<Auth, Performed> {
        let config = &loaded.config;
        match config.auth_method {
            OktaAuth::ApiToken => {
                let sealed = config
                    .api_token
                    .as_ref()
                    .ok_or_else(|| Performed::Refused("okta: api_token is missing".to_owned()))?;
                let token = loaded.open(&self.0.kek, "api_token", sealed)?;
                Ok(Auth::Fixed(Zeroizing::new(format!(
                    "SSWS {}",
                    token.as_str()
                ))))
            }
            OktaAuth::PrivateKeyJwt => {
                let sealed = config
                    .private_key
                    .as_ref()
                    .ok_or_else(|| Performed::Refused("okta: private_key is missing".to_owned()))?;
                let pem = loaded.open(&self.0.kek, "private_key", sealed)?;
                let client_id = config.client_id.clone().unwrap_or_default();
                let key_id = config.key_id.clone();
                let token_url = config.token_url();
                let scope = config.scopes.join(" ");
                Ok(Auth::ClientCredentials {
                    key: loaded.cache_key(),
                    // The key is parsed only when a token is fetched, not per delivery.
                    request: Box::new(move || {
                        let key = SigningKey::import_pem(&pem, None)
                            .map_err(|e| format!("the service app's private key: {e}"))?;
                        let assertion =
                            client_assertion(&key, key_id.as_deref(), &client_id, &token_url)?;
                        Ok(TokenRequest {
                            url: token_url.clone(),
                            form: vec![
                                (
                                    "grant_type",
                                    Zeroizing::new("client_credentials".to_owned()),
                                ),
                                ("scope", Zeroizing::new(scope.clone())),
                                (
                                    "client_assertion_type",
                                    Zeroizing::new(
                                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                                            .to_owned(),
                                    ),
                                ),
                                ("client_assertion", Zeroizing::new(assertion)),
                            ],
                            basic: None,
                        })
                    }),
                })
            }
        }
    }

    async fn run(&self, claimed: &Claimed) -> Result<Performed, Performed> {
        let loaded = Loaded::<OktaConfig>::from(claimed, PROVIDER)?;
        let value = scim_value(claimed, PROVIDER, &loaded.config.scim_attribute)?;
        let conversation = Conversation {
            shared: &self.0,
            provider: PROVIDER,
            auth: self.auth(&loaded)?,
        };
        let config = &loaded.config;
        let (user_id, how) = match config.find_user_by {
            OktaLookup::Id => (value.clone(), format!("id {value:?}")),
            OktaLookup::Login => {
                let how = format!("login {value:?}");
                let reply = conversation
                    .send(Call {
                        step: "find the user",
                        method: Method::GET,
                        url: join(
                            &config.org_url,
                            &format!("api/v1/users/{}", segment(&value)),
                        ),
                        json: None,
                    })
                    .await?;
                if reply.is_missing_user(NO_SUCH_USER) {
                    return Err(missing_user(
                        config.on_missing_user,
                        PROVIDER,
                        &how,
                        Some(reply),
                    ));
                }
                if !reply.is_success() {
                    return Err(reply.failed());
                }
                let user: OktaUser = reply.json()?;
                (user.id, how)
            }
        };
        let reply = conversation
            .send(Call {
                step: "revoke sessions",
                method: Method::DELETE,
                url: join(
                    &config.org_url,
                    &format!(
                        "api/v1/users/{}/sessions?oauthTokens=true",
                        segment(&user_id)
                    ),
                ),
                json: None,
            })
            .await?;
        if reply.is_missing_user(NO_SUCH_USER) {
            return Err(missing_user(
                config.on_missing_user,
                PROVIDER,
                &how,
                Some(reply),
            ));
        }
        if !reply.is_success() {
            return Err(reply.failed());
        }
        Ok(reply.done())
    }
}

impl Channel for Okta {
    fn perform<'a>(&'a self, claimed: &'a Claimed) -> PerformFuture<'a> {
        Box::pin(self.deliver(claimed))
    }
}
