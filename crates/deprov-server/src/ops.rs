//! The service behind `deprov op …` and `/admin/v1/tenants/{tenant}/ops`: targets at
//! OpenID Providers and authorization servers.
//!
//! Kinds:
//! - `oauth_revocation`: one client registered at one OP, whose grants (registered by the
//!   application through the grants API) deprov revokes with RFC 7009
//!   (`deprov_revocation::channels::oauth_revocation`).
//! - `global_token_revocation`: an endpoint of draft-parecki-oauth-global-token-revocation.
//! - `keycloak`, `okta`, `entra`, `auth0`: provider admin APIs; their channels validate and
//!   read their own config (`channels::provider_admin`).
//!
//! A request carries the kind's settings as a JSON object (`config`), **secrets in clear**;
//! the service validates them per kind and seals every secret under the KEK
//! (`deprov_revocation::keys::sealed`) before the store sees the config. For the provider
//! kinds, whose fields this module does not know, a top-level member written as
//! `{"$secret": "…"}` is sealed under its member name. Nothing returned or audited holds a
//! secret: views go through [`redacted_config`].
//!
//! For `oauth_revocation`, unless the request gives `api_public_key` only, deprov issues a
//! `deprov_grants_…` secret for the application to authenticate to the grants API; it is
//! returned once (`grants_api_secret`) and stored as its SHA-256.

use deprov_core::token::{IssuedToken, TokenKind};
use deprov_core::{Secret, SubjectMapping};
use deprov_revocation::channels::client_auth::{
    ClientAuthMethod, FIELD_CLIENT_SECRET, FIELD_PRIVATE_KEY, check_private_key,
};
use deprov_revocation::channels::global_token_revocation::{
    FIELD_BEARER_TOKEN, GlobalTokenRevocationConfig, GtrAuth, SubIdFormat,
};
use deprov_revocation::channels::oauth_revocation::OAuthRevocationConfig;
use deprov_revocation::keys::{KeyEncryptionKey, seal_target_secret};
use deprov_revocation::outbound::{AddressPolicy, validate_target_url};
use deprov_store::op_targets::{
    KIND_GLOBAL_TOKEN_REVOCATION, KIND_OAUTH_REVOCATION, NewTarget, PROVIDER_ADMIN_KINDS, Target,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::admin::views::InvalidField;

fn invalid(field: &str, message: impl Into<String>) -> InvalidField {
    InvalidField {
        field: field.to_owned(),
        message: message.into(),
    }
}

fn yes() -> bool {
    true
}

/// A target at an OpenID Provider or authorization server to register. `Debug` shows the
/// names of the config members, never their values (secrets arrive in clear here).
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpTargetRequest {
    /// `oauth_revocation`, `global_token_revocation`, `keycloak`, `okta`, `entra` or `auth0`.
    #[schema(example = "oauth_revocation")]
    pub kind: String,
    /// The client_id at the OP (`oauth_revocation`), or a name for the target.
    #[schema(example = "wiki")]
    pub client_id: String,
    /// Groups (display name or id); when set, only their members' de-provisioning (and
    /// removal from them) reaches this target.
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub enabled: bool,
    /// The kind's settings, secrets in clear (sealed before storage, never returned).
    /// `oauth_revocation`: `issuer`, optional `metadata_url` / `revocation_endpoint`,
    /// `auth_method` (`client_secret_basic` default, `client_secret_post`,
    /// `private_key_jwt`), `client_secret` or `private_key` (PEM) + `private_key_alg` +
    /// `kid`, `subject` (how the application names users; default `externalId|id`),
    /// optional `api_public_key` (PEM) + `api_public_key_alg` for `private_key_jwt` at the
    /// grants API, `issue_api_secret` (default true).
    /// `global_token_revocation`: `endpoint`, `subject_format` (`email`, `iss_sub`),
    /// `subject`, `subject_issuer`, `auth` (`bearer`, `private_key_jwt`), `bearer_token` or
    /// `private_key` + `private_key_alg` + `kid`, `audience`.
    #[schema(value_type = Object)]
    pub config: Value,
}

impl std::fmt::Debug for OpTargetRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let members: Vec<&String> = self
            .config
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        f.debug_struct("OpTargetRequest")
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("groups", &self.groups)
            .field("enabled", &self.enabled)
            .field("config_members", &members)
            .finish()
    }
}

