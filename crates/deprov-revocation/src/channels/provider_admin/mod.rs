//! Provider admin adapters: end every session and token of a de-provisioned user at the
//! identity provider itself, through its admin API (issue 5, part 2).
//!
//! | kind | call | docs |
//! |---|---|---|
//! | `keycloak` | `POST /admin/realms/{realm}/users/{id}/logout` (optionally `PUT … {"enabled": false}` first) | <https://www.keycloak.org/docs-api/latest/rest-api/index.html#_users> |
//! | `okta` | `DELETE /api/v1/users/{id}/sessions?oauthTokens=true` | <https://developer.okta.com/docs/api/openapi/okta-management/management/tag/UserSessions/> |
//! | `entra` | `POST /users/{id \| userPrincipalName}/revokeSignInSessions` (Microsoft Graph) | <https://learn.microsoft.com/graph/api/user-revokesigninsessions> |
//! | `auth0` | `DELETE /api/v2/users/{id}/sessions` and `DELETE /api/v2/users/{id}/refresh-tokens` | <https://auth0.com/docs/manage-users/sessions/manage-user-sessions-with-auth0-management-api> |
//!
//! Each adapter gets its admin access token by client credentials (RFC 6749 §4.4), or for
//! Okta optionally with an `SSWS` API token, and caches it per target ([`token_cache`]).
//! Every call goes through the [`OutboundClient`] (URL policy, SSRF guard, timeouts).
//!
//! Outcomes, in the worker's terms:
//! - all calls succeeded → the decisive (last) exchange, delivered;
//! - 429 (with its `Retry-After`), 408, 5xx, timeouts, connection errors at any step,
//!   the token endpoint included → retried;
//! - other 4xx at any step → dead letter, with the provider's answer and the step named
//!   (`HTTP 403: [okta: revoke sessions] {"errorCode":"E0000006",…}`);
//! - a 401 from the API → the cached token is dropped and the call made once more with a
//!   fresh one; a second 401 is a dead letter;
//! - **the user does not exist at the provider** (a lookup that finds nobody, or a 404
//!   carrying the provider's own "no such user" mark: Keycloak `User not found`, Okta
//!   `E0000007`, Graph `Request_ResourceNotFound`, Auth0 `inexistent_user`; any other 404,
//!   such as Keycloak's `Realm not found.`, is a configuration error and dead-letters)
//!   → by default the delivery is *cancelled*
//!   with a note saying so (`on_missing_user: "skip"`). Nobody of that name can hold a
//!   session there, so there is nothing to end, and a provider that simply never had the
//!   person (an Entra hard delete arriving after the account is gone, a person never
//!   provisioned to that realm) must not flood the dead letters; yet it is not reported as
//!   *delivered*, because nothing was revoked, and a wrong mapping shows up as a run of
//!   cancelled deliveries with the value that was looked up. Operators who want every
//!   miss to page someone set `on_missing_user: "fail"`: the delivery is dead-lettered.
//! - the SCIM user has no value for the configured attribute, the config is unreadable, a
//!   sealed secret does not open → dead letter (retrying cannot help).
//!
//! Settings are the target's `config` JSON, one shape per kind (documented in each
//! module). Secrets (`client_secret`, `private_key`, `api_token`) are stored sealed under
//! the key-encryption key with the field being the member's own name (see [`seal_secret`]);
//! through `deprov op add` / the admin API they are written `{"$secret": "…"}` and sealed
//! on the way in. Unknown members are refused, so a typo is an error, not a silent default.
//!
//! Retries are safe: every call is idempotent (logging out a user without sessions,
//! disabling a disabled user and deleting no sessions all succeed), so a delivery that
//! failed half-way simply does everything again.

pub mod auth0;
pub mod entra;
pub mod keycloak;
pub mod okta;
mod secret;
mod token_cache;

use std::sync::Arc;
use std::time::Duration;

use deprov_core::SubjectMapping;
use deprov_store::entity::target;
use deprov_store::outbox::Claimed;
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keys::KeyEncryptionKey;
use crate::outbound::http::{EXCERPT_BYTES, Exchange, OutboundClient};
use crate::outbound::{AddressPolicy, validate_target_url};
use crate::worker::{Channel, Performed};

pub(crate) use secret::open_secret;
pub use secret::{seal_secret, secret_aad};
use token_cache::{Fresh, TokenCache};

pub const KEYCLOAK: &str = "keycloak";
pub const OKTA: &str = "okta";
pub const ENTRA: &str = "entra";
pub const AUTH0: &str = "auth0";
/// The target kinds served here.
pub const KINDS: [&str; 4] = [KEYCLOAK, OKTA, ENTRA, AUTH0];

