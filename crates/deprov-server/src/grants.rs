//! The grants API: applications register the OAuth grants they hold for a user, so that
//! deprov revokes them at the OpenID Provider (RFC 7009) when the user is de-provisioned.
//!
//! Routes, under the tenant the client belongs to (`client_id`s are unique per tenant, not
//! across tenants, so the tenant is part of the URL and of the assertion audience):
//!
//! - `POST {public_url}/api/v1/{tenant}/grants` — register. Body
//!   `application/x-www-form-urlencoded` (as RFC 7009 §2.1) or `application/json`, with
//!   RFC 7009 names: `token` (REQUIRED), `token_type_hint` (`refresh_token`,
//!   `access_token`, …), plus `sub` (REQUIRED: the user, as the client's subject mapping
//!   names it) and optionally `expires_at` (seconds since the epoch) or `expires_in`
//!   (seconds). 201 with the grant's metadata; registering the same token again is 200
//!   with the same grant.
//! - `GET …/grants[?sub=…]` — the client's grants, metadata only.
//! - `DELETE …/grants/{id}` — withdraw one (the application revoked or dropped it).
//! - `POST …/grants/withdraw` with `token` — withdraw by the token itself.
//!
//! `GET` and `DELETE` carry no body, so they take HTTP Basic only; a client that
//! authenticates with assertions withdraws with `POST …/grants/withdraw`.
//!
//! Client authentication (one method per request, RFC 6749 §2.3): HTTP Basic with the
//! client_id and the `deprov_grants_…` secret deprov issued (§2.3.1, both form-urlencoded
//! inside Basic), the same in the body (`client_id`, `client_secret`), or a client assertion
//! (RFC 7523 §2.2, `private_key_jwt`) signed with the key whose public half was registered
//! (`api_public_key`): `iss` = `sub` = client_id, `aud` = this endpoint's URL
//! (`{public_url}/api/v1/{tenant}/grants`), `exp` within 5 minutes, `jti` never seen before
//! (replays are refused while the assertion is valid, by every replica: the `jti`s are kept in the database).
//! Secrets compare in constant time against a SHA-256. A client of another tenant, an
//! unknown client and a wrong secret all get the same 401 `invalid_client`.
//!
//! Errors are RFC 9457 problem documents like the admin API's, carrying RFC 6749 §5.2's
//! `error` and `error_description` members so OAuth client libraries read them too.
//!
//! Never logged, never returned: the token (only its grant id and hash-derived identity are
//! used), the client secret, the assertion.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use deprov_core::SubjectMapping;
use deprov_core::token::TokenHash;
use deprov_revocation::channels::client_auth::JWT_BEARER_ASSERTION_TYPE;
use deprov_revocation::channels::oauth_revocation::OAuthRevocationConfig;
use deprov_revocation::keys::{KeyRing, seal_grant};
use deprov_store::grants::{GrantInfo, NewGrant};
use deprov_store::op_targets::{KIND_OAUTH_REVOCATION, Target};
use deprov_store::{Store, StoreError};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::Config;
use crate::ops::grants_endpoint;

/// The largest request body read.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// The longest token accepted (JWT access tokens can be long; 8 KiB is generous).
const MAX_TOKEN_LEN: usize = 8192;
/// The longest client assertion lifetime accepted (RFC 7523 §3 leaves it to the server).
const MAX_ASSERTION_LIFETIME_SECS: i64 = 300;

/// An error of the grants API: an RFC 9457 problem with RFC 6749 §5.2 members.
#[derive(Debug, thiserror::Error)]
#[error("{error}: {description}")]
pub struct GrantError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// Basic was attempted: answer with `WWW-Authenticate` (RFC 6749 §5.2).
    basic_challenge: bool,
}

impl GrantError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn invalid_client(basic: bool) -> Self {
        Self {
            basic_challenge: basic,
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed (unknown client of this tenant, wrong secret, \
                 or an invalid client assertion)",
            )
        }
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "grants API failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error",
        )
    }
}