/// A registered target as shown (the same document as `deprov op show --json`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpTargetView {
    pub id: String,
    pub tenant: String,
    pub kind: String,
    pub client_id: String,
    /// The settings with every secret replaced by `"[sealed]"`.
    #[schema(value_type = Object)]
    pub config: Value,
    pub groups: Vec<String>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Shown once, when deprov issued it: the secret the application authenticates with at
    /// the grants API (`client_secret_basic` or `client_secret_post`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grants_api_secret: Option<String>,
    /// Where the application registers its grants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grants_endpoint: Option<String>,
}

impl OpTargetView {
    pub fn of(target: Target, public_url: &str) -> Self {
        let grants_endpoint = (target.kind == KIND_OAUTH_REVOCATION)
            .then(|| grants_endpoint(public_url, &target.tenant));
        Self {
            config: redacted_config(&target.kind, &target.config),
            id: target.id,
            tenant: target.tenant,
            kind: target.kind,
            client_id: target.client_id,
            groups: target.groups,
            enabled: target.enabled,
            created_at: target.created_at,
            updated_at: target.updated_at,
            grants_api_secret: None,
            grants_endpoint,
        }
    }
}

/// `{public_url}/api/v1/{tenant}/grants`: also the `aud` client assertions must carry.
pub fn grants_endpoint(public_url: &str, tenant: &str) -> String {
    format!(
        "{}/api/v1/{tenant}/grants",
        public_url.trim_end_matches('/')
    )
}

/// Names that look like secrets, for configs of kinds this module does not know.
fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "secret",
        "token",
        "password",
        "private",
        "key",
        "credential",
    ]
    .iter()
    .any(|w| n.contains(w))
        && !n.ends_with("_id")
        && !n.ends_with("_alg")
        && n != "kid"
}

/// A config as operators may see it.
pub fn redacted_config(kind: &str, config: &Value) -> Value {
    match kind {
        KIND_OAUTH_REVOCATION => OAuthRevocationConfig::from_value(config)
            .map(|c| c.redacted())
            .unwrap_or_else(|e| json!({ "error": e })),
        KIND_GLOBAL_TOKEN_REVOCATION => GlobalTokenRevocationConfig::from_value(config)
            .map(|c| c.redacted())
            .unwrap_or_else(|e| json!({ "error": e })),
        _ => match config.as_object() {
            Some(obj) => Value::Object(
                obj.iter()
                    .map(|(k, v)| {
                        let shown = if looks_secret(k) && !v.is_null() {
                            json!("[sealed]")
                        } else {
                            v.clone()
                        };
                        (k.clone(), shown)
                    })
                    .collect(),
            ),
            None => json!({}),
        },
    }
}

/// What the service needs from the deployment.
#[derive(Debug, Clone, Copy)]
pub struct OpContext<'a> {
    pub kek: &'a KeyEncryptionKey,
    pub policy: AddressPolicy,
    pub tenant_id: &'a str,
}

/// A validated request: the target to store, its audit view, and the grants API secret to
/// show once.
#[derive(Debug)]
pub struct PreparedTarget {
    pub target: NewTarget,
    pub audit: Value,
    pub grants_api_secret: Option<Secret>,
}

/// The members of a request's config, taken one by one. No `Debug`: they hold secrets.
struct Fields {
    obj: Map<String, Value>,
}

impl Fields {
    fn new(config: Value) -> Result<Self, InvalidField> {
        match config {
            Value::Object(obj) => Ok(Self { obj }),
            Value::Null => Ok(Self { obj: Map::new() }),
            _ => Err(invalid("config", "must be a JSON object")),
        }
    }

    fn take_str(&mut self, name: &str) -> Result<Option<String>, InvalidField> {
        match self.obj.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(&format!("config.{name}"), "must be a string")),
        }
    }

    fn take_bool(&mut self, name: &str) -> Result<Option<bool>, InvalidField> {
        match self.obj.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(invalid(&format!("config.{name}"), "must be true or false")),
        }
    }

    fn finish(self) -> Result<(), InvalidField> {
        match self.obj.keys().next() {
            Some(k) => Err(invalid(
                &format!("config.{k}"),
                "is not a setting of this kind",
            )),
            None => Ok(()),
        }
    }
}

