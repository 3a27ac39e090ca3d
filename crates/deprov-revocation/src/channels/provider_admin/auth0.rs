//! Auth0: end every session and refresh token of a user with the Management API v2.
//!
//! - `DELETE {base}/api/v2/users/{user_id}/sessions` → 202 "Session deletion request
//!   accepted" (scope `delete:sessions`;
//!   <https://auth0.com/docs/api/management/v2/users/delete-sessions-for-user>,
//!   <https://auth0.com/docs/manage-users/sessions/manage-user-sessions-with-auth0-management-api>).
//! - `DELETE {base}/api/v2/users/{user_id}/refresh-tokens` → 202 "Refresh token deletion
//!   request accepted" (scope `delete:refresh_tokens`;
//!   <https://auth0.com/docs/api/management/v2/users/delete-refresh-tokens-for-user>).
//!   Sessions and refresh tokens live apart at Auth0: ending the sessions leaves refresh
//!   tokens valid, so both calls are needed.
//! - Find by e-mail: `GET {base}/api/v2/users-by-email?email=…` → an array of users (one per
//!   connection holding that address; all of them are revoked) (scope `read:users`).
//! - Token: `POST {base}/oauth/token`, form `grant_type=client_credentials`, `client_id`,
//!   `client_secret`, `audience=https://{domain}/api/v2/`
//!   (<https://auth0.com/docs/secure/tokens/access-tokens/management-api-access-tokens/get-management-api-access-tokens-for-production>).
//! - Errors: `{"statusCode": 404, "error": "Not Found", "message": "…", "errorCode":
//!   "inexistent_user"}`; rate limits: 429 (`X-RateLimit-Reset`, `Retry-After` when sent).
//!
//! Two calls, one delivery: sessions first, then refresh tokens, and the delivery succeeds
//! only when both did. When the first succeeds and the second fails, the failure decides
//! (retried or dead-lettered like any other) and a retry makes *both* calls again: deleting
//! the sessions of a user who has none is accepted, so repeating it is harmless, and it
//! also ends any session opened in between with a refresh token that was still valid.
//!
//! Config (`kind = "auth0"`):
//! ```json
//! {"domain": "acme.eu.auth0.com", "base_url": null, "audience": null,
//!  "client_id": "…", "client_secret": "<sealed>",
//!  "find_user_by": "id", "scim_attribute": "externalId", "on_missing_user": "skip"}
//! ```
//! `base_url` defaults to `https://{domain}` (set it for a custom domain's API or tests);
//! `audience` defaults to `https://{domain}/api/v2/`.

use std::sync::Arc;

use deprov_store::outbox::Claimed;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{
    Auth, Call, Conversation, Loaded, OnMissingUser, PerformFuture, ProviderConfig, Reply, Sealed,
    Shared, TokenRequest, check_attribute, check_base_url, check_nonempty, join, missing_user,
    scim_value, segment,
};
use crate::worker::{Channel, Performed};

