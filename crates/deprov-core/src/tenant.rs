//! Tenant names: they become a path segment of the SCIM base URL.

use std::fmt;

/// The name of a tenant, safe to place in a URL path as it is.
///
/// Lower-case ASCII letters, digits and `-`, 1 to 63 characters, starting with a letter or a
/// digit and not ending with `-` (a DNS label's shape). `_` is refused on purpose: Okta
/// rejects SCIM base URLs that contain it. Upper-case input is refused rather than folded, so
/// that the name an operator typed is the name in every URL.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantNameError {
    #[error("tenant name is empty")]
    Empty,
    #[error("tenant name is longer than 63 characters")]
    TooLong,
    #[error(
        "tenant name {0:?} may contain only lower-case letters a-z, digits and '-' (no '_': Okta refuses it in base URLs)"
    )]
    InvalidCharacter(String),
    #[error("tenant name {0:?} must start with a letter or digit and must not end with '-'")]
    BadEdge(String),
}

impl TenantName {
    pub const MAX_LEN: usize = 63;

    pub fn parse(raw: &str) -> Result<Self, TenantNameError> {
        if raw.is_empty() {
            return Err(TenantNameError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(TenantNameError::TooLong);
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(TenantNameError::InvalidCharacter(raw.to_owned()));
        }
        if raw.starts_with('-') || raw.ends_with('-') {
            return Err(TenantNameError::BadEdge(raw.to_owned()));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantName({})", self.0)
    }
}

impl std::str::FromStr for TenantName {
    type Err = TenantNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for TenantName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_url_safe_names() {
        for ok in ["default", "acme", "acme-eu-1", "a", "0day"] {
            assert_eq!(
                TenantName::parse(ok).map(|n| n.to_string()),
                Ok(ok.to_owned())
            );
        }
    }

    #[test]
    fn refuses_what_okta_or_a_url_path_would_not_take() {
        assert_eq!(TenantName::parse(""), Err(TenantNameError::Empty));
        assert!(matches!(
            TenantName::parse("acme_corp"),
            Err(TenantNameError::InvalidCharacter(_))
        ));
        assert!(matches!(
            TenantName::parse("Acme"),
            Err(TenantNameError::InvalidCharacter(_))
        ));
        assert!(matches!(
            TenantName::parse("a/b"),
            Err(TenantNameError::InvalidCharacter(_))
        ));
        assert!(matches!(
            TenantName::parse("-acme"),
            Err(TenantNameError::BadEdge(_))
        ));
        assert_eq!(
            TenantName::parse(&"a".repeat(64)),
            Err(TenantNameError::TooLong)
        );
    }
}