fn url_field(
    name: &str,
    value: Option<String>,
    policy: AddressPolicy,
) -> Result<Option<String>, InvalidField> {
    value
        .map(|v| {
            validate_target_url(&v, policy)
                .map(|u| u.to_string())
                .map_err(|e| invalid(&format!("config.{name}"), e.to_string()))
        })
        .transpose()
}

fn seal(ctx: OpContext<'_>, field: &str, secret: &str) -> Result<String, InvalidField> {
    seal_target_secret(ctx.kek, ctx.tenant_id, field, secret.as_bytes())
        .map_err(|e| invalid(&format!("config.{field}"), e.to_string()))
}

fn check_public_key(alg: &str, pem: &str) -> Result<(), String> {
    crate::grants::decoding_key(alg, pem).map(|_| ())
}

impl OpTargetRequest {
    /// Validates the request for its kind and seals its secrets.
    pub fn prepare(self, ctx: OpContext<'_>) -> Result<PreparedTarget, InvalidField> {
        if self.client_id.trim().is_empty() {
            return Err(invalid("client_id", "must not be empty"));
        }
        if let Some(i) = self.groups.iter().position(|g| g.trim().is_empty()) {
            return Err(invalid(&format!("groups[{i}]"), "must not be empty"));
        }
        let mut issued = None;
        let config = match self.kind.as_str() {
            KIND_OAUTH_REVOCATION => {
                let (config, secret) = prepare_oauth_revocation(self.config, ctx)?;
                issued = secret;
                serde_json::to_value(config).map_err(|e| invalid("config", e.to_string()))?
            }
            KIND_GLOBAL_TOKEN_REVOCATION => {
                let config = prepare_gtr(self.config, ctx)?;
                serde_json::to_value(config).map_err(|e| invalid("config", e.to_string()))?
            }
            k if PROVIDER_ADMIN_KINDS.contains(&k) => prepare_generic(k, self.config, ctx)?,
            other => {
                return Err(invalid(
                    "kind",
                    format!(
                        "unknown kind {other:?} (use oauth_revocation, global_token_revocation, \
                         keycloak, okta, entra or auth0)"
                    ),
                ));
            }
        };
        let audit = redacted_config(&self.kind, &config);
        Ok(PreparedTarget {
            target: NewTarget {
                kind: self.kind,
                client_id: self.client_id,
                config,
                groups: self.groups,
                enabled: self.enabled,
            },
            audit,
            grants_api_secret: issued,
        })
    }
}

