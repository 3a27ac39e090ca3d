//! How deprov authenticates as an OAuth client at an authorization server's endpoint
//! (RFC 7009 §2.1: "the client also includes its authentication credentials as described
//! in Section 2.3. of [RFC6749]").
//!
//! - `client_secret_basic` (RFC 6749 §2.3.1): `Authorization: Basic base64(id ":" secret)`
//!   where id and secret are each **form-urlencoded first** ("The client identifier is
//!   encoded using the application/x-www-form-urlencoded encoding algorithm … and the
//!   encoded value is used as the username"). Forgetting this breaks secrets with `:`, `+`,
//!   `%` or non-ASCII characters, and strict servers (oidc-provider) decode it.
//! - `client_secret_post` (RFC 6749 §2.3.1): `client_id` and `client_secret` in the body.
//! - `private_key_jwt` (OpenID Connect Core §9, RFC 7523 §2.2 and §3): `client_assertion_type
//!   = urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and a `client_assertion`
//!   JWT with `iss` = `sub` = client_id, `aud` = the authorization server's issuer, a fresh
//!   `jti`, `iat`, and `exp` 60 s later, signed with a private key deprov holds for that
//!   client (imported PEM, sealed in the target's config).
//!
//! Secrets are opened from the sealed config only for the request and wiped on drop.

use std::str::FromStr as _;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keys::{KeyEncryptionKey, open_target_secret_str};

/// The config member holding a sealed client secret.
pub const FIELD_CLIENT_SECRET: &str = "client_secret";
/// The config member holding a sealed private key (PKCS#8 PEM) for `private_key_jwt`.
pub const FIELD_PRIVATE_KEY: &str = "private_key";

/// RFC 7523 §2.2: the `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Lifetime of a client assertion deprov mints (one per request).
const ASSERTION_LIFETIME_SECS: u64 = 60;

/// The token endpoint authentication methods deprov can use (RFC 7591 §2 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

impl ClientAuthMethod {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "client_secret_basic" => Ok(Self::ClientSecretBasic),
            "client_secret_post" => Ok(Self::ClientSecretPost),
            "private_key_jwt" => Ok(Self::PrivateKeyJwt),
            other => Err(format!(
                "unsupported client authentication method {other:?} (use client_secret_basic, \
                 client_secret_post or private_key_jwt)"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// What one request carries to authenticate: an `Authorization` header value and/or form
/// members. `Debug` redacts.
#[derive(Default)]
pub struct ClientCredentials {
    pub authorization: Option<Zeroizing<String>>,
    pub form: Vec<(&'static str, Zeroizing<String>)>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "form",
                &self.form.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Where a client's credentials are and how it authenticates.
#[derive(Debug, Clone, Copy)]
pub struct ClientAuthSpec<'a> {
    pub method: ClientAuthMethod,
    pub client_id: &'a str,
    pub tenant_id: &'a str,
    /// Sealed secret, for the `client_secret_*` methods.
    pub sealed_secret: Option<&'a str>,
    /// Sealed PKCS#8 PEM, for `private_key_jwt`.
    pub sealed_private_key: Option<&'a str>,
    /// JOSE `alg` of the private key (RS256, PS256, ES256, EdDSA…).
    pub alg: Option<&'a str>,
    pub kid: Option<&'a str>,
}

/// RFC 6749 §2.3.1 / Appendix B: `application/x-www-form-urlencoded` of one value.
pub fn form_urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The `Authorization: Basic` value for `client_secret_basic` (RFC 6749 §2.3.1).
pub fn basic_authorization(client_id: &str, secret: &str) -> Zeroizing<String> {
    let pair = Zeroizing::new(format!(
        "{}:{}",
        form_urlencode(client_id),
        form_urlencode(secret)
    ));
    Zeroizing::new(format!("Basic {}", STANDARD.encode(pair.as_bytes())))
}

/// Signs a JWT with a PEM private key, choosing the key type from `alg`.
pub fn sign_jwt(
    alg: &str,
    kid: Option<&str>,
    pem: &str,
    claims: &serde_json::Value,
) -> Result<String, String> {
    let algorithm =
        Algorithm::from_str(alg).map_err(|_| format!("unsupported JOSE alg {alg:?}"))?;
    let key = match algorithm {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => EncodingKey::from_rsa_pem(pem.as_bytes()),
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
        _ => return Err(format!("{alg} is not an asymmetric signature algorithm")),
    }
    .map_err(|e| format!("the private key does not fit {alg}: {e}"))?;
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).map_err(|e| format!("cannot sign: {e}"))
}

/// Checks that a PEM private key signs with `alg` (at configuration time).
pub fn check_private_key(alg: &str, pem: &str) -> Result<(), String> {
    sign_jwt(alg, None, pem, &serde_json::json!({"check": true})).map(|_| ())
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The credentials for one request to an endpoint of the authorization server `audience`.
/// Errors are permanent (a secret that does not open will not open later) and never carry
/// a secret.
pub fn credentials(
    kek: &KeyEncryptionKey,
    spec: ClientAuthSpec<'_>,
    audience: &str,
) -> Result<ClientCredentials, String> {
    let open = |field: &str, sealed: Option<&str>| {
        let sealed = sealed.ok_or_else(|| {
            format!(
                "{} requires a {field}, and none is configured",
                spec.method.as_str()
            )
        })?;
        open_target_secret_str(kek, spec.tenant_id, field, sealed).map_err(|_| {
            format!(
                "cannot open the sealed {field}: the key-encryption key changed or the \
                 configuration was altered"
            )
        })
    };
    let mut creds = ClientCredentials::default();
    match spec.method {
        ClientAuthMethod::ClientSecretBasic => {
            let secret = open(FIELD_CLIENT_SECRET, spec.sealed_secret)?;
            creds.authorization = Some(basic_authorization(spec.client_id, &secret));
        }
        ClientAuthMethod::ClientSecretPost => {
            let secret = open(FIELD_CLIENT_SECRET, spec.sealed_secret)?;
            creds
                .form
                .push(("client_id", Zeroizing::new(spec.client_id.to_owned())));
            creds.form.push(("client_secret", secret));
        }
        ClientAuthMethod::PrivateKeyJwt => {
            let pem = open(FIELD_PRIVATE_KEY, spec.sealed_private_key)?;
            let alg = spec.alg.unwrap_or("RS256");
            let now = unix_now();
            let claims = serde_json::json!({
                "iss": spec.client_id,
                "sub": spec.client_id,
                "aud": audience,
                "jti": uuid::Uuid::new_v4().to_string(),
                "iat": now,
                "exp": now + ASSERTION_LIFETIME_SECS,
            });
            let jwt = sign_jwt(alg, spec.kid, &pem, &claims)?;
            creds
                .form
                .push(("client_id", Zeroizing::new(spec.client_id.to_owned())));
            creds.form.push((
                "client_assertion_type",
                Zeroizing::new(JWT_BEARER_ASSERTION_TYPE.to_owned()),
            ));
            creds.form.push(("client_assertion", Zeroizing::new(jwt)));
        }
    }
    Ok(creds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_urlencoded_before_base64() {
        // RFC 6749 §2.3.1: "a:b c" becomes "a%3Ab+c".
        let header = basic_authorization("my client", "p:ss+w%rd é");
        let b64 = header.strip_prefix("Basic ").unwrap_or_default();
        let decoded = STANDARD.decode(b64).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&decoded),
            "my+client:p%3Ass%2Bw%25rd+%C3%A9"
        );
    }
}
