//! What deprov publishes so that relying parties can verify its logout tokens: an OpenID
//! Provider metadata document (OpenID Connect Discovery 1.0 §3) at
//! `{public_url}/.well-known/openid-configuration`, and the JWKS at
//! `{public_url}/.well-known/jwks.json`.
//!
//! deprov is not a full OpenID Provider: it issues logout tokens, not ID tokens, and has no
//! authorization or token endpoint. The document states only what is true. That satisfies
//! the libraries relying parties use to check logout tokens: openid-client 6 (under
//! express-openid-connect 3) requires only `issuer`, equal to the URL it discovered from
//! after URL normalisation, then reads `jwks_uri`; it merely logs when
//! `id_token_signing_alg_values_supported` lacks its configured algorithm. A strict OIDC
//! Discovery validator would also want `authorization_endpoint`, `response_types_supported`
//! and `subject_types_supported` (REQUIRED for an OP in §3); deprov does not claim them.

use deprov_core::SigningAlgorithm;
use serde_json::{Value, json};

pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The issuer identifier for a public URL: the URL without a trailing slash.
///
/// Use this one function for both the discovery document and the `iss` of logout tokens:
/// receivers such as express-openid-connect compare `iss` to the discovered `issuer`
/// character for character.
pub fn issuer(public_url: &str) -> String {
    public_url.trim_end_matches('/').to_owned()
}

/// `{issuer}/.well-known/jwks.json`.
pub fn jwks_uri(public_url: &str) -> String {
    format!("{}{JWKS_PATH}", issuer(public_url))
}

/// The OpenID Provider metadata deprov serves. `algorithms` are those of the published
/// keys (`KeyRing::published_algorithms`); the member is left out when there are none.
pub fn openid_configuration(public_url: &str, algorithms: &[SigningAlgorithm]) -> Value {
    let mut doc = json!({
        "issuer": issuer(public_url),
        "jwks_uri": jwks_uri(public_url),
        // Back-Channel Logout 1.0 §2.1: the OP supports back-channel logout…
        "backchannel_logout_supported": true,
        // …but cannot put `sid` in them: deprov learns users from SCIM, never sessions.
        "backchannel_logout_session_supported": false,
    });
    if !algorithms.is_empty()
        && let Some(obj) = doc.as_object_mut()
    {
        obj.insert(
            "id_token_signing_alg_values_supported".to_owned(),
            json!(algorithms.iter().map(|a| a.as_str()).collect::<Vec<_>>()),
        );
    }
    doc
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn document_names_issuer_jwks_and_backchannel_support() {
        let doc = openid_configuration(
            "https://deprov.example.com/",
            &[SigningAlgorithm::RS256, SigningAlgorithm::ES256],
        );
        assert_eq!(
            doc,
            json!({
                "issuer": "https://deprov.example.com",
                "jwks_uri": "https://deprov.example.com/.well-known/jwks.json",
                "backchannel_logout_supported": true,
                "backchannel_logout_session_supported": false,
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            })
        );
    }

    #[test]
    fn issuer_keeps_a_path_and_drops_only_trailing_slashes() {
        assert_eq!(issuer("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(
            issuer("https://x.example/deprov/"),
            "https://x.example/deprov"
        );
        assert_eq!(
            jwks_uri("https://x.example/deprov"),
            "https://x.example/deprov/.well-known/jwks.json"
        );
        let doc = openid_configuration("https://x.example", &[]);
        assert!(doc.get("id_token_signing_alg_values_supported").is_none());
    }
}