impl From<StoreError> for GrantError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Self::new(StatusCode::CONFLICT, "invalid_request", m),
            StoreError::NotFound(m) => Self::new(StatusCode::NOT_FOUND, "not_found", m),
            other => Self::internal(other),
        }
    }
}

impl ResponseError for GrantError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.content_type("application/problem+json")
            .insert_header((header::CACHE_CONTROL, "no-store"));
        if self.basic_challenge {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"deprov grants\""),
            ));
        }
        res.json(json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.description,
            "error": self.error,
            "error_description": self.description,
        }))
    }
}

/// A request's parameters, from a form or a JSON object (strings and numbers). `Debug`
/// shows the names only: `token`, `client_secret` and `client_assertion` are secrets.
#[derive(Default)]
struct Params(HashMap<String, String>);

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        f.debug_tuple("Params").field(&names).finish()
    }
}

impl Params {
    fn parse(req: &HttpRequest, body: &Bytes) -> Result<Self, GrantError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(GrantError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                format!("request body larger than {MAX_BODY_BYTES} bytes"),
            ));
        }
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let mut out = HashMap::new();
        match content_type.as_str() {
            "application/x-www-form-urlencoded" | "" => {
                for (k, v) in url::form_urlencoded::parse(body) {
                    // RFC 6749 §3.2: "Request and response parameters MUST NOT be included
                    // more than once."
                    if out.insert(k.to_string(), v.to_string()).is_some() {
                        return Err(GrantError::invalid_request(format!(
                            "parameter {k} appears more than once"
                        )));
                    }
                }
            }
            "application/json" => {
                let v: Value = serde_json::from_slice(body).map_err(|e| {
                    GrantError::invalid_request(format!("the body is not JSON: {e}"))
                })?;
                let Value::Object(obj) = v else {
                    return Err(GrantError::invalid_request(
                        "the body must be a JSON object",
                    ));
                };
                for (k, v) in obj {
                    let s = match v {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Null => continue,
                        _ => {
                            return Err(GrantError::invalid_request(format!(
                                "{k} must be a string or a number"
                            )));
                        }
                    };
                    out.insert(k, s);
                }
            }
            other => {
                return Err(GrantError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "invalid_request",
                    format!(
                        "content type {other:?} is not accepted: use \
                         application/x-www-form-urlencoded or application/json"
                    ),
                ));
            }
        }
        Ok(Self(out))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// The verification key of a client's registered public key.
pub fn decoding_key(alg: &str, pem: &str) -> Result<(Algorithm, DecodingKey), String> {
    use std::str::FromStr as _;
    let algorithm =
        Algorithm::from_str(alg).map_err(|_| format!("unsupported JOSE alg {alg:?}"))?;
    let key = match algorithm {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => DecodingKey::from_rsa_pem(pem.as_bytes()),
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem.as_bytes()),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(pem.as_bytes()),
        _ => return Err(format!("{alg} is not an asymmetric signature algorithm")),
    }
    .map_err(|e| format!("not a {alg} public key in PEM: {e}"))?;
    Ok((algorithm, key))
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The authenticated client.
struct Client {
    target: Target,
    config: OAuthRevocationConfig,
}

