//! Keycloak: end every session of a user with the Admin REST API.
//!
//! - Token: `POST {base_url}/realms/{token_realm}/protocol/openid-connect/token`,
//!   `grant_type=client_credentials`, client authenticated with HTTP Basic
//!   (RFC 6749 §2.3.1, Keycloak's `client_secret_basic`). The client needs a service
//!   account with the `realm-management` roles `view-users` and `manage-users`.
//! - Find the user: `GET {base_url}/admin/realms/{realm}/users?username=…&exact=true`
//!   or, by an attribute, `?q={attribute}:{value}&exact=true`; both answer a JSON array
//!   of `UserRepresentation`. Or take the id directly from the SCIM user.
//! - Optionally disable: `PUT {base_url}/admin/realms/{realm}/users/{id}` with
//!   `{"enabled": false}` → 204 (done *before* the logout, so no new session can start
//!   between the two).
//! - Log out: `POST {base_url}/admin/realms/{realm}/users/{id}/logout` → 204; removes
//!   every user session (and offline session) of the user.
//!
//! Docs: <https://www.keycloak.org/docs-api/latest/rest-api/index.html#_users>
//! (`GET /admin/realms/{realm}/users` with `username`, `exact`, `q` "A query to search
//! for custom attributes, in the format 'key1:value2 key2:value2'";
//! `POST /admin/realms/{realm}/users/{user-id}/logout`); token endpoint:
//! <https://www.keycloak.org/docs/latest/server_admin/#_service_accounts>.
//!
//! Config (`kind = "keycloak"`):
//! ```json
//! {"base_url": "https://sso.example.com", "realm": "acme", "token_realm": null,
//!  "client_id": "deprov", "client_secret": "<sealed>",
//!  "find_user_by": "username", "attribute": null, "scim_attribute": "userName",
//!  "disable_user": false, "on_missing_user": "skip"}
//! ```
//! `base_url` includes `/auth` for Keycloak before 17.

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

/// Keycloak's 404 body for an unknown user id (`{"error":"User not found"}`); a wrong
/// realm answers `Realm not found.` instead.
const NO_SUCH_USER: &str = "User not found";
const PROVIDER: &str = "keycloak";

/// How the Keycloak user is found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeycloakLookup {
    /// `username` equal to the SCIM attribute's value.
    #[default]
    Username,
    /// The custom `attribute` equal to the SCIM attribute's value (`q=attr:value`).
    Attribute,
    /// The SCIM attribute's value is the Keycloak user id.
    Id,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeycloakConfig {
    /// The server's base URL, without `/admin` (`https://sso.example.com`).
    pub base_url: String,
    /// The realm whose user is logged out.
    pub realm: String,
    /// The realm of the service-account client, when not `realm` (often `master`).
    #[serde(default)]
    pub token_realm: Option<String>,
    pub client_id: String,
    /// The client secret, sealed for field `client_secret`.
    pub client_secret: Sealed,
    #[serde(default)]
    pub find_user_by: KeycloakLookup,
    /// The Keycloak user attribute searched when `find_user_by` is `attribute`.
    #[serde(default)]
    pub attribute: Option<String>,
    /// The SCIM attribute holding the value looked up (default `userName`).
    #[serde(default = "default_scim_attribute")]
    pub scim_attribute: String,
    /// Also disable the user (`enabled: false`) before logging them out.
    #[serde(default)]
    pub disable_user: bool,
    #[serde(default)]
    pub on_missing_user: OnMissingUser,
}

fn default_scim_attribute() -> String {
    "userName".to_owned()
}

impl KeycloakConfig {
    fn token_url(&self) -> String {
        let realm = self.token_realm.as_deref().unwrap_or(&self.realm);
        join(
            &self.base_url,
            &format!("realms/{}/protocol/openid-connect/token", segment(realm)),
        )
    }

    fn admin(&self, path: &str) -> String {
        join(
            &self.base_url,
            &format!("admin/realms/{}/{path}", segment(&self.realm)),
        )
    }
}

impl ProviderConfig for KeycloakConfig {
    fn validate(&self) -> Result<(), String> {
        check_base_url("base_url", &self.base_url)?;
        check_nonempty("realm", &self.realm)?;
        if let Some(r) = &self.token_realm {
            check_nonempty("token_realm", r)?;
        }
        check_nonempty("client_id", &self.client_id)?;
        self.client_secret.check("client_secret")?;
        check_attribute(&self.scim_attribute)?;
        match (self.find_user_by, self.attribute.as_deref()) {
            (KeycloakLookup::Attribute, None) => {
                return Err(
                    "attribute is required when find_user_by is \"attribute\" (the Keycloak user attribute to search)"
                        .to_owned(),
                );
            }
            (KeycloakLookup::Attribute, Some(a))
                if a.trim().is_empty() || a.contains([' ', ':']) =>
            {
                return Err(format!(
                    "attribute {a:?} cannot be searched (no spaces or colons: Keycloak's q parameter is 'name:value')"
                ));
            }
            (KeycloakLookup::Username | KeycloakLookup::Id, Some(_)) => {
                return Err("attribute is used only when find_user_by is \"attribute\"".to_owned());
            }
            _ => {}
        }
        Ok(())
    }

