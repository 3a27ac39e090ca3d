//! Signature algorithms deprov signs logout tokens with.
//!
//! Asymmetric only: a logout token must be verifiable by anyone holding the JWKS and
//! forgeable by nobody else, so `none` and HMAC are not representable (Back-Channel
//! Logout 1.0 §2.4 and INTEROP.md).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SigningAlgorithm {
    #[default]
    RS256,
    ES256,
    EdDSA,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported signing algorithm {0:?} (use RS256, ES256 or EdDSA)")]
pub struct UnsupportedAlgorithm(pub String);

impl SigningAlgorithm {
    pub const ALL: [SigningAlgorithm; 3] = [Self::RS256, Self::ES256, Self::EdDSA];

    pub fn parse(raw: &str) -> Result<Self, UnsupportedAlgorithm> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(raw))
            .ok_or_else(|| UnsupportedAlgorithm(raw.to_owned()))
    }

    /// The JOSE `alg` value (RFC 7518 §3.1, RFC 8037 §3.1).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_jose_names_and_refuses_symmetric_or_none() {
        assert_eq!(
            SigningAlgorithm::parse("es256"),
            Ok(SigningAlgorithm::ES256)
        );
        assert_eq!(
            SigningAlgorithm::parse("EdDSA"),
            Ok(SigningAlgorithm::EdDSA)
        );
        for bad in ["none", "HS256", ""] {
            assert!(SigningAlgorithm::parse(bad).is_err());
        }
    }
}
