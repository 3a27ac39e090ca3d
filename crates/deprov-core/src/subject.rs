//! Which SCIM attribute of a user becomes the `sub` of the logout token an application gets.
//!
//! Applications know their users by the identifier the OpenID Provider gave them, which is
//! usually the IdP's own user id (Okta and Entra send it as `externalId`), sometimes the
//! login name or the e-mail. The relying party's mapping picks it (DESIGN.md, `--subject`).

use std::fmt;

#[derive(Clone, PartialEq, Eq, Default)]
pub enum SubjectMapping {
    /// deprov's own SCIM `id`.
    Id,
    /// `externalId`, falling back to `id` when the IdP sent none. The default.
    #[default]
    ExternalIdOrId,
    /// `externalId` only: a user without one gets no logout from this mapping.
    ExternalId,
    /// `userName`.
    UserName,
    /// The `value` of the e-mail marked `primary`, else the first e-mail.
    PrimaryEmail,
    /// Any other attribute path (`urn:…:enterprise:2.0:User:employeeNumber`, `nickName`…),
    /// read from the stored resource; must name a single string value.
    Path(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "subject mapping {0:?} is not a SCIM attribute path (use id, externalId, userName, emails.primary, or an attribute path such as urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber)"
)]
pub struct SubjectMappingError(pub String);

impl SubjectMapping {
    pub fn parse(raw: &str) -> Result<Self, SubjectMappingError> {
        let lower = raw.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "id" => Self::Id,
            "externalid" => Self::ExternalId,
            "externalid|id" | "default" => Self::ExternalIdOrId,
            "username" => Self::UserName,
            "emails.primary" | "email" | "emails" => Self::PrimaryEmail,
            _ => {
                let ok = !raw.is_empty()
                    && raw.len() <= 256
                    && raw
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._:-$".contains(&b))
                    && raw.bytes().next().is_some_and(|b| b.is_ascii_alphabetic());
                if !ok {
                    return Err(SubjectMappingError(raw.to_owned()));
                }
                Self::Path(raw.to_owned())
            }
        })
    }

    /// The stable textual form stored with a target and accepted back by [`Self::parse`].
    pub fn as_str(&self) -> &str {
        match self {
            Self::Id => "id",
            Self::ExternalIdOrId => "externalId|id",
            Self::ExternalId => "externalId",
            Self::UserName => "userName",
            Self::PrimaryEmail => "emails.primary",
            Self::Path(p) => p,
        }
    }
}

impl fmt::Display for SubjectMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for SubjectMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectMapping({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_case_insensitively_and_round_trips() {
        for (raw, want) in [
            ("id", SubjectMapping::Id),
            ("externalId", SubjectMapping::ExternalId),
            ("USERNAME", SubjectMapping::UserName),
            ("emails.primary", SubjectMapping::PrimaryEmail),
            ("externalId|id", SubjectMapping::ExternalIdOrId),
        ] {
            let parsed = SubjectMapping::parse(raw);
            assert_eq!(parsed, Ok(want.clone()));
            assert_eq!(SubjectMapping::parse(want.as_str()), Ok(want));
        }
        let ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber";
        assert_eq!(
            SubjectMapping::parse(ext),
            Ok(SubjectMapping::Path(ext.to_owned()))
        );
    }

    #[test]
    fn refuses_what_is_not_an_attribute_path() {
        for bad in ["", "emails[type eq \"work\"]", "1abc", "a b", "x;drop"] {
            assert!(SubjectMapping::parse(bad).is_err(), "{bad}");
        }
    }
}