/// RFC 6749 §2.3 / RFC 7523 §3: finds and authenticates the calling client of `tenant`.
async fn authenticate(
    req: &HttpRequest,
    params: &Params,
    store: &Store,
    tenant: &str,
    audience: &str,
) -> Result<Client, GrantError> {
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("basic")
                .then(|| rest.trim().to_owned())
        });
    let post_secret = params.get("client_secret");
    let assertion = params.get("client_assertion");
    let methods = usize::from(basic.is_some())
        + usize::from(post_secret.is_some())
        + usize::from(assertion.is_some());
    if methods > 1 {
        return Err(GrantError::invalid_request(
            "use exactly one client authentication method (RFC 6749 §2.3)",
        ));
    }
    let find = |client_id: String| async move {
        match store
            .find_target(tenant, &[KIND_OAUTH_REVOCATION], &client_id)
            .await
        {
            Ok(t) if t.client_id == client_id => {
                let config =
                    OAuthRevocationConfig::from_value(&t.config).map_err(GrantError::internal)?;
                Ok(Some(Client { target: t, config }))
            }
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(GrantError::from(e)),
        }
    };
    let check_secret = |client: &Client, secret: &str| {
        client
            .config
            .api_secret_hash
            .as_deref()
            .and_then(TokenHash::from_hex)
            .is_some_and(|stored| stored.matches(&TokenHash::of(secret)))
    };
    if let Some(b64) = basic {
        let decoded = STANDARD
            .decode(b64.as_bytes())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| GrantError::invalid_client(true))?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| GrantError::invalid_client(true))?;
        // RFC 6749 §2.3.1: both are form-urlencoded inside Basic.
        let decode = |s: &str| -> String {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let (id, secret) = (decode(id), decode(secret));
        if let Some(c) = params.get("client_id")
            && c != id
        {
            return Err(GrantError::invalid_request(
                "client_id in the body differs from the authenticated client",
            ));
        }
        let Some(client) = find(id).await? else {
            // As much work as for a known client: timing does not tell which ids exist.
            let _ = TokenHash::of(&secret).matches(&TokenHash::of(""));
            return Err(GrantError::invalid_client(true));
        };
        return if check_secret(&client, &secret) {
            Ok(client)
        } else {
            Err(GrantError::invalid_client(true))
        };
    }
    if let Some(secret) = post_secret {
        let id = params
            .get("client_id")
            .ok_or_else(|| GrantError::invalid_request("client_secret without client_id"))?;
        let Some(client) = find(id.to_owned()).await? else {
            let _ = TokenHash::of(secret).matches(&TokenHash::of(""));
            return Err(GrantError::invalid_client(false));
        };
        return if check_secret(&client, secret) {
            Ok(client)
        } else {
            Err(GrantError::invalid_client(false))
        };
    }
    if let Some(jwt) = assertion {
        if params.get("client_assertion_type") != Some(JWT_BEARER_ASSERTION_TYPE) {
            return Err(GrantError::invalid_request(format!(
                "client_assertion_type must be {JWT_BEARER_ASSERTION_TYPE} (RFC 7523 §2.2)"
            )));
        }
        // The issuer names the key to verify with; nothing else is trusted before that.
        let unverified: Value = jsonwebtoken::dangerous::insecure_decode_claims(jwt)
            .map_err(|_| GrantError::invalid_client(false))?;
        let iss = unverified
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| GrantError::invalid_client(false))?
            .to_owned();
        if let Some(c) = params.get("client_id")
            && c != iss
        {
            return Err(GrantError::invalid_client(false));
        }
        let client = find(iss.clone())
            .await?
            .ok_or_else(|| GrantError::invalid_client(false))?;
        let (Some(pem), Some(alg)) = (
            client.config.api_public_key.as_deref(),
            client.config.api_public_key_alg.as_deref(),
        ) else {
            return Err(GrantError::invalid_client(false));
        };
        let (algorithm, key) = decoding_key(alg, pem).map_err(GrantError::internal)?;
        let mut validation = Validation::new(algorithm);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[iss.as_str()]);
        validation.sub = Some(iss.clone());
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
            .map_err(|_| GrantError::invalid_client(false))?;
        let claims = data.claims;
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        let now = now_secs();
        if exp - now > MAX_ASSERTION_LIFETIME_SECS {
            return Err(GrantError::invalid_client(false));
        }
        // An assertion issued in the future (beyond clock skew) is not one to trust.
        if claims
            .get("iat")
            .and_then(Value::as_i64)
            .is_some_and(|iat| iat > now + 60)
        {
            return Err(GrantError::invalid_client(false));
        }
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .filter(|j| !j.is_empty())
            .ok_or_else(|| GrantError::invalid_client(false))?;
        let first = store
            .first_use_of_assertion(
                &format!("{}\n{jti}", client.target.id),
                exp.saturating_add(30).saturating_mul(1000),
            )
            .await
            .map_err(GrantError::internal)?;
        if !first {
            return Err(GrantError::invalid_client(false));
        }
        return Ok(client);
    }
    Err(GrantError::invalid_client(true))
}