/// Auth0's `errorCode` for an unknown user.
const NO_SUCH_USER: &str = "inexistent_user";
const PROVIDER: &str = "auth0";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth0Lookup {
    /// The SCIM attribute's value is the Auth0 `user_id` (`auth0|…`, `samlp|…`).
    #[default]
    Id,
    /// The SCIM attribute's value is an e-mail address; every user holding it is revoked.
    Email,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth0Config {
    /// The tenant's domain (`acme.eu.auth0.com`).
    pub domain: String,
    /// Where the API and token endpoint are called; default `https://{domain}`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The Management API audience; default `https://{domain}/api/v2/`.
    #[serde(default)]
    pub audience: Option<String>,
    pub client_id: String,
    /// The M2M application's secret, sealed for field `client_secret`.
    pub client_secret: Sealed,
    #[serde(default)]
    pub find_user_by: Auth0Lookup,
    /// The SCIM attribute holding the user id or e-mail (default `externalId`).
    #[serde(default = "default_scim_attribute")]
    pub scim_attribute: String,
    #[serde(default)]
    pub on_missing_user: OnMissingUser,
}

fn default_scim_attribute() -> String {
    "externalId".to_owned()
}

impl Auth0Config {
    fn base(&self) -> String {
        self.base_url
            .clone()
            .unwrap_or_else(|| format!("https://{}", self.domain))
    }

    fn audience(&self) -> String {
        self.audience
            .clone()
            .unwrap_or_else(|| format!("https://{}/api/v2/", self.domain))
    }
}

impl ProviderConfig for Auth0Config {
    fn validate(&self) -> Result<(), String> {
        check_nonempty("domain", &self.domain)?;
        if self.domain.contains(['/', ':', '?', '#', ' ', '@']) {
            return Err(format!(
                "domain {:?} must be a host name such as acme.eu.auth0.com (no scheme or path)",
                self.domain
            ));
        }
        if let Some(base) = &self.base_url {
            check_base_url("base_url", base)?;
        }
        if let Some(aud) = &self.audience {
            check_nonempty("audience", aud)?;
        }
        check_nonempty("client_id", &self.client_id)?;
        self.client_secret.check("client_secret")?;
        check_attribute(&self.scim_attribute)
    }

    fn endpoints(&self) -> Vec<String> {
        vec![
            join(&self.base(), "oauth/token"),
            join(&self.base(), "api/v2/users"),
        ]
    }
}

#[derive(Deserialize)]
struct Auth0User {
    user_id: String,
}

/// The `auth0` channel.
#[derive(Debug)]
pub struct Auth0(pub(crate) Arc<Shared>);

impl Auth0 {
    async fn deliver(&self, claimed: &Claimed) -> Performed {
        match self.run(claimed).await {
            Ok(p) | Err(p) => p,
        }
    }

    async fn run(&self, claimed: &Claimed) -> Result<Performed, Performed> {
        let loaded = Loaded::<Auth0Config>::from(claimed, PROVIDER)?;
        let secret = loaded.open(&self.0.kek, "client_secret", &loaded.config.client_secret)?;
        let config = &loaded.config;
        let value = scim_value(claimed, PROVIDER, &config.scim_attribute)?;
        let base = config.base();
        let token_url = join(&base, "oauth/token");
        let client_id = config.client_id.clone();
        let audience = config.audience();
        let conversation = Conversation {
            shared: &self.0,
            provider: PROVIDER,
            auth: Auth::ClientCredentials {
                key: loaded.cache_key(),
                request: Box::new(move || {
                    Ok(TokenRequest {
                        url: token_url.clone(),
                        form: vec![
                            (
                                "grant_type",
                                Zeroizing::new("client_credentials".to_owned()),
                            ),
                            ("client_id", Zeroizing::new(client_id.clone())),
                            ("client_secret", secret.clone()),
                            ("audience", Zeroizing::new(audience.clone())),
                        ],
                        basic: None,
                    })
                }),
            },
        };
        let (users, how) = match config.find_user_by {
            Auth0Lookup::Id => (vec![value.clone()], format!("user_id {value:?}")),
            Auth0Lookup::Email => {
                let how = format!("email {value:?}");
                let reply = conversation
                    .send(Call {
                        step: "find the user",
                        method: Method::GET,
                        url: format!(
                            "{}?email={}",
                            join(&base, "api/v2/users-by-email"),
                            segment(&value)
                        ),
                        json: None,
                    })
                    .await?;
                if !reply.is_success() {
                    return Err(reply.failed());
                }
                let found: Vec<Auth0User> = reply.json()?;
                if found.is_empty() {
                    return Err(missing_user(config.on_missing_user, PROVIDER, &how, None));
                }
                (found.into_iter().map(|u| u.user_id).collect(), how)
            }
        };
        let mut last: Option<Reply> = None;
        for user_id in &users {
            for (step, path) in [
                ("delete sessions", "sessions"),
                ("delete refresh tokens", "refresh-tokens"),
            ] {
                let reply = conversation
                    .send(Call {
                        step,
                        method: Method::DELETE,
                        url: join(&base, &format!("api/v2/users/{}/{path}", segment(user_id))),
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
                last = Some(reply);
            }
        }
        last.map(Reply::done)
            .ok_or_else(|| Performed::Refused("auth0: no user to revoke".to_owned()))
    }
}

impl Channel for Auth0 {
    fn perform<'a>(&'a self, claimed: &'a Claimed) -> PerformFuture<'a> {
        Box::pin(self.deliver(claimed))
    }
}