    fn endpoints(&self) -> Vec<String> {
        vec![self.token_url(), self.admin("users")]
    }
}

/// The members of a `UserRepresentation` deprov reads.
#[derive(Deserialize)]
struct KeycloakUser {
    id: String,
    #[serde(default)]
    username: Option<String>,
}

/// The `keycloak` channel.
#[derive(Debug)]
pub struct Keycloak(pub(crate) Arc<Shared>);

impl Keycloak {
    async fn deliver(&self, claimed: &Claimed) -> Performed {
        match self.run(claimed).await {
            Ok(p) | Err(p) => p,
        }
    }

    async fn run(&self, claimed: &Claimed) -> Result<Performed, Performed> {
        let loaded = Loaded::<KeycloakConfig>::from(claimed, PROVIDER)?;
        let secret = loaded.open(&self.0.kek, "client_secret", &loaded.config.client_secret)?;
        let config = &loaded.config;
        let value = scim_value(claimed, PROVIDER, &config.scim_attribute)?;
        let token_url = config.token_url();
        let client_id = config.client_id.clone();
        let conversation = Conversation {
            shared: &self.0,
            provider: PROVIDER,
            auth: Auth::ClientCredentials {
                key: loaded.cache_key(),
                request: Box::new(move || {
                    Ok(TokenRequest {
                        url: token_url.clone(),
                        form: vec![(
                            "grant_type",
                            Zeroizing::new("client_credentials".to_owned()),
                        )],
                        basic: Some((client_id.clone(), secret.clone())),
                    })
                }),
            },
        };
        let (user_id, how) = match config.find_user_by {
            KeycloakLookup::Id => (value.clone(), format!("id {value:?}")),
            lookup => {
                let (query, how) = match lookup {
                    KeycloakLookup::Attribute => {
                        let attr = config.attribute.as_deref().unwrap_or_default();
                        if value.contains(' ') {
                            return Err(Performed::Refused(format!(
                                "keycloak: cannot search attribute {attr} for {value:?}: Keycloak's q parameter cannot hold a space"
                            )));
                        }
                        (
                            format!("q={}", segment(&format!("{attr}:{value}"))),
                            format!("attribute {attr} = {value:?}"),
                        )
                    }
                    _ => (
                        format!("username={}", segment(&value)),
                        format!("username {value:?}"),
                    ),
                };
                let reply = conversation
                    .send(Call {
                        step: "find the user",
                        method: Method::GET,
                        url: format!(
                            "{}?{query}&exact=true&briefRepresentation=true",
                            config.admin("users")
                        ),
                        json: None,
                    })
                    .await?;
                if !reply.is_success() {
                    return Err(reply.failed());
                }
                let users: Vec<KeycloakUser> = reply.json()?;
                let matching: Vec<&KeycloakUser> = users
                    .iter()
                    .filter(|u| {
                        lookup != KeycloakLookup::Username
                            || u.username
                                .as_deref()
                                .is_none_or(|n| n.eq_ignore_ascii_case(&value))
                    })
                    .collect();
                match matching.as_slice() {
                    [] => {
                        return Err(missing_user(config.on_missing_user, PROVIDER, &how, None));
                    }
                    [one] => (one.id.clone(), how),
                    _ => {
                        return Err(Performed::Refused(format!(
                            "keycloak: {} users match {how}; refusing to guess which to log out",
                            matching.len()
                        )));
                    }
                }
            }
        };
        let user_path = format!("users/{}", segment(&user_id));
        if config.disable_user {
            let reply = conversation
                .send(Call {
                    step: "disable the user",
                    method: Method::PUT,
                    url: config.admin(&user_path),
                    json: Some(serde_json::json!({"enabled": false})),
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
        }
        let reply = conversation
            .send(Call {
                step: "log out the user",
                method: Method::POST,
                url: config.admin(&format!("{user_path}/logout")),
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

impl Channel for Keycloak {
    fn perform<'a>(&'a self, claimed: &'a Claimed) -> PerformFuture<'a> {
        Box::pin(self.deliver(claimed))
    }
}