fn prepare_oauth_revocation(
    config: Value,
    ctx: OpContext<'_>,
) -> Result<(OAuthRevocationConfig, Option<Secret>), InvalidField> {
    let mut f = Fields::new(config)?;
    let issuer = f
        .take_str("issuer")?
        .ok_or_else(|| invalid("config.issuer", "the OP's issuer identifier is required"))?;
    validate_target_url(&issuer, ctx.policy)
        .map_err(|e| invalid("config.issuer", e.to_string()))?;
    let metadata_url = url_field("metadata_url", f.take_str("metadata_url")?, ctx.policy)?;
    let revocation_endpoint = url_field(
        "revocation_endpoint",
        f.take_str("revocation_endpoint")?,
        ctx.policy,
    )?;
    let auth_method = match f.take_str("auth_method")? {
        Some(m) => ClientAuthMethod::parse(&m).map_err(|e| invalid("config.auth_method", e))?,
        None => ClientAuthMethod::ClientSecretBasic,
    };
    let client_secret = f.take_str(FIELD_CLIENT_SECRET)?;
    let private_key = f.take_str(FIELD_PRIVATE_KEY)?;
    let private_key_alg = f.take_str("private_key_alg")?;
    let kid = f.take_str("kid")?;
    let (client_secret, private_key, private_key_alg) = match auth_method {
        ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost => {
            let secret = client_secret.ok_or_else(|| {
                invalid(
                    "config.client_secret",
                    format!("{} requires the client's secret", auth_method.as_str()),
                )
            })?;
            if private_key.is_some() {
                return Err(invalid(
                    "config.private_key",
                    "is used only with auth_method private_key_jwt",
                ));
            }
            (Some(seal(ctx, FIELD_CLIENT_SECRET, &secret)?), None, None)
        }
        ClientAuthMethod::PrivateKeyJwt => {
            let pem = private_key.ok_or_else(|| {
                invalid(
                    "config.private_key",
                    "private_key_jwt requires the client's private key (PEM)",
                )
            })?;
            if client_secret.is_some() {
                return Err(invalid(
                    "config.client_secret",
                    "is not used with auth_method private_key_jwt",
                ));
            }
            let alg = private_key_alg.unwrap_or_else(|| "RS256".to_owned());
            check_private_key(&alg, &pem).map_err(|e| invalid("config.private_key", e))?;
            (None, Some(seal(ctx, FIELD_PRIVATE_KEY, &pem)?), Some(alg))
        }
    };
    let subject = f
        .take_str("subject")?
        .unwrap_or_else(|| "externalId|id".to_owned());
    let subject = SubjectMapping::parse(&subject)
        .map_err(|e| invalid("config.subject", e.to_string()))?
        .to_string();
    let api_public_key = f.take_str("api_public_key")?;
    let api_public_key_alg = f.take_str("api_public_key_alg")?;
    let api_public_key_alg = match &api_public_key {
        Some(pem) => {
            let alg = api_public_key_alg.unwrap_or_else(|| "RS256".to_owned());
            check_public_key(&alg, pem).map_err(|e| invalid("config.api_public_key", e))?;
            Some(alg)
        }
        None => None,
    };
    let issue_secret = f
        .take_bool("issue_api_secret")?
        .unwrap_or(api_public_key.is_none());
    if !issue_secret && api_public_key.is_none() {
        return Err(invalid(
            "config.issue_api_secret",
            "the application needs a way to authenticate to the grants API: keep \
             issue_api_secret or give api_public_key",
        ));
    }
    f.finish()?;
    let issued = if issue_secret {
        Some(
            IssuedToken::generate(TokenKind::Grants)
                .map_err(|e| invalid("config.issue_api_secret", e.to_string()))?,
        )
    } else {
        None
    };
    let config = OAuthRevocationConfig {
        issuer,
        metadata_url,
        revocation_endpoint,
        auth_method,
        client_secret,
        private_key,
        private_key_alg,
        kid,
        subject,
        api_secret_hash: issued.as_ref().map(|t| t.hash.to_hex()),
        api_secret_hint: issued.as_ref().map(|t| t.hint.clone()),
        api_public_key,
        api_public_key_alg,
    };
    Ok((config, issued.map(|t| t.token)))
}