/// The most of an answer read to find a user or a token (Okta's user object with its
/// `_links`, an Entra access token of a few KiB).
const BODY_LIMIT: usize = 64 * 1024;

/// Checks a target's stored `config` for `kind` (secrets already sealed): its shape only.
/// The signature of the op service's `provider_admin_check` hook.
pub fn validate_config(kind: &str, config: &serde_json::Value) -> Result<(), String> {
    check_config(kind, config, None)
}

/// [`validate_config`], and every URL the adapter will call against the outbound policy:
/// for the CLI and admin API, before a target is stored (each call checks again).
pub fn validate_config_for(
    kind: &str,
    config: &serde_json::Value,
    policy: AddressPolicy,
) -> Result<(), String> {
    check_config(kind, config, Some(policy))
}

fn check_config(
    kind: &str,
    config: &serde_json::Value,
    policy: Option<AddressPolicy>,
) -> Result<(), String> {
    fn check<C: ProviderConfig>(
        config: &serde_json::Value,
        policy: Option<AddressPolicy>,
    ) -> Result<(), String> {
        let c: C = serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        c.validate()?;
        if let Some(policy) = policy {
            for url in c.endpoints() {
                validate_target_url(&url, policy).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
    match kind {
        KEYCLOAK => check::<keycloak::KeycloakConfig>(config, policy),
        OKTA => check::<okta::OktaConfig>(config, policy),
        ENTRA => check::<entra::EntraConfig>(config, policy),
        AUTH0 => check::<auth0::Auth0Config>(config, policy),
        other => Err(format!(
            "{other:?} is not a provider kind (keycloak, okta, entra, auth0)"
        )),
    }
}

/// What every provider's config can say.
pub(crate) trait ProviderConfig: DeserializeOwned {
    fn validate(&self) -> Result<(), String>;
    /// Every URL the adapter will call, for the policy check.
    fn endpoints(&self) -> Vec<String>;
}

/// What to do when the provider has no such user (see the module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMissingUser {
    /// Cancel the delivery with a note: nothing to end there.
    #[default]
    Skip,
    /// Dead-letter it.
    Fail,
}

/// A sealed secret as stored in a config (see [`seal_secret`]); `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(pub String);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(…)")
    }
}

impl Sealed {
    fn check(&self, field: &str) -> Result<(), String> {
        if secret::looks_sealed(&self.0) {
            Ok(())
        } else {
            Err(format!(
                "{field} must be sealed: give it as {{\"$secret\": \"…\"}} (deprov seals it under the key-encryption key), not as plain text"
            ))
        }
    }
}

/// Everything the four adapters share: the guarded client, the key that opens sealed
/// secrets, and the token cache.
pub(crate) struct Shared {
    client: OutboundClient,
    kek: KeyEncryptionKey,
    tokens: TokenCache,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("client", &self.client)
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Sends through the guarded client and returns the answer's body (up to
    /// [`BODY_LIMIT`]) beside the exchange, whose excerpt is cut back to [`EXCERPT_BYTES`]
    /// for the trail.
    async fn send_whole(
        &self,
        url: &str,
        build: impl FnOnce(&reqwest::Client, url::Url) -> reqwest::RequestBuilder,
    ) -> Result<(Exchange, Zeroizing<Vec<u8>>), crate::outbound::TargetUrlError> {
        let mut exchange = self.client.send_reading(url, BODY_LIMIT, build).await?;
        let body = Zeroizing::new(
            exchange
                .body_excerpt
                .as_deref()
                .map(|b| b.as_bytes().to_vec())
                .unwrap_or_default(),
        );
        if let Some(excerpt) = exchange.body_excerpt.as_mut()
            && excerpt.len() > EXCERPT_BYTES
        {
            let mut cut = EXCERPT_BYTES;
            while !excerpt.is_char_boundary(cut) {
                cut -= 1;
            }
            excerpt.truncate(cut);
        }
        Ok((exchange, body))
    }
}

/// The four provider channels, sharing one token cache.
#[derive(Debug, Clone)]
pub struct ProviderAdmin {
    shared: Arc<Shared>,
}

impl ProviderAdmin {
    /// `kek` opens the sealed secrets of the targets' configs (`KeyRing::kek`).
    pub fn new(kek: KeyEncryptionKey, client: OutboundClient) -> Self {
        Self {
            shared: Arc::new(Shared {
                client,
                kek,
                tokens: TokenCache::default(),
            }),
        }
    }