fn grant_json(info: &GrantInfo) -> Value {
    json!({
        "grant_id": info.id,
        "client_id": info.client_id,
        "sub": info.sub,
        "token_type_hint": info.token_type_hint,
        "expires_at": info.expires_at.map(|ms| ms / 1000),
        "created_at": info.created_at / 1000,
        "last_attempt_at": info.last_attempt_at.map(|ms| ms / 1000),
        "last_error": info.last_error,
    })
}

async fn register(
    req: HttpRequest,
    body: Bytes,
    tenant: web::Path<String>,
    store: web::Data<Store>,
    config: web::Data<Config>,
    keys: web::Data<Arc<KeyRing>>,
) -> Result<HttpResponse, GrantError> {
    let tenant = tenant.into_inner();
    let params = Params::parse(&req, &body)?;
    let audience = grants_endpoint(&config.public_url(), &tenant);
    let client = authenticate(&req, &params, &store, &tenant, &audience).await?;
    let token = params
        .get("token")
        .ok_or_else(|| GrantError::invalid_request("token is required (RFC 7009 §2.1)"))?;
    if token.len() > MAX_TOKEN_LEN || token.chars().any(char::is_control) {
        return Err(GrantError::invalid_request(format!(
            "token must be at most {MAX_TOKEN_LEN} printable characters"
        )));
    }
    let hint = params.get("token_type_hint").map(str::to_owned);
    if let Some(h) = &hint
        && (h.len() > 32 || !h.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    {
        return Err(GrantError::invalid_request(
            "token_type_hint must be a registered hint such as refresh_token or access_token",
        ));
    }
    let sub = params.get("sub").ok_or_else(|| {
        GrantError::invalid_request("sub (the user the grant belongs to) is required")
    })?;
    if sub.len() > 1024 {
        return Err(GrantError::invalid_request("sub is too long"));
    }
    let now = now_secs();
    let expires_at = match (params.get("expires_at"), params.get("expires_in")) {
        (Some(_), Some(_)) => {
            return Err(GrantError::invalid_request(
                "give expires_at or expires_in, not both",
            ));
        }
        (Some(at), None) => Some(at.parse::<i64>().map_err(|_| {
            GrantError::invalid_request("expires_at must be seconds since the epoch")
        })?),
        (None, Some(within)) => {
            let s = within
                .parse::<i64>()
                .map_err(|_| GrantError::invalid_request("expires_in must be seconds"))?;
            Some(now.saturating_add(s))
        }
        (None, None) => None,
    };
    if let Some(at) = expires_at
        && at <= now
    {
        return Err(GrantError::invalid_request(
            "the grant has already expired: nothing to revoke",
        ));
    }
    let mapping = SubjectMapping::parse(&client.config.subject).map_err(GrantError::internal)?;
    let users = store
        .users_by_subject(&client.target.tenant_id, &mapping, sub)
        .await?;
    let user = match users.as_slice() {
        [] => {
            return Err(GrantError::new(
                StatusCode::BAD_REQUEST,
                "unknown_subject",
                format!(
                    "tenant {tenant} has no user whose {mapping} is {sub:?} (client {} names \
                     users by {mapping})",
                    client.target.client_id
                ),
            ));
        }
        [one] => one,
        _ => {
            return Err(GrantError::new(
                StatusCode::CONFLICT,
                "ambiguous_subject",
                format!("several users of tenant {tenant} have {mapping} {sub:?}"),
            ));
        }
    };
    if !user.active {
        return Err(GrantError::new(
            StatusCode::CONFLICT,
            "inactive_subject",
            format!(
                "the user {sub:?} is de-provisioned: deprov will not hold a grant it would \
                 never revoke; revoke this token at the OP yourself"
            ),
        ));
    }
    let grant_id = uuid::Uuid::now_v7().to_string();
    let sealed = seal_grant(keys.kek(), &client.target.tenant_id, &grant_id, token)
        .map_err(GrantError::internal)?;
    let (model, created) = store
        .insert_grant(NewGrant {
            id: grant_id,
            tenant_id: client.target.tenant_id.clone(),
            target_id: client.target.id.clone(),
            user_id: user.id.clone(),
            subject: sub.to_owned(),
            token_sealed: sealed,
            token_hash: TokenHash::of(token).to_hex(),
            token_type_hint: hint,
            expires_at: expires_at.map(|s| s.saturating_mul(1000)),
        })
        .await?;
    tracing::info!(
        tenant = %tenant,
        client_id = %client.target.client_id,
        grant = %model.id,
        created,
        "grant registered"
    );
    let info = GrantInfo::of(&model, &client.target.client_id);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(grant_json(&info)))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    sub: Option<String>,
}