fn prepare_gtr(
    config: Value,
    ctx: OpContext<'_>,
) -> Result<GlobalTokenRevocationConfig, InvalidField> {
    let mut f = Fields::new(config)?;
    let endpoint = f
        .take_str("endpoint")?
        .ok_or_else(|| invalid("config.endpoint", "the revocation endpoint is required"))?;
    let endpoint = validate_target_url(&endpoint, ctx.policy)
        .map_err(|e| invalid("config.endpoint", e.to_string()))?
        .to_string();
    let subject_format = match f.take_str("subject_format")?.as_deref() {
        None | Some("email") => SubIdFormat::Email,
        Some("iss_sub") => SubIdFormat::IssSub,
        Some(other) => {
            return Err(invalid(
                "config.subject_format",
                format!("{other:?} is not supported (use email or iss_sub)"),
            ));
        }
    };
    let subject_issuer = f.take_str("subject_issuer")?;
    if subject_format == SubIdFormat::IssSub && subject_issuer.is_none() {
        return Err(invalid(
            "config.subject_issuer",
            "an iss_sub subject needs the issuer that knows the user by that sub",
        ));
    }
    let subject = f.take_str("subject")?.unwrap_or_else(|| {
        match subject_format {
            SubIdFormat::Email => "emails.primary",
            SubIdFormat::IssSub => "externalId|id",
        }
        .to_owned()
    });
    let subject = SubjectMapping::parse(&subject)
        .map_err(|e| invalid("config.subject", e.to_string()))?
        .to_string();
    let auth = match f.take_str("auth")?.as_deref() {
        None | Some("bearer") => GtrAuth::Bearer,
        Some("private_key_jwt") => GtrAuth::PrivateKeyJwt,
        Some(other) => {
            return Err(invalid(
                "config.auth",
                format!("{other:?} is not supported (use bearer or private_key_jwt)"),
            ));
        }
    };
    let bearer = f.take_str(FIELD_BEARER_TOKEN)?;
    let pem = f.take_str(FIELD_PRIVATE_KEY)?;
    let alg = f.take_str("private_key_alg")?;
    let kid = f.take_str("kid")?;
    let audience = f.take_str("audience")?;
    f.finish()?;
    let (bearer_token, private_key, private_key_alg) = match auth {
        GtrAuth::Bearer => {
            let token = bearer.ok_or_else(|| {
                invalid("config.bearer_token", "auth bearer requires bearer_token")
            })?;
            (Some(seal(ctx, FIELD_BEARER_TOKEN, &token)?), None, None)
        }
        GtrAuth::PrivateKeyJwt => {
            let pem = pem.ok_or_else(|| {
                invalid(
                    "config.private_key",
                    "auth private_key_jwt requires private_key",
                )
            })?;
            let alg = alg.unwrap_or_else(|| "RS256".to_owned());
            check_private_key(&alg, &pem).map_err(|e| invalid("config.private_key", e))?;
            (None, Some(seal(ctx, FIELD_PRIVATE_KEY, &pem)?), Some(alg))
        }
    };
    Ok(GlobalTokenRevocationConfig {
        endpoint,
        subject_format,
        subject,
        subject_issuer,
        auth,
        bearer_token,
        private_key,
        private_key_alg,
        kid,
        audience,
    })
}

/// Provider admin kinds: the JSON object as given, with `{"$secret": "…"}` members sealed
/// under their member name. Their channel validates the rest
/// (`channels::provider_admin`, plugged in by [`provider_admin_check`]).
fn prepare_generic(kind: &str, config: Value, ctx: OpContext<'_>) -> Result<Value, InvalidField> {
    let Value::Object(obj) = config else {
        return Err(invalid("config", "must be a JSON object"));
    };
    let mut out = Map::new();
    for (name, value) in obj {
        let sealed = match value {
            Value::Object(inner) if inner.contains_key("$secret") => {
                let Some(Value::String(secret)) = inner.get("$secret") else {
                    return Err(invalid(
                        &format!("config.{name}"),
                        "{\"$secret\": …} must hold a string",
                    ));
                };
                Value::String(seal(ctx, &name, secret)?)
            }
            other => other,
        };
        out.insert(name, sealed);
    }
    let out = Value::Object(out);
    provider_admin_check(kind, &out, ctx.policy).map_err(|e| invalid("config", e))?;
    Ok(out)
}

/// The validation hook of the provider admin kinds: the adapters check their (sealed)
/// config and every URL they will call against the outbound policy
/// (`channels::provider_admin::validate_config_for`).
pub fn provider_admin_check(
    kind: &str,
    config: &Value,
    policy: AddressPolicy,
) -> Result<(), String> {
    deprov_revocation::channels::provider_admin::validate_config_for(kind, config, policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_request_shows_no_secret() {
        let req = OpTargetRequest {
            kind: "oauth_revocation".into(),
            client_id: "app".into(),
            groups: vec![],
            enabled: true,
            config: json!({"issuer": "https://op", "client_secret": "hunter2"}),
        };
        let text = format!("{req:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("client_secret"), "{text}");
    }

    #[test]
    fn generic_redaction_hides_secret_looking_members_only() {
        let shown = redacted_config(
            "okta",
            &json!({"domain": "x.okta.com", "api_token": "sealed", "client_id": "c", "private_key_alg": "RS256"}),
        );
        assert_eq!(shown["api_token"], "[sealed]");
        assert_eq!(shown["domain"], "x.okta.com");
        assert_eq!(shown["client_id"], "c");
        assert_eq!(shown["private_key_alg"], "RS256");
    }
}