    /// `(kind, channel)` pairs to register with the worker (`Worker::with_channel`).
    pub fn channels(&self) -> Vec<(&'static str, Arc<dyn Channel>)> {
        vec![
            (KEYCLOAK, Arc::new(keycloak::Keycloak(self.shared.clone()))),
            (OKTA, Arc::new(okta::Okta(self.shared.clone()))),
            (ENTRA, Arc::new(entra::Entra(self.shared.clone()))),
            (AUTH0, Arc::new(auth0::Auth0(self.shared.clone()))),
        ]
    }
}

/// A target's settings read for one delivery.
pub(crate) struct Loaded<'a, C> {
    pub target: &'a target::Model,
    pub config: C,
}

impl<'a, C: ProviderConfig> Loaded<'a, C> {
    pub(crate) fn from(claimed: &'a Claimed, provider: &str) -> Result<Self, Performed> {
        let Some(target) = &claimed.target else {
            return Err(Performed::Cancel(format!(
                "the {provider} target was removed"
            )));
        };
        let config: C = serde_json::from_value(target.config.clone())
            .map_err(|e| Performed::Refused(format!("unreadable {provider} settings: {e}")))?;
        config
            .validate()
            .map_err(|e| Performed::Refused(format!("invalid {provider} settings: {e}")))?;
        Ok(Self { target, config })
    }

    /// The token cache key: the target with a digest of its settings, so a changed secret,
    /// client or URL never reuses a token obtained with the old ones.
    pub(crate) fn cache_key(&self) -> String {
        use sha2::{Digest as _, Sha256};
        let digest = Sha256::digest(self.target.config.to_string().as_bytes());
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}:{hex}", self.target.id)
    }

    pub(crate) fn open(
        &self,
        kek: &KeyEncryptionKey,
        field: &str,
        sealed: &Sealed,
    ) -> Result<Zeroizing<String>, Performed> {
        open_secret(kek, &self.target.tenant_id, field, &sealed.0).map_err(Performed::Refused)
    }
}

/// The value of the SCIM attribute that names the user at the provider.
pub(crate) fn scim_value(
    claimed: &Claimed,
    provider: &str,
    attribute: &str,
) -> Result<String, Performed> {
    let mapping =
        SubjectMapping::parse(attribute).map_err(|e| Performed::Refused(e.to_string()))?;
    mapping
        .resolve(&claimed.event.user_snapshot)
        .ok_or_else(|| {
            Performed::Refused(format!(
                "the SCIM user {} has no {} value to find them at {provider}",
                claimed.event.user_id,
                mapping.as_str()
            ))
        })
}

/// Checks a `scim_attribute` setting.
pub(crate) fn check_attribute(attribute: &str) -> Result<(), String> {
    SubjectMapping::parse(attribute)
        .map(|_| ())
        .map_err(|e| format!("scim_attribute: {e}"))
}

/// Checks a base URL setting (shape only; the policy is checked by
/// [`validate_config_for`] and again before every call).
pub(crate) fn check_base_url(field: &str, value: &str) -> Result<(), String> {
    let url = url::Url::parse(value)
        .map_err(|e| format!("{field} {value:?} is not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return Err(format!("{field} {value:?} must be an https URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{field} {value:?} must not have a query or fragment"
        ));
    }
    Ok(())
}

pub(crate) fn check_nonempty(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        Err(format!("{field} is required"))
    } else {
        Ok(())
    }
}

