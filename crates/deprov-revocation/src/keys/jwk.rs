//! Public keys as JSON Web Keys (RFC 7517), their RFC 7638 thumbprints, and the JWKS.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A public signing key as published: `kty`, `kid`, `use: "sig"`, `alg`, and the key's
/// members — `n`, `e` (RSA, RFC 7518 §6.3.1); `crv: "P-256"`, `x`, `y` (EC, RFC 7518
/// §6.2.1); `crv: "Ed25519"`, `x` (OKP, RFC 8037 §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    pub kid: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

/// A JWK Set (RFC 7517 §5), as served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<PublicJwk>,
}

/// The members a thumbprint covers, for each key type (RFC 7638 §3.2, RFC 8037 §2).
fn required_members(kty: &str) -> Option<&'static [&'static str]> {
    match kty {
        "RSA" => Some(&["e", "kty", "n"]),
        "EC" => Some(&["crv", "kty", "x", "y"]),
        "OKP" => Some(&["crv", "kty", "x"]),
        _ => None,
    }
}

impl PublicJwk {
    fn member(&self, name: &str) -> Option<&str> {
        match name {
            "kty" => Some(&self.kty),
            "n" => self.n.as_deref(),
            "e" => self.e.as_deref(),
            "crv" => self.crv.as_deref(),
            "x" => self.x.as_deref(),
            "y" => self.y.as_deref(),
            _ => None,
        }
    }

    /// The RFC 7638 JWK thumbprint: base64url (no padding) of the SHA-256 of the required
    /// members in lexicographic order, without whitespace (§3). Deterministic, so the `kid`
    /// of a key can be derived again from its public half by anyone.
    /// `None` when a required member is missing or the key type is unknown.
    pub fn thumbprint(&self) -> Option<String> {
        let mut canonical = BTreeMap::new();
        for name in required_members(&self.kty)? {
            canonical.insert(*name, self.member(name)?);
        }
        // serde_json writes a BTreeMap in key order with no whitespace: §3.3's form.
        let json = serde_json::to_string(&canonical).ok()?;
        Some(URL_SAFE_NO_PAD.encode(Sha256::digest(json.as_bytes())))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    /// RFC 7638 §3.1: the example RSA key and its thumbprint.
    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        let jwk = PublicJwk {
            kty: "RSA".into(),
            kid: "2011-04-29".into(),
            use_: "sig".into(),
            alg: "RS256".into(),
            n: Some(
                "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tS\
                 oc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65Y\
                 GjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdk\
                 t-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
                    .replace(' ', ""),
            ),
            e: Some("AQAB".into()),
            crv: None,
            x: None,
            y: None,
        };
        assert_eq!(
            jwk.thumbprint().as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    /// RFC 8037 Appendix A.3: the thumbprint of the example Ed25519 key.
    #[test]
    fn thumbprint_matches_rfc_8037_example() {
        let jwk = PublicJwk {
            kty: "OKP".into(),
            kid: String::new(),
            use_: "sig".into(),
            alg: "EdDSA".into(),
            n: None,
            e: None,
            crv: Some("Ed25519".into()),
            x: Some("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into()),
            y: None,
        };
        assert_eq!(
            jwk.thumbprint().as_deref(),
            Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")
        );
    }

    #[test]
    fn thumbprint_needs_every_required_member() {
        let jwk = PublicJwk {
            kty: "EC".into(),
            kid: String::new(),
            use_: "sig".into(),
            alg: "ES256".into(),
            n: None,
            e: None,
            crv: Some("P-256".into()),
            x: Some("x".into()),
            y: None,
        };
        assert_eq!(jwk.thumbprint(), None);
    }

    #[test]
    fn serializes_only_the_members_of_its_key_type() {
        let jwk = PublicJwk {
            kty: "OKP".into(),
            kid: "k".into(),
            use_: "sig".into(),
            alg: "EdDSA".into(),
            n: None,
            e: None,
            crv: Some("Ed25519".into()),
            x: Some("AAAA".into()),
            y: None,
        };
        assert_eq!(
            serde_json::to_string(&jwk).unwrap(),
            r#"{"kty":"OKP","kid":"k","use":"sig","alg":"EdDSA","crv":"Ed25519","x":"AAAA"}"#
        );
    }
}
