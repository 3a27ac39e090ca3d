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

impl SubjectMapping {
    /// The subject for a user, read from its SCIM representation (the event's snapshot:
    /// the stored resource with its `id`). Attribute names compare case-insensitively;
    /// `None` when the user has no (non-empty string) value for the mapping.
    pub fn resolve(&self, user: &serde_json::Value) -> Option<String> {
        let text = |v: Option<&serde_json::Value>| {
            v.and_then(serde_json::Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        match self {
            Self::Id => text(get_ci(user, "id")),
            Self::ExternalId => text(get_ci(user, "externalId")),
            Self::ExternalIdOrId => {
                text(get_ci(user, "externalId")).or_else(|| text(get_ci(user, "id")))
            }
            Self::UserName => text(get_ci(user, "userName")),
            Self::PrimaryEmail => {
                let emails = get_ci(user, "emails")?.as_array()?;
                let primary = emails.iter().find(|e| {
                    get_ci(e, "primary").is_some_and(|p| {
                        p.as_bool() == Some(true)
                            || p.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true"))
                    })
                });
                primary
                    .into_iter()
                    .chain(emails.iter())
                    .find_map(|e| text(get_ci(e, "value")))
            }
            Self::Path(path) => {
                // An extension attribute is `URN:attr[.sub]`, stored under the URN key.
                let (base, rest) = match path.rfind(':') {
                    Some(i) if path[..i].contains(':') => {
                        (get_ci(user, &path[..i]), &path[i + 1..])
                    }
                    _ => (Some(user), path.as_str()),
                };
                let mut value = base?;
                for part in rest.split('.') {
                    value = get_ci(value, part)?;
                }
                // A complex value such as `manager` names its `value`.
                text(Some(value)).or_else(|| text(get_ci(value, "value")))
            }
        }
    }
}

/// A member of a JSON object by case-insensitive name (SCIM names are case-insensitive).
fn get_ci<'a>(value: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    let obj = value.as_object()?;
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
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
    fn resolves_each_mapping_from_a_scim_user() -> Result<(), SubjectMappingError> {
        let user = serde_json::json!({
            "id": "u-1",
            "externalId": "00u1okta",
            "userName": "Ada@Example.com",
            "emails": [
                {"value": "ada@home.example", "type": "home"},
                {"value": "ada@example.com", "type": "work", "primary": "True"}
            ],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": "701984",
                "manager": {"value": "u-9"}
            },
            "name": {"givenName": "Ada"}
        });
        let r = |m: &str| SubjectMapping::parse(m).map(|m| m.resolve(&user));
        assert_eq!(r("id")?, Some("u-1".into()));
        assert_eq!(r("externalId|id")?, Some("00u1okta".into()));
        assert_eq!(r("userName")?, Some("Ada@Example.com".into()));
        assert_eq!(r("emails.primary")?, Some("ada@example.com".into()));
        assert_eq!(r("name.givenName")?, Some("Ada".into()));
        assert_eq!(
            r("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber")?,
            Some("701984".into())
        );
        assert_eq!(
            r("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager")?,
            Some("u-9".into())
        );
        assert_eq!(r("nickName")?, None);
        let bare = serde_json::json!({"id": "u-2", "externalId": ""});
        assert_eq!(SubjectMapping::default().resolve(&bare), Some("u-2".into()));
        assert_eq!(SubjectMapping::ExternalId.resolve(&bare), None);
        Ok(())
    }

    #[test]
    fn refuses_what_is_not_an_attribute_path() {
        for bad in ["", "emails[type eq \"work\"]", "1abc", "a b", "x;drop"] {
            assert!(SubjectMapping::parse(bad).is_err(), "{bad}");
        }
    }
}