/// `base` without a trailing slash, then `/` and the path.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// One path segment, percent-encoded (a user id such as `auth0|5f…` or a UPN).
pub(crate) fn segment(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The answer when the provider has no such user, per the target's setting.
pub(crate) fn missing_user(
    policy: OnMissingUser,
    provider: &str,
    how: &str,
    answer: Option<Reply>,
) -> Performed {
    let note = format!(
        "{provider} has no user with {how}: no session or token to end there \
         (if the person should exist at {provider}, check the target's user mapping)"
    );
    match (policy, answer) {
        (OnMissingUser::Skip, _) => Performed::Cancel(note),
        (OnMissingUser::Fail, Some(reply)) => reply.failed(),
        (OnMissingUser::Fail, None) => Performed::Refused(note),
    }
}

/// How a conversation authenticates its API calls.
pub(crate) enum Auth {
    /// A fixed `Authorization` value (Okta's `SSWS` API token).
    Fixed(Zeroizing<String>),
    /// A bearer token from the client credentials grant, cached under `key`.
    ClientCredentials {
        key: String,
        request: Box<dyn Fn() -> Result<TokenRequest, String> + Send + Sync>,
    },
}

/// A token request (RFC 6749 §4.4.2): form fields, and HTTP Basic client authentication
/// (RFC 6749 §2.3.1) when `basic` is set.
pub(crate) struct TokenRequest {
    pub url: String,
    pub form: Vec<(&'static str, Zeroizing<String>)>,
    pub basic: Option<(String, Zeroizing<String>)>,
}

/// One API call of a delivery.
pub(crate) struct Call {
    pub step: &'static str,
    pub method: Method,
    pub url: String,
    pub json: Option<serde_json::Value>,
}

/// A provider's answer to one call, with its body.
pub(crate) struct Reply {
    pub provider: &'static str,
    pub step: &'static str,
    pub exchange: Exchange,
    pub body: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("provider", &self.provider)
            .field("step", &self.step)
            .field("exchange", &self.exchange)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl Reply {
    pub(crate) fn status(&self) -> u16 {
        self.exchange.status.unwrap_or(0)
    }

    /// A 404 whose body carries the provider's "no such user" mark. Any other 404 (a
    /// wrong realm, path or API version) is a configuration error, not a missing user.
    pub(crate) fn is_missing_user(&self, mark: &str) -> bool {
        self.status() == 404 && String::from_utf8_lossy(&self.body).contains(mark)
    }

    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status())
    }

    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, Performed> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Performed::Refused(format!(
                "{}: {}: unexpected answer (HTTP {}): {e}",
                self.provider,
                self.step,
                self.status()
            ))
        })
    }

    /// This answer as the delivery's failure, naming the step.
    pub(crate) fn failed(self) -> Performed {
        Performed::Answered(label(self.exchange, self.provider, self.step))
    }

    /// This answer as the delivery's (decisive) success.
    pub(crate) fn done(self) -> Performed {
        Performed::Answered(self.exchange)
    }
}

/// Names the step in what the operator sees: the worker shows `HTTP {status}: {excerpt}`
/// or, without an answer, the error.
fn label(mut ex: Exchange, provider: &str, step: &str) -> Exchange {
    let what = format!("{provider}: {step}");
    if ex.status.is_some() {
        ex.body_excerpt = Some(match ex.body_excerpt.take() {
            Some(b) if !b.trim().is_empty() => format!("[{what}] {b}"),
            _ => format!("[{what}]"),
        });
    }
    ex.error = Some(match ex.error.take() {
        Some(e) => format!("{what}: {e}"),
        None => format!("{what} failed"),
    });
    ex
}

/// One delivery's calls to one provider.
pub(crate) struct Conversation<'a> {
    pub shared: &'a Shared,
    pub provider: &'static str,
    pub auth: Auth,
}

impl Conversation<'_> {
    /// Makes `call`, authenticated. A 401 with a cached token drops it and repeats the call
    /// once with a fresh one. `Err` when no answer can decide (no token, refused URL,
    /// transport failure): the delivery's outcome, labelled with the step.
    pub(crate) async fn send(&self, call: Call) -> Result<Reply, Performed> {
        let mut refreshed = false;
        loop {
            let (authorization, token) = match &self.auth {
                Auth::Fixed(value) => (value.clone(), None),
                Auth::ClientCredentials { key, request } => {
                    let token = self
                        .shared
                        .tokens
                        .get(key, || {
                            fetch_token(self.shared, self.provider, request.as_ref())
                        })
                        .await?;
                    (
                        Zeroizing::new(format!("Bearer {}", token.as_str())),
                        Some(token),
                    )
                }
            };
            let mut header = HeaderValue::from_str(&authorization).map_err(|_| {
                Performed::Refused(format!(
                    "{}: the access token is not a valid header value",
                    self.provider
                ))
            })?;
            header.set_sensitive(true);
            let (exchange, body) = self
                .shared
                .send_whole(&call.url, |client, url| {
                    let mut request = client
                        .request(call.method.clone(), url)
                        .header(AUTHORIZATION, header)
                        .header(ACCEPT, "application/json");
                    if let Some(json) = &call.json {
                        request = request.json(json);
                    } else if call.method == Method::POST || call.method == Method::PUT {
                        // An explicit empty body: `Content-Length: 0` (Graph answers 411
                        // to a POST without a length).
                        request = request
                            .header(reqwest::header::CONTENT_LENGTH, "0")
                            .body(Vec::new());
                    }
                    request
                })
                .await
                .map_err(|refused| {
                    Performed::Refused(format!("{}: {}: {refused}", self.provider, call.step))
                })?;
            if exchange.status.is_none() {
                return Err(Performed::Answered(label(
                    exchange,
                    self.provider,
                    call.step,
                )));
            }
            if exchange.status == Some(401)
                && !refreshed
                && let (Auth::ClientCredentials { key, .. }, Some(token)) = (&self.auth, &token)
            {
                tracing::info!(
                    provider = self.provider,
                    step = call.step,
                    "access token refused; fetching a new one"
                );
                self.shared.tokens.invalidate(key, token.as_str()).await;
                refreshed = true;
                continue;
            }
            return Ok(Reply {
                provider: self.provider,
                step: call.step,
                exchange,
                body,
            });
        }
    }
}

