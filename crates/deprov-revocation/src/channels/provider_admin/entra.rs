//! Microsoft Entra ID: invalidate every refresh token and browser session of a user with
//! Microsoft Graph.
//!
//! - `POST {graph_url}/users/{id | userPrincipalName}/revokeSignInSessions`, no body →
//!   `200 OK` with `{"@odata.context": "…#Edm.Boolean", "value": true}`; application
//!   permission `User.RevokeSessions.All`. Graph notes "there might be a small delay of a
//!   few minutes before tokens are revoked" and that external (guest) users are not
//!   affected (<https://learn.microsoft.com/graph/api/user-revokesigninsessions>).
//!   Unknown user: 404 `{"error": {"code": "Request_ResourceNotFound", …}}`; throttling:
//!   429 with `Retry-After` (<https://learn.microsoft.com/graph/throttling>).
//! - Token: `POST {login_url}/{tenant}/oauth2/v2.0/token` with `client_id`,
//!   `client_secret`, `scope=https://graph.microsoft.com/.default` and
//!   `grant_type=client_credentials` in the form body
//!   (<https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>);
//!   errors as `{"error": "invalid_client", "error_description": "AADSTS7000215: …"}`.
//!
//! Which SCIM attribute names the user: Entra's default provisioning mappings send
//! `userPrincipalName` as `userName` and `mailNickname` as `externalId`, and Graph accepts
//! a UPN wherever it takes an id, so the default is `userName`. Where the mapping sends
//! `objectId` as `externalId`, set `scim_attribute` to `externalId`.
//!
//! Config (`kind = "entra"`):
//! ```json
//! {"tenant": "contoso.onmicrosoft.com", "client_id": "…",
//!  "client_secret": "<sealed>",
//!  "login_url": "https://login.microsoftonline.com",
//!  "graph_url": "https://graph.microsoft.com/v1.0",
//!  "scope": "https://graph.microsoft.com/.default",
//!  "scim_attribute": "userName", "on_missing_user": "skip"}
//! ```

use std::sync::Arc;

use deprov_store::outbox::Claimed;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{
    Auth, Call, Conversation, Loaded, OnMissingUser, PerformFuture, ProviderConfig, Sealed, Shared,
    TokenRequest, check_attribute, check_base_url, check_nonempty, join, missing_user, scim_value,
    segment,
};
use crate::worker::{Channel, Performed};

/// Graph's error code for an unknown user.
const NO_SUCH_USER: &str = "Request_ResourceNotFound";
const PROVIDER: &str = "entra";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntraConfig {
    /// The directory (tenant) id or a verified domain.
    pub tenant: String,
    pub client_id: String,
    /// The app's client secret, sealed for field `client_secret`.
    pub client_secret: Sealed,
    #[serde(default = "default_login_url")]
    pub login_url: String,
    #[serde(default = "default_graph_url")]
    pub graph_url: String,
    #[serde(default = "default_scope")]
    pub scope: String,
    /// The SCIM attribute holding the object id or UPN (default `userName`).
    #[serde(default = "default_scim_attribute")]
    pub scim_attribute: String,
    #[serde(default)]
    pub on_missing_user: OnMissingUser,
}

fn default_login_url() -> String {
    "https://login.microsoftonline.com".to_owned()
}

fn default_graph_url() -> String {
    "https://graph.microsoft.com/v1.0".to_owned()
}

fn default_scope() -> String {
    "https://graph.microsoft.com/.default".to_owned()
}

fn default_scim_attribute() -> String {
    "userName".to_owned()
}

impl EntraConfig {
    fn token_url(&self) -> String {
        join(
            &self.login_url,
            &format!("{}/oauth2/v2.0/token", segment(&self.tenant)),
        )
    }
}