async fn list(
    req: HttpRequest,
    tenant: web::Path<String>,
    query: web::Query<ListQuery>,
    store: web::Data<Store>,
    config: web::Data<Config>,
) -> Result<HttpResponse, GrantError> {
    let tenant = tenant.into_inner();
    let audience = grants_endpoint(&config.public_url(), &tenant);
    let client = authenticate(&req, &Params::default(), &store, &tenant, &audience).await?;
    let user_ids: Option<Vec<String>> = match &query.sub {
        Some(sub) => {
            let mapping =
                SubjectMapping::parse(&client.config.subject).map_err(GrantError::internal)?;
            Some(
                store
                    .users_by_subject(&client.target.tenant_id, &mapping, sub)
                    .await?
                    .into_iter()
                    .map(|u| u.id)
                    .collect(),
            )
        }
        None => None,
    };
    let grants = store.client_grants(&client.target.id, None).await?;
    let rows: Vec<Value> = grants
        .iter()
        .filter(|g| user_ids.as_ref().is_none_or(|ids| ids.contains(&g.user_id)))
        .map(|g| grant_json(&GrantInfo::of(g, &client.target.client_id)))
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "grants": rows })))
}

async fn withdraw(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    store: web::Data<Store>,
    config: web::Data<Config>,
) -> Result<HttpResponse, GrantError> {
    let (tenant, grant_id) = path.into_inner();
    let audience = grants_endpoint(&config.public_url(), &tenant);
    let client = authenticate(&req, &Params::default(), &store, &tenant, &audience).await?;
    if store.delete_grant(&client.target.id, &grant_id).await? {
        tracing::info!(tenant = %tenant, client_id = %client.target.client_id, grant = %grant_id, "grant withdrawn");
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(GrantError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "client {} holds no grant {grant_id:?}",
                client.target.client_id
            ),
        ))
    }
}

async fn withdraw_by_token(
    req: HttpRequest,
    body: Bytes,
    tenant: web::Path<String>,
    store: web::Data<Store>,
    config: web::Data<Config>,
) -> Result<HttpResponse, GrantError> {
    let tenant = tenant.into_inner();
    let params = Params::parse(&req, &body)?;
    let audience = grants_endpoint(&config.public_url(), &tenant);
    let client = authenticate(&req, &params, &store, &tenant, &audience).await?;
    let token = params
        .get("token")
        .ok_or_else(|| GrantError::invalid_request("token is required"))?;
    // Like RFC 7009 §2.2: withdrawing a token deprov does not hold is not an error.
    if let Some(id) = store
        .delete_grant_by_hash(&client.target.id, &TokenHash::of(token).to_hex())
        .await?
    {
        tracing::info!(tenant = %tenant, client_id = %client.target.client_id, grant = %id, "grant withdrawn");
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Mounts the grants API. Needs `web::Data` of the [`Store`], the [`Config`], the
/// `Arc<KeyRing>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/{tenant}/grants")
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .route("", web::post().to(register))
            .route("", web::get().to(list))
            .route("/withdraw", web::post().to(withdraw_by_token))
            .route("/{grant_id}", web::delete().to(withdraw)),
    );
}