/// The token endpoint's answer (RFC 6749 §5.1 and §5.2).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct TokenError {
    error: Option<String>,
}

const TOKEN_STEP: &str = "get an access token";

async fn fetch_token(
    shared: &Shared,
    provider: &'static str,
    request: &(dyn Fn() -> Result<TokenRequest, String> + Send + Sync),
) -> Result<Fresh, Performed> {
    let request =
        request().map_err(|e| Performed::Refused(format!("{provider}: {TOKEN_STEP}: {e}")))?;
    let form = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in &request.form {
            form.append_pair(name, value);
        }
        Zeroizing::new(form.finish())
    };
    let basic = match &request.basic {
        Some((id, secret)) => {
            // RFC 6749 §2.3.1: both form-urlencoded before they are joined and encoded.
            use base64::Engine as _;
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = Zeroizing::new(format!("{}:{}", enc(id), enc(secret)));
            let mut value = HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
            ))
            .map_err(|_| {
                Performed::Refused(format!(
                    "{provider}: {TOKEN_STEP}: unusable client credentials"
                ))
            })?;
            value.set_sensitive(true);
            Some(value)
        }
        None => None,
    };
    let (exchange, body) = shared
        .send_whole(&request.url, |client, url| {
            let mut req = client
                .post(url)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(ACCEPT, "application/json")
                .body(form.as_bytes().to_vec());
            if let Some(basic) = basic {
                req = req.header(AUTHORIZATION, basic);
            }
            req
        })
        .await
        .map_err(|refused| Performed::Refused(format!("{provider}: {TOKEN_STEP}: {refused}")))?;
    let status = match exchange.status {
        None => return Err(Performed::Answered(label(exchange, provider, TOKEN_STEP))),
        Some(s) => s,
    };
    if !(200..300).contains(&status) {
        let mut ex = exchange;
        let code = serde_json::from_slice::<TokenError>(&body)
            .ok()
            .and_then(|e| e.error);
        if let Some(hint) = code.as_deref().and_then(token_error_hint)
            && let Some(excerpt) = ex.body_excerpt.take()
        {
            ex.body_excerpt = Some(format!("{hint}: {excerpt}"));
        }
        return Err(Performed::Answered(label(ex, provider, TOKEN_STEP)));
    }
    // Never keep a successful answer: it holds the token.
    let unusable = |why: &str| {
        Performed::Refused(format!(
            "{provider}: {TOKEN_STEP}: the token endpoint answered HTTP {status} {why}"
        ))
    };
    let answer: TokenAnswer =
        serde_json::from_slice(&body).map_err(|_| unusable("with no JSON token response"))?;
    let token = answer
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unusable("without an access_token"))?;
    if let Some(kind) = &answer.token_type
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(unusable(&format!(
            "with a {kind:?} token; deprov sends bearer tokens only (RFC 6750)"
        )));
    }
    let expires_in = answer.expires_in.and_then(|v| match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    Ok(Fresh {
        token: Zeroizing::new(token),
        expires_in: expires_in.map(Duration::from_secs),
    })
}

/// What an operator should check for the RFC 6749 §5.2 error codes that need them.
fn token_error_hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "invalid_client" => {
            "the provider refused deprov's client credentials (check the client id and secret or key)"
        }
        "unauthorized_client" => "the client may not use the client credentials grant",
        "invalid_scope" => "the client was not granted the scope asked for",
        "invalid_grant" | "invalid_request" => "the token request was refused",
        "access_denied" => "the client is not allowed this API",
        _ => return None,
    })
}

/// Boxes a delivery future for [`Channel::perform`].
pub(crate) type PerformFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Performed> + Send + 'a>>;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// a failed unwrap is a failed test
mod tests;