impl ProviderConfig for EntraConfig {
    fn validate(&self) -> Result<(), String> {
        check_nonempty("tenant", &self.tenant)?;
        if self.tenant.contains(['/', '?', '#', ' ']) {
            return Err(format!(
                "tenant {:?} must be a tenant id or domain",
                self.tenant
            ));
        }
        check_nonempty("client_id", &self.client_id)?;
        self.client_secret.check("client_secret")?;
        check_base_url("login_url", &self.login_url)?;
        check_base_url("graph_url", &self.graph_url)?;
        check_nonempty("scope", &self.scope)?;
        check_attribute(&self.scim_attribute)
    }

    fn endpoints(&self) -> Vec<String> {
        vec![self.token_url(), join(&self.graph_url, "users")]
    }
}

/// Graph's answer: `{"value": true}`.
#[derive(Deserialize)]
struct Revoked {
    value: Option<bool>,
}

/// The `entra` channel.
#[derive(Debug)]
pub struct Entra(pub(crate) Arc<Shared>);

impl Entra {
    async fn deliver(&self, claimed: &Claimed) -> Performed {
        match self.run(claimed).await {
            Ok(p) | Err(p) => p,
        }
    }

    async fn run(&self, claimed: &Claimed) -> Result<Performed, Performed> {
        let loaded = Loaded::<EntraConfig>::from(claimed, PROVIDER)?;
        let secret = loaded.open(&self.0.kek, "client_secret", &loaded.config.client_secret)?;
        let config = &loaded.config;
        let value = scim_value(claimed, PROVIDER, &config.scim_attribute)?;
        let token_url = config.token_url();
        let client_id = config.client_id.clone();
        let scope = config.scope.clone();
        let conversation = Conversation {
            shared: &self.0,
            provider: PROVIDER,
            auth: Auth::ClientCredentials {
                key: loaded.cache_key(),
                request: Box::new(move || {
                    Ok(TokenRequest {
                        url: token_url.clone(),
                        form: vec![
                            ("client_id", Zeroizing::new(client_id.clone())),
                            ("scope", Zeroizing::new(scope.clone())),
                            ("client_secret", secret.clone()),
                            (
                                "grant_type",
                                Zeroizing::new("client_credentials".to_owned()),
                            ),
                        ],
                        basic: None,
                    })
                }),
            },
        };
        let reply = conversation
            .send(Call {
                step: "revoke sign-in sessions",
                method: Method::POST,
                url: join(
                    &config.graph_url,
                    &format!("{}/revokeSignInSessions", user_path(&value)),
                ),
                json: None,
            })
            .await?;
        if reply.is_missing_user(NO_SUCH_USER) {
            let how = format!("id or userPrincipalName {value:?}");
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
        // A 200 whose `value` is false means Graph did not revoke: retrying may help.
        if reply.status() == 200
            && let Ok(Revoked { value: Some(false) }) = serde_json::from_slice(&reply.body)
        {
            let mut exchange = reply.exchange;
            exchange.status = None;
            exchange.error = Some(
                "entra: revoke sign-in sessions: Graph answered {\"value\": false}".to_owned(),
            );
            return Err(Performed::Answered(exchange));
        }
        Ok(reply.done())
    }
}

impl Channel for Entra {
    fn perform<'a>(&'a self, claimed: &'a Claimed) -> PerformFuture<'a> {
        Box::pin(self.deliver(claimed))
    }
}

/// The user under Graph's `users`: `users/{id | userPrincipalName}`, or
/// `users('{userPrincipalName}')` for a UPN that begins with `$`, which Graph refuses in
/// the first form (400: OData reserves a leading `$` in a segment for its own). Quotes in
/// the key are doubled, as OData string literals write them
/// (<https://learn.microsoft.com/graph/api/user-get>, the tip on `$`).
fn user_path(value: &str) -> String {
    match value.strip_prefix('$') {
        Some(rest) => format!("users('${}')", segment(&rest.replace('\'', "''"))),
        None => format!("users/{}", segment(value)),
    }
}
